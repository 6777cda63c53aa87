/* server: libmicrohttpd daemon, routing, auth, bodies, answers.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * with the headers (everything that can be refused without the body is
 * refused there: route, method, token, media type, declared length), then
 * once per body chunk, then once with no data, when the route's handler
 * runs. A handler that suspends the request (http_suspend) has its answer
 * given later, from whatever thread has it (http_resume): that resumes the
 * connection, and libmicrohttpd calls the access handler once more, which
 * queues the answer.
 *
 * Two limits keep one client from taking the server: connections per client
 * address (libmicrohttpd counts them), and the time a request may take to
 * arrive whole (conn_guard: libmicrohttpd's own timeout restarts on every
 * byte). The guard learns of each connection and request from
 * libmicrohttpd's notifications: connection started and closed, request
 * line, the handler's calls, request completed. */
#include "http/server.h"

#include "http/answer.h"
#include "http/auth.h"
#include "http/cookie.h"
#include "http/conn_guard.h"
#include "http/route.h"
#include "http/stats.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SRV_DEFAULT_BODY     (1024 * 1024)
#define SRV_CONNECTION_LIMIT 2048
#define SRV_PER_IP_LIMIT     64          /* when the configuration gives none */
#define SRV_REQUEST_S        30          /* likewise: a request arrives whole within */
#define SRV_TIMEOUT_S        30          /* idle: no byte either way, e.g. a client not reading */
#define SRV_CONN_MEMORY      (64 * 1024) /* headers; bodies go to our own buffer */
#define SRV_LOG_PATH_MAX     200
#define SRV_STOP_WAIT_MS     30000
/* An oversized chunked upload is read and dropped so the client still gets
 * its 413; past this many bytes the connection is simply closed. */
#define SRV_DISCARD_FACTOR 4

struct http_server {
    const route_t *routes; /* borrowed: routes[0..n_routes) */
    size_t n_routes;
    void *ctx; /* borrowed: handed to every handler */
    auth_t *auth;
    const http_sessions_t *sessions; /* borrowed; NULL: none */
    cg_t *guard;                     /* request deadlines */
    struct MHD_Daemon *daemon;
    size_t max_body;
    int port;
    atomic_int suspended; /* connections waiting for http_resume */
    atomic_int stopping;  /* set by http_stop: suspend nothing more */
};

#define SRV_JSON "application/json"

typedef enum {
    SRV_READING, /* headers seen, body arriving */
    SRV_WAITING, /* suspended: the handler's answer is to come */
    SRV_READY,   /* answered by http_resume: queue conn->answer */
    SRV_ANSWERED,
} srv_phase_t;

/* The handle a suspending handler gets: its connection's own. */
struct http_pending {
    struct http_conn *conn;
};

/* Per-connection state, owned by libmicrohttpd's *con_cls from the first
 * call to the completion callback. */
typedef struct http_conn {
    http_server_t *srv;
    struct MHD_Connection *mhd;
    cg_conn_t *guard;     /* the connection's deadline; NULL if unguarded */
    const route_t *route; /* set once admitted; NULL before and when refused */
    int stat;             /* the counters slot of the path's route */
    char method[16];
    char path[SRV_LOG_PATH_MAX + 1]; /* for the log and the handler; may be cut */
    route_params_t params;
    char allow[ROUTE_ALLOW_MAX];        /* the Allow header of a 405 */
    const char *actor;                  /* the token's label (borrowed from the auth), or
                                           session_actor; "" if none */
    char session_actor[AUTH_LABEL_MAX]; /* a browser session's actor */
    char peer[INET6_ADDRSTRLEN];        /* the client's address; "" when unknown */
    struct http_pending pending;
    buf_t body;
    int too_large;
    size_t discarded;
    long long start_ms;
    int status;           /* what was answered, for the access log */
    atomic_int phase;     /* srv_phase_t */
    http_answer_t answer; /* filled by http_resume before SRV_READY */
} srv_conn_t;

static const char srv_oom_body[] =
    "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";

const char *http_req_header(const http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn->mhd, MHD_HEADER_KIND, name);
}

