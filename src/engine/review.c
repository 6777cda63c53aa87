/* The review queue's two actions. A retry is a decision like an intake's
 * (the live rules, the client's facts as they are now) for a row that
 * already exists: its attempt chain starts again, its history stays. */
#include "engine/review.h"

#include "driver/driver.h"
#include "engine/client_view.h"
#include "policy/policy.h"
#include "policy/runtime.h"
#include "store/db.h"
#include "store/review.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REVIEW_BODY_MAX (64 * 1024)

/* The live rules' decision (the built-in one when they fail or none are
 * loaded). A runner of its own: a retry is an operator's rare action, and
 * the API's threads hold no policy state between requests. */
static void review_decide(app_t *app, const policy_msg_t *m, const policy_client_t *pc,
                          policy_decision_t *d)
{
    prt_local_t *l = app->rules ? prt_local_new(app->rules) : NULL;
    if (l) {
        prt_decide(l, m, pc, time_now(), NULL, d);
        prt_local_free(l);
    } else {
        policy_builtin_decide(m, pc, time_now(), d);
    }
    /* sent on its own: a digest would hold a message an operator is
     * waiting to see go out */
    d->batch_key[0] = '\0';
}

/* Everything after the row lock: the facts, the decision, the update. */
static review_rc_t review_requeue(app_t *app, PGconn *conn, const char *id,
                                  const store_review_target_t *t, char **json, char *err,
                                  size_t errlen)
{
    const char *ids[1] = {t->client_id};
    store_client_facts_t facts;
    if (store_client_facts_load(conn, ids, 1, &facts, err, errlen) != 0)
        return REVIEW_FAILED;
    review_rc_t rc = REVIEW_FAILED;
    buf_t decision, fallback, body;
    buf_init(&decision, REVIEW_BODY_MAX);
    buf_init(&fallback, 256);
    buf_init(&body, REVIEW_BODY_MAX);
    if (!facts.found || facts.erased) {
        rc = facts.found ? REVIEW_ERASED : REVIEW_NOT_FOUND;
        goto out;
    }
    policy_client_t pc;
    char pref[POLICY_MAX_CHANNELS][12];
    client_view_from_facts(&facts, &pc, pref);
    pc.channels_off = drv_channels_off(app->cfg);
    policy_msg_t m = {.message_type = t->message_type,
                      .urgency = t->urgency,
                      .preferred_channel = t->preferred_channel[0] ? t->preferred_channel : NULL,
                      .has_attachment = t->has_attachment};
    policy_decision_t d;
    review_decide(app, &m, &pc, &d);
    if (policy_decision_json(&d, &decision) != 0 || policy_fallback_json(&d, &fallback) != 0 ||
        !decision.data || !fallback.data) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    store_review_chain_t chain = {
        .status = d.status,
        .channel = d.primary[0] ? d.primary : NULL,
        .fallback_json = fallback.data,
        .send_at = d.send_at,
        .priority = d.priority,
        .decision_json = decision.data,
        .rules_version = d.rules_version,
        .skip_reason = d.skip_reason[0] ? d.skip_reason : NULL,
    };
    int s = store_review_retry(conn, id, &chain, err, errlen);
    if (s != 0) {
        rc = s > 0 ? REVIEW_NOT_OPEN : REVIEW_FAILED;
        goto out;
    }
    int b = buf_puts(&body, "{\"communication_id\":") | jtext_string(&body, id) |
            buf_puts(&body, ",\"status\":") | jtext_string(&body, d.status) |
            buf_puts(&body, ",\"decision\":") | buf_append(&body, decision.data, decision.len) |
            buf_putc(&body, '}');
    *json = b == 0 && body.data ? strdup(body.data) : NULL;
    if (!*json) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = REVIEW_DONE;
out:
    buf_free(&decision);
    buf_free(&fallback);
    buf_free(&body);
    store_client_facts_free(&facts, 1);
    return rc;
}

/* Ends the transaction: commits a REVIEW_DONE, rolls back anything else. */
static review_rc_t review_end(PGconn *conn, review_rc_t rc, char *err, size_t errlen)
{
    if (db_end(conn, rc == REVIEW_DONE ? 0 : -1, err, errlen) != 0 && rc == REVIEW_DONE)
        return REVIEW_FAILED;
    return rc;
}

review_rc_t review_retry(app_t *app, PGconn *conn, const char *id, char **json, char *err,
                         size_t errlen)
{
    *json = NULL;
    if (db_begin(conn, err, errlen) != 0)
        return REVIEW_FAILED;
    store_review_target_t t;
    int found = store_review_lock(conn, id, &t, err, errlen);
    review_rc_t rc = found < 0                       ? REVIEW_FAILED
                     : found > 0                     ? REVIEW_NOT_FOUND
                     : strcmp(t.review, "open") != 0 ? REVIEW_NOT_OPEN
                                                     : REVIEW_DONE;
    if (rc == REVIEW_DONE)
        rc = review_requeue(app, conn, id, &t, json, err, errlen);
    rc = review_end(conn, rc, err, errlen);
    if (rc != REVIEW_DONE) {
        free(*json);
        *json = NULL;
    }
    return rc;
}

review_rc_t review_resolve(PGconn *conn, const char *id, const char *note, char *err, size_t errlen)
{
    if (db_begin(conn, err, errlen) != 0)
        return REVIEW_FAILED;
    store_review_target_t t;
    int found = store_review_lock(conn, id, &t, err, errlen);
    review_rc_t rc = found < 0 ? REVIEW_FAILED : found > 0 ? REVIEW_NOT_FOUND : REVIEW_DONE;
    if (rc == REVIEW_DONE) {
        int s = store_review_resolve(conn, id, note, err, errlen);
        rc = s < 0 ? REVIEW_FAILED : s > 0 ? REVIEW_NOT_OPEN : REVIEW_DONE;
    }
    return review_end(conn, rc, err, errlen);
}
