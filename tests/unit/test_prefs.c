/* The preference cache's text (engine/prefs.c) and the preferences body
 * (request/prefbody.c): what goes into Redis comes back the same, anything
 * else is refused; a body is taken only when every field keeps its rule. */
#include "engine/prefs.h"
#include "request/prefbody.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_round_trip(void **state)
{
    (void)state;
    store_client_facts_t f = {
        .found = 1,
        .has_email = 1,
        .has_phone = 0,
        .timezone = "America/Sao_Paulo",
        .consent = {[CH_EMAIL] = 0, [CH_SMS] = 1, [CH_WHATSAPP] = 1},
        .preferred_channels_json = "[\"whatsapp\", \"email\"]",
        .quiet_start = "23:00",
        .quiet_end = "07:00",
        .opt_out = {[CH_EMAIL] = 1},
        .email_suppressed = 1,
        .last_contact_at = 123,
        .prefs_version = 9000000001LL,
    };
    char *text = prefs_encode(&f);
    assert_non_null(text);
    store_client_facts_t g;
    memset(&g, 0, sizeof g);
    g.last_contact_at = 456; /* the activity is not the cache's */
    assert_int_equal(prefs_decode(text, &g), 0);
    assert_int_equal(g.has_email, 1);
    assert_int_equal(g.has_phone, 0);
    assert_string_equal(g.timezone, "America/Sao_Paulo");
    assert_memory_equal(g.consent, f.consent, sizeof f.consent);
    assert_memory_equal(g.opt_out, f.opt_out, sizeof f.opt_out);
    assert_int_equal(g.email_suppressed, 1);
    assert_string_equal(g.preferred_channels_json, f.preferred_channels_json);
    assert_string_equal(g.quiet_start, "23:00");
    assert_string_equal(g.quiet_end, "07:00");
    assert_true(g.last_contact_at == 456);
    assert_true(g.prefs_version == 9000000001LL);
    free(text);
    store_client_facts_free(&g, 1);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "p2",
        "p2|x|10|011|100|0|23:00|07:00|UTC|[]",  /* not a version */
        "p2|-1|10|011|100|0|23:00|07:00|UTC|[]", /* a negative one */
        "p2||10|011|100|0|23:00|07:00|UTC|[]",   /* none */
        "p2|10|011|100|0|23:00|07:00|UTC|[]",    /* the version left out */
        "p3|7|10|011|100|0|23:00|07:00|UTC|[]",  /* another format */
        "p1|7|10|011|100|23:00|07:00|UTC|[]",    /* the format before the suppression flag */
        "p2|7|1|011|100|0|23:00|07:00|UTC|[]",   /* a flag missing */
        "p2|7|10|01x|100|0|23:00|07:00|UTC|[]",  /* not a flag */
        "p2|7|10|011|100|2|23:00|07:00|UTC|[]",  /* a suppression that is no flag */
        "p2|7|10|011|100||23:00|07:00|UTC|[]",   /* no suppression flag */
        "p2|7|10|011|100|0|23:000|07:00|UTC|[]", /* too long a time */
        "p2|7|10|011|100|0|23:00|07:00||[]",     /* no zone */
        "p2|7|10|011|100|0|23:00|07:00|UTC|",    /* no channels */
        "p2|7|10|011|100|0|23:00|07:00|UTC",     /* a field missing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_client_facts_t g;
        memset(&g, 0, sizeof g);
        g.quiet_start[0] = 'x';
        assert_int_equal(prefs_decode(bad[i], &g), -1);
        assert_null(g.timezone); /* unchanged */
        assert_int_equal(g.quiet_start[0], 'x');
    }
}

static int parse(const char *body, int want_id, prefbody_t *pb, req_error_t *e)
{
    return prefbody_parse(body, strlen(body), want_id, pb, e);
}

static void test_body(void **state)
{
    (void)state;
    prefbody_t pb;
    req_error_t e;
    assert_int_equal(parse("{\"preferred_channels\":[\"whatsapp\",\"email\"],"
                           "\"quiet_hours_start\":\"23:00\",\"quiet_hours_end\":\"07:00\","
                           "\"opt_out_sms\":true,\"timezone\":\"Asia/Kolkata\"}",
                           0, &pb, &e),
                     0);
    assert_string_equal(pb.change.preferred_json, "[\"whatsapp\",\"email\"]");
    assert_int_equal(pb.change.quiet_given, 1);
    assert_string_equal(pb.change.quiet_start, "23:00");
    assert_int_equal(pb.change.opt_out[CH_SMS], 1);
    assert_int_equal(pb.change.opt_out[CH_EMAIL], -1);
    assert_string_equal(pb.change.timezone, "Asia/Kolkata");

    /* no quiet hours: both null */
    assert_int_equal(parse("{\"quiet_hours_start\":null,\"quiet_hours_end\":null}", 0, &pb, &e), 0);
    assert_int_equal(pb.change.quiet_given, 1);
    assert_string_equal(pb.change.quiet_start, "");
    assert_null(pb.change.preferred_json);

    /* the seed's form names the client */
    assert_int_equal(parse("{\"client_id\":\"5B1D7C2E-8F3A-4E61-9D2B-1A7C3E5F9B20\","
                           "\"opt_out_email\":false}",
                           1, &pb, &e),
                     0);
    assert_string_equal(pb.client_id, "5b1d7c2e-8f3a-4e61-9d2b-1a7c3e5f9b20");
    assert_int_equal(pb.change.opt_out[CH_EMAIL], 0);
}

static void test_body_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{\"preferred_channels\":[\"email\",\"fax\"]}", "preferred_channels"},
        {"{\"preferred_channels\":[\"sms\",\"sms\"]}", "preferred_channels"},
        {"{\"preferred_channels\":[]}", "preferred_channels"},
        {"{\"preferred_channels\":[\"sms\",\"email\",\"whatsapp\",\"sms\"]}", "preferred_channels"},
        {"{\"preferred_channels\":\"email\"}", "preferred_channels"},
        {"{\"quiet_hours_start\":\"25:00\",\"quiet_hours_end\":\"07:00\"}", "quiet_hours_start"},
        {"{\"quiet_hours_start\":\"23:00\",\"quiet_hours_end\":\"7:00\"}", "quiet_hours_end"},
        {"{\"quiet_hours_start\":\"23:60\",\"quiet_hours_end\":\"07:00\"}", "quiet_hours_start"},
        {"{\"quiet_hours_start\":\"23:00\"}", "quiet_hours_start"},
        {"{\"quiet_hours_start\":null,\"quiet_hours_end\":\"07:00\"}", "quiet_hours_start"},
        {"{\"opt_out_whatsapp\":1}", "opt_out_whatsapp"},
        {"{\"timezone\":\"Europe/Atlantis\"}", "timezone"},
        {"{\"colour\":\"teal\"}", "colour"},
        {"{}", "body"},
        {"[]", "body"},
        {"{\"client_id\":\"x\",\"opt_out_sms\":true}", "client_id"}, /* not in the path form */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        prefbody_t pb;
        req_error_t e;
        assert_int_equal(parse(bad[i].body, 0, &pb, &e), -1);
        if (strncmp(e.message, bad[i].field, strlen(bad[i].field)) != 0)
            fail_msg("%s: %s", bad[i].body, e.message);
        assert_null(pb.change.preferred_json); /* nothing half-filled */
    }
    prefbody_t pb;
    req_error_t e;
    assert_int_equal(parse("{\"opt_out_sms\":true}", 1, &pb, &e), -1);
    assert_non_null(strstr(e.message, "client_id"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_body_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
