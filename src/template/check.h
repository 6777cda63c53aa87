/* check: a catalogue rendered with its example contexts, as `crier
 * templates check` does it and as a reload does before a new catalogue may
 * go live. Each message type is rendered with templates/examples/<type>.json
 * on every channel: the email (which must show the unsubscribe link in
 * both parts; the engine's digest too), the SMS (which must fit the segment budget),
 * the WhatsApp free text (at most TPL_CHECK_WA_TEXT_MAX characters) and the
 * approved WhatsApp template's parameters. */
#ifndef CRIER_TPL_CHECK_H
#define CRIER_TPL_CHECK_H

#include "channel/gsm7.h"
#include "template/catalog.h"
#include "template/context.h"

#include <stddef.h>

#define TPL_CHECK_WA_TEXT_MAX 4096 /* characters of a WhatsApp text body */
/* The footer link of a checked email: one no template can hold by itself,
 * and that HTML escaping leaves as it is. Every email must show it in both
 * parts (CAN-SPAM, and the mailbox providers' bulk-sender rules). */
#define TPL_CHECK_LINK "https://crier.invalid/u/templates-check-link"

typedef struct tpl_check_opts {
    tpl_site_t site;        /* borrowed: the configuration's site names */
    int sms_segment_budget; /* CRIER_SMS_SEGMENT_BUDGET */
} tpl_check_opts_t;

/* Told of each message checked: ok, and a line such as "sms/welcome
 * (GSM-7, 143 septets, 1 segment)" or "email/reminder: line 3: ...". */
typedef void (*tpl_check_line_fn)(void *ud, int ok, const char *line);

/* Renders every type of c with the examples under dir. Returns how many
 * messages failed (0: the catalogue passes), with the first failure's line
 * in first_err ("" when none). fn may be NULL. */
int tpl_check_examples(const tpl_catalog_t *c, const char *dir, const tpl_check_opts_t *opts,
                       tpl_check_line_fn fn, void *ud, char *first_err, size_t errlen);

/* The workflow context of an example or a preview, as the engine would
 * build it: client_name and plan_id from request when present, the footer
 * links TPL_CHECK_LINK. The caller
 * deletes it; NULL on OOM. */
cJSON *tpl_check_context(const tpl_site_t *site, const cJSON *request);

/* One line on what an SMS costs: "GSM-7, 146 septets, 1 segment", and for
 * UCS-2 which character forced it, so the wording can be fixed. */
void tpl_check_describe_sms(const gsm7_count_t *n, char *out, size_t outlen);

#endif
