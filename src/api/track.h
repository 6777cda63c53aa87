/* track: the open and click tracking endpoints of email (docs/tracking.md).
 * Open to anyone, like the links in a mail: each request proves itself with
 * its signed token (crypto/linktok.h), and a token that is tampered with,
 * cut, expired, of another kind or naming what is not there (a link index
 * the message never had, an erased client, a purged message) answers 404
 * and writes nothing. HEAD answers as GET would, without recording (link
 * scanners probe with it). */
#ifndef CRIER_API_TRACK_H
#define CRIER_API_TRACK_H

#include "http/answer.h"
#include "http/server.h"

/* GET /t/c/{token}: records the click (and the open it implies) and
 * answers 302 to the link's stored URL, Cache-Control: no-store. */
void api_track_click(const http_req_t *rq, http_answer_t *out);
/* GET /t/o/{token}.gif: records the open and answers the 43-byte
 * transparent GIF, uncacheable. */
void api_track_open(const http_req_t *rq, http_answer_t *out);

#endif
