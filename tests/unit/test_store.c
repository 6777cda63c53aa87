/* store: clients with encrypted PII, idempotent communications, API JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"

#include "crypto/crypto.h"
#include "store/store.h"
#include "util/base64.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
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
        raw[i] = (unsigned char)(i * 7 + 3);
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

static void new_client(char id[37], const char *name, const char *email, const char *phone)
{
    assert_int_equal(cry_uuid4(id), 0);
    store_client_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%s", id);
    c.name = (char *)name;
    c.email = (char *)email;
    c.phone = (char *)phone;
    c.timezone = (char *)"Asia/Kolkata";
    c.locale = (char *)"en";
    c.consent[CH_EMAIL] = 1;
    c.consent[CH_SMS] = 1;
    c.consent[CH_WHATSAPP] = 0;
    char err[256];
    if (store_client_upsert(db.conn, &keys, &c, err, sizeof err) != 0)
        fail_msg("upsert: %s", err);
}

static void test_client_round_trip(void **state)
{
    (void)state;
    char id[37];
    new_client(id, "Asha Rao", "Asha@Example.com", "+919812345678");

    store_client_t c;
    char err[256];
    assert_int_equal(store_client_load(db.conn, &keys, id, &c, err, sizeof err), 0);
    assert_string_equal(c.id, id);
    assert_string_equal(c.name, "Asha Rao");
    assert_string_equal(c.email, "Asha@Example.com");
    assert_string_equal(c.phone, "+919812345678");
    assert_string_equal(c.timezone, "Asia/Kolkata");
    assert_string_equal(c.locale, "en");
    assert_int_equal(c.consent[CH_EMAIL], 1);
    assert_int_equal(c.consent[CH_SMS], 1);
    assert_int_equal(c.consent[CH_WHATSAPP], 0);
    /* the seed's default preferences */
    assert_string_equal(c.preferred_channels_json, "[\"email\"]");
    assert_string_equal(c.quiet_start, "22:00");
    assert_string_equal(c.quiet_end, "08:00");
    assert_int_equal(c.opt_out[CH_EMAIL] + c.opt_out[CH_SMS] + c.opt_out[CH_WHATSAPP], 0);
    assert_true(c.last_contact_at == 0);
    store_client_free(&c);

    /* nothing readable in the table itself */
    char *raw = scalar("SELECT row_to_json(c)::text FROM clients c WHERE id = $1::uuid", id);
    assert_non_null(strstr(raw, "v2."));
    assert_null(strstr(raw, "v1."));
    assert_null(strstr(raw, "Example.com"));
    assert_null(strstr(raw, "example.com"));
    assert_null(strstr(raw, "9812345678"));
    assert_null(strstr(raw, "Asha"));
    free(raw);

    /* the blind index is of the normalised address: a lookup with any case
     * finds the row */
    char bidx[65];
    assert_int_equal(cry_blind_index(&keys, "email", "asha@example.com", bidx), 0);
    char *found = scalar("SELECT id FROM clients WHERE email_bidx = $1", bidx);
    assert_string_equal(found, id);
    free(found);
    assert_int_equal(cry_blind_index(&keys, "phone", "+919812345678", bidx), 0);
    found = scalar("SELECT id FROM clients WHERE phone_bidx = $1", bidx);
    assert_string_equal(found, id);
    free(found);

    /* unknown and malformed ids, and the wrong key */
    char other[37];
    assert_int_equal(cry_uuid4(other), 0);
    assert_int_equal(store_client_load(db.conn, &keys, other, &c, err, sizeof err), 1);
    assert_int_equal(
        store_client_load(db.conn, &keys, "x'; DROP TABLE clients; --", &c, err, sizeof err), 1);
    cry_keys_t wrong;
    assert_int_equal(
        cry_keys_load(&wrong, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", err, sizeof err), 0);
    assert_int_equal(store_client_load(db.conn, &wrong, id, &c, err, sizeof err), -1);
    assert_null(strstr(err, "Asha"));
}

static void test_client_partial_update(void **state)
{
    (void)state;
    char id[37];
    new_client(id, "Ravi", "ravi@example.com", "+919800000001");
    char *sms_at1 = scalar("SELECT consent_sms_at::text FROM clients WHERE id = $1::uuid", id);
    char *wa_at1 = scalar(
        "SELECT COALESCE(consent_whatsapp_at::text, 'none') FROM clients WHERE id = $1::uuid", id);

    /* a later request carrying only a new email and a WhatsApp opt-in */
    store_client_t u;
    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "%s", id);
    u.email = (char *)"ravi.new@example.com";
    u.consent[CH_EMAIL] = -1;
    u.consent[CH_SMS] = -1;
    u.consent[CH_WHATSAPP] = 1;
    char err[256];
    assert_int_equal(store_client_upsert(db.conn, &keys, &u, err, sizeof err), 0);

    store_client_t c;
    assert_int_equal(store_client_load(db.conn, &keys, id, &c, err, sizeof err), 0);
    assert_string_equal(c.name, "Ravi");
    assert_string_equal(c.email, "ravi.new@example.com");
    assert_string_equal(c.phone, "+919800000001");
    assert_string_equal(c.timezone, "Asia/Kolkata");
    assert_int_equal(c.consent[CH_SMS], 1);
    assert_int_equal(c.consent[CH_WHATSAPP], 1);
    store_client_free(&c);

    char *sms_at2 = scalar("SELECT consent_sms_at::text FROM clients WHERE id = $1::uuid", id);
    char *wa_at2 = scalar(
        "SELECT COALESCE(consent_whatsapp_at::text, 'none') FROM clients WHERE id = $1::uuid", id);
    assert_string_equal(sms_at1, sms_at2); /* unchanged consent keeps its time */
    assert_string_not_equal(wa_at2, "none");
    assert_string_not_equal(wa_at1, wa_at2);
    free(sms_at1);
    free(sms_at2);
    free(wa_at1);
    free(wa_at2);

    /* one preferences row, not two */
    char *n = scalar("SELECT count(*) FROM client_preferences WHERE client_id = $1::uuid", id);
    assert_string_equal(n, "1");
    free(n);

    /* the old address no longer finds the client; the new one does */
    char bidx[65];
    assert_int_equal(cry_blind_index(&keys, "email", "ravi@example.com", bidx), 0);
    n = scalar("SELECT count(*) FROM clients WHERE email_bidx = $1", bidx);
    assert_string_equal(n, "0");
    free(n);
}

