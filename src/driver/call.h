/* call: one provider call, prepared by a driver and made by the delivery
 * worker.
 *
 * A driver's prepare step does everything that needs the database and the
 * templates and leaves the request here; the worker puts every call of a
 * claimed batch in flight on the driver's transport loop at once and hands
 * each answer back to the driver's finish step. */
#ifndef CRIER_CALL_H
#define CRIER_CALL_H

#include "driver/outcome.h"
#include "transport/transport.h"
#include "util/buf.h"

typedef struct call {
    tx_request_t *req; /* owned until submitted; NULL when there is no call to make */
    tx_result_t res;   /* the answer; its body is owned (call_clear) */
    int submitted;     /* req went to the transport: res is valid after the wait */
    char note[12];     /* the driver's own word on the request, for reading its answer */
} call_t;

/* Frees an unsent request and an answer's body; leaves call zeroed. */
void call_clear(call_t *call);

/* Builds the POST of body to base + path into call->req. auth_value
 * ("Basic ..." / "Bearer ...") is a secret and is wiped from every copy
 * made here. 0, or -1 with out failed. */
int call_http_post(const char *base, const char *path, const char *content_type,
                   const char *auth_value, const buf_t *body, long timeout_ms, call_t *call,
                   outcome_t *out);

/* 0 when the HTTP call was made and answered (out->answered set), or -1
 * with out failed (transient: nothing reached the provider, or no answer
 * came back). */
int call_answer(const call_t *call, outcome_t *out);

#endif
