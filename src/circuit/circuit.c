/* circuit: the per-provider breaker state machine behind circuit.h.
 *
 * Each provider is closed, open (with the time the next probe is due), or
 * open with its probe in flight. One mutex guards the whole struct: a check
 * is a handful of comparisons and happens once per network send, so a finer
 * lock would buy nothing. */
#include "circuit/circuit.h"
#include "channel/ch.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    int open;             /* credentials were refused and no probe has cleared them */
    int probing;          /* a CIRC_PROBE went out and has not been reported yet */
    long long next_probe; /* monotonic ms from which the next probe may go (if open) */
} circ_state_t;

struct circ {
    pthread_mutex_t mu; /* default kind: locking fails only on misuse, so it is not checked */
    long interval_ms;
    circ_state_t st[CIRC_N];
};

static int circ_valid(circ_provider_t p)
{
    return (int)p >= 0 && (int)p < (int)CIRC_N;
}

circ_t *circ_new(long probe_interval_ms)
{
    circ_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->interval_ms = probe_interval_ms < 1 ? 1 : probe_interval_ms;
    return c;
}

void circ_free(circ_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

circ_verdict_t circ_check(circ_t *c, circ_provider_t p, long long now_ms)
{
    /* An unknown provider has no credentials of its own to protect, so the
     * breaker stays out of the way rather than blocking sends. */
    if (!c || !circ_valid(p))
        return CIRC_ALLOW;
    circ_verdict_t v;
    pthread_mutex_lock(&c->mu);
    circ_state_t *s = &c->st[p];
    if (!s->open) {
        v = CIRC_ALLOW;
    } else if (s->probing || now_ms < s->next_probe) {
        v = CIRC_REFUSE;
    } else {
        s->probing = 1;
        v = CIRC_PROBE;
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

int circ_report(circ_t *c, circ_provider_t p, int was_probe, int answered, errc_t category,
                long long now_ms)
{
    if (!c || !circ_valid(p))
        return 0;
    int ret = 0;
    pthread_mutex_lock(&c->mu);
    circ_state_t *s = &c->st[p];
    int refused = answered && category == ERRC_AUTH_FAILURE;
    if (was_probe && s->open) {
        s->probing = 0;
        if (answered && category != ERRC_AUTH_FAILURE && category != ERRC_TRANSIENT) {
            /* Any verdict on the message itself (even a permanent error or a
             * rate limit) means the provider accepted who we are. */
            s->open = 0;
            ret = 2;
        } else {
            /* Refused again, or no verdict either way: wait a full interval
             * so a provider that is down is not hammered by probes. */
            s->next_probe = now_ms + c->interval_ms;
        }
    } else if (refused && !s->open) {
        /* Several sends may have been in flight when the first refusal came;
         * only the first one opens the circuit and raises the alarm. */
        s->open = 1;
        s->probing = 0;
        s->next_probe = now_ms + c->interval_ms;
        ret = 1;
    }
    /* Any other report is about a send allowed before the circuit opened:
     * its success says nothing about the credentials now, so it must not
     * close the circuit. */
    pthread_mutex_unlock(&c->mu);
    return ret;
}

int circ_is_open(circ_t *c, circ_provider_t p)
{
    if (!c || !circ_valid(p))
        return 0;
    pthread_mutex_lock(&c->mu);
    int open = c->st[p].open;
    pthread_mutex_unlock(&c->mu);
    return open;
}

const char *circ_provider_name(circ_provider_t p)
{
    switch (p) {
    case CIRC_TWILIO:
        return "twilio";
    case CIRC_WHATSAPP:
        return CH_NAME_WHATSAPP;
    case CIRC_SMTP:
        return "smtp";
    default:
        return "unknown";
    }
}
