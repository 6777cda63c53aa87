/* actions: the answers a message offers, on every channel (see actions.h). */
#include "driver/actions.h"

#include "crypto/linktok.h"
#include "store/actions.h"
#include "template/actions.h"

#include <stdio.h>
#include <string.h>

_Static_assert(ACT_MAX <= STORE_ACTIONS_MAX, "every declared action can be stored");
_Static_assert(ACT_NAME_MAX <= STORE_ACTION_NAME_MAX && ACT_VALUE_MAX <= STORE_ACTION_VALUE_MAX &&
                   ACT_LABEL_MAX <= STORE_ACTION_LABEL_MAX,
               "a declared action fits its row and what the page reads back");

int actions_token(const cry_keys_t *keys, const char *comm_id, int index, time_t now,
                  char out[LINKTOK_TEXT_MAX])
{
    out[0] = '\0';
    if (index < 0)
        return -1;
    linktok_t t = {.kind = LINKTOK_ACTION, .arg = (uint32_t)index, .day = linktok_day(now)};
    if (snprintf(t.id, sizeof t.id, "%s", comm_id) >= (int)sizeof t.id ||
        linktok_make(keys->link, &t, out) != 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int actions_url(const cfg_t *cfg, const cry_keys_t *keys, const char *comm_id, int index,
                time_t now, char out[ACTIONS_URL_MAX])
{
    out[0] = '\0';
    char token[LINKTOK_TEXT_MAX];
    if (actions_token(keys, comm_id, index, now, token) != 0)
        return -1;
    /* as the unsubscribe link does: a base with a trailing slash would give "//a/" */
    const char *base = cfg->public_url ? cfg->public_url : "";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    int w = snprintf(out, ACTIONS_URL_MAX, "%.*s/a/%s", (int)blen, base, token);
    if (w < 0 || w >= ACTIONS_URL_MAX) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int actions_apply(const drv_env_t *env, PGconn *conn, const queue_job_t *job, cJSON *ctx,
                  act_list_t *declared, outcome_t *out)
{
    act_list_t own = {.n = 0};
    act_list_t *lp = declared ? declared : &own;
    lp->n = 0;
    if (!act_declared(job->message_type))
        return 0;
    char err[512];
    if (act_declare(job->message_type, ctx, lp, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "actions", err);
        return -1;
    }
    char buf[ACT_MAX][ACTIONS_URL_MAX]; /* 16 KiB: a worker's stack holds it */
    char *url[ACT_MAX];
    store_action_t rows[ACT_MAX];
    time_t now = time(NULL);
    for (int i = 0; i < lp->n; i++) {
        if (actions_url(env->cfg, env->keys, job->id, i, now, buf[i]) != 0) {
            outcome_fail(out, ERRC_INVALID_INPUT, 0, "actions",
                         "CRIER_PUBLIC_URL is too long for the action links");
            return -1;
        }
        url[i] = buf[i];
        rows[i] = (store_action_t){lp->a[i].action, lp->a[i].value, lp->a[i].label};
    }
    /* Stored before the send: a click can come as soon as the mail lands.
     * Stored also when there are none, so a retry's rendering leaves no
     * action of an earlier one behind. */
    if (store_actions_put(conn, job->id, rows, lp->n, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "actions", err);
        return -1;
    }
    if (act_context_set(ctx, job->message_type, lp, url) != 0) {
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the context");
        return -1;
    }
    return 0;
}
