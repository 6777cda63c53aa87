/* comms: the communication routes of the API. */
#ifndef CRIER_API_COMMS_H
#define CRIER_API_COMMS_H

#include "engine/intake.h"
#include "http/answer.h"
#include "http/server.h"

/* GET /v1/communications/{id} */
void api_comm_get(const http_req_t *rq, http_answer_t *out);
/* GET /v1/plans/{plan_id}/communications[?limit=1..500] */
void api_plan_list(const http_req_t *rq, http_answer_t *out);
/* POST /v1/communications: validates the request and returns the job to
 * hand to the intake (out left empty), or NULL with the answer in out. */
intake_job_t *api_comm_create(const http_req_t *rq, http_answer_t *out);

#endif
