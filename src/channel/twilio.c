#include "channel/twilio.h"

#include "channel/answer.h"
#include "util/redact.h"
#include "util/text.h"

#include "util/base64.h"
#include "util/errmsg.h"
#include "validate.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- building the request ---------------------------------------------- */

int twilio_form_escape(buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            if (buf_putc(out, (char)*p) != 0)
                return -1;
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            if (buf_append(out, enc, sizeof enc) != 0)
                return -1;
        }
    }
    return 0;
}

static int is_set(const char *s)
{
    return s && *s;
}

/* SIDs go into the URL path and the Basic credentials, so only the
 * documented shape (two letters and 32 alphanumerics) may pass. */
static int sid_ok(const char *s, const char *prefix)
{
    if (!s || strncmp(s, prefix, 2) != 0 || strlen(s) != 34)
        return 0;
    for (const char *p = s + 2; *p; p++)
        if (!isalnum((unsigned char)*p))
            return 0;
    return 1;
}

/* No controls anywhere: a CR or LF in a header or a NUL-cut field would
 * change the request. */
static int printable_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x20 || *p > 0x7e || n >= max)
            return 0;
    return n > 0;
}

/* Twilio accepts an E.164 number, a short code or an alphanumeric sender ID
 * (letters, digits, spaces, at most 11) as From. */
static int from_ok(const char *s)
{
    if (val_e164(s))
        return 1;
    size_t n = strlen(s), digits = 0, alnum = 0;
    if (n == 0 || n > 11)
        return 0;
    for (const char *p = s; *p; p++) {
        if (isdigit((unsigned char)*p))
            digits++;
        if (isalnum((unsigned char)*p))
            alnum++;
        else if (*p != ' ')
            return 0;
    }
    /* a short code is 5-6 digits; an alphanumeric ID needs one letter */
    return (digits == n && n >= 5 && n <= 6) || (digits < alnum);
}

static int to_ok(const char *s)
{
    if (strncmp(s, "whatsapp:", 9) == 0)
        s += 9;
    return val_e164(s);
}

/* Twilio rejects a StatusCallback without a valid hostname, with
 * underscores in the hostname, or over 4000 characters (error 21609). */
static int callback_ok(const char *url)
{
    size_t n = strlen(url);
    if (n > TWILIO_CALLBACK_MAX || !printable_ascii(url, TWILIO_CALLBACK_MAX))
        return 0;
    const char *host;
    if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else
        return 0;
    size_t hlen = strcspn(host, ":/?#");
    if (hlen == 0)
        return 0;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-')
            return 0;
    }
    return 1;
}

static int form_field(buf_t *form, const char *name, const char *value)
{
    if (form->len > 0 && buf_putc(form, '&') != 0)
        return -1;
    if (buf_puts(form, name) != 0 || buf_putc(form, '=') != 0)
        return -1;
    return twilio_form_escape(form, value);
}

static errc_t check_send(const twilio_send_t *in, char *err, size_t errlen)
{
    if (!sid_ok(in->account_sid, "AC")) {
        errmsg_set(err, errlen, "twilio: the account SID is missing or not AC + 32 characters");
        return ERRC_AUTH_FAILURE;
    }
    if (is_set(in->auth_user) && !sid_ok(in->auth_user, "AC") && !sid_ok(in->auth_user, "SK")) {
        errmsg_set(err, errlen, "twilio: the API key SID is not SK + 32 characters");
        return ERRC_AUTH_FAILURE;
    }
    if (!is_set(in->auth_token) || !printable_ascii(in->auth_token, 256)) {
        errmsg_set(err, errlen, "twilio: the auth token is missing or malformed");
        return ERRC_AUTH_FAILURE;
    }
    if (!is_set(in->to) || !to_ok(in->to)) {
        errmsg_set(err, errlen, "twilio: To is not an E.164 number");
        return ERRC_INVALID_INPUT;
    }
    if (is_set(in->from) ? !from_ok(in->from) : !is_set(in->messaging_service_sid)) {
        errmsg_set(err, errlen, "twilio: From is missing or not a number, short code or sender ID");
        return ERRC_INVALID_INPUT;
    }
    if (is_set(in->messaging_service_sid) && !sid_ok(in->messaging_service_sid, "MG")) {
        errmsg_set(err, errlen, "twilio: MessagingServiceSid is not MG + 32 characters");
        return ERRC_INVALID_INPUT;
    }
    if (!is_set(in->body)) {
        errmsg_set(err, errlen, "twilio: the message body is empty");
        return ERRC_INVALID_INPUT;
    }
    /* more bytes than 1600 four-byte characters is over the limit anyway */
    size_t blen = strnlen(in->body, TWILIO_BODY_MAX_CHARS * 4 + 1);
    if (blen <= TWILIO_BODY_MAX_CHARS * 4 && !val_utf8(in->body, blen)) {
        errmsg_set(err, errlen, "twilio: the message body is not UTF-8");
        return ERRC_INVALID_INPUT;
    }
    if (blen > TWILIO_BODY_MAX_CHARS * 4 || text_utf8_chars(in->body) > TWILIO_BODY_MAX_CHARS) {
        errmsg_set(err, errlen, "twilio: the message body is over %d characters",
                   TWILIO_BODY_MAX_CHARS);
        return ERRC_INVALID_INPUT;
    }
    if (is_set(in->status_callback) && !callback_ok(in->status_callback)) {
        errmsg_set(err, errlen,
                   "twilio: StatusCallback is not an absolute http(s) URL Twilio "
                   "accepts");
        return ERRC_INVALID_INPUT;
    }
    if (in->validity_period < 0 || in->validity_period > TWILIO_VALIDITY_MAX) {
        errmsg_set(err, errlen, "twilio: ValidityPeriod must be 1..%d seconds",
                   TWILIO_VALIDITY_MAX);
        return ERRC_INVALID_INPUT;
    }
    return ERRC_NONE;
}

