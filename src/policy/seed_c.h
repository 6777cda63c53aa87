/* seed_c: the seed's policy — the same one the shipped Lua rules
 * implement — written in C. It is the reference the Lua rules are checked
 * against, and a fast path for deployments that do not customise policy. */
#ifndef CRIER_SEED_C_H
#define CRIER_SEED_C_H

#include "policy/policy.h"
#include "policy/rules.h"

#define POLICY_SEED_C_VERSION "seed-c-1"

/* Same inputs and outputs as rules_decide. Returns 0, or -1 with err set
 * (only for an unknown time zone or a time out of range). */
int policy_seed_decide(const policy_msg_t *m, const policy_client_t *c, double now,
                       const rules_pending_t *pending, policy_decision_t *d, char *err,
                       size_t errlen);

#endif
