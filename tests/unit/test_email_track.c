/* Which emails the driver tracks: CRIER_TRACKING and the types it leaves
 * out, and the start-up check of that list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "driver/email_track.h"

#include <string.h>

static void test_on_off_and_types(void **state)
{
    (void)state;
    cfg_t c;
    memset(&c, 0, sizeof c);
    c.tracking = 1;
    c.tracking_off_types = "";
    assert_int_equal(email_track_on(&c, "welcome"), 1);
    assert_int_equal(email_track_on(&c, "digest"), 1);
    c.tracking_off_types = " error_notification , digest,";
    assert_int_equal(email_track_on(&c, "welcome"), 1);
    assert_int_equal(email_track_on(&c, "error_notification"), 0);
    assert_int_equal(email_track_on(&c, "digest"), 0);
    assert_int_equal(email_track_on(&c, "error"), 1); /* whole names only */
    c.tracking = 0;
    assert_int_equal(email_track_on(&c, "welcome"), 0);
}

static void test_check(void **state)
{
    (void)state;
    cfg_t c;
    memset(&c, 0, sizeof c);
    char err[128] = "";
    c.tracking_off_types = "";
    assert_int_equal(email_track_check(&c, err, sizeof err), 0);
    c.tracking_off_types = "reminder, error_notification,,";
    assert_int_equal(email_track_check(&c, err, sizeof err), 0);
    c.tracking_off_types = "reminder,remnider";
    assert_int_equal(email_track_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "CRIER_TRACKING_OFF_TYPES"));
    assert_non_null(strstr(err, "\"remnider\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_on_off_and_types),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
