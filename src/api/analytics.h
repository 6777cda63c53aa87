/* analytics: GET /v1/analytics/summary (from, to, plan_id or client_id)
 * and GET /v1/analytics/breakdown (by channel, message_type, day or hour;
 * from, to): the seed's figures — counts, rates, average times, cost —
 * as JSON, or as CSV with Accept: text/csv or format=csv. */
#ifndef CRIER_API_ANALYTICS_H
#define CRIER_API_ANALYTICS_H

#include "http/answer.h"
#include "http/server.h"

void api_analytics_summary(const http_req_t *rq, http_answer_t *out);
void api_analytics_breakdown(const http_req_t *rq, http_answer_t *out);
/* GET /v1/analytics/report (from, to, plan_id or client_id): the summary,
 * the days and the channels of the range as the console's overview, a
 * one-page PDF (report/report.h) with the same figures as the summary. */
void api_analytics_report(const http_req_t *rq, http_answer_t *out);

#endif
