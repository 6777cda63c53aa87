/* intake: group commit of new communications (see intake.h for why). */
#include "engine/intake.h"

#include "policy/policy.h"
#include "queue/queue.h"
#include "store/db.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTAKE_BODY_MAX (64 * 1024) /* a 202 body: id, status, decision */
#define INTAKE_ERR_MAX  512

struct intake {
    app_t *app; /* borrowed */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    intake_job_t *head, *tail; /* owned jobs waiting for the writer, under mu */
    int queued;                /* under mu */
    int stopping;              /* under mu */
    PGconn *conn;              /* owned by the writer thread */
    atomic_int refs;           /* the starter's plus intake_ref's */
};

/* What one request came to inside the batch transaction. */
typedef enum {
    INTAKE_ANSWERED, /* ans is final whatever happens, unless the commit fails */
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

static void intake_finish(intake_job_t *job, http_answer_t *ans)
{
    job->done(job->cls, ans);
    intake_job_free(job);
}

void intake_submit(intake_t *in, intake_job_t *job)
{
    const char *why = NULL;
    if (!in) {
        why = "the intake is not running";
    } else {
        pthread_mutex_lock(&in->mu);
        if (in->stopping) {
            why = "shutting down";
        } else if (in->queued >= INTAKE_QUEUE_MAX) {
            why = "too many requests waiting to be written";
        } else {
            job->next = NULL;
            if (in->tail)
                in->tail->next = job;
            else
                in->head = job;
            in->tail = job;
            in->queued++;
            pthread_cond_signal(&in->cv);
        }
        pthread_mutex_unlock(&in->mu);
    }
    if (why) {
        http_answer_t ans;
        http_answer_error(&ans, 503, "service_unavailable", why);
        intake_finish(job, &ans);
    }
}

/* Returns 0 when in->conn is usable, reconnecting once if needed. */
static int intake_connect(intake_t *in, char *err, size_t errlen)
{
    if (in->conn && db_ensure(in->conn) == 0)
        return 0;
    if (in->conn) {
        PQfinish(in->conn);
        in->conn = NULL;
    }
    in->conn = db_connect(in->app->cfg->database_url, err, errlen);
    return in->conn ? 0 : -1;
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
    cl->consent_email = r->client.consent_email;
    cl->consent_sms = r->client.consent_sms;
    cl->consent_whatsapp = r->client.consent_whatsapp;
}

/* The policy's view of a client: flags and preferences, never the address
 * or number themselves. pref holds the channel names pc points into. */
static void intake_policy_client(const store_client_t *cl, policy_client_t *pc,
                                 char pref[POLICY_MAX_CHANNELS][12])
{
    memset(pc, 0, sizeof *pc);
    pc->has_email = cl->email && cl->email[0];
    pc->has_phone = cl->phone && cl->phone[0];
    pc->timezone = cl->timezone ? cl->timezone : "UTC";
    pc->consent_email = cl->consent_email;
    pc->consent_sms = cl->consent_sms;
    pc->consent_whatsapp = cl->consent_whatsapp;
    pc->opt_out_email = cl->opt_out_email;
    pc->opt_out_sms = cl->opt_out_sms;
    pc->opt_out_whatsapp = cl->opt_out_whatsapp;
    pc->quiet_start = cl->quiet_start[0] ? cl->quiet_start : NULL;
    pc->quiet_end = cl->quiet_end[0] ? cl->quiet_end : NULL;
    pc->last_contact_at = cl->last_contact_at;
    pc->whatsapp_window_until = 0;

    cJSON *arr = cl->preferred_channels_json ? cJSON_Parse(cl->preferred_channels_json) : NULL;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (n >= POLICY_MAX_CHANNELS)
            break;
        if (cJSON_IsString(it) && strlen(it->valuestring) < 12) {
            snprintf(pref[n], 12, "%s", it->valuestring);
            pc->preferred_channels[n] = pref[n];
            n++;
        }
    }
    cJSON_Delete(arr);
}

static int intake_fallback_json(const policy_decision_t *d, buf_t *out)
{
    int rc = buf_putc(out, '[');
    for (int i = 0; i < d->n_fallback; i++) {
        if (i)
            rc |= buf_putc(out, ',');
        rc |= jtext_string(out, d->fallback[i]);
    }
    rc |= buf_putc(out, ']');
    return rc ? -1 : 0;
}

/* Undoes one request's writes. Returns -1 when even that fails. */
static int intake_undo(PGconn *conn, char *err, size_t errlen)
{
    if (db_exec(conn, "ROLLBACK TO SAVEPOINT req", err, errlen) != 0)
        return -1;
    return db_exec(conn, "RELEASE SAVEPOINT req", err, errlen);
}

/* A store error: the batch is lost if the connection is, else only this
 * request is (its savepoint is rolled back, the batch goes on). */
