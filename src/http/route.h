/* route: the routes a server serves, as data, and the matcher that finds
 * the one for a request.
 *
 * The layer above owns the table (api/api.c) and hands it to
 * http_start; the server knows no route by name. A pattern is made of
 * literal segments and {name} segments: "/v1/plans/{plan_id}/communications".
 * A {name} segment takes any one segment of the path, an empty one included,
 * so "/v1/communications/" reaches its handler, whose validation names the
 * field it refuses instead of the server answering 404. */
#ifndef CRIER_HTTP_ROUTE_H
#define CRIER_HTTP_ROUTE_H

#include "http/answer.h"

#include <stddef.h>

#define ROUTE_PARAMS_MAX 4 /* {name} segments of one pattern */
/* Bytes kept of a parameter's value, the NUL included. A longer value is
 * cut, which leaves it no identifier: the handler refuses it as it would
 * any malformed value. */
#define ROUTE_PARAM_MAX 72
#define ROUTE_ALLOW_MAX 64 /* the Allow header of a 405 */

struct http_req;

/* What a POST body must be sent as (its Content-Type). */
typedef enum {
    ROUTE_BODY_NONE, /* the route takes no body: its Content-Type is not looked at */
    ROUTE_BODY_JSON, /* application/json: the API's own routes */
    ROUTE_BODY_FORM, /* application/x-www-form-urlencoded: how Twilio posts */
    ROUTE_BODY_ANY,  /* any type or none: the handler reads Content-Type and
                        answers what it cannot take itself */
} route_body_t;

/* Answers one request. out is empty on entry; the handler fills it, or
 * leaves it empty after http_suspend (the answer then comes later). */
typedef void (*route_handler_fn)(const struct http_req *rq, http_answer_t *out);

typedef struct route {
    const char *method;  /* "GET" (which answers HEAD too), "POST", ... */
    const char *pattern; /* "/v1/communications/{id}" */
    int scopes;          /* AUTH_SCOPE_* of which one suffices; 0: open to anyone */
    route_body_t body;
    const char *ok_type; /* Content-Type of a 200 (every other answer is a JSON
                            error); NULL: application/json */
    int stat;            /* its counters (http/stats.h): 1..HTTP_STATS_SLOTS-1 */
    route_handler_fn handle;
} route_t;

/* The {name} segments of the route that matched, in pattern order. */
typedef struct route_params {
    int n;
    const char *name[ROUTE_PARAMS_MAX]; /* into the route's pattern, not NUL-terminated */
    size_t name_len[ROUTE_PARAMS_MAX];
    char value[ROUTE_PARAMS_MAX][ROUTE_PARAM_MAX];
} route_params_t;

typedef enum {
    ROUTE_FOUND,     /* *found is the route, params are its values */
    ROUTE_NO_PATH,   /* no pattern matches the path (404); *found is NULL */
    ROUTE_NO_METHOD, /* patterns match, none with this method (405): allow is set,
                        and *found is the path's first route, whose counters
                        count the refusal (it is not to be dispatched) */
} route_match_t;

/* 0 when every route of routes[0..n) is well formed (a method, a handler, a
 * pattern of "/" segments with at most ROUTE_PARAMS_MAX whole-segment
 * {name}s), or -1 with err naming the first that is not. */
int route_check(const route_t *routes, size_t n, char *err, size_t errlen);

/* Finds the route of method and path (without its query string) among
 * routes[0..n): the first, in table order, whose pattern and method match,
 * so a literal route goes before a {name} route that would also match it.
 * On ROUTE_NO_METHOD, allow[0..allowlen) holds the methods the path has,
 * in table order, each GET followed by HEAD ("GET, HEAD, POST"). */
route_match_t route_match(const route_t *routes, size_t n, const char *method, const char *path,
                          const route_t **found, route_params_t *params, char *allow,
                          size_t allowlen);

/* The value of parameter name, or NULL when the route has none so named. */
const char *route_param(const route_params_t *p, const char *name);

#endif
