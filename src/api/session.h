/* session: operators' logins to the console (docs/console.md).
 *
 *   POST /console/login    form token=<an operator or admin token>: a new
 *                          session (its id random, 32 bytes; only its
 *                          SHA-256 is stored), the crier_session cookie
 *                          (HttpOnly, SameSite=Strict, Path=/, Secure when
 *                          CRIER_PUBLIC_URL is https) and a 303 to /console.
 *                          An unknown token: 401 and the login page again;
 *                          a workflow token: 403. The token is never put in
 *                          a URL, a cookie or a log.
 *   POST /console/logout   ends the session everywhere (its row goes) and
 *                          clears the cookie.
 *   GET  /console/session  {"actor", "scope", "csrf"}: the console's script
 *                          sends csrf as X-CSRF-Token with every change.
 *
 * The server (http/server.h) asks api_sessions()'s check about every
 * request with scopes and no Authorization header, so the console reads and
 * changes through the same API routes as a token would, with the session's
 * scope; a change (any method but GET and HEAD) also needs the CSRF token,
 * which is HMAC-SHA256 of the session id under the index key: a page of
 * another origin can neither read it nor make it. */
#ifndef CRIER_API_SESSION_H
#define CRIER_API_SESSION_H

#include "http/answer.h"
#include "http/auth.h"
#include "http/server.h"

#include <stddef.h>

#define API_SESSION_COOKIE "crier_session"

/* What the server is handed (static). */
const http_sessions_t *api_sessions(void);

/* The session of a request (its cookie), for a handler on an open route (a
 * page): AUTH_OK with the actor, AUTH_UNAUTHORIZED when it has none,
 * AUTH_FORBIDDEN when it lacks every scope of need. */
auth_result_t api_session_of(const http_req_t *rq, int need, char *actor, size_t actorlen);

void api_console_login(const http_req_t *rq, http_answer_t *out);
void api_console_logout(const http_req_t *rq, http_answer_t *out);
void api_console_session(const http_req_t *rq, http_answer_t *out);

#endif
