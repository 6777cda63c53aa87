/* config: crier's settings, from an optional file and the environment.
 *
 * The file holds `key = value` lines (# starts a comment); each key is the
 * lower-case name of an environment variable without its CRIER_ prefix
 * (`listen` for CRIER_LISTEN). The environment wins over the file. Secrets
 * (tokens, passwords, keys) are accepted only from the environment: a secret
 * in the file is an error, so it never ends up in a repository. */
#ifndef CRIER_CONFIG_H
#define CRIER_CONFIG_H

#include <stddef.h>

/* A send rate: rate_per_s sustained with bursts of up to burst; rate_per_s 0
 * means no limit. Written "N/s", "N/m", "N/h" or "N/d", optionally ",B" for
 * the burst, or "off". Left out, the burst is 1 for a rate per second,
 * minute or hour (an even pace), and N for a rate per day: a daily quota
 * ("1000/d", WhatsApp's first tier) is meant to be spent when the messages
 * come, not one every 86.4 s, so the bucket holds the whole day's N. */
typedef struct cfg_rate {
    double rate_per_s;
    int burst;
} cfg_rate_t;

typedef struct cfg {
    /* all strings owned by the cfg; never NULL after cfg_load unless noted */
    char *database_url;         /* CRIER_DATABASE_URL, libpq URI or conninfo */
    char *redis_url;            /* CRIER_REDIS_URL, may be "" */
    int redis_timeout_ms;       /* CRIER_REDIS_TIMEOUT_MS: connect and command timeout */
    char *listen;               /* CRIER_LISTEN, host:port */
    char *public_url;           /* CRIER_PUBLIC_URL, base of links */
    char *api_tokens;           /* CRIER_API_TOKENS, secret: scope:token,... */
    char *transport_email;      /* CRIER_TRANSPORT_EMAIL (or CRIER_TRANSPORT): sandbox|live */
    char *outbox_dir;           /* CRIER_OUTBOX_DIR */
    char *rules_dir;            /* CRIER_RULES_DIR */
    char *templates_dir;        /* CRIER_TEMPLATES_DIR */
    char *console_dir;          /* CRIER_CONSOLE_DIR: the console's pages and scripts */
    int console_session_s;      /* CRIER_CONSOLE_SESSION_S: a console login lasts this long */
    int rules_require_tests;    /* CRIER_RULES_REQUIRE_TESTS: a reload must pass rules/tests */
    int rules_time_ms;          /* CRIER_RULES_TIME_MS: wall-time budget of one rule call */
    int rules_instructions;     /* CRIER_RULES_INSTRUCTIONS: VM instructions of one rule call */
    int rules_deadline_ms;      /* CRIER_RULES_DEADLINE_MS: a decision's hard deadline */
    int rules_quarantine_after; /* CRIER_RULES_QUARANTINE_AFTER: budget overruns that quarantine */
    char *smtp_url;             /* CRIER_SMTP_URL */
    int smtp_tls_required;      /* CRIER_SMTP_TLS: required (1) | off (0) */
    char *smtp_username;        /* SMTP_USERNAME, secret, may be "" */
    char *smtp_password;        /* SMTP_PASSWORD, secret, may be "" */
    char *mail_from;            /* CRIER_MAIL_FROM, e.g. "Planiva <hello@planiva.example>" */
    char *dkim_key_file;        /* CRIER_DKIM_KEY_FILE: PEM key (contents secret), may be "" */
    char *dkim_selector;        /* CRIER_DKIM_SELECTOR, may be "" */
    char *dkim_domain;          /* CRIER_DKIM_DOMAIN, may be "": the domain of mail_from */
    char *unsubscribe_mailto;   /* CRIER_UNSUBSCRIBE_MAILTO: address of List-Unsubscribe's
                                   mailto: ("" = mail_from's) */
    char *encryption_key;       /* CRIER_ENCRYPTION_KEY, secret, base64 of 32 bytes, may be "" */
    char *encryption_keys;      /* CRIER_ENCRYPTION_KEYS, secret: id:base64,... current first */
    char *blind_index_key;      /* CRIER_BLIND_INDEX_KEY, secret, base64 of 32 bytes, may be "" */
    char *link_key;             /* CRIER_LINK_KEY, secret, base64 of 32 bytes, may be "" */
    int link_ttl_days;          /* CRIER_LINK_TTL_DAYS: how long a message's links work */
    int tracking;             /* CRIER_TRACKING: on (1) | off (0): email open and click tracking */
    char *tracking_off_types; /* CRIER_TRACKING_OFF_TYPES: message types never tracked, a,b,... */
    int tracking_machine_window_s; /* CRIER_TRACKING_MACHINE_WINDOW_S: hits this soon after
                                      sending are a machine's */
    char *twilio_auth_token;   /* TWILIO_AUTH_TOKEN, secret: verifies Twilio webhooks, may be "" */
    char *whatsapp_app_secret; /* WHATSAPP_APP_SECRET, secret: verifies Meta webhooks, may be "" */
    char
        *whatsapp_verify_token; /* WHATSAPP_VERIFY_TOKEN, secret: Meta's GET handshake, may be "" */
    char *physical_address;     /* CRIER_PHYSICAL_ADDRESS: CAN-SPAM footer */
    char *support_email;        /* CRIER_SUPPORT_EMAIL */
    char *brand_name;           /* CRIER_BRAND_NAME */
    char *log_level;            /* CRIER_LOG_LEVEL */
    int workers;                /* CRIER_WORKERS: delivery worker threads */
    int http_threads;           /* CRIER_HTTP_THREADS: libmicrohttpd thread pool */
    int http_per_ip_limit;      /* CRIER_HTTP_PER_IP_LIMIT: connections per client address */
    int http_request_timeout_s; /* CRIER_HTTP_REQUEST_TIMEOUT_S: a request arrives whole in */
    size_t max_body;            /* CRIER_MAX_BODY_BYTES */
    int lease_seconds;          /* CRIER_LEASE_SECONDS: how long a claim is held */
    int poll_ms;                /* CRIER_POLL_MS: queue poll when no NOTIFY arrives */
    int claim_batch;            /* CRIER_CLAIM_BATCH: rows claimed per worker round */
    int smtp_timeout_ms;        /* CRIER_SMTP_TIMEOUT_MS */
    int max_attempts;           /* CRIER_MAX_ATTEMPTS: a row rescued after this many fails */
    int sms_segment_budget;     /* CRIER_SMS_SEGMENT_BUDGET: segments an SMS template may cost */
    char *workflow_callback_url;    /* CRIER_WORKFLOW_CALLBACK_URL, may be "": callbacks wait */
    char *workflow_callback_secret; /* CRIER_WORKFLOW_CALLBACK_SECRET, secret, may be "" */
    int callback_max_attempts;      /* CRIER_CALLBACK_MAX_ATTEMPTS: then the callback fails */
    int callback_retry_seconds;     /* CRIER_CALLBACK_RETRY_SECONDS: fixed delay; 0 = schedule */
    int callback_timeout_ms;        /* CRIER_CALLBACK_TIMEOUT_MS: one POST to the workflow */
    char *callback_events;          /* CRIER_CALLBACK_EVENTS: "all" or a comma list of events */
    int retention_days;             /* CRIER_RETENTION_DAYS: the purge deletes what is older */
    int purge_interval_s;           /* CRIER_PURGE_INTERVAL_S: serve's purge period; 0 = none */
    int drain_s;                    /* CRIER_DRAIN_S: 503s before the listener closes */
    /* SMS (Twilio) and WhatsApp (Cloud API) delivery */
    char *transport_sms;            /* CRIER_TRANSPORT_SMS (or CRIER_TRANSPORT): sandbox|live */
    char *transport_whatsapp;       /* CRIER_TRANSPORT_WHATSAPP (or CRIER_TRANSPORT) */
    char *twilio_account_sid;       /* TWILIO_ACCOUNT_SID ("AC..."), may be "" */
    char *twilio_from_number;       /* TWILIO_FROM_NUMBER, E.164, may be "" */
    char *twilio_api_base;          /* TWILIO_API_BASE, scheme://host[:port] */
    char *whatsapp_phone_number_id; /* WHATSAPP_PHONE_NUMBER_ID, may be "" */
    char *whatsapp_access_token;    /* WHATSAPP_ACCESS_TOKEN, secret, may be "" */
    char *whatsapp_api_base;        /* WHATSAPP_API_BASE, scheme://host[:port] */
    char *whatsapp_api_version;     /* WHATSAPP_API_VERSION: the pinned Graph version, "v21.0" */
    int provider_timeout_ms;        /* CRIER_PROVIDER_TIMEOUT_MS: one Twilio or Meta request */
    int circuit_probe_ms;           /* CRIER_CIRCUIT_PROBE_MS: rest after an auth failure */
    /* Send rates per sender, shared through Redis by every process */
    cfg_rate_t rate_twilio;   /* CRIER_RATE_TWILIO: per from number */
    cfg_rate_t rate_smtp;     /* CRIER_RATE_SMTP: per SMTP host */
    cfg_rate_t rate_whatsapp; /* CRIER_RATE_WHATSAPP: per phone number id */
    /* What a sent message costs, in millionths of the currency (analytics):
     * CRIER_COST_EMAIL, CRIER_COST_SMS_SEGMENT, CRIER_COST_WHATSAPP, given
     * as decimals with up to 6 places; CRIER_COST_CURRENCY names it. */
    long long cost_email_micros, cost_sms_segment_micros, cost_whatsapp_micros;
    char *cost_currency;
} cfg_t;

/* Parses a rate as cfg_rate_t describes. Returns 0, or -1 when malformed. */
int cfg_rate_parse(const char *v, cfg_rate_t *out);

/* Fills c with defaults, then the file (if path is not NULL), then the
 * environment. On a bad value returns -1 and writes a message naming the key
 * (and file:line when it came from the file) into err. */
int cfg_load(cfg_t *c, const char *path, char *err, size_t errlen);
void cfg_free(cfg_t *c);
/* Registers every non-empty secret of c with the log's redactor. */
void cfg_register_secrets(const cfg_t *c);

/* Calls fn once per setting, in the order of the settings table, with its
 * environment name and its value as `crier config check` shows it: a
 * secret as "set" or "unset", the password of a URL as "***", never a
 * secret's text. */
typedef void (*cfg_each_fn)(void *cls, const char *env, const char *value, int secret);
void cfg_each(const cfg_t *c, cfg_each_fn fn, void *cls);

#endif
