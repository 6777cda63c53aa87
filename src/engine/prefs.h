/* prefs: the preference cache as the engine uses it. What a decision needs
 * of a client's preferences and consent (store_client_facts_t without the
 * parts that change with every message) is written to the cache as one
 * line of text with the version it was read at (clients.prefs_version),
 * read back on the decision path and used only if that version is still
 * the client's, and published by every path that changes it once its
 * transaction committed, to keep the cache warm. */
#ifndef CRIER_ENGINE_PREFS_H
#define CRIER_ENGINE_PREFS_H

#include "prefcache/prefcache.h"
#include "store/store.h"

#include <libpq-fe.h>

/* The cached text of f's preference facts (owned by the caller), or NULL
 * when out of memory. */
char *prefs_encode(const store_client_facts_t *f);
/* Fills f's preference facts from text made by prefs_encode (f->timezone
 * and f->preferred_channels_json become owned copies); the activity fields
 * are left alone. 0, or -1 when the text is not one (f then unchanged). */
int prefs_decode(const char *text, store_client_facts_t *f);

/* Reads the facts of clients ids[0..n) (n <= PREFCACHE_MAX) on conn, after
 * the change to them committed, and overwrites their cache entries (a
 * client that is gone or erased loses its entry). 0, or -1 with err when
 * the facts could not be read; a cache that cannot be told is logged by
 * the cache and not an error here (its entries expire). */
int prefs_publish(prefcache_t *pc, PGconn *conn, const char *const *ids, int n, char *err,
                  size_t errlen);

#endif
