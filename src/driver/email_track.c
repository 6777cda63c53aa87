/* email_track: tracking an email as it is prepared (see email_track.h). */
#include "driver/email_track.h"

#include "crypto/linktok.h"
#include "store/tracking.h"
#include "template/links.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The next name of the comma-separated list at *p, trimmed, into
 * *name[0..*n); advances *p. 0 at the end of the list. */
static int email_track_next(const char **p, const char **name, size_t *n)
{
    if (!*p || !**p)
        return 0;
    const char *end = strchr(*p, ',');
    const char *a = *p, *z = end ? end : *p + strlen(*p);
    while (a < z && (*a == ' ' || *a == '\t'))
        a++;
    while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
        z--;
    *name = a;
    *n = (size_t)(z - a);
    *p = end ? end + 1 : NULL;
    return 1;
}

/* 1 when name is one of the names of list. */
static int email_track_listed(const char *list, const char *name)
{
    const char *item;
    size_t n;
    for (const char *p = list; email_track_next(&p, &item, &n);)
        if (n == strlen(name) && strncmp(item, name, n) == 0)
            return 1;
    return 0;
}

int email_track_check(const cfg_t *cfg, char *err, size_t errlen)
{
    const char *item;
    size_t n;
    for (const char *p = cfg->tracking_off_types; email_track_next(&p, &item, &n);) {
        if (n == 0)
            continue; /* "a,,b" or a trailing comma */
        int known = 0;
        for (size_t i = 0; i < VAL_MESSAGE_TYPES && !known; i++)
            known =
                strlen(val_message_types[i]) == n && strncmp(val_message_types[i], item, n) == 0;
        if (!known) {
            snprintf(err, errlen, "CRIER_TRACKING_OFF_TYPES: \"%.*s\" is no message type",
                     (int)(n > 64 ? 64 : n), item);
            return -1;
        }
    }
    return 0;
}

int email_track_on(const cfg_t *cfg, const char *message_type)
{
    return cfg->tracking && message_type &&
           !email_track_listed(cfg->tracking_off_types, message_type);
}

int email_track_apply(const drv_env_t *env, PGconn *conn, const queue_job_t *job, char **html,
                      outcome_t *out)
{
    if (!*html || !email_track_on(env->cfg, job->message_type))
        return 0;
    char err[512];
    links_opts_t o = {
        .public_url = env->cfg->public_url,
        .key = env->keys->link,
        .communication_id = job->id,
        .day = linktok_day(time(NULL)),
        .max_links = LINKS_MAX_DEFAULT,
    };
    char *tracked = NULL;
    links_t l;
    if (links_rewrite(*html, &o, &tracked, &l, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "tracking", err);
        return -1;
    }
    /* Stored before the send: a click can come as soon as the mail lands. */
    if (store_links_put(conn, job->id, l.url, l.n, err, sizeof err) != 0) {
        free(tracked);
        links_free(&l);
        outcome_fail(out, ERRC_TRANSIENT, 0, "tracking", err);
        return -1;
    }
    links_free(&l);
    free(*html);
    *html = tracked;
    return 0;
}
