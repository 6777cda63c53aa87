/* request: POST /v1/communications bodies.
 *
 * The checks run from the cheapest and most global to the most specific:
 * encoding, nesting, syntax, array sizes, then field by field. Messages name
 * the field and the rule, never the value: values may be addresses or phone
 * numbers, and error texts end up in logs. */
#include "request/request.h"
#include "channel/ch.h"

#include "template/catalog.h"
#include "util/base64.h"
#include "util/buf.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQ_PATH_MAX 160 /* longest field path quoted in a message */
#define REQ_KEY_MAX  48  /* longest key quoted in a path */

static const char *const req_urgencies[] = {"critical", "high", "normal", "low"};
static const char *const req_channels[] = {CH_NAME_EMAIL, CH_NAME_SMS, CH_NAME_WHATSAPP};

static int req_fail(req_error_t *err, req_err_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int req_fail(req_error_t *err, req_err_t kind, const char *fmt, ...)
{
    err->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int req_field(req_error_t *err, const char *fmt, ...)
{
    err->kind = REQ_BAD_FIELD;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int req_one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

/* Characters (code points) of valid UTF-8 text. */
static size_t req_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static int req_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* One pass over the raw text before cJSON sees it: cJSON recurses once per
 * level, so depth must be bounded first; and it accepts raw control
 * characters in strings and silently cuts strings at an escaped NUL, both
 * of which would let a value change meaning between here and its use. */
static int req_prescan(const char *body, size_t len, req_error_t *err)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (in_string) {
            if (c == '\\') {
                if (i + 5 < len && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0)
                    return req_fail(err, REQ_BAD_JSON, "NUL characters (\\u0000) are not accepted");
                i++; /* the escaped character cannot end the string */
            } else if (c == '"') {
                in_string = 0;
            } else if (c < 0x20) {
                return req_fail(err, REQ_BAD_JSON, "control character inside a string at byte %zu",
                                i);
            }
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > REQ_MAX_DEPTH)
                return req_fail(err, REQ_TOO_DEEP, "JSON nested deeper than %d levels",
                                REQ_MAX_DEPTH);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        } else if (c == '\0') {
            return req_fail(err, REQ_BAD_JSON, "NUL byte in the body");
        }
    }
    return 0;
}

/* Appends ".key" (or "key" at the root) to path, cutting long keys. */
static size_t req_path_key(char *path, size_t plen, const char *key)
{
    int n = snprintf(path + plen, REQ_PATH_MAX - plen, "%s%.*s", plen ? "." : "", REQ_KEY_MAX,
                     key ? key : "");
    if (n < 0)
        return plen;
    return plen + (size_t)n < REQ_PATH_MAX ? plen + (size_t)n : REQ_PATH_MAX - 1;
}

static size_t req_path_index(char *path, size_t plen, int i)
{
    int n = snprintf(path + plen, REQ_PATH_MAX - plen, "[%d]", i);
    if (n < 0)
        return plen;
    return plen + (size_t)n < REQ_PATH_MAX ? plen + (size_t)n : REQ_PATH_MAX - 1;
}

/* Every array anywhere in the body is bounded, so that no field (context
 * included) can make later stages loop over an unbounded list. Recursion is
 * bounded by req_prescan's depth limit. */
static int req_check_arrays(const cJSON *node, char *path, size_t plen, req_error_t *err)
{
    if (cJSON_IsArray(node)) {
        int i = 0;
        for (const cJSON *c = node->child; c; c = c->next, i++) {
            if (i >= REQ_MAX_ARRAY)
                return req_field(err, "%s: array too long", plen ? path : "body");
            size_t l = req_path_index(path, plen, i);
            if (req_check_arrays(c, path, l, err) != 0)
                return -1;
            path[plen] = '\0';
        }
    } else if (cJSON_IsObject(node)) {
        for (const cJSON *c = node->child; c; c = c->next) {
            size_t l = req_path_key(path, plen, c->string);
            if (req_check_arrays(c, path, l, err) != 0)
                return -1;
            path[plen] = '\0';
        }
    }
    return 0;
}

/* Context strings a template may render into a link (href) must be links
 * the recipient can safely follow: HTML escaping keeps "javascript:" and
 * "data:" intact. A value is a link by its key (val_url_key); the elements
 * of an array take the array's key. Recursion is bounded by req_prescan's
 * depth limit. */
