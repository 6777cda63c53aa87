/* dkim: canonicalisation (RFC 6376 3.4.5), known signatures (the RFC 8463
 * test keys on crier's vector and on RFC 8463 A.3), the signed field crier
 * writes (folding, h=, over-signing, a signature that verifies and stops
 * verifying once the message changes), the DNS records, key generation and
 * bad key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/dkim.h"
#include "util/base64.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_VECTOR 1736157600LL

/* crier's vector: a digest with one-click unsubscribe headers. */
static const char MSG[] = "From: Crier Test <news@mail.example.com>\r\n"
                          "To: <alice@example.net>\r\n"
                          "Subject:  Your   weekly digest \r\n"
                          "Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
                          "Message-ID: <20250106100000.abc123@mail.example.com>\r\n"
                          "MIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=UTF-8\r\n"
                          "List-Unsubscribe: <https://mail.example.com/u/Zk9xT2VbR1c>,\r\n"
                          " <mailto:unsub@mail.example.com?subject=unsub-Zk9xT2VbR1c>\r\n"
                          "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                          "\r\n"
                          "Hello Alice, \t\r\n"
                          "This  is   the digest.\r\n"
                          "\r\n"
                          "\r\n";

#define VEC_BH "63FjRzssBH5K/EtP8vCQopAWgo9WyEljxYQJ9Nsk96w="
#define VEC_H                                                                                      \
    "from:to:subject:date:message-id:mime-version:content-type:list-unsubscribe:"                  \
    "list-unsubscribe-post:from:list-unsubscribe:list-unsubscribe-post"

/* The vector's DKIM-Signature field up to its empty b=, for a= and s=. */
#define VEC_SIG(alg, sel)                                                                          \
    "DKIM-Signature: v=1; a=" alg "; c=relaxed/relaxed; d=mail.example.com;\r\n"                   \
    " s=" sel "; t=1736157600;\r\n"                                                                \
    " h=from:to:subject:date:message-id:mime-version:content-type:\r\n"                            \
    " list-unsubscribe:list-unsubscribe-post:from:list-unsubscribe:list-unsubscribe-post;\r\n"     \
    " bh=" VEC_BH ";\r\n"                                                                          \
    " b="

#define VEC_HEADERS                                                                                \
    "from:Crier Test <news@mail.example.com>\r\n"                                                  \
    "to:<alice@example.net>\r\n"                                                                   \
    "subject:Your weekly digest\r\n"                                                               \
    "date:Mon, 06 Jan 2025 10:00:00 +0000\r\n"                                                     \
    "message-id:<20250106100000.abc123@mail.example.com>\r\n"                                      \
    "mime-version:1.0\r\n"                                                                         \
    "content-type:text/plain; charset=UTF-8\r\n"                                                   \
    "list-unsubscribe:<https://mail.example.com/u/Zk9xT2VbR1c>, "                                  \
    "<mailto:unsub@mail.example.com?subject=unsub-Zk9xT2VbR1c>\r\n"                                \
    "list-unsubscribe-post:List-Unsubscribe=One-Click\r\n"

#define VEC_INPUT(alg, sel)                                                                        \
    VEC_HEADERS "dkim-signature:v=1; a=" alg "; c=relaxed/relaxed; d=mail.example.com; s=" sel     \
                "; t=1736157600;"                                                                  \
                " h=from:to:subject:date:message-id:mime-version:content-type: "                   \
                "list-unsubscribe:list-unsubscribe-post"                                           \
                ":from:list-unsubscribe:list-unsubscribe-post; bh=" VEC_BH "; b="

static const char VEC_B_ED[] = "zzTn35avTLWxhpfn5wNXaP1iyJ86/89Ivz9Bhu6AKqbF5xSB0TuI2ABzr7nxFaci"
                               "fZC7MNmLQA3H3Qc3mctiBQ==";
static const char VEC_B_RSA[] =
    "LSCoHTZlk0x91N7Rpc5JwIZo69YGwfc0cIyxfeZvE6A/KgESBG0icefXfxlKs9sSlPFBtq1sQevGenCHsHrANbN4DLaE"
    "uH6TYQHxixYRV8DxKSvG0sGLqzIAMRrKpsvC9kEhLc9DSN6G41mUfyKEE+XXcx+DvjrnCRiYIzpAewQ=";

#define REC_ED "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define REC_RSA                                                                                    \
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR" \
    "6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5"   \
    "QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"

