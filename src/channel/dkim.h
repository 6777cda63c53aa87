/* dkim: DKIM signatures (RFC 6376) of outgoing email.
 *
 * One signer holds a private key, its algorithm (rsa-sha256 for an RSA key
 * of at least 1024 bits, ed25519-sha256 per RFC 8463 for an Ed25519 key),
 * the selector and the signing domain. dkim_sign canonicalises the message
 * relaxed/relaxed, signs the header fields crier writes that are present
 * (DKIM_HEADERS) and names From, Subject, List-Unsubscribe and
 * List-Unsubscribe-Post once more so that none can be added after signing,
 * and gives the folded DKIM-Signature field to put on top of the message.
 * The message must be exactly the bytes that go on the wire (CRLF line
 * ends, before SMTP dot-stuffing).
 *
 * Key material never leaves the signer: errors name the key file, never
 * its contents. A signer is read-only once loaded, so any number of threads
 * may sign with one at once. */
#ifndef CRIER_DKIM_H
#define CRIER_DKIM_H

#include "util/buf.h"

#include <stddef.h>

typedef struct dkim_signer dkim_signer_t;

typedef enum { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 } dkim_alg_t;

/* The header fields signed when present, in h= order. */
#define DKIM_HEADERS                                                                               \
    "from:to:cc:reply-to:subject:date:message-id:mime-version:content-type:"                       \
    "content-transfer-encoding:list-id:list-unsubscribe:list-unsubscribe-post"
/* Named once more at the end of h=, whether present or not. */
#define DKIM_OVERSIGNED "from:subject:list-unsubscribe:list-unsubscribe-post"

/* Smallest RSA key accepted (RFC 8301 3.2). */
#define DKIM_RSA_MIN_BITS 1024

/* Loads the PEM private key at path (PKCS#8 or PKCS#1; an encrypted key is
 * refused, nothing prompts). selector and domain are copied. NULL with err
 * naming path and saying what is wrong (unreadable, not a private key, a
 * key type other than RSA or Ed25519, RSA under DKIM_RSA_MIN_BITS, a bad
 * selector or domain). */
dkim_signer_t *dkim_signer_load(const char *path, const char *selector, const char *domain,
                                char *err, size_t errlen);
void dkim_signer_free(dkim_signer_t *s);
/* 0 when selector and domain can name a DKIM key record, else -1 with err
 * saying which cannot (dkim_signer_load checks the same). */
int dkim_names_check(const char *selector, const char *domain, char *err, size_t errlen);

dkim_alg_t dkim_signer_alg(const dkim_signer_t *s);
/* "rsa-sha256" or "ed25519-sha256". */
const char *dkim_alg_name(dkim_alg_t alg);
/* The key's size in bits (256 for Ed25519). */
int dkim_signer_bits(const dkim_signer_t *s);
const char *dkim_signer_selector(const dkim_signer_t *s);
const char *dkim_signer_domain(const dkim_signer_t *s);

/* Appends to out the DKIM-Signature field of msg (the whole message,
 * headers, empty line, body) signed at Unix time t: folded into lines
 * under 78 characters where the syntax allows, each ending CRLF, to be put
 * in front of msg unchanged. 0, or -1 with err (out as it was). */
int dkim_sign(const dkim_signer_t *s, const char *msg, size_t len, long long t, buf_t *out,
              char *err, size_t errlen);

/* Appends the DNS TXT record value of the signer's public key:
 * "v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>" or
 * "v=DKIM1; k=ed25519; p=<the raw 32-byte key, base64>". 0 or -1. */
int dkim_record(const dkim_signer_t *s, buf_t *out);

/* Writes a new private key (PKCS#8 PEM) to path, created with mode 0600
 * and never over an existing file or through a symlink. bits is for RSA
 * (DKIM_RSA_MIN_BITS to 8192). 0, or -1 with err naming path. */
int dkim_keygen(dkim_alg_t alg, int bits, const char *path, char *err, size_t errlen);

/* The steps of dkim_sign, for the tests. */

/* Appends the relaxed canonical form (RFC 6376 3.4.4) of a body. */
int dkim_canon_body(const char *body, size_t len, buf_t *out);
/* Appends the relaxed canonical form (RFC 6376 3.4.2) of one header field,
 * given without its final CRLF, without a CRLF. */
int dkim_canon_header(const char *field, size_t len, buf_t *out);
/* Writes base64(SHA-256(relaxed body of msg)) into b64 (45 bytes with the
 * NUL). 0, or -1 when msg has no header/body separator. */
int dkim_body_hash(const char *msg, size_t len, char b64[45]);
/* Appends the header hash input (RFC 6376 3.7, step 2): the fields of msg
 * that names (colon-separated, FWS allowed around each name) lists, each
 * taken from the bottom up and canonicalised with its CRLF, then sig, the
 * DKIM-Signature field up to and including its empty "b=", canonicalised
 * without a CRLF. 0, or -1 with err. */
int dkim_header_input(const char *msg, size_t len, const char *names, const char *sig,
                      size_t siglen, buf_t *out, char *err, size_t errlen);
/* Appends base64 of the signature of a header hash input (for Ed25519, of
 * its SHA-256 digest, RFC 8463 3). 0 or -1. */
int dkim_sign_input(const dkim_signer_t *s, const char *input, size_t len, buf_t *b64);

#endif
