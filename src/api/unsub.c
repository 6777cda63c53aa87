/* unsub: POST /u/{token}, the one-click unsubscribe (see unsub.h). */
#include "api/unsub.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "api/prefchange.h"
#include "store/audit.h"
#include "store/clients.h"
#include "store/db.h"
#include "util/log.h"
#include "webhook/form.h"
#include "webhook/formdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The only body RFC 8058 allows: the key/value pair of
 * List-Unsubscribe-Post. */
#define UNSUB_KEY   "List-Unsubscribe"
#define UNSUB_VALUE "One-Click"

/* Who opted out, in the consent ledger: the client, through the mailbox
 * provider's button. */
#define UNSUB_ACTOR "one-click"

/* Whatever a provider sends is far smaller. */
static const form_limits_t unsub_limits = {4096, 8, 64, 64};

int api_unsub_token(const http_req_t *rq, linktok_t *t)
{
    const api_t *api = rq->ctx;
    const char *tok = http_req_param(rq, "token");
    if (!tok || linktok_read(api->app->keys.link, tok, strlen(tok), LINKTOK_UNSUB, t) != 0)
        return -1;
    if (linktok_expired(t, time(NULL), (uint32_t)api->app->cfg->link_ttl_days))
        return -1;
    return 0;
}

int api_unsub_client(const http_req_t *rq, const linktok_t *t, char client_id[37], int *lost,
                     char *err, size_t errlen)
{
    const api_t *api = rq->ctx;
    *lost = 0;
    client_id[0] = '\0';
    PGconn *conn = api_db_take(api, err, errlen);
    if (!conn) {
        *lost = 1;
        return -1;
    }
    int rc = store_comm_client(conn, t->id, client_id, err, errlen);
    if (rc == 0)
        rc = store_client_state(conn, client_id, err, errlen);
    if (rc < 0)
        *lost = db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc > 0)
        client_id[0] = '\0';
    return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

/* 1 when rq's body is exactly the one pair, form-encoded or multipart. */
static int unsub_body_ok(const http_req_t *rq)
{
    const char *ctype = http_req_header(rq, "Content-Type");
    if (!ctype)
        return 0;
    while (*ctype == ' ')
        ctype++;
    static const char urlenc[] = "application/x-www-form-urlencoded";
    form_pairs_t f;
    char why[128];
    int rc;
    if (strncasecmp(ctype, urlenc, sizeof urlenc - 1) == 0 &&
        (ctype[sizeof urlenc - 1] == '\0' || ctype[sizeof urlenc - 1] == ';' ||
         ctype[sizeof urlenc - 1] == ' '))
        rc = form_parse(&f, rq->body, rq->body_len, &unsub_limits, why, sizeof why);
    else
        rc = formdata_parse(&f, ctype, rq->body, rq->body_len, &unsub_limits, why, sizeof why);
    int ok = rc == 0 && f.count == 1 && strcmp(f.pairs[0].key, UNSUB_KEY) == 0 &&
             strcmp(f.pairs[0].value, UNSUB_VALUE) == 0;
    form_free(&f);
    return ok;
}

/* Answers a step's failure (rc > 0: no such client, rc < 0: the database)
 * and returns 1; returns 0 when rc is 0 and nothing was answered. */
static int unsub_answered(http_answer_t *out, int rc, int lost, const char *err)
{
    if (rc > 0)
        http_answer_error(out, 404, "not_found", "no such unsubscribe link");
    else if (rc < 0)
        api_db_failed(out, lost, "unsubscribe_failed", err);
    return rc != 0;
}

void api_unsub_post(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    linktok_t t;
    if (api_unsub_token(rq, &t) != 0) {
        http_answer_error(out, 404, "not_found", "no such unsubscribe link");
        return;
    }
    if (!unsub_body_ok(rq)) {
        http_answer_error(out, 400, "invalid_body",
                          "the body must be List-Unsubscribe=One-Click, sent as "
                          "application/x-www-form-urlencoded or multipart/form-data");
        return;
    }
    char id[37], err[512] = "";
    int lost = 0;
    int rc = api_unsub_client(rq, &t, id, &lost, err, sizeof err);
    if (unsub_answered(out, rc, lost, err))
        return;
    store_prefs_change_t ch = {.opt_out = {[CH_EMAIL] = 1, [CH_SMS] = -1, [CH_WHATSAPP] = -1}};
    const api_prefs_change_t c = {
        .client_id = id,
        .change = &ch,
        .source = STORE_SOURCE_UNSUBSCRIBE_LINK,
        .actor = UNSUB_ACTOR,
    };
    int changed = 0;
    rc = api_prefs_apply(api, &c, &changed, NULL, NULL, &lost, err, sizeof err);
    if (unsub_answered(out, rc, lost, err))
        return;
    /* No confirmation: the client asked for no more email, and a message
     * by another channel about it is not what one click asked for. */
    log_info("api", changed ? "unsubscribed" : "unsubscribed_again", "client_id", id, NULL);
    char *body = strdup("Unsubscribed: you will get no more email from us.\n");
    if (!body) {
        http_answer_error(out, 500, "internal_error", "out of memory");
        return;
    }
    http_answer_json(out, 200, body);
}
