#include "driver/target.h"

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
