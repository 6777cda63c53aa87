/* The policy rules: the shipped Lua rules against the seed's policy written
 * in C on generated inputs, the seed's timing on DST transition days,
 * containment of misbehaving rules, refused rule sets, and the checks on
 * what rules return (a rule bug must never reach a channel without consent). */
#include "policy/builtin_failure.h"
#include "policy/rules.h"
#include "policy/seed_c.h"
#include "tz/tz.h"
#include "util/buf.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void rules_dir(char *out, size_t n)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (src && *src) {
        snprintf(out, n, "%s/rules", src);
        return;
    }
    const char *f = __FILE__;
    const char *slash = strstr(f, "tests/unit/");
    snprintf(out, n, "%.*srules", slash ? (int)(slash - f) : 0, f);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* UTC calendar time to epoch seconds. */
static double utc(int y, int mo, int d, int h, int mi)
{
    const tz_zone_t *z = tz_get("UTC", NULL, 0);
    tz_fields_t f = {y, mo, d, h, mi, 0};
    int64_t t = 0;
    assert_non_null(z);
    assert_int_equal(tz_from_local(z, &f, &t, NULL), 0);
    return (double)t;
}

static void local_of(const char *zone, double t, char out[32])
{
    const tz_zone_t *z = tz_get(zone, NULL, 0);
    tz_local_t l;
    assert_non_null(z);
    assert_int_equal(tz_localtime(z, (int64_t)t, &l), 0);
    snprintf(out, 32, "%04d-%02d-%02d %02d:%02d", l.year, l.month, l.day, l.hour, l.min);
}

static rules_set_t *load_shipped(void)
{
    char dir[1024], err[1024];
    rules_dir(dir, sizeof dir);
    rules_set_t *s = rules_load(dir, NULL, err, sizeof err);
    if (!s)
        fail_msg("rules_load(%s): %s", dir, err);
    return s;
}

static policy_client_t full_client(const char *zone)
{
    policy_client_t c;
    memset(&c, 0, sizeof c);
    c.has_email = c.has_phone = 1;
    c.consent[CH_EMAIL] = c.consent[CH_SMS] = c.consent[CH_WHATSAPP] = 1;
    c.timezone = zone;
    c.preferred_channels[0] = "email";
    c.quiet_start = "22:00";
    c.quiet_end = "08:00";
    return c;
}

