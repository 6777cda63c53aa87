/* intake: group commit of new communications (see intake.h for why). */
#include "engine/intake.h"
#include "engine/client_view.h"

#include "driver/driver.h"
#include "engine/prefs.h"
#include "policy/policy.h"
#include "policy/apply.h"
#include "policy/runtime.h"
#include "queue/queue.h"
#include "store/audit.h"
#include "store/clients.h"
#include "store/db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTAKE_BODY_MAX (64 * 1024) /* an accepted body: id, status, decision */
#define INTAKE_ERR_MAX  512

/* One writer: a queue, a thread and the PostgreSQL connection it owns. */
typedef struct intake_writer {
    app_t *app; /* borrowed */
    pthread_t thread;
    int started; /* the thread was created (joined by intake_stop) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    intake_job_t *head, *tail; /* owned jobs waiting for the writer, under mu */
    int queued;                /* under mu */
    int stopping;              /* under mu */
    PGconn *conn;              /* owned by the writer thread */
    prt_local_t *policy;       /* owned by the writer thread: its own rules state */
    prefcache_t *prefs;        /* owned by the writer thread; NULL: no cache */
    /* The clients this batch may have changed: once it committed, their
     * facts are read back and published to the cache. Read back, not
     * remembered: a request undone on its savepoint changed nothing. */
    char pub_id[INTAKE_BATCH_MAX][37];
    int n_pub;
} intake_writer_t;

struct intake {
    intake_writer_t writers[INTAKE_WRITERS];
    int n_writers;   /* initialised (mutex and condition made) */
    atomic_int refs; /* the starter's plus intake_ref's */
};

/* What one request came to inside the batch transaction. */
typedef enum {
    INTAKE_ANSWERED, /* res is final whatever happens, unless the commit fails */
    INTAKE_BROKEN,   /* the connection or transaction is unusable: fail the batch */
} intake_step_t;

intake_job_t *intake_job_new(void)
{
    return calloc(1, sizeof(intake_job_t));
}

void intake_job_free(intake_job_t *job)
{
    if (!job)
        return;
    req_free(&job->req);
    free(job);
}

void intake_result_free(intake_result_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Sets r (empty) to outcome; body (owned, or NULL) moves to r. */
static void intake_result(intake_result_t *r, intake_outcome_t outcome, char *body, const char *why)
{
    r->outcome = outcome;
    r->body = body;
    r->why = why;
}

static void intake_finish(intake_job_t *job, intake_result_t *res)
{
    job->done(job->cls, res);
    intake_job_free(job);
}

/* A client's requests all go to the same writer: they keep their order, and
 * two writers never wait on each other's locks for one client's rows or
 * idempotency keys (which are per client). */
static intake_writer_t *intake_writer_for(intake_t *in, const char *client_id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)client_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &in->writers[h % (uint32_t)in->n_writers];
}

void intake_submit(intake_t *in, intake_job_t *job)
{
    const char *why = NULL;
    if (!in) {
        why = "the intake is not running";
    } else {
        intake_writer_t *w = intake_writer_for(in, job->req.client_id);
        pthread_mutex_lock(&w->mu);
        if (w->stopping) {
            why = "shutting down";
        } else if (w->queued >= INTAKE_QUEUE_MAX / INTAKE_WRITERS) {
            why = "too many requests waiting to be written";
        } else {
            job->next = NULL;
            if (w->tail)
                w->tail->next = job;
            else
                w->head = job;
            w->tail = job;
            w->queued++;
            pthread_cond_signal(&w->cv);
        }
        pthread_mutex_unlock(&w->mu);
    }
    if (why) {
        intake_result_t res;
        intake_result(&res, INTAKE_UNAVAILABLE, NULL, why);
        intake_finish(job, &res);
    }
}

/* Returns 0 when w->conn is usable, reconnecting once if needed. */
static int intake_connect(intake_writer_t *w, char *err, size_t errlen)
{
    if (w->conn && db_ensure(w->conn) == 0)
        return 0;
    if (w->conn) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    w->conn = db_connect(w->app->cfg->database_url, err, errlen);
    return w->conn ? 0 : -1;
}

/* The upsert record of the request's client: fields the request leaves out
 * are NULL (or consent -1), which the store keeps as they are. */
static void intake_upsert_record(const req_comm_t *r, store_client_t *cl)
{
    memset(cl, 0, sizeof *cl);
    snprintf(cl->id, sizeof cl->id, "%s", r->client_id);
    cl->name = r->client.name;
    cl->email = r->client.email;
    cl->phone = r->client.phone;
    cl->timezone = r->client.timezone;
    cl->locale = r->client.locale;
    memcpy(cl->consent, r->client.consent, sizeof cl->consent);
}

/* One request made ready to insert: the decision, the row and its body (what
 * the request is answered, and what a replay of it gets).
 * The row's strings point into the job, and into the draft itself (which
 * therefore must not move once composed). */
