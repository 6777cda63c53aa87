/* runtime: the live rules of a running crier — loading, hot reload, and
 * decisions that never fail.
 *
 * One prt_t per process watches the rules directory (inotify) and takes
 * prt_reload() on SIGHUP. A reload compiles the directory in a fresh sandbox
 * and smoke-tests it (and, with CRIER_RULES_REQUIRE_TESTS, runs the cases in
 * rules/tests/) off the hot path; only a set that passes is published. A
 * broken set never replaces a working one: the error is kept for
 * GET /v1/rules and the log.
 *
 * Each thread that decides owns a prt_local_t, whose runner thread (see
 * policy/runner.h) holds its own Lua state (states are never shared) and
 * runs every rule call for it. Before a decision the runner notices a newer
 * published version and swaps to it, between decisions. A rule that fails a
 * decision (raises, loops, allocates too much, returns something unsafe) is
 * answered by the built-in policy, and counted.
 *
 * Two lines of defence bound a decision: the sandbox's budgets inside the
 * VM, and a hard deadline outside it. A call that has not returned by the
 * deadline is left to its runner thread (its state is never used again),
 * the caller answers with the built-in policy, and the published set is
 * quarantined; so is a set whose calls overrun their budget
 * quarantine_after times. A quarantined set decides nothing until a
 * different set is published; GET /v1/rules, /readyz and /metrics say so. */
#ifndef CRIER_POLICY_RUNTIME_H
#define CRIER_POLICY_RUNTIME_H

#include "policy/policy.h"
#include "policy/rules.h"
#include "util/buf.h"

#include <stddef.h>

typedef struct prt prt_t;
typedef struct prt_local prt_local_t;

#define PRT_DEFAULT_DEADLINE_MS 500

typedef struct prt_opts {
    int require_tests;    /* a set must also pass its rules/tests cases to be published */
    lh_limits_t limits;   /* every state's budgets; zero fields take the host's defaults */
    unsigned deadline_ms; /* a decision's hard deadline; 0: PRT_DEFAULT_DEADLINE_MS */
    int quarantine_after; /* budget overruns that quarantine a set; 0: 3 */
} prt_opts_t;

/* Loads dir and starts watching it. A directory that fails to load at start
 * is not fatal: crier runs on the built-in policy and reports the error, so
 * a typo in a rule cannot keep the API down. opts may be NULL (defaults). */
prt_t *prt_start(const char *dir, const prt_opts_t *opts, char *err, size_t errlen);
/* Stops the watcher. Call after every prt_local_t is freed. */
void prt_stop(prt_t *p);
/* Re-reads the directory now (SIGHUP); returns 0 when a set was published. */
int prt_reload(prt_t *p);
/* {"rules_dir","active_version","loaded_at","last_error","last_error_at",
 *  "policy" (rules|builtin|quarantined), "quarantine" (null or {"version",
 *  "reason","at"}), "reloads","reload_failures","rule_failures",
 *  "budget_overruns","deadline_misses","runners_stuck","deadline_ms"} */
int prt_status_json(prt_t *p, buf_t *out);

/* The reload and failure counters and the active version, as numbers for
 * /metrics (the same values prt_status_json shows). */
typedef struct prt_counters {
    long reloads, reload_failures, rule_failures;
    long budget_overruns, deadline_misses, runners_stuck;
    int quarantined;
    char version[72]; /* the active set's version, or the built-in policy's */
} prt_counters_t;
void prt_counters(prt_t *p, prt_counters_t *out);

/* 1 when the policy is degraded — the published set is quarantined and the
 * built-in policy decides — with the reason in why. */
int prt_degraded(prt_t *p, char *why, size_t whylen);

prt_local_t *prt_local_new(prt_t *p);
void prt_local_free(prt_local_t *l);
/* The decision: the rules', or the built-in one when they fail. */
void prt_decide(prt_local_t *l, const policy_msg_t *m, const policy_client_t *c, double now,
                const rules_pending_t *pending, policy_decision_t *d);
/* What to do after a failed attempt (fallback.on_failure): the rules'
 * answer, or the built-in one when they fail. attempt counts the attempts on
 * channel, the failed one included; retry_after is the provider's wait in
 * seconds or -1; remaining are the channels not tried. */
void prt_on_failure(prt_local_t *l, const policy_msg_t *m, int attempt, const char *channel,
                    const char *category, int provider_code, int retry_after,
                    const char *const *remaining, int n_remaining, policy_failure_t *out);

#endif
