/* crypto: field encryption, blind indexes, comparisons, identifiers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/crypto.h"
#include "util/base64.h"
#include "v1token.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void load_key(cry_keys_t *k, unsigned char fill)
{
    unsigned char raw[32];
    memset(raw, fill, sizeof raw);
    buf_t b;
    buf_init(&b, 128);
    assert_int_equal(b64_encode(&b, raw, sizeof raw, 0), 0);
    char err[128];
    assert_int_equal(cry_keys_load(k, b.data, err, sizeof err), 0);
    buf_free(&b);
}

/* A client's email, as the store binds it. */
static const cry_place_t at_email = {"clients", "email", "0b8e6a4c-2f1d-4c3b-9a5e-7d6f8e9a0b1c"};

static void test_keys_reject_bad(void **state)
{
    (void)state;
    cry_keys_t k;
    char err[128];
    assert_int_equal(cry_keys_load(&k, "", err, sizeof err), -1);
    assert_int_equal(cry_keys_load(&k, "c2hvcnQ=", err, sizeof err), -1); /* 5 bytes */
    assert_int_equal(cry_keys_load(&k, "not base64 at all!", err, sizeof err), -1);
    assert_int_equal(k.loaded, 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    cry_keys_t k;
    load_key(&k, 0x11);
    assert_int_equal((int)strlen(k.key_id), 8);
    const char *msg = "asha@example.com";
    buf_t tok, out;
    buf_init(&tok, 4096);
    buf_init(&out, 4096);
    assert_int_equal(cry_encrypt(&k, &at_email, msg, strlen(msg), &tok), 0);
    assert_int_equal(strncmp(tok.data, "v2.", 3), 0);
    assert_int_equal(cry_token_version(tok.data), 2);
    assert_memory_equal(tok.data + 3, k.key_id, 8);
    assert_non_null(tok.data);
    assert_null(strstr(tok.data, "asha"));
    assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), 0);
    assert_string_equal(out.data, msg);

    /* same plaintext twice gives different tokens (random nonce) */
    buf_t tok2;
    buf_init(&tok2, 4096);
    assert_int_equal(cry_encrypt(&k, &at_email, msg, strlen(msg), &tok2), 0);
    assert_string_not_equal(tok.data, tok2.data);

    /* binary and empty values */
    const unsigned char bin[] = {0, 1, 2, 0xff, 0, 7};
    buf_reset(&tok);
    buf_reset(&out);
    assert_int_equal(cry_encrypt(&k, &at_email, bin, sizeof bin, &tok), 0);
    assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), 0);
    assert_int_equal((int)out.len, (int)sizeof bin);
    assert_memory_equal(out.data, bin, sizeof bin);
    buf_reset(&tok);
    buf_reset(&out);
    assert_int_equal(cry_encrypt(&k, &at_email, "", 0, &tok), 0);
    assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), 0);
    assert_int_equal((int)out.len, 0);
    buf_free(&tok);
    buf_free(&tok2);
    buf_free(&out);
}

/* The finding: a token written for one place must not open in another, so
 * that whoever can write the database cannot swap two clients' addresses
 * (or move a name into an address, or a reply into a subject). */
static void test_bound_to_its_place(void **state)
{
    (void)state;
    cry_keys_t k;
    load_key(&k, 0x12);
    const char *row = at_email.row_id;
    const char *other_row = "0b8e6a4c-2f1d-4c3b-9a5e-7d6f8e9a0b1d";
    const cry_place_t elsewhere[] = {
        {"clients", "email", other_row},                              /* another row */
        {"clients", "phone", row},                                    /* another column */
        {"clients", "name", row},                                     /* another column */
        {"inbound_messages", "email", row},                           /* another table */
        {"clients", "email", "0B8E6A4C-2F1D-4C3B-9A5E-7D6F8E9A0B1C"}, /* ids compare as text */
        /* NUL-joined parts cannot be shifted from one into the next */
        {"clientse", "mail", row},
        {"clients", "emai", "l0b8e6a4c-2f1d-4c3b-9a5e-7d6f8e9a0b1c"},
    };
    buf_t tok, out;
    buf_init(&tok, 4096);
    buf_init(&out, 4096);
    assert_int_equal(cry_encrypt(&k, &at_email, "asha@example.com", 16, &tok), 0);
    for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
        assert_int_equal(cry_decrypt(&k, &elsewhere[i], tok.data, &out), -1);
        assert_int_equal((int)out.len, 0);
    }
    assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), 0);

    /* a place must name all three parts, within bounds */
    char longid[CRY_PLACE_MAX + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    const cry_place_t bad[] = {
        {NULL, "email", row},         {"clients", NULL, row}, {"clients", "email", NULL},
        {"", "email", row},           {"clients", "", row},   {"clients", "email", ""},
        {"clients", "email", longid},
    };
    size_t mark = tok.len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cry_encrypt(&k, &bad[i], "x", 1, &tok), -1);
        assert_int_equal((int)tok.len, (int)mark); /* the caller's buffer is left as it was */
        assert_int_equal(cry_decrypt(&k, &bad[i], tok.data, &out), -1);
    }
    assert_int_equal(cry_encrypt(&k, NULL, "x", 1, &tok), -1);
    assert_int_equal(cry_decrypt(&k, NULL, tok.data, &out), -1);
    buf_free(&tok);
    buf_free(&out);
}

