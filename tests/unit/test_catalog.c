/* The shipped email catalogue: every type renders with its example
 * context, is well-formed, carries the CAN-SPAM footer and escapes
 * request data in HTML. */
#include "template/catalog.h"
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
#include <strings.h>

#define HOSTILE_NAME "<script>alert(1)</script> Zoë"
#define ESCAPED_NAME "&lt;script&gt;alert(1)&lt;/script&gt; Zoë"
#define TEST_ADDRESS "742 Evergreen Terrace, Springfield, OR 97403"

static const tpl_site_t site = {.brand_name = "Planiva",
                                .support_email = "help@planiva.example",
                                .physical_address = TEST_ADDRESS,
                                .public_url = "https://crier.planiva.example"};

static char templates_dir[4096];

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src)
        return -1;
    snprintf(templates_dir, sizeof templates_dir, "%s/templates", src);
    return 0;
}

static cJSON *load_example(const char *type)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/examples/%s.json", templates_dir, type);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(buf_append(&b, chunk, n), 0);
    fclose(f);
    cJSON *j = cJSON_Parse(b.data);
    buf_free(&b);
    assert_non_null(j);
    return j;
}

/* Tiny tag-balance checker: every non-void element closes, in order.
 * Returns 1 when balanced. */
static int html_balanced(const char *html)
{
    static const char *const voids[] = {"area",  "base", "br",   "col",    "embed", "hr", "img",
                                        "input", "link", "meta", "source", "track", "wbr"};
    char stack[256][32];
    int depth = 0;
    for (const char *p = strchr(html, '<'); p; p = strchr(p, '<')) {
        if (strncmp(p, "<!--", 4) == 0) {
            p = strstr(p, "-->");
            if (!p)
                return 0;
            continue;
        }
        const char *end = strchr(p, '>');
        if (!end)
            return 0;
        if (p[1] == '!') {
            p = end;
            continue;
        }
        int closing = p[1] == '/';
        const char *nm = p + 1 + closing;
        size_t len = strspn(nm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        if (len == 0 || len >= 32)
            return 0;
        char name[32];
        memcpy(name, nm, len);
        name[len] = '\0';
        if (closing) {
            if (depth == 0 || strcasecmp(stack[depth - 1], name) != 0)
                return 0;
            depth--;
        } else {
            int is_void = end[-1] == '/';
            for (size_t i = 0; i < sizeof voids / sizeof voids[0]; i++)
                is_void |= strcasecmp(voids[i], name) == 0;
            if (!is_void) {
                if (depth == 256)
                    return 0;
                strcpy(stack[depth++], name);
            }
            if (strcasecmp(name, "style") == 0) {
                end = strstr(end, "</style>");
                if (!end)
                    return 0;
                end--;
            }
        }
        p = end + 1;
    }
    return depth == 0;
}

static void test_checker_catches_imbalance(void **state)
{
    (void)state;
    assert_true(html_balanced("<p>a<br>b<img src=x></p>"));
    assert_false(html_balanced("<div><p>x</div></p>"));
    assert_false(html_balanced("<div>"));
}

static void test_every_type_renders(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    if (!c)
        fprintf(stderr, "load: %s\n", err);
    assert_non_null(c);
    assert_int_equal(strlen(tpl_catalog_version(c)), 16);

    for (size_t i = 0; i < 7; i++) {
        const char *type = tpl_email_types[i];
        cJSON *req = load_example(type);
        cJSON *ctx = tpl_context_build(req, &site, HOSTILE_NAME, "5b1d7c2e-plan", "comm-1");
        assert_non_null(ctx);
        tpl_email_t m;
        int rc = tpl_render_email(c, type, ctx, &m, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", type, err);
        assert_int_equal(rc, 0);
        assert_true(m.subject[0] != '\0');
        assert_null(strchr(m.subject, '\n'));
        assert_null(strchr(m.subject, '\r'));
        assert_true(strlen(m.text) > 100);
        assert_true(strlen(m.html) > 100);
        assert_non_null(strstr(m.html, TEST_ADDRESS));
        assert_non_null(strstr(m.text, TEST_ADDRESS));
        assert_non_null(strstr(m.html, "help@planiva.example"));
        assert_non_null(strstr(m.html, "Planiva"));
        if (!html_balanced(m.html))
            fprintf(stderr, "%s: unbalanced HTML\n", type);
        assert_true(html_balanced(m.html));
        assert_non_null(strstr(m.html, ESCAPED_NAME));
        assert_null(strstr(m.html, "<script>"));
        /* the text part is not HTML: the name reads as written there */
        assert_non_null(strstr(m.text, HOSTILE_NAME));
        tpl_email_free(&m);
        cJSON_Delete(ctx);
        cJSON_Delete(req);
    }
    tpl_catalog_free(c);
}

/* Removes a required variable from the example and expects an error
 * naming it. */
static void expect_missing(tpl_catalog_t *c, const char *type, const char *key,
                           const char *client_name)
{
    cJSON *req = load_example(type);
    cJSON_DeleteItemFromObjectCaseSensitive(req, key);
    cJSON *ctx = tpl_context_build(req, &site, client_name, "p-1", "c-1");
    assert_non_null(ctx);
    tpl_email_t m;
    char err[512];
    assert_int_equal(tpl_render_email(c, type, ctx, &m, err, sizeof err), -1);
    const char *want = key ? key : "client_name";
    if (!strstr(err, want))
        fprintf(stderr, "error does not name %s: %s\n", want, err);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "line"));
    assert_null(m.html);
    cJSON_Delete(ctx);
    cJSON_Delete(req);
}

static void test_missing_required_variable(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    assert_non_null(c);
    expect_missing(c, "welcome", "event_type", "Asha");
    expect_missing(c, "blueprint_delivery", "blueprint_url", "Asha");
    expect_missing(c, "reminder", "pending_action", "Asha");
    expect_missing(c, "error_notification", NULL, NULL); /* no client_name */
    tpl_catalog_free(c);
}

static void test_unknown_type_and_context_override(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    assert_non_null(c);
    tpl_email_t m;
    cJSON *ctx = tpl_context_build(NULL, &site, "A", "p", "c");
    assert_int_equal(tpl_render_email(c, "../../etc/passwd", ctx, &m, err, sizeof err), -1);
    cJSON_Delete(ctx);

    /* the request cannot replace crier's own keys */
    cJSON *req = cJSON_Parse("{\"client_name\":\"Mallory\",\"site\":{\"brand_name\":\"Evil\"},"
                             "\"event_type\":\"party\"}");
    ctx = tpl_context_build(req, &site, "Asha", "p", "c");
    assert_string_equal(cJSON_GetObjectItem(ctx, "client_name")->valuestring, "Asha");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(ctx, "site"), "brand_name")->valuestring,
        "Planiva");
    assert_string_equal(cJSON_GetObjectItem(ctx, "event_type")->valuestring, "party");
    /* and the request object itself is left alone */
    assert_string_equal(cJSON_GetObjectItem(req, "client_name")->valuestring, "Mallory");
    cJSON_Delete(ctx);
    cJSON_Delete(req);
    tpl_catalog_free(c);
}

static void test_bad_directory(void **state)
{
    (void)state;
    char err[512];
    assert_null(tpl_catalog_load("/nonexistent-crier-templates", err, sizeof err));
    assert_true(err[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_catches_imbalance),
        cmocka_unit_test(test_every_type_renders),
        cmocka_unit_test(test_missing_required_variable),
        cmocka_unit_test(test_unknown_type_and_context_override),
        cmocka_unit_test(test_bad_directory),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
