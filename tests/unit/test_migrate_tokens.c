/* migrate_tokens: rows written before 005_bound_tokens.sql (v1 tokens, clear
 * subjects, clear callback bodies) are rewritten bound to their row, in
 * batches, once; without the key nothing that needs it is touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"
#include "v1token.h"

#include "crypto/crypto.h"
#include "queue/cbqueue.h"
#include "store/store.h"
#include "util/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cry_keys_t keys, other_keys;

static void load_key(cry_keys_t *k, unsigned char fill)
{
    unsigned char raw[32];
    memset(raw, fill, sizeof raw);
    buf_t b;
    buf_init(&b, 128);
    char err[128];
    assert_int_equal(b64_encode(&b, raw, sizeof raw, 0), 0);
    assert_int_equal(cry_keys_load(k, b.data, err, sizeof err), 0);
    buf_free(&b);
}

static int setup(void **state)
{
    (void)state;
    load_key(&keys, 0x21);
    load_key(&other_keys, 0x22);
    return 0;
}

static void exec_params(PGconn *c, const char *sql, int n, const char *const *p)
{
    char err[512];
    PGresult *r = db_query(c, sql, n, p, err, sizeof err);
    if (!r)
        fail_msg("%s: %s", sql, err);
    PQclear(r);
}

/* The first column of the first row (a new string), failing the test on an
 * error. */
static char *scalar(PGconn *c, const char *sql, int n, const char *const *p)
{
    char *v = testdb_scalar(c, sql, n, p);
    if (!v)
        fail_msg("query failed: %s", sql);
    return v;
}

static void assert_scalar(PGconn *c, const char *sql, const char *param, const char *want)
{
    const char *p[] = {param};
    char *v = scalar(c, sql, param ? 1 : 0, param ? p : NULL);
    if (strcmp(v, want) != 0)
        fail_msg("%s: got '%s', want '%s'", sql, v, want);
    free(v);
}

static char *v1(const cry_keys_t *k, const char *plain)
{
    buf_t b;
    buf_init(&b, 8192);
    assert_int_equal(v1token_make(k, plain, &b), 0);
    return buf_detach(&b);
}

/* A client as an older crier wrote it: v1 tokens; email may be NULL. */
static void old_client(PGconn *c, const cry_keys_t *k, char id[37], const char *name,
                       const char *email, const char *phone)
{
    assert_int_equal(cry_uuid4(id), 0);
    char *n = v1(k, name), *e = email ? v1(k, email) : NULL, *ph = v1(k, phone);
    const char *p[] = {id, n, e, ph};
    exec_params(c,
                "INSERT INTO clients (id, name_enc, email_enc, phone_enc, key_id)"
                " VALUES ($1::uuid, $2, $3, $4, 'old')",
                4, p);
    free(n);
    free(e);
    free(ph);
}

/* The plaintext of the token in the first column of sql's result, opened
 * for at; the test fails when it does not open. */
static char *open_at(PGconn *c, const char *sql, const char *id, const cry_place_t *at)
{
    const char *p[] = {id};
    char *tok = scalar(c, sql, 1, p);
    assert_int_equal(cry_token_version(tok), 2);
    buf_t plain;
    buf_init(&plain, 1 << 20);
    if (cry_decrypt(&keys, at, tok, &plain) != 0)
        fail_msg("%s.%s of %s does not open", at->table, at->column, id);
    free(tok);
    return buf_detach(&plain);
}

