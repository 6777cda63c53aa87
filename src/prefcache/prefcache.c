#include "prefcache/prefcache.h"

#include "ratelimit/ratelimit.h"
#include "util/log.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFCACHE_KEY_MAX     (sizeof PREFCACHE_PREFIX + 40)
#define PREFCACHE_TIMEOUT_DEF 50
#define PREFCACHE_RETRY_MS    1000 /* a Redis that went away is asked again at most this often */

struct prefcache {
    pthread_mutex_t lock;
    int enabled;
    rl_url_t url; /* holds the password: never logged */
    long long timeout_us;
    redisContext *ctx;     /* owned; NULL while disconnected */
    long long next_try_ms; /* no reconnect before this (monotonic ms) */
    int warned;            /* the outage was logged */
};

static atomic_ullong pc_hits, pc_misses, pc_errors, pc_bypassed;
static atomic_int pc_configured;

static long long prefcache_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval prefcache_tv(long long us)
{
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    return tv;
}

prefcache_t *prefcache_new(const char *redis_url, int timeout_ms, char *err, size_t errlen)
{
    prefcache_t *pc = calloc(1, sizeof *pc);
    if (!pc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&pc->lock, NULL);
    pc->timeout_us = (timeout_ms > 0 ? timeout_ms : PREFCACHE_TIMEOUT_DEF) * 1000LL;
    if (redis_url && *redis_url) {
        if (rl_url_parse(redis_url, &pc->url, err, errlen) != 0) {
            prefcache_free(pc);
            return NULL;
        }
        pc->enabled = 1;
        atomic_store(&pc_configured, 1);
    }
    return pc;
}

void prefcache_free(prefcache_t *pc)
{
    if (!pc)
        return;
    if (pc->ctx)
        redisFree(pc->ctx);
    memset(&pc->url, 0, sizeof pc->url);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
}

int prefcache_enabled(const prefcache_t *pc)
{
    return pc && pc->enabled;
}

/* Drops the connection after a failure; the next use waits out the retry
 * delay so that a dead Redis costs one timeout a second, not one a call. */
static void prefcache_broken(prefcache_t *pc, const char *what)
{
    atomic_fetch_add(&pc_errors, 1);
    if (!pc->warned) {
        log_warn("prefcache", "redis_unavailable", "step", what, "using", "postgresql", NULL);
        pc->warned = 1;
    }
    if (pc->ctx)
        redisFree(pc->ctx);
    pc->ctx = NULL;
    pc->next_try_ms = prefcache_now_ms() + PREFCACHE_RETRY_MS;
}

