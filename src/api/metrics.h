/* metrics (API): GET /metrics, Prometheus text for scrapers.
 *
 * Open like /healthz: scrapers usually carry no token, and the text holds
 * only counts, durations, the rules version and label values from closed
 * lists (message types, channels, statuses, error categories, route
 * names) - no identifier, address, phone number or message content. Bind
 * crier to a private interface, or filter /metrics at the proxy, where even
 * traffic volumes are confidential. */
#ifndef CRIER_API_METRICS_H
#define CRIER_API_METRICS_H

#include "http/answer.h"
#include "http/server.h"

/* Answers 200 with the text (the server sends it as text/plain; version=0.0.4),
 * or 500 if it did not fit its bound. Reads counters only: it never waits on
 * the database (the queue depth is sampled by the delivery waker). */
void api_metrics(const http_req_t *rq, http_answer_t *out);

#endif
