/* msg_job: what the SMS and WhatsApp jobs share — the recipient and template
 * context of a claimed communication, the sandbox outbox record, and one
 * provider request through the transport.
 *
 * Both jobs fill the same outcome as email_deliver (email_outcome_t), so the
 * delivery worker records every channel alike. Phone numbers and message
 * bodies never reach an outcome's error text or detail: those end up in
 * logs and delivery events. */
#ifndef CRIER_MSG_JOB_H
#define CRIER_MSG_JOB_H

#include "app.h"
#include "engine/email_job.h"
#include "queue/queue.h"
#include "store/store.h"
#include "transport/transport.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>

/* The digits a sandbox recipient ends with to be refused: the demo and the
 * tests use it to show a permanent failure and its fallback. */
#define MSG_SANDBOX_FAIL_SUFFIX "0000"

typedef struct msg_target {
    store_client_t client; /* owned: decrypted client, phone set */
    cJSON *ctx;            /* owned: the template context, built as for email */
    cJSON *request_ctx;    /* owned: the request's context ctx was built from */
} msg_target_t;

/* Loads the client (who must have a phone) and builds the template
 * context. 0, or -1 with out failed; free t with msg_target_free either way. */
int msg_target_load(app_t *app, PGconn *conn, const queue_job_t *job, msg_target_t *t,
                    email_outcome_t *out);
void msg_target_free(msg_target_t *t);

/* Marks out failed with category cat, provider code and "stage: detail". */
void msg_fail(email_outcome_t *out, errc_t cat, int code, const char *stage, const char *detail);

/* 1 when the sandbox refuses phone (its digits end in MSG_SANDBOX_FAIL_SUFFIX). */
int msg_sandbox_refuses(const char *phone);

/* Writes record (a JSON object) to the outbox as <job id>.<kind>.json and
 * marks out delivered; or marks it failed (transient) when the write fails. */
void msg_outbox_deliver(const cfg_t *cfg, const queue_job_t *job, const char *kind,
                        const cJSON *record, email_outcome_t *out);

/* Builds the POST of body to base + path into call->req. auth_value
 * ("Basic ..." / "Bearer ...") is a secret. 0, or -1 with out failed. */
int msg_http_request(const cfg_t *cfg, const char *base, const char *path, const char *content_type,
                     const char *auth_value, const buf_t *body, msg_call_t *call,
                     email_outcome_t *out);

/* 0 when the call was made and answered (out->answered set), or -1 with
 * out failed (transient: nothing reached the provider, or no answer came
 * back). */
int msg_call_answer(const msg_call_t *call, email_outcome_t *out);

/* Stores obj, printed, as out's detail_json (a fixed fallback when it does
 * not fit); consumes obj. */
void msg_set_detail(email_outcome_t *out, cJSON *obj, const char *fallback);

#endif
