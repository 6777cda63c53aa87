/* ratelimit: the Redis side of the shared limiter, the fallback policy
 * around it, and the default limits. The GCRA rule itself is explained in
 * ratelimit.h; rl_local.c applies it in process. */
#include "ratelimit/ratelimit.h"
#include "channel/ch.h"

#include "util/errmsg.h"
#include "util/log.h"
#include "util/text.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Redis is tried again at most this often per handle while it is down, so an
 * outage costs one connect attempt a second, not one per message. */
#define RL_RETRY_US 1000000LL
/* Longest bucket (burst / rate) accepted: keeps every TAT an exact integer in
 * a double inside the script and every TTL a plain integer. */
#define RL_MAX_SPAN_US 10000000000000LL /* ~116 days */

/* KEYS[1] the bucket; ARGV[1] the emission interval in µs (1/rate), ARGV[2]
 * the burst. Answers {allowed, wait_us, time_s, time_us}. The TAT is written
 * with %.0f because Lua 5.1's tostring keeps only 14 digits, fewer than a
 * µs timestamp has. The TTL ends when the bucket would be full again, when
 * a missing key means the same thing, so idle keys vanish. */
static const char rl_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local limit = interval * tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now\n"
    "if tat < now then tat = now end\n"
    "local ahead = tat + interval - now\n"
    "if ahead > limit then return {0, ahead - limit, t[1], t[2]} end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', tat + interval),\n"
    "           'PX', math.ceil(ahead / 1000) + 1)\n"
    "return {1, 0, t[1], t[2]}\n";

/* Shared view of Redis across handles, so an outage is warned about once
 * however many worker threads notice it. */
enum { RL_STATE_UNKNOWN, RL_STATE_UP, RL_STATE_DOWN };
static atomic_int rl_state = RL_STATE_UNKNOWN;
static atomic_int rl_no_url_warned;
static atomic_ullong rl_local_count;
static atomic_ullong rl_outage_count;

struct rl {
    rl_url_t url;         /* owned copy; url.password is a secret */
    int has_redis;        /* a URL was given */
    long long tmo_us;     /* configured connect/command timeout */
    long long cur_tmo_us; /* timeout now set on ctx (lowered near a deadline) */
    redisContext *ctx;    /* owned; NULL until connected or after a failure */
    char sha[41];         /* the script's SHA1 as Redis reported it */
    long long retry_at;   /* monotonic µs before which Redis is not tried */
    int up;               /* this handle's last Redis attempt succeeded */
    int last_redis;       /* the last decision came from Redis */
    char err[160];        /* why the last Redis attempt failed (no secrets) */
};

static long long rl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* ---- URL ---------------------------------------------------------------- */

/* Copies [s, s+n) into out percent-decoded; -1 when it does not fit or an
 * escape is malformed. */
static int rl_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = text_hexval((unsigned char)s[i + 1]),
                lo = text_hexval((unsigned char)s[i + 2]);
            /* %00 would cut the value short where the server would not. */
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Parses a decimal integer in [lo, hi] from exactly [s, s+n). */
static int rl_parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    if (n == 0 || n > 9)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int rl_url_parse(const char *url, rl_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    static const char scheme[] = "redis://";
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        errmsg_set(err, errlen, "Redis URL must start with redis://");
        return -1;
    }
    const char *p = url + sizeof scheme - 1;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last '@': a password may hold an escaped one only */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            errmsg_set(err, errlen, "Redis URL: credentials must be [user]:password@");
            return -1;
        }
        if (rl_decode(p, (size_t)(colon - p), out->user, sizeof out->user) != 0 ||
            rl_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) !=
                0) {
            errmsg_set(err, errlen, "Redis URL: malformed or over-long credentials");
            return -1;
        }
        p = at + 1;
    }
    const char *hend;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            errmsg_set(err, errlen, "Redis URL: unclosed [ in host");
            return -1;
        }
        if (rl_decode(p + 1, (size_t)(rb - p - 1), out->host, sizeof out->host) != 0) {
            errmsg_set(err, errlen, "Redis URL: malformed host");
            return -1;
        }
        hend = rb + 1;
        if (hend < end && *hend != ':') {
            errmsg_set(err, errlen, "Redis URL: junk after ]");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if (rl_decode(p, (size_t)(hend - p), out->host, sizeof out->host) != 0) {
            errmsg_set(err, errlen, "Redis URL: malformed or over-long host");
            return -1;
        }
    }
    if (out->host[0] == '\0') {
        errmsg_set(err, errlen, "Redis URL: no host");
        return -1;
    }
    if (hend < end && rl_parse_int(hend + 1, (size_t)(end - hend - 1), 1, 65535, &out->port)) {
        errmsg_set(err, errlen, "Redis URL: port must be 1-65535");
        return -1;
    }
    if (*end == '/' && end[1] != '\0' &&
        rl_parse_int(end + 1, strlen(end + 1), 0, 1000000, &out->db) != 0) {
        errmsg_set(err, errlen, "Redis URL: database must be a number");
        return -1;
    }
    if (*end == '?' || *end == '#') {
        errmsg_set(err, errlen, "Redis URL: query and fragment are not supported");
        return -1;
    }
    return 0;
}

