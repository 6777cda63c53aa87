/* migrate_tokens: the step of `crier migrate` that runs after the SQL files
 * and needs the data key, which SQL does not have. It rewrites the v1
 * tokens of the rows written before 005_bound_tokens.sql as v2 tokens bound
 * to their row, encrypts the subjects and the callback bodies those rows
 * hold in clear, and strips the client's text from delivered callbacks. */
#include "store/migrate.h"

#include "store/db.h"
#include "store/enc_columns.h"
#include "util/buf.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A token of a name, address, number or text is far below this; a larger
 * value is a damaged row, refused rather than allocated for. */
#define MIGRATE_TOKEN_MAX (16u * 1024 * 1024)
/* The token of a value of MIGRATE_TOKEN_MAX bytes: base64 of it with the
 * nonce and the tag, after the prefix. */
#define MIGRATE_OUT_MAX  (MIGRATE_TOKEN_MAX / 3 * 4 + 128)
#define MIGRATE_COLS_MAX ENC_FIELDS_MAX

/* One kind of row to rewrite. The SELECT returns the id (the row id of the
 * tokens' place) and then the columns, locks its rows and takes $1 rows at
 * most; the UPDATE takes the id, the new value of each column and, with
 * with_key_id, the key id. Each statement is fixed text or made of the
 * names in enc_tables: nothing in it comes from a row. */
typedef struct migrate_tok_kind {
    const char *table; /* the place's table */
    const char *columns[MIGRATE_COLS_MAX];
    int ncols;
    int clear; /* 1: the columns hold clear text to encrypt; 0: tokens to rewrite */
    int with_key_id;
    const char *count_sql;
    const char *select_sql;
    const char *update_sql;
} migrate_tok_kind_t;

#define MIGRATE_SUBJECT "(subject IS NOT NULL)"
/* An undelivered callback whose payload still holds more than the event and
 * its ids: its body is encrypted into payload_enc, the payload stripped. */
#define MIGRATE_CALLBACK                                                                           \
    "(payload_enc IS NULL AND state <> 'delivered'"                                                \
    " AND payload IS DISTINCT FROM crier_callback_bare(payload))"

/* The clear columns written before 005_bound_tokens.sql. The tables that
 * may hold v1 tokens come before them, from enc_tables (migrate_tok_v1). */
static const migrate_tok_kind_t migrate_tok_clear[] = {
    {"communications",
     {"subject"},
     1,
     1,
     0,
     "SELECT count(*) FROM communications WHERE " MIGRATE_SUBJECT,
     "SELECT id::text, subject FROM communications"
     " WHERE " MIGRATE_SUBJECT " ORDER BY id LIMIT $1::int FOR UPDATE",
     "UPDATE communications SET subject_enc = $2::text, subject = NULL WHERE id = $1::uuid"},
    {"workflow_callbacks",
     {"payload"},
     1,
     1,
     0,
     "SELECT count(*) FROM workflow_callbacks WHERE " MIGRATE_CALLBACK,
     "SELECT id::text, payload::text FROM workflow_callbacks"
     " WHERE " MIGRATE_CALLBACK " ORDER BY id LIMIT $1::int FOR UPDATE",
     "UPDATE workflow_callbacks SET payload_enc = $2::text,"
     " payload = crier_callback_bare(payload) WHERE id = $1::uuid"},
};

#define MIGRATE_CLEAR ((int)(sizeof migrate_tok_clear / sizeof migrate_tok_clear[0]))
#define MIGRATE_KINDS (ENC_TABLES_MAX + MIGRATE_CLEAR)

/* The statements of the v1 tokens of table t into sql[0..2] (count,
 * select, update), and k naming them. Every identifier in them comes from
 * enc_tables, none from a row. */
static int migrate_tok_v1(const enc_table_t *t, migrate_tok_kind_t *k, buf_t sql[3])
{
    memset(k, 0, sizeof *k);
    k->table = t->table;
    k->ncols = t->nfields;
    k->with_key_id = t->key_id;
    buf_t cond;
    buf_init(&cond, 1024);
    int rc = buf_putc(&cond, '(');
    for (int f = 0; f < t->nfields; f++) {
        k->columns[f] = t->fields[f];
        rc |= buf_printf(&cond, "%s%s_enc LIKE 'v1.%%'", f ? " OR " : "", t->fields[f]);
    }
    rc |= buf_putc(&cond, ')');
    rc |= buf_printf(&sql[0], "SELECT count(*) FROM %s WHERE %s", t->table, cond.data);
    rc |= buf_append(&sql[1], "SELECT id::text", 15);
    for (int f = 0; f < t->nfields; f++)
        rc |= buf_printf(&sql[1], ", %s_enc", t->fields[f]);
    rc |= buf_printf(&sql[1], " FROM %s WHERE %s ORDER BY id LIMIT $1::int FOR UPDATE", t->table,
                     cond.data);
    rc |= buf_printf(&sql[2], "UPDATE %s SET ", t->table);
    for (int f = 0; f < t->nfields; f++)
        rc |= buf_printf(&sql[2], "%s%s_enc = $%d::text", f ? ", " : "", t->fields[f], f + 2);
    if (t->key_id)
        rc |= buf_printf(&sql[2], ", key_id = $%d::text", t->nfields + 2);
    rc |= buf_printf(&sql[2], " WHERE id = $1::%s", t->id_type);
    buf_free(&cond);
    k->count_sql = sql[0].data;
    k->select_sql = sql[1].data;
    k->update_sql = sql[2].data;
    return rc ? -1 : 0;
}

