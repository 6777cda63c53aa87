/* Workflow callbacks: the signature a receiver recomputes, which answers are
 * retried, the retry schedule, and the outbox's lease (queue/cbqueue.h):
 * claimed once, fenced, rescued. */
#include "engine/callbacks.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "testdb.h"

#include "crypto/crypto.h"
#include "queue/cbqueue.h"

static testdb_t db;
static cry_keys_t keys; /* none loaded: the rows here are written in clear */

static int setup(void **state)
{
    (void)state;
    memset(&keys, 0, sizeof keys);
    return testdb_create(&db, 1);
}

static int teardown(void **state)
{
    (void)state;
    testdb_destroy(&db);
    return 0;
}

static int clear_outbox(void **state)
{
    (void)state;
    char err[256];
    return db_exec(db.conn, "DELETE FROM workflow_callbacks", err, sizeof err);
}

static void exec_ok(const char *sql)
{
    char err[512];
    if (db_exec(db.conn, sql, err, sizeof err) != 0)
        fail_msg("%s: %s", sql, err);
}

/* A due callback with a clear payload. */
static void outbox_add(char id[37])
{
    assert_int_equal(cry_uuid4(id), 0);
    const char *p[] = {id};
    char *v = testdb_scalar(db.conn,
                            "INSERT INTO workflow_callbacks (id, event_type, payload)"
                            " VALUES ($1::uuid, 'client_reply',"
                            "  jsonb_build_object('type', 'client_reply', 'text', 'hello'))"
                            " RETURNING id",
                            1, p);
    assert_non_null(v);
    free(v);
}

/* The whole row, to show that a statement changed nothing. */
static char *row_of(const char *id)
{
    const char *p[] = {id};
    char *v = testdb_scalar(db.conn,
                            "SELECT row_to_json(w)::text FROM workflow_callbacks w"
                            " WHERE id = $1::uuid",
                            1, p);
    assert_non_null(v);
    return v;
}

static char *state_of(const char *id)
{
    const char *p[] = {id};
    char *v = testdb_scalar(db.conn,
                            "SELECT state || '/' || attempts FROM workflow_callbacks"
                            " WHERE id = $1::uuid",
                            1, p);
    assert_non_null(v);
    return v;
}

/* Claims exactly one row and returns its attempt. */
static int claim_one(const char *id)
{
    cbqueue_job_t j[2];
    char err[256];
    int n = cbqueue_claim(db.conn, &keys, 60, 2, j, err, sizeof err);
    if (n < 0)
        fail_msg("claim: %s", err);
    assert_int_equal(n, 1);
    assert_string_equal(j[0].id, id);
    assert_string_equal(j[0].event_type, "client_reply");
    assert_non_null(strstr(j[0].payload, "hello"));
    int attempt = j[0].attempt;
    cbqueue_job_free(&j[0]);
    return attempt;
}

/* A sender whose lease ran out and whose row was taken over can neither
 * renew nor complete it, whatever the outcome; the new holder can. */
