/* email_job: one claimed communication turned into an email and handed to
 * the configured transport (sandbox outbox or SMTP). */
#ifndef CRIER_EMAIL_JOB_H
#define CRIER_EMAIL_JOB_H

#include "app.h"
#include "channel/errclass.h"
#include "engine/msg_call.h"
#include "queue/queue.h"

#include <libpq-fe.h>

typedef struct email_sender email_sender_t;

typedef enum {
    EMAIL_SENT,      /* accepted by the SMTP server */
    EMAIL_DELIVERED, /* written to the sandbox outbox */
    EMAIL_FAILED,    /* see category: the caller decides retry or give up */
} email_status_t;

/* What a provider's answer says beyond this attempt. */
typedef enum {
    EMAIL_SIGNAL_NONE = 0,
    EMAIL_SIGNAL_OPT_OUT,       /* the recipient opted out of this channel (21610, 131050) */
    EMAIL_SIGNAL_WINDOW_CLOSED, /* WhatsApp refused free text (131047): resend as a template */
} email_signal_t;

typedef struct email_outcome {
    email_status_t status;
    errc_t category;       /* ERRC_NONE unless EMAIL_FAILED */
    int code;              /* SMTP reply code, 0 if none */
    char message_id[160];  /* Message-ID header of what was sent */
    char subject[256];     /* rendered subject (cut at a character boundary) */
    char error[320];       /* why it failed; addresses masked */
    char detail_json[768]; /* provider response for delivery_events */
    int retry_after;       /* seconds the provider asked us to wait; -1 when it did not */
    int answered;          /* a provider call was made and the provider answered it */
    email_signal_t signal;
} email_outcome_t;

/* One sender per worker thread. */
email_sender_t *email_sender_new(app_t *app);
void email_sender_free(email_sender_t *s);

/* Resets out for a new attempt: nothing decided, no Retry-After. */
void email_outcome_init(email_outcome_t *out);

/* Loads what the job needs through conn, renders and builds the MIME
 * message. In the sandbox it is written to the outbox and out is final; on
 * the live transport call->req receives the SMTP send for the worker to
 * make, and email_finish reads its answer. On failure out says why and
 * call->req stays NULL. call must be zeroed. */
void email_prepare(email_sender_t *s, PGconn *conn, const queue_job_t *job, msg_call_t *call,
                   email_outcome_t *out);
/* Reads the answer to the SMTP send email_prepare built. */
void email_finish(msg_call_t *call, email_outcome_t *out);

#endif
