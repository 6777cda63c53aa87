/* P5: the cost of one full policy decision through the shipped Lua rules
 * (channels.select -> fallback.chain -> timing.send_at -> batching.decide,
 * with every check rules_decide makes) against the same policy written in C
 * (policy_seed_decide), on the same pre-generated inputs, one thread, one
 * after the other in the same run.
 *
 * Prints one line per figure, ending with the ratio:
 *   P5 agreement: ... mismatches 0/1000
 *   P5 policy: lua N decisions/s (.. us each), c N decisions/s (.. us each),
 *      lua/c cost ratio R (target <= 3), lua per core >= 100k: yes|no
 * and with --breakdown, where the Lua side's time goes (JSON in, Lua
 * execution, JSON out, the rest of rules_decide), measured on a second host
 * state loaded from the same directory.
 *
 * Exits non-zero only when the work went wrong (rules that do not load, a
 * decision that fails, Lua and C disagreeing); speed is reported, never
 * judged. */
#include "policy/lua_host.h"
#include "policy/policy.h"
#include "policy/rules.h"
#include "policy/seed_c.h"
#include "tz/tz.h"

#include <lua.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define P5_DEFAULT_INPUTS  1000
#define P5_MAX_INPUTS      100000
#define P5_DEFAULT_SECONDS 3.0
#define P5_MAX_SECONDS     60.0
#define P5_MAX_WARMUP_S    0.5
/* Bounds every timed loop in count too, whatever the clock says. */
#define P5_MAX_DECISIONS 200000000L
/* Decisions between clock reads: the clock must not be part of the figure. */
#define P5_CLOCK_EVERY  32
#define P5_MAX_PASSES   10000 /* passes over the inputs per part of the breakdown */
#define P5_TARGET_RATIO 3.0
#define P5_TARGET_PER_S 100000.0

typedef struct p5_input {
    policy_msg_t m;
    policy_client_t c;
    double now;
    rules_pending_t pending;
} p5_input_t;

typedef struct p5_opts {
    const char *rules_dir;
    double seconds; /* per side */
    int n_inputs;
    int breakdown;
} p5_opts_t;

static double p5_clock_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall time bounds every loop; the figures are in this thread's CPU time,
 * so that a shared, busy machine (time spent descheduled) moves them less. */
static double p5_clock(void)
{
    return p5_clock_of(CLOCK_MONOTONIC);
}

static double p5_cpu(void)
{
    return p5_clock_of(CLOCK_THREAD_CPUTIME_ID);
}

/* ---- inputs ------------------------------------------------------------ */

static uint64_t p5_rng_state = 0x2545f4914f6cdd1dull;

/* xorshift64: the same inputs in every run and on every machine. */
static unsigned p5_pick(unsigned n)
{
    p5_rng_state ^= p5_rng_state << 13;
    p5_rng_state ^= p5_rng_state >> 7;
    p5_rng_state ^= p5_rng_state << 17;
    return (unsigned)(p5_rng_state % n);
}

#define P5_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const p5_zones[] = {"UTC",
                                       "Asia/Kolkata",
                                       "America/New_York",
                                       "Europe/Berlin",
                                       "Europe/London",
                                       "America/St_Johns",
                                       "Australia/Sydney",
                                       "Australia/Lord_Howe",
                                       "Pacific/Chatham",
                                       "Pacific/Auckland",
                                       "America/Santiago",
                                       "America/Sao_Paulo",
                                       "Asia/Kathmandu",
                                       "Asia/Tokyo",
                                       "Africa/Cairo",
                                       "America/Los_Angeles"};
static const char *const p5_types[] = {"welcome",
                                       "budget_summary",
                                       "vendor_options",
                                       "selection_confirmation",
                                       "blueprint_delivery",
                                       "error_notification",
                                       "reminder",
                                       "unlisted"};
static const char *const p5_urgencies[] = {"critical", "high", "normal", "low"};
static const char *const p5_channels[] = {NULL, "email", "sms", "whatsapp"};
static const char *const p5_quiet[][2] = {
    {"22:00", "08:00"}, {"21:00", "07:30"}, {"00:00", "06:00"}, {"23:00", "23:00"},
    {"9:00", "17:00"},  {"23:00", "02:30"}, {NULL, NULL}};
/* Days around the DST transitions of the zones above, then ordinary days
 * spread over the year. */
