/* twilio: the send request exactly as the provider reference shows it, the
 * error-code table row by row, Retry-After in both forms, and answers that
 * are malformed, oversized or quote a phone number. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/twilio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SID_X  "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define SID_UP "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"

static twilio_send_t reference_send(void)
{
    twilio_send_t s = {
        .account_sid = SID_X,
        .auth_token = "your_auth_token",
        .to = "+15558675310",
        .from = "+15017122661",
        .body = "Hello there",
        .status_callback = "https://hooks.example.com/twilio/status",
    };
    return s;
}

static void test_reference_request(void **state)
{
    (void)state;
    twilio_send_t s = reference_send();
    twilio_request_t r;
    char err[128] = "";
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    assert_string_equal(r.path, "/2010-04-01/Accounts/" SID_X "/Messages.json");
    assert_string_equal(r.form.data, "To=%2B15558675310&From=%2B15017122661&Body=Hello%20there&"
                                     "StatusCallback=https%3A%2F%2Fhooks.example.com%2Ftwilio%"
                                     "2Fstatus");
    /* the reference's Basic value for ACxxx…:your_auth_token */
    assert_string_equal(
        r.authorization.data,
        "Basic QUN4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eDp5b3VyX2F1dGhfdG9rZW4=");
    twilio_request_free(&r);

    /* the upper-case placeholder SID of the reference's request line */
    s.account_sid = SID_UP;
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    assert_string_equal(r.path, "/2010-04-01/Accounts/" SID_UP "/Messages.json");
    twilio_request_free(&r);
}

static void test_encoding_utf8_and_specials(void **state)
{
    (void)state;
    twilio_send_t s = reference_send();
    s.status_callback = NULL;
    s.body = "Caf\xc3\xa9 \xf0\x9f\x91\x8d a+b=c&d\n~_.-";
    twilio_request_t r;
    char err[128];
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    assert_string_equal(r.form.data, "To=%2B15558675310&From=%2B15017122661&"
                                     "Body=Caf%C3%A9%20%F0%9F%91%8D%20a%2Bb%3Dc%26d%0A~_.-");
    twilio_request_free(&r);

    /* WhatsApp through Twilio: the channel prefix is part of To */
    s.to = "whatsapp:+14155552671";
    s.body = "x";
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    assert_string_equal(r.form.data, "To=whatsapp%3A%2B14155552671&From=%2B15017122661&Body=x");
    twilio_request_free(&r);

    buf_t b;
    buf_init(&b, 8);
    assert_int_equal(twilio_form_escape(&b, "+1"), 0);
    assert_string_equal(b.data, "%2B1");
    /* past the ceiling the call fails rather than growing */
    assert_int_equal(twilio_form_escape(&b, "++"), -1);
    buf_free(&b);
}

static void test_service_api_key_validity(void **state)
{
    (void)state;
    twilio_send_t s = reference_send();
    s.from = NULL;
    s.messaging_service_sid = "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    s.status_callback = NULL;
    s.validity_period = 14400;
    s.auth_user = "SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    s.auth_token = "secret";
    twilio_request_t r;
    char err[128];
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    /* the API key authenticates; the account SID stays in the path */
    assert_string_equal(r.path, "/2010-04-01/Accounts/" SID_X "/Messages.json");
    assert_string_equal(r.form.data, "To=%2B15558675310&MessagingServiceSid="
                                     "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&Body=Hello%20there&"
                                     "ValidityPeriod=14400");
    /* base64("SKbbb…:secret") */
    assert_string_equal(r.authorization.data,
                        "Basic U0tiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYjpzZWNyZXQ=");
    twilio_request_free(&r);

    /* short code and alphanumeric sender IDs are valid From values */
    s.messaging_service_sid = NULL;
    s.from = "12345";
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    twilio_request_free(&r);
    s.from = "Planiva";
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    assert_non_null(strstr(r.form.data, "From=Planiva&"));
    twilio_request_free(&r);
}

