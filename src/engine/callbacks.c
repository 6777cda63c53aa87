#include "engine/callbacks.h"

#include "crypto/crypto.h"
#include "queue/queue.h"
#include "store/db.h"
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

/* Writers of workflow_callbacks may NOTIFY this channel for an immediate
 * send; without it a new row waits at most one poll interval. */
#define CB_CHANNEL "crier_callbacks"
/* Enough of the workflow's answer to explain a refusal in last_error. */
#define CB_RESPONSE_MAX  4096
#define CB_ERROR_SNIPPET 200
#define CB_RESCUE_MS     1000
/* The lease covers one POST (its time limit) plus the commit after it. */
#define CB_LEASE_MARGIN_S 2

struct cb_sender {
    app_t *app; /* borrowed */
    pthread_t thread;
    int started;
    atomic_int stop;
};

/* One claimed row; strings owned by the job. */
typedef struct cb_job {
    char *id;
    char *event_type;
    char *payload;
    int attempt;
} cb_job_t;

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

static void cb_job_free(cb_job_t *j)
{
    free(j->id);
    free(j->event_type);
    free(j->payload);
    memset(j, 0, sizeof *j);
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

/* Claims the oldest due row. 1 when one was claimed, 0 when none is due, -1
 * on a database error (message in err). One row per claim: each POST may take
 * up to its time limit, and a batch would need a lease covering all of them. */
static int cb_claim(PGconn *conn, int lease_seconds, cb_job_t *job, char *err, size_t errlen)
{
    memset(job, 0, sizeof *job);
    char lease[16];
    snprintf(lease, sizeof lease, "%d", lease_seconds);
    const char *params[] = {lease};
    /* MATERIALIZED keeps the locking subquery from being folded into the
     * UPDATE, as in queue_claim. */
    PGresult *r = db_query(conn,
                           "WITH c AS MATERIALIZED ("
                           " SELECT id FROM workflow_callbacks"
                           " WHERE state = 'pending' AND next_attempt_at <= now()"
                           " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                           " UPDATE workflow_callbacks w SET state = 'sending',"
                           "  attempts = w.attempts + 1,"
                           "  lease_until = now() + make_interval(secs => $1::int)"
                           " FROM c WHERE w.id = c.id"
                           " RETURNING w.id::text, w.attempts, w.event_type, w.payload::text",
                           1, params, err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    job->id = strdup(PQgetvalue(r, 0, 0));
    job->attempt = atoi(PQgetvalue(r, 0, 1));
    job->event_type = strdup(PQgetvalue(r, 0, 2));
    job->payload = strdup(PQgetvalue(r, 0, 3));
    PQclear(r);
    if (!job->id || !job->event_type || !job->payload) {
        /* The row stays claimed; its lease expires and the rescuer returns it. */
        cb_job_free(job);
        snprintf(err, errlen, "out of memory reading a claimed callback");
        return -1;
    }
    return 1;
}

/* Returns rows whose sender died or hung to the queue, or fails them when
 * they have used up their attempts (a row that kills its sender every time
 * must not loop forever). */
static int cb_rescue(PGconn *conn, int max_attempts, int *rescued, char *err, size_t errlen)
{
    *rescued = 0;
    char maxa[16];
    snprintf(maxa, sizeof maxa, "%d", max_attempts);
    const char *params[] = {maxa};
    PGresult *r =
        db_query(conn,
                 "WITH x AS (SELECT id FROM workflow_callbacks"
                 "  WHERE state = 'sending' AND lease_until < now()"
                 "  ORDER BY lease_until LIMIT 100 FOR UPDATE SKIP LOCKED),"
                 " u AS (UPDATE workflow_callbacks w SET"
                 "  state = CASE WHEN w.attempts >= $1::int THEN 'failed' ELSE 'pending' END,"
                 "  next_attempt_at = now(), lease_until = NULL,"
                 "  last_error = 'the attempt did not finish before its lease expired'"
                 "  FROM x WHERE w.id = x.id RETURNING w.id)"
                 " SELECT count(*) FROM u",
                 1, params, err, errlen);
    if (!r)
        return -1;
    *rescued = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* Records an attempt's outcome, fenced on the attempt still being the one in
 * flight. Returns 1 when applied, 0 when stale, -1 on a database error. */
static int cb_complete(PGconn *conn, const cb_job_t *job, cb_outcome_t outcome, int delay_s,
                       const char *error, char *err, size_t errlen)
{
    static const char *const states[] = {
        [CB_DELIVERED] = "delivered", [CB_RETRY] = "pending", [CB_FAILED] = "failed"};
    char attempt[16], delay[16];
    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    snprintf(delay, sizeof delay, "%d", delay_s);
    const char *params[] = {job->id, attempt, states[outcome], delay, error};
    PGresult *r = db_query(conn,
                           "UPDATE workflow_callbacks SET state = $3::text,"
                           " next_attempt_at = CASE WHEN $3::text = 'pending'"
                           "  THEN now() + make_interval(secs => $4::int) ELSE next_attempt_at END,"
                           " delivered_at = CASE WHEN $3::text = 'delivered' THEN now() END,"
                           " lease_until = NULL, last_error = $5::text"
                           " WHERE id = $1::uuid AND state = 'sending' AND attempts = $2::int",
                           5, params, err, errlen);
    if (!r)
        return -1;
    int applied = atoi(PQcmdTuples(r)) > 0;
    PQclear(r);
    return applied;
}

static size_t cb_on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    buf_t *b = userp;
    size_t n = size * nmemb;
    size_t room = b->max > b->len ? b->max - b->len : 0;
    /* Only the head is kept; the rest is read and dropped so the answer's
     * status still counts. */
    if (room > 0)
        (void)buf_append(b, data, n < room ? n : room);
    return n;
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
static void cb_snippet(buf_t *out, const buf_t *body)
{
    size_t n = body->len < CB_ERROR_SNIPPET ? body->len : CB_ERROR_SNIPPET;
    if (n == 0)
        return;
    (void)buf_puts(out, ": ");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body->data[i];
        (void)buf_putc(out, c >= 0x20 && c < 0x7f ? (char)c : ' ');
    }
}

/* POSTs one job. Returns its outcome and writes what went wrong (if
 * anything) into error. */
static cb_outcome_t cb_post(CURL *curl, const cfg_t *cfg, const cb_job_t *job, long *status,
                            buf_t *error)
{
    *status = 0;
    size_t len = strlen(job->payload);
    long long ts = (long long)time(NULL);
    char sig[72];
    if (cb_sign(cfg->workflow_callback_secret, ts, job->payload, len, sig) != 0) {
        (void)buf_puts(error, "cannot compute the signature");
        return CB_RETRY;
    }
    char h_ts[64], h_sig[96], h_id[96], h_ev[96];
    snprintf(h_ts, sizeof h_ts, "X-Crier-Timestamp: %lld", ts);
    snprintf(h_sig, sizeof h_sig, "X-Crier-Signature: %s", sig);
    snprintf(h_id, sizeof h_id, "X-Crier-Callback-Id: %s", job->id);
    snprintf(h_ev, sizeof h_ev, "X-Crier-Event: %s", job->event_type);
    /* "Expect:" stops curl from waiting for a 100 Continue on larger bodies. */
    const char *lines[] = {"Content-Type: application/json",          "Expect:", h_ts, h_sig, h_id,
                           cb_is_token(job->event_type) ? h_ev : NULL};
    struct curl_slist *headers = NULL;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!lines[i])
            continue;
        struct curl_slist *next = curl_slist_append(headers, lines[i]);
        if (!next) {
            curl_slist_free_all(headers);
            (void)buf_puts(error, "out of memory building the request");
            return CB_RETRY;
        }
        headers = next;
    }
    buf_t body;
    buf_init(&body, CB_RESPONSE_MAX);
    long connect_ms = cfg->callback_timeout_ms < 5000 ? cfg->callback_timeout_ms : 5000;

    curl_easy_reset(curl);
    CURLcode rc = CURLE_OK;
    /* Set one after another so the first failure is kept. */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_URL, cfg->workflow_callback_url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)cfg->callback_timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_POST, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDS, job->payload);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_USERAGENT, "crier/" CRIER_VERSION);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, cb_on_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(curl);
    int ok = rc == CURLE_OK;
    if (ok && curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status) != CURLE_OK)
        ok = 0;
    curl_slist_free_all(headers);

    cb_outcome_t outcome = cb_classify(ok, *status);
    if (!ok) {
        /* curl's generic text only: its detailed buffer may quote the URL. */
        (void)buf_printf(error, "no answer: %s", curl_easy_strerror(rc));
    } else if (outcome != CB_DELIVERED) {
        (void)buf_printf(error, "HTTP %ld", *status);
        cb_snippet(error, &body);
    }
    buf_free(&body);
    return outcome;
}

