/* formdata: multipart/form-data parsing (RFC 7578), as a mailbox provider
 * posts a one-click unsubscribe (RFC 8058 section 8.3), its refusals and
 * its limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "webhook/formdata.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT "multipart/form-data; boundary=---FormBoundaryjWmhtjORrn"

/* RFC 8058 section 8.3, with CRLF line ends. */
static const char rfc_body[] = "-----FormBoundaryjWmhtjORrn\r\n"
                               "Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
                               "\r\n"
                               "One-Click\r\n"
                               "-----FormBoundaryjWmhtjORrn--\r\n";

static int parse(form_pairs_t *f, const char *ctype, const char *body, const form_limits_t *lim)
{
    char err[128] = "";
    int rc = formdata_parse(f, ctype, body, strlen(body), lim, err, sizeof err);
    if (rc != 0)
        assert_true(err[0] != '\0');
    return rc;
}

static void expect_refused(const char *ctype, const char *body)
{
    form_pairs_t f;
    assert_int_equal(parse(&f, ctype, body, NULL), -1);
    assert_int_equal(f.count, 0);
    assert_null(f.pairs);
    assert_null(f.arena);
    form_free(&f);
}

static void test_rfc8058_example(void **state)
{
    (void)state;
    form_pairs_t f;
    assert_int_equal(parse(&f, CT, rfc_body, NULL), 0);
    assert_int_equal(f.count, 1);
    assert_string_equal(f.pairs[0].key, "List-Unsubscribe");
    assert_string_equal(f.pairs[0].value, "One-Click");
    assert_int_equal(f.pairs[0].value_len, 9);
    assert_string_equal(form_get(&f, "List-Unsubscribe"), "One-Click");
    form_free(&f);
}

static void test_boundary_forms(void **state)
{
    (void)state;
    char b[71];
    assert_int_equal(formdata_boundary(CT, b), 0);
    assert_string_equal(b, "---FormBoundaryjWmhtjORrn");
    assert_int_equal(formdata_boundary("Multipart/Form-Data;boundary=\"a b:c\"", b), 0);
    assert_string_equal(b, "a b:c");
    assert_int_equal(formdata_boundary("multipart/form-data; charset=utf-8; boundary=x", b), 0);
    assert_string_equal(b, "x");
    /* not multipart/form-data, or no usable boundary */
    static const char *const bad[] = {
        NULL,
        "application/x-www-form-urlencoded",
        "multipart/mixed; boundary=x",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=\"ends in space \"",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-datax; boundary=a",
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=" /* 71 characters */
        "12345678901234567890123456789012345678901234567890123456789012345678901",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(formdata_boundary(bad[i], b), -1);
        assert_string_equal(b, "");
    }
}

static void test_parts_preamble_epilogue(void **state)
{
    (void)state;
    const char *body = "a preamble, ignored\r\n"
                       "--XyZ\r\n"
                       "Content-Disposition: form-data; name=a\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "\r\n"
                       "line one\r\nline two\r\n"
                       "--XyZ  \r\n"
                       "content-disposition: FORM-DATA; name=\"b \\\"q\\\"\"\r\n"
                       "\r\n"
                       "\r\n"
                       "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"a\"\r\n"
                       "\r\n"
                       "Zo\xc3\xab\r\n"
                       "--XyZ--\r\n"
                       "an epilogue, ignored";
    form_pairs_t f;
    assert_int_equal(parse(&f, "multipart/form-data; boundary=XyZ", body, NULL), 0);
    assert_int_equal(f.count, 3);
    assert_string_equal(f.pairs[0].key, "a");
    assert_string_equal(f.pairs[0].value, "line one\r\nline two");
    assert_string_equal(f.pairs[1].key, "b \"q\"");
    assert_string_equal(f.pairs[1].value, "");
    assert_int_equal(f.pairs[1].value_len, 0);
    assert_string_equal(f.pairs[2].value, "Zo\xc3\xab"); /* duplicates kept, in order */
    form_free(&f);

    /* no part at all */
    assert_int_equal(parse(&f, "multipart/form-data; boundary=XyZ", "--XyZ--\r\n", NULL), 0);
    assert_int_equal(f.count, 0);
    form_free(&f);
}

static void test_refusals(void **state)
{
    (void)state;
    const char *ct = "multipart/form-data; boundary=B";
    /* the one-click pair, wrong in each way a part can be */
    static const char *const bodies[] = {
        "",
        "no delimiter at all",
        "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n", /* never closed */
        "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv",     /* cut off */
        "--B\r\nContent-Disposition: form-data; name=\"x\"; filename=\"f.txt\"\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"x\"; filename*=utf-8''f\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"x\"; name=\"y\"\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--",
        "--B\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"x\"\n\nv\r\n--B--", /* bare LF */
        "--B\r\nContent-Disposition: form-data; name=\"x\"\r\nBad Header\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--B--",
        "--Bjunk\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\xff\xfe\r\n--B--",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        form_pairs_t f;
        int rc = parse(&f, ct, bodies[i], NULL);
        if (rc != -1)
            fprintf(stderr, "accepted body %zu\n", i);
        assert_int_equal(rc, -1);
        assert_int_equal(f.count, 0);
        form_free(&f);
    }
    /* a NUL in a value (the C string above could not hold one) */
    static const char nul[] =
        "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\na\0b\r\n--B--";
    form_pairs_t f;
    char err[128];
    assert_int_equal(formdata_parse(&f, ct, nul, sizeof nul - 1, NULL, err, sizeof err), -1);
    form_free(&f);
    /* not multipart at all */
    expect_refused("application/x-www-form-urlencoded", rfc_body);
    expect_refused("multipart/form-data; boundary=other", rfc_body);
}

static void test_limits(void **state)
{
    (void)state;
    const form_limits_t lim = {512, 2, 8, 16};
    const char *ct = "multipart/form-data; boundary=B";
    form_pairs_t f;
    assert_int_equal(parse(&f, ct,
                           "--B\r\nContent-Disposition: form-data; name=\"k1234567\"\r\n\r\n"
                           "0123456789abcdef\r\n--B--",
                           &lim),
                     0);
    form_free(&f);
    assert_int_equal(parse(&f, ct,
                           "--B\r\nContent-Disposition: form-data; name=\"k12345678\"\r\n\r\n"
                           "v\r\n--B--",
                           &lim),
                     -1); /* key too long */
    form_free(&f);
    assert_int_equal(parse(&f, ct,
                           "--B\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n"
                           "0123456789abcdefX\r\n--B--",
                           &lim),
                     -1); /* value too long */
    form_free(&f);
    assert_int_equal(parse(&f, ct,
                           "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                           "--B\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n"
                           "--B\r\nContent-Disposition: form-data; name=c\r\n\r\n3\r\n--B--",
                           &lim),
                     -1); /* three fields */
    form_free(&f);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(parse(&f, ct, big, &lim), -1); /* body too long */
    form_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8058_example),
        cmocka_unit_test(test_boundary_forms),
        cmocka_unit_test(test_parts_preamble_epilogue),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