typedef struct intake_draft {
    policy_decision_t d;
    store_comm_new_t c;
    buf_t decision, body, fallback;
    int batched;        /* the decision merges it into a digest */
    char digest_id[37]; /* the digest it joined, once joined */
} intake_draft_t;

static void intake_draft_init(intake_draft_t *dr)
{
    memset(dr, 0, sizeof *dr);
    buf_init(&dr->decision, INTAKE_BODY_MAX);
    buf_init(&dr->body, INTAKE_BODY_MAX);
    buf_init(&dr->fallback, 256);
}

static void intake_draft_free(intake_draft_t *dr)
{
    buf_free(&dr->decision);
    buf_free(&dr->body);
    buf_free(&dr->fallback);
}

/* Decides for job (one policy call, on data already in memory) and fills
 * the draft's row; intake_draft_complete completes it once a digest, if any, is
 * joined. pending: the client's LOW messages already waiting (NULL: none).
 * 0, or -1 when no id could be made. */
static int intake_compose(intake_writer_t *w, const intake_job_t *job, const policy_client_t *pc,
                          const rules_pending_t *pending, intake_draft_t *dr)
{
    const req_comm_t *r = &job->req;
    policy_msg_t msg = {
        .message_type = r->message_type,
        .urgency = r->urgency,
        .preferred_channel = r->preferred_channel[0] ? r->preferred_channel : NULL,
        .has_attachment = r->n_attachments > 0,
    };
    policy_decision_t *d = &dr->d;
    /* The live rules (the built-in policy when they fail or are absent). */
    if (w->policy)
        prt_decide(w->policy, &msg, pc, time_now(), pending, d);
    else
        policy_builtin_decide(&msg, pc, time_now(), d);
    /* no attachment in a digest, and a digest is an email */
    dr->batched = apply_batch_guard(d, msg.has_attachment);

    store_comm_new_t *c = &dr->c;
    if (cry_uuid4(c->id) != 0)
        return -1;
    c->plan_id = r->plan_id;
    c->client_id = r->client_id;
    c->message_type = r->message_type;
    c->urgency = d->urgency; /* the request's, or the default the rules gave */
    c->preferred_channel = msg.preferred_channel;
    c->context_json = r->context_json;
    c->attachments = r->attachments;
    c->n_attachments = r->n_attachments;
    c->idempotency_key = job->idempotency_key[0] ? job->idempotency_key : NULL;
    c->request_hash = job->request_hash;
    c->status = d->status;
    c->channel = d->primary[0] ? d->primary : NULL;
    c->send_at = d->send_at;
    c->priority = d->priority;
    c->rules_version = d->rules_version;
    c->skip_reason = d->skip_reason[0] ? d->skip_reason : NULL;
    return 0;
}

/* Joins (or opens) the client's digest for a batched draft; the row then
 * becomes a "batched" member of it. 0, or -1 with err (the transaction is
 * then aborted). */
static int intake_digest_join(PGconn *conn, intake_draft_t *dr, char *err, size_t errlen)
{
    store_digest_join_t j = {
        .client_id = dr->c.client_id,
        .plan_id = dr->c.plan_id,
        .batch_key = dr->d.batch_key,
        .channel = dr->d.primary,
        .window_seconds = dr->d.batch_window,
        .max_size = dr->d.batch_max,
        .send_at = dr->d.send_at,
        .due = apply_digest_due,
    };
    if (cry_uuid4(j.digest_id) != 0) {
        snprintf(err, errlen, "cannot make a digest id");
        return -1;
    }
    if (store_digest_join(conn, &j, err, errlen) != 0)
        return -1;
    snprintf(dr->digest_id, sizeof dr->digest_id, "%s", j.digest_id);
    dr->c.status = "batched";
    dr->c.batch_id = dr->digest_id;
    return 0;
}

/* The decision as answered and stored; a member's batch object also names
 * the digest it joined. The batch object is the one just before
 * "skip_reason" (policy_decision_json's fixed order), so the id goes in
 * before its closing brace. */
static int intake_decision_json(const intake_draft_t *dr, buf_t *out)
{
    if (!dr->digest_id[0])
        return policy_decision_json(&dr->d, out);
    buf_t tmp;
    buf_init(&tmp, INTAKE_BODY_MAX);
    int rc = policy_decision_json(&dr->d, &tmp);
    const char *at = rc == 0 && tmp.data ? strstr(tmp.data, "},\"skip_reason\":") : NULL;
    if (!at) {
        buf_free(&tmp);
        return -1;
    }
    rc |= buf_append(out, tmp.data, (size_t)(at - tmp.data));
    rc |= buf_puts(out, ",\"digest_id\":");
    rc |= jtext_string(out, dr->digest_id);
    rc |= buf_puts(out, at);
    buf_free(&tmp);
    return rc ? -1 : 0;
}

/* Builds the decision, the fallbacks and the body of a composed (and,
 * when batched, joined) draft. 0, or -1 when the body cannot be built. */