static intake_step_t intake_store_failed(intake_t *in, const char *what, const char *why,
                                         http_answer_t *ans)
{
    char err[INTAKE_ERR_MAX];
    log_warn("intake", what, "error", why, NULL);
    if (db_conn_lost(in->conn) || intake_undo(in->conn, err, sizeof err) != 0)
        return INTAKE_BROKEN;
    http_answer_error(ans, 500, "internal_error", "the request could not be stored");
    return INTAKE_ANSWERED;
}

static intake_step_t intake_one(intake_t *in, intake_job_t *job, http_answer_t *ans)
{
    PGconn *conn = in->conn;
    const cry_keys_t *keys = &in->app->keys;
    const req_comm_t *r = &job->req;
    char err[INTAKE_ERR_MAX];
    intake_step_t step = INTAKE_ANSWERED;
    store_client_t cl;
    memset(&cl, 0, sizeof cl);
    buf_t decision, body, fallback;
    buf_init(&decision, INTAKE_BODY_MAX);
    buf_init(&body, INTAKE_BODY_MAX);
    buf_init(&fallback, 256);
    char *replay = NULL;

    if (db_exec(conn, "SAVEPOINT req", err, sizeof err) != 0) {
        log_warn("intake", "savepoint_failed", "error", err, NULL);
        step = INTAKE_BROKEN;
        goto out;
    }
    if (r->client.present) {
        store_client_t up; /* borrows the request's strings: never freed */
        intake_upsert_record(r, &up);
        if (store_client_upsert(conn, keys, &up, err, sizeof err) != 0) {
            step = intake_store_failed(in, "client_upsert_failed", err, ans);
            goto out;
        }
    }
    /* read back even after an upsert: preferences and opt-outs live in the
     * store, not in the request */
    int load_rc = store_client_load(conn, keys, r->client_id, &cl, err, sizeof err);
    if (load_rc < 0) {
        step = intake_store_failed(in, "client_load_failed", err, ans);
        goto out;
    }
    if (load_rc == 1) {
        if (intake_undo(conn, err, sizeof err) != 0) {
            step = INTAKE_BROKEN;
            goto out;
        }
        http_answer_error(ans, 422, "unknown_client",
                          "client_id: unknown client; include a client object to create it");
        goto out;
    }

    policy_msg_t msg = {
        .message_type = r->message_type,
        .urgency = r->urgency,
        .preferred_channel = r->preferred_channel[0] ? r->preferred_channel : NULL,
        .has_attachment = r->n_attachments > 0,
    };
    policy_client_t pc;
    char pref[POLICY_MAX_CHANNELS][12];
    intake_policy_client(&cl, &pc, pref);
    policy_decision_t d;
    policy_builtin_decide(&msg, &pc, time_now(), &d);

    store_comm_new_t c;
    memset(&c, 0, sizeof c);
    if (cry_uuid4(c.id) != 0 || policy_decision_json(&d, &decision) != 0 ||
        intake_fallback_json(&d, &fallback) != 0) {
        step = intake_store_failed(in, "answer_failed", "building the answer", ans);
        goto out;
    }
    int rc = buf_puts(&body, "{\"communication_id\":");
    rc |= jtext_string(&body, c.id);
    rc |= buf_puts(&body, ",\"status\":");
    rc |= jtext_string(&body, d.status);
    rc |= buf_puts(&body, ",\"decision\":");
    rc |= buf_append(&body, decision.data, decision.len);
    rc |= buf_putc(&body, '}');
    if (rc != 0) {
        step = intake_store_failed(in, "answer_failed", "building the answer", ans);
        goto out;
    }

    c.plan_id = r->plan_id;
    c.client_id = r->client_id;
    c.message_type = r->message_type;
    c.urgency = r->urgency;
    c.preferred_channel = msg.preferred_channel;
    c.context_json = r->context_json;
    c.attachments = r->attachments;
    c.n_attachments = r->n_attachments;
    c.idempotency_key = job->idempotency_key[0] ? job->idempotency_key : NULL;
    c.request_hash = job->request_hash;
    c.status = d.status;
    c.channel = d.primary[0] ? d.primary : NULL;
    c.fallback_json = fallback.data;
    c.send_at = d.send_at;
    c.priority = d.priority;
    c.decision_json = decision.data;
    c.rules_version = d.rules_version;
    c.skip_reason = d.skip_reason[0] ? d.skip_reason : NULL;
    c.response_json = body.data;

    store_insert_outcome_t outcome = STORE_INSERTED;
    if (store_comm_insert(conn, &c, &outcome, &replay, err, sizeof err) != 0) {
        step = intake_store_failed(in, "insert_failed", err, ans);
        goto out;
    }
    if (outcome == STORE_INSERTED) {
        if (db_exec(conn, "RELEASE SAVEPOINT req", err, sizeof err) != 0) {
            step = INTAKE_BROKEN;
            goto out;
        }
        http_answer_json(ans, 202, buf_detach(&body));
        goto out;
    }
    /* A replay or a conflict writes nothing, not even the client update. */
    if (intake_undo(conn, err, sizeof err) != 0) {
        step = INTAKE_BROKEN;
        goto out;
    }
    if (outcome == STORE_REPLAY && replay) {
        http_answer_json(ans, 202, replay);
        replay = NULL;
    } else if (outcome == STORE_REPLAY) {
        http_answer_error(ans, 500, "internal_error", "the stored answer could not be read");
    } else {
        http_answer_error(ans, 409, "idempotency_conflict",
                          "Idempotency-Key was already used with a different body");
    }

out:
    free(replay);
    buf_free(&decision);
    buf_free(&body);
    buf_free(&fallback);
    store_client_free(&cl);
    return step;
}

