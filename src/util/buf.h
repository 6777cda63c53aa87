/* buf: a growable byte buffer with a hard maximum.
 *
 * Every buffer in crier has a ceiling so that no input, however large or
 * hostile, can make the process grow without bound. The contents are always
 * NUL-terminated (the terminator is not counted in len) so text can be used
 * directly as a C string. */
#ifndef CRIER_BUF_H
#define CRIER_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the terminator */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling for len; appends past it fail */
} buf_t;

/* Starts an empty buffer that may hold at most max bytes. */
void buf_init(buf_t *b, size_t max);
/* Appends n bytes; returns 0, or -1 (buffer unchanged) past max or on OOM. */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_putc(buf_t *b, char c);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Empties the buffer, keeping its allocation. */
void buf_reset(buf_t *b);
/* Cuts the contents back to their first len bytes (no-op when len is not
 * shorter): how a writer leaves a buffer as it found it after a failure. */
void buf_truncate(buf_t *b, size_t len);
/* Returns the contents (never NULL; "" when empty) and hands ownership to the
 * caller, leaving b empty. */
char *buf_detach(buf_t *b);
void buf_free(buf_t *b);

#endif