static int intake_draft_complete(intake_draft_t *dr)
{
    store_comm_new_t *c = &dr->c;
    if (intake_decision_json(dr, &dr->decision) != 0 ||
        policy_fallback_json(&dr->d, &dr->fallback) != 0)
        return -1;
    int rc = buf_puts(&dr->body, "{\"communication_id\":");
    rc |= jtext_string(&dr->body, c->id);
    rc |= buf_puts(&dr->body, ",\"status\":");
    rc |= jtext_string(&dr->body, c->status);
    rc |= buf_puts(&dr->body, ",\"decision\":");
    rc |= buf_append(&dr->body, dr->decision.data, dr->decision.len);
    rc |= buf_putc(&dr->body, '}');
    if (rc != 0)
        return -1;
    c->fallback_json = dr->fallback.data;
    c->decision_json = dr->decision.data;
    c->response_json = dr->body.data;
    return 0;
}

/* A key used before: the first request's stored answer (taken from
 * *replay), or a conflict when the body differs. */
static void intake_key_taken(store_insert_outcome_t outcome, char **replay, intake_result_t *res)
{
    if (outcome == STORE_REPLAY && *replay) {
        intake_result(res, INTAKE_DUPLICATE, *replay, NULL);
        *replay = NULL;
    } else if (outcome == STORE_REPLAY) {
        intake_result(res, INTAKE_FAILED, NULL, "the stored answer could not be read");
    } else {
        intake_result(res, INTAKE_CONFLICT, NULL, NULL);
    }
}

/* Undoes one request's writes. Returns -1 when even that fails. */
static int intake_undo(PGconn *conn, char *err, size_t errlen)
{
    if (db_rollback_to(conn, "req", err, errlen) != 0)
        return -1;
    return db_release(conn, "req", err, errlen);
}

/* A store error: the batch is lost if the connection is, else only this
 * request is (its savepoint is rolled back, the batch goes on). */
static intake_step_t intake_store_failed(intake_writer_t *w, const char *what, const char *why,
                                         intake_result_t *res)
{
    char err[INTAKE_ERR_MAX];
    log_warn("intake", what, "error", why, NULL);
    if (db_conn_lost(w->conn) || intake_undo(w->conn, err, sizeof err) != 0)
        return INTAKE_BROKEN;
    intake_result(res, INTAKE_FAILED, NULL, "the request could not be stored");
    return INTAKE_ANSWERED;
}

/* 1 when this batch may have changed client id (its transaction sees a row
 * no other process does yet). */
static int intake_noted(const intake_writer_t *w, const char *id)
{
    for (int i = 0; i < w->n_pub; i++)
        if (strcmp(w->pub_id[i], id) == 0)
            return 1;
    return 0;
}

/* Notes that this batch may change client id. */
static void intake_note_change(intake_writer_t *w, const char *id)
{
    if (!prefcache_enabled(w->prefs) || intake_noted(w, id))
        return;
    if (w->n_pub >= INTAKE_BATCH_MAX)
        return; /* a batch holds at most that many requests */
    snprintf(w->pub_id[w->n_pub++], sizeof w->pub_id[0], "%s", id);
}

/* After the commit (publish 1) or a failed batch (0): tells the cache what
 * the noted clients are now, and forgets them. A failure to read them back
 * leaves their entries to expire; it is logged. */
static void intake_publish(intake_writer_t *w, int publish)
{
    char err[INTAKE_ERR_MAX];
    for (int i = 0; publish && i < w->n_pub; i += PREFCACHE_MAX) {
        int m = w->n_pub - i < PREFCACHE_MAX ? w->n_pub - i : PREFCACHE_MAX;
        const char *ids[PREFCACHE_MAX];
        for (int k = 0; k < m; k++)
            ids[k] = w->pub_id[i + k];
        if (prefs_publish(w->prefs, w->conn, ids, m, err, sizeof err) != 0) {
            log_warn("intake", "preference_cache_not_told", "error", err, NULL);
            break;
        }
    }
    w->n_pub = 0;
}

