/* rules: one decision through the operator's Lua rules, with everything
 * they return checked before the engine may act on it. */
#include "policy/rules.h"
#include "util/errmsg.h"

#include "tz/tz.h"
#include "util/buf.h"
#include "util/file.h"
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
    buf_t trace;                  /* reused by every decision for its trace text */
    /* the zone the last trace was written in, and UTC (owned by the tz cache) */
    const tz_zone_t *zone, *utc;
    char zone_name[TZ_NAME_MAX + 1];
    int last_rc; /* LH_* of the last failed rule call of this decision */
    char opt_out_key[CH_N][sizeof "opt_out_" + CH_NAME_MAX]; /* "opt_out_<channel>" */
};

int rules_last_failure(const rules_set_t *s)
{
    return s->last_rc;
}

const char *rules_version(const rules_set_t *s)
{
    return lh_version(s->h);
}

const char *rules_action_name(policy_action_t a)
{
    return a == POLICY_RETRY ? "retry" : a == POLICY_NEXT_CHANNEL ? "next_channel" : "fail";
}

/* Copies src into dst[cap], cut to fit, as snprintf("%s") would: the
 * decision's fields are filled on every call, and snprintf's format machinery
 * costs more than the copy itself. */
static void rules_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int rules_known_channel(const char *name)
{
    ch_id_t ch;
    return ch_by_name(name, &ch) == 0;
}

int rules_channel_allowed(const policy_client_t *c, const char *channel, const char **why)
{
    const char *no = NULL;
    ch_id_t ch;
    if (ch_by_name(channel, &ch) != 0)
        no = "unknown_channel";
    else if (c->channels_off & CH_BIT(ch))
        no = "unavailable";
    else if (c->opt_out[ch])
        no = "opt_out";
    else if (!(ch_contact(ch) == CH_CONTACT_EMAIL ? c->has_email : c->has_phone))
        no = "no_contact";
    else if (ch_contact(ch) == CH_CONTACT_EMAIL && c->email_suppressed)
        no = "suppressed";
    else if (ch_needs_consent(ch) && !c->consent[ch])
        no = "no_consent";
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

/* Calls module.fn with args and converts its first nres (1 or 2) results.
 * res[1] is NULL when the function returned a single value. */
static int rules_call(rules_set_t *s, const char *module, const char *fn, const cJSON *const *args,
                      int nargs, int nres, cJSON *res[2], char *err, size_t errlen)
{
    lua_State *L = lh_lua(s->h);
    res[0] = res[1] = NULL;
    int top = lua_gettop(L);
    if (!lua_checkstack(L, nargs + 8)) {
        errmsg_set(err, errlen, "%s.%s: Lua stack exhausted", module, fn);
        return -1;
    }
    for (int i = 0; i < nargs; i++) {
        if (lh_push_json(s->h, args[i], err, errlen) != LH_OK) {
            lua_settop(L, top);
            return -1;
        }
    }
    int rc = lh_call(s->h, module, fn, nargs, nres, err, errlen);
    if (rc != LH_OK)
        s->last_rc = rc;
    if (rc == LH_EMISUSE) {
        errmsg_set(err, errlen, "%s/%s.lua: function %s is missing", s->dirname, module, fn);
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
            errmsg_set(err, errlen, "%s.%s: %s", module, fn, cerr);
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

/* ---- inputs: read-only views built straight from the structs ----------- */

/* Slots in the set's table of shared views (immutable, so one view can serve
 * every decision): consent and available by their bits (one per channel),
 * preferred channel lists made of known channels by their base-(CH_N + 1)
 * code. */
#define RULES_VIEW_CONSENT   1
#define RULES_VIEW_AVAILABLE (RULES_VIEW_CONSENT + (1 << CH_N))
#define RULES_VIEW_PREFS     (RULES_VIEW_AVAILABLE + (1 << CH_N))
/* The msg and client inputs: one table and its view each, refilled by every
 * decision (see rules_push_input). */
#define RULES_INPUT_MSG    (-1)
#define RULES_INPUT_CLIENT (-3)

static int rules_channel_index(const char *name)
{
    ch_id_t ch;
    return ch_by_name(name, &ch) == 0 ? (int)ch : -1;
}

/* Whole numbers go in as integers, as lh_push_json does, so that a rule can
 * use them as table keys and with string.format("%d"). */
static void rules_push_number(lua_State *L, double d)
{
    if (d == floor(d) && fabs(d) <= 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, d);
}

static void rules_set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v != 0);
    lua_setfield(L, -2, k);
}

static void rules_set_string(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* Pushes the shared view in slot, or NULL-equivalent nil when not built yet
 * (the caller builds it and stores it with rules_view_keep). */
static int rules_view_cached(rules_set_t *s, lua_State *L, int slot)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, s);
    int t = lua_rawgeti(L, -1, slot);
    lua_remove(L, -2);
    if (t == LUA_TNIL)
        lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* Turns the table on top into a view and keeps it in slot (0: not kept). */
static void rules_view_keep(rules_set_t *s, lua_State *L, int slot)
{
    lh_readonly(s->h);
    if (slot <= 0)
        return;
    lua_rawgetp(L, LUA_REGISTRYINDEX, s);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, slot);
    lua_pop(L, 1);
}

