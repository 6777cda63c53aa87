/* clients: the routes of the clients API (docs/openapi.yaml):
 *   PUT  /v1/clients/{client_id}                 make or change a client (201 when made)
 *   GET  /v1/clients/{client_id}                 the client, contact details decrypted;
 *                                                audited as client.read
 *   GET  /v1/clients/{client_id}/communications  newest first, ?limit=&before=
 *   GET  /v1/clients/{client_id}/preferences
 *   PUT  /v1/clients/{client_id}/preferences     a change, confirmed to the client by a
 *                                                preferences_updated message
 *   POST /api/crm/preferences                    the seed's form of the same change
 * An erased client is 410 everywhere until it is made again with explicit
 * consent (PUT with a consent object). */
#ifndef CRIER_API_CLIENTS_H
#define CRIER_API_CLIENTS_H

#include "http/answer.h"
#include "http/server.h"

void api_client_put(const http_req_t *rq, http_answer_t *out);
void api_client_get(const http_req_t *rq, http_answer_t *out);
void api_client_comms(const http_req_t *rq, http_answer_t *out);
void api_prefs_get(const http_req_t *rq, http_answer_t *out);
void api_prefs_put(const http_req_t *rq, http_answer_t *out);
void api_prefs_post_seed(const http_req_t *rq, http_answer_t *out);

#endif
