#include "metrics/metrics.h"

#include "channel/ch.h"
#include "validate.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every message type (val_message_types), then "other": metrics_index
 * reads only the names before the last slot. */
#define METRICS_TYPES_N ((size_t)VAL_MESSAGE_TYPES + 1)

/* Every channel by its ch_id_t, then "other". */
#define METRICS_CHANNELS_N ((size_t)CH_N + 1)

static const char *const metrics_statuses[METRICS_STATUS_N] = {
    "sent", "delivered", "retry", "failed", "bounced", "skipped", "opened", "clicked"};
static const char *const metrics_apis[METRICS_API_N] = {"smtp", "twilio", CH_NAME_WHATSAPP};

/* Indexed by errc_t; ERRC_NONE is never an error but keeps the indexes equal. */
#define METRICS_ERRC_N (ERRC_INVALID_INPUT + 1)

/* Upper bounds in seconds: from a local relay's few milliseconds to a slow
 * provider near its timeout. Text and value side by side so that the le
 * label reads exactly as written here. */
static const char *const metrics_bucket_text[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                                  "0.5",   "1",    "2.5",   "5",    "10",  "30"};
static const double metrics_bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,    2.5,   5,    10,  30};
#define METRICS_BUCKETS_N (sizeof metrics_bucket_le / sizeof metrics_bucket_le[0])

static const char *const metrics_rl_providers[] = {"twilio", "smtp", CH_NAME_WHATSAPP, "other"};
#define METRICS_RL_PROVIDERS_N (sizeof metrics_rl_providers / sizeof metrics_rl_providers[0])

static atomic_ullong metrics_comms[METRICS_TYPES_N][METRICS_CHANNELS_N][METRICS_STATUS_N];
/* Per bucket, not cumulative (the last slot is above every bound): the
 * cumulative counts and _count are derived from one read of these, so +Inf
 * always equals _count in what is written. */
static atomic_ullong metrics_hist[METRICS_CHANNELS_N][METRICS_BUCKETS_N + 1];
static atomic_ullong metrics_hist_sum_us[METRICS_CHANNELS_N];
static atomic_ullong metrics_api_calls[METRICS_API_N];
static atomic_ullong metrics_api_errors[METRICS_API_N][METRICS_ERRC_N];
static atomic_llong metrics_depth[3]; /* due, scheduled, sending */
static atomic_int metrics_depth_known;
static atomic_ullong metrics_rl_deferred[METRICS_RL_PROVIDERS_N];
static atomic_ullong metrics_suppressions;
static atomic_ullong metrics_chains_failed;
/* The open rate's terms per message type; sent 0: not written. Two loads
 * may mix two samples' terms for a moment, which a gauge tolerates. */
static atomic_llong metrics_rate_sent[METRICS_TYPES_N];
static atomic_llong metrics_rate_opened[METRICS_TYPES_N];

static size_t metrics_channel_index(const char *channel)
{
    ch_id_t c;
    return ch_by_name(channel, &c) == 0 ? (size_t)c : (size_t)CH_N;
}

static const char *metrics_channel_name(size_t c)
{
    return c < (size_t)CH_N ? ch_name((ch_id_t)c) : "other";
}

static size_t metrics_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i + 1 < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return n - 1; /* "other" */
}