static int req_check_urls(const cJSON *node, int is_url, char *path, size_t plen, req_error_t *err)
{
    if (cJSON_IsString(node)) {
        if (is_url && !val_link_url(node->valuestring))
            return req_field(err, "%s: only http, https and mailto URLs are accepted", path);
    } else if (cJSON_IsArray(node)) {
        int i = 0;
        for (const cJSON *c = node->child; c; c = c->next, i++) {
            size_t l = req_path_index(path, plen, i);
            if (req_check_urls(c, is_url, path, l, err) != 0)
                return -1;
            path[plen] = '\0';
        }
    } else if (cJSON_IsObject(node)) {
        for (const cJSON *c = node->child; c; c = c->next) {
            size_t l = req_path_key(path, plen, c->string);
            if (req_check_urls(c, val_url_key(c->string), path, l, err) != 0)
                return -1;
            path[plen] = '\0';
        }
    }
    return 0;
}

/* Looks up an optional string member. Returns 1 with *out set, 0 when absent
 * or null, -1 (err set) on a type mismatch. */
static int req_opt_string(const cJSON *obj, const char *key, const char *path, const char **out,
                          req_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return req_field(err, "%s: must be a string", path);
    *out = v->valuestring;
    return 1;
}

static int req_required_string(const cJSON *obj, const char *key, const char **out,
                               req_error_t *err)
{
    int rc = req_opt_string(obj, key, key, out, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return req_field(err, "%s: required", key);
    return 0;
}

int req_uuid_lower(const char *s, char out[37])
{
    if (!val_uuid(s))
        return -1;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    out[36] = '\0';
    return 0;
}

int req_idempotency_key_ok(const char *s)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* BCP 47 as far as crier needs it: a 2-3 letter language, then subtags of
 * 2-8 letters or digits ("en", "pt-BR", "zh-Hant-TW"). */
static int req_locale_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > REQ_LOCALE_MAX)
        return 0;
    size_t i = 0;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        i++;
    if (i < 2 || i > 3)
        return 0;
    while (i < n) {
        if (s[i++] != '-')
            return 0;
        size_t start = i;
        while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                         (s[i] >= '0' && s[i] <= '9')))
            i++;
        if (i - start < 2 || i - start > 8)
            return 0;
    }
    return 1;
}

static int req_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* type "/" subtype, both RFC 9110 tokens; parameters are not accepted since
 * the content type is copied into a MIME header as is. */
static int req_media_type_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 127)
        return 0;
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || slash[1] == '\0')
        return 0;
    for (const char *p = s; *p; p++)
        if (p != slash && !req_tchar(*p))
            return 0;
    return 1;
}

static int req_filename_ok(const char *s)
{
    size_t chars = req_chars(s);
    if (chars == 0 || chars > REQ_FILENAME_MAX || req_has_control(s))
        return 0;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    return strchr(s, '/') == NULL && strchr(s, '\\') == NULL;
}

