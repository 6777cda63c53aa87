/* signature: provider webhook signatures against the published test vectors,
 * and the refusal of every one-byte change to signature, URL, parameters,
 * body and secret. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "webhook/signature.h"

#include <stdio.h>
#include <string.h>

#define TOKEN   "12345"
#define SDK_URL "https://mycompany.com/myapp.php?foo=1&bar=2"
#define SDK_SIG "RSOYDt4T1cUTdK1PDd93/VVr8B8="
/* Deliberately not in sorted order: the validator must sort. */
#define SDK_BODY                                                                                   \
    "To=%2B18005551212&CallSid=CA1234567890ABCDE&Digits=1234&Caller=%2B14158675309&From=%"         \
    "2B14158675309"

#define STATUS_URL "https://example.com/twilio/status"
#define STATUS_BODY                                                                                \
    "AccountSid=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx&ApiVersion=2010-04-01&ErrorCode=30003&From=%"   \
    "2B15017250604&MessageSid=SM1342fe1b2c904d1ab04f0fc7a58abca9&MessageStatus=undelivered&"       \
    "SmsSid=SM1342fe1b2c904d1ab04f0fc7a58abca9&SmsStatus=undelivered&To=%2B15558675310"
#define STATUS_SIG "LEKRlRV7sz2WwWGqQMZYL9InZSc="

#define JSON_BODY "{\"property\": \"value\", \"boolean\": true}"
#define JSON_HASH "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
#define JSON_URL  SDK_URL "&bodySHA256=" JSON_HASH
#define JSON_SIG  "a9nBmqA0ju/hNViExpshrM61xv4="

#define META_SECRET "1222e786b144d0e85b9f365372d93676"
#define META_SIG    "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
static const char meta_body[] =
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"264937493375603\",\"chan"
    "ges\":[{\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_nu"
    "mber\":\"15550953877\",\"phone_number_id\":\"277321005464405\"},\"contacts\":[{\"profi"
    "le\":{\"name\":\"PyWa Tests\"},\"wa_id\":\"972544401243\"}],\"messages\":[{\"from\":\"9725"
    "44401243\",\"id\":\"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMD"
    "c4NjQ4QzM4ODAxM0YA\",\"timestamp\":\"1730231903\",\"text\":{\"body\":\"Hey there! I am"
    " using PyWa.\"},\"type\":\"text\"}]},\"field\":\"messages\"}]}]}";

static void parse_ok(form_pairs_t *f, const char *body)
{
    char err[128];
    assert_int_equal(form_parse(f, body, strlen(body), NULL, err, sizeof err), 0);
}

static int twilio(const char *token, const char *url, const form_pairs_t *p, const char *hdr,
                  sig_reason_t *why)
{
    return sig_twilio_valid(token, url, p, hdr, why);
}

/* ---- Twilio vectors --------------------------------------------------------- */

static void test_twilio_sdk_vector(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    sig_reason_t why = SIG_INTERNAL;
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, SDK_SIG, &why), 1);
    assert_int_equal(why, SIG_OK);
    /* why is optional. */
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, SDK_SIG, NULL), 1);
    /* The parameters are signed: without them the same header is wrong. */
    assert_int_equal(twilio(TOKEN, SDK_URL, NULL, SDK_SIG, &why), 0);
    assert_int_equal(why, SIG_MISMATCH);
    form_free(&f);
}

