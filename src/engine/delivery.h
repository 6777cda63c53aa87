/* delivery: the workers that drain the queue.
 *
 * A waker thread LISTENs for new work (with a poll as fallback, since
 * notifications are lost across reconnects), rescues expired leases once a
 * second, and keeps app->db_ready current. Worker threads each own a
 * PostgreSQL connection and each channel driver's state; they claim small
 * batches, hand each message to its driver with no lock held, and record
 * the outcomes in one fenced transaction per batch. */
#ifndef CRIER_DELIVERY_H
#define CRIER_DELIVERY_H

#include "app.h"

#include <stddef.h>

typedef struct delivery delivery_t;

delivery_t *delivery_start(app_t *app, char *err, size_t errlen);
/* Stops claiming, lets in-flight messages finish, joins every thread. */
void delivery_stop(delivery_t *d);

#endif
