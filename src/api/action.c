/* action: the action links (see action.h). */
#include "api/action.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "api/page.h"
#include "crypto/linktok.h"
#include "store/actions.h"
#include "store/db.h"
#include "template/actions.h"
#include "template/pages.h"
#include "util/buf.h"
#include "util/log.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

/* The channel an action link is clicked in: only email carries them. */
#define ACTION_CHANNEL "email"

/* A page of kind with heading and message as the answer with status. */
static void action_page(const api_t *api, http_answer_t *out, int status, pages_kind_t kind,
                        const char *heading, const char *message)
{
    cJSON *v = api_page_view(api);
    if (v && (!cJSON_AddStringToObject(v, "heading", heading) ||
              !cJSON_AddStringToObject(v, "message", message))) {
        cJSON_Delete(v);
        v = NULL;
    }
    api_page_answer(out, status, kind, v);
}

static void action_not_found(const api_t *api, http_answer_t *out)
{
    action_page(api, out, 404, PAGES_PROBLEM, "This link does not work",
                "It may be incomplete, or too old. Please reply to our email instead, and we "
                "will take it from there.");
}

/* The token of the path, verified: kind, signature, age and an index a
 * message can have. 0 with *t, or -1. */
static int action_token(const http_req_t *rq, linktok_t *t)
{
    const api_t *api = rq->ctx;
    const char *seg = http_req_param(rq, "token");
    if (!seg || linktok_read(api->app->keys.link, seg, strlen(seg), LINKTOK_ACTION, t) != 0)
        return -1;
    if (linktok_expired(t, time(NULL), (uint32_t)api->app->cfg->link_ttl_days))
        return -1;
    return t->arg < STORE_ACTIONS_MAX ? 0 : -1;
}

void api_action_get(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    linktok_t t;
    if (action_token(rq, &t) != 0) {
        action_not_found(api, out);
        return;
    }
    char err[512] = "";
    PGconn *conn = api_db_take(api, err, sizeof err);
    if (!conn) {
        action_page(api, out, 503, PAGES_PROBLEM, "Please try again later",
                    "We could not take your answer just now.");
        return;
    }
    store_answer_t r;
    int rc = strcmp(rq->method, "HEAD") == 0
                 ? store_action_peek(conn, t.id, (int)t.arg, &r, err, sizeof err)
                 : store_action_answer(conn, t.id, (int)t.arg, ACTION_CHANNEL, &r, err, sizeof err);
    int lost = rc != 0 && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc != 0) {
        if (!lost)
            log_error("api", "action_failed", "error", err, NULL);
        action_page(api, out, lost ? 503 : 500, PAGES_PROBLEM, "Please try again later",
                    "We could not take your answer just now.");
        return;
    }
    if (!r.found) {
        action_not_found(api, out);
        return;
    }
    if (r.recorded)
        log_info("api", "client_action", "communication_id", t.id, "action", r.action, NULL);
    char thanks[ACT_THANKS_MAX];
    act_thanks(r.action, r.label, thanks, sizeof thanks);
    action_page(api, out, 200, PAGES_ANSWERED, "Thank you", thanks);
}
