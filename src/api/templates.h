/* templates: the operators' view of the live message templates over HTTP
 * (GET /v1/templates): which catalogue is live, the version of each
 * template, and how the last reload went. */
#ifndef CRIER_API_TEMPLATES_H
#define CRIER_API_TEMPLATES_H

#include "http/answer.h"
#include "http/server.h"

/* GET /v1/templates. */
void api_templates_status(const http_req_t *rq, http_answer_t *out);

#endif