static void test_rewrites_old_rows(void **state)
{
    (void)state;
    testdb_t t;
    if (testdb_create(&t, 1) != 0)
        fail_msg("test database unavailable");
    PGconn *c = t.conn;

    /* three old clients (more than one batch of two), one written by this
     * crier (already v2: left alone) */
    char a[37], b[37], d[37], fresh[37];
    old_client(c, &keys, a, "Zelda Quixotewright", "zelda.q@example.org", "+15550001111");
    old_client(c, &keys, b, "Ambrose Vantablack", "ambrose.v@example.org", "+15550002222");
    old_client(c, &keys, d, "Ottoline Brackwater", NULL, "+15550003333");
    store_client_t nc;
    memset(&nc, 0, sizeof nc);
    assert_int_equal(cry_uuid4(fresh), 0);
    snprintf(nc.id, sizeof nc.id, "%s", fresh);
    nc.name = (char *)"Fresh Client";
    for (int ch = 0; ch < CH_N; ch++)
        nc.consent[ch] = -1;
    char err[512];
    assert_int_equal(store_client_upsert(c, &keys, &nc, err, sizeof err), 0);
    const char *fp[] = {fresh};
    char *fresh_tok = scalar(c, "SELECT name_enc FROM clients WHERE id = $1::uuid", 1, fp);

    /* two old inbound messages */
    char *sender = v1(&keys, "+15550001111"), *body = v1(&keys, "Saturday at the lighthouse");
    const char *ip[] = {a, sender, body};
    char *in1 = scalar(c,
                       "INSERT INTO inbound_messages (channel, provider_message_id, client_id,"
                       " sender_enc, body_enc, key_id) VALUES ('sms', 'SM-1', $1::uuid, $2, $3,"
                       " 'old') RETURNING id::text",
                       3, ip);
    exec_params(c,
                "INSERT INTO inbound_messages (channel, provider_message_id, client_id,"
                " sender_enc, body_enc, key_id) VALUES ('sms', 'SM-2', $1::uuid, $2, NULL, 'old')",
                2, ip);
    free(sender);
    free(body);

    /* a communication with a clear subject, one without */
    char comm[37], bare_comm[37], plan[37];
    assert_int_equal(cry_uuid4(comm), 0);
    assert_int_equal(cry_uuid4(bare_comm), 0);
    assert_int_equal(cry_uuid4(plan), 0);
    const char *cp[] = {comm, plan, a, "Welcome to Planiva, Zelda Quixotewright: your plan"};
    exec_params(c,
                "INSERT INTO communications (id, plan_id, client_id, message_type, status,"
                " subject) VALUES ($1::uuid, $2::uuid, $3::uuid, 'welcome', 'delivered', $4)",
                4, cp);
    const char *cp2[] = {bare_comm, plan, a};
    exec_params(c,
                "INSERT INTO communications (id, plan_id, client_id, message_type, status)"
                " VALUES ($1::uuid, $2::uuid, $3::uuid, 'welcome', 'skipped')",
                3, cp2);

    /* callbacks with the reply's words in clear: pending, failed, delivered;
     * and one already bare */
    char cb_pending[37], cb_failed[37], cb_done[37], cb_bare[37];
    const char *cb_state[] = {"pending", "failed", "delivered"};
    char *cb_ids[] = {cb_pending, cb_failed, cb_done};
    char payload[512];
    snprintf(payload, sizeof payload,
             "{\"type\": \"client_reply\", \"text\": \"Saturday at the lighthouse\","
             " \"channel\": \"sms\", \"client_id\": \"%s\", \"inbound_message_id\": %s}",
             a, in1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cry_uuid4(cb_ids[i]), 0);
        const char *p[] = {cb_ids[i], payload, cb_state[i]};
        exec_params(c,
                    "INSERT INTO workflow_callbacks (id, event_type, payload, state)"
                    " VALUES ($1::uuid, 'client_reply', $2::jsonb, $3)",
                    3, p);
    }
    assert_int_equal(cry_uuid4(cb_bare), 0);
    const char *bp[] = {cb_bare};
    exec_params(c,
                "INSERT INTO workflow_callbacks (id, event_type, payload) VALUES ($1::uuid,"
                " 'delivery_status', '{\"type\": \"delivery_status\", \"channel\": \"sms\"}')",
                1, bp);
    const char *pp[] = {cb_pending};
    char *original =
        scalar(c, "SELECT payload::text FROM workflow_callbacks WHERE id = $1::uuid", 1, pp);

    /* without the key: only the stripping of the delivered callback runs,
     * the rest is refused and says what is needed */
    migrate_tokens_t done;
    assert_int_equal(migrate_tokens(c, NULL, 2, &done, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_ENCRYPTION_KEY"));
    assert_null(strstr(err, "Zelda"));
    assert_int_equal((int)done.callbacks_cleared, 1);
    assert_int_equal((int)(done.clients + done.inbound + done.subjects + done.callbacks), 0);
    assert_scalar(c, "SELECT count(*) FROM clients WHERE name_enc LIKE 'v1.%'", NULL, "3");
    assert_scalar(c,
                  "SELECT (payload ? 'text')::text || '|' || (payload_enc IS NULL)::text"
                  " FROM workflow_callbacks WHERE id = $1::uuid",
                  cb_done, "false|true");

    /* with the key, in batches of two */
    assert_int_equal(migrate_tokens(c, &keys, 2, &done, err, sizeof err), 0);
    assert_int_equal((int)done.clients, 3);
    assert_int_equal((int)done.inbound, 2);
    assert_int_equal((int)done.subjects, 1);
    assert_int_equal((int)done.callbacks, 2); /* pending and failed */
    assert_int_equal((int)done.callbacks_cleared, 0);

    /* clients: every token v2, bound to its row, readable through the store */
    assert_scalar(c,
                  "SELECT count(*) FROM clients WHERE name_enc LIKE 'v1.%'"
                  " OR email_enc LIKE 'v1.%' OR phone_enc LIKE 'v1.%'",
                  NULL, "0");
    assert_scalar(c, "SELECT key_id FROM clients WHERE id = $1::uuid", a, keys.key_id);
    store_client_t got;
    assert_int_equal(store_client_load(c, &keys, a, &got, err, sizeof err), 0);
    assert_string_equal(got.name, "Zelda Quixotewright");
    assert_string_equal(got.email, "zelda.q@example.org");
    assert_string_equal(got.phone, "+15550001111");
    store_client_free(&got);
    assert_int_equal(store_client_load(c, &keys, d, &got, err, sizeof err), 0);
    assert_string_equal(got.name, "Ottoline Brackwater");
    assert_null(got.email);
    store_client_free(&got);
    char *fresh_after = scalar(c, "SELECT name_enc FROM clients WHERE id = $1::uuid", 1, fp);
    assert_string_equal(fresh_after, fresh_tok);
    free(fresh_after);
    free(fresh_tok);

    /* bound: two clients' rewritten addresses swapped open for neither */
    const char *sw[] = {a, b};
    exec_params(c,
                "UPDATE clients x SET email_enc = y.email_enc FROM clients y"
                " WHERE (x.id, y.id) IN (($1::uuid, $2::uuid), ($2::uuid, $1::uuid))",
                2, sw);
    assert_int_equal(store_client_load(c, &keys, a, &got, err, sizeof err), -1);
    assert_int_equal(store_client_load(c, &keys, b, &got, err, sizeof err), -1);

    /* inbound: bound to the message's id */
    const cry_place_t body_at = {"inbound_messages", "body", in1};
    char *text =
        open_at(c, "SELECT body_enc FROM inbound_messages WHERE id = $1::bigint", in1, &body_at);
    assert_string_equal(text, "Saturday at the lighthouse");
    free(text);
    assert_scalar(c, "SELECT count(*) FROM inbound_messages WHERE sender_enc LIKE 'v2.%'", NULL,
                  "2");

    /* the subject: encrypted, the clear column emptied */
    const cry_place_t subject_at = {"communications", "subject", comm};
    text =
        open_at(c, "SELECT subject_enc FROM communications WHERE id = $1::uuid", comm, &subject_at);
    assert_string_equal(text, "Welcome to Planiva, Zelda Quixotewright: your plan");
    free(text);
    assert_scalar(c, "SELECT count(*) FROM communications WHERE subject IS NOT NULL", NULL, "0");
    assert_scalar(c, "SELECT count(*) FROM communications WHERE subject_enc IS NOT NULL", NULL,
                  "1");

    /* callbacks: the body encrypted as it was, the payload only the ids */
    const cry_place_t cb_at = {"workflow_callbacks", "payload", cb_pending};
    text = open_at(c, "SELECT payload_enc FROM workflow_callbacks WHERE id = $1::uuid", cb_pending,
                   &cb_at);
    assert_string_equal(text, original);
    free(text);
    assert_scalar(c,
                  "SELECT count(*) FROM workflow_callbacks WHERE payload ? 'text'"
                  " OR payload::text LIKE '%lighthouse%'",
                  NULL, "0");
    assert_scalar(c, "SELECT payload->>'client_id' FROM workflow_callbacks WHERE id = $1::uuid",
                  cb_pending, a);
    assert_scalar(c, "SELECT payload_enc IS NULL FROM workflow_callbacks WHERE id = $1::uuid",
                  cb_bare, "t");

    /* the sender sends the whole body, and keeps only the ids once delivered */
    cbqueue_job_t jobs[4];
    int n = cbqueue_claim(c, &keys, 30, 4, jobs, err, sizeof err);
    assert_int_equal(n, 2); /* the pending one and the bare one */
    int seen = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(jobs[i].unreadable, 0);
        if (strcmp(jobs[i].id, cb_pending) == 0) {
            /* the sender stamps an event id and a sequence number before the stored keys */
            assert_true(strncmp(jobs[i].payload, "{\"event_id\": \"", 14) == 0);
            const char *rest = strstr(jobs[i].payload, "\"seq\": ");
            assert_non_null(rest);
            rest = strchr(rest, ',');
            assert_non_null(rest);
            assert_string_equal(rest + 2, original + 1);
            assert_int_equal(
                cbqueue_complete(c, &jobs[i], CBQUEUE_DELIVERED, 0, NULL, err, sizeof err), 1);
            seen = 1;
        }
        cbqueue_job_free(&jobs[i]);
    }
    assert_int_equal(seen, 1);
    char want[64];
    snprintf(want, sizeof want, "true|false|%s", in1);
    assert_scalar(c,
                  "SELECT (payload_enc IS NULL)::text || '|' || (payload ? 'text')::text || '|'"
                  " || (payload->>'inbound_message_id')"
                  " FROM workflow_callbacks WHERE id = $1::uuid",
                  cb_pending, want);
    free(original);

    /* a second run has nothing left to do */
    assert_int_equal(migrate_tokens(c, &keys, 0, &done, err, sizeof err), 0);
    assert_int_equal((int)(done.clients + done.inbound + done.subjects + done.callbacks +
                           done.callbacks_cleared),
                     0);
    free(in1);
    testdb_destroy(&t);
}

