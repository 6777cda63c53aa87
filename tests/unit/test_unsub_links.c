/* unsub: the links every email carries name its communication in a token
 * signed with the link key, under the public URL, and the mailto: beside
 * them cannot be bent into another address or header. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "crypto/linktok.h"
#include "driver/unsub.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define COMM "6f1c2b7e-1d2a-4c55-9a0e-1b2c3d4e5f60"

static cry_keys_t keys_with(unsigned char fill)
{
    cry_keys_t k;
    memset(&k, 0, sizeof k);
    memset(k.link, fill, sizeof k.link);
    k.loaded = 1;
    return k;
}

static void test_links(void **state)
{
    (void)state;
    cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.public_url = "https://crier.example/";
    cfg.mail_from = "Planiva <hello@planiva.example>";
    cfg.unsubscribe_mailto = "";
    cry_keys_t k = keys_with(7);
    time_t now = 1790000000;
    unsub_links_t l;
    char err[128];
    assert_int_equal(unsub_links_make(&cfg, &k, COMM, now, &l, err, sizeof err), 0);
    /* no double slash from the base's own */
    assert_int_equal(strncmp(l.url, "https://crier.example/u/", 24), 0);
    const char *tok = l.url + 24;
    assert_int_equal(strlen(tok), LINKTOK_LEN);
    linktok_t t;
    assert_int_equal(linktok_read(k.link, tok, strlen(tok), LINKTOK_UNSUB, &t), 0);
    assert_string_equal(t.id, COMM);
    assert_int_equal(t.arg, 0);
    assert_int_equal(t.day, linktok_day(now));
    /* only this kind, only this key */
    assert_int_equal(linktok_read(k.link, tok, strlen(tok), LINKTOK_CLICK, &t), -1);
    cry_keys_t other = keys_with(8);
    assert_int_equal(linktok_read(other.link, tok, strlen(tok), LINKTOK_UNSUB, &t), -1);
    /* the mailto: mail_from's address, the same token in the subject */
    char want[256];
    snprintf(want, sizeof want, "mailto:hello@planiva.example?subject=unsubscribe-%s", tok);
    assert_string_equal(l.mailto, want);

    cfg.unsubscribe_mailto = "Opt Out <opt+out%x?y&z#q@planiva.example>";
    assert_int_equal(unsub_links_make(&cfg, &k, COMM, now, &l, err, sizeof err), 0);
    snprintf(want, sizeof want,
             "mailto:opt+out%%25x%%3Fy%%26z%%23q@planiva.example?subject=unsubscribe-%s", tok);
    assert_string_equal(l.mailto, want);
}

static void test_refusals(void **state)
{
    (void)state;
    cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.public_url = "https://crier.example";
    cfg.mail_from = "not an address";
    cfg.unsubscribe_mailto = "";
    cry_keys_t k = keys_with(7);
    unsub_links_t l;
    char err[128];
    assert_int_equal(unsub_links_make(&cfg, &k, COMM, 0, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_UNSUBSCRIBE_MAILTO"));
    cfg.mail_from = "hello@planiva.example";
    assert_int_equal(unsub_links_make(&cfg, &k, "not-a-uuid", 0, &l, err, sizeof err), -1);
    char longurl[1100];
    memset(longurl, 'a', sizeof longurl - 1);
    longurl[sizeof longurl - 1] = '\0';
    memcpy(longurl, "https://", 8);
    cfg.public_url = longurl;
    assert_int_equal(unsub_links_make(&cfg, &k, COMM, 0, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_PUBLIC_URL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
