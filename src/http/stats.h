/* stats: request counters per route and status class, lock-free, for the
 * access log's companion numbers and GET /metrics.
 *
 * Counters live in slots: each route names its slot (route_t.stat), several
 * routes may share one, and slot 0 counts the requests no route matched.
 * What a slot is called is for whoever owns the routes to say. */
#ifndef CRIER_HTTP_STATS_H
#define CRIER_HTTP_STATS_H

#define HTTP_STATS_SLOTS    48
#define HTTP_STATS_UNROUTED 0 /* no route matched */

/* Counts one finished request of slot (out of range: HTTP_STATS_UNROUTED);
 * status 0 means it ended without an answer. */
void http_stats_count(int slot, int status, long long duration_ms);
/* Requests of slot answered with a status in [cls*100, cls*100+99]
 * (cls 0 = no answer). */
unsigned long long http_stats_requests(int slot, int cls);
/* Sum of the durations of slot's requests, in milliseconds. */
unsigned long long http_stats_duration_ms(int slot);

#endif
