/* rotate: the stored values and the key ring. Re-encrypts every encrypted
 * column under the ring's current key while crier serve keeps writing
 * (crier keys rotate), counts the values under each key id (crier keys
 * status), and checks at start-up that the ring opens what is stored.
 *
 * A rotation walks each table of enc_tables in primary-key order, a batch
 * at a time, each batch its own transaction: it locks the rows still under
 * another key with FOR UPDATE SKIP LOCKED (a row another transaction holds
 * is left for a later pass, never waited for), re-encrypts their values and
 * writes them only where they still hold what was read. Rows already under
 * the current key are not selected, so a rotation stopped at any point (a
 * kill, a crash) is finished by running it again. */
#ifndef CRIER_ROTATE_H
#define CRIER_ROTATE_H

#include "crypto/crypto.h"
#include "store/enc_columns.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Rows each batch of a rotation locks and rewrites, by default. */
#define ROTATE_BATCH 200

/* How many values of one column name one key id. */
typedef struct rotate_tally {
    const char *table;               /* static, from enc_tables */
    char column[32];                 /* "name_enc", ..., or "key_id" */
    char version[4];                 /* "v2", "v1"; "" for the key_id column */
    char key_id[CRY_KEY_ID_MAX + 1]; /* the id named; "" for no id */
    long values;
} rotate_tally_t;

/* Every (table, column, version, key id) with its count into *out
 * (malloc'ed, the caller frees it), *n of them: of each encrypted column
 * and, for a table with a key_id column, of that column among the rows that
 * hold an encrypted value. A full scan of each table. 0, or -1 with err. */
int rotate_status(PGconn *conn, rotate_tally_t **out, int *n, char *err, size_t errlen);

/* Rows of each table of enc_tables (indexed like it) that a rotation to
 * keys' current key would rewrite, into pending. 0, or -1 with err. */
int rotate_pending(PGconn *conn, const cry_keys_t *keys, long pending[ENC_TABLES_MAX], char *err,
                   size_t errlen);

/* Called after each committed batch: the table, how many rows of it were
 * rewritten so far and how many batches the whole rotation committed. */
typedef void (*rotate_progress_fn)(void *arg, const char *table, long rows, long batches);

typedef struct rotate_result {
    long values[ENC_TABLES_MAX][ENC_FIELDS_MAX]; /* re-encrypted, by enc_tables' column */
    long rows[ENC_TABLES_MAX];                   /* rows rewritten, by table */
    long batches;                                /* transactions committed */
    long failed;             /* values that open under no key of the ring: their rows unchanged */
    char first_failure[256]; /* where the first was and why (never a value) */
    long left;               /* rows still under another key at the end (failed, or changed
                                and locked by other work on every pass) */
} rotate_result_t;

/* Rotates every table to keys' current key in batches of batch rows (0:
 * ROTATE_BATCH); progress (may be NULL) hears of each batch. A value that
 * does not decrypt is counted in failed and its row skipped, the rest goes
 * on. 0 when the walk ran (check failed and left), -1 with err when the
 * database failed (what was committed stays). */
int rotate_run(PGconn *conn, const cry_keys_t *keys, int batch, rotate_progress_fn progress,
               void *arg, rotate_result_t *res, char *err, size_t errlen);

/* The start-up check of crier serve: decrypts a few stored values of each
 * kind (clients' emails and phones, whose blind indexes it recomputes too,
 * the newest subjects and inbound messages). 0 when each
 * opens (or there is none: an empty database passes); -1 with err naming
 * the row, the column and the key id when none opens (the keys are wrong or
 * the one the values are under is missing), or when the index key does not
 * reproduce a stored index; 2 with err naming the first when some open and
 * some do not (damaged rows, or a rotation's key dropped too early: crier
 * keys status tells); 1 with err when the check could not run. */
int rotate_check(PGconn *conn, const cry_keys_t *keys, char *err, size_t errlen);

#endif
