/* metrics: label escaping, number formatting, bucket bounds, the closed
 * label lists and the render bound. */
#include "metrics/metrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *render(void)
{
    buf_t b;
    buf_init(&b, 1024 * 1024);
    assert_int_equal(metrics_render(&b), 0);
    return buf_detach(&b);
}

static void test_label_value_escapes(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 256);
    assert_int_equal(metrics_label_value(&b, "a\"b\\c\nd"), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\"");
    buf_reset(&b);
    assert_int_equal(metrics_label_value(&b, NULL), 0);
    assert_string_equal(b.data, "\"\"");
    buf_free(&b);
}

static void test_value_format(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 256);
    assert_int_equal(metrics_value(&b, 42), 0);
    assert_int_equal(buf_putc(&b, ' '), 0);
    assert_int_equal(metrics_value(&b, 0.006863), 0);
    assert_int_equal(buf_putc(&b, ' '), 0);
    assert_int_equal(metrics_value(&b, 1.0 / 3.0), 0);
    assert_string_equal(b.data, "42 0.006863 0.33333333333333331");
    buf_free(&b);
}

static void test_bucket_bounds_are_inclusive(void **state)
{
    (void)state;
    metrics_delivery_time("sms", 0.005); /* exactly on the first bound */
    metrics_delivery_time("sms", 0.0051);
    metrics_delivery_time("sms", 31); /* above every bound */
    metrics_delivery_time("sms", -1); /* a clock step: counted as 0 */
    char *t = render();
    assert_non_null(
        strstr(t, "crm_delivery_time_seconds_bucket{channel=\"sms\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(t, "crm_delivery_time_seconds_bucket{channel=\"sms\",le=\"0.01\"} 3\n"));
    assert_non_null(strstr(t, "crm_delivery_time_seconds_bucket{channel=\"sms\",le=\"30\"} 3\n"));
    assert_non_null(strstr(t, "crm_delivery_time_seconds_bucket{channel=\"sms\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "crm_delivery_time_seconds_count{channel=\"sms\"} 4\n"));
    assert_non_null(strstr(t, "crm_delivery_time_seconds_sum{channel=\"sms\"} 31.0101\n"));
    free(t);
}

static void test_unknown_labels_count_as_other(void **state)
{
    (void)state;
    metrics_communication("no-such-type\"}", "pigeon", METRICS_FAILED);
    metrics_communication(NULL, NULL, METRICS_FAILED);
    metrics_communication("welcome", "whatsapp", METRICS_STATUS_N); /* ignored */
    char *t = render();
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"other\",channel=\"other\","
                              "status=\"failed\"} 2\n"));
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"other\",channel=\"other\","
                              "status=\"sent\"} 0\n"));
    assert_null(strstr(t, "pigeon"));
    assert_null(strstr(t, "channel=\"whatsapp\""));
    free(t);
}

static void test_bounces_and_suppressions(void **state)
{
    (void)state;
    char *t = render();
    assert_non_null(strstr(t, "# TYPE crier_email_suppressions_total counter\n"
                              "crier_email_suppressions_total 0\n"));
    free(t);
    metrics_communication("budget_summary", "email", METRICS_BOUNCED);
    metrics_communication("budget_summary", "email", METRICS_SKIPPED);
    metrics_communication("budget_summary", "email", METRICS_SKIPPED);
    metrics_email_suppression();
    t = render();
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"budget_summary\","
                              "channel=\"email\",status=\"bounced\"} 1\n"));
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"budget_summary\","
                              "channel=\"email\",status=\"skipped\"} 2\n"));
    /* every status of a used pair is written, zeros too */
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"budget_summary\","
                              "channel=\"email\",status=\"failed\"} 0\n"));
    assert_non_null(strstr(t, "crier_email_suppressions_total 1\n"));
    free(t);
}