const char *http_req_query(const http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn->mhd, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_param(const http_req_t *r, const char *name)
{
    return route_param(r->params, name);
}

int http_port(const http_server_t *s)
{
    return s ? s->port : 0;
}

static enum MHD_Result srv_queue(srv_conn_t *c, http_answer_t *a)
{
    struct MHD_Response *r = NULL;
    int status = a->status;
    if (a->body) {
        r = MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            a->body = NULL; /* the response frees it */
    }
    if (!r) {
        status = 500;
        r = MHD_create_response_from_buffer(sizeof srv_oom_body - 1, (void *)srv_oom_body,
                                            MHD_RESPMEM_PERSISTENT);
        if (!r) {
            http_answer_free(a);
            return MHD_NO;
        }
    }
    /* errors are JSON and a success has its route's type, unless the
     * handler said what its answer is */
    const char *ctype =
        c->route && status == 200 && c->route->ok_type ? c->route->ok_type : SRV_JSON;
    if (a->ctype && status == a->status)
        ctype = a->ctype;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (const char *const *h = a->headers; h && h[0] && h[1]; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    if (a->no_cache) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store, no-cache, must-revalidate");
        MHD_add_response_header(r, MHD_HTTP_HEADER_PRAGMA, "no-cache");
        MHD_add_response_header(r, MHD_HTTP_HEADER_EXPIRES, "0");
    } else {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    if (a->location && status >= 300 && status < 400)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, a->location);
    if (a->set_cookie)
        MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, a->set_cookie);
    if (a->allow && status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, a->allow);
    if (a->www_auth)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(c->mhd, (unsigned)status, r);
    MHD_destroy_response(r);
    http_answer_free(a);
    c->status = status;
    atomic_store(&c->phase, SRV_ANSWERED);
    return ret;
}

static enum MHD_Result srv_error(srv_conn_t *c, int status, const char *code, const char *msg)
{
    http_answer_t a;
    http_answer_error(&a, status, code, msg);
    return srv_queue(c, &a);
}

/* ctype is the media type want, optionally with parameters such as charset. */
static int srv_is_type(const char *ctype, const char *want)
{
    if (!ctype)
        return 0;
    while (*ctype == ' ')
        ctype++;
    size_t n = strlen(want);
    if (strncasecmp(ctype, want, n) != 0)
        return 0;
    char next = ctype[n];
    return next == '\0' || next == ';' || next == ' ';
}

/* The client's address as text, for the audit log; "" when unknown. */
static void srv_peer(struct MHD_Connection *mhd, char *out, size_t outlen)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    const void *addr = NULL;
    if (sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (!addr || !inet_ntop(sa->sa_family, addr, out, (socklen_t)outlen))
        out[0] = '\0';
}

/* The media type a POST or PUT body of kind must have, or NULL for any. */
static const char *srv_body_type(route_body_t kind)
{
    switch (kind) {
    case ROUTE_BODY_JSON:
        return SRV_JSON;
    case ROUTE_BODY_FORM:
        return "application/x-www-form-urlencoded";
    case ROUTE_BODY_NONE:
    case ROUTE_BODY_ANY:
        break;
    }
    return NULL;
}

/* A request without an Authorization header: its session cookie, when the
 * server has sessions and the request has one. */
static auth_result_t srv_session(srv_conn_t *c, const char *method, int need)
{
    const http_sessions_t *ss = c->srv->sessions;
    char value[AUTH_TOKEN_MAX];
    const char *cookies =
        MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    if (!ss || http_cookie_get(cookies, ss->cookie, value, sizeof value) != 0)
        return AUTH_UNAUTHORIZED;
    const char *csrf = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-CSRF-Token");
    int unsafe = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    auth_result_t ar = ss->check(c->srv->ctx, value, csrf, unsafe, need, c->session_actor,
                                 sizeof c->session_actor);
    if (ar == AUTH_OK)
        c->actor = c->session_actor;
    return ar;
}

/* Everything that can be decided from the request line and headers. Returns
 * 1 when an answer was queued (the request is refused), 0 to read the body,
 * -1 to drop the connection. url is the whole path, of which c->path may
 * hold only the start. */
