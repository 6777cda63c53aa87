#include "policy/runtime.h"

#include "policy/rules_cases.h"
#include "policy/runner.h"
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
/* A load runs each file and smoke-tests each function, and may run the
 * rules/tests cases: its deadline is this many decisions' deadlines. */
#define PRT_LOAD_DEADLINES 20u

struct prt {
    char dir[1024];
    int require_tests;
    lh_limits_t limits;   /* every state's budgets */
    unsigned deadline_ms; /* a decision's hard deadline (the runner's) */
    int quarantine_after; /* budget overruns of one set that quarantine it */
    pthread_mutex_t mu;   /* guards the status fields below */
    char version[72];     /* the published set's version; "" when none */
    double loaded_at;
    char last_error[512];
    double last_error_at;
    char q_version[72]; /* the quarantined set's version; "" when none */
    char q_reason[512];
    double q_at;
    atomic_uint gen;    /* bumped on every publish */
    atomic_uint qgen;   /* gen + 1 of the quarantined publication, 0: none */
    atomic_int strikes; /* budget overruns of the published set */
    atomic_long reloads, reload_failures, rule_failures;
    atomic_long deadline_misses; /* decisions answered without the rules at the deadline */
    atomic_long budget_overruns;
    int inotify_fd; /* -1 when the directory cannot be watched */
    pthread_t watcher;
    int watching;
    atomic_int stop;
};

/* What a runner thread owns: its own rules state, in step with the
 * published generation. */
typedef struct prt_rstate {
    prt_t *p;           /* borrowed; outlives every runner (prt_stop is last) */
    rules_set_t *set;   /* owned; NULL: the built-in policy decides */
    unsigned gen;       /* the generation set was taken at */
    long long retry_ms; /* a failed swap is tried again from this time on */
} prt_rstate_t;

enum { PRT_JOB_DECIDE, PRT_JOB_FAILURE, PRT_JOB_VALIDATE };

#define PRT_JOB_TEXT 2048

/* One call into the rules, as a runner runs it. The inputs are copied in,
 * since a caller that stops waiting leaves the job to the runner thread,
 * and with it everything the thread may still read. */
typedef struct prt_job {
    int kind;
    policy_msg_t m;
    policy_client_t c;
    rules_pending_t pending;
    int has_pending;
    double now;
    int attempt, provider_code, retry_after, n_remaining;
    const char *channel, *category;
    const char *remaining[POLICY_MAX_CHANNELS];
    char text[PRT_JOB_TEXT]; /* the copied strings */
    size_t used;
    /* results */
    int rc;       /* 0, or -1 when the rules failed (err says why) */
    int no_set;   /* no set is loaded: the built-in policy, without a failure */
    int lh_rc;    /* rules_last_failure of a failed call */
    unsigned gen; /* the generation the runner decided with */
    policy_decision_t d;
    policy_failure_t f;
    rules_set_t *validated; /* PRT_JOB_VALIDATE: the set, owned by the job */
    char err[512];
} prt_job_t;

struct prt_local {
    prt_t *p;       /* borrowed */
    prn_t *runner;  /* owned; NULL until first use and after a deadline */
    prt_job_t *job; /* owned while the runner is ours; reused */
    unsigned gen;   /* the generation the runner last decided with */
};

