#include "engine/callbacks.h"

#include "crypto/crypto.h"
#include "queue/cbqueue.h"
#include "queue/queue.h"
#include "store/db.h"
#include "transport/transport.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CRIER_VERSION
#define CRIER_VERSION "dev"
#endif

/* Enough of the workflow's answer to explain a refusal in last_error. */
#define CB_ERROR_SNIPPET 200
#define CB_RESCUE_MS     1000
/* The lease covers one round of POSTs (they run at once, each within its
 * time limit) plus the commits after them. */
#define CB_LEASE_MARGIN_S 2
/* Rows claimed and sent together. All go to the one configured URL, so the
 * transport's connection and in-flight limits are set to the same number:
 * none of them waits for a slot and eats into its time limit. */
#define CB_BATCH 8
/* The transport aborts an answer larger than this instead of truncating it;
 * such an answer still counts by its status (cb_judge), only its snippet is
 * lost, so the ceiling need not be small. */
#define CB_BODY_CAP ((size_t)1024 * 1024)

/* Every event a callback can be, in the order docs/callbacks.md lists them;
 * the last two are the client's own answers. */
static const char *const cb_events[] = {"sent",    "delivered",    "opened",
                                        "clicked", "failed",       "skipped",
                                        "bounced", "client_reply", "client_action"};
#define CB_EVENT_COUNT  (sizeof cb_events / sizeof cb_events[0])
#define CB_EVENT_ANSWER 7 /* cb_events[7..]: kept while no URL is configured */

/* 1 when the comma list list holds name. */
static int cb_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

int cb_event_wanted(const char *setting, const char *event)
{
    return strcmp(setting, "all") == 0 || cb_listed(setting, event);
}

int cb_events_setting(const char *events, int have_url, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    /* each name is checked against the list, so the copy below is bounded
     * by the list's own length */
    char name[32];
    for (const char *p = events; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
        int known = strcmp(name, "all") == 0 || strcmp(name, "none") == 0;
        for (size_t i = 0; !known && i < CB_EVENT_COUNT; i++)
            known = len == strlen(cb_events[i]) && strcmp(name, cb_events[i]) == 0;
        if (!known || len >= sizeof name) {
            snprintf(err, errlen,
                     "CRIER_CALLBACK_EVENTS: unknown event \"%.*s\" (all, none, or a comma list "
                     "of sent, delivered, opened, clicked, failed, skipped, bounced, "
                     "client_reply, client_action)",
                     (int)(len < 40 ? len : 40), p);
            return -1;
        }
        p += len + (e ? 1 : 0);
    }
    int all = cb_listed(events, "all");
    buf_t b;
    buf_init(&b, outlen);
    int rc = 0;
    for (size_t i = have_url ? 0 : CB_EVENT_ANSWER; i < CB_EVENT_COUNT; i++)
        if (all || cb_listed(events, cb_events[i]))
            rc |= buf_printf(&b, "%s%s", b.len ? "," : "", cb_events[i]);
    if (rc || b.len >= outlen) {
        buf_free(&b);
        snprintf(err, errlen, "CRIER_CALLBACK_EVENTS: too long");
        return -1;
    }
    snprintf(out, outlen, "%s", b.len ? b.data : "");
    buf_free(&b);
    return 0;
}

struct cb_sender {
    app_t *app; /* borrowed */
    tx_t *tx;   /* owned; the sender thread's alone, freed after the join */
    pthread_t thread;
    int started;
    atomic_int stop;
};

int cb_sign(const char *secret, long long timestamp, const char *body, size_t len, char out[72])
{
    out[0] = '\0';
    buf_t msg;
    /* the body is already bounded by its column; the prefix adds 21 bytes */
    buf_init(&msg, len + 32);
    if (buf_printf(&msg, "%lld.", timestamp) != 0 || buf_append(&msg, body, len) != 0) {
        buf_free(&msg);
        return -1;
    }
    unsigned char mac[32];
    int rc = cry_hmac_sha256(secret, strlen(secret), msg.data, msg.len, mac);
    buf_free(&msg);
    if (rc != 0)
        return -1;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[71] = '\0';
    return 0;
}