static char *fixture(const char *name)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    assert_non_null(src);
    static char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/dkim/%s", src, name);
    return path;
}

static dkim_signer_t *load(const char *name, const char *sel, const char *dom)
{
    char err[512] = "";
    dkim_signer_t *s = dkim_signer_load(fixture(name), sel, dom, err, sizeof err);
    if (!s)
        fail_msg("dkim_signer_load %s: %s", name, err);
    return s;
}

static EVP_PKEY *load_key(const char *name)
{
    FILE *f = fopen(fixture(name), "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static void hex_sha256(const char *p, size_t n, char hex[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Verifies base64 b64 over a header hash input as a receiver would. */
static int verify(EVP_PKEY *key, dkim_alg_t alg, const char *input, size_t len, const char *b64)
{
    buf_t sig;
    buf_init(&sig, 4096);
    assert_int_equal(b64_decode(&sig, b64, strlen(b64), 0), 0);
    unsigned char md[32];
    const unsigned char *data = (const unsigned char *)input;
    size_t dlen = len;
    if (alg == DKIM_ED25519_SHA256) {
        unsigned int ml = 0;
        assert_int_equal(EVP_Digest(input, len, md, &ml, EVP_sha256(), NULL), 1);
        data = md;
        dlen = 32;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestVerifyInit(
                         ctx, NULL, alg == DKIM_ED25519_SHA256 ? NULL : EVP_sha256(), NULL, key),
                     1);
    int ok = EVP_DigestVerify(ctx, (const unsigned char *)sig.data, sig.len, data, dlen) == 1;
    EVP_MD_CTX_free(ctx);
    buf_free(&sig);
    return ok;
}

static void test_canon_rfc6376_example(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1024);
    assert_int_equal(dkim_canon_header("A: X", 4, &b), 0);
    assert_string_equal(b.data, "a:X");
    buf_reset(&b);
    const char fb[] = "B : Y\t\r\n\tZ  ";
    assert_int_equal(dkim_canon_header(fb, sizeof fb - 1, &b), 0);
    assert_string_equal(b.data, "b:Y Z");
    buf_reset(&b);
    const char body[] = " C \r\nD \t E\r\n\r\n\r\n";
    assert_int_equal(dkim_canon_body(body, sizeof body - 1, &b), 0);
    assert_string_equal(b.data, " C\r\nD E\r\n");

    /* The same two fields in a message, and the signature field after them. */
    const char msg[] = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
    const char sig[] = "DKIM-Signature: a=rsa-sha256;\r\n\tb=";
    buf_reset(&b);
    char err[128] = "";
    assert_int_equal(
        dkim_header_input(msg, sizeof msg - 1, "a : b", sig, sizeof sig - 1, &b, err, sizeof err),
        0);
    assert_string_equal(b.data, "a:X\r\nb:Y Z\r\ndkim-signature:a=rsa-sha256; b=");
    buf_free(&b);
}

static void test_canon_body_edges(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"\r\n", ""},
        {"\r\n\r\n \t \r\n", ""},
        {"abc", "abc\r\n"},
        {"a  b\t\tc \t", "a b c\r\n"},
        {"\tlead\r\n", " lead\r\n"},
        {"a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n"},
        {"a \nb", "a\r\nb\r\n"}, /* a bare LF reads as CRLF, as receivers read it */
        {"x\r\n \r\ny", "x\r\n\r\ny\r\n"},
    };
    buf_t b;
    buf_init(&b, 1024);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_reset(&b);
        assert_int_equal(dkim_canon_body(cases[i].in, strlen(cases[i].in), &b), 0);
        assert_int_equal(b.len, strlen(cases[i].out));
        assert_memory_equal(b.len ? b.data : "", cases[i].out, b.len);
    }
    buf_free(&b);
    /* RFC 6376 3.4.4: an empty relaxed body hashes as zero bytes. */
    char bh[45];
    const char empty[] = "From: a@b.example\r\n\r\n\r\n\r\n";
    assert_int_equal(dkim_body_hash(empty, sizeof empty - 1, bh), 0);
    assert_string_equal(bh, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    /* No empty line after the header: not a message. */
    assert_int_equal(dkim_body_hash("From: a@b.example\r\n", 19, bh), -1);
}

/* The vector with one key: body hash, header hash input and its SHA-256,
 * and the signature (both algorithms are deterministic). */
