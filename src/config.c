#include "config.h"

#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_FILE_MAX_LINE 4096
/* Longest time a rate's full bucket may take to refill (burst / rate). */
#define CFG_RATE_MAX_SPAN_S (100.0 * 86400)
/* The highest price of one message: far above any provider's, and low
 * enough that a cost total in millionths (price x messages) cannot
 * overflow below 9 billion messages. */
#define CFG_PRICE_MAX 1000LL

typedef enum {
    CFG_STR,
    CFG_INT,
    CFG_SIZE,
    CFG_TLS,
    CFG_TRANSPORT,
    CFG_LEVEL,
    CFG_RATE,
    CFG_ONOFF,
    CFG_PRICE, /* a decimal amount, kept as millionths */
} cfg_kind_t;

/* One row per setting: where it lives in cfg_t, its environment name, whether
 * it is a secret (environment only), its default, and the bounds of an int. */
typedef struct cfg_key {
    const char *env;
    const char *file_key; /* NULL for secrets: they have no file form */
    cfg_kind_t kind;
    size_t offset;
    const char *def;
    long min, max;
} cfg_key_t;

#define S(field) offsetof(cfg_t, field)

static const cfg_key_t cfg_keys[] = {
    {"CRIER_DATABASE_URL", "database_url", CFG_STR, S(database_url), "postgresql:///crier", 0, 0},
    {"CRIER_REDIS_URL", "redis_url", CFG_STR, S(redis_url), "", 0, 0},
    /* a Redis slower than this is taken as gone: the local limiter decides */
    {"CRIER_REDIS_TIMEOUT_MS", "redis_timeout_ms", CFG_INT, S(redis_timeout_ms), "50", 1, 10000},
    {"CRIER_LISTEN", "listen", CFG_STR, S(listen), "127.0.0.1:8080", 0, 0},
    {"CRIER_PUBLIC_URL", "public_url", CFG_STR, S(public_url), "http://127.0.0.1:8080", 0, 0},
    {"CRIER_API_TOKENS", NULL, CFG_STR, S(api_tokens), "", 0, 0},
    {"CRIER_TRANSPORT", "transport", CFG_TRANSPORT, S(transport_email), "sandbox", 0, 0},
    {"CRIER_TRANSPORT_EMAIL", "transport_email", CFG_TRANSPORT, S(transport_email), NULL, 0, 0},
    {"CRIER_OUTBOX_DIR", "outbox_dir", CFG_STR, S(outbox_dir), "outbox", 0, 0},
    {"CRIER_RULES_DIR", "rules_dir", CFG_STR, S(rules_dir), "rules", 0, 0},
    {"CRIER_TEMPLATES_DIR", "templates_dir", CFG_STR, S(templates_dir), "templates", 0, 0},
    /* the operator console's pages and scripts (docs/console.md) */
    {"CRIER_CONSOLE_DIR", "console_dir", CFG_STR, S(console_dir), "console", 0, 0},
    {"CRIER_CONSOLE_SESSION_S", "console_session_s", CFG_INT, S(console_session_s), "28800", 60,
     604800},
    {"CRIER_RULES_REQUIRE_TESTS", "rules_require_tests", CFG_INT, S(rules_require_tests), "0", 0,
     1},
    {"CRIER_RULES_TIME_MS", "rules_time_ms", CFG_INT, S(rules_time_ms), "50", 1, 10000},
    {"CRIER_RULES_INSTRUCTIONS", "rules_instructions", CFG_INT, S(rules_instructions), "10000000",
     1000, 2000000000},
    {"CRIER_RULES_DEADLINE_MS", "rules_deadline_ms", CFG_INT, S(rules_deadline_ms), "500", 10,
     60000},
    {"CRIER_RULES_QUARANTINE_AFTER", "rules_quarantine_after", CFG_INT, S(rules_quarantine_after),
     "3", 1, 1000000},
    {"CRIER_SMTP_URL", "smtp_url", CFG_STR, S(smtp_url), "smtp://127.0.0.1:25", 0, 0},
    {"CRIER_SMTP_TLS", "smtp_tls", CFG_TLS, S(smtp_tls_required), "required", 0, 0},
    {"SMTP_USERNAME", NULL, CFG_STR, S(smtp_username), "", 0, 0},
    {"SMTP_PASSWORD", NULL, CFG_STR, S(smtp_password), "", 0, 0},
    {"CRIER_MAIL_FROM", "mail_from", CFG_STR, S(mail_from), "Planiva <hello@planiva.example>", 0,
     0},
    /* The file's path is not a secret (the key in it is: keep it mode 0600). */
    {"CRIER_DKIM_KEY_FILE", "dkim_key_file", CFG_STR, S(dkim_key_file), "", 0, 0},
    {"CRIER_DKIM_SELECTOR", "dkim_selector", CFG_STR, S(dkim_selector), "", 0, 0},
    {"CRIER_DKIM_DOMAIN", "dkim_domain", CFG_STR, S(dkim_domain), "", 0, 0},
    /* the mailto: of List-Unsubscribe; "" is mail_from's address */
    {"CRIER_UNSUBSCRIBE_MAILTO", "unsubscribe_mailto", CFG_STR, S(unsubscribe_mailto), "", 0, 0},
    {"CRIER_ENCRYPTION_KEY", NULL, CFG_STR, S(encryption_key), "", 0, 0},
    {"CRIER_ENCRYPTION_KEYS", NULL, CFG_STR, S(encryption_keys), "", 0, 0},
    {"CRIER_BLIND_INDEX_KEY", NULL, CFG_STR, S(blind_index_key), "", 0, 0},
    {"CRIER_LINK_KEY", NULL, CFG_STR, S(link_key), "", 0, 0},
    /* CAN-SPAM wants an opt-out to work 30 days after the mail; a year
     * keeps old mail's links useful without keeping them forever */
    {"CRIER_LINK_TTL_DAYS", "link_ttl_days", CFG_INT, S(link_ttl_days), "365", 30, 3650},
    /* email open and click tracking (docs/tracking.md) */
    {"CRIER_TRACKING", "tracking", CFG_ONOFF, S(tracking), "on", 0, 0},
    {"CRIER_TRACKING_OFF_TYPES", "tracking_off_types", CFG_STR, S(tracking_off_types), "", 0, 0},
    /* link scanners fetch at delivery, within seconds; a person takes longer */
    {"CRIER_TRACKING_MACHINE_WINDOW_S", "tracking_machine_window_s", CFG_INT,
     S(tracking_machine_window_s), "5", 0, 3600},
    {"TWILIO_AUTH_TOKEN", NULL, CFG_STR, S(twilio_auth_token), "", 0, 0},
    {"WHATSAPP_APP_SECRET", NULL, CFG_STR, S(whatsapp_app_secret), "", 0, 0},
    {"WHATSAPP_VERIFY_TOKEN", NULL, CFG_STR, S(whatsapp_verify_token), "", 0, 0},
    {"CRIER_PHYSICAL_ADDRESS", "physical_address", CFG_STR, S(physical_address),
     "Planiva Events, 100 Example Street, Springfield, IL 62701, USA", 0, 0},
    {"CRIER_SUPPORT_EMAIL", "support_email", CFG_STR, S(support_email), "support@planiva.example",
     0, 0},
    {"CRIER_BRAND_NAME", "brand_name", CFG_STR, S(brand_name), "Planiva", 0, 0},
    {"CRIER_LOG_LEVEL", "log_level", CFG_LEVEL, S(log_level), "info", 0, 0},
    {"CRIER_WORKERS", "workers", CFG_INT, S(workers), "4", 0, 256},
    {"CRIER_HTTP_THREADS", "http_threads", CFG_INT, S(http_threads), "2", 1, 64},
    /* Connections one client address may hold, of the server's 2048: enough
     * for a workflow's connection pool, far from all of them. */
    {"CRIER_HTTP_PER_IP_LIMIT", "http_per_ip_limit", CFG_INT, S(http_per_ip_limit), "64", 1, 2048},
    /* Seconds a request may take to arrive whole (line, headers, body),
     * however steadily its bytes trickle in. */
    {"CRIER_HTTP_REQUEST_TIMEOUT_S", "http_request_timeout_s", CFG_INT, S(http_request_timeout_s),
     "30", 1, 3600},
    {"CRIER_MAX_BODY_BYTES", "max_body_bytes", CFG_SIZE, S(max_body), "1048576", 1024,
     64L * 1024 * 1024},
    {"CRIER_LEASE_SECONDS", "lease_seconds", CFG_INT, S(lease_seconds), "60", 1, 86400},
    {"CRIER_POLL_MS", "poll_ms", CFG_INT, S(poll_ms), "1000", 10, 60000},
    {"CRIER_CLAIM_BATCH", "claim_batch", CFG_INT, S(claim_batch), "8", 1, 1000},
    {"CRIER_SMTP_TIMEOUT_MS", "smtp_timeout_ms", CFG_INT, S(smtp_timeout_ms), "30000", 100, 600000},
    {"CRIER_MAX_ATTEMPTS", "max_attempts", CFG_INT, S(max_attempts), "12", 1, 100},
    {"CRIER_SMS_SEGMENT_BUDGET", "sms_segment_budget", CFG_INT, S(sms_segment_budget), "2", 1, 10},
    {"CRIER_WORKFLOW_CALLBACK_URL", "workflow_callback_url", CFG_STR, S(workflow_callback_url), "",
     0, 0},
    {"CRIER_WORKFLOW_CALLBACK_SECRET", NULL, CFG_STR, S(workflow_callback_secret), "", 0, 0},
    {"CRIER_CALLBACK_MAX_ATTEMPTS", "callback_max_attempts", CFG_INT, S(callback_max_attempts), "8",
     1, 100},
    {"CRIER_CALLBACK_RETRY_SECONDS", "callback_retry_seconds", CFG_INT, S(callback_retry_seconds),
     "0", 0, 86400},
    {"CRIER_CALLBACK_TIMEOUT_MS", "callback_timeout_ms", CFG_INT, S(callback_timeout_ms), "10000",
     100, 120000},
    /* the events the workflow is told of (docs/callbacks.md) */
    {"CRIER_CALLBACK_EVENTS", "callback_events", CFG_STR, S(callback_events), "all", 0, 0},
    /* two years by default; what goes is in docs/architecture.md, Retention */
    {"CRIER_RETENTION_DAYS", "retention_days", CFG_INT, S(retention_days), "730", 1, 36500},
    /* serve purges once a day; 0 leaves it to `crier purge` (cron) */
    {"CRIER_PURGE_INTERVAL_S", "purge_interval_s", CFG_INT, S(purge_interval_s), "86400", 0,
     604800},
    /* after SIGTERM, intake answers 503 and /readyz is false for this long
     * before the listener closes, so a load balancer sees it and moves on */
    {"CRIER_DRAIN_S", "drain_s", CFG_INT, S(drain_s), "2", 0, 300},
    /* CRIER_TRANSPORT sets every channel; each per-channel row after it wins. */
    {"CRIER_TRANSPORT", "transport", CFG_TRANSPORT, S(transport_sms), "sandbox", 0, 0},
    {"CRIER_TRANSPORT_SMS", "transport_sms", CFG_TRANSPORT, S(transport_sms), NULL, 0, 0},
    {"CRIER_TRANSPORT", "transport", CFG_TRANSPORT, S(transport_whatsapp), "sandbox", 0, 0},
    {"CRIER_TRANSPORT_WHATSAPP", "transport_whatsapp", CFG_TRANSPORT, S(transport_whatsapp), NULL,
     0, 0},
    {"TWILIO_ACCOUNT_SID", "twilio_account_sid", CFG_STR, S(twilio_account_sid), "", 0, 0},
    {"TWILIO_FROM_NUMBER", "twilio_from_number", CFG_STR, S(twilio_from_number), "", 0, 0},
    {"TWILIO_API_BASE", "twilio_api_base", CFG_STR, S(twilio_api_base), "https://api.twilio.com", 0,
     0},
    {"WHATSAPP_PHONE_NUMBER_ID", "whatsapp_phone_number_id", CFG_STR, S(whatsapp_phone_number_id),
     "", 0, 0},
    {"WHATSAPP_ACCESS_TOKEN", NULL, CFG_STR, S(whatsapp_access_token), "", 0, 0},
    {"WHATSAPP_API_BASE", "whatsapp_api_base", CFG_STR, S(whatsapp_api_base),
     "https://graph.facebook.com", 0, 0},
    {"WHATSAPP_API_VERSION", "whatsapp_api_version", CFG_STR, S(whatsapp_api_version), "v21.0", 0,
     0},
    {"CRIER_PROVIDER_TIMEOUT_MS", "provider_timeout_ms", CFG_INT, S(provider_timeout_ms), "15000",
     100, 120000},
    /* After an authentication failure, how long a provider rests between
     * probes: long enough not to hammer it, short enough that fixed
     * credentials take effect quickly. */
    {"CRIER_CIRCUIT_PROBE_MS", "circuit_probe_ms", CFG_INT, S(circuit_probe_ms), "30000", 100,
     3600000},
    /* A US long code sends about one segment a second. */
    {"CRIER_RATE_TWILIO", "rate_twilio", CFG_RATE, S(rate_twilio), "1/s", 0, 0},
    /* The seed's SMTP budget: 100 messages an hour per relay. */
    {"CRIER_RATE_SMTP", "rate_smtp", CFG_RATE, S(rate_smtp), "100/h", 0, 0},
    /* Cloud API's default throughput per business number. */
    {"CRIER_RATE_WHATSAPP", "rate_whatsapp", CFG_RATE, S(rate_whatsapp), "80/s,10", 0, 0},
    /* Analytics' cost per communication: list prices of the providers the
     * project started with, to be set to what the account pays. */
    {"CRIER_COST_CURRENCY", "cost_currency", CFG_STR, S(cost_currency), "USD", 0, 0},
    {"CRIER_COST_EMAIL", "cost_email", CFG_PRICE, S(cost_email_micros), "0.0001", 0, 0},
    {"CRIER_COST_SMS_SEGMENT", "cost_sms_segment", CFG_PRICE, S(cost_sms_segment_micros), "0.0079",
     0, 0},
    {"CRIER_COST_WHATSAPP", "cost_whatsapp", CFG_PRICE, S(cost_whatsapp_micros), "0.005", 0, 0},
};
#define CFG_NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])

