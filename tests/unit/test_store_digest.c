/* store: digests — joining and opening them, what the rules see pending,
 * members, and members following their digest's fenced outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"

#include "crypto/crypto.h"
#include "queue/queue.h"
#include "policy/apply.h"
#include "store/store.h"
#include "util/base64.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static testdb_t db;
static cry_keys_t keys;

static int setup(void **state)
{
    (void)state;
    if (testdb_create(&db, 1) != 0)
        return -1;
    unsigned char raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)(i * 5 + 1);
    buf_t b;
    buf_init(&b, 128);
    char err[128];
    int rc = b64_encode(&b, raw, sizeof raw, 0) == 0 &&
                     cry_keys_load(&keys, b.data, err, sizeof err) == 0
                 ? 0
                 : -1;
    buf_free(&b);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    testdb_destroy(&db);
    return 0;
}

/* The first column of the first row (owned by the caller). */
static char *scalar(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    char *v = testdb_scalar(db.conn, sql, p1 ? 1 : 0, params);
    assert_non_null(v);
    return v;
}

static void expect_scalar(const char *sql, const char *p1, const char *want)
{
    char *v = scalar(sql, p1);
    if (strcmp(v, want) != 0) {
        char got[256];
        snprintf(got, sizeof got, "%s", v);
        free(v);
        fail_msg("%s -> '%s', expected '%s'", sql, got, want);
    }
    free(v);
}

static void new_client(char id[37])
{
    assert_int_equal(cry_uuid4(id), 0);
    store_client_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%s", id);
    c.name = (char *)"Lena";
    c.email = (char *)"lena@example.com";
    c.consent[CH_EMAIL] = c.consent[CH_SMS] = c.consent[CH_WHATSAPP] = -1;
    char err[256];
    if (store_client_upsert(db.conn, &keys, &c, err, sizeof err) != 0)
        fail_msg("upsert: %s", err);
}

static void fill_join(store_digest_join_t *j, const char *client, const char *plan, const char *key)
{
    memset(j, 0, sizeof *j);
    j->client_id = client;
    j->plan_id = plan;
    j->batch_key = key;
    j->channel = "email";
    j->window_seconds = 300;
    j->max_size = 3;
    j->send_at = (double)time(NULL);
    j->due = apply_digest_due;
    assert_int_equal(cry_uuid4(j->digest_id), 0);
}

static void join(PGconn *conn, store_digest_join_t *j)
{
    char err[256];
    if (store_digest_join(conn, j, err, sizeof err) != 0)
        fail_msg("join: %s", err);
}

/* A member row of digest_id, inserted as the intake does. */
static void add_member(const char *client, const char *plan, const char *digest_id,
                       const char *action, char id_out[37])
{
    store_comm_new_t c;
    memset(&c, 0, sizeof c);
    assert_int_equal(cry_uuid4(c.id), 0);
    char ctx[128];
    snprintf(ctx, sizeof ctx, "{\"pending_action\": \"%s\"}", action);
    c.plan_id = plan;
    c.client_id = client;
    c.message_type = "reminder";
    c.urgency = "low";
    c.context_json = ctx;
    c.request_hash = "h";
    c.status = "batched";
    c.channel = "email";
    c.fallback_json = "[]";
    c.send_at = (double)time(NULL);
    c.priority = 3;
    c.decision_json = "{}";
    c.rules_version = "v";
    c.response_json = "{}";
    c.batch_id = digest_id;
    store_insert_outcome_t out;
    char *replay = NULL;
    char err[256];
    if (store_comm_insert(db.conn, &c, &out, &replay, err, sizeof err) != 0)
        fail_msg("insert member: %s", err);
    assert_int_equal(out, STORE_INSERTED);
    free(replay);
    snprintf(id_out, 37, "%s", c.id);
}

static void expect_pending(const char *client, int count)
{
    int n = -1;
    double oldest = -1;
    char err[256];
    assert_int_equal(store_digest_pending(db.conn, client, &n, &oldest, err, sizeof err), 0);
    assert_int_equal(n, count);
    if (count > 0)
        assert_true(oldest > (double)time(NULL) - 60 && oldest <= (double)time(NULL) + 1);
    else
        assert_true(oldest == 0);
    /* the set-based load of the intake says the same */
    const char *ids[] = {client};
    store_client_facts_t f;
    assert_int_equal(store_client_facts_load(db.conn, ids, 1, &f, err, sizeof err), 0);
    assert_int_equal(f.found, 1);
    assert_int_equal(f.pending_count, count);
    assert_true(f.pending_oldest_at == oldest);
    store_client_facts_free(&f, 1);
}

