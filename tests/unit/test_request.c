/* POST /v1/communications bodies: a valid body parses into the struct; each
 * kind of bad input gets its own code and a message naming the field. */
#include "request/request.h"
#include "channel/ch.h"

#include <cjson/cJSON.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_DECODED (1024 * 1024)
#define PLAN        "5b1d2f3a-0c4e-4a5b-9d6e-7f8091a2b3c4"
#define CLIENT      "9c2e4f5a-1b2c-4d3e-8f9a-0b1c2d3e4f5a"

static const char valid_body[] =
    "{\"plan_id\":\"" PLAN "\",\"client_id\":\"9C2E4F5A-1B2C-4D3E-8F9A-0B1C2D3E4F5A\","
    "\"message_type\":\"vendor_options\",\"urgency\":\"high\",\"preferred_channel\":null,"
    "\"client\":{\"name\":\"Asha Rao\",\"email\":\"asha@example.com\","
    "\"phone\":\"+919812345678\",\"timezone\":\"Asia/Kolkata\",\"locale\":\"pt-BR\","
    "\"consent\":{\"sms\":true,\"whatsapp\":false}},"
    "\"context\":{\"event_type\":\"wedding\",\"vendor_combinations\":[1,2,3]},"
    "\"attachments\":[{\"filename\":\"blueprint.pdf\",\"content_type\":\"application/pdf\","
    "\"content_base64\":\"JVBERi0xLjQK\"}],"
    "\"unknown_key\":{\"ignored\":true}}";

static int parse(const char *body, req_comm_t *r, req_error_t *e)
{
    return req_parse(body, strlen(body), MAX_DECODED, r, e);
}

/* Parses body (expected to fail) and checks the kind of fault and message. */
static void expect_error(const char *body, req_err_t kind, const char *message)
{
    req_comm_t r;
    req_error_t e;
    assert_int_equal(parse(body, &r, &e), -1);
    assert_int_equal(e.kind, kind);
    if (message)
        assert_string_equal(e.message, message);
    assert_null(r.context_json); /* nothing is left allocated on failure */
}

/* The valid body with one "key":value pair replaced (or added). */
static char *with_field(const char *pair)
{
    size_t n = strlen(valid_body) + strlen(pair) + 4;
    char *s = malloc(n);
    assert_non_null(s);
    /* later duplicates are ignored by the parser, so put the pair first */
    snprintf(s, n, "{%s,%s", pair, valid_body + 1);
    return s;
}

static void test_valid_body(void **state)
{
    (void)state;
    req_comm_t r;
    req_error_t e;
    assert_int_equal(parse(valid_body, &r, &e), 0);
    assert_string_equal(r.plan_id, PLAN);
    assert_string_equal(r.client_id, CLIENT); /* normalised to lower case */
    assert_string_equal(r.message_type, "vendor_options");
    assert_string_equal(r.urgency, "high");
    assert_string_equal(r.preferred_channel, "");
    assert_int_equal(r.client.present, 1);
    assert_string_equal(r.client.name, "Asha Rao");
    assert_string_equal(r.client.email, "asha@example.com");
    assert_string_equal(r.client.phone, "+919812345678");
    assert_string_equal(r.client.timezone, "Asia/Kolkata");
    assert_string_equal(r.client.locale, "pt-BR");
    assert_int_equal(r.client.consent[CH_EMAIL], -1); /* not given */
    assert_int_equal(r.client.consent[CH_SMS], 1);
    assert_int_equal(r.client.consent[CH_WHATSAPP], 0);
    assert_string_equal(r.context_json,
                        "{\"event_type\":\"wedding\",\"vendor_combinations\":[1,2,3]}");
    assert_int_equal(r.n_attachments, 1);
    assert_string_equal(r.attachments[0].filename, "blueprint.pdf");
    assert_string_equal(r.attachments[0].content_type, "application/pdf");
    assert_int_equal(r.attachments[0].len, 9);
    assert_memory_equal(r.attachments[0].data, "%PDF-1.4\n", 9);
    req_free(&r);
}

