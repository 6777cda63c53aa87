/* Strict-mode behaviour and limits of the Mustache renderer. */
#include "template/mustache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const mst_options_t strict = {.strict = 1};

/* Renders tpl with the JSON text data; returns rc, output in out. */
static int render(const char *tpl, const char *json, const mst_options_t *opt, buf_t *out,
                  char *err, size_t errlen)
{
    cJSON *data = cJSON_Parse(json);
    assert_non_null(data);
    buf_init(out, 1 << 20);
    int rc = mst_render(tpl, data, opt, out, err, errlen);
    cJSON_Delete(data);
    return rc;
}

static void test_missing_variable_names_it_and_line(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    int rc = render("Hello\n\n{{client_name}}!", "{}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "line 3: missing variable 'client_name'");
    assert_int_equal(out.len, 0);
    buf_free(&out);

    /* a missing dotted name, triple and ampersand forms too */
    rc = render("{{{site.brand_name}}}", "{\"site\":{}}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "site.brand_name"));
    buf_free(&out);
    rc = render("{{& x}}", "{}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    buf_free(&out);

    /* non-strict: the spec's empty string */
    mst_options_t lax = {0};
    rc = render("[{{client_name}}]", "{}", &lax, &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "[]");
    buf_free(&out);
}

static void test_missing_section_is_falsey(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    int rc = render("a{{#notes}}N{{/notes}}{{^notes}}none{{/notes}}b", "{}", &strict, &out, err,
                    sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "anoneb");
    buf_free(&out);
}

static void test_null_value_renders_empty_in_strict(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    int rc = render("[{{x}}]", "{\"x\":null}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "[]");
    buf_free(&out);
}

static void test_syntax_errors_have_lines(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(mst_check("one\ntwo {{#items}}\nthree", err, sizeof err), -1);
    assert_string_equal(err, "line 2: unclosed section 'items'");
    assert_int_equal(mst_check("{{#a}}\n{{/b}}", err, sizeof err), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(mst_check("x\n\n\n{{/a}}", err, sizeof err), -1);
    assert_string_equal(err, "line 4: unexpected closing tag 'a'");
    assert_int_equal(mst_check("ok {{name", err, sizeof err), -1);
    assert_string_equal(err, "line 1: unclosed tag");
    assert_int_equal(mst_check("{{= bad =}}", err, sizeof err), -1);
    assert_int_equal(mst_check("{{#a}}{{/a}} {{! fine }}", err, sizeof err), 0);
}

static void test_output_ceiling(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    mst_options_t opt = {.strict = 1, .max_output = 100};
    /* 50 items of 4 bytes: 200 bytes wanted, 100 allowed */
    char json[1024] = "{\"l\":[";
    for (int i = 0; i < 50; i++)
        strcat(json, i ? ",1" : "1");
    strcat(json, "]}");
    int rc = render("{{#l}}abcd{{/l}}", json, &opt, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "output exceeds 100 bytes"));
    assert_int_equal(out.len, 0);
    buf_free(&out);

    opt.max_output = 200;
    rc = render("{{#l}}abcd{{/l}}", json, &opt, &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(out.len, 200);
    buf_free(&out);
}

/* A partial that includes itself forever. */
static int self_partial(void *ud, const char *name, char **src)
{
    (void)ud;
    if (strcmp(name, "loop") != 0)
        return 1;
    *src = strdup("x{{>loop}}");
    return *src ? 0 : -1;
}

static void test_depth_ceiling(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    mst_options_t opt = {.strict = 1, .partials = self_partial, .max_depth = 10};
    int rc = render("{{>loop}}", "{}", &opt, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "nesting deeper than 10"));
    buf_free(&out);

    /* nested sections count too */
    rc = render("{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}x"
                "{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}",
                "{\"a\":true}", &opt, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    buf_free(&out);
    opt.max_depth = 11;
    rc = render("{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}x"
                "{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}",
                "{\"a\":true}", &opt, &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "x");
    buf_free(&out);
}

static void test_missing_partial_strict(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    int rc = render("\n{{>nowhere}}", "{}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "line 2: missing partial 'nowhere'");
    buf_free(&out);
    rc = render("{{<nowhere}}{{/nowhere}}", "{}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "line 1: missing parent 'nowhere'");
    buf_free(&out);
}

static void test_escaping(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    int rc = render("<p>{{n}}</p>|{{{n}}}", "{\"n\":\"<script>alert(1)</script> Zoë\"}", &strict,
                    &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "<p>&lt;script&gt;alert(1)&lt;/script&gt; Zoë</p>|"
                                  "<script>alert(1)</script> Zoë");
    buf_free(&out);

    rc = render("{{q}}", "{\"q\":\"a & b \\\" c ' d\"}", &strict, &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "a &amp; b &quot; c &#39; d");
    buf_free(&out);
}

static void test_numbers(void **state)
{
    (void)state;
    buf_t out;
    char err[256];
    int rc = render("{{a}} {{b}} {{c}} {{d}}", "{\"a\":1.210,\"b\":85,\"c\":-3,\"d\":0.1}", &strict,
                    &out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.data, "1.21 85 -3 0.1");
    buf_free(&out);
}

static void test_appends_to_existing_buffer(void **state)
{
    (void)state;
    buf_t out;
    buf_init(&out, 1024);
    assert_int_equal(buf_puts(&out, "head:"), 0);
    char err[256];
    cJSON *d = cJSON_Parse("{\"x\":\"y\"}");
    assert_int_equal(mst_render("{{x}}", d, &strict, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "head:y");
    /* a failed render leaves what was there */
    assert_int_equal(mst_render("{{x}}{{z}}", d, &strict, &out, err, sizeof err), -1);
    assert_string_equal(out.data, "head:y");
    cJSON_Delete(d);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_variable_names_it_and_line),
        cmocka_unit_test(test_missing_section_is_falsey),
        cmocka_unit_test(test_null_value_renders_empty_in_strict),
        cmocka_unit_test(test_syntax_errors_have_lines),
        cmocka_unit_test(test_output_ceiling),
        cmocka_unit_test(test_depth_ceiling),
        cmocka_unit_test(test_missing_partial_strict),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_appends_to_existing_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
