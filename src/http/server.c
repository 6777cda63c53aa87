/* server: libmicrohttpd daemon, routing, auth, bodies, answers.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * with the headers (everything that can be refused without the body is
 * refused there: route, method, token, media type, declared length), then
 * once per body chunk, then once with no data. A POST to
 * /v1/communications is then suspended and handed to the intake; the intake
 * resumes it with the answer, and libmicrohttpd calls the handler once more,
 * which queues that answer.
 *
 * Two limits keep one client from taking the server: connections per client
 * address (libmicrohttpd counts them), and the time a request may take to
 * arrive whole (conn_guard: libmicrohttpd's own timeout restarts on every
 * byte). The guard learns of each connection and request from
 * libmicrohttpd's notifications: connection started and closed, request
 * line, the handler's calls, request completed. */
#include "http/server.h"

#include "api/comms.h"
#include "api/health.h"
#include "api/metrics.h"
#include "api/rules.h"
#include "api/webhooks.h"
#include "engine/intake.h"
#include "http/answer.h"
#include "http/auth.h"
#include "http/conn_guard.h"
#include "http/stats.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <microhttpd.h>
#include <netdb.h>
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
#define SRV_PARAM_MAX        72
#define SRV_LOG_PATH_MAX     200
#define SRV_STOP_WAIT_MS     30000
/* An oversized chunked upload is read and dropped so the client still gets
 * its 413; past this many bytes the connection is simply closed. */
#define SRV_DISCARD_FACTOR 4

struct http_server {
    app_t *app;       /* borrowed */
    intake_t *intake; /* a reference of our own: valid even after intake_stop */
    auth_t *auth;
    cg_t *guard; /* request deadlines */
    struct MHD_Daemon *daemon;
    size_t max_body;
    int port;
    atomic_int suspended; /* connections waiting on the intake */
    atomic_int stopping;  /* set by http_stop: suspend nothing more */
};

typedef enum { SRV_SYNC, SRV_ASYNC } srv_kind_t;

typedef struct srv_route {
    http_route_id_t id;
    const char *method;
    const char *allow; /* Allow header when the path matches but the method does not */
    int need;          /* scopes of which one suffices; 0 = open */
    srv_kind_t kind;
    void (*handle)(const http_req_t *rq, http_answer_t *out); /* SRV_SYNC */
    /* the media type a POST body must have: JSON for our API, but providers
     * post in their own formats (Twilio form-encodes its webhooks) */
    const char *body_type;
    /* Content-Type of a 200 answer; every other answer is a JSON error */
    const char *ok_type;
} srv_route_t;

#define SRV_JSON  "application/json"
#define SRV_FORM  "application/x-www-form-urlencoded"
#define SRV_TWIML "text/xml; charset=utf-8"

