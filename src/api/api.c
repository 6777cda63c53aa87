/* api: the route table and the handlers' context (see api.h). */
#include "api/api.h"

#include "api/action.h"
#include "api/analytics.h"
#include "api/clients.h"
#include "api/comm_detail.h"
#include "api/comms.h"
#include "api/console.h"
#include "api/health.h"
#include "api/metrics.h"
#include "api/prefpage.h"
#include "api/prefstats.h"
#include "api/privacy.h"
#include "api/review.h"
#include "api/session.h"
#include "api/rules.h"
#include "api/templates.h"
#include "api/track.h"
#include "api/unsub.h"
#include "api/webhooks.h"
#include "engine/intake.h"
#include "http/auth.h"
#include "http/stats.h"
#include "template/pages.h"

#include <stdlib.h>

_Static_assert(API_STAT_N <= HTTP_STATS_SLOTS, "every route's counters need a slot");

#define API_READ    (AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN)
#define API_WRITE   (AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_ADMIN)
#define API_OPERATE (AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN)

#define API_TWIML "text/xml; charset=utf-8"
#define API_TEXT  "text/plain; charset=utf-8"

/* Method, pattern, scopes of which one suffices (0: open), the body a POST
 * must have, the Content-Type of a 200 (NULL: JSON), counters, handler.
 * The first route in this order whose pattern and method match a request
 * serves it. */
