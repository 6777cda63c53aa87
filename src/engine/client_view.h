/* client_view: what the policy may know of a client (policy_client_t),
 * from the facts the store loads: flags and preferences, never the address
 * or number themselves. */
#ifndef CRIER_CLIENT_VIEW_H
#define CRIER_CLIENT_VIEW_H

#include "policy/policy.h"
#include "store/store.h"

/* pc points into f (the time zone, the quiet hours) and into pref (the
 * preferred channels' names): both must outlive pc. channels_off and the
 * WhatsApp window are left 0 for the caller to set. */
void client_view_from_facts(const store_client_facts_t *f, policy_client_t *pc,
                            char pref[POLICY_MAX_CHANNELS][12]);

#endif
