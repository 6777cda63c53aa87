#include "store/migrate.h"
#include "util/file.h"

#include "crypto/crypto.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Session advisory lock held for a whole run ("crier migrate" as a number;
 * any fixed value works as long as every instance uses the same one). */
#define MIGRATE_LOCK_KEY  "7165916604886573"
#define MIGRATE_FILE_MAX  (1024 * 1024) /* a migration is reviewed SQL, not data */
#define MIGRATE_FILES_MAX 1000
#define MIGRATE_NAME_MAX  256

typedef struct migrate_file {
    long version;
    char name[MIGRATE_NAME_MAX]; /* file name without the directory */
} migrate_file_t;

static int migrate_cmp(const void *a, const void *b)
{
    long va = ((const migrate_file_t *)a)->version, vb = ((const migrate_file_t *)b)->version;
    return va < vb ? -1 : va > vb;
}

/* NNN_anything.sql, with at least one digit; returns the version or -1. */
static long migrate_parse_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 6 || n >= MIGRATE_NAME_MAX || strcmp(name + n - 4, ".sql") != 0)
        return -1;
    size_t i = 0;
    long v = 0;
    while (i < n && isdigit((unsigned char)name[i])) {
        if (v > 100000000)
            return -1;
        v = v * 10 + (name[i] - '0');
        i++;
    }
    if (i == 0 || name[i] != '_')
        return -1;
    return v;
}

static int migrate_list(const char *dir, migrate_file_t **out, int *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(errno));
        return -1;
    }
    migrate_file_t *files = NULL;
    int count = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long v = migrate_parse_name(e->d_name);
        if (v < 0)
            continue;
        if (count == MIGRATE_FILES_MAX) {
            snprintf(err, errlen, "more than %d migration files in %s", MIGRATE_FILES_MAX, dir);
            rc = -1;
            break;
        }
        if (count == cap) {
            int ncap = cap ? cap * 2 : 16;
            migrate_file_t *nf = realloc(files, (size_t)ncap * sizeof *nf);
            if (!nf) {
                snprintf(err, errlen, "out of memory listing migrations");
                rc = -1;
                break;
            }
            files = nf;
            cap = ncap;
        }
        files[count].version = v;
        snprintf(files[count].name, sizeof files[count].name, "%s", e->d_name);
        count++;
    }
    closedir(d);
    if (rc == 0 && count > 0) {
        qsort(files, (size_t)count, sizeof *files, migrate_cmp);
        for (int i = 1; i < count; i++) {
            if (files[i].version == files[i - 1].version) {
                snprintf(err, errlen, "%s and %s have the same version number", files[i - 1].name,
                         files[i].name);
                rc = -1;
                break;
            }
        }
    }
    if (rc != 0) {
        free(files);
        return -1;
    }
    *out = files;
    *n = count;
    return 0;
}

static int migrate_read(const char *dir, const char *name, buf_t *sql, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        snprintf(err, errlen, "%s: path too long", name);
        return -1;
    }
    int rc = file_append(path, name, sql, err, errlen);
    /* PQexec stops at a NUL: the rest of the file would silently not run. */
    if (rc == 0 && memchr(sql->data ? sql->data : "", '\0', sql->len) != NULL) {
        snprintf(err, errlen, "%s: contains a NUL byte", name);
        rc = -1;
    }
    return rc;
}