#undef S

/* "12", "0.0075", ".5": digits with at most 6 after the point, at most
 * CFG_PRICE_MAX; into millionths. 0, or -1. */
static int cfg_price_parse(const char *v, long long *micros)
{
    long long whole = 0, frac = 0;
    int digits = 0, places = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (whole > CFG_PRICE_MAX)
            return -1;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, places++) {
            if (places == 6)
                return -1;
            frac = frac * 10 + (*p - '0');
        }
        if (!places)
            return -1;
    }
    if (*p || (!digits && !places) || whole > CFG_PRICE_MAX)
        return -1;
    for (int i = places; i < 6; i++)
        frac *= 10;
    if (whole * 1000000 + frac > CFG_PRICE_MAX * 1000000LL)
        return -1;
    *micros = whole * 1000000 + frac;
    return 0;
}

static int cfg_parse_long(const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int cfg_rate_parse(const char *v, cfg_rate_t *out)
{
    if (strcmp(v, "off") == 0) {
        out->rate_per_s = 0;
        out->burst = 1;
        return 0;
    }
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || !(n > 0) || n > 1e6 || *end != '/')
        return -1;
    double per;
    long burst = 1;
    switch (end[1]) {
    case 's':
        per = 1;
        break;
    case 'm':
        per = 60;
        break;
    case 'h':
        per = 3600;
        break;
    case 'd':
        /* a quota, spent as the messages come: the whole day's N at once
         * (at least one message), see cfg_rate_t */
        per = 86400;
        burst = n < 1 ? 1 : (long)n;
        break;
    default:
        return -1;
    }
    const char *rest = end + 2;
    if (*rest == ',') {
        if (cfg_parse_long(rest + 1, 1, 1000000, &burst) != 0)
            return -1;
    } else if (*rest != '\0') {
        return -1;
    }
    /* The limiter refuses to decide on a bucket longer than about 116
     * days (and then lets every message go): refused here instead. */
    if ((double)burst * per / n > CFG_RATE_MAX_SPAN_S)
        return -1;
    out->rate_per_s = n / per;
    out->burst = (int)burst;
    return 0;
}

