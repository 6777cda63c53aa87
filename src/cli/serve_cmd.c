/* crier serve: the API and the delivery workers in one process. */
#include "api/api.h"
#include "api/session.h"
#include "app.h"
#include "circuit/circuit.h"
#include "cli/commands.h"
#include "driver/email_track.h"
#include "engine/callbacks.h"
#include "engine/delivery.h"
#include "engine/intake.h"
#include "engine/purge_job.h"
#include "http/server.h"
#include "policy/runtime.h"
#include "prefcache/prefcache.h"
#include "report/report.h"
#include "store/db.h"
#include "store/rotate.h"
#include "transport/transport.h"
#include "transport/tx_pool.h"
#include "util/log.h"
#include "util/sdnotify.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* SMTP sessions open at most: the connections the one SMTP loop allowed
 * before (libcurl's default per host in the transport), so a mail server's
 * per-client connection limit sees no more than it did. */
#define SERVE_SMTP_SESSIONS 8

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: crier serve [--config FILE]\n"
               "Runs the HTTP API, the delivery workers and the daily retention purge\n"
               "(CRIER_PURGE_INTERVAL_S, see crier purge --help) until SIGTERM or SIGINT.\n"
               "SIGHUP reloads the rules and the templates (each also reloads by itself\n"
               "when its directory changes).\n"
               "Settings come from the environment (CRIER_*) and the optional file;\n"
               "see config/crier.conf.example.\n");
}

/* A wrong key, a key left out of the list while values are still under
 * it, or a blind index key that no longer matches is caught here rather
 * than by the first request that needs it (or, for the index, never: a
 * lookup would silently find no one). A database that cannot be reached
 * now is not a key problem: serve starts and reports it unready as usual. */
static int serve_check_keys(app_t *app, cfg_t *cfg, char *err, size_t errlen)
{
    PGconn *conn = db_connect(cfg->database_url, err, errlen);
    if (!conn) {
        log_warn("serve", "key_check_skipped", "reason", "database unavailable", NULL);
        return 0;
    }
    int rc = rotate_check(conn, &app->keys, err, errlen);
    PQfinish(conn);
    if (rc == 1)
        log_warn("serve", "key_check_skipped", "reason", err, NULL);
    else if (rc > 0)
        log_warn("serve", "stored_values_unreadable", "detail", err, NULL);
    return rc < 0 ? -1 : 0;
}

/* The DKIM key is loaded once, before anything is sent: a key that cannot
 * sign stops start-up rather than send mail receivers would reject. Without
 * one, mail goes unsigned, which is said once here. */
static int serve_dkim(app_t *app, const cfg_t *cfg, char *err, size_t errlen)
{
    int rc = dkim_cmd_signer(cfg, &app->dkim, err, errlen);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        log_warn("serve", "dkim_off", "reason",
                 "CRIER_DKIM_KEY_FILE is not set: email is sent without a DKIM signature", NULL);
        return 0;
    }
    char bits[16];
    snprintf(bits, sizeof bits, "%d", dkim_signer_bits(app->dkim));
    log_info("serve", "dkim_on", "algorithm", dkim_alg_name(dkim_signer_alg(app->dkim)), "bits",
             bits, "selector", dkim_signer_selector(app->dkim), "domain",
             dkim_signer_domain(app->dkim), NULL);
    return 0;
}

/* Everything serve needs before it may accept a request; a problem here
 * stops start-up with a message naming the setting. */
