#include "api/metrics.h"

#include "api/api.h"
#include "prefcache/prefcache.h"
#include "http/stats.h"
#include "metrics/metrics.h"
#include "policy/runtime.h"
#include "template/live.h"
#include "ratelimit/ratelimit.h"
#include "util/buf.h"

#include <stdatomic.h>

/* The whole text is a few hundred lines; the bound only stops a mistake. */
#define API_METRICS_MAX (512 * 1024)

static const char *const api_metrics_classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
#define API_METRICS_CLASSES_N (int)(sizeof api_metrics_classes / sizeof api_metrics_classes[0])

/* The counters slot of the k-th route label: the routes' in their order,
 * then the one of requests no route matched. */
static int api_metrics_slot(int k)
{
    return k + 1 < API_STAT_N ? k + 1 : HTTP_STATS_UNROUTED;
}

static int api_metrics_http(buf_t *b)
{
    int rc = metrics_family(b, "crier_http_requests_total", "counter",
                            "HTTP requests by route and status class (none: ended unanswered)");
    for (int k = 0; k < API_STAT_N; k++) {
        int slot = api_metrics_slot(k);
        for (int cls = 0; cls < API_METRICS_CLASSES_N; cls++) {
            unsigned long long n = http_stats_requests(slot, cls);
            if (!n)
                continue;
            rc |= buf_puts(b, "crier_http_requests_total{route=");
            rc |= metrics_label_value(b, api_stat_name(slot));
            rc |= buf_printf(b, ",code=\"%s\"} %llu\n", api_metrics_classes[cls], n);
        }
    }
    rc |= metrics_family(b, "crier_http_request_duration_seconds", "summary",
                         "Time from a request's first byte to its end, by route");
    for (int k = 0; k < API_STAT_N; k++) {
        int slot = api_metrics_slot(k);
        unsigned long long count = 0;
        for (int cls = 0; cls < API_METRICS_CLASSES_N; cls++)
            count += http_stats_requests(slot, cls);
        if (!count)
            continue;
        const char *name = api_stat_name(slot);
        rc |= buf_puts(b, "crier_http_request_duration_seconds_sum{route=");
        rc |= metrics_label_value(b, name);
        rc |= buf_puts(b, "} ");
        rc |= metrics_value(b, (double)http_stats_duration_ms(slot) / 1000.0);
        rc |= buf_puts(b, "\ncrier_http_request_duration_seconds_count{route=");
        rc |= metrics_label_value(b, name);
        rc |= buf_printf(b, "} %llu\n", count);
    }
    return rc;
}