/* Applies one value to c. Returns 0, or -1 with a reason in why. */
static int cfg_apply(cfg_t *c, const cfg_key_t *k, const char *v, char *why, size_t whylen)
{
    char *base = (char *)c;
    long n;
    switch (k->kind) {
    case CFG_STR:
    case CFG_TRANSPORT:
    case CFG_LEVEL: {
        if (k->kind == CFG_TRANSPORT && strcmp(v, "sandbox") != 0 && strcmp(v, "live") != 0) {
            snprintf(why, whylen, "must be \"sandbox\" or \"live\"");
            return -1;
        }
        if (k->kind == CFG_LEVEL && log_level_parse(v) < 0) {
            snprintf(why, whylen, "must be debug, info, warning, error or critical");
            return -1;
        }
        char **slot = (char **)(base + k->offset);
        char *copy = strdup(v);
        if (!copy) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        free(*slot);
        *slot = copy;
        return 0;
    }
    case CFG_INT:
        if (cfg_parse_long(v, k->min, k->max, &n) != 0) {
            snprintf(why, whylen, "must be an integer from %ld to %ld", k->min, k->max);
            return -1;
        }
        *(int *)(base + k->offset) = (int)n;
        return 0;
    case CFG_SIZE:
        if (cfg_parse_long(v, k->min, k->max, &n) != 0) {
            snprintf(why, whylen, "must be a byte count from %ld to %ld", k->min, k->max);
            return -1;
        }
        *(size_t *)(base + k->offset) = (size_t)n;
        return 0;
    case CFG_RATE:
        if (cfg_rate_parse(v, (cfg_rate_t *)(base + k->offset)) != 0) {
            snprintf(why, whylen,
                     "must be \"off\" or a rate N/s, N/m, N/h or N/d, optionally "
                     "followed by \",B\" for a burst of B (B at most 100 days' worth)");
            return -1;
        }
        return 0;
    case CFG_ONOFF:
        if (strcmp(v, "on") == 0)
            *(int *)(base + k->offset) = 1;
        else if (strcmp(v, "off") == 0)
            *(int *)(base + k->offset) = 0;
        else {
            snprintf(why, whylen, "must be \"on\" or \"off\"");
            return -1;
        }
        return 0;
    case CFG_PRICE:
        if (cfg_price_parse(v, (long long *)(base + k->offset)) != 0) {
            snprintf(why, whylen, "must be a decimal amount from 0 to 1000 with at most 6 places");
            return -1;
        }
        return 0;
    case CFG_TLS:
        if (strcmp(v, "required") == 0)
            c->smtp_tls_required = 1;
        else if (strcmp(v, "off") == 0)
            c->smtp_tls_required = 0;
        else {
            snprintf(why, whylen, "must be \"required\" or \"off\"");
            return -1;
        }
        return 0;
    }
    return -1;
}

