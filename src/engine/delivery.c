#include "engine/delivery.h"

#include "circuit/circuit.h"
#include "driver/driver.h"
#include "engine/prefs.h"
#include "metrics/metrics.h"
#include "policy/apply.h"
#include "policy/runtime.h"
#include "queue/queue.h"
#include "ratelimit/ratelimit.h"
#include "store/analytics.h"
#include "store/db.h"
#include "store/receipts.h"
#include "store/suppress.h"
#include "store/templates.h"
#include "store/tracking.h"
#include "template/live.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DELIVERY_MAX_BATCH 64
#define DELIVERY_DEPTH_MS  1000 /* how often the waker samples the queue depth */
/* How often, and over how many days of sent mail, the waker samples the
 * open rate: a count over the window's tracked emails, cheap on its
 * partial index but not worth running every second. */
#define DELIVERY_OPEN_RATE_MS   15000
#define DELIVERY_OPEN_RATE_DAYS 7

struct delivery {
    app_t *app;    /* borrowed */
    drv_env_t env; /* what the drivers see of app; its pointers borrowed from app, but for
                      the templates, which each attempt takes for itself */
    store_tplseen_t *tplseen; /* owned: the template versions recorded so far */
    int nworkers;
    pthread_t waker;
    pthread_t *workers;
    int started_workers;
    int waker_started;
    PGconn *first_conn; /* owned until the waker takes it: opened by delivery_start */
    atomic_int stop;
    /* Wake-ups: the waker bumps gen on every NOTIFY or poll tick; an idle
     * worker sleeps until gen changes. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned long gen;
};

static void delivery_kick(delivery_t *d)
{
    pthread_mutex_lock(&d->lock);
    d->gen++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* The rate-limited senders of one worker: one per channel's provider, fixed
 * by the configuration, so a batch needs at most one limiter call per key
 * after a denial (see delivery_rate). */
typedef struct delivery_rl {
    rl_t *rl; /* owned: this worker's handle */
    char key[CH_N][RL_KEY_MAX + 1];
    cfg_rate_t rate[CH_N]; /* rate_per_s 0: not limited */
    /* per batch: after a denial the key's next jobs queue up behind it
     * instead of asking again, spread one interval apart so they do not all
     * come back at the same instant */
    int denied[CH_N];
    double denied_wait[CH_N];
} delivery_rl_t;

/* Sets up the worker's limiter. A live transport is limited per sender; the
 * sandbox is not (it sends nothing). Returns 0, or -1 when out of memory. */
static int delivery_rl_init(const delivery_t *d, delivery_rl_t *w)
{
    const cfg_t *cfg = d->app->cfg;
    char err[256];
    memset(w, 0, sizeof *w);
    w->rl = rl_new(cfg->redis_url, cfg->redis_timeout_ms, err, sizeof err);
    if (!w->rl) {
        /* A malformed URL must not stop delivery: limit locally instead. */
        log_error("delivery", "ratelimit_redis_url_invalid", "error", err, NULL);
        w->rl = rl_new(NULL, 0, err, sizeof err);
        if (!w->rl)
            return -1;
    }
    for (int c = 0; c < CH_N; c++) {
        const drv_t *drv = drv_get((ch_id_t)c);
        char sender[256];
        cfg_rate_t rate = drv->rate(cfg, sender, sizeof sender);
        if (!drv->live(cfg) || rate.rate_per_s <= 0)
            continue;
        if (rl_key(w->key[c], sizeof w->key[c], drv->provider, sender) != 0) {
            log_error("delivery", "ratelimit_key_too_long", "provider", drv->provider, NULL);
            continue;
        }
        w->rate[c] = rate;
    }
    return 0;
}

static void delivery_rl_batch(delivery_rl_t *w)
{
    memset(w->denied, 0, sizeof w->denied);
    memset(w->denied_wait, 0, sizeof w->denied_wait);
}

/* Asks whether a job on drv's channel may be sent now. Returns 1 to send,
 * or 0 with *wait_s set when it must wait. A limiter that cannot decide
 * lets the message go: a rate limit must never stop delivery. */
static int delivery_rate(delivery_rl_t *w, const drv_t *drv, double *wait_s)
{
    int i = (int)drv->id;
    if (w->rate[i].rate_per_s <= 0)
        return 1;
    double interval = 1.0 / w->rate[i].rate_per_s;
    if (w->denied[i] > 0) {
        *wait_s = w->denied_wait[i] + interval * w->denied[i]++;
        return 0;
    }
    double wait = 0;
    int rc = rl_check(w->rl, w->key[i], w->rate[i].rate_per_s, w->rate[i].burst, &wait);
    if (rc == RL_ALLOW)
        return 1;
    if (rc != RL_DENY) {
        log_error("delivery", "ratelimit_check_failed", "provider", drv->provider, NULL);
        return 1;
    }
    w->denied[i] = 1;
    w->denied_wait[i] = wait;
    *wait_s = wait;
    return 0;
}

typedef struct delivery_worker delivery_worker_t;

typedef struct delivery_slot {
    delivery_worker_t *owner; /* the worker whose slot this is */
    int index;                /* its place in owner->slots */
    double claimed;           /* monotonic seconds at the claim */
    queue_job_t job;
    const drv_t *drv; /* the driver of job's channel; NULL for no channel */
    /* one reference: the catalogue the attempt renders from, taken when it
     * starts and let go once its outcome is committed, so a reload never
     * changes a message half-way and the version recorded is the one used */
    tpl_catalog_t *tpl;
    char template_id[37]; /* the row of the version rendered, once recorded */
    outcome_t out;
    call_t call;              /* the provider call the driver prepared, if any */
    int called;               /* a call was prepared: its driver's finish step reads it */
    int deferred;             /* the rate limit said wait: not an attempt */
    double defer_s;           /* for how long */
    int circuit;              /* circ_provider_t guarding the call, -1 for none */
    int probe;                /* the call is its circuit's probe */
    policy_failure_t failure; /* what the policy said after a failure */
    apply_step_t step;        /* what that makes of the message; r points into it */
} delivery_slot_t;

/* Fills r from what apply made of the attempt: again later on the same
 * channel, at once on the next one (the step keeps the chain r points at),
 * or the end. */
static void delivery_step(delivery_slot_t *s, int bounced, queue_result_t *r)
{
    const apply_step_t *st = &s->step;
    r->bounced = bounced;
    switch (st->action) {
    case POLICY_RETRY:
        r->outcome = QUEUE_RETRY;
        r->retry_at = st->at;
        return;
    case POLICY_NEXT_CHANNEL:
        r->outcome = QUEUE_RETRY;
        r->retry_at = st->at;
        r->next_channel = st->channel;
        r->next_fallback_json = st->fallback_json;
        return;
    case POLICY_FAIL:
        break;
    }
    r->bounced = 0;
    r->outcome = bounced ? QUEUE_BOUNCED : QUEUE_FAILED;
}

/* Asks the fallback policy what follows a failed attempt, and fills r. A
 * hard bounce is a permanent failure to the rules like any other; what
 * they decide only changes its name: the end of the chain is "bounced",
 * and a move to the next channel records a "bounced" event. */
static void delivery_on_failure(prt_local_t *policy, delivery_slot_t *s, queue_result_t *r)
{
    apply_chain_t chain;
    apply_chain_parse(s->job.fallback_json, &chain);
    policy_msg_t m = {.message_type = s->job.message_type, .urgency = s->job.urgency};
    const char *category = errc_name(s->out.category);
    if (policy)
        prt_on_failure(policy, &m, s->job.channel_attempt, s->job.channel, category, s->out.code,
                       s->out.retry_after, chain.list, chain.n, &s->failure);
    else
        policy_builtin_on_failure(m.urgency, s->job.channel_attempt, category, s->out.retry_after,
                                  chain.list, chain.n, &s->failure);
    apply_failure(&s->failure, s->out.retry_after, &chain, time_now(), &s->step);
    delivery_step(s, s->out.signal == OUTCOME_SIGNAL_HARD_BOUNCE, r);
}

/* A channel not attempted (the driver's skip, e.g. a suppressed address):
 * apply_skip moves the message on, or skips it for the same reason. */
static void delivery_on_skip(delivery_slot_t *s, queue_result_t *r)
{
    apply_chain_t chain;
    apply_chain_parse(s->job.fallback_json, &chain);
    r->skip_reason = s->out.skip_reason;
    apply_skip(s->out.skip_reason, &chain, time_now(), &s->failure, &s->step);
    if (s->step.action == POLICY_FAIL) {
        r->outcome = QUEUE_SKIPPED;
        return;
    }
    delivery_step(s, 0, r);
}

/* The first half of an attempt: everything up to the provider call, which
 * is left in s->call. A provider whose circuit is open is not called: the
 * attempt fails as auth_failure so the rules move the message on. The
 * sandbox has no credentials to refuse, so only a live send has a circuit. */
static void delivery_prepare(app_t *app, const drv_env_t *env, void *const *state, PGconn *conn,
                             delivery_slot_t *s)
{
    const drv_t *drv = s->drv;
    if (!drv) {
        outcome_init(&s->out);
        outcome_fail(&s->out, ERRC_INVALID_INPUT, 0, "channel", "no transport for this channel");
        return;
    }
    s->circuit = drv->live(app->cfg) ? (int)drv->circuit : -1;
    if (s->circuit >= 0) {
        circ_verdict_t v = circ_check(app->circuit, (circ_provider_t)s->circuit, time_mono_ms());
        if (v == CIRC_REFUSE) {
            outcome_init(&s->out);
            char why[160];
            snprintf(why, sizeof why, "%s refused our credentials; paused until a probe succeeds",
                     circ_provider_name((circ_provider_t)s->circuit));
            outcome_fail(&s->out, ERRC_AUTH_FAILURE, 0, "circuit open", why);
            s->circuit = -1;
            return;
        }
        s->probe = v == CIRC_PROBE;
    }
    drv_env_t e = *env;
    e.templates = s->tpl;
    drv->prepare(state[drv->id], &e, conn, &s->job, &s->call, &s->out);
    s->called = s->call.req != NULL;
    if (s->probe && !s->called) {
        /* No call to test the credentials with: the next message probes. */
        circ_report(app->circuit, (circ_provider_t)s->circuit, 1, 0, ERRC_TRANSIENT,
                    time_mono_ms());
        s->circuit = -1;
    }
}

/* The second half: reads the provider's answer and tells the circuit. */
static void delivery_finish(app_t *app, delivery_slot_t *s)
{
    s->drv->finish(&s->call, &s->out);
    if (s->circuit < 0)
        return;
    circ_provider_t p = (circ_provider_t)s->circuit;
    errc_t cat = s->out.status == OUTCOME_FAILED ? s->out.category : ERRC_NONE;
    int changed = circ_report(app->circuit, p, s->probe, s->out.answered, cat, time_mono_ms());
    if (changed == 1) {
        log_kv(LOG_CRITICAL, "delivery", "provider_auth_failed", "provider", circ_provider_name(p),
               "error", s->out.error, "action",
               "its messages go to their fallback channel until a probe succeeds", NULL);
        metrics_circuit_open(circ_provider_name(p), 1);
    } else if (changed == 2) {
        log_info("delivery", "provider_auth_recovered", "provider", circ_provider_name(p), NULL);
        metrics_circuit_open(circ_provider_name(p), 0);
    }
}

/* A hard bounce: the address goes on the suppression list (one statement,
 * committed before the outcome is recorded, so that a message claimed next
 * anywhere sees it), and the clients with that address are published to
 * the preference cache. A list that cannot be written is logged and the
 * outcome still recorded: the next bounce of the address tries again. */
static void delivery_suppress(app_t *app, PGconn *conn, const delivery_slot_t *s)
{
    char err[256];
    char changed[SUPP_CHANGED_MAX][37];
    int n_changed = 0, created = 0;
    const char *enhanced = s->call.res.enhanced;
    supp_bounce_t b = {
        .email_bidx = s->out.contact_bidx,
        .smtp_code = s->out.code,
        .enhanced = enhanced,
        .communication_id = s->job.id,
    };
    if (supp_hard_bounce(conn, &b, &created, changed, &n_changed, err, sizeof err) != 0) {
        log_error("delivery", "suppression_failed", "communication_id", s->job.id, "error", err,
                  NULL);
        return;
    }
    if (created)
        metrics_email_suppression();
    log_info("delivery", "email_suppressed", "communication_id", s->job.id, "enhanced", enhanced,
             "new", created ? "true" : "false", NULL);
    const char *ids[SUPP_CHANGED_MAX];
    for (int i = 0; i < n_changed; i++)
        ids[i] = changed[i];
    if (prefs_publish(app->prefs, conn, ids, n_changed, err, sizeof err) != 0)
        log_warn("delivery", "preference_cache_not_told", "error", err, NULL);
}

/* Acts on what an answer says beyond its message: a recipient's opt-out is
 * recorded as a STOP would be, a hard bounce suppresses the address, and a
 * closed conversation window is closed in our records too. Returns 1 when the message should go
 * again at once on the same channel (as a template), without asking the rules. */
static int delivery_signal(app_t *app, PGconn *conn, const delivery_slot_t *s)
{
    char err[256];
    char changed[RCPT_CHANGED_MAX][37];
    int n_changed = 0;
    switch (s->out.signal) {
    case OUTCOME_SIGNAL_NONE:
        return 0;
    case OUTCOME_SIGNAL_HARD_BOUNCE:
        delivery_suppress(app, conn, s);
        return 0;
    case OUTCOME_SIGNAL_OPT_OUT:
        if (rcpt_provider_opt_out(conn, s->job.client_id, s->job.channel, changed, &n_changed, err,
                                  sizeof err) != 0) {
            log_error("delivery", "provider_opt_out_failed", "channel", s->job.channel, "error",
                      err, NULL);
            return 0;
        }
        log_info("delivery", "provider_opt_out", "communication_id", s->job.id, "channel",
                 s->job.channel, NULL);
        /* committed (one statement): the next decision anywhere must see it */
        const char *ids[RCPT_CHANGED_MAX];
        for (int i = 0; i < n_changed; i++)
            ids[i] = changed[i];
        if (prefs_publish(app->prefs, conn, ids, n_changed, err, sizeof err) != 0)
            log_warn("delivery", "preference_cache_not_told", "error", err, NULL);
        return 0;
    case OUTCOME_SIGNAL_WINDOW_CLOSED:
        if (rcpt_window_close(conn, s->job.client_id, err, sizeof err) != 0) {
            /* With the window still open in our records the resend would be
             * free text again: let the rules decide instead. */
            log_error("delivery", "window_close_failed", "error", err, NULL);
            return 0;
        }
        return 1;
    }
    return 0;
}

static double delivery_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts what one attempt came to, as recorded in r. A provider call is one the job handed to the
 * transport; failures before it (the client, the template, the MIME build, an open circuit) are not
 * the provider's and are not API errors. */
static void delivery_count(const delivery_slot_t *s, const queue_result_t *r)
{
    static const metrics_status_t by_outcome[] = {
        [QUEUE_SENT] = METRICS_SENT,       [QUEUE_DELIVERED] = METRICS_DELIVERED,
        [QUEUE_RETRY] = METRICS_RETRY,     [QUEUE_FAILED] = METRICS_FAILED,
        [QUEUE_DEFER] = METRICS_RETRY,     [QUEUE_BOUNCED] = METRICS_BOUNCED,
        [QUEUE_SKIPPED] = METRICS_SKIPPED,
    };
    /* What the claim came to for the message: a bounce or a skip that moves
     * it to another channel is a retry like any other move, so the final
     * outcomes stay sent + delivered + failed + bounced + skipped. */
    metrics_communication(s->job.message_type, s->job.channel, by_outcome[r->outcome]);
    const outcome_t *o = &s->out;
    /* Known delivered as it was sent (the sandbox outbox): no time passed
     * between the two. A provider's acceptance is not a delivery; its
     * receipt, if one comes, is observed by the webhook that brings it. */
    if (r->outcome == QUEUE_DELIVERED)
        metrics_delivery_time(s->job.channel, 0);
    if (!s->called)
        return;
    metrics_api_call(s->drv->api);
    if (o->status == OUTCOME_FAILED)
        metrics_api_error(s->drv->api, o->category);
}

/* The seed's INFO lines of a message a provider took ("communication_sent")
 * and, when it is known delivered at once (the sandbox), of its delivery
 * ("delivery_confirmed"; a provider's receipt logs its own). Ids, type and
 * channel only: never an address, a name or the words. */
static void delivery_log_sent(const delivery_slot_t *s, const queue_result_t *r)
{
    if (r->outcome != QUEUE_SENT && r->outcome != QUEUE_DELIVERED)
        return;
    const queue_job_t *j = &s->job;
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%d", j->attempt);
    log_info("delivery", "communication_sent", "communication_id", j->id, "plan_id", j->plan_id,
             "client_id", j->client_id, "message_type", j->message_type, "channel", j->channel,
             "attempt", attempt, NULL);
    if (r->outcome == QUEUE_DELIVERED)
        log_info("delivery", "delivery_confirmed", "communication_id", j->id, "plan_id", j->plan_id,
                 "client_id", j->client_id, "message_type", j->message_type, "channel", j->channel,
                 "delivery_time_s", "0", NULL);
}

/* Fills r with what the attempt came to. resend_now: go again on the same
 * channel at once (delivery_signal). */
static void delivery_record(prt_local_t *policy, delivery_slot_t *s, int resend_now,
                            queue_result_t *r)
{
    const outcome_t *o = &s->out;
    memset(r, 0, sizeof *r);
    r->id = s->job.id;
    r->attempt = s->job.attempt;
    r->channel = s->job.channel;
    r->subject = o->subject[0] ? o->subject : NULL;
    r->provider_message_id = o->message_id[0] ? o->message_id : NULL;
    r->provider_code = o->code;
    r->detail_json = o->detail_json[0] ? o->detail_json : NULL;
    r->template_version = o->template_version[0] ? o->template_version : NULL;
    switch (o->status) {
    case OUTCOME_SENT:
        r->outcome = QUEUE_SENT;
        return;
    case OUTCOME_DELIVERED:
        r->outcome = QUEUE_DELIVERED;
        return;
    case OUTCOME_SKIPPED:
        delivery_on_skip(s, r);
        return;
    case OUTCOME_FAILED:
        break;
    }
    r->error_category = errc_name(o->category);
    r->error_message = o->error;
    if (resend_now) {
        s->failure.action = POLICY_RETRY;
        snprintf(s->failure.reason, sizeof s->failure.reason, "%s", "window_closed");
        r->outcome = QUEUE_RETRY;
        r->retry_at = time_now();
        return;
    }
    delivery_on_failure(policy, s, r);
}

/* What a template version is made of, as the record of versions keeps it:
 * its files as JSON, at most this much (a catalogue file is at most 256 KiB,
 * and a template uses a few). */
#define DELIVERY_TEMPLATE_FILES_MAX ((size_t)8 * 1024 * 1024)

/* Gives every outcome that names a template version the id of its row,
 * recording the versions this process has not recorded yet: a
 * communication names its version, which must exist first. 0, or -1 with
 * err. */
static int delivery_templates(delivery_t *d, PGconn *conn, delivery_slot_t *const *slots,
                              queue_result_t *res, int n, char *err, size_t errlen)
{
    for (int k = 0; k < n; k++) {
        delivery_slot_t *s = slots[k];
        if (!res[k].template_version || s->template_id[0])
            continue;
        tpl_source_t src;
        if (store_tplseen_get(d->tplseen, s->job.message_type, s->job.channel,
                              res[k].template_version, s->template_id)) {
            res[k].template_id = s->template_id;
            continue;
        }
        if (!s->tpl ||
            tpl_template_source(s->tpl, s->job.message_type, s->job.channel, &src) != 0) {
            res[k].template_version = NULL; /* the driver named no template of this row */
            continue;
        }
        buf_t files;
        buf_init(&files, DELIVERY_TEMPLATE_FILES_MAX);
        int rc = tpl_template_files_json(s->tpl, src.name, src.channel, &files);
        store_template_t t = {.name = src.name,
                              .channel = src.channel,
                              .hash = src.version,
                              .subject = src.subject,
                              .content = src.content ? src.content : "",
                              .files_json = files.data};
        if (rc != 0)
            snprintf(err, errlen, "the files of template %s/%s do not fit", src.channel, src.name);
        else
            rc = store_template_record(conn, d->tplseen, &t, s->template_id, err, errlen);
        buf_free(&files);
        if (rc != 0)
            return -1;
        res[k].template_id = s->template_id;
    }
    return 0;
}

/* Records outcomes, retrying while PostgreSQL is away: the messages were
 * sent, and forgetting that would send them again after the lease expires. */
static void delivery_complete(delivery_t *d, PGconn *conn, delivery_slot_t *const *slots,
                              queue_result_t *res, int n)
{
    char err[512];
    int applied = 0;
    for (int tries = 0;; tries++) {
        if (delivery_templates(d, conn, slots, res, n, err, sizeof err) == 0 &&
            queue_complete(conn, &d->app->keys, res, n, &applied, err, sizeof err) == 0)
            break;
        log_error("delivery", "complete_failed", "error", err, NULL);
        if (atomic_load(&d->stop) && tries >= 5)
            return; /* the rescuer will retry these after the lease */
        sleep(1);
        db_ensure(conn);
    }
    if (applied < n) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", n - applied);
        snprintf(b, sizeof b, "%d", n);
        log_warn("delivery", "stale_completions", "stale", a, "of", b, NULL);
    }
}

