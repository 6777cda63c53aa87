#include "api/webhooks.h"

#include "api/api.h"
#include "engine/prefs.h"
#include "channel/ch.h"
#include "channel/errclass.h"
#include "channel/twilio.h"
#include "channel/whatsapp.h"
#include "crypto/linktok.h"
#include "metrics/metrics.h"
#include "store/receipts.h"
#include "util/buf.h"
#include "util/log.h"
#include "webhook/form.h"
#include "webhook/signature.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The WhatsApp Cloud API as a provider, named after its channel in logs,
 * errors and receipts. */
#define WH_META CH_NAME_WHATSAPP

#define WH_URL_MAX     2048
#define WH_TWIML_MAX   2048
#define WH_WA_MAX_ITEM 1000 /* Meta batches at most 1000 updates per POST */
#define WH_ERR_MAX     512

/* The process state the API's handlers share. */
static app_t *wh_app(const http_req_t *rq)
{
    const api_t *api = rq->ctx;
    return api->app;
}

static const char wh_twiml_empty[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />";

static void wh_text(http_answer_t *out, const char *text)
{
    char *copy = strdup(text);
    if (!copy) {
        http_answer_error(out, 500, "internal_error", "out of memory");
        return;
    }
    http_answer_json(out, 200, copy);
}

/* Refuses a request that failed verification. The log names the provider
 * and the reason only: never the secret, the signature or the body. */
static void wh_refuse(http_answer_t *out, const char *provider, sig_reason_t why)
{
    if (why == SIG_UNCONFIGURED) {
        log_error("webhook", "webhook_unconfigured", "provider", provider, NULL);
        http_answer_error(out, 503, "webhook_unconfigured",
                          "this webhook's secret is not configured");
        return;
    }
    log_warn("webhook", "signature_refused", "provider", provider, "reason", sig_reason_name(why),
             NULL);
    http_answer_error(out, 403, "invalid_signature", "the request signature is not valid");
}

static int wh_configured(http_answer_t *out, const char *provider, const char *secret)
{
    if (secret && *secret)
        return 1;
    wh_refuse(out, provider, SIG_UNCONFIGURED);
    return 0;
}

/* ---- Twilio ------------------------------------------------------------ */

/* Parses and verifies a Twilio form POST. 0 with p filled, or -1 with out set. */
static int wh_twilio_verify(const http_req_t *rq, form_pairs_t *p, http_answer_t *out)
{
    const cfg_t *cfg = wh_app(rq)->cfg;
    const char *token = cfg->twilio_auth_token;
    if (!wh_configured(out, "twilio", token))
        return -1;
    char err[128];
    if (form_parse(p, rq->body, rq->body_len, NULL, err, sizeof err) != 0) {
        wh_refuse(out, "twilio", SIG_MALFORMED);
        return -1;
    }
    /* Twilio signs the URL it called: our public base and this path */
    const char *base = cfg->public_url ? cfg->public_url : "";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char url[WH_URL_MAX];
    int n = snprintf(url, sizeof url, "%.*s%s", (int)blen, base, rq->path);
    sig_reason_t why = SIG_INTERNAL;
    if (n < 0 || (size_t)n >= sizeof url ||
        !sig_twilio_valid(token, url, p, http_req_header(rq, "X-Twilio-Signature"), &why)) {
        if (n < 0 || (size_t)n >= sizeof url)
            why = SIG_MALFORMED;
        form_free(p);
        wh_refuse(out, "twilio", why);
        return -1;
    }
    return 0;
}

/* A positive integer code, 0 when absent or unreadable. */
static int wh_code(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return (*end == '\0' && v > 0 && v < 1000000000L) ? (int)v : 0;
}

static const char *wh_outcome_name(rcpt_outcome_t o)
{
    switch (o) {
    case RCPT_APPLIED:
        return "applied";
    case RCPT_DUPLICATE:
        return "duplicate";
    case RCPT_STALE:
        return "stale";
    case RCPT_UNKNOWN:
        return "unknown_id";
    }
    return "?";
}

/* A receipt that confirmed a delivery, once committed: the send-to-delivery
 * time (crm_delivery_time_seconds) and the seed's INFO line, which names
 * the message by its ids only. */
static void wh_confirmed(const rcpt_confirmed_t *c)
{
    if (!c->yes)
        return;
    double took = c->seconds > 0 ? c->seconds : 0;
    metrics_delivery_time(c->channel, took);
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", took);
    log_info("webhook", "delivery_confirmed", "communication_id", c->id, "plan_id", c->plan_id,
             "client_id", c->client_id, "message_type", c->message_type, "channel", c->channel,
             "delivery_time_s", secs, NULL);
}

/* Logs what became of each item of a committed write. */
static void wh_log_items(const char *provider, const rcpt_item_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        const rcpt_item_t *it = &items[i];
        if (it->kind == RCPT_ITEM_RECEIPT) {
            log_info("webhook", "receipt", "provider", it->receipt.provider, "status",
                     it->receipt.provider_status, "outcome", wh_outcome_name(it->outcome), NULL);
            wh_confirmed(&it->confirmed);
            continue;
        }
        log_info("webhook", "inbound", "provider", provider, "channel", it->inbound.channel,
                 "keyword", rcpt_keyword_name(it->inbound.keyword), "known_sender",
                 it->result.clients > 0 ? "true" : "false", "duplicate",
                 it->result.duplicate ? "true" : "false", NULL);
    }
}

