/* catalog: crier's message templates on disk, rendered per message type.
 *
 * Layout of the templates directory:
 *   email/layout.html, email/layout.txt      shared layouts (inheritance parents)
 *   email/<message_type>.subject             one line, Mustache
 *   email/<message_type>.html / .txt         children of the layouts
 *   email/partials/<name>.mustache           partials shared by templates
 *   sms/<message_type>.txt                   the SMS body, Mustache
 *   whatsapp/<message_type>.txt              WhatsApp free text (inside the
 *                                            24-hour customer-service window)
 *   whatsapp/<message_type>.json             the approved WhatsApp template for
 *                                            outside it: {"name", "language",
 *                                            "approved_body", "parameters": [
 *                                            Mustache expression per {{n}}]}
 * Partials and parents are looked up by name: "layout.html" or a name under
 * partials/. Names never contain "..", "/" at the start, or NUL. */
#ifndef CRIER_CATALOG_H
#define CRIER_CATALOG_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct tpl_catalog tpl_catalog_t;

typedef struct tpl_email {
    char *subject; /* owned; single line, trimmed */
    char *text;    /* owned; plain-text part */
    char *html;    /* owned; HTML part */
} tpl_email_t;

/* Loads every template under dir and checks that each parses. */
tpl_catalog_t *tpl_catalog_load(const char *dir, char *err, size_t errlen);
void tpl_catalog_free(tpl_catalog_t *c);
/* Renders the email for message_type with ctx, strictly (a missing variable
 * is an error naming the template and line). */
int tpl_render_email(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                     tpl_email_t *out, char *err, size_t errlen);
void tpl_email_free(tpl_email_t *e);
/* Content hash of the loaded catalogue (hex, 16 chars): recorded per message. */
const char *tpl_catalog_version(const tpl_catalog_t *c);

/* An approved WhatsApp template with its body parameters rendered. */
typedef struct tpl_wa_template {
    char *name;     /* owned; the template name approved by Meta */
    char *language; /* owned; its language code, e.g. "en_US" */
    char **params;  /* owned, with each element; values for {{1}}..{{n}} */
    size_t n_params;
} tpl_wa_template_t;

/* Renders the SMS body for message_type (strict, like email), with the
 * surrounding white space trimmed. *out is malloc'd, owned by the caller. */
int tpl_render_sms(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx, char **out,
                   char *err, size_t errlen);
/* Renders the WhatsApp free-text body (inside the 24-hour window), trimmed;
 * *out is malloc'd, owned by the caller. */
int tpl_render_whatsapp_text(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                             char **out, char *err, size_t errlen);
/* Renders the approved WhatsApp template's body parameters (outside the
 * window). Each parameter is one line, runs of white space collapsed, and
 * never empty (Meta refuses those). Free out with tpl_wa_template_free. */
int tpl_render_whatsapp_template(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                                 tpl_wa_template_t *out, char *err, size_t errlen);
void tpl_wa_template_free(tpl_wa_template_t *t);

#endif
