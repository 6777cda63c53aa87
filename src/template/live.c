#include "template/live.h"

#include "channel/ch.h"

#include "util/json_text.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define LIVE_DEBOUNCE_MS 150 /* editors and deployers write a file in several steps */
#define LIVE_ERR_MAX     768

/* The folders a catalogue is read from (template/catalog.h), and the
 * examples its check renders. */
static const char *const live_subdirs[] = {CH_NAME_EMAIL, CH_NAME_EMAIL "/partials", CH_NAME_SMS,
                                           CH_NAME_WHATSAPP, "examples"};

struct tpl_live {
    char dir[1024];
    const tpl_check_opts_t *opts; /* borrowed */
    pthread_mutex_t mu;           /* guards cur and the status below */
    tpl_catalog_t *cur;           /* one reference owned */
    double loaded_at;             /* when cur went live */
    int last_ok;
    double last_at;
    char last_error[LIVE_ERR_MAX]; /* "" after a reload that passed */
    pthread_mutex_t reload_mu;     /* one reload at a time */
    atomic_long reloads_ok, reloads_error;
    int inotify_fd; /* -1 when not watching */
    pthread_t watcher;
    int watching;
    atomic_int stop;
};

/* Loads and checks the directory: the new catalogue, or NULL with err. */
static tpl_catalog_t *live_load(const tpl_live_t *t, char *err, size_t errlen)
{
    char why[LIVE_ERR_MAX - 64];
    tpl_catalog_t *c = tpl_catalog_load(t->dir, why, sizeof why);
    if (!c) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    int failed = tpl_check_examples(c, t->dir, t->opts, NULL, NULL, why, sizeof why);
    if (failed == 0)
        return c;
    if (failed == 1)
        snprintf(err, errlen, "%s", why);
    else
        snprintf(err, errlen, "%s (and %d more failing)", why, failed - 1);
    tpl_catalog_free(c);
    return NULL;
}

/* (Re-)adds a watch on every folder of the catalogue: a folder made or
 * replaced since the last time (a ConfigMap swaps its links) is watched
 * from now on; one already watched keeps its watch. */
static void live_watch_dirs(tpl_live_t *t)
{
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                          IN_ATTRIB | IN_DELETE_SELF;
    for (size_t i = 0; i < sizeof live_subdirs / sizeof live_subdirs[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", t->dir, live_subdirs[i]);
        (void)inotify_add_watch(t->inotify_fd, path, mask); /* a folder may be absent */
    }
}

int tpl_live_reload(tpl_live_t *t)
{
    pthread_mutex_lock(&t->reload_mu);
    char err[LIVE_ERR_MAX];
    tpl_catalog_t *c = live_load(t, err, sizeof err);
    double now = time_now();
    if (!c) {
        pthread_mutex_lock(&t->mu);
        t->last_ok = 0;
        t->last_at = now;
        snprintf(t->last_error, sizeof t->last_error, "%s", err);
        char kept[32];
        snprintf(kept, sizeof kept, "%s", tpl_catalog_version(t->cur));
        pthread_mutex_unlock(&t->mu);
        atomic_fetch_add(&t->reloads_error, 1);
        log_error("templates", "reload_failed", "error", err, "kept", kept, NULL);
        pthread_mutex_unlock(&t->reload_mu);
        return -1;
    }
    tpl_catalog_t *old = NULL;
    char was[32], now_v[32];
    snprintf(now_v, sizeof now_v, "%s", tpl_catalog_version(c));
    pthread_mutex_lock(&t->mu);
    snprintf(was, sizeof was, "%s", tpl_catalog_version(t->cur));
    if (strcmp(was, now_v) != 0) {
        old = t->cur;
        t->cur = c;
        t->loaded_at = now;
        c = NULL;
    }
    t->last_ok = 1;
    t->last_at = now;
    t->last_error[0] = '\0';
    pthread_mutex_unlock(&t->mu);
    atomic_fetch_add(&t->reloads_ok, 1);
    if (old)
        log_info("templates", "loaded", "version", now_v, "previous", was, NULL);
    /* the replaced one goes when its last reader lets go; an unchanged
     * reload's copy goes now */
    tpl_catalog_free(old);
    tpl_catalog_free(c);
    if (t->inotify_fd >= 0)
        live_watch_dirs(t);
    pthread_mutex_unlock(&t->reload_mu);
    return 0;
}

/* Waits for changes in the catalogue's folders and reloads once they
 * settle. */
static void *live_watch(void *arg)
{
    tpl_live_t *t = arg;
    char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (!atomic_load(&t->stop)) {
        struct pollfd pfd = {.fd = t->inotify_fd, .events = POLLIN};
        if (poll(&pfd, 1, 250) <= 0)
            continue;
        int changed = 0;
        do {
            while (read(t->inotify_fd, ev, sizeof ev) > 0)
                changed = 1;
            pfd.revents = 0;
        } while (poll(&pfd, 1, LIVE_DEBOUNCE_MS) > 0 && !atomic_load(&t->stop));
        if (changed && !atomic_load(&t->stop))
            tpl_live_reload(t);
    }
    return NULL;
}

static void live_free(tpl_live_t *t)
{
    tpl_catalog_free(t->cur);
    pthread_mutex_destroy(&t->reload_mu);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

tpl_live_t *tpl_live_start(const char *dir, const tpl_check_opts_t *opts, int watch, char *err,
                           size_t errlen)
{
    if (!dir || !*dir) {
        snprintf(err, errlen, "no templates directory configured");
        return NULL;
    }
    tpl_live_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strlen(dir) >= sizeof t->dir) {
        snprintf(err, errlen, "templates directory path too long");
        free(t);
        return NULL;
    }
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    t->opts = opts;
    t->inotify_fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->reload_mu, NULL);
    t->cur = live_load(t, err, errlen);
    if (!t->cur) {
        live_free(t);
        return NULL;
    }
    t->loaded_at = t->last_at = time_now();
    t->last_ok = 1;
    if (!watch)
        return t;
    t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (t->inotify_fd >= 0 && inotify_add_watch(t->inotify_fd, t->dir,
                                                IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                                    IN_CREATE | IN_DELETE | IN_ATTRIB) >= 0) {
        live_watch_dirs(t);
        if (pthread_create(&t->watcher, NULL, live_watch, t) == 0)
            t->watching = 1;
    }
    if (!t->watching) {
        /* SIGHUP still reloads; say why edits are not picked up by themselves */
        log_warn("templates", "watch_unavailable", "error", strerror(errno), "reload", "SIGHUP",
                 NULL);
        if (t->inotify_fd >= 0)
            close(t->inotify_fd);
        t->inotify_fd = -1;
    }
    return t;
}