/* Moves the facts of src into dst (dst's own are freed first). */
static void intake_take_facts(store_client_facts_t *dst, store_client_facts_t *src)
{
    store_client_facts_free(dst, 1);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

/* Fills the cache with what a miss read, and frees the texts. A cache that
 * cannot be told says so itself; the decision does not depend on it. */
static void intake_fill(intake_writer_t *w, const char **ids, char **texts, int n)
{
    if (n > 0)
        (void)prefcache_fill(w->prefs, ids, (const char *const *)texts, n);
    for (int i = 0; i < n; i++)
        free(texts[i]);
}

/* The facts of clients ids[0..n) into out[0..n): a client whose row this
 * round changed (fresh[k]) is read from PostgreSQL, as is one the cache
 * misses (and the cache is filled with it); one the cache has needs only
 * its activity from PostgreSQL. 0, or -1 with err (out then empty). */
static int intake_load_facts(intake_writer_t *w, PGconn *conn, const char **ids, const int *fresh,
                             int n, store_client_facts_t *out, char *err, size_t errlen)
{
    memset(out, 0, (size_t)n * sizeof *out);
    int *from_cache = calloc((size_t)n, sizeof *from_cache);
    int *idx = calloc((size_t)n, sizeof *idx);
    const char **sub = calloc((size_t)n, sizeof *sub);
    store_client_facts_t *tmp = calloc((size_t)n, sizeof *tmp);
    int rc = -1, m = 0;
    if (!from_cache || !idx || !sub || !tmp) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* the cache first, for the clients neither this round nor an earlier
     * one of the batch changed (what the cache has of those is older than
     * what this transaction sees) */
    for (int k = 0; w->prefs && k < n;) {
        int c = 0;
        const char *ask[PREFCACHE_MAX];
        int at[PREFCACHE_MAX];
        for (; k < n && c < PREFCACHE_MAX; k++)
            if (!fresh[k] && !intake_noted(w, ids[k])) {
                at[c] = k;
                ask[c++] = ids[k];
            }
        char *got[PREFCACHE_MAX];
        if (c > 0 && prefcache_get(w->prefs, ask, c, got) > 0)
            for (int j = 0; j < c; j++)
                if (got[j] && prefs_decode(got[j], &out[at[j]]) == 0)
                    from_cache[at[j]] = 1;
        for (int j = 0; j < c; j++)
            free(got[j]);
    }
    /* the activity of the cached ones */
    for (int k = 0; k < n; k++)
        if (from_cache[k]) {
            idx[m] = k;
            sub[m++] = ids[k];
            tmp[m - 1] = out[k];
        }
    if (m > 0) {
        if (store_client_activity_load(conn, sub, m, tmp, err, errlen) != 0)
            goto out;
        for (int j = 0; j < m; j++) {
            int k = idx[j];
            long long cached = out[k].prefs_version;
            out[k] = tmp[j]; /* the strings moved there and back: still out's */
            if (out[k].found && out[k].prefs_version != cached) {
                /* changed since it was cached: read whole below */
                store_client_facts_free(&out[k], 1);
                memset(&out[k], 0, sizeof out[k]);
                from_cache[k] = 0;
            }
        }
    }
    memset(tmp, 0, (size_t)n * sizeof *tmp);
    /* everything else, whole */
    m = 0;
    for (int k = 0; k < n; k++)
        if (!from_cache[k]) {
            idx[m] = k;
            sub[m++] = ids[k];
        }
    if (m > 0 && store_client_facts_load(conn, sub, m, tmp, err, errlen) != 0)
        goto out;
    const char *fill_id[PREFCACHE_MAX];
    char *fill_text[PREFCACHE_MAX];
    int n_fill = 0;
    for (int j = 0; j < m; j++) {
        int k = idx[j];
        intake_take_facts(&out[k], &tmp[j]);
        if (!out[k].found || out[k].erased || !prefcache_enabled(w->prefs))
            continue;
        if (fresh[k]) {
            intake_note_change(w, ids[k]);
            continue;
        }
        if (intake_noted(w, ids[k]))
            continue; /* uncommitted: published after the commit, or not at all */
        fill_id[n_fill] = ids[k];
        fill_text[n_fill++] = prefs_encode(&out[k]); /* NULL is skipped by the fill */
        if (n_fill == PREFCACHE_MAX) {
            intake_fill(w, fill_id, fill_text, n_fill);
            n_fill = 0;
        }
    }
    intake_fill(w, fill_id, fill_text, n_fill);
    rc = 0;
out:
    if (rc != 0)
        store_client_facts_free(out, n);
    free(from_cache);
    free(idx);
    free(sub);
    free(tmp);
    return rc;
}

/* One request on its own savepoint, statement by statement: the path that
 * isolates a failing request from the others of its round. */
static intake_step_t intake_one(intake_writer_t *w, intake_job_t *job, intake_result_t *res)
{
    PGconn *conn = w->conn;
    const cry_keys_t *keys = &w->app->keys;
    const req_comm_t *r = &job->req;
    char err[INTAKE_ERR_MAX];
    intake_step_t step = INTAKE_ANSWERED;
    store_client_facts_t facts; /* owned; what the policy's view points into */
    int facts_loaded = 0;
    intake_draft_t *dr = malloc(sizeof *dr); /* owned; too big for the stack */
    char *replay = NULL;
    if (!dr) {
        intake_result(res, INTAKE_FAILED, NULL, "out of memory");
        return INTAKE_ANSWERED;
    }
    intake_draft_init(dr);

    if (db_savepoint(conn, "req", err, sizeof err) != 0) {
        log_warn("intake", "savepoint_failed", "error", err, NULL);
        step = INTAKE_BROKEN;
        goto out;
    }
    if (r->client.present) {
        store_client_t up; /* borrows the request's strings: never freed */
        intake_upsert_record(r, &up);
        if (store_consent_context(conn, STORE_SOURCE_API, job->actor, err, sizeof err) != 0 ||
            store_client_upsert(conn, keys, &up, err, sizeof err) != 0) {
            step = intake_store_failed(w, "client_upsert_failed", err, res);
            goto out;
        }
    }
    /* read back even after an upsert: preferences and opt-outs live in the
     * store (or its cache), not in the request */
    const char *ids[1] = {r->client_id};
    const int fresh[1] = {r->client.present};
    if (intake_load_facts(w, conn, ids, fresh, 1, &facts, err, sizeof err) != 0) {
        step = intake_store_failed(w, "client_load_failed", err, res);
        goto out;
    }
    facts_loaded = 1;
    if (!facts.found || facts.erased) {
        if (intake_undo(conn, err, sizeof err) != 0) {
            step = INTAKE_BROKEN;
            goto out;
        }
        intake_result(res, facts.found ? INTAKE_ERASED : INTAKE_UNKNOWN_CLIENT, NULL, NULL);
        goto out;
    }

    policy_client_t pc;
    char pref[POLICY_MAX_CHANNELS][12];
    client_view_from_facts(&facts, &pc, pref);
    pc.channels_off = drv_channels_off(w->app->cfg); /* a setting, not a client fact */
    rules_pending_t pending = {facts.pending_count, facts.pending_oldest_at};
    if (intake_compose(w, job, &pc, &pending, dr) != 0) {
        step = intake_store_failed(w, "answer_failed", "building the answer", res);
        goto out;
    }
    /* A replay found below undoes the join with the rest of the savepoint. */
    if (dr->batched && intake_digest_join(conn, dr, err, sizeof err) != 0) {
        step = intake_store_failed(w, "digest_join_failed", err, res);
        goto out;
    }
    if (intake_draft_complete(dr) != 0) {
        step = intake_store_failed(w, "answer_failed", "building the answer", res);
        goto out;
    }

    store_insert_outcome_t outcome = STORE_INSERTED;
    if (store_comm_insert(conn, &dr->c, &outcome, &replay, err, sizeof err) != 0) {
        step = intake_store_failed(w, "insert_failed", err, res);
        goto out;
    }
    if (outcome == STORE_INSERTED) {
        if (db_release(conn, "req", err, sizeof err) != 0) {
            step = INTAKE_BROKEN;
            goto out;
        }
        intake_result(res, INTAKE_ACCEPTED, buf_detach(&dr->body), NULL);
        goto out;
    }
    /* A replay or a conflict writes nothing, not even the client update. */
    if (intake_undo(conn, err, sizeof err) != 0) {
        step = INTAKE_BROKEN;
        goto out;
    }
    intake_key_taken(outcome, &replay, res);

out:
    free(replay);
    intake_draft_free(dr);
    free(dr);
    if (facts_loaded)
        store_client_facts_free(&facts, 1);
    return step;
}

/* Joins the digests of the batched drafts among drafts[rows_job[0..n)] in
 * client id order: two writers that hold digests of the same clients then
 * lock them in the same order and cannot deadlock on each other. A round
 * holds at most INTAKE_BATCH_MAX requests, and few are batched, so an
 * insertion sort does. */
static int intake_digest_join_all(PGconn *conn, intake_job_t **jobs, intake_draft_t *drafts,
                                  const int *rows_job, int n, char *err, size_t errlen)
{
    int order[INTAKE_BATCH_MAX];
    int m = 0;
    for (int k = 0; k < n && m < INTAKE_BATCH_MAX; k++) {
        int i = rows_job[k];
        if (!drafts[i].batched)
            continue;
        int at = m++;
        while (at > 0 && strcmp(jobs[order[at - 1]]->req.client_id, jobs[i]->req.client_id) > 0) {
            order[at] = order[at - 1];
            at--;
        }
        order[at] = i;
    }
    for (int k = 0; k < m; k++)
        if (intake_digest_join(conn, &drafts[order[k]], err, errlen) != 0)
            return -1;
    return 0;
}

/* The set-based round: every request of jobs[0..n) (distinct clients) in a
 * handful of statements whatever n is: probe the idempotency keys, upsert
 * the clients, load what the policy needs, decide in memory, insert the rows
 * with their children. Returns 0 with every res[i] set, or -1 with err when
 * a statement failed or the outcome differs from what the probe promised
 * (a concurrent writer took a key): the caller then undoes the round and
 * redoes it request by request. */
static int intake_round_set(intake_writer_t *w, intake_job_t **jobs, intake_result_t **res, int n,
                            char *err, size_t errlen)
{
    PGconn *conn = w->conn;
    int rc = -1;
    int *write = calloc((size_t)n, sizeof *write); /* 1: still to insert */
    store_key_probe_t *probe = calloc((size_t)n, sizeof *probe);
    int *probe_job = calloc((size_t)n, sizeof *probe_job); /* probe -> job index */
    store_client_t *up = calloc((size_t)n, sizeof *up);    /* borrows request strings */
    const char **ids = calloc((size_t)n, sizeof *ids);
    int *ids_job = calloc((size_t)n, sizeof *ids_job);
    store_client_facts_t *facts = calloc((size_t)n, sizeof *facts);
    intake_draft_t *drafts = calloc((size_t)n, sizeof *drafts);
    store_comm_new_t *rows = calloc((size_t)n, sizeof *rows);
    int *rows_job = calloc((size_t)n, sizeof *rows_job);
    int n_probe = 0, n_up = 0, n_ids = 0, n_rows = 0, facts_loaded = 0;
    if (!write || !probe || !probe_job || !up || !ids || !ids_job || !facts || !drafts || !rows ||
        !rows_job) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        write[i] = 1;
        intake_draft_init(&drafts[i]);
        if (jobs[i]->idempotency_key[0]) {
            probe[n_probe] = (store_key_probe_t){.client_id = jobs[i]->req.client_id,
                                                 .idempotency_key = jobs[i]->idempotency_key,
                                                 .request_hash = jobs[i]->request_hash};
            probe_job[n_probe++] = i;
        }
    }

    /* Keys used before are answered from what was stored and write nothing,
     * not even their client update. */
    if (n_probe > 0 && store_comm_keys_probe(conn, probe, n_probe, err, errlen) != 0)
        goto out;
    for (int k = 0; k < n_probe; k++) {
        if (probe[k].outcome == STORE_INSERTED)
            continue;
        int i = probe_job[k];
        write[i] = 0;
        intake_key_taken(probe[k].outcome, &probe[k].replay_json, res[i]);
    }

    /* The consent ledger names who changed consent, and one statement's
     * rows share one actor: the clients are upserted one statement per
     * token that sent them (most rounds have one). */
    unsigned char grouped[INTAKE_BATCH_MAX] = {0};
    for (int first = 0; first < n; first++) {
        if (grouped[first] || !write[first] || !jobs[first]->req.client.present)
            continue;
        const char *actor = jobs[first]->actor;
        int m = 0;
        for (int i = first; i < n; i++)
            if (!grouped[i] && write[i] && jobs[i]->req.client.present &&
                strcmp(jobs[i]->actor, actor) == 0) {
                grouped[i] = 1;
                intake_upsert_record(&jobs[i]->req, &up[n_up + m++]);
            }
        if (store_consent_context(conn, STORE_SOURCE_API, actor, err, errlen) != 0 ||
            store_clients_upsert_many(conn, &w->app->keys, &up[n_up], m, err, errlen) != 0)
            goto out;
        n_up += m;
    }

    int *fresh = calloc((size_t)n, sizeof *fresh);
    if (!fresh) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (write[i]) {
            fresh[n_ids] = jobs[i]->req.client.present;
            ids[n_ids] = jobs[i]->req.client_id;
            ids_job[n_ids++] = i;
        }
    int loaded =
        n_ids == 0 || intake_load_facts(w, conn, ids, fresh, n_ids, facts, err, errlen) == 0;
    free(fresh);
    if (!loaded)
        goto out;
    facts_loaded = 1;

    for (int k = 0; k < n_ids; k++) {
        int i = ids_job[k];
        if (!facts[k].found) {
            /* no client object, or it would have been upserted: nothing of
             * this request was written */
            write[i] = 0;
            intake_result(res[i], INTAKE_UNKNOWN_CLIENT, NULL, NULL);
            continue;
        }
        if (facts[k].erased) {
            /* an upsert without consent left it erased: nothing was written */
            write[i] = 0;
            intake_result(res[i], INTAKE_ERASED, NULL, NULL);
            continue;
        }
        policy_client_t pc;
        char pref[POLICY_MAX_CHANNELS][12];
        client_view_from_facts(&facts[k], &pc, pref);
        pc.channels_off = drv_channels_off(w->app->cfg);
        rules_pending_t pending = {facts[k].pending_count, facts[k].pending_oldest_at};
        if (intake_compose(w, jobs[i], &pc, &pending, &drafts[i]) != 0) {
            /* its client upsert cannot be undone alone: redo row by row */
            snprintf(err, errlen, "building an answer failed");
            goto out;
        }
        rows_job[n_rows++] = i;
    }
    /* Digests are joined one request at a time (a statement or two each:
     * LOW requests of recently contacted clients are few), in client order
     * so that two writers lock the digests of a round in the same order. */
    if (intake_digest_join_all(conn, jobs, drafts, rows_job, n_rows, err, errlen) != 0)
        goto out;
    for (int k = 0; k < n_rows; k++) {
        int i = rows_job[k];
        if (intake_draft_complete(&drafts[i]) != 0) {
            snprintf(err, errlen, "building an answer failed");
            goto out;
        }
        rows[k] = drafts[i].c;
    }

    if (n_rows > 0) {
        int inserted = 0;
        if (store_comm_insert_many(conn, rows, n_rows, &inserted, err, errlen) != 0)
            goto out;
        if (inserted != n_rows) {
            snprintf(err, errlen, "an idempotency key was taken during the round");
            goto out;
        }
    }
    for (int k = 0; k < n_rows; k++) {
        int i = rows_job[k];
        intake_result(res[i], INTAKE_ACCEPTED, buf_detach(&drafts[i].body), NULL);
    }
    rc = 0;

out:
    if (probe)
        for (int k = 0; k < n_probe; k++)
            free(probe[k].replay_json);
    if (facts && facts_loaded)
        store_client_facts_free(facts, n_ids);
    if (drafts)
        for (int i = 0; i < n; i++)
            intake_draft_free(&drafts[i]);
    free(write);
    free(probe);
    free(probe_job);
    free(up);
    free(ids);
    free(ids_job);
    free(facts);
    free(drafts);
    free(rows);
    free(rows_job);
    return rc;
}