/* v1 tokens (bound to the key id only) are refused by cry_decrypt, however
 * valid: they could have been moved. Only the migration opens them. */
static void test_v1_only_for_the_migration(void **state)
{
    (void)state;
    cry_keys_t k, other;
    load_key(&k, 0x13);
    load_key(&other, 0x14);
    buf_t v1, out;
    buf_init(&v1, 4096);
    buf_init(&out, 4096);
    assert_int_equal(v1token_make(&k, "Zelda Quixotewright", &v1), 0);
    assert_int_equal(cry_token_version(v1.data), 1);
    assert_int_equal(cry_decrypt(&k, &at_email, v1.data, &out), -1);
    assert_int_equal((int)out.len, 0);
    assert_int_equal(cry_decrypt_v1(&k, v1.data, &out), 0);
    assert_string_equal(out.data, "Zelda Quixotewright");
    buf_reset(&out);
    assert_int_equal(cry_decrypt_v1(&other, v1.data, &out), -1);

    /* a v1 token relabelled "v2." does not pass as one, nor a v2 as v1 */
    char *relabelled = strdup(v1.data);
    relabelled[1] = '2';
    assert_int_equal(cry_decrypt(&k, &at_email, relabelled, &out), -1);
    buf_t v2;
    buf_init(&v2, 4096);
    assert_int_equal(cry_encrypt(&k, &at_email, "x", 1, &v2), 0);
    assert_int_equal(cry_decrypt_v1(&k, v2.data, &out), -1);
    v2.data[1] = '1';
    assert_int_equal(cry_decrypt_v1(&k, v2.data, &out), -1);
    assert_int_equal((int)out.len, 0);
    assert_int_equal(cry_token_version("v3.x"), 0);
    assert_int_equal(cry_token_version(NULL), 0);
    free(relabelled);
    buf_free(&v1);
    buf_free(&v2);
    buf_free(&out);
}

static void test_tamper_and_wrong_key(void **state)
{
    (void)state;
    cry_keys_t k, other;
    load_key(&k, 0x22);
    load_key(&other, 0x33);
    buf_t tok, out;
    buf_init(&tok, 4096);
    buf_init(&out, 4096);
    assert_int_equal(cry_encrypt(&k, &at_email, "+919812345678", 13, &tok), 0);

    assert_int_equal(cry_decrypt(&other, &at_email, tok.data, &out), -1);
    assert_int_equal((int)out.len, 0);

    /* flip one base64 character in the body, then one in the nonce
     * (keeping it valid base64) */
    const size_t positions[] = {tok.len - 6, 14};
    for (size_t i = 0; i < 2; i++) {
        char was = tok.data[positions[i]];
        tok.data[positions[i]] = was == 'A' ? 'B' : 'A';
        assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), -1);
        assert_int_equal((int)out.len, 0);
        tok.data[positions[i]] = was;
    }
    assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), 0);
    buf_reset(&out);

    /* a key id relabelled to another key is refused */
    char *copy = strdup(tok.data);
    memcpy(copy + 3, other.key_id, 8);
    assert_int_equal(cry_decrypt(&k, &at_email, copy, &out), -1);
    free(copy);

    assert_int_equal(cry_decrypt(&k, &at_email, "v2.", &out), -1);
    assert_int_equal(cry_decrypt(&k, &at_email, "garbage", &out), -1);
    assert_int_equal(cry_decrypt(&k, &at_email, NULL, &out), -1);
    char shortened[32];
    snprintf(shortened, sizeof shortened, "v2.%s.AAAA", k.key_id);
    assert_int_equal(cry_decrypt(&k, &at_email, shortened, &out), -1);
    /* cut short: the tag is gone */
    tok.data[tok.len - 8] = '\0';
    assert_int_equal(cry_decrypt(&k, &at_email, tok.data, &out), -1);
    assert_int_equal((int)out.len, 0);

    /* no key, no token */
    cry_keys_t none;
    memset(&none, 0, sizeof none);
    buf_reset(&tok);
    assert_int_equal(cry_encrypt(&none, &at_email, "x", 1, &tok), -1);
    assert_int_equal((int)tok.len, 0);
    buf_free(&tok);
    buf_free(&out);
}

