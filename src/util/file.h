/* file: reading a whole file into a bounded buffer. */
#ifndef CRIER_FILE_H
#define CRIER_FILE_H

#include "util/buf.h"

#include <stddef.h>

/* Appends the bytes of path to b, which bounds how large the file may be.
 * Errors name the file as display ("<display>: cannot open: …",
 * "<display>: larger than N bytes", "<display>: read error"); on error b may
 * hold part of the file. Returns 0 or -1. */
int file_append(const char *path, const char *display, buf_t *b, char *err, size_t errlen);

#endif
