/* tx_pool: several transport loops used as one, for a protocol whose
 * transfers can block their loop.
 *
 * libcurl (7.88) waits for the reply to the end of an SMTP message's DATA
 * inside the loop, without returning to it: every other session on that
 * loop waits as long. A pool gives each session a loop of its own (one
 * connection per loop), so those waits overlap instead of adding up; the
 * sends are spread over the loops in turn. */
#ifndef CRIER_TX_POOL_H
#define CRIER_TX_POOL_H

#include "transport/transport.h"

typedef struct tx_pool tx_pool_t;

/* Starts n loops (1..TX_POOL_MAX), each holding at most one connection per
 * host (and lim's other limits, lim may be NULL). NULL when one cannot be
 * started (those started are stopped again). */
#define TX_POOL_MAX 64
tx_pool_t *tx_pool_new(int n, const tx_limits_t *lim);
/* The loop the next send goes to (round robin); thread-safe. */
tx_t *tx_pool_pick(tx_pool_t *p);
/* How many loops (and so sessions per host at most) the pool has. */
int tx_pool_size(const tx_pool_t *p);
/* tx_free on every loop, then frees the pool; NULL is fine. */
void tx_pool_free(tx_pool_t *p);

#endif
