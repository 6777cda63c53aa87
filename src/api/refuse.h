/* refuse: the HTTP answer to a request body refused for what it says (a
 * req_err_t from request/), so that every route that reads a request
 * answers the same fault with the same status and error code. */
#ifndef CRIER_API_REFUSE_H
#define CRIER_API_REFUSE_H

#include "http/answer.h"
#include "request/request.h"

/* Sets out to the error answer of kind with message: 400 invalid_json,
 * invalid_utf8 or json_too_deep; 422 invalid_field; 500 internal_error. */
void api_refuse(http_answer_t *out, req_err_t kind, const char *message);

#endif
