#include "template/context.h"

#include <stddef.h>

/* Replaces key in obj with a string (or removes it when value is NULL). */
static int set_string(cJSON *obj, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (!value)
        return 0;
    return cJSON_AddStringToObject(obj, key, value) ? 0 : -1;
}

cJSON *tpl_context_build(const cJSON *request_context, const tpl_site_t *site,
                         const char *client_name, const char *plan_id, const char *communication_id)
{
    cJSON *ctx = cJSON_IsObject(request_context) ? cJSON_Duplicate(request_context, 1)
                                                 : cJSON_CreateObject();
    if (!ctx)
        return NULL;
    cJSON *s = cJSON_CreateObject();
    if (!s)
        goto fail;
    if (site && (set_string(s, "brand_name", site->brand_name) != 0 ||
                 set_string(s, "support_email", site->support_email) != 0 ||
                 set_string(s, "physical_address", site->physical_address) != 0 ||
                 set_string(s, "public_url", site->public_url) != 0)) {
        cJSON_Delete(s);
        goto fail;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "site");
    if (!cJSON_AddItemToObject(ctx, "site", s)) {
        cJSON_Delete(s);
        goto fail;
    }
    /* the request must not be able to impersonate these: a request field
     * of the same name is dropped even when ours is absent */
    if (set_string(ctx, "client_name", client_name) != 0 ||
        set_string(ctx, "plan_id", plan_id) != 0 ||
        set_string(ctx, "communication_id", communication_id) != 0 ||
        tpl_context_set_links(ctx, NULL, NULL) != 0)
        goto fail;
    return ctx;
fail:
    cJSON_Delete(ctx);
    return NULL;
}

int tpl_context_set_links(cJSON *ctx, const char *unsubscribe_url, const char *preferences_url)
{
    /* a request's link here could send the client to someone else's page,
     * or keep the footer from working for 30 days (CAN-SPAM) */
    if (set_string(ctx, "unsubscribe_url", unsubscribe_url) != 0 ||
        set_string(ctx, "preferences_url", preferences_url) != 0)
        return -1;
    return 0;
}