/* The transaction helpers: a savepoint undoes only what came after it, and
 * a name that is not a plain identifier never reaches the server. */
static void test_transaction_helpers(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(db_begin(db.conn, err, sizeof err), 0);
    char kept[37], undone[37];
    new_client(kept, "Kept", NULL, NULL);
    assert_int_equal(db_savepoint(db.conn, "req", err, sizeof err), 0);
    new_client(undone, "Undone", NULL, NULL);
    assert_int_equal(db_rollback_to(db.conn, "req", err, sizeof err), 0);
    assert_int_equal(db_release(db.conn, "req", err, sizeof err), 0);
    assert_int_equal(db_savepoint(db.conn, "req; COMMIT", err, sizeof err), -1);
    assert_int_equal(db_savepoint(db.conn, "Req", err, sizeof err), -1);
    assert_int_equal(db_savepoint(db.conn, "", err, sizeof err), -1);
    assert_int_equal(db_listen(db.conn, "crier work", err, sizeof err), -1);
    assert_int_equal(PQtransactionStatus(db.conn), PQTRANS_INTRANS);
    assert_int_equal(db_commit(db.conn, err, sizeof err), 0);
    char *n = scalar("SELECT count(*) FROM clients WHERE id = $1::uuid", kept);
    assert_string_equal(n, "1");
    free(n);
    n = scalar("SELECT count(*) FROM clients WHERE id = $1::uuid", undone);
    assert_string_equal(n, "0");
    free(n);

    assert_int_equal(db_begin(db.conn, err, sizeof err), 0);
    new_client(undone, "Undone", NULL, NULL);
    assert_int_equal(db_rollback(db.conn, err, sizeof err), 0);
    n = scalar("SELECT count(*) FROM clients WHERE id = $1::uuid", undone);
    assert_string_equal(n, "0");
    free(n);
}