/* One worker's slots. A slot holds one claimed job from its claim until
 * its outcome is committed; while its provider call is in flight the worker
 * goes on claiming into the free slots and recording what has come back,
 * so no worker ever waits on a provider. */
struct delivery_worker {
    delivery_t *d;
    int cap;
    delivery_slot_t *slots; /* cap of them */
    int *free_idx;          /* slots not in use; worker thread only */
    int nfree;
    int *ready_idx; /* slots to record this round; worker thread only */
    int nready;
    int in_flight; /* calls submitted and not yet back; worker thread only */
    int *done_idx; /* slots whose call came back; guarded by d->lock */
    int ndone;
};

/* The transport's done callback (on its thread): keeps the answer and
 * hands the slot back to its worker. */
static void delivery_call_done(void *ud, const tx_result_t *r)
{
    delivery_slot_t *s = ud;
    (void)tx_result_copy(&s->call.res, r); /* on failure res says TX_ERR_NOMEM */
    delivery_worker_t *w = s->owner;
    pthread_mutex_lock(&w->d->lock);
    w->done_idx[w->ndone++] = s->index;
    pthread_cond_broadcast(&w->d->cond);
    pthread_mutex_unlock(&w->d->lock);
}

/* Sleeps until new work may be due (the generation moved past seen), a
 * call came back, the worker should stop, or timeout. */