/* {<channel> = bool, ...} for every channel, from its CH_BIT in bits. */
static void rules_push_flags(rules_set_t *s, lua_State *L, int slot, unsigned bits)
{
    if (rules_view_cached(s, L, slot + (int)bits))
        return;
    lua_createtable(L, 0, CH_N);
    for (int ch = 0; ch < CH_N; ch++)
        rules_set_bool(L, ch_name((ch_id_t)ch), bits & CH_BIT(ch));
    rules_view_keep(s, L, slot + (int)bits);
}

/* The CH_BIT set of the channels whose flag is set. */
static unsigned rules_flag_bits(const int flags[CH_N])
{
    unsigned bits = 0;
    for (int ch = 0; ch < CH_N; ch++)
        if (flags[ch])
            bits |= CH_BIT(ch);
    return bits;
}

static void rules_push_prefs(rules_set_t *s, lua_State *L, const policy_client_t *c)
{
    int n = 0, code = 0;
    for (; n < POLICY_MAX_CHANNELS && c->preferred_channels[n]; n++) {
        int i = rules_channel_index(c->preferred_channels[n]);
        code = code < 0 || i < 0 ? -1 : code * (CH_N + 1) + i + 1;
    }
    int slot = code < 0 ? 0 : RULES_VIEW_PREFS + code;
    if (slot && rules_view_cached(s, L, slot))
        return;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, c->preferred_channels[i]);
        lua_rawseti(L, -2, i + 1);
    }
    rules_view_keep(s, L, slot);
}

/* Pushes the input table kept in slot and its view (slot - 1), made on the
 * first decision. Reusing them spares four tables per decision. It keeps
 * the isolation between decisions because the rules never hold the table
 * itself (a view hides it: rawget, next and getmetatable see nothing) and
 * every decision sets every field the table can have, nil for those it
 * lacks: a view a rule kept from an earlier call shows the current
 * decision, never an earlier client's data. */
static void rules_push_input(rules_set_t *s, lua_State *L, int slot, int nfields)
{
    if (rules_view_cached(s, L, slot)) {
        if (!rules_view_cached(s, L, slot - 1))
            lua_pushnil(L); /* cannot happen: both are kept together */
        return;
    }
    lua_createtable(L, 0, nfields);
    lua_pushvalue(L, -1);
    lh_readonly(s->h);
    lua_rawgetp(L, LUA_REGISTRYINDEX, s);
    lua_pushvalue(L, -3);
    lua_rawseti(L, -2, slot);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, slot - 1);
    lua_pop(L, 1);
}

static void rules_set_string_or_nil(lua_State *L, const char *k, const char *v)
{
    if (v && v[0])
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, k);
}

static void rules_set_time_or_nil(lua_State *L, const char *k, double t)
{
    if (t > 0)
        rules_push_number(L, t);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, k);
}

/* Pushes msg's table (which the host may still fill in) and its view. */
static void rules_push_msg(rules_set_t *s, lua_State *L, const policy_msg_t *m, double now)
{
    rules_push_input(s, L, RULES_INPUT_MSG, 10);
    lua_pushvalue(L, -2); /* the table, filled on top of the stack */
    rules_set_string(L, "type", m->message_type ? m->message_type : "");
    /* no urgency while channels.urgency decides it */
    int urgent = m->urgency && m->urgency[0];
    rules_set_string_or_nil(L, "urgency", urgent ? m->urgency : NULL);
    if (urgent)
        lua_pushinteger(L, policy_priority(m->urgency));
    else
        lua_pushnil(L);
    lua_setfield(L, -2, "priority");
    rules_set_bool(L, "has_attachment", m->has_attachment);
    rules_set_string_or_nil(L, "preferred_channel", m->preferred_channel);
    rules_push_number(L, now);
    lua_setfield(L, -2, "now");
    /* set by the host before batching.decide */
    lua_pushnil(L);
    lua_setfield(L, -2, "send_at");
    lua_pushnil(L);
    lua_setfield(L, -2, "channel");
    lua_pop(L, 1);
}

