#include "driver/whatsapp.h"

#include "channel/twilio.h"
#include "channel/whatsapp.h"
#include "driver/actions.h"
#include "driver/sandbox.h"
#include "driver/target.h"
#include "store/receipts.h"
#include "template/actions.h"
#include "template/catalog.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WHATSAPP_SANDBOX_FAIL_CODE 131026 /* "Message undeliverable" */

static int whatsapp_live_on(const cfg_t *cfg)
{
    return strcmp(cfg->transport_whatsapp, "live") == 0;
}

static int whatsapp_set(const char *s)
{
    return s && s[0];
}

static int whatsapp_available(const cfg_t *cfg)
{
    return !whatsapp_live_on(cfg) || (whatsapp_set(cfg->whatsapp_phone_number_id) &&
                                      whatsapp_set(cfg->whatsapp_access_token));
}

/* Limited per business phone number: that is what Meta meters. */
static cfg_rate_t whatsapp_rate(const cfg_t *cfg, char *sender, size_t senderlen)
{
    snprintf(sender, senderlen, "%s", cfg->whatsapp_phone_number_id);
    return cfg->rate_whatsapp;
}

static tx_t *whatsapp_loop(const drv_env_t *env)
{
    return env->tx;
}

/* 1 when the client's customer-service window is open now. Any error reads
 * as closed: a template is allowed either way, free text is not. */
static int whatsapp_window_open(PGconn *conn, const char *client_id)
{
    char err[256];
    int open = 0;
    if (rcpt_window_open(conn, client_id, &open, err, sizeof err) != 0) {
        log_warn("whatsapp", "window_unknown", "error", err, NULL);
        return 0;
    }
    return open;
}

typedef struct whatsapp_message {
    buf_t body;       /* owned: the request body for Meta */
    cJSON *record;    /* owned: the sandbox record without "to" and "status" */
    const char *type; /* "text", "interactive" or "template" */
} whatsapp_message_t;

/* The message's actions as WhatsApp shows them: each one's title and
 * signed token (c[i].id points into tokens[i]), a reply button's id or a
 * quick reply's payload, which the webhook gets back when the client taps
 * it and turns into the client_action (api/webhooks.c). */
typedef struct whatsapp_answers {
    int n; /* 0 when the type offers none */
    char tokens[ACT_MAX][LINKTOK_TEXT_MAX];
    wa_choice_t c[ACT_MAX];
} whatsapp_answers_t;

/* The answers of the actions l that actions_apply declared; n 0 if a token
 * cannot be made (the message then goes without buttons). */
static void whatsapp_answers(const drv_env_t *env, const queue_job_t *job, const act_list_t *l,
                             whatsapp_answers_t *a)
{
    time_t now = time(NULL);
    a->n = 0;
    for (int i = 0; i < l->n; i++) {
        if (actions_token(env->keys, job->id, i, now, a->tokens[i]) != 0)
            return;
        a->c[i] = (wa_choice_t){a->tokens[i], l->a[i].label};
    }
    a->n = l->n;
}

/* The answers as reply buttons (a list past three) on the free text. 1 when
 * built, 0 when there are none or the text is too long to carry them (it
 * then goes as plain text, its reply hint still asking for a number), -1
 * with out failed. */
static int whatsapp_choices(const queue_job_t *job, const target_t *t, const whatsapp_answers_t *a,
                            const char *text, whatsapp_message_t *m, outcome_t *out)
{
    char err[512];
    if (a->n == 0 || a->n > WA_LIST_ROWS_MAX || text_utf8_chars(text) > WA_INTERACTIVE_MAX)
        return 0;
    errc_t bad = wa_build_choices(&m->body, t->client.phone, text, a->c, (size_t)a->n, job->id, err,
                                  sizeof err);
    if (bad != ERRC_NONE) {
        outcome_fail(out, bad, 0, "whatsapp", err);
        return -1;
    }
    m->type = "interactive";
    return 1;
}

/* Renders the message for the window state and builds its request body.
 * 0, or -1 with out failed. */
static int whatsapp_build(const drv_env_t *env, const queue_job_t *job, const target_t *t, int open,
                          const whatsapp_answers_t *a, whatsapp_message_t *m, outcome_t *out)
{
    char err[512];
    const char *to = t->client.phone;
    m->record = cJSON_CreateObject();
    if (!m->record) {
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory");
        return -1;
    }
    if (open) {
        char *text = NULL;
        m->type = "text";
        if (tpl_render_whatsapp_text(env->templates, job->message_type, t->ctx, &text, err,
                                     sizeof err) != 0) {
            outcome_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
            return -1;
        }
        int choices = whatsapp_choices(job, t, a, text, m, out);
        if (choices < 0) {
            free(text);
            return -1;
        }
        errc_t bad =
            choices ? ERRC_NONE : wa_build_text(&m->body, to, text, job->id, err, sizeof err);
        int rc = cJSON_AddStringToObject(m->record, "body", text) ? 0 : -1;
        free(text);
        if (bad != ERRC_NONE || rc != 0) {
            outcome_fail(out, bad != ERRC_NONE ? bad : ERRC_TRANSIENT, 0, "whatsapp",
                         bad != ERRC_NONE ? err : "out of memory");
            return -1;
        }
        return 0;
    }
    tpl_wa_template_t tp = {0};
    m->type = "template";
    if (tpl_render_whatsapp_template(env->templates, job->message_type, t->ctx, &tp, err,
                                     sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
        return -1;
    }
    /* the approved template's quick-reply buttons carry the actions' tokens,
     * as many as both have */
    const char *payloads[ACT_MAX];
    int n = a->n < tp.quick_replies ? a->n : tp.quick_replies;
    for (int i = 0; i < n; i++)
        payloads[i] = a->c[i].id;
    errc_t bad =
        wa_build_template(&m->body, to, tp.name, tp.language, (const char *const *)tp.params,
                          tp.n_params, payloads, (size_t)n, job->id, err, sizeof err);
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
        outcome_fail(out, bad != ERRC_NONE ? bad : ERRC_TRANSIENT, 0, "whatsapp",
                     bad != ERRC_NONE ? err : "out of memory");
        return -1;
    }
    return 0;
}

