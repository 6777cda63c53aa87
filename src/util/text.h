/* text: small byte-level text helpers shared by parsers and error texts. */
#ifndef CRIER_TEXT_H
#define CRIER_TEXT_H

#include <stddef.h>

/* The value of hex digit c (either case), or -1 when c is not one. */
int text_hexval(int c);

/* Copies s into out (outlen > 0), cut at a UTF-8 character boundary when it
 * does not fit, so a shortened text never ends in half a character. */
void text_copy_utf8(const char *s, char *out, size_t outlen);
/* The 1-based line and column of the byte at (at NULL: none, giving 1:1)
 * within text[0..len), for messages that point into a file. */
void text_line_col(const char *text, size_t len, const char *at, int *line, int *col);
/* Code points in the UTF-8 string s (continuation bytes are not counted):
 * how Twilio and Meta count a message's length. */
size_t text_utf8_chars(const char *s);
/* A NUL-terminated copy of the n bytes at p (which may hold NULs), owned by
 * the caller; NULL when out of memory. */
char *text_dup_n(const char *p, size_t n);

#endif
