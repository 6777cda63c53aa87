/* channels_off: which channels the policy is told it cannot use, from the
 * settings alone; and the sandbox's documented refused numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "driver/driver.h"
#include "driver/sandbox.h"
#include "policy/policy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void clear_env(void)
{
    static const char *const names[] = {
        "CRIER_TRANSPORT",          "CRIER_TRANSPORT_EMAIL",    "CRIER_TRANSPORT_SMS",
        "CRIER_TRANSPORT_WHATSAPP", "TWILIO_ACCOUNT_SID",       "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",       "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_ACCESS_TOKEN"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

static unsigned off_with_env(void)
{
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    unsigned off = drv_channels_off(&c);
    cfg_free(&c);
    return off;
}

static void test_sandbox_all_available(void **state)
{
    (void)state;
    clear_env();
    assert_int_equal(off_with_env(), 0);
}

static void test_live_needs_credentials(void **state)
{
    (void)state;
    clear_env();
    setenv("CRIER_TRANSPORT", "live", 1);
    assert_int_equal(off_with_env(), CH_BIT(CH_SMS) | CH_BIT(CH_WHATSAPP));
    setenv("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef", 1);
    setenv("TWILIO_AUTH_TOKEN", "t", 1);
    assert_int_equal(off_with_env(), CH_BIT(CH_SMS) | CH_BIT(CH_WHATSAPP)); /* no From */
    setenv("TWILIO_FROM_NUMBER", "+15005550006", 1);
    assert_int_equal(off_with_env(), CH_BIT(CH_WHATSAPP));
    setenv("WHATSAPP_PHONE_NUMBER_ID", "106540352242922", 1);
    setenv("WHATSAPP_ACCESS_TOKEN", "t", 1);
    assert_int_equal(off_with_env(), 0);
    clear_env();
}

static void test_per_channel_transport_wins(void **state)
{
    (void)state;
    clear_env();
    setenv("CRIER_TRANSPORT", "live", 1);
    setenv("CRIER_TRANSPORT_SMS", "sandbox", 1);
    assert_int_equal(off_with_env(), CH_BIT(CH_WHATSAPP));
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, err, sizeof err), 0);
    assert_string_equal(c.transport_email, "live");
    assert_string_equal(c.transport_sms, "sandbox");
    assert_string_equal(c.transport_whatsapp, "live");
    cfg_free(&c);
    clear_env();
}

static void test_file_transport_sets_every_channel(void **state)
{
    (void)state;
    clear_env();
    char path[] = "crier-cfg-XXXXXX"; /* in the working directory: the build tree */
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "transport = live\ntransport_whatsapp = sandbox\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    cfg_t c;
    char err[256];
    int rc = cfg_load(&c, path, err, sizeof err);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_string_equal(c.transport_email, "live");
    assert_string_equal(c.transport_sms, "live");
    assert_string_equal(c.transport_whatsapp, "sandbox");
    cfg_free(&c);
}

static void test_sandbox_refused_numbers(void **state)
{
    (void)state;
    assert_true(sandbox_refuses("+15555550000"));
    assert_true(sandbox_refuses("+44 7700 900 000"));
    assert_false(sandbox_refuses("+15555550101"));
    assert_false(sandbox_refuses("+15555500001"));
    assert_false(sandbox_refuses("000"));
    assert_false(sandbox_refuses(""));
    assert_false(sandbox_refuses(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sandbox_all_available),
        cmocka_unit_test(test_live_needs_credentials),
        cmocka_unit_test(test_per_channel_transport_wins),
        cmocka_unit_test(test_file_transport_sets_every_channel),
        cmocka_unit_test(test_sandbox_refused_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