static void test_twilio_port_vectors(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    static const struct {
        const char *url;
        const char *sig;
        int valid;
    } cases[] = {
        /* §1.6.3: the URL exactly as signed. */
        {"https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w=", 1},
        {"http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4=", 1},
        {"http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", 1},
        /* Twilio signed with the default port, we were given none: add it. */
        {SDK_URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", 1},
        {"http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4=", 1},
        /* Twilio signed without a port, we were given one: remove it. */
        {"https://mycompany.com:443/myapp.php?foo=1&bar=2", SDK_SIG, 1},
        {"https://mycompany.com:1234/myapp.php?foo=1&bar=2", SDK_SIG, 1},
        /* Only the scheme's default port is ever added. */
        {"http://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w=", 0},
        {SDK_URL, "0ZXoZLH/DfblKGATFgpif+LLRf4=", 0},
        {"http://mycompany.com/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", 0},
        /* The scheme is signed. */
        {"http://mycompany.com/myapp.php?foo=1&bar=2", SDK_SIG, 0},
        /* A port swapped for another is not the same URL. */
        {"https://mycompany.com:8443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w=", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sig_reason_t why;
        int got = twilio(TOKEN, cases[i].url, &f, cases[i].sig, &why);
        if (got != cases[i].valid)
            fail_msg("case %zu: %s", i, cases[i].url);
        assert_int_equal(why, cases[i].valid ? SIG_OK : SIG_MISMATCH);
    }
    form_free(&f);
}

static void test_twilio_url_forms(void **state)
{
    (void)state;
    /* Computed with Python's hmac module over the exact strings in the
     * comments: the port is found after user:password@ and after an IPv6
     * literal's ']', never inside them. */
    sig_reason_t why;
    /* "https://[::1]/x" */
    assert_int_equal(
        twilio(TOKEN, "https://[::1]:8443/x", NULL, "zc0aoKHkuUCtes4oOh0dugnL/EE=", &why), 1);
    /* "https://user:pw@host:443/x" */
    assert_int_equal(
        twilio(TOKEN, "https://user:pw@host/x", NULL, "RitPMwOWdpU+/xkQ2qlKjcMlsLU=", &why), 1);
    /* "https://user:pw@host/x" */
    assert_int_equal(
        twilio(TOKEN, "https://user:pw@host:443/x", NULL, "qZYcz3s5xBDCF9oDPBK+FL8RgBc=", &why), 1);
    /* GET webhook: the parameters are in the query, so only the URL is signed
     * ("https://example.com/twilio/inbound?From=%2B15551234567&Body=Hi"). */
    form_pairs_t empty;
    parse_ok(&empty, "");
    const char *get_url = "https://example.com/twilio/inbound?From=%2B15551234567&Body=Hi";
    assert_int_equal(twilio(TOKEN, get_url, NULL, "rJAsmPLovHoPcTg27WEL86UVUQM=", &why), 1);
    assert_int_equal(twilio(TOKEN, get_url, &empty, "rJAsmPLovHoPcTg27WEL86UVUQM=", &why), 1);
    form_free(&empty);

    /* Not URLs at all. */
    static const char *bad[] = {"", "mycompany.com/myapp.php", "://x/y", "https://", "https:///x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(twilio(TOKEN, bad[i], NULL, SDK_SIG, &why), 0);
        assert_int_equal(why, SIG_MALFORMED);
    }
    assert_int_equal(twilio(TOKEN, NULL, NULL, SDK_SIG, &why), 0);
    assert_int_equal(why, SIG_MALFORMED);
}

static void test_twilio_duplicates_vector(void **state)
{
    (void)state;
    form_pairs_t f;
    sig_reason_t why;
    parse_ok(&f, "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234");
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", &why), 1);
    form_free(&f);
    /* Order of the body does not matter, and a repeated pair counts once. */
    parse_ok(&f, "Digits=1234&Digits=5678&Digits=1234&SidAccount=AC123&Sid=CA123&Digits=5678");
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", &why), 1);
    form_free(&f);
    /* But a distinct extra value is signed. */
    parse_ok(&f, "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1235");
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", &why), 0);
    assert_int_equal(why, SIG_MISMATCH);
    form_free(&f);
}

static void test_twilio_status_vector(void **state)
{
    (void)state;
    form_pairs_t f;
    sig_reason_t why;
    parse_ok(&f, STATUS_BODY);
    assert_int_equal(twilio(TOKEN, STATUS_URL, &f, STATUS_SIG, &why), 1);
    assert_int_equal(why, SIG_OK);
    /* An empty value is still signed: "ErrorCode=" gives "ErrorCode". */
    form_free(&f);
    parse_ok(&f, STATUS_BODY "&ErrorMessage=");
    assert_int_equal(twilio(TOKEN, STATUS_URL, &f, STATUS_SIG, &why), 0);
    form_free(&f);
}

static void test_twilio_json_body_vector(void **state)
{
    (void)state;
    sig_reason_t why = SIG_INTERNAL;
    const char *body = JSON_BODY;
    size_t len = strlen(body);
    assert_int_equal(sig_twilio_body_valid(TOKEN, JSON_URL, body, len, JSON_SIG, &why), 1);
    assert_int_equal(why, SIG_OK);

    /* The form variant refuses a URL that announces a raw body. */
    assert_int_equal(twilio(TOKEN, JSON_URL, NULL, JSON_SIG, &why), 0);
    assert_int_equal(why, SIG_MALFORMED);

    /* The body variant needs exactly one, exact, bodySHA256. */
    char url[256];
    snprintf(url, sizeof url, "%s", JSON_URL);
    for (char *p = strstr(url, "bodySHA256=") + 11; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(sig_twilio_body_valid(TOKEN, url, body, len, JSON_SIG, &why), 0);
    assert_int_equal(why, SIG_BODY_MISMATCH);
    assert_int_equal(sig_twilio_body_valid(TOKEN, SDK_URL, body, len, JSON_SIG, &why), 0);
    assert_int_equal(why, SIG_BODY_MISMATCH);
    assert_int_equal(
        sig_twilio_body_valid(TOKEN, JSON_URL "&bodySHA256=" JSON_HASH, body, len, JSON_SIG, &why),
        0);
    assert_int_equal(why, SIG_BODY_MISMATCH);
    assert_int_equal(
        sig_twilio_body_valid(TOKEN, SDK_URL "&bodySHA256=", body, len, JSON_SIG, &why), 0);
    assert_int_equal(why, SIG_BODY_MISMATCH);

    /* Every one-byte change of the body breaks the hash. */
    char copy[64];
    memcpy(copy, body, len);
    for (size_t i = 0; i < len; i++) {
        copy[i] ^= 0x01;
        assert_int_equal(sig_twilio_body_valid(TOKEN, JSON_URL, copy, len, JSON_SIG, &why), 0);
        assert_int_equal(why, SIG_BODY_MISMATCH);
        copy[i] ^= 0x01;
    }
    assert_int_equal(sig_twilio_body_valid(TOKEN, JSON_URL, copy, len - 1, JSON_SIG, &why), 0);
    assert_int_equal(sig_twilio_body_valid(TOKEN, JSON_URL, copy, len, JSON_SIG, &why), 1);
}

/* ---- Twilio: one byte changed ----------------------------------------------- */

static void test_twilio_signature_byte_changed(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    char hdr[] = SDK_SIG;
    char json_hdr[] = JSON_SIG;
    for (size_t i = 0; i < sizeof hdr - 1; i++) {
        sig_reason_t why;
        hdr[i] ^= 0x01;
        assert_int_equal(twilio(TOKEN, SDK_URL, &f, hdr, &why), 0);
        assert_int_equal(why, SIG_MISMATCH);
        hdr[i] ^= 0x01;
        json_hdr[i] ^= 0x20; /* case flips matter in base64 */
        assert_int_equal(
            sig_twilio_body_valid(TOKEN, JSON_URL, JSON_BODY, strlen(JSON_BODY), json_hdr, &why),
            0);
        json_hdr[i] ^= 0x20;
    }
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, hdr, NULL), 1);
    form_free(&f);
}

static void test_twilio_url_byte_changed(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    char url[] = SDK_URL;
    for (size_t i = 0; i < sizeof url - 1; i++) {
        url[i] ^= 0x01;
        assert_int_equal(twilio(TOKEN, url, &f, SDK_SIG, NULL), 0);
        url[i] ^= 0x01;
    }
    char json_url[] = JSON_URL;
    const char *hash_at = strstr(json_url, "bodySHA256=");
    for (size_t i = 0; i < (size_t)(hash_at - json_url); i++) {
        json_url[i] ^= 0x01;
        assert_int_equal(
            sig_twilio_body_valid(TOKEN, json_url, JSON_BODY, strlen(JSON_BODY), JSON_SIG, NULL),
            0);
        json_url[i] ^= 0x01;
    }
    assert_int_equal(twilio(TOKEN, url, &f, SDK_SIG, NULL), 1);
    form_free(&f);
}

static void test_twilio_param_byte_changed(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, STATUS_BODY);
    size_t changes = 0;
    for (size_t p = 0; p < f.count; p++) {
        for (size_t i = 0; i < f.pairs[p].value_len; i++, changes++) {
            f.pairs[p].value[i] ^= 0x01;
            sig_reason_t why;
            assert_int_equal(twilio(TOKEN, STATUS_URL, &f, STATUS_SIG, &why), 0);
            assert_int_equal(why, SIG_MISMATCH);
            f.pairs[p].value[i] ^= 0x01;
        }
        for (size_t i = 0; i < f.pairs[p].key_len; i++, changes++) {
            f.pairs[p].key[i] ^= 0x01;
            assert_int_equal(twilio(TOKEN, STATUS_URL, &f, STATUS_SIG, NULL), 0);
            f.pairs[p].key[i] ^= 0x01;
        }
    }
    assert_true(changes > 200);
    assert_int_equal(twilio(TOKEN, STATUS_URL, &f, STATUS_SIG, NULL), 1);
    form_free(&f);
}