/* One round, set-based, or request by request when the set-based
 * statements fail (input is validated before it gets here, so that is rare:
 * a concurrent writer, a damaged row, a bug). The round is undone first: to
 * a savepoint of its own, or, when it is the transaction's first (the usual
 * case: one round per batch), by restarting the transaction, which saves
 * the savepoint's round trips. */
static intake_step_t intake_round(intake_writer_t *w, intake_job_t **jobs, intake_result_t **res,
                                  int n, int first)
{
    char err[INTAKE_ERR_MAX] = "";
    if (n == 1) /* a savepoint of its own already: no need for a second */
        return intake_one(w, jobs[0], res[0]);
    if (!first && db_savepoint(w->conn, "round", err, sizeof err) != 0) {
        log_warn("intake", "savepoint_failed", "error", err, NULL);
        return INTAKE_BROKEN;
    }
    if (intake_round_set(w, jobs, res, n, err, sizeof err) == 0) {
        if (first)
            return INTAKE_ANSWERED;
        return db_release(w->conn, "round", err, sizeof err) == 0 ? INTAKE_ANSWERED : INTAKE_BROKEN;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    log_warn("intake", "round_fallback", "requests", count, "error", err, NULL);
    if (db_conn_lost(w->conn))
        return INTAKE_BROKEN;
    if (first
            ? db_rollback(w->conn, err, sizeof err) != 0 || db_begin(w->conn, err, sizeof err) != 0
            : db_rollback_to(w->conn, "round", err, sizeof err) != 0 ||
                  db_release(w->conn, "round", err, sizeof err) != 0)
        return INTAKE_BROKEN;
    for (int i = 0; i < n; i++) {
        intake_result_free(res[i]);
        if (intake_one(w, jobs[i], res[i]) == INTAKE_BROKEN)
            return INTAKE_BROKEN;
    }
    return INTAKE_ANSWERED;
}

/* Writes jobs[0..n) in rounds whose requests name distinct clients (one
 * statement cannot upsert a client twice, and a client's later request must
 * see its earlier one, as if they had come one by one): a request waits for
 * the next round while an earlier one of its client is still unwritten, so
 * each client's requests keep their order. */
static intake_step_t intake_rounds(intake_writer_t *w, intake_job_t **jobs, intake_result_t *res,
                                   int n)
{
    unsigned char taken[INTAKE_BATCH_MAX] = {0};
    intake_job_t *rjobs[INTAKE_BATCH_MAX];
    intake_result_t *rres[INTAKE_BATCH_MAX];
    int left = n;
    while (left > 0) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (taken[i])
                continue;
            int waits = 0;
            for (int j = 0; j < i && !waits; j++)
                waits = !taken[j] && strcmp(jobs[j]->req.client_id, jobs[i]->req.client_id) == 0;
            if (waits)
                continue;
            rjobs[m] = jobs[i];
            rres[m++] = &res[i];
        }
        if (intake_round(w, rjobs, rres, m, left == n) == INTAKE_BROKEN)
            return INTAKE_BROKEN;
        /* mark after the round: the scan above must see this round's jobs
         * as unwritten so that their clients' later requests wait */
        for (int i = 0, k = 0; i < n && k < m; i++)
            if (jobs[i] == rjobs[k]) {
                taken[i] = 1;
                k++;
            }
        left -= m;
    }
    return INTAKE_ANSWERED;
}