static const int p5_days[][2] = {{3, 8},  {11, 1}, {3, 29}, {10, 25}, {4, 5},  {10, 4},
                                 {9, 27}, {4, 26}, {9, 6},  {1, 15},  {2, 28}, {5, 20},
                                 {6, 21}, {7, 1},  {8, 15}, {12, 31}};

static double p5_utc(int month, int day)
{
    const tz_zone_t *z = tz_get("UTC", NULL, 0);
    tz_fields_t f = {2026, month, day, 0, 0, 0};
    int64_t t = 0;
    if (!z || tz_from_local(z, &f, &t, NULL) != 0)
        return 1767225600.0; /* 2026-01-01T00:00:00Z */
    return (double)t;
}

static void p5_make_inputs(p5_input_t *in, int n)
{
    for (int i = 0; i < n; i++) {
        p5_input_t *x = &in[i];
        memset(x, 0, sizeof *x);
        policy_client_t *c = &x->c;
        c->timezone = p5_zones[p5_pick(P5_COUNT(p5_zones))];
        c->has_email = p5_pick(6) != 0;
        c->has_phone = p5_pick(4) != 0;
        c->consent_email = (int)p5_pick(2);
        c->consent_sms = (int)p5_pick(2);
        c->consent_whatsapp = (int)p5_pick(2);
        c->opt_out_email = p5_pick(8) == 0;
        c->opt_out_sms = p5_pick(6) == 0;
        c->opt_out_whatsapp = p5_pick(6) == 0;
        int np = (int)p5_pick(4);
        for (int k = 0; k < np; k++)
            c->preferred_channels[k] = p5_channels[1 + p5_pick(3)];
        unsigned q = p5_pick(P5_COUNT(p5_quiet));
        c->quiet_start = p5_quiet[q][0];
        c->quiet_end = p5_quiet[q][1];
        c->vip = p5_pick(10) == 0;
        const int *day = p5_days[p5_pick(P5_COUNT(p5_days))];
        /* any minute of a two-day window around the day, sometimes off the
         * minute, so every local time of day in every zone comes up */
        x->now = p5_utc(day[0], day[1]) - 12 * 3600 + (double)p5_pick(48 * 60) * 60 +
                 (p5_pick(4) == 0 ? (double)p5_pick(60) + 0.25 : 0);
        unsigned lc = p5_pick(4);
        c->last_contact_at = lc == 0   ? 0
                             : lc == 1 ? x->now - 600
                             : lc == 2 ? x->now - 20 * 3600
                                       : x->now - 3 * 86400;
        c->whatsapp_window_until = p5_pick(3) == 0 ? x->now + 3600 : 0;
        x->m.message_type = p5_types[p5_pick(P5_COUNT(p5_types))];
        x->m.urgency = p5_urgencies[p5_pick(P5_COUNT(p5_urgencies))];
        x->m.preferred_channel = p5_channels[p5_pick(P5_COUNT(p5_channels))];
        x->m.has_attachment = p5_pick(4) == 0;
        x->pending.count = (int)p5_pick(5);
        x->pending.oldest_at = x->pending.count ? x->now - (double)p5_pick(3600) : 0;
    }
}

/* ---- agreement --------------------------------------------------------- */

static int p5_same(const policy_decision_t *a, const policy_decision_t *b)
{
    int same = strcmp(a->status, b->status) == 0 && strcmp(a->primary, b->primary) == 0 &&
               a->n_fallback == b->n_fallback && a->send_at == b->send_at &&
               a->priority == b->priority && strcmp(a->skip_reason, b->skip_reason) == 0 &&
               strcmp(a->batch_key, b->batch_key) == 0 && a->batch_window == b->batch_window &&
               a->batch_max == b->batch_max;
    for (int i = 0; same && i < a->n_fallback; i++)
        same = strcmp(a->fallback[i], b->fallback[i]) == 0;
    return same;
}

/* Runs every input through both sides once. Returns the number of inputs
 * that failed or disagreed; the first few are described on stderr. */
