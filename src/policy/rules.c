/* rules: one decision through the operator's Lua rules, with everything
 * they return checked before the engine may act on it. */
#include "policy/rules.h"

#include "tz/tz.h"
#include "util/timefmt.h"

#include <lauxlib.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_WHY_MAX   160 /* a rule's free-text reason, as kept in the trace */
#define RULES_NAME_MAX  64
#define RULES_BATCH_MAX 100

struct rules_set {
    lh_state_t *h;                /* owned */
    char dirname[RULES_NAME_MAX]; /* last component of the directory, for messages */
};

static const char *const rules_channels[] = {"email", "sms", "whatsapp"};

static void rules_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rules_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *rules_version(const rules_set_t *s)
{
    return lh_version(s->h);
}

const char *rules_action_name(policy_action_t a)
{
    return a == POLICY_RETRY ? "retry" : a == POLICY_NEXT_CHANNEL ? "next_channel" : "fail";
}

static int rules_known_channel(const char *ch)
{
    for (size_t i = 0; i < 3; i++)
        if (ch && strcmp(ch, rules_channels[i]) == 0)
            return 1;
    return 0;
}

int rules_channel_allowed(const policy_client_t *c, const char *channel, const char **why)
{
    const char *no = NULL;
    unsigned bit = strcmp(channel, "email") == 0 ? POLICY_CH_EMAIL
                   : strcmp(channel, "sms") == 0 ? POLICY_CH_SMS
                                                 : POLICY_CH_WHATSAPP;
    if (!rules_known_channel(channel))
        no = "unknown_channel";
    else if (c->channels_off & bit)
        no = "unavailable";
    else if (strcmp(channel, "email") == 0)
        /* consent to email is implied by giving the address */
        no = c->opt_out_email ? "opt_out" : !c->has_email ? "no_contact" : NULL;
    else if (strcmp(channel, "sms") == 0)
        no = c->opt_out_sms    ? "opt_out"
             : !c->has_phone   ? "no_contact"
             : !c->consent_sms ? "no_consent"
                               : NULL;
    else
        no = c->opt_out_whatsapp    ? "opt_out"
             : !c->has_phone        ? "no_contact"
             : !c->consent_whatsapp ? "no_consent"
                                    : NULL;
    if (why)
        *why = no;
    return no == NULL;
}

/* ---- inputs ------------------------------------------------------------ */

static cJSON *rules_msg_json(const policy_msg_t *m)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "type", m->message_type ? m->message_type : "") &&
             cJSON_AddStringToObject(o, "urgency", m->urgency ? m->urgency : "normal") &&
             cJSON_AddNumberToObject(o, "priority", policy_priority(m->urgency)) &&
             cJSON_AddBoolToObject(o, "has_attachment", m->has_attachment != 0);
    if (ok && m->preferred_channel && m->preferred_channel[0])
        ok = cJSON_AddStringToObject(o, "preferred_channel", m->preferred_channel) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* client.available: which channels the engine can deliver on now. */
static int rules_available_json(cJSON *o, unsigned off)
{
    cJSON *a = cJSON_AddObjectToObject(o, "available");
    return a && cJSON_AddBoolToObject(a, "email", !(off & POLICY_CH_EMAIL)) &&
           cJSON_AddBoolToObject(a, "sms", !(off & POLICY_CH_SMS)) &&
           cJSON_AddBoolToObject(a, "whatsapp", !(off & POLICY_CH_WHATSAPP));
}

