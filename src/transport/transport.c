#include "transport/transport.h"

#include "util/buf.h"
#include "util/errmsg.h"
#include "util/log.h"
#include "util/text.h"

#include <sys/socket.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TX_DEFAULT_IN_FLIGHT   256
#define TX_DEFAULT_HOST_CONNS  8L
#define TX_DEFAULT_TOTAL_CONNS 64L
#define TX_DEFAULT_BODY_CAP    ((size_t)64 * 1024)
#define TX_DEFAULT_TIMEOUT_MS  30000L
/* Longest wait in curl_multi_poll: a bound on how late a queued request's
 * deadline or a stop's grace period can be noticed. */
#define TX_POLL_MAX_MS 1000

typedef enum { TX_KIND_HTTP, TX_KIND_EASY } tx_kind_t;

struct tx_request {
    tx_request_t *next;  /* submit queue / pending FIFO link */
    tx_request_t *inext; /* in-flight list links */
    tx_request_t *iprev;
    tx_kind_t kind;
    long timeout_ms;
    long long deadline_ms; /* monotonic; set by tx_submit */
    long long submit_ms;
    tx_done_fn done;
    void *ud;

    /* HTTP; all owned */
    char *method;
    char *url;
    char *body;
    size_t body_len;
    struct curl_slist *headers;
    char *auth;
    struct curl_slist *send_headers; /* headers + auth, alive while in flight */

    /* a protocol the caller sets up (tx_easy_new) */
    const tx_easy_ops_t *ops; /* borrowed: static in its caller */
    void *ops_ud;             /* owned: released with ops->free */

    /* while in flight */
    CURL *h;
    buf_t resp;
    int over_cap;
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
};

struct tx {
    pthread_t thread;
    int thread_started;
    int joined;
    CURLM *multi;
    int global_inited;
    int max_in_flight;
    size_t body_cap;

    pthread_mutex_t mu; /* guards q_head, q_tail, stopping, stop_deadline_ms */
    tx_request_t *q_head;
    tx_request_t *q_tail;
    int stopping;
    long long stop_deadline_ms;

    /* transport thread only */
    tx_request_t *pend_head; /* accepted, waiting for an in-flight slot */
    tx_request_t *pend_tail;
    tx_request_t *inflight;
    int n_inflight;
};

static long long tx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tx_err_name(tx_err_t e)
{
    switch (e) {
    case TX_OK:
        return "ok";
    case TX_ERR_CURL:
        return "curl";
    case TX_ERR_BODY_CAP:
        return "body_cap";
    case TX_ERR_CANCELLED:
        return "cancelled";
    case TX_ERR_INVALID:
        return "invalid";
    case TX_ERR_NOMEM:
        return "nomem";
    }
    return "unknown";
}

/* ---- requests ----------------------------------------------------------- */

static void tx_wipe_free(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}

static void tx_wipe_list(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        if (p->data)
            memset(p->data, 0, strlen(p->data));
    curl_slist_free_all(l);
}

void tx_request_free(tx_request_t *req)
{
    if (!req)
        return;
    if (req->h)
        curl_easy_cleanup(req->h);
    free(req->method);
    free(req->url);
    free(req->body);
    /* Header lines may carry tokens: wipe, do not just free. */
    tx_wipe_list(req->headers);
    tx_wipe_list(req->send_headers);
    tx_wipe_free(req->auth);
    /* after the easy handle: what it was set up with may point into ud */
    if (req->ops && req->ops->free)
        req->ops->free(req->ops_ud);
    buf_free(&req->resp);
    free(req);
}

tx_request_t *tx_http_new(const char *method, const char *url, const char *body, size_t body_len,
                          long timeout_ms)
{
    if (!method || !url || (!body && body_len > 0))
        return NULL;
    tx_request_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = TX_KIND_HTTP;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : TX_DEFAULT_TIMEOUT_MS;
    r->method = strdup(method);
    r->url = strdup(url);
    if (body)
        r->body = text_dup_n(body, body_len);
    r->body_len = body_len;
    /* No "Expect: 100-continue": it costs a round trip (or a 1 s stall with
     * servers that ignore it) for bodies that are always small. */
    r->headers = curl_slist_append(NULL, "Expect:");
    if (!r->method || !r->url || (body && !r->body) || !r->headers) {
        tx_request_free(r);
        return NULL;
    }
    return r;
}

