/* linktok: the signed tokens in the links crier puts in its messages.
 *
 * A token is a compact reference, never data to trust: what it names (a
 * communication, a client) is looked up again on every use, and a token
 * only ever leads to what crier itself stored for that reference. So a
 * click token redirects only to a URL that was in its message, whatever is
 * tampered.
 *
 * Layout, 42 bytes in URL-safe base64 without padding (56 characters):
 *   version (1, = 1) | kind (1) | id (16, a UUID) | arg (4) | day (4) |
 *   first 16 bytes of HMAC-SHA256(link key, "crier link v1" NUL | the 26
 *   bytes before it)
 * Integers are big-endian. The kind is part of what is signed, so a token
 * made for one use (an open pixel) is refused by every other (an
 * unsubscribe). The day of issue lets a reader refuse old tokens; how old
 * is the reader's rule. */
#ifndef CRIER_LINKTOK_H
#define CRIER_LINKTOK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The characters of a token, and a buffer that holds one with its NUL. */
#define LINKTOK_LEN      56
#define LINKTOK_TEXT_MAX (LINKTOK_LEN + 1)

typedef enum linktok_kind {
    LINKTOK_CLICK = 'c',  /* id: a communication; arg: the link's index in it */
    LINKTOK_OPEN = 'o',   /* id: a communication; arg: 0 */
    LINKTOK_UNSUB = 'u',  /* id: a communication (whose client it is); arg: 0 */
    LINKTOK_FORM = 'f',   /* id: a client; arg: the preference version the form showed */
    LINKTOK_ACTION = 'a', /* id: a communication; arg: the action's index in it */
} linktok_kind_t;

typedef struct linktok {
    linktok_kind_t kind;
    char id[37];  /* canonical lower-case UUID */
    uint32_t arg; /* by kind, above */
    uint32_t day; /* days since 1970-01-01 UTC when it was made */
} linktok_t;

/* The day number of t, as tokens count days. */
uint32_t linktok_day(time_t t);

/* Writes the token of t under key (32 bytes) into out. 0, or -1 when t's
 * id is not a UUID, its kind is unknown, or OpenSSL fails. */
int linktok_make(const unsigned char key[32], const linktok_t *t, char out[LINKTOK_TEXT_MAX]);

/* Reads text[0..len) as a token of kind want made under key. 0 with *t
 * filled, or -1 (t zeroed) for anything else: a wrong length or
 * character, another version or kind, a signature that does not match.
 * The comparison takes the same time wherever the signature differs. */
int linktok_read(const unsigned char key[32], const char *text, size_t len, linktok_kind_t want,
                 linktok_t *t);

/* 1 when t was made more than max_days days before now (or is dated after
 * it by more than a day, which no token of ours is). */
int linktok_expired(const linktok_t *t, time_t now, uint32_t max_days);

#endif