/* Tells the preference cache of the opt-outs a STOP or START changed, once
 * they are committed. A cache not told keeps its entries for their TTL at
 * most, so a failure here is logged, not answered. */
static void wh_publish_prefs(const http_req_t *rq, const rcpt_item_t *items, int n)
{
    app_t *app = wh_app(rq);
    PGconn *conn = NULL;
    char err[WH_ERR_MAX] = "";
    for (int i = 0; i < n; i++) {
        const rcpt_inbound_result_t *r = &items[i].result;
        if (items[i].kind == RCPT_ITEM_RECEIPT || r->n_changed == 0)
            continue;
        if (!conn && !(conn = db_pool_get(app->pool, err, sizeof err)))
            break;
        const char *ids[RCPT_CHANGED_MAX];
        for (int k = 0; k < r->n_changed; k++)
            ids[k] = r->changed[k];
        if (prefs_publish(app->prefs, conn, ids, r->n_changed, err, sizeof err) != 0)
            break;
    }
    if (conn)
        db_pool_put(app->pool, conn);
    if (err[0])
        log_warn("webhook", "preference_cache_not_told", "error", err, NULL);
}

/* Stores items[0..n) in one transaction (store/receipts.h) and logs them.
 * The HTTP thread waits for the commit: the provider is answered 2xx only
 * once the request is durable. A failure answers 503 (the provider retries
 * later), and nothing of the request stays. 0, or -1 with out set. */
static int wh_store(const http_req_t *rq, const char *provider, rcpt_item_t *items, int n,
                    http_answer_t *out)
{
    char err[WH_ERR_MAX] = "";
    rcpt_write_t w = rcpt_write(wh_app(rq)->pool, &wh_app(rq)->keys, items, n, err, sizeof err);
    if (w == RCPT_WRITTEN) {
        wh_log_items(provider, items, n);
        wh_publish_prefs(rq, items, n);
        return 0;
    }
    if (w == RCPT_WRITE_UNAVAILABLE) {
        http_answer_error(out, 503, "database_unavailable", "the database is unavailable");
        return -1;
    }
    log_error("webhook", "webhook_store_failed", "error", err, NULL);
    http_answer_error(out, 503, w == RCPT_WRITE_LOST ? "database_unavailable" : "internal_error",
                      "the webhook could not be stored; retry later");
    return -1;
}

/* The receipt of a Twilio status callback; 0 when it names no message
 * (nothing to match: answered 200 so that it is not retried). */
