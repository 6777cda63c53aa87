/* Configuration: defaults, file, environment precedence, and errors that
 * name the key and the line. */
#include "config.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_then_env),
        cmocka_unit_test(test_bad_value_names_key_and_line),
        cmocka_unit_test(test_secret_in_file_refused),
        cmocka_unit_test(test_unknown_key_and_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