/* Sends one claimed job and records the outcome. */
static void cb_send(CURL *curl, const cfg_t *cfg, PGconn *conn, const cb_job_t *job)
{
    long status = 0;
    buf_t error;
    buf_init(&error, 512);
    cb_outcome_t outcome = cb_post(curl, cfg, job, &status, &error);
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
           outcome == CB_RETRY ? after : NULL, "error", error.len ? error.data : NULL, NULL);
    char err[512];
    int applied =
        cb_complete(conn, job, outcome, delay, error.len ? error.data : NULL, err, sizeof err);
    if (applied < 0)
        /* The row stays 'sending'; after its lease it is sent again. */
        log_error("callbacks", "complete_failed", "callback_id", job->id, "error", err, NULL);
    else if (applied == 0)
        log_warn("callbacks", "stale_completion", "callback_id", job->id, NULL);
    buf_free(&error);
}

static void *cb_thread(void *arg)
{
    cb_sender_t *s = arg;
    const cfg_t *cfg = s->app->cfg;
    char err[512];
    PGconn *conn = NULL;
    int told_idle = 0;
    long long last_rescue = 0;
    CURL *curl = curl_easy_init(); /* this thread's alone: easy handles are not shared */
    if (!curl) {
        log_kv(LOG_CRITICAL, "callbacks", "start_failed", "error", "cannot create a curl handle",
               NULL);
        return NULL;
    }
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
            if (!conn || db_exec(conn, "LISTEN " CB_CHANNEL, err, sizeof err) != 0) {
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
            if (cb_rescue(conn, cfg->callback_max_attempts, &rescued, err, sizeof err) != 0) {
                log_error("callbacks", "rescue_failed", "error", err, NULL);
            } else if (rescued > 0) {
                char n[16];
                snprintf(n, sizeof n, "%d", rescued);
                log_warn("callbacks", "leases_rescued", "count", n, NULL);
            }
        }
        cb_job_t job;
        int got = cb_claim(conn, lease, &job, err, sizeof err);
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
        cb_send(curl, cfg, conn, &job);
        cb_job_free(&job);
    }
    curl_easy_cleanup(curl);
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
    if (pthread_create(&s->thread, NULL, cb_thread, s) != 0) {
        snprintf(err, errlen, "cannot start the callback thread");
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
    if (s->started)
        pthread_join(s->thread, NULL);
    free(s);
}