static int wh_twilio_status_item(const form_pairs_t *p, rcpt_item_t *it)
{
    const char *sid = form_get(p, "MessageSid");
    if (!sid)
        sid = form_get(p, "SmsSid");
    if (!sid || !*sid)
        return 0;
    const char *status = form_get(p, "MessageStatus");
    if (!status)
        status = form_get(p, "SmsStatus");
    const char *from = form_get(p, "To");
    memset(it, 0, sizeof *it);
    it->kind = RCPT_ITEM_RECEIPT;
    it->receipt = (rcpt_receipt_t){
        .provider = "twilio",
        .channel = from && strncmp(from, "whatsapp:", 9) == 0 ? CH_NAME_WHATSAPP : CH_NAME_SMS,
        .provider_message_id = sid,
        .provider_status = status ? status : "",
        .status = rcpt_status_twilio(status),
        .provider_code = wh_code(form_get(p, "ErrorCode")),
    };
    if (it->receipt.provider_code)
        it->receipt.error_category = errc_name(twilio_classify(it->receipt.provider_code, 0));
    return 1;
}

void api_webhook_twilio_status(const http_req_t *rq, http_answer_t *out)
{
    form_pairs_t p;
    if (wh_twilio_verify(rq, &p, out) != 0)
        return;
    rcpt_item_t it;
    int n = wh_twilio_status_item(&p, &it);
    if (wh_store(rq, "twilio", &it, n, out) == 0)
        wh_text(out, wh_twiml_empty);
    form_free(&p);
}

/* The message of a Twilio inbound webhook; 0 when it is not one we can keep
 * (answered 200 so that it is not retried). */
static int wh_twilio_inbound_item(const form_pairs_t *p, rcpt_keyword_t keyword, rcpt_item_t *it)
{
    const char *sid = form_get(p, "MessageSid");
    const char *from = form_get(p, "From");
    if (!sid || !*sid || !from || !*from)
        return 0;
    memset(it, 0, sizeof *it);
    it->kind = RCPT_ITEM_INBOUND;
    it->inbound = (rcpt_inbound_t){
        .channel = strncmp(from, "whatsapp:", 9) == 0 ? CH_NAME_WHATSAPP : CH_NAME_SMS,
        .provider_message_id = sid,
        .from = from,
        .body = form_get(p, "Body"),
        .keyword = keyword,
    };
    return 1;
}

/* The HELP answer (carriers require one): who we are and where to ask. */
static int wh_twiml_help(buf_t *b, const cfg_t *cfg)
{
    char text[512];
    snprintf(text, sizeof text,
             "%s: reply STOP to stop messages, START to receive them again. Help: %s",
             cfg->brand_name ? cfg->brand_name : "", cfg->support_email ? cfg->support_email : "");
    int rc = buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>");
    for (const char *s = text; *s && rc == 0; s++) {
        switch (*s) {
        case '<':
            rc = buf_puts(b, "&lt;");
            break;
        case '>':
            rc = buf_puts(b, "&gt;");
            break;
        case '&':
            rc = buf_puts(b, "&amp;");
            break;
        default:
            rc = buf_putc(b, *s);
        }
    }
    return rc | buf_puts(b, "</Message></Response>");
}

void api_webhook_twilio_inbound(const http_req_t *rq, http_answer_t *out)
{
    form_pairs_t p;
    if (wh_twilio_verify(rq, &p, out) != 0)
        return;
    rcpt_keyword_t keyword = rcpt_keyword(form_get(&p, "Body"), form_get(&p, "OptOutType"));
    rcpt_item_t it;
    int n = wh_twilio_inbound_item(&p, keyword, &it);
    if (wh_store(rq, "twilio", &it, n, out) == 0) {
        if (keyword == RCPT_KW_HELP) {
            buf_t b;
            buf_init(&b, WH_TWIML_MAX);
            if (wh_twiml_help(&b, wh_app(rq)->cfg) == 0)
                http_answer_json(out, 200, buf_detach(&b));
            else
                http_answer_error(out, 500, "internal_error", "out of memory");
            buf_free(&b);
        } else {
            wh_text(out, wh_twiml_empty);
        }
    }
    form_free(&p);
}

/* ---- WhatsApp ---------------------------------------------------------- */

