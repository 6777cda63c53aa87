/* actions: the answers a message offers (docs/tracking.md, Actions).
 * Before a message of a type that declares actions (template/actions.h) is
 * rendered, on any channel, its actions are stored with the communication
 * (store/actions.h) and each gets a link, CRIER_PUBLIC_URL/a/<token>, a
 * LINKTOK_ACTION of the communication and the action's index; the links
 * and the reply hint go into the render context. An email shows the links
 * as buttons; an SMS shows the reply hint ("Reply 1 for A or 2 for B."),
 * and a numbered reply answers it (store/receipts.c); WhatsApp sends the
 * actions as reply buttons. */
#ifndef CRIER_DRIVER_ACTIONS_H
#define CRIER_DRIVER_ACTIONS_H

#include "crypto/linktok.h"
#include "driver/driver.h"
#include "template/actions.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <time.h>

/* The longest action link. */
#define ACTIONS_URL_MAX 1024

/* Writes the token of action index of communication comm_id, issued at
 * now, into out: the path segment of its link, and the id of its WhatsApp
 * reply button. 0, or -1 (a bad id). */
int actions_token(const cry_keys_t *keys, const char *comm_id, int index, time_t now,
                  char out[LINKTOK_TEXT_MAX]);

/* Writes the action link of action index of communication comm_id, issued
 * at now, into out. 0, or -1 (a public URL too long, a bad id). */
int actions_url(const cfg_t *cfg, const cry_keys_t *keys, const char *comm_id, int index,
                time_t now, char out[ACTIONS_URL_MAX]);

/* Declares, stores and links the actions of job into ctx (its render
 * context), and into *declared when it is not NULL (n 0 for a type with
 * none), for a driver that also shows them its own way. 0 (also for a type
 * with none), or -1 with out failed: a context that cannot give them is the
 * request's fault, a failed store a transient one. */
int actions_apply(const drv_env_t *env, PGconn *conn, const queue_job_t *job, cJSON *ctx,
                  act_list_t *declared, outcome_t *out);

#endif