/* Pushes the client's view. */
static void rules_push_client(rules_set_t *s, lua_State *L, const policy_client_t *c)
{
    rules_push_input(s, L, RULES_INPUT_CLIENT, 17);
    lua_insert(L, -2); /* the table on top, filled then popped */
    rules_set_bool(L, "has_email", c->has_email);
    rules_set_bool(L, "has_phone", c->has_phone);
    rules_set_bool(L, "email_suppressed", c->email_suppressed);
    rules_set_bool(L, "vip", c->vip);
    rules_push_flags(s, L, RULES_VIEW_AVAILABLE, ~c->channels_off & (CH_BIT(CH_N) - 1u));
    lua_setfield(L, -2, "available");
    rules_set_string(L, "timezone", c->timezone && c->timezone[0] ? c->timezone : "UTC");
    rules_push_flags(s, L, RULES_VIEW_CONSENT, rules_flag_bits(c->consent));
    lua_setfield(L, -2, "consent");
    for (int ch = 0; ch < CH_N; ch++)
        rules_set_bool(L, s->opt_out_key[ch], c->opt_out[ch]);
    rules_set_string(L, "quiet_hours_start",
                     c->quiet_start && c->quiet_start[0] ? c->quiet_start : "22:00");
    rules_set_string(L, "quiet_hours_end",
                     c->quiet_end && c->quiet_end[0] ? c->quiet_end : "08:00");
    rules_push_prefs(s, L, c);
    lua_setfield(L, -2, "preferred_channels");
    rules_set_time_or_nil(L, "last_contact_at", c->last_contact_at);
    rules_set_time_or_nil(L, "whatsapp_window_until", c->whatsapp_window_until);
    lua_pop(L, 1);
}

/* ---- reading what the rules returned, straight from the stack ---------- */

/* Raw reads only: a result's metatable is rule code, which must not run
 * outside the call's budget. */
static int rules_field(lua_State *L, int t, const char *k)
{
    if (!lua_istable(L, t)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushstring(L, k);
    return lua_rawget(L, t);
}

/* Copies the optional free-text reason at idx into out, shortened.
 * A reason that is not text the trace can carry fails the call. */
static int rules_why_at(lua_State *L, int idx, char out[RULES_WHY_MAX], const char *what, char *err,
                        size_t errlen)
{
    out[0] = '\0';
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    size_t len = 0;
    const char *p = lua_tolstring(L, idx, &len);
    if (!lh_text_ok(p, len)) {
        errmsg_set(err, errlen, "%s: result string is too long or not valid UTF-8 text", what);
        return -1;
    }
    rules_copy(out, RULES_WHY_MAX, p);
    return 0;
}

static int rules_why_field(lua_State *L, int t, const char *k, char out[RULES_WHY_MAX],
                           const char *what, char *err, size_t errlen)
{
    rules_field(L, t, k);
    int rc = rules_why_at(L, -1, out, what, err, errlen);
    lua_pop(L, 1);
    return rc;
}

/* Checks the list of channel names at idx; copies them into out. */
static int rules_check_channels(rules_set_t *s, int idx, const policy_client_t *c, int max,
                                char out[][12], int *n, const char *what, char *err, size_t errlen)
{
    lua_State *L = lh_lua(s->h);
    *n = 0;
    int top = lua_gettop(L);
    lh_push_raw(s->h, idx);
    int t = top + 1;
    int rc = -1;
    lua_Integer len = lua_istable(L, t) ? (lua_Integer)lua_rawlen(L, t) : -1;
    if (len < 0) {
        errmsg_set(err, errlen, "%s: channels must be a list", what);
        goto out;
    }
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, t, i);
        const char *ch = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        const char *why;
        if (!ch || !rules_known_channel(ch)) {
            errmsg_set(err, errlen, "%s: unknown channel (email, sms or whatsapp expected)", what);
            goto out;
        }
        if (!rules_channel_allowed(c, ch, &why)) {
            errmsg_set(err, errlen, "%s: refused %s for this client (%s)", what, ch, why);
            goto out;
        }
        for (int j = 0; j < *n; j++)
            if (strcmp(out[j], ch) == 0) {
                errmsg_set(err, errlen, "%s: %s listed twice", what, ch);
                goto out;
            }
        if (*n >= max) {
            errmsg_set(err, errlen, "%s: more than %d channels", what, max);
            goto out;
        }
        rules_copy(out[(*n)++], 12, ch);
        lua_pop(L, 1);
    }
    /* a list has no keys besides 1..n (counting stops one past n) */
    lua_Integer keys = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (++keys > len) {
            lua_pop(L, 1);
            break;
        }
    }
    if (keys != len) {
        errmsg_set(err, errlen, "%s: channels must be a list", what);
        goto out;
    }
    rc = 0;