/* Compiles and checks the directory in a fresh state. */
static rules_set_t *prt_validate(prt_t *p, char *err, size_t errlen)
{
    rules_set_t *set = rules_load(p->dir, &p->limits, err, errlen);
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

/* ---- the runner side --------------------------------------------------- */

static void prt_rstate_free(void *state)
{
    prt_rstate_t *r = state;
    if (r)
        rules_free(r->set);
    free(r);
}

static void prt_job_free(void *job)
{
    prt_job_t *j = job;
    if (j)
        rules_free(j->validated);
    free(j);
}

/* Swaps to the published set when there is a newer one. The directory is
 * loaded again here (each runner needs its own state) and must come out as
 * the version that was validated; if the files changed meanwhile, the old
 * set stays and the swap is tried again a second later, so the runner
 * catches up as soon as the files match what was published. */
static void prt_rstate_sync(prt_rstate_t *r)
{
    prt_t *p = r->p;
    unsigned g = atomic_load(&p->gen);
    if (g == r->gen || time_mono_ms() < r->retry_ms)
        return;
    char want[72];
    pthread_mutex_lock(&p->mu);
    snprintf(want, sizeof want, "%s", p->version);
    pthread_mutex_unlock(&p->mu);
    if (!want[0]) {
        r->gen = g;
        return;
    }
    char err[512];
    rules_set_t *set = rules_load(p->dir, &p->limits, err, sizeof err);
    if (!set || strcmp(rules_version(set), want) != 0) {
        log_warn("rules", "swap_deferred", "reason",
                 set ? "the files changed again while reloading" : err, NULL);
        rules_free(set);
        r->retry_ms = time_mono_ms() + 1000;
        return;
    }
    rules_free(r->set);
    r->set = set;
    r->gen = g;
}

static void prt_run(void *state, void *job)
{
    prt_rstate_t *r = state;
    prt_job_t *j = job;
    j->rc = 0;
    j->no_set = 0;
    j->lh_rc = LH_OK;
    j->err[0] = '\0';
    if (j->kind == PRT_JOB_VALIDATE) {
        j->validated = prt_validate(r->p, j->err, sizeof j->err);
        j->rc = j->validated ? 0 : -1;
        return;
    }
    prt_rstate_sync(r);
    j->gen = r->gen;
    if (!r->set) {
        j->no_set = 1;
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "no rules loaded");
        return;
    }
    int rc;
    if (j->kind == PRT_JOB_DECIDE)
        rc = rules_decide(r->set, &j->m, &j->c, j->now, j->has_pending ? &j->pending : NULL, &j->d,
                          j->err, sizeof j->err);
    else
        rc = rules_on_failure(r->set, &j->m, j->attempt, j->channel, j->category, j->provider_code,
                              j->retry_after, j->remaining, j->n_remaining, &j->f, j->err,
                              sizeof j->err);
    if (rc != 0) {
        j->rc = -1;
        j->lh_rc = rules_last_failure(r->set);
    }
}

static const prn_ops_t prt_runner_ops = {
    .run = prt_run,
    .free_state = prt_rstate_free,
    .free_job = prt_job_free,
};

static prn_t *prt_runner_new(prt_t *p)
{
    prt_rstate_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->p = p;
    r->gen = atomic_load(&p->gen) - 1; /* take the current set at first use */
    return prn_new(&prt_runner_ops, r);
}

/* Quarantines the set published as generation gen (when it is still the
 * published one): from now on every decision is the built-in one, until a
 * different set is published. */
static void prt_quarantine(prt_t *p, unsigned gen, const char *reason)
{
    unsigned want = gen + 1;
    if (atomic_load(&p->gen) != gen)
        return; /* a newer set is out: it did not do this */
    if (atomic_exchange(&p->qgen, want) == want)
        return; /* already quarantined */
    char version[72];
    pthread_mutex_lock(&p->mu);
    snprintf(p->q_version, sizeof p->q_version, "%s", p->version);
    snprintf(p->q_reason, sizeof p->q_reason, "%s", reason);
    p->q_at = time_now();
    snprintf(version, sizeof version, "%s", p->version);
    pthread_mutex_unlock(&p->mu);
    log_error("rules", "quarantined", "version", version, "reason", reason, "policy",
              POLICY_BUILTIN_VERSION, NULL);
}

static int prt_is_quarantined(prt_t *p)
{
    unsigned q = atomic_load(&p->qgen);
    return q != 0 && q == atomic_load(&p->gen) + 1;
}

/* Copies a string into the job; NULL stays NULL. -1 when the room is gone. */
static int prt_job_str(prt_job_t *j, const char *in, const char **out)
{
    if (!in) {
        *out = NULL;
        return 0;
    }
    size_t n = strlen(in) + 1;
    if (n > sizeof j->text - j->used)
        return -1;
    memcpy(j->text + j->used, in, n);
    *out = j->text + j->used;
    j->used += n;
    return 0;
}