/* "id:base64" of the key whose 32 bytes are fill, or base64 alone (id NULL). */
static void key_entry(char *out, size_t outlen, const char *id, unsigned char fill)
{
    unsigned char raw[32];
    memset(raw, fill, sizeof raw);
    buf_t b;
    buf_init(&b, 128);
    assert_int_equal(b64_encode(&b, raw, sizeof raw, 0), 0);
    snprintf(out, outlen, "%s%s%s", id ? id : "", id ? ":" : "", b.data);
    buf_free(&b);
}

/* A rotation: values written under key A stay readable once key B is put in
 * front of it; new values are written under B; the blind index is the one
 * A made, because it is derived from the oldest key. */
static void test_key_ring(void **state)
{
    (void)state;
    char a[80], b[80], list[200], err[256];
    key_entry(a, sizeof a, NULL, 0x61);
    cry_keys_t old;
    assert_int_equal(cry_keys_load(&old, a, err, sizeof err), 0);
    assert_int_equal(old.n, 1);
    buf_t tok_a, tok_b, out;
    buf_init(&tok_a, 4096);
    buf_init(&tok_b, 4096);
    buf_init(&out, 4096);
    assert_int_equal(cry_encrypt(&old, &at_email, "asha@example.com", 16, &tok_a), 0);
    char idx_a[65];
    assert_int_equal(cry_blind_index(&old, "email", "asha@example.com", idx_a), 0);
    char id[CRY_KEY_ID_MAX + 1];
    assert_int_equal(cry_token_key_id(tok_a.data, id), 0);
    assert_string_equal(id, old.key_id); /* the derived id: 8 hex */
    assert_int_equal((int)strlen(id), 8);

    /* B in front, A listed under a name of its own: A's old tokens name its
     * derived id, and still open */
    key_entry(a, sizeof a, "a", 0x61);
    key_entry(b, sizeof b, "b", 0x62);
    snprintf(list, sizeof list, "%s, %s", b, a);
    cry_keys_t ring;
    assert_int_equal(cry_keys_load_list(&ring, list, err, sizeof err), 0);
    assert_int_equal(ring.n, 2);
    assert_string_equal(ring.key_id, "b");
    assert_int_equal(cry_decrypt(&ring, &at_email, tok_a.data, &out), 0);
    assert_string_equal(out.data, "asha@example.com");
    assert_int_equal(cry_encrypt(&ring, &at_email, "asha@example.com", 16, &tok_b), 0);
    assert_int_equal(strncmp(tok_b.data, "v2.b.", 5), 0);
    buf_reset(&out);
    assert_int_equal(cry_decrypt(&ring, &at_email, tok_b.data, &out), 0);
    assert_string_equal(out.data, "asha@example.com");
    assert_true(cry_keys_has(&ring, "a") && cry_keys_has(&ring, "b"));
    assert_true(cry_keys_has(&ring, old.key_id));
    assert_false(cry_keys_has(&ring, "c"));
    /* the index is unchanged: derived from the last (oldest) key */
    char idx_ring[65];
    assert_int_equal(cry_blind_index(&ring, "email", "asha@example.com", idx_ring), 0);
    assert_string_equal(idx_ring, idx_a);
    /* a token relabelled from "b" to "a" fails: the key id is bound */
    char *relabelled = strdup(tok_b.data);
    relabelled[3] = 'a';
    buf_reset(&out);
    assert_int_equal(cry_decrypt(&ring, &at_email, relabelled, &out), -1);
    free(relabelled);

    /* B alone, with the index key that the ring of B and A used: A's token
     * fails naming its key id; the index still matches */
    cry_keys_t only_b;
    assert_int_equal(cry_keys_load_list(&only_b, b, err, sizeof err), 0);
    buf_t idx;
    buf_init(&idx, 128);
    assert_int_equal(b64_encode(&idx, ring.index, sizeof ring.index, 0), 0);
    assert_int_equal(cry_keys_set_index(&only_b, idx.data, err, sizeof err), 0);
    buf_free(&idx);
    buf_reset(&out);
    assert_int_equal(cry_decrypt(&only_b, &at_email, tok_a.data, &out), -1);
    assert_int_equal((int)out.len, 0);
    char why[200], want[120];
    cry_decrypt_why(&only_b, tok_a.data, why, sizeof why);
    snprintf(want, sizeof want, "encrypted under key id %s, which is not configured", old.key_id);
    assert_string_equal(why, want);
    assert_int_equal(cry_decrypt(&only_b, &at_email, tok_b.data, &out), 0);
    assert_int_equal(cry_blind_index(&only_b, "email", "asha@example.com", idx_ring), 0);
    assert_string_equal(idx_ring, idx_a);
    /* without the index key B alone derives another index */
    cry_keys_t plain_b;
    assert_int_equal(cry_keys_load_list(&plain_b, b, err, sizeof err), 0);
    assert_int_equal(cry_blind_index(&plain_b, "email", "asha@example.com", idx_ring), 0);
    assert_string_not_equal(idx_ring, idx_a);

    /* another key under the id "b": the reason says so, naming the id */
    char b2[80];
    key_entry(b2, sizeof b2, "b", 0x63);
    cry_keys_t wrong;
    assert_int_equal(cry_keys_load_list(&wrong, b2, err, sizeof err), 0);
    assert_int_equal(cry_decrypt(&wrong, &at_email, tok_b.data, &out), -1);
    cry_decrypt_why(&wrong, tok_b.data, why, sizeof why);
    assert_non_null(strstr(why, "does not decrypt under key id b"));
    cry_decrypt_why(&wrong, "garbage", why, sizeof why);
    assert_non_null(strstr(why, "not a crier token"));
    assert_int_equal(cry_token_key_id("v2..AAAA", id), -1);
    assert_int_equal(cry_token_key_id("v2.abcdefghi.AAAA", id), -1); /* 9 characters */
    assert_int_equal(cry_token_key_id("v2.B.AAAA", id), -1);
    assert_string_equal(id, "");

    /* the list entry given without an id takes the derived one */
    key_entry(a, sizeof a, NULL, 0x61);
    cry_keys_t derived;
    assert_int_equal(cry_keys_load_list(&derived, a, err, sizeof err), 0);
    assert_string_equal(derived.key_id, old.key_id);

    /* wiping clears every key of the ring */
    cry_keys_wipe(&ring);
    assert_int_equal(ring.loaded, 0);
    assert_int_equal(ring.n, 0);
    static const unsigned char zero[32];
    assert_memory_equal(ring.ring[1].enc, zero, 32);
    assert_memory_equal(ring.index, zero, 32);
    assert_int_equal(cry_decrypt(&ring, &at_email, tok_b.data, &out), -1);
    buf_free(&tok_a);
    buf_free(&tok_b);
    buf_free(&out);
}

