/* SMS segment counting (GSM 03.38 / UCS-2) against the carrier's rules and
 * Twilio's published vectors, and the shipped short-message templates
 * against the default segment budget. */
#include "channel/gsm7.h"
#include "config.h"
#include "template/catalog.h"
#include "validate.h"
#include "template/context.h"
#include "util/buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMOJI     "\xF0\x9F\x98\x80" /* U+1F600, outside the BMP */
#define EURO      "\xE2\x82\xAC"     /* U+20AC, extension table */
#define C_CEDILLA "\xC3\xA7"         /* U+00E7, not GSM (the capital is) */

/* A string of n copies of unit (owned by the caller). */
static char *repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    s[u * n] = '\0';
    return s;
}

/* Counts the concatenation of up to three pieces. */
static gsm7_count_t count3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c);
    char *s = malloc(n + 1);
    assert_non_null(s);
    snprintf(s, n + 1, "%s%s%s", a, b, c);
    gsm7_count_t out;
    assert_int_equal(gsm7_count(s, n, &out), 0);
    free(s);
    return out;
}

static gsm7_count_t count_repeat(const char *unit, size_t times)
{
    char *s = repeat(unit, times);
    gsm7_count_t out = count3(s, "", "");
    free(s);
    return out;
}

static void test_plain_ascii(void **state)
{
    (void)state;
    gsm7_count_t n = count_repeat("7", 160);
    assert_int_equal(n.encoding, GSM7_ENC_GSM7);
    assert_int_equal(n.units, 160);
    assert_int_equal(n.chars, 160);
    assert_int_equal(n.segments, 1);

    n = count_repeat("7", 161);
    assert_int_equal(n.encoding, GSM7_ENC_GSM7);
    assert_int_equal(n.segments, 2);
    n = count_repeat("7", 306); /* 153 + 153 */
    assert_int_equal(n.segments, 2);
    n = count_repeat("7", 307);
    assert_int_equal(n.segments, 3);

    n = count3("", "", "");
    assert_int_equal(n.units, 0);
    assert_int_equal(n.segments, 0);
    assert_int_equal(n.encoding, GSM7_ENC_GSM7);
}

static void test_extension_costs_two(void **state)
{
    (void)state;
    static const char *const ext[] = {"{", "}", "[", "]", "~", "\\", "|", "^", EURO, "\f"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        gsm7_count_t n = count3("x", ext[i], "");
        assert_int_equal(n.encoding, GSM7_ENC_GSM7);
        assert_int_equal(n.units, 3);
        assert_int_equal(n.chars, 2);
        assert_int_equal(gsm7_septets(ext[i][0] == '\xE2' ? 0x20AC : (uint8_t)ext[i][0]), 2);
    }
    gsm7_count_t n = count_repeat(EURO, 80);
    assert_int_equal(n.units, 160);
    assert_int_equal(n.segments, 1);
    n = count_repeat(EURO, 81);
    assert_int_equal(n.units, 162);
    assert_int_equal(n.segments, 2);

    /* an escape pair is never split: 152 + '{' would need 154 of 153 */
    char *a = repeat("a", 152);
    n = count3(a, "{", a); /* 306 septets, but 152 | 2+151 | 1 */
    assert_int_equal(n.units, 306);
    assert_int_equal(n.segments, 3);
    free(a);
}

