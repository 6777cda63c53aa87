/* Parsing of TZif files (RFC 8536) and of POSIX TZ strings (their footers).
 *
 * Every count and index read from a file is checked against the bytes that
 * are actually there before it is used: a zone file is input like any
 * other. */
#include "tz/tz_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZIF_HEADER_LEN 44
/* RFC 8536: offsets must lie in -89999..93599 (-24:59:59 .. 25:59:59). */
#define TZIF_UTOFF_MIN (-89999)
#define TZIF_UTOFF_MAX 93599

static void tz_seterr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* ---- POSIX TZ strings ---------------------------------------------------- */

typedef struct {
    const char *p;
    const char *end;
} tz_cursor_t;

static int cur_more(const tz_cursor_t *c)
{
    return c->p < c->end;
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* An abbreviation: three or more letters, or anything of [A-Za-z0-9+-]
 * between '<' and '>' (for names such as "<+0530>"). */
static int parse_abbr(tz_cursor_t *c, char out[16])
{
    size_t n = 0;
    if (cur_more(c) && *c->p == '<') {
        c->p++;
        while (cur_more(c) && *c->p != '>') {
            char ch = *c->p;
            if (!is_alpha(ch) && !is_digit(ch) && ch != '+' && ch != '-')
                return -1;
            if (n >= 15)
                return -1;
            out[n++] = ch;
            c->p++;
        }
        if (!cur_more(c))
            return -1;
        c->p++; /* '>' */
    } else {
        while (cur_more(c) && is_alpha(*c->p)) {
            if (n >= 15)
                return -1;
            out[n++] = *c->p++;
        }
    }
    out[n] = '\0';
    return n >= 3 ? 0 : -1;
}

/* [+-]hh[:mm[:ss]] with hours up to max_hours; sets *secs. */
static int parse_hms(tz_cursor_t *c, int max_hours, int32_t *secs)
{
    int sign = 1;
    if (cur_more(c) && (*c->p == '+' || *c->p == '-')) {
        sign = *c->p == '-' ? -1 : 1;
        c->p++;
    }
    int part[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (!cur_more(c) || *c->p != ':')
                break;
            c->p++;
        }
        int digits = 0, v = 0;
        while (cur_more(c) && is_digit(*c->p) && digits < 3) {
            v = v * 10 + (*c->p - '0');
            c->p++;
            digits++;
        }
        if (digits == 0 || (i > 0 && digits != 2))
            return -1;
        part[i] = v;
    }
    if (part[0] > max_hours || part[1] > 59 || part[2] > 59)
        return -1;
    *secs = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    return 0;
}

