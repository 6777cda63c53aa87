/* health: liveness and readiness probes, open to anyone. */
#ifndef CRIER_API_HEALTH_H
#define CRIER_API_HEALTH_H

#include "http/answer.h"
#include "http/server.h"

/* GET /healthz: the process answers. */
void api_healthz(const http_req_t *rq, http_answer_t *out);
/* GET /readyz: 200 while the database answered its last probe, else 503.
 * Reads the flag the engine keeps current, so a probe never waits on the
 * database itself. */
void api_readyz(const http_req_t *rq, http_answer_t *out);

#endif
