/* prefpage: the preference page a client reaches from every email's footer
 * (docs/unsubscribe.md), served with no login: the URL's unsubscribe token
 * (unsub.h) says whose page it is.
 *
 *   GET  /u/{token}              the page: where the client gets messages,
 *                                the preferred channel, quiet hours,
 *                                opt-outs, and one button that unsubscribes
 *                                from all email. It changes nothing.
 *   POST /u/{token}/preferences  the page's form. Its form_token (a signed
 *                                LINKTOK_FORM of the client and the
 *                                prefs_version the page showed) must name
 *                                the URL's client (else 403) and its
 *                                current version (else 409: the form was
 *                                used, or something changed since; reload).
 *                                A valid change goes the preferences API's
 *                                way (ledger source preference_page, the
 *                                cache, a preferences_updated confirmation)
 *                                and is answered with a page that says what
 *                                changed; bad values are a 400 page.
 * Every answer is an HTML page (pages.h) with pages_headers(); a token that
 * leads nowhere is a 404 page. */
#ifndef CRIER_API_PREFPAGE_H
#define CRIER_API_PREFPAGE_H

#include "http/answer.h"
#include "http/server.h"

void api_prefpage_get(const http_req_t *rq, http_answer_t *out);
void api_prefpage_post(const http_req_t *rq, http_answer_t *out);

#endif