/* A bad list is refused naming the entry's position, never its key. */
static void test_key_list_errors(void **state)
{
    (void)state;
    char a[80], b[80], list[300], err[256];
    key_entry(a, sizeof a, "a", 0x71);
    key_entry(b, sizeof b, "b", 0x72);
    const char *key_a = strchr(a, ':') + 1;
    const char *key_b = strchr(b, ':') + 1;
    /* the list is a, then mid, a key (a's with same), then end */
    struct {
        const char *mid;
        int same;
        const char *end;
        const char *want;
    } cases[] = {
        {",b:", 0, ",", "entry 3 is empty"},
        {",,b:", 0, "", "entry 2 is empty"},
        {",A:", 0, "", "entry 2 has a bad key id"},
        {",abcdefghi:", 0, "", "entry 2 has a bad key id"},
        {",:", 0, "", "entry 2 has a bad key id"},
        {",a.b:", 0, "", "entry 2 has a bad key id"},
        {",c:", 1, "", "entry 2 repeats the key or a key id of entry 1"},
        {",a:", 0, "", "entry 2 repeats the key or a key id of entry 1"},
    };
    cry_keys_t k;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(list, sizeof list, "%s%s%s%s", a, cases[i].mid, cases[i].same ? key_a : key_b,
                 cases[i].end);
        assert_int_equal(cry_keys_load_list(&k, list, err, sizeof err), -1);
        assert_non_null(strstr(err, cases[i].want));
        assert_null(strstr(err, key_a));
        assert_null(strstr(err, key_b));
        assert_int_equal(k.loaded, 0);
    }
    snprintf(list, sizeof list, "%s,b:c2hvcnQ=", a);
    assert_int_equal(cry_keys_load_list(&k, list, err, sizeof err), -1);
    assert_string_equal(err, "entry 2 is not base64 of exactly 32 bytes");
    assert_int_equal(cry_keys_load_list(&k, "", err, sizeof err), -1);
    assert_int_equal(cry_keys_load_list(&k, a, err, sizeof err), 0);
    assert_int_equal(cry_keys_set_index(&k, "c2hvcnQ=", err, sizeof err), -1);
    cry_keys_wipe(&k);
    assert_int_equal(cry_keys_set_index(&k, key_a, err, sizeof err), -1); /* no ring */
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
            return 0;
    return 1;
}