/* ---- handle --------------------------------------------------------------- */

rl_t *rl_new(const char *redis_url, int timeout_ms, char *err, size_t errlen)
{
    rl_t *rl = calloc(1, sizeof *rl);
    if (!rl) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    if (redis_url && redis_url[0]) {
        if (rl_url_parse(redis_url, &rl->url, err, errlen) != 0) {
            rl_free(rl);
            return NULL;
        }
        rl->has_redis = 1;
    }
    rl->tmo_us = (timeout_ms > 0 ? timeout_ms : RL_TIMEOUT_MS_DEFAULT) * 1000LL;
    return rl;
}

static void rl_disconnect(rl_t *rl)
{
    if (rl->ctx)
        redisFree(rl->ctx);
    rl->ctx = NULL;
    rl->sha[0] = '\0';
}

void rl_free(rl_t *rl)
{
    if (!rl)
        return;
    rl_disconnect(rl);
    /* Volatile so the wipe of the password is not optimised away. */
    volatile char *pw = rl->url.password;
    for (size_t i = 0; i < sizeof rl->url.password; i++)
        pw[i] = 0;
    free(rl);
}

int rl_using_redis(const rl_t *rl)
{
    return rl->last_redis;
}

void rl_stats(rl_stats_t *out)
{
    out->local_checks = atomic_load_explicit(&rl_local_count, memory_order_relaxed);
    out->outages = atomic_load_explicit(&rl_outage_count, memory_order_relaxed);
}

/* ---- Redis ----------------------------------------------------------------- */

static struct timeval rl_tv(long long us)
{
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    return tv;
}

/* Records why Redis failed: the error reply r, or the connection's error. */
static int rl_fail(rl_t *rl, const char *what, const redisReply *r)
{
    const char *why = r && r->type == REDIS_REPLY_ERROR && r->str ? r->str
                      : r                                         ? "unexpected reply"
                      : rl->ctx && rl->ctx->err                   ? rl->ctx->errstr
                                                                  : "no connection";
    snprintf(rl->err, sizeof rl->err, "%s: %.120s", what, why);
    return -1;
}

/* Sends one command with whatever is left of the check's time budget, so
 * that a check costs at most about one timeout however many commands it
 * needs (AUTH, SCRIPT LOAD, EVALSHA). NULL, with rl->err set, when out of
 * time or on an I/O error. */
static redisReply *rl_cmd(rl_t *rl, long long deadline, int argc, const char **argv,
                          const char *what)
{
    long long left = deadline - rl_now_us();
    if (left < 1000) {
        snprintf(rl->err, sizeof rl->err, "%s: time budget spent", what);
        return NULL;
    }
    if (left < rl->cur_tmo_us) {
        if (redisSetTimeout(rl->ctx, rl_tv(left)) != REDIS_OK) {
            rl_fail(rl, what, NULL);
            return NULL;
        }
        rl->cur_tmo_us = left;
    }
    size_t lens[8];
    if (argc > 8) {
        snprintf(rl->err, sizeof rl->err, "%s: too many arguments", what);
        return NULL;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(rl->ctx, argc, argv, lens);
    if (!r)
        rl_fail(rl, what, NULL);
    return r;
}

static int rl_load_script(rl_t *rl, long long deadline)
{
    const char *argv[] = {"SCRIPT", "LOAD", rl_script};
    redisReply *r = rl_cmd(rl, deadline, 3, argv, "SCRIPT LOAD");
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        rl_fail(rl, "SCRIPT LOAD", r);
        freeReplyObject(r);
        return -1;
    }
    memcpy(rl->sha, r->str, 40);
    rl->sha[40] = '\0';
    freeReplyObject(r);
    return 0;
}

