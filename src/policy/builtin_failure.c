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

void policy_builtin_on_failure(int attempt, const char *category, const char *const *remaining,
                               int n_remaining, policy_failure_t *out)
{
    memset(out, 0, sizeof *out);
    const char *cat = category ? category : "";
    int transient = strcmp(cat, "transient") == 0;
    int rate = strcmp(cat, "rate_limit") == 0;
    if (transient || rate) {
        if (attempt >= 1 && attempt <= POLICY_RETRIES) {
            /* a rate limit waits the longest delay: the quota window needs it */
            int base = rate ? policy_delays[POLICY_RETRIES - 1] : policy_delays[attempt - 1];
            out->action = POLICY_RETRY;
            out->retry_after = policy_jitter(base);
            snprintf(out->reason, sizeof out->reason, "%s", cat);
            return;
        }
        policy_next_or_fail(remaining, n_remaining, "retries_exhausted", out);
        return;
    }
    /* auth_failure: this provider is broken, another channel may work;
     * permanent, invalid_input and unknown categories: retrying is useless */
    policy_next_or_fail(remaining, n_remaining, cat[0] ? cat : "unknown", out);
}
