#include "policy/runtime.h"

#include "policy/rules_cases.h"
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

#define PRT_DEBOUNCE_MS 150 /* editors write a file in several steps */

struct prt {
    char dir[1024];
    int require_tests;
    pthread_mutex_t mu; /* guards the status fields below */
    char version[72];   /* the published set's version; "" when none */
    double loaded_at;
    char last_error[512];
    double last_error_at;
    atomic_uint gen; /* bumped on every publish */
    atomic_long reloads, reload_failures, rule_failures;
    int inotify_fd; /* -1 when the directory cannot be watched */
    pthread_t watcher;
    int watching;
    atomic_int stop;
};

struct prt_local {
    prt_t *p;           /* borrowed */
    rules_set_t *set;   /* owned; NULL: the built-in policy decides */
    unsigned gen;       /* the generation set was taken at */
    long long retry_ms; /* a failed swap is tried again from this time on */
};

/* Compiles and checks the directory in a fresh state. */
static rules_set_t *prt_validate(prt_t *p, char *err, size_t errlen)
{
    rules_set_t *set = rules_load(p->dir, NULL, err, errlen);
    if (!set || !p->require_tests)
        return set;
    char tests[1100];
    snprintf(tests, sizeof tests, "%s/tests", p->dir);
    FILE *sink = fopen("/dev/null", "w");
    int passed = 0, failed = 0;
    int rc = sink ? rules_cases_run(set, tests, sink, &passed, &failed, err, errlen) : -1;
    if (sink)
        fclose(sink);
    else
        snprintf(err, errlen, "cannot open /dev/null");
    if (rc == 0 && failed > 0) {
        snprintf(err, errlen, "%d of %d rules test case(s) failed (see crier rules test)", failed,
                 passed + failed);
        rc = -1;
    }
    if (rc != 0) {
        rules_free(set);
        return NULL;
    }
    return set;
}

int prt_reload(prt_t *p)
{
    char err[512];
    rules_set_t *set = prt_validate(p, err, sizeof err);
    double now = time_now();
    if (!set) {
        pthread_mutex_lock(&p->mu);
        snprintf(p->last_error, sizeof p->last_error, "%s", err);
        p->last_error_at = now;
        int have = p->version[0] != '\0';
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_add(&p->reload_failures, 1);
        log_error("rules", "reload_failed", "error", err, "kept",
                  have ? "the previous rules" : "the built-in policy", NULL);
        return -1;
    }
    char version[72];
    snprintf(version, sizeof version, "%s", rules_version(set));
    rules_free(set);
    pthread_mutex_lock(&p->mu);
    int same = strcmp(version, p->version) == 0;
    if (!same) {
        snprintf(p->version, sizeof p->version, "%s", version);
        p->loaded_at = now;
    }
    pthread_mutex_unlock(&p->mu);
    if (!same) {
        atomic_fetch_add(&p->gen, 1);
        atomic_fetch_add(&p->reloads, 1);
        log_info("rules", "loaded", "version", version, NULL);
    }
    return 0;
}

/* Waits for changes in the rules directory and reloads once they settle. */
static void *prt_watch(void *arg)
{
    prt_t *p = arg;
    char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {.fd = p->inotify_fd, .events = POLLIN};
        int n = poll(&pfd, 1, 250);
        if (n <= 0)
            continue;
        /* Drain, then keep draining until the directory is quiet. */
        int changed = 0;
        do {
            while (read(p->inotify_fd, ev, sizeof ev) > 0)
                changed = 1;
            pfd.revents = 0;
        } while (poll(&pfd, 1, PRT_DEBOUNCE_MS) > 0 && !atomic_load(&p->stop));
        if (changed && !atomic_load(&p->stop))
            prt_reload(p);
    }
    return NULL;
}

prt_t *prt_start(const char *dir, int require_tests, char *err, size_t errlen)
{
    prt_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strlen(dir) >= sizeof p->dir) {
        snprintf(err, errlen, "rules directory path too long");
        free(p);
        return NULL;
    }
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->require_tests = require_tests;
    pthread_mutex_init(&p->mu, NULL);
    p->inotify_fd = -1;
    prt_reload(p); /* a failure is reported and the built-in policy decides */

    p->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (p->inotify_fd >= 0 &&
        inotify_add_watch(p->inotify_fd, p->dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                              IN_ATTRIB) >= 0 &&
        pthread_create(&p->watcher, NULL, prt_watch, p) == 0) {
        p->watching = 1;
    } else {
        /* SIGHUP still reloads; say why edits are not picked up by themselves */
        log_warn("rules", "watch_unavailable", "error", strerror(errno), "reload", "SIGHUP", NULL);
        if (p->inotify_fd >= 0)
            close(p->inotify_fd);
        p->inotify_fd = -1;
    }
    return p;
}