static int build_auth(buf_t *auth, const char *user, const char *token)
{
    buf_t cred;
    buf_init(&cred, 512);
    int rc = 0;
    if (buf_printf(&cred, "%s:%s", user, token) != 0 || buf_puts(auth, "Basic ") != 0 ||
        b64_encode(auth, cred.data, cred.len, 0) != 0)
        rc = -1;
    if (cred.data)
        explicit_bzero(cred.data, cred.cap);
    buf_free(&cred);
    return rc;
}

errc_t twilio_build_send(const twilio_send_t *in, twilio_request_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    buf_init(&out->form, TWILIO_FORM_MAX);
    buf_init(&out->authorization, 1024);
    errc_t c = check_send(in, err, errlen);
    if (c != ERRC_NONE)
        return c;
    snprintf(out->path, sizeof out->path, "/%s/Accounts/%s/Messages.json", TWILIO_API_VERSION,
             in->account_sid);
    /* Field order as in the reference request; Twilio itself ignores it. */
    int rc = form_field(&out->form, "To", in->to);
    if (rc == 0 && is_set(in->from))
        rc = form_field(&out->form, "From", in->from);
    if (rc == 0 && is_set(in->messaging_service_sid))
        rc = form_field(&out->form, "MessagingServiceSid", in->messaging_service_sid);
    if (rc == 0)
        rc = form_field(&out->form, "Body", in->body);
    if (rc == 0 && is_set(in->status_callback))
        rc = form_field(&out->form, "StatusCallback", in->status_callback);
    if (rc == 0 && in->validity_period > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", in->validity_period);
        rc = form_field(&out->form, "ValidityPeriod", v);
    }
    if (rc != 0) {
        errmsg_set(err, errlen, "twilio: the form body is over %d bytes", TWILIO_FORM_MAX);
        return ERRC_INVALID_INPUT;
    }
    const char *user = is_set(in->auth_user) ? in->auth_user : in->account_sid;
    if (build_auth(&out->authorization, user, in->auth_token) != 0) {
        errmsg_set(err, errlen, "twilio: out of memory building the credentials");
        return ERRC_TRANSIENT;
    }
    return ERRC_NONE;
}

void twilio_request_free(twilio_request_t *r)
{
    if (!r)
        return;
    if (r->authorization.data)
        explicit_bzero(r->authorization.data, r->authorization.cap);
    buf_free(&r->authorization);
    buf_free(&r->form);
}

/* ---- classifying errors ------------------------------------------------ */

errc_t twilio_classify(int code, int http_status)
{
    switch (code) {
    case 20003: /* bad credentials */
    case 21606: /* From is not an SMS-capable number of the account */
    case 21608: /* trial account: To is unverified */
    case 30002: /* account suspended */
        /* "config" in the table: every message fails until someone fixes the
         * account, so the channel is paused like for bad credentials */
        return ERRC_AUTH_FAILURE;
    case 20429:
        return ERRC_RATE_LIMIT;
    case 21211: /* invalid To */
    case 21610: /* unsubscribed (STOP) */
    case 21612: /* To/From cannot be connected */
    case 21614: /* not a mobile number */
    case 21635: /* landline */
    case 30005: /* unknown handset */
    case 30006: /* landline or unreachable carrier */
    case 30007: /* filtered: resending the same body will not help */
        return ERRC_PERMANENT;
    case 21602: /* Body missing */
    case 21603: /* From missing */
    case 21604: /* To missing / not form-encoded */
        return ERRC_INVALID_INPUT;
    case 30001: /* queue overflow */
    case 30003: /* handset unreachable for now */
    case 30008: /* unknown carrier error */
    case 30450: /* SMS pumping protection block */
        return ERRC_TRANSIENT;
    default:
        break;
    }
    errc_t by_status = errc_from_http_status(http_status);
    if (by_status != ERRC_NONE)
        return by_status;
    if (code >= 30000 && code < 31000)
        return ERRC_TRANSIENT; /* unknown async codes: a few spaced retries */
    /* 20xxx/21xxx and other 4xx: a request or account problem retrying
     * will not fix */
    return ERRC_PERMANENT;
}

/* ---- Retry-After --------------------------------------------------------- */

static int month_index(const char *m)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncmp(m, names + 3 * i, 3) == 0 && m[3] == '\0')
            return i;
    return -1;
}

