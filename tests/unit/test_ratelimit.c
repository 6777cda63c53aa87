/* ratelimit: the shared limiter against a real Redis, and its local fallback.
 *
 * CRIER_TEST_REDIS_URL names a Redis the test may write to (make check starts
 * one and exports it); without it the Redis tests fail rather than skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit/ratelimit.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HAMMER_THREADS    4
#define HAMMER_MAX_CHECKS 200000 /* per thread: bounds the loop besides its deadline */
#define HAMMER_MAX_ALLOW  256    /* per thread: far above what any run may pass */
#define TIMEOUT_MS        50
/* What scheduling on a busy two-core machine may add to one check. */
#define SLACK_MS 400 /* scheduling slack on a loaded machine (ASan, parallel tests) */
/* The hammer checks the limiter's arithmetic, not Redis's latency: a generous
 * timeout keeps a loaded machine from turning Redis decisions into local ones. */
#define HAMMER_TIMEOUT_MS 1000

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static const char *redis_url(void)
{
    const char *u = getenv("CRIER_TEST_REDIS_URL");
    if (!u || !u[0])
        fail_msg("CRIER_TEST_REDIS_URL is not set (run scripts/services.sh start DIR and "
                 "eval \"$(scripts/services.sh env DIR)\")");
    return u;
}

/* A key no other run or test shares. */
static void unique_key(char *out, size_t outlen, const char *tag)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, outlen, "test:%s:%d:%lld%09ld", tag, (int)getpid(), (long long)ts.tv_sec,
             ts.tv_nsec);
}

/* A plain connection beside the limiter's, to look at and disturb Redis. */
static redisContext *admin_connect(void)
{
    rl_url_t u;
    char err[256];
    if (rl_url_parse(redis_url(), &u, err, sizeof err) != 0)
        fail_msg("CRIER_TEST_REDIS_URL: %s", err);
    struct timeval tv = {.tv_sec = 2};
    redisContext *c = redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err)
        fail_msg("admin connection: %s", c ? c->errstr : "out of memory");
    if (u.password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", u.password);
        assert_non_null(r);
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(c, "SELECT %d", u.db);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    return c;
}

/* A TCP port on 127.0.0.1 that refuses connections: bound (so nobody else
 * takes it) but not listening. With listen_too, one that accepts into its
 * backlog and never answers: a Redis that has stopped responding. */