static void vector(const char *keyfile, const char *sel, const char *sig, const char *want_input,
                   size_t want_len, const char *want_sha, const char *want_b)
{
    dkim_signer_t *s = load(keyfile, sel, "mail.example.com");
    char bh[45];
    assert_int_equal(dkim_body_hash(MSG, sizeof MSG - 1, bh), 0);
    assert_string_equal(bh, VEC_BH);
    buf_t in;
    buf_init(&in, 8192);
    char err[128] = "";
    assert_int_equal(
        dkim_header_input(MSG, sizeof MSG - 1, VEC_H, sig, strlen(sig), &in, err, sizeof err), 0);
    assert_int_equal(in.len, want_len);
    assert_string_equal(in.data, want_input);
    char hex[65];
    hex_sha256(in.data, in.len, hex);
    assert_string_equal(hex, want_sha);
    buf_t b;
    buf_init(&b, 4096);
    assert_int_equal(dkim_sign_input(s, in.data, in.len, &b), 0);
    assert_string_equal(b.data, want_b);
    buf_free(&b);
    buf_free(&in);
    dkim_signer_free(s);
}

static void test_vector_ed25519(void **state)
{
    (void)state;
    vector("ed25519.pem", "ed1", VEC_SIG("ed25519-sha256", "ed1"),
           VEC_INPUT("ed25519-sha256", "ed1"), 704,
           "95cf4fefb378e7da5bcf7f78c4434edb181422032bb77ee733f27a70cdab0f74", VEC_B_ED);
}

static void test_vector_rsa(void **state)
{
    (void)state;
    vector("rsa.pem", "rsa1", VEC_SIG("rsa-sha256", "rsa1"), VEC_INPUT("rsa-sha256", "rsa1"), 701,
           "bb7cca6c5eea6a75541be8b8dd6ac65317fd2fa86e899f261bb395efa8064d56", VEC_B_RSA);
}

/* RFC 8463 A.3: the RFC's own signed message, h= with " : " separators and
 * a name signed twice. */
