/* callbacks: the sender that drains workflow_callbacks, the outbox of events
 * (client replies) for the workflow.
 *
 * One thread claims a few due rows at a time through queue/cbqueue.h (the
 * claim / lease / fence / rescue cycle the communications share), POSTs
 * each row's payload to CRIER_WORKFLOW_CALLBACK_URL signed with
 * CRIER_WORKFLOW_CALLBACK_SECRET, and records each outcome fenced on the
 * claimed attempt, so a row whose lease expired and was claimed again is
 * never finished by its first sender. Claiming a batch is safe for the
 * lease because the batch is sent all at once: the round takes one time
 * limit, not one per row.
 * The POSTs of one claim go out together on the sender's own transport
 * (transport/transport.h), separate from the delivery workers' ones, which
 * need not exist; the thread waits for the slowest before claiming again.
 * Delivery is at least once: the receiver deduplicates on X-Crier-Callback-Id.
 * The signature scheme is documented in docs/callbacks.md. */
#ifndef CRIER_CALLBACKS_H
#define CRIER_CALLBACKS_H

#include "app.h"

#include <stddef.h>

typedef struct cb_sender cb_sender_t;

/* What one attempt's answer means for the row. */
typedef enum { CB_DELIVERED, CB_RETRY, CB_FAILED } cb_outcome_t;

/* Starts the sender's transport and thread (which idles while no URL is
 * configured). Returns NULL with the reason in err. */
cb_sender_t *cb_start(app_t *app, char *err, size_t errlen);
/* Lets the POSTs in flight finish, records them, joins the thread, then
 * frees its transport. NULL is ok. */
void cb_stop(cb_sender_t *s);

/* The X-Crier-Signature value for a body sent at timestamp (unix seconds):
 * "sha256=" + hex HMAC-SHA256(secret, "<timestamp>.<body>"), into out[72].
 * Returns 0, or -1 when the MAC could not be computed (out is then ""). */
int cb_sign(const char *secret, long long timestamp, const char *body, size_t len, char out[72]);
/* Classifies an attempt: transfer_ok is 0 when no HTTP answer arrived
 * (connection error, timeout); status is the HTTP status otherwise. */
cb_outcome_t cb_classify(int transfer_ok, long status);
/* Seconds to wait after failed attempt number attempt (1-based): 10 s, 1 min,
 * 5 min, then 30 min; fixed_seconds > 0 replaces the schedule. */
int cb_backoff(int attempt, int fixed_seconds);

/* The events sessions write rows for (db_set_callback_events), from
 * CRIER_CALLBACK_EVENTS ("all", "none" or a comma list of CB_EVENTS names)
 * and whether a URL is configured: without one only the client's answers
 * (client_reply, client_action) are kept for later, status events are not
 * written. Into out ("" for none); 0, or -1 with err naming an unknown
 * event. */
int cb_events_setting(const char *events, int have_url, char *out, size_t outlen, char *err,
                      size_t errlen);
/* 1 when setting (cb_events_setting's output) includes event. */
int cb_event_wanted(const char *setting, const char *event);

#endif
