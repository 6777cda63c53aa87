/* api: crier's HTTP API as the server serves it — the table of its routes
 * and the context every handler gets with a request (http_req_t.ctx).
 *
 * The server (src/http/) is handed the table and the context at start and
 * knows neither; what must be released once no handler runs any more is
 * released here, by api_stop. */
#ifndef CRIER_API_H
#define CRIER_API_H

#include "app.h"
#include "http/auth.h"
#include "http/route.h"

#include <stddef.h>

/* What the handlers share: rq->ctx of every request. */
typedef struct api {
    app_t *app;       /* borrowed */
    intake_t *intake; /* a reference of its own: valid even after intake_stop */
    auth_t *auth;     /* owned: the tokens, for a console login; NULL when malformed */
} api_t;

/* The counters slots of the routes (http/stats.h); slot 0 counts the
 * requests no route matched. */
enum {
    API_STAT_HEALTHZ = 1,
    API_STAT_READYZ,
    API_STAT_COMM_CREATE,
    API_STAT_COMM_GET,
    API_STAT_PLAN_LIST,
    API_STAT_RULES_STATUS,
    API_STAT_RULES_DRY_RUN,
    API_STAT_METRICS,
    API_STAT_TWILIO_STATUS,
    API_STAT_TWILIO_INBOUND,
    API_STAT_WHATSAPP,
    API_STAT_CLIENT_PUT,
    API_STAT_CLIENT_GET,
    API_STAT_CLIENT_COMMS,
    API_STAT_PREFS_GET,
    API_STAT_PREFS_PUT,
    API_STAT_PREFS_SEED,
    API_STAT_CLIENT_EXPORT,
    API_STAT_CLIENT_ERASE,
    API_STAT_TEMPLATES,
    API_STAT_TRACK_CLICK,
    API_STAT_TRACK_OPEN,
    API_STAT_UNSUB,
    API_STAT_PREFPAGE,
    API_STAT_PREFPAGE_POST,
    API_STAT_COMM_LIST,
    API_STAT_COMM_RETRY,
    API_STAT_COMM_RESOLVE,
    API_STAT_ACTION,
    API_STAT_CONSOLE,
    API_STAT_CONSOLE_ASSET,
    API_STAT_CONSOLE_LOGIN,
    API_STAT_CONSOLE_LOGOUT,
    API_STAT_CONSOLE_SESSION,
    API_STAT_PREFSTATS,
    API_STAT_COMM_CALLBACKS,
    API_STAT_COMM_PREVIEW,
    API_STAT_ANALYTICS_SUMMARY,
    API_STAT_ANALYTICS_BREAKDOWN,
    API_STAT_ANALYTICS_REPORT,
    API_STAT_N,
};

/* The context of app's API (app must outlive it), or NULL when out of
 * memory. */
api_t *api_start(app_t *app);
/* Releases what the handlers kept (the dry-run's rules states, the intake
 * reference) and frees a (NULL is fine). Call once no handler can run any
 * more (http_stop returned 0) and before the rules runtime is stopped. */
void api_stop(api_t *a);

/* The routes, to hand to http_start with an api_t as their context. */
const route_t *api_routes(size_t *n);
/* The route label of a counters slot in the metrics ("other" for slot 0
 * and anything unknown). */
const char *api_stat_name(int slot);

#endif
