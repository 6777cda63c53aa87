/* migrate: applies sql/NNN_name.sql files in order.
 *
 * Each file runs in its own transaction and is recorded in
 * schema_migrations (version, name, checksum, applied_at). The whole run holds
 * a session advisory lock, so two instances starting together apply each
 * file once. A file already applied whose checksum changed is an error. */
#ifndef CRIER_MIGRATE_H
#define CRIER_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Applies what is missing from dir. *applied gets how many files ran.
 * Returns 0, or -1 with a message naming the file in err. */
int migrate_run(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen);

#endif
