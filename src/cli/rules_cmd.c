/* crier rules: operators' tools for the policy rules — run the table-driven
 * cases (`test`) and show what the rules would decide for one request
 * (`dry-run`). Neither touches the database or sends anything. */
#include "cli/commands.h"
#include "policy/dryrun.h"
#include "policy/rules.h"
#include "policy/rules_cases.h"
#include "policy/rules_json.h"
#include "request/request.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/timefmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULESCMD_MAX_FILE (4 * 1024 * 1024) /* request bodies carry attachments */
#define RULESCMD_ERR_MAX  1024

static void rulescmd_usage(FILE *f)
{
    fprintf(f, "usage: crier rules test [DIR]\n"
               "       crier rules dry-run --request FILE [--client FILE] [--now ISO-8601]\n"
               "                           [--rules DIR] [--pending N]\n"
               "\n"
               "test     loads the rules in DIR (default CRIER_RULES_DIR) and runs the cases\n"
               "         of every DIR/tests/*.lua file; prints one line per case and\n"
               "         \"N passed, N failed\". Exit 1 when a case failed.\n"
               "dry-run  prints, as JSON, the decision the rules make for the\n"
               "         POST /v1/communications body in --request and the trace of every\n"
               "         rule step. Nothing is written or sent.\n"
               "           --client FILE  the client: client_id, preferred_channels, timezone,\n"
               "                          quiet_hours_start, quiet_hours_end, opt_out_email,\n"
               "                          opt_out_sms, opt_out_whatsapp, email, phone,\n"
               "                          consent {email, sms, whatsapp}, last_contact_at,\n"
               "                          whatsapp_window_until; fields left out come from\n"
               "                          the request's client object, then the defaults\n"
               "           --now TIME     decide as if it were TIME (default: now)\n"
               "           --rules DIR    use the rules in DIR instead of CRIER_RULES_DIR\n"
               "           --pending N    LOW messages already waiting for the client\n"
               "\n"
               "Exit status: 0 ok, 1 a case failed or a rule failed, 2 usage or bad input.\n");
}

