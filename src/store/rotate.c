#include "store/rotate.h"

#include "store/db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A token far above any name, address or text is a damaged row: its bytes
 * are not decrypted (cry_decrypt refuses them too). */
#define ROTATE_OUT_MAX (16u * 1024 * 1024 / 3 * 4 + 128)
/* Walks of a table: a later one finds the rows another transaction held
 * (locked) while an earlier one passed them. */
#define ROTATE_PASSES   5
#define ROTATE_PAUSE_MS 200

/* The statements of one table, made of the names in enc_tables only (no
 * value of a row or of the environment reaches their text). */
typedef struct rotate_sql {
    buf_t cond;  /* the rows still to do: $P the current token prefix, $C the key id */
    buf_t first; /* SELECT of the first batch */
    buf_t next;  /* SELECT of a later batch: after the last id */
    buf_t count; /* count(*) of the rows still to do */
    buf_t update;
} rotate_sql_t;

/* The condition "some value is not under the current key, or the key_id
 * column is stale on a row that holds a value", with the prefix as $pat and
 * the key id as $cur. */
static int rotate_cond(const enc_table_t *t, int pat, int cur, buf_t *b)
{
    int rc = buf_putc(b, '(');
    for (int f = 0; f < t->nfields; f++)
        rc |= buf_printf(b, "%s%s_enc NOT LIKE $%d::text", f ? " OR " : "", t->fields[f], pat);
    if (t->key_id) {
        rc |= buf_printf(b, " OR (key_id IS DISTINCT FROM $%d::text AND (", cur);
        for (int f = 0; f < t->nfields; f++)
            rc |= buf_printf(b, "%s%s_enc IS NOT NULL", f ? " OR " : "", t->fields[f]);
        rc |= buf_append(b, "))", 2);
    }
    return rc | buf_putc(b, ')');
}

static void rotate_sql_free(rotate_sql_t *s)
{
    buf_free(&s->cond);
    buf_free(&s->first);
    buf_free(&s->next);
    buf_free(&s->count);
    buf_free(&s->update);
}

/* SELECT: $1 the limit, $2 the prefix, ($3 the key id,) then the last id.
 * UPDATE: $1 the id, the new values, (the key id,) then the values read.
 * count: $1 the prefix, ($2 the key id). */
static int rotate_sql_make(const enc_table_t *t, rotate_sql_t *s)
{
    buf_init(&s->cond, 2048);
    buf_init(&s->first, 4096);
    buf_init(&s->next, 4096);
    buf_init(&s->count, 4096);
    buf_init(&s->update, 4096);
    int last = t->key_id ? 4 : 3;
    buf_t cond2;
    buf_init(&cond2, 2048);
    int rc = rotate_cond(t, 2, 3, &s->cond) | rotate_cond(t, 1, 2, &cond2);
    rc |= buf_printf(&s->count, "SELECT count(*) FROM %s WHERE %s", t->table,
                     cond2.data ? cond2.data : "");
    buf_free(&cond2);
    buf_t cols;
    buf_init(&cols, 1024);
    for (int f = 0; f < t->nfields; f++)
        rc |= buf_printf(&cols, ", %s_enc", t->fields[f]);
    rc |= buf_printf(&s->first,
                     "SELECT id::text%s FROM %s WHERE %s ORDER BY id LIMIT $1::int"
                     " FOR UPDATE SKIP LOCKED",
                     cols.data ? cols.data : "", t->table, s->cond.data ? s->cond.data : "");
    rc |= buf_printf(&s->next,
                     "SELECT id::text%s FROM %s WHERE id > $%d::%s AND %s ORDER BY id"
                     " LIMIT $1::int FOR UPDATE SKIP LOCKED",
                     cols.data ? cols.data : "", t->table, last, t->id_type,
                     s->cond.data ? s->cond.data : "");
    buf_free(&cols);
    rc |= buf_printf(&s->update, "UPDATE %s SET ", t->table);
    int p = 2;
    for (int f = 0; f < t->nfields; f++)
        rc |= buf_printf(&s->update, "%s%s_enc = $%d::text", f ? ", " : "", t->fields[f], p++);
    if (t->key_id)
        rc |= buf_printf(&s->update, ", key_id = $%d::text", p++);
    rc |= buf_printf(&s->update, " WHERE id = $1::%s", t->id_type);
    /* the values read, which the row still holds: it is locked, and this
     * keeps the write from ever undoing a change it did not see */
    for (int f = 0; f < t->nfields; f++)
        rc |=
            buf_printf(&s->update, " AND %s_enc IS NOT DISTINCT FROM $%d::text", t->fields[f], p++);
    return rc ? -1 : 0;
}