static char *cfg_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static const cfg_key_t *cfg_find_file_key(const char *name)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (cfg_keys[i].file_key && strcmp(cfg_keys[i].file_key, name) == 0)
            return &cfg_keys[i];
    return NULL;
}

static int cfg_is_secret_name(const char *name)
{
    static const char *const secrets[] = {"api_tokens",
                                          "smtp_username",
                                          "smtp_password",
                                          "encryption_key",
                                          "encryption_keys",
                                          "blind_index_key",
                                          "link_key",
                                          "twilio_auth_token",
                                          "whatsapp_access_token",
                                          "whatsapp_app_secret",
                                          "whatsapp_verify_token",
                                          "workflow_callback_secret"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strcmp(name, secrets[i]) == 0)
            return 1;
    return 0;
}

static int cfg_load_file(cfg_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[CFG_FILE_MAX_LINE];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = cfg_trim(line);
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected \"key = value\"", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = cfg_trim(s), *val = cfg_trim(eq + 1);
        if (cfg_is_secret_name(key)) {
            snprintf(err, errlen, "%s:%d: %s is a secret and is read only from the environment",
                     path, lineno, key);
            rc = -1;
            break;
        }
        const cfg_key_t *k = cfg_find_file_key(key);
        if (!k) {
            snprintf(err, errlen, "%s:%d: unknown key \"%s\"", path, lineno, key);
            rc = -1;
            break;
        }
        /* A key may fill several settings ("transport" sets every channel). */
        char why[160];
        for (; k < cfg_keys + CFG_NKEYS && rc == 0; k++) {
            if (!k->file_key || strcmp(k->file_key, key) != 0)
                continue;
            if (cfg_apply(c, k, val, why, sizeof why) != 0) {
                snprintf(err, errlen, "%s:%d: %s %s", path, lineno, key, why);
                rc = -1;
            }
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

int cfg_load(cfg_t *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    char why[160];
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_keys[i].def && cfg_apply(c, &cfg_keys[i], cfg_keys[i].def, why, sizeof why)) {
            snprintf(err, errlen, "default of %s: %s", cfg_keys[i].env, why);
            return -1;
        }
    }
    if (path && cfg_load_file(c, path, err, errlen) != 0)
        return -1;
    /* The table lists CRIER_TRANSPORT before CRIER_TRANSPORT_EMAIL, so the
     * per-channel setting wins over the general one, as documented. */
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const char *v = getenv(cfg_keys[i].env);
        if (!v)
            continue;
        if (cfg_apply(c, &cfg_keys[i], v, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s %s", cfg_keys[i].env, why);
            return -1;
        }
    }
    return 0;
}

