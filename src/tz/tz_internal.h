/* tz_internal: the zone representation shared by the tz module's files
 * (parsing in tzfile.c, conversions in tz.c, the cache in tzcache.c). */
#ifndef CRIER_TZ_INTERNAL_H
#define CRIER_TZ_INTERNAL_H

#include "tz/tz.h"

#include <stddef.h>
#include <stdint.h>

/* One local time type: an offset, a DST flag and an abbreviation. */
typedef struct tz_type {
    int32_t utoff; /* seconds east of UTC */
    int isdst;
    char abbr[16];
} tz_type_t;

/* The day a POSIX TZ rule switches, and the local time of day it does so. */
typedef enum {
    TZ_RULE_JULIAN1, /* "Jn": day n, 1..365, never counting 29 February */
    TZ_RULE_JULIAN0, /* "n": zero-based day of the year, 0..365 */
    TZ_RULE_MWD,     /* "Mm.w.d": weekday d of week w (5 = last) of month m */
} tz_rule_kind_t;

typedef struct tz_rule {
    tz_rule_kind_t kind;
    int day;         /* JULIAN1, JULIAN0 */
    int month, week; /* MWD */
    int wday;        /* MWD, 0 = Sunday */
    int32_t secs;    /* local time of the switch, -167 h .. 167 h */
} tz_rule_t;

/* A parsed POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". */
typedef struct tz_posix {
    tz_type_t std;
    tz_type_t dst; /* meaningful when has_dst */
    int has_dst;
    tz_rule_t start; /* into DST, read in standard time */
    tz_rule_t end;   /* out of DST, read in daylight time */
} tz_posix_t;

struct tz_zone {
    char name[TZ_NAME_MAX + 1];
    int64_t *trans;      /* owned; strictly ascending transition instants */
    uint8_t *trans_type; /* owned; index into types for each transition */
    size_t ntrans;
    tz_type_t *types; /* owned; at least one */
    size_t ntypes;
    int has_posix; /* the footer rule governs times past the last transition */
    tz_posix_t posix;
};

/* Parses the len bytes at s as a POSIX TZ string; 0 or -1. */
int tz_posix_parse(const char *s, size_t len, tz_posix_t *out);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t tz_days_from_civil(int64_t year, int month, int day);
/* The inverse of tz_days_from_civil. */
void tz_civil_from_days(int64_t days, int64_t *year, int *month, int *day);
int tz_is_leap(int64_t year);
/* Floor division and the matching non-negative remainder. */
int64_t tz_floor_div(int64_t a, int64_t b);
int64_t tz_floor_mod(int64_t a, int64_t b);

#endif
