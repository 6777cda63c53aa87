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

#include "util/buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct tpl_catalog tpl_catalog_t;

typedef struct tpl_email {
    char *subject; /* owned; single line, trimmed */
    char *text;    /* owned; plain-text part */
    char *html;    /* owned; HTML part */
} tpl_email_t;

/* Loads every template under dir and checks that each parses. The
 * catalogue starts with one reference, the caller's. */
tpl_catalog_t *tpl_catalog_load(const char *dir, char *err, size_t errlen);
/* Drops one reference; the last one frees the catalogue. A loaded
 * catalogue is never changed, so its holders read it without a lock. */
void tpl_catalog_free(tpl_catalog_t *c);
/* Takes one more reference to c (NULL stays NULL) and returns c. */
tpl_catalog_t *tpl_catalog_acquire(tpl_catalog_t *c);
/* Renders the email for message_type with ctx, strictly (a missing variable
 * is an error naming the template and line). */
int tpl_render_email(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                     tpl_email_t *out, char *err, size_t errlen);
void tpl_email_free(tpl_email_t *e);
/* Content hash of the whole loaded catalogue (hex, 16 chars). */
const char *tpl_catalog_version(const tpl_catalog_t *c);

/* One template of the catalogue: what renders one message type on one
 * channel (email: subject, text and HTML parts; sms: the text; whatsapp:
 * the free text and the approved template). Its version is the content
 * hash (hex, 16 chars) of every file it is made of: its own and each
 * layout or partial they reach, so an edit changes the versions of exactly
 * the templates that use the edited file. Every pointer is borrowed from
 * the catalogue. */
typedef struct tpl_source {
    const char *name;    /* the message type, e.g. "reminder" */
    const char *channel; /* "email", "sms" or "whatsapp" */
    const char *version;
    const char *subject; /* the email subject's source; NULL on other channels */
    const char *content; /* the source of the text body (email text part, SMS, WhatsApp text) */
} tpl_source_t;

/* How many templates c holds, and the i-th (0, or -1 past the end). */
size_t tpl_catalog_count(const tpl_catalog_t *c);
int tpl_catalog_entry(const tpl_catalog_t *c, size_t i, tpl_source_t *out);
/* The template of type on channel: 0, or -1 when there is none. */
int tpl_template_source(const tpl_catalog_t *c, const char *type, const char *channel,
                        tpl_source_t *out);
/* Its version, or NULL when there is none. */
const char *tpl_template_version(const tpl_catalog_t *c, const char *type, const char *channel);
/* Appends {"email/reminder.html": text, ...}: every file the template's
 * version hashes, by the name an operator knows it by. 0, or -1. */
int tpl_template_files_json(const tpl_catalog_t *c, const char *type, const char *channel,
                            buf_t *out);

/* An approved WhatsApp template with its body parameters rendered. */
typedef struct tpl_wa_template {
    char *name;     /* owned; the template name approved by Meta */
    char *language; /* owned; its language code, e.g. "en_US" */
    char **params;  /* owned, with each element; values for {{1}}..{{n}} */
    size_t n_params;
    int quick_replies; /* its approved quick-reply buttons (0: none) */
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