static void delivery_wait(delivery_worker_t *w, unsigned long seen, int timeout_ms)
{
    delivery_t *d = w->d;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->lock);
    /* Stopping ends the wait only once nothing is in flight: until then the
     * answers are what the worker waits for. */
    while (w->ndone == 0 && d->gen == seen && !(atomic_load(&d->stop) && w->in_flight == 0)) {
        if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&d->lock);
}

/* Takes a claimed job into a free slot and starts its attempt: a rate
 * limit defers it, a job without a provider call (sandbox, failure before
 * the call, open circuit) is ready at once, a call goes in flight. */
static void delivery_start_job(delivery_worker_t *w, app_t *app, void *const *state, PGconn *conn,
                               delivery_rl_t *limits, const queue_job_t *job, double claimed)
{
    int idx = w->free_idx[--w->nfree];
    delivery_slot_t *s = &w->slots[idx];
    memset(s, 0, sizeof *s);
    s->owner = w;
    s->index = idx;
    s->claimed = claimed;
    s->job = *job;
    s->drv = drv_by_name(s->job.channel);
    s->circuit = -1;
    if (s->job.receipt_failure) {
        /* The send failed after the provider took it: that failure is this
         * attempt, and the rules say what follows (no provider call). */
        outcome_init(&s->out);
        outcome_fail(&s->out, errc_from_name(s->job.receipt_category), s->job.receipt_code,
                     "receipt", "the provider reported the sent message failed");
        w->ready_idx[w->nready++] = idx;
        return;
    }
    double wait = 0;
    if (s->drv && !delivery_rate(limits, s->drv, &wait)) {
        s->deferred = 1;
        s->defer_s = wait;
        metrics_ratelimit_deferred(s->drv->provider);
        w->ready_idx[w->nready++] = idx;
        return;
    }
    s->tpl = tpl_live_acquire(app->templates);
    delivery_prepare(app, &w->d->env, state, conn, s);
    call_t *c = &s->call;
    if (!c->req) {
        w->ready_idx[w->nready++] = idx;
        return;
    }
    tx_request_t *req = c->req;
    c->req = NULL; /* the transport owns it now, even when it refuses */
    tx_t *tx = s->drv->loop(&w->d->env);
    tx_request_on_done(req, delivery_call_done, s);
    c->submitted = 1;
    w->in_flight++;
    if (!tx || tx_submit(tx, req) != 0) {
        if (!tx)
            tx_request_free(req);
        c->submitted = 0; /* the callback will not run: ready now */
        w->in_flight--;
        w->ready_idx[w->nready++] = idx;
    }
}

