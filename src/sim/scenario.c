#include "sim/scenario.h"

#include "channel/ch.h"
#include "tz/tz.h"
#include "util/buf.h"
#include "util/errmsg.h"
#include "util/file.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCENARIO_FILE_MAX ((size_t)4 * 1024 * 1024)

/* The error of entry e: "PATH: ENTRY: what". */
#define SCN_FAIL(s, err, errlen, entry, ...)                                                       \
    do {                                                                                           \
        char what_[768];                                                                           \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                \
        errmsg_set(err, errlen, "%s: %s: %s", (s)->path, entry, what_);                            \
        return -1;                                                                                 \
    } while (0)

static int scn_is_channel(const char *name)
{
    ch_id_t ch;
    return name && ch_by_name(name, &ch) == 0;
}

static int scn_days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* A time of the scenario: ISO-8601 with a zone, a local wall-clock time of
 * the client ("2026-03-09T09:00", no zone), or an offset from the start
 * ("+90s", "+45m", "+2h", "+1d"). 0, or -1 with why. */
static int scn_time(const scenario_t *s, const char *text, double *out, char *why, size_t whylen)
{
    if (!text) {
        snprintf(why, whylen, "must be a time (ISO-8601, a local time or +N[smhd])");
        return -1;
    }
    if (text[0] == '+') {
        char *end;
        long n = strtol(text + 1, &end, 10);
        long unit = *end == 's'   ? 1
                    : *end == 'm' ? 60
                    : *end == 'h' ? 3600
                    : *end == 'd' ? 86400
                                  : 0;
        if (!isdigit((unsigned char)text[1]) || unit == 0 || end[1] || n < 0 ||
            n > (long)SCENARIO_MAX_DAYS * 86400 / unit) {
            snprintf(why, whylen, "\"%.40s\" is no offset such as +90s, +45m, +2h or +1d", text);
            return -1;
        }
        *out = s->start + (double)(n * unit);
        return 0;
    }
    int y, mo, d, h, mi, sec = 0, used = 0;
    if (sscanf(text, "%4d-%2d-%2d%*[T ]%2d:%2d%n", &y, &mo, &d, &h, &mi, &used) != 5) {
        snprintf(why, whylen, "\"%.40s\" is no time such as 2026-03-09T09:00 or +2h", text);
        return -1;
    }
    const char *rest = text + used;
    if (rest[0] == ':' && isdigit((unsigned char)rest[1]) && isdigit((unsigned char)rest[2])) {
        sec = (rest[1] - '0') * 10 + (rest[2] - '0');
        rest += 3;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > scn_days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59) {
        snprintf(why, whylen, "\"%.40s\" is no date and time", text);
        return -1;
    }
    if (*rest) {
        if (rules_time_parse(text, out) != 0) {
            snprintf(why, whylen, "\"%.40s\" is no time such as 2026-03-09T09:00:00Z", text);
            return -1;
        }
        return 0;
    }
    const char *zone = s->client.client.timezone ? s->client.client.timezone : "UTC";
    char zerr[160];
    const tz_zone_t *z = tz_get(zone, zerr, sizeof zerr);
    if (!z) {
        snprintf(why, whylen, "%s", zerr);
        return -1;
    }
    tz_fields_t f = {y, mo, d, h, mi, sec};
    int64_t t;
    tz_resolution_t how;
    if (tz_resolve(z, &f, &t, &how) != 0) {
        snprintf(why, whylen, "\"%.40s\" cannot be placed in %s", text, zone);
        return -1;
    }
    if (how == TZ_GAP) {
        snprintf(why, whylen, "\"%.40s\" does not exist in %s (the clocks skip it)", text, zone);
        return -1;
    }
    *out = (double)t;
    return 0;
}

/* A time field of an entry, inside the scenario's span. */
static int scn_entry_time(const scenario_t *s, const cJSON *o, const char *key, const char *entry,
                          double *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char why[200];
    if (scn_time(s, cJSON_IsString(v) ? v->valuestring : NULL, out, why, sizeof why) != 0)
        SCN_FAIL(s, err, errlen, entry, "%s: %s", key, why);
    if (*out < s->start || *out > s->until)
        SCN_FAIL(s, err, errlen, entry, "%s: outside the scenario (start to until)", key);
    return 0;
}

