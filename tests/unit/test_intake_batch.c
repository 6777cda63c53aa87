/* store's set-based variants used by the intake: each must leave the
 * database exactly as the row-by-row functions would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"

#include "crypto/crypto.h"
#include "store/store.h"
#include "util/base64.h"

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
        raw[i] = (unsigned char)(i * 11 + 5);
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

static char *scalar(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    char *v = testdb_scalar(db.conn, sql, p1 ? 1 : 0, params);
    assert_non_null(v);
    return v;
}

static void assert_scalar(const char *sql, const char *p1, const char *want)
{
    char *v = scalar(sql, p1);
    assert_string_equal(v, want);
    free(v);
}

static void client_rec(store_client_t *c, const char *name, const char *email, const char *phone)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(cry_uuid4(c->id), 0);
    c->name = (char *)name;
    c->email = (char *)email;
    c->phone = (char *)phone;
    c->timezone = (char *)"Europe/Paris";
    c->locale = (char *)"fr";
    c->consent[CH_EMAIL] = 1;
    c->consent[CH_SMS] = 0;
    c->consent[CH_WHATSAPP] = -1;
}

static void test_upsert_many_new_and_update(void **state)
{
    (void)state;
    char err[256];
    store_client_t c[2];
    client_rec(&c[0], "Ana", "Ana@Example.com ", "+33 6 12 34 56 78");
    client_rec(&c[1], NULL, NULL, NULL);
    assert_int_equal(store_clients_upsert_many(db.conn, &keys, c, 2, err, sizeof err), 0);

    /* what the row-by-row load sees: decrypted fields, the defaults of the
     * preferences row, consent as given */
    store_client_t got;
    assert_int_equal(store_client_load(db.conn, &keys, c[0].id, &got, err, sizeof err), 0);
    assert_string_equal(got.name, "Ana");
    assert_string_equal(got.email, "Ana@Example.com ");
    assert_string_equal(got.phone, "+33 6 12 34 56 78");
    assert_string_equal(got.timezone, "Europe/Paris");
    assert_string_equal(got.locale, "fr");
    assert_int_equal(got.consent[CH_EMAIL], 1);
    assert_int_equal(got.consent[CH_SMS], 0);
    assert_int_equal(got.consent[CH_WHATSAPP], 0);
    assert_string_equal(got.quiet_start, "22:00");
    store_client_free(&got);
    assert_int_equal(store_client_load(db.conn, &keys, c[1].id, &got, err, sizeof err), 0);
    assert_null(got.name);
    assert_null(got.email);
    store_client_free(&got);
    assert_scalar("SELECT count(*) FROM client_preferences WHERE client_id = $1::uuid", c[1].id,
                  "1");
    /* blind indexes are those of the normalised values */
    char bidx[65];
    assert_int_equal(cry_blind_index(&keys, "email", "ana@example.com", bidx), 0);
    assert_scalar("SELECT count(*) FROM clients WHERE email_bidx = $1", bidx, "1");
    assert_int_equal(cry_blind_index(&keys, "phone", "+33612345678", bidx), 0);
    assert_scalar("SELECT count(*) FROM clients WHERE phone_bidx = $1", bidx, "1");
    /* consent given (even a "no") is timestamped, consent not given is not */
    assert_scalar("SELECT consent_sms_at IS NOT NULL AND consent_whatsapp_at IS NULL"
                  " FROM clients WHERE id = $1::uuid",
                  c[0].id, "t");

    char *sms_at = scalar("SELECT consent_sms_at::text FROM clients WHERE id = $1::uuid", c[0].id);
    /* second request: NULL keeps, "" clears, a changed flag moves its time */
    store_client_t u;
    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "%s", c[0].id);
    u.phone = (char *)"";
    u.consent[CH_EMAIL] = -1;
    u.consent[CH_SMS] = 0; /* same as stored: its time stays */
    u.consent[CH_WHATSAPP] = 1;
    assert_int_equal(store_clients_upsert_many(db.conn, &keys, &u, 1, err, sizeof err), 0);
    assert_int_equal(store_client_load(db.conn, &keys, c[0].id, &got, err, sizeof err), 0);
    assert_string_equal(got.name, "Ana");
    assert_string_equal(got.email, "Ana@Example.com ");
    assert_null(got.phone);
    assert_string_equal(got.timezone, "Europe/Paris");
    assert_int_equal(got.consent[CH_EMAIL], 1);
    assert_int_equal(got.consent[CH_WHATSAPP], 1);
    store_client_free(&got);
    assert_scalar("SELECT phone_bidx IS NULL FROM clients WHERE id = $1::uuid", c[0].id, "t");
    char *sms_at2 = scalar("SELECT consent_sms_at::text FROM clients WHERE id = $1::uuid", c[0].id);
    assert_string_equal(sms_at, sms_at2);
    free(sms_at);
    free(sms_at2);
    assert_scalar("SELECT count(*) FROM client_preferences WHERE client_id = $1::uuid", c[0].id,
                  "1");

    /* a malformed id is refused before anything is sent */
    store_client_t bad;
    memset(&bad, 0, sizeof bad);
    snprintf(bad.id, sizeof bad.id, "not-a-uuid");
    assert_int_equal(store_clients_upsert_many(db.conn, &keys, &bad, 1, err, sizeof err), -1);
}

