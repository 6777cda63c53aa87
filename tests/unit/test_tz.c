/* Time zones: conversions across DST gaps and overlaps, POSIX footer rules,
 * name validation, TZif parsing of hostile input, and the cache. */
#include "tz/tz.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

/* Epoch seconds of a UTC date, computed by the C library (not by tz). */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static const tz_zone_t *zone(const char *name)
{
    char err[128] = "";
    const tz_zone_t *z = tz_get(name, err, sizeof err);
    if (!z)
        fail_msg("%s: %s", name, err);
    return z;
}

/* Resolves a wall-clock time; checks the instant and how it was found. */
static void expect_resolve(const tz_zone_t *z, int y, int mo, int d, int h, int mi, int s,
                           int64_t want, tz_resolution_t want_how)
{
    tz_fields_t f = {y, mo, d, h, mi, s};
    int64_t t = 0;
    tz_resolution_t how = TZ_EXACT;
    assert_int_equal(tz_resolve(z, &f, &t, &how), 0);
    assert_int_equal(t, want);
    assert_int_equal(how, want_how);
    int adjusted = -1;
    assert_int_equal(tz_from_local(z, &f, &t, &adjusted), 0);
    assert_int_equal(t, want);
    assert_int_equal(adjusted, want_how == TZ_GAP);
}

static void expect_local(const tz_zone_t *z, int64_t t, int y, int mo, int d, int h, int mi, int s,
                         int off, int dst, const char *abbr)
{
    tz_local_t lt;
    assert_int_equal(tz_localtime(z, t, &lt), 0);
    assert_int_equal(lt.year, y);
    assert_int_equal(lt.month, mo);
    assert_int_equal(lt.day, d);
    assert_int_equal(lt.hour, h);
    assert_int_equal(lt.min, mi);
    assert_int_equal(lt.sec, s);
    assert_int_equal(lt.utc_offset, off);
    assert_int_equal(lt.is_dst, dst);
    assert_string_equal(lt.abbr, abbr);
}

static void test_new_york_gap_and_overlap(void **state)
{
    (void)state;
    const tz_zone_t *z = zone("America/New_York");
    /* 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00Z. */
    expect_local(z, utc(2026, 3, 8, 6, 59, 59), 2026, 3, 8, 1, 59, 59, -18000, 0, "EST");
    expect_local(z, utc(2026, 3, 8, 7, 0, 0), 2026, 3, 8, 3, 0, 0, -14400, 1, "EDT");
    expect_resolve(z, 2026, 3, 8, 2, 30, 0, utc(2026, 3, 8, 7, 30, 0), TZ_GAP); /* 03:30 EDT */
    expect_local(z, utc(2026, 3, 8, 7, 30, 0), 2026, 3, 8, 3, 30, 0, -14400, 1, "EDT");
    expect_resolve(z, 2026, 3, 8, 2, 0, 0, utc(2026, 3, 8, 7, 0, 0), TZ_GAP);
    expect_resolve(z, 2026, 3, 8, 1, 59, 59, utc(2026, 3, 8, 6, 59, 59), TZ_EXACT);
    expect_resolve(z, 2026, 3, 8, 3, 0, 0, utc(2026, 3, 8, 7, 0, 0), TZ_EXACT);
    /* 2026-11-01: 02:00 EDT falls back to 01:00 EST at 06:00Z. */
    expect_resolve(z, 2026, 11, 1, 1, 30, 0, utc(2026, 11, 1, 5, 30, 0), TZ_OVERLAP);
    expect_local(z, utc(2026, 11, 1, 5, 30, 0), 2026, 11, 1, 1, 30, 0, -14400, 1, "EDT");
    expect_local(z, utc(2026, 11, 1, 6, 30, 0), 2026, 11, 1, 1, 30, 0, -18000, 0, "EST");
    expect_resolve(z, 2026, 11, 1, 0, 59, 59, utc(2026, 11, 1, 4, 59, 59), TZ_EXACT);
    expect_resolve(z, 2026, 11, 1, 1, 0, 0, utc(2026, 11, 1, 5, 0, 0), TZ_OVERLAP);
    expect_resolve(z, 2026, 11, 1, 2, 0, 0, utc(2026, 11, 1, 7, 0, 0), TZ_EXACT);
}

