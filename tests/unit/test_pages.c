/* pages: crier's own HTML pages escape every value, render strictly, are
 * self-contained, and their Content-Security-Policy allows exactly their
 * own style sheet. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "crypto/crypto.h"
#include "template/pages.h"
#include "util/base64.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOSTILE "<script>alert('x')</script>&\""
#define ESCAPED "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"

static cJSON *prefs_view(void)
{
    cJSON *v =
        cJSON_Parse("{\"brand_name\":\"Planiva\",\"physical_address\":\"1 Main St\","
                    "\"action\":\"TOK/preferences\",\"form_token\":\"FTOK\","
                    "\"timezone\":\"Europe/Lisbon\",\"quiet_none\":false,"
                    "\"quiet_start\":\"23:00\",\"quiet_end\":\"07:00\",\"has_email\":true,"
                    "\"channels\":[{\"name\":\"email\",\"label\":\"Email\",\"status\":\"on\","
                    "\"on\":true,\"preferred\":false,\"opted_out\":false},"
                    "{\"name\":\"sms\",\"label\":\"SMS\",\"status\":\"off\",\"on\":false,"
                    "\"preferred\":true,\"opted_out\":true}]}");
    assert_non_null(v);
    return v;
}

static char *render(pages_kind_t kind, const cJSON *v)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    char err[256];
    int rc = pages_render(kind, v, &b, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return buf_detach(&b);
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static void test_preferences_page(void **state)
{
    (void)state;
    cJSON *v = prefs_view();
    char *page = render(PAGES_PREFERENCES, v);
    assert_non_null(strstr(page, "<html lang=\"en\">"));
    assert_non_null(strstr(page, "<title>Your message preferences - Planiva</title>"));
    assert_non_null(strstr(page, "<meta name=\"viewport\""));
    /* two forms, each with the token, posting back */
    assert_int_equal(count(page, "<form method=\"post\" action=\"TOK/preferences\""), 2);
    assert_int_equal(count(page, "name=\"form_token\" value=\"FTOK\""), 2);
    /* a fieldset and legend per group, a label per control */
    assert_int_equal(count(page, "<fieldset>"), 3);
    assert_int_equal(count(page, "<legend>"), 3);
    assert_non_null(strstr(page, "<input type=\"radio\" id=\"pref-sms\" name=\"preferred_channel\" "
                                 "value=\"sms\" aria-describedby=\"pref-hint\" checked>"
                                 "<label for=\"pref-sms\">SMS</label>"));
    assert_non_null(strstr(page, "id=\"out-sms\" name=\"opt_out_sms\" value=\"1\" checked>"));
    assert_null(strstr(page, "id=\"out-email\" name=\"opt_out_email\" value=\"1\" checked"));
    assert_non_null(strstr(page, "id=\"quiet-hours\" name=\"quiet\" value=\"hours\" "
                                 "aria-describedby=\"quiet-hint\" checked>"));
    assert_non_null(strstr(page, "name=\"quiet_start\" value=\"23:00\""));
    assert_non_null(strstr(page, "Times are in Europe/Lisbon."));
    assert_non_null(strstr(page, "Unsubscribe from all email"));
    assert_non_null(strstr(page, ":focus-visible"));
    /* self-contained: no script, nothing fetched from anywhere */
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, " src="));
    assert_null(strstr(page, "<link"));
    assert_null(strstr(page, "http"));
    free(page);

    /* without an address, no unsubscribe-from-email form */
    cJSON_ReplaceItemInObjectCaseSensitive(v, "has_email", cJSON_CreateFalse());
    page = render(PAGES_PREFERENCES, v);
    assert_int_equal(count(page, "<form "), 1);
    free(page);
    cJSON_Delete(v);
}