static char *req_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int req_consent(const cJSON *consent, const char *key, int *out, req_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(consent, key);
    *out = -1;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return req_field(err, "client.consent.%s: must be a boolean", key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 0;
}

static int req_parse_client(const cJSON *c, req_client_t *out, req_error_t *err)
{
    if (!cJSON_IsObject(c))
        return req_field(err, "client: must be an object");
    out->present = 1;
    for (int ch = 0; ch < CH_N; ch++)
        out->consent[ch] = -1;
    const char *name, *email, *phone, *tz, *locale;
    int rc;
    if ((rc = req_opt_string(c, "name", "client.name", &name, err)) < 0)
        return -1;
    if (rc && (req_chars(name) == 0 || req_chars(name) > REQ_NAME_MAX || req_has_control(name)))
        return req_field(err, "client.name: must be 1 to %d characters without control characters",
                         REQ_NAME_MAX);
    if ((rc = req_opt_string(c, "email", "client.email", &email, err)) < 0)
        return -1;
    if (rc && !val_email(email))
        return req_field(err, "client.email: not a valid email address");
    if ((rc = req_opt_string(c, "phone", "client.phone", &phone, err)) < 0)
        return -1;
    if (rc && !val_e164(phone))
        return req_field(err, "client.phone: not a valid E.164 phone number");
    if ((rc = req_opt_string(c, "timezone", "client.timezone", &tz, err)) < 0)
        return -1;
    if (rc && !val_timezone(tz))
        return req_field(err, "client.timezone: not a known IANA time zone");
    if ((rc = req_opt_string(c, "locale", "client.locale", &locale, err)) < 0)
        return -1;
    if (rc && !req_locale_ok(locale))
        return req_field(err, "client.locale: not a valid locale (e.g. en, pt-BR)");

    const cJSON *consent = cJSON_GetObjectItemCaseSensitive(c, "consent");
    if (consent && !cJSON_IsNull(consent)) {
        if (!cJSON_IsObject(consent))
            return req_field(err, "client.consent: must be an object");
        for (int ch = 0; ch < CH_N; ch++)
            if (req_consent(consent, ch_name((ch_id_t)ch), &out->consent[ch], err) != 0)
                return -1;
    }

    out->name = req_dup(name);
    out->email = req_dup(email);
    out->phone = req_dup(phone);
    out->timezone = req_dup(tz);
    out->locale = req_dup(locale);
    if ((name && !out->name) || (email && !out->email) || (phone && !out->phone) ||
        (tz && !out->timezone) || (locale && !out->locale))
        return req_fail(err, REQ_NO_MEMORY, "out of memory");
    return 0;
}

static int req_parse_attachments(const cJSON *arr, size_t max_decoded, req_comm_t *out,
                                 req_error_t *err)
{
    if (!cJSON_IsArray(arr))
        return req_field(err, "attachments: must be an array");
    int n = 0;
    for (const cJSON *a = arr->child; a; a = a->next)
        n++;
    if (n > REQ_MAX_ATTACHMENTS)
        return req_field(err, "attachments: at most %d allowed", REQ_MAX_ATTACHMENTS);
    if (n == 0)
        return 0;
    out->attachments = calloc((size_t)n, sizeof *out->attachments);
    if (!out->attachments)
        return req_fail(err, REQ_NO_MEMORY, "out of memory");

    size_t budget = max_decoded;
    int i = 0;
    for (const cJSON *a = arr->child; a; a = a->next, i++) {
        if (!cJSON_IsObject(a))
            return req_field(err, "attachments[%d]: must be an object", i);
        const char *filename, *ctype, *b64;
        char path[64];
        int rc;
        snprintf(path, sizeof path, "attachments[%d].filename", i);
        if ((rc = req_opt_string(a, "filename", path, &filename, err)) < 0)
            return -1;
        if (!rc || !req_filename_ok(filename))
            return req_field(err,
                             "%s: required, 1 to %d characters, no slashes or control characters",
                             path, REQ_FILENAME_MAX);
        snprintf(path, sizeof path, "attachments[%d].content_type", i);
        if ((rc = req_opt_string(a, "content_type", path, &ctype, err)) < 0)
            return -1;
        if (!rc || !req_media_type_ok(ctype))
            return req_field(err, "%s: required, a media type such as application/pdf", path);
        snprintf(path, sizeof path, "attachments[%d].content_base64", i);
        if ((rc = req_opt_string(a, "content_base64", path, &b64, err)) < 0)
            return -1;
        if (!rc)
            return req_field(err, "%s: required", path);

        buf_t data;
        buf_init(&data, budget);
        size_t b64len = strlen(b64);
        if (b64_decode(&data, b64, b64len, 0) != 0) {
            buf_free(&data);
            /* base64 decodes to 3/4 of its length: tell a full budget apart
             * from bad input so the message says what is actually wrong */
            if ((b64len / 4) * 3 > budget)
                return req_field(err, "attachments: decoded size over the limit of %zu bytes",
                                 max_decoded);
            return req_field(err, "%s: not valid base64", path);
        }
        budget -= data.len;
        store_attachment_t *sa = &out->attachments[i];
        out->n_attachments = i + 1; /* so req_free releases what is filled */
        sa->len = data.len;
        sa->data = (unsigned char *)buf_detach(&data);
        sa->filename = strdup(filename);
        sa->content_type = strdup(ctype);
        if (!sa->filename || !sa->content_type)
            return req_fail(err, REQ_NO_MEMORY, "out of memory");
    }
    return 0;
}

static int req_enum(const cJSON *root, const char *key, const char *const *set, size_t n,
                    const char *def, char *out, size_t outlen, const char *rule, req_error_t *err)
{
    const char *s;
    int rc = req_opt_string(root, key, key, &s, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (!def)
            return req_field(err, "%s: required", key);
        snprintf(out, outlen, "%s", def);
        return 0;
    }
    if (!req_one_of(s, set, n))
        return req_field(err, "%s: %s", key, rule);
    snprintf(out, outlen, "%s", s);
    return 0;
}

static int req_fields(const cJSON *root, size_t max_decoded, req_comm_t *out, req_error_t *err)
{
    const char *s;
    if (req_required_string(root, "plan_id", &s, err) != 0)
        return -1;
    if (req_uuid_lower(s, out->plan_id) != 0)
        return req_field(err, "plan_id: not a valid UUID");
    if (strcmp(out->plan_id, REQ_NO_PLAN) == 0)
        return req_field(err, "plan_id: the nil UUID names no plan (crier's own messages use it)");
    if (req_required_string(root, "client_id", &s, err) != 0)
        return -1;
    if (req_uuid_lower(s, out->client_id) != 0)
        return req_field(err, "client_id: not a valid UUID");

    if (req_enum(root, "message_type", val_message_types, VAL_REQUEST_TYPES, NULL,
                 out->message_type, sizeof out->message_type, "unknown message type", err) != 0)
        return -1;
    /* none given: "" and the rules pick the type's default (channels.urgency) */
    if (req_enum(root, "urgency", req_urgencies, 4, "", out->urgency, sizeof out->urgency,
                 "must be one of critical, high, normal, low", err) != 0)
        return -1;
    if (req_enum(root, "preferred_channel", req_channels, 3, "", out->preferred_channel,
                 sizeof out->preferred_channel, "must be null, email, sms or whatsapp", err) != 0)
        return -1;

    const cJSON *client = cJSON_GetObjectItemCaseSensitive(root, "client");
    if (client && !cJSON_IsNull(client) && req_parse_client(client, &out->client, err) != 0)
        return -1;

    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(root, "context");
    if (ctx && !cJSON_IsNull(ctx)) {
        if (!cJSON_IsObject(ctx))
            return req_field(err, "context: must be an object");
        char path[REQ_PATH_MAX] = "context";
        if (req_check_urls(ctx, 0, path, strlen(path), err) != 0)
            return -1;
        out->context_json = cJSON_PrintUnformatted(ctx);
    } else {
        cJSON *empty = cJSON_CreateObject();
        out->context_json = empty ? cJSON_PrintUnformatted(empty) : NULL;
        cJSON_Delete(empty);
    }
    if (!out->context_json)
        return req_fail(err, REQ_NO_MEMORY, "out of memory");

    const cJSON *att = cJSON_GetObjectItemCaseSensitive(root, "attachments");
    if (att && !cJSON_IsNull(att) && req_parse_attachments(att, max_decoded, out, err) != 0)
        return -1;
    return 0;
}

int req_json_parse(const char *body, size_t len, cJSON **root, req_error_t *err)
{
    *root = NULL;
    memset(err, 0, sizeof *err);
    if (!body || len == 0)
        return req_fail(err, REQ_BAD_JSON, "empty body");
    if (!val_utf8(body, len))
        return req_fail(err, REQ_BAD_UTF8, "the body is not valid UTF-8");
    if (req_prescan(body, len, err) != 0)
        return -1;

    const char *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!r)
        return req_fail(err, REQ_BAD_JSON, "malformed JSON at byte %zu",
                        end && end >= body ? (size_t)(end - body) : (size_t)0);
    /* only whitespace may follow the value */
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(r);
            return req_fail(err, REQ_BAD_JSON, "trailing data after the JSON value");
        }
    }
    char path[REQ_PATH_MAX] = "";
    if (!cJSON_IsObject(r) || req_check_arrays(r, path, 0, err) != 0) {
        if (!cJSON_IsObject(r))
            req_field(err, "body: must be a JSON object");
        cJSON_Delete(r);
        return -1;
    }
    *root = r;
    return 0;
}