static cJSON *rules_client_json(const policy_client_t *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *consent = cJSON_AddObjectToObject(o, "consent");
    cJSON *prefs = cJSON_AddArrayToObject(o, "preferred_channels");
    if (!o || !consent || !prefs) {
        cJSON_Delete(o);
        return NULL;
    }
    int ok =
        cJSON_AddBoolToObject(o, "has_email", c->has_email != 0) &&
        cJSON_AddBoolToObject(o, "has_phone", c->has_phone != 0) &&
        cJSON_AddBoolToObject(o, "vip", c->vip != 0) &&
        rules_available_json(o, c->channels_off) &&
        cJSON_AddStringToObject(o, "timezone",
                                c->timezone && c->timezone[0] ? c->timezone : "UTC") &&
        cJSON_AddBoolToObject(consent, "email", c->consent_email != 0) &&
        cJSON_AddBoolToObject(consent, "sms", c->consent_sms != 0) &&
        cJSON_AddBoolToObject(consent, "whatsapp", c->consent_whatsapp != 0) &&
        cJSON_AddBoolToObject(o, "opt_out_email", c->opt_out_email != 0) &&
        cJSON_AddBoolToObject(o, "opt_out_sms", c->opt_out_sms != 0) &&
        cJSON_AddBoolToObject(o, "opt_out_whatsapp", c->opt_out_whatsapp != 0) &&
        cJSON_AddStringToObject(o, "quiet_hours_start",
                                c->quiet_start && c->quiet_start[0] ? c->quiet_start : "22:00") &&
        cJSON_AddStringToObject(o, "quiet_hours_end",
                                c->quiet_end && c->quiet_end[0] ? c->quiet_end : "08:00");
    for (int i = 0; ok && i < POLICY_MAX_CHANNELS && c->preferred_channels[i]; i++) {
        cJSON *s = cJSON_CreateString(c->preferred_channels[i]);
        ok = s && cJSON_AddItemToArray(prefs, s);
    }
    if (ok && c->last_contact_at > 0)
        ok = cJSON_AddNumberToObject(o, "last_contact_at", c->last_contact_at) != NULL;
    if (ok && c->whatsapp_window_until > 0)
        ok = cJSON_AddNumberToObject(o, "whatsapp_window_until", c->whatsapp_window_until) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Calls module.fn with args and converts its first nres (1 or 2) results.
 * res[1] is NULL when the function returned a single value. */
static int rules_call(rules_set_t *s, const char *module, const char *fn, const cJSON *const *args,
                      int nargs, int nres, cJSON *res[2], char *err, size_t errlen)
{
    lua_State *L = lh_lua(s->h);
    res[0] = res[1] = NULL;
    int top = lua_gettop(L);
    if (!lua_checkstack(L, nargs + 8)) {
        rules_seterr(err, errlen, "%s.%s: Lua stack exhausted", module, fn);
        return -1;
    }
    for (int i = 0; i < nargs; i++) {
        if (lh_push_json(s->h, args[i], err, errlen) != LH_OK) {
            lua_settop(L, top);
            return -1;
        }
    }
    int rc = lh_call(s->h, module, fn, nargs, nres, err, errlen);
    if (rc == LH_EMISUSE) {
        rules_seterr(err, errlen, "%s/%s.lua: function %s is missing", s->dirname, module, fn);
        return -1;
    }
    if (rc != LH_OK)
        return -1;
    char cerr[256];
    for (int i = 0; i < nres; i++) {
        int idx = top + 1 + i;
        if (i > 0 && lua_isnil(L, idx))
            break;
        if (lh_to_json(s->h, idx, &res[i], cerr, sizeof cerr) != LH_OK) {
            rules_seterr(err, errlen, "%s.%s: %s", module, fn, cerr);
            cJSON_Delete(res[0]);
            res[0] = NULL;
            lua_settop(L, top);
            return -1;
        }
    }
    lua_settop(L, top);
    return 0;
}

/* ---- checks on what the rules returned -------------------------------- */

/* A short printable ASCII string: reasons and batch keys end up in logs,
 * JSON answers and the database. */
static int rules_word_ok(const char *v, size_t max, int key)
{
    size_t n = strlen(v);
    if (n == 0 || n >= max)
        return 0;
    for (const char *p = v; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch > 0x7e)
            return 0;
        if (key && !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || strchr("_:.-", ch)))
            return 0;
    }
    return 1;
}

/* Copies a rule's optional free-text reason for the trace, shortened. */
static void rules_why(const cJSON *o, const char *field, char out[RULES_WHY_MAX])
{
    out[0] = '\0';
    const cJSON *w = o ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
    if (cJSON_IsString(w))
        snprintf(out, RULES_WHY_MAX, "%s", w->valuestring);
}

/* Checks an array of channel names; copies them into out. */
static int rules_check_channels(const cJSON *arr, const policy_client_t *c, int max, char out[][12],
                                int *n, const char *what, char *err, size_t errlen)
{
    *n = 0;
    if (!cJSON_IsArray(arr)) {
        rules_seterr(err, errlen, "%s: channels must be a list", what);
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !rules_known_channel(it->valuestring)) {
            rules_seterr(err, errlen, "%s: unknown channel (email, sms or whatsapp expected)",
                         what);
            return -1;
        }
        const char *why;
        if (!rules_channel_allowed(c, it->valuestring, &why)) {
            rules_seterr(err, errlen, "%s: refused %s for this client (%s)", what, it->valuestring,
                         why);
            return -1;
        }
        for (int j = 0; j < *n; j++)
            if (strcmp(out[j], it->valuestring) == 0) {
                rules_seterr(err, errlen, "%s: %s listed twice", what, it->valuestring);
                return -1;
            }
        if (*n >= max) {
            rules_seterr(err, errlen, "%s: more than %d channels", what, max);
            return -1;
        }
        snprintf(out[(*n)++], 12, "%s", it->valuestring);
    }
    return 0;
}