static int serve_prepare(app_t *app, cfg_t *cfg, char *err, size_t errlen)
{
    if (!cfg->api_tokens[0]) {
        snprintf(err, errlen, "CRIER_API_TOKENS is not set: give at least one scope:token");
        return -1;
    }
    int keys = keys_from_cfg(cfg, &app->keys, err, errlen);
    if (keys > 0)
        snprintf(err, errlen,
                 "CRIER_ENCRYPTION_KEY is not set: give 32 random bytes in base64 "
                 "(e.g. openssl rand -base64 32), or CRIER_ENCRYPTION_KEYS");
    if (keys != 0 || serve_check_keys(app, cfg, err, errlen) != 0)
        return -1;
    if (email_track_check(cfg, err, errlen) != 0)
        return -1;
    /* before the first connection: every session carries the setting */
    char events[256];
    if (cb_events_setting(cfg->callback_events, cfg->workflow_callback_url[0] != '\0', events,
                          sizeof events, err, errlen) != 0)
        return -1;
    if (db_set_callback_events(events) != 0) {
        snprintf(err, errlen, "CRIER_CALLBACK_EVENTS: too long");
        return -1;
    }
    if (serve_dkim(app, cfg, err, errlen) != 0)
        return -1;
    char why[768];
    /* The first set is checked as every reload is (`crier templates
     * check`); with nothing to fall back on, a failure stops start-up. */
    app->tpl_opts = (tpl_check_opts_t){.site = {.brand_name = cfg->brand_name,
                                                .support_email = cfg->support_email,
                                                .physical_address = cfg->physical_address,
                                                .public_url = cfg->public_url},
                                       .sms_segment_budget = cfg->sms_segment_budget};
    app->templates = tpl_live_start(cfg->templates_dir, &app->tpl_opts, 1, why, sizeof why);
    if (!app->templates) {
        snprintf(err, errlen, "CRIER_TEMPLATES_DIR %s: %s", cfg->templates_dir, why);
        return -1;
    }
    /* Rules that fail to load are reported, not fatal: the built-in policy
     * decides until a working set is saved. */
    prt_opts_t ro = {
        .require_tests = cfg->rules_require_tests,
        .limits = {.time_ms = (unsigned)cfg->rules_time_ms,
                   .instructions = (unsigned long long)cfg->rules_instructions},
        .deadline_ms = (unsigned)cfg->rules_deadline_ms,
        .quarantine_after = cfg->rules_quarantine_after,
    };
    app->rules = prt_start(cfg->rules_dir, &ro, why, sizeof why);
    if (!app->rules) {
        snprintf(err, errlen, "CRIER_RULES_DIR %s: %s", cfg->rules_dir, why);
        return -1;
    }
    app->pool = db_pool_new(cfg->database_url, cfg->http_threads + 2);
    if (!app->pool) {
        snprintf(err, errlen, "out of memory creating the database pool");
        return -1;
    }
    return 0;
}

/* The drain window after SIGTERM: the listener still answers, /readyz says
 * "stopping" and intake 503, so a load balancer takes the server out before
 * its connections are refused. It lasts drain_s seconds; a second SIGTERM or
 * SIGINT ends it at once (the operator is in a hurry); SIGHUP is ignored. The
 * watchdog keeps hearing from this thread meanwhile. */
static void serve_drain_window(const sigset_t *set, int drain_s)
{
    if (drain_s <= 0)
        return;
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += drain_s;
    long alive_ms = sdnotify_alive_every_ms();
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms =
            (long)(end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
        if (left_ms <= 0)
            return;
        long step = alive_ms > 0 && alive_ms < left_ms ? alive_ms : left_ms;
        struct timespec wait = {step / 1000, (step % 1000) * 1000000L};
        int sig = sigtimedwait(set, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT)
            return;
        if (alive_ms > 0)
            sdnotify_alive();
    }
}

