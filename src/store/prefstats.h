/* prefstats: how clients' preferences are spread — the channel each
 * prefers first and the opt-outs per channel — for the console's
 * preference distribution (GET /v1/analytics/preferences). Erased clients
 * are not counted; a client with no preferences row prefers email, the
 * default. */
#ifndef CRIER_STORE_PREFSTATS_H
#define CRIER_STORE_PREFSTATS_H

#include <libpq-fe.h>
#include <stddef.h>

/* {"clients": n, "preferred": [{"channel", "clients"}...], "opted_out":
 * [{"channel", "clients"}...]}, every channel listed (0 when none), into
 * *json (the caller's: free). 0, or -1 with err. */
int store_prefstats_json(PGconn *conn, char **json, char *err, size_t errlen);

#endif
