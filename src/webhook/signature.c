#include "webhook/signature.h"

#include "crypto/crypto.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/text.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longer secrets are a configuration mistake (and HMAC() takes an int length). */
#define SIG_SECRET_MAX 4096
/* Twilio caps callback URLs at 4000 characters; leave room for our own query. */
#define SIG_URL_MAX 8192
/* URL plus every decoded parameter; form_parse's default limits stay far below. */
#define SIG_SIGNED_MAX (1024 * 1024)
/* base64 of a 20-byte HMAC-SHA1. */
#define SIG_TWILIO_B64_LEN 28
#define SIG_META_PREFIX    "sha256="

static int sig_fail(sig_reason_t *why, sig_reason_t r)
{
    if (why)
        *why = r;
    return 0;
}

static int sig_pass(sig_reason_t *why)
{
    if (why)
        *why = SIG_OK;
    return 1;
}

const char *sig_reason_name(sig_reason_t why)
{
    switch (why) {
    case SIG_OK:
        return "ok";
    case SIG_MISSING:
        return "missing";
    case SIG_MALFORMED:
        return "malformed";
    case SIG_MISMATCH:
        return "mismatch";
    case SIG_BODY_MISMATCH:
        return "body_mismatch";
    case SIG_UNCONFIGURED:
        return "unconfigured";
    case SIG_INTERNAL:
        return "internal";
    }
    return "unknown";
}

static int sig_secret_usable(const char *secret)
{
    return secret && *secret && strlen(secret) <= SIG_SECRET_MAX;
}

/* ---- URL handling --------------------------------------------------------- */

/* Where the authority's port sits in a URL, so the two alternative spellings
 * Twilio may have signed can be built. */
typedef struct sig_url {
    size_t auth_end;   /* index just past the authority */
    size_t port_start; /* index of the ':' before the port; == auth_end if none */
    int scheme_https;  /* 1 https, 0 http, -1 anything else */
} sig_url_t;

static int sig_url_parse(const char *url, sig_url_t *u)
{
    const char *sep = strstr(url, "://");
    if (!sep || sep == url)
        return -1;
    size_t scheme_len = (size_t)(sep - url);
    if (scheme_len == 5 && strncasecmp(url, "https", 5) == 0)
        u->scheme_https = 1;
    else if (scheme_len == 4 && strncasecmp(url, "http", 4) == 0)
        u->scheme_https = 0;
    else
        u->scheme_https = -1;

    size_t auth_start = scheme_len + 3;
    size_t auth_end = auth_start + strcspn(url + auth_start, "/?#");
    if (auth_end == auth_start)
        return -1;
    u->auth_end = auth_end;
    u->port_start = auth_end;

    /* The port is a run of digits after the last ':' of the authority, and
     * only after the host: not inside user:password@ or an [IPv6] literal. */
    size_t host_start = auth_start;
    for (size_t i = auth_start; i < auth_end; i++)
        if (url[i] == '@' || url[i] == ']')
            host_start = i + 1;
    size_t i = auth_end;
    while (i > host_start && url[i - 1] >= '0' && url[i - 1] <= '9')
        i--;
    if (i > host_start && i < auth_end && url[i - 1] == ':')
        u->port_start = i - 1;
    return 0;
}

/* Counts query parameters named bodySHA256 and remembers the last value.
 * Twilio puts the hash there in plain hex, so no decoding is needed. */
static size_t sig_find_body_hash(const char *url, const char **value, size_t *value_len)
{
    static const char name[] = "bodySHA256";
    const char *q = strchr(url, '?');
    if (!q)
        return 0;
    q++;
    size_t qlen = strcspn(q, "#");
    size_t found = 0;
    size_t start = 0;
    for (size_t i = 0; i <= qlen; i++) {
        if (i < qlen && q[i] != '&')
            continue;
        const char *seg = q + start;
        size_t seglen = i - start;
        const char *eq = memchr(seg, '=', seglen);
        size_t klen = eq ? (size_t)(eq - seg) : seglen;
        if (klen == sizeof name - 1 && memcmp(seg, name, klen) == 0) {
            found++;
            *value = eq ? eq + 1 : seg + seglen;
            *value_len = eq ? seglen - klen - 1 : 0;
        }
        start = i + 1;
    }
    return found;
}

