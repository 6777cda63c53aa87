/* fuzz_input: cutting one fuzz input into the NUL-terminated pieces a
 * harness hands to the code under test. */
#ifndef CRIER_FUZZ_INPUT_H
#define CRIER_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inputs longer than this are skipped: every parser under test has a
 * smaller limit of its own, and long inputs only slow the search down. */
#define FUZZ_MAX_INPUT (256 * 1024)

/* A malloc'd, NUL-terminated copy of data[0..len), or NULL. */
static inline char *fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    if (len)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* The next piece of *data: the bytes up to the next NUL (or the end),
 * copied and NUL-terminated; *data and *size move past it and its NUL.
 * NULL when the copy fails. At the end of the input each call gives "". */
static inline char *fuzz_next(const uint8_t **data, size_t *size)
{
    const uint8_t *nul = *size ? memchr(*data, '\0', *size) : NULL;
    size_t n = nul ? (size_t)(nul - *data) : *size;
    char *s = fuzz_strndup(*data, n);
    *data += n;
    *size -= n;
    if (nul) {
        *data += 1;
        *size -= 1;
    }
    return s;
}

#endif