static void test_facts_load(void **state)
{
    (void)state;
    char err[256];
    store_client_t c[2];
    client_rec(&c[0], "Bo", "bo@example.com", NULL);
    client_rec(&c[1], "Cy", NULL, "+14155550100");
    assert_int_equal(store_clients_upsert_many(db.conn, &keys, c, 2, err, sizeof err), 0);
    const char *params[] = {c[1].id};
    PGresult *r = db_query(db.conn,
                           "UPDATE client_preferences SET preferred_channels = '[\"sms\"]',"
                           " opt_out_email = true, quiet_hours_start = '21:30'"
                           " WHERE client_id = $1::uuid",
                           1, params, err, sizeof err);
    assert_non_null(r);
    PQclear(r);

    char missing[37];
    assert_int_equal(cry_uuid4(missing), 0);
    const char *ids[] = {c[1].id, missing, "garbage", c[0].id};
    store_client_facts_t f[4];
    assert_int_equal(store_client_facts_load(db.conn, ids, 4, f, err, sizeof err), 0);
    assert_int_equal(f[0].found, 1);
    assert_int_equal(f[0].has_email, 0);
    assert_int_equal(f[0].has_phone, 1);
    assert_string_equal(f[0].preferred_channels_json, "[\"sms\"]");
    assert_int_equal(f[0].opt_out[CH_EMAIL], 1);
    assert_string_equal(f[0].quiet_start, "21:30");
    assert_string_equal(f[0].quiet_end, "08:00");
    assert_int_equal(f[1].found, 0);
    assert_int_equal(f[2].found, 0);
    assert_int_equal(f[3].found, 1);
    assert_int_equal(f[3].has_email, 1);
    assert_int_equal(f[3].has_phone, 0);
    assert_string_equal(f[3].timezone, "Europe/Paris");
    assert_int_equal(f[3].consent[CH_EMAIL], 1);
    assert_string_equal(f[3].preferred_channels_json, "[\"email\"]");
    assert_true(f[3].last_contact_at == 0);
    store_client_facts_free(f, 4);

    /* only malformed ids: nothing to ask, nothing found */
    const char *bad[] = {"x"};
    assert_int_equal(store_client_facts_load(db.conn, bad, 1, f, err, sizeof err), 0);
    assert_int_equal(f[0].found, 0);
}

static void fill_comm(store_comm_new_t *c, const char *plan, const char *client, const char *key,
                      const char *hash, const char *response)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(cry_uuid4(c->id), 0);
    c->plan_id = plan;
    c->client_id = client;
    c->message_type = "welcome";
    c->urgency = "normal";
    c->context_json = "{\"event_type\": \"wedding\", \"note\": \"quote \\\" and \\\\ ok\"}";
    c->idempotency_key = key;
    c->request_hash = hash;
    c->status = "queued";
    c->channel = "email";
    c->fallback_json = "[]";
    c->send_at = 1800000000.25;
    c->priority = 2;
    c->decision_json = "{\"primary_channel\": \"email\"}";
    c->rules_version = "builtin-1";
    c->response_json = response;
}

