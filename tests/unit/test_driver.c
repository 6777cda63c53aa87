/* The channel table and the driver table: names round-trip, unknown names
 * are refused, and each driver reads a few provider answers into the
 * neutral outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/ch.h"
#include "driver/driver.h"

#include <string.h>

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < CH_N; i++) {
        const char *name = ch_name((ch_id_t)i);
        assert_non_null(name);
        assert_true(strlen(name) <= CH_NAME_MAX);
        ch_id_t back = CH_N;
        assert_int_equal(ch_by_name(name, &back), 0);
        assert_int_equal(back, i);
        const drv_t *d = drv_by_name(name);
        assert_non_null(d);
        assert_ptr_equal(d, drv_get((ch_id_t)i));
        assert_int_equal(d->id, i);
        assert_non_null(d->provider);
        assert_non_null(d->prepare);
        assert_non_null(d->finish);
        assert_non_null(d->live);
        assert_non_null(d->available);
        assert_non_null(d->rate);
        assert_non_null(d->loop);
    }
    assert_string_equal(ch_name(CH_EMAIL), "email");
    assert_string_equal(ch_name(CH_SMS), "sms");
    assert_string_equal(ch_name(CH_WHATSAPP), "whatsapp");
}

static void test_unknown_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "Email", "SMS", "push", "whatsapp ", "e"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ch_id_t c = CH_SMS;
        assert_int_equal(ch_by_name(bad[i], &c), -1);
        assert_int_equal(c, CH_SMS); /* untouched */
        assert_null(drv_by_name(bad[i]));
    }
    ch_id_t c;
    assert_int_equal(ch_by_name(NULL, &c), -1);
    assert_null(drv_by_name(NULL));
    assert_null(ch_name(CH_N));
    assert_null(ch_name((ch_id_t)-1));
    assert_null(drv_get(CH_N));
}

static void test_contact_and_consent(void **state)
{
    (void)state;
    assert_int_equal(ch_contact(CH_EMAIL), CH_CONTACT_EMAIL);
    assert_int_equal(ch_contact(CH_SMS), CH_CONTACT_PHONE);
    assert_int_equal(ch_contact(CH_WHATSAPP), CH_CONTACT_PHONE);
    assert_int_equal(ch_needs_consent(CH_EMAIL), 0);
    assert_int_equal(ch_needs_consent(CH_SMS), 1);
    assert_int_equal(ch_needs_consent(CH_WHATSAPP), 1);
}

/* What the driver of c makes of an answer: a submitted call whose result
 * is res (body borrowed), read into out. */
static void finish_with(ch_id_t c, const char *note, tx_result_t res, outcome_t *out)
{
    call_t call;
    memset(&call, 0, sizeof call);
    call.submitted = 1;
    call.res = res;
    if (!call.res.body)
        call.res.body = "";
    call.res.body_len = strlen(call.res.body);
    snprintf(call.note, sizeof call.note, "%s", note);
    outcome_init(out);
    drv_get(c)->finish(&call, out);
}

static tx_result_t http(int status, const char *body)
{
    tx_result_t r;
    memset(&r, 0, sizeof r);
    r.err = TX_OK;
    r.status = status;
    r.body = body;
    return r;
}

static void test_email_answers(void **state)
{
    (void)state;
    outcome_t o;
    tx_result_t r;
    memset(&r, 0, sizeof r);
    r.err = TX_OK;
    r.status = 250;
    snprintf(r.text, sizeof r.text, "250 2.0.0 Ok: queued");
    finish_with(CH_EMAIL, "", r, &o);
    assert_int_equal(o.status, OUTCOME_SENT);
    assert_int_equal(o.code, 250);
    assert_int_equal(o.answered, 1);

    /* a permanent refusal, with the recipient masked in the error */
    r.status = 550;
    r.category = ERRC_PERMANENT;
    snprintf(r.enhanced, sizeof r.enhanced, "5.1.1");
    snprintf(r.text, sizeof r.text, "550 5.1.1 <someone@example.com> unknown");
    finish_with(CH_EMAIL, "", r, &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.category, ERRC_PERMANENT);
    assert_int_equal(o.answered, 1);
    assert_null(strstr(o.error, "someone@example.com"));
    assert_null(strstr(o.detail_json, "someone@example.com"));

    /* no reply at all is worth a retry, and is no answer */
    memset(&r, 0, sizeof r);
    r.err = TX_ERR_CURL;
    r.category = ERRC_TRANSIENT;
    snprintf(r.text, sizeof r.text, "Couldn't connect to server");
    finish_with(CH_EMAIL, "", r, &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.category, ERRC_TRANSIENT);
    assert_int_equal(o.answered, 0);
}

static void test_sms_answers(void **state)
{
    (void)state;
    outcome_t o;
    finish_with(CH_SMS, "",
                http(201, "{\"sid\":\"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"status\":\"queued\"}"),
                &o);
    assert_int_equal(o.status, OUTCOME_SENT);
    assert_string_equal(o.message_id, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(o.signal, OUTCOME_SIGNAL_NONE);

    finish_with(CH_SMS, "",
                http(400, "{\"code\":21610,\"message\":\"Attempt to send to unsubscribed "
                          "recipient\",\"status\":400}"),
                &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.code, 21610);
    assert_int_equal(o.signal, OUTCOME_SIGNAL_OPT_OUT);

    finish_with(CH_SMS, "",
                http(401, "{\"code\":20003,\"detail\":\"Bad credentials\",\"status\":401}"), &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.category, ERRC_AUTH_FAILURE);
    assert_int_equal(o.answered, 1);

    /* a call that never reached Twilio */
    tx_result_t r;
    memset(&r, 0, sizeof r);
    r.err = TX_ERR_CURL;
    finish_with(CH_SMS, "", r, &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.category, ERRC_TRANSIENT);
    assert_int_equal(o.answered, 0);
}

static void test_whatsapp_answers(void **state)
{
    (void)state;
    outcome_t o;
    finish_with(CH_WHATSAPP, "text",
                http(200, "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":"
                          "\"wamid.A1==\"}]}"),
                &o);
    assert_int_equal(o.status, OUTCOME_SENT);
    assert_string_equal(o.message_id, "wamid.A1==");

    static const char outside[] = "{\"error\":{\"code\":131047,\"title\":\"Re-engagement message\","
                                  "\"message\":\"Re-engagement message\"}}";
    /* free text outside the window: resend as a template */
    finish_with(CH_WHATSAPP, "text", http(400, outside), &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.code, 131047);
    assert_int_equal(o.signal, OUTCOME_SIGNAL_WINDOW_CLOSED);
    /* a template refused so is no loop */
    finish_with(CH_WHATSAPP, "template", http(400, outside), &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.signal, OUTCOME_SIGNAL_NONE);

    finish_with(CH_WHATSAPP, "template",
                http(400, "{\"error\":{\"code\":131050,\"message\":\"stopped\"}}"), &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.signal, OUTCOME_SIGNAL_OPT_OUT);

    finish_with(CH_WHATSAPP, "text",
                http(401, "{\"error\":{\"message\":\"Error validating access token\","
                          "\"type\":\"OAuthException\",\"code\":190}}"),
                &o);
    assert_int_equal(o.status, OUTCOME_FAILED);
    assert_int_equal(o.category, ERRC_AUTH_FAILURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),    cmocka_unit_test(test_unknown_refused),
        cmocka_unit_test(test_contact_and_consent), cmocka_unit_test(test_email_answers),
        cmocka_unit_test(test_sms_answers),         cmocka_unit_test(test_whatsapp_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
