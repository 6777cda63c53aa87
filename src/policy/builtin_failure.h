/* builtin_failure: what to do after a failed delivery attempt when the Lua
 * rules cannot say — the seed's retry strategy written in C.
 *
 * Seed "Retry Strategy": retry after 1, 5 and 15 minutes (with jitter), then
 * give up on the channel; "Fallback Mechanisms": then the next channel of the
 * decision's chain, and when none is left the communication has failed. */
#ifndef CRIER_BUILTIN_FAILURE_H
#define CRIER_BUILTIN_FAILURE_H

#define POLICY_RETRIES     3  /* seed RetryConfig.max_retries */
#define POLICY_JITTER_PCT  10 /* retry delays vary by up to this many percent */
#define POLICY_RETRY_MAX_S 86400

typedef enum {
    POLICY_RETRY = 0,        /* same channel again after retry_after seconds */
    POLICY_NEXT_CHANNEL = 1, /* give up on this channel, try next_channel now */
    POLICY_FAIL = 2,         /* nothing left to try */
} policy_action_t;

typedef struct policy_failure {
    policy_action_t action;
    int retry_after;       /* seconds, for POLICY_RETRY */
    char next_channel[12]; /* for POLICY_NEXT_CHANNEL */
    char reason[64];       /* short why, for the trace and the log */
} policy_failure_t;

/* The seed's base delay before retry number n (1-based), without jitter;
 * 0 when n is past the retries. */
int policy_retry_delay(int n);

#define POLICY_CRITICAL_QUICK_S 3  /* a critical message's one quick retry */
#define POLICY_CRITICAL_WAIT_S  30 /* the longest provider wait a critical message sits out */

/* urgency: the message's (critical, high, normal or low). attempt: attempts
 * already made on this channel, the failed one included (1 after the first
 * failure). category: transient, permanent, rate_limit, auth_failure or
 * invalid_input (anything else is treated as permanent). retry_after: the
 * seconds the provider asked us to wait, -1 when it did not say. remaining:
 * the channels of the chain not tried yet, in order. Never fails.
 *
 * A rate limit with a wait retries after that wait plus up to a second;
 * without one, the 1/5/15 ladder. A critical message does not sit 21
 * minutes on a failing channel: one quick retry (the provider's wait when
 * it is at most 30 s), then the next channel. */
void policy_builtin_on_failure(const char *urgency, int attempt, const char *category,
                               int retry_after, const char *const *remaining, int n_remaining,
                               policy_failure_t *out);

#endif
