/* form: a bounded parser for application/x-www-form-urlencoded bodies, as
 * Twilio posts them to status and inbound webhooks.
 *
 * Rules (chosen so that what we verify is exactly what we later read):
 * - '&' separates pairs; empty segments ("a=1&&b=2", a trailing '&') are
 *   skipped, as the provider SDKs do. A segment without '=' is a key with an
 *   empty value ("a=&b" gives ("a","") and ("b","")). An empty key is kept.
 * - '+' decodes to a space, "%XX" to the byte 0xXX, in keys and values alike.
 * - Refused: a '%' not followed by two hex digits, a NUL byte (raw or %00:
 *   keys and values are handed out as C strings, and a hidden NUL would let the
 *   signed text and the text we act on differ), decoded text that is not
 *   valid UTF-8, and anything over the limits.
 * - Pairs keep the order of the body, duplicates included. */
#ifndef CRIER_WEBHOOK_FORM_H
#define CRIER_WEBHOOK_FORM_H

#include <stddef.h>

typedef struct form_limits {
    size_t max_body;  /* bytes of encoded input */
    size_t max_pairs; /* non-empty segments */
    size_t max_key;   /* decoded bytes of one key */
    size_t max_value; /* decoded bytes of one value */
} form_limits_t;

/* 64 KiB body, 256 pairs, 256-byte keys, 16 KiB values: a Twilio callback
 * (Body up to 1600 characters) fits several times over. */
#define FORM_LIMITS_DEFAULT                                                                        \
    {                                                                                              \
        65536, 256, 256, 16384                                                                     \
    }

typedef struct form_pair {
    char *key; /* NUL-terminated; points into the owning form_pairs_t */
    size_t key_len;
    char *value; /* NUL-terminated; points into the owning form_pairs_t */
    size_t value_len;
} form_pair_t;

typedef struct form_pairs {
    form_pair_t *pairs; /* owned; count entries, in body order */
    size_t count;
    char *arena; /* owned; holds every decoded key and value */
} form_pairs_t;

/* Parses body[0..len) into out (which need not be initialised). limits may be
 * NULL for FORM_LIMITS_DEFAULT. Returns 0, or -1 with a reason in err (never
 * containing input bytes) and out left empty. Free out with form_free either way. */
int form_parse(form_pairs_t *out, const char *body, size_t len, const form_limits_t *limits,
               char *err, size_t errlen);
/* Releases what form_parse allocated; out becomes empty. Safe on an empty value. */
void form_free(form_pairs_t *p);
/* The value of the first pair named key, or NULL. The pointer lives as long as p. */
const char *form_get(const form_pairs_t *p, const char *key);

#endif