/* ---- the decision ------------------------------------------------------ */

typedef struct rules_trace {
    cJSON *steps; /* owned array */
} rules_trace_t;

static cJSON *rules_trace_step(rules_trace_t *t, const char *step, cJSON *result /* taken */,
                               const char *why)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(t->steps, o)) {
        cJSON_Delete(o);
        cJSON_Delete(result);
        return NULL;
    }
    cJSON_AddStringToObject(o, "step", step);
    if (result)
        cJSON_AddItemToObject(o, "result", result);
    if (why && why[0])
        cJSON_AddStringToObject(o, "why", why);
    return o;
}

static cJSON *rules_string_array(char ch[][12], int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(ch[i]));
    return a;
}

/* Writes the trace into d->trace_json; a trace that does not fit (long
 * reasons) loses its reasons rather than the decision. */
static void rules_trace_finish(rules_trace_t *t, policy_decision_t *d)
{
    if (cJSON_PrintPreallocated(t->steps, d->trace_json, (int)sizeof d->trace_json - 5, 0))
        return;
    const cJSON *st;
    cJSON_ArrayForEach(st, t->steps) cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)st, "why");
    if (!cJSON_PrintPreallocated(t->steps, d->trace_json, (int)sizeof d->trace_json - 5, 0))
        snprintf(d->trace_json, sizeof d->trace_json,
                 "[{\"step\":\"trace\",\"result\":\"too long\"}]");
}

/* Appends the local wall clock of t in tz to a trace step. */
static void rules_trace_local(cJSON *step, const char *tz, double t)
{
    char when[32];
    time_iso8601(t, when);
    cJSON_AddStringToObject(step, "at", when);
    char zerr[64];
    const tz_zone_t *z = tz_get(tz, zerr, sizeof zerr);
    tz_local_t l;
    if (z && tz_localtime(z, (int64_t)floor(t), &l) == 0) {
        char local[64];
        snprintf(local, sizeof local, "%04d-%02d-%02d %02d:%02d %s", l.year, l.month, l.day, l.hour,
                 l.min, l.abbr);
        cJSON_AddStringToObject(step, "local", local);
    }
}