cb_outcome_t cb_classify(int transfer_ok, long status)
{
    if (!transfer_ok)
        return CB_RETRY;
    if (status >= 200 && status < 300)
        return CB_DELIVERED;
    /* A timeout or a rate limit at the receiver says "later", not "never". */
    if (status == 408 || status == 429 || status >= 500)
        return CB_RETRY;
    /* Other 4xx: the workflow refuses this request and would refuse it again.
     * 3xx: redirects are not followed, so that a signed reply never goes to a
     * host nobody configured; the setting must be fixed. */
    return CB_FAILED;
}

int cb_backoff(int attempt, int fixed_seconds)
{
    static const int schedule[] = {10, 60, 300, 1800};
    if (fixed_seconds > 0)
        return fixed_seconds;
    int n = (int)(sizeof schedule / sizeof schedule[0]);
    if (attempt < 1)
        attempt = 1;
    return schedule[attempt <= n ? attempt - 1 : n - 1];
}

/* Sleeps up to ms, waking early when asked to stop. */
static void cb_nap(cb_sender_t *s, int ms)
{
    while (ms > 0 && !atomic_load(&s->stop)) {
        int step = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static int cb_lease_seconds(const cfg_t *cfg)
{
    int need = (cfg->callback_timeout_ms + 999) / 1000 + CB_LEASE_MARGIN_S;
    return cfg->lease_seconds > need ? cfg->lease_seconds : need;
}

/* Event names go into a header: anything but a plain token is left out
 * rather than risk a header injection. */
static int cb_is_token(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* Appends up to CB_ERROR_SNIPPET printable bytes of the answer. */
static void cb_snippet(buf_t *out, const char *body, size_t len)
{
    size_t n = len < CB_ERROR_SNIPPET ? len : CB_ERROR_SNIPPET;
    if (n == 0)
        return;
    (void)buf_puts(out, ": ");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        (void)buf_putc(out, c >= 0x20 && c < 0x7f ? (char)c : ' ');
    }
}

/* Builds the signed POST for one job; NULL with the reason in error.
 * The transport already sends no "Expect: 100-continue", speaks only
 * http/https, verifies TLS and follows no redirects; what it does not set
 * is added here as headers. */
static tx_request_t *cb_request(const cfg_t *cfg, const cbqueue_job_t *job, buf_t *error)
{
    size_t len = strlen(job->payload);
    long long ts = (long long)time(NULL);
    char sig[72];
    if (cb_sign(cfg->workflow_callback_secret, ts, job->payload, len, sig) != 0) {
        (void)buf_puts(error, "cannot compute the signature");
        return NULL;
    }
    char h_ts[64], h_sig[96], h_id[96], h_ev[96];
    snprintf(h_ts, sizeof h_ts, "X-Crier-Timestamp: %lld", ts);
    snprintf(h_sig, sizeof h_sig, "X-Crier-Signature: %s", sig);
    snprintf(h_id, sizeof h_id, "X-Crier-Callback-Id: %s", job->id);
    snprintf(h_ev, sizeof h_ev, "X-Crier-Event: %s", job->event_type);
    const char *lines[] = {"Content-Type: application/json",
                           "User-Agent: crier/" CRIER_VERSION,
                           h_ts,
                           h_sig,
                           h_id,
                           cb_is_token(job->event_type) ? h_ev : NULL};
    tx_request_t *req = tx_http_new("POST", cfg->workflow_callback_url, job->payload, len,
                                    cfg->callback_timeout_ms);
    int ok = req != NULL;
    for (size_t i = 0; ok && i < sizeof lines / sizeof lines[0]; i++)
        if (lines[i])
            ok = tx_http_add_header(req, lines[i]) == 0;
    if (!ok) {
        tx_request_free(req);
        (void)buf_puts(error, "out of memory building the request");
        return NULL;
    }
    return req;
}

/* Judges a finished transfer: its outcome, the HTTP status (0 when none)
 * and what went wrong (if anything) into error. */
static cb_outcome_t cb_judge(const tx_result_t *res, long *status, buf_t *error)
{
    /* An answer over the body ceiling is still an answer: its status counts,
     * as it did when the rest of a long body was read and dropped. */
    int answered = res->err == TX_OK || (res->err == TX_ERR_BODY_CAP && res->status > 0);
    *status = answered ? res->status : 0;
    cb_outcome_t outcome = cb_classify(answered, *status);
    if (!answered) {
        /* curl's generic text only: the transport's detailed text may quote
         * the URL. */
        (void)buf_printf(error, "no answer: %s", curl_easy_strerror((CURLcode)res->curl_code));
    } else if (outcome != CB_DELIVERED) {
        (void)buf_printf(error, "HTTP %ld", *status);
        if (res->err == TX_OK && res->body)
            cb_snippet(error, res->body, res->body_len);
    }
    return outcome;
}

/* Records one job's outcome: the retry decision, the log line, the fenced
 * completion. */
static void cb_record(const cfg_t *cfg, PGconn *conn, const cbqueue_job_t *job,
                      cb_outcome_t outcome, long status, const buf_t *error)
{
    if (outcome == CB_RETRY && job->attempt >= cfg->callback_max_attempts)
        outcome = CB_FAILED;
    int delay = outcome == CB_RETRY ? cb_backoff(job->attempt, cfg->callback_retry_seconds) : 0;
    static const char *const names[] = {
        [CB_DELIVERED] = "delivered", [CB_RETRY] = "retry", [CB_FAILED] = "failed"};
    char attempt[16], code[16], after[16];
    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    snprintf(code, sizeof code, "%ld", status);
    snprintf(after, sizeof after, "%d", delay);
    /* The payload is a client's words: it is never logged. */
    log_kv(outcome == CB_DELIVERED ? LOG_INFO : LOG_WARNING, "callbacks", "attempt", "callback_id",
           job->id, "event_type", job->event_type, "attempt", attempt, "status",
           status ? code : NULL, "outcome", names[outcome], "retry_after_s",
           outcome == CB_RETRY ? after : NULL, "error", error->len ? error->data : NULL, NULL);
    /* the queue's outcome of each answer's; the same three */
    static const cbqueue_outcome_t queued[] = {[CB_DELIVERED] = CBQUEUE_DELIVERED,
                                               [CB_RETRY] = CBQUEUE_RETRY,
                                               [CB_FAILED] = CBQUEUE_FAILED};
    char err[512];
    int applied = cbqueue_complete(conn, job, queued[outcome], delay,
                                   error->len ? error->data : NULL, err, sizeof err);
    if (applied < 0)
        /* The row stays 'sending'; after its lease it is sent again. */
        log_error("callbacks", "complete_failed", "callback_id", job->id, "error", err, NULL);
    else if (applied == 0)
        log_warn("callbacks", "stale_completion", "callback_id", job->id, NULL);
}

/* What one job of a round needs between its submit and its record. */
typedef struct cb_slot {
    int submitted;   /* res is filled by the group */
    tx_result_t res; /* owns its body after the wait (tx_result_clear) */
    buf_t error;     /* owned */
} cb_slot_t;

/* Sends n claimed jobs at once on tx, waits for the slowest, then records
 * every outcome. */
static void cb_send_batch(tx_t *tx, const cfg_t *cfg, PGconn *conn, const cbqueue_job_t *jobs,
                          int n)
{
    cb_slot_t slots[CB_BATCH];
    memset(slots, 0, sizeof slots);
    tx_group_t *g = tx_group_new();
    for (int i = 0; i < n; i++) {
        buf_init(&slots[i].error, 512);
        if (!g) {
            (void)buf_puts(&slots[i].error, "no answer: out of memory starting the send");
            continue;
        }
        if (jobs[i].unreadable) {
            /* sending it again would not help: recorded as failed below */
            (void)buf_puts(&slots[i].error, "the payload cannot be decrypted (wrong key or a "
                                            "damaged row)");
            continue;
        }
        tx_request_t *req = cb_request(cfg, &jobs[i], &slots[i].error);
        if (!req)
            continue;
        if (tx_group_submit(tx, g, req, &slots[i].res) != 0) {
            (void)buf_puts(&slots[i].error, "no answer: the transport refused the request");
            continue;
        }
        slots[i].submitted = 1;
    }
    tx_group_free(g); /* waits for every submitted request; NULL is ok */
    for (int i = 0; i < n; i++) {
        long status = 0;
        /* A request that never went out is retried like a lost answer,
         * unless its body cannot be read at all. */
        cb_outcome_t outcome = slots[i].submitted
                                   ? cb_judge(&slots[i].res, &status, &slots[i].error)
                               : jobs[i].unreadable ? CB_FAILED
                                                    : CB_RETRY;
        cb_record(cfg, conn, &jobs[i], outcome, status, &slots[i].error);
        tx_result_clear(&slots[i].res);
        buf_free(&slots[i].error);
    }
}

static void *cb_thread(void *arg)
{
    cb_sender_t *s = arg;
    const cfg_t *cfg = s->app->cfg;
    char err[512];
    PGconn *conn = NULL;
    int told_idle = 0;
    long long last_rescue = 0;
    int lease = cb_lease_seconds(cfg);
    int wait_ms = cfg->poll_ms < 1000 ? cfg->poll_ms : 1000;

    while (!atomic_load(&s->stop)) {
        if (!cfg->workflow_callback_url[0] || !cfg->workflow_callback_secret[0]) {
            /* Rows wait in the table: nothing is lost while unconfigured. */
            if (!told_idle) {
                if (!cfg->workflow_callback_url[0])
                    log_info("callbacks", "idle", "reason",
                             "CRIER_WORKFLOW_CALLBACK_URL is not set; callbacks are kept "
                             "until one is configured",
                             NULL);
                else
                    log_error("callbacks", "idle", "reason",
                              "CRIER_WORKFLOW_CALLBACK_SECRET is not set; callbacks are kept, "
                              "never sent unsigned",
                              NULL);
                told_idle = 1;
            }
            cb_nap(s, 500);
            continue;
        }
        if (!conn || db_ensure(conn) != 0) {
            if (conn)
                PQfinish(conn);
            conn = db_connect(cfg->database_url, err, sizeof err);
            if (!conn || cbqueue_listen(conn, err, sizeof err) != 0) {
                log_error("callbacks", "database_unreachable", "error", err, NULL);
                if (conn)
                    PQfinish(conn);
                conn = NULL;
                cb_nap(s, 1000);
                continue;
            }
        }
        long long now = time_mono_ms();
        if (now - last_rescue >= CB_RESCUE_MS) {
            last_rescue = now;
            int rescued = 0;
            if (cbqueue_rescue(conn, cfg->callback_max_attempts, &rescued, err, sizeof err) != 0) {
                log_error("callbacks", "rescue_failed", "error", err, NULL);
            } else if (rescued > 0) {
                char n[16];
                snprintf(n, sizeof n, "%d", rescued);
                log_warn("callbacks", "leases_rescued", "count", n, NULL);
            }
        }
        cbqueue_job_t jobs[CB_BATCH];
        int got = cbqueue_claim(conn, &s->app->keys, lease, CB_BATCH, jobs, err, sizeof err);
        if (got < 0) {
            log_error("callbacks", "claim_failed", "error", err, NULL);
            cb_nap(s, 1000);
            continue;
        }
        if (got == 0) {
            if (queue_wait(conn, wait_ms) < 0) {
                PQfinish(conn);
                conn = NULL;
            }
            continue;
        }
        cb_send_batch(s->tx, cfg, conn, jobs, got);
        for (int i = 0; i < got; i++)
            cbqueue_job_free(&jobs[i]);
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

cb_sender_t *cb_start(app_t *app, char *err, size_t errlen)
{
    cb_sender_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->app = app;
    atomic_init(&s->stop, 0);
    tx_limits_t lim = {
        .max_in_flight = CB_BATCH,
        .max_host_conns = CB_BATCH,
        .max_total_conns = CB_BATCH,
        .body_cap = CB_BODY_CAP,
    };
    s->tx = tx_new(&lim);
    if (!s->tx) {
        snprintf(err, errlen, "cannot start the callback transport");
        free(s);
        return NULL;
    }
    if (pthread_create(&s->thread, NULL, cb_thread, s) != 0) {
        snprintf(err, errlen, "cannot start the callback thread");
        tx_free(s->tx);
        free(s);
        return NULL;
    }
    s->started = 1;
    return s;
}

void cb_stop(cb_sender_t *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    /* The thread finishes its round first: the POSTs in flight complete on
     * the transport and are recorded before it exits. */
    if (s->started)
        pthread_join(s->thread, NULL);
    tx_free(s->tx);
    free(s);
}
