/* webhooks: the provider callbacks. Every request is verified first (a
 * forged or tampered one is refused 403 with nothing written, and a webhook
 * whose secret is not configured answers 503 webhook_unconfigured), then
 * applied in one transaction, so a provider that sees an error retries the
 * whole request and redeliveries change nothing twice.
 *
 * Twilio signs the public URL it called: CRIER_PUBLIC_URL + the path (a
 * query string is not part of what we verify, so webhook URLs configured at
 * Twilio carry none). */
#ifndef CRIER_API_WEBHOOKS_H
#define CRIER_API_WEBHOOKS_H

#include "http/answer.h"
#include "http/server.h"

/* POST /webhooks/twilio/status: a delivery receipt (form-encoded). Answers
 * 200 with an empty TwiML document. */
void api_webhook_twilio_status(const http_req_t *rq, http_answer_t *out);
/* POST /webhooks/twilio/inbound: a message from a client (form-encoded).
 * Answers 200 with TwiML: empty, or the help text for HELP. */
void api_webhook_twilio_inbound(const http_req_t *rq, http_answer_t *out);
/* GET /webhooks/whatsapp: Meta's subscription handshake; answers the
 * challenge as the whole (text) body. */
void api_webhook_whatsapp_verify(const http_req_t *rq, http_answer_t *out);
/* POST /webhooks/whatsapp: statuses and inbound messages (JSON). */
void api_webhook_whatsapp_post(const http_req_t *rq, http_answer_t *out);

#endif
