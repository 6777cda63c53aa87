#include "api/webhooks.h"

#include "api/api.h"
#include "channel/errclass.h"
#include "channel/twilio.h"
#include "channel/whatsapp.h"
#include "store/db.h"
#include "store/receipts.h"
#include "util/buf.h"
#include "util/log.h"
#include "webhook/form.h"
#include "webhook/signature.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- one transaction on a pooled connection ---------------------------- */

typedef int (*wh_work_fn)(PGconn *conn, const http_req_t *rq, void *arg, char *err, size_t errlen);

/* Runs fn between BEGIN and COMMIT. A failure answers 503 (the provider
 * retries later) and rolls back, so nothing of the request stays. */
static int wh_transact(const http_req_t *rq, wh_work_fn fn, void *arg, http_answer_t *out)
{
    char err[WH_ERR_MAX] = "";
    PGconn *conn = db_pool_get(wh_app(rq)->pool, err, sizeof err);
    if (!conn || db_ensure(conn) != 0) {
        if (conn)
            db_pool_put(wh_app(rq)->pool, conn);
        http_answer_error(out, 503, "database_unavailable", "the database is unavailable");
        return -1;
    }
    int rc = db_exec(conn, "BEGIN", err, sizeof err);
    if (rc == 0)
        rc = fn(conn, rq, arg, err, sizeof err);
    if (rc == 0)
        rc = db_exec(conn, "COMMIT", err, sizeof err);
    if (rc != 0) {
        char ignored[64];
        int lost = db_conn_lost(conn);
        if (!lost)
            (void)db_exec(conn, "ROLLBACK", ignored, sizeof ignored);
        log_error("webhook", "webhook_store_failed", "error", err, NULL);
        http_answer_error(out, 503, lost ? "database_unavailable" : "internal_error",
                          "the webhook could not be stored; retry later");
    }
    db_pool_put(wh_app(rq)->pool, conn);
    return rc;
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

static int wh_receipt(PGconn *conn, rcpt_receipt_t *r, char *err, size_t errlen)
{
    rcpt_outcome_t o;
    if (rcpt_apply(conn, r, &o, err, errlen) != 0)
        return -1;
    log_info("webhook", "receipt", "provider", r->provider, "status", r->provider_status, "outcome",
             wh_outcome_name(o), NULL);
    return 0;
}

static int wh_twilio_status_fn(PGconn *conn, const http_req_t *rq, void *arg, char *err,
                               size_t errlen)
{
    (void)rq;
    const form_pairs_t *p = arg;
    const char *sid = form_get(p, "MessageSid");
    if (!sid)
        sid = form_get(p, "SmsSid");
    if (!sid || !*sid)
        return 0; /* nothing to match; answered 200 so it is not retried */
    const char *status = form_get(p, "MessageStatus");
    if (!status)
        status = form_get(p, "SmsStatus");
    const char *from = form_get(p, "To");
    rcpt_receipt_t r = {
        .provider = "twilio",
        .channel = from && strncmp(from, "whatsapp:", 9) == 0 ? "whatsapp" : "sms",
        .provider_message_id = sid,
        .provider_status = status ? status : "",
        .status = rcpt_status_twilio(status),
        .provider_code = wh_code(form_get(p, "ErrorCode")),
    };
    if (r.provider_code)
        r.error_category = errc_name(twilio_classify(r.provider_code, 0));
    return wh_receipt(conn, &r, err, errlen);
}

void api_webhook_twilio_status(const http_req_t *rq, http_answer_t *out)
{
    form_pairs_t p;
    if (wh_twilio_verify(rq, &p, out) != 0)
        return;
    if (wh_transact(rq, wh_twilio_status_fn, &p, out) == 0)
        wh_text(out, wh_twiml_empty);
    form_free(&p);
}

typedef struct wh_inbound_arg {
    const form_pairs_t *p;
    rcpt_keyword_t keyword;
} wh_inbound_arg_t;

static int wh_twilio_inbound_fn(PGconn *conn, const http_req_t *rq, void *arg, char *err,
                                size_t errlen)
{
    wh_inbound_arg_t *a = arg;
    const char *sid = form_get(a->p, "MessageSid");
    const char *from = form_get(a->p, "From");
    if (!sid || !*sid || !from || !*from)
        return 0; /* not a message we can keep; answered 200 so it is not retried */
    rcpt_inbound_t m = {
        .channel = strncmp(from, "whatsapp:", 9) == 0 ? "whatsapp" : "sms",
        .provider_message_id = sid,
        .from = from,
        .body = form_get(a->p, "Body"),
        .keyword = a->keyword,
    };
    rcpt_inbound_result_t res;
    if (rcpt_inbound(conn, &wh_app(rq)->keys, &m, &res, err, errlen) != 0)
        return -1;
    log_info("webhook", "inbound", "provider", "twilio", "channel", m.channel, "keyword",
             rcpt_keyword_name(m.keyword), "known_sender", res.clients > 0 ? "true" : "false",
             "duplicate", res.duplicate ? "true" : "false", NULL);
    return 0;
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
    wh_inbound_arg_t a = {
        .p = &p,
        .keyword = rcpt_keyword(form_get(&p, "Body"), form_get(&p, "OptOutType")),
    };
    if (wh_transact(rq, wh_twilio_inbound_fn, &a, out) == 0) {
        if (a.keyword == RCPT_KW_HELP) {
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
    if (!wh_configured(out, "whatsapp", token))
        return;
    const char *answer = NULL;
    sig_reason_t why = SIG_INTERNAL;
    if (!sig_meta_handshake(token, http_req_query(rq, "hub.mode"),
                            http_req_query(rq, "hub.verify_token"),
                            http_req_query(rq, "hub.challenge"), &answer, &why)) {
        wh_refuse(out, "whatsapp", why);
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

static int wh_wa_status(PGconn *conn, const cJSON *st, char *err, size_t errlen)
{
    const char *id = wh_jstr(st, "id");
    if (!id || !*id)
        return 0;
    const char *status = wh_jstr(st, "status");
    rcpt_receipt_t r = {
        .provider = "whatsapp",
        .channel = "whatsapp",
        .provider_message_id = id,
        .provider_status = status ? status : "",
        .status = rcpt_status_whatsapp(status),
    };
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(st, "errors");
    const cJSON *e0 = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : NULL;
    const cJSON *code = e0 ? cJSON_GetObjectItemCaseSensitive(e0, "code") : NULL;
    if (cJSON_IsNumber(code) && code->valuedouble > 0 && code->valuedouble < 1e9) {
        r.provider_code = (int)code->valuedouble;
        r.error_category = errc_name(wa_classify(r.provider_code, -1, 0));
    }
    return wh_receipt(conn, &r, err, errlen);
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

static int wh_wa_message(PGconn *conn, const http_req_t *rq, const cJSON *msg, char *err,
                         size_t errlen)
{
    const char *id = wh_jstr(msg, "id");
    const char *from = wh_jstr(msg, "from");
    if (!id || !*id || !from || !*from)
        return 0;
    const char *text = wh_wa_text(msg);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(msg, "context");
    rcpt_inbound_t m = {
        .channel = "whatsapp",
        .provider_message_id = id,
        .from = from,
        .body = text,
        .reply_to = wh_jstr(ctx, "id"),
        .sent_at = wh_jtime(msg, "timestamp"),
        /* WhatsApp has no STOP of its own; the same words are our app-level opt-out */
        .keyword = rcpt_keyword(text, NULL),
    };
    rcpt_inbound_result_t res;
    if (rcpt_inbound(conn, &wh_app(rq)->keys, &m, &res, err, errlen) != 0)
        return -1;
    log_info("webhook", "inbound", "provider", "whatsapp", "channel", "whatsapp", "keyword",
             rcpt_keyword_name(m.keyword), "known_sender", res.clients > 0 ? "true" : "false",
             "duplicate", res.duplicate ? "true" : "false", NULL);
    return 0;
}

/* Walks entry[].changes[].value.{statuses,messages}[], at most
 * WH_WA_MAX_ITEM items in all. */
static int wh_wa_fn(PGconn *conn, const http_req_t *rq, void *arg, char *err, size_t errlen)
{
    const cJSON *root = arg;
    int items = 0;
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
                if (++items > WH_WA_MAX_ITEM || wh_wa_status(conn, it, err, errlen) != 0)
                    goto fail;
            }
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(value, "messages"))
            {
                if (++items > WH_WA_MAX_ITEM || wh_wa_message(conn, rq, it, err, errlen) != 0)
                    goto fail;
            }
        }
    }
    return 0;
fail:
    if (items > WH_WA_MAX_ITEM)
        snprintf(err, errlen, "whatsapp webhook: more than %d items", WH_WA_MAX_ITEM);
    return -1;
}

void api_webhook_whatsapp_post(const http_req_t *rq, http_answer_t *out)
{
    const char *secret = wh_app(rq)->cfg->whatsapp_app_secret;
    if (!wh_configured(out, "whatsapp", secret))
        return;
    sig_reason_t why = SIG_INTERNAL;
    if (!sig_meta_valid(secret, rq->body, rq->body_len, http_req_header(rq, "X-Hub-Signature-256"),
                        &why)) {
        wh_refuse(out, "whatsapp", why);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        /* genuine but unreadable: retrying would not help, so 400 */
        http_answer_error(out, 400, "invalid_json", "the body is not a JSON object");
        return;
    }
    if (wh_transact(rq, wh_wa_fn, root, out) == 0)
        wh_text(out, "{}");
    cJSON_Delete(root);
}
