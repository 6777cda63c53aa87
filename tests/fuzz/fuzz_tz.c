/* Fuzzes the time zone reader: the input as a TZif file through
 * tz_parse_tzif, and a zone that parses through tz_localtime (at the ends
 * of the range, around its transitions and at instants taken from the
 * input) and tz_resolve; short inputs also as a POSIX TZ string through
 * tz_from_posix. */
#include "fuzz_input.h"
#include "tz/tz.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void zone_walk(const tz_zone_t *z, const uint8_t *data, size_t size)
{
    static const int64_t fixed[] = {
        TZ_TIME_MIN, TZ_TIME_MIN - 1, TZ_TIME_MAX, TZ_TIME_MAX + 1,     0,
        -1,          1700000000,      2145916800,  INT64_C(-2208988800)};
    tz_local_t lt;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        (void)tz_localtime(z, fixed[i], &lt);
    /* Up to 16 instants from the tail of the input. */
    for (size_t i = 0; i < 16 && (i + 1) * 8 <= size; i++) {
        uint64_t u;
        memcpy(&u, data + size - (i + 1) * 8, 8);
        (void)tz_localtime(z, (int64_t)u, &lt);
        (void)tz_localtime(z, (int64_t)(u % (uint64_t)(TZ_TIME_MAX - TZ_TIME_MIN)) + TZ_TIME_MIN,
                           &lt);
    }
    static const tz_fields_t fields[] = {
        {2026, 3, 29, 2, 30, 0},    {2026, 10, 25, 2, 30, 0},   {1, 1, 1, 0, 0, 0},
        {9999, 12, 31, 23, 59, 59}, {2024, 13, 32, 25, 61, 61}, {0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        int64_t t;
        tz_resolution_t how;
        (void)tz_resolve(z, &fields[i], &t, &how);
    }
    (void)tz_zone_name(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char err[256];
    tz_zone_t *z = tz_parse_tzif(data, size, "Fuzz/Zone", err, sizeof err);
    if (z) {
        zone_walk(z, data, size);
        tz_free(z);
    }
    if (size <= 256) {
        char *s = fuzz_strndup(data, size);
        if (s) {
            z = tz_from_posix(s, err, sizeof err);
            if (z) {
                zone_walk(z, data, size);
                tz_free(z);
            }
            (void)tz_name_valid(s);
            free(s);
        }
    }
    return 0;
}
