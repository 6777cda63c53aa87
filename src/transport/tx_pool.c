#include "transport/tx_pool.h"

#include <stdatomic.h>
#include <stdlib.h>

struct tx_pool {
    int n;
    atomic_uint next;
    tx_t *loops[TX_POOL_MAX];
};

tx_pool_t *tx_pool_new(int n, const tx_limits_t *lim)
{
    if (n < 1 || n > TX_POOL_MAX)
        return NULL;
    tx_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    atomic_init(&p->next, 0);
    tx_limits_t each = lim ? *lim : (tx_limits_t){0};
    each.max_host_conns = 1;
    if (each.max_total_conns <= 0 || each.max_total_conns > 2)
        each.max_total_conns = 2; /* one session, and one being replaced */
    for (int i = 0; i < n; i++) {
        p->loops[i] = tx_new(&each);
        if (!p->loops[i]) {
            tx_pool_free(p);
            return NULL;
        }
        p->n = i + 1;
    }
    return p;
}

tx_t *tx_pool_pick(tx_pool_t *p)
{
    unsigned i = atomic_fetch_add_explicit(&p->next, 1u, memory_order_relaxed);
    return p->loops[i % (unsigned)p->n];
}

int tx_pool_size(const tx_pool_t *p)
{
    return p->n;
}

void tx_pool_free(tx_pool_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        tx_free(p->loops[i]);
    free(p);
}
