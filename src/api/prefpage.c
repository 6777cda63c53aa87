/* prefpage: the preference page and its form (see prefpage.h). */
#include "api/prefpage.h"
#include "api/page.h"

#include "api/api.h"
#include "api/prefchange.h"
#include "api/unsub.h"
#include "api/dbreply.h"
#include "channel/ch.h"
#include "crypto/linktok.h"
#include "request/prefform.h"
#include "store/audit.h"
#include "store/clients.h"
#include "store/db.h"
#include "store/store.h"
#include "template/pages.h"
#include "util/buf.h"
#include "util/log.h"
#include "webhook/form.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Who changed the preferences, in the consent ledger: the client, on the
 * page their link opened (the source says which page). */
#define PREFPAGE_ACTOR "client"

static const char *prefpage_label(ch_id_t ch)
{
    return ch == CH_SMS ? "SMS" : ch == CH_WHATSAPP ? "WhatsApp" : "Email";
}

/* A page that says what went wrong; back (may be NULL) is a link to offer
 * with back_label. */
static void prefpage_problem(const api_t *api, http_answer_t *out, int status, const char *heading,
                             const char *message, const char *back, const char *back_label)
{
    cJSON *v = api_page_view(api);
    if (v && (!cJSON_AddStringToObject(v, "heading", heading) ||
              !cJSON_AddStringToObject(v, "message", message) ||
              (back && (!cJSON_AddStringToObject(v, "back", back) ||
                        !cJSON_AddStringToObject(v, "back_label", back_label))))) {
        cJSON_Delete(v);
        v = NULL;
    }
    api_page_answer(out, status, PAGES_PROBLEM, v);
}

static void prefpage_not_found(const api_t *api, http_answer_t *out)
{
    prefpage_problem(api, out, 404, "This link does not work",
                     "It may be incomplete, or too old. Please use the link at the foot of a "
                     "recent email from us.",
                     NULL, NULL);
}

static void prefpage_db_failed(const api_t *api, http_answer_t *out, int lost, const char *err)
{
    if (!lost)
        log_error("api", "preference_page_failed", "error", err, NULL);
    prefpage_problem(api, out, lost ? 503 : 500, "Please try again later",
                     "We could not open your preferences just now.", NULL, NULL);
}

/* The facts of client id as a decision sees them: 0, 1 when it is gone or
 * erased, -1 with *lost and err. */
static int prefpage_facts(const api_t *api, const char *id, store_client_facts_t *f, int *lost,
                          char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    *lost = 0;
    PGconn *conn = api_db_take(api, err, errlen);
    if (!conn) {
        *lost = 1;
        return -1;
    }
    const char *ids[] = {id};
    int rc = store_client_facts_load(conn, ids, 1, f, err, errlen);
    if (rc != 0)
        *lost = db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc != 0)
        return -1;
    return f->found && !f->erased ? 0 : 1;
}

/* The channels the page shows: those the client has an address or a
 * number for. */
static unsigned prefpage_shown(const store_client_facts_t *f)
{
    return (f->has_email ? CH_BIT(CH_EMAIL) : 0) |
           (f->has_phone ? CH_BIT(CH_SMS) | CH_BIT(CH_WHATSAPP) : 0);
}

/* The client's first preferred channel among those shown, else the first
 * shown. */
static int prefpage_preferred(const store_client_facts_t *f, unsigned shown)
{
    cJSON *p = f->preferred_channels_json ? cJSON_Parse(f->preferred_channels_json) : NULL;
    const cJSON *it;
    int best = -1;
    cJSON_ArrayForEach(it, p)
    {
        ch_id_t ch;
        if (cJSON_IsString(it) && ch_by_name(it->valuestring, &ch) == 0 && (shown & CH_BIT(ch))) {
            best = (int)ch;
            break;
        }
    }
    cJSON_Delete(p);
    for (int ch = 0; best < 0 && ch < CH_N; ch++)
        if (shown & CH_BIT(ch))
            best = ch;
    return best;
}

static const char *prefpage_status(const store_client_facts_t *f, ch_id_t ch, int *on)
{
    *on = 0;
    if (f->opt_out[ch])
        return "off: you asked for none";
    /* an address is consent enough for email; a phone needs an opt-in */
    if (ch != CH_EMAIL && !f->consent[ch])
        return ch == CH_SMS ? "off: you have not agreed to messages by SMS"
                            : "off: you have not agreed to messages by WhatsApp";
    *on = 1;
    return "on";
}