static void expect_refused(twilio_send_t s, errc_t want, const char *needle)
{
    twilio_request_t r;
    char err[160] = "";
    errc_t got = twilio_build_send(&s, &r, err, sizeof err);
    twilio_request_free(&r);
    if (got != want)
        fail_msg("%s: got %s, want %s (%s)", needle, errc_name(got), errc_name(want), err);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_bad_requests(void **state)
{
    (void)state;
    twilio_send_t s = reference_send();
    s.to = "5551234567";
    expect_refused(s, ERRC_INVALID_INPUT, "To");
    s = reference_send();
    s.to = "+1555867531\r\n";
    expect_refused(s, ERRC_INVALID_INPUT, "To");
    s = reference_send();
    s.from = NULL;
    expect_refused(s, ERRC_INVALID_INPUT, "From");
    s = reference_send();
    s.from = "Not-An-Id!";
    expect_refused(s, ERRC_INVALID_INPUT, "From");
    s = reference_send();
    s.body = "";
    expect_refused(s, ERRC_INVALID_INPUT, "empty");
    s = reference_send();
    s.body = "bad \xc3\x28 utf8";
    expect_refused(s, ERRC_INVALID_INPUT, "UTF-8");
    s = reference_send();
    s.status_callback = "https://my_host.example.com/cb";
    expect_refused(s, ERRC_INVALID_INPUT, "StatusCallback");
    s = reference_send();
    s.status_callback = "ftp://hooks.example.com/cb";
    expect_refused(s, ERRC_INVALID_INPUT, "StatusCallback");
    s = reference_send();
    s.validity_period = 36001;
    expect_refused(s, ERRC_INVALID_INPUT, "ValidityPeriod");
    s = reference_send();
    s.account_sid = "AC123/../../x";
    expect_refused(s, ERRC_AUTH_FAILURE, "account SID");
    s = reference_send();
    s.auth_token = "";
    expect_refused(s, ERRC_AUTH_FAILURE, "auth token");
    s = reference_send();
    s.auth_token = "tok\nen";
    expect_refused(s, ERRC_AUTH_FAILURE, "auth token");

    /* 1600 characters pass even when each is a 4-byte emoji; 1601 do not */
    char *big = malloc(1601 * 4 + 1);
    assert_non_null(big);
    for (int i = 0; i < 1600; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x9c", 4);
    big[1600 * 4] = '\0';
    s = reference_send();
    s.body = big;
    twilio_request_t r;
    char err[128];
    assert_int_equal(twilio_build_send(&s, &r, err, sizeof err), ERRC_NONE);
    assert_int_equal(r.form.len, strlen("To=%2B15558675310&From=%2B15017122661&Body=") + 1600 * 12 +
                                     strlen("&StatusCallback=https%3A%2F%2Fhooks.example.com%"
                                            "2Ftwilio%2Fstatus"));
    twilio_request_free(&r);
    memcpy(big + 1600 * 4, "a", 2);
    expect_refused(s, ERRC_INVALID_INPUT, "1600");
    free(big);
}

/* ---- responses ------------------------------------------------------------ */

static const char REFERENCE_201[] =
    "{\"account_sid\": \"ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"api_version\": \"2010-04-01\","
    " \"body\": \"Hello! \\ud83d\\udc4d\", \"date_created\": \"Thu, 30 Jul 2015 20:12:31 +0000\","
    " \"date_sent\": \"Thu, 30 Jul 2015 20:12:33 +0000\", \"date_updated\": \"Thu, 30 Jul 2015 "
    "20:12:33 +0000\", \"direction\": \"outbound-api\", \"error_code\": null, \"error_message\": "
    "null, \"from\": \"+14155552345\", \"messaging_service_sid\": "
    "\"MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"num_media\": \"0\", \"num_segments\": \"1\", "
    "\"price\": null, \"price_unit\": null, \"sid\": \"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
    "\"status\": \"sent\", \"subresource_uris\": {\"media\": "
    "\"/2010-04-01/Accounts/AC/Messages/SM/Media.json\"}, \"to\": \"+14155552345\", \"uri\": "
    "\"/2010-04-01/Accounts/AC/Messages/SM.json\"}";

static void test_success(void **state)
{
    (void)state;
    twilio_result_t r;
    assert_int_equal(twilio_parse_response(201, REFERENCE_201, NULL, &r), 0);
    assert_int_equal(r.category, ERRC_NONE);
    assert_string_equal(r.sid, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(r.status, "sent");
    assert_int_equal(r.error_code, 0);

    assert_int_equal(twilio_parse_response(201,
                                           "{\"sid\":\"MM0123456789abcdef0123456789abcdef\","
                                           "\"status\":\"queued\"}",
                                           NULL, &r),
                     0);
    assert_string_equal(r.sid, "MM0123456789abcdef0123456789abcdef");
    assert_string_equal(r.status, "queued");
}

static void expect_error(int http, const char *body, const char *retry_after, errc_t want,
                         int want_code)
{
    twilio_result_t r;
    int rc = twilio_parse_response(http, body, retry_after, &r);
    if (rc != -1 || r.category != want || r.error_code != want_code)
        fail_msg("HTTP %d %.60s: rc %d, got %s/%d, want %s/%d (%s)", http, body ? body : "(null)",
                 rc, errc_name(r.category), r.error_code, errc_name(want), want_code, r.message);
    assert_string_equal(r.sid, "");
    assert_true(strlen(r.message) > 0);
}

/* Every row of the reference's classification table, on the path it
 * arrives by: sync codes as an API error, async ones as a callback's
 * ErrorCode (no HTTP status). */
static void test_error_table(void **state)
{
    (void)state;
    static const struct {
        int code, http;
        errc_t want;
    } rows[] = {
        {20003, 401, ERRC_AUTH_FAILURE},
        {20429, 429, ERRC_RATE_LIMIT},
        {21211, 400, ERRC_PERMANENT},
        {21612, 400, ERRC_PERMANENT},
        {21604, 400, ERRC_INVALID_INPUT},
        {21603, 400, ERRC_INVALID_INPUT},
        {21606, 400, ERRC_AUTH_FAILURE},
        {21608, 400, ERRC_AUTH_FAILURE},
        {21610, 400, ERRC_PERMANENT},
        {21614, 400, ERRC_PERMANENT},
        {21635, 400, ERRC_PERMANENT},
        {30001, 0, ERRC_TRANSIENT},
        {30002, 0, ERRC_AUTH_FAILURE},
        {30003, 0, ERRC_TRANSIENT},
        {30005, 0, ERRC_PERMANENT},
        {30006, 0, ERRC_PERMANENT},
        {30007, 0, ERRC_PERMANENT},
        {30008, 0, ERRC_TRANSIENT},
        {30450, 0, ERRC_TRANSIENT},
        /* rule of thumb for codes the table lacks */
        {20404, 404, ERRC_PERMANENT},
        {21999, 400, ERRC_PERMANENT},
        {30099, 0, ERRC_TRANSIENT},
        {20500, 500, ERRC_TRANSIENT},
        {0, 503, ERRC_TRANSIENT},
        {0, 429, ERRC_RATE_LIMIT},
        {0, 403, ERRC_AUTH_FAILURE},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        errc_t got = twilio_classify(rows[i].code, rows[i].http);
        if (got != rows[i].want)
            fail_msg("code %d (HTTP %d): got %s, want %s", rows[i].code, rows[i].http,
                     errc_name(got), errc_name(rows[i].want));
        if (rows[i].http == 0)
            continue;
        char body[256];
        snprintf(body, sizeof body,
                 "{\"code\": %d, \"message\": \"m\", \"more_info\": "
                 "\"https://www.twilio.com/docs/errors/%d\", \"status\": %d}",
                 rows[i].code, rows[i].code, rows[i].http);
        expect_error(rows[i].http, body, NULL, rows[i].want, rows[i].code);
    }
}

static void test_error_details(void **state)
{
    (void)state;
    twilio_result_t r;
    /* the reference's error body: the refused number must not survive */
    assert_int_equal(
        twilio_parse_response(400,
                              "{\"code\": 21211, \"message\": \"The 'To' number 5551234567 is not "
                              "a valid phone number.\", \"more_info\": "
                              "\"https://www.twilio.com/docs/errors/21211\", \"status\": 400}",
                              NULL, &r),
        -1);
    assert_int_equal(r.category, ERRC_PERMANENT);
    assert_string_equal(r.message,
                        "twilio 21211: The 'To' number *** is not a valid phone number.");
    assert_int_equal(r.opt_out, 0);
    assert_int_equal(r.retry_after, TWILIO_RATE_RETRY_NONE);

    assert_int_equal(twilio_parse_response(400,
                                           "{\"code\":21610,\"message\":\"Attempt to send to "
                                           "unsubscribed recipient\",\"status\":400}",
                                           NULL, &r),
                     -1);
    assert_int_equal(r.category, ERRC_PERMANENT);
    assert_int_equal(r.opt_out, 1);

    /* the RFC 9457 envelope of newer APIs */
    assert_int_equal(twilio_parse_response(401,
                                           "{\"type\":\"https://www.twilio.com/docs/errors/"
                                           "20003\",\"title\":\"Authenticate\",\"status\":401,"
                                           "\"code\":20003,\"detail\":\"Bad credentials\"}",
                                           NULL, &r),
                     -1);
    assert_int_equal(r.category, ERRC_AUTH_FAILURE);
    assert_string_equal(r.message, "twilio 20003: Bad credentials");

    /* a code given as a string of digits still counts */
    expect_error(400, "{\"code\":\"21211\",\"message\":\"x\"}", NULL, ERRC_PERMANENT, 21211);

    /* 30450 comes with its own wait */
    assert_int_equal(twilio_parse_response(400, "{\"code\":30450,\"message\":\"x\"}", NULL, &r),
                     -1);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_int_equal(r.retry_after, TWILIO_PUMPING_RETRY_SEC);
}

static void test_rate_limit_retry_after(void **state)
{
    (void)state;
    twilio_result_t r;
    const char *body = "{\"code\":20429,\"message\":\"Too Many Requests\",\"status\":429}";
    assert_int_equal(twilio_parse_response(429, body, "17", &r), -1);
    assert_int_equal(r.category, ERRC_RATE_LIMIT);
    assert_int_equal(r.retry_after, 17);
    assert_int_equal(twilio_parse_response(429, body, NULL, &r), -1);
    assert_int_equal(r.retry_after, TWILIO_RATE_RETRY_NONE);
    assert_int_equal(twilio_parse_response(429, body, "soon", &r), -1);
    assert_int_equal(r.retry_after, TWILIO_RATE_RETRY_NONE);
    /* a date far ahead is a long wait; no body at all still says 429 */
    assert_int_equal(twilio_parse_response(429, NULL, "Fri, 31 Dec 20xx", &r), -1);
    assert_int_equal(r.category, ERRC_RATE_LIMIT);
    assert_int_equal(r.retry_after, TWILIO_RATE_RETRY_NONE);
    assert_int_equal(twilio_parse_response(429, "", "Fri, 31 Dec 9999 23:59:59 GMT", &r), -1);
    assert_int_equal(r.category, ERRC_RATE_LIMIT);
    assert_true(r.retry_after > 365 * 24 * 3600);
    /* Retry-After only matters for rate limits */
    assert_int_equal(twilio_parse_response(503, "", "30", &r), -1);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_int_equal(r.retry_after, TWILIO_RATE_RETRY_NONE);
}

static void test_retry_after_forms(void **state)
{
    (void)state;
    /* 2015-10-21 07:27:00 UTC */
    time_t now = 1445412420;
    assert_int_equal(twilio_retry_after_seconds("120", now), 120);
    assert_int_equal(twilio_retry_after_seconds(" 0 ", now), 0);
    assert_int_equal(twilio_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now), 60);
    assert_int_equal(twilio_retry_after_seconds("Wednesday, 21-Oct-15 07:28:30 GMT", now), 90);
    assert_int_equal(twilio_retry_after_seconds("Wed Oct 21 07:29:00 2015", now), 120);
    assert_int_equal(twilio_retry_after_seconds("Wed, 21 Oct 2015 07:00:00 GMT", now), 0);
    assert_int_equal(twilio_retry_after_seconds("99999999999999999999", now), 2147483647);
    assert_int_equal(twilio_retry_after_seconds(NULL, now), -1);
    assert_int_equal(twilio_retry_after_seconds("", now), -1);
    assert_int_equal(twilio_retry_after_seconds("12s", now), -1);
    assert_int_equal(twilio_retry_after_seconds("-5", now), -1);
    assert_int_equal(twilio_retry_after_seconds("Wed, 21 Foo 2015 07:28:00 GMT", now), -1);
    assert_int_equal(twilio_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT junk", now), -1);
}

static void test_malformed_and_oversized(void **state)
{
    (void)state;
    twilio_result_t r;
    /* accepted, but no way to know the SID */
    expect_error(201, "{\"sid\": 5}", NULL, ERRC_TRANSIENT, 0);
    expect_error(201, "{\"status\":\"queued\"}", NULL, ERRC_TRANSIENT, 0);
    expect_error(201, "{\"sid\":\"SM1\n2\"}", NULL, ERRC_TRANSIENT, 0);
    expect_error(201, "{\"sid\":", NULL, ERRC_TRANSIENT, 0);
    expect_error(201, "[1,2]", NULL, ERRC_TRANSIENT, 0);
    expect_error(201, NULL, NULL, ERRC_TRANSIENT, 0);
    assert_int_equal(twilio_parse_response(201, "not json", NULL, &r), -1);
    assert_non_null(strstr(r.message, "malformed JSON"));
    /* a proxy's page: the status still says what is known */
    expect_error(502, "<html>Bad Gateway</html>", NULL, ERRC_TRANSIENT, 0);
    expect_error(401, "<html>no</html>", NULL, ERRC_AUTH_FAILURE, 0);
    expect_error(400, "<html>?</html>", NULL, ERRC_TRANSIENT, 0);

    size_t n = TWILIO_RESPONSE_MAX + 10;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"sid\":\"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", 42);
    big[n] = '\0';
    assert_int_equal(twilio_parse_response(201, big, NULL, &r), -1);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_non_null(strstr(r.message, "over"));
    free(big);

    /* a long provider message is cut, not overflowed, and stays valid UTF-8 */
    char body[1200];
    int o = snprintf(body, sizeof body, "{\"code\":21211,\"message\":\"");
    for (int i = 0; i < 300; i++)
        o += snprintf(body + o, sizeof body - (size_t)o, "\xc3\xa9");
    snprintf(body + o, sizeof body - (size_t)o, "\"}");
    assert_int_equal(twilio_parse_response(400, body, NULL, &r), -1);
    size_t len = strlen(r.message);
    assert_true(len < sizeof r.message);
    assert_int_equal((unsigned char)r.message[len - 1], 0xa9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_request),
        cmocka_unit_test(test_encoding_utf8_and_specials),
        cmocka_unit_test(test_service_api_key_validity),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_error_details),
        cmocka_unit_test(test_rate_limit_retry_after),
        cmocka_unit_test(test_retry_after_forms),
        cmocka_unit_test(test_malformed_and_oversized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
