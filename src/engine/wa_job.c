#include "engine/wa_job.h"

#include "channel/twilio.h"
#include "channel/whatsapp.h"
#include "engine/msg_job.h"
#include "store/db.h"
#include "template/catalog.h"
#include "util/buf.h"
#include "util/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WA_SANDBOX_FAIL_CODE 131026 /* "Message undeliverable" */

/* 1 when the client's customer-service window is open now. Any error reads
 * as closed: a template is allowed either way, free text is not. */
static int wa_window_open(PGconn *conn, const char *client_id)
{
    char err[256];
    const char *params[] = {client_id};
    PGresult *r = db_query(conn,
                           "SELECT COALESCE(whatsapp_window_until > now(), false)"
                           " FROM clients WHERE id = $1::uuid",
                           1, params, err, sizeof err);
    if (!r) {
        log_warn("whatsapp", "window_unknown", "error", err, NULL);
        return 0;
    }
    int open = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return open;
}

typedef struct wa_message {
    buf_t body;       /* owned: the request body for Meta */
    cJSON *record;    /* owned: the sandbox record without "to" and "status" */
    const char *type; /* "text" or "template" */
} wa_message_t;

/* Renders the message for the window state and builds its request body.
 * 0, or -1 with out failed. */
static int wa_build(const app_t *app, const queue_job_t *job, const msg_target_t *t, int open,
                    wa_message_t *m, email_outcome_t *out)
{
    char err[512];
    const char *to = t->client.phone;
    m->record = cJSON_CreateObject();
    if (!m->record) {
        msg_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory");
        return -1;
    }
    if (open) {
        char *text = NULL;
        m->type = "text";
        if (tpl_render_whatsapp_text(app->templates, job->message_type, t->ctx, &text, err,
                                     sizeof err) != 0) {
            msg_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
            return -1;
        }
        errc_t bad = wa_build_text(&m->body, to, text, job->id, err, sizeof err);
        int rc = cJSON_AddStringToObject(m->record, "body", text) ? 0 : -1;
        free(text);
        if (bad != ERRC_NONE || rc != 0) {
            msg_fail(out, bad != ERRC_NONE ? bad : ERRC_TRANSIENT, 0, "whatsapp",
                     bad != ERRC_NONE ? err : "out of memory");
            return -1;
        }
        return 0;
    }
    tpl_wa_template_t tp = {0};
    m->type = "template";
    if (tpl_render_whatsapp_template(app->templates, job->message_type, t->ctx, &tp, err,
                                     sizeof err) != 0) {
        msg_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
        return -1;
    }
    errc_t bad =
        wa_build_template(&m->body, to, tp.name, tp.language, (const char *const *)tp.params,
                          tp.n_params, job->id, err, sizeof err);
    cJSON *params = cJSON_CreateStringArray((const char *const *)tp.params, (int)tp.n_params);
    int rc = params && cJSON_AddStringToObject(m->record, "template", tp.name) &&
                     cJSON_AddStringToObject(m->record, "language", tp.language) &&
                     cJSON_AddItemToObject(m->record, "parameters", params)
                 ? 0
                 : -1;
    if (rc != 0 && !cJSON_GetObjectItemCaseSensitive(m->record, "parameters"))
        cJSON_Delete(params);
    tpl_wa_template_free(&tp);
    if (bad != ERRC_NONE || rc != 0) {
        msg_fail(out, bad != ERRC_NONE ? bad : ERRC_TRANSIENT, 0, "whatsapp",
                 bad != ERRC_NONE ? err : "out of memory");
        return -1;
    }
    return 0;
}

static void wa_sandbox(const app_t *app, const queue_job_t *job, const char *to, wa_message_t *m,
                       email_outcome_t *out)
{
    if (msg_sandbox_refuses(to)) {
        errc_t cat = wa_classify(WA_SANDBOX_FAIL_CODE, -1, 400);
        msg_fail(out, cat, WA_SANDBOX_FAIL_CODE, "sandbox",
                 "whatsapp 131026: message undeliverable");
        msg_set_detail(out, cJSON_Parse("{\"transport\":\"sandbox\",\"error_code\":131026}"),
                       "{\"transport\":\"sandbox\"}");
        return;
    }
    cJSON *request = cJSON_Parse(m->body.data ? m->body.data : "");
    if (!request || !cJSON_AddStringToObject(m->record, "to", to) ||
        !cJSON_AddStringToObject(m->record, "type", m->type) ||
        !cJSON_AddStringToObject(m->record, "status", "delivered") ||
        !cJSON_AddItemToObject(m->record, "request", request)) {
        if (request && !cJSON_GetObjectItemCaseSensitive(m->record, "request"))
            cJSON_Delete(request);
        msg_fail(out, ERRC_TRANSIENT, 0, "outbox", "cannot build the record");
        return;
    }
    msg_outbox_deliver(app->cfg, job, "whatsapp", m->record, out);
}