void cfg_free(cfg_t *c)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        cfg_kind_t k = cfg_keys[i].kind;
        if (k == CFG_STR || k == CFG_TRANSPORT || k == CFG_LEVEL) {
            char **slot = (char **)((char *)c + cfg_keys[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
}

/* Registers the password of a URL's userinfo ("scheme://user:pass@host"). */
static void cfg_register_url_password(const char *url)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p)
        return;
    p += 3;
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    if (!at || (slash && slash < at))
        return;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon || at - colon - 1 <= 0)
        return;
    char pass[256];
    size_t n = (size_t)(at - colon - 1);
    if (n >= sizeof pass)
        n = sizeof pass - 1;
    memcpy(pass, colon + 1, n);
    pass[n] = '\0';
    log_add_secret(pass);
}

void cfg_register_secrets(const cfg_t *c)
{
    log_add_secret(c->smtp_password);
    cfg_register_url_password(c->redis_url);
    cfg_register_url_password(c->database_url);
    log_add_secret(c->encryption_key);
    log_add_secret(c->blind_index_key);
    log_add_secret(c->link_key);
    log_add_secret(c->twilio_auth_token);
    log_add_secret(c->whatsapp_app_secret);
    log_add_secret(c->whatsapp_verify_token);
    log_add_secret(c->whatsapp_access_token);
    log_add_secret(c->workflow_callback_secret);
    /* Each token separately: a log line would hold one token, not the list. */
    char *copy = strdup(c->api_tokens ? c->api_tokens : "");
    if (!copy)
        return;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        log_add_secret(colon ? colon + 1 : t);
    }
    free(copy);
    /* Each key of the ring likewise, and the list whole. */
    log_add_secret(c->encryption_keys);
    copy = strdup(c->encryption_keys ? c->encryption_keys : "");
    if (!copy)
        return;
    save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        while (*t == ' ' || *t == '\t')
            t++;
        log_add_secret(colon ? colon + 1 : t);
    }
    free(copy);
}