int tx_http_add_header(tx_request_t *req, const char *line)
{
    if (!req || req->kind != TX_KIND_HTTP || !line || strchr(line, '\r') || strchr(line, '\n'))
        return -1;
    struct curl_slist *l = curl_slist_append(req->headers, line);
    if (!l)
        return -1;
    req->headers = l;
    return 0;
}

int tx_http_set_auth(tx_request_t *req, const char *line)
{
    if (!req || req->kind != TX_KIND_HTTP || !line || strchr(line, '\r') || strchr(line, '\n'))
        return -1;
    char *d = strdup(line);
    if (!d)
        return -1;
    tx_wipe_free(req->auth);
    req->auth = d;
    return 0;
}

tx_request_t *tx_easy_new(const tx_easy_ops_t *ops, void *ud, long timeout_ms)
{
    if (!ops || !ops->setup || !ops->finish) {
        if (ops && ops->free)
            ops->free(ud);
        return NULL;
    }
    tx_request_t *r = calloc(1, sizeof *r);
    if (!r) {
        if (ops->free)
            ops->free(ud);
        return NULL;
    }
    r->kind = TX_KIND_EASY;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : TX_DEFAULT_TIMEOUT_MS;
    r->ops = ops;
    r->ops_ud = ud;
    return r;
}

void tx_request_on_done(tx_request_t *req, tx_done_fn done, void *ud)
{
    if (!req)
        return;
    req->done = done;
    req->ud = ud;
}

/* ---- curl callbacks ----------------------------------------------------- */

static size_t tx_write_cb(char *data, size_t size, size_t n, void *userp)
{
    tx_request_t *r = userp;
    size_t len = size * n;
    /* Over the cap the transfer is aborted rather than the body cut short:
     * a truncated JSON answer could parse as something it is not. */
    if (buf_append(&r->resp, data, len) != 0) {
        r->over_cap = 1;
        return 0;
    }
    return len;
}

