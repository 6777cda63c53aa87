#include "api/health.h"

#include <stdlib.h>
#include <string.h>

void api_healthz(const http_req_t *rq, http_answer_t *out)
{
    (void)rq;
    http_answer_json(out, 200, strdup("{\"status\":\"ok\"}"));
}

void api_readyz(const http_req_t *rq, http_answer_t *out)
{
    if (atomic_load(&rq->app->db_ready))
        http_answer_json(out, 200, strdup("{\"status\":\"ready\"}"));
    else
        http_answer_json(out, 503,
                         strdup("{\"status\":\"unavailable\",\"database\":\"unreachable\"}"));
}
