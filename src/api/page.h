/* page: the HTML pages crier answers a client's own links with (the
 * preference page, an action's confirmation): the view every page starts
 * from, and the answer that renders one (template/pages.h). */
#ifndef CRIER_API_PAGE_H
#define CRIER_API_PAGE_H

#include "api/api.h"
#include "http/answer.h"
#include "template/pages.h"

#include <cjson/cJSON.h>

/* What every page shows: the brand and its postal address. NULL on OOM;
 * the caller owns it. */
cJSON *api_page_view(const api_t *api);

/* Renders page kind of view (taken, may be NULL after an OOM) as the
 * answer with status; a page that cannot be made is a JSON 500. */
void api_page_answer(http_answer_t *out, int status, pages_kind_t kind, cJSON *view);

#endif