/* Records every ready slot in one transaction and frees the slots. */
static void delivery_record_ready(delivery_worker_t *w, app_t *app, prt_local_t *policy,
                                  PGconn *conn, queue_result_t *res)
{
    delivery_t *d = w->d;
    int n = w->nready;
    delivery_slot_t *slots[DELIVERY_MAX_BATCH];
    for (int k = 0; k < n; k++) {
        delivery_slot_t *s = slots[k] = &w->slots[w->ready_idx[k]];
        queue_result_t *r = &res[k];
        if (s->deferred) {
            /* Not an attempt: no provider call, no rules, no outcome
             * counted; the claim's attempt is given back. */
            memset(r, 0, sizeof *r);
            r->id = s->job.id;
            r->attempt = s->job.attempt;
            r->outcome = QUEUE_DEFER;
            r->retry_at = time_now() + s->defer_s;
            r->channel = s->job.channel;
            continue;
        }
        if (s->called)
            delivery_finish(app, s);
        int resend = s->out.status == OUTCOME_FAILED && delivery_signal(app, conn, s);
        delivery_record(policy, s, resend, r);
        /* counted before the outcome is committed, so a reader who sees the
         * row final already sees it in the counters */
        delivery_count(s, r);
        if (r->outcome == QUEUE_FAILED || r->outcome == QUEUE_BOUNCED) {
            /* seed: "log critical error and queue for manual review" (the
             * review opens in the database as the status is written) */
            metrics_all_channels_failed();
            log_kv(LOG_CRITICAL, "delivery", "all_channels_failed", "communication_id", s->job.id,
                   "message_type", s->job.message_type, "channel", s->job.channel, "category",
                   errc_name(s->out.category), "error", s->out.error, NULL);
        } else if (s->out.status == OUTCOME_FAILED)
            log_warn("delivery", "attempt_failed", "communication_id", s->job.id, "category",
                     errc_name(s->out.category), "error", s->out.error, "action",
                     rules_action_name(s->failure.action), "reason", s->failure.reason, NULL);
        else if (s->out.status == OUTCOME_SKIPPED)
            log_info("delivery", "channel_skipped", "communication_id", s->job.id, "channel",
                     s->job.channel, "reason", s->out.skip_reason, "next",
                     r->next_channel ? r->next_channel : "none", NULL);
    }
    delivery_complete(d, conn, slots, res, n);
    for (int k = 0; k < n; k++) {
        delivery_slot_t *s = &w->slots[w->ready_idx[k]];
        delivery_log_sent(s, &res[k]);
        tpl_catalog_free(s->tpl);
        s->tpl = NULL;
        call_clear(&s->call);
        queue_job_free(&s->job);
        w->free_idx[w->nfree++] = w->ready_idx[k];
    }
    w->nready = 0;
}