static int prt_job_msg(prt_job_t *j, const policy_msg_t *m)
{
    j->used = 0;
    j->m = *m;
    return prt_job_str(j, m->message_type, &j->m.message_type) |
           prt_job_str(j, m->urgency, &j->m.urgency) |
           prt_job_str(j, m->preferred_channel, &j->m.preferred_channel);
}

static int prt_job_client(prt_job_t *j, const policy_client_t *c)
{
    j->c = *c;
    int rc = prt_job_str(j, c->timezone, &j->c.timezone) |
             prt_job_str(j, c->quiet_start, &j->c.quiet_start) |
             prt_job_str(j, c->quiet_end, &j->c.quiet_end);
    for (int i = 0; i < POLICY_MAX_CHANNELS; i++)
        rc |= prt_job_str(j, c->preferred_channels[i], &j->c.preferred_channels[i]);
    return rc;
}

/* Runs the job on the local's runner within the deadline. 0: the job ran
 * (its rc says how the rules did); -1: it did not, and err says why — the
 * caller answers with the built-in policy. */
static int prt_local_run(prt_local_t *l, char *err, size_t errlen)
{
    prt_t *p = l->p;
    if (!l->runner)
        l->runner = prt_runner_new(p);
    if (!l->runner) {
        snprintf(err, errlen, "no thread for the rules");
        return -1;
    }
    unsigned gen = atomic_load(&p->gen);
    /* Taking a new set loads and smoke-tests it first: that much longer. */
    unsigned timeout = p->deadline_ms * (gen != l->gen ? 4u : 1u);
    int rc = prn_call(l->runner, l->job, timeout);
    if (rc == PRN_DONE) {
        l->gen = l->job->gen;
        return 0;
    }
    if (rc == PRN_LATE) {
        /* The runner keeps the job and its state, and frees both if it ever
         * returns; they are never used again. */
        l->runner = NULL;
        l->job = NULL;
        atomic_fetch_add(&p->deadline_misses, 1);
        snprintf(err, errlen, "the rules did not answer within %u ms (hard deadline)", timeout);
        prt_quarantine(p, gen, err);
        return -1;
    }
    snprintf(err, errlen, "the rules runner refused the call");
    return -1;
}

/* A failed rules call: counted, logged, and a budget overrun is a strike
 * towards quarantine. */
static void prt_rule_failed(prt_local_t *l, const char *event, const char *err)
{
    prt_t *p = l->p;
    atomic_fetch_add(&p->rule_failures, 1);
    log_warn("rules", event, "error", err, "fallback", POLICY_BUILTIN_VERSION, NULL);
    if (l->job->lh_rc != LH_EBUDGET)
        return;
    atomic_fetch_add(&p->budget_overruns, 1);
    unsigned gen = l->job->gen;
    if (gen == atomic_load(&p->gen) &&
        atomic_fetch_add(&p->strikes, 1) + 1 >= p->quarantine_after) {
        char why[600];
        snprintf(why, sizeof why, "%d budget overruns, the last: %.400s", p->quarantine_after, err);
        prt_quarantine(p, gen, why);
    }
}

