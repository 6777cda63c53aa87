/* mime: an RFC 5322 / MIME message from a rendered email.
 *
 * The result is 7-bit clean, CRLF line endings, lines under 78 characters
 * where the format allows: text parts quoted-printable, attachments base64,
 * non-ASCII header text RFC 2047 encoded-words split on UTF-8 boundaries.
 * Header values that come from requests (names, subjects, filenames) are
 * stripped of CR, LF and other controls so no field can inject a header. */
#ifndef CRIER_MIME_H
#define CRIER_MIME_H

#include "util/buf.h"

#include <stddef.h>
#include <time.h>

typedef struct mime_attachment {
    const char *filename;     /* shown to the recipient */
    const char *content_type; /* e.g. "application/pdf" */
    const unsigned char *data;
    size_t len;
} mime_attachment_t;

typedef struct mime_message {
    const char *from;    /* "Display Name <addr@domain>" or "addr@domain" */
    const char *to_name; /* may be NULL */
    const char *to_addr; /* bare address */
    const char *subject;
    const char *text; /* plain-text part, UTF-8 */
    const char *html; /* HTML part, UTF-8 */
    const mime_attachment_t *attachments;
    int n_attachments;
    /* may be NULL; adds the RFC 8058 headers: List-Unsubscribe with this
     * http(s) URL, and List-Unsubscribe-Post */
    const char *list_unsubscribe_url;
    /* may be NULL; with the URL, a "mailto:..." URI listed after it */
    const char *list_unsubscribe_mailto;
    const char *entity_id; /* e.g. the communication id; an X-Crier-Id header */
    time_t date;
} mime_message_t;

/* Appends the whole message (headers, blank line, body) to out and writes
 * the Message-ID it generated (with angle brackets) into message_id.
 * Returns 0, or -1 with a message in err. */
int mime_build(const mime_message_t *m, buf_t *out, char *message_id, size_t idlen, char *err,
               size_t errlen);

/* Extracts the bare address from "Name <addr>" or "addr" into out. */
int mime_addr_spec(const char *mailbox, char *out, size_t outlen);

#endif