int cmd_serve(int argc, char **argv, cfg_t *cfg)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage(stdout);
            return 0;
        }
        fprintf(stderr, "crier serve: unknown argument \"%s\"\n", argv[i]);
        serve_usage(stderr);
        return 2;
    }

    /* Signals are taken by sigwait in this thread only: block them before any
     * thread starts so every thread inherits the mask. SIGPIPE is ignored
     * because a peer closing a socket is an error to handle, not to die of. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "crier serve: cannot initialise libcurl\n");
        return 1;
    }
    app_t app;
    memset(&app, 0, sizeof app);
    app.cfg = cfg;
    atomic_init(&app.db_ready, 0);
    atomic_init(&app.stopping, 0);

    char err[1024];
    int code = 0;
    int http_stopped = 0; /* 1 once no handler can run any more */
    api_t *api = NULL;
    http_server_t *http = NULL;
    delivery_t *delivery = NULL;
    cb_sender_t *callbacks = NULL;
    purge_job_t *purge = NULL;
    if (serve_prepare(&app, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "crier serve: %s\n", err);
        code = 2;
        goto out;
    }
    app.intake = intake_start(&app, err, sizeof err);
    if (!app.intake) {
        fprintf(stderr, "crier serve: intake: %s\n", err);
        code = 1;
        goto out;
    }
    /* libcurl multi loops for every provider call; the sandbox needs none.
     * SMTP has loops of its own: libcurl waits for the reply to the end of
     * DATA without yielding, and a slow mail server must not hold up the
     * SMS and WhatsApp sends that share a loop with it. */
    if (strcmp(cfg->transport_sms, "live") == 0 || strcmp(cfg->transport_whatsapp, "live") == 0) {
        /* Every worker puts its whole batch on the wire at once, and a send
         * queued behind the per-host connection cap spends its timeout
         * waiting: allow one connection per send in flight. */
        long in_flight = (long)cfg->workers * cfg->claim_batch;
        if (in_flight < 8)
            in_flight = 8;
        if (in_flight > 256)
            in_flight = 256;
        tx_limits_t lim = {
            .max_in_flight = 0,
            .max_host_conns = in_flight,
            .max_total_conns = 2 * in_flight,
            .body_cap = 0,
        };
        app.tx = tx_new(&lim);
        if (!app.tx) {
            fprintf(stderr, "crier serve: cannot start the HTTP transport\n");
            code = 1;
            goto out;
        }
    }
    if (strcmp(cfg->transport_email, "live") == 0) {
        /* One loop per SMTP session, so that the waits for the end of
         * DATA overlap: as many sessions as sends can be in flight, up to
         * SERVE_SMTP_SESSIONS (the one loop of before allowed as many
         * connections, but served them one reply at a time). */
        int sessions = cfg->workers * cfg->claim_batch;
        if (sessions > SERVE_SMTP_SESSIONS)
            sessions = SERVE_SMTP_SESSIONS;
        if (sessions < 1)
            sessions = 1;
        app.tx_mail = tx_pool_new(sessions, NULL);
        if (!app.tx_mail) {
            fprintf(stderr, "crier serve: cannot start the SMTP transport\n");
            code = 1;
            goto out;
        }
    }
    app.prefs = prefcache_new(cfg->redis_url, cfg->redis_timeout_ms, err, sizeof err);
    if (!app.prefs) {
        fprintf(stderr, "crier serve: CRIER_REDIS_URL %s\n", err);
        code = 2;
        goto out;
    }
    app.circuit = circ_new(cfg->circuit_probe_ms);
    if (!app.circuit) {
        fprintf(stderr, "crier serve: out of memory\n");
        code = 1;
        goto out;
    }
    delivery = delivery_start(&app, err, sizeof err);
    if (!delivery) {
        fprintf(stderr, "crier serve: delivery: %s\n", err);
        code = 1;
        goto out;
    }
    callbacks = cb_start(&app, err, sizeof err);
    if (!callbacks) {
        fprintf(stderr, "crier serve: callbacks: %s\n", err);
        code = 1;
        goto out;
    }
    purge = purge_job_start(&app, err, sizeof err);
    if (!purge) {
        fprintf(stderr, "crier serve: purge: %s\n", err);
        code = 1;
        goto out;
    }
    api = api_start(&app);
    if (!api) {
        fprintf(stderr, "crier serve: out of memory\n");
        code = 1;
        goto out;
    }
    size_t n_routes = 0;
    const route_t *routes = api_routes(&n_routes);
    http = http_start(cfg, routes, n_routes, api, api_sessions(), err, sizeof err);
    if (!http) {
        fprintf(stderr, "crier serve: %s\n", err);
        code = 1;
        goto out;
    }
    char workers[16];
    snprintf(workers, sizeof workers, "%d", cfg->workers);
    log_info("serve", "started", "listen", cfg->listen, "transport_email", cfg->transport_email,
             "transport_sms", cfg->transport_sms, "transport_whatsapp", cfg->transport_whatsapp,
             "workers", workers, "version", CRIER_VERSION, NULL);

    sdnotify_ready("serving");
    long alive_ms = sdnotify_alive_every_ms();
    for (;;) {
        int sig = 0;
        if (alive_ms > 0) {
            /* the watchdog hears from this loop, which a stuck process
             * does not reach */
            struct timespec wait = {alive_ms / 1000, (alive_ms % 1000) * 1000000L};
            sig = sigtimedwait(&set, NULL, &wait);
            if (sig < 0) {
                sdnotify_alive();
                continue;
            }
        } else if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            log_info("serve", "sighup", "action", "reloading rules and templates", NULL);
            prt_reload(app.rules);
            tpl_live_reload(app.templates);
            continue;
        }
        log_info("serve", "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
        break;
    }
    atomic_store(&app.stopping, 1);
    sdnotify_stopping("draining: finishing the messages in flight");
    serve_drain_window(&set, cfg->drain_s);

out:
    /* Order matters: the server stops accepting and waits until the intake
     * has answered every request it holds (they are suspended connections,
     * which libmicrohttpd cannot stop with); then no handler runs and what
     * they kept goes (unless the server had to be left running); then the
     * intake thread ends; a purge ends after its batch; delivery lets
     * in-flight sends finish and records them. */
    http_stopped = http_stop(http) == 0;
    if (http_stopped)
        api_stop(api);
    if (app.intake)
        intake_stop(app.intake);
    cb_stop(callbacks);
    purge_job_stop(purge);
    delivery_stop(delivery);
    tx_free(app.tx); /* after the workers that wait on it */
    tx_pool_free(app.tx_mail);
    dkim_signer_free(app.dkim); /* after the workers that sign with it */
    circ_free(app.circuit);
    prefcache_free(app.prefs);
    prt_stop(app.rules); /* after every thread that decides has stopped */
    db_pool_free(app.pool);
    tpl_live_stop(app.templates); /* after every thread that renders has stopped */
    cry_keys_wipe(&app.keys);     /* after every thread that encrypts has stopped */
    curl_global_cleanup();
    if (http_stopped)
        report_shutdown(); /* no handler can be drawing a report any more */
    if (code == 0)
        log_info("serve", "stopped", NULL);
    return code;
}