static void intake_write_batch(intake_writer_t *w, intake_job_t **jobs, int n)
{
    intake_result_t res[INTAKE_BATCH_MAX];
    /* every request is given its outcome below: this one only shows if not */
    for (int i = 0; i < n; i++)
        intake_result(&res[i], INTAKE_FAILED, NULL, "the request was not answered");
    char err[INTAKE_ERR_MAX] = "";
    int ok = intake_connect(w, err, sizeof err) == 0 && db_begin(w->conn, err, sizeof err) == 0;
    /* An idle connection whose server restarted fails only at first use:
     * nothing has been written yet, so reconnect and try once more. */
    if (!ok && w->conn && db_conn_lost(w->conn))
        ok = intake_connect(w, err, sizeof err) == 0 && db_begin(w->conn, err, sizeof err) == 0;
    if (ok && intake_rounds(w, jobs, res, n) == INTAKE_BROKEN) {
        snprintf(err, sizeof err, "a request broke the transaction");
        ok = 0;
    }
    /* NOTIFY inside the transaction is delivered at commit: one wake-up
     * per batch, and only for rows that are really there. */
    if (ok)
        ok = queue_notify(w->conn, err, sizeof err) == 0;
    if (ok)
        ok = db_commit(w->conn, err, sizeof err) == 0;
    intake_publish(w, ok);

    if (!ok) {
        char count[16];
        snprintf(count, sizeof count, "%d", n);
        log_warn("intake", "batch_failed", "requests", count, "error", err, NULL);
        if (w->conn && !db_conn_lost(w->conn)) {
            char ignored[INTAKE_ERR_MAX];
            /* the batch is unavailable either way; db_ensure retries this */
            (void)db_rollback(w->conn, ignored, sizeof ignored);
        }
        for (int i = 0; i < n; i++) {
            intake_result_free(&res[i]);
            intake_result(&res[i], INTAKE_STORE_UNAVAILABLE, NULL, NULL);
        }
    }
    for (int i = 0; i < n; i++)
        intake_finish(jobs[i], &res[i]);
}