/* The client's text of delivered callbacks is of no more use to anyone:
 * needs no key, so it runs whether one is configured or not. */
static const char migrate_delivered_sql[] =
    "WITH x AS (SELECT id FROM workflow_callbacks WHERE state = 'delivered'"
    "  AND (payload_enc IS NOT NULL OR payload IS DISTINCT FROM crier_callback_bare(payload))"
    "  ORDER BY id LIMIT $1::int FOR UPDATE)"
    " UPDATE workflow_callbacks w SET payload = crier_callback_bare(w.payload), payload_enc = NULL"
    " FROM x WHERE w.id = x.id";

static void migrate_tok_rollback(PGconn *conn)
{
    char ignored[128];
    (void)db_exec(conn, "ROLLBACK", ignored, sizeof ignored);
}

/* The new value of one column of one row into out (*param: NULL for a NULL
 * column, else out's text). A v2 token is kept as it is. Never puts a value
 * into err: only the place. */
static int migrate_tok_value(const cry_keys_t *keys, const migrate_tok_kind_t *k,
                             const cry_place_t *at, PGresult *r, int row, int col, buf_t *out,
                             const char **param, char *err, size_t errlen)
{
    *param = NULL;
    buf_reset(out);
    if (PQgetisnull(r, row, col + 1))
        return 0;
    const char *v = PQgetvalue(r, row, col + 1);
    size_t len = (size_t)PQgetlength(r, row, col + 1);
    if (k->clear) {
        if (cry_encrypt(keys, at, v, len, out) != 0)
            goto fail;
        *param = out->data;
        return 0;
    }
    int version = cry_token_version(v);
    if (version == 2) {
        *param = v;
        return 0;
    }
    if (version != 1) {
        snprintf(err, errlen, "%s %s %s: not a crier token (a damaged row?)", at->table, at->row_id,
                 at->column);
        return -1;
    }
    buf_t plain;
    buf_init(&plain, len);
    if (cry_decrypt_v1(keys, v, &plain) != 0) {
        buf_free(&plain);
        char why[160];
        cry_decrypt_why(keys, v, why, sizeof why);
        snprintf(err, errlen, "%s %s %s: the v1 token %s", at->table, at->row_id, at->column, why);
        return -1;
    }
    int rc = cry_encrypt(keys, at, plain.data ? plain.data : "", plain.len, out);
    buf_free(&plain);
    if (rc != 0)
        goto fail;
    *param = out->data;
    return 0;
fail:
    snprintf(err, errlen, "%s %s %s: encryption failed", at->table, at->row_id, at->column);
    return -1;
}

/* One batch of kind k in one transaction. *rows gets how many it rewrote
 * (0 when none was left). */
static int migrate_tok_batch(PGconn *conn, const cry_keys_t *keys, const migrate_tok_kind_t *k,
                             const char *limit, int *rows, char *err, size_t errlen)
{
    *rows = 0;
    char dberr[512];
    if (db_exec(conn, "BEGIN", dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "%s: %s", k->table, dberr);
        return -1;
    }
    const char *lim[] = {limit};
    PGresult *r = db_query(conn, k->select_sql, 1, lim, dberr, sizeof dberr);
    if (!r) {
        snprintf(err, errlen, "%s: %s", k->table, dberr);
        migrate_tok_rollback(conn);
        return -1;
    }
    buf_t out[MIGRATE_COLS_MAX];
    for (int c = 0; c < MIGRATE_COLS_MAX; c++)
        buf_init(&out[c], MIGRATE_OUT_MAX);
    int n = PQntuples(r), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *id = PQgetvalue(r, i, 0);
        const char *params[1 + MIGRATE_COLS_MAX + 1] = {id};
        for (int c = 0; c < k->ncols && rc == 0; c++) {
            const cry_place_t at = {k->table, k->columns[c], id};
            rc = migrate_tok_value(keys, k, &at, r, i, c, &out[c], &params[1 + c], err, errlen);
        }
        if (rc != 0)
            break;
        int np = 1 + k->ncols;
        if (k->with_key_id)
            params[np++] = keys->key_id;
        PGresult *u = db_query(conn, k->update_sql, np, params, dberr, sizeof dberr);
        if (!u) {
            snprintf(err, errlen, "%s %s: %s", k->table, id, dberr);
            rc = -1;
            break;
        }
        PQclear(u);
    }
    PQclear(r);
    for (int c = 0; c < MIGRATE_COLS_MAX; c++)
        buf_free(&out[c]);
    if (rc != 0) {
        migrate_tok_rollback(conn);
        return -1;
    }
    if (db_exec(conn, "COMMIT", dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "%s: %s", k->table, dberr);
        migrate_tok_rollback(conn);
        return -1;
    }
    *rows = n;
    return 0;
}