/* Builds the Cloud API send into call->req, or fails out. */
static void wa_live(const app_t *app, const wa_message_t *m, msg_call_t *call, email_outcome_t *out)
{
    const cfg_t *cfg = app->cfg;
    char path[256], err[256];
    if (wa_messages_path(cfg->whatsapp_api_version, cfg->whatsapp_phone_number_id, path,
                         sizeof path, err, sizeof err) != 0) {
        msg_fail(out, ERRC_AUTH_FAILURE, 0, "whatsapp", err);
        return;
    }
    buf_t auth;
    buf_init(&auth, 4096);
    if (wa_authorization(&auth, cfg->whatsapp_access_token) != 0) {
        buf_free(&auth);
        msg_fail(out, ERRC_AUTH_FAILURE, 0, "whatsapp", "the access token is unusable");
        return;
    }
    if (msg_http_request(cfg, cfg->whatsapp_api_base, path, "application/json", auth.data, &m->body,
                         call, out) == 0)
        snprintf(call->wa_type, sizeof call->wa_type, "%s", m->type);
    explicit_bzero(auth.data, auth.len);
    buf_free(&auth);
}

void wa_finish(msg_call_t *call, email_outcome_t *out)
{
    if (msg_call_answer(call, out) != 0)
        return; /* out says why */
    const tx_result_t *res = &call->res;
    wa_result_t wr;
    int ok = wa_parse_response(res->status, res->body, &wr);
    cJSON *d = cJSON_CreateObject();
    if (d) {
        cJSON_AddStringToObject(d, "transport", "whatsapp");
        cJSON_AddStringToObject(d, "type", call->wa_type);
        cJSON_AddNumberToObject(d, "http_status", wr.http_status);
        if (ok == 0) {
            cJSON_AddStringToObject(d, "wamid", wr.wamid);
            if (wr.message_status[0])
                cJSON_AddStringToObject(d, "message_status", wr.message_status);
        } else {
            cJSON_AddNumberToObject(d, "error_code", wr.error_code);
            cJSON_AddStringToObject(d, "message", wr.message);
        }
    }
    msg_set_detail(out, d, "{\"transport\":\"whatsapp\"}");
    if (ok == 0) {
        out->status = EMAIL_SENT;
        snprintf(out->message_id, sizeof out->message_id, "%s", wr.wamid);
        return;
    }
    char why[320];
    snprintf(why, sizeof why, "whatsapp %d (http %d): %s", wr.error_code, wr.http_status,
             wr.message);
    msg_fail(out, wr.category, wr.error_code, NULL, why);
    out->retry_after = wr.retry_after;
    if (wr.category == ERRC_RATE_LIMIT && res->retry_after[0])
        out->retry_after = twilio_retry_after_seconds(res->retry_after, time(NULL));
    if (wr.opt_out)
        out->signal = EMAIL_SIGNAL_OPT_OUT;
    /* Only free text can be outside the window; a template refused so is
     * a permanent failure for the rules, not a loop. */
    if (wr.outside_window && strcmp(call->wa_type, "text") == 0)
        out->signal = EMAIL_SIGNAL_WINDOW_CLOSED;
}

void wa_prepare(app_t *app, PGconn *conn, const queue_job_t *job, msg_call_t *call,
                email_outcome_t *out)
{
    email_outcome_init(out);
    msg_target_t t;
    wa_message_t m = {0};
    buf_init(&m.body, WA_BODY_MAX);
    if (msg_target_load(app, conn, job, &t, out) != 0)
        goto done;
    int open = wa_window_open(conn, job->client_id);
    if (wa_build(app, job, &t, open, &m, out) != 0)
        goto done;
    if (strcmp(app->cfg->transport_whatsapp, "live") == 0)
        wa_live(app, &m, call, out);
    else
        wa_sandbox(app, job, t.client.phone, &m, out);
done:
    cJSON_Delete(m.record);
    buf_free(&m.body);
    msg_target_free(&t);
}
