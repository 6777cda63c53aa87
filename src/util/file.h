/* file: reading a whole file into a bounded buffer. */
#ifndef CRIER_FILE_H
#define CRIER_FILE_H

#include "util/buf.h"

#include <stddef.h>

/* Appends the bytes of path to b, which bounds how large the file may be.
 * Errors name the file as display ("<display>: cannot open: …",
 * "<display>: larger than N bytes", "<display>: read error"); on error b may
 * hold part of the file. Returns 0 or -1. For paths a person typed (a CLI
 * argument may be a pipe from the shell); loaders use file_append_in_dir. */
/* The last component of the directory path dir, ignoring trailing slashes
 * ("/srv/crier/rules/" -> "rules"): how messages name a configuration
 * folder, which is what an operator recognises, not the install path. Sets
 * *len to its length and returns where it starts in dir. */
const char *file_dir_label(const char *dir, size_t *len);

int file_append(const char *path, const char *display, buf_t *b, char *err, size_t errlen);

/* Appends the file name, relative to the directory dir ("channels.lua",
 * "email/welcome.html"), to b: the read of every loader of a configuration
 * directory (rules, rule tests, templates). On top of file_append's errors:
 *   - only a regular file is read; a FIFO, device, socket or directory is
 *     refused without blocking and without being read
 *     ("<display>: not a regular file");
 *   - a symlink (the file itself or a directory on its way) is followed only
 *     when the file it finally resolves to lies inside dir, as a Kubernetes
 *     ConfigMap volume's "channels.lua -> ..data/channels.lua" does;
 *     otherwise it is refused and its target never opened
 *     ("<display>: symlink points outside <dir's last component>"), and a
 *     dangling one is "<display>: dangling symlink";
 *   - a file swapped between the check and the open is refused
 *     ("<display>: changed while being opened").
 * Messages never name the target. Returns 0 or -1. */
int file_append_in_dir(const char *dir, const char *name, const char *display, buf_t *b, char *err,
                       size_t errlen);

#endif