static void test_berlin_gap(void **state)
{
    (void)state;
    const tz_zone_t *z = zone("Europe/Berlin");
    /* 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z. */
    expect_local(z, utc(2026, 3, 29, 0, 59, 59), 2026, 3, 29, 1, 59, 59, 3600, 0, "CET");
    expect_local(z, utc(2026, 3, 29, 1, 0, 0), 2026, 3, 29, 3, 0, 0, 7200, 1, "CEST");
    expect_resolve(z, 2026, 3, 29, 2, 30, 0, utc(2026, 3, 29, 1, 30, 0), TZ_GAP);
    expect_resolve(z, 2026, 3, 29, 2, 59, 59, utc(2026, 3, 29, 1, 59, 59), TZ_GAP);
    expect_resolve(z, 2026, 3, 29, 3, 0, 0, utc(2026, 3, 29, 1, 0, 0), TZ_EXACT);
    /* 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z. */
    expect_resolve(z, 2026, 10, 25, 2, 30, 0, utc(2026, 10, 25, 0, 30, 0), TZ_OVERLAP);
}

static void test_lord_howe_half_hour(void **state)
{
    (void)state;
    const tz_zone_t *z = zone("Australia/Lord_Howe");
    /* 2026-04-05 02:00 +11 falls back to 01:30 +1030 (15:00Z on the 4th). */
    expect_local(z, utc(2026, 4, 4, 14, 59, 59), 2026, 4, 5, 1, 59, 59, 39600, 1, "+11");
    expect_local(z, utc(2026, 4, 4, 15, 0, 0), 2026, 4, 5, 1, 30, 0, 37800, 0, "+1030");
    expect_resolve(z, 2026, 4, 5, 1, 45, 0, utc(2026, 4, 4, 14, 45, 0), TZ_OVERLAP);
    expect_resolve(z, 2026, 4, 5, 1, 29, 59, utc(2026, 4, 4, 14, 29, 59), TZ_EXACT);
    /* 2026-10-04 02:00 +1030 jumps to 02:30 +11 (15:30Z on the 3rd). */
    expect_local(z, utc(2026, 10, 3, 15, 29, 59), 2026, 10, 4, 1, 59, 59, 37800, 0, "+1030");
    expect_local(z, utc(2026, 10, 3, 15, 30, 0), 2026, 10, 4, 2, 30, 0, 39600, 1, "+11");
    expect_resolve(z, 2026, 10, 4, 2, 15, 0, utc(2026, 10, 3, 15, 45, 0), TZ_GAP); /* 02:45 */
    expect_resolve(z, 2026, 10, 4, 2, 30, 0, utc(2026, 10, 3, 15, 30, 0), TZ_EXACT);
}

static void test_kolkata_and_utc(void **state)
{
    (void)state;
    const tz_zone_t *z = zone("Asia/Kolkata");
    expect_local(z, utc(2026, 1, 15, 3, 30, 0), 2026, 1, 15, 9, 0, 0, 19800, 0, "IST");
    expect_local(z, utc(2026, 7, 15, 20, 0, 0), 2026, 7, 16, 1, 30, 0, 19800, 0, "IST");
    expect_resolve(z, 2026, 7, 16, 1, 30, 0, utc(2026, 7, 15, 20, 0, 0), TZ_EXACT);

    const tz_zone_t *u = zone("UTC");
    expect_local(u, 0, 1970, 1, 1, 0, 0, 0, 0, 0, "UTC");
    expect_local(u, utc(2026, 12, 31, 23, 59, 59), 2026, 12, 31, 23, 59, 59, 0, 0, "UTC");
    expect_resolve(u, 2028, 2, 29, 12, 0, 0, utc(2028, 2, 29, 12, 0, 0), TZ_EXACT);
    tz_local_t lt;
    assert_int_equal(tz_localtime(u, utc(2026, 11, 24, 0, 0, 0), &lt), 0);
    assert_int_equal(lt.wday, 2); /* a Tuesday */
    assert_int_equal(lt.yday, 327);
    assert_int_equal(tz_localtime(u, utc(2028, 12, 31, 0, 0, 0), &lt), 0);
    assert_int_equal(lt.yday, 365);
    assert_int_equal(tz_localtime(u, TZ_TIME_MAX, &lt), 0);
    assert_int_equal(lt.year, 9999);
    assert_int_equal(tz_localtime(u, TZ_TIME_MIN, &lt), 0);
    assert_int_equal(lt.year, 1);
    assert_int_equal(lt.wday, 1); /* 0001-01-01 (proleptic Gregorian) was a Monday */
    assert_int_equal(tz_localtime(u, TZ_TIME_MAX + 1, &lt), -1);
    assert_int_equal(tz_localtime(u, TZ_TIME_MIN - 1, &lt), -1);
}

