/* errmsg: writing an error message into a caller's (err, errlen) buffer,
 * the convention every fallible function in crier follows. */
#ifndef CRIER_ERRMSG_H
#define CRIER_ERRMSG_H

#include <stddef.h>

/* Formats into err (cut to fit); does nothing when err is NULL or errlen 0. */
void errmsg_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