static void test_gsm_letters_stay_gsm(void **state)
{
    (void)state;
    /* é ü ñ Ä Ö Ü ä ö à è ù ì ò Ç Ø ø Å å Æ æ ß É Δ Ω £ ¥ § ¿ ¡ ¤ @ $ _ */
    const char *gsm = "\xC3\xA9\xC3\xBC\xC3\xB1\xC3\x84\xC3\x96\xC3\x9C\xC3\xA4\xC3\xB6"
                      "\xC3\xA0\xC3\xA8\xC3\xB9\xC3\xAC\xC3\xB2\xC3\x87\xC3\x98\xC3\xB8"
                      "\xC3\x85\xC3\xA5\xC3\x86\xC3\xA6\xC3\x9F\xC3\x89\xCE\x94\xCE\xA9"
                      "\xC2\xA3\xC2\xA5\xC2\xA7\xC2\xBF\xC2\xA1\xC2\xA4@$_\r\n";
    gsm7_count_t n = count3(gsm, "", "");
    assert_int_equal(n.encoding, GSM7_ENC_GSM7);
    assert_int_equal(n.chars, 35);
    assert_int_equal(n.units, 35);
    assert_int_equal(n.segments, 1);
}

static void expect_forces_ucs2(const char *ch, uint32_t cp)
{
    gsm7_count_t n = count3("Hello ", ch, " there");
    assert_int_equal(n.encoding, GSM7_ENC_UCS2);
    assert_int_equal(n.offset, 6);
    assert_int_equal(n.ucs2_char, cp);
    assert_int_equal(gsm7_septets(cp), 0);
}

static void test_non_gsm_forces_ucs2(void **state)
{
    (void)state;
    expect_forces_ucs2("\xC3\xAA", 0x00EA);     /* ê */
    expect_forces_ucs2(C_CEDILLA, 0x00E7);      /* ç: only Ç is GSM */
    expect_forces_ucs2("\xC3\xA1", 0x00E1);     /* á */
    expect_forces_ucs2("\xC3\xB3", 0x00F3);     /* ó */
    expect_forces_ucs2("\xC2\xA0", 0x00A0);     /* no-break space: the ESC slot is not a char */
    expect_forces_ucs2("`", 0x0060);            /* the one ASCII char outside GSM */
    expect_forces_ucs2("\xE2\x80\x99", 0x2019); /* curly apostrophe */
    expect_forces_ucs2("\xE2\x82\xB9", 0x20B9); /* rupee sign */
    expect_forces_ucs2("\x1B", 0x001B);         /* a bare ESC is not text */
    expect_forces_ucs2(EMOJI, 0x1F600);

    /* a NUL byte is a character (U+0000), not '@' */
    gsm7_count_t n;
    assert_int_equal(gsm7_count("ab\0c", 4, &n), 0);
    assert_int_equal(n.encoding, GSM7_ENC_UCS2);
    assert_int_equal(n.offset, 2);

    /* the first offender is reported, and every char then costs 16 bits */
    n = count3("[]", "\xC3\xAA", EMOJI);
    assert_int_equal(n.offset, 2);
    assert_int_equal(n.units, 5); /* [ ] ê = 1 each, the emoji 2 */
}

static void test_emoji_and_ucs2_boundaries(void **state)
{
    (void)state;
    char *d68 = repeat("1", 68);
    gsm7_count_t n = count3(EMOJI, d68, "");
    assert_int_equal(n.encoding, GSM7_ENC_UCS2);
    assert_int_equal(n.chars, 69);
    assert_int_equal(n.units, 70);
    assert_int_equal(n.segments, 1);
    n = count3(EMOJI, d68, "1");
    assert_int_equal(n.units, 71);
    assert_int_equal(n.segments, 2);
    free(d68);

    n = count_repeat(C_CEDILLA, 70);
    assert_int_equal(n.segments, 1);
    n = count_repeat(C_CEDILLA, 71);
    assert_int_equal(n.segments, 2);
    n = count_repeat(C_CEDILLA, 67 * 2);
    assert_int_equal(n.segments, 2);
    n = count_repeat(C_CEDILLA, 67 * 2 + 1);
    assert_int_equal(n.segments, 3);

    /* in UCS-2 an extension char costs one unit, not two septets */
    char *b68 = repeat("]", 68);
    n = count3(EMOJI, b68, "");
    assert_int_equal(n.units, 70);
    assert_int_equal(n.segments, 1);
    free(b68);

    /* a surrogate pair is never split: 66 | 2+65 | 1 */
    char *a66 = repeat("a", 66);
    n = count3(a66, EMOJI, a66);
    assert_int_equal(n.units, 134);
    assert_int_equal(n.segments, 3);
    free(a66);
}

