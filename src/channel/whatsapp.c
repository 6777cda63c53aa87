#include "channel/whatsapp.h"

#include "channel/answer.h"
#include "util/redact.h"
#include "util/text.h"

#include "util/errmsg.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- building requests ----------------------------------------------------- */

static int is_set(const char *s)
{
    return s && *s;
}

static int all_in(const char *s, const char *set, size_t min, size_t max)
{
    size_t n = strlen(s);
    return n >= min && n <= max && strspn(s, set) == n;
}

#define DIGITS "0123456789"

int wa_messages_path(const char *version, const char *phone_number_id, char *out, size_t outlen,
                     char *err, size_t errlen)
{
    /* both go into the URL path: only "vNN.N" and a numeric id may pass */
    if (!version || version[0] != 'v' || !all_in(version + 1, DIGITS ".", 1, 8) ||
        !isdigit((unsigned char)version[1])) {
        errmsg_set(err, errlen, "whatsapp: the Graph API version is not like v21.0");
        return -1;
    }
    if (!phone_number_id || !all_in(phone_number_id, DIGITS, 1, 32)) {
        errmsg_set(err, errlen, "whatsapp: the phone number id is not numeric");
        return -1;
    }
    int n = snprintf(out, outlen, "/%s/%s/messages", version, phone_number_id);
    if (n < 0 || (size_t)n >= outlen) {
        errmsg_set(err, errlen, "whatsapp: the path does not fit");
        return -1;
    }
    return 0;
}

int wa_authorization(buf_t *out, const char *access_token)
{
    if (!is_set(access_token))
        return -1;
    for (const unsigned char *p = (const unsigned char *)access_token; *p; p++)
        if (*p <= 0x20 || *p > 0x7e) /* a CR/LF would forge headers */
            return -1;
    if (buf_puts(out, "Bearer ") != 0 || buf_puts(out, access_token) != 0)
        return -1;
    return 0;
}

/* Meta's recipient is the wa_id form: digits only, country code first. */
static int normalise_to(const char *to, char out[16], char *err, size_t errlen)
{
    char plus[20];
    if (!is_set(to) || strlen(to) > 16 ||
        snprintf(plus, sizeof plus, "%s%s", to[0] == '+' ? "" : "+", to) < 0 || !val_e164(plus)) {
        errmsg_set(err, errlen, "whatsapp: the recipient is not an E.164 number");
        return -1;
    }
    size_t n = strlen(plus + 1); /* at most 15 digits: val_e164 checked */
    if (n >= 16) {
        errmsg_set(err, errlen, "whatsapp: the recipient is not an E.164 number");
        return -1;
    }
    memcpy(out, plus + 1, n + 1);
    return 0;
}

static int text_ok(const char *s, size_t max_bytes)
{
    if (!is_set(s))
        return 0;
    size_t n = strnlen(s, max_bytes + 1);
    return n <= max_bytes && val_utf8(s, n);
}

/* The envelope both message types share, in the order of Meta's examples. */
static cJSON *envelope(const char *to, const char *type)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    if (!cJSON_AddStringToObject(root, "messaging_product", "whatsapp") ||
        !cJSON_AddStringToObject(root, "recipient_type", "individual") ||
        !cJSON_AddStringToObject(root, "to", to) || !cJSON_AddStringToObject(root, "type", type)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Prints root into out and frees it. */
static errc_t finish(cJSON *root, const char *callback_data, buf_t *out, char *err, size_t errlen)
{
    if (root && is_set(callback_data) &&
        !cJSON_AddStringToObject(root, "biz_opaque_callback_data", callback_data)) {
        cJSON_Delete(root);
        root = NULL;
    }
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        errmsg_set(err, errlen, "whatsapp: out of memory building the body");
        return ERRC_TRANSIENT;
    }
    size_t n = strlen(text);
    int rc = n <= WA_BODY_MAX ? buf_append(out, text, n) : -1;
    cJSON_free(text);
    if (rc != 0) {
        errmsg_set(err, errlen, "whatsapp: the body is over %d bytes", WA_BODY_MAX);
        return ERRC_INVALID_INPUT;
    }
    return ERRC_NONE;
}

static int callback_data_ok(const char *s)
{
    return !is_set(s) || text_ok(s, WA_CALLBACK_DATA_MAX);
}

