/* Conversions between instants and wall-clock times in a parsed zone.
 *
 * A zone is seen as a sequence of periods, each with one local time type:
 * between two transitions of the file, and past the last one, between two
 * switches of the footer's POSIX rule. Both directions of conversion are
 * answered from the period(s) around the time asked about. */
#include "tz/tz_internal.h"

#include <string.h>

#define TZ_DAY 86400
/* Every offset lies within -89999..93599 s (checked at parse time), so the
 * instant showing a given wall-clock time lies within this distance of it. */
#define TZ_OFFSET_REACH 93600
/* A wall-clock time is resolved from the periods overlapping about two days;
 * no real zone changes offset this often, and the bound keeps a hostile
 * rule from making the walk long. */
#define TZ_RESOLVE_MAX_PERIODS 64

/* ---- calendar ------------------------------------------------------------ */

int64_t tz_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t tz_floor_mod(int64_t a, int64_t b)
{
    return a - tz_floor_div(a, b) * b;
}

int tz_is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int month_days(int64_t year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && tz_is_leap(year) ? 29 : days[month - 1];
}

/* The Gregorian calendar repeats every 400 years (146097 days). Counting
 * years from March makes the leap day the last day of the counted year, so
 * the day of the year follows from the month by a fixed pattern of
 * 31/30-day months (153 days per five months). */
int64_t tz_days_from_civil(int64_t year, int month, int day)
{
    int64_t y = month <= 2 ? year - 1 : year;
    int64_t cycle = tz_floor_div(y, 400);
    int64_t yoc = y - cycle * 400;               /* 0..399 */
    int mar = month > 2 ? month - 3 : month + 9; /* March = 0 */
    int64_t doy = (153 * mar + 2) / 5 + day - 1;
    int64_t doc = yoc * 365 + yoc / 4 - yoc / 100 + doy;
    /* 719468 days separate 0000-03-01 from 1970-01-01. */
    return cycle * 146097 + doc - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t cycle = tz_floor_div(z, 146097);
    int64_t doc = z - cycle * 146097; /* 0..146096 */
    /* Years of the cycle, discounting the leap days before this one. */
    int64_t yoc = (doc - doc / 1460 + doc / 36524 - doc / 146096) / 365;
    int64_t doy = doc - (365 * yoc + yoc / 4 - yoc / 100);
    int mar = (int)((5 * doy + 2) / 153);
    *day = (int)(doy - (153 * mar + 2) / 5 + 1);
    *month = mar < 10 ? mar + 3 : mar - 9;
    *year = yoc + cycle * 400 + (*month <= 2 ? 1 : 0);
}

/* ---- POSIX rules --------------------------------------------------------- */

/* Days since the epoch of the day rule r selects in year. */
static int64_t rule_day(const tz_rule_t *r, int64_t year)
{
    int64_t jan1 = tz_days_from_civil(year, 1, 1);
    switch (r->kind) {
    case TZ_RULE_JULIAN1:
        /* 29 February is never counted, so day 60 is always 1 March. */
        return jan1 + r->day - 1 + (tz_is_leap(year) && r->day >= 60 ? 1 : 0);
    case TZ_RULE_JULIAN0:
        return jan1 + r->day;
    case TZ_RULE_MWD:
    default: {
        int64_t first = tz_days_from_civil(year, r->month, 1);
        int first_wday = (int)tz_floor_mod(first + 4, 7); /* 1970-01-01 was a Thursday */
        int64_t d = first + (r->wday - first_wday + 7) % 7 + 7 * (r->week - 1);
        int64_t last = first + month_days(year, r->month) - 1;
        while (d > last) /* week 5 means the last such weekday */
            d -= 7;
        return d;
    }
    }
}

typedef struct {
    int64_t at;   /* the instant of the switch */
    int64_t year; /* ties are broken by year: the later year's switch wins */
    int to_dst;
} tz_switch_t;

typedef struct {
    int64_t start; /* INT64_MIN when unbounded */
    int64_t end;   /* exclusive; INT64_MAX when unbounded */
    const tz_type_t *type;
} tz_period_t;

static int switch_before(const tz_switch_t *a, const tz_switch_t *b)
{
    return a->at < b->at || (a->at == b->at && a->year < b->year);
}

/* The period of the footer rule containing t, not starting before floor. */
static void posix_period(const tz_posix_t *px, int64_t t, int64_t floor, tz_period_t *p)
{
    p->start = floor;
    p->end = INT64_MAX;
    p->type = &px->std;
    if (!px->has_dst)
        return;
    /* Rule times may reach 167 h past either end of their year, so the
     * switches of two years either side cover any t of year y. */
    int64_t y, yr;
    int m, d;
    tz_civil_from_days(tz_floor_div(t + px->std.utoff, TZ_DAY), &y, &m, &d);
    tz_switch_t sw[10];
    size_t n = 0;
    for (yr = y - 2; yr <= y + 2; yr++) {
        sw[n++] = (tz_switch_t){rule_day(&px->start, yr) * TZ_DAY + px->start.secs - px->std.utoff,
                                yr, 1};
        sw[n++] =
            (tz_switch_t){rule_day(&px->end, yr) * TZ_DAY + px->end.secs - px->dst.utoff, yr, 0};
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort of ten items */
        tz_switch_t cur = sw[i];
        size_t j = i;
        while (j > 0 && switch_before(&cur, &sw[j - 1])) {
            sw[j] = sw[j - 1];
            j--;
        }
        sw[j] = cur;
    }
    size_t k = n;
    for (size_t i = 0; i < n && sw[i].at <= t; i++)
        k = i;
    if (k == n) { /* unreachable for t of year y; stay standard */
        p->end = sw[0].at;
        return;
    }
    p->type = sw[k].to_dst ? &px->dst : &px->std;
    if (sw[k].at > floor)
        p->start = sw[k].at;
    for (size_t i = k + 1; i < n; i++) {
        if (sw[i].at > t) {
            p->end = sw[i].at;
            break;
        }
    }
}