static void rotate_rollback(PGconn *conn)
{
    char ignored[128];
    (void)db_rollback(conn, ignored, sizeof ignored);
}

/* The current key's token prefix, "v2.<id>.%", as a LIKE pattern (an id
 * is [0-9a-z], which LIKE takes literally). */
static void rotate_prefix(const cry_keys_t *keys, char out[CRY_KEY_ID_MAX + 8])
{
    snprintf(out, CRY_KEY_ID_MAX + 8, "v2.%s.%%", keys->key_id);
}

/* Notes the first failure (table, row, column and why; never a value). */
static void rotate_fail(rotate_result_t *res, const cry_keys_t *keys, const cry_place_t *at,
                        const char *token)
{
    res->failed++;
    if (res->first_failure[0])
        return;
    char why[160];
    cry_decrypt_why(keys, token, why, sizeof why);
    snprintf(res->first_failure, sizeof res->first_failure, "%s %s %s: %s", at->table, at->row_id,
             at->column, why);
}

/* One batch of table ti: *selected rows locked (0 when none was left),
 * *done of them rewritten, *failed_rows skipped for a value that does not
 * open; last gets the last id. */
static int rotate_batch(PGconn *conn, const cry_keys_t *keys, int ti, const rotate_sql_t *s,
                        const char *limit, char *last, size_t lastlen, int *selected, int *done,
                        int *failed_rows, rotate_result_t *res, char *err, size_t errlen)
{
    const enc_table_t *t = &enc_tables[ti];
    *selected = *done = *failed_rows = 0;
    char prefix[CRY_KEY_ID_MAX + 8], dberr[512];
    rotate_prefix(keys, prefix);
    if (db_begin(conn, dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "%s: %s", t->table, dberr);
        return -1;
    }
    const char *sp[4] = {limit, prefix};
    int nsp = 2;
    if (t->key_id)
        sp[nsp++] = keys->key_id;
    if (last[0])
        sp[nsp++] = last;
    PGresult *r =
        db_query(conn, last[0] ? s->next.data : s->first.data, nsp, sp, dberr, sizeof dberr);
    if (!r) {
        snprintf(err, errlen, "%s: %s", t->table, dberr);
        rotate_rollback(conn);
        return -1;
    }
    buf_t out[ENC_FIELDS_MAX];
    for (int f = 0; f < ENC_FIELDS_MAX; f++)
        buf_init(&out[f], ROTATE_OUT_MAX);
    buf_t plain;
    buf_init(&plain, ROTATE_OUT_MAX);
    long values[ENC_FIELDS_MAX] = {0};
    int n = PQntuples(r), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *id = PQgetvalue(r, i, 0);
        const char *up[1 + 2 * ENC_FIELDS_MAX + 1] = {id};
        int ok = 1, changed[ENC_FIELDS_MAX] = {0};
        for (int f = 0; f < t->nfields && ok; f++) {
            const char *v = PQgetisnull(r, i, 1 + f) ? NULL : PQgetvalue(r, i, 1 + f);
            up[1 + f] = v;
            if (!v || strncmp(v, prefix, strlen(prefix) - 1) == 0)
                continue; /* NULL, or already under the current key */
            const cry_place_t at = {t->table, t->fields[f], id};
            buf_reset(&plain);
            buf_reset(&out[f]);
            if (cry_decrypt(keys, &at, v, &plain) != 0) {
                rotate_fail(res, keys, &at, v);
                ok = 0;
                break;
            }
            if (cry_encrypt(keys, &at, plain.data ? plain.data : "", plain.len, &out[f]) != 0) {
                snprintf(err, errlen, "%s %s %s: encryption failed", t->table, id, t->fields[f]);
                rc = -1;
                break;
            }
            up[1 + f] = out[f].data;
            changed[f] = 1;
        }
        if (rc != 0)
            break;
        if (!ok) {
            (*failed_rows)++;
            continue;
        }
        int np = 1 + t->nfields;
        if (t->key_id)
            up[np++] = keys->key_id;
        for (int f = 0; f < t->nfields; f++)
            up[np++] = PQgetisnull(r, i, 1 + f) ? NULL : PQgetvalue(r, i, 1 + f);
        PGresult *u = db_query(conn, s->update.data, np, up, dberr, sizeof dberr);
        if (!u) {
            snprintf(err, errlen, "%s %s: %s", t->table, id, dberr);
            rc = -1;
            break;
        }
        int wrote = strcmp(PQcmdTuples(u), "1") == 0;
        PQclear(u);
        if (wrote) {
            (*done)++;
            for (int f = 0; f < t->nfields; f++)
                values[f] += changed[f];
        }
    }
    if (n > 0)
        snprintf(last, lastlen, "%s", PQgetvalue(r, n - 1, 0));
    PQclear(r);
    if (plain.data)
        memset(plain.data, 0, plain.cap); /* a client's words need not outlive the batch */
    buf_free(&plain);
    for (int f = 0; f < ENC_FIELDS_MAX; f++)
        buf_free(&out[f]);
    if (rc != 0) {
        rotate_rollback(conn);
        return -1;
    }
    if (db_commit(conn, dberr, sizeof dberr) != 0) {
        snprintf(err, errlen, "%s: %s", t->table, dberr);
        rotate_rollback(conn);
        return -1;
    }
    *selected = n;
    for (int f = 0; f < t->nfields; f++)
        res->values[ti][f] += values[f];
    res->rows[ti] += *done;
    return 0;
}

