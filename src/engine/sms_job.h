/* sms_job: one claimed communication sent as an SMS, through Twilio's
 * Messages API (live) or the sandbox outbox (<id>.sms.json).
 *
 * The body is the SMS template rendered with the same context as the email;
 * a body costing more segments than CRIER_SMS_SEGMENT_BUDGET is refused as
 * invalid_input, so the rules move the message to its next channel rather
 * than billing a long text. */
#ifndef CRIER_SMS_JOB_H
#define CRIER_SMS_JOB_H

#include "app.h"
#include "engine/email_job.h"
#include "queue/queue.h"

#include <libpq-fe.h>

/* Loads what the job needs through conn, renders, counts segments and
 * sends; out is filled as email_deliver fills it (SENT with the Twilio SID
 * as message id, DELIVERED in the sandbox, or FAILED with the category and
 * Twilio error code). */
void sms_deliver(app_t *app, PGconn *conn, const queue_job_t *job, email_outcome_t *out);

#endif
