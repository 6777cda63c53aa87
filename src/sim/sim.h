/* sim: a scenario played on a virtual clock through the engine's own
 * policy — the live rules runtime (prt_decide, prt_on_failure), the shared
 * application of its answers (policy/apply.h), the provider circuits, the
 * templates and the SMS segment count — with the store and the transports
 * swapped for records in memory and the scenario's scripted answers. No
 * network, no database, nothing sent.
 *
 * The clock jumps from one thing to the next: a request, a client event,
 * a message falling due, a receipt. Things at the same instant go in that
 * order (a STOP at 09:00 is heard before a send at 09:00), messages by
 * number. */
#ifndef CRIER_SIM_H
#define CRIER_SIM_H

#include "config.h"
#include "policy/runtime.h"
#include "sim/scenario.h"
#include "template/catalog.h"

#define SIM_MAX_STEPS  200000 /* things a scenario may make happen */
#define SIM_LINE_MAX   640
#define SIM_DIGEST_MAX 16

typedef struct sim_line {
    double at;
    char text[SIM_LINE_MAX];
} sim_line_t;

/* One communication: a request's, or a digest the simulator made. */
typedef struct sim_msg {
    int number;                    /* requests 1..n; digests n+1.. */
    int is_digest;                 /* 1: a digest of members[] */
    const scenario_request_t *req; /* NULL for a digest */
    char type[32], urgency[12];
    double requested_at;
    policy_decision_t d;
    char status[12];  /* pending queued batched sent delivered failed bounced skipped */
    char channel[12]; /* the channel of the last (or next) attempt */
    char fallback_json[128];
    char skip_reason[64];
    int attempts;        /* claims, as the engine counts them */
    int channel_attempt; /* attempts on channel */
    double due;          /* the next attempt, -1 when none */
    double receipt_at;   /* a scripted receipt, -1 when none */
    scenario_result_t receipt;
    int digest; /* the digest a member joined (index), -1 */
    /* a digest's */
    char batch_key[64];
    int size, max_size, window;
    double first_send_at, opened_at;
    int members[SIM_DIGEST_MAX];
    /* what reached the client, once (reached_at < 0: nothing) */
    double reached_at;
    char reached_channel[12];
    char via[24];      /* text (email, SMS), free_text or template (WhatsApp), digest */
    int segments;      /* SMS */
    char what[200];    /* subject, template name, SMS encoding */
    sim_line_t *lines; /* owned: its timeline */
    int n_lines, cap_lines;
} sim_msg_t;

typedef struct sim_result {
    sim_msg_t *msgs; /* owned */
    int n_msgs;
    char rules_version[72];
    char templates_version[24];
    const char *zone; /* the client's time zone at the start (borrowed from the scenario) */
    int steps;
    int truncated; /* 1: SIM_MAX_STEPS reached before the end */
} sim_result_t;

typedef struct sim_env {
    const cfg_t *cfg;    /* the SMS segment budget, the circuit's probe interval, the site */
    prt_local_t *policy; /* the rules, as the engine runs them */
    const tpl_catalog_t *templates; /* what is rendered (NULL: nothing rendered) */
    const char *examples_dir;       /* TYPE.json: the context of a request that gives none */
} sim_env_t;

/* Plays s. 0, or -1 with err (out of memory, no circuit). Free out with
 * sim_result_free either way. */
int sim_run(const scenario_t *s, const sim_env_t *env, sim_result_t *out, char *err, size_t errlen);
void sim_result_free(sim_result_t *r);

/* 1 when the message's status is final. */
int sim_final(const sim_msg_t *m);

#endif
