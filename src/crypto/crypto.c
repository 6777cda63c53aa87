#include "crypto/crypto.h"

#include "util/base64.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>

#define CRY_NONCE_LEN 12
#define CRY_TAG_LEN   16
/* A token is "v2." + key id + "." + base64; fields above this are refused so a
 * corrupt row cannot make decryption allocate without bound. */
#define CRY_TOKEN_MAX (16u * 1024 * 1024)

static void cry_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void cry_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32); /* only on allocation failure inside OpenSSL */
}

void cry_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    cry_sha256(data, len, d);
    cry_hex(d, sizeof d, out);
}

int cry_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[32])
{
    unsigned int n = 32;
    if (keylen > INT_MAX || !HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n) || n != 32) {
        memset(out, 0, 32);
        return -1;
    }
    return 0;
}

/* Decodes base64 of exactly 32 bytes into out; -1 (out zeroed) otherwise. */
static int cry_key_decode(const char *b64, unsigned char out[32])
{
    buf_t raw;
    buf_init(&raw, 64);
    int rc = b64 && *b64 && b64_decode(&raw, b64, strlen(b64), 0) == 0 && raw.len == 32 ? 0 : -1;
    if (rc == 0)
        memcpy(out, raw.data, 32);
    else
        memset(out, 0, 32);
    if (raw.data)
        OPENSSL_cleanse(raw.data, raw.len);
    buf_free(&raw);
    return rc;
}

/* The index key of a data key. A separate index key means a blind index
 * never reuses the encryption key for a second purpose, and one data key
 * still configures both. */
static int cry_index_derive(const unsigned char enc[32], unsigned char index[32])
{
    static const char label[] = "crier blind index v1";
    return cry_hmac_sha256(enc, 32, label, sizeof label - 1, index);
}

/* The link-token key of a data key: a purpose of its own, like the index. */
static int cry_link_derive(const unsigned char enc[32], unsigned char link[32])
{
    static const char label[] = "crier link tokens v1";
    return cry_hmac_sha256(enc, 32, label, sizeof label - 1, link);
}

/* 1 when id is 1 to CRY_KEY_ID_MAX of [0-9a-z] (a derived id is 8 hex). */
static int cry_id_ok(const char *id, size_t n)
{
    if (n < 1 || n > CRY_KEY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z')))
            return 0;
    return 1;
}

/* The key of the ring whose id or derived id is id, or NULL. */
static const cry_key_t *cry_find(const cry_keys_t *k, const char *id)
{
    if (!k || !k->loaded)
        return NULL;
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->ring[i].id, id) == 0 || strcmp(k->ring[i].derived, id) == 0)
            return &k->ring[i];
    return NULL;
}

int cry_keys_has(const cry_keys_t *k, const char *key_id)
{
    return key_id && cry_find(k, key_id) != NULL;
}

/* Adds the key of b64 to the ring under id (NULL: its derived id). The
 * message names no key: the caller says which entry it was. */
static int cry_ring_add(cry_keys_t *k, const char *id, size_t idlen, const char *b64, char *err,
                        size_t errlen)
{
    if (k->n >= CRY_KEYS_MAX) {
        snprintf(err, errlen, "is one key too many (at most %d)", CRY_KEYS_MAX);
        return -1;
    }
    cry_key_t *key = &k->ring[k->n];
    if (cry_key_decode(b64, key->enc) != 0) {
        snprintf(err, errlen, "is not base64 of exactly 32 bytes");
        return -1;
    }
    unsigned char d[32];
    cry_sha256(key->enc, sizeof key->enc, d);
    cry_hex(d, 4, key->derived);
    if (id) {
        memcpy(key->id, id, idlen);
        key->id[idlen] = '\0';
    } else {
        memcpy(key->id, key->derived, sizeof key->id);
    }
    /* An id naming two keys would make a token's key ambiguous. */
    for (int i = 0; i < k->n; i++) {
        const cry_key_t *o = &k->ring[i];
        if (strcmp(o->id, key->id) == 0 || strcmp(o->derived, key->id) == 0 ||
            strcmp(o->id, key->derived) == 0 || strcmp(o->derived, key->derived) == 0) {
            OPENSSL_cleanse(key, sizeof *key);
            snprintf(err, errlen, "repeats the key or a key id of entry %d", i + 1);
            return -1;
        }
    }
    k->n++;
    return 0;
}