static int p5_agreement(rules_set_t *rs, const p5_input_t *in, int n)
{
    int err_lua = 0, err_c = 0, mismatches = 0, skipped = 0, pending = 0, batched = 0, queued = 0;
    for (int i = 0; i < n; i++) {
        const p5_input_t *x = &in[i];
        policy_decision_t a, b;
        char err[512];
        int ra = rules_decide(rs, &x->m, &x->c, x->now, &x->pending, &a, err, sizeof err);
        if (ra != 0 && err_lua++ < 3)
            fprintf(stderr, "p5: lua failed on input %d (%s %s %s): %s\n", i, x->c.timezone,
                    x->m.message_type, x->m.urgency, err);
        int rb = policy_seed_decide(&x->m, &x->c, x->now, &x->pending, &b, err, sizeof err);
        if (rb != 0 && err_c++ < 3)
            fprintf(stderr, "p5: c failed on input %d (%s %s %s): %s\n", i, x->c.timezone,
                    x->m.message_type, x->m.urgency, err);
        if (ra != 0 || rb != 0)
            continue;
        if (!p5_same(&a, &b)) {
            if (mismatches++ < 3)
                fprintf(stderr,
                        "p5: input %d (%s %s %s %.0f): lua %s %s +%d %.0f %s %s/%d/%d, "
                        "c %s %s +%d %.0f %s %s/%d/%d\n",
                        i, x->c.timezone, x->m.message_type, x->m.urgency, x->now, a.status,
                        a.primary, a.n_fallback, a.send_at, a.skip_reason, a.batch_key,
                        a.batch_window, a.batch_max, b.status, b.primary, b.n_fallback, b.send_at,
                        b.skip_reason, b.batch_key, b.batch_window, b.batch_max);
            continue;
        }
        skipped += a.status[0] == 's';
        pending += a.status[0] == 'p';
        queued += a.status[0] == 'q';
        batched += a.batch_key[0] != '\0';
    }
    printf("P5 agreement: %d inputs (queued %d, pending %d, skipped %d, batched %d), "
           "errors lua %d c %d, mismatches %d/%d\n",
           n, queued, pending, skipped, batched, err_lua, err_c, mismatches, n);
    return err_lua + err_c + mismatches;
}

/* ---- timed loops ------------------------------------------------------- */

typedef struct p5_side {
    rules_set_t *rs; /* NULL: the C side */
    long errors;
} p5_side_t;

static int p5_decide(p5_side_t *side, const p5_input_t *x, policy_decision_t *d)
{
    char err[256];
    if (side->rs)
        return rules_decide(side->rs, &x->m, &x->c, x->now, &x->pending, d, err, sizeof err);
    return policy_seed_decide(&x->m, &x->c, x->now, &x->pending, d, err, sizeof err);
}

/* Decides inputs round-robin for `seconds` of wall time (and at most
 * P5_MAX_DECISIONS). Returns decisions per second of CPU time. */
static double p5_run(p5_side_t *side, const p5_input_t *in, int n, double seconds)
{
    policy_decision_t d;
    long done = 0;
    int i = 0;
    double t0 = p5_clock(), t = t0, c0 = p5_cpu();
    while (t - t0 < seconds && done < P5_MAX_DECISIONS) {
        for (int k = 0; k < P5_CLOCK_EVERY; k++) {
            if (p5_decide(side, &in[i], &d) != 0)
                side->errors++;
            if (++i == n)
                i = 0;
        }
        done += P5_CLOCK_EVERY;
        t = p5_clock();
    }
    double cpu = p5_cpu() - c0;
    return cpu > 0 ? (double)done / cpu : 0;
}

/* ---- where the Lua side's time goes ------------------------------------ */

/* What the rules see of a message and a client: the same fields rules_decide
 * hands them, built here so each part of the path can be timed alone. */
static cJSON *p5_msg_json(const p5_input_t *x, double send_at)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "type", x->m.message_type);
    cJSON_AddStringToObject(o, "urgency", x->m.urgency);
    cJSON_AddNumberToObject(o, "priority", policy_priority(x->m.urgency));
    cJSON_AddBoolToObject(o, "has_attachment", x->m.has_attachment != 0);
    if (x->m.preferred_channel)
        cJSON_AddStringToObject(o, "preferred_channel", x->m.preferred_channel);
    cJSON_AddNumberToObject(o, "now", x->now);
    if (send_at > 0)
        cJSON_AddNumberToObject(o, "send_at", send_at);
    return o;
}