/* Every key of o is one of keys (a NULL-terminated list). */
static int scn_known(const scenario_t *s, const cJSON *o, const char *const *keys,
                     const char *entry, char *err, size_t errlen)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        int ok = 0;
        for (int i = 0; keys[i] && !ok; i++)
            ok = strcmp(it->string, keys[i]) == 0;
        if (!ok)
            SCN_FAIL(s, err, errlen, entry, "unknown field \"%.40s\"", it->string);
    }
    return 0;
}

static int scn_int(const cJSON *o, const char *key, int lo, int hi, int dflt, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble ||
        v->valuedouble < lo || v->valuedouble > hi)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

/* A string field copied into out (size outlen); absent: "". -1 when it is
 * not a string or too long. */
static int scn_str(const cJSON *o, const char *key, char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (!v)
        return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= outlen)
        return -1;
    snprintf(out, outlen, "%s", v->valuestring);
    return 0;
}

static int scn_hhmm(const char *t)
{
    return strlen(t) == 5 && isdigit((unsigned char)t[0]) && isdigit((unsigned char)t[1]) &&
           t[2] == ':' && isdigit((unsigned char)t[3]) && isdigit((unsigned char)t[4]) &&
           (t[0] - '0') * 10 + (t[1] - '0') < 24 && (t[3] - '0') * 10 + (t[4] - '0') < 60;
}

int scenario_result_parse(const char *text, const char *channel, scenario_result_t *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    int email = strcmp(channel, CH_NAME_EMAIL) == 0;
    int n = 0, used = 0, secs = 0;
    if (strcmp(text, "ok") == 0)
        return 0;
    if (strcmp(text, "timeout") == 0) {
        out->answer = SCENARIO_TIMEOUT;
        return 0;
    }
    if (sscanf(text, "delivered after %d s%n", &secs, &used) == 1 && !text[used]) {
        if (email) {
            errmsg_set(err, errlen, "email has no delivery receipts");
            return -1;
        }
        out->receipt = SCENARIO_RECEIPT_DELIVERED;
    } else if ((sscanf(text, "undelivered after %d s%n", &secs, &used) == 1 && !text[used]) ||
               (sscanf(text, "undelivered %d after %d s%n", &n, &secs, &used) == 2 &&
                !text[used])) {
        if (email) {
            errmsg_set(err, errlen, "email has no delivery receipts");
            return -1;
        }
        out->receipt = SCENARIO_RECEIPT_UNDELIVERED;
        out->receipt_code = n ? n : strcmp(channel, CH_NAME_SMS) == 0 ? 30003 : 131026;
    }
    if (out->receipt) {
        if (secs < 1 || secs > 7 * 86400) {
            errmsg_set(err, errlen, "\"%.40s\": a receipt comes 1 s to 7 days after the send",
                       text);
            return -1;
        }
        out->receipt_after = secs;
        return 0;
    }
    char enhanced[12] = "";
    int ra = -1;
    if (sscanf(text, "%d%n", &n, &used) != 1 || n < 100) {
        errmsg_set(err, errlen,
                   "\"%.40s\" is no behaviour: ok, timeout, an HTTP status (\"429 Retry-After "
                   "30\", \"500\"), a provider code (\"21610\"), an SMTP reply (\"550 5.1.1\"), "
                   "\"delivered after N s\" or \"undelivered after N s\"",
                   text);
        return -1;
    }
    const char *rest = text + used;
    if (sscanf(rest, " Retry-After %d%n", &ra, &used) == 1 && ra >= 0 && ra <= 86400) {
        out->retry_after = ra;
        rest += used;
    } else if (email && sscanf(rest, " %11[0-9.]%n", enhanced, &used) == 1) {
        snprintf(out->enhanced, sizeof out->enhanced, "%s", enhanced);
        rest += used;
    }
    if (*rest) {
        errmsg_set(err, errlen, "\"%.40s\": unexpected \"%.20s\"", text, rest);
        return -1;
    }
    out->answer = SCENARIO_FAIL;
    if (email) {
        if (n > 599) {
            errmsg_set(err, errlen, "\"%.40s\": an SMTP reply is 400 to 599", text);
            return -1;
        }
        out->code = n;
    } else if (n <= 599) {
        out->http_status = n;
    } else {
        out->code = n;
        out->http_status = 400;
    }
    return 0;
}