/* Waits until no call of w is in flight any more; what came back is left
 * in its slot unrecorded. */
static void delivery_drain(delivery_worker_t *w)
{
    delivery_t *d = w->d;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        w->in_flight -= w->ndone;
        w->ndone = 0;
        if (w->in_flight == 0)
            break;
        pthread_cond_wait(&d->cond, &d->lock);
    }
    pthread_mutex_unlock(&d->lock);
}

static void delivery_state_free(void **state)
{
    for (int c = 0; c < CH_N; c++) {
        const drv_t *drv = drv_get((ch_id_t)c);
        if (state[c] && drv->worker_free)
            drv->worker_free(state[c]);
        state[c] = NULL;
    }
}

/* Makes every driver's state for one worker. Returns 0, or -1 with err
 * saying which driver cannot work (what was made stays in state). */
static int delivery_state_new(const drv_env_t *env, void **state, char *err, size_t errlen)
{
    for (int c = 0; c < CH_N; c++) {
        const drv_t *drv = drv_get((ch_id_t)c);
        if (drv->worker_new && drv->worker_new(env, &state[c], err, errlen) != 0)
            return -1;
    }
    return 0;
}

static void *delivery_worker(void *arg)
{
    delivery_t *d = arg;
    app_t *app = d->app;
    const cfg_t *cfg = app->cfg;
    char err[512];
    PGconn *conn = NULL;
    /* Each driver's state for this worker, indexed by ch_id_t. */
    void *state[CH_N] = {0};
    int state_failed = delivery_state_new(&d->env, state, err, sizeof err);
    /* A Lua state belongs to one thread: this worker's, made here. */
    prt_local_t *policy = app->rules ? prt_local_new(app->rules) : NULL;
    delivery_rl_t limits;
    if (delivery_rl_init(d, &limits) != 0) {
        log_kv(LOG_CRITICAL, "delivery", "ratelimit_failed", "error",
               "cannot create the rate limiter", NULL);
        delivery_state_free(state);
        prt_local_free(policy);
        return NULL;
    }
    if (state_failed) {
        rl_free(limits.rl);
        log_kv(LOG_CRITICAL, "delivery", "sender_failed", "error", err, NULL);
        delivery_state_free(state);
        prt_local_free(policy);
        return NULL;
    }
    delivery_worker_t w;
    memset(&w, 0, sizeof w);
    w.d = d;
    w.cap = cfg->claim_batch < DELIVERY_MAX_BATCH ? cfg->claim_batch : DELIVERY_MAX_BATCH;
    w.slots = calloc((size_t)w.cap, sizeof *w.slots);
    w.free_idx = calloc((size_t)w.cap, sizeof *w.free_idx);
    w.ready_idx = calloc((size_t)w.cap, sizeof *w.ready_idx);
    w.done_idx = calloc((size_t)w.cap, sizeof *w.done_idx);
    queue_job_t *jobs = calloc((size_t)w.cap, sizeof *jobs);
    queue_result_t *res = calloc((size_t)w.cap, sizeof *res);
    if (!w.slots || !w.free_idx || !w.ready_idx || !w.done_idx || !jobs || !res) {
        log_kv(LOG_CRITICAL, "delivery", "worker_failed", "error", "out of memory", NULL);
        goto out;
    }
    for (int i = 0; i < w.cap; i++)
        w.free_idx[w.nfree++] = w.cap - 1 - i;

    /* On stop: no more claims, but every call in flight is waited for and
     * recorded, so nothing sent is forgotten. */
    while (!atomic_load(&d->stop) || w.in_flight > 0) {
        int stopping = atomic_load(&d->stop);
        pthread_mutex_lock(&d->lock);
        unsigned long seen = d->gen;
        pthread_mutex_unlock(&d->lock);
        if (!conn || db_ensure(conn) != 0) {
            if (conn)
                PQfinish(conn);
            conn = db_connect(cfg->database_url, err, sizeof err);
            if (!conn) {
                if (stopping) {
                    /* PostgreSQL is away and the process is stopping: the
                     * answers cannot be recorded. Wait for the calls in
                     * flight (their slots are written until then) and go;
                     * the rows' leases expire and the rescuer sends them
                     * again, as after a crash: at least once, never lost. */
                    delivery_drain(&w);
                    break;
                }
                /* Answers that came back stay in their slots until
                 * PostgreSQL is back to record them. */
                sleep(1);
                continue;
            }
        }
        int claimed = 0, claim_failed = 0;
        if (!stopping && w.nfree > 0) {
            int n = 0;
            if (queue_claim(conn, w.nfree, cfg->lease_seconds, jobs, &n, err, sizeof err) != 0) {
                log_error("delivery", "claim_failed", "error", err, NULL);
                claim_failed = 1;
            } else if (n > 0) {
                double now = delivery_mono_s();
                delivery_rl_batch(&limits);
                for (int i = 0; i < n; i++)
                    delivery_start_job(&w, app, state, conn, &limits, &jobs[i], now);
                claimed = n;
            }
        }
        pthread_mutex_lock(&d->lock);
        for (int i = 0; i < w.ndone; i++)
            w.ready_idx[w.nready++] = w.done_idx[i];
        w.in_flight -= w.ndone;
        w.ndone = 0;
        pthread_mutex_unlock(&d->lock);
        int recorded = w.nready;
        if (w.nready > 0)
            delivery_record_ready(&w, app, policy, conn, res);
        if (claimed == 0 && recorded == 0)
            delivery_wait(&w, seen, claim_failed ? 1000 : cfg->poll_ms);
    }
out:
    if (w.slots) /* slots left unrecorded by a stop without PostgreSQL */
        for (int i = 0; i < w.cap; i++) {
            tpl_catalog_free(w.slots[i].tpl);
            call_clear(&w.slots[i].call);
            queue_job_free(&w.slots[i].job);
        }
    free(res);
    free(jobs);
    free(w.done_idx);
    free(w.ready_idx);
    free(w.free_idx);
    free(w.slots);
    rl_free(limits.rl);
    delivery_state_free(state);
    prt_local_free(policy);
    if (conn)
        PQfinish(conn);
    return NULL;
}