static void test_emoji_sequences(void **state)
{
    (void)state;
    /* flag of Italy (two regional indicators) + 66 digits = 70 units */
    char *d66 = repeat("1", 66);
    gsm7_count_t n = count3("\xF0\x9F\x87\xAE\xF0\x9F\x87\xB9", d66, "");
    assert_int_equal(n.units, 70);
    assert_int_equal(n.segments, 1);
    free(d66);

    /* rainbow flag (4 code points, 6 units) + 64 digits */
    char *d64 = repeat("1", 64);
    n = count3("\xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88", d64, "");
    assert_int_equal(n.chars, 68);
    assert_int_equal(n.units, 70);
    assert_int_equal(n.segments, 1);
    free(d64);

    /* a family (man ZWJ woman ZWJ girl, 8 units) stays in one segment:
     * 65 | 8+59 | 1, where a split sequence would fit in two */
    const char *family = "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7";
    char *a65 = repeat("a", 65), *a60 = repeat("a", 60);
    n = count3(a65, family, a60);
    assert_int_equal(n.units, 133);
    assert_int_equal(n.segments, 3);
    free(a65);
    free(a60);
}

static void expect_invalid(const char *s, size_t len, size_t offset)
{
    gsm7_count_t n;
    assert_int_equal(gsm7_count(s, len, &n), -1);
    assert_int_equal(n.offset, offset);
}

static void test_invalid_utf8_refused(void **state)
{
    (void)state;
    expect_invalid("ab\xC3", 3, 2);             /* truncated */
    expect_invalid("ab\xC3(", 4, 2);            /* bad continuation */
    expect_invalid("\x80", 1, 0);               /* stray continuation */
    expect_invalid("x\xC0\xAF", 3, 1);          /* overlong '/' */
    expect_invalid("\xE0\x80\xAF", 3, 0);       /* overlong, 3 bytes */
    expect_invalid("\xED\xA0\x80", 3, 0);       /* UTF-16 surrogate */
    expect_invalid("\xF4\x90\x80\x80", 4, 0);   /* above U+10FFFF */
    expect_invalid("ok \xFF", 4, 3);            /* never valid */
    expect_invalid(EMOJI "\xF0\x9F\x98", 7, 4); /* truncated 4-byte */
    gsm7_count_t n;
    assert_int_equal(gsm7_count("\xF4\x8F\xBF\xBF", 4, &n), 0); /* U+10FFFF is fine */
    assert_int_equal(n.units, 2);
    assert_string_equal(gsm7_encoding_name(GSM7_ENC_GSM7), "GSM-7");
    assert_string_equal(gsm7_encoding_name(GSM7_ENC_UCS2), "UCS-2");
}

/* ------------------------------------------------ the shipped templates */

static cJSON *load_example(const char *dir, const char *type)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/examples/%s.json", dir, type);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(buf_append(&b, chunk, k), 0);
    fclose(f);
    cJSON *j = cJSON_Parse(b.data ? b.data : "");
    buf_free(&b);
    assert_non_null(j);
    return j;
}