/* A token that does not open stops the run with its place, never its value;
 * the batches before it stay done. */
static void test_stops_at_a_bad_row(void **state)
{
    (void)state;
    testdb_t t;
    if (testdb_create(&t, 1) != 0)
        fail_msg("test database unavailable");
    PGconn *c = t.conn;
    char good[37], bad[37];
    old_client(c, &keys, good, "Good Client", "good@example.org", "+15550004444");
    old_client(c, &other_keys, bad, "Wrongkey Client", "wrongkey@example.org", "+15550005555");
    /* the good one sorts first, so it is in an earlier batch */
    if (strcmp(good, bad) > 0) {
        char tmp[37];
        memcpy(tmp, good, sizeof tmp);
        memcpy(good, bad, sizeof tmp);
        memcpy(bad, tmp, sizeof tmp);
        const char *p[] = {good, bad};
        exec_params(c,
                    "UPDATE clients x SET name_enc = y.name_enc, email_enc = y.email_enc,"
                    " phone_enc = y.phone_enc FROM clients y"
                    " WHERE (x.id, y.id) IN (($1::uuid, $2::uuid), ($2::uuid, $1::uuid))",
                    2, p);
    }
    migrate_tokens_t done;
    char err[512];
    assert_int_equal(migrate_tokens(c, &keys, 1, &done, err, sizeof err), -1);
    assert_non_null(strstr(err, "clients"));
    assert_non_null(strstr(err, bad));
    assert_null(strstr(err, "Wrongkey"));
    assert_null(strstr(err, "wrongkey"));
    assert_int_equal((int)done.clients, 1);
    store_client_t got;
    assert_int_equal(store_client_load(c, &keys, good, &got, err, sizeof err), 0);
    assert_string_equal(got.name, "Good Client");
    store_client_free(&got);
    assert_scalar(c, "SELECT left(name_enc, 3) FROM clients WHERE id = $1::uuid", bad, "v1.");

    /* something that is no token at all is named as damaged */
    const char *p[] = {bad};
    exec_params(c, "UPDATE clients SET name_enc = 'garbage' WHERE id = $1::uuid", 1, p);
    assert_int_equal(migrate_tokens(c, &keys, 0, &done, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a crier token"));
    assert_non_null(strstr(err, bad));
    testdb_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrites_old_rows),
        cmocka_unit_test(test_stops_at_a_bad_row),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
