/* rules_json: the inputs of a decision (message, client, time) read from
 * the JSON an operator writes — a POST /v1/communications body, a client
 * file with the seed's ClientPreferences fields, a rules test case — for
 * `crier rules dry-run` and `crier rules test`. */
#ifndef CRIER_RULES_JSON_H
#define CRIER_RULES_JSON_H

#include "policy/policy.h"
#include "policy/rules.h"
#include "tz/tz.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* A message and a client, with the storage their strings point into (the
 * policy_msg_t and policy_client_t borrow from it: never copy one without
 * the other). */
typedef struct rules_input {
    policy_msg_t msg;
    policy_client_t client;
    rules_pending_t pending;
    char type[32], urgency[12], preferred[12];
    char timezone[TZ_NAME_MAX + 1];
    char prefs[POLICY_MAX_CHANNELS][12];
    char quiet_start[6], quiet_end[6];
} rules_input_t;

/* Parses an ISO-8601 instant with a zone: 2026-03-08T06:30:00Z,
 * 2026-03-08T01:30:00.5-05:00, 2026-03-08T06:30Z. 0, or -1 if malformed. */
int rules_time_parse(const char *s, double *out);

/* The seed's DEFAULT_PREFERENCES (email preferred, UTC, quiet 22:00-08:00,
 * no opt-outs), no contact, no consent, a normal "welcome" message. */
void rules_input_defaults(rules_input_t *in);

/* A message: {type|message_type, urgency, preferred_channel,
 * has_attachment|attachments}. Unknown fields are errors naming them. */
int rules_input_msg(rules_input_t *in, const cJSON *msg, char *err, size_t errlen);
/* A client: the seed's ClientPreferences fields (client_id, preferred_channels,
 * timezone, quiet_hours_start, quiet_hours_end, opt_out_email|sms|whatsapp)
 * plus email and phone (only whether they are there is kept), has_email,
 * has_phone, email_suppressed, consent {email, sms, whatsapp}, last_contact_at and
 * whatsapp_window_until (ISO-8601, epoch seconds or null), vip, and, from a
 * request's client object, name and locale (ignored). Fields left out keep
 * their value. */
int rules_input_client(rules_input_t *in, const cJSON *client, char *err, size_t errlen);
/* A POST /v1/communications body: the message fields and, when present,
 * the client object. */
int rules_input_request(rules_input_t *in, const cJSON *req, char *err, size_t errlen);

/* Parses JSON text of len bytes, which must be followed by a NUL (text[len]
 * == '\0', as buf_t keeps it); on a syntax error err says "line L, column C". */
cJSON *rules_json_parse(const char *text, size_t len, char *err, size_t errlen);

#endif