/* Samples the queue depth into the metrics. Returns -1 when the statement
 * failed (the caller checks whether the connection is lost). */
static int delivery_sample_depth(PGconn *conn)
{
    char err[512];
    queue_depth_t depth;
    if (queue_depth(conn, &depth, err, sizeof err) != 0) {
        log_error("delivery", "queue_depth_failed", "error", err, NULL);
        return -1;
    }
    metrics_queue_depth(depth.due, depth.scheduled, depth.sending);
    return 0;
}

/* Samples the open rate of tracked email into the metrics. -1 when the
 * statement failed. */
static int delivery_sample_open_rate(PGconn *conn)
{
    char err[512];
    store_open_rate_t rows[32];
    int n = 0;
    if (store_open_rates(conn, DELIVERY_OPEN_RATE_DAYS, rows, 32, &n, err, sizeof err) != 0) {
        log_error("delivery", "open_rate_failed", "error", err, NULL);
        return -1;
    }
    const char *types[32];
    long long sent[32], opened[32];
    for (int i = 0; i < n; i++) {
        types[i] = rows[i].message_type;
        sent[i] = rows[i].sent;
        opened[i] = rows[i].opened;
    }
    metrics_open_rates(types, sent, opened, n);
    return 0;
}

/* Folds the analytics deltas into their hourly sums (sql/015_analytics.sql),
 * so a summary reads few rows however many statements wrote. -1 when the
 * statement failed. */
