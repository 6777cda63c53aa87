/* The policy's view of a client built from its stored facts: shared by
 * the intake (every new request) and the review queue (a retry decides
 * again with what is known of the client now). */
#include "engine/client_view.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* The preferred channels of a client (JSON array text) into pc; pref holds
 * the names pc points into. */
static void client_view_prefs(const char *json, policy_client_t *pc,
                              char pref[POLICY_MAX_CHANNELS][12])
{
    cJSON *arr = json ? cJSON_Parse(json) : NULL;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (n >= POLICY_MAX_CHANNELS)
            break;
        if (cJSON_IsString(it) && strlen(it->valuestring) < 12) {
            snprintf(pref[n], 12, "%s", it->valuestring);
            pc->preferred_channels[n] = pref[n];
            n++;
        }
    }
    cJSON_Delete(arr);
}

/* The policy's view of a client, from the facts the set-based round loads:
 * flags and preferences, never the address or number themselves. pref
 * holds the channel names pc points into. */
void client_view_from_facts(const store_client_facts_t *f, policy_client_t *pc,
                            char pref[POLICY_MAX_CHANNELS][12])
{
    memset(pc, 0, sizeof *pc);
    pc->has_email = f->has_email;
    pc->has_phone = f->has_phone;
    pc->timezone = f->timezone ? f->timezone : "UTC";
    memcpy(pc->consent, f->consent, sizeof pc->consent);
    memcpy(pc->opt_out, f->opt_out, sizeof pc->opt_out);
    pc->email_suppressed = f->email_suppressed;
    pc->quiet_start = f->quiet_start[0] ? f->quiet_start : NULL;
    pc->quiet_end = f->quiet_end[0] ? f->quiet_end : NULL;
    pc->last_contact_at = f->last_contact_at;
    pc->whatsapp_window_until = 0;
    client_view_prefs(f->preferred_channels_json, pc, pref);
}