static int tx_hdr_is(const char *data, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || data[n] != ':')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char a = data[i], b = name[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

static size_t tx_header_cb(char *data, size_t size, size_t n, void *userp)
{
    tx_request_t *r = userp;
    size_t len = size * n;
    /* A new status line starts a new header block (after a 100 Continue):
     * only the final response's headers count. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        r->retry_after[0] = '\0';
        return len;
    }
    if (tx_hdr_is(data, len, "retry-after")) {
        size_t i = strlen("retry-after") + 1;
        while (i < len && (data[i] == ' ' || data[i] == '\t'))
            i++;
        size_t end = len;
        while (end > i && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' ' ||
                           data[end - 1] == '\t'))
            end--;
        size_t k = end - i < sizeof r->retry_after - 1 ? end - i : sizeof r->retry_after - 1;
        for (size_t j = 0; j < k; j++) {
            unsigned char ch = (unsigned char)data[i + j];
            r->retry_after[j] = (ch < 0x20 || ch >= 0x7f) ? ' ' : (char)ch;
        }
        r->retry_after[k] = '\0';
    }
    return len;
}

/* ---- completing --------------------------------------------------------- */

static void tx_set_text(tx_result_t *res, const char *t)
{
    snprintf(res->text, sizeof res->text, "%s", t);
}

/* Calls the done callback exactly once and frees the request. */
static void tx_complete(tx_request_t *r, tx_result_t *res)
{
    res->elapsed_ms = (long)(tx_now_ms() - r->submit_ms);
    if (!res->body)
        res->body = "";
    if (r->done)
        r->done(r->ud, res);
    tx_request_free(r);
}

static void tx_fail(tx_request_t *r, tx_err_t err, int curl_code, const char *text)
{
    tx_result_t res;
    memset(&res, 0, sizeof res);
    res.err = err;
    res.curl_code = curl_code;
    res.category = err == TX_ERR_INVALID ? ERRC_INVALID_INPUT : ERRC_TRANSIENT;
    tx_set_text(&res, text);
    tx_complete(r, &res);
}

static void tx_finish_http(tx_t *tx, tx_request_t *r, CURLcode rc, tx_result_t *res)
{
    long status = 0;
    if (curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;
    res->status = (int)status;
    snprintf(res->retry_after, sizeof res->retry_after, "%s", r->retry_after);
    if (r->over_cap) {
        res->err = TX_ERR_BODY_CAP;
        res->category = ERRC_TRANSIENT;
        snprintf(res->text, sizeof res->text, "response body larger than %zu bytes", tx->body_cap);
    } else if (rc != CURLE_OK) {
        res->err = TX_ERR_CURL;
        res->category = ERRC_TRANSIENT;
        /* curl's own detail may be long: a cut text is still useful */
        errmsg_set(res->text, sizeof res->text, "%s%s%s", curl_easy_strerror(rc),
                   r->errbuf[0] ? ": " : "", r->errbuf);
    } else {
        res->err = TX_OK;
        res->category = ERRC_NONE;
        res->body = r->resp.data ? r->resp.data : "";
        res->body_len = r->resp.len;
        snprintf(res->text, sizeof res->text, "HTTP %ld", status);
    }
}

static void tx_finish_easy(tx_request_t *r, CURLcode rc, tx_result_t *res)
{
    /* the caller's verdict; a missing one reads as the transport failing */
    res->err = TX_ERR_CURL;
    res->category = ERRC_TRANSIENT;
    r->ops->finish(r->ops_ud, r->h, rc, res);
}

static void tx_inflight_unlink(tx_t *tx, tx_request_t *r)
{
    if (r->iprev)
        r->iprev->inext = r->inext;
    else
        tx->inflight = r->inext;
    if (r->inext)
        r->inext->iprev = r->iprev;
    r->inext = r->iprev = NULL;
    tx->n_inflight--;
}

static void tx_finish(tx_t *tx, tx_request_t *r, CURLcode rc)
{
    /* A failed transfer can leave a connection out of step with its server
     * while libcurl keeps it in the pool (tx_easy_ops_t.drop_on_error):
     * shutting the socket down makes the pool see a dead connection and
     * open a fresh one. */
    curl_socket_t sock = CURL_SOCKET_BAD;
    if (r->kind == TX_KIND_EASY && r->ops->drop_on_error && rc != CURLE_OK &&
        curl_easy_getinfo(r->h, CURLINFO_ACTIVESOCKET, &sock) == CURLE_OK &&
        sock != CURL_SOCKET_BAD)
        shutdown(sock, SHUT_RDWR);
    curl_multi_remove_handle(tx->multi, r->h);
    tx_inflight_unlink(tx, r);
    tx_result_t res;
    memset(&res, 0, sizeof res);
    res.curl_code = (int)rc;
    long conns = 0;
    if (curl_easy_getinfo(r->h, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK)
        res.num_connects = conns;
    if (r->kind == TX_KIND_HTTP)
        tx_finish_http(tx, r, rc, &res);
    else
        tx_finish_easy(r, rc, &res);
    tx_complete(r, &res);
}

/* ---- starting ----------------------------------------------------------- */

static int tx_setup_http(tx_t *tx, tx_request_t *r, long timeout_ms)
{
    CURL *h = r->h;
    buf_init(&r->resp, tx->body_cap);
    struct curl_slist *l = NULL;
    for (struct curl_slist *p = r->headers; p; p = p->next) {
        struct curl_slist *n = curl_slist_append(l, p->data);
        if (!n) {
            tx_wipe_list(l);
            return -1;
        }
        l = n;
    }
    if (r->auth) {
        struct curl_slist *n = curl_slist_append(l, r->auth);
        if (!n) {
            tx_wipe_list(l);
            return -1;
        }
        l = n;
    }
    r->send_headers = l;
    int ok = 1;
    ok &= curl_easy_setopt(h, CURLOPT_URL, r->url) == CURLE_OK;
    /* A URL from configuration must not reach file:// or other schemes. */
    ok &= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->send_headers) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tx_write_cb) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_WRITEDATA, r) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, tx_header_cb) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_HEADERDATA, r) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK;
    if (strcmp(r->method, "GET") == 0) {
        ok &= curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    } else if (strcmp(r->method, "HEAD") == 0) {
        ok &= curl_easy_setopt(h, CURLOPT_NOBODY, 1L) == CURLE_OK;
    } else {
        /* The body stays owned by the request, which outlives the transfer. */
        ok &= curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "") == CURLE_OK;
        ok &= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len) == CURLE_OK;
        if (strcmp(r->method, "POST") != 0)
            ok &= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method) == CURLE_OK;
    }
    return ok ? 0 : -1;
}

