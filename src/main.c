/* crier: command-line entry point. Finds the sub-command, loads the
 * configuration every command shares, and dispatches. */
#include "cli/commands.h"
#include "config.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void main_usage(FILE *f)
{
    fprintf(f, "usage: crier <command> [options]\n"
               "\n"
               "commands:\n"
               "  serve [--config FILE]                 run the API and the delivery workers\n"
               "  migrate [--dir DIR]                   apply the SQL migrations\n"
               "  keys status                           stored values per encryption key id\n"
               "  keys rotate [--batch N] [--dry-run]   re-encrypt them under the current key\n"
               "  keys index-key                        print the blind index key (base64)\n"
               "  purge [--dry-run] [--batch N]         delete what is past CRIER_RETENTION_DAYS\n"
               "  dkim keygen --selector S --out FILE   make a DKIM key, print its DNS record\n"
               "  dkim record                           print the configured key's DNS record\n"
               "  templates check                       parse every template\n"
               "  templates render NAME --context FILE  render one message to stdout\n"
               "  rules test [DIR]                      run the policy cases in rules/tests\n"
               "  rules dry-run --request FILE [--client FILE] [--now ISO-8601] [--rules DIR]\n"
               "                                        show what the rules decide, send nothing\n"
               "  simulate SCENARIO [--json]            play a client's days through the rules\n"
               "  simulate test DIR                     play every scenario, check expectations\n"
               "  config check [--offline]              print the settings, check what they name\n"
               "  version                               print the version\n"
               "\n"
               "Every command takes --help and --config FILE. Settings come from the\n"
               "environment (CRIER_*, which wins) and the optional file.\n"
               "Exit status: 0 ok, 1 runtime failure, 2 usage or bad input.\n");
}

typedef int (*main_cmd_fn)(int, char **, cfg_t *);

static const struct {
    const char *name;
    main_cmd_fn fn;
} main_cmds[] = {
    {"serve", cmd_serve},         {"migrate", cmd_migrate},   {"purge", cmd_purge},
    {"templates", cmd_templates}, {"rules", cmd_rules},       {"keys", cmd_keys},
    {"dkim", cmd_dkim},           {"simulate", cmd_simulate}, {"config", cmd_config},
};

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        main_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("crier %s\n", CRIER_VERSION);
        return 0;
    }
    main_cmd_fn fn = NULL;
    for (size_t i = 0; i < sizeof main_cmds / sizeof main_cmds[0]; i++)
        if (strcmp(argv[1], main_cmds[i].name) == 0)
            fn = main_cmds[i].fn;
    if (!fn) {
        fprintf(stderr, "crier: unknown command \"%s\" (try crier --help)\n", argv[1]);
        return 2;
    }

    /* --config is common to every command: take it out before dispatch. */
    const char *config_path = NULL;
    int n = 0;
    char **args = argv + 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "crier: --config needs a file\n");
                return 2;
            }
            config_path = argv[++i];
            continue;
        }
        args[n++] = argv[i];
    }

    cfg_t cfg;
    char err[512];
    if (cfg_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "crier: configuration: %s\n", err);
        cfg_free(&cfg);
        return 2;
    }
    cfg_register_secrets(&cfg);
    log_set_level((log_level_t)log_level_parse(cfg.log_level));
    int rc = fn(n, args, &cfg);
    cfg_free(&cfg);
    return rc;
}
