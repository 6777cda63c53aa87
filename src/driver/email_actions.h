/* email_actions: the one-click answers of an email (docs/tracking.md,
 * Actions). Before an email of a type that declares actions
 * (template/actions.h) is rendered, its actions are stored with the
 * communication (store/actions.h) and each gets a link,
 * CRIER_PUBLIC_URL/a/<token>, a LINKTOK_ACTION of the communication and
 * the action's index; the links and the reply hint go into the render
 * context. */
#ifndef CRIER_DRIVER_EMAIL_ACTIONS_H
#define CRIER_DRIVER_EMAIL_ACTIONS_H

#include "driver/driver.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <time.h>

/* The longest action link. */
#define EMAIL_ACTIONS_URL_MAX 1024

/* Writes the action link of action index of communication comm_id, issued
 * at now, into out. 0, or -1 (a public URL too long, a bad id). */
int email_actions_url(const cfg_t *cfg, const cry_keys_t *keys, const char *comm_id, int index,
                      time_t now, char out[EMAIL_ACTIONS_URL_MAX]);

/* Declares, stores and links the actions of job into ctx (its render
 * context). 0 (also for a type with none), or -1 with out failed: a
 * context that cannot give them is the request's fault, a failed store a
 * transient one. */
int email_actions_apply(const drv_env_t *env, PGconn *conn, const queue_job_t *job, cJSON *ctx,
                        outcome_t *out);

#endif
