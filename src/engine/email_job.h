/* email_job: one claimed communication turned into an email and handed to
 * the configured transport (sandbox outbox or SMTP). */
#ifndef CRIER_EMAIL_JOB_H
#define CRIER_EMAIL_JOB_H

#include "app.h"
#include "channel/errclass.h"
#include "queue/queue.h"

#include <libpq-fe.h>

typedef struct email_sender email_sender_t;

typedef enum {
    EMAIL_SENT,      /* accepted by the SMTP server */
    EMAIL_DELIVERED, /* written to the sandbox outbox */
    EMAIL_FAILED,    /* see category: the caller decides retry or give up */
} email_status_t;

typedef struct email_outcome {
    email_status_t status;
    errc_t category;       /* ERRC_NONE unless EMAIL_FAILED */
    int code;              /* SMTP reply code, 0 if none */
    char message_id[160];  /* Message-ID header of what was sent */
    char subject[256];     /* rendered subject (cut at a character boundary) */
    char error[320];       /* why it failed; addresses masked */
    char detail_json[768]; /* provider response for delivery_events */
} email_outcome_t;

/* One sender per worker thread (it owns an SMTP connection). */
email_sender_t *email_sender_new(app_t *app);
void email_sender_free(email_sender_t *s);
/* Loads what the job needs through conn, renders, builds MIME and sends. */
void email_deliver(email_sender_t *s, PGconn *conn, const queue_job_t *job, email_outcome_t *out);

#endif