/* Starts r, or completes it at once when it cannot start. */
static void tx_start(tx_t *tx, tx_request_t *r)
{
    long left = (long)(r->deadline_ms - tx_now_ms());
    if (left <= 0) {
        tx_fail(r, TX_ERR_CURL, CURLE_OPERATION_TIMEDOUT,
                "timed out while queued behind the transfer limits");
        return;
    }
    r->h = curl_easy_init();
    if (!r->h) {
        tx_fail(r, TX_ERR_NOMEM, CURLE_OUT_OF_MEMORY, "out of memory");
        return;
    }
    if (r->kind == TX_KIND_HTTP) {
        if (tx_setup_http(tx, r, left) != 0) {
            tx_fail(r, TX_ERR_INVALID, CURLE_FAILED_INIT, "unusable HTTP request");
            return;
        }
    } else {
        char why[256] = "unusable request"; /* the size of tx_result_t.text */
        tx_err_t e = r->ops->setup(r->ops_ud, r->h, left, why, sizeof why);
        if (e != TX_OK) {
            tx_fail(r, e, CURLE_FAILED_INIT, why);
            return;
        }
    }
    if (curl_easy_setopt(r->h, CURLOPT_PRIVATE, r) != CURLE_OK ||
        curl_multi_add_handle(tx->multi, r->h) != CURLM_OK) {
        tx_fail(r, TX_ERR_NOMEM, CURLE_FAILED_INIT, "could not add the transfer");
        return;
    }
    r->iprev = NULL;
    r->inext = tx->inflight;
    if (tx->inflight)
        tx->inflight->iprev = r;
    tx->inflight = r;
    tx->n_inflight++;
}

/* ---- the loop ----------------------------------------------------------- */

static void tx_cancel_all(tx_t *tx)
{
    while (tx->inflight) {
        tx_request_t *r = tx->inflight;
        curl_multi_remove_handle(tx->multi, r->h);
        tx_inflight_unlink(tx, r);
        tx_fail(r, TX_ERR_CANCELLED, CURLE_ABORTED_BY_CALLBACK,
                "cancelled: the transport stopped before the transfer finished");
    }
    while (tx->pend_head) {
        tx_request_t *r = tx->pend_head;
        tx->pend_head = r->next;
        tx_fail(r, TX_ERR_CANCELLED, CURLE_ABORTED_BY_CALLBACK,
                "cancelled: the transport stopped before the transfer started");
    }
    tx->pend_tail = NULL;
}

/* Completes queued requests whose time ran out while they waited for a
 * slot; returns the earliest deadline among those still queued, or -1. */
static long long tx_expire_pending(tx_t *tx)
{
    long long now = tx_now_ms(), earliest = -1;
    tx_request_t **pp = &tx->pend_head, *last = NULL;
    while (*pp) {
        tx_request_t *r = *pp;
        if (r->deadline_ms <= now) {
            *pp = r->next;
            r->next = NULL;
            tx_fail(r, TX_ERR_CURL, CURLE_OPERATION_TIMEDOUT,
                    "timed out while queued behind the transfer limits");
            continue;
        }
        if (earliest < 0 || r->deadline_ms < earliest)
            earliest = r->deadline_ms;
        last = r;
        pp = &r->next;
    }
    tx->pend_tail = last;
    return earliest;
}

/* Takes everything submitted so far; returns the stop state. */
static int tx_take_queue(tx_t *tx, long long *stop_deadline)
{
    pthread_mutex_lock(&tx->mu);
    if (tx->q_head) {
        if (tx->pend_tail)
            tx->pend_tail->next = tx->q_head;
        else
            tx->pend_head = tx->q_head;
        tx->pend_tail = tx->q_tail;
        tx->q_head = tx->q_tail = NULL;
    }
    int stopping = tx->stopping;
    *stop_deadline = tx->stop_deadline_ms;
    pthread_mutex_unlock(&tx->mu);
    return stopping;
}

