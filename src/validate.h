/* validate: checks on request fields, shared by the API and the CLI. */
#ifndef CRIER_VALIDATE_H
#define CRIER_VALIDATE_H

#include <stddef.h>

/* Each returns 1 when valid, 0 when not. */
int val_uuid(const char *s);
/* A practical addr-spec: local@domain, ASCII, no spaces or controls, a dot in
 * the domain, at most 254 bytes. */
int val_email(const char *s);
/* E.164: "+" then 8 to 15 digits, the first not 0. */
int val_e164(const char *s);
/* An IANA zone name present in the system's tzdata (no "..", no leading "/"). */
int val_timezone(const char *s);
/* Well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
int val_utf8(const char *s, size_t len);

#endif
