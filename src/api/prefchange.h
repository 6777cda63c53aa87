/* prefchange: a change of a client's preferences as every path makes it
 * (the preferences API, the seed's form, the preference page, the one-click
 * unsubscribe): one transaction that says its consent source (the ledger's
 * triggers write the rows), the preference cache told once it committed so
 * that the next decision sees it, and the preferences_updated confirmation
 * to the client through the intake. */
#ifndef CRIER_API_PREFCHANGE_H
#define CRIER_API_PREFCHANGE_H

#include "api/api.h"
#include "http/answer.h"
#include "http/server.h"
#include "store/clients.h"

#include <libpq-fe.h>
#include <stdint.h>

/* The change was refused because the client changed since the version the
 * change was made against (a result beside store/clients.h's). */
#define API_PREFS_STALE 10

typedef struct api_prefs_change {
    const char *client_id;
    const store_prefs_change_t *change;
    const char *source; /* STORE_SOURCE_*: the consent ledger's source */
    const char *actor;  /* the ledger's actor; NULL or "" for none */
    /* 1: apply only while the low 32 bits of the client's prefs_version
     * are version (checked under the row lock, so two changes made against
     * one version never both apply) */
    int check_version;
    uint32_t version;
} api_prefs_change_t;

/* Applies c on a connection of the app's pool and, when something changed,
 * tells the preference cache. 0 when it committed, with *changed, and the
 * preferences before and after as JSON text (store_prefs_json; before and
 * after may be NULL when not wanted, else owned by the caller);
 * STORE_NO_CLIENT, STORE_ERASED or API_PREFS_STALE with nothing written; -1
 * with *lost (the database went away) and err. */
int api_prefs_apply(const api_t *api, const api_prefs_change_t *c, int *changed, char **before,
                    char **after, int *lost, char *err, size_t errlen);

/* Makes the answer once the intake took the confirmation: confirmation is
 * the accepted communication as JSON (owned), or NULL when it was not
 * accepted (logged); cls is the caller's, and this is its last use. */
typedef void (*api_prefs_answer_fn)(void *cls, char *confirmation, http_answer_t *out);

/* Submits the preferences_updated message of client id, worded from
 * prefs_json (the preferences after the change), on behalf of actor. 1: rq
 * is suspended and answered later with what answer makes; 0 when it could
 * not be (out of memory, the server stopping): nothing was submitted, and
 * the caller answers now, cls still its own. */
int api_prefs_confirm(const http_req_t *rq, const char *id, const char *prefs_json,
                      const char *actor, api_prefs_answer_fn answer, void *cls);

/* Tells the cache what client id is now, after a committed change, on the
 * connection that made it (a failure is logged: the cache's copies carry
 * their version and expire). */
void api_prefs_publish(const api_t *api, PGconn *conn, const char *id);

#endif
