/* v1token: makes "v1." tokens as crier wrote them before tokens were bound
 * to their place (AES-256-GCM, the key id alone as associated data), so
 * that tests can check they are refused by cry_decrypt and rewritten by the
 * migration. crier itself no longer writes them.
 *
 * Header-only (static functions), like testdb.h. */
#ifndef CRIER_TEST_V1TOKEN_H
#define CRIER_TEST_V1TOKEN_H

#include "crypto/crypto.h"
#include "util/base64.h"
#include "util/buf.h"

#include <openssl/evp.h>
#include <string.h>

/* Appends the v1 token of plain to out; 0 or -1. */
static int v1token_make(const cry_keys_t *k, const char *plain, buf_t *out)
{
    size_t len = strlen(plain);
    unsigned char blob[12 + 4096 + 16];
    if (len > 4096 || cry_random(blob, 12) != 0)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, ok = ctx != NULL;
    ok = ok && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1;
    ok = ok && EVP_EncryptInit_ex(ctx, NULL, NULL, k->ring[0].enc, blob) == 1;
    ok = ok && EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)k->key_id, 8) == 1;
    n = 0;
    ok = ok && (len == 0 ||
                EVP_EncryptUpdate(ctx, blob + 12, &n, (const unsigned char *)plain, (int)len) == 1);
    ok = ok && EVP_EncryptFinal_ex(ctx, blob + 12 + n, &fin) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, blob + 12 + len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return -1;
    if (buf_printf(out, "v1.%s.", k->key_id) != 0 || b64_encode(out, blob, 12 + len + 16, 0) != 0)
        return -1;
    return 0;
}

#endif
