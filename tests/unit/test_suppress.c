/* suppress: the email suppression list on a real database. A hard bounce
 * suppresses the address (by blind index, never in clear), once; every
 * client with that address sees it in its facts and its loaded row, and
 * its preference version moves; a client given another address is no
 * longer suppressed, and its version moves too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"

#include "crypto/crypto.h"
#include "store/store.h"
#include "store/suppress.h"
#include "util/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static testdb_t db;
static cry_keys_t keys;

static int setup(void **state)
{
    (void)state;
    if (testdb_create(&db, 1) != 0)
        return -1;
    unsigned char raw[32];
    memset(raw, 7, sizeof raw);
    buf_t b;
    buf_init(&b, 128);
    char err[256];
    int rc =
        b64_encode(&b, raw, sizeof raw, 0) != 0 || cry_keys_load(&keys, b.data, err, sizeof err);
    buf_free(&b);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    testdb_destroy(&db);
    return 0;
}

/* A client with email (and nothing else given); id filled in. */
static void make_client(char id[37], const char *email)
{
    store_client_t c;
    memset(&c, 0, sizeof c);
    assert_int_equal(cry_uuid4(id), 0);
    snprintf(c.id, sizeof c.id, "%s", id);
    c.email = (char *)email;
    c.consent[CH_EMAIL] = c.consent[CH_SMS] = c.consent[CH_WHATSAPP] = -1;
    char err[256];
    if (store_client_upsert(db.conn, &keys, &c, err, sizeof err) != 0)
        fail_msg("upsert: %s", err);
}

static void set_email(const char *id, const char *email)
{
    store_client_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%s", id);
    c.email = (char *)email;
    c.consent[CH_EMAIL] = c.consent[CH_SMS] = c.consent[CH_WHATSAPP] = -1;
    char err[256];
    if (store_client_upsert(db.conn, &keys, &c, err, sizeof err) != 0)
        fail_msg("upsert: %s", err);
}

static store_client_facts_t facts_of(const char *id)
{
    store_client_facts_t f;
    const char *ids[] = {id};
    char err[256];
    if (store_client_facts_load(db.conn, ids, 1, &f, err, sizeof err) != 0)
        fail_msg("facts: %s", err);
    assert_int_equal(f.found, 1);
    return f;
}

static int suppressed_facts(const char *id, long long *version)
{
    store_client_facts_t f = facts_of(id);
    int s = f.email_suppressed;
    if (version)
        *version = f.prefs_version;
    store_client_facts_free(&f, 1);
    return s;
}

static void loaded(const char *id, store_client_t *out)
{
    char err[256];
    if (store_client_load(db.conn, &keys, id, out, err, sizeof err) != 0)
        fail_msg("load: %s", err);
}

static int changed_has(char changed[SUPP_CHANGED_MAX][37], int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (strcmp(changed[i], id) == 0)
            return 1;
    return 0;
}