static void test_blind_index(void **state)
{
    (void)state;
    cry_keys_t k, other;
    load_key(&k, 0x44);
    load_key(&other, 0x55);
    char a[65], b[65], c[65], d[65];
    assert_int_equal(cry_blind_index(&k, "email", "asha@example.com", a), 0);
    assert_int_equal(cry_blind_index(&k, "email", "asha@example.com", b), 0);
    assert_true(is_hex64(a));
    assert_string_equal(a, b);
    assert_int_equal(cry_blind_index(&k, "phone", "asha@example.com", c), 0);
    assert_string_not_equal(a, c); /* domain separation */
    assert_int_equal(cry_blind_index(&other, "email", "asha@example.com", d), 0);
    assert_string_not_equal(a, d); /* keyed */
    /* "ab" + "c" and "a" + "bc" must not collide */
    assert_int_equal(cry_blind_index(&k, "ab", "c", c), 0);
    assert_int_equal(cry_blind_index(&k, "a", "bc", d), 0);
    assert_string_not_equal(c, d);
    /* the index key is not the encryption key */
    assert_memory_not_equal(k.index, k.ring[0].enc, 32);
}

/* A failed index is an error with no index: it used to be 64 zeros, one
 * value shared by every failure, which a lookup would then match. */
static void test_blind_index_failure(void **state)
{
    (void)state;
    cry_keys_t none;
    memset(&none, 0, sizeof none);
    char out[65];
    memset(out, 'x', sizeof out);
    assert_int_equal(cry_blind_index(&none, "email", "asha@example.com", out), -1);
    assert_string_equal(out, "");
    cry_keys_t k;
    load_key(&k, 0x45);
    memset(out, 'x', sizeof out);
    assert_int_equal(cry_blind_index(&k, "email", NULL, out), -1);
    assert_string_equal(out, "");
    assert_int_equal(cry_blind_index(&k, NULL, "asha@example.com", out), -1);
    assert_string_equal(out, "");
    /* wiped keys are unloaded keys */
    cry_keys_wipe(&k);
    assert_int_equal(k.loaded, 0);
    assert_int_equal(cry_blind_index(&k, "email", "asha@example.com", out), -1);
}

static void test_compare(void **state)
{
    (void)state;
    assert_true(cry_equal("abcdef", "abcdef", 6));
    assert_false(cry_equal("abcdef", "abcdeg", 6));
    assert_false(cry_equal("xbcdef", "abcdef", 6));
    assert_true(cry_equal("", "", 0));
    assert_true(cry_str_equal("token-123", "token-123"));
    assert_false(cry_str_equal("token-123", "token-124"));
    assert_false(cry_str_equal("token-123", "token-12"));
    assert_false(cry_str_equal("", "x"));
    assert_true(cry_str_equal("", ""));
}

static void test_hashes(void **state)
{
    (void)state;
    char hex[65];
    cry_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* RFC 4231 test case 2 */
    unsigned char mac[32];
    assert_int_equal(cry_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
    static const unsigned char want[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                         0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                         0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                         0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    assert_memory_equal(mac, want, 32);
}

static void test_uuid(void **state)
{
    (void)state;
    char a[37], b[37];
    assert_int_equal(cry_uuid4(a), 0);
    assert_int_equal(cry_uuid4(b), 0);
    assert_int_equal((int)strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_true(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
    }
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    unsigned char r1[16], r2[16];
    assert_int_equal(cry_random(r1, sizeof r1), 0);
    assert_int_equal(cry_random(r2, sizeof r2), 0);
    assert_memory_not_equal(r1, r2, sizeof r1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_reject_bad),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bound_to_its_place),
        cmocka_unit_test(test_v1_only_for_the_migration),
        cmocka_unit_test(test_tamper_and_wrong_key),
        cmocka_unit_test(test_key_ring),
        cmocka_unit_test(test_key_list_errors),
        cmocka_unit_test(test_blind_index),
        cmocka_unit_test(test_blind_index_failure),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
