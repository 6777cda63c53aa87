/* comm_detail: more of one communication, for the console's page of it.
 *
 *   GET /v1/communications/{id}/callbacks  the workflow callbacks it
 *        raised and how each went (store/comm_detail.h), without payloads
 *   GET /v1/communications/{id}/preview    its message as the live
 *        templates render it now, on the channel it went by (email when
 *        none): the workflow's stored context, the client's name, the
 *        site's settings; the footer's links are placeholders, not the
 *        message's own. It names the template version the message was
 *        sent with and the live one, which may differ. The client's name
 *        is in it, so each preview is audited like a read of the client.
 * Operator or admin scope. */
#ifndef CRIER_API_COMM_DETAIL_H
#define CRIER_API_COMM_DETAIL_H

#include "http/answer.h"
#include "http/server.h"

void api_comm_callbacks(const http_req_t *rq, http_answer_t *out);
void api_comm_preview(const http_req_t *rq, http_answer_t *out);

#endif