static void whatsapp_sandbox(const drv_env_t *env, const queue_job_t *job, const char *to,
                             whatsapp_message_t *m, outcome_t *out)
{
    if (sandbox_refuses(to)) {
        errc_t cat = wa_classify(WHATSAPP_SANDBOX_FAIL_CODE, -1, 400);
        outcome_fail(out, cat, WHATSAPP_SANDBOX_FAIL_CODE, "sandbox",
                     "whatsapp 131026: message undeliverable");
        outcome_set_detail_obj(out,
                               cJSON_Parse("{\"transport\":\"sandbox\",\"error_code\":131026}"),
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
        outcome_fail(out, ERRC_TRANSIENT, 0, "outbox", "cannot build the record");
        return;
    }
    sandbox_deliver(env->cfg, job->id, "whatsapp", m->record, out);
}

/* Builds the Cloud API send into call->req, or fails out. */
static void whatsapp_live(const drv_env_t *env, const whatsapp_message_t *m, call_t *call,
                          outcome_t *out)
{
    const cfg_t *cfg = env->cfg;
    char path[256], err[256];
    if (wa_messages_path(cfg->whatsapp_api_version, cfg->whatsapp_phone_number_id, path,
                         sizeof path, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_AUTH_FAILURE, 0, "whatsapp", err);
        return;
    }
    buf_t auth;
    buf_init(&auth, 4096);
    if (wa_authorization(&auth, cfg->whatsapp_access_token) != 0) {
        buf_free(&auth);
        outcome_fail(out, ERRC_AUTH_FAILURE, 0, "whatsapp", "the access token is unusable");
        return;
    }
    if (call_http_post(cfg->whatsapp_api_base, path, "application/json", auth.data, &m->body,
                       cfg->provider_timeout_ms, call, out) == 0)
        snprintf(call->note, sizeof call->note, "%s", m->type);
    explicit_bzero(auth.data, auth.len);
    buf_free(&auth);
}

static void whatsapp_finish(const call_t *call, outcome_t *out)
{
    if (call_answer(call, out) != 0)
        return; /* out says why */
    const tx_result_t *res = &call->res;
    wa_result_t wr;
    int ok = wa_parse_response(res->status, res->body, &wr);
    cJSON *d = cJSON_CreateObject();
    if (d) {
        cJSON_AddStringToObject(d, "transport", "whatsapp");
        cJSON_AddStringToObject(d, "type", call->note);
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
    outcome_set_detail_obj(out, d, "{\"transport\":\"whatsapp\"}");
    if (ok == 0) {
        out->status = OUTCOME_SENT;
        snprintf(out->message_id, sizeof out->message_id, "%s", wr.wamid);
        return;
    }
    char why[320];
    snprintf(why, sizeof why, "whatsapp %d (http %d): %s", wr.error_code, wr.http_status,
             wr.message);
    outcome_fail(out, wr.category, wr.error_code, NULL, why);
    out->retry_after = wr.retry_after;
    if (wr.category == ERRC_RATE_LIMIT && res->retry_after[0])
        out->retry_after = twilio_retry_after_seconds(res->retry_after, time(NULL));
    if (wr.opt_out)
        out->signal = OUTCOME_SIGNAL_OPT_OUT;
    /* Only free text (plain or with buttons) can be outside the window; a
     * template refused so is a permanent failure for the rules, not a loop. */
    if (wr.outside_window && strcmp(call->note, "template") != 0)
        out->signal = OUTCOME_SIGNAL_WINDOW_CLOSED;
}

static void whatsapp_prepare(void *state, const drv_env_t *env, PGconn *conn,
                             const queue_job_t *job, call_t *call, outcome_t *out)
{
    outcome_init(out);
    target_t t;
    whatsapp_message_t m = {0};
    buf_init(&m.body, WA_BODY_MAX);
    if (target_load(env, conn, job, &t, out) != 0)
        goto done;
    if (!target_allowed(&t.client, CH_NAME_WHATSAPP, out))
        goto done; /* a STOP or a withdrawn consent since the decision */
    /* the rows a tapped button or a numbered reply is matched against */
    act_list_t declared;
    if (actions_apply(env, conn, job, t.ctx, &declared, out) != 0)
        goto done; /* out says why */
    whatsapp_answers_t answers;
    whatsapp_answers(env, job, &declared, &answers);
    int open = whatsapp_window_open(conn, job->client_id);
    if (whatsapp_build(env, job, &t, open, &answers, &m, out) != 0)
        goto done;
    outcome_set_template(out, env->templates, job->message_type, CH_NAME_WHATSAPP);
    if (whatsapp_live_on(env->cfg))
        whatsapp_live(env, &m, call, out);
    else
        whatsapp_sandbox(env, job, t.client.phone, &m, out);
done:
    cJSON_Delete(m.record);
    buf_free(&m.body);
    target_free(&t);
}

const drv_t whatsapp_driver = {
    .id = CH_WHATSAPP,
    .provider = "whatsapp",
    .circuit = CIRC_WHATSAPP,
    .api = METRICS_API_WHATSAPP,
    .live = whatsapp_live_on,
    .available = whatsapp_available,
    .rate = whatsapp_rate,
    .prepare = whatsapp_prepare,
    .finish = whatsapp_finish,
    .loop = whatsapp_loop,
};
