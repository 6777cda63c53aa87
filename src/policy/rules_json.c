/* Reading a decision's inputs from operator-written JSON. Every field is
 * checked and an unknown one is an error, so a typo in a test case or a
 * client file fails loudly instead of silently testing something else. */
#include "policy/rules_json.h"
#include "util/errmsg.h"
#include "util/text.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Reads n digits at *p. */
static int rj_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int rules_time_parse(const char *s, double *out)
{
    int y, mo, d, h, mi, sec = 0;
    double frac = 0;
    const char *p = s;
    if (!s || rj_digits(&p, 4, &y) || *p++ != '-' || rj_digits(&p, 2, &mo) || *p++ != '-' ||
        rj_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (rj_digits(&p, 2, &h) || *p++ != ':' || rj_digits(&p, 2, &mi))
        return -1;
    if (*p == ':') {
        p++;
        if (rj_digits(&p, 2, &sec))
            return -1;
        if (*p == '.') {
            double scale = 0.1;
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            while (isdigit((unsigned char)*p)) {
                frac += (*p++ - '0') * scale;
                scale /= 10;
            }
        }
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (rj_digits(&p, 2, &oh) || *p++ != ':' || rj_digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return -1; /* a time without a zone is ambiguous */
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    /* days from civil (proleptic Gregorian) */
    int yy = y - (mo <= 2);
    int era = (yy >= 0 ? yy : yy - 399) / 400;
    int yoe = yy - era * 400;
    int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    double days = (double)era * 146097 + doe - 719468;
    *out = days * 86400 + h * 3600 + mi * 60 + sec + frac - offset;
    return 0;
}

void rules_input_defaults(rules_input_t *in)
{
    memset(in, 0, sizeof *in);
    snprintf(in->type, sizeof in->type, "welcome");
    in->urgency[0] = '\0'; /* as a request that gives none: the rules decide */
    snprintf(in->timezone, sizeof in->timezone, "UTC");
    snprintf(in->prefs[0], sizeof in->prefs[0], "email");
    snprintf(in->quiet_start, sizeof in->quiet_start, "22:00");
    snprintf(in->quiet_end, sizeof in->quiet_end, "08:00");
    in->msg.message_type = in->type;
    in->msg.urgency = in->urgency;
    in->client.timezone = in->timezone;
    in->client.preferred_channels[0] = in->prefs[0];
    in->client.quiet_start = in->quiet_start;
    in->client.quiet_end = in->quiet_end;
}

static int rj_channel_ok(const char *s)
{
    ch_id_t ch;
    return ch_by_name(s, &ch) == 0;
}

/* 1 with *ch set when key is "opt_out_<channel>". */
static int rj_opt_out_key(const char *key, ch_id_t *ch)
{
    static const char prefix[] = "opt_out_";
    return strncmp(key, prefix, sizeof prefix - 1) == 0 &&
           ch_by_name(key + sizeof prefix - 1, ch) == 0;
}

static int rj_bool(const cJSON *v, const char *name, int *out, char *err, size_t errlen)
{
    if (!cJSON_IsBool(v)) {
        errmsg_set(err, errlen, "%s must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int rj_string(const cJSON *v, const char *name, char *out, size_t n, char *err,
                     size_t errlen)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n || !v->valuestring[0]) {
        errmsg_set(err, errlen, "%s must be a string of 1 to %zu characters", name, n - 1);
        return -1;
    }
    snprintf(out, n, "%s", v->valuestring);
    return 0;
}

/* An instant: ISO-8601 text, epoch seconds, or null (none: 0). */
static int rj_instant(const cJSON *v, const char *name, double *out, char *err, size_t errlen)
{
    if (cJSON_IsNull(v)) {
        *out = 0;
        return 0;
    }
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0) {
        *out = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && rules_time_parse(v->valuestring, out) == 0)
        return 0;
    errmsg_set(err, errlen, "%s must be an ISO-8601 time such as 2026-03-08T06:30:00Z, or null",
               name);
    return -1;
}

static int rj_hhmm(const cJSON *v, const char *name, char out[6], char *err, size_t errlen)
{
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    size_t n = strlen(s);
    int ok = n == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
             s[2] == ':' && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]) &&
             (s[0] - '0') * 10 + (s[1] - '0') < 24 && s[3] < '6';
    if (!ok) {
        errmsg_set(err, errlen, "%s must be \"HH:MM\" (00:00 to 23:59)", name);
        return -1;
    }
    memcpy(out, s, 6);
    return 0;
}

