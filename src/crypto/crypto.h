/* crypto: field encryption for PII at rest, blind indexes for lookups,
 * constant-time comparison, random identifiers. All on OpenSSL.
 *
 * Ciphertext format (text, safe in a TEXT column):
 *   "v1." <key id, 8 hex> "." base64(12-byte nonce | ciphertext | 16-byte tag)
 * The key id lets a later key rotation decrypt old rows with the old key. */
#ifndef CRIER_CRYPTO_H
#define CRIER_CRYPTO_H

#include "util/buf.h"

#include <stddef.h>

typedef struct cry_keys {
    unsigned char enc[32];   /* AES-256-GCM data key */
    unsigned char index[32]; /* HMAC key for blind indexes, derived from enc */
    char key_id[9];          /* first 8 hex of SHA-256(enc) */
    int loaded;
} cry_keys_t;

/* Loads the key from base64 (must decode to exactly 32 bytes). */
int cry_keys_load(cry_keys_t *k, const char *b64, char *err, size_t errlen);
/* Appends the ciphertext token of plain[0..len) to out. */
int cry_encrypt(const cry_keys_t *k, const void *plain, size_t len, buf_t *out);
/* Appends the plaintext of a token made by cry_encrypt; -1 on a wrong key,
 * tampering or a malformed token. */
int cry_decrypt(const cry_keys_t *k, const char *token, buf_t *out);
/* HMAC-SHA256 of domain "\0" value under the index key, as 64 hex chars.
 * domain separates e.g. "email" from "phone" so equal strings differ. */
void cry_blind_index(const cry_keys_t *k, const char *domain, const char *value, char out[65]);
/* 1 when a[0..n) == b[0..n), in time independent of where they differ. */
int cry_equal(const void *a, const void *b, size_t n);
/* 1 when the strings are equal; time depends only on their lengths. */
int cry_str_equal(const char *a, const char *b);
void cry_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256 of data under key, raw 32 bytes into out. Returns 0, or -1
 * when OpenSSL fails (out is then zeroed: never compare it, check the code). */
int cry_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[32]);
/* Fills p with n cryptographically random bytes; -1 on failure. */
int cry_random(void *p, size_t n);
/* A random (version 4) UUID in canonical lower-case form. */
int cry_uuid4(char out[37]);

#endif
