/* The record of template versions: a version is recorded once, numbered
 * in order of first use per name and channel; a process that did not record
 * it finds the row another one wrote; several connections meeting one new
 * version at once make one row and all get its id. */
#include "store/db.h"
#include "store/templates.h"
#include "testdb.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static testdb_t db;

static int setup(void **state)
{
    (void)state;
    return testdb_create(&db, 1);
}

static int teardown(void **state)
{
    (void)state;
    testdb_destroy(&db);
    return 0;
}

static char *scalar(const char *sql)
{
    char *v = testdb_scalar(db.conn, sql, 0, NULL);
    assert_non_null(v);
    return v;
}

static store_template_t version(const char *hash)
{
    return (store_template_t){.name = "reminder",
                              .channel = "email",
                              .hash = hash,
                              .subject = "A reminder",
                              .content = "Hi {{client_name}}",
                              .files_json = "{\"email/reminder.txt\":\"Hi {{client_name}}\"}"};
}

static void test_once_and_numbered(void **state)
{
    (void)state;
    char err[256], a[37], b[37], again[37], other[37];
    store_tplseen_t *seen = store_tplseen_new();
    assert_non_null(seen);
    store_template_t va = version("00000000000000aa"), vb = version("00000000000000bb");
    assert_int_equal(store_template_record(db.conn, seen, &va, a, err, sizeof err), 0);
    assert_int_equal(store_template_record(db.conn, seen, &vb, b, err, sizeof err), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(store_tplseen_get(seen, "reminder", "email", "00000000000000aa", again), 1);
    assert_string_equal(again, a);
    assert_int_equal(store_tplseen_get(seen, "reminder", "sms", "00000000000000aa", again), 0);

    /* another process (its own memory) finds the row, writes none */
    store_tplseen_t *fresh = store_tplseen_new();
    assert_int_equal(store_template_record(db.conn, fresh, &va, other, err, sizeof err), 0);
    assert_string_equal(other, a);
    store_tplseen_free(fresh);
    char *v = scalar("SELECT string_agg(hash || ':' || version, ',' ORDER BY version)"
                     " FROM crm_communication_templates");
    assert_string_equal(v, "00000000000000aa:1,00000000000000bb:2");
    free(v);
    /* another channel numbers on its own */
    store_template_t sms = va;
    sms.channel = "sms";
    sms.subject = NULL;
    assert_int_equal(store_template_record(db.conn, seen, &sms, other, err, sizeof err), 0);
    v = scalar("SELECT version FROM crm_communication_templates WHERE channel = 'sms'");
    assert_string_equal(v, "1");
    free(v);
    /* a bad hash is refused by the table and nothing is remembered */
    store_template_t bad = version("not-a-hash");
    assert_int_equal(store_template_record(db.conn, seen, &bad, other, err, sizeof err), -1);
    assert_int_equal(store_tplseen_get(seen, "reminder", "email", "not-a-hash", other), 0);
    store_tplseen_free(seen);
}

#define RACERS 4

typedef struct racer {
    char id[37];
    int rc;
    char err[256];
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    PGconn *c = db_connect(db.url, r->err, sizeof r->err);
    if (!c) {
        r->rc = -1;
        return NULL;
    }
    store_tplseen_t *seen = store_tplseen_new(); /* a process of its own */
    store_template_t t = version("00000000000000cc");
    r->rc = store_template_record(c, seen, &t, r->id, r->err, sizeof r->err);
    store_tplseen_free(seen);
    PQfinish(c);
    return NULL;
}

static void test_processes_meet_one_version(void **state)
{
    (void)state;
    racer_t r[RACERS];
    pthread_t th[RACERS];
    memset(r, 0, sizeof r);
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACERS; i++) {
        if (r[i].rc != 0)
            fail_msg("racer %d: %s", i, r[i].err);
        assert_string_equal(r[i].id, r[0].id);
    }
    char *v = scalar("SELECT count(*) || '/' || max(version) FROM crm_communication_templates"
                     " WHERE template_name = 'reminder' AND channel = 'email'"
                     " AND hash = '00000000000000cc'");
    assert_string_equal(v, "1/3");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_and_numbered),
        cmocka_unit_test(test_processes_meet_one_version),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
