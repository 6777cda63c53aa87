/* server: crier's HTTP front door on libmicrohttpd.
 *
 * Routing, authentication, body accumulation with a hard limit and JSON
 * error answers live here; what each route does lives in src/api/. The
 * daemon runs its own polling threads (epoll, a pool of cfg->http_threads);
 * POST /v1/communications is answered asynchronously: its connection is
 * suspended while the intake writer commits it, and resumed with the answer. */
#ifndef CRIER_HTTP_SERVER_H
#define CRIER_HTTP_SERVER_H

#include "app.h"

#include <stddef.h>

struct MHD_Connection;

typedef struct http_server http_server_t;

/* Starts listening on cfg->listen. Returns NULL with a message in err. */
http_server_t *http_start(app_t *app, char *err, size_t errlen);
/* Stops accepting, waits for every suspended request to be answered, stops
 * the daemon and frees s (NULL is fine). Safe before or after intake_stop;
 * before it, requests that arrive during shutdown are still written rather
 * than answered 503. */
void http_stop(http_server_t *s);
/* The TCP port actually bound (useful with port 0), or 0. */
int http_port(const http_server_t *s);

/* One request as a handler sees it. */
typedef struct http_req {
    app_t *app;
    const char *method;
    const char *path;  /* without the query string */
    const char *param; /* the {id} segment of the route, "" if none */
    const char *body;  /* NUL-terminated; "" when there was none */
    size_t body_len;
    struct MHD_Connection *conn;
} http_req_t;

/* A request header or a query argument, or NULL when absent. */
const char *http_req_header(const http_req_t *r, const char *name);
const char *http_req_query(const http_req_t *r, const char *name);

#endif