static int srv_admit(srv_conn_t *c, const char *url, const char *method, enum MHD_Result *ret)
{
    http_server_t *s = c->srv;
    const route_t *rt = NULL;
    route_match_t m = route_match(s->routes, s->n_routes, method, url, &rt, &c->params, c->allow,
                                  sizeof c->allow);
    if (m == ROUTE_NO_PATH) {
        *ret = srv_error(c, 404, "not_found", "no such resource");
        return 1;
    }
    c->stat = rt->stat;
    if (m == ROUTE_NO_METHOD) {
        http_answer_t a;
        http_answer_error(&a, 405, "method_not_allowed", "method not allowed on this resource");
        a.allow = c->allow;
        *ret = srv_queue(c, &a);
        return 1;
    }
    if (rt->scopes) {
        const char *authz =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        auth_result_t ar = authz ? auth_check_as(s->auth, authz, rt->scopes, &c->actor)
                                 : srv_session(c, method, rt->scopes);
        if (ar == AUTH_UNAUTHORIZED) {
            http_answer_t a;
            http_answer_error(&a, 401, "unauthorized", "a valid bearer token is required");
            a.www_auth = 1;
            *ret = srv_queue(c, &a);
            return 1;
        }
        if (ar == AUTH_FORBIDDEN) {
            *ret = srv_error(c, 403, "forbidden",
                             authz ? "the token lacks the scope for this request"
                                   : "the session lacks the scope for this request, or the "
                                     "X-CSRF-Token header its changes need");
            return 1;
        }
    }
    const char *want = srv_body_type(rt->body);
    if ((strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) && want) {
        const char *ctype =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!srv_is_type(ctype, want)) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body must be sent as Content-Type: %s", want);
            *ret = srv_error(c, 415, "unsupported_media_type", msg);
            return 1;
        }
    }
    const char *clen =
        MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen) {
        char *end = NULL;
        unsigned long long n = strtoull(clen, &end, 10);
        if (end == clen || *end != '\0' || n > s->max_body) {
            *ret = srv_error(c, 413, "body_too_large", "the body is larger than the limit");
            return 1;
        }
    }
    c->route = rt;
    return 0;
}

http_pending_t *http_suspend(const http_req_t *rq)
{
    srv_conn_t *c = rq->conn;
    http_server_t *s = c->srv;
    if (atomic_load(&c->phase) != SRV_READING)
        return NULL; /* suspended already: a second handle would answer twice */
    /* Count first, then look at the flag: http_stop sets the flag, then
     * waits for the count, so one of the two always sees the other and no
     * connection is suspended behind its back (the daemon would abort). */
    atomic_fetch_add(&s->suspended, 1);
    if (atomic_load(&s->stopping)) {
        atomic_fetch_sub(&s->suspended, 1);
        return NULL;
    }
    /* Suspended before the handle is out: whoever holds it may answer (and
     * resume) at once, even before the handler returns. */
    atomic_store(&c->phase, SRV_WAITING);
    MHD_suspend_connection(c->mhd);
    c->pending.conn = c;
    return &c->pending;
}

void http_resume(http_pending_t *p, http_answer_t *answer)
{
    srv_conn_t *c = p->conn;
    http_server_t *s = c->srv; /* c may be freed once resumed */
    http_answer_move(&c->answer, answer);
    atomic_store(&c->phase, SRV_READY);
    MHD_resume_connection(c->mhd);
    atomic_fetch_sub(&s->suspended, 1);
}

static enum MHD_Result srv_dispatch(srv_conn_t *c, const char *method)
{
    http_server_t *s = c->srv;
    http_req_t rq = {
        .ctx = s->ctx,
        .method = method,
        .path = c->path,
        .params = &c->params,
        .body = c->body.data ? c->body.data : "",
        .body_len = c->body.len,
        .actor = c->actor ? c->actor : "",
        .peer = c->peer,
        .conn = c,
    };
    http_answer_t a;
    memset(&a, 0, sizeof a);
    c->route->handle(&rq, &a);
    buf_free(&c->body); /* a handler that answers later has kept what it needs */
    if (atomic_load(&c->phase) != SRV_READING) {
        /* Suspended: the answer comes through http_resume, perhaps already
         * has, from another thread; c stays this thread's until it returns
         * to libmicrohttpd. */
        http_answer_free(&a);
        return MHD_YES;
    }
    return srv_queue(c, &a);
}