static cJSON *p5_client_json(const policy_client_t *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "has_email", c->has_email != 0);
    cJSON_AddBoolToObject(o, "has_phone", c->has_phone != 0);
    cJSON_AddBoolToObject(o, "vip", c->vip != 0);
    cJSON_AddStringToObject(o, "timezone", c->timezone);
    cJSON *consent = cJSON_AddObjectToObject(o, "consent");
    cJSON_AddBoolToObject(consent, "email", c->consent_email != 0);
    cJSON_AddBoolToObject(consent, "sms", c->consent_sms != 0);
    cJSON_AddBoolToObject(consent, "whatsapp", c->consent_whatsapp != 0);
    cJSON_AddBoolToObject(o, "opt_out_email", c->opt_out_email != 0);
    cJSON_AddBoolToObject(o, "opt_out_sms", c->opt_out_sms != 0);
    cJSON_AddBoolToObject(o, "opt_out_whatsapp", c->opt_out_whatsapp != 0);
    cJSON_AddStringToObject(o, "quiet_hours_start", c->quiet_start ? c->quiet_start : "22:00");
    cJSON_AddStringToObject(o, "quiet_hours_end", c->quiet_end ? c->quiet_end : "08:00");
    cJSON *prefs = cJSON_AddArrayToObject(o, "preferred_channels");
    for (int i = 0; i < POLICY_MAX_CHANNELS && c->preferred_channels[i]; i++)
        cJSON_AddItemToArray(prefs, cJSON_CreateString(c->preferred_channels[i]));
    if (c->last_contact_at > 0)
        cJSON_AddNumberToObject(o, "last_contact_at", c->last_contact_at);
    if (c->whatsapp_window_until > 0)
        cJSON_AddNumberToObject(o, "whatsapp_window_until", c->whatsapp_window_until);
    return o;
}

#define P5_STEPS 4
static const char *const p5_step_module[P5_STEPS] = {"channels", "fallback", "timing", "batching"};
static const char *const p5_step_fn[P5_STEPS] = {"select", "chain", "send_at", "decide"};
static const int p5_step_nres[P5_STEPS] = {1, 1, 2, 1};

/* One input's arguments for each step, as JSON, and how many steps the real
 * path runs for it (1 when select skips). */
typedef struct p5_args {
    cJSON *args[P5_STEPS][3]; /* owned */
    int nargs[P5_STEPS];
    int steps;
} p5_args_t;

static void p5_args_free(p5_args_t *a)
{
    for (int s = 0; s < P5_STEPS; s++)
        for (int k = 0; k < 3; k++)
            cJSON_Delete(a->args[s][k]);
}

/* Builds the four steps' arguments: chain gets what select returns on h,
 * batching the send_at of the C decision (which agreed with the Lua one).
 * Returns -1 when out of memory or when select fails. */
static int p5_args_make(lh_state_t *h, const p5_input_t *x, const policy_decision_t *d,
                        p5_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->steps = d->status[0] == 's' ? 1 : P5_STEPS;
    for (int s = 0; s < P5_STEPS; s++) {
        a->args[s][0] = p5_msg_json(x, s == 3 ? d->send_at : 0);
        a->args[s][1] = p5_client_json(&x->c);
        a->nargs[s] = s == 0 ? 2 : 3;
        if (!a->args[s][0] || !a->args[s][1])
            return -1;
    }
    char err[256];
    cJSON *sel = NULL;
    if (lh_call_json(h, "channels", "select", (const cJSON *const *)a->args[0], 2, &sel, err,
                     sizeof err) != LH_OK) {
        fprintf(stderr, "p5: breakdown: channels.select: %s\n", err);
        return -1;
    }
    cJSON *cands = cJSON_DetachItemFromObjectCaseSensitive(sel, "channels");
    cJSON_Delete(sel);
    a->args[1][2] = cands ? cands : cJSON_CreateArray();
    a->args[2][2] = cJSON_CreateNumber(x->now);
    cJSON *pend = cJSON_CreateObject();
    if (pend) {
        cJSON_AddNumberToObject(pend, "count", x->pending.count);
        if (x->pending.oldest_at > 0)
            cJSON_AddNumberToObject(pend, "oldest_at", x->pending.oldest_at);
    }
    a->args[3][2] = pend;
    return a->args[1][2] && a->args[2][2] && a->args[3][2] ? 0 : -1;
}

typedef enum p5_part {
    P5_BUILD, /* the arguments as cJSON (rules_decide builds them per call) */
    P5_PUSH,  /* cJSON -> Lua tables */
    P5_CALL,  /* push + lh_call */
    P5_FULL,  /* push + lh_call + results back to cJSON */
} p5_part_t;

