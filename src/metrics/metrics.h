/* metrics: the engine's counters, gauges and histograms, and the helpers
 * that write them as Prometheus text (exposition format 0.0.4).
 *
 * Every label set is a small closed list known at compile time (message
 * types, channels, outcome statuses, error categories), with "other" for
 * anything unexpected, so memory is fixed and a caller can never create an
 * unbounded number of series. Updates are relaxed atomic adds: the delivery
 * workers never take a lock to count. A reader may see one update of a
 * multi-part value (a histogram's sum and its buckets) before the other;
 * scrapes tolerate that. Values are process-local and start at zero, as
 * Prometheus counters expect. */
#ifndef CRIER_METRICS_H
#define CRIER_METRICS_H

#include "channel/errclass.h"
#include "util/buf.h"

/* What one delivery attempt came to (crm_communications_total's status),
 * and the engagement that followed it. */
typedef enum {
    METRICS_SENT,      /* accepted by the provider */
    METRICS_DELIVERED, /* known delivered (the sandbox outbox) */
    METRICS_RETRY,     /* failed; tried again later or on another channel */
    METRICS_FAILED,    /* failed for good: the chain is exhausted or the error permanent */
    METRICS_BOUNCED,   /* failed for good on a hard bounce: the address does not exist */
    METRICS_SKIPPED,   /* not attempted, and no channel left: the address is suppressed */
    METRICS_OPENED,    /* a message's first counted open (tracking; a click counts one too) */
    METRICS_CLICKED,   /* a message's first counted click (tracking) */
    METRICS_STATUS_N,
} metrics_status_t;

/* The provider APIs crier calls (crm_api_errors_total's api). */
typedef enum {
    METRICS_API_SMTP,
    METRICS_API_TWILIO,
    METRICS_API_WHATSAPP,
    METRICS_API_N,
} metrics_api_t;

/* Counts one attempt's outcome. Unknown types or channels count as "other". */
void metrics_communication(const char *message_type, const char *channel, metrics_status_t st);
/* Observes how long a message took from its send (the provider's
 * acceptance) to its delivery receipt, in seconds. */
void metrics_delivery_time(const char *channel, double seconds);
/* Counts one call to a provider (the denominator of the API error rate). */
void metrics_api_call(metrics_api_t api);
/* Counts one provider call that failed, by the seed's error category. */
void metrics_api_error(metrics_api_t api, errc_t category);
/* Sets the queue depth gauges from the latest sample; known 0 while no
 * sample has been taken (the series are then not written). */
void metrics_queue_depth(long long due, long long scheduled, long long sending);
/* Sets crm_open_rate from the latest sample: for each i < n, opened[i]
 * of the sent[i] tracked emails of types[i] were opened. A type left out
 * is written no more; unknown types count as "other". */
void metrics_open_rates(const char *const *types, const long long *sent, const long long *opened,
                        int n);

/* Counts one message put back because its sender's rate limit said wait;
 * provider is "twilio", "smtp" or "whatsapp" (anything else: "other").
 * The limiter's local-fallback count is its own (rl_stats): the metrics
 * endpoint writes it beside this registry's text. */
void metrics_ratelimit_deferred(const char *provider);

/* Counts one address newly put on the email suppression list. */
void metrics_email_suppression(void);
/* Counts one communication whose last channel failed (bounced included). */
void metrics_all_channels_failed(void);

/* Sets whether provider's circuit is open (1) or closed (0); provider as
 * for metrics_ratelimit_deferred. */
void metrics_circuit_open(const char *provider, int open);

/* Records what this process's last retention purge deleted from table
 * ("communications", "delivery_events", "communication_attachments",
 * "workflow_callbacks", "inbound_messages", "unmatched_receipts",
 * "clients"; anything else counts as "other"). */
void metrics_purge_deleted(const char *table, long long rows);
/* Marks the end of a purge at unix_s (wall clock). Until the first, no
 * purge series is written. */
void metrics_purge_finished(double unix_s);

/* Writes every family of the registry above to out. Returns 0, or -1 when
 * out is full. */
int metrics_render(buf_t *out);

/* Helpers for callers that expose numbers kept elsewhere in the same text. */

/* "# HELP name help\n# TYPE name type\n". */
int metrics_family(buf_t *out, const char *name, const char *type, const char *help);
/* A whole family of one unlabelled sample: the HELP and TYPE lines, then
 * "name value\n". */
int metrics_single(buf_t *out, const char *name, const char *type, const char *help,
                   long long value);
/* A label value with \\, \" and \n escaped as the format requires. */
int metrics_label_value(buf_t *out, const char *value);
/* A sample value: integers exactly, others with enough digits to round-trip. */
int metrics_value(buf_t *out, double v);

#endif
