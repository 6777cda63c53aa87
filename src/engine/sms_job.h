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

/* Loads what the job needs through conn, renders and counts segments.
 * The sandbox writes the outbox record and out is final; live, call->req
 * receives the Twilio send and sms_finish reads its answer (SENT with the
 * Twilio SID as message id, or FAILED with the category and Twilio error
 * code). On failure out says why and call->req stays NULL. */
void sms_prepare(app_t *app, PGconn *conn, const queue_job_t *job, msg_call_t *call,
                 email_outcome_t *out);
void sms_finish(msg_call_t *call, email_outcome_t *out);

#endif