static int scn_client(scenario_t *s, const cJSON *o, char *err, size_t errlen)
{
    char why[256];
    rules_input_defaults(&s->client);
    if (!cJSON_IsObject(o))
        SCN_FAIL(s, err, errlen, "client", "must be an object");
    /* the name is the timeline's, the rest the client object of a request */
    cJSON *copy = cJSON_Duplicate(o, 1);
    if (!copy)
        SCN_FAIL(s, err, errlen, "client", "out of memory");
    snprintf(s->client_name, sizeof s->client_name, "there");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(copy, "name");
    if (cJSON_IsString(name))
        snprintf(s->client_name, sizeof s->client_name, "%s", name->valuestring);
    int rc = rules_input_client(&s->client, copy, why, sizeof why);
    cJSON_Delete(copy);
    if (rc != 0)
        SCN_FAIL(s, err, errlen, "client", "%s", why);
    return 0;
}

static int scn_requests(scenario_t *s, const cJSON *arr, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "at",          "type",    "message_type",      "urgency",
        "label",       "context", "preferred_channel", "has_attachment",
        "attachments", NULL};
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1 || n > SCENARIO_MAX_REQUESTS)
        SCN_FAIL(s, err, errlen, "requests", "must be a list of 1 to %d requests",
                 SCENARIO_MAX_REQUESTS);
    s->requests = calloc((size_t)n, sizeof *s->requests);
    if (!s->requests)
        SCN_FAIL(s, err, errlen, "requests", "out of memory");
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        scenario_request_t *r = &s->requests[s->n_requests];
        snprintf(r->entry, sizeof r->entry, "requests[%d]", s->n_requests);
        s->n_requests++;
        if (!cJSON_IsObject(o))
            SCN_FAIL(s, err, errlen, r->entry, "must be an object");
        if (scn_known(s, o, keys, r->entry, err, errlen) != 0 ||
            scn_entry_time(s, o, "at", r->entry, &r->at, err, errlen) != 0)
            return -1;
        if (scn_str(o, "label", r->label, sizeof r->label) != 0)
            SCN_FAIL(s, err, errlen, r->entry, "label must be a short string");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(o, "context");
        if (ctx && !cJSON_IsObject(ctx))
            SCN_FAIL(s, err, errlen, r->entry, "context must be an object");
        r->context = ctx ? cJSON_Duplicate(ctx, 1) : NULL;
        cJSON *msg = cJSON_Duplicate(o, 1);
        if ((ctx && !r->context) || !msg) {
            cJSON_Delete(msg);
            SCN_FAIL(s, err, errlen, r->entry, "out of memory");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(msg, "at");
        cJSON_DeleteItemFromObjectCaseSensitive(msg, "label");
        cJSON_DeleteItemFromObjectCaseSensitive(msg, "context");
        char why[256];
        rules_input_defaults(&r->in);
        int rc = rules_input_msg(&r->in, msg, why, sizeof why);
        cJSON_Delete(msg);
        if (rc != 0)
            SCN_FAIL(s, err, errlen, r->entry, "%s", why);
        if (!cJSON_GetObjectItemCaseSensitive(o, "type") &&
            !cJSON_GetObjectItemCaseSensitive(o, "message_type"))
            SCN_FAIL(s, err, errlen, r->entry, "type is required");
        const char *pc = r->in.msg.preferred_channel;
        if (pc && pc[0] && !scn_is_channel(pc))
            SCN_FAIL(s, err, errlen, r->entry, "preferred_channel: unknown channel \"%.20s\"", pc);
    }
    return 0;
}

static int scn_channel_field(scenario_t *s, const cJSON *o, const char *entry, char *out,
                             size_t outlen, int required, char *err, size_t errlen)
{
    if (scn_str(o, "channel", out, outlen) != 0)
        SCN_FAIL(s, err, errlen, entry, "channel must be email, sms or whatsapp");
    if (!out[0] && required)
        SCN_FAIL(s, err, errlen, entry, "channel is required");
    if (out[0] && !scn_is_channel(out))
        SCN_FAIL(s, err, errlen, entry, "unknown channel \"%s\"", out);
    return 0;
}

