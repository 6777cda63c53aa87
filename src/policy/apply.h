/* apply: what a decision or a failed attempt comes to for a message, worked
 * out the same way by the engine and by the simulator.
 *
 * The rules say "retry after 60 s" or "next channel"; what that makes of a
 * message (the provider's wait as a floor, the chain left after a move, the
 * digest guards, when a digest goes) is decided here and nowhere else. Every
 * function is pure: the time is an argument and nothing is read or written
 * outside its arguments, so the engine calls them with the wall clock and
 * the store's rows, the simulator with its virtual clock and its own
 * records (docs/architecture.md, "One policy, two clocks"). */
#ifndef CRIER_APPLY_H
#define CRIER_APPLY_H

#include "policy/builtin_failure.h"
#include "policy/policy.h"

/* The channels of a chain not tried yet, as stored (a JSON array). */
typedef struct apply_chain {
    char names[POLICY_MAX_CHANNELS][12];
    const char *list[POLICY_MAX_CHANNELS]; /* pointing into names */
    int n;
} apply_chain_t;

/* Reads fallback_json (NULL or malformed: empty) into c; names that are no
 * channel's length are dropped. */
void apply_chain_parse(const char *fallback_json, apply_chain_t *c);

/* What a message does next. */
typedef struct apply_step {
    policy_action_t action;  /* retry, next_channel or fail */
    double at;               /* when the next attempt is due (retry, next_channel) */
    char channel[12];        /* the next attempt's channel (next_channel) */
    char fallback_json[128]; /* the chain after it (next_channel) */
} apply_step_t;

/* After a failed attempt, what the rules' answer f comes to at time now.
 * A retry waits at least the provider's own wait (provider_retry_after,
 * -1 when it gave none): asking sooner only earns another refusal. A move
 * goes at once, leaving the chain without the channel moved to; a chain
 * that cannot be written fails the message. */
void apply_failure(const policy_failure_t *f, int provider_retry_after, const apply_chain_t *chain,
                   double now, apply_step_t *out);

/* A channel the message must not be sent on (opt-out, suppressed address):
 * the next channel of the chain takes its place at once, as one the
 * decision left out would have; with none left, action is POLICY_FAIL (the
 * message is skipped for that reason). The rules are not asked: nothing
 * failed. f is filled as the trace shows it. */
void apply_skip(const char *reason, const apply_chain_t *chain, double now, policy_failure_t *f,
                apply_step_t *out);

/* The engine's guards on a decision, after the rules: a digest carries its
 * members' words, not their files, and is an email (its only template), so
 * a message with an attachment or a first channel other than email goes on
 * its own. Returns 1 when d merges the message into a digest. */
int apply_batch_guard(policy_decision_t *d, int has_attachment);

/* When a digest goes: a digest with size members of max_size is due at
 * max(now, first_send_at) once full, otherwise window_seconds after its
 * first member's send time. Returns 1 (and sets *due) when the digest is
 * full, 0 when it waits for more. */
int apply_digest_due(double first_send_at, int window_seconds, int size, int max_size, double now,
                     double *due);

#endif