/* Past 2037 the files hold no transitions: the footer rule answers. */
static void test_far_future_footer(void **state)
{
    (void)state;
    const tz_zone_t *z = zone("America/New_York");
    expect_local(z, utc(2090, 7, 4, 16, 0, 0), 2090, 7, 4, 12, 0, 0, -14400, 1, "EDT");
    expect_local(z, utc(2090, 1, 4, 17, 0, 0), 2090, 1, 4, 12, 0, 0, -18000, 0, "EST");
    /* Second Sunday of March 2090 is the 12th. */
    expect_local(z, utc(2090, 3, 12, 6, 59, 59), 2090, 3, 12, 1, 59, 59, -18000, 0, "EST");
    expect_local(z, utc(2090, 3, 12, 7, 0, 0), 2090, 3, 12, 3, 0, 0, -14400, 1, "EDT");
    expect_resolve(z, 2090, 3, 12, 2, 30, 0, utc(2090, 3, 12, 7, 30, 0), TZ_GAP);
    /* First Sunday of November 2090 is the 5th. */
    expect_resolve(z, 2090, 11, 5, 1, 30, 0, utc(2090, 11, 5, 5, 30, 0), TZ_OVERLAP);
    expect_local(z, utc(2090, 11, 5, 6, 0, 0), 2090, 11, 5, 1, 0, 0, -18000, 0, "EST");
}

static void test_unknown_and_invalid_names(void **state)
{
    (void)state;
    char err[128];
    err[0] = '\0';
    assert_null(tz_get("Mars/Olympus_Mons", err, sizeof err));
    assert_string_equal(err, "unknown time zone");
    assert_null(tz_get("America", err, sizeof err)); /* a directory */
    assert_string_equal(err, "unknown time zone");
    assert_null(tz_get("America/New_York/x", err, sizeof err));

    static const char *const bad[] = {
        "",
        "../../../etc/passwd",
        "/etc/passwd",
        "America/../../etc/passwd",
        "America/..",
        "./UTC",
        "America//New_York",
        "America/New_York/",
        "America/New York",
        "America/New_York\n",
        "posixrules",
        "posix/UTC",
        "right/UTC",
        "zone.tab",
        "UTC;rm",
        "Europe\\Berlin",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(tz_name_valid(bad[i]));
        err[0] = '\0';
        assert_null(tz_get(bad[i], err, sizeof err));
        assert_string_equal(err, "invalid time zone name");
    }
    assert_false(tz_name_valid(NULL));
    assert_null(tz_get(NULL, err, sizeof err));
    assert_true(tz_name_valid("Etc/GMT+5"));
    assert_true(tz_name_valid("America/Argentina/Buenos_Aires"));
    char longname[TZ_NAME_MAX + 2];
    memset(longname, 'A', sizeof longname - 1);
    longname[TZ_NAME_MAX] = '\0';
    assert_true(tz_name_valid(longname)); /* exactly the limit */
    longname[TZ_NAME_MAX] = 'A';
    longname[TZ_NAME_MAX + 1] = '\0';
    assert_false(tz_name_valid(longname));
    assert_null(tz_get(longname, err, sizeof err));
    assert_string_equal(err, "invalid time zone name");
    expect_local(zone("Etc/GMT+5"), 0, 1969, 12, 31, 19, 0, 0, -18000, 0, "-05");
}