static int rules_decide_steps(rules_set_t *s, const policy_msg_t *m, const policy_client_t *c,
                              double now, const rules_pending_t *pending, policy_decision_t *d,
                              cJSON *msg, cJSON *client, rules_trace_t *tr, char *err,
                              size_t errlen)
{
    cJSON *res[2] = {NULL, NULL};
    char why[RULES_WHY_MAX];
    const char *tz = c->timezone && c->timezone[0] ? c->timezone : "UTC";

    /* channels.select */
    const cJSON *a1[2] = {msg, client};
    if (rules_call(s, "channels", "select", a1, 2, 1, res, err, errlen) != 0)
        return -1;
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(res[0], "skip");
    const cJSON *chans = cJSON_GetObjectItemCaseSensitive(res[0], "channels");
    rules_why(res[0], "why", why);
    char cand[POLICY_MAX_CHANNELS][12];
    int ncand = 0;
    if (!cJSON_IsObject(res[0]) || (skip && chans) || (!skip && !chans)) {
        cJSON_Delete(res[0]);
        rules_seterr(err, errlen,
                     "channels.select: must return {channels = {...}} or {skip = reason}");
        return -1;
    }
    if (skip) {
        if (!cJSON_IsString(skip) || !rules_word_ok(skip->valuestring, sizeof d->skip_reason, 0)) {
            cJSON_Delete(res[0]);
            rules_seterr(err, errlen, "channels.select: skip must be a short printable reason");
            return -1;
        }
        snprintf(d->status, sizeof d->status, "skipped");
        snprintf(d->skip_reason, sizeof d->skip_reason, "%s", skip->valuestring);
        d->send_at = now;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "skip", d->skip_reason);
        cJSON_Delete(res[0]);
        rules_trace_step(tr, "channels.select", r, why);
        return 0;
    }
    int rc = rules_check_channels(chans, c, POLICY_MAX_CHANNELS, cand, &ncand, "channels.select",
                                  err, errlen);
    cJSON_Delete(res[0]);
    if (rc != 0)
        return -1;
    if (ncand == 0) {
        rules_seterr(err, errlen, "channels.select: empty channel list (return {skip = reason})");
        return -1;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "channels", rules_string_array(cand, ncand));
    rules_trace_step(tr, "channels.select", r, why);

    /* fallback.chain */
    cJSON *cands = rules_string_array(cand, ncand);
    const cJSON *a2[3] = {msg, client, cands};
    rc = cands ? rules_call(s, "fallback", "chain", a2, 3, 1, res, err, errlen) : -1;
    cJSON_Delete(cands);
    if (rc != 0)
        return -1;
    const cJSON *prim = cJSON_GetObjectItemCaseSensitive(res[0], "primary");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(res[0], "fallbacks");
    rules_why(res[0], "why", why);
    char one[1][12];
    int n1 = 0;
    cJSON *parr = cJSON_CreateArray();
    if (parr && cJSON_IsString(prim))
        cJSON_AddItemToArray(parr, cJSON_CreateString(prim->valuestring));
    rc = rules_check_channels(parr, c, 1, one, &n1, "fallback.chain primary", err, errlen);
    cJSON_Delete(parr);
    if (rc == 0 && n1 != 1) {
        rules_seterr(err, errlen,
                     "fallback.chain: must return {primary = channel, fallbacks = {...}}");
        rc = -1;
    }
    if (rc == 0 && fb)
        rc = rules_check_channels(fb, c, POLICY_MAX_CHANNELS - 1, d->fallback, &d->n_fallback,
                                  "fallback.chain fallbacks", err, errlen);
    cJSON_Delete(res[0]);
    if (rc != 0)
        return -1;
    for (int i = 0; i < d->n_fallback; i++)
        if (strcmp(d->fallback[i], one[0]) == 0) {
            rules_seterr(err, errlen, "fallback.chain: the primary %s is also a fallback", one[0]);
            return -1;
        }
    snprintf(d->primary, sizeof d->primary, "%s", one[0]);
    r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "primary", d->primary);
    cJSON_AddItemToObject(r, "fallbacks", rules_string_array(d->fallback, d->n_fallback));
    rules_trace_step(tr, "fallback.chain", r, why);

    /* timing.send_at */
    cJSON *jnow = cJSON_CreateNumber(now);
    const cJSON *a3[3] = {msg, client, jnow};
    rc = jnow ? rules_call(s, "timing", "send_at", a3, 3, 2, res, err, errlen) : -1;
    cJSON_Delete(jnow);
    if (rc != 0)
        return -1;
    double at = cJSON_IsNumber(res[0]) ? res[0]->valuedouble : NAN;
    why[0] = '\0';
    if (cJSON_IsString(res[1]))
        snprintf(why, sizeof why, "%s", res[1]->valuestring);
    cJSON_Delete(res[0]);
    cJSON_Delete(res[1]);
    if (!isfinite(at)) {
        rules_seterr(err, errlen, "timing.send_at: must return epoch seconds (a number)");
        return -1;
    }
    if (at < now - RULES_MAX_BEHIND_S || at > now + RULES_MAX_AHEAD_S) {
        rules_seterr(err, errlen, "timing.send_at: %.0f s from now is out of range (-%d .. +%d)",
                     at - now, RULES_MAX_BEHIND_S, RULES_MAX_AHEAD_S);
        return -1;
    }
    d->send_at = at < now ? now : at;
    cJSON *step = rules_trace_step(tr, "timing.send_at", cJSON_CreateNumber(d->send_at), why);
    if (step)
        rules_trace_local(step, tz, d->send_at);

    /* batching.decide */
    cJSON *pend = cJSON_CreateObject();
    cJSON_AddNumberToObject(pend, "count", pending ? pending->count : 0);
    if (pending && pending->oldest_at > 0)
        cJSON_AddNumberToObject(pend, "oldest_at", pending->oldest_at);
    cJSON_DeleteItemFromObjectCaseSensitive(msg, "send_at");
    cJSON_AddNumberToObject(msg, "send_at", d->send_at);
    const cJSON *a4[3] = {msg, client, pend};
    rc = rules_call(s, "batching", "decide", a4, 3, 1, res, err, errlen);
    cJSON_Delete(pend);
    if (rc != 0)
        return -1;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(res[0], "batch");
    rules_why(res[0], "reason", why);
    if (!cJSON_IsObject(res[0]) || !cJSON_IsBool(b)) {
        cJSON_Delete(res[0]);
        rules_seterr(err, errlen, "batching.decide: must return {batch = true|false, ...}");
        return -1;
    }
    if (cJSON_IsTrue(b)) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(res[0], "key");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(res[0], "window_seconds");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(res[0], "max_size");
        int ok = cJSON_IsString(k) && rules_word_ok(k->valuestring, sizeof d->batch_key, 1) &&
                 cJSON_IsNumber(w) && w->valuedouble >= 1 && w->valuedouble <= 86400 &&
                 w->valuedouble == floor(w->valuedouble) && cJSON_IsNumber(mx) &&
                 mx->valuedouble >= 1 && mx->valuedouble <= RULES_BATCH_MAX &&
                 mx->valuedouble == floor(mx->valuedouble);
        if (!ok) {
            cJSON_Delete(res[0]);
            rules_seterr(err, errlen,
                         "batching.decide: a batch needs key ([A-Za-z0-9_:.-], < 64 chars), "
                         "window_seconds (1..86400) and max_size (1..%d)",
                         RULES_BATCH_MAX);
            return -1;
        }
        snprintf(d->batch_key, sizeof d->batch_key, "%s", k->valuestring);
        d->batch_window = (int)w->valuedouble;
        d->batch_max = (int)mx->valuedouble;
    }
    cJSON_Delete(res[0]);
    r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "batch", d->batch_key[0] != 0);
    if (d->batch_key[0]) {
        cJSON_AddStringToObject(r, "key", d->batch_key);
        cJSON_AddNumberToObject(r, "window_seconds", d->batch_window);
        cJSON_AddNumberToObject(r, "max_size", d->batch_max);
    }
    rules_trace_step(tr, "batching.decide", r, why);

    snprintf(d->status, sizeof d->status, "%s",
             d->send_at <= now + RULES_DUE_SLACK_S ? "queued" : "pending");
    return 0;
}