static void test_shipped_sms_fit_default_budget(void **state)
{
    (void)state;
    const char *src = getenv("CRIER_SOURCE_DIR");
    assert_non_null(src);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/templates", src);

    /* the default budget, as an operator without configuration gets it */
    unsetenv("CRIER_SMS_SEGMENT_BUDGET");
    cfg_t cfg;
    char err[512];
    assert_int_equal(cfg_load(&cfg, NULL, err, sizeof err), 0);
    assert_int_equal(cfg.sms_segment_budget, 2);
    tpl_site_t site = {.brand_name = cfg.brand_name,
                       .support_email = cfg.support_email,
                       .physical_address = cfg.physical_address,
                       .public_url = cfg.public_url};

    tpl_catalog_t *c = tpl_catalog_load(dir, err, sizeof err);
    if (!c)
        fprintf(stderr, "load: %s\n", err);
    assert_non_null(c);
    for (size_t i = 0; i < VAL_SHORT_TYPES; i++) {
        const char *type = val_message_types[i];
        cJSON *req = load_example(dir, type);
        /* a real plan id, as long as the engine's */
        cJSON *ctx =
            tpl_context_build(req, &site, "Asha", "5b1d7c2e-8f3a-4e61-9d2b-1a7c3e5f9b20", "c-1");
        assert_non_null(ctx);
        char *sms = NULL;
        if (tpl_render_sms(c, type, ctx, &sms, err, sizeof err) != 0)
            fprintf(stderr, "%s: %s\n", type, err);
        assert_non_null(sms);
        gsm7_count_t n;
        assert_int_equal(gsm7_count(sms, strlen(sms), &n), 0);
        if (n.segments > (size_t)cfg.sms_segment_budget || n.encoding != GSM7_ENC_GSM7)
            fprintf(stderr, "sms/%s: %s, %zu segments: %s\n", type, gsm7_encoding_name(n.encoding),
                    n.segments, sms);
        /* the wording itself never forces UCS-2 */
        assert_int_equal(n.encoding, GSM7_ENC_GSM7);
        assert_true(n.segments >= 1);
        assert_true(n.segments <= (size_t)cfg.sms_segment_budget);
        /* trimmed: no trailing newline costing a septet */
        assert_true(sms[strlen(sms) - 1] != '\n');
        free(sms);

        char *text = NULL;
        assert_int_equal(tpl_render_whatsapp_text(c, type, ctx, &text, err, sizeof err), 0);
        assert_true(strlen(text) > 20);
        free(text);

        tpl_wa_template_t wa;
        if (tpl_render_whatsapp_template(c, type, ctx, &wa, err, sizeof err) != 0)
            fprintf(stderr, "%s: %s\n", type, err);
        assert_non_null(wa.name);
        assert_string_equal(wa.language, "en_US");
        assert_true(wa.n_params >= 1);
        for (size_t k = 0; k < wa.n_params; k++) {
            assert_true(wa.params[k][0] != '\0');
            assert_null(strchr(wa.params[k], '\n'));
        }
        tpl_wa_template_free(&wa);
        cJSON_Delete(ctx);
        cJSON_Delete(req);
    }

    /* a missing link is an error naming it, not a blank parameter */
    cJSON *req = load_example(dir, "vendor_options");
    cJSON_DeleteItemFromObjectCaseSensitive(req, "options_url");
    cJSON *ctx = tpl_context_build(req, &site, "Asha", "p-1", "c-1");
    tpl_wa_template_t wa;
    assert_int_equal(tpl_render_whatsapp_template(c, "vendor_options", ctx, &wa, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "options_url"));
    assert_null(wa.name);
    /* while the SMS says what it can without it */
    char *sms = NULL;
    assert_int_equal(tpl_render_sms(c, "vendor_options", ctx, &sms, err, sizeof err), 0);
    assert_null(strstr(sms, "http"));
    free(sms);
    assert_int_equal(tpl_render_sms(c, "../email/welcome", ctx, &sms, err, sizeof err), -1);
    assert_null(sms);
    cJSON_Delete(ctx);
    cJSON_Delete(req);
    tpl_catalog_free(c);
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_ascii),
        cmocka_unit_test(test_extension_costs_two),
        cmocka_unit_test(test_gsm_letters_stay_gsm),
        cmocka_unit_test(test_non_gsm_forces_ucs2),
        cmocka_unit_test(test_emoji_and_ucs2_boundaries),
        cmocka_unit_test(test_emoji_sequences),
        cmocka_unit_test(test_invalid_utf8_refused),
        cmocka_unit_test(test_shipped_sms_fit_default_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