static int local_socket(int listen_too, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    if (listen_too)
        assert_int_equal(listen(fd, 16), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- the hammer: threads with their own handles on one key ------------- */

typedef struct hammer {
    const char *url; /* NULL: local only */
    const char *key;
    double rate;
    int burst;
    double seconds;
    rl_source_t want; /* the source every decision must come from */
    /* results */
    long long allowed_us[HAMMER_MAX_ALLOW]; /* deciding clock, µs */
    int nallowed;
    long checks;
    long wrong_source;
    double max_check_s; /* slowest single check */
    int failed;         /* handle or argument error */
} hammer_t;

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    char err[256];
    rl_t *rl = rl_new(h->url, HAMMER_TIMEOUT_MS, err, sizeof err);
    if (!rl) {
        h->failed = 1;
        return NULL;
    }
    double end = mono_s() + h->seconds;
    while (h->checks < HAMMER_MAX_CHECKS) {
        double t0 = mono_s();
        if (t0 >= end)
            break;
        rl_result_t res;
        int rc = rl_check_ex(rl, h->key, h->rate, h->burst, &res);
        double dt = mono_s() - t0;
        if (dt > h->max_check_s)
            h->max_check_s = dt;
        h->checks++;
        if (rc == RL_ERROR) {
            h->failed = 1;
            break;
        }
        if (res.source != h->want)
            h->wrong_source++;
        if (rc == RL_ALLOW) {
            if (h->nallowed == HAMMER_MAX_ALLOW) {
                h->failed = 1;
                break;
            }
            h->allowed_us[h->nallowed++] = llround(res.now_s * 1e6);
        }
        /* A short pause keeps four threads from starving the rest of a
         * two-core machine; a check still comes every ~0.1 ms per thread. */
        sleep_s(100e-6);
    }
    rl_free(rl);
    return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Runs HAMMER_THREADS threads on one key and checks what passed against the
 * GCRA contract:
 *   - in any window, allowed checks i..j (1-based, in the deciding clock's
 *     order) are at least (j - i + 1 - burst) / rate apart: never more than
 *     the burst plus the rate, whatever the scheduling;
 *   - the total is at most burst + rate * duration (fewer only when every
 *     thread was descheduled for a while, so the lower bound is loose).
 * The per-second counts are printed, not judged: after a stall a later
 * second may rightly pass a small burst. */
static void hammer_key(const char *url, rl_source_t want, const char *key, double rate, int burst,
                       double seconds, double max_check_s)
{
    static hammer_t h[HAMMER_THREADS];
    pthread_t th[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i] = (hammer_t){
            .url = url, .key = key, .rate = rate, .burst = burst, .seconds = seconds, .want = want};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < HAMMER_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    static long long all[HAMMER_THREADS * HAMMER_MAX_ALLOW];
    int n = 0;
    long checks = 0;
    double slowest = 0;
    for (int i = 0; i < HAMMER_THREADS; i++) {
        assert_false(h[i].failed);
        assert_int_equal(h[i].wrong_source, 0);
        assert_true(h[i].checks > 0);
        memcpy(all + n, h[i].allowed_us, (size_t)h[i].nallowed * sizeof all[0]);
        n += h[i].nallowed;
        checks += h[i].checks;
        if (h[i].max_check_s > slowest)
            slowest = h[i].max_check_s;
    }
    qsort(all, (size_t)n, sizeof all[0], cmp_ll);
    assert_true(n > 0);

    long long interval_us = llround(1e6 / rate);
    for (int i = 0; i < n; i++)
        for (int j = i + burst; j < n; j++) {
            long long earliest = (long long)(j - i + 1 - burst) * interval_us;
            if (all[j] - all[i] < earliest)
                fail_msg("allowed checks %d..%d came within %lld us, less than %lld us", i + 1,
                         j + 1, all[j] - all[i], earliest);
        }

    int per_sec[64] = {0};
    int nsec = 0;
    for (int i = 0; i < n; i++) {
        long long k = (all[i] - all[0]) / 1000000;
        assert_true(k >= 0 && k < 64);
        per_sec[k]++;
        if (k + 1 > nsec)
            nsec = (int)k + 1;
    }
    printf("    %ld checks by %d threads, %d allowed; per second:", checks, HAMMER_THREADS, n);
    int max_later = 0;
    for (int k = 0; k < nsec; k++) {
        printf(" %d", per_sec[k]);
        if (k > 0 && per_sec[k] > max_later)
            max_later = per_sec[k];
    }
    printf("; max after the first second %d; slowest check %.1f ms\n", max_later, slowest * 1e3);

    int expect = burst + (int)(rate * seconds);
    if (n < expect / 2 || n > expect + 1)
        fail_msg("%d allowed in %.1f s, expected at most %d (burst %d + rate x duration)", n,
                 seconds, expect, burst);
    /* The threads did hammer: more checks were turned away than passed. */
    assert_true(checks > 2L * n);
    if (slowest > max_check_s)
        fail_msg("a check took %.1f ms, over %.1f ms", slowest * 1e3, max_check_s * 1e3);
}

/* Makes sure the shared view of Redis is "up", so that a test can see the
 * outage counter move when it then takes Redis away. */
static void redis_seen_up(void)
{
    char err[256], key[128];
    rl_t *rl = rl_new(redis_url(), TIMEOUT_MS, err, sizeof err);
    assert_non_null(rl);
    unique_key(key, sizeof key, "up");
    assert_int_equal(rl_check(rl, key, 1.0, 1, NULL), RL_ALLOW);
    assert_true(rl_using_redis(rl));
    rl_free(rl);
}

/* ---- tests ------------------------------------------------------------- */

static void test_url_parse(void **state)
{
    (void)state;
    rl_url_t u;
    char err[256];
    assert_int_equal(rl_url_parse("redis://127.0.0.1:7000/3", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");

    assert_int_equal(rl_url_parse("redis://cache.internal", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);

    assert_int_equal(rl_url_parse("redis://:s%40cret@[::1]:6380/", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s@cret");

    assert_int_equal(rl_url_parse("redis://crier:pw0rd@h:1/2", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "crier");
    assert_string_equal(u.password, "pw0rd");
    assert_string_equal(u.host, "h");

    const char *bad[] = {
        "http://h:1",       "redis://",     "redis://h:0",
        "redis://h:65536",  "redis://h:x",  "redis://h/abc",
        "redis://h:1?x",    "redis://[::1", "redis://user@h",
        "redis://:p%zzw@h", NULL,
    };
    for (int i = 0; bad[i]; i++) {
        err[0] = '\0';
        if (rl_url_parse(bad[i], &u, err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* The message for a bad URL never carries its password. */
    assert_int_not_equal(rl_url_parse("redis://:hunter2secret@h:99999", &u, err, sizeof err), 0);
    assert_null(strstr(err, "hunter2"));
    assert_null(rl_new("redis://:hunter2secret@:1", TIMEOUT_MS, err, sizeof err));
    assert_null(strstr(err, "hunter2"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char err[256], key[RL_KEY_MAX + 2];
    rl_t *rl = rl_new(NULL, 0, err, sizeof err);
    assert_non_null(rl);
    double w = -1;
    assert_int_equal(rl_check(rl, "", 1, 1, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, NULL, 1, 1, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, "k", 0, 1, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, "k", -1, 1, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, "k", NAN, 1, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, "k", 2e6, 1, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, "k", 1, 0, &w), RL_ERROR);
    assert_int_equal(rl_check(rl, "k", 1e-9, 1, &w), RL_ERROR); /* a 31-year bucket */
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(rl_check(rl, key, 1, 1, &w), RL_ERROR);
    key[RL_KEY_MAX] = '\0';
    assert_int_equal(rl_check(rl, key, 1, 1, &w), RL_ALLOW);
    rl_free(rl);
}

/* A daily quota as the configuration makes it ("1000/d": burst 1000):
 * the whole day's messages pass at once from idle, the next one waits for
 * the first token to come back, a day's share of 86.4 s. */
static void test_daily_quota(void **state)
{
    (void)state;
    char err[256];
    rl_t *rl = rl_new(NULL, 0, err, sizeof err);
    assert_non_null(rl);
    const char *key = "whatsapp:daily-quota-test";
    double rate = 1000.0 / 86400.0, w = -1;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rl_check(rl, key, rate, 1000, &w), RL_ALLOW);
    assert_int_equal(rl_check(rl, key, rate, 1000, &w), RL_DENY);
    assert_true(w > 86.4 - SLACK_MS / 1000.0 && w <= 86.4 + 1e-6);
    rl_free(rl);
}

static void test_defaults(void **state)
{
    (void)state;
    size_t n = 0;
    const rl_limit_t *t = rl_limits_default(&n);
    assert_int_equal(n, 3);
    assert_non_null(t);
    const rl_limit_t *tw = rl_limit_find("twilio");
    assert_non_null(tw);
    assert_true(tw->rate_per_s == 1.0 && tw->burst == 1);
    const rl_limit_t *sm = rl_limit_find("smtp");
    assert_non_null(sm);
    /* 100 an hour, sustained. */
    assert_true(sm->rate_per_s * 3600.0 > 99.999 && sm->rate_per_s * 3600.0 < 100.001);
    const rl_limit_t *wa = rl_limit_find("whatsapp");
    assert_non_null(wa);
    assert_true(wa->rate_per_s == 80.0);
    assert_null(rl_limit_find("pigeon"));
    assert_null(rl_limit_find(NULL));

    char key[RL_KEY_MAX + 1];
    assert_int_equal(rl_key(key, sizeof key, "twilio", "+15551234567"), 0);
    assert_string_equal(key, "twilio:+15551234567");
    char small[8];
    assert_int_equal(rl_key(small, sizeof small, "twilio", "+15551234567"), -1);
}

/* The done-when shape at unit scale: four handles share one key through
 * Redis at 5/s with a burst of 5 for 3 s. */
static void test_redis_shared_rate(void **state)
{
    (void)state;
    char key[128];
    unique_key(key, sizeof key, "shared");
    rl_stats_t before, after;
    rl_stats(&before);
    hammer_key(redis_url(), RL_SRC_REDIS, key, 5.0, 5, 3.0, (HAMMER_TIMEOUT_MS + SLACK_MS) / 1e3);
    rl_stats(&after);
    assert_true(after.local_checks == before.local_checks);
}

/* A denial says how long to wait, and waiting that long is enough; another
 * sender's key has its own bucket; the Redis key expires once it would be
 * full again. */
static void test_redis_wait_and_keys(void **state)
{
    (void)state;
    char err[256], a[128], b[128];
    unique_key(a, sizeof a, "sender-a");
    unique_key(b, sizeof b, "sender-b");
    rl_t *rl = rl_new(redis_url(), TIMEOUT_MS, err, sizeof err);
    assert_non_null(rl);
    double w = -1;
    for (int i = 0; i < 5; i++)
        assert_int_equal(rl_check(rl, a, 5.0, 5, &w), RL_ALLOW);
    assert_true(rl_using_redis(rl));
    assert_int_equal(rl_check(rl, a, 5.0, 5, &w), RL_DENY);
    assert_true(w > 0.0 && w <= 0.2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rl_check(rl, b, 5.0, 5, NULL), RL_ALLOW);
    assert_int_equal(rl_check(rl, b, 5.0, 5, NULL), RL_DENY);

    redisContext *c = admin_connect();
    redisReply *r = redisCommand(c, "PTTL %s%s", RL_REDIS_PREFIX, a);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    /* The bucket refills within burst / rate = 1 s (+ rounding). */
    assert_true(r->integer > 0 && r->integer <= 1002);
    freeReplyObject(r);
    redisFree(c);

    sleep_s(w + 0.005);
    assert_int_equal(rl_check(rl, a, 5.0, 5, &w), RL_ALLOW);
    assert_int_equal(rl_check(rl, a, 5.0, 5, &w), RL_DENY);
    rl_free(rl);
}

/* SCRIPT FLUSH (as after a Redis restart) makes the next EVALSHA answer
 * NOSCRIPT; the handle reloads the script and still decides through Redis. */
static void test_redis_noscript(void **state)
{
    (void)state;
    char err[256], key[128];
    unique_key(key, sizeof key, "noscript");
    rl_t *rl = rl_new(redis_url(), TIMEOUT_MS, err, sizeof err);
    assert_non_null(rl);
    rl_result_t res;
    assert_int_equal(rl_check_ex(rl, key, 5.0, 2, &res), RL_ALLOW);
    assert_int_equal(res.source, RL_SRC_REDIS);

    redisContext *c = admin_connect();
    redisReply *r = redisCommand(c, "SCRIPT FLUSH");
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);

    rl_stats_t before, after;
    rl_stats(&before);
    /* Same bucket as before the flush: the second check of a burst of 2
     * passes and the third is refused, both decided by Redis. */
    assert_int_equal(rl_check_ex(rl, key, 5.0, 2, &res), RL_ALLOW);
    assert_int_equal(res.source, RL_SRC_REDIS);
    assert_int_equal(rl_check_ex(rl, key, 5.0, 2, &res), RL_DENY);
    assert_int_equal(res.source, RL_SRC_REDIS);
    rl_stats(&after);
    assert_true(after.local_checks == before.local_checks);

    /* The script is cached again: the handle loaded it after NOSCRIPT. */
    r = redisCommand(c, "INFO memory");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *f = strstr(r->str, "number_of_cached_scripts:");
    assert_non_null(f);
    assert_true(atoi(f + strlen("number_of_cached_scripts:")) >= 1);
    freeReplyObject(r);
    redisFree(c);
    rl_free(rl);
}

/* Redis refusing connections: the local limiter keeps the same limit, the
 * fallback is counted, and no check waits on the dead server. */
static void test_unreachable_falls_back(void **state)
{
    (void)state;
    redis_seen_up();
    int port;
    int fd = local_socket(0, &port);
    char url[64], key[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    unique_key(key, sizeof key, "local");
    rl_stats_t before, after;
    rl_stats(&before);
    hammer_key(url, RL_SRC_LOCAL, key, 5.0, 5, 3.0, (TIMEOUT_MS + SLACK_MS) / 1e3);
    rl_stats(&after);
    assert_true(after.local_checks > before.local_checks + 100);
    assert_true(after.outages == before.outages + 1); /* one outage, however many threads */
    close(fd);
}

/* A Redis that accepts but never answers: the first check gives up after
 * the timeout and decides locally, the next ones within a second do not try
 * Redis at all, and a second later it is tried again. */
static void test_slow_redis_times_out(void **state)
{
    (void)state;
    int port;
    int fd = local_socket(1, &port);
    char url[64], err[256], key[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    unique_key(key, sizeof key, "slow");
    rl_t *rl = rl_new(url, TIMEOUT_MS, err, sizeof err);
    assert_non_null(rl);
    rl_result_t res;

    double t0 = mono_s();
    assert_int_equal(rl_check_ex(rl, key, 1000.0, 1000, &res), RL_ALLOW);
    double first = mono_s() - t0;
    assert_int_equal(res.source, RL_SRC_LOCAL);
    printf("    first check against a silent server: %.1f ms\n", first * 1e3);
    assert_true(first >= (TIMEOUT_MS - 5) / 1e3);        /* it did wait for Redis */
    assert_true(first <= (TIMEOUT_MS + SLACK_MS) / 1e3); /* and no longer */

    double slowest = 0;
    for (int i = 0; i < 100; i++) {
        t0 = mono_s();
        assert_int_equal(rl_check_ex(rl, key, 1000.0, 1000, &res), RL_ALLOW);
        double dt = mono_s() - t0;
        if (dt > slowest)
            slowest = dt;
        assert_int_equal(res.source, RL_SRC_LOCAL);
    }
    assert_true(slowest < (TIMEOUT_MS - 20) / 1e3); /* no retry inside the second */

    sleep_s(1.05);
    t0 = mono_s();
    assert_int_equal(rl_check_ex(rl, key, 1000.0, 1000, &res), RL_ALLOW);
    double again = mono_s() - t0;
    assert_true(again >= (TIMEOUT_MS - 5) / 1e3); /* retried after a second */
    assert_true(again <= (TIMEOUT_MS + SLACK_MS) / 1e3);
    rl_free(rl);
    close(fd);
}

/* No URL at all: local limits, counted as fallbacks. */
static void test_no_url_is_local(void **state)
{
    (void)state;
    char err[256], key[128];
    unique_key(key, sizeof key, "nourl");
    rl_t *rl = rl_new("", 0, err, sizeof err);
    assert_non_null(rl);
    rl_stats_t before, after;
    rl_stats(&before);
    rl_result_t res;
    assert_int_equal(rl_check_ex(rl, key, 1.0, 2, &res), RL_ALLOW);
    assert_int_equal(res.source, RL_SRC_LOCAL);
    assert_int_equal(rl_check_ex(rl, key, 1.0, 2, &res), RL_ALLOW);
    assert_int_equal(rl_check_ex(rl, key, 1.0, 2, &res), RL_DENY);
    assert_true(res.wait_s > 0.0 && res.wait_s <= 1.0);
    assert_false(rl_using_redis(rl));
    rl_stats(&after);
    assert_true(after.local_checks == before.local_checks + 3);
    rl_free(rl);
}

/* Far more keys than the local table holds: memory stays fixed and a key
 * in use keeps its bucket while idle ones are the ones evicted. */
static void test_local_table_bounded(void **state)
{
    (void)state;
    char hot[128], k[160];
    unique_key(hot, sizeof hot, "hot");
    rl_result_t res;
    assert_int_equal(rl_local_check(hot, 1000000, 1, &res), RL_ALLOW);
    for (int i = 0; i < 4 * RL_LOCAL_SLOTS; i++) {
        snprintf(k, sizeof k, "%s:cold:%d", hot, i);
        assert_int_equal(rl_local_check(k, 1000, 1, &res), RL_ALLOW);
    }
    /* The hot key's bucket (1 per second) is still empty: it was never the
     * fullest in its neighbourhood, the cold keys refill within 1 ms. */
    assert_int_equal(rl_local_check(hot, 1000000, 1, &res), RL_DENY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_daily_quota),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_redis_shared_rate),
        cmocka_unit_test(test_redis_wait_and_keys),
        cmocka_unit_test(test_redis_noscript),
        cmocka_unit_test(test_unreachable_falls_back),
        cmocka_unit_test(test_slow_redis_times_out),
        cmocka_unit_test(test_no_url_is_local),
        cmocka_unit_test(test_local_table_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