out:
    lua_settop(L, top);
    return rc;
}

/* Calls module.fn on the nargs values on top of the stack, leaving nres
 * results there. */
static int rules_invoke(rules_set_t *s, const char *module, const char *fn, int nargs, int nres,
                        char *err, size_t errlen)
{
    int rc = lh_call(s->h, module, fn, nargs, nres, err, errlen);
    if (rc != LH_OK)
        s->last_rc = rc;
    if (rc == LH_EMISUSE)
        errmsg_set(err, errlen, "%s/%s.lua: function %s is missing", s->dirname, module, fn);
    return rc == LH_OK ? 0 : -1;
}

/* ---- the trace ---------------------------------------------------------- */

typedef struct rules_trace {
    char why[4][RULES_WHY_MAX]; /* per step: the rule's reason, "" for none */
    char cand[POLICY_MAX_CHANNELS][12];
    int ncand;
} rules_trace_t;

/* Writes v as width digits (zero-padded) at p. */
static char *rules_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* A number as cJSON prints one: whole numbers in int range as integers,
 * others with the fewest digits that read back the same. */
static int rules_json_number(buf_t *b, double d)
{
    if (d == floor(d) && d >= 0 && d <= 2147483647.0) {
        char tmp[12];
        int v = (int)d, n = 1;
        for (int x = v; x >= 10; x /= 10)
            n++;
        rules_digits(tmp, v, n);
        return buf_append(b, tmp, (size_t)n);
    }
    if (d == floor(d) && d >= -2147483648.0 && d <= 2147483647.0)
        return buf_printf(b, "%d", (int)d);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%1.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof tmp, "%1.17g", d);
    return buf_puts(b, tmp);
}

/* The characters of a JSON string, without the quotes: runs of plain
 * characters are copied whole (the trace is written on every decision). */
static int rules_json_chars(buf_t *b, const char *v)
{
    int rc = 0;
    while (*v && rc == 0) {
        size_t n = 0;
        while (v[n] && (unsigned char)v[n] >= 0x20 && v[n] != '"' && v[n] != '\\')
            n++;
        if (n) {
            rc = buf_append(b, v, n);
            v += n;
            continue;
        }
        unsigned char ch = (unsigned char)*v++;
        if (ch == '"' || ch == '\\')
            rc = buf_putc(b, '\\') | buf_putc(b, (char)ch);
        else if (ch == '\n')
            rc = buf_puts(b, "\\n");
        else if (ch == '\r')
            rc = buf_puts(b, "\\r");
        else if (ch == '\t')
            rc = buf_puts(b, "\\t");
        else
            rc = buf_printf(b, "\\u%04x", ch);
    }
    return rc;
}

static int rules_json_string(buf_t *b, const char *v)
{
    return buf_putc(b, '"') | rules_json_chars(b, v) | buf_putc(b, '"');
}

/* "YYYY-MM-DD" then sep then "HH:MM", plus ":SS" when with_sec; out holds 20. */
static void rules_clock_text(const tz_local_t *l, char sep, int with_sec, char out[20])
{
    char *p = rules_digits(out, l->year, 4);
    *p++ = '-';
    p = rules_digits(p, l->month, 2);
    *p++ = '-';
    p = rules_digits(p, l->day, 2);
    *p++ = sep;
    p = rules_digits(p, l->hour, 2);
    *p++ = ':';
    p = rules_digits(p, l->min, 2);
    if (with_sec) {
        *p++ = ':';
        p = rules_digits(p, l->sec, 2);
    }
    *p = '\0';
}

static int rules_json_channels(buf_t *b, char ch[][12], int n)
{
    int rc = buf_putc(b, '[');
    for (int i = 0; i < n; i++) {
        if (i)
            rc |= buf_putc(b, ',');
        rc |= rules_json_string(b, ch[i]);
    }
    return rc | buf_putc(b, ']');
}

static int rules_json_step(buf_t *b, const char *step, int first)
{
    int rc = first ? 0 : buf_putc(b, ',');
    rc |= buf_puts(b, "{\"step\":");
    rc |= rules_json_string(b, step);
    return rc | buf_puts(b, ",\"result\":");
}

static int rules_json_why(buf_t *b, const char *why, int with_why)
{
    if (!with_why || !why[0])
        return 0;
    return buf_puts(b, ",\"why\":") | rules_json_string(b, why);
}

/* The trace as a JSON array: one object per step run, {step, result, why}
 * (why only when the rule gave one), the timing step with the instant in
 * UTC ("at") and on the client's wall clock ("local"). */