errc_t wa_build_text(buf_t *out, const char *to, const char *text, const char *callback_data,
                     char *err, size_t errlen)
{
    char wa_to[16];
    if (normalise_to(to, wa_to, err, errlen) != 0)
        return ERRC_INVALID_INPUT;
    if (!text_ok(text, WA_TEXT_MAX_CHARS * 4) || text_utf8_chars(text) > WA_TEXT_MAX_CHARS) {
        errmsg_set(err, errlen, "whatsapp: the text is empty, not UTF-8 or over %d characters",
                   WA_TEXT_MAX_CHARS);
        return ERRC_INVALID_INPUT;
    }
    if (!callback_data_ok(callback_data)) {
        errmsg_set(err, errlen, "whatsapp: biz_opaque_callback_data is not UTF-8 or too long");
        return ERRC_INVALID_INPUT;
    }
    cJSON *root = envelope(wa_to, "text");
    cJSON *t = root ? cJSON_AddObjectToObject(root, "text") : NULL;
    if (!t || !cJSON_AddBoolToObject(t, "preview_url", 0) ||
        !cJSON_AddStringToObject(t, "body", text)) {
        cJSON_Delete(root);
        root = NULL;
    }
    return finish(root, callback_data, out, err, errlen);
}

/* s cut to max characters (UTF-8), the last one an ellipsis when cut: Meta
 * refuses a longer title rather than shortening it. */
static void wa_title(const char *s, size_t max, char *out, size_t outlen)
{
    size_t chars = text_utf8_chars(s), i = 0, n = 0;
    if (chars <= max) {
        snprintf(out, outlen, "%s", s);
        return;
    }
    for (; s[i] && n < max; i++) /* keep max - 1 characters: i stops at the max-th */
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++n == max)
            break;
    snprintf(out, outlen, "%.*s\u2026", (int)i, s);
}

errc_t wa_build_choices(buf_t *out, const char *to, const char *text, const wa_choice_t *c,
                        size_t n, const char *callback_data, char *err, size_t errlen)
{
    char wa_to[16];
    if (normalise_to(to, wa_to, err, errlen) != 0)
        return ERRC_INVALID_INPUT;
    if (!text_ok(text, WA_INTERACTIVE_MAX * 4) || text_utf8_chars(text) > WA_INTERACTIVE_MAX) {
        errmsg_set(err, errlen, "whatsapp: the text is empty, not UTF-8 or over %d characters",
                   WA_INTERACTIVE_MAX);
        return ERRC_INVALID_INPUT;
    }
    if (n == 0 || n > WA_LIST_ROWS_MAX || !callback_data_ok(callback_data)) {
        errmsg_set(err, errlen, "whatsapp: 1 to %d choices, and callback data Meta takes",
                   WA_LIST_ROWS_MAX);
        return ERRC_INVALID_INPUT;
    }
    for (size_t i = 0; i < n; i++)
        if (!c[i].id || !c[i].id[0] || strlen(c[i].id) > 256 || !text_ok(c[i].title, 1024)) {
            errmsg_set(err, errlen, "whatsapp: choice %zu has no usable id or title", i + 1);
            return ERRC_INVALID_INPUT;
        }
    int list = n > WA_BUTTONS_MAX;
    cJSON *root = envelope(wa_to, "interactive");
    cJSON *in = root ? cJSON_AddObjectToObject(root, "interactive") : NULL;
    cJSON *body = in ? cJSON_AddObjectToObject(in, "body") : NULL;
    cJSON *action = body ? cJSON_AddObjectToObject(in, "action") : NULL;
    int ok = action && cJSON_AddStringToObject(in, "type", list ? "list" : "button") &&
             cJSON_AddStringToObject(body, "text", text);
    cJSON *items = NULL;
    if (ok && list) {
        cJSON *sections = cJSON_AddArrayToObject(action, "sections");
        cJSON *section = cJSON_CreateObject();
        ok = cJSON_AddStringToObject(action, "button", "Choose") && sections && section &&
             cJSON_AddItemToArray(sections, section) &&
             cJSON_AddStringToObject(section, "title", "Options") &&
             (items = cJSON_AddArrayToObject(section, "rows")) != NULL;
        if (section && !cJSON_GetArrayItem(sections, 0))
            cJSON_Delete(section);
    } else if (ok) {
        ok = (items = cJSON_AddArrayToObject(action, "buttons")) != NULL;
    }
    for (size_t i = 0; ok && i < n; i++) {
        char title[4 * WA_ROW_TITLE_MAX + 4];
        wa_title(c[i].title, list ? WA_ROW_TITLE_MAX : WA_BUTTON_TITLE_MAX, title, sizeof title);
        cJSON *item = cJSON_CreateObject();
        cJSON *reply = item && !list ? cJSON_AddObjectToObject(item, "reply") : item;
        ok = reply && cJSON_AddItemToArray(items, item) &&
             (list || cJSON_AddStringToObject(item, "type", "reply")) &&
             cJSON_AddStringToObject(reply, "id", c[i].id) &&
             cJSON_AddStringToObject(reply, "title", title);
        if (item && !ok && cJSON_GetArraySize(items) <= (int)i)
            cJSON_Delete(item);
    }
    if (!ok) {
        cJSON_Delete(root);
        root = NULL;
    }
    return finish(root, callback_data, out, err, errlen);
}