/* ---- the seed in Lua and in C agree ----------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned pick(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void assert_same(const policy_decision_t *a, const policy_decision_t *b, const char *what)
{
    int same = strcmp(a->status, b->status) == 0 && strcmp(a->primary, b->primary) == 0 &&
               a->n_fallback == b->n_fallback && a->send_at == b->send_at &&
               a->priority == b->priority && strcmp(a->skip_reason, b->skip_reason) == 0 &&
               strcmp(a->batch_key, b->batch_key) == 0 && a->batch_window == b->batch_window &&
               a->batch_max == b->batch_max;
    for (int i = 0; same && i < a->n_fallback; i++)
        same = strcmp(a->fallback[i], b->fallback[i]) == 0;
    if (!same)
        fail_msg("Lua and C disagree on %s:\n lua %s %s +%d %.0f %s %s\n   c %s %s +%d %.0f %s %s",
                 what, a->status, a->primary, a->n_fallback, a->send_at, a->skip_reason,
                 a->batch_key, b->status, b->primary, b->n_fallback, b->send_at, b->skip_reason,
                 b->batch_key);
}

static void test_lua_and_c_agree(void **st)
{
    (void)st;
    static const char *const zones[] = {"UTC",
                                        "Asia/Kolkata",
                                        "America/New_York",
                                        "Europe/Berlin",
                                        "Australia/Lord_Howe",
                                        "America/Sao_Paulo",
                                        "Pacific/Chatham",
                                        "Asia/Kathmandu",
                                        "America/St_Johns",
                                        "Europe/London"};
    /* days around DST transitions of the zones above, and ordinary days */
    static const int days[][3] = {{2026, 3, 8}, {2026, 11, 1}, {2026, 3, 29}, {2026, 10, 25},
                                  {2026, 4, 5}, {2026, 10, 4}, {2026, 9, 27}, {2026, 1, 15},
                                  {2026, 7, 1}, {2026, 12, 31}};
    static const char *const urg[] = {"critical", "high", "normal", "low"};
    static const char *const types[] = {"welcome",
                                        "budget_summary",
                                        "vendor_options",
                                        "selection_confirmation",
                                        "blueprint_delivery",
                                        "error_notification",
                                        "reminder",
                                        "unlisted"};
    static const char *const chans[] = {NULL, "email", "sms", "whatsapp"};
    static const char *const quiet[][2] = {{"22:00", "08:00"}, {"21:00", "07:30"},
                                           {"00:00", "06:00"}, {"23:00", "23:00"},
                                           {"9:00", "17:00"},  {NULL, NULL}};
    rules_set_t *s = load_shipped();
    int compared = 0, skipped = 0, batched = 0, later = 0;
    for (int i = 0; i < 600; i++) {
        policy_client_t c;
        memset(&c, 0, sizeof c);
        c.timezone = zones[pick(10)];
        c.has_email = pick(5) != 0;
        c.has_phone = pick(3) != 0;
        c.consent[CH_EMAIL] = (int)pick(2);
        c.consent[CH_SMS] = (int)pick(2);
        c.consent[CH_WHATSAPP] = (int)pick(2);
        c.opt_out[CH_EMAIL] = pick(6) == 0;
        c.opt_out[CH_SMS] = pick(6) == 0;
        c.opt_out[CH_WHATSAPP] = pick(6) == 0;
        c.email_suppressed = pick(5) == 0;
        /* sometimes the engine cannot deliver SMS and WhatsApp (as before
         * those transports exist): both sides must treat them as blocked */
        if (pick(3) == 0)
            c.channels_off = CH_BIT(CH_SMS) | CH_BIT(CH_WHATSAPP);
        int np = (int)pick(4);
        for (int k = 0; k < np; k++)
            c.preferred_channels[k] = chans[1 + pick(3)];
        unsigned q = pick(6);
        c.quiet_start = quiet[q][0];
        c.quiet_end = quiet[q][1];
        const int *day = days[pick(10)];
        double now = utc(day[0], day[1], day[2], 0, 0) + (double)pick(48 * 60) * 60 - 12 * 3600 +
                     (pick(4) == 0 ? 0.25 : 0);
        unsigned lc = pick(3);
        c.last_contact_at = lc == 0 ? 0 : lc == 1 ? now - 3600 : now - 2 * 86400;
        policy_msg_t m = {.message_type = types[pick(8)],
                          .urgency = urg[pick(4)],
                          .preferred_channel = chans[pick(4)],
                          .has_attachment = (int)pick(2)};
        rules_pending_t p = {(int)pick(5), now - 60};

        policy_decision_t a, b;
        char err[1024], what[256];
        snprintf(what, sizeof what, "#%d %s %s %s %.0f", i, c.timezone, m.message_type, m.urgency,
                 now);
        if (rules_decide(s, &m, &c, now, &p, &a, err, sizeof err) != 0)
            fail_msg("rules_decide %s: %s", what, err);
        if (policy_seed_decide(&m, &c, now, &p, &b, err, sizeof err) != 0)
            fail_msg("policy_seed_decide %s: %s", what, err);
        assert_same(&a, &b, what);
        compared++;
        skipped += a.status[0] == 's';
        batched += a.batch_key[0] != 0;
        later += a.status[0] == 'p';
    }
    /* the generator must exercise every branch, or agreement means little */
    assert_int_equal(compared, 600);
    assert_true(skipped > 10);
    assert_true(batched > 10);
    assert_true(later > 50);
    rules_free(s);
}

/* ---- the seed's timing on hard days ----------------------------------- */

static void decide_ok(rules_set_t *s, const policy_msg_t *m, const policy_client_t *c, double now,
                      policy_decision_t *d)
{
    char err[1024];
    if (rules_decide(s, m, c, now, NULL, d, err, sizeof err) != 0)
        fail_msg("rules_decide: %s", err);
    policy_decision_t ref;
    assert_int_equal(policy_seed_decide(m, c, now, NULL, &ref, err, sizeof err), 0);
    assert_same(d, &ref, "a timing case");
}