int rules_decide(rules_set_t *s, const policy_msg_t *m, const policy_client_t *c, double now,
                 const rules_pending_t *pending, policy_decision_t *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->priority = policy_priority(m->urgency);
    snprintf(d->rules_version, sizeof d->rules_version, "%s", rules_version(s));
    if (!isfinite(now)) {
        rules_seterr(err, errlen, "rules_decide: bad time");
        return -1;
    }
    rules_trace_t tr = {cJSON_CreateArray()};
    cJSON *msg = rules_msg_json(m);
    cJSON *client = rules_client_json(c);
    int rc = -1;
    if (!tr.steps || !msg || !client || !cJSON_AddNumberToObject(msg, "now", now))
        rules_seterr(err, errlen, "rules_decide: out of memory");
    else
        rc = rules_decide_steps(s, m, c, now, pending, d, msg, client, &tr, err, errlen);
    if (rc == 0)
        rules_trace_finish(&tr, d);
    cJSON_Delete(tr.steps);
    cJSON_Delete(msg);
    cJSON_Delete(client);
    return rc;
}

int rules_on_failure(rules_set_t *s, const policy_msg_t *m, int attempt, const char *channel,
                     const char *category, int provider_code, const char *const *remaining_channels,
                     int n_remaining, rules_failure_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *msg = rules_msg_json(m);
    cJSON *jattempt = cJSON_CreateNumber(attempt);
    cJSON *e = cJSON_CreateObject();
    cJSON *rem = cJSON_AddArrayToObject(e, "remaining");
    int ok = msg && jattempt && e && rem &&
             cJSON_AddStringToObject(e, "category", category ? category : "") &&
             cJSON_AddNumberToObject(e, "provider_code", provider_code) &&
             cJSON_AddStringToObject(e, "channel", channel ? channel : "");
    for (int i = 0; ok && i < n_remaining; i++)
        ok = cJSON_AddItemToArray(rem, cJSON_CreateString(remaining_channels[i]));
    cJSON *res[2] = {NULL, NULL};
    int rc = -1;
    if (!ok) {
        rules_seterr(err, errlen, "rules_on_failure: out of memory");
    } else {
        const cJSON *args[3] = {msg, jattempt, e};
        rc = rules_call(s, "fallback", "on_failure", args, 3, 1, res, err, errlen);
    }
    cJSON_Delete(msg);
    cJSON_Delete(jattempt);
    cJSON_Delete(e);
    if (rc != 0)
        return -1;

    const cJSON *act = cJSON_GetObjectItemCaseSensitive(res[0], "action");
    const char *a = cJSON_IsString(act) ? act->valuestring : "";
    char why[RULES_WHY_MAX];
    rules_why(res[0], "reason", why);
    /* the reason is informative only: a long one is cut, not refused */
    size_t wl = strnlen(why, sizeof out->reason - 1);
    memcpy(out->reason, why, wl);
    out->reason[wl] = '\0';
    rc = 0;
    if (strcmp(a, "retry") == 0) {
        const cJSON *after = cJSON_GetObjectItemCaseSensitive(res[0], "after");
        if (!cJSON_IsNumber(after) || !(after->valuedouble >= 1) ||
            after->valuedouble > POLICY_RETRY_MAX_S) {
            rules_seterr(err, errlen, "fallback.on_failure: retry needs after = 1..%d seconds",
                         POLICY_RETRY_MAX_S);
            rc = -1;
        } else {
            out->action = POLICY_RETRY;
            out->retry_after = (int)ceil(after->valuedouble);
        }
    } else if (strcmp(a, "next_channel") == 0) {
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(res[0], "channel");
        int found = 0;
        for (int i = 0; cJSON_IsString(ch) && i < n_remaining; i++)
            found |= strcmp(ch->valuestring, remaining_channels[i]) == 0;
        if (!found) {
            rules_seterr(
                err, errlen,
                "fallback.on_failure: next_channel must name one of the remaining channels");
            rc = -1;
        } else {
            out->action = POLICY_NEXT_CHANNEL;
            snprintf(out->next_channel, sizeof out->next_channel, "%s", ch->valuestring);
        }
    } else if (strcmp(a, "fail") == 0) {
        out->action = POLICY_FAIL;
    } else {
        rules_seterr(err, errlen,
                     "fallback.on_failure: action must be \"retry\", \"next_channel\" or \"fail\"");
        rc = -1;
    }
    cJSON_Delete(res[0]);
    return rc;
}