/* The guard's tracker of mhd's connection, set when the connection opened. */
static cg_conn_t *srv_guard_of(struct MHD_Connection *mhd)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static srv_conn_t *srv_conn_new(http_server_t *s, struct MHD_Connection *mhd, const char *url,
                                const char *method)
{
    srv_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = s;
    c->mhd = mhd;
    c->guard = srv_guard_of(mhd);
    c->stat = HTTP_STATS_UNROUTED;
    c->start_ms = time_mono_ms();
    snprintf(c->method, sizeof c->method, "%s", method);
    /* libmicrohttpd hands the path without the query string */
    snprintf(c->path, sizeof c->path, "%s", url);
    buf_init(&c->body, s->max_body);
    atomic_init(&c->phase, SRV_READING);
    return c;
}

static enum MHD_Result srv_access(void *cls, struct MHD_Connection *mhd, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_server_t *s = cls;
    srv_conn_t *c = *con_cls;
    if (!c) {
        c = srv_conn_new(s, mhd, url, method);
        if (!c)
            return MHD_NO;
        *con_cls = c;
        srv_peer(mhd, c->peer, sizeof c->peer);
        /* Shut down for being too slow while the last header bytes came in:
         * the request is not served. */
        if (cg_headers(s->guard, c->guard) != 0)
            return MHD_NO;
        enum MHD_Result ret = MHD_YES;
        /* Answered from the headers: libmicrohttpd reads nothing more of
         * this request, so its clock stops (the idle timeout covers a client
         * that will not read the answer). Being swept meanwhile needs no
         * check: the answer just fails to go out. */
        if (srv_admit(c, url, method, &ret) != 0)
            (void)cg_received(s->guard, c->guard);
        return ret;
    }

    switch ((srv_phase_t)atomic_load(&c->phase)) {
    case SRV_READY:
        return srv_queue(c, &c->answer);
    case SRV_WAITING:
    case SRV_ANSWERED:
        /* nothing to do until the answer comes / the response is sent;
         * swallow any data so libmicrohttpd does not stall on it */
        *upload_data_size = 0;
        return MHD_YES;
    case SRV_READING:
        break;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!c->too_large && buf_append(&c->body, upload_data, n) != 0) {
            c->too_large = 1;
            buf_free(&c->body);
        }
        if (c->too_large) {
            c->discarded += n;
            if (c->discarded > SRV_DISCARD_FACTOR * s->max_body)
                return MHD_NO;
        }
        return MHD_YES;
    }
    /* The whole request is here. The clock stops, unless it ran out while
     * the last bytes came in: then the socket is shut down already and the
     * request is dropped rather than handed to its handler. */
    if (cg_received(s->guard, c->guard) != 0)
        return MHD_NO;
    if (c->too_large)
        return srv_error(c, 413, "body_too_large", "the body is larger than the limit");
    return srv_dispatch(c, method);
}

static void srv_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    http_server_t *s = cls;
    /* The answer is out and the connection stays open: the next request's
     * clock starts (any other ending closes the connection). */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        cg_next(s->guard, srv_guard_of(mhd));
    srv_conn_t *c = *con_cls;
    if (!c)
        return;
    long long ms = time_mono_ms() - c->start_ms;
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? c->status : 0;
    http_stats_count(c->stat, status, ms);
    char st[16], dur[32];
    snprintf(st, sizeof st, "%d", status);
    snprintf(dur, sizeof dur, "%lld", ms);
    log_kv(LOG_DEBUG, "http", "request", "method", c->method, "path", c->path, "status", st,
           "duration_ms", dur, NULL);
    buf_free(&c->body);
    http_answer_free(&c->answer);
    free(c);
    *con_cls = NULL;
}

/* Connection opened or closed. libmicrohttpd calls CLOSED before it closes
 * the socket (and never for a socket it has not reported STARTED), so the
 * guard never holds a descriptor that may already belong to another
 * connection. */
static void srv_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
    http_server_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) {
            log_error("http", "no_request_deadline", "note",
                      "connection without a request deadline", NULL);
            *socket_context = NULL;
            return;
        }
        *socket_context = cg_open(s->guard, ci->connect_fd);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        cg_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* A request line has arrived (called before its headers are read). */
