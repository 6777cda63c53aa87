#include "driver/target.h"

#include "policy/rules.h"
#include "template/context.h"

#include <string.h>

int target_load(const drv_env_t *env, PGconn *conn, const queue_job_t *job, target_t *t,
                outcome_t *out)
{
    const cfg_t *cfg = env->cfg;
    char err[512];
    memset(t, 0, sizeof *t);
    int rc = store_client_load(conn, env->keys, job->client_id, &t->client, err, sizeof err);
    if (rc != 0) {
        /* A missing client is a data error; a database error is worth a retry. */
        outcome_fail(out, rc == 1 ? ERRC_INVALID_INPUT : ERRC_TRANSIENT, 0, "client",
                     rc == 1 ? "not found" : err);
        return -1;
    }
    if (!t->client.phone || !t->client.phone[0]) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, NULL, "client has no phone number");
        return -1;
    }
    tpl_site_t site = {
        .brand_name = cfg->brand_name,
        .support_email = cfg->support_email,
        .physical_address = cfg->physical_address,
        .public_url = cfg->public_url,
    };
    t->request_ctx = cJSON_Parse(job->context_json ? job->context_json : "{}");
    t->ctx = tpl_context_build(t->request_ctx, &site, t->client.name ? t->client.name : "there",
                               job->plan_id, job->id);
    if (!t->ctx) {
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the context");
        return -1;
    }
    return 0;
}

void target_free(target_t *t)
{
    cJSON_Delete(t->ctx);
    cJSON_Delete(t->request_ctx);
    store_client_free(&t->client);
    memset(t, 0, sizeof *t);
}

int target_allowed(const store_client_t *c, const char *channel, outcome_t *out)
{
    policy_client_t pc;
    memset(&pc, 0, sizeof pc);
    pc.has_email = c->email && c->email[0];
    pc.has_phone = c->phone && c->phone[0];
    pc.email_suppressed = c->email_suppressed;
    for (int i = 0; i < CH_N; i++) {
        pc.consent[i] = c->consent[i] == 1;
        pc.opt_out[i] = c->opt_out[i] == 1;
    }
    const char *why = NULL;
    if (rules_channel_allowed(&pc, channel, &why))
        return 1;
    outcome_skip(out, why ? why : "not_allowed");
    return 0;
}
