#include "api/comm_detail.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "channel/gsm7.h"
#include "store/comm_detail.h"
#include "store/db.h"
#include "store/store.h"
#include "template/catalog.h"
#include "template/check.h"
#include "template/live.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void api_comm_callbacks(const http_req_t *rq, http_answer_t *out)
{
    char id[37];
    if (api_comm_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "comm_callbacks_failed");
    if (!conn)
        return;
    char err[512] = "";
    char *json = NULL;
    int rc = store_comm_callbacks_json(conn, id, &json, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(((const api_t *)rq->ctx)->app->pool, conn);
    if (rc < 0)
        api_db_failed(out, lost, "comm_callbacks_failed", err);
    else if (rc > 0)
        http_answer_error(out, 404, "not_found", "no such communication");
    else
        http_answer_json(out, 200, json);
}

/* The request a preview renders: the stored context with the client's
 * name and the plan (what tpl_check_context reads). NULL on OOM or a
 * context that is not an object. */
static cJSON *detail_request(const store_comm_facts_t *f, const char *client_name)
{
    cJSON *req = cJSON_Parse(f->context_json ? f->context_json : "{}");
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        req = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(req, "client_name");
    cJSON_DeleteItemFromObjectCaseSensitive(req, "plan_id");
    if (!req || !cJSON_AddStringToObject(req, "client_name", client_name) ||
        !cJSON_AddStringToObject(req, "plan_id", f->plan_id)) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

/* Renders f's message on channel into o; 0, or -1 with err. */
static int detail_render(const tpl_catalog_t *c, const store_comm_facts_t *f, const char *channel,
                         const cJSON *ctx, cJSON *o, char *err, size_t errlen)
{
    if (strcmp(channel, "email") == 0) {
        tpl_email_t em = {0};
        if (tpl_render_email(c, f->message_type, ctx, &em, err, errlen) != 0)
            return -1;
        int ok = cJSON_AddStringToObject(o, "subject", em.subject) &&
                 cJSON_AddStringToObject(o, "text", em.text) &&
                 cJSON_AddStringToObject(o, "html", em.html);
        tpl_email_free(&em);
        return ok ? 0 : -1;
    }
    char *text = NULL;
    int rc = strcmp(channel, "sms") == 0
                 ? tpl_render_sms(c, f->message_type, ctx, &text, err, errlen)
                 : tpl_render_whatsapp_text(c, f->message_type, ctx, &text, err, errlen);
    if (rc != 0)
        return -1;
    int ok = cJSON_AddStringToObject(o, "text", text) != NULL;
    gsm7_count_t n;
    if (ok && strcmp(channel, "sms") == 0 && gsm7_count(text, strlen(text), &n) == 0) {
        char line[128];
        tpl_check_describe_sms(&n, line, sizeof line);
        ok = cJSON_AddStringToObject(o, "encoding", line) != NULL;
    }
    free(text);
    return ok ? 0 : -1;
}

void api_comm_preview(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    const cfg_t *cfg = api->app->cfg;
    char id[37];
    if (api_comm_id(rq, id, out) != 0)
        return;
    PGconn *conn = api_db_conn(rq, out, "comm_preview_failed");
    if (!conn)
        return;
    char err[512] = "";
    store_comm_facts_t f;
    store_client_t cl;
    memset(&cl, 0, sizeof cl);
    int rc = db_begin(conn, err, sizeof err);
    int found = rc == 0 ? store_comm_facts_load(conn, id, &f, err, sizeof err) : -1;
    if (found == 0)
        rc = store_client_load(conn, &api->app->keys, f.client_id, &cl, err, sizeof err) < 0 ? -1
                                                                                             : 0;
    else
        rc = found < 0 ? -1 : 0;
    /* the client's name leaves in the preview: on record like any read */
    if (rc == 0 && found == 0)
        rc = api_audit(rq, conn, "communication.preview", f.client_id, "{\"fields\": [\"name\"]}",
                       err, sizeof err);
    int ok = api_db_end(conn, rc, out, "comm_preview_failed", err, sizeof err) == 0;
    db_pool_put(api->app->pool, conn);
    if (!ok) {
        if (found == 0)
            store_comm_facts_free(&f);
        store_client_free(&cl);
        return;
    }
    if (found > 0) {
        http_answer_error(out, 404, "not_found", "no such communication");
        return;
    }
    const char *channel = f.channel[0] ? f.channel : "email";
    tpl_site_t site = {.brand_name = cfg->brand_name,
                       .support_email = cfg->support_email,
                       .physical_address = cfg->physical_address,
                       .public_url = cfg->public_url};
    cJSON *req = detail_request(&f, cl.name ? cl.name : "there");
    cJSON *ctx = req ? tpl_check_context(&site, req) : NULL;
    cJSON *o = cJSON_CreateObject();
    tpl_catalog_t *cat = tpl_live_acquire(api->app->templates);
    int done = ctx && o && cJSON_AddStringToObject(o, "channel", channel) &&
               cJSON_AddStringToObject(o, "template_version_sent",
                                       f.template_version[0] ? f.template_version : "") &&
               cJSON_AddStringToObject(o, "templates_version_now", tpl_catalog_version(cat));
    if (done && detail_render(cat, &f, channel, ctx, o, err, sizeof err) != 0) {
        done = 0;
        http_answer_error(out, 422, "render_failed", err);
    } else if (!done) {
        http_answer_error(out, 500, "internal_error", "out of memory");
    } else {
        http_answer_json(out, 200, cJSON_PrintUnformatted(o));
    }
    tpl_catalog_free(cat);
    cJSON_Delete(o);
    cJSON_Delete(ctx);
    cJSON_Delete(req);
    store_comm_facts_free(&f);
    store_client_free(&cl);
}
