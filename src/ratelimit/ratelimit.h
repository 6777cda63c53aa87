/* ratelimit: per provider and sender send rates, shared by every crier
 * process through Redis, with an in-process fallback.
 *
 * The algorithm is GCRA (the "virtual scheduling" form of a token bucket):
 * one number per key, the theoretical arrival time (TAT) of the next message
 * at the sustained rate. A check at time now is allowed when
 *     max(TAT, now) + 1/rate - now <= burst / rate
 * and then moves TAT to max(TAT, now) + 1/rate; otherwise it is denied with
 * the time left until it would be allowed. This is a token bucket holding at
 * most `burst` tokens and refilled at `rate` per second: from an idle key at
 * most burst messages pass at once, then one per 1/rate seconds, so in any
 * span of W seconds at most burst + rate * W pass.
 *
 * With Redis the decision is made by a Lua script on the server (one round
 * trip, atomic, clocked by the server's TIME so the crier hosts' clocks do not
 * matter). Without Redis (no URL, refused, slow, or erroring) the same rule is
 * applied to a process-wide table, Redis is retried at most once a second per
 * handle, and a warning is logged once per outage.
 *
 * A handle (rl_t) belongs to one thread: hiredis connections are not thread
 * safe. The local table and the counters are shared by all handles. */
#ifndef CRIER_RATELIMIT_H
#define CRIER_RATELIMIT_H

#include <stddef.h>

/* Longest key accepted by rl_check (e.g. "twilio:+15551234567"). */
#define RL_KEY_MAX 200
/* Prefix of every Redis key this module writes. */
#define RL_REDIS_PREFIX "crier:rl:"
/* Default connect and command timeout: a slow Redis must not stall delivery. */
#define RL_TIMEOUT_MS_DEFAULT 50

/* rl_check's answers. */
#define RL_ERROR (-1) /* bad arguments: no decision was made */
#define RL_DENY  0
#define RL_ALLOW 1

/* Which limiter made a decision. */
typedef enum {
    RL_SRC_REDIS, /* the shared limiter */
    RL_SRC_LOCAL, /* the in-process fallback */
} rl_source_t;

/* One decision in full. */
typedef struct rl_result {
    int allowed;        /* 1 allowed, 0 denied */
    double wait_s;      /* when denied: seconds until a retry would pass; else 0 */
    double now_s;       /* the deciding clock at the decision: Redis's Unix time, or
                           the local monotonic clock; compare only within one source */
    rl_source_t source; /* who decided */
} rl_result_t;

/* A parsed redis://[[user]:password@]host[:port][/db] URL. */
typedef struct rl_url {
    char host[256];     /* name or address; IPv6 without the brackets */
    int port;           /* default 6379 */
    int db;             /* default 0 */
    char user[128];     /* "" when none (AUTH password alone) */
    char password[256]; /* "" when none; a secret: never log it */
} rl_url_t;

/* Parses url (percent-escapes in user and password are decoded). Returns 0,
 * or -1 with a message in err that never contains the password. */
int rl_url_parse(const char *url, rl_url_t *out, char *err, size_t errlen);

typedef struct rl rl_t;

/* Makes a handle for one thread. redis_url NULL or "" means local limits
 * only (warned about once per process). timeout_ms bounds the connect and
 * every command (0: RL_TIMEOUT_MS_DEFAULT). Nothing is connected yet: the
 * first check connects. Returns NULL on a malformed URL or out of memory,
 * with a message in err (no password in it). The caller owns the handle. */
rl_t *rl_new(const char *redis_url, int timeout_ms, char *err, size_t errlen);
/* Closes the connection and frees the handle (NULL is fine). */
void rl_free(rl_t *rl);

/* Asks whether one message under key may go now, at rate_per_s sustained
 * with bursts of up to burst. Returns RL_ALLOW; RL_DENY with *wait_s set to
 * the seconds to wait before trying again (the caller reschedules, it never
 * spins); or RL_ERROR for an empty or over-long key, a rate outside
 * (0, 1e6] or a burst outside [1, 1e6] or a bucket longer than ~100 days.
 * Never blocks much longer than the handle's timeout (except that a host
 * name in the URL is resolved by the system resolver, outside that budget).
 * wait_s may be NULL. */
int rl_check(rl_t *rl, const char *key, double rate_per_s, int burst, double *wait_s);
/* The same, with the whole decision in *res. */
int rl_check_ex(rl_t *rl, const char *key, double rate_per_s, int burst, rl_result_t *res);

/* 1 when the handle's last decision came from Redis. */
int rl_using_redis(const rl_t *rl);

/* Process-wide counters since start, for the metrics. */
typedef struct rl_stats {
    unsigned long long local_checks; /* decisions the fallback made for want of Redis */
    unsigned long long outages;      /* times Redis stopped answering (or never did) */
} rl_stats_t;
void rl_stats(rl_stats_t *out);

/* The in-process limiter (rl_local.c), shared by every handle of the process.
 * It keeps at most RL_LOCAL_SLOTS keys; a new key takes the place of the one
 * in its neighbourhood nearest to a full bucket, so a flood of distinct keys
 * costs fixed memory and at worst grants an evicted key a fresh burst. */
#define RL_LOCAL_SLOTS 1024
/* Decides as rl_check_ex does, on the local monotonic clock. Arguments are
 * not validated here (rl_check_ex does it). Returns RL_ALLOW or RL_DENY. */
int rl_local_check(const char *key, long long interval_us, int burst, rl_result_t *res);

/* The default limits per provider, from the seed and the providers' published
 * throughput. Keys are "<provider>:<sender>" (a sender number, a from
 * address); the configuration will override these later. */
typedef struct rl_limit {
    const char *provider; /* "twilio", "smtp", "whatsapp" */
    double rate_per_s;    /* sustained */
    int burst;            /* at once from idle */
} rl_limit_t;
/* The table (static, never freed) and its length in *n. */
const rl_limit_t *rl_limits_default(size_t *n);
/* The default limit for provider, or NULL when there is none. */
const rl_limit_t *rl_limit_find(const char *provider);
/* Writes "<provider>:<sender>" into out. Returns 0, or -1 when it does not
 * fit or is longer than RL_KEY_MAX. */
int rl_key(char *out, size_t outlen, const char *provider, const char *sender);

#endif