static int scn_message_ref(scenario_t *s, const cJSON *o, const char *entry, int required, int *out,
                           char *err, size_t errlen)
{
    if (scn_int(o, "message", 1, s->n_requests, 0, out) != 0)
        SCN_FAIL(s, err, errlen, entry, "message must be a request's number, 1 to %d",
                 s->n_requests);
    if (required && *out == 0)
        SCN_FAIL(s, err, errlen, entry, "message is required");
    return 0;
}

/* Room for the list arr of at most max entries of size bytes each. 0 with
 * *out (calloc'd, owned by s), or -1 with err. */
static int scn_list(scenario_t *s, const cJSON *arr, const char *name, int max, size_t size,
                    void **out, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n > max)
        SCN_FAIL(s, err, errlen, name, "must be a list of at most %d entries", max);
    *out = calloc((size_t)n + 1, size);
    if (!*out)
        SCN_FAIL(s, err, errlen, name, "out of memory");
    return 0;
}

static int scn_rules(scenario_t *s, const cJSON *arr, char *err, size_t errlen)
{
    static const char *const keys[] = {"channel", "result",  "from",  "until",
                                       "attempt", "message", "times", NULL};
    void *list = NULL;
    if (!arr)
        return 0;
    if (scn_list(s, arr, "providers", SCENARIO_MAX_RULES, sizeof *s->rules, &list, err, errlen) !=
        0)
        return -1;
    s->rules = list;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        scenario_rule_t *r = &s->rules[s->n_rules];
        snprintf(r->entry, sizeof r->entry, "providers[%d]", s->n_rules);
        s->n_rules++;
        if (!cJSON_IsObject(o))
            SCN_FAIL(s, err, errlen, r->entry, "must be an object");
        if (scn_known(s, o, keys, r->entry, err, errlen) != 0 ||
            scn_channel_field(s, o, r->entry, r->channel, sizeof r->channel, 1, err, errlen) != 0 ||
            scn_message_ref(s, o, r->entry, 0, &r->message, err, errlen) != 0)
            return -1;
        if ((cJSON_GetObjectItemCaseSensitive(o, "from") &&
             scn_entry_time(s, o, "from", r->entry, &r->from, err, errlen) != 0) ||
            (cJSON_GetObjectItemCaseSensitive(o, "until") &&
             scn_entry_time(s, o, "until", r->entry, &r->until, err, errlen) != 0))
            return -1;
        if (r->from && r->until && r->until <= r->from)
            SCN_FAIL(s, err, errlen, r->entry, "until must be after from");
        if (scn_int(o, "attempt", 1, 100, 0, &r->attempt) != 0)
            SCN_FAIL(s, err, errlen, r->entry, "attempt must be 1 to 100");
        if (scn_int(o, "times", 1, 100000, 0, &r->times) != 0)
            SCN_FAIL(s, err, errlen, r->entry, "times must be 1 to 100000");
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
        char why[320];
        if (!cJSON_IsString(res))
            SCN_FAIL(s, err, errlen, r->entry, "result is required (e.g. \"ok\", \"500\")");
        if (scenario_result_parse(res->valuestring, r->channel, &r->result, why, sizeof why) != 0)
            SCN_FAIL(s, err, errlen, r->entry, "result: %s", why);
    }
    return 0;
}