static void test_join_fills_and_reopens(void **state)
{
    (void)state;
    char client[37], plan[37], m[4][37];
    new_client(client);
    assert_int_equal(cry_uuid4(plan), 0);
    expect_pending(client, 0);

    store_digest_join_t j1, j2, j3, j4;
    fill_join(&j1, client, plan, "low:2026-06-04");
    join(db.conn, &j1);
    assert_int_equal(j1.opened, 1);
    assert_int_equal(j1.size, 1);
    add_member(client, plan, j1.digest_id, "pick a venue", m[0]);
    expect_scalar("SELECT status || ' ' || batch_size || ' ' || batch_max || ' ' ||"
                  " round(extract(epoch FROM next_attempt_at - send_at))"
                  " FROM communications WHERE id = $1::uuid",
                  j1.digest_id, "pending 1 3 300");
    expect_pending(client, 1);

    /* another key is another digest */
    store_digest_join_t other;
    fill_join(&other, client, plan, "low:2026-06-05");
    join(db.conn, &other);
    assert_int_equal(other.opened, 1);
    assert_string_not_equal(other.digest_id, j1.digest_id);
    expect_pending(client, 2);

    fill_join(&j2, client, plan, "low:2026-06-04");
    join(db.conn, &j2);
    assert_int_equal(j2.opened, 0);
    assert_int_equal(j2.size, 2);
    assert_string_equal(j2.digest_id, j1.digest_id);
    add_member(client, plan, j1.digest_id, "choose a caterer", m[1]);

    /* the third fills it: due at once, and no longer open */
    fill_join(&j3, client, plan, "low:2026-06-04");
    join(db.conn, &j3);
    assert_int_equal(j3.size, 3);
    assert_string_equal(j3.digest_id, j1.digest_id);
    add_member(client, plan, j1.digest_id, "confirm guests", m[2]);
    expect_scalar("SELECT status || ' ' || batch_size || ' ' || (next_attempt_at <= now())"
                  " FROM communications WHERE id = $1::uuid",
                  j1.digest_id, "queued 3 true");
    expect_scalar("SELECT string_agg(event_type, ',' ORDER BY id) FROM delivery_events"
                  " WHERE communication_id = $1::uuid",
                  j1.digest_id, "scheduled,queued");
    expect_pending(client, 1); /* the other key's */

    fill_join(&j4, client, plan, "low:2026-06-04");
    join(db.conn, &j4);
    assert_int_equal(j4.opened, 1);
    assert_string_not_equal(j4.digest_id, j1.digest_id);
    add_member(client, plan, j4.digest_id, "book a band", m[3]);

    /* members, oldest first, with an event naming their digest */
    store_digest_member_t *mem = NULL;
    int n = 0;
    char err[256];
    assert_int_equal(store_digest_members_load(db.conn, j1.digest_id, &mem, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(mem[i].message_type, "reminder");
        assert_string_equal(mem[i].plan_id, plan);
        assert_non_null(strstr(mem[i].context_json, "pending_action"));
    }
    store_digest_members_free(mem, n);
    char want[128];
    snprintf(want, sizeof want, "batched batched {\"digest_id\": \"%s\"}", j1.digest_id);
    expect_scalar("SELECT c.status || ' ' || e.event_type || ' ' || e.provider_response::text"
                  " FROM communications c JOIN delivery_events e ON e.communication_id = c.id"
                  " WHERE c.id = $1::uuid",
                  m[0], want);
}

static void test_insert_many_members(void **state)
{
    (void)state;
    char client[37], plan[37];
    new_client(client);
    assert_int_equal(cry_uuid4(plan), 0);
    store_digest_join_t j;
    fill_join(&j, client, plan, "low:many");
    join(db.conn, &j);
    store_comm_new_t c[2];
    for (int i = 0; i < 2; i++) {
        memset(&c[i], 0, sizeof c[i]);
        assert_int_equal(cry_uuid4(c[i].id), 0);
        c[i].plan_id = plan;
        c[i].client_id = client;
        c[i].message_type = "reminder";
        c[i].urgency = "low";
        c[i].context_json = "{}";
        c[i].request_hash = "h";
        c[i].status = i == 0 ? "batched" : "queued";
        c[i].channel = "email";
        c[i].send_at = (double)time(NULL);
        c[i].priority = 3;
        c[i].decision_json = "{}";
        c[i].batch_id = i == 0 ? j.digest_id : NULL;
    }
    int inserted = 0;
    char err[256];
    assert_int_equal(store_comm_insert_many(db.conn, c, 2, &inserted, err, sizeof err), 0);
    assert_int_equal(inserted, 2);
    char want[128];
    snprintf(want, sizeof want, "%s batched {\"digest_id\": \"%s\"}", j.digest_id, j.digest_id);
    expect_scalar("SELECT c.batch_id || ' ' || e.event_type || ' ' || e.provider_response::text"
                  " FROM communications c JOIN delivery_events e ON e.communication_id = c.id"
                  " WHERE c.id = $1::uuid",
                  c[0].id, want);
    expect_scalar("SELECT (batch_id IS NULL) || ' ' || status FROM communications"
                  " WHERE id = $1::uuid",
                  c[1].id, "true queued");
}

/* Claims the digest (and only it) as a worker would: one attempt. */
static void claim(const char *digest_id)
{
    expect_scalar("WITH u AS (UPDATE communications SET status = 'sending',"
                  " attempts = attempts + 1, lease_until = now() + interval '1 minute'"
                  " WHERE id = $1::uuid RETURNING attempts) SELECT attempts::text FROM u",
                  digest_id, "1");
}

static void complete(const char *digest_id, int attempt, queue_outcome_t outcome, int applied)
{
    queue_result_t r = {
        .id = digest_id,
        .attempt = attempt,
        .outcome = outcome,
        .retry_at = (double)time(NULL) + 60,
        .channel = "email",
        .subject = "3 updates",
        .error_category = outcome == QUEUE_SENT ? NULL : "transient",
        .error_message = outcome == QUEUE_SENT ? NULL : "smtp 451",
    };
    int got = -1;
    char err[256];
    if (queue_complete(db.conn, &keys, &r, 1, &got, err, sizeof err) != 0)
        fail_msg("complete: %s", err);
    assert_int_equal(got, applied);
}

static void test_members_follow_the_fenced_outcome(void **state)
{
    (void)state;
    char client[37], plan[37], m[2][37];
    new_client(client);
    assert_int_equal(cry_uuid4(plan), 0);
    store_digest_join_t j;
    fill_join(&j, client, plan, "low:follow");
    join(db.conn, &j);
    add_member(client, plan, j.digest_id, "a", m[0]);
    add_member(client, plan, j.digest_id, "b", m[1]);
    claim(j.digest_id);

    /* a retry leaves the members waiting in the digest */
    complete(j.digest_id, 1, QUEUE_RETRY, 1);
    expect_scalar("SELECT string_agg(status, ',') FROM communications WHERE batch_id = $1::uuid",
                  j.digest_id, "batched,batched");

    expect_scalar("UPDATE communications SET status = 'sending', attempts = 2"
                  " WHERE id = $1::uuid RETURNING status",
                  j.digest_id, "sending");
    /* a stale attempt changes nothing, members included */
    complete(j.digest_id, 1, QUEUE_SENT, 0);
    expect_scalar("SELECT string_agg(status, ',') FROM communications WHERE batch_id = $1::uuid",
                  j.digest_id, "batched,batched");

    complete(j.digest_id, 2, QUEUE_SENT, 1);
    expect_scalar("SELECT string_agg(status || (sent_at IS NOT NULL), ',')"
                  " FROM communications WHERE batch_id = $1::uuid",
                  j.digest_id, "senttrue,senttrue");
    char want[128];
    snprintf(want, sizeof want, "batched,sent {\"digest_id\": \"%s\"}", j.digest_id);
    expect_scalar("SELECT string_agg(event_type, ',' ORDER BY id) || ' ' ||"
                  " max(provider_response::text) FROM delivery_events"
                  " WHERE communication_id = $1::uuid",
                  m[1], want);
    /* a later receipt on the digest reaches the members too */
    expect_scalar("UPDATE communications SET status = 'delivered', delivered_at = now()"
                  " WHERE id = $1::uuid RETURNING status",
                  j.digest_id, "delivered");
    expect_scalar("SELECT string_agg(status || (delivered_at IS NOT NULL), ',')"
                  " FROM communications WHERE batch_id = $1::uuid",
                  j.digest_id, "deliveredtrue,deliveredtrue");
}

/* A digest whose address was suppressed by the time it was claimed is
 * skipped there (it has no other channel), and its members with it, with
 * the reason and an event each. */
static void test_members_follow_a_skip(void **state)
{
    (void)state;
    char client[37], plan[37], m[2][37];
    new_client(client);
    assert_int_equal(cry_uuid4(plan), 0);
    store_digest_join_t j;
    fill_join(&j, client, plan, "low:skip");
    join(db.conn, &j);
    add_member(client, plan, j.digest_id, "a", m[0]);
    add_member(client, plan, j.digest_id, "b", m[1]);
    claim(j.digest_id);
    queue_result_t r = {
        .id = j.digest_id,
        .attempt = 1,
        .outcome = QUEUE_SKIPPED,
        .channel = "email",
        .skip_reason = "suppressed",
    };
    int got = -1;
    char err[256];
    if (queue_complete(db.conn, &keys, &r, 1, &got, err, sizeof err) != 0)
        fail_msg("complete: %s", err);
    assert_int_equal(got, 1);
    expect_scalar("SELECT string_agg(status || ':' || skip_reason, ',')"
                  " FROM communications WHERE batch_id = $1::uuid",
                  j.digest_id, "skipped:suppressed,skipped:suppressed");
    expect_scalar("SELECT string_agg(event_type || ':' || COALESCE(error_details, '-'),"
                  " ',' ORDER BY id) FROM delivery_events WHERE communication_id = $1::uuid",
                  m[0], "batched:-,skipped:suppressed");
}

/* Two writers open the same digest at once: the second waits on the open-
 * digest index for the first to commit, then joins its row. */
typedef struct racer {
    const char *url;
    store_digest_join_t j;
    atomic_int done;
    char err[256];
    int rc;
} racer_t;

static void *racer_main(void *arg)
{
    racer_t *r = arg;
    r->rc = -1;
    PGconn *conn = db_connect(r->url, r->err, sizeof r->err);
    if (conn) {
        if (db_exec(conn, "BEGIN", r->err, sizeof r->err) == 0 &&
            store_digest_join(conn, &r->j, r->err, sizeof r->err) == 0 &&
            db_exec(conn, "COMMIT", r->err, sizeof r->err) == 0)
            r->rc = 0;
        PQfinish(conn);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static void test_two_writers_open_one_digest(void **state)
{
    (void)state;
    char client[37], plan[37], err[256];
    new_client(client);
    assert_int_equal(cry_uuid4(plan), 0);
    store_digest_join_t first;
    fill_join(&first, client, plan, "low:race");
    assert_int_equal(db_exec(db.conn, "BEGIN", err, sizeof err), 0);
    join(db.conn, &first);
    assert_int_equal(first.opened, 1);

    racer_t r;
    memset(&r, 0, sizeof r);
    r.url = db.url;
    fill_join(&r.j, client, plan, "low:race");
    atomic_init(&r.done, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, racer_main, &r), 0);
    struct timespec pause = {0, 300 * 1000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(atomic_load(&r.done), 0); /* waiting for our commit */
    assert_int_equal(db_exec(db.conn, "COMMIT", err, sizeof err), 0);
    pthread_join(t, NULL);
    if (r.rc != 0)
        fail_msg("racer: %s", r.err);
    assert_int_equal(r.j.opened, 0);
    assert_int_equal(r.j.size, 2);
    assert_string_equal(r.j.digest_id, first.digest_id);
    expect_scalar("SELECT count(*) FROM communications WHERE client_id = $1::uuid"
                  " AND message_type = 'digest'",
                  client, "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_fills_and_reopens),
        cmocka_unit_test(test_insert_many_members),
        cmocka_unit_test(test_members_follow_the_fenced_outcome),
        cmocka_unit_test(test_members_follow_a_skip),
        cmocka_unit_test(test_two_writers_open_one_digest),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