int rules_input_msg(rules_input_t *in, const cJSON *msg, char *err, size_t errlen)
{
    if (!cJSON_IsObject(msg)) {
        errmsg_set(err, errlen, "msg must be an object");
        return -1;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, msg)
    {
        const char *k = f->string;
        int rc = 0;
        if (strcmp(k, "type") == 0 || strcmp(k, "message_type") == 0) {
            rc = rj_string(f, k, in->type, sizeof in->type, err, errlen);
        } else if (strcmp(k, "urgency") == 0) {
            rc = rj_string(f, k, in->urgency, sizeof in->urgency, err, errlen);
            if (rc == 0 && policy_priority(in->urgency) == 2 && strcmp(in->urgency, "normal")) {
                errmsg_set(err, errlen, "urgency must be critical, high, normal or low");
                rc = -1;
            }
        } else if (strcmp(k, "preferred_channel") == 0) {
            in->preferred[0] = '\0';
            if (!cJSON_IsNull(f)) {
                rc = rj_string(f, k, in->preferred, sizeof in->preferred, err, errlen);
                if (rc == 0 && !rj_channel_ok(in->preferred)) {
                    errmsg_set(err, errlen, "preferred_channel must be email, sms or whatsapp");
                    rc = -1;
                }
            }
        } else if (strcmp(k, "has_attachment") == 0) {
            rc = rj_bool(f, k, &in->msg.has_attachment, err, errlen);
        } else if (strcmp(k, "attachments") == 0) {
            in->msg.has_attachment = cJSON_GetArraySize(f) > 0;
        } else {
            errmsg_set(err, errlen, "msg: unknown field \"%.40s\"", k);
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    in->msg.preferred_channel = in->preferred[0] ? in->preferred : NULL;
    return 0;
}

static int rj_consent(rules_input_t *in, const cJSON *v, char *err, size_t errlen)
{
    if (!cJSON_IsObject(v)) {
        errmsg_set(err, errlen, "consent must be an object {\"email\", \"sms\", \"whatsapp\"}");
        return -1;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, v)
    {
        ch_id_t ch;
        int *slot = ch_by_name(f->string, &ch) == 0 ? &in->client.consent[ch] : NULL;
        if (!slot) {
            errmsg_set(err, errlen, "consent: unknown channel \"%.40s\"", f->string);
            return -1;
        }
        if (cJSON_IsNull(f))
            continue;
        if (rj_bool(f, "consent values", slot, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int rj_prefs(rules_input_t *in, const cJSON *v, char *err, size_t errlen)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > POLICY_MAX_CHANNELS) {
        errmsg_set(err, errlen, "preferred_channels must be a list of up to %d channels",
                   POLICY_MAX_CHANNELS);
        return -1;
    }
    memset(in->client.preferred_channels, 0, sizeof in->client.preferred_channels);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it) || !rj_channel_ok(it->valuestring)) {
            errmsg_set(err, errlen, "preferred_channels: each must be email, sms or whatsapp");
            return -1;
        }
        snprintf(in->prefs[n], sizeof in->prefs[n], "%s", it->valuestring);
        in->client.preferred_channels[n] = in->prefs[n];
        n++;
    }
    return 0;
}

int rules_input_client(rules_input_t *in, const cJSON *client, char *err, size_t errlen)
{
    if (!cJSON_IsObject(client)) {
        errmsg_set(err, errlen, "client must be an object");
        return -1;
    }
    policy_client_t *c = &in->client;
    const cJSON *f;
    cJSON_ArrayForEach(f, client)
    {
        const char *k = f->string;
        int rc = 0;
        ch_id_t ch;
        if (strcmp(k, "client_id") == 0 || strcmp(k, "name") == 0 || strcmp(k, "locale") == 0) {
            /* identity, not policy */
        } else if (strcmp(k, "email") == 0 || strcmp(k, "phone") == 0) {
            /* only whether a contact exists reaches the rules */
            int has = cJSON_IsString(f) && f->valuestring[0];
            if (!has && !cJSON_IsNull(f)) {
                errmsg_set(err, errlen, "%s must be a string or null", k);
                rc = -1;
            }
            *(k[0] == 'e' ? &c->has_email : &c->has_phone) = has;
        } else if (strcmp(k, "has_email") == 0) {
            rc = rj_bool(f, k, &c->has_email, err, errlen);
        } else if (strcmp(k, "has_phone") == 0) {
            rc = rj_bool(f, k, &c->has_phone, err, errlen);
        } else if (strcmp(k, "vip") == 0) {
            rc = rj_bool(f, k, &c->vip, err, errlen);
        } else if (strcmp(k, "email_suppressed") == 0) {
            rc = rj_bool(f, k, &c->email_suppressed, err, errlen);
        } else if (strcmp(k, "timezone") == 0) {
            rc = rj_string(f, k, in->timezone, sizeof in->timezone, err, errlen);
            char zerr[128];
            if (rc == 0 && !tz_get(in->timezone, zerr, sizeof zerr)) {
                errmsg_set(err, errlen, "timezone: %s", zerr);
                rc = -1;
            }
        } else if (strcmp(k, "quiet_hours_start") == 0) {
            rc = rj_hhmm(f, k, in->quiet_start, err, errlen);
        } else if (strcmp(k, "quiet_hours_end") == 0) {
            rc = rj_hhmm(f, k, in->quiet_end, err, errlen);
        } else if (rj_opt_out_key(k, &ch)) {
            rc = rj_bool(f, k, &c->opt_out[ch], err, errlen);
        } else if (strcmp(k, "preferred_channels") == 0) {
            rc = rj_prefs(in, f, err, errlen);
        } else if (strcmp(k, "consent") == 0) {
            rc = rj_consent(in, f, err, errlen);
        } else if (strcmp(k, "last_contact_at") == 0) {
            rc = rj_instant(f, k, &c->last_contact_at, err, errlen);
        } else if (strcmp(k, "whatsapp_window_until") == 0) {
            rc = rj_instant(f, k, &c->whatsapp_window_until, err, errlen);
        } else {
            errmsg_set(err, errlen, "client: unknown field \"%.40s\"", k);
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

int rules_input_request(rules_input_t *in, const cJSON *req, char *err, size_t errlen)
{
    if (!cJSON_IsObject(req)) {
        errmsg_set(err, errlen, "the request must be a JSON object");
        return -1;
    }
    cJSON *msg = cJSON_CreateObject();
    if (!msg) {
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    static const char *const fields[] = {"message_type", "urgency", "preferred_channel",
                                         "attachments"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, fields[i]);
        if (v)
            cJSON_AddItemToObject(msg, fields[i], cJSON_Duplicate(v, 1));
    }
    int rc = rules_input_msg(in, msg, err, errlen);
    cJSON_Delete(msg);
    if (rc != 0)
        return -1;
    if (!cJSON_GetObjectItemCaseSensitive(req, "message_type")) {
        errmsg_set(err, errlen, "message_type is required");
        return -1;
    }
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(req, "client");
    if (client && !cJSON_IsNull(client) && rules_input_client(in, client, err, errlen) != 0)
        return -1;
    return 0;
}

cJSON *rules_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    if (memchr(text, '\0', len)) {
        errmsg_set(err, errlen, "contains a NUL byte");
        return NULL;
    }
    const char *end = NULL;
    /* len + 1: cJSON checks for the terminator inside the length it is given */
    cJSON *v = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (v)
        return v;
    int line, col;
    text_line_col(text, len, end, &line, &col);
    errmsg_set(err, errlen, "line %d, column %d: invalid JSON", line, col);
    return NULL;
}