static void *intake_main(void *arg)
{
    intake_writer_t *w = arg;
    intake_job_t *batch[INTAKE_BATCH_MAX];
    /* A Lua state belongs to one thread: this writer's, made here. */
    w->policy = w->app->rules ? prt_local_new(w->app->rules) : NULL;
    char err[256];
    w->prefs =
        prefcache_new(w->app->cfg->redis_url, w->app->cfg->redis_timeout_ms, err, sizeof err);
    if (!w->prefs)
        log_warn("intake", "preference_cache_off", "error", err, NULL);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head) {
            pthread_mutex_unlock(&w->mu);
            break; /* stopping, and everything queued has been answered */
        }
        int n = 0;
        while (w->head && n < INTAKE_BATCH_MAX) {
            batch[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head)
            w->tail = NULL;
        w->queued -= n;
        pthread_mutex_unlock(&w->mu);
        intake_write_batch(w, batch, n);
    }
    if (w->conn)
        PQfinish(w->conn);
    w->conn = NULL;
    prt_local_free(w->policy);
    w->policy = NULL;
    prefcache_free(w->prefs);
    w->prefs = NULL;
    return NULL;
}

static void intake_free(intake_t *in)
{
    for (int i = 0; i < in->n_writers; i++) {
        pthread_cond_destroy(&in->writers[i].cv);
        pthread_mutex_destroy(&in->writers[i].mu);
    }
    free(in);
}

