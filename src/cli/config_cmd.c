/* crier config check: the settings a `crier serve` would run with, and
 * whether each thing they point at answers — before the service starts. */
#include "cli/commands.h"
#include "crypto/crypto.h"
#include "policy/rules.h"
#include "ratelimit/ratelimit.h"
#include "store/db.h"
#include "template/catalog.h"

#include <stdio.h>
#include <string.h>

#define CONFIGCMD_ERR_MAX 1024

static void configcmd_usage(FILE *f)
{
    fprintf(f, "usage: crier config check [--config FILE] [--offline]\n"
               "\n"
               "Reads the file (if given) and the environment as `crier serve` does,\n"
               "prints every setting (secrets as set or unset), then checks that the\n"
               "URLs are URLs, the templates and rules load, the keys and the DKIM key\n"
               "are usable, and (unless --offline) that PostgreSQL and Redis answer.\n"
               "Exit status: 0 all is well, 2 something is wrong (each problem named).\n");
}

static void configcmd_print(void *cls, const char *env, const char *value, int secret)
{
    (void)cls;
    printf("  %-34s %s%s\n", env, value, secret ? " (secret)" : "");
}

typedef struct configcmd {
    int failed;
} configcmd_t;

static void configcmd_result(configcmd_t *c, int ok, const char *what, const char *why)
{
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, ok ? "" : ": ", ok ? "" : why);
    c->failed += !ok;
}

/* value starts with one of the schemes (a NULL-terminated list); "" is
 * allowed when optional. */
static void configcmd_url(configcmd_t *c, const char *env, const char *value, int optional,
                          const char *const *schemes)
{
    char what[96], why[160];
    snprintf(what, sizeof what, "%s is a URL", env);
    if (optional && (!value || !value[0])) {
        configcmd_result(c, 1, what, NULL);
        return;
    }
    for (int i = 0; schemes[i]; i++) {
        size_t n = strlen(schemes[i]);
        if (value && strncmp(value, schemes[i], n) == 0 && value[n]) {
            configcmd_result(c, 1, what, NULL);
            return;
        }
    }
    snprintf(why, sizeof why, "must start with %s%s%s", schemes[0], schemes[1] ? " or " : "",
             schemes[1] ? schemes[1] : "");
    configcmd_result(c, 0, what, why);
}

static void configcmd_services(configcmd_t *c, const cfg_t *cfg)
{
    char err[CONFIGCMD_ERR_MAX];
    PGconn *conn = db_connect(cfg->database_url, err, sizeof err);
    configcmd_result(c, conn != NULL, "the database answers", err);
    PQfinish(conn);
    if (!cfg->redis_url[0]) {
        configcmd_result(c, 1, "Redis not set: rate limits are per process", NULL);
        return;
    }
    rl_t *rl = rl_new(cfg->redis_url, 2000, err, sizeof err);
    if (!rl) {
        configcmd_result(c, 0, "CRIER_REDIS_URL", err);
        return;
    }
    /* one check of a key of its own: Redis answers, or the local limiter did */
    rl_result_t res;
    int rc = rl_check_ex(rl, "crier:config-check", 1000.0, 1000, &res);
    int ok = rc != RL_ERROR && rl_using_redis(rl);
    configcmd_result(c, ok, "Redis answers", "no answer from CRIER_REDIS_URL");
    rl_free(rl);
}

static void configcmd_files(configcmd_t *c, const cfg_t *cfg)
{
    char err[CONFIGCMD_ERR_MAX], why[CONFIGCMD_ERR_MAX + 64];
    tpl_catalog_t *tc = tpl_catalog_load(cfg->templates_dir, err, sizeof err);
    snprintf(why, sizeof why, "%s: %s", cfg->templates_dir, err);
    configcmd_result(c, tc != NULL, "the templates load", why);
    tpl_catalog_free(tc);
    lh_limits_t lim = {.time_ms = (unsigned)cfg->rules_time_ms,
                       .instructions = (unsigned long long)cfg->rules_instructions};
    rules_set_t *rs = rules_load(cfg->rules_dir, &lim, err, sizeof err);
    configcmd_result(c, rs != NULL, "the rules load", err);
    rules_free(rs);
    cry_keys_t keys;
    memset(&keys, 0, sizeof keys);
    int k = keys_from_cfg(cfg, &keys, err, sizeof err);
    if (k == 1)
        configcmd_result(c, 1, "no encryption key set: PII is refused until one is", NULL);
    else
        configcmd_result(c, k == 0, "the encryption and blind index keys are usable", err);
    cry_keys_wipe(&keys);
    dkim_signer_t *signer = NULL;
    int d = dkim_cmd_signer(cfg, &signer, err, sizeof err);
    if (d == 1)
        configcmd_result(c, 1, "no DKIM key: email goes unsigned", NULL);
    else
        configcmd_result(c, d == 0, "the DKIM key is a usable private key", err);
    dkim_signer_free(signer);
}

int cmd_config(int argc, char **argv, cfg_t *cfg)
{
    int offline = 0;
    if (argc < 2 || strcmp(argv[1], "check") != 0) {
        int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        configcmd_usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--offline") == 0) {
            offline = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            configcmd_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "crier config check: unknown argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    printf("settings (the environment wins over the file):\n");
    cfg_each(cfg, configcmd_print, NULL);
    printf("\n");
    configcmd_t c = {0};
    static const char *const http[] = {"http://", "https://", NULL};
    static const char *const smtp[] = {"smtp://", "smtps://", NULL};
    static const char *const pg[] = {"postgresql://", "postgres://", NULL};
    configcmd_url(&c, "CRIER_PUBLIC_URL", cfg->public_url, 0, http);
    configcmd_url(&c, "CRIER_SMTP_URL", cfg->smtp_url, 0, smtp);
    configcmd_url(&c, "CRIER_WORKFLOW_CALLBACK_URL", cfg->workflow_callback_url, 1, http);
    configcmd_url(&c, "TWILIO_API_BASE", cfg->twilio_api_base, 0, http);
    configcmd_url(&c, "WHATSAPP_API_BASE", cfg->whatsapp_api_base, 0, http);
    /* a conninfo string ("host=... dbname=...") is libpq's other form */
    if (strchr(cfg->database_url, '='))
        configcmd_result(&c, 1, "CRIER_DATABASE_URL is a conninfo string", NULL);
    else
        configcmd_url(&c, "CRIER_DATABASE_URL", cfg->database_url, 0, pg);
    configcmd_files(&c, cfg);
    if (!offline)
        configcmd_services(&c, cfg);
    printf("\n%s\n", c.failed ? "configuration has problems" : "configuration ok");
    return c.failed ? 2 : 0;
}