static const srv_route_t srv_routes[] = {
    {HTTP_ROUTE_HEALTHZ, "GET", "GET, HEAD", 0, SRV_SYNC, api_healthz, SRV_JSON, SRV_JSON},
    {HTTP_ROUTE_READYZ, "GET", "GET, HEAD", 0, SRV_SYNC, api_readyz, SRV_JSON, SRV_JSON},
    {HTTP_ROUTE_COMM_CREATE, "POST", "POST", AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_ADMIN, SRV_ASYNC,
     NULL, SRV_JSON, SRV_JSON},
    {HTTP_ROUTE_COMM_GET, "GET", "GET, HEAD",
     AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN, SRV_SYNC, api_comm_get, SRV_JSON,
     SRV_JSON},
    {HTTP_ROUTE_PLAN_LIST, "GET", "GET, HEAD",
     AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN, SRV_SYNC, api_plan_list,
     SRV_JSON, SRV_JSON},
    {HTTP_ROUTE_RULES_STATUS, "GET", "GET, HEAD", AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN, SRV_SYNC,
     api_rules_status, SRV_JSON, SRV_JSON},
    {HTTP_ROUTE_RULES_DRY_RUN, "POST", "POST", AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN, SRV_SYNC,
     api_rules_dry_run, SRV_JSON, SRV_JSON},
    /* open like the probes: scrapers carry no token, and the text holds counts only */
    {HTTP_ROUTE_METRICS, "GET", "GET, HEAD", 0, SRV_SYNC, api_metrics, SRV_JSON,
     "text/plain; version=0.0.4; charset=utf-8"},
    /* Webhooks carry no token: each proves its origin with the provider's
     * signature, checked by the handler. They share the "other" counters
     * until the stats have routes of their own. */
    {HTTP_ROUTE_WEBHOOK_TWILIO_STATUS, "POST", "POST", 0, SRV_SYNC, api_webhook_twilio_status,
     SRV_FORM, SRV_TWIML},
    {HTTP_ROUTE_WEBHOOK_TWILIO_INBOUND, "POST", "POST", 0, SRV_SYNC, api_webhook_twilio_inbound,
     SRV_FORM, SRV_TWIML},
    {HTTP_ROUTE_WEBHOOK_WHATSAPP, "GET", "GET, POST", 0, SRV_SYNC, api_webhook_whatsapp_verify,
     SRV_JSON, "text/plain; charset=utf-8"},
    {HTTP_ROUTE_WEBHOOK_WHATSAPP, "POST", "GET, POST", 0, SRV_SYNC, api_webhook_whatsapp_post,
     SRV_JSON, SRV_JSON},
};

typedef enum {
    SRV_READING, /* headers seen, body arriving */
    SRV_WAITING, /* suspended, the intake holds the request */
    SRV_READY,   /* the intake answered: queue conn->answer */
    SRV_ANSWERED,
} srv_phase_t;

/* Per-connection state, owned by libmicrohttpd's *con_cls from the first
 * call to the completion callback. */
typedef struct srv_conn {
    http_server_t *srv;
    struct MHD_Connection *mhd;
    cg_conn_t *guard;         /* the connection's deadline; NULL if unguarded */
    const srv_route_t *route; /* NULL when no route matched */
    http_route_id_t route_id;
    char method[16];
    char path[SRV_LOG_PATH_MAX + 1];
    char param[SRV_PARAM_MAX];
    buf_t body;
    int too_large;
    size_t discarded;
    long long start_ms;
    int status;           /* what was answered, for the access log */
    atomic_int phase;     /* srv_phase_t */
    http_answer_t answer; /* filled by the intake before SRV_READY */
} srv_conn_t;

static const char srv_oom_body[] =
    "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";

