/* Link tokens: what they carry comes back, and nothing else is accepted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "crypto/linktok.h"

#include <stdio.h>
#include <string.h>

static const unsigned char KEY[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                      23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const char ID[] = "0f8e4c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

static void make(linktok_kind_t kind, uint32_t arg, uint32_t day, char out[LINKTOK_TEXT_MAX])
{
    linktok_t t = {.kind = kind, .arg = arg, .day = day};
    memcpy(t.id, ID, sizeof ID);
    assert_int_equal(linktok_make(KEY, &t, out), 0);
    assert_int_equal(strlen(out), LINKTOK_LEN);
}

static void test_round_trip(void **state)
{
    (void)state;
    const linktok_kind_t kinds[] = {LINKTOK_CLICK, LINKTOK_OPEN, LINKTOK_UNSUB, LINKTOK_FORM,
                                    LINKTOK_ACTION};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char tok[LINKTOK_TEXT_MAX];
        make(kinds[i], 70000 + (uint32_t)i, 20500, tok);
        assert_int_equal(
            strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            LINKTOK_LEN);
        linktok_t t;
        assert_int_equal(linktok_read(KEY, tok, strlen(tok), kinds[i], &t), 0);
        assert_string_equal(t.id, ID);
        assert_int_equal(t.arg, 70000 + i);
        assert_int_equal(t.day, 20500);
        assert_int_equal(t.kind, kinds[i]);
    }
}

/* Every character changed to every other one of the alphabet is refused:
 * no position of a token is left unsigned. */
static void test_every_change_refused(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char tok[LINKTOK_TEXT_MAX];
    make(LINKTOK_CLICK, 3, 20500, tok);
    int refused = 0, tried = 0;
    for (size_t i = 0; i < LINKTOK_LEN; i++) {
        char saved = tok[i];
        for (size_t a = 0; a < 64; a++) {
            if (alphabet[a] == saved)
                continue;
            tok[i] = alphabet[a];
            linktok_t t;
            tried++;
            if (linktok_read(KEY, tok, LINKTOK_LEN, LINKTOK_CLICK, &t) != 0) {
                refused++;
                assert_string_equal(t.id, "");
            }
        }
        tok[i] = saved;
    }
    assert_int_equal(refused, tried);
}

static void test_other_kind_key_length(void **state)
{
    (void)state;
    char tok[LINKTOK_TEXT_MAX];
    make(LINKTOK_OPEN, 0, 20500, tok);
    linktok_t t;
    assert_int_equal(linktok_read(KEY, tok, LINKTOK_LEN, LINKTOK_OPEN, &t), 0);
    assert_int_equal(linktok_read(KEY, tok, LINKTOK_LEN, LINKTOK_UNSUB, &t), -1);
    assert_int_equal(linktok_read(KEY, tok, LINKTOK_LEN, LINKTOK_CLICK, &t), -1);
    unsigned char other[32];
    memcpy(other, KEY, sizeof other);
    other[31] ^= 1;
    assert_int_equal(linktok_read(other, tok, LINKTOK_LEN, LINKTOK_OPEN, &t), -1);
    assert_int_equal(linktok_read(KEY, tok, LINKTOK_LEN - 1, LINKTOK_OPEN, &t), -1);
    assert_int_equal(linktok_read(KEY, tok, 0, LINKTOK_OPEN, &t), -1);
    assert_int_equal(linktok_read(KEY, NULL, LINKTOK_LEN, LINKTOK_OPEN, &t), -1);
    char longer[LINKTOK_TEXT_MAX + 4];
    snprintf(longer, sizeof longer, "%sAAAA", tok);
    assert_int_equal(linktok_read(KEY, longer, strlen(longer), LINKTOK_OPEN, &t), -1);
    tok[10] = '=';
    assert_int_equal(linktok_read(KEY, tok, LINKTOK_LEN, LINKTOK_OPEN, &t), -1);
}

static void test_make_refuses(void **state)
{
    (void)state;
    char out[LINKTOK_TEXT_MAX];
    linktok_t t = {.kind = LINKTOK_CLICK};
    snprintf(t.id, sizeof t.id, "%s", "not-a-uuid");
    assert_int_equal(linktok_make(KEY, &t, out), -1);
    assert_string_equal(out, "");
    memcpy(t.id, ID, sizeof ID);
    t.kind = (linktok_kind_t)'x';
    assert_int_equal(linktok_make(KEY, &t, out), -1);
    /* upper-case hex reads back in the canonical lower-case form */
    linktok_t u = {.kind = LINKTOK_UNSUB};
    snprintf(u.id, sizeof u.id, "%s", "0F8E4C2A-1B3D-4E5F-8A9B-0C1D2E3F4A5B");
    assert_int_equal(linktok_make(KEY, &u, out), 0);
    linktok_t back;
    assert_int_equal(linktok_read(KEY, out, LINKTOK_LEN, LINKTOK_UNSUB, &back), 0);
    assert_string_equal(back.id, ID);
}

static void test_expiry(void **state)
{
    (void)state;
    time_t now = (time_t)20500 * 86400 + 3600;
    linktok_t t = {.kind = LINKTOK_UNSUB, .day = 20500};
    assert_int_equal(linktok_expired(&t, now, 30), 0);
    t.day = 20470;
    assert_int_equal(linktok_expired(&t, now, 30), 0);
    t.day = 20469;
    assert_int_equal(linktok_expired(&t, now, 30), 1);
    t.day = 20501; /* a clock a little behind the issuer's */
    assert_int_equal(linktok_expired(&t, now, 30), 0);
    t.day = 20503;
    assert_int_equal(linktok_expired(&t, now, 30), 1);
    assert_int_equal(linktok_day(now), 20500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_change_refused),
        cmocka_unit_test(test_other_kind_key_length),
        cmocka_unit_test(test_make_refuses),
        cmocka_unit_test(test_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
