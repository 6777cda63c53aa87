/* sessions: operators' console logins (sql/016_console_sessions.sql), kept
 * by the SHA-256 of the session id the browser's cookie holds. */
#ifndef CRIER_STORE_SESSIONS_H
#define CRIER_STORE_SESSIONS_H

#include <libpq-fe.h>
#include <stddef.h>

#define STORE_SESSION_ACTOR_MAX 64 /* bytes of an actor label, the NUL included */

/* Records a session of id_hash (64 lower-case hex digits) for actor with
 * scopes (AUTH_SCOPE_* bits) that ends ttl_s seconds from now, and deletes
 * the sessions that have ended. 0, or -1 with err. */
int store_session_create(PGconn *conn, const char *id_hash, int scopes, const char *actor,
                         int ttl_s, char *err, size_t errlen);
/* The scopes and actor of a session that has not ended: 0 with them set,
 * 1 when there is none (never made, logged out or expired), -1 with err. */
int store_session_find(PGconn *conn, const char *id_hash, int *scopes, char *actor, size_t actorlen,
                       char *err, size_t errlen);
/* Ends a session (a logout); none is fine. 0, or -1 with err. */
int store_session_delete(PGconn *conn, const char *id_hash, char *err, size_t errlen);

#endif