static const route_t api_table[] = {
    {"GET", "/healthz", 0, ROUTE_BODY_NONE, NULL, API_STAT_HEALTHZ, api_healthz},
    {"GET", "/readyz", 0, ROUTE_BODY_NONE, NULL, API_STAT_READYZ, api_readyz},
    /* answered once the intake has committed it (http_suspend) */
    {"POST", "/v1/communications", API_WRITE, ROUTE_BODY_JSON, NULL, API_STAT_COMM_CREATE,
     api_comm_create},
    {"GET", "/v1/communications/{id}", API_READ, ROUTE_BODY_NONE, NULL, API_STAT_COMM_GET,
     api_comm_get},
    /* The review queue (docs/review.md): operators list what failed,
     * send it again as the rules decide now, or close it with a note. */
    {"GET", "/v1/communications", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_COMM_LIST,
     api_comm_list},
    {"GET", "/v1/communications/{id}/callbacks", API_OPERATE, ROUTE_BODY_NONE, NULL,
     API_STAT_COMM_CALLBACKS, api_comm_callbacks},
    {"GET", "/v1/communications/{id}/preview", API_OPERATE, ROUTE_BODY_NONE, NULL,
     API_STAT_COMM_PREVIEW, api_comm_preview},
    {"POST", "/v1/communications/{id}/retry", API_OPERATE, ROUTE_BODY_NONE, NULL,
     API_STAT_COMM_RETRY, api_comm_retry},
    {"POST", "/v1/communications/{id}/resolve", API_OPERATE, ROUTE_BODY_JSON, NULL,
     API_STAT_COMM_RESOLVE, api_comm_resolve},
    {"GET", "/v1/plans/{plan_id}/communications", API_READ, ROUTE_BODY_NONE, NULL,
     API_STAT_PLAN_LIST, api_plan_list},
    /* Clients: contact details are read by the people who answer for them
     * (operator, admin), and each read is audited; the workflow writes. */
    {"PUT", "/v1/clients/{client_id}", API_WRITE, ROUTE_BODY_JSON, NULL, API_STAT_CLIENT_PUT,
     api_client_put},
    {"GET", "/v1/clients/{client_id}", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_CLIENT_GET,
     api_client_get},
    {"GET", "/v1/clients/{client_id}/communications", API_READ, ROUTE_BODY_NONE, NULL,
     API_STAT_CLIENT_COMMS, api_client_comms},
    /* preferences: the support team changes them too; answered once the
     * confirmation to the client is accepted (http_suspend) */
    {"GET", "/v1/clients/{client_id}/preferences", API_READ, ROUTE_BODY_NONE, NULL,
     API_STAT_PREFS_GET, api_prefs_get},
    {"PUT", "/v1/clients/{client_id}/preferences", API_READ, ROUTE_BODY_JSON, NULL,
     API_STAT_PREFS_PUT, api_prefs_put},
    {"POST", "/api/crm/preferences", API_READ, ROUTE_BODY_JSON, NULL, API_STAT_PREFS_SEED,
     api_prefs_post_seed},
    /* A client's data subject rights (docs/privacy.md): admin only, audited. */
    {"GET", "/v1/clients/{client_id}/export", AUTH_SCOPE_ADMIN, ROUTE_BODY_NONE, NULL,
     API_STAT_CLIENT_EXPORT, api_client_export},
    {"DELETE", "/v1/clients/{client_id}", AUTH_SCOPE_ADMIN, ROUTE_BODY_NONE, NULL,
     API_STAT_CLIENT_ERASE, api_client_erase},
    {"GET", "/v1/rules", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_RULES_STATUS,
     api_rules_status},
    {"POST", "/v1/rules/dry-run", API_OPERATE, ROUTE_BODY_JSON, NULL, API_STAT_RULES_DRY_RUN,
     api_rules_dry_run},
    {"GET", "/v1/analytics/preferences", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_PREFSTATS,
     api_analytics_preferences},
    /* Analytics: figures over every client's messages, for the people
     * who run the service; counts only, no client's data. */
    {"GET", "/v1/analytics/summary", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_ANALYTICS_SUMMARY,
     api_analytics_summary},
    {"GET", "/v1/analytics/breakdown", API_OPERATE, ROUTE_BODY_NONE, NULL,
     API_STAT_ANALYTICS_BREAKDOWN, api_analytics_breakdown},
    {"GET", "/v1/analytics/report", API_OPERATE, ROUTE_BODY_NONE, "application/pdf",
     API_STAT_ANALYTICS_REPORT, api_analytics_report},
    {"GET", "/v1/templates", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_TEMPLATES,
     api_templates_status},
    /* open like the probes: scrapers carry no token, and the text holds counts only */
    {"GET", "/metrics", 0, ROUTE_BODY_NONE, "text/plain; version=0.0.4; charset=utf-8",
     API_STAT_METRICS, api_metrics},
    /* Webhooks carry no token: each proves its origin with the provider's
     * signature, checked by the handler. Providers post in their own
     * formats: Twilio form-encodes, and wants TwiML back. */
    {"POST", "/webhooks/twilio/status", 0, ROUTE_BODY_FORM, API_TWIML, API_STAT_TWILIO_STATUS,
     api_webhook_twilio_status},
    {"POST", "/webhooks/twilio/inbound", 0, ROUTE_BODY_FORM, API_TWIML, API_STAT_TWILIO_INBOUND,
     api_webhook_twilio_inbound},
    /* one resource, two methods: Meta's handshake is a GET, updates are POSTs */
    {"GET", "/webhooks/whatsapp", 0, ROUTE_BODY_NONE, API_TEXT, API_STAT_WHATSAPP,
     api_webhook_whatsapp_verify},
    {"POST", "/webhooks/whatsapp", 0, ROUTE_BODY_JSON, NULL, API_STAT_WHATSAPP,
     api_webhook_whatsapp_post},
    /* Email tracking: open like the links in a mail; each request proves
     * itself with its signed token. The pixel's segment is "<token>.gif". */
    {"GET", "/t/c/{token}", 0, ROUTE_BODY_NONE, NULL, API_STAT_TRACK_CLICK, api_track_click},
    {"GET", "/t/o/{token}", 0, ROUTE_BODY_NONE, "image/gif", API_STAT_TRACK_OPEN, api_track_open},
    /* A client's own links (docs/unsubscribe.md): no login, the signed
     * token in the path says whose. The one-click POST is what a mailbox
     * provider sends (RFC 8058: form-encoded or multipart, which the
     * handler tells apart, and any other body is its 400); the page and
     * its form answer HTML, errors too. */
    {"POST", "/u/{token}", 0, ROUTE_BODY_ANY, API_TEXT, API_STAT_UNSUB, api_unsub_post},
    {"GET", "/u/{token}", 0, ROUTE_BODY_NONE, PAGES_TYPE, API_STAT_PREFPAGE, api_prefpage_get},
    {"POST", "/u/{token}/preferences", 0, ROUTE_BODY_FORM, PAGES_TYPE, API_STAT_PREFPAGE_POST,
     api_prefpage_post},
    /* A message's action links (docs/tracking.md, Actions): open, the
     * signed token says which message and which answer; a page answers. */
    {"GET", "/a/{token}", 0, ROUTE_BODY_NONE, PAGES_TYPE, API_STAT_ACTION, api_action_get},
    /* The operator console (docs/console.md). Its pages check the session
     * themselves, to send a browser without one to the login form; what
     * they show comes from the API routes above, which take the session's
     * cookie as they take a token (api/session.h). */
    {"GET", "/console/login", 0, ROUTE_BODY_NONE, PAGES_TYPE, API_STAT_CONSOLE_LOGIN,
     api_console_login_get},
    {"POST", "/console/login", 0, ROUTE_BODY_FORM, PAGES_TYPE, API_STAT_CONSOLE_LOGIN,
     api_console_login},
    {"POST", "/console/logout", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_CONSOLE_LOGOUT,
     api_console_logout},
    {"GET", "/console/session", API_OPERATE, ROUTE_BODY_NONE, NULL, API_STAT_CONSOLE_SESSION,
     api_console_session},
    {"GET", "/console/assets/{name}", 0, ROUTE_BODY_NONE, NULL, API_STAT_CONSOLE_ASSET,
     api_console_asset},
    {"GET", "/console", 0, ROUTE_BODY_NONE, PAGES_TYPE, API_STAT_CONSOLE, api_console_page},
    {"GET", "/console/{page}", 0, ROUTE_BODY_NONE, PAGES_TYPE, API_STAT_CONSOLE, api_console_page},
};