typedef struct p5_probe {
    lh_state_t *h;
    p5_args_t *args;
    const p5_input_t *in;
    int n;
    long errors;
    double ns[P5_STEPS]; /* per-step time of the last p5_probe_run, ns per decision */
} p5_probe_t;

/* Runs `part` of one step for one input. Returns 0 or -1. */
static int p5_probe_once(p5_probe_t *p, int i, int step, p5_part_t part)
{
    const p5_args_t *a = &p->args[i];
    if (part == P5_BUILD) {
        cJSON *m = p5_msg_json(&p->in[i], 0), *c = p5_client_json(&p->in[i].c);
        int ok = m && c;
        cJSON_Delete(m);
        cJSON_Delete(c);
        return ok ? 0 : -1;
    }
    lua_State *L = lh_lua(p->h);
    int top = lua_gettop(L);
    char err[256];
    for (int k = 0; k < a->nargs[step]; k++)
        if (lh_push_json(p->h, a->args[step][k], err, sizeof err) != LH_OK) {
            lua_settop(L, top);
            return -1;
        }
    if (part == P5_PUSH) {
        lua_settop(L, top);
        return 0;
    }
    int nres = p5_step_nres[step];
    if (lh_call(p->h, p5_step_module[step], p5_step_fn[step], a->nargs[step], nres, err,
                sizeof err) != LH_OK) {
        lua_settop(L, top);
        return -1;
    }
    int rc = 0;
    if (part == P5_FULL) {
        for (int k = 0; k < nres && rc == 0; k++) {
            cJSON *out = NULL;
            if (!lua_isnil(L, top + 1 + k) &&
                lh_to_json(p->h, top + 1 + k, &out, err, sizeof err) != LH_OK)
                rc = -1;
            cJSON_Delete(out);
        }
    }
    lua_settop(L, top);
    return rc;
}

/* Times `part` of every step in passes over all inputs for about `seconds`
 * in all; fills p->ns with the fastest pass of each step (the one a busy
 * machine disturbed least) and returns their sum, ns of CPU time per
 * decision. Building the arguments is one part per decision, not per step. */
static double p5_probe_run(p5_probe_t *p, p5_part_t part, double seconds)
{
    double total = 0;
    int nsteps = part == P5_BUILD ? 1 : P5_STEPS;
    for (int step = 0; step < nsteps; step++) {
        double best = -1, t0 = p5_clock();
        for (int pass = 0; pass < P5_MAX_PASSES; pass++) {
            double c0 = p5_cpu();
            for (int i = 0; i < p->n; i++)
                /* a skipped decision runs select only, and costs nothing here */
                if (step < p->args[i].steps && p5_probe_once(p, i, step, part) != 0)
                    p->errors++;
            double took = p5_cpu() - c0;
            if (best < 0 || took < best)
                best = took;
            if (p5_clock() - t0 >= seconds / nsteps)
                break;
        }
        p->ns[step] = best * 1e9 / p->n;
        total += p->ns[step];
    }
    return total;
}

/* Host-side costs every decision pays, measured with a probe module loaded
 * next to the rules: an empty call, and the time helpers the timing and
 * batching rules call two to four times per decision. */
static const char p5_probe_lua[] =
    "function noop(a, b, c) return a end\n"
    "function localtime(tz, t, n) for i = 1, n do crier.localtime(tz, t) end return n end\n"
    "function from_local(tz, n)\n"
    "  local f = {year = 2026, month = 3, day = 8, hour = 9, min = 0}\n"
    "  for i = 1, n do crier.from_local(tz, f) end return n end\n"
    "function loop(n) local x = 0 for i = 1, n do x = x + i end return x end\n";

#define P5_INNER 100 /* helper calls per probe call */

/* ns of CPU time per unit of `what` (0 empty call, 1 localtime, 2 from_local,
 * 3 one empty Lua loop iteration), fastest of the passes in `seconds`. */
