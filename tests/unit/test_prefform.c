/* prefform: the preference page's form into the store's change; what it
 * refuses names the field and changes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/ch.h"
#include "request/prefform.h"

#include <stdio.h>
#include <string.h>

#define TOK "AWaguUZ4OtBNqqGDGdd6ba6WAAAAAAAAUTY91o3-6tmfkClonWoT4k9z"

static const prefform_ctx_t all = {
    .shown = CH_BIT(CH_EMAIL) | CH_BIT(CH_SMS) | CH_BIT(CH_WHATSAPP),
    .preferred_json = "[\"whatsapp\", \"email\"]",
};
static const prefform_ctx_t email_only = {.shown = CH_BIT(CH_EMAIL),
                                          .preferred_json = "[\"email\"]"};

static int parse(const char *body, const prefform_ctx_t *ctx, prefform_t *out, req_error_t *e)
{
    return prefform_parse(body, strlen(body), ctx, out, e);
}

static void test_the_page_form(void **state)
{
    (void)state;
    prefform_t f;
    req_error_t e;
    assert_int_equal(parse("form_token=" TOK "&preferred_channel=sms&quiet=hours"
                           "&quiet_start=23%3A00&quiet_end=07%3A00&opt_out_whatsapp=1",
                           &all, &f, &e),
                     0);
    assert_string_equal(f.form_token, TOK);
    assert_int_equal(f.unsubscribe_email, 0);
    /* chosen first, the client's others after it in their order */
    assert_string_equal(f.change.preferred_json, "[\"sms\",\"whatsapp\",\"email\"]");
    assert_int_equal(f.change.quiet_given, 1);
    assert_string_equal(f.change.quiet_start, "23:00");
    assert_string_equal(f.change.quiet_end, "07:00");
    /* a box of a shown channel not sent is a box not ticked */
    assert_int_equal(f.change.opt_out[CH_EMAIL], 0);
    assert_int_equal(f.change.opt_out[CH_SMS], 0);
    assert_int_equal(f.change.opt_out[CH_WHATSAPP], 1);
    assert_null(f.change.timezone);

    /* no quiet hours: the times are not read */
    assert_int_equal(
        parse("form_token=" TOK "&action=save&quiet=none&quiet_start=&quiet_end=x", &all, &f, &e),
        0);
    assert_int_equal(f.change.quiet_given, 1);
    assert_string_equal(f.change.quiet_start, "");
    assert_string_equal(f.change.quiet_end, "");
    assert_null(f.change.preferred_json); /* no radio: unchanged */

    /* an email-only client: the phone's channels are left as they are */
    assert_int_equal(parse("form_token=" TOK "&preferred_channel=email", &email_only, &f, &e), 0);
    assert_string_equal(f.change.preferred_json, "[\"email\"]");
    assert_int_equal(f.change.opt_out[CH_EMAIL], 0);
    assert_int_equal(f.change.opt_out[CH_SMS], -1);
    assert_int_equal(f.change.opt_out[CH_WHATSAPP], -1);
    assert_int_equal(f.change.quiet_given, 0);
}

static void test_unsubscribe_button(void **state)
{
    (void)state;
    prefform_t f;
    req_error_t e;
    assert_int_equal(parse("form_token=" TOK "&action=unsubscribe_email", &all, &f, &e), 0);
    assert_int_equal(f.unsubscribe_email, 1);
    assert_int_equal(f.change.opt_out[CH_EMAIL], 1);
    assert_int_equal(f.change.opt_out[CH_SMS], -1);
    assert_int_equal(f.change.opt_out[CH_WHATSAPP], -1);
    assert_null(f.change.preferred_json);
    assert_int_equal(f.change.quiet_given, 0);
}

static void expect_refused(const char *body, const prefform_ctx_t *ctx, const char *field)
{
    prefform_t f;
    req_error_t e;
    memset(&e, 0, sizeof e);
    int rc = parse(body, ctx, &f, &e);
    if (rc == 0 || !strstr(e.message, field))
        fprintf(stderr, "%s: %d %s\n", body, rc, e.message);
    assert_int_equal(rc, -1);
    assert_int_equal(e.kind, REQ_BAD_FIELD);
    assert_non_null(strstr(e.message, field));
    /* nothing half-filled is left to apply */
    assert_null(f.change.preferred_json);
    assert_int_equal(f.change.quiet_given, 0);
    assert_string_equal(f.form_token, "");
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("", &all, "form_token");
    expect_refused("quiet=none", &all, "form_token");
    expect_refused("form_token=", &all, "form_token");
    expect_refused("form_token=" TOK TOK, &all, "form_token");
    expect_refused("form_token=" TOK "&form_token=" TOK, &all, "given twice");
    expect_refused("form_token=" TOK "&quiet=none&quiet=hours", &all, "given twice");
    expect_refused("form_token=" TOK "&colour=blue", &all, "colour");
    expect_refused("form_token=" TOK "&preferred_channel=pigeon", &all, "preferred_channel");
    expect_refused("form_token=" TOK "&preferred_channel=sms", &email_only, "preferred_channel");
    expect_refused("form_token=" TOK "&quiet=sometimes", &all, "quiet");
    expect_refused("form_token=" TOK "&quiet=hours&quiet_end=07:00", &all, "quiet_start");
    expect_refused("form_token=" TOK "&quiet=hours&quiet_start=24:00&quiet_end=07:00", &all,
                   "quiet_start");
    expect_refused("form_token=" TOK "&quiet=hours&quiet_start=7:00&quiet_end=07:00", &all,
                   "quiet_start");
    expect_refused("form_token=" TOK "&quiet=hours&quiet_start=23:00&quiet_end=07:60", &all,
                   "quiet_end");
    expect_refused("form_token=" TOK "&quiet=hours&quiet_start=07:00&quiet_end=07:00", &all,
                   "quiet_end");
    expect_refused("form_token=" TOK "&opt_out_email=yes", &all, "opt_out_email");
    expect_refused("form_token=" TOK "&opt_out_sms=1", &email_only, "opt_out_sms");
    expect_refused("form_token=" TOK "&action=delete", &all, "action");
    expect_refused("form_token=" TOK "&action=unsubscribe_email&opt_out_sms=1", &all, "action");
    expect_refused("form_token=" TOK "&action=unsubscribe_email",
                   &(prefform_ctx_t){.shown = CH_BIT(CH_SMS), .preferred_json = "[]"}, "action");
    expect_refused("form_token=" TOK "&quiet=%ZZ", &all, "body");
    expect_refused("form_token=" TOK "&quiet=%00", &all, "body");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_page_form),
        cmocka_unit_test(test_unsubscribe_button),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
