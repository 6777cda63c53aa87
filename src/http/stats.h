/* stats: request counters per route and status class, lock-free, for the
 * access log's companion numbers and GET /metrics. */
#ifndef CRIER_HTTP_STATS_H
#define CRIER_HTTP_STATS_H

typedef enum {
    HTTP_ROUTE_HEALTHZ,
    HTTP_ROUTE_READYZ,
    HTTP_ROUTE_COMM_CREATE,
    HTTP_ROUTE_COMM_GET,
    HTTP_ROUTE_PLAN_LIST,
    HTTP_ROUTE_RULES_STATUS,
    HTTP_ROUTE_RULES_DRY_RUN,
    HTTP_ROUTE_METRICS,
    HTTP_ROUTE_WEBHOOK_TWILIO_STATUS,
    HTTP_ROUTE_WEBHOOK_TWILIO_INBOUND,
    HTTP_ROUTE_WEBHOOK_WHATSAPP,
    HTTP_ROUTE_OTHER, /* no route matched */
    HTTP_ROUTE_N,
} http_route_id_t;

/* Counts one finished request; status 0 means it ended without an answer. */
void http_stats_count(http_route_id_t route, int status, long long duration_ms);
/* Requests of route answered with a status in [cls*100, cls*100+99]
 * (cls 0 = no answer). */
unsigned long long http_stats_requests(http_route_id_t route, int cls);
/* Sum of the durations of route's requests, in milliseconds. */
unsigned long long http_stats_duration_ms(http_route_id_t route);
const char *http_stats_route_name(http_route_id_t route);

#endif
