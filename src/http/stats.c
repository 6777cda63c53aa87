#include "http/stats.h"

#include <stdatomic.h>

/* status classes 0 (none) and 1xx..5xx */
#define STATS_CLASSES 6

static atomic_ullong stats_requests[HTTP_STATS_SLOTS][STATS_CLASSES];
static atomic_ullong stats_duration[HTTP_STATS_SLOTS];

static int stats_valid(int slot)
{
    return slot >= 0 && slot < HTTP_STATS_SLOTS;
}

void http_stats_count(int slot, int status, long long duration_ms)
{
    if (!stats_valid(slot))
        slot = HTTP_STATS_UNROUTED;
    int cls = status / 100;
    if (cls < 0 || cls >= STATS_CLASSES)
        cls = 0;
    atomic_fetch_add_explicit(&stats_requests[slot][cls], 1, memory_order_relaxed);
    if (duration_ms > 0)
        atomic_fetch_add_explicit(&stats_duration[slot], (unsigned long long)duration_ms,
                                  memory_order_relaxed);
}

unsigned long long http_stats_requests(int slot, int cls)
{
    if (!stats_valid(slot) || cls < 0 || cls >= STATS_CLASSES)
        return 0;
    return atomic_load_explicit(&stats_requests[slot][cls], memory_order_relaxed);
}

unsigned long long http_stats_duration_ms(int slot)
{
    if (!stats_valid(slot))
        return 0;
    return atomic_load_explicit(&stats_duration[slot], memory_order_relaxed);
}