static int scn_events(scenario_t *s, const cJSON *arr, char *err, size_t errlen)
{
    static const char *const names[] = {"reply", "stop", "start", "click", "preferences"};
    static const char *const keys[] = {"at",     "event",  "channel", "message",
                                       "action", "client", NULL};
    void *list = NULL;
    if (!arr)
        return 0;
    if (scn_list(s, arr, "events", SCENARIO_MAX_EVENTS, sizeof *s->events, &list, err, errlen) != 0)
        return -1;
    s->events = list;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        scenario_event_t *e = &s->events[s->n_events];
        snprintf(e->entry, sizeof e->entry, "events[%d]", s->n_events);
        s->n_events++;
        if (!cJSON_IsObject(o))
            SCN_FAIL(s, err, errlen, e->entry, "must be an object");
        if (scn_known(s, o, keys, e->entry, err, errlen) != 0 ||
            scn_entry_time(s, o, "at", e->entry, &e->at, err, errlen) != 0)
            return -1;
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        int kind = -1;
        for (int i = 0; i < 5 && cJSON_IsString(ev); i++)
            if (strcmp(ev->valuestring, names[i]) == 0)
                kind = i;
        if (kind < 0)
            SCN_FAIL(s, err, errlen, e->entry,
                     "event must be reply, stop, start, click or preferences");
        e->kind = (scenario_event_kind_t)kind;
        int needs_channel = kind <= SCENARIO_EV_START;
        if (scn_channel_field(s, o, e->entry, e->channel, sizeof e->channel, needs_channel, err,
                              errlen) != 0)
            return -1;
        if ((kind == SCENARIO_EV_STOP || kind == SCENARIO_EV_START || kind == SCENARIO_EV_REPLY) &&
            strcmp(e->channel, CH_NAME_EMAIL) == 0)
            SCN_FAIL(s, err, errlen, e->entry, "%s comes by sms or whatsapp, not email",
                     names[kind]);
        if (scn_message_ref(s, o, e->entry, kind == SCENARIO_EV_CLICK, &e->message, err, errlen) !=
            0)
            return -1;
        if (scn_str(o, "action", e->action, sizeof e->action) != 0)
            SCN_FAIL(s, err, errlen, e->entry, "action must be a short string");
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "client");
        if (kind == SCENARIO_EV_PREFS) {
            if (!cJSON_IsObject(cl))
                SCN_FAIL(s, err, errlen, e->entry,
                         "preferences needs a client object of the fields that change");
            /* checked now, on a scratch copy of the client: it must apply later */
            rules_input_t scratch = s->client;
            char why[256];
            if (rules_input_client(&scratch, cl, why, sizeof why) != 0)
                SCN_FAIL(s, err, errlen, e->entry, "client: %s", why);
            e->client = cJSON_Duplicate(cl, 1);
            if (!e->client)
                SCN_FAIL(s, err, errlen, e->entry, "out of memory");
        } else if (cl) {
            SCN_FAIL(s, err, errlen, e->entry, "client belongs to a preferences event");
        }
    }
    return 0;
}

