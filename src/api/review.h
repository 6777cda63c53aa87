/* review: the review queue's routes — GET /v1/communications (filtered:
 * status, review, plan_id, client_id, message_type, since, until, limit),
 * POST /v1/communications/{id}/retry and POST /v1/communications/{id}/resolve. */
#ifndef CRIER_API_REVIEW_H
#define CRIER_API_REVIEW_H

#include "http/answer.h"
#include "http/server.h"

void api_comm_list(const http_req_t *rq, http_answer_t *out);
void api_comm_retry(const http_req_t *rq, http_answer_t *out);
void api_comm_resolve(const http_req_t *rq, http_answer_t *out);

#endif