static void *srv_request_line(void *cls, const char *uri, struct MHD_Connection *mhd)
{
    (void)uri;
    http_server_t *s = cls;
    cg_request_line(s->guard, srv_guard_of(mhd));
    return NULL; /* *con_cls stays NULL until srv_access makes the request's state */
}

static void srv_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void srv_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http", "libmicrohttpd", "message", msg, NULL);
}

/* "host:port", "[v6]:port" or ":port" (all interfaces; only when asked). */
static int srv_resolve(const char *listen, struct addrinfo **out, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen ? listen : "", ':');
    if (!colon || colon[1] == '\0') {
        snprintf(err, errlen, "CRIER_LISTEN must be host:port");
        return -1;
    }
    size_t hl = (size_t)(colon - listen);
    const char *h = listen;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, errlen, "CRIER_LISTEN: host name too long");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (hl == 0 ? AI_PASSIVE : 0);
    int rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, out);
    if (rc != 0) {
        snprintf(err, errlen, "CRIER_LISTEN %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    return 0;
}

http_server_t *http_start(const cfg_t *cfg, const route_t *routes, size_t n_routes, void *ctx,
                          const http_sessions_t *sessions, char *err, size_t errlen)
{
    if (route_check(routes, n_routes, err, errlen) != 0)
        return NULL;
    http_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->routes = routes;
    s->n_routes = n_routes;
    s->ctx = ctx;
    s->sessions = sessions;
    s->max_body = cfg->max_body ? cfg->max_body : SRV_DEFAULT_BODY;
    atomic_init(&s->suspended, 0);
    atomic_init(&s->stopping, 0);
    s->auth = auth_new(cfg->api_tokens, err, errlen);
    if (!s->auth) {
        free(s);
        return NULL;
    }
    if (auth_count(s->auth) == 0)
        log_warn("http", "no_api_tokens", "note", "every /v1 request will be refused", NULL);
    int request_s = cfg->http_request_timeout_s > 0 ? cfg->http_request_timeout_s : SRV_REQUEST_S;
    unsigned per_ip =
        cfg->http_per_ip_limit > 0 ? (unsigned)cfg->http_per_ip_limit : SRV_PER_IP_LIMIT;
    /* a slot for every connection the daemon may hold */
    s->guard = cg_new(SRV_CONNECTION_LIMIT, request_s, err, errlen);
    if (!s->guard) {
        auth_free(s->auth);
        free(s);
        return NULL;
    }

    struct addrinfo *ai = NULL;
    if (srv_resolve(cfg->listen, &ai, err, errlen) != 0) {
        cg_free(s->guard);
        auth_free(s->auth);
        free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = cfg->http_threads > 1 ? (unsigned)cfg->http_threads : 1;
    struct MHD_OptionItem opts[] = {
        /* first, so that no option's complaint escapes to raw stderr */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)srv_mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_CONNECTION_LIMIT, SRV_CONNECTION_LIMIT, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, SRV_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_CONN_MEMORY, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)srv_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)srv_connection, s},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)srv_request_line, s},
#if MHD_VERSION >= 0x00097701
        {MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1, NULL},
#else
        /* the predecessor of CLIENT_DISCIPLINE_LVL: refuse sloppy requests */
        {MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL},
#endif
        /* without a pool this entry ends the list early */
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, srv_access, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not local?)", cfg->listen);
        cg_free(s->guard);
        auth_free(s->auth);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    return s;
}

int http_stop(http_server_t *s)
{
    if (!s)
        return 0;
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon);
    atomic_store(&s->stopping, 1);
    /* libmicrohttpd aborts if stopped with suspended connections, and
     * whoever holds each of them answers it: wait for that. */
    long long deadline = time_mono_ms() + SRV_STOP_WAIT_MS;
    while (atomic_load(&s->suspended) > 0 && time_mono_ms() < deadline)
        usleep(10 * 1000);
    if (atomic_load(&s->suspended) > 0) {
        /* Stopping now would abort the process; leaving the daemon to the
         * exit that follows is the lesser harm. */
        log_error("http", "stop_incomplete", "note", "requests still waiting for their answer",
                  NULL);
        return -1;
    }
    MHD_stop_daemon(s->daemon);
    cg_free(s->guard); /* after the daemon: it has closed every connection */
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    auth_free(s->auth);
    free(s);
    return 0;
}