/* The period of z containing t. */
static void period_at(const tz_zone_t *z, int64_t t, tz_period_t *p)
{
    if (z->ntrans == 0) {
        if (z->has_posix) {
            posix_period(&z->posix, t, INT64_MIN, p);
        } else {
            *p = (tz_period_t){INT64_MIN, INT64_MAX, &z->types[0]};
        }
        return;
    }
    if (t < z->trans[0]) {
        /* RFC 8536: type 0 governs the times before the first transition. */
        *p = (tz_period_t){INT64_MIN, z->trans[0], &z->types[0]};
        return;
    }
    size_t lo = 0, hi = z->ntrans; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    if (hi < z->ntrans) {
        *p = (tz_period_t){z->trans[lo], z->trans[hi], &z->types[z->trans_type[lo]]};
        return;
    }
    if (z->has_posix) {
        posix_period(&z->posix, t, z->trans[lo], p);
    } else {
        *p = (tz_period_t){z->trans[lo], INT64_MAX, &z->types[z->trans_type[lo]]};
    }
}

/* ---- conversions --------------------------------------------------------- */

const char *tz_zone_name(const tz_zone_t *z)
{
    return z->name;
}

int tz_localtime(const tz_zone_t *z, int64_t t, tz_local_t *out)
{
    if (t < TZ_TIME_MIN || t > TZ_TIME_MAX)
        return -1;
    tz_period_t p;
    period_at(z, t, &p);
    int64_t local = t + p.type->utoff;
    int64_t days = tz_floor_div(local, TZ_DAY);
    int64_t secs = local - days * TZ_DAY;
    int64_t year;
    tz_civil_from_days(days, &year, &out->month, &out->day);
    out->year = (int)year;
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
    out->wday = (int)tz_floor_mod(days + 4, 7);
    out->yday = (int)(days - tz_days_from_civil(year, 1, 1));
    out->utc_offset = p.type->utoff;
    out->is_dst = p.type->isdst;
    memcpy(out->abbr, p.type->abbr, sizeof out->abbr);
    return 0;
}

int tz_resolve(const tz_zone_t *z, const tz_fields_t *f, int64_t *t_out, tz_resolution_t *how)
{
    /* Normalise like mktime: months carry into years, everything else is
     * plain seconds added to the first of the (normalised) month. int64
     * arithmetic cannot overflow for any int fields. */
    int64_t m0 = (int64_t)f->month - 1;
    int64_t year = (int64_t)f->year + tz_floor_div(m0, 12);
    if (year < 0 || year > 10000)
        return -1;
    int month = (int)tz_floor_mod(m0, 12) + 1;
    int64_t wall = (tz_days_from_civil(year, month, 1) + (int64_t)f->day - 1) * TZ_DAY +
                   (int64_t)f->hour * 3600 + (int64_t)f->min * 60 + f->sec;
    if (wall < TZ_TIME_MIN || wall > TZ_TIME_MAX)
        return -1;

    /* Each period with offset o contributes the instant wall - o if that
     * instant lies inside it. Walk the periods that can hold such instants,
     * oldest first, so the first hit is the earlier of an overlap. */
    int64_t t = wall - TZ_OFFSET_REACH, hi = wall + TZ_OFFSET_REACH;
    int64_t found = 0, gap_t = 0;
    int hits = 0, have_gap = 0;
    tz_period_t p, prev = {0, 0, NULL};
    for (int i = 0; i < TZ_RESOLVE_MAX_PERIODS; i++) {
        period_at(z, t, &p);
        int64_t cand = wall - p.type->utoff;
        if (cand >= p.start && cand < p.end) {
            if (hits++ == 0)
                found = cand;
        } else if (prev.type && !have_gap && cand < p.start &&
                   wall - prev.type->utoff >= prev.end) {
            /* The wall clock jumped over this time between prev and p:
             * read it with the offset from before the jump, which lands
             * after the jump by the length of the gap. */
            have_gap = 1;
            gap_t = wall - prev.type->utoff;
        }
        if (p.end == INT64_MAX || p.end > hi)
            break;
        prev = p;
        t = p.end;
    }
    tz_resolution_t r;
    if (hits > 0) {
        r = hits > 1 ? TZ_OVERLAP : TZ_EXACT;
    } else if (have_gap) {
        r = TZ_GAP;
        found = gap_t;
    } else {
        /* Not reachable with offsets in range; answer like a gap. */
        period_at(z, wall, &p);
        r = TZ_GAP;
        found = wall - p.type->utoff;
    }
    if (found < TZ_TIME_MIN || found > TZ_TIME_MAX)
        return -1;
    *t_out = found;
    if (how)
        *how = r;
    return 0;
}

int tz_from_local(const tz_zone_t *z, const tz_fields_t *f, int64_t *t_out, int *adjusted)
{
    tz_resolution_t how;
    if (tz_resolve(z, f, t_out, &how) != 0)
        return -1;
    if (adjusted)
        *adjusted = how == TZ_GAP;
    return 0;
}