int prt_reload(prt_t *p)
{
    char err[512];
    rules_set_t *set = NULL;
    /* Loading runs rule code too: it gets a runner and a deadline of its
     * own, so a load that never returns cannot hold the reloading thread. */
    prt_rstate_t *rs = calloc(1, sizeof *rs);
    prt_job_t *job = calloc(1, sizeof *job);
    prn_t *runner = NULL;
    if (rs)
        rs->p = p;
    if (rs && job && (runner = prn_new(&prt_runner_ops, rs)) != NULL) {
        job->kind = PRT_JOB_VALIDATE;
        unsigned timeout = p->deadline_ms * PRT_LOAD_DEADLINES;
        int rc = prn_call(runner, job, timeout);
        if (rc == PRN_DONE) {
            set = job->validated;
            job->validated = NULL;
            if (!set)
                snprintf(err, sizeof err, "%s", job->err);
            prn_free(runner);
            prt_job_free(job);
        } else {
            snprintf(err, sizeof err, "loading the rules did not finish within %u ms", timeout);
            if (rc != PRN_LATE) {
                prn_free(runner);
                prt_job_free(job);
            }
        }
    } else {
        if (!runner)
            free(rs); /* prn_new frees its state only when it was called */
        prt_job_free(job);
        snprintf(err, sizeof err, "out of memory or threads for loading the rules");
    }
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
        atomic_store(&p->strikes, 0);
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

prt_t *prt_start(const char *dir, const prt_opts_t *opts, char *err, size_t errlen)
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
    p->require_tests = opts ? opts->require_tests : 0;
    if (opts)
        p->limits = opts->limits;
    p->deadline_ms = opts && opts->deadline_ms ? opts->deadline_ms : PRT_DEFAULT_DEADLINE_MS;
    p->quarantine_after = opts && opts->quarantine_after > 0 ? opts->quarantine_after : 3;
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
    /* A runner stuck past its deadline may still read p when (if) it comes
     * back: p is left to the exiting process rather than freed under it. */
    if (prn_stuck_now() > 0) {
        log_warn("rules", "runners_still_stuck", "metric", "crier_rules_runners_stuck", NULL);
        return;
    }
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
    int quarantined = prt_is_quarantined(p);
    rc |= buf_puts(out, ",\"policy\":");
    rc |= jtext_string(out, quarantined ? "quarantined" : p->version[0] ? "rules" : "builtin");
    rc |= buf_puts(out, ",\"quarantine\":");
    if (quarantined) {
        char at[32];
        time_iso8601(p->q_at, at);
        rc |= buf_puts(out, "{\"version\":") | jtext_string(out, p->q_version);
        rc |= buf_puts(out, ",\"reason\":") | jtext_string(out, p->q_reason);
        rc |= buf_puts(out, ",\"at\":") | jtext_string(out, at) | buf_putc(out, '}');
    } else {
        rc |= buf_puts(out, "null");
    }
    pthread_mutex_unlock(&p->mu);
    rc |= buf_printf(out, ",\"reloads\":%ld,\"reload_failures\":%ld,\"rule_failures\":%ld",
                     atomic_load(&p->reloads), atomic_load(&p->reload_failures),
                     atomic_load(&p->rule_failures));
    rc |= buf_printf(out,
                     ",\"budget_overruns\":%ld,\"deadline_misses\":%ld,\"runners_stuck\":%ld,"
                     "\"deadline_ms\":%u}",
                     atomic_load(&p->budget_overruns), atomic_load(&p->deadline_misses),
                     prn_stuck_now(), p->deadline_ms);
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
    out->budget_overruns = atomic_load(&p->budget_overruns);
    out->deadline_misses = atomic_load(&p->deadline_misses);
    out->runners_stuck = prn_stuck_now();
    out->quarantined = prt_is_quarantined(p);
}

int prt_degraded(prt_t *p, char *why, size_t whylen)
{
    if (!prt_is_quarantined(p))
        return 0;
    pthread_mutex_lock(&p->mu);
    /* the reason may be cut to fit: the status keeps it whole */
    size_t n = (size_t)snprintf(why, whylen, "rules %s quarantined: ", p->q_version);
    if (n < whylen)
        snprintf(why + n, whylen - n, "%.*s", (int)(whylen - n - 1), p->q_reason);
    pthread_mutex_unlock(&p->mu);
    return 1;
}

prt_local_t *prt_local_new(prt_t *p)
{
    prt_local_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->job = calloc(1, sizeof *l->job);
    if (!l->job) {
        free(l);
        return NULL;
    }
    l->p = p;
    l->gen = atomic_load(&p->gen) - 1;
    return l;
}

void prt_local_free(prt_local_t *l)
{
    if (!l)
        return;
    prn_free(l->runner);
    prt_job_free(l->job);
    free(l);
}

/* Prepares the local's job (a fresh one after a deadline took the last). */
static prt_job_t *prt_local_job(prt_local_t *l)
{
    if (!l->job)
        l->job = calloc(1, sizeof *l->job);
    return l->job;
}

