/* migrate: applies sql/NNN_name.sql files in order.
 *
 * Each file runs in its own transaction and is recorded in
 * schema_migrations (version, name, checksum, applied_at). The whole run holds
 * a session advisory lock, so two instances starting together apply each
 * file once. A file already applied whose checksum changed is an error.
 * `crier migrate` then runs migrate_tokens (migrate_tokens.c), the part of
 * the data migrations that needs the encryption key. */
#ifndef CRIER_MIGRATE_H
#define CRIER_MIGRATE_H

#include "crypto/crypto.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Applies what is missing from dir. *applied gets how many files ran.
 * Returns 0, or -1 with a message naming the file in err. */
int migrate_run(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen);

/* Rows each batch of migrate_tokens rewrites, in one transaction. */
#define MIGRATE_TOKENS_BATCH 500

/* What migrate_tokens rewrote. */
typedef struct migrate_tokens {
    long clients;           /* client rows whose v1 tokens became v2 */
    long inbound;           /* inbound_messages rows likewise */
    long subjects;          /* communications whose clear subject was encrypted */
    long callbacks;         /* undelivered callbacks whose body was encrypted */
    long callbacks_cleared; /* delivered callbacks stripped of the client's text */
} migrate_tokens_t;

/* The step after the SQL files (migrate_run), which needs the data key:
 * rewrites every v1 token (clients, inbound_messages) as a v2 token bound
 * to its row, encrypts the clear subjects of communications (into
 * subject_enc, the clear column set to NULL) and the clear bodies of
 * undelivered callbacks (into payload_enc, the payload stripped to the
 * event and its ids), and strips delivered callbacks' payloads. Runs in
 * batches of batch rows (0: MIGRATE_TOKENS_BATCH), one transaction each,
 * locking the rows it rewrites; rows already rewritten are skipped, so it
 * may be run any number of times and resumes where a failure stopped it.
 * keys may be NULL: then only the stripping runs, and any row that needs
 * the key is an error saying so. 0, or -1 with err (naming the table and
 * row, never a value). */
int migrate_tokens(PGconn *conn, const cry_keys_t *keys, int batch, migrate_tokens_t *done,
                   char *err, size_t errlen);

#endif
