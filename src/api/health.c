#include "api/health.h"

#include "api/api.h"
#include "policy/runtime.h"
#include "util/buf.h"
#include "util/json_text.h"

#include <stdlib.h>
#include <string.h>

void api_healthz(const http_req_t *rq, http_answer_t *out)
{
    (void)rq;
    http_answer_json(out, 200, strdup("{\"status\":\"ok\"}"));
}

/* A quarantined rules set does not make the process unready: the built-in
 * policy still decides every request, and taking every process with the
 * same rules out of rotation would turn a policy fault into an outage. The
 * answer says the policy is degraded, and why. */
void api_readyz(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    app_t *app = api->app;
    if (!atomic_load(&app->db_ready)) {
        http_answer_json(out, 503,
                         strdup("{\"status\":\"unavailable\",\"database\":\"unreachable\"}"));
        return;
    }
    if (atomic_load(&app->stopping)) {
        http_answer_json(out, 503, strdup("{\"status\":\"stopping\"}"));
        return;
    }
    char why[640];
    if (!app->rules || !prt_degraded(app->rules, why, sizeof why)) {
        http_answer_json(out, 200, strdup("{\"status\":\"ready\",\"policy\":\"ok\"}"));
        return;
    }
    buf_t b;
    buf_init(&b, 2048);
    int rc = buf_puts(&b, "{\"status\":\"ready\",\"policy\":\"degraded\",\"policy_reason\":");
    rc |= jtext_string(&b, why);
    rc |= buf_putc(&b, '}');
    if (rc != 0) {
        buf_free(&b);
        http_answer_json(out, 200, strdup("{\"status\":\"ready\",\"policy\":\"degraded\"}"));
        return;
    }
    http_answer_json(out, 200, buf_detach(&b));
}