static cJSON *template_object(const char *name, const char *language, const char *const *params,
                              size_t nparams)
{
    cJSON *tpl = cJSON_CreateObject();
    cJSON *lang = NULL;
    if (!tpl || !cJSON_AddStringToObject(tpl, "name", name) ||
        !(lang = cJSON_AddObjectToObject(tpl, "language")) ||
        !cJSON_AddStringToObject(lang, "policy", "deterministic") ||
        !cJSON_AddStringToObject(lang, "code", language)) {
        cJSON_Delete(tpl);
        return NULL;
    }
    if (nparams == 0)
        return tpl; /* a template without variables takes no components */
    cJSON *comps = cJSON_AddArrayToObject(tpl, "components");
    cJSON *body = cJSON_CreateObject();
    if (!comps || !body) {
        cJSON_Delete(body);
        cJSON_Delete(tpl);
        return NULL;
    }
    cJSON_AddItemToArray(comps, body);
    cJSON *list = NULL;
    if (!cJSON_AddStringToObject(body, "type", "body") ||
        !(list = cJSON_AddArrayToObject(body, "parameters"))) {
        cJSON_Delete(tpl);
        return NULL;
    }
    for (size_t i = 0; i < nparams; i++) {
        cJSON *p = cJSON_CreateObject();
        if (!p) {
            cJSON_Delete(tpl);
            return NULL;
        }
        cJSON_AddItemToArray(list, p);
        if (!cJSON_AddStringToObject(p, "type", "text") ||
            !cJSON_AddStringToObject(p, "text", params[i])) {
            cJSON_Delete(tpl);
            return NULL;
        }
    }
    return tpl;
}

/* Appends a button component per payload to the template's components:
 * {"type":"button","sub_type":"quick_reply","index":"i","parameters":
 * [{"type":"payload","payload":...}]}. 0, or -1 on OOM. */
static int quick_replies(cJSON *tpl, const char *const *payloads, size_t n)
{
    cJSON *comps = cJSON_GetObjectItemCaseSensitive(tpl, "components");
    if (!comps && !(comps = cJSON_AddArrayToObject(tpl, "components")))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char index[24];
        snprintf(index, sizeof index, "%zu", i);
        cJSON *b = cJSON_CreateObject(); /* owns what is added to it */
        cJSON *ps = b ? cJSON_AddArrayToObject(b, "parameters") : NULL;
        cJSON *p = ps ? cJSON_CreateObject() : NULL;
        if (p && !cJSON_AddItemToArray(ps, p)) {
            cJSON_Delete(p);
            p = NULL;
        }
        int ok = p && cJSON_AddStringToObject(b, "type", "button") &&
                 cJSON_AddStringToObject(b, "sub_type", "quick_reply") &&
                 cJSON_AddStringToObject(b, "index", index) &&
                 cJSON_AddStringToObject(p, "type", "payload") &&
                 cJSON_AddStringToObject(p, "payload", payloads[i]) &&
                 cJSON_AddItemToArray(comps, b);
        if (!ok) {
            cJSON_Delete(b);
            return -1;
        }
    }
    return 0;
}