static void test_timing_transitions(void **st)
{
    (void)st;
    rules_set_t *s = load_shipped();
    policy_decision_t d;
    char loc[32];

    /* Kolkata 23:30 local, HIGH: quiet hours -> 08:00 local the next day */
    policy_client_t c = full_client("Asia/Kolkata");
    policy_msg_t high = {.message_type = "vendor_options", .urgency = "high"};
    decide_ok(s, &high, &c, utc(2026, 5, 10, 18, 0), &d);
    local_of("Asia/Kolkata", d.send_at, loc);
    assert_string_equal(loc, "2026-05-11 08:00");
    assert_string_equal(d.status, "pending");

    /* CRITICAL inside quiet hours: now */
    policy_msg_t crit = {.message_type = "error_notification", .urgency = "critical"};
    decide_ok(s, &crit, &c, utc(2026, 5, 10, 18, 0), &d);
    assert_true(d.send_at == utc(2026, 5, 10, 18, 0));
    assert_string_equal(d.status, "queued");
    assert_string_equal(d.primary, "sms");

    /* New York, spring forward: 01:30 EST, NORMAL -> 09:00 EDT (13:00Z) */
    c = full_client("America/New_York");
    policy_msg_t normal = {.message_type = "budget_summary", .urgency = "normal"};
    decide_ok(s, &normal, &c, utc(2026, 3, 8, 6, 30), &d);
    assert_true(d.send_at == utc(2026, 3, 8, 13, 0));
    /* fall back: 01:30 EDT, NORMAL -> 09:00 EST (14:00Z) */
    decide_ok(s, &normal, &c, utc(2026, 11, 1, 5, 30), &d);
    assert_true(d.send_at == utc(2026, 11, 1, 14, 0));

    /* Berlin, spring forward: HIGH at 02:30Z (04:30 CEST) -> 08:00 CEST (06:00Z) */
    c = full_client("Europe/Berlin");
    decide_ok(s, &high, &c, utc(2026, 3, 29, 2, 30), &d);
    assert_true(d.send_at == utc(2026, 3, 29, 6, 0));

    /* Lord Howe, 30-minute DST starting 2026-10-04 02:00 local: LOW at
     * 01:00 local (+10:30) -> the 09:00 slot, then +11:00 (22:00Z) */
    c = full_client("Australia/Lord_Howe");
    policy_msg_t low = {.message_type = "reminder", .urgency = "low"};
    decide_ok(s, &low, &c, utc(2026, 10, 3, 14, 30), &d);
    local_of("Australia/Lord_Howe", d.send_at, loc);
    assert_string_equal(loc, "2026-10-04 09:00");
    assert_true(d.send_at == utc(2026, 10, 3, 22, 0));

    /* quiet hours ending inside a DST gap move forward with it */
    c = full_client("America/New_York");
    c.quiet_start = "23:00";
    c.quiet_end = "02:30";
    decide_ok(s, &high, &c, utc(2026, 3, 8, 5, 0), &d); /* 00:00 EST */
    assert_true(d.send_at == utc(2026, 3, 8, 7, 30));   /* 03:30 EDT */
    rules_free(s);
}