/* Aliases share one zone when they are the same file. */
static void test_cache(void **state)
{
    (void)state;
    const tz_zone_t *a = zone("America/New_York");
    assert_ptr_equal(zone("America/New_York"), a);
    assert_string_equal(tz_zone_name(a), "America/New_York");
    const char *dir = getenv("CRIER_ZONEINFO_DIR");
    if (!dir || !*dir)
        dir = TZ_DEFAULT_DIR;
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/America/New_York", dir);
    snprintf(p2, sizeof p2, "%s/US/Eastern", dir);
    struct stat s1, s2;
    assert_int_equal(stat(p1, &s1), 0);
    assert_int_equal(stat(p2, &s2), 0);
    const tz_zone_t *b = zone("US/Eastern");
    if (s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino)
        assert_ptr_equal(a, b);
    else
        assert_ptr_not_equal(a, b);
    /* Uncached loads are owned by the caller. */
    char err[128];
    tz_zone_t *own = tz_load(dir, "America/New_York", err, sizeof err);
    assert_non_null(own);
    assert_ptr_not_equal(own, a);
    expect_local(own, utc(2026, 3, 8, 7, 0, 0), 2026, 3, 8, 3, 0, 0, -14400, 1, "EDT");
    tz_free(own);
    assert_null(tz_load(dir, "Nowhere/Zone", err, sizeof err));
    assert_string_equal(err, "unknown time zone");
}

/* from_local(localtime(t)) is t, except in an overlap's later half, where
 * the earlier instant with the same wall clock comes back. */
static void test_round_trip(void **state)
{
    (void)state;
    static const char *const names[] = {
        "America/New_York", "Europe/Berlin",     "Australia/Lord_Howe", "Asia/Kolkata",
        "America/Santiago", "Pacific/Auckland",  "Africa/Casablanca",   "Europe/Dublin",
        "Asia/Tehran",      "America/Sao_Paulo", "Pacific/Chatham",     "Antarctica/Troll",
    };
    int64_t from = utc(2020, 1, 1, 0, 0, 0), to = utc(2035, 12, 31, 0, 0, 0);
    size_t checks = 0, overlaps = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const tz_zone_t *z = zone(names[i]);
        /* A step of 3607 s drifts across every minute of the day. */
        for (int64_t t = from; t < to; t += 3607) {
            tz_local_t lt;
            assert_int_equal(tz_localtime(z, t, &lt), 0);
            tz_fields_t f = {lt.year, lt.month, lt.day, lt.hour, lt.min, lt.sec};
            int64_t back;
            tz_resolution_t how;
            assert_int_equal(tz_resolve(z, &f, &back, &how), 0);
            checks++;
            if (back == t) {
                assert_int_not_equal(how, TZ_GAP);
                continue;
            }
            /* Otherwise t is the later of two instants showing this time. */
            overlaps++;
            assert_int_equal(how, TZ_OVERLAP);
            assert_true(back < t);
            tz_local_t early;
            assert_int_equal(tz_localtime(z, back, &early), 0);
            assert_int_equal(early.hour, lt.hour);
            assert_int_equal(early.min, lt.min);
            assert_int_equal(early.sec, lt.sec);
            assert_int_equal(early.day, lt.day);
            assert_true(early.utc_offset > lt.utc_offset);
        }
    }
    assert_true(checks > 1000000);
    assert_true(overlaps > 0);
}