static void *tx_main(void *arg)
{
    tx_t *tx = arg;
    for (;;) {
        long long stop_deadline = 0;
        int stopping = tx_take_queue(tx, &stop_deadline);
        if (stopping && tx_now_ms() >= stop_deadline) {
            tx_cancel_all(tx);
            break;
        }
        while (tx->pend_head && tx->n_inflight < tx->max_in_flight) {
            tx_request_t *r = tx->pend_head;
            tx->pend_head = r->next;
            if (!tx->pend_head)
                tx->pend_tail = NULL;
            r->next = NULL;
            tx_start(tx, r);
        }
        int running = 0;
        CURLMcode mc = curl_multi_perform(tx->multi, &running);
        if (mc != CURLM_OK)
            log_error("transport", "multi_perform_failed", "detail", curl_multi_strerror(mc), NULL);
        int finished = 0;
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(tx->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK)
                priv = NULL;
            tx_request_t *r = (tx_request_t *)(void *)priv;
            /* Read the result before tx_finish frees what m points into. */
            CURLcode rc = m->data.result;
            if (r) {
                tx_finish(tx, r, rc);
                finished++;
            }
        }
        if (stopping && tx->n_inflight == 0 && !tx->pend_head)
            break;
        /* Freed slots can take queued requests straight away. */
        if (finished && tx->pend_head)
            continue;
        /* A request queued behind the limits must be timed out on time. */
        long long earliest = tx_expire_pending(tx);
        long long wait = TX_POLL_MAX_MS;
        long long now = tx_now_ms();
        if (stopping && stop_deadline - now < wait)
            wait = stop_deadline - now;
        if (earliest >= 0 && earliest - now < wait)
            wait = earliest - now;
        if (wait < 0)
            wait = 0;
        mc = curl_multi_poll(tx->multi, NULL, 0, (int)wait, NULL);
        if (mc != CURLM_OK)
            log_error("transport", "multi_poll_failed", "detail", curl_multi_strerror(mc), NULL);
    }
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

tx_t *tx_new(const tx_limits_t *lim)
{
    tx_limits_t l = lim ? *lim : (tx_limits_t){0};
    tx_t *tx = calloc(1, sizeof *tx);
    if (!tx)
        return NULL;
    tx->max_in_flight = l.max_in_flight > 0 ? l.max_in_flight : TX_DEFAULT_IN_FLIGHT;
    tx->body_cap = l.body_cap > 0 ? l.body_cap : TX_DEFAULT_BODY_CAP;
    long host = l.max_host_conns > 0 ? l.max_host_conns : TX_DEFAULT_HOST_CONNS;
    long total = l.max_total_conns > 0 ? l.max_total_conns : TX_DEFAULT_TOTAL_CONNS;
    if (pthread_mutex_init(&tx->mu, NULL) != 0) {
        free(tx);
        return NULL;
    }
    /* Reference-counted and thread-safe in libcurl >= 7.84. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    tx->global_inited = 1;
    tx->multi = curl_multi_init();
    if (!tx->multi)
        goto fail;
    int ok = 1;
    ok &= curl_multi_setopt(tx->multi, CURLMOPT_MAX_HOST_CONNECTIONS, host) == CURLM_OK;
    ok &= curl_multi_setopt(tx->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total) == CURLM_OK;
    /* Keep as many idle connections as may be open, so a burst's
     * connections survive to serve the next burst. */
    ok &= curl_multi_setopt(tx->multi, CURLMOPT_MAXCONNECTS, total) == CURLM_OK;
    if (!ok)
        goto fail;
    if (pthread_create(&tx->thread, NULL, tx_main, tx) != 0)
        goto fail;
    tx->thread_started = 1;
    return tx;
fail:
    if (tx->multi)
        curl_multi_cleanup(tx->multi);
    if (tx->global_inited)
        curl_global_cleanup();
    pthread_mutex_destroy(&tx->mu);
    free(tx);
    return NULL;
}

void tx_stop(tx_t *tx, long grace_ms)
{
    if (!tx || !tx->thread_started || tx->joined)
        return;
    pthread_mutex_lock(&tx->mu);
    if (!tx->stopping) {
        tx->stopping = 1;
        tx->stop_deadline_ms = tx_now_ms() + (grace_ms > 0 ? grace_ms : 0);
    }
    pthread_mutex_unlock(&tx->mu);
    curl_multi_wakeup(tx->multi);
    pthread_join(tx->thread, NULL);
    tx->joined = 1;
}