static int rl_simple(rl_t *rl, long long deadline, int argc, const char **argv, const char *what)
{
    redisReply *r = rl_cmd(rl, deadline, argc, argv, what);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ERROR) {
        rl_fail(rl, what, r);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

static int rl_connect(rl_t *rl, long long deadline)
{
    long long left = deadline - rl_now_us();
    rl->ctx = redisConnectWithTimeout(rl->url.host, rl->url.port, rl_tv(left > 0 ? left : 1));
    if (!rl->ctx) {
        snprintf(rl->err, sizeof rl->err, "connect: out of memory");
        return -1;
    }
    if (rl->ctx->err)
        return rl_fail(rl, "connect", NULL);
    if (redisSetTimeout(rl->ctx, rl_tv(rl->tmo_us)) != REDIS_OK)
        return rl_fail(rl, "set timeout", NULL);
    rl->cur_tmo_us = rl->tmo_us;
    if (rl->url.password[0]) {
        const char *a2[] = {"AUTH", rl->url.password};
        const char *a3[] = {"AUTH", rl->url.user, rl->url.password};
        int rc = rl->url.user[0] ? rl_simple(rl, deadline, 3, a3, "AUTH")
                                 : rl_simple(rl, deadline, 2, a2, "AUTH");
        if (rc != 0)
            return -1;
    }
    if (rl->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", rl->url.db);
        const char *argv[] = {"SELECT", db};
        if (rl_simple(rl, deadline, 2, argv, "SELECT") != 0)
            return -1;
    }
    return rl_load_script(rl, deadline);
}

static int rl_parse_decision(const redisReply *r, rl_result_t *res)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return -1;
    const redisReply *const *e = (const redisReply *const *)r->element;
    if (e[0]->type != REDIS_REPLY_INTEGER || e[1]->type != REDIS_REPLY_INTEGER ||
        e[2]->type != REDIS_REPLY_STRING || e[3]->type != REDIS_REPLY_STRING)
        return -1;
    res->allowed = e[0]->integer == 1;
    res->wait_s = res->allowed ? 0.0 : (double)e[1]->integer / 1e6;
    res->now_s = strtod(e[2]->str, NULL) + strtod(e[3]->str, NULL) / 1e6;
    res->source = RL_SRC_REDIS;
    return 0;
}

/* One decision from Redis: connects when needed, then one EVALSHA (and on
 * NOSCRIPT, after a restart or SCRIPT FLUSH, one reload and one retry). */
