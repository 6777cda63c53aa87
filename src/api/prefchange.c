/* prefchange: one change of a client's preferences, the same on every path
 * (see prefchange.h). */
#include "api/prefchange.h"

#include "api/dbreply.h"
#include "channel/ch.h"
#include "crypto/crypto.h"
#include "engine/intake.h"
#include "engine/prefs.h"
#include "request/request.h"
#include "store/audit.h"
#include "store/db.h"
#include "util/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_prefs_publish(const api_t *api, PGconn *conn, const char *id)
{
    char err[512];
    const char *ids[] = {id};
    if (prefs_publish(api->app->prefs, conn, ids, 1, err, sizeof err) != 0)
        log_warn("api", "preference_cache_not_told", "error", err, NULL);
}

int api_prefs_apply(const api_t *api, const api_prefs_change_t *c, int *changed, char **before,
                    char **after, int *lost, char *err, size_t errlen)
{
    *changed = 0;
    *lost = 0;
    if (before)
        *before = NULL;
    if (after)
        *after = NULL;
    PGconn *conn = api_db_take(api, err, errlen);
    if (!conn) {
        *lost = 1;
        return -1;
    }
    int rc = db_begin(conn, err, errlen);
    if (rc == 0 && c->check_version) {
        /* under the lock the update takes too: a concurrent change waits
         * here and then sees the version this one leaves */
        long long version = 0;
        rc = store_client_version_lock(conn, c->client_id, &version, err, errlen);
        if (rc == 0 && (uint32_t)version != c->version)
            rc = API_PREFS_STALE;
    }
    if (rc == 0)
        rc = store_consent_context(conn, c->source, c->actor, err, errlen);
    if (rc == 0 && before)
        rc = store_prefs_json(conn, c->client_id, before, err, errlen);
    if (rc == 0)
        rc = store_prefs_update(conn, c->client_id, c->change, changed, err, errlen);
    if (rc == 0 && after)
        rc = store_prefs_json(conn, c->client_id, after, err, errlen);
    int end = db_end(conn, rc, err, errlen);
    if (rc == 0 && end != 0)
        rc = -1;
    if (rc < 0)
        *lost = db_conn_lost(conn);
    /* Once committed, before anything else is decided: a confirmation or
     * the next message must already be decided on the new preferences. */
    if (rc == 0 && *changed)
        api_prefs_publish(api, conn, c->client_id);
    db_pool_put(api->app->pool, conn);
    if (rc != 0) {
        *changed = 0;
        if (before) {
            free(*before);
            *before = NULL;
        }
        if (after) {
            free(*after);
            *after = NULL;
        }
    }
    return rc;
}

/* Words for the confirmation's templates, from the preferences as the API
 * shows them: "WhatsApp, then email", "23:00 to 07:00", "SMS". */
static const char *prefchange_channel_word(const char *ch)
{
    ch_id_t c;
    return ch_by_name(ch, &c) == 0 ? ch_label(c) : ch_label(CH_EMAIL);
}