void api_webhook_whatsapp_verify(const http_req_t *rq, http_answer_t *out)
{
    const char *token = wh_app(rq)->cfg->whatsapp_verify_token;
    if (!wh_configured(out, WH_META, token))
        return;
    const char *answer = NULL;
    sig_reason_t why = SIG_INTERNAL;
    if (!sig_meta_handshake(token, http_req_query(rq, "hub.mode"),
                            http_req_query(rq, "hub.verify_token"),
                            http_req_query(rq, "hub.challenge"), &answer, &why)) {
        wh_refuse(out, WH_META, why);
        return;
    }
    wh_text(out, answer);
}

static const char *wh_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long wh_jtime(const cJSON *o, const char *key)
{
    const char *s = wh_jstr(o, key);
    if (!s)
        return 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    return *end == '\0' && v > 0 ? v : 0;
}

/* The receipt of a status update; 0 when it names no message. */
static int wh_wa_status(const cJSON *st, rcpt_item_t *it)
{
    const char *id = wh_jstr(st, "id");
    if (!id || !*id)
        return 0;
    const char *status = wh_jstr(st, "status");
    memset(it, 0, sizeof *it);
    it->kind = RCPT_ITEM_RECEIPT;
    rcpt_receipt_t *r = &it->receipt;
    *r = (rcpt_receipt_t){
        .provider = WH_META,
        .channel = CH_NAME_WHATSAPP,
        .provider_message_id = id,
        .provider_status = status ? status : "",
        .status = rcpt_status_whatsapp(status),
    };
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(st, "errors");
    const cJSON *e0 = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : NULL;
    const cJSON *code = e0 ? cJSON_GetObjectItemCaseSensitive(e0, "code") : NULL;
    if (cJSON_IsNumber(code) && code->valuedouble > 0 && code->valuedouble < 1e9) {
        r->provider_code = (int)code->valuedouble;
        r->error_category = errc_name(wa_classify(r->provider_code, -1, 0));
    }
    return 1;
}

/* The text of an inbound message: a text body or the title of a tapped
 * button or list row (what the client "said"); "" for media and the rest. */
static const char *wh_wa_text(const cJSON *msg)
{
    const char *type = wh_jstr(msg, "type");
    if (!type)
        return "";
    const cJSON *part = cJSON_GetObjectItemCaseSensitive(msg, type);
    if (strcmp(type, "text") == 0) {
        const char *b = wh_jstr(part, "body");
        return b ? b : "";
    }
    if (strcmp(type, "button") == 0) {
        const char *t = wh_jstr(part, "text");
        return t ? t : "";
    }
    if (strcmp(type, "interactive") == 0) {
        const cJSON *reply = cJSON_GetObjectItemCaseSensitive(part, "button_reply");
        if (!reply)
            reply = cJSON_GetObjectItemCaseSensitive(part, "list_reply");
        const char *t = wh_jstr(reply, "title");
        return t ? t : "";
    }
    return "";
}

/* What a tapped reply button, list row or template quick reply carries
 * (its id, or its payload): crier's action token when crier sent it. */
static const char *wh_wa_answer_token(const cJSON *msg)
{
    const char *type = wh_jstr(msg, "type");
    const cJSON *part = type ? cJSON_GetObjectItemCaseSensitive(msg, type) : NULL;
    if (type && strcmp(type, "button") == 0)
        return wh_jstr(part, "payload");
    if (type && strcmp(type, "interactive") == 0) {
        const cJSON *reply = cJSON_GetObjectItemCaseSensitive(part, "button_reply");
        if (!reply)
            reply = cJSON_GetObjectItemCaseSensitive(part, "list_reply");
        return wh_jstr(reply, "id");
    }
    return NULL;
}

/* The answer a tapped button gives, when its token is ours, unchanged and
 * not expired: anyone can post a button id, only crier can sign one. */
static void wh_wa_answer(const app_t *app, const cJSON *msg, rcpt_inbound_t *in)
{
    const char *tok = wh_wa_answer_token(msg);
    linktok_t t;
    if (!tok || linktok_read(app->keys.link, tok, strlen(tok), LINKTOK_ACTION, &t) != 0 ||
        linktok_expired(&t, time(NULL), (uint32_t)app->cfg->link_ttl_days))
        return;
    snprintf(in->answer_id, sizeof in->answer_id, "%s", t.id);
    in->answer_index = (int)t.arg;
}