typedef enum {
    PRT_ANSWERED, /* the rules answered: the answer is in the job */
    PRT_REFUSED,  /* the inputs did not fit, or a rule failed */
    PRT_UNRUN,    /* no answer in time: the job is the runner's now */
} prt_run_t;

/* Runs l's prepared job, whose inputs were copied with status inputs_rc.
 * Unless PRT_ANSWERED, err says why; a failing rule is recorded as event,
 * and *traced cleared when no rules set ran (nothing worth tracing). After
 * PRT_UNRUN the job must not be touched. */
static prt_run_t prt_job_run(prt_local_t *l, int inputs_rc, const char *event, char *err,
                             size_t errlen, int *traced)
{
    prt_job_t *j = l->job;
    if (inputs_rc != 0) {
        snprintf(err, errlen, "inputs too long for the rules");
        return PRT_REFUSED;
    }
    if (prt_local_run(l, err, errlen) != 0)
        return PRT_UNRUN;
    if (j->rc == 0)
        return PRT_ANSWERED;
    snprintf(err, errlen, "%s", j->err);
    *traced = !j->no_set;
    if (*traced)
        prt_rule_failed(l, event, err);
    return PRT_REFUSED;
}

void prt_on_failure(prt_local_t *l, const policy_msg_t *m, int attempt, const char *channel,
                    const char *category, int provider_code, int retry_after,
                    const char *const *remaining, int n_remaining, policy_failure_t *out)
{
    char err[512] = "no rules loaded";
    prt_job_t *j = prt_is_quarantined(l->p) ? NULL : prt_local_job(l);
    if (j) {
        j->kind = PRT_JOB_FAILURE;
        int rc = prt_job_msg(j, m) | prt_job_str(j, channel, &j->channel) |
                 prt_job_str(j, category, &j->category);
        j->n_remaining = n_remaining < POLICY_MAX_CHANNELS ? n_remaining : POLICY_MAX_CHANNELS;
        for (int i = 0; i < j->n_remaining; i++)
            rc |= prt_job_str(j, remaining[i], &j->remaining[i]);
        j->attempt = attempt;
        j->provider_code = provider_code;
        j->retry_after = retry_after;
        int traced = 0; /* the failure policy keeps no trace */
        if (prt_job_run(l, rc, "on_failure_failed", err, sizeof err, &traced) == PRT_ANSWERED) {
            *out = j->f;
            return;
        }
    }
    policy_builtin_on_failure(m->urgency, attempt, category, retry_after, remaining, n_remaining,
                              out);
}

/* Puts the reason the rules did not decide first in the built-in
 * decision's trace. */
static void prt_trace_error(policy_decision_t *d, const char *err)
{
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

void prt_decide(prt_local_t *l, const policy_msg_t *m, const policy_client_t *c, double now,
                const rules_pending_t *pending, policy_decision_t *d)
{
    char err[512] = "no rules loaded";
    int traced = 0; /* a failure worth recording in the trace */
    prt_job_t *j = NULL;
    if (prt_is_quarantined(l->p)) {
        prt_degraded(l->p, err, sizeof err);
        traced = 1;
    } else {
        j = prt_local_job(l);
    }
    if (j) {
        j->kind = PRT_JOB_DECIDE;
        int rc = prt_job_msg(j, m) | prt_job_client(j, c);
        j->has_pending = pending != NULL;
        if (pending)
            j->pending = *pending;
        j->now = now;
        traced = 1;
        prt_run_t run = prt_job_run(l, rc, "decision_failed", err, sizeof err, &traced);
        if (run == PRT_ANSWERED) {
            *d = j->d;
            return;
        }
        if (run == PRT_UNRUN)
            log_error("rules", "decision_deadline", "error", err, "fallback",
                      POLICY_BUILTIN_VERSION, NULL);
    }
    policy_builtin_decide(m, c, now, d);
    if (traced)
        prt_trace_error(d, err); /* why the built-in policy decided */
}
