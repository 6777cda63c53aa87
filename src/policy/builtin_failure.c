/* The seed's retry strategy in C: the failure policy used when the Lua
 * rules fail. Like policy_builtin_decide it must never fail itself. */
#include "policy/builtin_failure.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const int policy_delays[POLICY_RETRIES] = {60, 300, 900}; /* 1, 5, 15 minutes */

int policy_retry_delay(int n)
{
    return n >= 1 && n <= POLICY_RETRIES ? policy_delays[n - 1] : 0;
}

/* Jitter only spreads retries apart, so a cheap generator is enough; it is
 * per thread so workers never contend on it. */
static int policy_jitter(int base)
{
    static _Thread_local uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&state;
        state |= 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    int spread = base * POLICY_JITTER_PCT / 100;
    if (spread <= 0)
        return base;
    return base - spread + (int)(state % (uint64_t)(2 * spread + 1));
}

static void policy_next_or_fail(const char *const *remaining, int n, const char *why,
                                policy_failure_t *out)
{
    snprintf(out->reason, sizeof out->reason, "%s", why);
    if (n > 0 && remaining && remaining[0]) {
        out->action = POLICY_NEXT_CHANNEL;
        snprintf(out->next_channel, sizeof out->next_channel, "%s", remaining[0]);
    } else {
        out->action = POLICY_FAIL;
    }
}

static void policy_retry(int after, const char *why, policy_failure_t *out)
{
    out->action = POLICY_RETRY;
    out->retry_after = after < 1 ? 1 : after > POLICY_RETRY_MAX_S ? POLICY_RETRY_MAX_S : after;
    snprintf(out->reason, sizeof out->reason, "%s", why);
}

void policy_builtin_on_failure(const char *urgency, int attempt, const char *category,
                               int retry_after, const char *const *remaining, int n_remaining,
                               policy_failure_t *out)
{
    memset(out, 0, sizeof *out);
    const char *cat = category ? category : "";
    int transient = strcmp(cat, "transient") == 0;
    int rate = strcmp(cat, "rate_limit") == 0;
    if (transient || rate) {
        int critical = urgency && strcmp(urgency, "critical") == 0;
        int limit = critical ? 1 : POLICY_RETRIES;
        if (attempt < 1 || attempt > limit) {
            policy_next_or_fail(remaining, n_remaining, "retries_exhausted", out);
            return;
        }
        if (critical && retry_after > POLICY_CRITICAL_WAIT_S) {
            /* waiting longer than this is worse than another channel */
            policy_next_or_fail(remaining, n_remaining, "critical_wait_too_long", out);
            if (out->action == POLICY_FAIL) /* nothing else: sit it out */
                policy_retry(retry_after, cat, out);
            return;
        }
        if (retry_after >= 0) /* the provider named its window: that, plus a little spread */
            policy_retry(retry_after + policy_jitter(1000) / 1000, cat, out);
        else if (critical)
            policy_retry(POLICY_CRITICAL_QUICK_S, cat, out);
        else
            policy_retry(policy_jitter(policy_delays[attempt - 1]), cat, out);
        return;
    }
    /* auth_failure: this provider is broken, another channel may work;
     * permanent, invalid_input and unknown categories: retrying is useless */
    policy_next_or_fail(remaining, n_remaining, cat[0] ? cat : "unknown", out);
}