static int rules_trace_render(const rules_trace_t *t, policy_decision_t *d, const tz_zone_t *utc,
                              const tz_zone_t *zone, int with_why, buf_t *b)
{
    buf_reset(b);
    int rc = buf_putc(b, '[');
    rc |= rules_json_step(b, "channels.select", 1);
    if (d->skip_reason[0]) {
        rc |= buf_puts(b, "{\"skip\":") | rules_json_string(b, d->skip_reason) | buf_putc(b, '}');
        rc |= rules_json_why(b, t->why[0], with_why) | buf_puts(b, "}]");
        return rc;
    }
    rc |= buf_puts(b, "{\"channels\":") | rules_json_channels(b, (char(*)[12])t->cand, t->ncand);
    rc |= buf_putc(b, '}') | rules_json_why(b, t->why[0], with_why) | buf_putc(b, '}');

    rc |= rules_json_step(b, "fallback.chain", 0);
    rc |= buf_puts(b, "{\"primary\":") | rules_json_string(b, d->primary);
    rc |= buf_puts(b, ",\"fallbacks\":") | rules_json_channels(b, d->fallback, d->n_fallback);
    rc |= buf_putc(b, '}') | rules_json_why(b, t->why[1], with_why) | buf_putc(b, '}');

    rc |= rules_json_step(b, "timing.send_at", 0) | rules_json_number(b, d->send_at);
    rc |= rules_json_why(b, t->why[2], with_why);
    /* send_at is checked to be within days of now, so the years have four
     * digits and the fixed-width formatting below fits */
    char when[20];
    tz_local_t l;
    if (utc && tz_localtime(utc, (int64_t)floor(d->send_at), &l) == 0) {
        rules_clock_text(&l, 'T', 1, when);
        rc |= buf_puts(b, ",\"at\":\"") | buf_puts(b, when) | buf_puts(b, "Z\"");
    } else {
        char iso[32];
        time_iso8601(d->send_at, iso);
        rc |= buf_puts(b, ",\"at\":") | rules_json_string(b, iso);
    }
    if (zone && tz_localtime(zone, (int64_t)floor(d->send_at), &l) == 0) {
        rules_clock_text(&l, ' ', 0, when);
        rc |= buf_puts(b, ",\"local\":\"") | buf_puts(b, when) | buf_putc(b, ' ');
        rc |= rules_json_chars(b, l.abbr) | buf_putc(b, '"');
    }
    rc |= buf_putc(b, '}');

    rc |= rules_json_step(b, "batching.decide", 0);
    if (d->batch_key[0]) {
        rc |= buf_puts(b, "{\"batch\":true,\"key\":") | rules_json_string(b, d->batch_key);
        rc |=
            buf_printf(b, ",\"window_seconds\":%d,\"max_size\":%d}", d->batch_window, d->batch_max);
    } else {
        rc |= buf_puts(b, "{\"batch\":false}");
    }
    rc |= rules_json_why(b, t->why[3], with_why) | buf_puts(b, "}]");
    return rc;
}

/* Writes the trace into d->trace_json; a trace that does not fit (long
 * reasons) loses its reasons rather than the decision. */
static void rules_trace_finish(rules_set_t *s, const rules_trace_t *t, policy_decision_t *d,
                               const char *tz)
{
    if (!s->zone || strcmp(s->zone_name, tz) != 0) {
        char zerr[64];
        s->zone = tz_get(tz, zerr, sizeof zerr);
        rules_copy(s->zone_name, sizeof s->zone_name, s->zone ? tz : "");
    }
    if (rules_trace_render(t, d, s->utc, s->zone, 1, &s->trace) != 0 &&
        rules_trace_render(t, d, s->utc, s->zone, 0, &s->trace) != 0) {
        snprintf(d->trace_json, sizeof d->trace_json,
                 "[{\"step\":\"trace\",\"result\":\"too long\"}]");
        return;
    }
    memcpy(d->trace_json, s->trace.data, s->trace.len + 1);
}

/* ---- the decision ------------------------------------------------------ */

/* The four steps, with msg's table at base+1, its view at base+2 and
 * client's view at base+3. Leaves the stack at base+3. */
