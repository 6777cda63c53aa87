/* prefcache: what the decision path needs of a client's preferences,
 * cached in Redis (one key per client, an hour to live) and shared by
 * every crier process, as the seed's preference flow asks.
 *
 * Values are opaque text to this module (engine/prefs.c makes them). The
 * protocol keeps a cached value from outliving a change, whichever process
 * makes it:
 *   - a reader that missed fills the key only if it is still absent
 *     (SET NX), with what it read from PostgreSQL;
 *   - a writer, once its change is committed, overwrites the key (SET) with
 *     what it reads back after the commit, or deletes it.
 * A fill that read the old row before the change committed therefore loses
 * to the writer's SET, whichever comes first. That keeps the cache warm;
 * what keeps decisions right is the version each value carries, which the
 * reader checks against PostgreSQL (engine/prefs.h), so a write to Redis
 * that is lost or late costs a lookup, not a stale decision.
 *
 * Without a URL, or while Redis does not answer, every lookup is a miss
 * (the caller reads PostgreSQL) and the counters say so. A handle may be
 * shared by threads: its connection is behind a mutex. */
#ifndef CRIER_PREFCACHE_H
#define CRIER_PREFCACHE_H

#include <stddef.h>

#define PREFCACHE_PREFIX "crier:prefs:"
#define PREFCACHE_TTL_S  3600
#define PREFCACHE_MAX    64 /* keys in one round trip */

typedef struct prefcache prefcache_t;

/* A handle; redis_url NULL or "" makes one that always misses. Nothing is
 * connected before the first use. NULL with err on a malformed URL or out
 * of memory (err never holds the password). */
prefcache_t *prefcache_new(const char *redis_url, int timeout_ms, char *err, size_t errlen);
void prefcache_free(prefcache_t *pc);
/* 1 when pc has a Redis URL (NULL: 0): without one there is nothing to
 * tell it, and callers skip the work of preparing what they would. */
int prefcache_enabled(const prefcache_t *pc);

/* Looks up ids[0..n) (n <= PREFCACHE_MAX); values[i] becomes the cached
 * text (owned by the caller) or NULL on a miss. Returns the number of hits;
 * every failure is a miss. */
int prefcache_get(prefcache_t *pc, const char *const *ids, int n, char **values);
/* Fills the keys of ids[i] with values[i] where absent (the reader's side).
 * NULL values are skipped. 0, or -1 when Redis could not be told. */
int prefcache_fill(prefcache_t *pc, const char *const *ids, const char *const *values, int n);
/* Overwrites the keys (the writer's side, after its commit); a NULL value
 * deletes the key. 0, or -1 when Redis could not be told. */
int prefcache_put(prefcache_t *pc, const char *const *ids, const char *const *values, int n);

/* Process-wide counters since start, for the metrics. */
typedef struct prefcache_stats {
    unsigned long long hits, misses;
    unsigned long long errors;   /* round trips that failed: Redis down or erroring */
    unsigned long long bypassed; /* lookups made without Redis (no URL configured) */
    int configured;              /* 1 when some handle has a Redis URL */
} prefcache_stats_t;
void prefcache_stats(prefcache_stats_t *out);

#endif