errc_t wa_build_template(buf_t *out, const char *to, const char *name, const char *language,
                         const char *const *params, size_t nparams, const char *const *payloads,
                         size_t npayloads, const char *callback_data, char *err, size_t errlen)
{
    char wa_to[16];
    if (normalise_to(to, wa_to, err, errlen) != 0)
        return ERRC_INVALID_INPUT;
    if (!name || !all_in(name, "abcdefghijklmnopqrstuvwxyz" DIGITS "_", 1, 512)) {
        errmsg_set(err, errlen, "whatsapp: the template name is not lower case, digits and _");
        return ERRC_INVALID_INPUT;
    }
    /* "en", "en_US", "zh_Hant_HK", ... */
    if (!language || !isalpha((unsigned char)language[0]) ||
        !all_in(language, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", 2, 15)) {
        errmsg_set(err, errlen, "whatsapp: the template language is not a code like en_US");
        return ERRC_INVALID_INPUT;
    }
    if (nparams > WA_TEMPLATE_MAX_PARAMS || (nparams > 0 && !params)) {
        errmsg_set(err, errlen, "whatsapp: the template parameters are missing or more than %d",
                   WA_TEMPLATE_MAX_PARAMS);
        return ERRC_INVALID_INPUT;
    }
    for (size_t i = 0; i < nparams; i++) {
        /* Meta rejects empty parameters (132000-style errors) */
        if (!text_ok(params[i], WA_PARAM_MAX_BYTES)) {
            errmsg_set(err, errlen,
                       "whatsapp: template parameter %zu is empty, not UTF-8 or over %d bytes",
                       i + 1, WA_PARAM_MAX_BYTES);
            return ERRC_INVALID_INPUT;
        }
    }
    if (!callback_data_ok(callback_data)) {
        errmsg_set(err, errlen, "whatsapp: biz_opaque_callback_data is not UTF-8 or too long");
        return ERRC_INVALID_INPUT;
    }
    for (size_t i = 0; i < npayloads; i++)
        if (!payloads || !text_ok(payloads[i], 128)) {
            errmsg_set(err, errlen, "whatsapp: quick reply %zu has no payload of 1..128 bytes",
                       i + 1);
            return ERRC_INVALID_INPUT;
        }
    cJSON *root = envelope(wa_to, "template");
    cJSON *tpl = root ? template_object(name, language, params, nparams) : NULL;
    if (tpl && npayloads && quick_replies(tpl, payloads, npayloads) != 0) {
        cJSON_Delete(tpl);
        tpl = NULL;
    }
    if (!tpl) {
        cJSON_Delete(root);
        root = NULL;
    } else {
        cJSON_AddItemToObject(root, "template", tpl);
    }
    return finish(root, callback_data, out, err, errlen);
}

/* ---- classifying errors ------------------------------------------------- */

errc_t wa_classify(int code, int is_transient, int http_status)
{
    switch (code) {
    case 0:
    case 190: /* access token expired or invalid */
    case 3:
    case 10:     /* capability / permission denied */
    case 368:    /* policy block */
    case 131031: /* account locked */
    case 130497: /* country restricted */
        /* "config" rows: no message goes until someone fixes the account */
        return ERRC_AUTH_FAILURE;
    case 4:      /* app call rate */
    case 80007:  /* WABA rate */
    case 130429: /* throughput reached */
    case 131056: /* pair rate */
    case 131048: /* spam rate limit */
        return ERRC_RATE_LIMIT;
    case 131049: /* ecosystem engagement: wait a day */
    case 131000:
    case 131016:
    case 1:
    case 2:
    case 131057: /* account maintenance */
        return ERRC_TRANSIENT;
    case 131047: /* outside the 24 h window: a template is needed */
    case 131026: /* not a WhatsApp user, ToS not accepted, old app */
    case 131050: /* stopped marketing messages */
    case 130472: /* experiment group */
    case 132001: /* template does not exist */
    case 132015: /* template paused */
    case 132016: /* template disabled */
        return ERRC_PERMANENT;
    case 131008: /* required parameter missing */
    case 131009: /* parameter invalid */
    case 131051: /* unsupported message type */
    case 131052: /* media download */
    case 131053: /* media upload */
    case 132000: /* template parameter count mismatch */
        return ERRC_INVALID_INPUT;
    default:
        break;
    }
    if (code >= 200 && code <= 299) /* permission errors */
        return ERRC_AUTH_FAILURE;
    if (is_transient == 1)
        return ERRC_TRANSIENT;
    errc_t by_status = errc_from_http_status(http_status);
    if (by_status != ERRC_NONE)
        return by_status;
    if (http_status == 0)
        return ERRC_TRANSIENT; /* an unknown code in a webhook: one more try */
    return ERRC_PERMANENT;
}

/* ---- reading the answer ----------------------------------------------------- */

/* answer_ops_t's functions take the result as void *: answer_read knows no
 * result type. */
static void fail(void *res, errc_t c, const char *msg)
{
    wa_result_t *out = res;
    out->category = c;
    redact_copy_digits(out->message, sizeof out->message, msg);
}

static int parse_success(const cJSON *root, void *res)
{
    wa_result_t *out = res;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const cJSON *first = cJSON_IsArray(msgs) ? cJSON_GetArrayItem(msgs, 0) : NULL;
    const char *id = first ? answer_str(first, "id") : NULL;
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n >= sizeof out->wamid ||
        !all_in(id,
                "abcdefghijklmnopqrstuvwxyz"
                "ABCDEFGHIJKLMNOPQRSTUVWXYZ" DIGITS ".=_-+/:",
                1, sizeof out->wamid - 1)) {
        /* Meta took the request but we cannot tell which message it made;
         * the caller decides whether a retry risks a duplicate */
        fail(out, ERRC_TRANSIENT, "whatsapp: accepted, but the answer has no message id");
        return -1;
    }
    snprintf(out->wamid, sizeof out->wamid, "%s", id);
    const char *st = answer_str(first, "message_status");
    if (st && strlen(st) < sizeof out->message_status &&
        all_in(st, "abcdefghijklmnopqrstuvwxyz_", 1, sizeof out->message_status - 1))
        snprintf(out->message_status, sizeof out->message_status, "%s", st);
    out->category = ERRC_NONE;
    return 0;
}