static long rotate_count(PGconn *conn, const cry_keys_t *keys, const enc_table_t *t,
                         const rotate_sql_t *s, char *err, size_t errlen)
{
    char prefix[CRY_KEY_ID_MAX + 8], dberr[512];
    rotate_prefix(keys, prefix);
    const char *p[] = {prefix, keys->key_id};
    PGresult *r = db_query(conn, s->count.data, t->key_id ? 2 : 1, p, dberr, sizeof dberr);
    if (!r) {
        snprintf(err, errlen, "%s: %s", t->table, dberr);
        return -1;
    }
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

int rotate_pending(PGconn *conn, const cry_keys_t *keys, long pending[ENC_TABLES_MAX], char *err,
                   size_t errlen)
{
    memset(pending, 0, sizeof(long) * ENC_TABLES_MAX);
    if (!keys || !keys->loaded) {
        snprintf(err, errlen, "no encryption key is configured");
        return -1;
    }
    for (int ti = 0; ti < enc_tables_n; ti++) {
        rotate_sql_t s;
        if (rotate_sql_make(&enc_tables[ti], &s) != 0) {
            rotate_sql_free(&s);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        pending[ti] = rotate_count(conn, keys, &enc_tables[ti], &s, err, errlen);
        rotate_sql_free(&s);
        if (pending[ti] < 0)
            return -1;
    }
    return 0;
}

static void rotate_pause(void)
{
    struct timespec ts = {0, ROTATE_PAUSE_MS * 1000000L};
    nanosleep(&ts, NULL);
}

int rotate_run(PGconn *conn, const cry_keys_t *keys, int batch, rotate_progress_fn progress,
               void *arg, rotate_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!keys || !keys->loaded) {
        snprintf(err, errlen, "no encryption key is configured");
        return -1;
    }
    if (batch < 1)
        batch = ROTATE_BATCH;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", batch);
    for (int ti = 0; ti < enc_tables_n; ti++) {
        const enc_table_t *t = &enc_tables[ti];
        rotate_sql_t s;
        if (rotate_sql_make(t, &s) != 0) {
            rotate_sql_free(&s);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        long left = 0;
        for (int pass = 0; pass < ROTATE_PASSES; pass++) {
            char last[64] = "";
            long failed_rows = 0;
            for (;;) {
                int selected = 0, done = 0, failed = 0;
                if (rotate_batch(conn, keys, ti, &s, limit, last, sizeof last, &selected, &done,
                                 &failed, res, err, errlen) != 0) {
                    rotate_sql_free(&s);
                    return -1;
                }
                if (selected == 0)
                    break;
                failed_rows += failed;
                res->batches++;
                if (progress)
                    progress(arg, t->table, res->rows[ti], res->batches);
            }
            left = rotate_count(conn, keys, t, &s, err, errlen);
            if (left < 0) {
                rotate_sql_free(&s);
                return -1;
            }
            /* done, or what is left are the rows that do not open (each pass
             * would fail them again) */
            if (left <= failed_rows)
                break;
            rotate_pause();
        }
        rotate_sql_free(&s);
        res->left += left;
        if (res->rows[ti] > 0) {
            char rows[24];
            snprintf(rows, sizeof rows, "%ld", res->rows[ti]);
            log_info("rotate", "table_rotated", "table", t->table, "rows", rows, "key_id",
                     keys->key_id, NULL);
        }
    }
    return 0;
}

/* Appends the tallies of one statement's rows (version, key id, count). */
static int rotate_tally_add(PGresult *r, const char *table, const char *column,
                            rotate_tally_t **out, int *n, int *cap)
{
    for (int i = 0; i < PQntuples(r); i++) {
        if (*n == *cap) {
            int ncap = *cap ? *cap * 2 : 32;
            rotate_tally_t *grown = realloc(*out, sizeof **out * (size_t)ncap);
            if (!grown)
                return -1;
            *out = grown;
            *cap = ncap;
        }
        rotate_tally_t *x = &(*out)[(*n)++];
        memset(x, 0, sizeof *x);
        x->table = table;
        snprintf(x->column, sizeof x->column, "%s", column);
        snprintf(x->version, sizeof x->version, "%s", PQgetvalue(r, i, 0));
        snprintf(x->key_id, sizeof x->key_id, "%s", PQgetvalue(r, i, 1));
        x->values = strtol(PQgetvalue(r, i, 2), NULL, 10);
    }
    return 0;
}

int rotate_status(PGconn *conn, rotate_tally_t **out, int *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    int cap = 0, rc = 0;
    char dberr[512];
    buf_t sql;
    buf_init(&sql, 4096);
    for (int ti = 0; ti < enc_tables_n && rc == 0; ti++) {
        const enc_table_t *t = &enc_tables[ti];
        for (int f = 0; f <= t->nfields && rc == 0; f++) {
            char column[32];
            buf_reset(&sql);
            if (f < t->nfields) {
                /* the version and the key id a token names: "v2.<id>.<base64>"
                 * (a value of another form counts under an empty id) */
                snprintf(column, sizeof column, "%s_enc", t->fields[f]);
                rc = buf_printf(&sql,
                                "SELECT CASE WHEN %s ~ '^v[0-9]+\\.[0-9a-z]{1,8}\\.'"
                                " THEN split_part(%s, '.', 1) ELSE '' END AS v,"
                                " CASE WHEN %s ~ '^v[0-9]+\\.[0-9a-z]{1,8}\\.'"
                                " THEN split_part(%s, '.', 2) ELSE '' END AS k, count(*)"
                                " FROM %s WHERE %s IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
                                column, column, column, column, t->table, column);
            } else if (t->key_id) {
                snprintf(column, sizeof column, "key_id");
                rc = buf_printf(&sql, "SELECT '', COALESCE(key_id, ''), count(*) FROM %s WHERE (",
                                t->table);
                for (int g = 0; g < t->nfields; g++)
                    rc |= buf_printf(&sql, "%s%s_enc IS NOT NULL", g ? " OR " : "", t->fields[g]);
                rc |= buf_append(&sql, ") GROUP BY 2 ORDER BY 2", 23);
            } else {
                break;
            }
            if (rc != 0) {
                snprintf(err, errlen, "out of memory");
                break;
            }
            PGresult *r = db_query(conn, sql.data, 0, NULL, dberr, sizeof dberr);
            if (!r) {
                snprintf(err, errlen, "%s: %s", t->table, dberr);
                rc = -1;
                break;
            }
            rc = rotate_tally_add(r, t->table, column, out, n, &cap);
            PQclear(r);
            if (rc != 0)
                snprintf(err, errlen, "out of memory");
        }
    }
    buf_free(&sql);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* One stored value the start-up check opens: the statement returns the id
 * and the token (and with bidx the stored blind index). */
typedef struct rotate_probe {
    const char *table;
    const char *field;
    const char *bidx; /* the domain of the blind index beside it, or NULL */
    const char *sql;
} rotate_probe_t;

/* Each takes an index (or the primary key) to a few rows: the check costs
 * the same on a large database as on a small one. Callbacks are not among
 * them: an outbox row that does not open fails on its own, by design
 * (engine/callbacks.c), and must not keep crier from starting. */
static const rotate_probe_t rotate_probes[] = {
    {"clients", "email", "email",
     "SELECT id::text, email_enc, email_bidx FROM clients"
     " WHERE email_bidx IS NOT NULL AND email_enc IS NOT NULL ORDER BY email_bidx LIMIT 3"},
    {"clients", "phone", "phone",
     "SELECT id::text, phone_enc, phone_bidx FROM clients"
     " WHERE phone_bidx IS NOT NULL AND phone_enc IS NOT NULL ORDER BY phone_bidx LIMIT 3"},
    {"communications", "subject", NULL,
     "SELECT id::text, subject_enc FROM communications WHERE subject_enc IS NOT NULL"
     " ORDER BY created_at DESC LIMIT 3"},
    {"inbound_messages", "sender", NULL,
     "SELECT id::text, sender_enc FROM inbound_messages WHERE sender_enc IS NOT NULL"
     " ORDER BY id DESC LIMIT 3"},
};

/* The ids of the ring, "b, a", for a message. */
static void rotate_ring_ids(const cry_keys_t *keys, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < keys->n && used < outlen; i++) {
        int w = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", keys->ring[i].id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int rotate_check(PGconn *conn, const cry_keys_t *keys, char *err, size_t errlen)
{
    if (!keys || !keys->loaded) {
        snprintf(err, errlen, "no encryption key is configured");
        return -1;
    }
    char dberr[512], ids[160], first[512] = "";
    rotate_ring_ids(keys, ids, sizeof ids);
    buf_t plain;
    buf_init(&plain, ROTATE_OUT_MAX);
    int rc = 0, opened = 0, failed = 0;
    for (size_t i = 0; i < sizeof rotate_probes / sizeof rotate_probes[0] && rc == 0; i++) {
        const rotate_probe_t *p = &rotate_probes[i];
        PGresult *r = db_query(conn, p->sql, 0, NULL, dberr, sizeof dberr);
        if (!r) {
            snprintf(err, errlen, "%s: %s", p->table, dberr);
            rc = 1;
            break;
        }
        for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
            const char *id = PQgetvalue(r, row, 0), *token = PQgetvalue(r, row, 1);
            const cry_place_t at = {p->table, p->field, id};
            buf_reset(&plain);
            if (cry_decrypt(keys, &at, token, &plain) != 0) {
                if (!failed++) {
                    char why[160];
                    cry_decrypt_why(keys, token, why, sizeof why);
                    snprintf(first, sizeof first, "%s %s %s: %s", p->table, id, p->field, why);
                }
                continue;
            }
            opened++;
            char idx[65];
            if (!p->bidx)
                continue;
            if (store_pii_bidx(keys, p->bidx, plain.data ? plain.data : "", idx) != 0) {
                snprintf(err, errlen, "cannot compute a blind index");
                rc = -1;
            } else if (strcmp(idx, PQgetvalue(r, row, 2)) != 0) {
                snprintf(err, errlen,
                         "the blind index key does not match the stored indexes (%s %s "
                         "%s_bidx): lookups by email and phone would find no one. Without "
                         "CRIER_BLIND_INDEX_KEY it is derived from the last key listed; "
                         "set CRIER_BLIND_INDEX_KEY to what crier keys index-key printed "
                         "while the key the indexes were made under was last",
                         p->table, id, p->bidx);
                rc = -1;
            }
        }
        PQclear(r);
    }
    if (plain.data)
        memset(plain.data, 0, plain.cap);
    buf_free(&plain);
    if (rc != 0)
        return rc;
    /* Nothing opens: the keys are wrong (a damaged row or two beside rows
     * that open is the callers' to report, as each use of it does). */
    if (failed > 0 && opened == 0) {
        snprintf(err, errlen, "the encryption keys (ids %s) do not open the stored data: %s", ids,
                 first);
        return -1;
    }
    if (failed > 0) {
        snprintf(err, errlen, "%d of %d stored values checked do not open: %s", failed,
                 failed + opened, first);
        return 2;
    }
    return 0;
}
