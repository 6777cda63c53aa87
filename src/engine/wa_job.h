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

/* Loads what the job needs through conn, renders and sends; out is filled
 * as email_deliver fills it (SENT with the wamid as message id, DELIVERED
 * in the sandbox, or FAILED with the category and Graph error code). */
void wa_deliver(app_t *app, PGconn *conn, const queue_job_t *job, email_outcome_t *out);

#endif
