/* whatsapp: text and template bodies exactly as the provider reference shows
 * them, the path and bearer header, the error-code table row by row, and
 * answers that are malformed, oversized or quote a phone number. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/whatsapp.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_reference_text(void **state)
{
    (void)state;
    static const char want[] =
        "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\","
        "\"to\":\"16505076520\",\"type\":\"text\","
        "\"text\":{\"preview_url\":false,\"body\":\"Your order shipped.\"}}";
    buf_t b;
    char err[128] = "";
    buf_init(&b, WA_BODY_MAX);
    assert_int_equal(wa_build_text(&b, "16505076520", "Your order shipped.", NULL, err, sizeof err),
                     ERRC_NONE);
    assert_string_equal(b.data, want);
    /* the E.164 form gives the same wa_id: Meta's examples carry no "+" */
    buf_reset(&b);
    assert_int_equal(wa_build_text(&b, "+16505076520", "Your order shipped.", "", err, sizeof err),
                     ERRC_NONE);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_text_escaping(void **state)
{
    (void)state;
    const char *text = "Caf\xc3\xa9 \xf0\x9f\x8e\x89 \"quoted\" back\\slash\nline\ttab";
    buf_t b;
    char err[128] = "";
    buf_init(&b, WA_BODY_MAX);
    assert_int_equal(wa_build_text(&b, "+919812345678", text, "comm-42", err, sizeof err),
                     ERRC_NONE);
    /* UTF-8 goes through as is; JSON's specials are escaped */
    assert_string_equal(b.data,
                        "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\","
                        "\"to\":\"919812345678\",\"type\":\"text\",\"text\":{\"preview_url\":"
                        "false,\"body\":\"Caf\xc3\xa9 \xf0\x9f\x8e\x89 \\\"quoted\\\" "
                        "back\\\\slash\\nline\\ttab\"},\"biz_opaque_callback_data\":\"comm-42\"}");
    /* and a JSON parser gets the exact text back */
    cJSON *root = cJSON_Parse(b.data);
    assert_non_null(root);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "body")->valuestring, text);
    cJSON_Delete(root);
    buf_free(&b);
}

