/* tz: IANA time zones read from the system's compiled tzdata (TZif files).
 *
 * The C library's localtime()/mktime() depend on the process-global TZ
 * variable, so using them for per-client zones would need setenv("TZ") and
 * tzset() around every call, which is neither thread-safe nor fast. This
 * module parses TZif files itself (RFC 8536, versions 1 to 4, 64-bit
 * transitions and the footer's POSIX TZ rule for instants past the last
 * transition) and answers conversions from immutable, cached zone objects.
 *
 * Zones are looked up under the directory named by the environment variable
 * CRIER_ZONEINFO_DIR (read once, at the first lookup), else under
 * TZ_DEFAULT_DIR. Files carrying leap-second corrections ("right/" zones)
 * are refused: crier counts POSIX seconds everywhere.
 *
 * Conversions (see tz_from_local for the exact rules):
 *   - a wall-clock time that does not exist (a DST gap) is moved forward by
 *     the length of the gap: New York 2026-03-08 02:30 becomes 03:30 EDT;
 *   - a wall-clock time that happens twice (an overlap) is the earlier
 *     instant: New York 2026-11-01 01:30 is 01:30 EDT (05:30Z), not EST;
 *   - out-of-range fields are normalised as mktime() does (day 32 of
 *     January is 1 February, hour -1 is 23:00 the day before). */
#ifndef CRIER_TZ_H
#define CRIER_TZ_H

#include <stddef.h>
#include <stdint.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX    64           /* longest zone name accepted, in bytes */
#define TZ_CACHE_ZONES 600          /* distinct zone files kept in the cache */
#define TZ_CACHE_NAMES 1000         /* names (zones and their aliases) kept */
#define TZ_FILE_MAX    (256 * 1024) /* larger TZif files are refused */
/* Instants outside years 1..9999 are refused, which keeps every calendar
 * computation far from integer overflow. */
#define TZ_TIME_MIN INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define TZ_TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

typedef struct tz_zone tz_zone_t;

/* A broken-down local time. */
typedef struct tz_local {
    int year;       /* e.g. 2026 */
    int month;      /* 1..12 */
    int day;        /* 1..31 */
    int hour;       /* 0..23 */
    int min;        /* 0..59 */
    int sec;        /* 0..59 */
    int wday;       /* 0 = Sunday .. 6 */
    int yday;       /* 0 = 1 January .. 365 */
    int utc_offset; /* seconds east of UTC (local = UTC + utc_offset) */
    int is_dst;     /* 1 in daylight-saving time */
    char abbr[16];  /* e.g. "EDT", "+0530" */
} tz_local_t;

/* A wall-clock time to resolve; fields may be out of range (normalised). */
typedef struct tz_fields {
    int year, month, day, hour, min, sec;
} tz_fields_t;

/* How tz_resolve found the instant of a wall-clock time. */
typedef enum {
    TZ_EXACT = 0,   /* the wall-clock time occurs exactly once */
    TZ_GAP = 1,     /* it does not occur: moved forward by the gap */
    TZ_OVERLAP = 2, /* it occurs twice: the earlier instant was taken */
} tz_resolution_t;

/* 1 if name is shaped like an IANA zone name: at most TZ_NAME_MAX bytes of
 * [A-Za-z0-9_+-] components joined by single '/', starting with an
 * upper-case letter. That shape cannot climb out of the zone directory
 * ("..", leading '/'), and it also keeps out tzdata's non-zone files
 * ("posixrules", "zone.tab", "leapseconds") and the "posix/" and "right/"
 * trees. */
int tz_name_valid(const char *name);

/* The zone called name, from the cache or loaded into it. The zone is owned
 * by the cache and lives until the process ends; it is immutable, so it may
 * be used from any thread. Returns NULL with a message in err (never
 * containing more than the name) for an invalid name, an unknown zone, an
 * unreadable or corrupt file, or a full cache. Thread-safe. */
const tz_zone_t *tz_get(const char *name, char *err, size_t errlen);

/* Loads name from dir without the cache; the caller owns the result and
 * frees it with tz_free. Same errors as tz_get. */
tz_zone_t *tz_load(const char *dir, const char *name, char *err, size_t errlen);
/* Parses TZif bytes; the caller owns the result (tz_free). name is copied. */
tz_zone_t *tz_parse_tzif(const unsigned char *data, size_t len, const char *name, char *err,
                         size_t errlen);
/* A zone defined only by a POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0"
 * (with the RFC 8536 version 3 extensions: rule times from -167 to 167
 * hours). The caller owns the result (tz_free). */
tz_zone_t *tz_from_posix(const char *tzstring, char *err, size_t errlen);
void tz_free(tz_zone_t *z);

/* The name the zone's file was first loaded under: aliases that are the
 * same file ("US/Eastern", "America/New_York") share one cached zone, so
 * this may be either ("" for tz_from_posix zones). */
const char *tz_zone_name(const tz_zone_t *z);

/* Local time at t (epoch seconds). 0, or -1 if t is outside
 * TZ_TIME_MIN..TZ_TIME_MAX. */
int tz_localtime(const tz_zone_t *z, int64_t t, tz_local_t *out);

/* The instant at which the wall clock of z shows f (after normalising f).
 * In a gap the result is the instant the wall clock reaches after moving
 * forward by the gap (the clock time read with the offset in force before
 * the gap), and *adjusted is set to 1; otherwise *adjusted is 0, and in an
 * overlap the earlier instant is returned. adjusted may be NULL. Returns 0,
 * or -1 if the fields or the result fall outside years 1..9999. */
int tz_from_local(const tz_zone_t *z, const tz_fields_t *f, int64_t *t_out, int *adjusted);
/* As tz_from_local, but also tells overlaps apart from exact times. */
int tz_resolve(const tz_zone_t *z, const tz_fields_t *f, int64_t *t_out, tz_resolution_t *how);

#endif