static void test_channels(void **st)
{
    (void)st;
    rules_set_t *s = load_shipped();
    policy_decision_t d;
    double now = utc(2026, 6, 3, 14, 0);

    /* opted out of the preferred channel: the next one */
    policy_client_t c = full_client("UTC");
    c.opt_out[CH_WHATSAPP] = 1;
    policy_msg_t m = {
        .message_type = "vendor_options", .urgency = "high", .preferred_channel = "whatsapp"};
    decide_ok(s, &m, &c, now, &d);
    assert_string_equal(d.primary, "email");
    assert_int_equal(d.n_fallback, 1);
    assert_string_equal(d.fallback[0], "sms");

    /* no WhatsApp consent: CRITICAL with WhatsApp preferred goes by SMS */
    c = full_client("UTC");
    c.consent[CH_WHATSAPP] = 0;
    c.preferred_channels[0] = "whatsapp";
    policy_msg_t crit = {.message_type = "error_notification", .urgency = "critical"};
    decide_ok(s, &crit, &c, now, &d);
    assert_string_equal(d.primary, "sms");
    assert_string_equal(d.fallback[0], "email");
    c.consent[CH_WHATSAPP] = 1;
    decide_ok(s, &crit, &c, now, &d);
    assert_string_equal(d.primary, "whatsapp");
    assert_int_equal(d.n_fallback, 2);

    /* only an email address */
    memset(&c, 0, sizeof c);
    c.has_email = 1;
    c.timezone = "UTC";
    decide_ok(s, &crit, &c, now, &d);
    assert_string_equal(d.primary, "email");
    assert_int_equal(d.n_fallback, 0);

    /* nothing allowed: skipped with a reason */
    c.opt_out[CH_EMAIL] = 1;
    decide_ok(s, &crit, &c, now, &d);
    assert_string_equal(d.status, "skipped");
    assert_string_equal(d.skip_reason, "opt_out");

    /* a hard-bounced address is blocked like an opt-out of email */
    c.opt_out[CH_EMAIL] = 0;
    c.email_suppressed = 1;
    decide_ok(s, &crit, &c, now, &d);
    assert_string_equal(d.status, "skipped");
    assert_string_equal(d.skip_reason, "suppressed");
    const char *why = NULL;
    assert_false(rules_channel_allowed(&c, "email", &why));
    assert_string_equal(why, "suppressed");
    policy_msg_t budget = {.message_type = "budget_summary", .urgency = "normal"};
    c = full_client("UTC");
    c.email_suppressed = 1;
    decide_ok(s, &budget, &c, now, &d);
    assert_string_equal(d.primary, "sms");
    assert_int_equal(d.n_fallback, 0);
    /* the built-in policy, which knows only email, skips it too */
    policy_builtin_decide(&budget, &c, now, &d);
    assert_string_equal(d.status, "skipped");
    assert_string_equal(d.skip_reason, "suppressed");

    /* LOW with a recent contact: batched, and the API shows it */
    c = full_client("UTC");
    c.last_contact_at = now - 600;
    policy_msg_t low = {.message_type = "reminder", .urgency = "low"};
    decide_ok(s, &low, &c, now, &d);
    assert_string_equal(d.batch_key, "low:2026-06-04");
    assert_int_equal(d.batch_window, 300);
    assert_int_equal(d.batch_max, 3);
    buf_t b;
    buf_init(&b, 8192);
    assert_int_equal(policy_decision_json(&d, &b), 0);
    assert_non_null(strstr(b.data, "\"batch\":{\"key\":\"low:2026-06-04\",\"window_seconds\":300,"
                                   "\"max_size\":3}"));
    assert_non_null(strstr(b.data, "\"step\":\"timing.send_at\""));
    buf_free(&b);
    rules_free(s);
}

/* ---- failures ---------------------------------------------------------- */