/* The view of the page for client f reached by token. NULL on OOM. */
static cJSON *prefpage_form_view(const api_t *api, const char *token, const store_client_facts_t *f,
                                 const char *client_id)
{
    linktok_t ft = {
        .kind = LINKTOK_FORM, .arg = (uint32_t)f->prefs_version, .day = linktok_day(time(NULL))};
    char form_token[LINKTOK_TEXT_MAX], action[LINKTOK_TEXT_MAX + 16];
    snprintf(ft.id, sizeof ft.id, "%s", client_id);
    if (linktok_make(api->app->keys.link, &ft, form_token) != 0)
        return NULL;
    snprintf(action, sizeof action, "%s/preferences", token);
    unsigned shown = prefpage_shown(f);
    int preferred = prefpage_preferred(f, shown);
    /* equal ends are no quiet hours; the times then offered are the
     * defaults, ready for the client who picks quiet hours */
    int none = strcmp(f->quiet_start, f->quiet_end) == 0;
    cJSON *v = api_page_view(api);
    cJSON *chans = v ? cJSON_AddArrayToObject(v, "channels") : NULL;
    int ok = chans && cJSON_AddStringToObject(v, "action", action) &&
             cJSON_AddStringToObject(v, "form_token", form_token) &&
             cJSON_AddStringToObject(v, "timezone", f->timezone ? f->timezone : "UTC") &&
             cJSON_AddBoolToObject(v, "quiet_none", none) &&
             cJSON_AddStringToObject(v, "quiet_start", none ? "22:00" : f->quiet_start) &&
             cJSON_AddStringToObject(v, "quiet_end", none ? "08:00" : f->quiet_end) &&
             cJSON_AddBoolToObject(v, "has_email", f->has_email != 0);
    for (int ch = 0; ok && ch < CH_N; ch++) {
        if (!(shown & CH_BIT(ch)))
            continue;
        int on;
        const char *status = prefpage_status(f, (ch_id_t)ch, &on);
        cJSON *c = cJSON_CreateObject();
        ok = c && cJSON_AddStringToObject(c, "name", ch_name((ch_id_t)ch)) &&
             cJSON_AddStringToObject(c, "label", prefpage_label((ch_id_t)ch)) &&
             cJSON_AddStringToObject(c, "status", status) && cJSON_AddBoolToObject(c, "on", on) &&
             cJSON_AddBoolToObject(c, "preferred", ch == preferred) &&
             cJSON_AddBoolToObject(c, "opted_out", f->opt_out[ch] != 0) &&
             cJSON_AddItemToArray(chans, c);
        if (!ok)
            cJSON_Delete(c);
    }
    if (!ok) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

/* The client of the page's link and its facts, into id and f (free f with
 * store_client_facts_free either way). 0; or -1 with the page that says
 * why (not found, or PostgreSQL unreachable) already in out. */
static int prefpage_load(const http_req_t *rq, char id[37], store_client_facts_t *f,
                         http_answer_t *out)
{
    const api_t *api = rq->ctx;
    linktok_t t;
    char err[512] = "";
    int lost = 0;
    memset(f, 0, sizeof *f);
    if (api_unsub_token(rq, &t) != 0) {
        prefpage_not_found(api, out);
        return -1;
    }
    int rc = api_unsub_client(rq, &t, id, &lost, err, sizeof err);
    if (rc == 0)
        rc = prefpage_facts(api, id, f, &lost, err, sizeof err);
    if (rc > 0)
        prefpage_not_found(api, out);
    else if (rc < 0)
        prefpage_db_failed(api, out, lost, err);
    return rc == 0 ? 0 : -1;
}

void api_prefpage_get(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[37];
    store_client_facts_t f;
    if (prefpage_load(rq, id, &f, out) == 0)
        api_page_answer(out, 200, PAGES_PREFERENCES,
                        prefpage_form_view(api, http_req_param(rq, "token"), &f, id));
    store_client_facts_free(&f, 1);
}

/* ----------------------------------------------------------- the form */

/* One line per thing that differs between the preferences before and after
 * (store_prefs_json), into the list changes. */
static int prefpage_changes(const char *before_json, const char *after_json, cJSON *changes)
{
    cJSON *b = cJSON_Parse(before_json), *a = cJSON_Parse(after_json);
    int rc = b && a ? 0 : -1;
    char line[128];
    const cJSON *pb =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "preferred_channels"), 0);
    const cJSON *pa =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "preferred_channels"), 0);
    ch_id_t ch;
    if (rc == 0 && cJSON_IsString(pa) && ch_by_name(pa->valuestring, &ch) == 0 &&
        (!cJSON_IsString(pb) || strcmp(pb->valuestring, pa->valuestring) != 0)) {
        snprintf(line, sizeof line, "Preferred channel: %s", prefpage_label(ch));
        rc = cJSON_AddItemToArray(changes, cJSON_CreateString(line)) ? 0 : -1;
    }
    const char *qsb =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "quiet_hours_start"));
    const char *qeb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "quiet_hours_end"));
    const char *qsa =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "quiet_hours_start"));
    const char *qea = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "quiet_hours_end"));
    int qdiff = (!qsb != !qsa) ||
                (qsb && qsa && (strcmp(qsb, qsa) != 0 || !qeb || !qea || strcmp(qeb, qea) != 0));
    if (rc == 0 && qdiff) {
        if (qsa && qea)
            snprintf(line, sizeof line, "Quiet hours: %.5s to %.5s", qsa, qea);
        else
            snprintf(line, sizeof line, "Quiet hours: none");
        rc = cJSON_AddItemToArray(changes, cJSON_CreateString(line)) ? 0 : -1;
    }
    for (int c = 0; rc == 0 && c < CH_N; c++) {
        char key[32];
        snprintf(key, sizeof key, "opt_out_%s", ch_name((ch_id_t)c));
        int was = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, key));
        int now = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, key));
        if (was == now)
            continue;
        snprintf(line, sizeof line, "Messages by %s: %s", prefpage_label((ch_id_t)c),
                 now ? "stopped" : "allowed again");
        rc = cJSON_AddItemToArray(changes, cJSON_CreateString(line)) ? 0 : -1;
    }
    cJSON_Delete(b);
    cJSON_Delete(a);
    return rc;
}