static int prefchange_confirm_context(const cJSON *prefs, char **ctx_json)
{
    char channels[96] = "", quiet[32] = "", outs[64] = "";
    const cJSON *it;
    size_t at = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(prefs, "preferred_channels"))
    {
        if (!cJSON_IsString(it))
            continue;
        int w = snprintf(channels + at, sizeof channels - at, "%s%s", at ? ", then " : "",
                         prefchange_channel_word(it->valuestring));
        if (w > 0 && (size_t)w < sizeof channels - at)
            at += (size_t)w;
    }
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(prefs, "quiet_hours_start");
    const cJSON *qe = cJSON_GetObjectItemCaseSensitive(prefs, "quiet_hours_end");
    if (cJSON_IsString(qs) && cJSON_IsString(qe))
        snprintf(quiet, sizeof quiet, "%.5s to %.5s", qs->valuestring, qe->valuestring);
    at = 0;
    for (int ch = 0; ch < CH_N; ch++) {
        char key[32];
        snprintf(key, sizeof key, "opt_out_%s", ch_name((ch_id_t)ch));
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(prefs, key)))
            continue;
        int w = snprintf(outs + at, sizeof outs - at, "%s%s", at ? ", " : "",
                         prefchange_channel_word(ch_name((ch_id_t)ch)));
        if (w > 0 && (size_t)w < sizeof outs - at)
            at += (size_t)w;
    }
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(prefs, "timezone");
    cJSON *ctx = cJSON_CreateObject();
    int ok = ctx && cJSON_AddStringToObject(ctx, "channels_text", channels[0] ? channels : "email");
    if (ok && quiet[0])
        ok = cJSON_AddStringToObject(ctx, "quiet_hours_text", quiet) != NULL;
    if (ok && outs[0])
        ok = cJSON_AddStringToObject(ctx, "opt_outs_text", outs) != NULL;
    if (ok)
        ok = cJSON_AddStringToObject(ctx, "timezone",
                                     cJSON_IsString(tz) ? tz->valuestring : "UTC") != NULL;
    *ctx_json = ok ? cJSON_PrintUnformatted(ctx) : NULL;
    cJSON_Delete(ctx);
    return *ctx_json ? 0 : -1;
}

/* What the answer to a change is waiting for: the confirmation's intake. */
typedef struct prefchange_pending {
    http_pending_t *http;
    api_prefs_answer_fn answer;
    void *cls;
} prefchange_pending_t;

/* The intake's callback: the change is committed either way; a
 * confirmation that could not be accepted is NULL and logged. */
static void prefchange_confirmed(void *cls, intake_result_t *res)
{
    prefchange_pending_t *p = cls;
    char *confirmation = NULL;
    if (res->outcome == INTAKE_ACCEPTED || res->outcome == INTAKE_DUPLICATE) {
        confirmation = res->body;
        res->body = NULL;
    } else {
        log_warn("api", "preferences_confirmation_not_sent", "why",
                 res->why ? res->why : "refused by the intake", NULL);
    }
    intake_result_free(res);
    http_answer_t a;
    memset(&a, 0, sizeof a);
    p->answer(p->cls, confirmation, &a);
    http_resume(p->http, &a);
    free(p);
}

int api_prefs_confirm(const http_req_t *rq, const char *id, const char *prefs_json,
                      const char *actor, api_prefs_answer_fn answer, void *cls)
{
    const api_t *api = rq->ctx;
    cJSON *prefs = cJSON_Parse(prefs_json);
    char *ctx = NULL;
    int ok = prefs && prefchange_confirm_context(prefs, &ctx) == 0;
    cJSON_Delete(prefs);
    intake_job_t *job = ok ? intake_job_new() : NULL;
    prefchange_pending_t *p = job ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        cJSON_free(ctx);
        intake_job_free(job);
        log_warn("api", "preferences_confirmation_not_sent", "why", "out of memory", NULL);
        return 0;
    }
    req_comm_t *r = &job->req;
    snprintf(r->plan_id, sizeof r->plan_id, "%s", REQ_NO_PLAN);
    snprintf(r->client_id, sizeof r->client_id, "%s", id);
    snprintf(r->message_type, sizeof r->message_type, "preferences_updated");
    snprintf(r->urgency, sizeof r->urgency, "high");
    r->context_json = ctx; /* the job's now: freed with cJSON_free by req_free */
    cry_sha256_hex(ctx, strlen(ctx), job->request_hash);
    snprintf(job->actor, sizeof job->actor, "%s", actor ? actor : "");
    p->http = http_suspend(rq);
    if (!p->http) {
        free(p);
        intake_job_free(job);
        log_warn("api", "preferences_confirmation_not_sent", "why", "the server is stopping", NULL);
        return 0;
    }
    p->answer = answer;
    p->cls = cls;
    job->done = prefchange_confirmed;
    job->cls = p;
    intake_submit(api->intake, job);
    return 1;
}
