/* Configuration: defaults, file, environment precedence, and errors that
 * name the key and the line. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char cfgt_path[64];

static void cfgt_write(const char *text)
{
    snprintf(cfgt_path, sizeof cfgt_path, "/tmp/crier-cfg-XXXXXX");
    int fd = mkstemp(cfgt_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("CRIER_LISTEN");
    unsetenv("CRIER_MAX_ATTEMPTS");
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.transport_email, "sandbox");
    assert_int_equal(c.smtp_tls_required, 1);
    assert_int_equal(c.max_body, 1048576);
    assert_int_equal(c.max_attempts, 12);
    cfg_free(&c);
}

static void test_file_then_env(void **state)
{
    (void)state;
    cfgt_write("# comment\nlisten = 127.0.0.1:9000\nworkers = 7 # trailing\nsmtp_tls = off\n");
    cfg_t c;
    char err[256];
    unsetenv("CRIER_LISTEN");
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), 0);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.smtp_tls_required, 0);
    cfg_free(&c);
    setenv("CRIER_LISTEN", "127.0.0.1:9100", 1);
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), 0);
    assert_string_equal(c.listen, "127.0.0.1:9100");
    cfg_free(&c);
    unsetenv("CRIER_LISTEN");
    unlink(cfgt_path);
}

static void test_bad_value_names_key_and_line(void **state)
{
    (void)state;
    cfgt_write("listen = 127.0.0.1:9000\n\nworkers = many\n");
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":3:"));
    assert_non_null(strstr(err, "workers"));
    cfg_free(&c);
    unlink(cfgt_path);

    setenv("CRIER_MAX_BODY_BYTES", "12", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_MAX_BODY_BYTES"));
    cfg_free(&c);
    unsetenv("CRIER_MAX_BODY_BYTES");

    setenv("CRIER_MAX_ATTEMPTS", "0", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_MAX_ATTEMPTS"));
    cfg_free(&c);
    unsetenv("CRIER_MAX_ATTEMPTS");

    setenv("CRIER_TRANSPORT", "carrier-pigeon", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_TRANSPORT"));
    cfg_free(&c);
    unsetenv("CRIER_TRANSPORT");
}

static void test_secret_in_file_refused(void **state)
{
    (void)state;
    cfgt_write("api_tokens = workflow:abc\n");
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1:"));
    assert_non_null(strstr(err, "environment"));
    /* The value itself must not be echoed back. */
    assert_null(strstr(err, "abc"));
    cfg_free(&c);
    unlink(cfgt_path);
}

static void test_unknown_key_and_syntax(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    cfgt_write("listen 127.0.0.1\n");
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1:"));
    cfg_free(&c);
    unlink(cfgt_path);
    cfgt_write("\nlisten_port = 80\n");
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2: unknown key"));
    cfg_free(&c);
    unlink(cfgt_path);
}

/* Rates: every unit, the burst each implies, and what is refused. */
static void test_rate_units(void **state)
{
    (void)state;
    cfg_rate_t r;
    assert_int_equal(cfg_rate_parse("1/s", &r), 0);
    assert_true(r.rate_per_s == 1.0 && r.burst == 1);
    assert_int_equal(cfg_rate_parse("30/m", &r), 0);
    assert_true(r.rate_per_s == 0.5 && r.burst == 1);
    assert_int_equal(cfg_rate_parse("100/h,10", &r), 0);
    assert_true(fabs(r.rate_per_s * 3600.0 - 100.0) < 1e-9 && r.burst == 10);

    /* a daily quota: the whole day's count at once unless told otherwise */
    assert_int_equal(cfg_rate_parse("1000/d", &r), 0);
    assert_true(fabs(r.rate_per_s * 86400.0 - 1000.0) < 1e-9);
    assert_int_equal(r.burst, 1000);
    assert_int_equal(cfg_rate_parse("500/d,500", &r), 0);
    assert_true(fabs(r.rate_per_s * 86400.0 - 500.0) < 1e-9 && r.burst == 500);
    assert_int_equal(cfg_rate_parse("1000/d,1", &r), 0);
    assert_int_equal(r.burst, 1);
    assert_int_equal(cfg_rate_parse("0.5/d", &r), 0); /* one every two days */
    assert_int_equal(r.burst, 1);
    assert_int_equal(cfg_rate_parse("2.5/d", &r), 0);
    assert_int_equal(r.burst, 2);

    assert_int_equal(cfg_rate_parse("off", &r), 0);
    assert_true(r.rate_per_s == 0);

    /* malformed, unknown units, and buckets the limiter could not hold */
    static const char *const bad[] = {"",      "1",         "1/",      "1/w",      "1/day",
                                      "0/d",   "-1/d",      "1/d,",    "1/d,0",    "1/d,x",
                                      "1/d 2", "2000000/d", "1/d,101", "1/h,2401", "/d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.rate_per_s = -1;
        assert_int_equal(cfg_rate_parse(bad[i], &r), -1);
        assert_true(r.rate_per_s == -1); /* untouched */
    }
    assert_int_equal(cfg_rate_parse("1/d,100", &r), 0); /* 100 days: the longest */
}