/* ---- Twilio --------------------------------------------------------------- */

static int sig_pair_cmp(const void *a, const void *b)
{
    const form_pair_t *x = *(const form_pair_t *const *)a;
    const form_pair_t *y = *(const form_pair_t *const *)b;
    /* strcmp orders by unsigned bytes, and for UTF-8 that is code point order,
     * the order Twilio's own validators sort in. */
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Appends name+value for each distinct pair, sorted by name then value. */
static int sig_append_params(buf_t *out, const form_pairs_t *params)
{
    if (!params || params->count == 0)
        return 0;
    const form_pair_t **order = malloc(params->count * sizeof *order);
    if (!order)
        return -1;
    for (size_t i = 0; i < params->count; i++)
        order[i] = &params->pairs[i];
    qsort(order, params->count, sizeof *order, sig_pair_cmp);
    int rc = 0;
    for (size_t i = 0; i < params->count && rc == 0; i++) {
        /* Twilio signs each distinct (name, value) once. */
        if (i > 0 && sig_pair_cmp(&order[i - 1], &order[i]) == 0)
            continue;
        if (buf_append(out, order[i]->key, order[i]->key_len) != 0 ||
            buf_append(out, order[i]->value, order[i]->value_len) != 0)
            rc = -1;
    }
    free(order);
    return rc;
}

/* 1 when base64(HMAC-SHA1(token, url_part + suffix)) equals header. */
static int sig_twilio_match(const char *token, const char *url, size_t cut, const char *insert,
                            size_t resume, const buf_t *suffix, const char *header,
                            sig_reason_t *why)
{
    buf_t msg, b64;
    buf_init(&msg, SIG_SIGNED_MAX);
    buf_init(&b64, 64);
    int ok = 0;
    if (buf_append(&msg, url, cut) != 0 || buf_puts(&msg, insert) != 0 ||
        buf_puts(&msg, url + resume) != 0 || buf_append(&msg, suffix->data, suffix->len) != 0) {
        *why = SIG_INTERNAL;
        goto done;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)msg.data, msg.len, mac,
              &maclen) ||
        b64_encode(&b64, mac, maclen, 0) != 0) {
        *why = SIG_INTERNAL;
        goto done;
    }
    ok = b64.len == SIG_TWILIO_B64_LEN && cry_equal(b64.data, header, SIG_TWILIO_B64_LEN);
done:
    buf_free(&msg);
    buf_free(&b64);
    return ok;
}

/* Tries the URL as given, without its port, and with the default port added. */
static int sig_twilio_check(const char *token, const char *url, const sig_url_t *u,
                            const buf_t *suffix, const char *header, sig_reason_t *why)
{
    sig_reason_t err = SIG_MISMATCH;
    size_t n = strlen(url);
    int ok = sig_twilio_match(token, url, n, "", n, suffix, header, &err);
    if (u->port_start < u->auth_end) {
        ok |= sig_twilio_match(token, url, u->port_start, "", u->auth_end, suffix, header, &err);
    } else if (u->scheme_https >= 0) {
        const char *port = u->scheme_https ? ":443" : ":80";
        ok |= sig_twilio_match(token, url, u->auth_end, port, u->auth_end, suffix, header, &err);
    }
    if (ok)
        return sig_pass(why);
    return sig_fail(why, err);
}

/* Checks shared by both Twilio variants: SIG_OK and u filled when the
 * request may go on to the HMAC. */
static sig_reason_t sig_twilio_precheck(const char *auth_token, const char *url,
                                        const char *header_value, sig_url_t *u)
{
    if (!sig_secret_usable(auth_token))
        return SIG_UNCONFIGURED;
    if (!header_value || !*header_value)
        return SIG_MISSING;
    if (strlen(header_value) != SIG_TWILIO_B64_LEN)
        return SIG_MALFORMED;
    if (!url || strlen(url) > SIG_URL_MAX || sig_url_parse(url, u) != 0)
        return SIG_MALFORMED;
    return SIG_OK;
}