static void test_every_value_is_escaped(void **state)
{
    (void)state;
    cJSON *v = prefs_view();
    cJSON_ReplaceItemInObjectCaseSensitive(v, "brand_name", cJSON_CreateString(HOSTILE));
    cJSON_ReplaceItemInObjectCaseSensitive(v, "timezone", cJSON_CreateString(HOSTILE));
    cJSON_ReplaceItemInObjectCaseSensitive(v, "form_token", cJSON_CreateString(HOSTILE));
    char *page = render(PAGES_PREFERENCES, v);
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "alert('x')"));
    assert_int_equal(count(page, ESCAPED), 6); /* title, brand, footer, zone, two tokens */
    free(page);
    cJSON_Delete(v);

    v = cJSON_Parse("{\"brand_name\":\"P\",\"heading\":\"H\",\"message\":\"M\",\"back\":\"../T\","
                    "\"has_changes\":true,\"confirmation_sent\":true}");
    cJSON *changes = cJSON_AddArrayToObject(v, "changes");
    cJSON_AddItemToArray(changes, cJSON_CreateString(HOSTILE));
    cJSON_AddItemToArray(changes, cJSON_CreateString("Quiet hours: none"));
    page = render(PAGES_SAVED, v);
    assert_non_null(strstr(page, "<li>" ESCAPED "</li>"));
    assert_non_null(strstr(page, "<li>Quiet hours: none</li>"));
    assert_non_null(strstr(page, "confirms the change"));
    assert_non_null(strstr(page, "<a href=\"../T\">Back to your preferences</a>"));
    assert_null(strstr(page, "&middot;")); /* no address, no separator */
    free(page);
    cJSON_Delete(v);

    v = cJSON_Parse("{\"brand_name\":\"P\",\"heading\":\"Gone\",\"message\":\"" ESCAPED "x\"}");
    page = render(PAGES_PROBLEM, v);
    assert_non_null(strstr(page, "<h1>Gone</h1>"));
    assert_null(strstr(page, "<a href")); /* no back link without one */
    free(page);
    cJSON_Delete(v);
}

static void test_strict(void **state)
{
    (void)state;
    cJSON *v = prefs_view();
    cJSON_DeleteItemFromObjectCaseSensitive(v, "form_token");
    buf_t b;
    buf_init(&b, 1 << 20);
    char err[256];
    assert_int_equal(pages_render(PAGES_PREFERENCES, v, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "form_token"));
    buf_free(&b);
    cJSON_Delete(v);
}

static void test_headers_allow_only_the_style(void **state)
{
    (void)state;
    const char *const *h = pages_headers();
    const char *csp = NULL;
    int n = 0;
    for (; h[0]; h += 2, n++) {
        assert_non_null(h[1]);
        if (strcmp(h[0], "Content-Security-Policy") == 0)
            csp = h[1];
        if (strcmp(h[0], "X-Frame-Options") == 0)
            assert_string_equal(h[1], "DENY");
        if (strcmp(h[0], "Referrer-Policy") == 0)
            assert_string_equal(h[1], "no-referrer");
        if (strcmp(h[0], "X-Content-Type-Options") == 0)
            assert_string_equal(h[1], "nosniff");
    }
    assert_int_equal(n, 4);
    assert_non_null(csp);
    assert_non_null(strstr(csp, "default-src 'none'"));
    assert_non_null(strstr(csp, "form-action 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_null(strstr(csp, "unsafe"));

    /* the hash is the style sheet's as the page has it */
    cJSON *v = cJSON_Parse("{\"brand_name\":\"P\",\"heading\":\"H\",\"message\":\"M\"}");
    char *page = render(PAGES_PROBLEM, v);
    const char *s = strstr(page, "<style>"), *e = strstr(page, "</style>");
    assert_true(s && e && e > s);
    s += strlen("<style>");
    char hex[65];
    cry_sha256_hex(s, (size_t)(e - s), hex);
    unsigned char raw[32];
    for (int i = 0; i < 32; i++) {
        unsigned x;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &x), 1);
        raw[i] = (unsigned char)x;
    }
    buf_t b64;
    buf_init(&b64, 64);
    assert_int_equal(b64_encode(&b64, raw, sizeof raw, 0), 0);
    char want[128];
    snprintf(want, sizeof want, "style-src 'sha256-%s';", b64.data);
    assert_non_null(strstr(csp, want));
    buf_free(&b64);
    free(page);
    cJSON_Delete(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preferences_page),
        cmocka_unit_test(test_every_value_is_escaped),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_headers_allow_only_the_style),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
