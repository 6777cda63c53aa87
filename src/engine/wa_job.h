/* wa_job: one claimed communication sent on WhatsApp, through the Cloud API
 * (live) or the sandbox outbox (<id>.whatsapp.json).
 *
 * Inside the client's 24-hour customer-service window the free-text
 * template goes out; outside it only an approved template may, so the
 * message type's approved template is sent with its rendered parameters. */
#ifndef CRIER_WA_JOB_H
#define CRIER_WA_JOB_H

#include "app.h"
#include "engine/email_job.h"
#include "queue/queue.h"

#include <libpq-fe.h>

/* Loads what the job needs through conn and renders for the client's
 * window. The sandbox writes the outbox record and out is final; live,
 * call->req receives the Cloud API send and wa_finish reads its answer
 * (SENT with the wamid as message id, or FAILED with the category and
 * Graph error code). On failure out says why and call->req stays NULL. */
void wa_prepare(app_t *app, PGconn *conn, const queue_job_t *job, msg_call_t *call,
                email_outcome_t *out);
void wa_finish(msg_call_t *call, email_outcome_t *out);

#endif