int sig_twilio_valid(const char *auth_token, const char *url, const form_pairs_t *params,
                     const char *header_value, sig_reason_t *why)
{
    sig_url_t u;
    sig_reason_t pre = sig_twilio_precheck(auth_token, url, header_value, &u);
    if (pre != SIG_OK)
        return sig_fail(why, pre);
    const char *hv;
    size_t hl;
    if (sig_find_body_hash(url, &hv, &hl) != 0)
        return sig_fail(why, SIG_MALFORMED);

    buf_t suffix;
    buf_init(&suffix, SIG_SIGNED_MAX);
    if (sig_append_params(&suffix, params) != 0) {
        buf_free(&suffix);
        return sig_fail(why, SIG_INTERNAL);
    }
    int ok = sig_twilio_check(auth_token, url, &u, &suffix, header_value, why);
    buf_free(&suffix);
    return ok;
}

int sig_twilio_body_valid(const char *auth_token, const char *url, const void *body, size_t len,
                          const char *header_value, sig_reason_t *why)
{
    sig_url_t u;
    sig_reason_t pre = sig_twilio_precheck(auth_token, url, header_value, &u);
    if (pre != SIG_OK)
        return sig_fail(why, pre);
    if (!body && len > 0)
        return sig_fail(why, SIG_MALFORMED);
    const char *claimed = NULL;
    size_t claimed_len = 0;
    /* Without exactly one bodySHA256 the body would go unauthenticated. */
    if (sig_find_body_hash(url, &claimed, &claimed_len) != 1 || claimed_len != 64)
        return sig_fail(why, SIG_BODY_MISMATCH);
    char actual[65];
    cry_sha256_hex(body ? body : "", len, actual);
    if (!cry_equal(actual, claimed, 64))
        return sig_fail(why, SIG_BODY_MISMATCH);

    buf_t none;
    buf_init(&none, 0);
    return sig_twilio_check(auth_token, url, &u, &none, header_value, why);
}

/* ---- Meta ----------------------------------------------------------------- */

int sig_meta_valid(const char *app_secret, const void *raw_body, size_t len,
                   const char *header_value, sig_reason_t *why)
{
    if (!sig_secret_usable(app_secret))
        return sig_fail(why, SIG_UNCONFIGURED);
    if (!header_value || !*header_value)
        return sig_fail(why, SIG_MISSING);
    size_t plen = sizeof SIG_META_PREFIX - 1;
    if (strncasecmp(header_value, SIG_META_PREFIX, plen) != 0 || strlen(header_value + plen) != 64)
        return sig_fail(why, SIG_MALFORMED);
    if (!raw_body && len > 0)
        return sig_fail(why, SIG_MALFORMED);

    /* Comparing the decoded bytes makes the check case-insensitive without
     * any branch on the secret-derived digest. */
    unsigned char claimed[32];
    const char *hex = header_value + plen;
    for (size_t i = 0; i < 32; i++) {
        int hi = text_hexval((unsigned char)hex[2 * i]);
        int lo = text_hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return sig_fail(why, SIG_MALFORMED);
        claimed[i] = (unsigned char)(hi << 4 | lo);
    }

    unsigned char mac[32];
    /* A failed HMAC must refuse, never compare its zeroed output. */
    if (cry_hmac_sha256(app_secret, strlen(app_secret), raw_body ? raw_body : "", len, mac) != 0)
        return sig_fail(why, SIG_INTERNAL);
    if (!cry_equal(mac, claimed, 32))
        return sig_fail(why, SIG_MISMATCH);
    return sig_pass(why);
}

int sig_meta_handshake(const char *verify_token, const char *mode, const char *token,
                       const char *challenge, const char **answer, sig_reason_t *why)
{
    *answer = NULL;
    if (!sig_secret_usable(verify_token))
        return sig_fail(why, SIG_UNCONFIGURED);
    if (!mode || strcmp(mode, "subscribe") != 0)
        return sig_fail(why, SIG_MALFORMED);
    if (!token || !*token)
        return sig_fail(why, SIG_MISSING);
    if (!challenge || !*challenge)
        return sig_fail(why, SIG_MALFORMED);
    size_t n = 0;
    for (; challenge[n]; n++) {
        unsigned char c = (unsigned char)challenge[n];
        if (n == SIG_CHALLENGE_MAX || c < 0x21 || c > 0x7e)
            return sig_fail(why, SIG_MALFORMED);
    }
    if (!cry_str_equal(token, verify_token))
        return sig_fail(why, SIG_MISMATCH);
    *answer = challenge;
    return sig_pass(why);
}