/* One command whose reply must be OK (AUTH, SELECT). */
static int prefcache_simple(prefcache_t *pc, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(pc->ctx, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Connected (or a reason not to try): 0, or -1. Called with the lock held. */
static int prefcache_ready(prefcache_t *pc)
{
    if (pc->ctx)
        return 0;
    if (prefcache_now_ms() < pc->next_try_ms)
        return -1;
    pc->ctx = redisConnectWithTimeout(pc->url.host, pc->url.port, prefcache_tv(pc->timeout_us));
    if (!pc->ctx || pc->ctx->err || redisSetTimeout(pc->ctx, prefcache_tv(pc->timeout_us)) != 0) {
        prefcache_broken(pc, "connect");
        return -1;
    }
    if (pc->url.password[0]) {
        const char *a2[] = {"AUTH", pc->url.password};
        const char *a3[] = {"AUTH", pc->url.user, pc->url.password};
        if (prefcache_simple(pc, pc->url.user[0] ? 3 : 2, pc->url.user[0] ? a3 : a2) != 0) {
            prefcache_broken(pc, "auth");
            return -1;
        }
    }
    if (pc->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", pc->url.db);
        const char *argv[] = {"SELECT", db};
        if (prefcache_simple(pc, 2, argv) != 0) {
            prefcache_broken(pc, "select");
            return -1;
        }
    }
    if (pc->warned)
        log_info("prefcache", "redis_reachable", NULL);
    pc->warned = 0;
    return 0;
}

static void prefcache_key(char out[PREFCACHE_KEY_MAX], const char *id)
{
    snprintf(out, PREFCACHE_KEY_MAX, "%s%.36s", PREFCACHE_PREFIX, id);
}

int prefcache_get(prefcache_t *pc, const char *const *ids, int n, char **values)
{
    for (int i = 0; i < n; i++)
        values[i] = NULL;
    if (n <= 0 || n > PREFCACHE_MAX)
        return 0;
    if (!pc || !pc->enabled) {
        atomic_fetch_add(&pc_bypassed, (unsigned long long)n);
        return 0;
    }
    char keys[PREFCACHE_MAX][PREFCACHE_KEY_MAX];
    const char *argv[PREFCACHE_MAX + 1];
    argv[0] = "MGET";
    for (int i = 0; i < n; i++) {
        prefcache_key(keys[i], ids[i]);
        argv[i + 1] = keys[i];
    }
    int hits = 0;
    pthread_mutex_lock(&pc->lock);
    if (prefcache_ready(pc) == 0) {
        redisReply *r = redisCommandArgv(pc->ctx, n + 1, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n) {
            prefcache_broken(pc, "get");
        } else {
            for (int i = 0; i < n; i++) {
                const redisReply *e = r->element[i];
                if (e->type == REDIS_REPLY_STRING && (values[i] = strdup(e->str)) != NULL)
                    hits++;
            }
        }
        if (r)
            freeReplyObject(r);
    }
    pthread_mutex_unlock(&pc->lock);
    atomic_fetch_add(&pc_hits, (unsigned long long)hits);
    atomic_fetch_add(&pc_misses, (unsigned long long)(n - hits));
    return hits;
}

/* Pipelines one SET (with NX when only_absent) or DEL per id, then reads
 * every reply. Called with the lock held and a connection. */
static int prefcache_write(prefcache_t *pc, const char *const *ids, const char *const *values,
                           int n, int only_absent)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", PREFCACHE_TTL_S);
    int queued = 0;
    for (int i = 0; i < n; i++) {
        char key[PREFCACHE_KEY_MAX];
        prefcache_key(key, ids[i]);
        int rc;
        if (values[i]) {
            const char *argv[] = {"SET", key, values[i], "EX", ttl, "NX"};
            rc = redisAppendCommandArgv(pc->ctx, only_absent ? 6 : 5, argv, NULL);
        } else if (!only_absent) {
            const char *argv[] = {"DEL", key};
            rc = redisAppendCommandArgv(pc->ctx, 2, argv, NULL);
        } else {
            continue;
        }
        if (rc != REDIS_OK)
            return -1;
        queued++;
    }
    int rc = 0;
    for (int i = 0; i < queued; i++) {
        void *reply = NULL;
        if (redisGetReply(pc->ctx, &reply) != REDIS_OK || !reply) {
            rc = -1;
            break; /* the connection is dropped: unread replies go with it */
        }
        if (((redisReply *)reply)->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(reply);
    }
    return rc;
}

static int prefcache_store(prefcache_t *pc, const char *const *ids, const char *const *values,
                           int n, int only_absent)
{
    if (!pc || !pc->enabled || n <= 0)
        return 0;
    pthread_mutex_lock(&pc->lock);
    int rc = prefcache_ready(pc);
    if (rc == 0 && (rc = prefcache_write(pc, ids, values, n, only_absent)) != 0)
        prefcache_broken(pc, only_absent ? "fill" : "put");
    pthread_mutex_unlock(&pc->lock);
    return rc;
}

int prefcache_fill(prefcache_t *pc, const char *const *ids, const char *const *values, int n)
{
    return prefcache_store(pc, ids, values, n, 1);
}

int prefcache_put(prefcache_t *pc, const char *const *ids, const char *const *values, int n)
{
    return prefcache_store(pc, ids, values, n, 0);
}

void prefcache_stats(prefcache_stats_t *out)
{
    out->hits = atomic_load(&pc_hits);
    out->misses = atomic_load(&pc_misses);
    out->errors = atomic_load(&pc_errors);
    out->bypassed = atomic_load(&pc_bypassed);
    out->configured = atomic_load(&pc_configured);
}