/* Reply buttons and lists as Meta's interactive reference shapes them. */
static void test_choices(void **state)
{
    (void)state;
    buf_t b;
    char err[160] = "";
    buf_init(&b, WA_BODY_MAX);
    const wa_choice_t two[] = {{"tok-1", "Lakeside classic"}, {"tok-2", "Modern courtyard"}};
    assert_int_equal(
        wa_build_choices(&b, "+16505076520", "Which one?", two, 2, "c-1", err, sizeof err),
        ERRC_NONE);
    assert_string_equal(
        b.data, "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\","
                "\"to\":\"16505076520\",\"type\":\"interactive\",\"interactive\":{\"body\":"
                "{\"text\":\"Which one?\"},\"action\":{\"buttons\":[{\"reply\":{\"id\":\"tok-1\","
                "\"title\":\"Lakeside classic\"},\"type\":\"reply\"},{\"reply\":{\"id\":"
                "\"tok-2\",\"title\":\"Modern courtyard\"},\"type\":\"reply\"}]},\"type\":"
                "\"button\"},\"biz_opaque_callback_data\":\"c-1\"}");

    /* past three: a list; titles cut to 24 characters (UTF-8 aware) */
    buf_reset(&b);
    const wa_choice_t four[] = {
        {"a", "One"},
        {"b", "Two"},
        {"c", "Three"},
        {"d", "\xc3\xa9tage \xc3\xa9l\xc3\xa9gant au bord du lac sacr\xc3\xa9"}};
    assert_int_equal(wa_build_choices(&b, "16505076520", "Pick", four, 4, NULL, err, sizeof err),
                     ERRC_NONE);
    assert_non_null(strstr(b.data, "\"type\":\"list\""));
    assert_non_null(strstr(b.data, "\"button\":\"Choose\""));
    assert_non_null(strstr(b.data,
                           "{\"id\":\"d\",\"title\":\"\xc3\xa9tage \xc3\xa9l\xc3\xa9gant au bord "
                           "d\xe2\x80\xa6\"}"));
    /* a button title over 20 characters ends in an ellipsis */
    buf_reset(&b);
    const wa_choice_t long_one[] = {{"x", "A very long vendor combination name"}};
    assert_int_equal(
        wa_build_choices(&b, "16505076520", "Pick", long_one, 1, NULL, err, sizeof err), ERRC_NONE);
    assert_non_null(strstr(b.data, "\"title\":\"A very long vendor \xe2\x80\xa6\""));

    /* refused: none, too many, an empty id, a body over 1024 characters */
    wa_choice_t many[11];
    for (int i = 0; i < 11; i++)
        many[i] = (wa_choice_t){"id", "t"};
    assert_int_equal(wa_build_choices(&b, "16505076520", "Pick", two, 0, NULL, err, sizeof err),
                     ERRC_INVALID_INPUT);
    assert_int_equal(wa_build_choices(&b, "16505076520", "Pick", many, 11, NULL, err, sizeof err),
                     ERRC_INVALID_INPUT);
    const wa_choice_t no_id[] = {{"", "t"}};
    assert_int_equal(wa_build_choices(&b, "16505076520", "Pick", no_id, 1, NULL, err, sizeof err),
                     ERRC_INVALID_INPUT);
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(wa_build_choices(&b, "16505076520", big, two, 2, NULL, err, sizeof err),
                     ERRC_INVALID_INPUT);

    /* a template's quick replies carry the payloads, one button component each */
    buf_reset(&b);
    const char *payloads[] = {"tok-1", "tok-2"};
    assert_int_equal(wa_build_template(&b, "16505076520", "hello_world", "en", NULL, 0, payloads, 2,
                                       NULL, err, sizeof err),
                     ERRC_NONE);
    assert_non_null(strstr(b.data, "\"components\":[{\"parameters\":[{\"type\":\"payload\","
                                   "\"payload\":\"tok-1\"}],\"type\":\"button\",\"sub_type\":"
                                   "\"quick_reply\",\"index\":\"0\"},"));
    assert_non_null(strstr(b.data, "\"payload\":\"tok-2\"}],\"type\":\"button\",\"sub_type\":"
                                   "\"quick_reply\",\"index\":\"1\"}]"));
    const char *empty[] = {""};
    assert_int_equal(wa_build_template(&b, "16505076520", "hello_world", "en", NULL, 0, empty, 1,
                                       NULL, err, sizeof err),
                     ERRC_INVALID_INPUT);
    buf_free(&b);
}

static void test_reference_template(void **state)
{
    (void)state;
    static const char want[] =
        "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\","
        "\"to\":\"16505076520\",\"type\":\"template\",\"template\":{\"name\":\"order_update\","
        "\"language\":{\"policy\":\"deterministic\",\"code\":\"en_US\"},"
        "\"components\":[{\"type\":\"body\",\"parameters\":[{\"type\":\"text\",\"text\":"
        "\"A-1042\"},{\"type\":\"text\",\"text\":\"Tuesday\"}]}]}}";
    const char *params[] = {"A-1042", "Tuesday"};
    buf_t b;
    char err[128] = "";
    buf_init(&b, WA_BODY_MAX);
    assert_int_equal(wa_build_template(&b, "16505076520", "order_update", "en_US", params, 2, NULL,
                                       0, NULL, err, sizeof err),
                     ERRC_NONE);
    assert_string_equal(b.data, want);

    /* no variables: no components; callback data last */
    buf_reset(&b);
    assert_int_equal(wa_build_template(&b, "+16505076520", "hello_world", "en", NULL, 0, NULL, 0,
                                       "c-1", err, sizeof err),
                     ERRC_NONE);
    assert_string_equal(b.data,
                        "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\","
                        "\"to\":\"16505076520\",\"type\":\"template\",\"template\":{\"name\":"
                        "\"hello_world\",\"language\":{\"policy\":\"deterministic\",\"code\":"
                        "\"en\"}},\"biz_opaque_callback_data\":\"c-1\"}");

    /* parameters are escaped like any text */
    buf_reset(&b);
    const char *odd[] = {"\xf0\x9f\x92\x8d \"Asha\"", "line\nbreak"};
    assert_int_equal(wa_build_template(&b, "16505076520", "vendor_options", "pt_BR", odd, 2, NULL,
                                       0, NULL, err, sizeof err),
                     ERRC_NONE);
    assert_non_null(strstr(b.data, "{\"type\":\"text\",\"text\":\"\xf0\x9f\x92\x8d \\\"Asha\\\"\"},"
                                   "{\"type\":\"text\",\"text\":\"line\\nbreak\"}"));
    buf_free(&b);
}