void tx_free(tx_t *tx)
{
    if (!tx)
        return;
    tx_stop(tx, 0);
    /* Closes the pooled connections (a protocol with a goodbye says it). */
    curl_multi_cleanup(tx->multi);
    if (tx->global_inited)
        curl_global_cleanup();
    pthread_mutex_destroy(&tx->mu);
    free(tx);
}

int tx_submit(tx_t *tx, tx_request_t *req)
{
    if (!req)
        return -1;
    if (!tx) {
        tx_request_free(req);
        return -1;
    }
    req->next = NULL;
    req->submit_ms = tx_now_ms();
    req->deadline_ms = req->submit_ms + req->timeout_ms;
    pthread_mutex_lock(&tx->mu);
    if (tx->stopping) {
        pthread_mutex_unlock(&tx->mu);
        tx_request_free(req);
        return -1;
    }
    if (tx->q_tail)
        tx->q_tail->next = req;
    else
        tx->q_head = req;
    tx->q_tail = req;
    pthread_mutex_unlock(&tx->mu);
    curl_multi_wakeup(tx->multi);
    return 0;
}

/* ---- waiting ------------------------------------------------------------ */

struct tx_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending; /* submitted and not yet completed */
};

/* What one grouped request's callback needs; freed by the callback. */
typedef struct tx_group_slot {
    tx_group_t *g;    /* borrowed: outlives every slot (tx_group_wait) */
    tx_result_t *out; /* borrowed: the caller's */
} tx_group_slot_t;

int tx_result_copy(tx_result_t *dst, const tx_result_t *src)
{
    *dst = *src;
    char *body = text_dup_n(src->body ? src->body : "", src->body_len);
    dst->body = body;
    if (!body) {
        dst->err = TX_ERR_NOMEM;
        dst->body_len = 0;
        return -1;
    }
    return 0;
}

static void tx_group_done(void *ud, const tx_result_t *r)
{
    tx_group_slot_t *s = ud;
    tx_result_t copy;
    (void)tx_result_copy(&copy, r); /* on failure copy says TX_ERR_NOMEM */
    tx_group_t *g = s->g;
    pthread_mutex_lock(&g->mu);
    *s->out = copy;
    if (--g->pending == 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    free(s);
}

tx_group_t *tx_group_new(void)
{
    tx_group_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return NULL;
    }
    if (pthread_cond_init(&g->cv, NULL) != 0) {
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

int tx_group_submit(tx_t *tx, tx_group_t *g, tx_request_t *req, tx_result_t *out)
{
    if (!g || !out) {
        tx_request_free(req);
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!tx || !req || (tx->thread_started && pthread_equal(pthread_self(), tx->thread))) {
        /* On the transport thread the wait would never end. */
        tx_request_free(req);
        return -1;
    }
    tx_group_slot_t *s = malloc(sizeof *s);
    if (!s) {
        tx_request_free(req);
        return -1;
    }
    s->g = g;
    s->out = out;
    tx_request_on_done(req, tx_group_done, s);
    pthread_mutex_lock(&g->mu);
    g->pending++;
    pthread_mutex_unlock(&g->mu);
    if (tx_submit(tx, req) != 0) {
        /* the request was freed without its callback */
        free(s);
        pthread_mutex_lock(&g->mu);
        g->pending--;
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    return 0;
}

void tx_group_wait(tx_group_t *g)
{
    if (!g)
        return;
    /* Every submitted request completes exactly once (tx_stop cancels what
     * it cannot finish), so this wait ends. */
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void tx_group_free(tx_group_t *g)
{
    if (!g)
        return;
    tx_group_wait(g);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

int tx_send_wait(tx_t *tx, tx_request_t *req, tx_result_t *out)
{
    tx_group_t *g = tx_group_new();
    if (!g) {
        tx_request_free(req);
        if (out)
            memset(out, 0, sizeof *out);
        return -1;
    }
    int rc = tx_group_submit(tx, g, req, out);
    tx_group_free(g); /* waits */
    return rc;
}

void tx_result_clear(tx_result_t *r)
{
    if (!r)
        return;
    free((void *)r->body);
    r->body = NULL;
    r->body_len = 0;
}
