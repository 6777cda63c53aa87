/* transport: every network send on one libcurl multi loop. It speaks HTTP
 * itself (the provider APIs); any other protocol is set up on the easy
 * handle by its caller (tx_easy_new), so the loop knows no protocol but the
 * one every API shares.
 *
 * A tx_t owns one thread and one curl multi handle. Any thread builds a
 * tx_request_t and hands it over with tx_submit; the loop runs many
 * transfers at once, reuses connections per host through the multi's pool,
 * and calls the request's done callback on the transport thread when the
 * transfer ends. No caller ever waits on a provider unless it asks to
 * (tx_send_wait).
 *
 * Timeouts: a request's timeout_ms runs from tx_submit, so time spent queued
 * behind the in-flight or per-host limits counts against it. A request still
 * queued when its time is up completes with CURLE_OPERATION_TIMEDOUT without
 * ever being sent. */
#ifndef CRIER_TRANSPORT_H
#define CRIER_TRANSPORT_H

#include "channel/errclass.h"

#include <curl/curl.h>

#include <stddef.h>

typedef struct tx tx_t;
typedef struct tx_request tx_request_t;

/* Why a transfer did not produce a usable answer. */
typedef enum {
    TX_OK = 0,        /* a response came back (any HTTP status or protocol reply) */
    TX_ERR_CURL,      /* curl failed: connect, timeout, drop, TLS; see curl_code */
    TX_ERR_BODY_CAP,  /* the response body exceeded the cap; never truncated */
    TX_ERR_CANCELLED, /* tx_stop cancelled it before it finished */
    TX_ERR_INVALID,   /* the request itself was unusable (bad address, URL) */
    TX_ERR_NOMEM,     /* out of memory setting the transfer up */
} tx_err_t;

/* What a done callback sees. Pointers are valid only during the callback. */
typedef struct tx_result {
    tx_err_t err;
    int curl_code;     /* CURLcode of the transfer; CURLE_OK on success */
    int status;        /* HTTP status, or the protocol's last reply code; 0 if none */
    char enhanced[16]; /* a protocol's finer status (SMTP "5.1.1"), "" if none or HTTP */
    char phase[8];     /* the protocol step the last reply answered (SMTP "rcpt", "data"),
                          "" if unknown or HTTP */
    errc_t category;   /* HTTP: ERRC_NONE when a response came back (the driver
                          judges the status), ERRC_TRANSIENT when the transport
                          failed; tx_easy_new: its finish step's verdict */
    char text[256];    /* the last reply line or the error, never a secret */
    const char *body;  /* HTTP response body (NUL-terminated), "" if none */
    size_t body_len;
    char retry_after[64]; /* the Retry-After header's value, "" if absent */
    long elapsed_ms;      /* from tx_submit to completion */
    long num_connects;    /* new connections this transfer opened (0 = reused) */
} tx_result_t;

typedef void (*tx_done_fn)(void *ud, const tx_result_t *r);

typedef struct tx_limits {
    int max_in_flight;    /* transfers in the multi at once; 0 = 256 */
    long max_host_conns;  /* CURLMOPT_MAX_HOST_CONNECTIONS; 0 = 8 */
    long max_total_conns; /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0 = 64 */
    size_t body_cap;      /* response body ceiling in bytes; 0 = 64 KiB */
} tx_limits_t;

/* Starts the transport thread. lim may be NULL for the defaults. */
tx_t *tx_new(const tx_limits_t *lim);
/* Stops accepting requests, lets in-flight and queued transfers run for up
 * to grace_ms, then cancels what is left (each completes once with
 * TX_ERR_CANCELLED) and joins the thread. Safe to call twice. Must not be
 * called from a done callback. */
void tx_stop(tx_t *tx, long grace_ms);
/* tx_stop(tx, 0) if still running, then frees. */
void tx_free(tx_t *tx);

/* ---- requests (all strings are copied; the request owns its copies) ---- */

/* An HTTP request. method "GET", "POST", "PUT", ...; body may be NULL. */
tx_request_t *tx_http_new(const char *method, const char *url, const char *body, size_t body_len,
                          long timeout_ms);