static double p5_overhead(lh_state_t *h, int what, double seconds, long *errors)
{
    static const char *const fn[] = {"noop", "localtime", "from_local", "loop"};
    lua_State *L = lh_lua(h);
    double best = -1, t0 = p5_clock();
    char err[256];
    for (int pass = 0; pass < P5_MAX_PASSES && p5_clock() - t0 < seconds; pass++) {
        double c0 = p5_cpu();
        for (int i = 0; i < 100; i++) {
            int nargs = 3;
            if (what == 0) {
                lua_pushnil(L), lua_pushnil(L), lua_pushnil(L);
            } else if (what == 1) {
                lua_pushstring(L, "America/New_York"), lua_pushnumber(L, 1.78e9);
                lua_pushinteger(L, P5_INNER);
            } else if (what == 2) {
                lua_pushstring(L, "America/New_York"), lua_pushinteger(L, P5_INNER);
                nargs = 2;
            } else {
                lua_pushinteger(L, 1000 * P5_INNER);
                nargs = 1;
            }
            if (lh_call(h, "p5probe", fn[what], nargs, 1, err, sizeof err) != LH_OK)
                (*errors)++;
            else
                lua_pop(L, 1);
        }
        double took = p5_cpu() - c0;
        if (best < 0 || took < best)
            best = took;
    }
    double per = what == 0 ? 100 : what == 3 ? 100.0 * 1000 * P5_INNER : 100.0 * P5_INNER;
    return best * 1e9 / per;
}

/* Loads a second host state from the same rules (with room for every
 * input's arguments) and reports the parts of a Lua decision. */
static int p5_breakdown(const p5_opts_t *o, const p5_input_t *in, int n, double lua_ns)
{
    char err[1024];
    lh_limits_t lim = {.mem_bytes = 256u * 1024u * 1024u};
    p5_probe_t p = {.in = in, .n = n};
    p.h = lh_new(&lim, err, sizeof err);
    if (!p.h || rules_time_register(p.h) != 0 ||
        lh_load_buffer(p.h, "p5probe", "p5probe.lua", p5_probe_lua, sizeof p5_probe_lua - 1, err,
                       sizeof err) != LH_OK ||
        lh_load_dir(p.h, o->rules_dir, NULL, err, sizeof err) != LH_OK) {
        fprintf(stderr, "p5: breakdown: cannot load %s: %s\n", o->rules_dir,
                p.h ? err : "out of memory");
        lh_free(p.h);
        return -1;
    }
    p.args = calloc((size_t)n, sizeof *p.args);
    int rc = p.args ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        policy_decision_t d;
        if (policy_seed_decide(&in[i].m, &in[i].c, in[i].now, &in[i].pending, &d, err,
                               sizeof err) != 0 ||
            p5_args_make(p.h, &in[i], &d, &p.args[i]) != 0)
            rc = -1;
    }
    if (rc == 0) {
        double slice = o->seconds / 4 < 0.1 ? 0.1 : o->seconds / 4;
        double build = p5_probe_run(&p, P5_BUILD, slice / 4);
        double push = p5_probe_run(&p, P5_PUSH, slice);
        double call = p5_probe_run(&p, P5_CALL, slice);
        double step_call[P5_STEPS];
        memcpy(step_call, p.ns, sizeof step_call);
        double full = p5_probe_run(&p, P5_FULL, slice);
        double exec = call - push, back = full - call;
        /* rules_decide builds msg and client once and converts them for
         * every step; the rest is its checks and the trace */
        double rest = lua_ns - build - full;
        printf("P5 lua breakdown (ns per decision): build args %.0f, cJSON->Lua %.0f, "
               "Lua run %.0f, Lua->cJSON %.0f, checks+trace %.0f; of %.0f: "
               "conversion %.0f%%, Lua run %.0f%%, checks+trace %.0f%%\n",
               build, push, exec, back, rest, lua_ns, 100 * (build + push + back) / lua_ns,
               100 * exec / lua_ns, 100 * rest / lua_ns);
        printf("P5 lua steps (ns per decision, push+call): select %.0f, chain %.0f, "
               "send_at %.0f, decide %.0f\n",
               step_call[0], step_call[1], step_call[2], step_call[3]);
        double empty = p5_overhead(p.h, 0, slice / 4, &p.errors);
        double lt = p5_overhead(p.h, 1, slice / 4, &p.errors);
        double fl = p5_overhead(p.h, 2, slice / 4, &p.errors);
        double vm = p5_overhead(p.h, 3, slice / 4, &p.errors);
        printf(
            "P5 lua host costs (ns): empty lh_call %.0f (x4 per decision), crier.localtime "
            "%.0f, crier.from_local %.0f, one Lua loop iteration %.1f; 4 calls of %.0f: %.0f%%\n",
            empty, lt, fl, vm, lua_ns, 100 * 4 * empty / lua_ns);
        if (p.errors) {
            fprintf(stderr, "p5: breakdown: %ld calls failed\n", p.errors);
            rc = -1;
        }
    } else {
        fprintf(stderr, "p5: breakdown: cannot prepare the arguments\n");
    }
    for (int i = 0; p.args && i < n; i++)
        p5_args_free(&p.args[i]);
    free(p.args);
    lh_free(p.h);
    return rc;
}