/* The one-row upsert is the batch one: "" clears a field, NULL keeps it,
 * and a malformed id is refused before any SQL. */
static void test_client_clear_field(void **state)
{
    (void)state;
    char id[37];
    new_client(id, "Mira", "mira@example.com", "+919800000002");
    store_client_t u;
    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "%s", id);
    u.phone = (char *)"";
    u.consent[CH_EMAIL] = u.consent[CH_SMS] = u.consent[CH_WHATSAPP] = -1;
    char err[256];
    assert_int_equal(store_client_upsert(db.conn, &keys, &u, err, sizeof err), 0);
    store_client_t c;
    assert_int_equal(store_client_load(db.conn, &keys, id, &c, err, sizeof err), 0);
    assert_string_equal(c.name, "Mira");
    assert_string_equal(c.email, "mira@example.com");
    assert_null(c.phone);
    store_client_free(&c);
    char *n = scalar("SELECT (phone_bidx IS NULL)::text FROM clients WHERE id = $1::uuid", id);
    assert_string_equal(n, "true");
    free(n);
    snprintf(u.id, sizeof u.id, "%s", "not-a-uuid");
    assert_int_equal(store_client_upsert(db.conn, &keys, &u, err, sizeof err), -1);
    assert_string_equal(err, "client id is not a UUID");
}

static void fill_comm(store_comm_new_t *c, const char *plan, const char *client, const char *key,
                      const char *hash)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(cry_uuid4(c->id), 0);
    c->plan_id = plan;
    c->client_id = client;
    c->message_type = "vendor_options";
    c->urgency = "high";
    c->context_json = "{\"event_type\": \"wedding\"}";
    c->idempotency_key = key;
    c->request_hash = hash;
    c->status = "queued";
    c->channel = "whatsapp";
    c->fallback_json = "[\"sms\", \"email\"]";
    c->send_at = (double)time(NULL);
    c->priority = 1;
    c->decision_json = "{\"primary_channel\": \"whatsapp\", \"priority\": 1}";
    c->rules_version = "abc123";
}

static void test_idempotent_insert(void **state)
{
    (void)state;
    char client[37], plan[37];
    new_client(client, "Mira", "mira@example.com", NULL);
    assert_int_equal(cry_uuid4(plan), 0);
    store_comm_new_t c;
    fill_comm(&c, plan, client, "key-1", "hash-a");
    c.response_json = "{\"communication_id\": \"x\", \"status\": \"queued\"}";
    store_insert_outcome_t out;
    char *replay = NULL;
    char err[256];
    assert_int_equal(store_comm_insert(db.conn, &c, &out, &replay, err, sizeof err), 0);
    assert_int_equal(out, STORE_INSERTED);
    assert_null(replay);

    /* same key, same body: the stored answer, and no new row */
    store_comm_new_t again;
    fill_comm(&again, plan, client, "key-1", "hash-a");
    assert_int_equal(store_comm_insert(db.conn, &again, &out, &replay, err, sizeof err), 0);
    assert_int_equal(out, STORE_REPLAY);
    assert_non_null(replay);
    cJSON *j = cJSON_Parse(replay);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "queued");
    cJSON_Delete(j);
    free(replay);
    replay = NULL;

    /* same key, different body */
    fill_comm(&again, plan, client, "key-1", "hash-b");
    assert_int_equal(store_comm_insert(db.conn, &again, &out, &replay, err, sizeof err), 0);
    assert_int_equal(out, STORE_CONFLICT);
    assert_null(replay);

    /* the same key from another client is a different request */
    char client2[37];
    new_client(client2, "Dev", "dev@example.com", NULL);
    fill_comm(&again, plan, client2, "key-1", "hash-b");
    assert_int_equal(store_comm_insert(db.conn, &again, &out, &replay, err, sizeof err), 0);
    assert_int_equal(out, STORE_INSERTED);

    /* no key: every call is new */
    fill_comm(&again, plan, client, NULL, "hash-c");
    assert_int_equal(store_comm_insert(db.conn, &again, &out, &replay, err, sizeof err), 0);
    assert_int_equal(out, STORE_INSERTED);
    fill_comm(&again, plan, client, NULL, "hash-c");
    assert_int_equal(store_comm_insert(db.conn, &again, &out, &replay, err, sizeof err), 0);
    assert_int_equal(out, STORE_INSERTED);

    char *n = scalar("SELECT count(*) FROM communications WHERE plan_id = $1::uuid", plan);
    assert_string_equal(n, "4");
    free(n);
    /* each new row got exactly one first event */
    n = scalar("SELECT count(*) FROM delivery_events e JOIN communications c"
               " ON c.id = e.communication_id WHERE c.plan_id = $1::uuid",
               plan);
    assert_string_equal(n, "4");
    free(n);
}

