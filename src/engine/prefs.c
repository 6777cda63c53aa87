#include "engine/prefs.h"

#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "p2|<version>|<has_email><has_phone>|<consent x3>|<opt_out
 * x3>|<email_suppressed>|HH:MM|HH:MM|<tz>|<channels JSON>": flags as 0/1 digits. Neither a time
 * zone name nor a list of channel names holds a '|', so the fields split without escaping; the
 * format prefix lets one format be told apart from another during a rolling upgrade (p1, made
 * before the suppression list, is a miss: read again from PostgreSQL). */
#define PREFS_VERSION "p2"

char *prefs_encode(const store_client_facts_t *f)
{
    buf_t b;
    buf_init(&b, 512);
    int rc = buf_printf(&b, PREFS_VERSION "|%lld|%d%d|", f->prefs_version, f->has_email ? 1 : 0,
                        f->has_phone ? 1 : 0);
    for (int ch = 0; ch < CH_N; ch++)
        rc |= buf_putc(&b, f->consent[ch] ? '1' : '0');
    rc |= buf_putc(&b, '|');
    for (int ch = 0; ch < CH_N; ch++)
        rc |= buf_putc(&b, f->opt_out[ch] ? '1' : '0');
    rc |= buf_printf(&b, "|%d|%s|%s|%s|%s", f->email_suppressed ? 1 : 0, f->quiet_start,
                     f->quiet_end, f->timezone ? f->timezone : "UTC",
                     f->preferred_channels_json ? f->preferred_channels_json : "[]");
    if (rc != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* The next '|'-terminated field of *p, or the rest when last. */
static int prefs_field(const char **p, const char **start, size_t *len, int last)
{
    *start = *p;
    const char *bar = last ? NULL : strchr(*p, '|');
    if (!last && !bar)
        return -1;
    *len = last ? strlen(*p) : (size_t)(bar - *p);
    *p = last ? *p + *len : bar + 1;
    return 0;
}

static int prefs_flags(const char *s, size_t len, int *out, int n)
{
    if (len != (size_t)n)
        return -1;
    for (int i = 0; i < n; i++) {
        if (s[i] != '0' && s[i] != '1')
            return -1;
        out[i] = s[i] == '1';
    }
    return 0;
}

/* The fields of the text, in order. */
enum {
    PF_FORMAT,
    PF_VERSION,
    PF_CONTACT,
    PF_CONSENT,
    PF_OPT_OUT,
    PF_SUPPRESSED,
    PF_QS,
    PF_QE,
    PF_TZ,
    PF_CHANNELS,
    PF_N
};

/* A decimal version of len digits (no sign, no more than fit): 0, or -1. */
static int prefs_number(const char *s, size_t len, long long *out)
{
    if (len == 0 || len > 18)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int prefs_decode(const char *text, store_client_facts_t *f)
{
    const char *p = text;
    const char *s[PF_N];
    size_t len[PF_N];
    for (int i = 0; i < PF_N; i++)
        if (prefs_field(&p, &s[i], &len[i], i == PF_N - 1) != 0)
            return -1;
    long long version;
    int contact[2], consent[CH_N], opt_out[CH_N], suppressed;
    if (len[PF_FORMAT] != 2 || memcmp(s[PF_FORMAT], PREFS_VERSION, 2) != 0 ||
        prefs_number(s[PF_VERSION], len[PF_VERSION], &version) ||
        prefs_flags(s[PF_CONTACT], len[PF_CONTACT], contact, 2) ||
        prefs_flags(s[PF_CONSENT], len[PF_CONSENT], consent, CH_N) ||
        prefs_flags(s[PF_OPT_OUT], len[PF_OPT_OUT], opt_out, CH_N) ||
        prefs_flags(s[PF_SUPPRESSED], len[PF_SUPPRESSED], &suppressed, 1) ||
        len[PF_QS] >= sizeof f->quiet_start || len[PF_QE] >= sizeof f->quiet_end ||
        len[PF_TZ] == 0 || len[PF_CHANNELS] == 0)
        return -1;
    char *tz = strndup(s[PF_TZ], len[PF_TZ]);
    char *chans = strndup(s[PF_CHANNELS], len[PF_CHANNELS]);
    if (!tz || !chans) {
        free(tz);
        free(chans);
        return -1;
    }
    f->prefs_version = version;
    f->has_email = contact[0];
    f->has_phone = contact[1];
    memcpy(f->consent, consent, sizeof f->consent);
    memcpy(f->opt_out, opt_out, sizeof f->opt_out);
    f->email_suppressed = suppressed;
    memcpy(f->quiet_start, s[PF_QS], len[PF_QS]);
    f->quiet_start[len[PF_QS]] = '\0';
    memcpy(f->quiet_end, s[PF_QE], len[PF_QE]);
    f->quiet_end[len[PF_QE]] = '\0';
    free(f->timezone);
    free(f->preferred_channels_json);
    f->timezone = tz;
    f->preferred_channels_json = chans;
    return 0;
}

int prefs_publish(prefcache_t *pc, PGconn *conn, const char *const *ids, int n, char *err,
                  size_t errlen)
{
    if (n <= 0 || n > PREFCACHE_MAX || !prefcache_enabled(pc))
        return 0;
    store_client_facts_t facts[PREFCACHE_MAX];
    if (store_client_facts_load(conn, ids, n, facts, err, errlen) != 0)
        return -1;
    char *text[PREFCACHE_MAX] = {0};
    for (int i = 0; i < n; i++)
        if (facts[i].found && !facts[i].erased)
            text[i] = prefs_encode(&facts[i]); /* NULL (out of memory) deletes: safe */
    (void)prefcache_put(pc, ids, (const char *const *)text, n);
    for (int i = 0; i < n; i++)
        free(text[i]);
    store_client_facts_free(facts, n);
    return 0;
}