static int parse_num(tz_cursor_t *c, int lo, int hi, int *out)
{
    int digits = 0, v = 0;
    while (cur_more(c) && is_digit(*c->p) && digits < 4) {
        v = v * 10 + (*c->p - '0');
        c->p++;
        digits++;
    }
    if (digits == 0 || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* ",date[/time]" where date is Jn, n or Mm.w.d. */
static int parse_rule(tz_cursor_t *c, tz_rule_t *r)
{
    memset(r, 0, sizeof *r);
    if (!cur_more(c))
        return -1;
    if (*c->p == 'J') {
        c->p++;
        r->kind = TZ_RULE_JULIAN1;
        if (parse_num(c, 1, 365, &r->day) != 0)
            return -1;
    } else if (*c->p == 'M') {
        c->p++;
        r->kind = TZ_RULE_MWD;
        if (parse_num(c, 1, 12, &r->month) != 0 || !cur_more(c) || *c->p++ != '.' ||
            parse_num(c, 1, 5, &r->week) != 0 || !cur_more(c) || *c->p++ != '.' ||
            parse_num(c, 0, 6, &r->wday) != 0)
            return -1;
    } else {
        r->kind = TZ_RULE_JULIAN0;
        if (parse_num(c, 0, 365, &r->day) != 0)
            return -1;
    }
    r->secs = 2 * 3600; /* POSIX default: 02:00 */
    if (cur_more(c) && *c->p == '/') {
        c->p++;
        /* RFC 8536 version 3 allows -167..167 hours here. */
        if (parse_hms(c, 167, &r->secs) != 0)
            return -1;
    }
    return 0;
}

int tz_posix_parse(const char *s, size_t len, tz_posix_t *out)
{
    tz_cursor_t c = {s, s + len};
    int32_t off;
    memset(out, 0, sizeof *out);
    if (parse_abbr(&c, out->std.abbr) != 0 || parse_hms(&c, 24, &off) != 0)
        return -1;
    /* POSIX offsets count hours west of Greenwich; ours count east. */
    out->std.utoff = -off;
    out->std.isdst = 0;
    if (!cur_more(&c))
        return 0;
    if (parse_abbr(&c, out->dst.abbr) != 0)
        return -1;
    out->has_dst = 1;
    out->dst.isdst = 1;
    out->dst.utoff = out->std.utoff + 3600; /* default: one hour ahead */
    if (cur_more(&c) && *c.p != ',') {
        if (parse_hms(&c, 24, &off) != 0)
            return -1;
        out->dst.utoff = -off;
    }
    if (!cur_more(&c)) {
        /* No rule given: POSIX leaves it to the implementation; use the
         * United States rules, as the tz reference code does. */
        out->start = (tz_rule_t){.kind = TZ_RULE_MWD, .month = 3, .week = 2, .secs = 7200};
        out->end = (tz_rule_t){.kind = TZ_RULE_MWD, .month = 11, .week = 1, .secs = 7200};
        return 0;
    }
    if (*c.p++ != ',' || parse_rule(&c, &out->start) != 0)
        return -1;
    if (!cur_more(&c) || *c.p++ != ',' || parse_rule(&c, &out->end) != 0)
        return -1;
    return cur_more(&c) ? -1 : 0;
}

/* ---- TZif ---------------------------------------------------------------- */

typedef struct {
    int version; /* 1, 2, 3, 4 */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header_t;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t be64(const unsigned char *p)
{
    uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
    return (int64_t)v; /* two's complement on every platform we build for */
}

static int tzif_header(const unsigned char *p, size_t len, tzif_header_t *h)
{
    if (len < TZIF_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return -1;
    if (p[4] == 0)
        h->version = 1;
    else if (p[4] >= '2' && p[4] <= '9')
        h->version = p[4] - '0';
    else
        return -1;
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    return 0;
}

/* Bytes of the data block that follows a header, for time size tsize. */
static uint64_t tzif_block_len(const tzif_header_t *h, unsigned tsize)
{
    return (uint64_t)h->timecnt * tsize + h->timecnt + (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static int tzif_block(const unsigned char *p, const tzif_header_t *h, unsigned tsize, tz_zone_t *z,
                      const char **why)
{
    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0) {
        *why = "bad type or abbreviation count";
        return -1;
    }
    if (h->leapcnt != 0) {
        *why = "leap-second zones are not supported";
        return -1;
    }
    if ((h->isstdcnt != 0 && h->isstdcnt != h->typecnt) ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt)) {
        *why = "bad indicator count";
        return -1;
    }
    z->ntrans = h->timecnt;
    z->ntypes = h->typecnt;
    z->trans = calloc(h->timecnt ? h->timecnt : 1, sizeof *z->trans);
    z->trans_type = calloc(h->timecnt ? h->timecnt : 1, 1);
    z->types = calloc(h->typecnt, sizeof *z->types);
    if (!z->trans || !z->trans_type || !z->types) {
        *why = "out of memory";
        return -1;
    }
    const unsigned char *times = p;
    const unsigned char *idx = times + (size_t)h->timecnt * tsize;
    const unsigned char *ttinfo = idx + h->timecnt;
    const unsigned char *chars = ttinfo + (size_t)h->typecnt * 6;
    for (uint32_t i = 0; i < h->timecnt; i++) {
        const unsigned char *tp = times + (size_t)i * tsize;
        z->trans[i] = tsize == 8 ? be64(tp) : (int64_t)(int32_t)be32(tp);
        if (i > 0 && z->trans[i] <= z->trans[i - 1]) {
            *why = "transitions out of order";
            return -1;
        }
        if (idx[i] >= h->typecnt) {
            *why = "bad transition type";
            return -1;
        }
        z->trans_type[i] = idx[i];
    }
    for (uint32_t i = 0; i < h->typecnt; i++) {
        const unsigned char *tt = ttinfo + (size_t)i * 6;
        int32_t utoff = (int32_t)be32(tt);
        unsigned ai = tt[5];
        if (utoff < TZIF_UTOFF_MIN || utoff > TZIF_UTOFF_MAX || tt[4] > 1 || ai >= h->charcnt) {
            *why = "bad local time type";
            return -1;
        }
        size_t room = h->charcnt - ai;
        const char *abbr = (const char *)chars + ai;
        size_t alen = strnlen(abbr, room);
        if (alen == room || alen >= sizeof z->types[i].abbr) {
            *why = "bad abbreviation";
            return -1;
        }
        z->types[i].utoff = utoff;
        z->types[i].isdst = tt[4];
        memcpy(z->types[i].abbr, abbr, alen + 1);
    }
    return 0;
}

void tz_free(tz_zone_t *z)
{
    if (!z)
        return;
    free(z->trans);
    free(z->trans_type);
    free(z->types);
    free(z);
}

tz_zone_t *tz_parse_tzif(const unsigned char *data, size_t len, const char *name, char *err,
                         size_t errlen)
{
    const char *why = "truncated";
    tzif_header_t h;
    tz_zone_t *z = calloc(1, sizeof *z);
    if (!z) {
        tz_seterr(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(z->name, sizeof z->name, "%s", name ? name : "");
    if (tzif_header(data, len, &h) != 0) {
        why = "not a TZif file";
        goto fail;
    }
    uint64_t v1len = tzif_block_len(&h, 4);
    if (v1len > len - TZIF_HEADER_LEN)
        goto fail;
    if (h.version == 1) {
        /* Version 1: 32-bit data only and no footer rule. */
        if (tzif_block(data + TZIF_HEADER_LEN, &h, 4, z, &why) != 0)
            goto fail;
        return z;
    }
    /* Version 2+: skip the 32-bit block; the 64-bit one follows. */
    size_t off = TZIF_HEADER_LEN + (size_t)v1len;
    if (tzif_header(data + off, len - off, &h) != 0 || h.version < 2) {
        why = "bad second header";
        goto fail;
    }
    off += TZIF_HEADER_LEN;
    uint64_t v2len = tzif_block_len(&h, 8);
    if (v2len > len - off)
        goto fail;
    if (tzif_block(data + off, &h, 8, z, &why) != 0)
        goto fail;
    off += (size_t)v2len;
    /* Footer: "\n" TZ-string "\n"; an empty string means no rule. */
    if (off >= len || data[off] != '\n') {
        why = "missing footer";
        goto fail;
    }
    const unsigned char *fs = data + off + 1;
    const unsigned char *fe = memchr(fs, '\n', len - off - 1);
    if (!fe) {
        why = "unterminated footer";
        goto fail;
    }
    if (fe > fs) {
        if (tz_posix_parse((const char *)fs, (size_t)(fe - fs), &z->posix) != 0) {
            why = "bad footer TZ string";
            goto fail;
        }
        z->has_posix = 1;
    }
    return z;
fail:
    if (err && errlen)
        snprintf(err, errlen, "corrupt time zone file: %s", why);
    tz_free(z);
    return NULL;
}

tz_zone_t *tz_from_posix(const char *tzstring, char *err, size_t errlen)
{
    tz_zone_t *z = calloc(1, sizeof *z);
    if (!z) {
        tz_seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (!tzstring || tz_posix_parse(tzstring, strlen(tzstring), &z->posix) != 0) {
        tz_seterr(err, errlen, "invalid POSIX TZ string");
        free(z);
        return NULL;
    }
    z->has_posix = 1;
    /* Every zone has at least one type; before any transition (there are
     * none) the rule applies, so this one is only a placeholder. */
    z->types = calloc(1, sizeof *z->types);
    if (!z->types) {
        tz_seterr(err, errlen, "out of memory");
        free(z);
        return NULL;
    }
    z->types[0] = z->posix.std;
    z->ntypes = 1;
    return z;
}