/* HTTP-date: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete
 * RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37
 * 1994" forms that recipients must still accept. */
static int parse_http_date(const char *s, time_t *out)
{
    char wday[16], mon[4];
    int d, y, hh, mm, ss, used = 0;
    struct tm tm = {0};
    if (sscanf(s, "%15[A-Za-z], %2d %3s %4d %2d:%2d:%2d GMT%n", wday, &d, mon, &y, &hh, &mm, &ss,
               &used) == 7 &&
        s[used] == '\0') {
        /* IMF-fixdate */
    } else if (sscanf(s, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wday, &d, mon, &y, &hh, &mm,
                      &ss, &used) == 7 &&
               s[used] == '\0') {
        y += y < 70 ? 2000 : 1900; /* RFC 850's two-digit year */
    } else if (sscanf(s, "%15[A-Za-z] %3s %2d %2d:%2d:%2d %4d%n", wday, mon, &d, &hh, &mm, &ss, &y,
                      &used) == 7 &&
               s[used] == '\0') {
        /* asctime */
    } else {
        return -1;
    }
    int m = month_index(mon);
    if (m < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970 || y > 9999)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = m;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *out = timegm(&tm);
    return *out == (time_t)-1 ? -1 : 0;
}

int twilio_retry_after_seconds(const char *value, time_t now)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        unsigned long long v = strtoull(value, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end != '\0')
            return -1;
        return v > INT_MAX ? INT_MAX : (int)v;
    }
    time_t when;
    if (parse_http_date(value, &when) != 0)
        return -1;
    if (when <= now)
        return 0;
    double d = difftime(when, now);
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* ---- reading the answer -------------------------------------------------- */

/* answer_ops_t's functions take the result as void *: answer_read knows no
 * result type. */
static void fail(void *res, errc_t c, const char *msg)
{
    twilio_result_t *out = res;
    out->category = c;
    redact_copy_digits(out->message, sizeof out->message, msg);
}

static int json_int(const cJSON *o, const char *name, int *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= INT_MAX) {
        *v = (int)j->valuedouble;
        return 1;
    }
    /* a few fields are strings of digits in Twilio's JSON; nine digits
     * always fit an int */
    if (cJSON_IsString(j)) {
        size_t n = strspn(j->valuestring, "0123456789");
        if (n > 0 && n < 10 && j->valuestring[n] == '\0') {
            *v = atoi(j->valuestring);
            return 1;
        }
    }
    return 0;
}

static int parse_success(const cJSON *root, void *res)
{
    twilio_result_t *out = res;
    const char *sid = answer_str(root, "sid");
    const char *status = answer_str(root, "status");
    if (!sid || strlen(sid) < 3 || strlen(sid) >= sizeof out->sid ||
        !printable_ascii(sid, sizeof out->sid)) {
        /* Twilio took the request but we cannot tell which message it made;
         * the caller decides whether a retry risks a duplicate */
        fail(out, ERRC_TRANSIENT, "twilio: accepted, but the answer has no message sid");
        return -1;
    }
    snprintf(out->sid, sizeof out->sid, "%s", sid);
    if (status && strlen(status) < sizeof out->status && printable_ascii(status, 32))
        snprintf(out->status, sizeof out->status, "%s", status);
    out->category = ERRC_NONE;
    return 0;
}

static void parse_error(const cJSON *root, int http_status, void *res)
{
    twilio_result_t *out = res;
    /* legacy envelope {code, message, more_info, status} and RFC 9457
     * {type, title, status, code, detail}: the code falls back to the HTTP
     * status when absent, as Twilio's own SDK does */
    int code = 0;
    if (!json_int(root, "code", &code))
        code = 0;
    out->error_code = code;
    const char *msg = answer_str(root, "message");
    if (!msg)
        msg = answer_str(root, "detail");
    if (!msg)
        msg = answer_str(root, "title");
    char text[256];
    snprintf(text, sizeof text, "twilio %d: %s", code ? code : http_status,
             msg ? msg : "(no message)");
    fail(out, twilio_classify(code, http_status), text);
}

/* An answer with no JSON object: the status alone. */
static errc_t twilio_status_category(int http_status)
{
    return twilio_classify(0, http_status);
}

static const answer_ops_t twilio_answer = {.provider = "twilio",
                                           .max = TWILIO_RESPONSE_MAX,
                                           .success = parse_success,
                                           .error = parse_error,
                                           .status_category = twilio_status_category,
                                           .fail = fail};

int twilio_parse_response(int http_status, const char *body, const char *retry_after_header,
                          twilio_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = http_status;
    out->retry_after = TWILIO_RATE_RETRY_NONE;
    if (answer_read(&twilio_answer, http_status, body, out) == 0)
        return 0;
    if (out->category == ERRC_RATE_LIMIT)
        out->retry_after = twilio_retry_after_seconds(retry_after_header, time(NULL));
    else if (out->error_code == 30450)
        out->retry_after = TWILIO_PUMPING_RETRY_SEC;
    if (out->error_code == 21610)
        out->opt_out = 1;
    return -1;
}