static void test_on_failure(void **st)
{
    (void)st;
    rules_set_t *s = load_shipped();
    policy_msg_t m = {.message_type = "welcome", .urgency = "normal"};
    const char *rem[2] = {"sms", "email"};
    rules_failure_t f, g;
    char err[512];
    for (int attempt = 1; attempt <= 3; attempt++) {
        int base = policy_retry_delay(attempt);
        assert_int_equal(rules_on_failure(s, &m, attempt, "whatsapp", "transient", 503, -1, rem, 2,
                                          &f, err, sizeof err),
                         0);
        assert_int_equal(f.action, POLICY_RETRY);
        assert_true(f.retry_after >= base - base / 10 && f.retry_after <= base + base / 10);
        policy_builtin_on_failure("normal", attempt, "transient", -1, rem, 2, &g);
        assert_int_equal(g.action, POLICY_RETRY);
        assert_true(g.retry_after >= base - base / 10 && g.retry_after <= base + base / 10);
    }
    assert_int_equal(policy_retry_delay(1), 60);
    assert_int_equal(policy_retry_delay(2), 300);
    assert_int_equal(policy_retry_delay(3), 900);
    /* retries exhausted: the next channel, then failed */
    assert_int_equal(
        rules_on_failure(s, &m, 4, "whatsapp", "transient", 503, -1, rem, 2, &f, err, sizeof err),
        0);
    assert_int_equal(f.action, POLICY_NEXT_CHANNEL);
    assert_string_equal(f.next_channel, "sms");
    policy_builtin_on_failure("normal", 4, "transient", -1, rem, 2, &g);
    assert_int_equal(g.action, POLICY_NEXT_CHANNEL);
    assert_string_equal(g.next_channel, "sms");
    assert_int_equal(
        rules_on_failure(s, &m, 4, "email", "transient", 0, -1, NULL, 0, &f, err, sizeof err), 0);
    assert_int_equal(f.action, POLICY_FAIL);
    /* permanent and auth failures do not retry */
    static const char *const no_retry[] = {"permanent", "invalid_input", "auth_failure", "odd"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rules_on_failure(s, &m, 1, "whatsapp", no_retry[i], 400, -1, rem, 2, &f,
                                          err, sizeof err),
                         0);
        assert_int_equal(f.action, POLICY_NEXT_CHANNEL);
        policy_builtin_on_failure("normal", 1, no_retry[i], -1, rem, 2, &g);
        assert_int_equal(g.action, POLICY_NEXT_CHANNEL);
        policy_builtin_on_failure("normal", 1, no_retry[i], -1, NULL, 0, &g);
        assert_int_equal(g.action, POLICY_FAIL);
    }
    /* The rules and the built-in policy agree on the waits that listen:
     * a provider's window plus at most a second, the ladder without one,
     * and a critical message's one quick retry before the next channel. */
    static const struct {
        const char *urgency, *category;
        int attempt, retry_after, lo, hi; /* lo == -1: the next channel */
    } listen[] = {
        {"normal", "rate_limit", 1, 2, 2, 3},       {"normal", "rate_limit", 1, -1, 54, 66},
        {"normal", "rate_limit", 2, -1, 270, 330},  {"critical", "rate_limit", 1, 2, 2, 3},
        {"critical", "transient", 1, -1, 3, 3},     {"critical", "transient", 2, -1, -1, -1},
        {"critical", "rate_limit", 1, 600, -1, -1}, {"high", "rate_limit", 1, 600, 600, 601},
    };
    for (size_t i = 0; i < sizeof listen / sizeof listen[0]; i++) {
        m.urgency = listen[i].urgency;
        assert_int_equal(rules_on_failure(s, &m, listen[i].attempt, "sms", listen[i].category,
                                          20429, listen[i].retry_after, rem + 1, 1, &f, err,
                                          sizeof err),
                         0);
        policy_builtin_on_failure(listen[i].urgency, listen[i].attempt, listen[i].category,
                                  listen[i].retry_after, rem + 1, 1, &g);
        if (listen[i].lo < 0) {
            assert_int_equal(f.action, POLICY_NEXT_CHANNEL);
            assert_int_equal(g.action, POLICY_NEXT_CHANNEL);
            continue;
        }
        assert_int_equal(f.action, POLICY_RETRY);
        assert_int_equal(g.action, POLICY_RETRY);
        assert_in_range(f.retry_after, listen[i].lo, listen[i].hi);
        assert_in_range(g.retry_after, listen[i].lo, listen[i].hi);
    }
    rules_free(s);
}

/* ---- broken rule sets -------------------------------------------------- */

typedef struct tmprules {
    char dir[256];
} tmprules_t;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A copy of the shipped rules with file `name` replaced by text (or, when
 * text is NULL, unchanged). */
static void make_rules(tmprules_t *t, const char *name, const char *text)
{
    snprintf(t->dir, sizeof t->dir, "%s/crier-rules-XXXXXX", P_tmpdir);
    assert_non_null(mkdtemp(t->dir));
    static const char *const files[] = {"channels.lua", "timing.lua", "batching.lua",
                                        "fallback.lua"};
    char src[1024];
    rules_dir(src, sizeof src);
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, files[i]) == 0) {
            write_file(t->dir, files[i], text);
            continue;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", src, files[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        buf_t b;
        buf_init(&b, 1 << 20);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            assert_int_equal(buf_append(&b, chunk, n), 0);
        fclose(f);
        write_file(t->dir, files[i], b.data ? b.data : "");
        buf_free(&b);
    }
}

static void drop_rules(tmprules_t *t)
{
    static const char *const files[] = {"channels.lua", "timing.lua", "batching.lua",
                                        "fallback.lua"};
    char path[512];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", t->dir, files[i]);
        unlink(path);
    }
    rmdir(t->dir);
}

static void assert_load_fails(const char *name, const char *text, const char *needle)
{
    tmprules_t t;
    make_rules(&t, name, text);
    char err[1024] = "";
    rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
    drop_rules(&t);
    if (s)
        fail_msg("a broken %s was accepted", name);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not name \"%s\"", err, needle);
}

