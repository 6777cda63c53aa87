/* action: the action links of a message (docs/tracking.md, Actions): a
 * client's click answers the workflow. Open to anyone, like the links in
 * a mail: each request proves itself with its signed token
 * (crypto/linktok.h, LINKTOK_ACTION), and one that is tampered with,
 * expired, of another kind or naming what is not there (an action the
 * message never had, an erased client, a purged message) answers a 404
 * page and records nothing. */
#ifndef CRIER_API_ACTION_H
#define CRIER_API_ACTION_H

#include "http/answer.h"
#include "http/server.h"

/* GET /a/{token}: records the click as the message's answer unless it has
 * one (then the workflow hears of it: a client_action callback) and
 * answers 200 with a page naming the message's first answer, whichever
 * action of it this one is. HEAD answers the same and records nothing
 * (link scanners probe with it). */
void api_action_get(const http_req_t *rq, http_answer_t *out);

#endif