static int rl_redis_check(rl_t *rl, const char *nskey, long long interval_us, int burst,
                          rl_result_t *res)
{
    long long deadline = rl_now_us() + rl->tmo_us;
    if (!rl->ctx && rl_connect(rl, deadline) != 0)
        return -1;
    if (rl->cur_tmo_us != rl->tmo_us) {
        /* A previous check lowered it near its deadline. */
        if (redisSetTimeout(rl->ctx, rl_tv(rl->tmo_us)) != REDIS_OK)
            return rl_fail(rl, "set timeout", NULL);
        rl->cur_tmo_us = rl->tmo_us;
    }
    char interval[24], bst[16];
    snprintf(interval, sizeof interval, "%lld", interval_us);
    snprintf(bst, sizeof bst, "%d", burst);
    for (int attempt = 0; attempt < 2; attempt++) {
        const char *argv[] = {"EVALSHA", rl->sha, "1", nskey, interval, bst};
        redisReply *r = rl_cmd(rl, deadline, 6, argv, "EVALSHA");
        if (!r)
            return -1;
        if (attempt == 0 && r->type == REDIS_REPLY_ERROR && r->str &&
            strncmp(r->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(r);
            if (rl_load_script(rl, deadline) != 0)
                return -1;
            continue;
        }
        int rc = rl_parse_decision(r, res);
        if (rc != 0)
            rl_fail(rl, "EVALSHA", r);
        freeReplyObject(r);
        return rc;
    }
    snprintf(rl->err, sizeof rl->err, "EVALSHA: NOSCRIPT after reload");
    return -1;
}

static void rl_mark_down(rl_t *rl)
{
    rl_disconnect(rl);
    rl->up = 0;
    rl->retry_at = rl_now_us() + RL_RETRY_US;
    if (atomic_exchange(&rl_state, RL_STATE_DOWN) != RL_STATE_DOWN) {
        atomic_fetch_add_explicit(&rl_outage_count, 1, memory_order_relaxed);
        char port[8];
        snprintf(port, sizeof port, "%d", rl->url.port);
        log_warn("ratelimit", "redis_unavailable", "host", rl->url.host, "port", port, "error",
                 rl->err, "fallback", "local limits per process", NULL);
    }
}

static void rl_mark_up(rl_t *rl)
{
    /* Only a handle coming back touches the shared flag, so the hot path
     * does not write a cache line every thread shares. */
    if (rl->up)
        return;
    rl->up = 1;
    if (atomic_exchange(&rl_state, RL_STATE_UP) == RL_STATE_DOWN)
        log_info("ratelimit", "redis_restored", "host", rl->url.host, NULL);
}

/* At debug level, one line per grant with the deciding clock's time: the
 * record a shared limit is judged by, exact whatever a loaded receiver's
 * clock says (Redis's clock is one for every process that shares it). */
static void rl_log_grant(const char *key, const rl_result_t *res)
{
    if (!res->allowed || !log_enabled(LOG_DEBUG))
        return;
    char at[32];
    snprintf(at, sizeof at, "%.6f", res->now_s);
    log_kv(LOG_DEBUG, "ratelimit", "granted", "key", key, "clock",
           res->source == RL_SRC_REDIS ? "redis" : "local", "at", at, NULL);
}

int rl_check_ex(rl_t *rl, const char *key, double rate_per_s, int burst, rl_result_t *res)
{
    size_t klen = key ? strlen(key) : 0;
    if (!rl || !res || klen == 0 || klen > RL_KEY_MAX || !(rate_per_s > 0.0) || rate_per_s > 1e6 ||
        burst < 1 || burst > 1000000)
        return RL_ERROR;
    long long interval_us = llround(1e6 / rate_per_s);
    if (interval_us < 1)
        interval_us = 1;
    if (interval_us > RL_MAX_SPAN_US / burst)
        return RL_ERROR;

    if (rl->has_redis && rl_now_us() >= rl->retry_at) {
        char nskey[sizeof RL_REDIS_PREFIX + RL_KEY_MAX];
        snprintf(nskey, sizeof nskey, "%s%s", RL_REDIS_PREFIX, key);
        if (rl_redis_check(rl, nskey, interval_us, burst, res) == 0) {
            rl_mark_up(rl);
            rl->last_redis = 1;
            rl_log_grant(key, res);
            return res->allowed ? RL_ALLOW : RL_DENY;
        }
        rl_mark_down(rl);
    } else if (!rl->has_redis && atomic_exchange(&rl_no_url_warned, 1) == 0) {
        log_warn("ratelimit", "no_redis", "detail",
                 "CRIER_REDIS_URL is not set: rate limits are per process", NULL);
    }
    rl->last_redis = 0;
    atomic_fetch_add_explicit(&rl_local_count, 1, memory_order_relaxed);
    int rc = rl_local_check(key, interval_us, burst, res);
    if (rc != RL_ERROR)
        rl_log_grant(key, res);
    return rc;
}

int rl_check(rl_t *rl, const char *key, double rate_per_s, int burst, double *wait_s)
{
    rl_result_t res;
    int rc = rl_check_ex(rl, key, rate_per_s, burst, &res);
    if (wait_s)
        *wait_s = rc == RL_DENY ? res.wait_s : 0.0;
    return rc;
}

/* ---- defaults -------------------------------------------------------------- */

/* twilio: a US long code sends 1 segment a second (providers §1.9, the
 *   seed's 1/s per number); Twilio queues the excess, so no burst.
 * smtp: the seed's 100 an hour; a burst of 10 lets a plan's few mails go
 *   together while any hour still sees at most 110.
 * whatsapp: Cloud API's default 80 messages a second per business number
 *   (§2.8); a burst of 10 keeps any second under 90. The seed's "1000 a day"
 *   is a tier of unique users a day, not a send rate: it is for the
 *   configuration, not this table. */
static const rl_limit_t rl_defaults[] = {
    {"twilio", 1.0, 1},
    {"smtp", 100.0 / 3600.0, 10},
    {CH_NAME_WHATSAPP, 80.0, 10},
};

const rl_limit_t *rl_limits_default(size_t *n)
{
    *n = sizeof rl_defaults / sizeof rl_defaults[0];
    return rl_defaults;
}

const rl_limit_t *rl_limit_find(const char *provider)
{
    for (size_t i = 0; provider && i < sizeof rl_defaults / sizeof rl_defaults[0]; i++)
        if (strcmp(rl_defaults[i].provider, provider) == 0)
            return &rl_defaults[i];
    return NULL;
}

int rl_key(char *out, size_t outlen, const char *provider, const char *sender)
{
    int n = snprintf(out, outlen, "%s:%s", provider, sender);
    if (n < 0 || (size_t)n >= outlen || n > RL_KEY_MAX)
        return -1;
    return 0;
}
