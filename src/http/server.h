/* server: crier's HTTP front door on libmicrohttpd.
 *
 * The server serves a table of routes it is handed (http/route.h) with an
 * opaque context for their handlers, and knows none of them by name: it
 * matches paths, answers 404 and 405 itself, authenticates, accumulates
 * bodies with a hard limit and sends JSON errors; what each route does is
 * its handler's. The daemon runs its own polling threads (epoll, a pool of
 * cfg->http_threads). A handler may hold its answer back (http_suspend): the
 * connection then waits, without a thread, until someone answers it
 * (http_resume), from any thread. */
#ifndef CRIER_HTTP_SERVER_H
#define CRIER_HTTP_SERVER_H

#include "config.h"
#include "http/answer.h"
#include "http/auth.h"
#include "http/route.h"

#include <stddef.h>

typedef struct http_server http_server_t;

/* Browser sessions, for a route with scopes asked without an Authorization
 * header: the server reads the cookie of that name and asks check, with
 * the handlers' ctx, the cookie's value, the request's X-CSRF-Token header
 * (NULL when absent) and whether the method changes anything (anything but
 * GET and HEAD), what the session may do. check answers AUTH_OK with the
 * session's actor label in actor, AUTH_UNAUTHORIZED (no such session: 401)
 * or AUTH_FORBIDDEN (403: the scopes are not enough, or a changing request
 * lacks the session's CSRF token). */
typedef auth_result_t (*http_session_fn)(void *ctx, const char *value, const char *csrf, int unsafe,
                                         int need, char *actor, size_t actorlen);
typedef struct http_sessions {
    const char *cookie; /* the cookie's name (static) */
    http_session_fn check;
} http_sessions_t;

/* Starts listening on cfg->listen, serving routes[0..n_routes) (borrowed:
 * they must outlive the server) whose handlers get ctx (borrowed) with
 * each request; sessions (borrowed; NULL: bearer tokens only) says how a
 * browser's cookie authenticates. Returns NULL with a message in err, also
 * when the table is malformed (route_check). */
http_server_t *http_start(const cfg_t *cfg, const route_t *routes, size_t n_routes, void *ctx,
                          const http_sessions_t *sessions, char *err, size_t errlen);
/* Stops accepting, waits for every suspended request to be answered, stops
 * the daemon and frees s (NULL is fine); requests that arrive while it waits
 * and would suspend are answered by their handler (http_suspend returns
 * NULL). Returns 0 once no handler runs any more, or -1 when requests were
 * still suspended after 30 s: the daemon is then left running (stopping it
 * would abort the process), and what its handlers use must stay too. */
int http_stop(http_server_t *s);
/* The TCP port actually bound (useful with port 0), or 0. */
int http_port(const http_server_t *s);

/* One request as a handler sees it. Valid only during the handler's call,
 * the body included: a handler that answers later keeps copies. */
typedef struct http_req {
    void *ctx; /* the context given to http_start */
    const char *method;
    const char *path; /* without the query string */
    const route_params_t *params;
    const char *body; /* NUL-terminated; "" when there was none */
    size_t body_len;
    const char *actor;      /* the label of the token that authorised it; "" on open routes */
    const char *peer;       /* the client's address as text; "" when unknown */
    struct http_conn *conn; /* the server's, for the functions below */
} http_req_t;

/* A request header or a query argument, or NULL when absent. */
const char *http_req_header(const http_req_t *r, const char *name);
const char *http_req_query(const http_req_t *r, const char *name);
/* The value of the route's {name} segment, or NULL when it has none. */
const char *http_req_param(const http_req_t *r, const char *name);

/* A request whose answer comes later. */
typedef struct http_pending http_pending_t;

/* Called by a handler, at most once, to answer later: suspends rq's
 * connection and returns the handle to answer it with; the handler then
 * returns with its answer left empty. NULL when the server is stopping:
 * the handler answers now instead. */
http_pending_t *http_suspend(const http_req_t *rq);
/* Answers a suspended request, exactly once, from any thread; the answer's
 * body moves to the server (answer is left empty). p is invalid afterwards. */
void http_resume(http_pending_t *p, http_answer_t *answer);

#endif