static void metrics_add(atomic_ullong *c, unsigned long long n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long long metrics_get(atomic_ullong *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_communication(const char *message_type, const char *channel, metrics_status_t st)
{
    if ((int)st < 0 || st >= METRICS_STATUS_N)
        return;
    size_t t = metrics_index(val_message_types, METRICS_TYPES_N, message_type);
    size_t c = metrics_channel_index(channel);
    metrics_add(&metrics_comms[t][c][st], 1);
}

void metrics_delivery_time(const char *channel, double seconds)
{
    if (!(seconds >= 0)) /* also refuses NaN */
        seconds = 0;
    size_t c = metrics_channel_index(channel);
    size_t b = 0;
    while (b < METRICS_BUCKETS_N && seconds > metrics_bucket_le[b])
        b++;
    metrics_add(&metrics_hist[c][b], 1);
    /* microseconds in an integer: atomics on doubles would need a CAS loop */
    double us = seconds * 1e6;
    metrics_add(&metrics_hist_sum_us[c], us < 1e18 ? (unsigned long long)llround(us) : 0);
}

void metrics_api_call(metrics_api_t api)
{
    if ((int)api >= 0 && api < METRICS_API_N)
        metrics_add(&metrics_api_calls[api], 1);
}

void metrics_api_error(metrics_api_t api, errc_t category)
{
    if ((int)api < 0 || api >= METRICS_API_N || (int)category < 0 || category >= METRICS_ERRC_N)
        return;
    metrics_add(&metrics_api_errors[api][category], 1);
}

void metrics_queue_depth(long long due, long long scheduled, long long sending)
{
    atomic_store_explicit(&metrics_depth[0], due, memory_order_relaxed);
    atomic_store_explicit(&metrics_depth[1], scheduled, memory_order_relaxed);
    atomic_store_explicit(&metrics_depth[2], sending, memory_order_relaxed);
    atomic_store_explicit(&metrics_depth_known, 1, memory_order_relaxed);
}

void metrics_open_rates(const char *const *types, const long long *sent, const long long *opened,
                        int n)
{
    long long s[METRICS_TYPES_N] = {0}, o[METRICS_TYPES_N] = {0};
    for (int i = 0; i < n; i++) {
        if (sent[i] < 0 || opened[i] < 0)
            continue;
        size_t t = metrics_index(val_message_types, METRICS_TYPES_N, types[i]);
        s[t] += sent[i];
        o[t] += opened[i];
    }
    for (size_t t = 0; t < METRICS_TYPES_N; t++) {
        atomic_store_explicit(&metrics_rate_sent[t], s[t], memory_order_relaxed);
        atomic_store_explicit(&metrics_rate_opened[t], o[t], memory_order_relaxed);
    }
}

static int metrics_render_open_rate(buf_t *out)
{
    int rc = metrics_family(out, "crm_open_rate", "gauge",
                            "Share of the tracked emails sent in the last 7 days that a person "
                            "(or a mail provider's image proxy) opened or clicked, by message "
                            "type; machine hits are not counted. Sampled from the shared "
                            "database every 15 seconds");
    for (size_t t = 0; t < METRICS_TYPES_N; t++) {
        long long sent = atomic_load_explicit(&metrics_rate_sent[t], memory_order_relaxed);
        long long opened = atomic_load_explicit(&metrics_rate_opened[t], memory_order_relaxed);
        if (sent <= 0)
            continue;
        if (opened > sent)
            opened = sent;
        rc |= buf_printf(out, "crm_open_rate{message_type=\"%s\"} ",
                         t < VAL_MESSAGE_TYPES ? val_message_types[t] : "other");
        rc |= metrics_value(out, (double)opened / (double)sent);
        rc |= buf_putc(out, '\n');
    }
    return rc;
}

int metrics_single(buf_t *out, const char *name, const char *type, const char *help,
                   long long value)
{
    int rc = metrics_family(out, name, type, help);
    rc |= buf_printf(out, "%s %lld\n", name, value);
    return rc;
}

int metrics_family(buf_t *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_label_value(buf_t *out, const char *value)
{
    int rc = buf_putc(out, '"');
    for (const char *p = value ? value : ""; *p && rc == 0; p++) {
        if (*p == '\\')
            rc = buf_puts(out, "\\\\");
        else if (*p == '"')
            rc = buf_puts(out, "\\\"");
        else if (*p == '\n')
            rc = buf_puts(out, "\\n");
        else
            rc = buf_putc(out, *p);
    }
    return rc | buf_putc(out, '"');
}

int metrics_value(buf_t *out, double v)
{
    if (isnan(v))
        return buf_puts(out, "NaN");
    if (isinf(v))
        return buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact as an integer */
        return buf_printf(out, "%.0f", v);
    /* the shortest of 15 or 17 digits that reads back as the same double */
    char text[32];
    snprintf(text, sizeof text, "%.15g", v);
    if (strtod(text, NULL) != v)
        snprintf(text, sizeof text, "%.17g", v);
    return buf_puts(out, text);
}

static int metrics_render_comms(buf_t *out)
{
    int rc = metrics_family(out, "crm_communications_total", "counter",
                            "Delivery attempts by message type, channel and outcome (retry: "
                            "tried again later or on another channel; failed: given up; "
                            "bounced: given up, the address does not exist; skipped: not "
                            "attempted, the address is suppressed), and the messages first "
                            "opened or clicked (opened, clicked: tracking, not attempts)");
    for (size_t t = 0; t < METRICS_TYPES_N; t++) {
        for (size_t c = 0; c < METRICS_CHANNELS_N; c++) {
            unsigned long long v[METRICS_STATUS_N], any = 0;
            for (size_t s = 0; s < METRICS_STATUS_N; s++) {
                v[s] = metrics_get(&metrics_comms[t][c][s]);
                any |= v[s];
            }
            /* A pair that was never used stays out; once used, every status
             * is written (zeros too) so that ratios have all their terms. */
            if (!any)
                continue;
            for (size_t s = 0; s < METRICS_STATUS_N; s++)
                rc |= buf_printf(out,
                                 "crm_communications_total{message_type=\"%s\",channel=\"%s\","
                                 "status=\"%s\"} %llu\n",
                                 t < VAL_MESSAGE_TYPES ? val_message_types[t] : "other",
                                 metrics_channel_name(c), metrics_statuses[s], v[s]);
        }
    }
    return rc;
}

static int metrics_render_hist(buf_t *out)
{
    int rc = metrics_family(out, "crm_delivery_time_seconds", "histogram",
                            "Seconds from a message's send to its delivery receipt (0 for "
                            "the sandbox outbox, which delivers as it sends)");
    for (size_t c = 0; c < METRICS_CHANNELS_N; c++) {
        unsigned long long per[METRICS_BUCKETS_N + 1], total = 0;
        for (size_t b = 0; b <= METRICS_BUCKETS_N; b++) {
            per[b] = metrics_get(&metrics_hist[c][b]);
            total += per[b];
        }
        if (!total)
            continue;
        unsigned long long cum = 0;
        for (size_t b = 0; b < METRICS_BUCKETS_N; b++) {
            cum += per[b];
            rc |=
                buf_printf(out, "crm_delivery_time_seconds_bucket{channel=\"%s\",le=\"%s\"} %llu\n",
                           metrics_channel_name(c), metrics_bucket_text[b], cum);
        }
        rc |= buf_printf(out, "crm_delivery_time_seconds_bucket{channel=\"%s\",le=\"+Inf\"} %llu\n",
                         metrics_channel_name(c), total);
        rc |= buf_printf(out, "crm_delivery_time_seconds_sum{channel=\"%s\"} ",
                         metrics_channel_name(c));
        rc |= metrics_value(out, (double)metrics_get(&metrics_hist_sum_us[c]) / 1e6);
        rc |= buf_printf(out, "\ncrm_delivery_time_seconds_count{channel=\"%s\"} %llu\n",
                         metrics_channel_name(c), total);
    }
    return rc;
}

static int metrics_render_api(buf_t *out)
{
    int rc = metrics_family(out, "crier_api_requests_total", "counter",
                            "Calls to a provider API that reached it or tried to");
    for (size_t a = 0; a < METRICS_API_N; a++)
        rc |= buf_printf(out, "crier_api_requests_total{api=\"%s\"} %llu\n", metrics_apis[a],
                         metrics_get(&metrics_api_calls[a]));
    rc |= metrics_family(out, "crm_api_errors_total", "counter",
                         "Provider API calls that failed, by error category");
    for (size_t a = 0; a < METRICS_API_N; a++) {
        /* every category, zeros too: an alert on auth_failure needs its series */
        for (size_t e = ERRC_NONE + 1; e < METRICS_ERRC_N; e++)
            rc |= buf_printf(out, "crm_api_errors_total{api=\"%s\",error_type=\"%s\"} %llu\n",
                             metrics_apis[a], errc_name((errc_t)e),
                             metrics_get(&metrics_api_errors[a][e]));
    }
    return rc;
}

static int metrics_render_depth(buf_t *out)
{
    static const char *const states[3] = {"due", "scheduled", "sending"};
    int rc = metrics_family(out, "crier_queue_depth", "gauge",
                            "Unfinished communications in the shared queue (due: waiting for a "
                            "worker; scheduled: send time in the future; sending: claimed)");
    if (!atomic_load_explicit(&metrics_depth_known, memory_order_relaxed))
        return rc;
    for (size_t i = 0; i < 3; i++)
        rc |= buf_printf(out, "crier_queue_depth{state=\"%s\"} %lld\n", states[i],
                         atomic_load_explicit(&metrics_depth[i], memory_order_relaxed));
    return rc;
}

void metrics_ratelimit_deferred(const char *provider)
{
    metrics_add(
        &metrics_rl_deferred[metrics_index(metrics_rl_providers, METRICS_RL_PROVIDERS_N, provider)],
        1);
}

void metrics_email_suppression(void)
{
    metrics_add(&metrics_suppressions, 1);
}

void metrics_all_channels_failed(void)
{
    metrics_add(&metrics_chains_failed, 1);
}

static int metrics_render_chains_failed(buf_t *out)
{
    return metrics_single(out, "crier_all_channels_failed_total", "counter",
                          "Communications whose every channel failed (each is in the review "
                          "queue).",
                          (long long)metrics_get(&metrics_chains_failed));
}

static int metrics_render_suppressions(buf_t *out)
{
    return metrics_single(out, "crier_email_suppressions_total", "counter",
                          "Email addresses this process put on the suppression list after a "
                          "hard bounce",
                          (long long)metrics_get(&metrics_suppressions));
}

static int metrics_render_ratelimit(buf_t *out)
{
    int rc = metrics_family(out, "crier_ratelimit_deferred_total", "counter",
                            "Messages put back to wait because their sender's rate limit was "
                            "reached, by provider");
    for (size_t p = 0; p < METRICS_RL_PROVIDERS_N; p++)
        rc |= buf_printf(out, "crier_ratelimit_deferred_total{provider=\"%s\"} %llu\n",
                         metrics_rl_providers[p], metrics_get(&metrics_rl_deferred[p]));
    return rc;
}

static atomic_llong metrics_circuit[METRICS_RL_PROVIDERS_N];

void metrics_circuit_open(const char *provider, int open)
{
    atomic_store_explicit(
        &metrics_circuit[metrics_index(metrics_rl_providers, METRICS_RL_PROVIDERS_N, provider)],
        open ? 1 : 0, memory_order_relaxed);
}

/* One sample per name of names[0..n) (a label's values, "other" left
 * out by the caller) from the gauges in values. */
static int metrics_render_gauges(buf_t *out, const char *metric, const char *label,
                                 const char *const *names, size_t n, atomic_llong *values)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc |= buf_printf(out, "%s{%s=\"%s\"} %lld\n", metric, label, names[i],
                         atomic_load_explicit(&values[i], memory_order_relaxed));
    return rc;
}

static int metrics_render_circuit(buf_t *out)
{
    int rc = metrics_family(out, "crier_provider_circuit_open", "gauge",
                            "1 while a provider rests after refusing our credentials (its "
                            "messages go to their fallback channel), else 0");
    /* "other" is never a provider */
    rc |= metrics_render_gauges(out, "crier_provider_circuit_open", "provider",
                                metrics_rl_providers, METRICS_RL_PROVIDERS_N - 1, metrics_circuit);
    return rc;
}

/* The tables of store/purge.h, then "other". */
static const char *const metrics_purge_tables[] = {"communications",
                                                   "delivery_events",
                                                   "communication_attachments",
                                                   "workflow_callbacks",
                                                   "inbound_messages",
                                                   "unmatched_receipts",
                                                   "clients",
                                                   "other"};
#define METRICS_PURGE_TABLES_N (sizeof metrics_purge_tables / sizeof metrics_purge_tables[0])

static atomic_llong metrics_purge_rows[METRICS_PURGE_TABLES_N];
static atomic_llong metrics_purge_at; /* unix seconds of the last purge's end; 0: none yet */

void metrics_purge_deleted(const char *table, long long rows)
{
    atomic_store_explicit(
        &metrics_purge_rows[metrics_index(metrics_purge_tables, METRICS_PURGE_TABLES_N, table)],
        rows, memory_order_relaxed);
}

void metrics_purge_finished(double unix_s)
{
    atomic_store_explicit(&metrics_purge_at, (long long)unix_s, memory_order_relaxed);
}

static int metrics_render_purge(buf_t *out)
{
    long long at = atomic_load_explicit(&metrics_purge_at, memory_order_relaxed);
    if (!at)
        return 0;
    int rc = metrics_single(out, "crier_purge_last_run_timestamp_seconds", "gauge",
                            "When this process's last retention purge ended (unix time)", at);
    rc |= metrics_family(out, "crier_purge_last_deleted", "gauge",
                         "Rows this process's last retention purge deleted, by table");
    /* "other" is never a table */
    rc |= metrics_render_gauges(out, "crier_purge_last_deleted", "table", metrics_purge_tables,
                                METRICS_PURGE_TABLES_N - 1, metrics_purge_rows);
    return rc;
}

int metrics_render(buf_t *out)
{
    int rc = metrics_render_comms(out);
    rc |= metrics_render_hist(out);
    rc |= metrics_render_api(out);
    rc |= metrics_render_depth(out);
    rc |= metrics_render_open_rate(out);
    rc |= metrics_render_ratelimit(out);
    rc |= metrics_render_suppressions(out);
    rc |= metrics_render_chains_failed(out);
    rc |= metrics_render_circuit(out);
    rc |= metrics_render_purge(out);
    return rc ? -1 : 0;
}