static void test_rfc8463_a3(void **state)
{
    (void)state;
    static const char msg[] = "From: Joe SixPack <joe@football.example.com>\r\n"
                              "To: Suzie Q <suzie@shopping.example.net>\r\n"
                              "Subject: Is dinner ready?\r\n"
                              "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
                              "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
                              "\r\n"
                              "Hi.\r\n"
                              "\r\n"
                              "We lost the game.  Are you hungry yet?\r\n"
                              "\r\n"
                              "Joe.\r\n"
                              "\r\n";
    static const struct {
        const char *key, *sig, *b;
    } sigs[] = {
        {"ed25519.pem",
         "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
         " d=football.example.com; i=@football.example.com;\r\n"
         " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
         " subject : date : message-id : from : subject : date;\r\n"
         " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
         " b=",
         "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw="
         "="},
        {"rsa.pem",
         "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
         " d=football.example.com; i=@football.example.com;\r\n"
         " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
         " date : message-id : from : subject : date;\r\n"
         " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
         " b=",
         "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tF"
         "OeS9mPYQTnGdaSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8="},
    };
    char bh[45];
    assert_int_equal(dkim_body_hash(msg, sizeof msg - 1, bh), 0);
    assert_string_equal(bh, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    for (size_t i = 0; i < 2; i++) {
        dkim_signer_t *s = load(sigs[i].key, "test", "football.example.com");
        buf_t in, b;
        buf_init(&in, 8192);
        buf_init(&b, 4096);
        char err[128] = "";
        assert_int_equal(dkim_header_input(msg, sizeof msg - 1,
                                           "from : to : subject : date : message-id : from : "
                                           "subject : date",
                                           sigs[i].sig, strlen(sigs[i].sig), &in, err, sizeof err),
                         0);
        assert_int_equal(dkim_sign_input(s, in.data, in.len, &b), 0);
        assert_string_equal(b.data, sigs[i].b);
        buf_free(&b);
        buf_free(&in);
        dkim_signer_free(s);
    }
}

/* The value of tag in a DKIM-Signature field, WSP and line ends removed. */
static void tag_value(const char *field, const char *tag, char *out, size_t outlen)
{
    char flat[4096];
    size_t n = 0;
    for (const char *p = strchr(field, ':') + 1; *p && n + 1 < sizeof flat; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            flat[n++] = *p;
    flat[n] = '\0';
    out[0] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(flat, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        size_t tl = strlen(tag);
        if (strncmp(t, tag, tl) == 0 && t[tl] == '=') {
            snprintf(out, outlen, "%s", t + tl + 1);
            return;
        }
    }
    fail_msg("no %s= in %s", tag, field);
}

/* Checks the field dkim_sign wrote for msg and verifies it the way a
 * receiver does: the field with b= emptied, the fields h= names. Returns
 * whether the signature verifies over other (msg, or a changed copy). */
static int check_signed(const char *field, dkim_alg_t alg, const char *keyfile, const char *other,
                        size_t otherlen)
{
    /* Every line under 78 characters, CRLF-terminated, folds start with SP. */
    size_t len = strlen(field);
    assert_true(len > 4);
    assert_memory_equal(field + len - 2, "\r\n", 2);
    const char *line = field;
    while (*line) {
        const char *eol = strstr(line, "\r\n");
        assert_non_null(eol);
        assert_true(eol - line < 78);
        assert_null(memchr(line, '\n', (size_t)(eol - line)));
        if (line != field)
            assert_true(line[0] == ' ');
        line = eol + 2;
    }
    char h[1024], b[1024];
    tag_value(field, "h", h, sizeof h);
    tag_value(field, "b", b, sizeof b);
    const char *bpos = NULL;
    for (const char *p = strstr(field, " b="); p; p = strstr(p + 1, " b="))
        bpos = p;
    assert_non_null(bpos);
    EVP_PKEY *key = load_key(keyfile);
    buf_t in;
    buf_init(&in, 1 << 20);
    char err[128] = "";
    assert_int_equal(dkim_header_input(other, otherlen, h, field, (size_t)(bpos + 3 - field), &in,
                                       err, sizeof err),
                     0);
    int ok = verify(key, alg, in.data, in.len, b);
    /* bh= must match the body as it now is, too. */
    char bh[1024], now[45];
    tag_value(field, "bh", bh, sizeof bh);
    ok = ok && dkim_body_hash(other, otherlen, now) == 0 && strcmp(bh, now) == 0;
    buf_free(&in);
    EVP_PKEY_free(key);
    return ok;
}

static void sign_and_check(const char *keyfile, const char *sel, dkim_alg_t alg)
{
    dkim_signer_t *s = load(keyfile, sel, "mail.example.com");
    assert_int_equal(dkim_signer_alg(s), alg);
    buf_t f;
    buf_init(&f, 8192);
    char err[128] = "";
    assert_int_equal(dkim_sign(s, MSG, sizeof MSG - 1, T_VECTOR, &f, err, sizeof err), 0);
    char want[256];
    snprintf(want, sizeof want, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; d=mail.example.com;",
             dkim_alg_name(alg));
    assert_memory_equal(f.data, want, strlen(want));
    char v[1024];
    tag_value(f.data, "h", v, sizeof v);
    assert_string_equal(v, "from:to:subject:date:message-id:mime-version:content-type:"
                           "list-unsubscribe:list-unsubscribe-post:"
                           "from:subject:list-unsubscribe:list-unsubscribe-post");
    tag_value(f.data, "bh", v, sizeof v);
    assert_string_equal(v, VEC_BH);
    tag_value(f.data, "t", v, sizeof v);
    assert_string_equal(v, "1736157600");
    tag_value(f.data, "s", v, sizeof v);
    assert_string_equal(v, sel);
    assert_null(strstr(f.data, "l="));
    assert_true(check_signed(f.data, alg, keyfile, MSG, sizeof MSG - 1));

    /* Deterministic: the same message at the same time, the same field. */
    buf_t g;
    buf_init(&g, 8192);
    assert_int_equal(dkim_sign(s, MSG, sizeof MSG - 1, T_VECTOR, &g, err, sizeof err), 0);
    assert_string_equal(f.data, g.data);
    buf_free(&g);

    /* The signature covers what it says: a changed Subject, an added
     * Subject or List-Unsubscribe (over-signed), a changed body all fail;
     * refolding a signed field does not. */
    static const struct {
        const char *from, *to;
        int ok;
    } edits[] = {
        {"Subject:  Your   weekly digest \r\n", "Subject: Your weekly digest!\r\n", 0},
        {"Subject:  Your   weekly digest \r\n",
         "Subject:  Your   weekly digest \r\nSubject: Act now\r\n", 0},
        {"MIME-Version: 1.0\r\n", "MIME-Version: 1.0\r\nList-Unsubscribe: <https://x.example/>\r\n",
         0},
        {"This  is   the digest.", "This is not the digest.", 0},
        {"To: <alice@example.net>\r\n", "To: <mallory@example.net>\r\n", 0},
        {"Subject:  Your   weekly digest \r\n", "Subject: Your\r\n weekly digest\r\n", 1},
        {"X-Unsigned", "X-Unsigned", 1},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char changed[4096];
        const char *at = strstr(MSG, edits[i].from);
        if (!at) { /* an unsigned field added at the end of the header */
            snprintf(changed, sizeof changed, "X-Unsigned: yes\r\n%s", MSG);
        } else {
            snprintf(changed, sizeof changed, "%.*s%s%s", (int)(at - MSG), MSG, edits[i].to,
                     at + strlen(edits[i].from));
        }
        if (check_signed(f.data, alg, keyfile, changed, strlen(changed)) != edits[i].ok)
            fail_msg("edit %zu: verification %s", i, edits[i].ok ? "failed" : "passed");
    }
    buf_free(&f);
    dkim_signer_free(s);
}

static void test_sign_ed25519(void **state)
{
    (void)state;
    sign_and_check("ed25519.pem", "ed1", DKIM_ED25519_SHA256);
}

static void test_sign_rsa(void **state)
{
    (void)state;
    sign_and_check("rsa.pem", "rsa1", DKIM_RSA_SHA256);
}

/* Only the fields present are named (Cc and Reply-To here, no list
 * headers), each as often as present; the over-signed names always follow,
 * and unsigned fields (X-Crier-Id) stay out. */
static void test_sign_header_set(void **state)
{
    (void)state;
    static const char msg[] = "From: A <a@mail.example.com>\r\n"
                              "Reply-To: help@mail.example.com\r\n"
                              "To: b@example.net\r\n"
                              "Cc: c@example.net\r\n"
                              "Subject: Hi\r\n"
                              "X-Crier-Id: 1\r\n"
                              "Content-Transfer-Encoding: 7bit\r\n"
                              "\r\n"
                              "body\r\n";
    dkim_signer_t *s = load("rsa.pem", "a.b-c_d", "mail.example.com");
    buf_t f;
    buf_init(&f, 8192);
    char err[128] = "";
    assert_int_equal(dkim_sign(s, msg, sizeof msg - 1, 1, &f, err, sizeof err), 0);
    char h[1024];
    tag_value(f.data, "h", h, sizeof h);
    assert_string_equal(h, "from:to:cc:reply-to:subject:content-transfer-encoding:"
                           "from:subject:list-unsubscribe:list-unsubscribe-post");
    assert_true(check_signed(f.data, DKIM_RSA_SHA256, "rsa.pem", msg, sizeof msg - 1));
    buf_free(&f);

    /* A message without a header/body separator is refused, out unchanged. */
    buf_init(&f, 8192);
    assert_int_equal(dkim_sign(s, "From: a\r\n", 9, 1, &f, err, sizeof err), -1);
    assert_int_equal(f.len, 0);
    assert_non_null(strstr(err, "empty line"));
    buf_free(&f);
    dkim_signer_free(s);
}

static void test_records(void **state)
{
    (void)state;
    dkim_signer_t *ed = load("ed25519.pem", "ed1", "mail.example.com");
    dkim_signer_t *rsa = load("rsa.pem", "rsa1", "mail.example.com");
    assert_int_equal(dkim_signer_bits(rsa), 1024);
    assert_string_equal(dkim_signer_selector(rsa), "rsa1");
    assert_string_equal(dkim_signer_domain(rsa), "mail.example.com");
    buf_t b;
    buf_init(&b, 4096);
    assert_int_equal(dkim_record(ed, &b), 0);
    assert_string_equal(b.data, REC_ED);
    buf_reset(&b);
    assert_int_equal(dkim_record(rsa, &b), 0);
    assert_string_equal(b.data, REC_RSA);
    buf_free(&b);
    dkim_signer_free(ed);
    dkim_signer_free(rsa);
}

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void write_key(const char *name, EVP_PKEY *k, const EVP_CIPHER *enc)
{
    FILE *f = fopen(tmp_path(name), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, enc, NULL, 0, NULL, enc ? (void *)"pass" : NULL),
                     1);
    fclose(f);
    EVP_PKEY_free(k);
}

/* A bad key file fails with a message naming the file and what is wrong,
 * never quoting the file. */
static void expect_bad(const char *path, const char *sel, const char *why)
{
    char err[512] = "";
    dkim_signer_t *s = dkim_signer_load(path, sel, "mail.example.com", err, sizeof err);
    if (s)
        fail_msg("%s loaded", path);
    if (!strstr(err, why))
        fail_msg("%s: \"%s\" does not say \"%s\"", path, err, why);
    if (strcmp(sel, "ok") == 0 && !strstr(err, path))
        fail_msg("\"%s\" does not name %s", err, path);
    assert_null(strstr(err, "BEGIN"));
    assert_null(strstr(err, "MII"));
    assert_null(strstr(err, "sEcReT"));
}

static void test_bad_keys(void **state)
{
    (void)state;
    FILE *f = fopen(tmp_path("garbage.pem"), "w");
    assert_non_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\nsEcReTsEcReT\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    f = fopen(tmp_path("empty.pem"), "w");
    assert_non_null(f);
    fclose(f);
    write_key("ec.pem", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), NULL);
    write_key("rsa512.pem", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512), NULL);
    write_key("enc.pem", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), EVP_aes_256_cbc());

    expect_bad(tmp_path("missing.pem"), "ok", "cannot open");
    expect_bad(tmp_path("garbage.pem"), "ok", "not a PEM private key");
    expect_bad(tmp_path("empty.pem"), "ok", "empty");
    expect_bad(tmpdir, "ok", "not a regular file");
    expect_bad(tmp_path("ec.pem"), "ok", "RSA or Ed25519");
    expect_bad(tmp_path("rsa512.pem"), "ok", "512 bits");
    expect_bad(tmp_path("enc.pem"), "ok", "encrypted");
    expect_bad(fixture("rsa.pem"), "a;b", "selector");
    expect_bad(fixture("rsa.pem"), "", "selector");
    char err[256] = "";
    assert_null(dkim_signer_load(fixture("rsa.pem"), "s", "bad\r\ndomain", err, sizeof err));
    assert_non_null(strstr(err, "domain"));
}