/* ---- loading ----------------------------------------------------------- */

/* Every function once on canned inputs, through the same checks as live
 * decisions: a set that cannot decide for an ordinary client never goes
 * live. */
static int rules_smoke(rules_set_t *s, char *err, size_t errlen)
{
    policy_client_t c = {
        .has_email = 1,
        .has_phone = 1,
        .timezone = "UTC",
        .consent_email = 1,
        .consent_sms = 1,
        .consent_whatsapp = 1,
        .preferred_channels = {"email"},
        .quiet_start = "22:00",
        .quiet_end = "08:00",
        .last_contact_at = 1768474800.0 - 3600,
    };
    static const char *const urgencies[] = {"critical", "high", "normal", "low"};
    const double now = 1768474800.0; /* 2026-01-15T11:00:00Z, a Thursday */
    char e2[512];
    for (int i = 0; i < 4; i++) {
        policy_msg_t m = {.message_type = "vendor_options", .urgency = urgencies[i]};
        policy_decision_t d;
        if (rules_decide(s, &m, &c, now, NULL, &d, e2, sizeof e2) != 0) {
            rules_seterr(err, errlen, "smoke test (%s vendor_options): %s", urgencies[i], e2);
            return -1;
        }
    }
    policy_msg_t m = {.message_type = "welcome", .urgency = "normal"};
    const char *rem[1] = {"sms"};
    rules_failure_t f;
    if (rules_on_failure(s, &m, 1, "email", "transient", 0, rem, 1, &f, e2, sizeof e2) != 0) {
        rules_seterr(err, errlen, "smoke test (on_failure): %s", e2);
        return -1;
    }
    return 0;
}

rules_set_t *rules_load(const char *dir, const lh_limits_t *limits, char *err, size_t errlen)
{
    rules_set_t *s = calloc(1, sizeof *s);
    if (!s) {
        rules_seterr(err, errlen, "out of memory");
        return NULL;
    }
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    size_t start = dlen;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(s->dirname, sizeof s->dirname, "%.*s", (int)(dlen - start), dir + start);

    s->h = lh_new(limits, err, errlen);
    if (!s->h || rules_time_register(s->h) != 0) {
        if (s->h)
            rules_seterr(err, errlen, "cannot register the time helpers");
        rules_free(s);
        return NULL;
    }
    if (lh_load_dir(s->h, dir, NULL, err, errlen) != LH_OK || rules_smoke(s, err, errlen) != 0) {
        rules_free(s);
        return NULL;
    }
    return s;
}

void rules_free(rules_set_t *s)
{
    if (!s)
        return;
    lh_free(s->h);
    free(s);
}