static int delivery_fold_analytics(PGconn *conn)
{
    char err[512];
    long long folded = 0;
    if (store_analytics_fold(conn, &folded, err, sizeof err) != 0) {
        log_error("delivery", "analytics_fold_failed", "error", err, NULL);
        return -1;
    }
    return 0;
}

/* The waker: turns NOTIFYs into worker wake-ups, rescues expired leases,
 * samples the queue depth and the open rate for /metrics and tracks
 * whether PostgreSQL answers, for /readyz. */
static void *delivery_waker(void *arg)
{
    delivery_t *d = arg;
    app_t *app = d->app;
    const cfg_t *cfg = app->cfg;
    char err[512];
    PGconn *conn = d->first_conn;
    d->first_conn = NULL;
    long long last_rescue = 0;
    long long last_depth = 0;
    long long last_rate = 0;
    int max_attempts = cfg->max_attempts;

    while (!atomic_load(&d->stop)) {
        if (!conn) {
            conn = db_connect(cfg->database_url, err, sizeof err);
            if (!conn || queue_listen(conn, err, sizeof err) != 0) {
                if (atomic_exchange(&app->db_ready, 0))
                    log_error("delivery", "database_unreachable", "error", err, NULL);
                if (conn)
                    PQfinish(conn);
                conn = NULL;
                sleep(1);
                continue;
            }
            if (!atomic_exchange(&app->db_ready, 1))
                log_info("delivery", "database_reachable", NULL);
            delivery_kick(d); /* anything may have arrived while we were away */
        }
        int w = queue_wait(conn, cfg->poll_ms < 1000 ? cfg->poll_ms : 1000);
        if (w < 0) {
            PQfinish(conn);
            conn = NULL;
            continue;
        }
        delivery_kick(d);
        long long now = time_mono_ms();
        if (now - last_rescue >= 1000) {
            last_rescue = now;
            int rescued = 0;
            if (queue_rescue(conn, max_attempts, &rescued, err, sizeof err) != 0) {
                log_error("delivery", "rescue_failed", "error", err, NULL);
                if (db_conn_lost(conn)) {
                    atomic_store(&app->db_ready, 0);
                    PQfinish(conn);
                    conn = NULL;
                }
            } else if (rescued > 0) {
                char n[16];
                snprintf(n, sizeof n, "%d", rescued);
                log_warn("delivery", "leases_rescued", "count", n, NULL);
            }
        }
        if (conn && now - last_depth >= DELIVERY_DEPTH_MS) {
            last_depth = now;
            if (delivery_sample_depth(conn) != 0 && db_conn_lost(conn)) {
                atomic_store(&app->db_ready, 0);
                PQfinish(conn);
                conn = NULL;
            }
        }
        if (conn && now - last_rate >= DELIVERY_OPEN_RATE_MS) {
            last_rate = now;
            if ((delivery_sample_open_rate(conn) != 0 || delivery_fold_analytics(conn) != 0) &&
                db_conn_lost(conn)) {
                atomic_store(&app->db_ready, 0);
                PQfinish(conn);
                conn = NULL;
            }
        }
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

delivery_t *delivery_start(app_t *app, char *err, size_t errlen)
{
    delivery_t *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->app = app;
    d->env = (drv_env_t){
        .cfg = app->cfg,
        .keys = &app->keys,
        .templates = NULL, /* each attempt's own: delivery_prepare */
        .tx = app->tx,
        .tx_mail = app->tx_mail,
        .dkim = app->dkim,
    };
    d->nworkers = app->cfg->workers;
    atomic_init(&d->stop, 0);
    d->tplseen = store_tplseen_new();
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->workers = calloc((size_t)(d->nworkers > 0 ? d->nworkers : 1), sizeof *d->workers);
    if (!d->workers || !d->tplseen) {
        snprintf(err, errlen, "out of memory");
        delivery_stop(d);
        return NULL;
    }
    /* The first connection is made here, so that /readyz is true as soon
     * as serve listens when PostgreSQL answers; if it does not, the waker
     * keeps trying and readiness follows. */
    char why[512];
    d->first_conn = db_connect(app->cfg->database_url, why, sizeof why);
    if (d->first_conn && queue_listen(d->first_conn, why, sizeof why) != 0) {
        PQfinish(d->first_conn);
        d->first_conn = NULL;
    }
    if (d->first_conn)
        atomic_store(&app->db_ready, 1);
    if (pthread_create(&d->waker, NULL, delivery_waker, d) != 0) {
        if (d->first_conn)
            PQfinish(d->first_conn);
        d->first_conn = NULL;
        snprintf(err, errlen, "cannot start the waker thread");
        delivery_stop(d);
        return NULL;
    }
    d->waker_started = 1;
    for (int i = 0; i < d->nworkers; i++) {
        if (pthread_create(&d->workers[i], NULL, delivery_worker, d) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            delivery_stop(d);
            return NULL;
        }
        d->started_workers++;
    }
    return d;
}

void delivery_stop(delivery_t *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, 1);
    delivery_kick(d);
    for (int i = 0; i < d->started_workers; i++)
        pthread_join(d->workers[i], NULL);
    if (d->waker_started)
        pthread_join(d->waker, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d->workers);
    store_tplseen_free(d->tplseen);
    free(d);
}