/* Tells every writer to finish what is queued, and joins the threads. */
static void intake_join(intake_t *in)
{
    for (int i = 0; i < in->n_writers; i++) {
        intake_writer_t *w = &in->writers[i];
        pthread_mutex_lock(&w->mu);
        w->stopping = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    for (int i = 0; i < in->n_writers; i++)
        if (in->writers[i].started) {
            pthread_join(in->writers[i].thread, NULL);
            in->writers[i].started = 0;
        }
}

intake_t *intake_start(app_t *app, char *err, size_t errlen)
{
    intake_t *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&in->refs, 1);
    for (int i = 0; i < INTAKE_WRITERS; i++) {
        intake_writer_t *w = &in->writers[i];
        w->app = app;
        if (pthread_mutex_init(&w->mu, NULL) != 0) {
            snprintf(err, errlen, "cannot create a mutex");
            intake_free(in);
            return NULL;
        }
        if (pthread_cond_init(&w->cv, NULL) != 0) {
            pthread_mutex_destroy(&w->mu);
            snprintf(err, errlen, "cannot create a condition variable");
            intake_free(in);
            return NULL;
        }
        in->n_writers++;
    }
    /* Connections are made by the writers when the first batch comes: a
     * database that is down at start-up makes requests unavailable (and
     * /readyz say so), not the process refuse to start. */
    for (int i = 0; i < in->n_writers; i++) {
        intake_writer_t *w = &in->writers[i];
        if (pthread_create(&w->thread, NULL, intake_main, w) != 0) {
            intake_join(in);
            intake_free(in);
            snprintf(err, errlen, "cannot start the writer threads");
            return NULL;
        }
        w->started = 1;
    }
    return in;
}

void intake_stop(intake_t *in)
{
    if (!in)
        return;
    intake_join(in);
    intake_unref(in);
}

intake_t *intake_ref(intake_t *in)
{
    if (in)
        atomic_fetch_add(&in->refs, 1);
    return in;
}

void intake_unref(intake_t *in)
{
    if (!in || atomic_fetch_sub(&in->refs, 1) != 1)
        return;
    intake_free(in);
}