static void test_normalisation(void **state)
{
    (void)state;
    const tz_zone_t *z = zone("America/New_York");
    /* 32 January is 1 February (EST). */
    expect_resolve(z, 2026, 1, 32, 12, 0, 0, utc(2026, 2, 1, 17, 0, 0), TZ_EXACT);
    /* Month 13 is January of the next year; month 0 December before. */
    expect_resolve(z, 2026, 13, 1, 0, 0, 0, utc(2027, 1, 1, 5, 0, 0), TZ_EXACT);
    expect_resolve(z, 2026, 0, 1, 0, 0, 0, utc(2025, 12, 1, 5, 0, 0), TZ_EXACT);
    /* Hour -1 of 1 July is 23:00 on 30 June (EDT). */
    expect_resolve(z, 2026, 7, 1, -1, 0, 0, utc(2026, 7, 1, 3, 0, 0), TZ_EXACT);
    /* Minutes and seconds carry into the gap like any other time. */
    expect_resolve(z, 2026, 3, 8, 1, 90, 0, utc(2026, 3, 8, 7, 30, 0), TZ_GAP);
    /* 29 February of a common year is 1 March. */
    expect_resolve(z, 2027, 2, 29, 12, 0, 0, utc(2027, 3, 1, 17, 0, 0), TZ_EXACT);

    tz_fields_t f = {10000, 1, 1, 0, 0, 0};
    int64_t t;
    assert_int_equal(tz_from_local(z, &f, &t, NULL), -1);
    f = (tz_fields_t){0, 12, 31, 0, 0, 0};
    assert_int_equal(tz_from_local(z, &f, &t, NULL), -1);
    f = (tz_fields_t){2026, 1, 1, 0, 0, 2147483647};
    assert_int_equal(tz_from_local(z, &f, &t, NULL), 0); /* about 68 years on */
    f = (tz_fields_t){2147483647, 2147483647, 2147483647, 2147483647, 2147483647, 2147483647};
    assert_int_equal(tz_from_local(z, &f, &t, NULL), -1);
    f = (tz_fields_t){-2147483647 - 1, -2147483647 - 1, -2147483647 - 1, 0, 0, 0};
    assert_int_equal(tz_from_local(z, &f, &t, NULL), -1);
}

static const tz_zone_t *posix_zone(const char *s, tz_zone_t **own)
{
    char err[128];
    *own = tz_from_posix(s, err, sizeof err);
    if (!*own)
        fail_msg("%s: %s", s, err);
    return *own;
}

static void test_posix_rules(void **state)
{
    (void)state;
    tz_zone_t *own;
    const tz_zone_t *z;

    /* Negative rule times (version 3): last Sunday of March at -2:00 is
     * Saturday 22:00 local. */
    z = posix_zone("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", &own);
    expect_local(z, utc(2030, 3, 31, 0, 59, 59), 2030, 3, 30, 21, 59, 59, -10800, 0, "-03");
    expect_local(z, utc(2030, 3, 31, 1, 0, 0), 2030, 3, 30, 23, 0, 0, -7200, 1, "-02");
    tz_free(own);

    /* All year DST, written as a rule that ends the moment it restarts. */
    z = posix_zone("EST5EDT4,0/0,J365/25", &own);
    for (int m = 1; m <= 12; m++)
        expect_local(z, utc(2030, m, 1, 12, 0, 0), 2030, m, 1, 8, 0, 0, -14400, 1, "EDT");
    expect_local(z, utc(2031, 1, 1, 4, 30, 0), 2031, 1, 1, 0, 30, 0, -14400, 1, "EDT");
    tz_free(own);

    /* Jn never counts 29 February; n does. */
    z = posix_zone("AAA0BBB,J60/0,J300/0", &own);
    expect_local(z, utc(2028, 2, 29, 23, 59, 59), 2028, 2, 29, 23, 59, 59, 0, 0, "AAA");
    expect_local(z, utc(2028, 3, 1, 0, 0, 0), 2028, 3, 1, 1, 0, 0, 3600, 1, "BBB");
    tz_free(own);
    z = posix_zone("AAA0BBB,59/0,300/0", &own);
    expect_local(z, utc(2028, 2, 29, 0, 0, 0), 2028, 2, 29, 1, 0, 0, 3600, 1, "BBB");
    expect_local(z, utc(2027, 2, 28, 23, 59, 59), 2027, 2, 28, 23, 59, 59, 0, 0, "AAA");
    expect_local(z, utc(2027, 3, 1, 0, 0, 0), 2027, 3, 1, 1, 0, 0, 3600, 1, "BBB");
    tz_free(own);

    /* Southern hemisphere: DST spans the new year; offsets with minutes;
     * rule time 167 h (a week) after midnight. */
    z = posix_zone("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0/167", &own);
    expect_local(z, utc(2030, 1, 1, 0, 0, 0), 2030, 1, 1, 11, 0, 0, 39600, 1, "+11");
    expect_local(z, utc(2030, 7, 1, 0, 0, 0), 2030, 7, 1, 10, 30, 0, 37800, 0, "+1030");
    /* First Sunday of April 2030 is the 7th; 167 h later is the 13th 23:00. */
    expect_local(z, utc(2030, 4, 13, 11, 59, 59), 2030, 4, 13, 22, 59, 59, 39600, 1, "+11");
    expect_local(z, utc(2030, 4, 13, 12, 0, 0), 2030, 4, 13, 22, 30, 0, 37800, 0, "+1030");
    tz_free(own);

    /* No DST; a default DST offset of one hour; default rules. */
    z = posix_zone("<+0530>-5:30", &own);
    expect_local(z, 0, 1970, 1, 1, 5, 30, 0, 19800, 0, "+0530");
    tz_free(own);
    z = posix_zone("EST5EDT", &own);
    expect_local(z, utc(2030, 7, 1, 12, 0, 0), 2030, 7, 1, 8, 0, 0, -14400, 1, "EDT");
    expect_local(z, utc(2030, 12, 1, 12, 0, 0), 2030, 12, 1, 7, 0, 0, -18000, 0, "EST");
    tz_free(own);

    static const char *const bad[] = {"",
                                      "E",
                                      "EST",
                                      "ES5",
                                      "EST25",
                                      "<+05",
                                      "<>5",
                                      "EST5EDT,",
                                      "EST5EDT,M3.2.0",
                                      "EST5EDT,M13.2.0,M11.1.0",
                                      "EST5EDT,J0,J365",
                                      "EST5EDT,M3.2.0/168,M11.1.0",
                                      "EST5EDT,M3.6.0,M11.1.0",
                                      "EST5EDT,366,J1",
                                      "EST5EDT,M3.2.0,M11.1.0x",
                                      "EST5:3",
                                      "EST5EDT4:00:0,0,1",
                                      "EST+-5"};
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tz_zone_t *x = tz_from_posix(bad[i], err, sizeof err);
        if (x)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_null(tz_from_posix(NULL, err, sizeof err));
}