static int is_iso_utc(const char *s)
{
    /* 2026-11-24T22:33:50Z */
    if (!s || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != 'Z')
        return 0;
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && !isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_non_null(v);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_get_and_list_json(void **state)
{
    (void)state;
    char client[37], plan[37];
    new_client(client, "Kiran", "kiran@example.com", "+919800000002");
    assert_int_equal(cry_uuid4(plan), 0);
    store_comm_new_t a, b;
    fill_comm(&a, plan, client, NULL, "h1");
    fill_comm(&b, plan, client, NULL, "h2");
    b.status = "pending";
    b.message_type = "budget_summary";
    b.send_at = (double)time(NULL) + 3600;
    store_insert_outcome_t out;
    char *replay = NULL;
    char err[256];
    assert_int_equal(store_comm_insert(db.conn, &a, &out, &replay, err, sizeof err), 0);
    /* make b unambiguously newer */
    char *ignored = scalar("UPDATE communications SET created_at = now() - interval '1 minute',"
                           " status = 'sending' WHERE id = $1::uuid RETURNING id",
                           a.id);
    free(ignored);
    assert_int_equal(store_comm_insert(db.conn, &b, &out, &replay, err, sizeof err), 0);

    char *json = NULL;
    assert_int_equal(store_comm_get_json(db.conn, a.id, &json, err, sizeof err), 0);
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_string_equal(str_of(o, "communication_id"), a.id);
    assert_string_equal(str_of(o, "plan_id"), plan);
    assert_string_equal(str_of(o, "client_id"), client);
    assert_string_equal(str_of(o, "message_type"), "vendor_options");
    assert_string_equal(str_of(o, "urgency"), "high");
    assert_string_equal(str_of(o, "status"), "queued"); /* internal 'sending' */
    assert_string_equal(str_of(o, "channel"), "whatsapp");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "attempts")));
    assert_int_equal(cJSON_GetObjectItem(o, "attempts")->valueint, 0);
    assert_true(is_iso_utc(str_of(o, "send_at")));
    assert_true(is_iso_utc(str_of(o, "created_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "sent_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "delivered_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "error_message")));
    cJSON *dec = cJSON_GetObjectItem(o, "decision");
    assert_true(cJSON_IsObject(dec));
    assert_string_equal(str_of(dec, "primary_channel"), "whatsapp");
    cJSON *events = cJSON_GetObjectItem(o, "events");
    assert_true(cJSON_IsArray(events));
    assert_int_equal(cJSON_GetArraySize(events), 1);
    cJSON *e0 = cJSON_GetArrayItem(events, 0);
    assert_string_equal(str_of(e0, "event_type"), "queued");
    assert_string_equal(str_of(e0, "status"), "queued");
    assert_string_equal(str_of(e0, "channel"), "whatsapp");
    assert_int_equal(cJSON_GetObjectItem(e0, "attempt")->valueint, 0);
    assert_true(is_iso_utc(str_of(e0, "at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e0, "detail")));
    cJSON_Delete(o);
    free(json);

    /* the pending one shows its future send time and a 'scheduled' event */
    assert_int_equal(store_comm_get_json(db.conn, b.id, &json, err, sizeof err), 0);
    o = cJSON_Parse(json);
    assert_string_equal(str_of(o, "status"), "pending");
    assert_string_equal(
        str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "events"), 0), "event_type"), "scheduled");
    cJSON_Delete(o);
    free(json);

    char unknown[37];
    assert_int_equal(cry_uuid4(unknown), 0);
    assert_int_equal(store_comm_get_json(db.conn, unknown, &json, err, sizeof err), 1);
    assert_int_equal(store_comm_get_json(db.conn, "not-a-uuid", &json, err, sizeof err), 1);

    assert_int_equal(store_plan_list_json(db.conn, plan, 50, &json, err, sizeof err), 0);
    o = cJSON_Parse(json);
    assert_non_null(o);
    assert_string_equal(str_of(o, "plan_id"), plan);
    cJSON *list = cJSON_GetObjectItem(o, "communications");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_string_equal(str_of(cJSON_GetArrayItem(list, 0), "communication_id"), b.id);
    assert_string_equal(str_of(cJSON_GetArrayItem(list, 1), "communication_id"), a.id);
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "events"));
    assert_string_equal(str_of(cJSON_GetArrayItem(list, 1), "status"), "queued");
    cJSON_Delete(o);
    free(json);

    assert_int_equal(store_plan_list_json(db.conn, plan, 1, &json, err, sizeof err), 0);
    o = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "communications")), 1);
    cJSON_Delete(o);
    free(json);

    /* an unknown plan has an empty history */
    assert_int_equal(store_plan_list_json(db.conn, unknown, 10, &json, err, sizeof err), 0);
    o = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "communications")), 0);
    cJSON_Delete(o);
    free(json);

    /* last contact follows the newest sent_at */
    char *x = scalar("UPDATE communications SET sent_at = to_timestamp(1700000000)"
                     " WHERE id = $1::uuid RETURNING id",
                     a.id);
    free(x);
    store_client_t c;
    assert_int_equal(store_client_load(db.conn, &keys, client, &c, err, sizeof err), 0);
    assert_true(fabs(c.last_contact_at - 1700000000.0) < 0.001);
    store_client_free(&c);
}