static void test_stale_sender_changes_nothing(void **state)
{
    (void)state;
    char id[37], err[256];
    outbox_add(id);
    assert_int_equal(claim_one(id), 1);
    cbqueue_job_t first = {.id = id, .attempt = 1};
    assert_int_equal(cbqueue_renew(db.conn, &first, 600, err, sizeof err), 1);
    cbqueue_job_t none[1];
    assert_int_equal(cbqueue_claim(db.conn, &keys, 60, 1, none, err, sizeof err), 0);

    exec_ok("UPDATE workflow_callbacks SET lease_until = now() - interval '1 second'");
    int rescued = 0;
    assert_int_equal(cbqueue_rescue(db.conn, 5, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 1);
    char *s = state_of(id);
    assert_string_equal(s, "pending/1");
    free(s);
    assert_int_equal(claim_one(id), 2);

    char *before = row_of(id);
    assert_int_equal(cbqueue_renew(db.conn, &first, 600, err, sizeof err), 0);
    const cbqueue_outcome_t outcomes[] = {CBQUEUE_DELIVERED, CBQUEUE_RETRY, CBQUEUE_FAILED};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        assert_int_equal(
            cbqueue_complete(db.conn, &first, outcomes[i], 10, "late", err, sizeof err), 0);
    char *after = row_of(id);
    assert_string_equal(after, before);
    free(before);
    free(after);

    /* the current attempt lands: delivered, and only the ids stay */
    cbqueue_job_t second = {.id = id, .attempt = 2};
    assert_int_equal(
        cbqueue_complete(db.conn, &second, CBQUEUE_DELIVERED, 0, NULL, err, sizeof err), 1);
    s = state_of(id);
    assert_string_equal(s, "delivered/2");
    free(s);
    const char *p[] = {id};
    char *kept = testdb_scalar(db.conn,
                               "SELECT (payload ? 'text')::text || '|' ||"
                               " (lease_until IS NULL)::text || '|' ||"
                               " (delivered_at IS NOT NULL)::text"
                               " FROM workflow_callbacks WHERE id = $1::uuid",
                               1, p);
    assert_string_equal(kept, "false|true|true");
    free(kept);
    /* completing again (a duplicate) changes nothing */
    assert_int_equal(
        cbqueue_complete(db.conn, &second, CBQUEUE_FAILED, 0, "again", err, sizeof err), 0);
    s = state_of(id);
    assert_string_equal(s, "delivered/2");
    free(s);
}

/* A retry waits its delay; a rescued row out of attempts fails; a second
 * rescuer does nothing while the first holds the lock. */
static void test_retry_and_rescue(void **state)
{
    (void)state;
    char a[37], b[37], err[256];
    outbox_add(a);
    assert_int_equal(claim_one(a), 1);
    cbqueue_job_t ja = {.id = a, .attempt = 1};
    assert_int_equal(
        cbqueue_complete(db.conn, &ja, CBQUEUE_RETRY, 300, "HTTP 503", err, sizeof err), 1);
    const char *pa[] = {a};
    char *due = testdb_scalar(db.conn,
                              "SELECT state || '|' || (next_attempt_at > now() + interval '250 s')"
                              " || '|' || last_error FROM workflow_callbacks WHERE id = $1::uuid",
                              1, pa);
    assert_string_equal(due, "pending|true|HTTP 503");
    free(due);
    cbqueue_job_t none[1];
    assert_int_equal(cbqueue_claim(db.conn, &keys, 60, 1, none, err, sizeof err), 0);

    outbox_add(b);
    assert_int_equal(claim_one(b), 1);
    exec_ok("UPDATE workflow_callbacks SET lease_until = now() - interval '1 second',"
            " attempts = 3 WHERE state = 'sending'");
    PGconn *other = db_connect(db.url, err, sizeof err);
    assert_non_null(other);
    assert_int_equal(db_exec(other, "BEGIN", err, sizeof err), 0);
    char *got = testdb_scalar(other, "SELECT pg_try_advisory_xact_lock(7165916605393332)", 0, NULL);
    assert_string_equal(got, "t");
    free(got);
    int rescued = -1;
    assert_int_equal(cbqueue_rescue(db.conn, 3, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 0);
    assert_int_equal(db_exec(other, "COMMIT", err, sizeof err), 0);
    PQfinish(other);
    assert_int_equal(cbqueue_rescue(db.conn, 3, &rescued, err, sizeof err), 0);
    assert_int_equal(rescued, 1);
    char *s = state_of(b);
    assert_string_equal(s, "failed/3");
    free(s);
}

static void test_sign_vectors(void **state)
{
    (void)state;
    char sig[72];
    /* Expected values computed independently: HMAC-SHA256(key, "ts.body"). */
    const char *body = "{\"a\":1}";
    assert_int_equal(cb_sign("whsec-test-key", 1700000000LL, body, strlen(body), sig), 0);
    assert_string_equal(sig,
                        "sha256=9a214c6d63b230a79e500518445176f01ae5eb75b3e0769f80d7adc4943415f3");
    assert_int_equal(cb_sign("k", 0, "", 0, sig), 0);
    assert_string_equal(sig,
                        "sha256=6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7");
}

static void test_sign_binds_every_part(void **state)
{
    (void)state;
    char a[72], b[72];
    const char *body = "{\"text\":\"hello\"}";
    assert_int_equal(cb_sign("secret-one", 1700000000LL, body, strlen(body), a), 0);
    assert_int_equal(cb_sign("secret-two", 1700000000LL, body, strlen(body), b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(cb_sign("secret-one", 1700000001LL, body, strlen(body), b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(cb_sign("secret-one", 1700000000LL, body, strlen(body) - 1, b), 0);
    assert_string_not_equal(a, b);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(cb_classify(1, 200), CB_DELIVERED);
    assert_int_equal(cb_classify(1, 204), CB_DELIVERED);
    assert_int_equal(cb_classify(1, 299), CB_DELIVERED);
    assert_int_equal(cb_classify(0, 0), CB_RETRY);
    assert_int_equal(cb_classify(1, 500), CB_RETRY);
    assert_int_equal(cb_classify(1, 503), CB_RETRY);
    assert_int_equal(cb_classify(1, 408), CB_RETRY);
    assert_int_equal(cb_classify(1, 429), CB_RETRY);
    assert_int_equal(cb_classify(1, 400), CB_FAILED);
    assert_int_equal(cb_classify(1, 401), CB_FAILED);
    assert_int_equal(cb_classify(1, 404), CB_FAILED);
    assert_int_equal(cb_classify(1, 301), CB_FAILED);
}

/* CRIER_CALLBACK_EVENTS: names checked, "all" expanded, and without a URL
 * only the client's answers kept. */
static void test_events_setting(void **state)
{
    (void)state;
    char out[256], err[256];
    assert_int_equal(cb_events_setting("all", 1, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "sent,delivered,opened,clicked,failed,skipped,bounced,client_reply,"
                             "client_action");
    assert_int_equal(cb_events_setting("all", 0, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "client_reply,client_action");
    assert_int_equal(cb_events_setting("failed,sent", 1, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "sent,failed");
    assert_int_equal(cb_events_setting("failed,sent", 0, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "");
    assert_int_equal(cb_events_setting("none", 1, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "");
    assert_int_equal(cb_events_setting("sent,deliverd", 1, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"deliverd\""));
    assert_int_equal(cb_events_setting("sent,,failed", 1, out, sizeof out, err, sizeof err), -1);
    assert_int_equal(cb_event_wanted("sent,failed", "failed"), 1);
    assert_int_equal(cb_event_wanted("sent,failed", "fail"), 0);
    assert_int_equal(cb_event_wanted("all", "client_reply"), 1);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(cb_backoff(1, 0), 10);
    assert_int_equal(cb_backoff(2, 0), 60);
    assert_int_equal(cb_backoff(3, 0), 300);
    assert_int_equal(cb_backoff(4, 0), 1800);
    assert_int_equal(cb_backoff(9, 0), 1800);
    assert_int_equal(cb_backoff(0, 0), 10);
    assert_int_equal(cb_backoff(3, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_vectors),
        cmocka_unit_test(test_sign_binds_every_part),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_events_setting),
        cmocka_unit_test_setup(test_stale_sender_changes_nothing, clear_outbox),
        cmocka_unit_test_setup(test_retry_and_rescue, clear_outbox),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