/* ---- hand-built TZif files ---- */

typedef struct {
    unsigned char b[4096];
    size_t n;
} tzif_buf_t;

static void put(tzif_buf_t *t, const void *p, size_t n)
{
    assert_true(t->n + n <= sizeof t->b);
    memcpy(t->b + t->n, p, n);
    t->n += n;
}

static void put32(tzif_buf_t *t, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(t, b, 4);
}

static void header(tzif_buf_t *t, char version, uint32_t leapcnt, uint32_t timecnt,
                   uint32_t typecnt, uint32_t charcnt)
{
    put(t, "TZif", 4);
    put(t, &version, 1);
    static const unsigned char zero[15];
    put(t, zero, 15);
    put32(t, 0); /* isutcnt */
    put32(t, 0); /* isstdcnt */
    put32(t, leapcnt);
    put32(t, timecnt);
    put32(t, typecnt);
    put32(t, charcnt);
}

/* Two types, AAA (+01) and BBB (+02, DST), one transition to BBB at
 * t = 1000000, and the given footer. version '\0' builds a version 1 file. */
static void build(tzif_buf_t *t, char version, int leap, const char *footer)
{
    static const char chars[] = "AAA\0BBB";
    t->n = 0;
    unsigned tsize = version ? 8 : 4;
    if (version) /* an empty version 1 block, which readers skip */
        header(t, version, 0, 0, 0, 0);
    header(t, version, (uint32_t)leap, 1, 2, sizeof chars);
    if (tsize == 8)
        put32(t, 0);
    put32(t, 1000000);
    put(t, "\1", 1);
    put32(t, 3600);
    put(t, "\0\0", 2);
    put32(t, 7200);
    put(t, "\1\4", 2);
    put(t, chars, sizeof chars);
    for (int i = 0; i < leap; i++) {
        if (tsize == 8)
            put32(t, 0);
        put32(t, 78796800);
        put32(t, 1);
    }
    if (version) {
        put(t, "\n", 1);
        put(t, footer, strlen(footer));
        put(t, "\n", 1);
    }
}