static void expect_refused_text(const char *to, const char *text, const char *cb,
                                const char *needle)
{
    buf_t b;
    char err[160] = "";
    buf_init(&b, WA_BODY_MAX);
    errc_t got = wa_build_text(&b, to, text, cb, err, sizeof err);
    if (got != ERRC_INVALID_INPUT || b.len != 0)
        fail_msg("%s: got %s, %zu bytes written", needle, errc_name(got), b.len);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    buf_free(&b);
}

static void expect_refused_template(const char *name, const char *lang, const char *const *params,
                                    size_t n, const char *needle)
{
    buf_t b;
    char err[160] = "";
    buf_init(&b, WA_BODY_MAX);
    errc_t got =
        wa_build_template(&b, "16505076520", name, lang, params, n, NULL, 0, NULL, err, sizeof err);
    if (got != ERRC_INVALID_INPUT || b.len != 0)
        fail_msg("%s: got %s, %zu bytes written", needle, errc_name(got), b.len);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    buf_free(&b);
}

static void test_bad_bodies(void **state)
{
    (void)state;
    expect_refused_text("", "x", NULL, "recipient");
    expect_refused_text(NULL, "x", NULL, "recipient");
    expect_refused_text("0123456789", "x", NULL, "recipient");
    expect_refused_text("+1650507652\"", "x", NULL, "recipient");
    expect_refused_text("+1234567890123456", "x", NULL, "recipient");
    expect_refused_text("16505076520", "", NULL, "text");
    expect_refused_text("16505076520", NULL, NULL, "text");
    expect_refused_text("16505076520", "bad \xff byte", NULL, "text");
    expect_refused_text("16505076520", "ok", "bad \xc3", "biz_opaque");

    /* 4096 characters pass even as 4-byte emoji; 4097 do not */
    char *big = malloc(4097 * 4 + 1);
    assert_non_null(big);
    for (int i = 0; i < 4096; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x9c", 4);
    big[4096 * 4] = '\0';
    buf_t b;
    char err[128];
    buf_init(&b, WA_BODY_MAX);
    assert_int_equal(wa_build_text(&b, "16505076520", big, NULL, err, sizeof err), ERRC_NONE);
    buf_free(&b);
    memcpy(big + 4096 * 4, "a", 2);
    expect_refused_text("16505076520", big, NULL, "4096");
    free(big);

    const char *p1[] = {"x"};
    expect_refused_template("Order_Update", "en_US", p1, 1, "name");
    expect_refused_template("order-update", "en_US", p1, 1, "name");
    expect_refused_template("", "en_US", p1, 1, "name");
    expect_refused_template("order_update", "e", p1, 1, "language");
    expect_refused_template("order_update", "en-US\"", p1, 1, "language");
    expect_refused_template("order_update", NULL, p1, 1, "language");
    const char *empty[] = {"ok", ""};
    expect_refused_template("order_update", "en_US", empty, 2, "parameter 2");
    expect_refused_template("order_update", "en_US", NULL, 1, "parameters");
    const char *many[WA_TEMPLATE_MAX_PARAMS + 1];
    for (size_t i = 0; i <= WA_TEMPLATE_MAX_PARAMS; i++)
        many[i] = "v";
    expect_refused_template("order_update", "en_US", many, WA_TEMPLATE_MAX_PARAMS + 1,
                            "parameters");
}

static void test_path_and_auth(void **state)
{
    (void)state;
    char path[96], err[128];
    assert_int_equal(
        wa_messages_path("v21.0", "277321005464405", path, sizeof path, err, sizeof err), 0);
    assert_string_equal(path, "/v21.0/277321005464405/messages");
    assert_int_equal(
        wa_messages_path("21.0", "277321005464405", path, sizeof path, err, sizeof err), -1);
    assert_int_equal(wa_messages_path("v21.0/..", "1", path, sizeof path, err, sizeof err), -1);
    assert_int_equal(wa_messages_path("v21.0", "12/../34", path, sizeof path, err, sizeof err), -1);
    assert_int_equal(wa_messages_path("v21.0", "", path, sizeof path, err, sizeof err), -1);
    assert_int_equal(wa_messages_path("v21.0", "277321005464405", path, 20, err, sizeof err), -1);

    buf_t b;
    buf_init(&b, 1024);
    assert_int_equal(wa_authorization(&b, "EAAG1234abcd"), 0);
    assert_string_equal(b.data, "Bearer EAAG1234abcd");
    buf_reset(&b);
    assert_int_equal(wa_authorization(&b, "EAAG\r\nX-Evil: 1"), -1);
    assert_int_equal(wa_authorization(&b, ""), -1);
    assert_int_equal(wa_authorization(&b, NULL), -1);
    buf_free(&b);
}

/* ---- responses ------------------------------------------------------------ */

static void test_success(void **state)
{
    (void)state;
    wa_result_t r;
    assert_int_equal(
        wa_parse_response(200,
                          "{ \"messaging_product\": \"whatsapp\", \"contacts\": [ { \"input\": "
                          "\"16505076520\", \"wa_id\": \"16505076520\" } ], \"messages\": [ { "
                          "\"id\": \"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA\" "
                          "} ] }",
                          &r),
        0);
    assert_int_equal(r.category, ERRC_NONE);
    assert_string_equal(r.wamid, "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA");
    assert_string_equal(r.message_status, "");

    assert_int_equal(wa_parse_response(200,
                                       "{\"messaging_product\":\"whatsapp\",\"messages\":[{"
                                       "\"id\":\"wamid.A1==\",\"message_status\":"
                                       "\"held_for_quality_assessment\"}]}",
                                       &r),
                     0);
    assert_string_equal(r.wamid, "wamid.A1==");
    assert_string_equal(r.message_status, "held_for_quality_assessment");
}

static void expect_error(int http, const char *body, errc_t want, int want_code)
{
    wa_result_t r;
    int rc = wa_parse_response(http, body, &r);
    if (rc != -1 || r.category != want || r.error_code != want_code)
        fail_msg("HTTP %d %.70s: rc %d, got %s/%d, want %s/%d (%s)", http, body ? body : "(null)",
                 rc, errc_name(r.category), r.error_code, errc_name(want), want_code, r.message);
    assert_string_equal(r.wamid, "");
    assert_true(strlen(r.message) > 0);
}

/* Every code of the reference's table, in the sync envelope (HTTP 400, so
 * the code and not the status decides) and bare as a webhook error. */
static void test_error_table(void **state)
{
    (void)state;
    static const struct {
        int code;
        errc_t want;
    } rows[] = {
        {0, ERRC_AUTH_FAILURE},       {190, ERRC_AUTH_FAILURE},     {3, ERRC_AUTH_FAILURE},
        {10, ERRC_AUTH_FAILURE},      {200, ERRC_AUTH_FAILURE},     {250, ERRC_AUTH_FAILURE},
        {299, ERRC_AUTH_FAILURE},     {4, ERRC_RATE_LIMIT},         {80007, ERRC_RATE_LIMIT},
        {130429, ERRC_RATE_LIMIT},    {131056, ERRC_RATE_LIMIT},    {131048, ERRC_RATE_LIMIT},
        {131049, ERRC_TRANSIENT},     {131047, ERRC_PERMANENT},     {131026, ERRC_PERMANENT},
        {131050, ERRC_PERMANENT},     {130472, ERRC_PERMANENT},     {131051, ERRC_INVALID_INPUT},
        {131052, ERRC_INVALID_INPUT}, {131053, ERRC_INVALID_INPUT}, {131008, ERRC_INVALID_INPUT},
        {131009, ERRC_INVALID_INPUT}, {132000, ERRC_INVALID_INPUT}, {132001, ERRC_PERMANENT},
        {132015, ERRC_PERMANENT},     {132016, ERRC_PERMANENT},     {131000, ERRC_TRANSIENT},
        {131016, ERRC_TRANSIENT},     {1, ERRC_TRANSIENT},          {2, ERRC_TRANSIENT},
        {131057, ERRC_TRANSIENT},     {368, ERRC_AUTH_FAILURE},     {131031, ERRC_AUTH_FAILURE},
        {130497, ERRC_AUTH_FAILURE},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        errc_t got = wa_classify(rows[i].code, -1, 0);
        if (got != rows[i].want)
            fail_msg("code %d: got %s, want %s", rows[i].code, errc_name(got),
                     errc_name(rows[i].want));
        char body[320];
        snprintf(body, sizeof body,
                 "{\"error\":{\"message\":\"m\",\"type\":\"OAuthException\",\"code\":%d,"
                 "\"error_data\":{\"messaging_product\":\"whatsapp\",\"details\":\"d\"},"
                 "\"fbtrace_id\":\"AbC\"}}",
                 rows[i].code);
        expect_error(400, body, rows[i].want, rows[i].code);
    }
    /* codes the table lacks: is_transient, then the HTTP status */
    assert_int_equal(wa_classify(999999, 1, 400), ERRC_TRANSIENT);
    assert_int_equal(wa_classify(999999, -1, 400), ERRC_PERMANENT);
    assert_int_equal(wa_classify(999999, -1, 429), ERRC_RATE_LIMIT);
    assert_int_equal(wa_classify(999999, -1, 503), ERRC_TRANSIENT);
    assert_int_equal(wa_classify(999999, -1, 401), ERRC_AUTH_FAILURE);
    assert_int_equal(wa_classify(999999, 0, 0), ERRC_TRANSIENT);
    /* a known code wins over the status and the flag */
    assert_int_equal(wa_classify(131026, 1, 500), ERRC_PERMANENT);
}

static void test_error_details(void **state)
{
    (void)state;
    wa_result_t r;
    /* the reference's expired-token error */
    assert_int_equal(wa_parse_response(401,
                                       "{\"error\":{\"message\": \"Error validating access token: "
                                       "Session has expired on Tuesday, 29-Oct-24 12:00:00 "
                                       "PDT.\", \"type\": \"OAuthException\", \"code\": 190, "
                                       "\"error_subcode\": 463, \"fbtrace_id\": "
                                       "\"ACEyrTehk6IAd0lm05Ixogh\"}}",
                                       &r),
                     -1);
    assert_int_equal(r.category, ERRC_AUTH_FAILURE);
    assert_int_equal(r.error_code, 190);
    assert_non_null(strstr(r.message, "whatsapp 190: Error validating access token"));

    /* the reference's 131047 object, as a sync error */
    assert_int_equal(
        wa_parse_response(400,
                          "{\"error\":{\"code\": 131047, \"title\": \"Re-engagement message\", "
                          "\"message\": \"Re-engagement message\", \"error_data\": {\"details\": "
                          "\"Message failed to send because more than 24 hours have passed since "
                          "the customer last replied to this number.\"}, \"href\": \"x\"}}",
                          &r),
        -1);
    assert_int_equal(r.category, ERRC_PERMANENT);
    assert_int_equal(r.outside_window, 1);
    assert_int_equal(r.opt_out, 0);
    assert_non_null(strstr(r.message, "Re-engagement message: Message failed to send because"));

    expect_error(400, "{\"error\":{\"code\":131050,\"message\":\"stopped\"}}", ERRC_PERMANENT,
                 131050);
    wa_parse_response(400, "{\"error\":{\"code\":131050,\"message\":\"stopped\"}}", &r);
    assert_int_equal(r.opt_out, 1);
    wa_parse_response(400, "{\"error\":{\"code\":131056,\"message\":\"pair\"}}", &r);
    assert_int_equal(r.retry_after, WA_PAIR_RETRY_SEC);
    wa_parse_response(400, "{\"error\":{\"code\":131049,\"message\":\"eco\"}}", &r);
    assert_int_equal(r.retry_after, WA_ENGAGEMENT_RETRY_SEC);
    wa_parse_response(400, "{\"error\":{\"code\":130429,\"message\":\"tput\"}}", &r);
    assert_int_equal(r.retry_after, -1);

    /* a recipient quoted in a message is masked */
    wa_parse_response(400,
                      "{\"error\":{\"code\":131026,\"message\":\"Recipient 16505076520 is not a "
                      "WhatsApp user\"}}",
                      &r);
    assert_string_equal(r.message, "whatsapp 131026: Recipient *** is not a WhatsApp user");

    /* is_transient on an unknown code */
    expect_error(400, "{\"error\":{\"code\":777,\"message\":\"x\",\"is_transient\":true}}",
                 ERRC_TRANSIENT, 777);
}

static void test_malformed_and_oversized(void **state)
{
    (void)state;
    expect_error(200, "{\"messaging_product\":\"whatsapp\"}", ERRC_TRANSIENT, 0);
    expect_error(200, "{\"messages\":[]}", ERRC_TRANSIENT, 0);
    expect_error(200, "{\"messages\":[{\"id\":7}]}", ERRC_TRANSIENT, 0);
    expect_error(200, "{\"messages\":[{\"id\":\"wamid.<script>\"}]}", ERRC_TRANSIENT, 0);
    expect_error(200, "{\"messages\":", ERRC_TRANSIENT, 0);
    expect_error(200, NULL, ERRC_TRANSIENT, 0);
    expect_error(200, "", ERRC_TRANSIENT, 0);
    expect_error(400, "{\"error\":\"nope\"}", ERRC_TRANSIENT, 0);
    expect_error(400, "{\"error\":{\"message\":\"no code\"}}", ERRC_PERMANENT, 0);
    expect_error(502, "<html>Bad Gateway</html>", ERRC_TRANSIENT, 0);
    expect_error(401, "<html>no</html>", ERRC_AUTH_FAILURE, 0);
    expect_error(429, "", ERRC_RATE_LIMIT, 0);
    expect_error(404, "Not Found", ERRC_TRANSIENT, 0);

    wa_result_t r;
    assert_int_equal(wa_parse_response(200, "[", &r), -1);
    assert_non_null(strstr(r.message, "malformed JSON"));

    size_t n = WA_RESPONSE_MAX + 10;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"messages\":[{\"id\":\"wamid.A\"}]}", 31);
    big[n] = '\0';
    assert_int_equal(wa_parse_response(200, big, &r), -1);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_non_null(strstr(r.message, "over"));
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_text),
        cmocka_unit_test(test_text_escaping),
        cmocka_unit_test(test_reference_template),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_path_and_auth),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_error_details),
        cmocka_unit_test(test_malformed_and_oversized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