static long migrate_tok_count(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    char dberr[512];
    PGresult *r = db_query(conn, sql, 0, NULL, dberr, sizeof dberr);
    if (!r) {
        snprintf(err, errlen, "counting rows to rewrite: %s", dberr);
        return -1;
    }
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* Rewrites the rows of kinds[0..n), counting each kind's in *counts[i]. */
static int migrate_tok_kinds(PGconn *conn, const cry_keys_t *keys, const migrate_tok_kind_t *kinds,
                             long *const *counts, int n, const char *limit, char *err,
                             size_t errlen)
{
    if (!keys || !keys->loaded) {
        /* Nothing to do is fine without a key (a fresh database); anything
         * to do needs it, and is refused rather than left half done. */
        long waiting = 0;
        for (int i = 0; i < n; i++) {
            long c = migrate_tok_count(conn, kinds[i].count_sql, err, errlen);
            if (c < 0)
                return -1;
            waiting += c;
        }
        if (waiting > 0) {
            snprintf(
                err, errlen,
                "%ld row(s) hold v1 tokens or clear text to encrypt, which needs the data "
                "key: set CRIER_ENCRYPTION_KEYS (or CRIER_ENCRYPTION_KEY) and run crier migrate "
                "again",
                waiting);
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < n; i++) {
        for (;;) {
            int rows = 0;
            if (migrate_tok_batch(conn, keys, &kinds[i], limit, &rows, err, errlen) != 0)
                return -1;
            *counts[i] += rows;
            if (rows == 0)
                break;
        }
        if (*counts[i] > 0) {
            char c[24];
            snprintf(c, sizeof c, "%ld", *counts[i]);
            log_info("migrate", "tokens_rewritten", "table", kinds[i].table, "rows", c, NULL);
        }
    }
    return 0;
}

int migrate_tokens(PGconn *conn, const cry_keys_t *keys, int batch, migrate_tokens_t *done,
                   char *err, size_t errlen)
{
    memset(done, 0, sizeof *done);
    if (batch < 1)
        batch = MIGRATE_TOKENS_BATCH;
    char limit[16], dberr[512];
    snprintf(limit, sizeof limit, "%d", batch);
    const char *lim[] = {limit};

    /* Each statement is its own transaction: one batch of rows at a time. */
    for (;;) {
        PGresult *r = db_query(conn, migrate_delivered_sql, 1, lim, dberr, sizeof dberr);
        if (!r) {
            snprintf(err, errlen, "workflow_callbacks: %s", dberr);
            return -1;
        }
        long n = strtol(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        done->callbacks_cleared += n;
        if (n < batch)
            break;
    }

    /* The kinds in order: the v1 tokens of each table that may hold them,
     * then the clear columns. */
    migrate_tok_kind_t kinds[MIGRATE_KINDS];
    long *counts[MIGRATE_KINDS];
    buf_t sql[ENC_TABLES_MAX][3];
    int nkinds = 0, nsql = 0, rc = 0;
    for (int t = 0; t < enc_tables_n && rc == 0; t++) {
        if (!enc_tables[t].v1)
            continue;
        for (int j = 0; j < 3; j++)
            buf_init(&sql[nsql][j], 4096);
        rc = migrate_tok_v1(&enc_tables[t], &kinds[nkinds], sql[nsql]);
        nsql++;
        counts[nkinds++] =
            strcmp(enc_tables[t].table, "clients") == 0 ? &done->clients : &done->inbound;
    }
    kinds[nkinds] = migrate_tok_clear[0];
    counts[nkinds++] = &done->subjects;
    kinds[nkinds] = migrate_tok_clear[1];
    counts[nkinds++] = &done->callbacks;
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    else
        rc = migrate_tok_kinds(conn, keys, kinds, counts, nkinds, limit, err, errlen);
    for (int i = 0; i < nsql; i++)
        for (int j = 0; j < 3; j++)
            buf_free(&sql[i][j]);
    return rc;
}