static void test_minimal_body_defaults(void **state)
{
    (void)state;
    const char *body =
        "{\"plan_id\":\"" PLAN "\",\"client_id\":\"" CLIENT "\",\"message_type\":\"welcome\"}";
    req_comm_t r;
    req_error_t e;
    assert_int_equal(parse(body, &r, &e), 0);
    assert_string_equal(r.urgency, ""); /* none given: the rules pick the type's default */
    assert_int_equal(r.client.present, 0);
    assert_string_equal(r.context_json, "{}");
    assert_int_equal(r.n_attachments, 0);
    req_free(&r);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("", REQ_BAD_JSON, NULL);
    expect_error("{\"plan_id\":", REQ_BAD_JSON, NULL);
    expect_error("{\"a\":1} trailing", REQ_BAD_JSON, NULL);
    expect_error("{\"a\":\"x\ty\"}", REQ_BAD_JSON, NULL);      /* raw control char */
    expect_error("{\"a\":\"x\\u0000y\"}", REQ_BAD_JSON, NULL); /* escaped NUL */
    expect_error("{\"a\":\"\xc0\xaf\"}", REQ_BAD_UTF8, NULL);
    expect_error("{\"a\":\"\xed\xa0\x80\"}", REQ_BAD_UTF8, NULL);
    expect_error("[1,2]", REQ_BAD_FIELD, "body: must be a JSON object");
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    char *deep = nested(33);
    expect_error(deep, REQ_TOO_DEEP, NULL);
    free(deep);
    /* 32 levels are fine: the next check to fail is the shape */
    char *ok = nested(32);
    expect_error(ok, REQ_BAD_FIELD, "body: must be a JSON object");
    free(ok);
    /* brackets inside strings do not count */
    char body[256];
    snprintf(body, sizeof body,
             "{\"plan_id\":\"" PLAN "\",\"client_id\":\"" CLIENT
             "\",\"message_type\":\"welcome\",\"context\":{\"s\":\"%s\"}}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    req_comm_t r;
    req_error_t e;
    assert_int_equal(parse(body, &r, &e), 0);
    req_free(&r);
}

static void test_long_array(void **state)
{
    (void)state;
    size_t cap = 10000 * 2 + 256;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t n = (size_t)snprintf(body, cap,
                                "{\"plan_id\":\"" PLAN "\",\"client_id\":\"" CLIENT
                                "\",\"message_type\":\"welcome\",\"context\":{\"x\":[");
    for (int i = 0; i < 10000; i++) {
        body[n++] = i ? ',' : '0';
        if (i)
            body[n++] = '0';
    }
    memcpy(body + n, "]}}", 4);
    expect_error(body, REQ_BAD_FIELD, "context.x: array too long");
    free(body);
}

static void test_bad_fields(void **state)
{
    (void)state;
    static const struct {
        const char *pair;
        const char *message;
    } cases[] = {
        {"\"plan_id\":\"nope\"", "plan_id: not a valid UUID"},
        {"\"plan_id\":42", "plan_id: must be a string"},
        {"\"client_id\":\"5b1d2f3a0c4e4a5b9d6e7f8091a2b3c4\"", "client_id: not a valid UUID"},
        {"\"message_type\":\"spam\"", "message_type: unknown message type"},
        {"\"message_type\":[]", "message_type: must be a string"},
        {"\"urgency\":\"asap\"", "urgency: must be one of critical, high, normal, low"},
        {"\"preferred_channel\":\"pigeon\"",
         "preferred_channel: must be null, email, sms or whatsapp"},
        {"\"client\":\"asha\"", "client: must be an object"},
        {"\"client\":{\"email\":\"not-an-address\"}", "client.email: not a valid email address"},
        {"\"client\":{\"email\":7}", "client.email: must be a string"},
        {"\"client\":{\"phone\":\"09812345678\"}", "client.phone: not a valid E.164 phone number"},
        {"\"client\":{\"timezone\":\"Mars/Base\"}", "client.timezone: not a known IANA time zone"},
        {"\"client\":{\"locale\":\"english-please\"}",
         "client.locale: not a valid locale (e.g. en, pt-BR)"},
        {"\"client\":{\"name\":\"Asha\\r\\nBcc: x\"}",
         "client.name: must be 1 to 200 characters without control characters"},
        {"\"client\":{\"consent\":{\"sms\":\"yes\"}}", "client.consent.sms: must be a boolean"},
        {"\"client\":{\"consent\":[true]}", "client.consent: must be an object"},
        {"\"context\":[1]", "context: must be an object"},
        {"\"attachments\":{}", "attachments: must be an array"},
        {"\"attachments\":[1]", "attachments[0]: must be an object"},
        {"\"attachments\":[{\"filename\":\"../etc/passwd\",\"content_type\":\"text/plain\","
         "\"content_base64\":\"\"}]",
         "attachments[0].filename: required, 1 to 200 characters, no slashes or control "
         "characters"},
        {"\"attachments\":[{\"filename\":\"a.pdf\",\"content_type\":\"pdf\","
         "\"content_base64\":\"\"}]",
         "attachments[0].content_type: required, a media type such as application/pdf"},
        {"\"attachments\":[{\"filename\":\"a.pdf\",\"content_type\":\"application/pdf\","
         "\"content_base64\":\"not base64!\"}]",
         "attachments[0].content_base64: not valid base64"},
        {"\"attachments\":[{\"filename\":\"a.pdf\",\"content_type\":\"application/pdf\","
         "\"content_base64\":\"QUJD\"},{\"filename\":\"b.pdf\",\"content_type\":\"application/"
         "pdf\","
         "\"content_base64\":\"QUJ\"}]",
         "attachments[1].content_base64: not valid base64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = with_field(cases[i].pair);
        expect_error(body, REQ_BAD_FIELD, cases[i].message);
        free(body);
    }
}

/* Links in context: every string a template may put in an href (a key
 * "url" or ending "_url", at any depth, and the elements of such a list)
 * must be http, https or mailto; the message names the field, never the
 * value. */
static void test_link_urls(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "javascript:alert(document.cookie)",
        "JAVASCRIPT:alert(1)",
        " javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "/plans/5b1d",
        "//evil.example/x",
        "http://",
        "https:///path",
        "http://:8080/x",
        "http://user@/x",
        "http:evil.example",
        "https://planiva.example/\tx",
        "https://planiva.example/ ",
        "mailto:",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *ctx = cJSON_CreateObject();
        cJSON_AddStringToObject(ctx, "plan_url", bad[i]);
        char *text = cJSON_PrintUnformatted(ctx);
        char pair[512];
        snprintf(pair, sizeof pair, "\"context\":%s", text);
        char *body = with_field(pair);
        req_comm_t r;
        req_error_t e;
        if (parse(body, &r, &e) == 0) {
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
            req_free(&r);
            fail();
        }
        assert_int_equal(e.kind, REQ_BAD_FIELD);
        assert_string_equal(e.message,
                            "context.plan_url: only http, https and mailto URLs are accepted");
        free(body);
        cJSON_free(text);
        cJSON_Delete(ctx);
    }

    /* named with its place: inside a list of objects, in a list of links,
     * deep in objects, and the bare key "url" */
    static const struct {
        const char *context;
        const char *message;
    } nested[] = {
        {"{\"options\":[{\"select_url\":\"https://a.example/"
         "1\"},{\"select_url\":\"javascript:x\"}]}",
         "context.options[1].select_url: only http, https and mailto URLs are accepted"},
        {"{\"vendor_combinations\":[{\"name\":\"A\",\"select_url\":\"data:text/html,x\"}]}",
         "context.vendor_combinations[0].select_url: only http, https and mailto URLs are "
         "accepted"},
        {"{\"mirror_url\":[\"https://a.example\",[\"vbscript:x\"]]}",
         "context.mirror_url[1][0]: only http, https and mailto URLs are accepted"},
        {"{\"a\":{\"b\":{\"url\":\"javascript:x\"}}}",
         "context.a.b.url: only http, https and mailto URLs are accepted"},
        {"{\"unsubscribe_url\":\"JaVaScRiPt:x\"}",
         "context.unsubscribe_url: only http, https and mailto URLs are accepted"},
    };
    for (size_t i = 0; i < sizeof nested / sizeof nested[0]; i++) {
        char pair[512];
        snprintf(pair, sizeof pair, "\"context\":%s", nested[i].context);
        char *body = with_field(pair);
        expect_error(body, REQ_BAD_FIELD, nested[i].message);
        free(body);
    }

    /* what passes: the three schemes in any case, with ports, user
     * information, IPv6 hosts, queries; other keys and non-string values
     * are not links */
    static const char *const good[] = {
        "{\"plan_url\":\"https://app.planiva.example/plans/5b1d\"}",
        "{\"plan_url\":\"http://planiva.example\"}",
        "{\"plan_url\":\"HTTPS://APP.PLANIVA.EXAMPLE/X\"}",
        "{\"plan_url\":\"Http://planiva.example:8080/x?y=1#z\"}",
        "{\"plan_url\":\"https://user@planiva.example/x\"}",
        "{\"plan_url\":\"http://[2001:db8::1]:8080/x\"}",
        "{\"support_url\":\"mailto:help@planiva.example?subject=Plan%205b1d\"}",
        "{\"review_url\":\"MAILTO:help@planiva.example\"}",
        "{\"options\":[{\"select_url\":\"https://a.example/1\"},{\"select_url\":null}]}",
        "{\"action_url\":null,\"count_url\":3,\"flag_url\":true}",
        "{\"note\":\"javascript:x\",\"urls\":[\"data:x\"],\"curl\":\"vbscript:x\"}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char pair[512];
        snprintf(pair, sizeof pair, "\"context\":%s", good[i]);
        char *body = with_field(pair);
        req_comm_t r;
        req_error_t e;
        int rc = parse(body, &r, &e);
        if (rc != 0)
            fprintf(stderr, "refused %s: %s\n", good[i], e.message);
        assert_int_equal(rc, 0);
        req_free(&r);
        free(body);
    }
}

static void test_required_fields(void **state)
{
    (void)state;
    expect_error("{\"client_id\":\"" CLIENT "\",\"message_type\":\"welcome\"}", REQ_BAD_FIELD,
                 "plan_id: required");
    expect_error("{\"plan_id\":\"" PLAN "\",\"message_type\":\"welcome\"}", REQ_BAD_FIELD,
                 "client_id: required");
    expect_error("{\"plan_id\":\"" PLAN "\",\"client_id\":\"" CLIENT "\"}", REQ_BAD_FIELD,
                 "message_type: required");
}

static void test_too_many_attachments(void **state)
{
    (void)state;
    char list[2048] = "\"attachments\":[";
    for (int i = 0; i < 11; i++)
        strcat(list, i ? ",{}" : "{}");
    strcat(list, "]");
    char *body = with_field(list);
    expect_error(body, REQ_BAD_FIELD, "attachments: at most 10 allowed");
    free(body);
}

static void test_attachment_budget(void **state)
{
    (void)state;
    /* "QUJD" decodes to 3 bytes: a budget of 2 must refuse it, 3 accept it */
    char *body = with_field("\"attachments\":[{\"filename\":\"a.txt\",\"content_type\":"
                            "\"text/plain\",\"content_base64\":\"QUJD\"}]");
    req_comm_t r;
    req_error_t e;
    assert_int_equal(req_parse(body, strlen(body), 2, &r, &e), -1);
    assert_int_equal(e.kind, REQ_BAD_FIELD);
    assert_non_null(strstr(e.message, "attachments: decoded size over the limit"));
    assert_int_equal(req_parse(body, strlen(body), 3, &r, &e), 0);
    assert_int_equal(r.attachments[0].len, 3);
    req_free(&r);
    free(body);
}

static void test_idempotency_key(void **state)
{
    (void)state;
    assert_true(req_idempotency_key_ok("plan-5b1d/welcome#1"));
    assert_false(req_idempotency_key_ok(""));
    assert_false(req_idempotency_key_ok(NULL));
    assert_false(req_idempotency_key_ok("tab\there"));
    assert_false(req_idempotency_key_ok("caf\xc3\xa9"));
    char k[202];
    memset(k, 'k', 201);
    k[201] = '\0';
    assert_false(req_idempotency_key_ok(k));
    k[200] = '\0';
    assert_true(req_idempotency_key_ok(k));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_body),        cmocka_unit_test(test_minimal_body_defaults),
        cmocka_unit_test(test_syntax_errors),     cmocka_unit_test(test_depth),
        cmocka_unit_test(test_long_array),        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_required_fields),   cmocka_unit_test(test_too_many_attachments),
        cmocka_unit_test(test_attachment_budget), cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_link_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
