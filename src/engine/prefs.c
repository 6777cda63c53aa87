#include "engine/prefs.h"

#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "p1|<version>|<has_email><has_phone>|<consent x3>|<opt_out x3>|HH:MM|HH:MM|<tz>|<channels JSON>":
 * flags as 0/1 digits. Neither a time zone name nor a list of channel names
 * holds a '|', so the fields split without escaping; the version prefix lets
 * a later format be told apart from this one during a rolling upgrade. */
#define PREFS_VERSION "p1"

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
    rc |= buf_printf(&b, "|%s|%s|%s|%s", f->quiet_start, f->quiet_end,
                     f->timezone ? f->timezone : "UTC",
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

int prefs_decode(const char *text, store_client_facts_t *f)
{
    const char *p = text;
    const char *s[9];
    size_t len[9];
    for (int i = 0; i < 9; i++)
        if (prefs_field(&p, &s[i], &len[i], i == 8) != 0)
            return -1;
    /* the version first: the rest is read as the fields after it */
    char num[24];
    char *end = NULL;
    if (len[1] == 0 || len[1] >= sizeof num)
        return -1;
    memcpy(num, s[1], len[1]);
    num[len[1]] = '\0';
    long long version = strtoll(num, &end, 10);
    if (*end != '\0' || version < 0)
        return -1;
    for (int i = 1; i < 8; i++) {
        s[i] = s[i + 1];
        len[i] = len[i + 1];
    }
    int contact[2], consent[CH_N], opt_out[CH_N];
    if (len[0] != 2 || memcmp(s[0], PREFS_VERSION, 2) != 0 ||
        prefs_flags(s[1], len[1], contact, 2) || prefs_flags(s[2], len[2], consent, CH_N) ||
        prefs_flags(s[3], len[3], opt_out, CH_N) || len[4] >= sizeof f->quiet_start ||
        len[5] >= sizeof f->quiet_end || len[6] == 0 || len[7] == 0)
        return -1;
    char *tz = strndup(s[6], len[6]);
    char *chans = strndup(s[7], len[7]);
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
    memcpy(f->quiet_start, s[4], len[4]);
    f->quiet_start[len[4]] = '\0';
    memcpy(f->quiet_end, s[5], len[5]);
    f->quiet_end[len[5]] = '\0';
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