/* The saved page, waiting for the confirmation's intake. */
typedef struct prefpage_pending {
    cJSON *view; /* owned */
} prefpage_pending_t;

static void prefpage_confirmed(void *cls, char *confirmation, http_answer_t *out)
{
    prefpage_pending_t *p = cls;
    cJSON *v = p->view;
    if (v && !cJSON_AddBoolToObject(v, "confirmation_sent", confirmation != NULL)) {
        cJSON_Delete(v);
        v = NULL;
    }
    api_page_answer(out, 200, PAGES_SAVED, v);
    free(confirmation);
    free(p);
}

/* The view of the saved page for a change from before to after. NULL on
 * OOM. */
static cJSON *prefpage_saved_view(const api_t *api, const char *back, const prefform_t *form,
                                  int changed, const char *before, const char *after)
{
    const char *heading = !changed                  ? "Nothing to change"
                          : form->unsubscribe_email ? "You are unsubscribed from email"
                                                    : "Your preferences are saved";
    const char *message = !changed ? "Your preferences were already as you chose."
                          : form->unsubscribe_email
                              ? "We will send you no more email. Messages by other channels "
                                "follow your other choices."
                              : "From now on, your messages follow these choices:";
    cJSON *v = api_page_view(api);
    cJSON *changes = v ? cJSON_AddArrayToObject(v, "changes") : NULL;
    int ok = changes && cJSON_AddStringToObject(v, "heading", heading) &&
             cJSON_AddStringToObject(v, "message", message) &&
             cJSON_AddStringToObject(v, "back", back) &&
             (!changed || prefpage_changes(before, after, changes) == 0) &&
             cJSON_AddBoolToObject(v, "has_changes", cJSON_GetArraySize(changes) > 0);
    if (!ok) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

static void prefpage_stale(const api_t *api, http_answer_t *out, const char *back)
{
    prefpage_problem(api, out, 409, "This form is out of date",
                     "It was sent already, or your preferences changed since it was shown. "
                     "Nothing was changed: please reload the page and choose again.",
                     back, "Reload your preferences");
}

/* Whether the form's token text is good for client f (id): 0 with the
 * version it was made at, or the answer is set (403 for a token that is not
 * one of ours for this client, 409 for one that is out of date). */
static int prefpage_form_token(const api_t *api, const char *url_token, const char *text,
                               const char *id, const store_client_facts_t *f, uint32_t *version,
                               http_answer_t *out)
{
    char back[LINKTOK_TEXT_MAX + 8];
    snprintf(back, sizeof back, "../%s", url_token);
    linktok_t ft;
    if (!text || linktok_read(api->app->keys.link, text, strlen(text), LINKTOK_FORM, &ft) != 0 ||
        strcmp(ft.id, id) != 0) {
        /* forged, or another client's page: a cross-site post cannot have
         * this client's token, whoever sends it */
        prefpage_problem(api, out, 403, "This form cannot be used here",
                         "It was not made for this page. Nothing was changed.", back,
                         "Open your preferences");
        return -1;
    }
    if (linktok_expired(&ft, time(NULL), (uint32_t)api->app->cfg->link_ttl_days) ||
        ft.arg != (uint32_t)f->prefs_version) {
        prefpage_stale(api, out, back);
        return -1;
    }
    *version = ft.arg;
    return 0;
}

void api_prefpage_post(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    const char *token = http_req_param(rq, "token");
    char id[37], err[512] = "";
    int lost = 0, rc;
    store_client_facts_t f;
    if (prefpage_load(rq, id, &f, out) != 0) {
        store_client_facts_free(&f, 1);
        return;
    }
    /* the token first: a form that is not this client's is refused before
     * anything in it is looked at */
    form_pairs_t fp;
    char why[128];
    const char *ftext = NULL;
    if (form_parse(&fp, rq->body, rq->body_len, NULL, why, sizeof why) == 0)
        ftext = form_get(&fp, "form_token");
    uint32_t version = 0;
    rc = prefpage_form_token(api, token, ftext, id, &f, &version, out);
    form_free(&fp);
    if (rc != 0) {
        store_client_facts_free(&f, 1);
        return;
    }
    const prefform_ctx_t fctx = {.shown = prefpage_shown(&f),
                                 .preferred_json = f.preferred_channels_json};
    prefform_t form;
    req_error_t e;
    rc = prefform_parse(rq->body, rq->body_len, &fctx, &form, &e);
    store_client_facts_free(&f, 1);
    char back[LINKTOK_TEXT_MAX + 8];
    snprintf(back, sizeof back, "../%s", token); /* from /u/{token}/preferences */
    if (rc != 0) {
        prefpage_problem(api, out, 400, "That did not work", e.message, back,
                         "Back to your preferences");
        return;
    }
    /* the version again, under the row lock: of two posts of one form, or a
     * post beside any other change, only the first applies */
    const api_prefs_change_t c = {
        .client_id = id,
        .change = &form.change,
        .source = STORE_SOURCE_PREFERENCE_PAGE,
        .actor = PREFPAGE_ACTOR,
        .check_version = 1,
        .version = version,
    };
    char *before = NULL, *after = NULL;
    int changed = 0;
    rc = api_prefs_apply(api, &c, &changed, &before, &after, &lost, err, sizeof err);
    if (rc == API_PREFS_STALE) {
        prefpage_stale(api, out, back);
        return;
    }
    if (rc > 0) {
        prefpage_not_found(api, out);
        return;
    }
    if (rc < 0) {
        prefpage_db_failed(api, out, lost, err);
        return;
    }
    cJSON *view = prefpage_saved_view(api, back, &form, changed, before, after);
    free(before);
    prefpage_pending_t *p = changed && view ? calloc(1, sizeof *p) : NULL;
    if (p) {
        p->view = view;
        if (api_prefs_confirm(rq, id, after, PREFPAGE_ACTOR, prefpage_confirmed, p)) {
            free(after);
            return; /* answered with the confirmation */
        }
        free(p);
    }
    free(after);
    if (view && !cJSON_AddBoolToObject(view, "confirmation_sent", 0)) {
        cJSON_Delete(view);
        view = NULL;
    }
    api_page_answer(out, 200, PAGES_SAVED, view);
}
