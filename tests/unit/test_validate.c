/* Field validators: each accepts the forms crier relies on and refuses the
 * near misses an attacker or a buggy caller would send. */
#include "validate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_uuid(void **state)
{
    (void)state;
    assert_true(val_uuid("5b1d2f3a-0c4e-4a5b-9d6e-7f8091a2b3c4"));
    assert_true(val_uuid("5B1D2F3A-0C4E-4A5B-9D6E-7F8091A2B3C4"));
    assert_false(val_uuid(NULL));
    assert_false(val_uuid(""));
    assert_false(val_uuid("5b1d2f3a0c4e4a5b9d6e7f8091a2b3c4"));      /* no dashes */
    assert_false(val_uuid("5b1d2f3a-0c4e-4a5b-9d6e-7f8091a2b3c"));   /* short */
    assert_false(val_uuid("5b1d2f3a-0c4e-4a5b-9d6e-7f8091a2b3c4a")); /* long */
    assert_false(val_uuid("5b1d2f3a-0c4e-4a5b-9d6e-7f8091a2b3cg"));  /* not hex */
    assert_false(val_uuid("5b1d2f3a-0c4e-4a5b+9d6e-7f8091a2b3c4"));  /* wrong separator */
}

static void test_email(void **state)
{
    (void)state;
    assert_true(val_email("asha@example.com"));
    assert_true(val_email("first.last+tag@mail.example.co.in"));
    assert_false(val_email(NULL));
    assert_false(val_email(""));
    assert_false(val_email("asha"));
    assert_false(val_email("asha@"));
    assert_false(val_email("@example.com"));
    assert_false(val_email("asha@example"));      /* no dot in the domain */
    assert_false(val_email("as ha@example.com")); /* space */
    assert_false(val_email("asha@exa mple.com"));
    assert_false(val_email("asha@@example.com"));
    assert_false(val_email(".asha@example.com"));
    assert_false(val_email("as..ha@example.com"));
    assert_false(val_email("asha@example..com"));
    assert_false(val_email("asha@-example.com"));
    assert_false(val_email("asha@example.com\r\nBcc: x@y.z")); /* header injection */
    assert_false(val_email("ásha@example.com"));               /* not ASCII */
    char big[300];
    memset(big, 'a', sizeof big);
    memcpy(big + 280, "@example.com", 13);
    assert_false(val_email(big)); /* over 254 bytes */
}

static void test_e164(void **state)
{
    (void)state;
    assert_true(val_e164("+919812345678"));
    assert_true(val_e164("+14155550100"));
    assert_true(val_e164("+12345678"));        /* 8 digits */
    assert_true(val_e164("+123456789012345")); /* 15 digits */
    assert_false(val_e164(NULL));
    assert_false(val_e164(""));
    assert_false(val_e164("919812345678"));      /* no plus */
    assert_false(val_e164("+0198123456"));       /* leading 0 */
    assert_false(val_e164("+1234567"));          /* 7 digits */
    assert_false(val_e164("+1234567890123456")); /* 16 digits */
    assert_false(val_e164("+91 98123 45678"));
    assert_false(val_e164("+91-9812345678"));
}

static void test_timezone(void **state)
{
    (void)state;
    assert_true(val_timezone("Asia/Kolkata"));
    assert_true(val_timezone("UTC"));
    assert_true(val_timezone("America/Argentina/Buenos_Aires"));
    assert_false(val_timezone("Mars/Base"));
    assert_false(val_timezone("../etc/passwd"));
    assert_false(val_timezone("Asia/../../etc/passwd"));
    assert_false(val_timezone("/etc/passwd"));
    assert_false(val_timezone(""));
    assert_false(val_timezone(NULL));
    assert_false(val_timezone("Asia")); /* a directory, not a zone */
    assert_false(val_timezone("Asia/"));
    assert_false(val_timezone("asia/kolkata")); /* names are case-sensitive */
    assert_false(val_timezone("posixrules"));
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(val_utf8("", 0));
    assert_true(val_utf8("plain ascii", 11));
    assert_true(val_utf8("\xc3\xa9", 2));          /* é */
    assert_true(val_utf8("\xe2\x82\xac", 3));      /* € */
    assert_true(val_utf8("\xf0\x9f\x8e\x89", 4));  /* 🎉 */
    assert_true(val_utf8("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_true(val_utf8("\xed\x9f\xbf", 3));      /* U+D7FF, just below surrogates */
    assert_false(val_utf8("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(val_utf8("\xc1\xbf", 2));         /* overlong */
    assert_false(val_utf8("\xe0\x80\xaf", 3));     /* overlong, 3 bytes */
    assert_false(val_utf8("\xf0\x80\x80\xaf", 4)); /* overlong, 4 bytes */
    assert_false(val_utf8("\xed\xa0\x80", 3));     /* U+D800 high surrogate */
    assert_false(val_utf8("\xed\xbf\xbf", 3));     /* U+DFFF low surrogate */
    assert_false(val_utf8("\xf4\x90\x80\x80", 4)); /* U+110000 */
    assert_false(val_utf8("\xf5\x80\x80\x80", 4));
    assert_false(val_utf8("\xc3", 1));           /* truncated */
    assert_false(val_utf8("\xe2\x82", 2));       /* truncated */
    assert_false(val_utf8("ab\xf0\x9f\x8e", 5)); /* truncated at the end */
    assert_false(val_utf8("\x80", 1));           /* lone continuation */
    assert_false(val_utf8("\xc3\x28", 2));       /* bad continuation */
    assert_false(val_utf8("\xff", 1));
    /* the length is honoured: bytes past len are not read */
    assert_true(val_utf8("ok\xff", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),     cmocka_unit_test(test_email), cmocka_unit_test(test_e164),
        cmocka_unit_test(test_timezone), cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