const route_t *api_routes(size_t *n)
{
    *n = sizeof api_table / sizeof api_table[0];
    return api_table;
}

const char *api_stat_name(int slot)
{
    static const char *const names[API_STAT_N] = {
        [HTTP_STATS_UNROUTED] = "other",
        [API_STAT_HEALTHZ] = "/healthz",
        [API_STAT_READYZ] = "/readyz",
        [API_STAT_COMM_CREATE] = "POST /v1/communications",
        [API_STAT_COMM_GET] = "GET /v1/communications/{id}",
        [API_STAT_COMM_LIST] = "GET /v1/communications",
        [API_STAT_COMM_RETRY] = "POST /v1/communications/{id}/retry",
        [API_STAT_COMM_RESOLVE] = "POST /v1/communications/{id}/resolve",
        [API_STAT_PLAN_LIST] = "GET /v1/plans/{plan_id}/communications",
        [API_STAT_RULES_STATUS] = "GET /v1/rules",
        [API_STAT_RULES_DRY_RUN] = "POST /v1/rules/dry-run",
        [API_STAT_METRICS] = "/metrics",
        [API_STAT_TWILIO_STATUS] = "POST /webhooks/twilio/status",
        [API_STAT_TWILIO_INBOUND] = "POST /webhooks/twilio/inbound",
        [API_STAT_WHATSAPP] = "/webhooks/whatsapp",
        [API_STAT_CLIENT_PUT] = "PUT /v1/clients/{client_id}",
        [API_STAT_CLIENT_GET] = "GET /v1/clients/{client_id}",
        [API_STAT_CLIENT_COMMS] = "GET /v1/clients/{client_id}/communications",
        [API_STAT_PREFS_GET] = "GET /v1/clients/{client_id}/preferences",
        [API_STAT_PREFS_PUT] = "PUT /v1/clients/{client_id}/preferences",
        [API_STAT_PREFS_SEED] = "POST /api/crm/preferences",
        [API_STAT_CLIENT_EXPORT] = "GET /v1/clients/{client_id}/export",
        [API_STAT_CLIENT_ERASE] = "DELETE /v1/clients/{client_id}",
        [API_STAT_TEMPLATES] = "GET /v1/templates",
        [API_STAT_TRACK_CLICK] = "GET /t/c/{token}",
        [API_STAT_TRACK_OPEN] = "GET /t/o/{token}.gif",
        [API_STAT_UNSUB] = "POST /u/{token}",
        [API_STAT_PREFPAGE] = "GET /u/{token}",
        [API_STAT_PREFPAGE_POST] = "POST /u/{token}/preferences",
        [API_STAT_ACTION] = "GET /a/{token}",
        [API_STAT_CONSOLE] = "GET /console/{page}",
        [API_STAT_PREFSTATS] = "GET /v1/analytics/preferences",
        [API_STAT_COMM_CALLBACKS] = "GET /v1/communications/{id}/callbacks",
        [API_STAT_COMM_PREVIEW] = "GET /v1/communications/{id}/preview",
        [API_STAT_CONSOLE_ASSET] = "GET /console/assets/{name}",
        [API_STAT_CONSOLE_LOGIN] = "/console/login",
        [API_STAT_CONSOLE_LOGOUT] = "POST /console/logout",
        [API_STAT_CONSOLE_SESSION] = "GET /console/session",
        [API_STAT_ANALYTICS_SUMMARY] = "GET /v1/analytics/summary",
        [API_STAT_ANALYTICS_BREAKDOWN] = "GET /v1/analytics/breakdown",
        [API_STAT_ANALYTICS_REPORT] = "GET /v1/analytics/report",
    };
    return slot > 0 && slot < API_STAT_N ? names[slot] : names[HTTP_STATS_UNROUTED];
}

api_t *api_start(app_t *app)
{
    api_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->app = app;
    a->intake = intake_ref(app->intake);
    /* http_start parses the same tokens and says what is wrong with them */
    char err[256];
    a->auth = auth_new(app->cfg->api_tokens, err, sizeof err);
    return a;
}

void api_stop(api_t *a)
{
    if (!a)
        return;
    api_rules_cleanup();
    intake_unref(a->intake);
    auth_free(a->auth);
    free(a);
}
