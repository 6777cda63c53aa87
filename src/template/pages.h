/* pages: the HTML pages crier serves to a client itself (the preference
 * page of docs/unsubscribe.md and its answers, the answer to an action
 * link), rendered by the Mustache
 * engine from templates compiled into the binary: they do not depend on
 * the message catalogue, and every value is HTML-escaped ({{name}} only).
 *
 * A page is small, accessible and self-contained: a language, a title, a
 * label for every control, fieldsets with legends, a visible focus ring,
 * one inline style sheet, no script, no image, no external resource; it
 * works at a phone's width. pages_headers() are the headers that keep it so
 * (a Content-Security-Policy that allows only that style sheet and forms
 * posted to crier itself, no framing, no referrer). */
#ifndef CRIER_TEMPLATE_PAGES_H
#define CRIER_TEMPLATE_PAGES_H

#include "util/buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define PAGES_TYPE "text/html; charset=utf-8"

typedef enum pages_kind {
    /* brand_name, physical_address (optional), action (the form's URL),
     * form_token, timezone, quiet_none (bool), quiet_start, quiet_end,
     * has_email (bool), channels: [{name, label, status, on (bool),
     * preferred (bool), opted_out (bool)}] */
    PAGES_PREFERENCES,
    /* brand_name, physical_address (optional), heading, message,
     * has_changes (bool) and changes (list of strings), confirmation_sent
     * (bool), back */
    PAGES_SAVED,
    /* brand_name, physical_address (optional), heading, message, back and
     * back_label (both optional) */
    PAGES_PROBLEM,
    /* brand_name, physical_address (optional), heading, message: a
     * client's answer taken (an action link, docs/tracking.md) */
    PAGES_ANSWERED,
} pages_kind_t;

/* Renders page kind with view into out (strict: a name the page shows that
 * view lacks is an error). 0, or -1 with err. */
int pages_render(pages_kind_t kind, const cJSON *view, buf_t *out, char *err, size_t errlen);

/* The headers of every page, name and value in turn, NULL after the last
 * name (static; the style sheet's hash is computed once). */
const char *const *pages_headers(void);

#endif
