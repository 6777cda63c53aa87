/* crypto: field encryption for PII at rest, blind indexes for lookups,
 * constant-time comparison, random identifiers. All on OpenSSL.
 *
 * Ciphertext format (text, safe in a TEXT column):
 *   "v2." <key id> "." base64(12-byte nonce | ciphertext | 16-byte tag)
 * AES-256-GCM, with the associated data
 *   "v2" NUL <key id> NUL <table> NUL <column> NUL <row id>
 * so a token decrypts only in the place it was written for: copied to
 * another row, column or table (by anyone who can write the database) it
 * fails the tag like a tampered one. None of the parts can hold a NUL, so
 * no two places share an AAD.
 *
 * Keys form a ring: the first key encrypts every new token, each of the
 * others only decrypts the tokens written under it, which a token finds by
 * the key id it names. A key id is 1 to 8 characters of [0-9a-z]: the id
 * given with the key in CRIER_ENCRYPTION_KEYS, or, for a key given
 * without one (and for CRIER_ENCRYPTION_KEY), its derived id, the first 8
 * hex of SHA-256 of the key. A key also opens the tokens that name its
 * derived id, so the tokens written under a single CRIER_ENCRYPTION_KEY stay
 * readable once that key is listed under a name of its own.
 *
 * "v1." tokens (same layout, the key id alone as AAD) were written before
 * the place was bound. cry_decrypt refuses them, since a v1 token can be
 * moved between rows undetected; only the migration that rewrites them as
 * v2 reads them, through cry_decrypt_v1. */
#ifndef CRIER_CRYPTO_H
#define CRIER_CRYPTO_H

#include "util/buf.h"

#include <stddef.h>

/* Keys a ring holds at most; a rotation needs two. */
#define CRY_KEYS_MAX   16
#define CRY_KEY_ID_MAX 8

typedef struct cry_key {
    unsigned char enc[32];            /* AES-256-GCM data key */
    char id[CRY_KEY_ID_MAX + 1];      /* the id its new tokens name */
    char derived[CRY_KEY_ID_MAX + 1]; /* first 8 hex of SHA-256(enc), also opened */
} cry_key_t;

typedef struct cry_keys {
    cry_key_t ring[CRY_KEYS_MAX]; /* ring[0] encrypts; every one decrypts */
    int n;
    /* HMAC key for blind indexes: given (CRIER_BLIND_INDEX_KEY), or derived
     * from the oldest key, ring[n - 1], so that putting a new key in front
     * changes no index */
    unsigned char index[32];
    /* HMAC key of the link tokens in messages (crypto/linktok.h): given
     * (CRIER_LINK_KEY), or derived from the oldest key like the index key,
     * so a rotation of the ring leaves the links of sent mail working */
    unsigned char link[32];
    char key_id[CRY_KEY_ID_MAX + 1]; /* ring[0].id: the id of every new token */
    int loaded;
} cry_keys_t;

/* Loads one key from base64 (must decode to exactly 32 bytes): a ring of
 * one under its derived id, the index key derived from it. */
int cry_keys_load(cry_keys_t *k, const char *b64, char *err, size_t errlen);
/* Loads a ring from "id:base64,id:base64,..." (the current key first; an
 * entry may be base64 alone, its id then derived). Ids are 1 to
 * CRY_KEY_ID_MAX of [0-9a-z], and no id (given or derived) may name two
 * keys. The index key is derived from the last entry. -1 with err naming
 * the entry by its position (never a key) when one is bad. */
int cry_keys_load_list(cry_keys_t *k, const char *list, char *err, size_t errlen);
/* Replaces the derived index key of a loaded ring by base64 of 32 bytes. */
int cry_keys_set_index(cry_keys_t *k, const char *b64, char *err, size_t errlen);
/* Replaces the derived link key of a loaded ring by base64 of 32 bytes. */
int cry_keys_set_link(cry_keys_t *k, const char *b64, char *err, size_t errlen);
/* 1 when the ring opens tokens that name key_id. */
int cry_keys_has(const cry_keys_t *k, const char *key_id);
/* Overwrites every key (not loaded afterwards), e.g. before a command exits. */
void cry_keys_wipe(cry_keys_t *k);
/* Where a ciphertext lives: the table, the column and the stable id of the
 * row (its primary key in canonical text form). Each part is non-empty,
 * without NUL, at most CRY_PLACE_MAX bytes. */
#define CRY_PLACE_MAX 128
typedef struct cry_place {
    const char *table;
    const char *column;
    const char *row_id;
} cry_place_t;

/* Appends the v2 token of plain[0..len), bound to *at, to out. -1 (out
 * unchanged) without a key, with a bad place, or when OpenSSL fails. */
int cry_encrypt(const cry_keys_t *k, const cry_place_t *at, const void *plain, size_t len,
                buf_t *out);
/* Appends the plaintext of a v2 token made by cry_encrypt for the same
 * place under a key of the ring (the one its key id names); -1 on a key id
 * the ring lacks, a wrong key, another place, tampering, a v1 or a
 * malformed token (out is then unchanged). cry_decrypt_why says which. */
int cry_decrypt(const cry_keys_t *k, const cry_place_t *at, const char *token, buf_t *out);
/* Decrypts a v1 token (bound to nothing but the key id): for the migration
 * that rewrites v1 rows as v2, nothing else. */
int cry_decrypt_v1(const cry_keys_t *k, const char *token, buf_t *out);
/* The version of a token by its prefix: 1, 2, or 0 when it is neither. */
int cry_token_version(const char *token);
/* The key id a v1 or v2 token names into out; -1 (out "") when the token
 * has no well-formed one. */
int cry_token_key_id(const char *token, char out[CRY_KEY_ID_MAX + 1]);
/* Why token did not open under k, for a message: e.g. "encrypted under key
 * id a, which is not configured". Names the key id, never a value. */
void cry_decrypt_why(const cry_keys_t *k, const char *token, char *err, size_t errlen);
/* HMAC-SHA256 of domain "\0" value under the index key, as 64 hex chars.
 * domain separates e.g. "email" from "phone" so equal strings differ.
 * Returns 0, or -1 (out is then "") without a key or when OpenSSL fails:
 * a caller must not store or look up anything with a failed index. */
int cry_blind_index(const cry_keys_t *k, const char *domain, const char *value, char out[65]);
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