static void test_keygen(void **state)
{
    (void)state;
    char err[512] = "";
    const char *ed = tmp_path("new-ed.pem");
    assert_int_equal(dkim_keygen(DKIM_ED25519_SHA256, 0, ed, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(ed, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    dkim_signer_t *s = dkim_signer_load(ed, "sel", "mail.example.com", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(dkim_signer_alg(s), DKIM_ED25519_SHA256);
    buf_t b;
    buf_init(&b, 4096);
    assert_int_equal(dkim_record(s, &b), 0);
    assert_int_equal(b.len, strlen("v=DKIM1; k=ed25519; p=") + 44);
    dkim_signer_free(s);
    /* Never over an existing key. */
    assert_int_equal(dkim_keygen(DKIM_ED25519_SHA256, 0, ed, err, sizeof err), -1);
    assert_non_null(strstr(err, "already exists"));
    assert_non_null(strstr(err, ed));

    const char *rsa = tmp_path("new-rsa.pem");
    assert_int_equal(dkim_keygen(DKIM_RSA_SHA256, 1024, rsa, err, sizeof err), 0);
    s = dkim_signer_load(rsa, "sel", "mail.example.com", err, sizeof err);
    assert_non_null(s);
    assert_int_equal(dkim_signer_alg(s), DKIM_RSA_SHA256);
    assert_int_equal(dkim_signer_bits(s), 1024);
    buf_reset(&b);
    assert_int_equal(dkim_record(s, &b), 0);
    assert_memory_equal(b.data, "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ", 56);
    dkim_signer_free(s);
    buf_free(&b);
    assert_int_equal(dkim_keygen(DKIM_RSA_SHA256, 512, tmp_path("small.pem"), err, sizeof err), -1);
    assert_int_equal(access(tmp_path("small.pem"), F_OK), -1);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/crier-dkim-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"garbage.pem", "empty.pem",  "ec.pem",      "rsa512.pem",
                                        "enc.pem",     "new-ed.pem", "new-rsa.pem", "small.pem"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(tmp_path(names[i]));
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon_rfc6376_example),
        cmocka_unit_test(test_canon_body_edges),
        cmocka_unit_test(test_vector_ed25519),
        cmocka_unit_test(test_vector_rsa),
        cmocka_unit_test(test_rfc8463_a3),
        cmocka_unit_test(test_sign_ed25519),
        cmocka_unit_test(test_sign_rsa),
        cmocka_unit_test(test_sign_header_set),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_keygen),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