int req_parse(const char *body, size_t len, size_t max_decoded, req_comm_t *out, req_error_t *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    if (req_json_parse(body, len, &root, err) != 0)
        return -1;
    int rc = req_fields(root, max_decoded, out, err);
    cJSON_Delete(root);
    if (rc != 0)
        req_free(out);
    return rc;
}

int req_parse_client_body(const char *body, size_t len, req_client_t *out, req_error_t *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    if (req_json_parse(body, len, &root, err) != 0)
        return -1;
    int rc = req_parse_client(root, out, err);
    cJSON_Delete(root);
    if (rc != 0) {
        req_client_free(out);
        /* the body is the client object itself: its fields are named bare */
        if (strncmp(err->message, "client.", 7) == 0)
            memmove(err->message, err->message + 7, strlen(err->message + 7) + 1);
    }
    return rc;
}

void req_client_free(req_client_t *c)
{
    free(c->name);
    free(c->email);
    free(c->phone);
    free(c->timezone);
    free(c->locale);
    c->name = c->email = c->phone = c->timezone = c->locale = NULL;
}

void req_free(req_comm_t *r)
{
    if (!r)
        return;
    req_client_free(&r->client);
    cJSON_free(r->context_json); /* allocated by cJSON_PrintUnformatted */
    store_attachments_free(r->attachments, r->n_attachments);
    memset(r, 0, sizeof *r);
}