static void test_twilio_secret_byte_changed(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    char tok[] = TOKEN;
    for (size_t i = 0; i < sizeof tok - 1; i++) {
        sig_reason_t why;
        tok[i] ^= 0x01;
        assert_int_equal(twilio(tok, SDK_URL, &f, SDK_SIG, &why), 0);
        assert_int_equal(why, SIG_MISMATCH);
        assert_int_equal(
            sig_twilio_body_valid(tok, JSON_URL, JSON_BODY, strlen(JSON_BODY), JSON_SIG, &why), 0);
        assert_int_equal(why, SIG_MISMATCH);
        tok[i] ^= 0x01;
    }
    assert_int_equal(twilio("1234", SDK_URL, &f, SDK_SIG, NULL), 0);
    assert_int_equal(twilio("123456", SDK_URL, &f, SDK_SIG, NULL), 0);
    assert_int_equal(twilio(tok, SDK_URL, &f, SDK_SIG, NULL), 1);
    form_free(&f);
}

static void test_twilio_bad_headers(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    sig_reason_t why;
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, NULL, &why), 0);
    assert_int_equal(why, SIG_MISSING);
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, "", &why), 0);
    assert_int_equal(why, SIG_MISSING);
    static const char *garbled[] = {
        "RSOYDt4T1cUTdK1PDd93/VVr8B8",   /* one short */
        "RSOYDt4T1cUTdK1PDd93/VVr8B8==", /* one long */
        " RSOYDt4T1cUTdK1PDd93/VVr8B8=", /* surrounding space */
        "RSOYDt4T1cUTdK1PDd93/VVr8B8= ", "sha1=RSOYDt4T1cUTdK1PDd93/VVr8B8=", "not a signature",
    };
    for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
        assert_int_equal(twilio(TOKEN, SDK_URL, &f, garbled[i], &why), 0);
        assert_int_equal(why, SIG_MALFORMED);
    }
    /* Right length, wrong content. */
    assert_int_equal(twilio(TOKEN, SDK_URL, &f, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &why), 0);
    assert_int_equal(why, SIG_MISMATCH);
    assert_int_equal(
        sig_twilio_body_valid(TOKEN, JSON_URL, JSON_BODY, strlen(JSON_BODY), NULL, &why), 0);
    assert_int_equal(why, SIG_MISSING);
    form_free(&f);
}