void prt_stop(prt_t *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    if (p->watching)
        pthread_join(p->watcher, NULL);
    if (p->inotify_fd >= 0)
        close(p->inotify_fd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int prt_status_json(prt_t *p, buf_t *out)
{
    pthread_mutex_lock(&p->mu);
    char loaded[32], failed_at[32];
    time_iso8601(p->loaded_at, loaded);
    time_iso8601(p->last_error_at, failed_at);
    int rc = buf_puts(out, "{\"rules_dir\":");
    rc |= jtext_string(out, p->dir);
    rc |= buf_puts(out, ",\"active_version\":");
    rc |= p->version[0] ? jtext_string(out, p->version) : jtext_string(out, POLICY_BUILTIN_VERSION);
    rc |= buf_puts(out, ",\"loaded_at\":");
    rc |= p->version[0] ? jtext_string(out, loaded) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"last_error\":");
    rc |= p->last_error[0] ? jtext_string(out, p->last_error) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"last_error_at\":");
    rc |= p->last_error[0] ? jtext_string(out, failed_at) : buf_puts(out, "null");
    pthread_mutex_unlock(&p->mu);
    rc |= buf_printf(out, ",\"reloads\":%ld,\"reload_failures\":%ld,\"rule_failures\":%ld}",
                     atomic_load(&p->reloads), atomic_load(&p->reload_failures),
                     atomic_load(&p->rule_failures));
    return rc ? -1 : 0;
}

void prt_counters(prt_t *p, prt_counters_t *out)
{
    pthread_mutex_lock(&p->mu);
    snprintf(out->version, sizeof out->version, "%s",
             p->version[0] ? p->version : POLICY_BUILTIN_VERSION);
    pthread_mutex_unlock(&p->mu);
    out->reloads = atomic_load(&p->reloads);
    out->reload_failures = atomic_load(&p->reload_failures);
    out->rule_failures = atomic_load(&p->rule_failures);
}

prt_local_t *prt_local_new(prt_t *p)
{
    prt_local_t *l = calloc(1, sizeof *l);
    if (l) {
        l->p = p;
        l->gen = atomic_load(&p->gen) - 1; /* take the current set at first use */
    }
    return l;
}

void prt_local_free(prt_local_t *l)
{
    if (!l)
        return;
    rules_free(l->set);
    free(l);
}

/* Swaps to the published set when there is a newer one. The directory is
 * loaded again here (each thread needs its own state) and must come out as
 * the version that was validated; if the files changed meanwhile, the old
 * set stays and the swap is tried again a second later, so the thread
 * catches up as soon as the files match what was published. */
static void prt_local_sync(prt_local_t *l)
{
    unsigned g = atomic_load(&l->p->gen);
    if (g == l->gen || time_mono_ms() < l->retry_ms)
        return;
    char want[72];
    pthread_mutex_lock(&l->p->mu);
    snprintf(want, sizeof want, "%s", l->p->version);
    pthread_mutex_unlock(&l->p->mu);
    if (!want[0]) {
        l->gen = g;
        return;
    }
    char err[512];
    rules_set_t *set = rules_load(l->p->dir, NULL, err, sizeof err);
    if (!set || strcmp(rules_version(set), want) != 0) {
        log_warn("rules", "swap_deferred", "reason",
                 set ? "the files changed again while reloading" : err, NULL);
        rules_free(set);
        l->retry_ms = time_mono_ms() + 1000;
        return;
    }
    rules_free(l->set);
    l->set = set;
    l->gen = g;
}

void prt_on_failure(prt_local_t *l, const policy_msg_t *m, int attempt, const char *channel,
                    const char *category, int provider_code, int retry_after,
                    const char *const *remaining, int n_remaining, policy_failure_t *out)
{
    prt_local_sync(l);
    char err[512] = "no rules loaded";
    if (l->set && rules_on_failure(l->set, m, attempt, channel, category, provider_code,
                                   retry_after, remaining, n_remaining, out, err, sizeof err) == 0)
        return;
    if (l->set) {
        atomic_fetch_add(&l->p->rule_failures, 1);
        log_warn("rules", "on_failure_failed", "error", err, "fallback", POLICY_BUILTIN_VERSION,
                 NULL);
    }
    policy_builtin_on_failure(attempt, category, remaining, n_remaining, out);
}

void prt_decide(prt_local_t *l, const policy_msg_t *m, const policy_client_t *c, double now,
                const rules_pending_t *pending, policy_decision_t *d)
{
    prt_local_sync(l);
    char err[512] = "no rules loaded";
    if (l->set && rules_decide(l->set, m, c, now, pending, d, err, sizeof err) == 0)
        return;
    if (l->set) {
        atomic_fetch_add(&l->p->rule_failures, 1);
        log_warn("rules", "decision_failed", "error", err, "fallback", POLICY_BUILTIN_VERSION,
                 NULL);
    }
    policy_builtin_decide(m, c, now, d);
    /* Keep why in the trace: the builtin step follows the rules' failure. */
    buf_t t;
    buf_init(&t, sizeof d->trace_json - 1);
    int rc = buf_puts(&t, "[{\"step\":\"rules\",\"error\":");
    rc |= jtext_string(&t, err);
    rc |= buf_putc(&t, '}');
    if (d->trace_json[0] == '[' && d->trace_json[1] != ']') {
        rc |= buf_putc(&t, ',');
        rc |= buf_puts(&t, d->trace_json + 1);
    } else {
        rc |= buf_putc(&t, ']');
    }
    if (rc == 0)
        snprintf(d->trace_json, sizeof d->trace_json, "%s", t.data);
    buf_free(&t);
}