/* ---- main -------------------------------------------------------------- */

static void p5_usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--rules DIR] [--seconds S] [--inputs N] [--breakdown]\n"
            "  --rules DIR   the rules directory (default: $CRIER_SOURCE_DIR/rules)\n"
            "  --seconds S   timed run per side, 0.05..%.0f (default %.0f)\n"
            "  --inputs N    generated inputs, 1..%d (default %d)\n"
            "  --breakdown   also report where the Lua side's time goes\n",
            argv0, P5_MAX_SECONDS, P5_DEFAULT_SECONDS, P5_MAX_INPUTS, P5_DEFAULT_INPUTS);
}

static int p5_parse(int argc, char **argv, p5_opts_t *o, char *dirbuf, size_t dirlen)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    snprintf(dirbuf, dirlen, "%s/rules", src && *src ? src : ".");
    *o = (p5_opts_t){
        .rules_dir = dirbuf, .seconds = P5_DEFAULT_SECONDS, .n_inputs = P5_DEFAULT_INPUTS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "--breakdown") == 0) {
            o->breakdown = 1;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "--rules") == 0) {
            o->rules_dir = v;
        } else if (strcmp(a, "--seconds") == 0) {
            o->seconds = strtod(v, &end);
            if (*end || !(o->seconds >= 0.05 && o->seconds <= P5_MAX_SECONDS))
                return -1;
        } else if (strcmp(a, "--inputs") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > P5_MAX_INPUTS)
                return -1;
            o->n_inputs = (int)n;
        } else {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    p5_opts_t o;
    char dirbuf[1024];
    if (p5_parse(argc, argv, &o, dirbuf, sizeof dirbuf) != 0) {
        p5_usage(argv[0]);
        return 2;
    }
    char err[1024];
    rules_set_t *rs = rules_load(o.rules_dir, NULL, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "p5: rules_load(%s): %s\n", o.rules_dir, err);
        return 1;
    }
    p5_input_t *in = calloc((size_t)o.n_inputs, sizeof *in);
    if (!in) {
        fprintf(stderr, "p5: out of memory\n");
        rules_free(rs);
        return 1;
    }
    p5_make_inputs(in, o.n_inputs);
    int bad = p5_agreement(rs, in, o.n_inputs);

    double warm = o.seconds / 4 < P5_MAX_WARMUP_S ? o.seconds / 4 : P5_MAX_WARMUP_S;
    p5_side_t lua = {.rs = rs}, c = {.rs = NULL};
    p5_run(&lua, in, o.n_inputs, warm);
    double lua_rate = p5_run(&lua, in, o.n_inputs, o.seconds);
    p5_run(&c, in, o.n_inputs, warm);
    double c_rate = p5_run(&c, in, o.n_inputs, o.seconds);
    double lua_us = lua_rate > 0 ? 1e6 / lua_rate : 0, c_us = c_rate > 0 ? 1e6 / c_rate : 0;
    printf("P5 policy: lua %.0f decisions/s (%.2f us each), c %.0f decisions/s (%.2f us each), "
           "lua/c cost ratio %.1f (target <= %.0f), lua per core >= %.0fk: %s\n",
           lua_rate, lua_us, c_rate, c_us, c_us > 0 ? lua_us / c_us : 0, P5_TARGET_RATIO,
           P5_TARGET_PER_S / 1000, lua_rate >= P5_TARGET_PER_S ? "yes" : "no");
    fflush(stdout);
    if (lua.errors || c.errors) {
        fprintf(stderr, "p5: %ld lua and %ld c decisions failed in the timed runs\n", lua.errors,
                c.errors);
        bad++;
    }
    if (o.breakdown && p5_breakdown(&o, in, o.n_inputs, lua_us * 1000) != 0)
        bad++;
    free(in);
    rules_free(rs);
    return bad ? 1 : 0;
}