/* Reads a whole file; NULL with a message on stderr naming it. */
static char *rulescmd_read(const char *path, size_t *len)
{
    buf_t b;
    buf_init(&b, RULESCMD_MAX_FILE);
    char err[512];
    if (file_append(path, path, &b, err, sizeof err) != 0) {
        fprintf(stderr, "crier rules: %s\n", err);
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return buf_detach(&b);
}

/* Parses a JSON file; NULL with a message naming the file and line. */
static cJSON *rulescmd_json_file(const char *path, char **text_out, size_t *len_out)
{
    size_t len = 0;
    char *text = rulescmd_read(path, &len);
    if (!text)
        return NULL;
    char err[256];
    cJSON *v = rules_json_parse(text, len, err, sizeof err);
    if (!v) {
        fprintf(stderr, "crier rules: %s: %s\n", path, err);
        free(text);
        return NULL;
    }
    if (text_out) {
        *text_out = text;
        *len_out = len;
    } else {
        free(text);
    }
    return v;
}

/* The budgets serve would give the rules (CRIER_RULES_TIME_MS and
 * CRIER_RULES_INSTRUCTIONS), so a dry-run stops where serve would. */
static lh_limits_t rulescmd_limits(const cfg_t *cfg)
{
    lh_limits_t lim = {.time_ms = (unsigned)cfg->rules_time_ms,
                       .instructions = (unsigned long long)cfg->rules_instructions};
    return lim;
}

static rules_set_t *rulescmd_load(const char *dir, const cfg_t *cfg)
{
    char err[RULESCMD_ERR_MAX];
    lh_limits_t lim = rulescmd_limits(cfg);
    rules_set_t *s = rules_load(dir, &lim, err, sizeof err);
    if (!s)
        fprintf(stderr, "crier rules: %s\n", err);
    return s;
}

static int rulescmd_test(int argc, char **argv, cfg_t *cfg)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            rulescmd_usage(stdout);
            return 0;
        }
        if ((strcmp(argv[i], "--rules") == 0) && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "crier rules test: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (!dir)
        dir = cfg->rules_dir;
    rules_set_t *s = rulescmd_load(dir, cfg);
    if (!s)
        return 2;
    char tests[4096], err[RULESCMD_ERR_MAX];
    snprintf(tests, sizeof tests, "%s/tests", dir);
    int passed = 0, failed = 0;
    int rc = rules_cases_run(s, tests, stdout, &passed, &failed, err, sizeof err);
    rules_free(s);
    if (rc != 0) {
        fprintf(stderr, "crier rules test: %s\n", err);
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* The dry-run's answer, the same JSON POST /v1/rules/dry-run gives. */
static int rulescmd_print(const policy_decision_t *d, const char *rules_error)
{
    char *text = dryrun_answer_json(d, rules_error, 1);
    if (!text)
        return -1;
    printf("%s\n", text);
    free(text);
    return 0;
}

static int rulescmd_dry_run(int argc, char **argv, cfg_t *cfg)
{
    const char *request = NULL, *client = NULL, *now_s = NULL, *dir = cfg->rules_dir;
    int pending = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rulescmd_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "crier rules dry-run: unexpected argument \"%s\"\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--request") == 0) {
            request = v;
        } else if (strcmp(a, "--client") == 0) {
            client = v;
        } else if (strcmp(a, "--now") == 0) {
            now_s = v;
        } else if (strcmp(a, "--rules") == 0) {
            dir = v;
        } else if (strcmp(a, "--pending") == 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || p < 0 || p > 1000) {
                fprintf(stderr, "crier rules dry-run: --pending needs a count (0..1000)\n");
                return 2;
            }
            pending = (int)p;
        } else {
            fprintf(stderr, "crier rules dry-run: unknown option \"%s\"\n", a);
            return 2;
        }
    }
    if (!request) {
        fprintf(stderr, "crier rules dry-run: --request FILE is required\n");
        return 2;
    }
    double now = time_now();
    if (now_s && rules_time_parse(now_s, &now) != 0) {
        fprintf(stderr, "crier rules dry-run: --now: expected ISO-8601 such as "
                        "2026-03-08T06:30:00Z\n");
        return 2;
    }

    rules_input_t in;
    rules_input_defaults(&in);
    in.pending.count = pending;
    char err[RULESCMD_ERR_MAX];
    char *text = NULL;
    size_t len = 0;
    /* parsed here first only for a syntax error's line and column */
    cJSON *req = rulescmd_json_file(request, &text, &len);
    if (!req)
        return 2;
    cJSON_Delete(req);
    cJSON *cj = NULL;
    if (client && !(cj = rulescmd_json_file(client, NULL, NULL))) {
        free(text);
        return 2;
    }
    req_error_t rerr;
    int rc = dryrun_input(&in, text, len, RULESCMD_MAX_FILE, cj, &rerr);
    free(text);
    cJSON_Delete(cj);
    if (rc != 0) {
        fprintf(stderr, "crier rules: %s: %s\n", rc == DRYRUN_BAD_CLIENT ? client : request,
                rerr.message);
        return 2;
    }

    /* A set that does not load decides nothing: the engine would answer
     * with the built-in policy, so that decision is shown, and the load
     * error goes to stderr with exit status 2 as for any broken file. */
    policy_decision_t d;
    lh_limits_t lim = rulescmd_limits(cfg);
    rules_set_t *s = rules_load(dir, &lim, err, sizeof err);
    if (!s) {
        fprintf(stderr, "crier rules: %s\n", err);
        policy_builtin_decide(&in.msg, &in.client, now, &d);
        return rulescmd_print(&d, err) != 0 ? 1 : 2;
    }
    int failed = rules_decide(s, &in.msg, &in.client, now, &in.pending, &d, err, sizeof err) != 0;
    rules_free(s);
    if (failed) {
        /* show what the engine would do: the built-in safe decision */
        policy_builtin_decide(&in.msg, &in.client, now, &d);
    }
    if (rulescmd_print(&d, failed ? err : NULL) != 0) {
        fprintf(stderr, "crier rules dry-run: cannot print the decision\n");
        return 1;
    }
    return failed ? 1 : 0;
}

int cmd_rules(int argc, char **argv, cfg_t *cfg)
{
    if (argc < 2) {
        rulescmd_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        rulescmd_usage(stdout);
        return 0;
    }
    if (strcmp(sub, "test") == 0)
        return rulescmd_test(argc - 1, argv + 1, cfg);
    if (strcmp(sub, "dry-run") == 0)
        return rulescmd_dry_run(argc - 1, argv + 1, cfg);
    fprintf(stderr, "crier rules: unknown sub-command \"%s\" (test or dry-run)\n", sub);
    return 2;
}
