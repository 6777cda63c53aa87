/* crier simulate: a client's days played through the live policy on a
 * virtual clock (src/sim/), and the shipped scenarios run as tests. */
#include "cli/commands.h"
#include "policy/rules.h"
#include "policy/runtime.h"
#include "sim/expect.h"
#include "sim/scenario.h"
#include "sim/sim.h"
#include "sim/timeline.h"
#include "template/catalog.h"
#include "util/buf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIMCMD_ERR_MAX   1024
#define SIMCMD_FILES_MAX 500
#define SIMCMD_JSON_MAX  ((size_t)64 * 1024 * 1024)

static void simcmd_usage(FILE *f)
{
    fprintf(f, "usage: crier simulate SCENARIO [--rules DIR] [--templates DIR] [--json]\n"
               "       crier simulate test DIR [--rules DIR] [--templates DIR]\n"
               "\n"
               "Plays a scenario (a JSON file: a client, requests at times, how each\n"
               "provider answers, what the client does) through the rules on a virtual\n"
               "clock, and prints every message's decisions, attempts and end. Nothing is\n"
               "sent and nothing is written. With expectations in the scenario, says which\n"
               "do not hold. `test` plays every *.json of DIR and checks its expectations.\n"
               "\n"
               "  --rules DIR      the rules (default CRIER_RULES_DIR)\n"
               "  --templates DIR  the templates (default CRIER_TEMPLATES_DIR)\n"
               "  --json           print the timeline as JSON\n"
               "\n"
               "Exit status: 0 every expectation holds, 1 one does not, 2 bad input.\n");
}

typedef struct simcmd {
    prt_t *rt;
    prt_local_t *policy;
    tpl_catalog_t *templates;
    sim_env_t env;
    char examples[4096]; /* the templates' examples/, contexts of requests that give none */
} simcmd_t;

/* Loads the rules and the templates the way `crier serve` does. The set
 * must load: a simulation on the built-in policy would show what the
 * operator did not write. 0, or 2 with the error printed. */
static int simcmd_open(simcmd_t *c, const cfg_t *cfg, const char *rules, const char *templates)
{
    char err[SIMCMD_ERR_MAX];
    memset(c, 0, sizeof *c);
    prt_opts_t ro = {
        .limits = {.time_ms = (unsigned)cfg->rules_time_ms,
                   .instructions = (unsigned long long)cfg->rules_instructions},
        .deadline_ms = (unsigned)cfg->rules_deadline_ms,
        .quarantine_after = cfg->rules_quarantine_after,
    };
    rules_set_t *probe = rules_load(rules, &ro.limits, err, sizeof err);
    if (!probe) {
        fprintf(stderr, "crier simulate: %s\n", err);
        return 2;
    }
    rules_free(probe);
    c->templates = tpl_catalog_load(templates, err, sizeof err);
    if (!c->templates) {
        fprintf(stderr, "crier simulate: %s: %s\n", templates, err);
        return 2;
    }
    c->rt = prt_start(rules, &ro, err, sizeof err);
    c->policy = c->rt ? prt_local_new(c->rt) : NULL;
    if (!c->policy) {
        fprintf(stderr, "crier simulate: %s: %s\n", rules, c->rt ? "cannot start" : err);
        if (c->rt)
            prt_stop(c->rt);
        tpl_catalog_free(c->templates);
        return 2;
    }
    c->env.cfg = cfg;
    c->env.policy = c->policy;
    c->env.templates = c->templates;
    snprintf(c->examples, sizeof c->examples, "%s/examples", templates);
    c->env.examples_dir = c->examples;
    return 0;
}

static void simcmd_close(simcmd_t *c)
{
    prt_local_free(c->policy);
    prt_stop(c->rt);
    tpl_catalog_free(c->templates);
}

static double simcmd_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int simcmd_one(const simcmd_t *c, const char *path, int json)
{
    char err[SIMCMD_ERR_MAX];
    scenario_t s;
    if (scenario_load(path, &s, err, sizeof err) != 0) {
        fprintf(stderr, "crier simulate: %s\n", err);
        return 2;
    }
    sim_result_t r;
    int rc = sim_run(&s, &c->env, &r, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "crier simulate: %s: %s\n", path, err);
        sim_result_free(&r);
        scenario_free(&s);
        return 1;
    }
    if (json) {
        buf_t b;
        buf_init(&b, SIMCMD_JSON_MAX);
        if (timeline_json(&s, &r, &b) != 0) {
            fprintf(stderr, "crier simulate: %s: the timeline does not fit\n", path);
            rc = 1;
        } else {
            printf("%s\n", b.data);
        }
        buf_free(&b);
    } else {
        timeline_print(stdout, &s, &r);
    }
    if (rc == 0 && s.n_expect > 0) {
        FILE *f = json ? stderr : stdout;
        fprintf(f, json ? "" : "\n");
        int failed = expect_check(&s, &r, f);
        fprintf(f, "expectations: %d passed, %d failed\n", s.n_expect - failed, failed);
        rc = failed ? 1 : 0;
    }
    sim_result_free(&r);
    scenario_free(&s);
    return rc;
}

