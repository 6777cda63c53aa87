/* outbox: the sandbox transport. Writes what would be sent to a folder, so
 * the demo and staging need no credentials: email as <id>.eml with the exact
 * bytes SMTP would carry. Files appear atomically (written to a temporary
 * name, fsync'd, renamed). */
#ifndef CRIER_OUTBOX_H
#define CRIER_OUTBOX_H

#include <stddef.h>

/* Writes data to dir/<name> (name must be a plain file name). Creates dir if
 * missing. On success writes the final path into path. */
int outbox_write(const char *dir, const char *name, const char *data, size_t len, char *path,
                 size_t pathlen, char *err, size_t errlen);

#endif