/* Marks a ring of at least one key loaded, its index and link keys derived
 * from the oldest key. */
static int cry_ring_finish(cry_keys_t *k, char *err, size_t errlen)
{
    if (cry_index_derive(k->ring[k->n - 1].enc, k->index) != 0 ||
        cry_link_derive(k->ring[k->n - 1].enc, k->link) != 0) {
        OPENSSL_cleanse(k, sizeof *k);
        snprintf(err, errlen, "cannot derive the blind index and link keys");
        return -1;
    }
    memcpy(k->key_id, k->ring[0].id, sizeof k->key_id);
    k->loaded = 1;
    return 0;
}

int cry_keys_load(cry_keys_t *k, const char *b64, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    if (!b64 || !*b64) {
        snprintf(err, errlen, "encryption key is empty");
        return -1;
    }
    if (cry_ring_add(k, NULL, 0, b64, err, errlen) != 0) {
        snprintf(err, errlen, "encryption key must be base64 of exactly 32 bytes");
        return -1;
    }
    return cry_ring_finish(k, err, errlen);
}

int cry_keys_load_list(cry_keys_t *k, const char *list, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    if (!list || !*list) {
        snprintf(err, errlen, "the key list is empty");
        return -1;
    }
    const char *p = list;
    for (int pos = 1;; pos++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        /* "b:...,  a:..." reads as it was meant */
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        /* an entry is copied out so that its key can be cleansed after */
        char entry[256];
        const char *colon = memchr(p, ':', n);
        char why[128] = "";
        if (n == 0)
            snprintf(why, sizeof why, "is empty");
        else if (n >= sizeof entry)
            snprintf(why, sizeof why, "is too long");
        else if (colon && !cry_id_ok(p, (size_t)(colon - p)))
            snprintf(why, sizeof why, "has a bad key id: give 1 to %d characters of 0-9 and a-z",
                     CRY_KEY_ID_MAX);
        if (!why[0] && n < sizeof entry) {
            memcpy(entry, p, n);
            entry[n] = '\0';
            const char *b64 = colon ? entry + (colon - p) + 1 : entry;
            char e[128];
            if (cry_ring_add(k, colon ? entry : NULL, colon ? (size_t)(colon - p) : 0, b64, e,
                             sizeof e) != 0)
                snprintf(why, sizeof why, "%s", e);
            OPENSSL_cleanse(entry, sizeof entry);
        }
        if (why[0]) {
            OPENSSL_cleanse(k, sizeof *k);
            snprintf(err, errlen, "entry %d %s", pos, why);
            return -1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return cry_ring_finish(k, err, errlen);
}

int cry_keys_set_index(cry_keys_t *k, const char *b64, char *err, size_t errlen)
{
    unsigned char index[32];
    if (!k || !k->loaded) {
        snprintf(err, errlen, "no encryption key to go with the blind index key");
        return -1;
    }
    if (cry_key_decode(b64, index) != 0) {
        snprintf(err, errlen, "must be base64 of exactly 32 bytes");
        return -1;
    }
    memcpy(k->index, index, sizeof index);
    OPENSSL_cleanse(index, sizeof index);
    return 0;
}

int cry_keys_set_link(cry_keys_t *k, const char *b64, char *err, size_t errlen)
{
    unsigned char link[32];
    if (!k || !k->loaded) {
        snprintf(err, errlen, "no encryption key to go with the link key");
        return -1;
    }
    if (cry_key_decode(b64, link) != 0) {
        snprintf(err, errlen, "must be base64 of exactly 32 bytes");
        return -1;
    }
    memcpy(k->link, link, sizeof link);
    OPENSSL_cleanse(link, sizeof link);
    return 0;
}

void cry_keys_wipe(cry_keys_t *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

/* The associated data of a token: the version and the key id it names,
 * and for v2 the place. Parts are joined by NUL, which none of them can
 * contain, so the encoding is unambiguous: "ab"|"c" and "a"|"bc" differ. */
static int cry_aad(const char *key_id, int version, const cry_place_t *at, buf_t *aad)
{
    size_t idlen = strlen(key_id);
    if (version == 1)
        return buf_append(aad, key_id, idlen);
    const char *parts[] = {at ? at->table : NULL, at ? at->column : NULL, at ? at->row_id : NULL};
    if (buf_append(aad, "v2", 3) != 0 || buf_append(aad, key_id, idlen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t n = parts[i] ? strlen(parts[i]) : 0;
        if (n == 0 || n > CRY_PLACE_MAX)
            return -1; /* an unnamed place would bind nothing */
        /* each part follows a NUL: after the key id, after the part before */
        if (buf_putc(aad, '\0') != 0 || buf_append(aad, parts[i], n) != 0)
            return -1;
    }
    return 0;
}

int cry_token_version(const char *token)
{
    if (!token)
        return 0;
    if (strncmp(token, "v2.", 3) == 0)
        return 2;
    if (strncmp(token, "v1.", 3) == 0)
        return 1;
    return 0;
}

int cry_encrypt(const cry_keys_t *k, const cry_place_t *at, const void *plain, size_t len,
                buf_t *out)
{
    if (!k || !k->loaded || len > CRY_TOKEN_MAX)
        return -1;
    buf_t aad;
    buf_init(&aad, 3 * CRY_PLACE_MAX + 16);
    if (cry_aad(k->key_id, 2, at, &aad) != 0 || aad.len > INT_MAX) {
        buf_free(&aad);
        return -1;
    }
    unsigned char *blob = OPENSSL_malloc(CRY_NONCE_LEN + len + CRY_TAG_LEN);
    if (!blob) {
        buf_free(&aad);
        return -1;
    }
    int rc = -1, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || cry_random(blob, CRY_NONCE_LEN) != 0)
        goto done;
    /* The key id and the place are authenticated data: a token under
     * another key id label, or in another row, column or table, fails the
     * tag instead of decrypting there. */
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRY_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, k->ring[0].enc, blob) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad.data, (int)aad.len) != 1)
        goto done;
    n = 0; /* the AAD step reports its own length; the ciphertext starts here */
    if (len > 0 && EVP_EncryptUpdate(ctx, blob + CRY_NONCE_LEN, &n, plain, (int)len) != 1)
        goto done;
    int fin = 0;
    if (EVP_EncryptFinal_ex(ctx, blob + CRY_NONCE_LEN + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRY_TAG_LEN, blob + CRY_NONCE_LEN + len) !=
            1)
        goto done;
    size_t mark = out->len;
    if (buf_printf(out, "v2.%s.", k->key_id) != 0 ||
        b64_encode(out, blob, CRY_NONCE_LEN + len + CRY_TAG_LEN, 0) != 0) {
        out->len = mark; /* leave the caller's buffer as it was */
        if (out->data)
            out->data[mark] = '\0';
        goto done;
    }
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_clear_free(blob, CRY_NONCE_LEN + len + CRY_TAG_LEN);
    buf_free(&aad);
    return rc;
}