/* Runs one file and records it, all in one transaction. */
static int migrate_apply(PGconn *conn, const migrate_file_t *f, const char *sql,
                         const char *checksum, char *err, size_t errlen)
{
    char dberr[512];
    if (db_exec(conn, "BEGIN", dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "%s: %s", f->name, dberr);
        return -1;
    }
    /* The one place in crier where SQL text is not parameterised: a
     * migration is trusted SQL shipped in the repository (never input from a
     * request), and a file holds many statements, which only PQexec runs. */
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
        snprintf(err, errlen, "%s: %s", f->name, m);
        size_t n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        PQclear(r);
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
        return -1;
    }
    PQclear(r);
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        snprintf(err, errlen, "%s: must not end the transaction itself (BEGIN/COMMIT)", f->name);
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
        return -1;
    }
    char ver[32];
    snprintf(ver, sizeof ver, "%ld", f->version);
    const char *params[] = {ver, f->name, checksum};
    r = db_query(conn,
                 "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                 "VALUES ($1, $2, $3, now())",
                 3, params, dberr, sizeof dberr);
    if (!r || db_exec(conn, "COMMIT", dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "%s: %s", f->name, dberr);
        PQclear(r);
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
        return -1;
    }
    PQclear(r);
    return 0;
}

/* Work done while holding the advisory lock. */
static int migrate_locked(PGconn *conn, const char *dir, const migrate_file_t *files, int nfiles,
                          int *applied, char *err, size_t errlen)
{
    char dberr[512];
    if (db_exec(conn,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "schema_migrations: %s", dberr);
        return -1;
    }
    PGresult *done = db_query(conn, "SELECT version, checksum FROM schema_migrations", 0, NULL,
                              dberr, sizeof dberr);
    if (!done) {
        snprintf(err, errlen, "schema_migrations: %s", dberr);
        return -1;
    }
    int rc = 0, rows = PQntuples(done);
    buf_t sql;
    buf_init(&sql, MIGRATE_FILE_MAX);
    for (int i = 0; i < nfiles && rc == 0; i++) {
        buf_reset(&sql);
        if (migrate_read(dir, files[i].name, &sql, err, errlen) != 0) {
            rc = -1;
            break;
        }
        char sum[65];
        cry_sha256_hex(sql.data ? sql.data : "", sql.len, sum);
        const char *recorded = NULL;
        for (int j = 0; j < rows; j++) {
            if (strtol(PQgetvalue(done, j, 0), NULL, 10) == files[i].version) {
                recorded = PQgetvalue(done, j, 1);
                break;
            }
        }
        if (recorded) {
            if (strcmp(recorded, sum) != 0) {
                snprintf(err, errlen,
                         "%s was changed after it was applied (checksum differs); "
                         "add a new migration instead",
                         files[i].name);
                rc = -1;
            }
            continue;
        }
        if (migrate_apply(conn, &files[i], sql.data ? sql.data : "", sum, err, errlen) != 0) {
            rc = -1;
            break;
        }
        (*applied)++;
        log_info("migrate", "applied", "file", files[i].name, NULL);
    }
    buf_free(&sql);
    PQclear(done);
    return rc;
}

int migrate_run(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    migrate_file_t *files = NULL;
    int nfiles = 0;
    if (migrate_list(dir, &files, &nfiles, err, errlen) != 0)
        return -1;

    char dberr[512];
    /* Waiting for another instance's run, or a slow migration, must not trip
     * the session's statement timeout; RESET restores the connection default. */
    if (db_exec(conn, "SET statement_timeout = 0", dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "migrate: %s", dberr);
        free(files);
        return -1;
    }
    const char *key[] = {MIGRATE_LOCK_KEY};
    PGresult *r =
        db_query(conn, "SELECT pg_advisory_lock($1::bigint)", 1, key, dberr, sizeof dberr);
    if (!r) {
        snprintf(err, errlen, "migrate: taking the migration lock: %s", dberr);
        (void)db_exec(conn, "RESET statement_timeout", dberr, sizeof dberr);
        free(files);
        return -1;
    }
    PQclear(r);

    int rc = migrate_locked(conn, dir, files, nfiles, applied, err, errlen);

    /* Released on every path; if the connection itself broke, the server
     * drops a session lock with the session anyway. */
    r = db_query(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, key, dberr, sizeof dberr);
    PQclear(r);
    if (db_exec(conn, "RESET statement_timeout", dberr, sizeof dberr) != 0 && rc == 0) {
        snprintf(err, errlen, "migrate: %s", dberr);
        rc = -1;
    }
    free(files);
    return rc;
}