static void parse_error(const cJSON *root, int http_status, void *res)
{
    wa_result_t *out = res;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!cJSON_IsObject(e)) {
        char text[96];
        snprintf(text, sizeof text, "whatsapp: HTTP %d without an error object", http_status);
        errc_t c = wa_classify(-1, -1, http_status);
        fail(out, c == ERRC_PERMANENT ? ERRC_TRANSIENT : c, text);
        return;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    int c = -1; /* -1: no code, which no table row matches */
    if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble <= INT_MAX)
        c = (int)code->valuedouble;
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(e, "is_transient");
    int transient = cJSON_IsBool(tr) ? cJSON_IsTrue(tr) : -1;
    out->error_code = c < 0 ? 0 : c;

    /* error_data.details says more than message for most codes */
    const char *msg = answer_str(e, "message");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(e, "error_data");
    const char *details = cJSON_IsObject(data) ? answer_str(data, "details") : NULL;
    char text[256];
    snprintf(text, sizeof text, "whatsapp %d: %s%s%s", out->error_code, msg ? msg : "(no message)",
             details ? ": " : "", details ? details : "");
    fail(out, wa_classify(c, transient, http_status), text);
}

/* An answer with no JSON object: the status alone. */
static errc_t wa_status_category(int http_status)
{
    return wa_classify(-1, -1, http_status);
}

static const answer_ops_t wa_answer = {.provider = "whatsapp",
                                       .max = WA_RESPONSE_MAX,
                                       .success = parse_success,
                                       .error = parse_error,
                                       .status_category = wa_status_category,
                                       .fail = fail};

int wa_parse_response(int http_status, const char *body, wa_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = http_status;
    out->retry_after = -1;
    if (answer_read(&wa_answer, http_status, body, out) == 0)
        return 0;
    if (out->error_code == 131056)
        out->retry_after = WA_PAIR_RETRY_SEC;
    else if (out->error_code == 131049)
        out->retry_after = WA_ENGAGEMENT_RETRY_SEC;
    out->outside_window = out->error_code == 131047;
    out->opt_out = out->error_code == 131050;
    return -1;
}