int cry_token_key_id(const char *token, char out[CRY_KEY_ID_MAX + 1])
{
    out[0] = '\0';
    if (cry_token_version(token) == 0)
        return -1;
    const char *dot = strchr(token + 3, '.');
    if (!dot || !cry_id_ok(token + 3, (size_t)(dot - token - 3)))
        return -1;
    memcpy(out, token + 3, (size_t)(dot - token - 3));
    out[dot - token - 3] = '\0';
    return 0;
}

void cry_decrypt_why(const cry_keys_t *k, const char *token, char *err, size_t errlen)
{
    char id[CRY_KEY_ID_MAX + 1];
    if (!k || !k->loaded)
        snprintf(err, errlen, "no encryption key is configured");
    else if (cry_token_key_id(token, id) != 0)
        snprintf(err, errlen, "not a crier token (a damaged value?)");
    else if (!cry_find(k, id))
        snprintf(err, errlen, "encrypted under key id %s, which is not configured", id);
    else if (cry_token_version(token) == 1)
        snprintf(err, errlen, "a v1 token under key id %s: crier migrate rewrites it", id);
    else
        snprintf(err, errlen,
                 "does not decrypt under key id %s (another key under that id, a value moved "
                 "from another row, or a damaged one)",
                 id);
}

/* Opens a token of the given version: "vN." + key id + "." + base64, under
 * the key of the ring that the key id names. */
