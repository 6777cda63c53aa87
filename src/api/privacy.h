/* privacy: the routes of a client's data subject rights — the export of
 * everything held on it and its erasure (docs/privacy.md). Admin scope
 * only; each writes its audit entry in the transaction that does it. */
#ifndef CRIER_API_PRIVACY_H
#define CRIER_API_PRIVACY_H

#include "http/answer.h"
#include "http/server.h"

/* GET /v1/clients/{client_id}/export: 200 with the export document, 404
 * for an unknown client, 410 client_erased for an erased one. */
void api_client_export(const http_req_t *rq, http_answer_t *out);
/* DELETE /v1/clients/{client_id}: 200 {"client_id","erased_at",
 * "cancelled"}, 404 unknown, 410 client_erased when erased already. */
void api_client_erase(const http_req_t *rq, http_answer_t *out);

#endif