/* The message a client sent; 0 when it names no message or no sender. */
static int wh_wa_message(const app_t *app, const cJSON *msg, rcpt_item_t *it)
{
    const char *id = wh_jstr(msg, "id");
    const char *from = wh_jstr(msg, "from");
    if (!id || !*id || !from || !*from)
        return 0;
    const char *text = wh_wa_text(msg);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(msg, "context");
    memset(it, 0, sizeof *it);
    it->kind = RCPT_ITEM_INBOUND;
    it->inbound = (rcpt_inbound_t){
        .channel = CH_NAME_WHATSAPP,
        .provider_message_id = id,
        .from = from,
        .body = text,
        .reply_to = wh_jstr(ctx, "id"),
        .sent_at = wh_jtime(msg, "timestamp"),
        /* WhatsApp has no STOP of its own; the same words are our app-level opt-out */
        .keyword = rcpt_keyword(text, NULL),
    };
    wh_wa_answer(app, msg, &it->inbound);
    if (it->inbound.answer_id[0])
        it->inbound.keyword = RCPT_KW_NONE; /* a button's title is an answer, never a keyword */
    return 1;
}

/* Walks entry[].changes[].value.{statuses,messages}[] in order, putting
 * what can be stored into items[] (at most max; *n gets how many). Returns
 * how many entries it saw in all, which the caller holds to WH_WA_MAX_ITEM;
 * it stops counting past max. */
static int wh_wa_items(const app_t *app, const cJSON *root, rcpt_item_t *items, int max, int *n)
{
    int seen = 0;
    *n = 0;
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, "entry");
    const cJSON *e, *ch, *it;
    cJSON_ArrayForEach(e, entry)
    {
        const cJSON *changes = cJSON_GetObjectItemCaseSensitive(e, "changes");
        cJSON_ArrayForEach(ch, changes)
        {
            const cJSON *value = cJSON_GetObjectItemCaseSensitive(ch, "value");
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(value, "statuses"))
            {
                if (++seen > max)
                    return seen;
                *n += wh_wa_status(it, &items[*n]);
            }
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(value, "messages"))
            {
                if (++seen > max)
                    return seen;
                *n += wh_wa_message(app, it, &items[*n]);
            }
        }
    }
    return seen;
}

void api_webhook_whatsapp_post(const http_req_t *rq, http_answer_t *out)
{
    const char *secret = wh_app(rq)->cfg->whatsapp_app_secret;
    if (!wh_configured(out, WH_META, secret))
        return;
    sig_reason_t why = SIG_INTERNAL;
    if (!sig_meta_valid(secret, rq->body, rq->body_len, http_req_header(rq, "X-Hub-Signature-256"),
                        &why)) {
        wh_refuse(out, WH_META, why);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        /* genuine but unreadable: retrying would not help, so 400 */
        http_answer_error(out, 400, "invalid_json", "the body is not a JSON object");
        return;
    }
    rcpt_item_t *items = calloc(WH_WA_MAX_ITEM, sizeof *items); /* owned */
    if (!items) {
        cJSON_Delete(root);
        http_answer_error(out, 500, "internal_error", "out of memory");
        return;
    }
    int n = 0;
    if (wh_wa_items(wh_app(rq), root, items, WH_WA_MAX_ITEM, &n) > WH_WA_MAX_ITEM) {
        /* more than Meta ever batches: not stored, and answered like a
         * failed write so that a genuine one is retried */
        char err[WH_ERR_MAX];
        snprintf(err, sizeof err, "whatsapp webhook: more than %d items", WH_WA_MAX_ITEM);
        log_error("webhook", "webhook_store_failed", "error", err, NULL);
        http_answer_error(out, 503, "internal_error",
                          "the webhook could not be stored; retry later");
    } else if (wh_store(rq, WH_META, items, n, out) == 0) {
        wh_text(out, "{}");
    }
    free(items);
    cJSON_Delete(root);
}
