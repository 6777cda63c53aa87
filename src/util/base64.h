/* base64: RFC 4648 encoding, with optional line wrapping for MIME bodies. */
#ifndef CRIER_BASE64_H
#define CRIER_BASE64_H

#include "util/buf.h"

#include <stddef.h>

/* Appends the encoding of data; when line_len > 0, a CRLF follows every
 * line_len output characters (MIME uses 76) and the last line. */
int b64_encode(buf_t *out, const void *data, size_t len, size_t line_len);
/* Decodes strict base64 (padding required, no whitespace except CR/LF when
 * allow_newlines). Returns 0, or -1 on invalid input or a full buffer. */
int b64_decode(buf_t *out, const char *text, size_t len, int allow_newlines);

/* The value (0..63) of one base64 character, or -1 for any other byte: the
 * standard alphabet, or with url_safe the URL and file name one (RFC 4648
 * section 5: '-' and '_' for '+' and '/'). */
int b64_char_value(unsigned char c, int url_safe);

#endif
