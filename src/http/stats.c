#include "http/stats.h"

#include <stdatomic.h>

/* status classes 0 (none) and 1xx..5xx */
#define STATS_CLASSES 6

static atomic_ullong stats_requests[HTTP_ROUTE_N][STATS_CLASSES];
static atomic_ullong stats_duration[HTTP_ROUTE_N];

static int stats_valid(http_route_id_t route)
{
    return (int)route >= 0 && route < HTTP_ROUTE_N;
}

void http_stats_count(http_route_id_t route, int status, long long duration_ms)
{
    if (!stats_valid(route))
        route = HTTP_ROUTE_OTHER;
    int cls = status / 100;
    if (cls < 0 || cls >= STATS_CLASSES)
        cls = 0;
    atomic_fetch_add_explicit(&stats_requests[route][cls], 1, memory_order_relaxed);
    if (duration_ms > 0)
        atomic_fetch_add_explicit(&stats_duration[route], (unsigned long long)duration_ms,
                                  memory_order_relaxed);
}

unsigned long long http_stats_requests(http_route_id_t route, int cls)
{
    if (!stats_valid(route) || cls < 0 || cls >= STATS_CLASSES)
        return 0;
    return atomic_load_explicit(&stats_requests[route][cls], memory_order_relaxed);
}

unsigned long long http_stats_duration_ms(http_route_id_t route)
{
    if (!stats_valid(route))
        return 0;
    return atomic_load_explicit(&stats_duration[route], memory_order_relaxed);
}

const char *http_stats_route_name(http_route_id_t route)
{
    static const char *const names[HTTP_ROUTE_N] = {
        "/healthz",
        "/readyz",
        "POST /v1/communications",
        "GET /v1/communications/{id}",
        "GET /v1/plans/{plan_id}/communications",
        "GET /v1/rules",
        "POST /v1/rules/dry-run",
        "/metrics",
        "POST /webhooks/twilio/status",
        "POST /webhooks/twilio/inbound",
        "/webhooks/whatsapp",
        "other",
    };
    return stats_valid(route) ? names[route] : "other";
}