static void test_load_failures(void **st)
{
    (void)st;
    assert_load_fails("timing.lua", "function send_at(msg, client, now)\n  return now +\nend\n",
                      "timing.lua:3:");
    assert_load_fails("batching.lua", "local x = 1\nerror('boom at load')\n",
                      "batching.lua:2: boom at load");
    assert_load_fails("batching.lua", "function decide_typo(msg, client, pending)\n end\n",
                      "batching.lua: function decide is missing");
    /* loads, but the smoke test finds a bad answer */
    assert_load_fails("channels.lua", "function select(msg, client) return 42 end\n",
                      "channels.select");
    assert_load_fails("timing.lua", "function send_at(msg, client, now) return 'soon' end\n",
                      "timing.send_at");
}

/* Replaces file name of a copied rules set with a FIFO (target NULL) or a
 * symlink to target, loads it, and expects a prompt refusal naming want. */
static void assert_special_refused(const char *name, const char *target, const char *want)
{
    tmprules_t t;
    make_rules(&t, NULL, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t.dir, name);
    assert_int_equal(unlink(path), 0);
    if (target)
        assert_int_equal(symlink(target, path), 0);
    else
        assert_int_equal(mkfifo(path, 0600), 0);
    char err[1024] = "";
    /* A FIFO opened for reading would block until a writer came: the
     * loader must refuse it without opening it, so no alarm is needed
     * for the test to fail rather than hang; ctest's timeout is the net. */
    rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
    drop_rules(&t);
    if (s)
        fail_msg("a rules folder whose %s is special was accepted", name);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not name \"%s\"", err, want);
    /* the message never shows the target's bytes or its path */
    if (target && strstr(err, target))
        fail_msg("error \"%s\" names the symlink's target", err);
}

static void test_loader_refuses_special_files(void **st)
{
    (void)st;
    assert_special_refused("channels.lua", NULL, "channels.lua: not a regular file");
    assert_special_refused("timing.lua", "/etc/passwd", "timing.lua: symlink points outside");
    assert_special_refused("batching.lua", "missing.lua", "batching.lua: dangling symlink");
}

/* Behaves on the smoke test's inputs, misbehaves on reminders. */
static const char *const bad_select[] = {
    "function select(msg, client)\n"
    "  if msg.type == 'reminder' then error('select exploded') end\n"
    "  return {channels = {'email'}}\nend\n",
    "function select(msg, client)\n"
    "  if msg.type == 'reminder' then while true do end end\n"
    "  return {channels = {'email'}}\nend\n",
    "function select(msg, client)\n"
    "  if msg.type == 'reminder' then\n"
    "    local t = {}\n"
    "    for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end\n"
    "  end\n"
    "  return {channels = {'email'}}\nend\n",
};

static void test_containment(void **st)
{
    (void)st;
    for (int i = 0; i < 3; i++) {
        tmprules_t t;
        make_rules(&t, "channels.lua", bad_select[i]);
        char err[1024];
        rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
        drop_rules(&t);
        if (!s)
            fail_msg("load: %s", err);
        policy_client_t c = full_client("UTC");
        policy_msg_t bad = {.message_type = "reminder", .urgency = "high"};
        policy_msg_t good = {.message_type = "welcome", .urgency = "critical"};
        policy_decision_t d;
        for (int round = 0; round < 3; round++) {
            double t0 = now_ms();
            assert_int_equal(rules_decide(s, &bad, &c, 1.78e9, NULL, &d, err, sizeof err), -1);
            double took = now_ms() - t0;
            if (took > 250)
                fail_msg("case %d took %.0f ms: %s", i, took, err);
            assert_true(strlen(err) > 0);
            /* the same state decides the next message normally */
            if (rules_decide(s, &good, &c, 1.78e9, NULL, &d, err, sizeof err) != 0)
                fail_msg("after case %d: %s", i, err);
            assert_string_equal(d.primary, "email");
        }
        rules_free(s);
    }
}