static int api_metrics_rules(buf_t *b, prt_t *rules)
{
    prt_counters_t pc = {0};
    if (rules)
        prt_counters(rules, &pc);
    const struct {
        const char *name, *type, *help;
        long value;
    } rows[] = {
        {"crier_rules_reloads_total", "counter", "Rule sets published by a reload", pc.reloads},
        {"crier_rules_reload_failures_total", "counter",
         "Reloads refused because the new rule set failed to load or test", pc.reload_failures},
        {"crier_rule_failures_total", "counter",
         "Decisions the built-in policy answered because a rule failed", pc.rule_failures},
        {"crier_rules_budget_overruns_total", "counter",
         "Rule calls stopped by their instruction, time or memory budget", pc.budget_overruns},
        {"crier_rules_deadline_misses_total", "counter",
         "Rule calls abandoned at the hard deadline (answered by the built-in policy)",
         pc.deadline_misses},
        {"crier_rules_runners_stuck", "gauge",
         "Rule threads left at a deadline that have not returned yet", pc.runners_stuck},
        {"crier_rules_quarantined", "gauge",
         "1 while the published rule set is quarantined and the built-in policy decides",
         pc.quarantined},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        rc |= metrics_single(b, rows[i].name, rows[i].type, rows[i].help, rows[i].value);
    rc |= metrics_family(b, "crier_rules_info", "gauge", "The active rules version (always 1)");
    if (rules) {
        rc |= buf_puts(b, "crier_rules_info{version=");
        rc |= metrics_label_value(b, pc.version);
        rc |= buf_puts(b, "} 1\n");
    }
    return rc;
}

/* The live templates: reloads by result, and which catalogue is live. */
static int api_metrics_templates(buf_t *b, tpl_live_t *t)
{
    tpl_live_counters_t tc;
    tpl_live_counters(t, &tc);
    int rc = metrics_family(b, "crier_templates_reloads_total", "counter",
                            "Template reloads by result (ok: checked and live, or unchanged; "
                            "error: refused, the previous templates stay live)");
    rc |= buf_printf(b,
                     "crier_templates_reloads_total{result=\"ok\"} %ld\n"
                     "crier_templates_reloads_total{result=\"error\"} %ld\n",
                     tc.reloads_ok, tc.reloads_error);
    rc |= metrics_single(b, "crier_templates_last_reload_ok", "gauge",
                         "1 when the last template reload (or the start) passed, 0 when it was "
                         "refused",
                         t ? tc.last_ok : 0);
    rc |= metrics_family(b, "crier_templates_info", "gauge",
                         "The live template catalogue's version (always 1)");
    if (t) {
        rc |= buf_puts(b, "crier_templates_info{version=");
        rc |= metrics_label_value(b, tc.version);
        rc |= buf_puts(b, "} 1\n");
    }
    return rc;
}

/* The rate limiter keeps its own counters: the registry below it cannot
 * read them, the endpoint above both can. */
static int api_metrics_ratelimit(buf_t *b)
{
    rl_stats_t st;
    rl_stats(&st);
    return metrics_single(b, "crier_ratelimit_local_fallback_total", "counter",
                          "Rate limit decisions made by this process alone because Redis was "
                          "not configured or did not answer",
                          (long long)st.local_checks);
}

/* The preference cache: where the decision path found a client's
 * preferences. Without Redis every lookup reads PostgreSQL, and the
 * backend gauge says so. */
static int api_metrics_prefcache(buf_t *b)
{
    prefcache_stats_t st;
    prefcache_stats(&st);
    int rc = metrics_family(b, "crier_preference_cache_lookups_total", "counter",
                            "Client preference lookups on the decision path, by where they were "
                            "answered (hit: Redis; miss, error, bypassed: PostgreSQL)");
    rc |= buf_printf(b,
                     "crier_preference_cache_lookups_total{result=\"hit\"} %llu\n"
                     "crier_preference_cache_lookups_total{result=\"miss\"} %llu\n"
                     "crier_preference_cache_lookups_total{result=\"bypassed\"} %llu\n",
                     st.hits, st.misses, st.bypassed);
    rc |= metrics_single(b, "crier_preference_cache_errors_total", "counter",
                         "Round trips to the preference cache that failed (Redis down or "
                         "erroring); the decision read PostgreSQL instead",
                         (long long)st.errors);
    rc |= metrics_family(b, "crier_preference_cache_backend", "gauge",
                         "Where client preferences are read from: redis, or postgres when no "
                         "Redis is configured");
    rc |= buf_printf(b, "crier_preference_cache_backend{backend=\"%s\"} 1\n",
                     st.configured ? "redis" : "postgres");
    return rc;
}

void api_metrics(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    buf_t b;
    buf_init(&b, API_METRICS_MAX);
    int rc = metrics_render(&b);
    rc |= api_metrics_ratelimit(&b);
    rc |= api_metrics_prefcache(&b);
    rc |= api_metrics_http(&b);
    rc |= api_metrics_rules(&b, api->app->rules);
    rc |= api_metrics_templates(&b, api->app->templates);
    rc |= metrics_single(&b, "crier_database_up", "gauge",
                         "1 while PostgreSQL answered the last probe, else 0",
                         atomic_load(&api->app->db_ready) ? 1 : 0);
    if (rc != 0) {
        buf_free(&b);
        http_answer_error(out, 500, "internal_error", "the metrics text did not fit its bound");
        return;
    }
    http_answer_json(out, 200, buf_detach(&b));
}