static int rules_decide_steps(rules_set_t *s, int base, const policy_client_t *c, double now,
                              const rules_pending_t *pending, policy_decision_t *d,
                              rules_trace_t *tr, char *err, size_t errlen)
{
    lua_State *L = lh_lua(s->h);
    const int msg = base + 1, mview = base + 2, cview = base + 3, res = base + 4;

    /* channels.select */
    lua_pushvalue(L, mview);
    lua_pushvalue(L, cview);
    if (rules_invoke(s, "channels", "select", 2, 1, err, errlen) != 0)
        return -1;
    lh_push_raw(s->h, res);
    lua_replace(L, res);
    int has_skip = rules_field(L, res, "skip") != LUA_TNIL;
    int has_chans = rules_field(L, res, "channels") != LUA_TNIL;
    if (!lua_istable(L, res) || has_skip == has_chans) {
        errmsg_set(err, errlen,
                   "channels.select: must return {channels = {...}} or {skip = reason}");
        return -1;
    }
    if (rules_why_field(L, res, "why", tr->why[0], "channels.select", err, errlen) != 0)
        return -1;
    if (has_skip) {
        size_t len = 0;
        const char *skip =
            lua_type(L, res + 1) == LUA_TSTRING ? lua_tolstring(L, res + 1, &len) : NULL;
        if (!skip || strlen(skip) != len || !rules_word_ok(skip, sizeof d->skip_reason, 0)) {
            errmsg_set(err, errlen, "channels.select: skip must be a short printable reason");
            return -1;
        }
        rules_copy(d->status, sizeof d->status, "skipped");
        rules_copy(d->skip_reason, sizeof d->skip_reason, skip);
        d->send_at = now;
        return 0;
    }
    if (rules_check_channels(s, res + 2, c, POLICY_MAX_CHANNELS, tr->cand, &tr->ncand,
                             "channels.select", err, errlen) != 0)
        return -1;
    if (tr->ncand == 0) {
        errmsg_set(err, errlen, "channels.select: empty channel list (return {skip = reason})");
        return -1;
    }
    lua_settop(L, cview);

    /* fallback.chain: the candidates are the checked copy, the rule's own
     * table never reaches the next step */
    lua_pushvalue(L, mview);
    lua_pushvalue(L, cview);
    lua_createtable(L, tr->ncand, 0);
    for (int i = 0; i < tr->ncand; i++) {
        lua_pushstring(L, tr->cand[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (rules_invoke(s, "fallback", "chain", 3, 1, err, errlen) != 0)
        return -1;
    lh_push_raw(s->h, res);
    lua_replace(L, res);
    int prim_type = rules_field(L, res, "primary");
    int fb_type = rules_field(L, res, "fallbacks");
    if (rules_why_field(L, res, "why", tr->why[1], "fallback.chain", err, errlen) != 0)
        return -1;
    const char *prim = prim_type == LUA_TSTRING ? lua_tostring(L, res + 1) : NULL;
    const char *why;
    if (!prim) {
        errmsg_set(err, errlen,
                   "fallback.chain: must return {primary = channel, fallbacks = {...}}");
        return -1;
    }
    if (!rules_known_channel(prim)) {
        errmsg_set(err, errlen,
                   "fallback.chain primary: unknown channel (email, sms or whatsapp expected)");
        return -1;
    }
    if (!rules_channel_allowed(c, prim, &why)) {
        errmsg_set(err, errlen, "fallback.chain primary: refused %s for this client (%s)", prim,
                   why);
        return -1;
    }
    rules_copy(d->primary, sizeof d->primary, prim);
    if (fb_type != LUA_TNIL &&
        rules_check_channels(s, res + 2, c, POLICY_MAX_CHANNELS - 1, d->fallback, &d->n_fallback,
                             "fallback.chain fallbacks", err, errlen) != 0)
        return -1;
    for (int i = 0; i < d->n_fallback; i++)
        if (strcmp(d->fallback[i], d->primary) == 0) {
            errmsg_set(err, errlen, "fallback.chain: the primary %s is also a fallback",
                       d->primary);
            return -1;
        }
    lua_settop(L, cview);

    /* timing.send_at */
    lua_pushvalue(L, mview);
    lua_pushvalue(L, cview);
    rules_push_number(L, now);
    if (rules_invoke(s, "timing", "send_at", 3, 2, err, errlen) != 0)
        return -1;
    int isnum = 0;
    double at = lua_type(L, res) == LUA_TNUMBER ? lua_tonumberx(L, res, &isnum) : NAN;
    if (rules_why_at(L, res + 1, tr->why[2], "timing.send_at", err, errlen) != 0)
        return -1;
    if (!isnum || !isfinite(at)) {
        errmsg_set(err, errlen, "timing.send_at: must return epoch seconds (a number)");
        return -1;
    }
    if (at < now - RULES_MAX_BEHIND_S || at > now + RULES_MAX_AHEAD_S) {
        errmsg_set(err, errlen, "timing.send_at: %.0f s from now is out of range (-%d .. +%d)",
                   at - now, RULES_MAX_BEHIND_S, RULES_MAX_AHEAD_S);
        return -1;
    }
    d->send_at = at < now ? now : at;
    lua_settop(L, cview);

    /* batching.decide: msg now carries the chosen send_at and channel */
    rules_push_number(L, d->send_at);
    lua_setfield(L, msg, "send_at");
    lua_pushstring(L, d->primary);
    lua_setfield(L, msg, "channel");
    lua_pushvalue(L, mview);
    lua_pushvalue(L, cview);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, pending ? pending->count : 0);
    lua_setfield(L, -2, "count");
    if (pending && pending->oldest_at > 0) {
        rules_push_number(L, pending->oldest_at);
        lua_setfield(L, -2, "oldest_at");
    }
    if (rules_invoke(s, "batching", "decide", 3, 1, err, errlen) != 0)
        return -1;
    lh_push_raw(s->h, res);
    lua_replace(L, res);
    int b_type = rules_field(L, res, "batch");
    if (rules_why_field(L, res, "reason", tr->why[3], "batching.decide", err, errlen) != 0)
        return -1;
    if (!lua_istable(L, res) || b_type != LUA_TBOOLEAN) {
        errmsg_set(err, errlen, "batching.decide: must return {batch = true|false, ...}");
        return -1;
    }
    if (lua_toboolean(L, res + 1)) {
        size_t klen = 0;
        int k_type = rules_field(L, res, "key");
        const char *k = k_type == LUA_TSTRING ? lua_tolstring(L, -1, &klen) : NULL;
        int w_type = rules_field(L, res, "window_seconds");
        double w = lua_tonumber(L, -1);
        int m_type = rules_field(L, res, "max_size");
        double mx = lua_tonumber(L, -1);
        int ok = k && strlen(k) == klen && rules_word_ok(k, sizeof d->batch_key, 1) &&
                 w_type == LUA_TNUMBER && w >= 1 && w <= 86400 && w == floor(w) &&
                 m_type == LUA_TNUMBER && mx >= 1 && mx <= RULES_BATCH_MAX && mx == floor(mx);
        if (!ok) {
            errmsg_set(err, errlen,
                       "batching.decide: a batch needs key ([A-Za-z0-9_:.-], < 64 chars), "
                       "window_seconds (1..86400) and max_size (1..%d)",
                       RULES_BATCH_MAX);
            return -1;
        }
        rules_copy(d->batch_key, sizeof d->batch_key, k);
        d->batch_window = (int)w;
        d->batch_max = (int)mx;
    }
    lua_settop(L, cview);

    rules_copy(d->status, sizeof d->status,
               d->send_at <= now + RULES_DUE_SLACK_S ? "queued" : "pending");
    return 0;
}

/* The urgency of a message that gave none: channels.urgency(msg) when the
 * rules define it (one of the four words), else the built-in default. 0, or
 * -1 with err when the hook fails or answers something else. */
static int rules_urgency(rules_set_t *s, const policy_msg_t *m, double now, char *out, size_t cap,
                         char *err, size_t errlen)
{
    lua_State *L = lh_lua(s->h);
    int top = lua_gettop(L);
    rules_push_msg(s, L, m, now); /* the table and its read-only view */
    int rc = lh_call(s->h, "channels", "urgency", 1, 1, err, errlen);
    if (rc == LH_EMISUSE) { /* rules written before the hook: the seed's defaults */
        lua_settop(L, top);
        rules_copy(out, cap, policy_default_urgency(m->message_type));
        return 0;
    }
    if (rc != LH_OK) {
        lua_settop(L, top);
        s->last_rc = rc;
        return -1;
    }
    const char *u = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int ok = 0;
    static const char *const words[] = {"critical", "high", "normal", "low"};
    for (int i = 0; u && i < 4; i++)
        ok |= strcmp(u, words[i]) == 0;
    if (ok)
        rules_copy(out, cap, u);
    lua_settop(L, top);
    if (!ok) {
        errmsg_set(err, errlen, "channels.urgency: must return critical, high, normal or low");
        return -1;
    }
    return 0;
}

int rules_decide(rules_set_t *s, const policy_msg_t *given, const policy_client_t *c, double now,
                 const rules_pending_t *pending, policy_decision_t *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    s->last_rc = LH_OK;
    rules_copy(d->rules_version, sizeof d->rules_version, rules_version(s));
    if (!isfinite(now)) {
        errmsg_set(err, errlen, "rules_decide: bad time");
        return -1;
    }
    lua_State *L = lh_lua(s->h);
    int base = lua_gettop(L);
    if (!lua_checkstack(L, 16)) {
        errmsg_set(err, errlen, "rules_decide: Lua stack exhausted");
        return -1;
    }
    if (given->urgency && given->urgency[0])
        rules_copy(d->urgency, sizeof d->urgency, given->urgency);
    else if (rules_urgency(s, given, now, d->urgency, sizeof d->urgency, err, errlen) != 0)
        return -1;
    policy_msg_t resolved = *given;
    resolved.urgency = d->urgency;
    const policy_msg_t *m = &resolved;
    d->priority = policy_priority(m->urgency);
    /* msg and client are built once and shared by the four calls as
     * read-only views: no step can change what the next one sees. */
    rules_push_msg(s, L, m, now);
    rules_push_client(s, L, c);
    rules_trace_t tr;
    memset(tr.why, 0, sizeof tr.why);
    tr.ncand = 0;
    int rc = rules_decide_steps(s, base, c, now, pending, d, &tr, err, errlen);
    lua_settop(L, base);
    if (rc == 0)
        rules_trace_finish(s, &tr, d, c->timezone && c->timezone[0] ? c->timezone : "UTC");
    return rc;
}

int rules_on_failure(rules_set_t *s, const policy_msg_t *m, int attempt, const char *channel,
                     const char *category, int provider_code, int retry_after,
                     const char *const *remaining_channels, int n_remaining, rules_failure_t *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s->last_rc = LH_OK;
    cJSON *msg = rules_msg_json(m);
    cJSON *jattempt = cJSON_CreateNumber(attempt);
    cJSON *e = cJSON_CreateObject();
    cJSON *rem = cJSON_AddArrayToObject(e, "remaining");
    int ok = msg && jattempt && e && rem &&
             cJSON_AddStringToObject(e, "category", category ? category : "") &&
             cJSON_AddNumberToObject(e, "provider_code", provider_code) &&
             cJSON_AddStringToObject(e, "channel", channel ? channel : "") &&
             (retry_after < 0 || cJSON_AddNumberToObject(e, "retry_after", retry_after));
    for (int i = 0; ok && i < n_remaining; i++)
        ok = cJSON_AddItemToArray(rem, cJSON_CreateString(remaining_channels[i]));
    cJSON *res[2] = {NULL, NULL};
    int rc = -1;
    if (!ok) {
        errmsg_set(err, errlen, "rules_on_failure: out of memory");
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
            errmsg_set(err, errlen, "fallback.on_failure: retry needs after = 1..%d seconds",
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
            errmsg_set(err, errlen,
                       "fallback.on_failure: next_channel must name one of the remaining channels");
            rc = -1;
        } else {
            out->action = POLICY_NEXT_CHANNEL;
            snprintf(out->next_channel, sizeof out->next_channel, "%s", ch->valuestring);
        }
    } else if (strcmp(a, "fail") == 0) {
        out->action = POLICY_FAIL;
    } else {
        errmsg_set(err, errlen,
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
        .consent = {[CH_EMAIL] = 1, [CH_SMS] = 1, [CH_WHATSAPP] = 1},
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
            errmsg_set(err, errlen, "smoke test (%s vendor_options): %s", urgencies[i], e2);
            return -1;
        }
    }
    policy_msg_t m = {.message_type = "welcome", .urgency = "normal"};
    const char *rem[1] = {"sms"};
    rules_failure_t f;
    if (rules_on_failure(s, &m, 1, "email", "transient", 0, -1, rem, 1, &f, e2, sizeof e2) != 0) {
        errmsg_set(err, errlen, "smoke test (on_failure): %s", e2);
        return -1;
    }
    return 0;
}

rules_set_t *rules_load(const char *dir, const lh_limits_t *limits, char *err, size_t errlen)
{
    rules_set_t *s = calloc(1, sizeof *s);
    if (!s) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    size_t llen;
    const char *label = file_dir_label(dir, &llen);
    snprintf(s->dirname, sizeof s->dirname, "%.*s", (int)llen, label);
    buf_init(&s->trace, sizeof((policy_decision_t *)0)->trace_json - 1);
    for (int ch = 0; ch < CH_N; ch++)
        snprintf(s->opt_out_key[ch], sizeof s->opt_out_key[ch], "opt_out_%s", ch_name((ch_id_t)ch));
    s->utc = tz_get("UTC", NULL, 0); /* NULL: the trace formats "at" another way */

    s->h = lh_new(limits, err, errlen);
    if (!s->h || rules_time_register(s->h) != 0) {
        if (s->h)
            errmsg_set(err, errlen, "cannot register the time helpers");
        rules_free(s);
        return NULL;
    }
    /* the shared input views, keyed by the set (see RULES_VIEW_*) */
    lua_newtable(lh_lua(s->h));
    lua_rawsetp(lh_lua(s->h), LUA_REGISTRYINDEX, s);
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
    buf_free(&s->trace);
    free(s);
}