static void test_twilio_unconfigured(void **state)
{
    (void)state;
    form_pairs_t f;
    parse_ok(&f, SDK_BODY);
    sig_reason_t why;
    assert_int_equal(twilio("", SDK_URL, &f, SDK_SIG, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);
    assert_int_equal(twilio(NULL, SDK_URL, &f, SDK_SIG, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);
    assert_int_equal(
        sig_twilio_body_valid("", JSON_URL, JSON_BODY, strlen(JSON_BODY), JSON_SIG, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);
    form_free(&f);
}

/* ---- Meta ------------------------------------------------------------------- */

static void test_meta_vector(void **state)
{
    (void)state;
    assert_int_equal(sizeof meta_body - 1, 511);
    sig_reason_t why = SIG_INTERNAL;
    assert_int_equal(sig_meta_valid(META_SECRET, meta_body, sizeof meta_body - 1, META_SIG, &why),
                     1);
    assert_int_equal(why, SIG_OK);
    /* Hex digits in either case, and the prefix too. */
    char upper[] = META_SIG;
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(sig_meta_valid(META_SECRET, meta_body, sizeof meta_body - 1, upper, &why), 1);
    /* A trailing newline is part of the body. */
    char longer[sizeof meta_body + 1];
    memcpy(longer, meta_body, sizeof meta_body - 1);
    longer[sizeof meta_body - 1] = '\n';
    assert_int_equal(sig_meta_valid(META_SECRET, longer, sizeof meta_body, META_SIG, &why), 0);
    assert_int_equal(why, SIG_MISMATCH);
}

static void test_meta_body_byte_changed(void **state)
{
    (void)state;
    char body[sizeof meta_body];
    memcpy(body, meta_body, sizeof body);
    for (size_t i = 0; i < sizeof body - 1; i++) {
        sig_reason_t why;
        body[i] ^= 0x01;
        assert_int_equal(sig_meta_valid(META_SECRET, body, sizeof body - 1, META_SIG, &why), 0);
        assert_int_equal(why, SIG_MISMATCH);
        body[i] ^= 0x01;
    }
    assert_int_equal(sig_meta_valid(META_SECRET, body, sizeof body - 1, META_SIG, NULL), 1);
}

static void test_meta_signature_byte_changed(void **state)
{
    (void)state;
    char hdr[] = META_SIG;
    for (size_t i = 7; i < sizeof hdr - 1; i++) {
        sig_reason_t why;
        char was = hdr[i];
        hdr[i] ^= 0x01; /* a different digit, or a non-hex character */
        assert_int_equal(sig_meta_valid(META_SECRET, meta_body, sizeof meta_body - 1, hdr, &why),
                         0);
        assert_true(why == SIG_MISMATCH || why == SIG_MALFORMED);
        hdr[i] = (char)(was == '0' ? '1' : '0'); /* always a valid, different digit */
        assert_int_equal(sig_meta_valid(META_SECRET, meta_body, sizeof meta_body - 1, hdr, &why),
                         0);
        assert_int_equal(why, SIG_MISMATCH);
        hdr[i] = was;
    }
    assert_int_equal(sig_meta_valid(META_SECRET, meta_body, sizeof meta_body - 1, hdr, NULL), 1);
}

static void test_meta_secret_byte_changed(void **state)
{
    (void)state;
    char secret[] = META_SECRET;
    for (size_t i = 0; i < sizeof secret - 1; i++) {
        sig_reason_t why;
        secret[i] ^= 0x01;
        assert_int_equal(sig_meta_valid(secret, meta_body, sizeof meta_body - 1, META_SIG, &why),
                         0);
        assert_int_equal(why, SIG_MISMATCH);
        secret[i] ^= 0x01;
    }
    sig_reason_t why;
    assert_int_equal(sig_meta_valid("", meta_body, sizeof meta_body - 1, META_SIG, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);
    assert_int_equal(sig_meta_valid(NULL, meta_body, sizeof meta_body - 1, META_SIG, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);
    assert_int_equal(sig_meta_valid(secret, meta_body, sizeof meta_body - 1, META_SIG, NULL), 1);
}

static void test_meta_bad_headers(void **state)
{
    (void)state;
    sig_reason_t why;
    size_t len = sizeof meta_body - 1;
    assert_int_equal(sig_meta_valid(META_SECRET, meta_body, len, NULL, &why), 0);
    assert_int_equal(why, SIG_MISSING);
    assert_int_equal(sig_meta_valid(META_SECRET, meta_body, len, "", &why), 0);
    assert_int_equal(why, SIG_MISSING);
    static const char *garbled[] = {
        "sha256=",
        "sha256",
        "54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441",
        "sha1=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441",
        "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc44",
        "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc4411",
        "sha256= 54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc44",
        "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc44g",
        "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441 ",
        " sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441",
    };
    for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
        assert_int_equal(sig_meta_valid(META_SECRET, meta_body, len, garbled[i], &why), 0);
        assert_int_equal(why, SIG_MALFORMED);
    }
    /* An all-zero digest is just another wrong one. */
    assert_int_equal(
        sig_meta_valid(META_SECRET, meta_body, len,
                       "sha256=0000000000000000000000000000000000000000000000000000000000000000",
                       &why),
        0);
    assert_int_equal(why, SIG_MISMATCH);
    /* An empty body is signable, and this signature is not for it. */
    assert_int_equal(sig_meta_valid(META_SECRET, NULL, 0, META_SIG, &why), 0);
    assert_int_equal(why, SIG_MISMATCH);
}

static void test_meta_handshake(void **state)
{
    (void)state;
    const char *answer = "stale";
    sig_reason_t why = SIG_INTERNAL;
    const char *challenge = "1158201444";
    assert_int_equal(sig_meta_handshake("my-verify-token", "subscribe", "my-verify-token",
                                        challenge, &answer, &why),
                     1);
    assert_ptr_equal(answer, challenge);
    assert_int_equal(why, SIG_OK);

    /* Each one-byte change of the token is refused. */
    char tok[] = "my-verify-token";
    for (size_t i = 0; i < sizeof tok - 1; i++) {
        tok[i] ^= 0x01;
        assert_int_equal(
            sig_meta_handshake("my-verify-token", "subscribe", tok, challenge, &answer, &why), 0);
        assert_null(answer);
        assert_int_equal(why, SIG_MISMATCH);
        tok[i] ^= 0x01;
    }
    assert_int_equal(sig_meta_handshake("my-verify-token", "subscribe", "my-verify-toke", challenge,
                                        &answer, &why),
                     0);
    assert_int_equal(why, SIG_MISMATCH);

    static const char *modes[] = {"unsubscribe", "Subscribe", "subscribe ", ""};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        assert_int_equal(sig_meta_handshake("t0ken", modes[i], "t0ken", challenge, &answer, &why),
                         0);
        assert_int_equal(why, SIG_MALFORMED);
    }
    assert_int_equal(sig_meta_handshake("t0ken", NULL, "t0ken", challenge, &answer, &why), 0);
    assert_int_equal(why, SIG_MALFORMED);

    assert_int_equal(sig_meta_handshake("t0ken", "subscribe", NULL, challenge, &answer, &why), 0);
    assert_int_equal(why, SIG_MISSING);
    assert_int_equal(sig_meta_handshake("t0ken", "subscribe", "", challenge, &answer, &why), 0);
    assert_int_equal(why, SIG_MISSING);
    /* No configured token means no handshake, even for an empty one. */
    assert_int_equal(sig_meta_handshake("", "subscribe", "", challenge, &answer, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);
    assert_int_equal(sig_meta_handshake(NULL, "subscribe", "x", challenge, &answer, &why), 0);
    assert_int_equal(why, SIG_UNCONFIGURED);

    /* What is echoed stays plain, bounded text. */
    static const char *bad_challenges[] = {"", "12 34", "1234\n", "<b>\r\n", "\xc3\xa9", "a\tb"};
    for (size_t i = 0; i < sizeof bad_challenges / sizeof bad_challenges[0]; i++) {
        assert_int_equal(
            sig_meta_handshake("t0ken", "subscribe", "t0ken", bad_challenges[i], &answer, &why), 0);
        assert_null(answer);
        assert_int_equal(why, SIG_MALFORMED);
    }
    assert_int_equal(sig_meta_handshake("t0ken", "subscribe", "t0ken", NULL, &answer, &why), 0);
    char longest[SIG_CHALLENGE_MAX + 2];
    memset(longest, '7', sizeof longest - 1);
    longest[SIG_CHALLENGE_MAX] = '\0';
    assert_int_equal(sig_meta_handshake("t0ken", "subscribe", "t0ken", longest, &answer, &why), 1);
    assert_ptr_equal(answer, longest);
    longest[SIG_CHALLENGE_MAX] = '7';
    longest[SIG_CHALLENGE_MAX + 1] = '\0';
    assert_int_equal(sig_meta_handshake("t0ken", "subscribe", "t0ken", longest, &answer, &why), 0);
    assert_int_equal(why, SIG_MALFORMED);
    /* Not only digits: the reference does not promise digits. */
    assert_int_equal(sig_meta_handshake("t0ken", "subscribe", "t0ken", "abc-XYZ_09", &answer, &why),
                     1);
}

static void test_reason_names(void **state)
{
    (void)state;
    const char *seen[SIG_INTERNAL + 1];
    for (int r = SIG_OK; r <= SIG_INTERNAL; r++) {
        seen[r] = sig_reason_name((sig_reason_t)r);
        assert_string_not_equal(seen[r], "unknown");
        for (int k = SIG_OK; k < r; k++)
            assert_string_not_equal(seen[k], seen[r]);
    }
    assert_string_equal(sig_reason_name(SIG_MISMATCH), "mismatch");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twilio_sdk_vector),
        cmocka_unit_test(test_twilio_port_vectors),
        cmocka_unit_test(test_twilio_url_forms),
        cmocka_unit_test(test_twilio_duplicates_vector),
        cmocka_unit_test(test_twilio_status_vector),
        cmocka_unit_test(test_twilio_json_body_vector),
        cmocka_unit_test(test_twilio_signature_byte_changed),
        cmocka_unit_test(test_twilio_url_byte_changed),
        cmocka_unit_test(test_twilio_param_byte_changed),
        cmocka_unit_test(test_twilio_secret_byte_changed),
        cmocka_unit_test(test_twilio_bad_headers),
        cmocka_unit_test(test_twilio_unconfigured),
        cmocka_unit_test(test_meta_vector),
        cmocka_unit_test(test_meta_body_byte_changed),
        cmocka_unit_test(test_meta_signature_byte_changed),
        cmocka_unit_test(test_meta_secret_byte_changed),
        cmocka_unit_test(test_meta_bad_headers),
        cmocka_unit_test(test_meta_handshake),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
