/* console: the operator console's pages and files (docs/console.md), read
 * from CRIER_CONSOLE_DIR on each request.
 *
 *   GET /console, /console/{page}  the console (index.html: one page whose
 *                          script draws the named view); a browser without a
 *                          session is sent to the login form (303), one whose
 *                          session lacks the scope gets a 403 page
 *   GET /console/login     the login form (login.html)
 *   GET /console/assets/{name}  the console's script and style sheet, and
 *                          uPlot's (the charting library, from the npm
 *                          package under CRIER_CONSOLE_DIR/node_modules)
 *
 * Every page goes with a Content-Security-Policy that lets it load only
 * crier's own scripts, styles and API: nothing from anywhere else. */
#ifndef CRIER_API_CONSOLE_H
#define CRIER_API_CONSOLE_H

#include "http/answer.h"
#include "http/server.h"

void api_console_page(const http_req_t *rq, http_answer_t *out);
void api_console_asset(const http_req_t *rq, http_answer_t *out);
void api_console_login_get(const http_req_t *rq, http_answer_t *out);
/* The login form answered with status and message (static text, shown as
 * is: it is not escaped). */
void api_console_login_page(const http_req_t *rq, http_answer_t *out, int status,
                            const char *message);

#endif
