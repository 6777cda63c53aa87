#include "engine/msg_job.h"

#include "channel/outbox.h"
#include "template/context.h"
#include "util/buf.h"
#include "util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Outbox records hold one short message; far below this. */
#define MSG_RECORD_MAX ((size_t)256 * 1024)
#define MSG_URL_MAX    2048

void msg_fail(email_outcome_t *out, errc_t cat, int code, const char *stage, const char *detail)
{
    out->status = EMAIL_FAILED;
    out->category = cat == ERRC_NONE ? ERRC_TRANSIENT : cat;
    out->code = code;
    out->error[0] = '\0';
    if (stage)
        snprintf(out->error, sizeof out->error, "%s: ", stage);
    size_t used = strlen(out->error);
    text_copy_utf8(detail ? detail : "", out->error + used, sizeof out->error - used);
}

void msg_set_detail(email_outcome_t *out, cJSON *obj, const char *fallback)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    snprintf(out->detail_json, sizeof out->detail_json, "%s",
             text && strlen(text) < sizeof out->detail_json ? text : fallback);
    free(text);
    cJSON_Delete(obj);
}

int msg_target_load(app_t *app, PGconn *conn, const queue_job_t *job, msg_target_t *t,
                    email_outcome_t *out)
{
    const cfg_t *cfg = app->cfg;
    char err[512];
    memset(t, 0, sizeof *t);
    int rc = store_client_load(conn, &app->keys, job->client_id, &t->client, err, sizeof err);
    if (rc != 0) {
        /* A missing client is a data error; a database error is worth a retry. */
        msg_fail(out, rc == 1 ? ERRC_INVALID_INPUT : ERRC_TRANSIENT, 0, "client",
                 rc == 1 ? "not found" : err);
        return -1;
    }
    if (!t->client.phone || !t->client.phone[0]) {
        msg_fail(out, ERRC_INVALID_INPUT, 0, NULL, "client has no phone number");
        return -1;
    }
    tpl_site_t site = {
        .brand_name = cfg->brand_name,
        .support_email = cfg->support_email,
        .physical_address = cfg->physical_address,
        .public_url = cfg->public_url,
    };
    t->request_ctx = cJSON_Parse(job->context_json ? job->context_json : "{}");
    t->ctx = tpl_context_build(t->request_ctx, &site, t->client.name ? t->client.name : "there",
                               job->plan_id, job->id);
    if (!t->ctx) {
        msg_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the context");
        return -1;
    }
    return 0;
}

void msg_target_free(msg_target_t *t)
{
    cJSON_Delete(t->ctx);
    cJSON_Delete(t->request_ctx);
    store_client_free(&t->client);
    memset(t, 0, sizeof *t);
}

int msg_sandbox_refuses(const char *phone)
{
    static const char suffix[] = MSG_SANDBOX_FAIL_SUFFIX;
    size_t want = sizeof suffix - 1, have = 0;
    /* Compare digits only, from the end, so formatting never matters. */
    for (size_t i = phone ? strlen(phone) : 0; i > 0 && have < want; i--) {
        char c = phone[i - 1];
        if (c < '0' || c > '9')
            continue;
        if (c != suffix[want - 1 - have])
            return 0;
        have++;
    }
    return have == want;
}

void msg_outbox_deliver(const cfg_t *cfg, const queue_job_t *job, const char *kind,
                        const cJSON *record, email_outcome_t *out)
{
    char *text = cJSON_Print(record);
    if (!text || strlen(text) > MSG_RECORD_MAX) {
        free(text);
        msg_fail(out, ERRC_TRANSIENT, 0, "outbox", "cannot print the record");
        return;
    }
    char name[96], path[1024], err[256];
    snprintf(name, sizeof name, "%s.%s.json", job->id, kind);
    int rc =
        outbox_write(cfg->outbox_dir, name, text, strlen(text), path, sizeof path, err, sizeof err);
    free(text);
    if (rc != 0) {
        msg_fail(out, ERRC_TRANSIENT, 0, "outbox", err);
        return;
    }
    out->status = EMAIL_DELIVERED;
    cJSON *d = cJSON_CreateObject();
    if (d) {
        cJSON_AddStringToObject(d, "transport", "sandbox");
        cJSON_AddStringToObject(d, "file", path);
    }
    msg_set_detail(out, d, "{\"transport\":\"sandbox\"}");
}

void msg_call_clear(msg_call_t *call)
{
    tx_request_free(call->req);
    tx_result_clear(&call->res);
    memset(call, 0, sizeof *call);
}

int msg_http_request(const cfg_t *cfg, const char *base, const char *path, const char *content_type,
                     const char *auth_value, const buf_t *body, msg_call_t *call,
                     email_outcome_t *out)
{
    char url[MSG_URL_MAX];
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--; /* a configured base may end in "/"; the path starts with one */
    int n = snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path);
    if (n < 0 || (size_t)n >= sizeof url) {
        msg_fail(out, ERRC_INVALID_INPUT, 0, "transport", "the API URL is too long");
        return -1;
    }
    tx_request_t *req =
        tx_http_new("POST", url, body->data ? body->data : "", body->len, cfg->provider_timeout_ms);
    char ctype[96], auth[1024];
    snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
    n = snprintf(auth, sizeof auth, "Authorization: %s", auth_value);
    int rc = req ? 0 : -1;
    rc |= rc == 0 ? tx_http_add_header(req, ctype) : 0;
    rc |= rc == 0 ? tx_http_add_header(req, "Accept: application/json") : 0;
    rc |= rc == 0 && n > 0 && (size_t)n < sizeof auth ? tx_http_set_auth(req, auth) : -1;
    explicit_bzero(auth, sizeof auth);
    if (rc != 0) {
        tx_request_free(req);
        msg_fail(out, ERRC_TRANSIENT, 0, "transport", "cannot build the request");
        return -1;
    }
    call->req = req;
    return 0;
}

int msg_call_answer(const msg_call_t *call, email_outcome_t *out)
{
    if (!call->submitted) {
        msg_fail(out, ERRC_TRANSIENT, 0, "transport", "cannot submit the request");
        return -1;
    }
    const tx_result_t *res = &call->res;
    if (res->err != TX_OK) {
        char why[320];
        snprintf(why, sizeof why, "%s: %s", tx_err_name(res->err), res->text);
        msg_fail(out, ERRC_TRANSIENT, 0, "transport", why);
        return -1;
    }
    out->answered = 1;
    return 0;
}