static void test_api_errors_by_category(void **state)
{
    (void)state;
    metrics_api_call(METRICS_API_SMTP);
    metrics_api_call(METRICS_API_SMTP);
    metrics_api_error(METRICS_API_SMTP, ERRC_AUTH_FAILURE);
    metrics_api_error(METRICS_API_SMTP, (errc_t)99); /* ignored */
    char *t = render();
    assert_non_null(strstr(t, "crier_api_requests_total{api=\"smtp\"} 2\n"));
    assert_non_null(
        strstr(t, "crm_api_errors_total{api=\"smtp\",error_type=\"auth_failure\"} 1\n"));
    assert_non_null(strstr(t, "crm_api_errors_total{api=\"smtp\",error_type=\"transient\"} 0\n"));
    assert_null(strstr(t, "error_type=\"none\""));
    free(t);
}

static void test_queue_depth_after_first_sample(void **state)
{
    (void)state;
    char *t = render();
    assert_non_null(strstr(t, "# TYPE crier_queue_depth gauge\n"));
    assert_null(strstr(t, "crier_queue_depth{"));
    free(t);
    metrics_queue_depth(3, 7, 1);
    t = render();
    assert_non_null(strstr(t, "crier_queue_depth{state=\"due\"} 3\n"));
    assert_non_null(strstr(t, "crier_queue_depth{state=\"scheduled\"} 7\n"));
    assert_non_null(strstr(t, "crier_queue_depth{state=\"sending\"} 1\n"));
    free(t);
}

static void test_render_respects_its_bound(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 64);
    assert_int_equal(metrics_render(&b), -1);
    assert_true(b.len <= 64);
    buf_free(&b);
}

/* The open rate is written per message type from the latest sample only,
 * and opens and clicks count under crm_communications_total's status. */
static void test_open_rate_and_engagement(void **state)
{
    (void)state;
    char *t = render();
    assert_null(strstr(t, "crm_open_rate{"));
    assert_non_null(strstr(t, "# TYPE crm_open_rate gauge\n"));
    free(t);
    const char *types[] = {"welcome", "reminder", "nonsense"};
    long long sent[] = {4, 10, 2}, opened[] = {1, 0, 2};
    metrics_open_rates(types, sent, opened, 3);
    t = render();
    assert_non_null(strstr(t, "crm_open_rate{message_type=\"welcome\"} 0.25\n"));
    assert_non_null(strstr(t, "crm_open_rate{message_type=\"reminder\"} 0\n"));
    assert_non_null(strstr(t, "crm_open_rate{message_type=\"other\"} 1\n"));
    free(t);
    metrics_open_rates(types + 1, sent + 1, opened + 1, 1);
    t = render();
    assert_null(strstr(t, "crm_open_rate{message_type=\"welcome\"}"));
    assert_non_null(strstr(t, "crm_open_rate{message_type=\"reminder\"} 0\n"));
    free(t);
    metrics_communication("digest", "email", METRICS_OPENED);
    metrics_communication("digest", "email", METRICS_CLICKED);
    metrics_communication("digest", "email", METRICS_CLICKED);
    t = render();
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"digest\",channel=\"email\","
                              "status=\"opened\"} 1\n"));
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"digest\",channel=\"email\","
                              "status=\"clicked\"} 2\n"));
    assert_non_null(strstr(t, "crm_communications_total{message_type=\"digest\",channel=\"email\","
                              "status=\"sent\"} 0\n"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_value_escapes),
        cmocka_unit_test(test_value_format),
        cmocka_unit_test(test_bucket_bounds_are_inclusive),
        cmocka_unit_test(test_unknown_labels_count_as_other),
        cmocka_unit_test(test_bounces_and_suppressions),
        cmocka_unit_test(test_api_errors_by_category),
        cmocka_unit_test(test_queue_depth_after_first_sample),
        cmocka_unit_test(test_render_respects_its_bound),
        cmocka_unit_test(test_open_rate_and_engagement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
