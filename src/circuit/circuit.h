/* circuit: a breaker per provider that opens when the provider refuses our
 * credentials.
 *
 * An authentication failure is not about one message: every later send with
 * the same credentials would fail the same way. Once a provider answers
 * auth_failure its circuit opens, and until a probe succeeds its messages
 * are not sent there; the caller records them as auth_failure so the rules
 * move them to their fallback channel. After the probe interval one attempt
 * is let through as the probe: an answer that shows the credentials were
 * accepted closes the circuit, another auth_failure reopens it for a new
 * interval, and an attempt that got no answer at all leaves it open and
 * lets the next probe through one interval later.
 *
 * One circ_t serves every worker thread of a process (it locks internally).
 * Each process learns of a refusal on its own: the first send after a
 * restart or in another process is that process's own probe. */
#ifndef CRIER_CIRCUIT_H
#define CRIER_CIRCUIT_H

#include "channel/errclass.h"

/* The providers with credentials of their own. */
typedef enum { CIRC_TWILIO = 0, CIRC_WHATSAPP, CIRC_SMTP, CIRC_N } circ_provider_t;

typedef enum {
    CIRC_ALLOW = 0, /* closed: send */
    CIRC_PROBE,     /* open, probe due: send this one and report its outcome */
    CIRC_REFUSE,    /* open: do not send; record auth_failure */
} circ_verdict_t;

typedef struct circ circ_t;

/* probe_interval_ms: how long an open circuit waits before each probe (at
 * least 1). NULL when out of memory. */
circ_t *circ_new(long probe_interval_ms);
void circ_free(circ_t *c);

/* Asks whether a send to provider p may go now; now_ms is a monotonic
 * clock in milliseconds. At most one probe is in flight per provider: the
 * one CIRC_PROBE stands until circ_report answers for it. */
circ_verdict_t circ_check(circ_t *c, circ_provider_t p, long long now_ms);

/* Reports what a send that circ_check allowed came to. answered: the provider
 * gave an answer (any HTTP status or SMTP reply), as opposed to a transport
 * failure. category: ERRC_NONE on success. was_probe: circ_check said
 * CIRC_PROBE for this send. Returns 1 when this report opened the circuit
 * (the caller logs it at CRITICAL), 2 when it closed it (logged at INFO),
 * 0 otherwise. */
int circ_report(circ_t *c, circ_provider_t p, int was_probe, int answered, errc_t category,
                long long now_ms);

/* 1 while the circuit of p is open. */
int circ_is_open(circ_t *c, circ_provider_t p);

/* "twilio", "whatsapp", "smtp". */
const char *circ_provider_name(circ_provider_t p);

#endif