static void test_insert_many_and_probe(void **state)
{
    (void)state;
    char err[256];
    store_client_t cl[2];
    client_rec(&cl[0], "Di", "di@example.com", NULL);
    client_rec(&cl[1], "Ed", "ed@example.com", NULL);
    assert_int_equal(store_clients_upsert_many(db.conn, &keys, cl, 2, err, sizeof err), 0);
    char plan[37];
    assert_int_equal(cry_uuid4(plan), 0);

    /* a response with characters JSON escapes must come back byte for byte */
    const char *resp = "{\"communication_id\":\"x\",\"note\":\"tab\\there \xc3\xa9\"}\n";
    unsigned char pdf[] = {'%', 'P', 'D', 'F', 0, 1, 2, 0xff, 0};
    store_attachment_t att = {.filename = (char *)"blueprint.pdf",
                              .content_type = (char *)"application/pdf",
                              .data = pdf,
                              .len = sizeof pdf};
    store_comm_new_t c[3];
    fill_comm(&c[0], plan, cl[0].id, "k-1", "hash-a", resp);
    c[0].attachments = &att;
    c[0].n_attachments = 1;
    fill_comm(&c[1], plan, cl[1].id, "k-1", "hash-b", "{}");
    fill_comm(&c[2], plan, cl[0].id, NULL, "hash-c", "{}");
    c[2].status = "skipped";
    c[2].channel = NULL;
    c[2].skip_reason = "no_consent";
    int inserted = -1;
    assert_int_equal(store_comm_insert_many(db.conn, c, 3, &inserted, err, sizeof err), 0);
    assert_int_equal(inserted, 3);
    assert_scalar("SELECT count(*) FROM communications WHERE plan_id = $1::uuid", plan, "3");
    assert_scalar("SELECT response FROM communications WHERE id = $1::uuid", c[0].id, resp);
    assert_scalar("SELECT context->>'note' FROM communications WHERE id = $1::uuid", c[0].id,
                  "quote \" and \\ ok");
    assert_scalar("SELECT extract(epoch FROM send_at)::text FROM communications"
                  " WHERE id = $1::uuid",
                  c[0].id, "1800000000.250000");
    assert_scalar("SELECT next_attempt_at = send_at FROM communications WHERE id = $1::uuid",
                  c[0].id, "t");
    /* one first event each, named after the state */
    assert_scalar(
        "SELECT string_agg(e.event_type, ',' ORDER BY e.event_type) FROM delivery_events e"
        " JOIN communications m ON m.id = e.communication_id WHERE m.plan_id = $1::uuid",
        plan, "queued,queued,skipped");
    assert_scalar("SELECT provider_response->>'reason' FROM delivery_events"
                  " WHERE communication_id = $1::uuid",
                  c[2].id, "no_consent");
    /* the attachment's bytes, NULs included */
    store_attachment_t *a = NULL;
    int na = 0;
    assert_int_equal(store_attachments_load(db.conn, c[0].id, &a, &na, err, sizeof err), 0);
    assert_int_equal(na, 1);
    assert_string_equal(a[0].filename, "blueprint.pdf");
    assert_int_equal(a[0].len, sizeof pdf);
    assert_memory_equal(a[0].data, pdf, sizeof pdf);
    store_attachments_free(a, na);

    /* probe: same hash replays the stored text, another hash conflicts, an
     * unused key (or the same key of another client) is free */
    store_key_probe_t p[4] = {
        {.client_id = cl[0].id, .idempotency_key = "k-1", .request_hash = "hash-a"},
        {.client_id = cl[1].id, .idempotency_key = "k-1", .request_hash = "hash-x"},
        {.client_id = cl[0].id, .idempotency_key = "k-2", .request_hash = "hash-a"},
        {.client_id = cl[1].id, .idempotency_key = "k-2", .request_hash = "hash-b"},
    };
    assert_int_equal(store_comm_keys_probe(db.conn, p, 4, err, sizeof err), 0);
    assert_int_equal(p[0].outcome, STORE_REPLAY);
    assert_non_null(p[0].replay_json);
    assert_string_equal(p[0].replay_json, resp);
    assert_int_equal(p[1].outcome, STORE_CONFLICT);
    assert_null(p[1].replay_json);
    assert_int_equal(p[2].outcome, STORE_INSERTED);
    assert_int_equal(p[3].outcome, STORE_INSERTED);
    free(p[0].replay_json);

    /* a row whose key is taken (a writer got there first) is left out with
     * its children, and the count says so */
    store_comm_new_t again[2];
    fill_comm(&again[0], plan, cl[0].id, "k-1", "hash-a", "{}");
    again[0].attachments = &att;
    again[0].n_attachments = 1;
    fill_comm(&again[1], plan, cl[0].id, "k-3", "hash-d", "{}");
    assert_int_equal(store_comm_insert_many(db.conn, again, 2, &inserted, err, sizeof err), 0);
    assert_int_equal(inserted, 1);
    assert_scalar("SELECT count(*) FROM communications WHERE id = $1::uuid", again[0].id, "0");
    assert_scalar("SELECT count(*) FROM delivery_events WHERE communication_id = $1::uuid",
                  again[0].id, "0");
    assert_scalar("SELECT count(*) FROM communication_attachments"
                  " WHERE communication_id = $1::uuid",
                  again[0].id, "0");
    assert_scalar("SELECT count(*) FROM delivery_events WHERE communication_id = $1::uuid",
                  again[1].id, "1");

    /* a row the database refuses fails the statement as a whole (the
     * intake then redoes the rows one by one) and writes nothing */
    store_comm_new_t bad[2];
    fill_comm(&bad[0], plan, cl[0].id, "k-4", "hash-e", "{}");
    fill_comm(&bad[1], plan, cl[0].id, "k-5", "hash-f", "{}");
    bad[1].urgency = "whenever"; /* violates the urgency check */
    PGresult *r = db_query(db.conn, "BEGIN", 0, NULL, err, sizeof err);
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(store_comm_insert_many(db.conn, bad, 2, &inserted, err, sizeof err), -1);
    r = db_query(db.conn, "ROLLBACK", 0, NULL, err, sizeof err);
    assert_non_null(r);
    PQclear(r);
    assert_scalar("SELECT count(*) FROM communications WHERE id = $1::uuid", bad[0].id, "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert_many_new_and_update),
        cmocka_unit_test(test_facts_load),
        cmocka_unit_test(test_insert_many_and_probe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