const char *http_req_header(const http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(const http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int http_port(const http_server_t *s)
{
    return s ? s->port : 0;
}

/* Matches path against the route table. Returns the index of the first
 * resource whose path matches (method aside) or -1, and copies the {id}
 * segment into param. */
static int srv_match_path(const char *path, const char *method, char param[SRV_PARAM_MAX])
{
    param[0] = '\0';
    if (strcmp(path, "/webhooks/twilio/status") == 0)
        return 8;
    if (strcmp(path, "/webhooks/twilio/inbound") == 0)
        return 9;
    /* one resource, two methods: the handshake is a GET, updates are POSTs */
    if (strcmp(path, "/webhooks/whatsapp") == 0)
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? 10 : 11;
    if (strcmp(path, "/healthz") == 0)
        return 0;
    if (strcmp(path, "/readyz") == 0)
        return 1;
    if (strcmp(path, "/v1/communications") == 0)
        return 2;
    if (strcmp(path, "/v1/rules") == 0)
        return 5;
    if (strcmp(path, "/v1/rules/dry-run") == 0)
        return 6;
    if (strcmp(path, "/metrics") == 0)
        return 7;
    static const char comm[] = "/v1/communications/";
    static const char plans[] = "/v1/plans/";
    static const char tail[] = "/communications";
    const char *seg = NULL;
    size_t seglen = 0;
    int idx = -1;
    if (strncmp(path, comm, sizeof comm - 1) == 0) {
        seg = path + sizeof comm - 1;
        if (strchr(seg, '/'))
            return -1;
        seglen = strlen(seg);
        idx = 3;
    } else if (strncmp(path, plans, sizeof plans - 1) == 0) {
        seg = path + sizeof plans - 1;
        const char *slash = strchr(seg, '/');
        if (!slash || strcmp(slash, tail) != 0)
            return -1;
        seglen = (size_t)(slash - seg);
        idx = 4;
    } else {
        return -1;
    }
    /* a longer segment is cut, which leaves it no UUID: it is refused later */
    if (seglen >= SRV_PARAM_MAX)
        seglen = SRV_PARAM_MAX - 1;
    memcpy(param, seg, seglen);
    param[seglen] = '\0';
    return idx;
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
    /* errors are always JSON; a success has its route's type */
    const char *ctype = c->route && status == 200 ? c->route->ok_type : SRV_JSON;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
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

/* Everything that can be decided from the request line and headers. Returns
 * 1 when an answer was queued (the request is refused), 0 to read the body,
 * -1 to drop the connection. */
static int srv_admit(srv_conn_t *c, const char *method, enum MHD_Result *ret)
{
    http_server_t *s = c->srv;
    int idx = srv_match_path(c->path, method, c->param);
    if (idx < 0) {
        *ret = srv_error(c, 404, "not_found", "no such resource");
        return 1;
    }
    const srv_route_t *rt = &srv_routes[idx];
    c->route_id = rt->id;
    int head_ok = strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0;
    if (strcmp(method, rt->method) != 0 && !head_ok) {
        http_answer_t a;
        http_answer_error(&a, 405, "method_not_allowed", "method not allowed on this resource");
        a.allow = rt->allow;
        *ret = srv_queue(c, &a);
        return 1;
    }
    if (rt->need) {
        const char *authz =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        auth_result_t ar = auth_check(s->auth, authz, rt->need);
        if (ar == AUTH_UNAUTHORIZED) {
            http_answer_t a;
            http_answer_error(&a, 401, "unauthorized", "a valid bearer token is required");
            a.www_auth = 1;
            *ret = srv_queue(c, &a);
            return 1;
        }
        if (ar == AUTH_FORBIDDEN) {
            *ret = srv_error(c, 403, "forbidden", "the token lacks the scope for this request");
            return 1;
        }
    }
    if (strcmp(method, "POST") == 0) {
        const char *ctype =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!srv_is_type(ctype, rt->body_type)) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body must be sent as Content-Type: %s", rt->body_type);
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

/* Called by the intake, from its thread, once the request's fate is known. */
static void srv_intake_done(void *cls, http_answer_t *answer)
{
    srv_conn_t *c = cls;
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
        .app = s->app,
        .method = method,
        .path = c->path,
        .param = c->param,
        .body = c->body.data ? c->body.data : "",
        .body_len = c->body.len,
        .conn = c->mhd,
    };
    http_answer_t a;
    memset(&a, 0, sizeof a);
    if (c->route->kind == SRV_SYNC) {
        c->route->handle(&rq, &a);
        buf_free(&c->body);
        return srv_queue(c, &a);
    }
    intake_job_t *job = api_comm_create(&rq, &a);
    buf_free(&c->body); /* the job holds what it needs */
    if (!job)
        return srv_queue(c, &a);
    job->done = srv_intake_done;
    job->cls = c;
    /* Count first, then look at the flag: http_stop sets the flag, then
     * waits for the count, so one of the two always sees the other and no
     * connection is suspended behind its back (the daemon would abort). */
    atomic_fetch_add(&s->suspended, 1);
    if (atomic_load(&s->stopping)) {
        atomic_fetch_sub(&s->suspended, 1);
        intake_job_free(job);
        return srv_error(c, 503, "service_unavailable", "shutting down");
    }
    /* Suspend before submitting: the intake may answer (and resume) at once. */
    atomic_store(&c->phase, SRV_WAITING);
    MHD_suspend_connection(c->mhd);
    intake_submit(s->intake, job);
    return MHD_YES;
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
    c->route_id = HTTP_ROUTE_OTHER;
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
        /* Shut down for being too slow while the last header bytes came in:
         * the request is not served. */
        if (cg_headers(s->guard, c->guard) != 0)
            return MHD_NO;
        enum MHD_Result ret = MHD_YES;
        /* Answered from the headers: libmicrohttpd reads nothing more of
         * this request, so its clock stops (the idle timeout covers a client
         * that will not read the answer). Being swept meanwhile needs no
         * check: the answer just fails to go out. */
        if (srv_admit(c, method, &ret) != 0)
            (void)cg_received(s->guard, c->guard);
        return ret;
    }

    switch ((srv_phase_t)atomic_load(&c->phase)) {
    case SRV_READY:
        return srv_queue(c, &c->answer);
    case SRV_WAITING:
    case SRV_ANSWERED:
        /* nothing to do until the intake answers / the response is sent;
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
     * request is dropped rather than handed to a handler or the intake. */
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
    http_stats_count(c->route_id, status, ms);
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

http_server_t *http_start(app_t *app, char *err, size_t errlen)
{
    http_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->app = app;
    s->max_body = app->cfg->max_body ? app->cfg->max_body : SRV_DEFAULT_BODY;
    atomic_init(&s->suspended, 0);
    atomic_init(&s->stopping, 0);
    s->auth = auth_new(app->cfg->api_tokens, err, errlen);
    if (!s->auth) {
        free(s);
        return NULL;
    }
    if (auth_count(s->auth) == 0)
        log_warn("http", "no_api_tokens", "note", "every /v1 request will be refused", NULL);
    int request_s =
        app->cfg->http_request_timeout_s > 0 ? app->cfg->http_request_timeout_s : SRV_REQUEST_S;
    unsigned per_ip =
        app->cfg->http_per_ip_limit > 0 ? (unsigned)app->cfg->http_per_ip_limit : SRV_PER_IP_LIMIT;
    /* a slot for every connection the daemon may hold */
    s->guard = cg_new(SRV_CONNECTION_LIMIT, request_s, err, errlen);
    if (!s->guard) {
        auth_free(s->auth);
        free(s);
        return NULL;
    }

    struct addrinfo *ai = NULL;
    if (srv_resolve(app->cfg->listen, &ai, err, errlen) != 0) {
        cg_free(s->guard);
        auth_free(s->auth);
        free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = app->cfg->http_threads > 1 ? (unsigned)app->cfg->http_threads : 1;
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
    s->intake = intake_ref(app->intake);
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, srv_access, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not local?)",
                 app->cfg->listen);
        intake_unref(s->intake);
        cg_free(s->guard);
        auth_free(s->auth);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    return s;
}

void http_stop(http_server_t *s)
{
    if (!s)
        return;
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon);
    atomic_store(&s->stopping, 1);
    /* libmicrohttpd aborts if stopped with suspended connections, and the
     * intake resumes each of them with its answer: wait for that. */
    long long deadline = time_mono_ms() + SRV_STOP_WAIT_MS;
    while (atomic_load(&s->suspended) > 0 && time_mono_ms() < deadline)
        usleep(10 * 1000);
    if (atomic_load(&s->suspended) > 0) {
        /* Stopping now would abort the process; leaving the daemon to the
         * exit that follows is the lesser harm. */
        log_error("http", "stop_incomplete", "note", "requests still waiting on the intake", NULL);
        return;
    }
    MHD_stop_daemon(s->daemon);
    cg_free(s->guard);   /* after the daemon: it has closed every connection */
    api_rules_cleanup(); /* no handler runs any more */
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    intake_unref(s->intake);
    auth_free(s->auth);
    free(s);
}
