/* policy: what crier decides for a communication — which channel first,
 * which fallbacks, when, how urgently — and the built-in decision.
 *
 * The built-in policy is the seed's per-message-type primary channel
 * restricted to email, sent now. It is also the safe decision used whenever
 * the Lua rules fail, so it must never fail itself. */
#ifndef CRIER_POLICY_H
#define CRIER_POLICY_H

#include "channel/ch.h"
#include "config.h"
#include "util/buf.h"

#define POLICY_MAX_CHANNELS    3
#define POLICY_BUILTIN_VERSION "builtin-1"

typedef struct policy_msg {
    const char *message_type;
    const char *urgency;           /* critical|high|normal|low; "" or NULL: the type's default */
    const char *preferred_channel; /* may be NULL */
    int has_attachment;
} policy_msg_t;

/* What a policy may know of a client: never an address or a number. */
typedef struct policy_client {
    int has_email, has_phone;
    const char *timezone;
    int consent[CH_N]; /* per channel; email's is implied by its address */
    int opt_out[CH_N];
    /* The address hard-bounced and is on the suppression list: email is
     * blocked ("suppressed") as an opt-out of it would be. */
    int email_suppressed;
    const char *preferred_channels[POLICY_MAX_CHANNELS]; /* NULL-terminated early */
    const char *quiet_start, *quiet_end;                 /* "HH:MM" */
    double last_contact_at;                              /* epoch s, 0 if never */
    double whatsapp_window_until;                        /* epoch s, 0 if closed */
    int vip; /* operator-marked client; the shipped rules ignore it */
    /* Channels this engine cannot deliver on right now (CH_BIT set; 0: all
     * can). Not a fact about the client: the rules treat such a channel as
     * blocked ("unavailable"), so a decision never names one. */
    unsigned channels_off;
} policy_client_t;

typedef struct policy_decision {
    char urgency[12]; /* the message's, or the type's default when it gave none */
    char status[12];  /* queued (due now), pending (later) or skipped */
    char primary[12]; /* "" when skipped */
    char fallback[POLICY_MAX_CHANNELS][12];
    int n_fallback;
    double send_at; /* epoch s */
    int priority;   /* 0 critical .. 3 low */
    char skip_reason[64];
    char rules_version[72];
    char trace_json[4096]; /* JSON array of steps; the Lua rules' trace needs the room */
    /* Batching: batch_key[0] == '\0' means "not batched". */
    char batch_key[64];
    int batch_window; /* seconds the batch waits for more messages */
    int batch_max;    /* messages in a batch at most */
} policy_decision_t;

/* 0 critical, 1 high, 2 normal, 3 low; 2 for anything else. */
int policy_priority(const char *urgency);
/* The urgency of a message type's trigger point, for a request that gives
 * none: error_notification critical, vendor_options and blueprint_delivery
 * high, everything else normal. The rules' channels.urgency decides first. */
const char *policy_default_urgency(const char *message_type);
/* The seed's primary channel for a message type ("email" for unknown ones). */
const char *policy_seed_primary(const char *message_type);
/* The built-in decision. Never fails. */
void policy_builtin_decide(const policy_msg_t *m, const policy_client_t *c, double now,
                           policy_decision_t *d);
/* Appends the decision as the API's JSON object: primary_channel,
 * fallback_channels, send_at (ISO-8601 UTC), priority, batch, skip_reason,
 * rules_version, trace. */
int policy_decision_json(const policy_decision_t *d, buf_t *out);
/* Appends the decision's fallback channels as a JSON array (the stored
 * fallback_channels). 0, or -1 when out is full. */
int policy_fallback_json(const policy_decision_t *d, buf_t *out);

#endif
