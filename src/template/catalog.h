/* catalog: crier's message templates on disk, rendered per message type.
 *
 * Layout of the templates directory:
 *   email/layout.html, email/layout.txt      shared layouts (inheritance parents)
 *   email/<message_type>.subject             one line, Mustache
 *   email/<message_type>.html / .txt         children of the layouts
 *   email/partials/<name>.mustache           partials shared by templates
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

/* The seven email message types of the seed. */
extern const char *const tpl_email_types[7];

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

#endif
