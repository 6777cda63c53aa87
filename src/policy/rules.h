/* rules: the operator's policy in Lua (the rules directory) run for one decision.
 *
 * A rules set is one sandboxed Lua state (src/policy/lua_host.h) with the
 * four rule files loaded and frozen and the time helpers registered. It
 * belongs to one thread: load one per worker and one for the intake, never
 * share one. Each call runs the rules, then checks everything they returned
 * against what the client allows (contact, consent, opt-outs) and against
 * sane bounds; a rule that raises, loops, allocates too much or returns
 * something unsafe fails that one call with -1 and a message, and the caller
 * uses the built-in decision (policy_builtin_decide / policy_builtin_on_failure)
 * instead and counts it. The set stays usable for the next call. */
#ifndef CRIER_RULES_H
#define CRIER_RULES_H

#include "policy/builtin_failure.h"
#include "policy/lua_host.h"
#include "policy/policy.h"

#include <stddef.h>

#define RULES_MAX_AHEAD_S  (30 * 86400) /* send_at later than now + this is refused */
#define RULES_MAX_BEHIND_S 60           /* send_at earlier than now - this is refused */
#define RULES_DUE_SLACK_S  1            /* send_at within this of now is "queued" */

typedef struct rules_set rules_set_t;

/* LOW messages already waiting for this client. */
typedef struct rules_pending {
    int count;
    double oldest_at; /* epoch s of the oldest one, 0 when none */
} rules_pending_t;

typedef policy_failure_t rules_failure_t;

/* Loads dir/{channels,timing,batching,fallback}.lua into a fresh sandbox
 * (limits NULL = the host's defaults), freezes it and smoke-tests every
 * function on canned inputs. Returns NULL with the reason (naming the file)
 * in err. The caller owns the set (rules_free). */
rules_set_t *rules_load(const char *dir, const lh_limits_t *limits, char *err, size_t errlen);
void rules_free(rules_set_t *s);
/* Content hash of the loaded files (owned by the set). */
const char *rules_version(const rules_set_t *s);

/* channels.select -> fallback.chain -> timing.send_at -> batching.decide.
 * Fills d as policy_builtin_decide does (status queued/pending/skipped,
 * channels, send_at, priority, batch, rules_version, trace_json). pending
 * may be NULL (none). Returns 0, or -1 with the error in err (d is then
 * unspecified). */
int rules_decide(rules_set_t *s, const policy_msg_t *m, const policy_client_t *c, double now,
                 const rules_pending_t *pending, policy_decision_t *d, char *err, size_t errlen);

/* fallback.on_failure for a failed attempt. channel: the channel that
 * failed; retry_after: seconds the provider asked us to wait, -1 when it
 * did not (err.retry_after is then nil); remaining: channels of the chain
 * not tried yet. Returns 0, or -1
 * with the error (out unspecified). */
int rules_on_failure(rules_set_t *s, const policy_msg_t *m, int attempt, const char *channel,
                     const char *category, int provider_code, int retry_after,
                     const char *const *remaining_channels, int n_remaining, rules_failure_t *out,
                     char *err, size_t errlen);

/* Why the last rules_decide or rules_on_failure on s failed: the LH_* code
 * of the rule call that failed (LH_EBUDGET for a budget overrun), LH_OK
 * when no rule call did (the error was the host's own). */
int rules_last_failure(const rules_set_t *s);

/* The failure action's name: "retry", "next_channel", "fail". */
const char *rules_action_name(policy_action_t a);

/* Helpers shared by the Lua path and the C version of the seed policy. */
/* 1 when c may be sent channel: a known channel the engine can deliver on,
 * no opt-out, a contact for it that is not suppressed (email), consent
 * (implied for email when the address exists). why (may be NULL) gets a
 * short reason when not: unknown_channel, unavailable, opt_out,
 * no_contact, suppressed, no_consent. */
int rules_channel_allowed(const policy_client_t *c, const char *channel, const char **why);

/* Registers crier.localtime and crier.from_local on a host state (before the
 * freeze). Defined in lua_time.c. */
int rules_time_register(lh_state_t *h);

#endif
