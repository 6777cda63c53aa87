/* P5: the cost of one full policy decision through the shipped Lua rules
 * (channels.select -> fallback.chain -> timing.send_at -> batching.decide,
 * with every check rules_decide makes) against the same policy written in C
 * (policy_seed_decide), on the same pre-generated inputs, one thread, one
 * after the other in the same run.
 *
 * Prints one line per figure, ending with the ratio:
 *   P5 agreement: ... mismatches 0/1000
 *   P5 policy: lua N decisions/s (.. us each), c N decisions/s (.. us each),
 *      lua/c cost ratio R (target <= 8), lua per core >= 250k: yes|no
 *
 * Exits non-zero only when the work went wrong (rules that do not load, a
 * decision that fails, Lua and C disagreeing); speed is reported, never
 * judged. */
#include "policy/policy.h"
#include "policy/rules.h"
#include "policy/seed_c.h"
#include "tz/tz.h"

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
#define P5_TARGET_RATIO 8.0
#define P5_TARGET_PER_S 250000.0
#define P5_SIDE_LUA     1
#define P5_SIDE_C       2

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
    int sides;        /* P5_SIDE_* bits: which sides the timed runs measure */
    unsigned time_ms; /* the rules' time budget per call; 0: the default */
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
        c->consent[CH_EMAIL] = (int)p5_pick(2);
        c->consent[CH_SMS] = (int)p5_pick(2);
        c->consent[CH_WHATSAPP] = (int)p5_pick(2);
        c->opt_out[CH_EMAIL] = p5_pick(8) == 0;
        c->opt_out[CH_SMS] = p5_pick(6) == 0;
        c->opt_out[CH_WHATSAPP] = p5_pick(6) == 0;
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
    long done; /* decisions over every run, warm-up included */
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
    side->done += done;
    double cpu = p5_cpu() - c0;
    return cpu > 0 ? (double)done / cpu : 0;
}

/* ---- where the Lua side's time goes ------------------------------------ */

/* ---- main -------------------------------------------------------------- */

static void p5_usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--rules DIR] [--seconds S] [--inputs N] [--only lua|c] [--time-ms MS]\n"
            "  --rules DIR   the rules directory (default: $CRIER_SOURCE_DIR/rules)\n"
            "  --seconds S   timed run per side, 0.05..%.0f (default %.0f)\n"
            "  --inputs N    generated inputs, 1..%d (default %d)\n"
            "  --only SIDE   time one side only (for a profiler); no ratio is printed\n"
            "  --time-ms MS  the rules' time budget per call (default %d; raise it under\n"
            "                valgrind, which runs the rules far slower than the budget)\n",
            argv0, P5_MAX_SECONDS, P5_DEFAULT_SECONDS, P5_MAX_INPUTS, P5_DEFAULT_INPUTS,
            LH_DEFAULT_TIME_MS);
}

static int p5_parse(int argc, char **argv, p5_opts_t *o, char *dirbuf, size_t dirlen)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    snprintf(dirbuf, dirlen, "%s/rules", src && *src ? src : ".");
    *o = (p5_opts_t){.rules_dir = dirbuf,
                     .seconds = P5_DEFAULT_SECONDS,
                     .n_inputs = P5_DEFAULT_INPUTS,
                     .sides = P5_SIDE_LUA | P5_SIDE_C};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
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
        } else if (strcmp(a, "--time-ms") == 0) {
            long ms = strtol(v, &end, 10);
            if (*end || ms < 1 || ms > 600000)
                return -1;
            o->time_ms = (unsigned)ms;
        } else if (strcmp(a, "--only") == 0) {
            if (strcmp(v, "lua") == 0)
                o->sides = P5_SIDE_LUA;
            else if (strcmp(v, "c") == 0)
                o->sides = P5_SIDE_C;
            else
                return -1;
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
    lh_limits_t lim = {.time_ms = o.time_ms};
    rules_set_t *rs = rules_load(o.rules_dir, &lim, err, sizeof err);
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
    double lua_rate = 0, c_rate = 0;
    if (o.sides & P5_SIDE_LUA) {
        p5_run(&lua, in, o.n_inputs, warm);
        lua_rate = p5_run(&lua, in, o.n_inputs, o.seconds);
    }
    if (o.sides & P5_SIDE_C) {
        p5_run(&c, in, o.n_inputs, warm);
        c_rate = p5_run(&c, in, o.n_inputs, o.seconds);
    }
    double lua_us = lua_rate > 0 ? 1e6 / lua_rate : 0, c_us = c_rate > 0 ? 1e6 / c_rate : 0;
    if (o.sides != (P5_SIDE_LUA | P5_SIDE_C))
        printf("P5 %s only: %.0f decisions/s (%.2f us each), %ld decisions in all\n",
               o.sides == P5_SIDE_LUA ? "lua" : "c", lua_rate + c_rate, lua_us + c_us,
               lua.done + c.done);
    else
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
    free(in);
    rules_free(rs);
    return bad ? 1 : 0;
}