static void assert_refused(const char *file, const char *text, const char *needle)
{
    tmprules_t t;
    make_rules(&t, file, text);
    char err[1024];
    rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
    drop_rules(&t);
    if (!s)
        fail_msg("load: %s", err);
    policy_client_t c = full_client("UTC");
    c.consent[CH_SMS] = 0;
    policy_msg_t m = {.message_type = "reminder", .urgency = "high"};
    policy_decision_t d;
    assert_int_equal(rules_decide(s, &m, &c, 1.78e9, NULL, &d, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not say \"%s\"", err, needle);
    rules_free(s);
}

static void test_validation(void **st)
{
    (void)st;
    /* SMS without consent, from select and from chain */
    assert_refused("channels.lua",
                   "function select(msg, client)\n"
                   "  if msg.type == 'reminder' then return {channels = {'sms'}} end\n"
                   "  return {channels = {'email'}}\nend\n",
                   "refused sms for this client (no_consent)");
    assert_refused(
        "fallback.lua",
        "function chain(msg, client, c)\n"
        "  if msg.type == 'reminder' then return {primary = 'email', fallbacks = {'sms'}} end\n"
        "  return {primary = c[1], fallbacks = {}}\nend\n"
        "function on_failure(msg, attempt, err) return {action = 'fail'} end\n",
        "refused sms");
    assert_refused("channels.lua",
                   "function select(msg, client)\n"
                   "  if msg.type == 'reminder' then return {channels = {'fax'}} end\n"
                   "  return {channels = {'email'}}\nend\n",
                   "unknown channel");
    assert_refused("timing.lua",
                   "function send_at(msg, client, now)\n"
                   "  if msg.type == 'reminder' then return now + 40 * 86400 end\n"
                   "  return now\nend\n",
                   "out of range");
    assert_refused("timing.lua",
                   "function send_at(msg, client, now)\n"
                   "  if msg.type == 'reminder' then return now - 3600 end\n"
                   "  return now\nend\n",
                   "out of range");
    assert_refused("timing.lua",
                   "function send_at(msg, client, now)\n"
                   "  if msg.type == 'reminder' then return 0/0 end\n"
                   "  return now\nend\n",
                   "timing.send_at");
    assert_refused("batching.lua",
                   "function decide(msg, client, pending)\n"
                   "  if msg.type == 'reminder' then return {batch = true, key = 'a b'} end\n"
                   "  return {batch = false}\nend\n",
                   "batching.decide");

    /* on_failure may only move to a channel that is left */
    tmprules_t t;
    make_rules(&t, "fallback.lua",
               "function chain(msg, client, c) return {primary = c[1], fallbacks = {}} end\n"
               "function on_failure(msg, attempt, err)\n"
               "  if attempt == 2 then return {action = 'next_channel', channel = 'whatsapp'} end\n"
               "  if attempt == 3 then return {action = 'retry', after = -5} end\n"
               "  return {action = 'retry', after = 60}\nend\n");
    char err[1024];
    rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
    drop_rules(&t);
    if (!s)
        fail_msg("load: %s", err);
    policy_msg_t m = {.message_type = "welcome", .urgency = "normal"};
    const char *rem[1] = {"sms"};
    rules_failure_t f;
    assert_int_equal(
        rules_on_failure(s, &m, 2, "email", "transient", 0, -1, rem, 1, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "remaining"));
    assert_int_equal(
        rules_on_failure(s, &m, 3, "email", "transient", 0, -1, rem, 1, &f, err, sizeof err), -1);
    assert_int_equal(
        rules_on_failure(s, &m, 1, "email", "transient", 0, -1, rem, 1, &f, err, sizeof err), 0);
    assert_int_equal(f.retry_after, 60);
    rules_free(s);
}

/* Inputs are shared by the four calls as read-only views: a rule that
 * tries to change msg or client (even under pcall) is refused, and the next
 * step still sees what crier passed in. */
static void test_inputs_read_only(void **st)
{
    (void)st;
    tmprules_t t;
    make_rules(&t, "channels.lua",
               "function select(msg, client)\n"
               "  local tries = {\n"
               "    function() msg.urgency = 'critical' end,\n"
               "    function() msg.send_at = 0 end,\n"
               "    function() client.has_phone = false end,\n"
               "    function() client.consent.sms = false end,\n"
               "    function() client.preferred_channels[1] = 'sms' end,\n"
               "    function() table.insert(client.preferred_channels, 'sms') end,\n"
               "    function() setmetatable(client, {}) end,\n"
               "  }\n"
               "  for i, f in ipairs(tries) do\n"
               "    if pcall(f) then error('write ' .. i .. ' was not refused') end\n"
               "  end\n"
               "  local n = 0\n"
               "  for _ in pairs(client) do n = n + 1 end\n"
               "  if n < 10 or #client.preferred_channels ~= 1 then\n"
               "    error('views do not read like tables')\n"
               "  end\n"
               "  return {channels = client.preferred_channels}\n"
               "end\n");
    char err[1024];
    rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
    drop_rules(&t);
    if (!s)
        fail_msg("load: %s", err);
    policy_client_t c = full_client("UTC");
    policy_msg_t m = {.message_type = "reminder", .urgency = "high"};
    policy_decision_t d;
    double now = utc(2026, 5, 10, 23, 0);
    if (rules_decide(s, &m, &c, now, NULL, &d, err, sizeof err) != 0)
        fail_msg("decide: %s", err);
    /* high inside quiet hours waits for 08:00; had the urgency become
     * critical it would go now */
    assert_string_equal(d.primary, "email");
    assert_true(d.send_at == utc(2026, 5, 11, 8, 0));
    assert_string_equal(d.status, "pending");
    assert_non_null(strstr(d.trace_json, "{\"step\":\"channels.select\",\"result\":{\"channels\":"
                                         "[\"email\"]}}"));
    rules_free(s);
}

/* crier.local_fields and crier.from_local_fields answer exactly what
 * crier.localtime and crier.from_local answer, around DST transitions. */
static void test_time_helpers_agree(void **st)
{
    (void)st;
    tmprules_t t;
    make_rules(&t, "timing.lua",
               "function send_at(msg, client, now)\n"
               "  for _, tz in ipairs({'America/New_York', 'Australia/Lord_Howe', 'UTC'}) do\n"
               "    for k = -48, 48 do\n"
               "      local at = now + k * 1800 + 7\n"
               "      local l = crier.localtime(tz, at)\n"
               "      local y, mo, d, h, mi, s = crier.local_fields(tz, at)\n"
               "      if y ~= l.year or mo ~= l.month or d ~= l.day or h ~= l.hour\n"
               "         or mi ~= l.min or s ~= l.sec then error('local_fields ' .. at) end\n"
               "      for _, dh in ipairs({0, 1, 24}) do\n"
               "        local f = {year = y, month = mo, day = d, hour = h + dh, min = 30}\n"
               "        local a, how = crier.from_local(tz, f)\n"
               "        local b, how2 = crier.from_local_fields(tz, y, mo, d, h + dh, 30)\n"
               "        if a ~= b or how ~= how2 then error('from_local_fields ' .. at) end\n"
               "      end\n"
               "    end\n"
               "  end\n"
               "  if pcall(crier.from_local_fields, 'UTC', 2026) then error('no month') end\n"
               "  if pcall(crier.from_local_fields, 'UTC', 2026, 1, 1.5) then error('day') end\n"
               "  if pcall(crier.local_fields, 'Nowhere/Atlantis', now) then error('zone') end\n"
               "  return now, 'helpers agree'\n"
               "end\n");
    char err[1024];
    rules_set_t *s = rules_load(t.dir, NULL, err, sizeof err);
    drop_rules(&t);
    if (!s)
        fail_msg("load: %s", err);
    policy_client_t c = full_client("UTC");
    policy_msg_t m = {.message_type = "welcome", .urgency = "high"};
    policy_decision_t d;
    double nows[] = {utc(2026, 3, 8, 7, 0), utc(2026, 11, 1, 6, 0), utc(2026, 4, 4, 15, 0),
                     utc(2026, 10, 3, 15, 0)};
    for (int i = 0; i < 4; i++)
        if (rules_decide(s, &m, &c, nows[i], NULL, &d, err, sizeof err) != 0)
            fail_msg("decide at %.0f: %s", nows[i], err);
    assert_non_null(strstr(d.trace_json, "helpers agree"));
    rules_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lua_and_c_agree),
        cmocka_unit_test(test_timing_transitions),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_on_failure),
        cmocka_unit_test(test_load_failures),
        cmocka_unit_test(test_containment),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_inputs_read_only),
        cmocka_unit_test(test_time_helpers_agree),
        cmocka_unit_test(test_loader_refuses_special_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
