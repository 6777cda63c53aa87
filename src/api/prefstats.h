/* prefstats: GET /v1/analytics/preferences, how clients' preferences are
 * spread (store/prefstats.h), for the console. Operator or admin scope. */
#ifndef CRIER_API_PREFSTATS_H
#define CRIER_API_PREFSTATS_H

#include "http/answer.h"
#include "http/server.h"

void api_analytics_preferences(const http_req_t *rq, http_answer_t *out);

#endif