static void test_skipped_and_attachments(void **state)
{
    (void)state;
    char client[37], plan[37];
    new_client(client, "Lee", "lee@example.com", NULL);
    assert_int_equal(cry_uuid4(plan), 0);
    store_comm_new_t c;
    fill_comm(&c, plan, client, NULL, "h");
    c.message_type = "blueprint_delivery";
    unsigned char pdf[300];
    for (size_t i = 0; i < sizeof pdf; i++)
        pdf[i] = (unsigned char)(i * 31); /* includes 0x00 bytes */
    store_attachment_t att[2] = {
        {(char *)"blueprint.pdf", (char *)"application/pdf", pdf, sizeof pdf},
        {(char *)"empty.txt", (char *)"text/plain", (unsigned char *)"", 0},
    };
    c.attachments = att;
    c.n_attachments = 2;
    store_insert_outcome_t out;
    char *replay = NULL;
    char err[256];
    assert_int_equal(store_comm_insert(db.conn, &c, &out, &replay, err, sizeof err), 0);

    store_attachment_t *got = NULL;
    int n = 0;
    assert_int_equal(store_attachments_load(db.conn, c.id, &got, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].filename, "blueprint.pdf");
    assert_string_equal(got[0].content_type, "application/pdf");
    assert_int_equal((int)got[0].len, (int)sizeof pdf);
    assert_memory_equal(got[0].data, pdf, sizeof pdf);
    assert_string_equal(got[1].filename, "empty.txt");
    assert_int_equal((int)got[1].len, 0);
    store_attachments_free(got, n);

    store_comm_new_t s;
    fill_comm(&s, plan, client, NULL, "h2");
    s.status = "skipped";
    s.channel = NULL;
    s.fallback_json = "[]";
    s.skip_reason = "no channel with consent";
    assert_int_equal(store_comm_insert(db.conn, &s, &out, &replay, err, sizeof err), 0);
    char *json = NULL;
    assert_int_equal(store_comm_get_json(db.conn, s.id, &json, err, sizeof err), 0);
    cJSON *o = cJSON_Parse(json);
    assert_string_equal(str_of(o, "status"), "skipped");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "channel")));
    cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "events"), 0);
    assert_string_equal(str_of(e0, "event_type"), "skipped");
    assert_string_equal(str_of(cJSON_GetObjectItem(e0, "detail"), "reason"),
                        "no channel with consent");
    cJSON_Delete(o);
    free(json);

    /* a failure inside the insert leaves nothing behind */
    store_comm_new_t bad;
    fill_comm(&bad, plan, client, NULL, "h3");
    bad.context_json = "{not json";
    assert_int_equal(store_comm_insert(db.conn, &bad, &out, &replay, err, sizeof err), -1);
    assert_int_equal(PQtransactionStatus(db.conn), PQTRANS_IDLE);
    char *cnt = scalar("SELECT count(*) FROM communications WHERE id = $1::uuid", bad.id);
    assert_string_equal(cnt, "0");
    free(cnt);
}

