/* target: the recipient of a message sent to a phone (SMS, WhatsApp) and
 * the template context it is rendered with, built as for email. */
#ifndef CRIER_TARGET_H
#define CRIER_TARGET_H

#include "driver/driver.h"
#include "driver/outcome.h"
#include "queue/queue.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>

typedef struct target {
    store_client_t client; /* owned: decrypted client, phone set */
    cJSON *ctx;            /* owned: the template context */
    cJSON *request_ctx;    /* owned: the request's context ctx was built from */
} target_t;

/* Loads the client of job (who must have a phone) and builds the template
 * context. 0, or -1 with out failed; free t with target_free either way. */
int target_load(const drv_env_t *env, PGconn *conn, const queue_job_t *job, target_t *t,
                outcome_t *out);
void target_free(target_t *t);

/* Whether client c may still be sent channel, on the row just read: a
 * message decided before a STOP, an unsubscribe, a withdrawn consent or a
 * bounce of the address must not go. The test is the one the rules'
 * decisions pass (rules_channel_allowed). 1, or 0 with out skipped for its
 * reason (opt_out, no_consent, suppressed, no_contact): the chain's next
 * channel takes the message. */
int target_allowed(const store_client_t *c, const char *channel, outcome_t *out);

#endif