static void test_tzif_parse(void **state)
{
    (void)state;
    tzif_buf_t t;
    char err[128];
    tz_zone_t *z;

    build(&t, '2', 0, "");
    z = tz_parse_tzif(t.b, t.n, "Test/Two", err, sizeof err);
    assert_non_null(z);
    assert_string_equal(tz_zone_name(z), "Test/Two");
    expect_local(z, 999999, 1970, 1, 12, 14, 46, 39, 3600, 0, "AAA"); /* type 0 before */
    expect_local(z, 1000000, 1970, 1, 12, 15, 46, 40, 7200, 1, "BBB");
    expect_local(z, utc(2100, 1, 1, 0, 0, 0), 2100, 1, 1, 2, 0, 0, 7200, 1, "BBB");
    tz_free(z);

    build(&t, '3', 0, "CCC-3");
    z = tz_parse_tzif(t.b, t.n, "Test/Three", err, sizeof err);
    assert_non_null(z);
    expect_local(z, 999999, 1970, 1, 12, 14, 46, 39, 3600, 0, "AAA");
    expect_local(z, 1000000, 1970, 1, 12, 16, 46, 40, 10800, 0, "CCC"); /* footer rules */
    tz_free(z);

    build(&t, '\0', 0, "");
    z = tz_parse_tzif(t.b, t.n, "Test/One", err, sizeof err);
    assert_non_null(z);
    expect_local(z, 1000000, 1970, 1, 12, 15, 46, 40, 7200, 1, "BBB");
    tz_free(z);

    build(&t, '2', 1, "");
    assert_null(tz_parse_tzif(t.b, t.n, "Test/Leap", err, sizeof err));
    assert_non_null(strstr(err, "leap"));

    build(&t, '2', 0, "CCC-3");
    for (size_t n = 0; n < t.n; n++) /* every truncation is refused */
        assert_null(tz_parse_tzif(t.b, n, "Test/Cut", err, sizeof err));

    /* Corrupt single bytes: transition type out of range, abbreviation
     * index out of range, no newline before the footer, a bad magic. */
    static const struct {
        size_t at;
        unsigned char v;
    } bad[] = {{44 + 44 + 8, 2}, {44 + 44 + 9 + 5, 8}, {44 + 44 + 9 + 12 + 8, 'X'}, {0, 'X'}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        build(&t, '2', 0, "CCC-3");
        t.b[bad[i].at] = bad[i].v;
        assert_null(tz_parse_tzif(t.b, t.n, "Test/Bad", err, sizeof err));
    }
    build(&t, '2', 0, "CCC-3,");
    assert_null(tz_parse_tzif(t.b, t.n, "Test/Bad", err, sizeof err));
    assert_non_null(strstr(err, "footer"));
}

static void *hammer(void *arg)
{
    static const char *const names[] = {"Europe/Paris", "Asia/Tokyo", "America/Chicago",
                                        "Europe/Paris", "Africa/Lagos"};
    const tz_zone_t **seen = arg;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < 5; i++) {
            char err[128];
            const tz_zone_t *z = tz_get(names[i], err, sizeof err);
            if (!z)
                return NULL;
            if (round == 0)
                seen[i] = z;
            else if (seen[i] != z)
                return NULL;
            tz_local_t lt;
            if (tz_localtime(z, 1800000000 + round, &lt) != 0)
                return NULL;
        }
    }
    return arg;
}

static void test_threads_share_zones(void **state)
{
    (void)state;
    pthread_t th[4];
    const tz_zone_t *seen[4][5];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, seen[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_ptr_equal(r, seen[i]);
    }
    for (int i = 1; i < 4; i++)
        assert_memory_equal(seen[i], seen[0], sizeof seen[0]);
    assert_ptr_equal(seen[0][0], seen[0][3]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_york_gap_and_overlap),
        cmocka_unit_test(test_berlin_gap),
        cmocka_unit_test(test_lord_howe_half_hour),
        cmocka_unit_test(test_kolkata_and_utc),
        cmocka_unit_test(test_far_future_footer),
        cmocka_unit_test(test_unknown_and_invalid_names),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_tzif_parse),
        cmocka_unit_test(test_threads_share_zones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