static int simcmd_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of dir, sorted (the caller frees each and the list). */
static int simcmd_files(const char *dir, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = calloc(SIMCMD_FILES_MAX, sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL && *n < SIMCMD_FILES_MAX) {
        size_t len = strlen(e->d_name);
        if (len < 6 || e->d_name[0] == '.' || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        size_t size = strlen(dir) + len + 2;
        names[*n] = malloc(size);
        if (!names[*n])
            break;
        snprintf(names[*n], size, "%s/%s", dir, e->d_name);
        (*n)++;
    }
    closedir(d);
    if (!names)
        return -1;
    qsort(names, (size_t)*n, sizeof *names, simcmd_cmp);
    *out = names;
    return 0;
}

static int simcmd_test(const simcmd_t *c, const char *dir)
{
    char **files;
    int n;
    if (simcmd_files(dir, &files, &n) != 0) {
        fprintf(stderr, "crier simulate test: %s: cannot read the directory\n", dir);
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "crier simulate test: %s: no scenario (*.json)\n", dir);
        free(files);
        return 2;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        char err[SIMCMD_ERR_MAX];
        scenario_t s;
        sim_result_t r;
        memset(&r, 0, sizeof r);
        double t0 = simcmd_ms();
        if (scenario_load(files[i], &s, err, sizeof err) != 0) {
            printf("FAIL %s\n  %s\n", files[i], err);
            failed++;
            free(files[i]);
            continue;
        }
        int bad;
        if (sim_run(&s, &c->env, &r, err, sizeof err) != 0) {
            printf("FAIL %s\n  %s\n", files[i], err);
            bad = 1;
        } else {
            /* the lines of a failure follow its FAIL line */
            char *text = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&text, &len);
            bad = mem ? expect_check(&s, &r, mem) : s.n_expect;
            if (mem)
                fclose(mem);
            double ms = simcmd_ms() - t0;
            int reached = 0;
            for (int k = 0; k < r.n_msgs; k++)
                reached += !r.msgs[k].is_digest && r.msgs[k].reached_at >= 0;
            printf("%s %s: %d requests, %d reached the client, %d expectations, %.1f ms\n",
                   bad ? "FAIL" : "ok  ", s.name[0] ? s.name : files[i], s.n_requests, reached,
                   s.n_expect, ms);
            if (text && len)
                fputs(text, stdout);
            free(text);
        }
        if (bad)
            failed++;
        else
            passed++;
        sim_result_free(&r);
        scenario_free(&s);
        free(files[i]);
    }
    free(files);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

int cmd_simulate(int argc, char **argv, cfg_t *cfg)
{
    const char *rules = cfg->rules_dir, *templates = cfg->templates_dir, *target = NULL;
    int json = 0, test = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            simcmd_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--rules") == 0 || strcmp(a, "--templates") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "crier simulate: %s needs a directory\n", a);
                return 2;
            }
            if (strcmp(a, "--rules") == 0)
                rules = argv[++i];
            else
                templates = argv[++i];
        } else if (strncmp(a, "--", 2) == 0) {
            fprintf(stderr, "crier simulate: unknown option \"%s\"\n", a);
            return 2;
        } else if (!target && !test && strcmp(a, "test") == 0) {
            test = 1;
        } else if (!target) {
            target = a;
        } else {
            fprintf(stderr, "crier simulate: unexpected argument \"%s\"\n", a);
            return 2;
        }
    }
    if (!target) {
        simcmd_usage(stderr);
        return 2;
    }
    if (test && json) {
        fprintf(stderr, "crier simulate test: --json is for one scenario\n");
        return 2;
    }
    simcmd_t c;
    int rc = simcmd_open(&c, cfg, rules, templates);
    if (rc != 0)
        return rc;
    rc = test ? simcmd_test(&c, target) : simcmd_one(&c, target, json);
    simcmd_close(&c);
    return rc;
}