typedef struct pool_waiter {
    db_pool_t *pool;
    PGconn *got;
    volatile int done;
} pool_waiter_t;

static void *pool_wait(void *arg)
{
    pool_waiter_t *w = arg;
    char err[256];
    w->got = db_pool_get(w->pool, err, sizeof err);
    w->done = 1;
    return NULL;
}

static void test_pool(void **state)
{
    (void)state;
    char err[256];
    db_pool_t *pool = db_pool_new(db.url, 2);
    assert_non_null(pool);
    PGconn *c1 = db_pool_get(pool, err, sizeof err);
    PGconn *c2 = db_pool_get(pool, err, sizeof err);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_ptr_not_equal(c1, c2);
    /* sessions are UTC with a statement timeout */
    char *tz = testdb_scalar(c1, "SHOW TimeZone", 0, NULL);
    assert_string_equal(tz, "UTC");
    free(tz);
    char *st = testdb_scalar(c1, "SHOW statement_timeout", 0, NULL);
    assert_string_not_equal(st, "0");
    free(st);

    /* a third user waits until one is handed back */
    pool_waiter_t w = {.pool = pool};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pool_wait, &w), 0);
    struct timespec d = {0, 200 * 1000 * 1000};
    nanosleep(&d, NULL);
    assert_int_equal(w.done, 0);
    /* handed back mid-transaction: the pool rolls it back */
    assert_int_equal(db_exec(c1, "BEGIN", err, sizeof err), 0);
    db_pool_put(pool, c1);
    pthread_join(th, NULL);
    assert_ptr_equal(w.got, c1);
    assert_int_equal(PQtransactionStatus(w.got), PQTRANS_IDLE);
    db_pool_put(pool, w.got);

    /* a connection whose server session died comes back usable */
    char pid[32];
    snprintf(pid, sizeof pid, "%d", PQbackendPID(c2));
    char *k = scalar("SELECT pg_terminate_backend($1::int)", pid);
    assert_string_equal(k, "t");
    free(k);
    nanosleep(&d, NULL);
    db_pool_put(pool, c2);
    PGconn *c = NULL, *again[2];
    for (int i = 0; i < 2; i++) {
        again[i] = db_pool_get(pool, err, sizeof err);
        assert_non_null(again[i]);
        if (again[i] != c1)
            c = again[i];
    }
    assert_non_null(c);
    char *one = testdb_scalar(c, "SELECT 1", 0, NULL);
    assert_non_null(one);
    assert_string_equal(one, "1");
    free(one);
    db_pool_put(pool, again[0]);
    db_pool_put(pool, again[1]);
    db_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_round_trip),
        cmocka_unit_test(test_client_partial_update),
        cmocka_unit_test(test_client_clear_field),
        cmocka_unit_test(test_transaction_helpers),
        cmocka_unit_test(test_idempotent_insert),
        cmocka_unit_test(test_get_and_list_json),
        cmocka_unit_test(test_skipped_and_attachments),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
