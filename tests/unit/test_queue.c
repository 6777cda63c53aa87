/* queue: claims in order, never twice, fenced completion, rescue, wake-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"

#include "crypto/crypto.h"
#include "queue/queue.h"
#include "store/store.h"
#include "util/base64.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static testdb_t db;
static cry_keys_t keys;
static char client_id[37];

static void exec_ok(const char *sql)
{
    char err[512];
    if (db_exec(db.conn, sql, err, sizeof err) != 0)
        fail_msg("%s: %s", sql, err);
}

/* Each test starts from an empty queue. */
static int clear_queue(void **state)
{
    (void)state;
    char err[256];
    return db_exec(db.conn, "DELETE FROM communications", err, sizeof err);
}

static int setup(void **state)
{
    (void)state;
    if (testdb_create(&db, 1) != 0)
        return -1;
    unsigned char raw[32];
    memset(raw, 9, sizeof raw);
    buf_t b;
    buf_init(&b, 128);
    char err[256];
    if (b64_encode(&b, raw, sizeof raw, 0) != 0 || cry_keys_load(&keys, b.data, err, sizeof err))
        return -1;
    buf_free(&b);
    store_client_t c;
    memset(&c, 0, sizeof c);
    if (cry_uuid4(client_id) != 0)
        return -1;
    snprintf(c.id, sizeof c.id, "%s", client_id);
    c.consent[CH_EMAIL] = c.consent[CH_SMS] = c.consent[CH_WHATSAPP] = -1;
    return store_client_upsert(db.conn, &keys, &c, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    testdb_destroy(&db);
    return 0;
}

/* Enqueues one communication due at send_at with the given priority. */
static void enqueue(char id[37], int priority, double send_at, const char *status)
{
    char plan[37];
    assert_int_equal(cry_uuid4(plan), 0);
    store_comm_new_t c;
    memset(&c, 0, sizeof c);
    assert_int_equal(cry_uuid4(c.id), 0);
    c.plan_id = plan;
    c.client_id = client_id;
    c.message_type = "welcome";
    c.urgency = "normal";
    c.context_json = "{\"n\": 1}";
    c.request_hash = "h";
    c.status = status;
    c.channel = "email";
    c.fallback_json = "[\"sms\"]";
    c.send_at = send_at;
    c.priority = priority;
    store_insert_outcome_t out;
    char *replay = NULL;
    char err[256];
    if (store_comm_insert(db.conn, &c, &out, &replay, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    assert_int_equal(out, STORE_INSERTED);
    if (id)
        memcpy(id, c.id, 37);
}

static char *status_of(const char *id)
{
    const char *p[] = {id};
    char *v = testdb_scalar(db.conn,
                            "SELECT status || '/' || attempts FROM communications"
                            " WHERE id = $1::uuid",
                            1, p);
    assert_non_null(v);
    return v;
}

static void test_claim_order_and_due(void **state)
{
    (void)state;
    double now = (double)time(NULL);
    char low[37], urgent[37], mid[37], later[37];
    enqueue(low, 3, now - 10, "queued");
    enqueue(urgent, 0, now - 1, "queued");
    enqueue(mid, 1, now - 5, "queued");
    enqueue(later, 0, now + 3600, "pending");

    queue_job_t jobs[8];
    int n = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 1, 60, jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].id, urgent);
    assert_int_equal(jobs[0].attempt, 1);
    assert_string_equal(jobs[0].channel, "email");
    assert_string_equal(jobs[0].message_type, "welcome");
    assert_string_equal(jobs[0].client_id, client_id);
    assert_non_null(strstr(jobs[0].fallback_json, "sms"));
    assert_non_null(strstr(jobs[0].context_json, "\"n\""));
    queue_job_free(&jobs[0]);

    assert_int_equal(queue_claim(db.conn, 8, 60, jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 2); /* the future row is not due */
    int saw_mid = 0, saw_low = 0;
    for (int i = 0; i < n; i++) {
        saw_mid |= strcmp(jobs[i].id, mid) == 0;
        saw_low |= strcmp(jobs[i].id, low) == 0;
        queue_job_free(&jobs[i]);
    }
    assert_true(saw_mid && saw_low);
    char *s = status_of(later);
    assert_string_equal(s, "pending/0");
    free(s);
    s = status_of(urgent);
    assert_string_equal(s, "sending/1");
    free(s);

    assert_int_equal(queue_claim(db.conn, 8, 60, jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
}

#define CONC_ROWS    200
#define CONC_THREADS 4

typedef struct claimer {
    const char *url;
    char ids[CONC_ROWS][37];
    int n;
    int rc;
    char err[256];
} claimer_t;

static void *claim_all(void *arg)
{
    claimer_t *c = arg;
    PGconn *conn = db_connect(c->url, c->err, sizeof c->err);
    if (!conn) {
        c->rc = -1;
        return NULL;
    }
    queue_job_t jobs[7];
    /* bounded: 200 rows can never need more rounds than this */
    for (int round = 0; round < 2 * CONC_ROWS; round++) {
        int n = 0;
        if (queue_claim(conn, 7, 60, jobs, &n, c->err, sizeof c->err) != 0) {
            c->rc = -1;
            break;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            if (c->n < CONC_ROWS)
                memcpy(c->ids[c->n], jobs[i].id, 37);
            c->n++;
            queue_job_free(&jobs[i]);
        }
    }
    PQfinish(conn);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_concurrent_claims_disjoint(void **state)
{
    (void)state;
    double now = (double)time(NULL) - 1;
    exec_ok("BEGIN");
    for (int i = 0; i < CONC_ROWS; i++)
        enqueue(NULL, i % 4, now, "queued");
    exec_ok("COMMIT");

    static claimer_t cl[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].url = db.url;
        assert_int_equal(pthread_create(&th[i], NULL, claim_all, &cl[i]), 0);
    }
    static char all[CONC_ROWS * CONC_THREADS][37];
    int total = 0;
    for (int i = 0; i < CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (cl[i].rc != 0)
            fail_msg("claimer %d: %s", i, cl[i].err);
        assert_true(cl[i].n <= CONC_ROWS);
        for (int k = 0; k < cl[i].n; k++)
            memcpy(all[total++], cl[i].ids[k], 37);
    }
    assert_int_equal(total, CONC_ROWS);
    qsort(all, (size_t)total, 37, cmp_id);
    for (int i = 1; i < total; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("row %s claimed twice", all[i]);
    char *n = testdb_scalar(db.conn,
                            "SELECT count(*) FROM communications WHERE status = 'sending'"
                            " AND attempts = 1",
                            0, NULL);
    assert_int_equal(atoi(n), CONC_ROWS);
    free(n);
}

static void test_fenced_completion(void **state)
{
    (void)state;
    char id[37];
    enqueue(id, 0, (double)time(NULL) - 1, "queued");
    queue_job_t j[1];
    int n = 0, applied = 0, rescued = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 1, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(j[0].attempt, 1);
    queue_job_free(&j[0]);

    /* the first worker stalls; its lease runs out and another takes over */
    exec_ok("UPDATE communications SET lease_until = now() - interval '1 second'");
    assert_int_equal(queue_rescue(db.conn, 5, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 1);
    assert_int_equal(queue_claim(db.conn, 1, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(j[0].attempt, 2);
    queue_job_free(&j[0]);

    /* the stale worker's outcome is refused */
    queue_result_t stale = {.id = id,
                            .attempt = 1,
                            .outcome = QUEUE_FAILED,
                            .channel = "email",
                            .error_category = "permanent",
                            .error_message = "550 rejected",
                            .provider_code = 550};
    if (queue_complete(db.conn, &keys, &stale, 1, &applied, err, sizeof err) != 0)
        fail_msg("complete: %s", err);
    assert_int_equal(applied, 0);
    char *s = status_of(id);
    assert_string_equal(s, "sending/2");
    free(s);

    /* the current one lands, with its events */
    queue_result_t ok = {.id = id,
                         .attempt = 2,
                         .outcome = QUEUE_DELIVERED,
                         .channel = "email",
                         .subject = "Welcome",
                         .provider_message_id = "msg-1",
                         .detail_json = "{\"smtp\": 250}"};
    assert_int_equal(queue_complete(db.conn, &keys, &ok, 1, &applied, err, sizeof err), 0);
    assert_int_equal(applied, 1);
    s = status_of(id);
    assert_string_equal(s, "delivered/2");
    free(s);
    const char *p[] = {id};
    char *ev = testdb_scalar(db.conn,
                             "SELECT string_agg(event_type, ',' ORDER BY event_timestamp, id)"
                             " FROM delivery_events WHERE communication_id = $1::uuid",
                             1, p);
    assert_string_equal(ev, "queued,lease_expired,sent,delivered");
    free(ev);
    char *row = testdb_scalar(db.conn,
                              "SELECT provider_message_id || '|' || (subject IS NULL) || '|' ||"
                              " (sent_at IS NOT NULL) || '|' || (delivered_at IS NOT NULL) ||"
                              " '|' || (lease_until IS NULL)"
                              " FROM communications WHERE id = $1::uuid",
                              1, p);
    assert_string_equal(row, "msg-1|true|true|true|true");
    free(row);
    /* the subject is stored only encrypted, bound to this row */
    char *tok =
        testdb_scalar(db.conn, "SELECT subject_enc FROM communications WHERE id = $1::uuid", 1, p);
    assert_non_null(tok);
    buf_t plain;
    buf_init(&plain, 1024);
    const cry_place_t at = {"communications", "subject", id};
    assert_int_equal(cry_decrypt(&keys, &at, tok, &plain), 0);
    assert_string_equal(plain.data, "Welcome");
    buf_free(&plain);
    free(tok);

    /* completing again (a duplicate) changes nothing */
    assert_int_equal(queue_complete(db.conn, &keys, &ok, 1, &applied, err, sizeof err), 0);
    assert_int_equal(applied, 0);
}

/* The whole row and its events, to show that a statement changed nothing. */
static char *snapshot(const char *id)
{
    const char *p[] = {id};
    char *v = testdb_scalar(db.conn,
                            "SELECT row_to_json(c)::text || (SELECT count(*) FROM delivery_events"
                            "  WHERE communication_id = c.id)::text"
                            " FROM communications c WHERE id = $1::uuid",
                            1, p);
    assert_non_null(v);
    return v;
}

/* A worker whose lease ran out and whose row was taken over can neither
 * renew nor complete it, whatever the outcome; the new holder can. */
static void test_stale_worker_changes_nothing(void **state)
{
    (void)state;
    char id[37];
    enqueue(id, 0, (double)time(NULL) - 1, "queued");
    queue_job_t j[1];
    int n = 0, applied = 0, rescued = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 1, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    queue_job_free(&j[0]);
    /* the holder may extend its lease */
    exec_ok("UPDATE communications SET lease_until = now() + interval '5 seconds'");
    assert_int_equal(queue_renew(db.conn, id, 1, 600, err, sizeof err), 1);
    const char *p[] = {id};
    char *left = testdb_scalar(db.conn,
                               "SELECT lease_until > now() + interval '500 seconds'"
                               " FROM communications WHERE id = $1::uuid",
                               1, p);
    assert_string_equal(left, "t");
    free(left);

    exec_ok("UPDATE communications SET lease_until = now() - interval '1 second'");
    assert_int_equal(queue_rescue(db.conn, 5, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 1);
    assert_int_equal(queue_claim(db.conn, 1, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(j[0].attempt, 2);
    queue_job_free(&j[0]);

    char *before = snapshot(id);
    assert_int_equal(queue_renew(db.conn, id, 1, 600, err, sizeof err), 0);
    const queue_outcome_t outcomes[] = {QUEUE_SENT, QUEUE_DELIVERED, QUEUE_RETRY, QUEUE_FAILED,
                                        QUEUE_DEFER};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        queue_result_t stale = {.id = id,
                                .attempt = 1,
                                .outcome = outcomes[i],
                                .channel = "email",
                                .subject = "Late",
                                .retry_at = (double)time(NULL) + 60,
                                .error_category = "transient",
                                .error_message = "late"};
        assert_int_equal(queue_complete(db.conn, &keys, &stale, 1, &applied, err, sizeof err), 0);
        assert_int_equal(applied, 0);
    }
    char *after = snapshot(id);
    assert_string_equal(after, before);
    free(before);
    free(after);

    /* the new holder's lease and outcome land */
    assert_int_equal(queue_renew(db.conn, id, 2, 600, err, sizeof err), 1);
    queue_result_t ok = {.id = id, .attempt = 2, .outcome = QUEUE_FAILED, .channel = "email"};
    assert_int_equal(queue_complete(db.conn, &keys, &ok, 1, &applied, err, sizeof err), 0);
    assert_int_equal(applied, 1);
    char *s = status_of(id);
    assert_string_equal(s, "failed/2");
    free(s);
    /* and once finished, nobody holds a lease to renew */
    assert_int_equal(queue_renew(db.conn, id, 2, 600, err, sizeof err), 0);
}

static void test_retry_and_batch(void **state)
{
    (void)state;
    char a[37], b[37];
    double now = (double)time(NULL);
    enqueue(a, 0, now - 1, "queued");
    enqueue(b, 0, now - 1, "queued");
    queue_job_t j[2];
    int n = 0, applied = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 2, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    queue_job_free(&j[0]);
    queue_job_free(&j[1]);
    queue_result_t r[2] = {
        {.id = a,
         .attempt = 1,
         .outcome = QUEUE_RETRY,
         .retry_at = now + 300,
         .channel = "email",
         .error_category = "transient",
         .error_message = "421 try later",
         .provider_code = 421},
        {.id = b,
         .attempt = 1,
         .outcome = QUEUE_SENT,
         .channel = "email",
         .provider_message_id = "m-2"},
    };
    assert_int_equal(queue_complete(db.conn, &keys, r, 2, &applied, err, sizeof err), 0);
    assert_int_equal(applied, 2);
    char *s = status_of(a);
    assert_string_equal(s, "queued/1");
    free(s);
    s = status_of(b);
    assert_string_equal(s, "sent/1");
    free(s);
    char nowtxt[32];
    snprintf(nowtxt, sizeof nowtxt, "%.0f", now);
    const char *p2[] = {a, nowtxt};
    char *v =
        testdb_scalar(db.conn,
                      "SELECT (round(extract(epoch FROM next_attempt_at))::bigint - $2::bigint)"
                      " || '|' || error_category || '|' || provider_code"
                      " FROM communications WHERE id = $1::uuid",
                      2, p2);
    assert_string_equal(v, "300|transient|421");
    free(v);

    /* not due yet: a claim leaves it alone */
    assert_int_equal(queue_claim(db.conn, 2, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
}

static void test_odd_result_fields(void **state)
{
    (void)state;
    char a[37];
    enqueue(a, 0, (double)time(NULL) - 1, "queued");
    queue_job_t j[1];
    int n = 0, applied = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 1, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    queue_job_free(&j[0]);
    /* an unknown category and a detail that is not JSON must not poison
     * the batch: the outcome still lands */
    queue_result_t r = {.id = a,
                        .attempt = 1,
                        .outcome = QUEUE_FAILED,
                        .channel = "email",
                        .error_category = "unknown",
                        .error_message = "odd",
                        .detail_json = "<html>bad gateway</html>"};
    if (queue_complete(db.conn, &keys, &r, 1, &applied, err, sizeof err) != 0)
        fail_msg("complete: %s", err);
    assert_int_equal(applied, 1);
    char *s = status_of(a);
    assert_string_equal(s, "failed/1");
    free(s);
    const char *p[] = {a};
    char *v = testdb_scalar(db.conn,
                            "SELECT COALESCE(error_category, 'null') || '|' || error_message"
                            " FROM communications WHERE id = $1::uuid",
                            1, p);
    assert_string_equal(v, "null|odd");
    free(v);
}

/* "event_type|delivery_status|channel|error_details" of a row's last event. */
static char *last_event(const char *id)
{
    const char *p[] = {id};
    char *v = testdb_scalar(db.conn,
                            "SELECT event_type || '|' || delivery_status || '|' || channel || '|'"
                            " || COALESCE(error_details, '') || '|'"
                            " || COALESCE(provider_response->>'reason', '')"
                            " FROM delivery_events WHERE communication_id = $1::uuid"
                            " ORDER BY id DESC LIMIT 1",
                            1, p);
    assert_non_null(v);
    return v;
}

/* A hard bounce ends "bounced" or moves on with a "bounced" event; a
 * channel skipped moves on with a "skipped" event, or ends "skipped" with
 * its reason and no error. */
static void test_bounced_and_skipped(void **state)
{
    (void)state;
    double now = (double)time(NULL);
    char a[37], b[37], c[37], d[37];
    enqueue(a, 0, now - 1, "queued");
    enqueue(b, 0, now - 1, "queued");
    enqueue(c, 0, now - 1, "queued");
    enqueue(d, 0, now - 1, "queued");
    queue_job_t j[4];
    int n = 0, applied = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 4, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++)
        queue_job_free(&j[i]);
    queue_result_t r[4] = {
        {.id = a,
         .attempt = 1,
         .outcome = QUEUE_BOUNCED,
         .channel = "email",
         .error_category = "permanent",
         .error_message = "smtp 550 5.1.1: No such user",
         .provider_code = 550},
        {.id = b,
         .attempt = 1,
         .outcome = QUEUE_RETRY,
         .retry_at = now,
         .channel = "email",
         .error_category = "permanent",
         .error_message = "smtp 550 5.1.1: No such user",
         .provider_code = 550,
         .next_channel = "sms",
         .next_fallback_json = "[]",
         .bounced = 1},
        {.id = c,
         .attempt = 1,
         .outcome = QUEUE_RETRY,
         .retry_at = now,
         .channel = "email",
         .next_channel = "sms",
         .next_fallback_json = "[]",
         .skip_reason = "suppressed"},
        {.id = d,
         .attempt = 1,
         .outcome = QUEUE_SKIPPED,
         .channel = "email",
         .skip_reason = "suppressed"},
    };
    if (queue_complete(db.conn, &keys, r, 4, &applied, err, sizeof err) != 0)
        fail_msg("complete: %s", err);
    assert_int_equal(applied, 4);
    static const char *const rows =
        "SELECT status || '|' || COALESCE(channel, '') || '|' || COALESCE(skip_reason, '')"
        " || '|' || COALESCE(error_category, '') || '|' || COALESCE(provider_code::text, '')"
        " || '|' || (failed_at IS NOT NULL)::text FROM communications WHERE id = $1::uuid";
    const char *pa[] = {a}, *pb[] = {b}, *pc[] = {c}, *pd[] = {d};
    char *v = testdb_scalar(db.conn, rows, 1, pa);
    assert_string_equal(v, "bounced|email||permanent|550|true");
    free(v);
    v = testdb_scalar(db.conn, rows, 1, pb);
    assert_string_equal(v, "queued|sms||permanent|550|false");
    free(v);
    v = testdb_scalar(db.conn, rows, 1, pc);
    assert_string_equal(v, "queued|sms||||false");
    free(v);
    v = testdb_scalar(db.conn, rows, 1, pd);
    assert_string_equal(v, "skipped|email|suppressed|||false");
    free(v);
    v = last_event(a);
    assert_string_equal(v, "bounced|bounced|email|permanent: smtp 550 5.1.1: No such user|");
    free(v);
    v = last_event(b);
    assert_string_equal(v, "bounced|queued|email|permanent: smtp 550 5.1.1: No such user|");
    free(v);
    v = last_event(c);
    assert_string_equal(v, "skipped|queued|email|suppressed|suppressed");
    free(v);
    v = last_event(d);
    assert_string_equal(v, "skipped|skipped|email|suppressed|suppressed");
    free(v);
    /* the two that moved on are due on SMS at once, its attempts from 1 */
    assert_int_equal(queue_claim(db.conn, 4, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        assert_string_equal(j[i].channel, "sms");
        assert_int_equal(j[i].channel_attempt, 1);
        queue_job_free(&j[i]);
    }
}

static void test_rescue_max_attempts(void **state)
{
    (void)state;
    char a[37], b[37], live[37];
    double now = (double)time(NULL) - 1;
    enqueue(a, 0, now, "queued");
    enqueue(b, 0, now, "queued");
    enqueue(live, 0, now, "queued");
    queue_job_t j[3];
    int n = 0, rescued = 0;
    char err[256];
    assert_int_equal(queue_claim(db.conn, 3, 60, j, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        queue_job_free(&j[i]);
    const char *pa[] = {a}, *pb[] = {b};
    char *x = testdb_scalar(db.conn,
                            "UPDATE communications SET lease_until = now() - interval '5 seconds'"
                            " WHERE id = $1::uuid RETURNING id",
                            1, pa);
    free(x);
    x = testdb_scalar(db.conn,
                      "UPDATE communications SET lease_until = now() - interval '5 seconds',"
                      " attempts = 3 WHERE id = $1::uuid RETURNING id",
                      1, pb);
    free(x);
    assert_int_equal(queue_rescue(db.conn, 3, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 2);
    char *s = status_of(a);
    assert_string_equal(s, "queued/1");
    free(s);
    s = status_of(b);
    assert_string_equal(s, "failed/3");
    free(s);
    s = status_of(live); /* lease still running: untouched */
    assert_string_equal(s, "sending/1");
    free(s);
    assert_int_equal(queue_rescue(db.conn, 3, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 0);

    /* while another instance holds the rescue lock, this one does nothing */
    PGconn *other = db_connect(db.url, err, sizeof err);
    assert_non_null(other);
    x = testdb_scalar(db.conn,
                      "UPDATE communications SET lease_until = now() - interval '5 seconds'"
                      " WHERE status = 'sending' RETURNING id",
                      0, NULL);
    free(x);
    assert_int_equal(db_exec(other, "BEGIN", err, sizeof err), 0);
    char *got = testdb_scalar(other, "SELECT pg_try_advisory_xact_lock(7165916605393331)", 0, NULL);
    assert_string_equal(got, "t");
    free(got);
    assert_int_equal(queue_rescue(db.conn, 3, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 0);
    assert_int_equal(db_exec(other, "COMMIT", err, sizeof err), 0);
    assert_int_equal(queue_rescue(db.conn, 3, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 1);
    PQfinish(other);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct notifier {
    const char *url;
    int rc;
} notifier_t;

static void *notify_later(void *arg)
{
    notifier_t *nf = arg;
    char err[256];
    PGconn *c = db_connect(nf->url, err, sizeof err);
    if (!c) {
        nf->rc = -1;
        return NULL;
    }
    struct timespec d = {0, 200 * 1000 * 1000};
    nanosleep(&d, NULL);
    nf->rc = queue_notify(c, err, sizeof err);
    PQfinish(c);
    return NULL;
}

static void test_listen_notify(void **state)
{
    (void)state;
    char err[256];
    PGconn *listener = db_connect(db.url, err, sizeof err);
    assert_non_null(listener);
    assert_int_equal(queue_listen(listener, err, sizeof err), 0);

    double t0 = mono_s();
    assert_int_equal(queue_wait(listener, 150), 0); /* nothing sent: times out */
    double waited = mono_s() - t0;
    assert_true(waited >= 0.14 && waited < 1.0);

    notifier_t nf = {.url = db.url, .rc = -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, notify_later, &nf), 0);
    t0 = mono_s();
    int rc = queue_wait(listener, 5000);
    double took = mono_s() - t0;
    pthread_join(th, NULL);
    assert_int_equal(nf.rc, 0);
    assert_int_equal(rc, 1);
    assert_true(took < 1.0);

    /* a notification inside a transaction arrives only at commit */
    PGconn *tx = db_connect(db.url, err, sizeof err);
    assert_non_null(tx);
    assert_int_equal(db_exec(tx, "BEGIN", err, sizeof err), 0);
    assert_int_equal(queue_notify(tx, err, sizeof err), 0);
    assert_int_equal(queue_wait(listener, 200), 0);
    assert_int_equal(db_exec(tx, "COMMIT", err, sizeof err), 0);
    assert_int_equal(queue_wait(listener, 2000), 1);
    PQfinish(tx);

    /* a broken connection is reported, not mistaken for a timeout */
    char pid[32];
    snprintf(pid, sizeof pid, "%d", PQbackendPID(listener));
    const char *pp[] = {pid};
    char *k = testdb_scalar(db.conn, "SELECT pg_terminate_backend($1::int)", 1, pp);
    assert_string_equal(k, "t");
    free(k);
    assert_int_equal(queue_wait(listener, 2000), -1);
    assert_int_equal(db_ensure(listener), 0); /* and db_ensure brings it back */
    assert_int_equal(queue_listen(listener, err, sizeof err), 0);
    PQfinish(listener);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_claim_order_and_due, clear_queue),
        cmocka_unit_test_setup(test_concurrent_claims_disjoint, clear_queue),
        cmocka_unit_test_setup(test_fenced_completion, clear_queue),
        cmocka_unit_test_setup(test_stale_worker_changes_nothing, clear_queue),
        cmocka_unit_test_setup(test_retry_and_batch, clear_queue),
        cmocka_unit_test_setup(test_odd_result_fields, clear_queue),
        cmocka_unit_test_setup(test_bounced_and_skipped, clear_queue),
        cmocka_unit_test_setup(test_rescue_max_attempts, clear_queue),
        cmocka_unit_test(test_listen_notify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
