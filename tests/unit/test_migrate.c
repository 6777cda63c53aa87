/* migrate: ordered, once-only, concurrent-safe, checksum-guarded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testdb.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *sql_dir(void)
{
    static char dir[1024];
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src)
        fail_msg("CRIER_SOURCE_DIR is not set (ctest sets it)");
    snprintf(dir, sizeof dir, "%s/sql", src);
    return dir;
}

static int count_sql_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".sql") == 0 && e->d_name[0] >= '0' &&
            e->d_name[0] <= '9')
            n++;
    }
    closedir(d);
    return n;
}

static long scalar_long(PGconn *c, const char *sql)
{
    char *v = testdb_scalar(c, sql, 0, NULL);
    assert_non_null(v);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static void test_fresh_then_up_to_date(void **state)
{
    (void)state;
    testdb_t t;
    if (testdb_create(&t, 0) != 0)
        fail_msg("test database unavailable");
    int files = count_sql_files(sql_dir());
    assert_true(files >= 1);
    char err[512];
    int applied = -1;
    assert_int_equal(migrate_run(t.conn, sql_dir(), &applied, err, sizeof err), 0);
    assert_int_equal(applied, files);
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM schema_migrations"), files);
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM information_schema.tables"
                                         " WHERE table_schema = 'public' AND table_name IN"
                                         " ('clients', 'client_preferences', 'communications',"
                                         " 'communication_attachments', 'delivery_events',"
                                         " 'inbound_messages', 'workflow_callbacks', 'audit_log',"
                                         " 'crm_communication_analytics')"),
                     9);
    /* the claim index exists and is partial */
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM pg_indexes WHERE indexname ="
                                         " 'communications_claim_idx' AND indexdef LIKE '%WHERE%'"),
                     1);

    applied = -1;
    assert_int_equal(migrate_run(t.conn, sql_dir(), &applied, err, sizeof err), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM schema_migrations"), files);
    /* the session lock is released after a run (pg_locks is cluster-wide:
     * look at this session only, other tests take advisory locks too) */
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM pg_locks WHERE locktype ="
                                         " 'advisory' AND pid = pg_backend_pid()"),
                     0);
    testdb_destroy(&t);
}

typedef struct runner {
    const char *url;
    const char *dir; /* borrowed: sql_dir()'s buffer, filled before the threads start */
    int rc;
    int applied;
    char err[512];
} runner_t;

static void *run_migrate(void *arg)
{
    runner_t *r = arg;
    PGconn *c = db_connect(r->url, r->err, sizeof r->err);
    if (!c) {
        r->rc = -2;
        return NULL;
    }
    r->rc = migrate_run(c, r->dir, &r->applied, r->err, sizeof r->err);
    PQfinish(c);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    testdb_t t;
    if (testdb_create(&t, 0) != 0)
        fail_msg("test database unavailable");
    const char *dir = sql_dir();
    int files = count_sql_files(dir);
    runner_t r[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].url = t.url;
        r[i].dir = dir;
        assert_int_equal(pthread_create(&th[i], NULL, run_migrate, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        if (r[i].rc != 0)
            fail_msg("runner %d failed: %s", i, r[i].err);
        total += r[i].applied;
    }
    assert_int_equal(total, files);
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM schema_migrations"), files);
    assert_int_equal(scalar_long(t.conn, "SELECT count(DISTINCT version) FROM schema_migrations"),
                     files);
    testdb_destroy(&t);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void test_checksum_and_failure(void **state)
{
    (void)state;
    testdb_t t;
    if (testdb_create(&t, 0) != 0)
        fail_msg("test database unavailable");
    /* in the working directory (the build tree under ctest) */
    char dir[] = "migrate_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "001_a.sql", "CREATE TABLE a (x int);\n");
    write_file(dir, "010_b.sql", "CREATE TABLE b (x int);\nINSERT INTO b VALUES (1);\n");
    write_file(dir, "notes.txt", "not a migration");
    write_file(dir, "2_c.sql", "CREATE TABLE c (x int);\n"); /* sorted by number: 2 < 10 */
    char err[512];
    int applied = 0;
    assert_int_equal(migrate_run(t.conn, dir, &applied, err, sizeof err), 0);
    assert_int_equal(applied, 3);
    char *order = testdb_scalar(
        t.conn, "SELECT string_agg(name, ',' ORDER BY applied_at, version) FROM schema_migrations",
        0, NULL);
    assert_string_equal(order, "001_a.sql,2_c.sql,010_b.sql");
    free(order);

    /* a broken file: nothing of it stays, it is not recorded, the error names it */
    write_file(dir, "011_bad.sql", "CREATE TABLE d (x int);\nSELECT no_such_column FROM a;\n");
    assert_int_equal(migrate_run(t.conn, dir, &applied, err, sizeof err), -1);
    assert_non_null(strstr(err, "011_bad.sql"));
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM schema_migrations"), 3);
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM information_schema.tables"
                                         " WHERE table_name = 'd'"),
                     0);
    assert_int_equal(scalar_long(t.conn, "SELECT count(*) FROM pg_locks WHERE locktype ="
                                         " 'advisory' AND pid = pg_backend_pid()"),
                     0);
    char path[1024];
    snprintf(path, sizeof path, "%s/011_bad.sql", dir);
    unlink(path);

    /* an applied file that changed is refused, by name */
    write_file(dir, "001_a.sql", "CREATE TABLE a (x int, y int);\n");
    assert_int_equal(migrate_run(t.conn, dir, &applied, err, sizeof err), -1);
    assert_non_null(strstr(err, "001_a.sql"));
    assert_non_null(strstr(err, "checksum"));

    /* two files with one number are ambiguous */
    write_file(dir, "001_a.sql", "CREATE TABLE a (x int);\n");
    write_file(dir, "02_dup.sql", "SELECT 1;\n");
    assert_int_equal(migrate_run(t.conn, dir, &applied, err, sizeof err), -1);
    assert_non_null(strstr(err, "same version"));

    assert_int_equal(migrate_run(t.conn, "no_such_directory", &applied, err, sizeof err), -1);
    remove_dir(dir);
    testdb_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_then_up_to_date),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_checksum_and_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
