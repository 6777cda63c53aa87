/* testdb: a throw-away PostgreSQL database per test program.
 *
 * CRIER_TEST_DATABASE_URL names a maintenance database (e.g. postgres) on a
 * cluster where the test user may CREATE DATABASE; `make check` starts such a
 * cluster and exports it. Without it the tests fail: a data-layer test that
 * skips when the database is missing proves nothing.
 *
 * Header-only (static functions) because every tests/unit/test_*.c is its
 * own program linked against crier_core alone. */
#ifndef CRIER_TESTDB_H
#define CRIER_TESTDB_H

#include "store/db.h"
#include "store/migrate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct testdb {
    char name[64];  /* the database created for this run */
    char url[2048]; /* conninfo string reaching it, for db_connect */
    PGconn *conn;   /* owned: a connection to it (NULL until testdb_open) */
} testdb_t;

static int testdb_seq;

/* Appends key='value' with libpq's quoting rules. */
static int testdb_conninfo_add(char *out, size_t outlen, const char *key, const char *val)
{
    size_t len = strlen(out);
    int n = snprintf(out + len, outlen - len, "%s%s='", len ? " " : "", key);
    if (n < 0 || (size_t)n >= outlen - len)
        return -1;
    len += (size_t)n;
    for (const char *p = val; *p; p++) {
        if (len + 3 >= outlen)
            return -1;
        if (*p == '\'' || *p == '\\')
            out[len++] = '\\';
        out[len++] = *p;
    }
    if (len + 2 >= outlen)
        return -1;
    out[len++] = '\'';
    out[len] = '\0';
    return 0;
}

/* Builds t->url: every setting of the maintenance URL, with dbname replaced. */
static int testdb_url_for(testdb_t *t, const char *admin_url)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(admin_url, &perr);
    if (!opts) {
        fprintf(stderr, "testdb: cannot parse CRIER_TEST_DATABASE_URL: %s\n",
                perr ? perr : "out of memory");
        PQfreemem(perr);
        return -1;
    }
    t->url[0] = '\0';
    int rc = 0;
    for (PQconninfoOption *o = opts; o->keyword && rc == 0; o++) {
        if (!o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        rc = testdb_conninfo_add(t->url, sizeof t->url, o->keyword, o->val);
    }
    if (rc == 0)
        rc = testdb_conninfo_add(t->url, sizeof t->url, "dbname", t->name);
    PQconninfoFree(opts);
    return rc;
}

static int testdb_admin_exec(const char *admin_url, const char *sql)
{
    char err[512];
    PGconn *admin = db_connect(admin_url, err, sizeof err);
    if (!admin) {
        fprintf(stderr, "testdb: cannot connect to CRIER_TEST_DATABASE_URL: %s\n", err);
        return -1;
    }
    int rc = db_exec(admin, sql, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "testdb: %s: %s\n", sql, err);
    PQfinish(admin);
    return rc;
}

/* Creates a fresh database; with migrate set, applies <CRIER_SOURCE_DIR>/sql.
 * Returns 0, or -1 after printing why. */
static int testdb_create(testdb_t *t, int migrate)
{
    memset(t, 0, sizeof *t);
    const char *admin = getenv("CRIER_TEST_DATABASE_URL");
    if (!admin || !*admin) {
        fprintf(stderr, "testdb: CRIER_TEST_DATABASE_URL is not set; these tests need a "
                        "PostgreSQL cluster where the test user may CREATE DATABASE "
                        "(make check provides one)\n");
        return -1;
    }
    unsigned rnd = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8);
    snprintf(t->name, sizeof t->name, "crier_test_%d_%d_%x", (int)getpid(), testdb_seq++, rnd);
    char sql[160];
    /* the name is made of digits, letters and underscores only: safe to
     * splice into DDL, which takes no parameters */
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", t->name);
    if (testdb_url_for(t, admin) != 0 || testdb_admin_exec(admin, sql) != 0)
        return -1;
    char err[1024];
    t->conn = db_connect(t->url, err, sizeof err);
    if (!t->conn) {
        fprintf(stderr, "testdb: cannot connect to %s: %s\n", t->name, err);
        return -1;
    }
    if (!migrate)
        return 0;
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src || !*src) {
        fprintf(stderr, "testdb: CRIER_SOURCE_DIR is not set (ctest sets it)\n");
        return -1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sql", src);
    int applied = 0;
    if (migrate_run(t->conn, dir, &applied, err, sizeof err) != 0) {
        fprintf(stderr, "testdb: migrations failed: %s\n", err);
        return -1;
    }
    return 0;
}

/* Closes the connection and drops the database (FORCE ends any connection a
 * failed test left open). */
static void testdb_destroy(testdb_t *t)
{
    if (t->conn)
        PQfinish(t->conn);
    t->conn = NULL;
    if (!t->name[0])
        return;
    const char *admin = getenv("CRIER_TEST_DATABASE_URL");
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->name);
    if (admin)
        (void)testdb_admin_exec(admin, sql);
    t->name[0] = '\0';
}

/* Runs SQL in the test database and returns the first column of the first
 * row as a new string ("" when no rows); NULL on error. For assertions. */
static char *testdb_scalar(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    char err[512];
    PGresult *r = db_query(conn, sql, nparams, params, err, sizeof err);
    if (!r) {
        fprintf(stderr, "testdb: %s: %s\n", sql, err);
        return NULL;
    }
    char *v = strdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return v;
}

#endif
