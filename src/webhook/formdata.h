/* formdata: a bounded parser for multipart/form-data bodies (RFC 7578), the
 * form a mailbox provider SHOULD use for a one-click unsubscribe (RFC 8058
 * section 3.2), into the same pairs as form.h gives for a urlencoded form.
 *
 * Rules (strict: a sender that follows the RFC is never refused, and what
 * is read is exactly what was sent):
 * - The boundary comes from the Content-Type's boundary parameter (token or
 *   quoted string, 1 to 70 characters). Lines end in CRLF.
 * - A preamble before the first delimiter is skipped; nothing but white
 *   space and line ends may follow the close delimiter ("--boundary--").
 * - Each part has header lines, an empty line, then its content up to the
 *   CRLF before the next delimiter. Its Content-Disposition must be
 *   "form-data" with a name parameter (quoted string or token); other
 *   headers (Content-Type, ...) are allowed and not looked at.
 * - Refused: a part with a filename (files are not fields), a name or
 *   content holding a NUL byte or that is not valid UTF-8, a missing close
 *   delimiter, and anything over the limits of form.h's form_limits_t
 *   (max_body, max_pairs, max_key, max_value).
 * - Pairs keep the order of the body, duplicates included. */
#ifndef CRIER_WEBHOOK_FORMDATA_H
#define CRIER_WEBHOOK_FORMDATA_H

#include "webhook/form.h"

#include <stddef.h>

/* The boundary parameter of a multipart/form-data Content-Type ctype, into
 * out (room for 71 bytes with the NUL): 0, or -1 when ctype is not
 * multipart/form-data or has no usable boundary. */
int formdata_boundary(const char *ctype, char out[71]);

/* Parses body[0..len) sent with Content-Type ctype into out (which need not
 * be initialised); limits may be NULL for FORM_LIMITS_DEFAULT. 0, or -1 with
 * a reason in err (never quoting input bytes) and out left empty. Free out
 * with form_free either way. */
int formdata_parse(form_pairs_t *out, const char *ctype, const char *body, size_t len,
                   const form_limits_t *limits, char *err, size_t errlen);

#endif