static int cry_open(const cry_keys_t *k, int version, const cry_place_t *at, const char *token,
                    buf_t *out)
{
    char id[CRY_KEY_ID_MAX + 1];
    if (!k || !k->loaded || !token || cry_token_version(token) != version ||
        cry_token_key_id(token, id) != 0)
        return -1;
    size_t tlen = strlen(token);
    size_t body = 3 + strlen(id) + 1; /* where the base64 starts */
    if (tlen < body || tlen > CRY_TOKEN_MAX)
        return -1;
    const cry_key_t *key = cry_find(k, id);
    if (!key)
        return -1; /* written under a key the ring lacks */
    buf_t aad;
    buf_init(&aad, 3 * CRY_PLACE_MAX + 16);
    if (cry_aad(id, version, at, &aad) != 0 || aad.len > INT_MAX) {
        buf_free(&aad);
        return -1;
    }
    buf_t blob;
    buf_init(&blob, tlen);
    if (b64_decode(&blob, token + body, tlen - body, 0) != 0 ||
        blob.len < CRY_NONCE_LEN + CRY_TAG_LEN) {
        buf_free(&blob);
        buf_free(&aad);
        return -1;
    }
    const unsigned char *b = (const unsigned char *)blob.data;
    size_t clen = blob.len - CRY_NONCE_LEN - CRY_TAG_LEN;
    /* Decrypt into scratch first: nothing reaches out unless the tag holds. */
    unsigned char *plain = OPENSSL_malloc(clen + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = -1, n = 0, fin = 0;
    if (!plain || !ctx)
        goto done;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRY_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key->enc, b) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad.data, (int)aad.len) != 1)
        goto done;
    n = 0;
    if (clen > 0 && EVP_DecryptUpdate(ctx, plain, &n, b + CRY_NONCE_LEN, (int)clen) != 1)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRY_TAG_LEN,
                            (void *)(b + CRY_NONCE_LEN + clen)) != 1 ||
        EVP_DecryptFinal_ex(ctx, plain + n, &fin) != 1)
        goto done;
    if (buf_append(out, plain, clen) != 0)
        goto done;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (plain)
        OPENSSL_clear_free(plain, clen + 1);
    buf_free(&blob);
    buf_free(&aad);
    return rc;
}

int cry_decrypt(const cry_keys_t *k, const cry_place_t *at, const char *token, buf_t *out)
{
    return cry_open(k, 2, at, token, out);
}

int cry_decrypt_v1(const cry_keys_t *k, const char *token, buf_t *out)
{
    return cry_open(k, 1, NULL, token, out);
}

int cry_blind_index(const cry_keys_t *k, const char *domain, const char *value, char out[65])
{
    out[0] = '\0';
    if (!k || !k->loaded || !domain || !value)
        return -1;
    /* domain "\0" value: the NUL cannot occur inside either part, so no two
     * (domain, value) pairs share an input. Streamed through EVP_MAC so the
     * value needs no copy and no length limit. */
    unsigned char mac[32];
    size_t outl = 0;
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    int ok = ctx && EVP_MAC_init(ctx, k->index, sizeof k->index, params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)domain, strlen(domain) + 1) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)value, strlen(value)) == 1 &&
             EVP_MAC_final(ctx, mac, &outl, sizeof mac) == 1 && outl == sizeof mac;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    /* A failed MAC is an error, never an index: an index of zeros would be
     * shared by every failed value and match them all to one another. */
    if (!ok) {
        OPENSSL_cleanse(mac, sizeof mac);
        return -1;
    }
    cry_hex(mac, sizeof mac, out);
    return 0;
}

int cry_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int cry_str_equal(const char *a, const char *b)
{
    /* Comparing digests of fixed size: the time spent depends only on the
     * lengths (hashing), never on where the strings first differ. */
    unsigned char da[32], db[32];
    cry_sha256(a, strlen(a), da);
    cry_sha256(b, strlen(b), db);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

int cry_random(void *p, size_t n)
{
    if (n > (size_t)0x7fffffff)
        return -1;
    return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

int cry_uuid4(char out[37])
{
    unsigned char r[16];
    if (cry_random(r, sizeof r) != 0)
        return -1;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char hex[33];
    cry_hex(r, sizeof r, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return 0;
}
