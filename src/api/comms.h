/* comms: the communication routes of the API. */
#ifndef CRIER_API_COMMS_H
#define CRIER_API_COMMS_H

#include "http/answer.h"
#include "http/server.h"

/* GET /v1/communications/{id} */
void api_comm_get(const http_req_t *rq, http_answer_t *out);
/* GET /v1/plans/{plan_id}/communications[?limit=1..500] */
void api_plan_list(const http_req_t *rq, http_answer_t *out);
/* POST /v1/communications: validates the request and hands it to the
 * intake, holding the answer back (http_suspend) until the intake has
 * committed it or given up; a request refused at once is answered in out. */
void api_comm_create(const http_req_t *rq, http_answer_t *out);

#endif