static int scn_expect_message(scenario_t *s, const cJSON *o, scenario_expect_t *x, char *err,
                              size_t errlen)
{
    static const char *const keys[] = {"message",    "state", "channel",  "attempts", "local_time",
                                       "local_date", "via",   "segments", NULL};
    static const char *const states[] = {"sent",    "delivered", "failed", "bounced",
                                         "skipped", "pending",   "queued", "batched"};
    if (scn_known(s, o, keys, x->entry, err, errlen) != 0 ||
        scn_message_ref(s, o, x->entry, 1, &x->message, err, errlen) != 0 ||
        scn_channel_field(s, o, x->entry, x->channel, sizeof x->channel, 0, err, errlen) != 0)
        return -1;
    if (scn_str(o, "state", x->state, sizeof x->state) != 0)
        SCN_FAIL(s, err, errlen, x->entry, "state must be a string");
    int known = !x->state[0];
    for (size_t i = 0; i < sizeof states / sizeof *states && !known; i++)
        known = strcmp(x->state, states[i]) == 0;
    if (!known)
        SCN_FAIL(s, err, errlen, x->entry, "unknown state \"%s\"", x->state);
    if (scn_int(o, "attempts", 0, 1000, -1, &x->attempts) != 0 ||
        scn_int(o, "segments", 1, 100, -1, &x->segments) != 0)
        SCN_FAIL(s, err, errlen, x->entry, "attempts and segments must be counts");
    if (scn_str(o, "local_time", x->local_time, sizeof x->local_time) != 0 ||
        (x->local_time[0] && !scn_hhmm(x->local_time)))
        SCN_FAIL(s, err, errlen, x->entry, "local_time must be HH:MM");
    int y, mo, d, used = 0;
    if (scn_str(o, "local_date", x->local_date, sizeof x->local_date) != 0 ||
        (x->local_date[0] &&
         (sscanf(x->local_date, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || x->local_date[used] ||
          mo < 1 || mo > 12 || d < 1 || d > scn_days_in_month(y, mo))))
        SCN_FAIL(s, err, errlen, x->entry, "local_date must be a date, YYYY-MM-DD");
    if (scn_str(o, "via", x->via, sizeof x->via) != 0 ||
        (x->via[0] && strcmp(x->via, "free_text") != 0 && strcmp(x->via, "template") != 0 &&
         strcmp(x->via, "digest") != 0 && strcmp(x->via, "text") != 0))
        SCN_FAIL(s, err, errlen, x->entry, "via must be text, free_text, template or digest");
    return 0;
}

static int scn_expect(scenario_t *s, const cJSON *arr, char *err, size_t errlen)
{
    void *list = NULL;
    if (!arr)
        return 0;
    if (scn_list(s, arr, "expect", SCENARIO_MAX_EXPECT, sizeof *s->expect, &list, err, errlen) != 0)
        return -1;
    s->expect = list;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        scenario_expect_t *x = &s->expect[s->n_expect];
        snprintf(x->entry, sizeof x->entry, "expect[%d]", s->n_expect);
        s->n_expect++;
        x->attempts = x->segments = -1;
        if (!cJSON_IsObject(o))
            SCN_FAIL(s, err, errlen, x->entry, "must be an object");
        const cJSON *digest = cJSON_GetObjectItemCaseSensitive(o, "digest");
        const cJSON *quiet = cJSON_GetObjectItemCaseSensitive(o, "quiet");
        const cJSON *sent = cJSON_GetObjectItemCaseSensitive(o, "reached");
        if (digest) {
            x->kind = SCENARIO_EXPECT_DIGEST;
            int m = cJSON_GetArraySize(digest);
            if (!cJSON_IsArray(digest) || m < 2 || m > SCENARIO_DIGEST_MAX ||
                cJSON_GetArraySize(o) != 1)
                SCN_FAIL(s, err, errlen, x->entry,
                         "digest is a list of 2 to %d message numbers, alone in its entry",
                         SCENARIO_DIGEST_MAX);
            const cJSON *it;
            cJSON_ArrayForEach(it, digest)
            {
                if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > s->n_requests ||
                    it->valuedouble != (double)(int)it->valuedouble)
                    SCN_FAIL(s, err, errlen, x->entry, "digest: %d is no request's number",
                             cJSON_IsNumber(it) ? (int)it->valuedouble : 0);
                x->members[x->n_members++] = (int)it->valuedouble;
            }
        } else if (quiet) {
            x->kind = SCENARIO_EXPECT_QUIET;
            const cJSON *a = cJSON_GetArrayItem(quiet, 0), *b = cJSON_GetArrayItem(quiet, 1);
            if (!cJSON_IsArray(quiet) || cJSON_GetArraySize(quiet) != 2 || !cJSON_IsString(a) ||
                !cJSON_IsString(b) || !scn_hhmm(a->valuestring) || !scn_hhmm(b->valuestring) ||
                cJSON_GetArraySize(o) != 1)
                SCN_FAIL(s, err, errlen, x->entry,
                         "quiet is [\"HH:MM\", \"HH:MM\"] (local), alone in its entry");
            snprintf(x->quiet_start, sizeof x->quiet_start, "%s", a->valuestring);
            snprintf(x->quiet_end, sizeof x->quiet_end, "%s", b->valuestring);
        } else if (sent) {
            x->kind = SCENARIO_EXPECT_SENT;
            if (scn_int(o, "reached", 0, SCENARIO_MAX_REQUESTS, -1, &x->count) != 0 ||
                cJSON_GetArraySize(o) != 1)
                SCN_FAIL(s, err, errlen, x->entry, "reached is a count, alone in its entry");
        } else {
            x->kind = SCENARIO_EXPECT_MESSAGE;
            if (scn_expect_message(s, o, x, err, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

static int scn_top(scenario_t *s, const cJSON *root, char *err, size_t errlen)
{
    static const char *const keys[] = {"name",    "start",  "until",       "transport",
                                       "plan_id", "client", "requests",    "providers",
                                       "events",  "expect", "description", NULL};
    if (!cJSON_IsObject(root))
        SCN_FAIL(s, err, errlen, "scenario", "must be a JSON object");
    if (scn_known(s, root, keys, "scenario", err, errlen) != 0)
        return -1;
    if (scn_str(root, "name", s->name, sizeof s->name) != 0)
        SCN_FAIL(s, err, errlen, "name", "must be a string of at most %zu bytes",
                 sizeof s->name - 1);
    /* the client first: local times are the client's */
    if (scn_client(s, cJSON_GetObjectItemCaseSensitive(root, "client"), err, errlen) != 0)
        return -1;
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(root, "start");
    char why[200];
    if (!cJSON_IsString(start) || start->valuestring[0] == '+' ||
        scn_time(s, start->valuestring, &s->start, why, sizeof why) != 0)
        SCN_FAIL(s, err, errlen, "start", "%s",
                 cJSON_IsString(start) && start->valuestring[0] != '+'
                     ? why
                     : "must be a date and time such as 2026-03-09T08:00");
    s->until = s->start + 7 * 86400.0;
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(root, "until");
    if (until) {
        if (!cJSON_IsString(until) || scn_time(s, until->valuestring, &s->until, why, sizeof why))
            SCN_FAIL(s, err, errlen, "until", "%s", cJSON_IsString(until) ? why : "must be a time");
        if (s->until <= s->start || s->until - s->start > SCENARIO_MAX_DAYS * 86400.0)
            SCN_FAIL(s, err, errlen, "until", "must be after start, by at most %d days",
                     SCENARIO_MAX_DAYS);
    }
    char transport[16];
    if (scn_str(root, "transport", transport, sizeof transport) != 0 ||
        (transport[0] && strcmp(transport, "live") != 0 && strcmp(transport, "sandbox") != 0))
        SCN_FAIL(s, err, errlen, "transport", "must be \"live\" or \"sandbox\"");
    s->sandbox = strcmp(transport, "sandbox") == 0;
    snprintf(s->plan_id, sizeof s->plan_id, "%s", "5a1d0000-0000-4000-8000-000000000001");
    if (cJSON_GetObjectItemCaseSensitive(root, "plan_id") &&
        scn_str(root, "plan_id", s->plan_id, sizeof s->plan_id) != 0)
        SCN_FAIL(s, err, errlen, "plan_id", "must be a UUID");
    if (scn_requests(s, cJSON_GetObjectItemCaseSensitive(root, "requests"), err, errlen) != 0 ||
        scn_rules(s, cJSON_GetObjectItemCaseSensitive(root, "providers"), err, errlen) != 0 ||
        scn_events(s, cJSON_GetObjectItemCaseSensitive(root, "events"), err, errlen) != 0 ||
        scn_expect(s, cJSON_GetObjectItemCaseSensitive(root, "expect"), err, errlen) != 0)
        return -1;
    return 0;
}

int scenario_load(const char *path, scenario_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    buf_t b;
    buf_init(&b, SCENARIO_FILE_MAX);
    if (file_append(path, path, &b, err, errlen) != 0) {
        buf_free(&b);
        return -1;
    }
    char why[200];
    cJSON *root = rules_json_parse(b.data ? b.data : "", b.len, why, sizeof why);
    buf_free(&b);
    if (!root) {
        errmsg_set(err, errlen, "%s: %s", path, why);
        return -1;
    }
    int rc = scn_top(s, root, err, errlen);
    cJSON_Delete(root);
    if (rc != 0)
        scenario_free(s);
    return rc;
}

void scenario_free(scenario_t *s)
{
    for (int i = 0; i < s->n_requests; i++)
        cJSON_Delete(s->requests[i].context);
    for (int i = 0; i < s->n_events; i++)
        cJSON_Delete(s->events[i].client);
    free(s->requests);
    free(s->events);
    free(s->rules);
    free(s->expect);
    char path[sizeof s->path];
    memcpy(path, s->path, sizeof path);
    memset(s, 0, sizeof *s);
    memcpy(s->path, path, sizeof path);
}
