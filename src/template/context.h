/* context: the data a message template renders with. The workflow's
 * request context plus the names crier itself supplies (client, plan,
 * communication, site), which always win over same-named request keys. */
#ifndef CRIER_TPL_CONTEXT_H
#define CRIER_TPL_CONTEXT_H

#include <cjson/cJSON.h>

typedef struct tpl_site {
    const char *brand_name;
    const char *support_email;
    const char *physical_address;
    const char *public_url;
} tpl_site_t;

/* Returns a new object (the caller deletes it): a deep copy of
 * request_context (or {} when NULL or not an object) with client_name,
 * plan_id, communication_id and site {brand_name, support_email,
 * physical_address, public_url} set. A NULL argument leaves that key out,
 * so strict rendering reports it as missing. The request's own
 * unsubscribe_url and preferences_url are dropped: only the engine makes
 * those (tpl_context_set_links). NULL on OOM. */
cJSON *tpl_context_build(const cJSON *request_context, const tpl_site_t *site,
                         const char *client_name, const char *plan_id,
                         const char *communication_id);

/* Sets the links of the footer of every email in ctx (made by
 * tpl_context_build): unsubscribe_url, the page that unsubscribes, and
 * preferences_url, the page where the client chooses (NULL leaves a key
 * out). 0, or -1 on OOM. */
int tpl_context_set_links(cJSON *ctx, const char *unsubscribe_url, const char *preferences_url);

#endif
