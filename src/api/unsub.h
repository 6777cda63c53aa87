/* unsub: the one-click unsubscribe of RFC 8058 (docs/unsubscribe.md).
 *
 *   POST /u/{token}   the body List-Unsubscribe=One-Click, form-encoded or
 *                     multipart/form-data, as a mailbox provider sends it:
 *                     no cookie, no authorisation, no confirmation. The
 *                     client is opted out of email before the answer (200,
 *                     a line of text, never a redirect); again is 200 too.
 *
 * The token (a LINKTOK_UNSUB of a communication, in every email's
 * List-Unsubscribe and footer) is also the key of the preference page
 * (prefpage.h), which resolves it the same way: a token that is malformed,
 * signed under another key, of another kind, older than
 * CRIER_LINK_TTL_DAYS, or whose communication or client is gone (purged,
 * erased) is 404, and nothing is written. */
#ifndef CRIER_API_UNSUB_H
#define CRIER_API_UNSUB_H

#include "crypto/linktok.h"
#include "http/answer.h"
#include "http/server.h"

void api_unsub_post(const http_req_t *rq, http_answer_t *out);

/* Reads rq's {token} as an unexpired unsubscribe token under the link key:
 * 0 with *t, or -1 (answer 404). */
int api_unsub_token(const http_req_t *rq, linktok_t *t);

/* The live client of token t's communication, into client_id: 0, 1 when
 * there is none (the communication was purged, the client erased: answer
 * 404), or -1 with *lost and err (the database failed). */
int api_unsub_client(const http_req_t *rq, const linktok_t *t, char client_id[37], int *lost,
                     char *err, size_t errlen);

#endif