static void test_rate_from_environment(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    setenv("CRIER_RATE_WHATSAPP", "1000/d", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    assert_int_equal(c.rate_whatsapp.burst, 1000);
    cfg_free(&c);
    setenv("CRIER_RATE_WHATSAPP", "1000/week", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_RATE_WHATSAPP"));
    assert_non_null(strstr(err, "N/d"));
    cfg_free(&c);
    unsetenv("CRIER_RATE_WHATSAPP");
}

/* cfg_each's text of CRIER_COST_EMAIL, for the check below. */
static void cfgt_cost_text(void *cls, const char *env, const char *value, int secret)
{
    (void)secret;
    if (strcmp(env, "CRIER_COST_EMAIL") == 0)
        snprintf((char *)cls, 32, "%s", value);
}

/* Prices are decimals kept exactly, as millionths: no binary fraction
 * drifts a cost total, and a price crier cannot keep exactly is refused. */
static void test_cost_prices(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    unsetenv("CRIER_COST_EMAIL");
    unsetenv("CRIER_COST_SMS_SEGMENT");
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    assert_true(c.cost_sms_segment_micros == 7900);
    assert_string_equal(c.cost_currency, "USD");
    cfg_free(&c);
    static const struct {
        const char *v;
        long long micros;
    } ok[] = {{"0.0075", 7500}, {"12", 12000000}, {".5", 500000},
              {"0", 0},         {"0.000001", 1},  {"1000", 1000000000LL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        setenv("CRIER_COST_SMS_SEGMENT", ok[i].v, 1);
        assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
        assert_true(c.cost_sms_segment_micros == ok[i].micros);
        cfg_free(&c);
    }
    static const char *const bad[] = {"0.0000001", "-1",     "1e-3", "1,5", "",        ".",
                                      "1.",        "1000.5", "1001", "abc", "0.01 EUR"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("CRIER_COST_SMS_SEGMENT", bad[i], 1);
        assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "CRIER_COST_SMS_SEGMENT"));
        cfg_free(&c);
    }
    unsetenv("CRIER_COST_SMS_SEGMENT");
    setenv("CRIER_COST_EMAIL", "0.25", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    char text[32] = "";
    cfg_each(&c, cfgt_cost_text, text);
    assert_string_equal(text, "0.250000");
    cfg_free(&c);
    unsetenv("CRIER_COST_EMAIL");
}

static void test_retention_settings(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    unsetenv("CRIER_RETENTION_DAYS");
    unsetenv("CRIER_PURGE_INTERVAL_S");
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    assert_int_equal(c.retention_days, 730);
    assert_int_equal(c.purge_interval_s, 86400);
    cfg_free(&c);
    cfgt_write("retention_days = 365\npurge_interval_s = 0\n");
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), 0);
    assert_int_equal(c.retention_days, 365);
    assert_int_equal(c.purge_interval_s, 0);
    cfg_free(&c);
    unlink(cfgt_path);
    setenv("CRIER_RETENTION_DAYS", "0", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_RETENTION_DAYS"));
    cfg_free(&c);
    unsetenv("CRIER_RETENTION_DAYS");
}

static void test_tracking_settings(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    unsetenv("CRIER_TRACKING");
    unsetenv("CRIER_TRACKING_OFF_TYPES");
    unsetenv("CRIER_TRACKING_MACHINE_WINDOW_S");
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    assert_int_equal(c.tracking, 1);
    assert_string_equal(c.tracking_off_types, "");
    assert_int_equal(c.tracking_machine_window_s, 5);
    cfg_free(&c);
    cfgt_write("tracking = off\ntracking_off_types = error_notification,digest\n"
               "tracking_machine_window_s = 0\n");
    assert_int_equal(cfg_load(&c, cfgt_path, err, sizeof err), 0);
    assert_int_equal(c.tracking, 0);
    assert_string_equal(c.tracking_off_types, "error_notification,digest");
    assert_int_equal(c.tracking_machine_window_s, 0);
    cfg_free(&c);
    unlink(cfgt_path);
    setenv("CRIER_TRACKING", "yes", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_TRACKING"));
    assert_non_null(strstr(err, "\"on\" or \"off\""));
    cfg_free(&c);
    unsetenv("CRIER_TRACKING");
    setenv("CRIER_TRACKING_MACHINE_WINDOW_S", "3601", 1);
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_TRACKING_MACHINE_WINDOW_S"));
    cfg_free(&c);
    unsetenv("CRIER_TRACKING_MACHINE_WINDOW_S");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_then_env),
        cmocka_unit_test(test_bad_value_names_key_and_line),
        cmocka_unit_test(test_secret_in_file_refused),
        cmocka_unit_test(test_unknown_key_and_syntax),
        cmocka_unit_test(test_rate_units),
        cmocka_unit_test(test_rate_from_environment),
        cmocka_unit_test(test_cost_prices),
        cmocka_unit_test(test_retention_settings),
        cmocka_unit_test(test_tracking_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