void tpl_live_stop(tpl_live_t *t)
{
    if (!t)
        return;
    atomic_store(&t->stop, 1);
    if (t->watching)
        pthread_join(t->watcher, NULL);
    if (t->inotify_fd >= 0)
        close(t->inotify_fd);
    live_free(t);
}

tpl_catalog_t *tpl_live_acquire(tpl_live_t *t)
{
    if (!t)
        return NULL;
    pthread_mutex_lock(&t->mu);
    tpl_catalog_t *c = tpl_catalog_acquire(t->cur);
    pthread_mutex_unlock(&t->mu);
    return c;
}

int tpl_live_status_json(tpl_live_t *t, buf_t *out)
{
    tpl_catalog_t *c = tpl_live_acquire(t);
    pthread_mutex_lock(&t->mu);
    char loaded[32], at[32];
    time_iso8601(t->loaded_at, loaded);
    time_iso8601(t->last_at, at);
    int rc = buf_puts(out, "{\"templates_dir\":") | jtext_string(out, t->dir);
    rc |= buf_puts(out, ",\"version\":") | jtext_string(out, tpl_catalog_version(c));
    rc |= buf_puts(out, ",\"loaded_at\":") | jtext_string(out, loaded);
    rc |= buf_printf(out, ",\"last_reload\":{\"ok\":%s,\"at\":", t->last_ok ? "true" : "false");
    rc |= jtext_string(out, at) | buf_puts(out, ",\"error\":");
    rc |= t->last_error[0] ? jtext_string(out, t->last_error) : buf_puts(out, "null");
    pthread_mutex_unlock(&t->mu);
    rc |= buf_printf(out, "},\"reloads\":{\"ok\":%ld,\"error\":%ld},\"templates\":[",
                     atomic_load(&t->reloads_ok), atomic_load(&t->reloads_error));
    size_t n = tpl_catalog_count(c);
    for (size_t i = 0; i < n; i++) {
        tpl_source_t s;
        if (tpl_catalog_entry(c, i, &s) != 0)
            continue;
        rc |= buf_puts(out, i ? ",{\"name\":" : "{\"name\":") | jtext_string(out, s.name);
        rc |= buf_puts(out, ",\"channel\":") | jtext_string(out, s.channel);
        rc |= buf_puts(out, ",\"version\":") | jtext_string(out, s.version) | buf_putc(out, '}');
    }
    rc |= buf_puts(out, "]}");
    tpl_catalog_free(c);
    return rc;
}

void tpl_live_counters(tpl_live_t *t, tpl_live_counters_t *out)
{
    memset(out, 0, sizeof *out);
    if (!t)
        return;
    out->reloads_ok = atomic_load(&t->reloads_ok);
    out->reloads_error = atomic_load(&t->reloads_error);
    pthread_mutex_lock(&t->mu);
    out->last_ok = t->last_ok;
    snprintf(out->version, sizeof out->version, "%s", tpl_catalog_version(t->cur));
    pthread_mutex_unlock(&t->mu);
}