/* Adds one "Name: value" header line. Returns 0 or -1. */
int tx_http_add_header(tx_request_t *req, const char *line);
/* Sets the authentication header line ("Authorization: Bearer ..."). It is
 * kept apart from other headers so it is wiped on free and never logged. */
int tx_http_set_auth(tx_request_t *req, const char *line);

/* A transfer of a protocol the transport does not speak: ops set the easy
 * handle up on the transport thread and read what came of it. ud is the
 * caller's state for one request. */
typedef struct tx_easy_ops {
    /* Sets every option of the transfer on h; timeout_ms is what is left of
     * the request's time. Returns TX_OK, or why it cannot start
     * (TX_ERR_INVALID, TX_ERR_NOMEM) with why filled (never a secret). */
    tx_err_t (*setup)(void *ud, CURL *h, long timeout_ms, char *why, size_t whylen);
    /* Fills res from the finished transfer: err, status, enhanced, phase,
     * category and text (curl_code, elapsed_ms and num_connects are the
     * transport's). rc is the multi's result for h. */
    void (*finish)(void *ud, CURL *h, CURLcode rc, tx_result_t *res);
    /* Frees ud, after the handle is gone; may be NULL. */
    void (*free)(void *ud);
    /* 1: after a transfer that did not end CURLE_OK, shut its connection
     * down rather than let the pool reuse it (a dialogue protocol may be
     * left out of step with its server). */
    int drop_on_error;
} tx_easy_ops_t;

/* A request whose transfer ops set up. ops is borrowed and must outlive the
 * request (a static table); ud passes to the request, even on failure.
 * NULL when ops lacks setup or finish, or when out of memory. */
tx_request_t *tx_easy_new(const tx_easy_ops_t *ops, void *ud, long timeout_ms);

/* Sets the completion callback; without one the result is dropped. */
void tx_request_on_done(tx_request_t *req, tx_done_fn done, void *ud);
/* Frees a request that was never submitted. */
void tx_request_free(tx_request_t *req);

/* Hands req to the transport (ownership passes, even on failure). Callable
 * from any thread. Returns 0, or -1 when the transport is stopping or req is
 * NULL; then req is freed and its callback is never called. */
int tx_submit(tx_t *tx, tx_request_t *req);

/* A group: requests submitted together, waited for together. A delivery
 * worker puts a whole claimed batch in flight at once and waits once for
 * the slowest, instead of one provider round trip after another. */
typedef struct tx_group tx_group_t;

tx_group_t *tx_group_new(void);
/* Submits req (ownership passes, even on failure); when it completes, out
 * receives a copy whose body out owns (tx_result_clear). out must stay
 * valid until tx_group_wait returns. Returns 0, or -1 when it could not be
 * submitted (out is then zeroed and never written). */
int tx_group_submit(tx_t *tx, tx_group_t *g, tx_request_t *req, tx_result_t *out);
/* Waits until every request submitted to g has completed. */
void tx_group_wait(tx_group_t *g);
/* Waits, then frees. */
void tx_group_free(tx_group_t *g);

/* Submits req and waits for its result, for callers not yet asynchronous.
 * out receives a copy whose body is owned by out: release it with
 * tx_result_clear. Returns 0 when the transfer ran (check out->err), -1
 * when it could not be submitted or when called on the transport thread. */
int tx_send_wait(tx_t *tx, tx_request_t *req, tx_result_t *out);
/* Copies src (as a done callback sees it) into dst with a body of its own,
 * for use after the callback returns: release it with tx_result_clear.
 * Returns 0, or -1 when out of memory (dst->err is then TX_ERR_NOMEM and
 * dst->body NULL). */
int tx_result_copy(tx_result_t *dst, const tx_result_t *src);

/* Frees the body a tx_send_wait result owns. */
void tx_result_clear(tx_result_t *r);

/* "ok", "curl", "body_cap", "cancelled", "invalid", "nomem". */
const char *tx_err_name(tx_err_t e);

#endif