static void intake_write_batch(intake_t *in, intake_job_t **jobs, int n)
{
    http_answer_t ans[INTAKE_BATCH_MAX];
    memset(ans, 0, sizeof ans);
    char err[INTAKE_ERR_MAX] = "";
    int ok = intake_connect(in, err, sizeof err) == 0 &&
             db_exec(in->conn, "BEGIN", err, sizeof err) == 0;
    /* An idle connection whose server restarted fails only at first use:
     * nothing has been written yet, so reconnect and try once more. */
    if (!ok && in->conn && db_conn_lost(in->conn))
        ok = intake_connect(in, err, sizeof err) == 0 &&
             db_exec(in->conn, "BEGIN", err, sizeof err) == 0;
    for (int i = 0; ok && i < n; i++)
        if (intake_one(in, jobs[i], &ans[i]) == INTAKE_BROKEN) {
            snprintf(err, sizeof err, "a request broke the transaction");
            ok = 0;
        }
    /* NOTIFY inside the transaction is delivered at commit: one wake-up
     * per batch, and only for rows that are really there. */
    if (ok)
        ok = queue_notify(in->conn, err, sizeof err) == 0;
    if (ok)
        ok = db_exec(in->conn, "COMMIT", err, sizeof err) == 0;

    if (!ok) {
        char count[16];
        snprintf(count, sizeof count, "%d", n);
        log_warn("intake", "batch_failed", "requests", count, "error", err, NULL);
        if (in->conn && !db_conn_lost(in->conn)) {
            char ignored[INTAKE_ERR_MAX];
            /* the batch is answered 503 either way; db_ensure retries this */
            (void)db_exec(in->conn, "ROLLBACK", ignored, sizeof ignored);
        }
        for (int i = 0; i < n; i++) {
            http_answer_free(&ans[i]);
            http_answer_error(&ans[i], 503, "database_unavailable",
                              "the database is unavailable; nothing was accepted, retry later");
        }
    }
    for (int i = 0; i < n; i++)
        intake_finish(jobs[i], &ans[i]);
}

static void *intake_main(void *arg)
{
    intake_t *in = arg;
    intake_job_t *batch[INTAKE_BATCH_MAX];
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->head && !in->stopping)
            pthread_cond_wait(&in->cv, &in->mu);
        if (!in->head) {
            pthread_mutex_unlock(&in->mu);
            break; /* stopping, and everything queued has been answered */
        }
        int n = 0;
        while (in->head && n < INTAKE_BATCH_MAX) {
            batch[n++] = in->head;
            in->head = in->head->next;
        }
        if (!in->head)
            in->tail = NULL;
        in->queued -= n;
        pthread_mutex_unlock(&in->mu);
        intake_write_batch(in, batch, n);
    }
    if (in->conn)
        PQfinish(in->conn);
    in->conn = NULL;
    return NULL;
}

intake_t *intake_start(app_t *app, char *err, size_t errlen)
{
    intake_t *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->app = app;
    atomic_init(&in->refs, 1);
    if (pthread_mutex_init(&in->mu, NULL) != 0) {
        free(in);
        snprintf(err, errlen, "cannot create a mutex");
        return NULL;
    }
    if (pthread_cond_init(&in->cv, NULL) != 0) {
        pthread_mutex_destroy(&in->mu);
        free(in);
        snprintf(err, errlen, "cannot create a condition variable");
        return NULL;
    }
    /* The connection is made by the writer when the first batch comes: a
     * database that is down at start-up makes requests fail with 503 (and
     * /readyz say so), not the process refuse to start. */
    if (pthread_create(&in->thread, NULL, intake_main, in) != 0) {
        pthread_cond_destroy(&in->cv);
        pthread_mutex_destroy(&in->mu);
        free(in);
        snprintf(err, errlen, "cannot start the writer thread");
        return NULL;
    }
    return in;
}

void intake_stop(intake_t *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->mu);
    in->stopping = 1;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->thread, NULL);
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
    pthread_cond_destroy(&in->cv);
    pthread_mutex_destroy(&in->mu);
    free(in);
}