/* A URL's password hidden: "scheme://user:secret@host" -> "scheme://user:***@host". */
static void cfg_mask_url(const char *url, char *out, size_t outlen)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (!at || !colon || colon > at) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
}

void cfg_each(const cfg_t *c, cfg_each_fn fn, void *cls)
{
    const char *base = (const char *)c;
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const cfg_key_t *k = &cfg_keys[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(cfg_keys[j].env, k->env) == 0;
        if (seen)
            continue; /* CRIER_TRANSPORT fills three rows */
        char text[1024];
        int secret = k->file_key == NULL;
        switch (k->kind) {
        case CFG_STR:
        case CFG_TRANSPORT:
        case CFG_LEVEL: {
            const char *v = *(char *const *)(base + k->offset);
            if (secret)
                snprintf(text, sizeof text, "%s", v && v[0] ? "set" : "unset");
            else if (strstr(k->env, "_URL"))
                cfg_mask_url(v ? v : "", text, sizeof text);
            else
                snprintf(text, sizeof text, "%s", v ? v : "");
            break;
        }
        case CFG_INT:
            snprintf(text, sizeof text, "%d", *(const int *)(base + k->offset));
            break;
        case CFG_SIZE:
            snprintf(text, sizeof text, "%zu", *(const size_t *)(base + k->offset));
            break;
        case CFG_RATE: {
            const cfg_rate_t *r = (const cfg_rate_t *)(base + k->offset);
            if (r->rate_per_s <= 0)
                snprintf(text, sizeof text, "off");
            else
                snprintf(text, sizeof text, "%g/s,%d", r->rate_per_s, r->burst);
            break;
        }
        case CFG_ONOFF:
            snprintf(text, sizeof text, "%s", *(const int *)(base + k->offset) ? "on" : "off");
            break;
        case CFG_TLS:
            snprintf(text, sizeof text, "%s", c->smtp_tls_required ? "required" : "off");
            break;
        case CFG_PRICE: {
            long long m = *(const long long *)(base + k->offset);
            snprintf(text, sizeof text, "%lld.%06lld", m / 1000000, m % 1000000);
            break;
        }
        }
        fn(cls, k->env, text, secret);
    }
}
