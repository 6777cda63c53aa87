/* rules: the operators' view of the live policy rules over HTTP — which
 * version is active and what went wrong last (GET /v1/rules), and what the
 * rules would decide for a request (POST /v1/rules/dry-run). */
#ifndef CRIER_API_RULES_H
#define CRIER_API_RULES_H

#include "http/answer.h"
#include "http/server.h"

/* GET /v1/rules: the runtime's status; 503 when no rules runtime runs. */
void api_rules_status(const http_req_t *rq, http_answer_t *out);
/* POST /v1/rules/dry-run: {"request", "client"?, "now"?} -> the decision
 * and its trace, as `crier rules dry-run` prints them. Decides with the
 * live (hot-reloaded) rules; writes and sends nothing. */
void api_rules_dry_run(const http_req_t *rq, http_answer_t *out);
/* Frees the rules state the dry-run keeps between requests. Call once no
 * request can be running any more (after the HTTP daemon stopped) and
 * before the rules runtime is stopped. */
void api_rules_cleanup(void);

#endif
