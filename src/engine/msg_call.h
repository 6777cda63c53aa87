/* msg_call: one provider call, prepared by a channel job and made by the
 * delivery worker.
 *
 * A job's prepare step does everything that needs the database and the
 * templates and leaves the request here; the worker puts every call of a
 * claimed batch in flight on the transport at once, waits for them
 * together, and hands each answer back to its job's finish step. */
#ifndef CRIER_MSG_CALL_H
#define CRIER_MSG_CALL_H

#include "transport/transport.h"

typedef struct msg_call {
    tx_request_t *req; /* owned until submitted; NULL when there is no call to make */
    tx_result_t res;   /* the answer; its body is owned (msg_call_clear) */
    int submitted;     /* req went to the transport: res is valid after the wait */
    char wa_type[12];  /* WhatsApp: "text" or "template", for the answer's record */
} msg_call_t;

/* Frees an unsent request and an answer's body; leaves call zeroed. */
void msg_call_clear(msg_call_t *call);

#endif