static void test_bounce_suppresses_by_index(void **state)
{
    (void)state;
    char a[37], b[37], other[37];
    make_client(a, "Gone@Example.com");
    make_client(b, "gone@example.com "); /* the same address, typed otherwise */
    make_client(other, "here@example.com");
    store_client_t ca;
    loaded(a, &ca);
    assert_int_equal(strlen(ca.email_bidx), 64);
    assert_int_equal(ca.email_suppressed, 0);
    long long va = 0, vb = 0, vo = 0;
    assert_int_equal(suppressed_facts(a, &va), 0);
    assert_int_equal(suppressed_facts(b, &vb), 0);
    assert_int_equal(suppressed_facts(other, &vo), 0);

    char changed[SUPP_CHANGED_MAX][37];
    int n = 0, created = 0;
    char err[256];
    supp_bounce_t bounce = {.email_bidx = ca.email_bidx,
                            .smtp_code = 550,
                            .enhanced = "5.1.1",
                            .communication_id = "7d1e4c2a-5b3f-4e6d-8a9b-0c1d2e3f4a5b"};
    if (supp_hard_bounce(db.conn, &bounce, &created, changed, &n, err, sizeof err) != 0)
        fail_msg("bounce: %s", err);
    assert_int_equal(created, 1);
    assert_int_equal(n, 2);
    assert_true(changed_has(changed, n, a) && changed_has(changed, n, b));

    /* both clients of the address see it, with a new version; the other not */
    long long va2 = 0, vb2 = 0, vo2 = 0;
    assert_int_equal(suppressed_facts(a, &va2), 1);
    assert_int_equal(suppressed_facts(b, &vb2), 1);
    assert_int_equal(suppressed_facts(other, &vo2), 0);
    assert_true(va2 != va && vb2 != vb);
    assert_true(vo2 == vo);
    store_client_t cb;
    loaded(b, &cb);
    assert_int_equal(cb.email_suppressed, 1);
    store_client_free(&cb);

    /* again: idempotent, the first entry kept */
    bounce.smtp_code = 554;
    bounce.enhanced = "5.2.1";
    if (supp_hard_bounce(db.conn, &bounce, &created, changed, &n, err, sizeof err) != 0)
        fail_msg("bounce again: %s", err);
    assert_int_equal(created, 0);
    char *v = testdb_scalar(db.conn,
                            "SELECT count(*) || '|' || min(smtp_code) || '|' || min(enhanced_code)"
                            " || '|' || min(reason) || '|' || count(communication_id)"
                            " FROM email_suppressions",
                            0, NULL);
    /* the communication named does not exist: the entry keeps none */
    assert_string_equal(v, "1|550|5.1.1|hard_bounce|0");
    free(v);
    /* nothing in the table is the address */
    v = testdb_scalar(db.conn,
                      "SELECT count(*) FROM email_suppressions s"
                      " WHERE to_jsonb(s)::text ILIKE '%gone%' OR to_jsonb(s)::text LIKE '%@%'",
                      0, NULL);
    assert_string_equal(v, "0");
    free(v);

    /* a new address for a: another index, not suppressed, version moved */
    long long va3 = 0;
    set_email(a, "new@example.com");
    assert_int_equal(suppressed_facts(a, &va3), 0);
    assert_true(va3 != va2);
    store_client_t ca2;
    loaded(a, &ca2);
    assert_int_equal(ca2.email_suppressed, 0);
    assert_string_not_equal(ca2.email_bidx, ca.email_bidx);
    store_client_free(&ca2);
    /* the same address given again changes nothing */
    set_email(a, "new@example.com");
    long long va4 = 0;
    assert_int_equal(suppressed_facts(a, &va4), 0);
    assert_true(va4 == va3);
    assert_int_equal(suppressed_facts(b, NULL), 1);

    /* an entry removed by hand moves the version back */
    long long vb3 = 0;
    const char *p[] = {ca.email_bidx};
    v = testdb_scalar(db.conn,
                      "WITH d AS (DELETE FROM email_suppressions WHERE email_bidx = $1"
                      " RETURNING 1) SELECT count(*) FROM d",
                      1, p);
    assert_string_equal(v, "1");
    free(v);
    assert_int_equal(suppressed_facts(b, &vb3), 0);
    assert_true(vb3 != vb2);
    store_client_free(&ca);
}

static void test_refused(void **state)
{
    (void)state;
    char changed[SUPP_CHANGED_MAX][37];
    int n = 0, created = 0;
    char err[256];
    supp_bounce_t bad = {.email_bidx = "not-an-index", .smtp_code = 550, .enhanced = "5.1.1"};
    assert_int_equal(supp_hard_bounce(db.conn, &bad, &created, changed, &n, err, sizeof err), -1);
    assert_int_equal(created, 0);
    bad.email_bidx = "";
    assert_int_equal(supp_hard_bounce(db.conn, &bad, &created, changed, &n, err, sizeof err), -1);
    assert_int_equal(supp_hard_bounce(db.conn, NULL, &created, changed, &n, err, sizeof err), -1);
    char *v = testdb_scalar(db.conn, "SELECT count(*) FROM email_suppressions", 0, NULL);
    assert_string_equal(v, "0");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounce_suppresses_by_index),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
