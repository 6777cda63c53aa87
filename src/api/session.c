#include "api/session.h"

#include "api/api.h"
#include "api/console.h"
#include "api/dbreply.h"
#include "crypto/crypto.h"
#include "http/cookie.h"
#include "store/db.h"
#include "store/sessions.h"
#include "util/log.h"
#include "webhook/form.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_ID_BYTES 32
#define SESSION_ID_HEX   (2 * SESSION_ID_BYTES)
#define SESSION_CSRF_HEX 64

static auth_result_t session_check(void *ctx, const char *value, const char *csrf, int unsafe,
                                   int need, char *actor, size_t actorlen);

static const http_sessions_t session_hooks = {API_SESSION_COOKIE, session_check};

const http_sessions_t *api_sessions(void)
{
    return &session_hooks;
}

/* 1 when value is a session id as crier makes them: 64 lower-case hex. */
static int session_id_ok(const char *value)
{
    if (strlen(value) != SESSION_ID_HEX)
        return 0;
    for (const char *p = value; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* The session's CSRF token: HMAC-SHA256 of its id under the index key
 * (domain "console csrf"), so it is never stored and only crier makes it. */
static int session_csrf(const api_t *api, const char *id, char out[SESSION_CSRF_HEX + 1])
{
    return cry_blind_index(&api->app->keys, "console csrf", id, out);
}

/* Looks the session up: AUTH_OK with *scopes and actor, AUTH_UNAUTHORIZED
 * when there is none or the database cannot say (a login cannot be taken
 * on trust; the page's next request tries again). */
static auth_result_t session_find(const api_t *api, const char *id, int *scopes, char *actor,
                                  size_t actorlen)
{
    if (!session_id_ok(id))
        return AUTH_UNAUTHORIZED;
    char hash[65], err[256] = "";
    cry_sha256_hex(id, strlen(id), hash);
    PGconn *conn = api_db_take(api, err, sizeof err);
    if (!conn)
        return AUTH_UNAUTHORIZED;
    int rc = store_session_find(conn, hash, scopes, actor, actorlen, err, sizeof err);
    db_pool_put(api->app->pool, conn);
    if (rc < 0)
        log_warn("api", "session_lookup_failed", "error", err, NULL);
    return rc == 0 ? AUTH_OK : AUTH_UNAUTHORIZED;
}

static auth_result_t session_check(void *ctx, const char *value, const char *csrf, int unsafe,
                                   int need, char *actor, size_t actorlen)
{
    const api_t *api = ctx;
    int scopes = 0;
    auth_result_t ar = session_find(api, value, &scopes, actor, actorlen);
    if (ar != AUTH_OK)
        return ar;
    if (!(scopes & need))
        return AUTH_FORBIDDEN;
    if (unsafe) {
        char want[SESSION_CSRF_HEX + 1];
        if (!csrf || session_csrf(api, value, want) != 0 || !cry_str_equal(csrf, want))
            return AUTH_FORBIDDEN;
    }
    return AUTH_OK;
}

/* The cookie's value of rq, or "" when it has none of ours. */
static void session_cookie(const http_req_t *rq, char out[SESSION_ID_HEX + 1])
{
    if (http_cookie_get(http_req_header(rq, "Cookie"), API_SESSION_COOKIE, out,
                        SESSION_ID_HEX + 1) != 0 ||
        !session_id_ok(out))
        out[0] = '\0';
}

auth_result_t api_session_of(const http_req_t *rq, int need, char *actor, size_t actorlen)
{
    char id[SESSION_ID_HEX + 1];
    session_cookie(rq, id);
    int scopes = 0;
    auth_result_t ar = session_find(rq->ctx, id, &scopes, actor, actorlen);
    if (ar == AUTH_OK && !(scopes & need))
        return AUTH_FORBIDDEN;
    return ar;
}

/* The Set-Cookie value of id (NULL: the cookie cleared). Owned by the caller. */
static char *session_set_cookie(const api_t *api, const char *id)
{
    const char *pub = api->app->cfg->public_url;
    int secure = pub && strncmp(pub, "https://", 8) == 0;
    char buf[256];
    if (id)
        snprintf(buf, sizeof buf, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s",
                 API_SESSION_COOKIE, id, api->app->cfg->console_session_s,
                 secure ? "; Secure" : "");
    else
        snprintf(buf, sizeof buf, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
                 API_SESSION_COOKIE, secure ? "; Secure" : "");
    return strdup(buf);
}

/* The scope a token gives a console session: admin, operator, or 0 (an
 * unknown token) or -1 (a workflow token, which runs no console). */
static int session_token_scope(const api_t *api, const char *token, const char **label)
{
    char header[AUTH_TOKEN_MAX + 8];
    if (strlen(token) > AUTH_TOKEN_MAX)
        return 0;
    snprintf(header, sizeof header, "Bearer %s", token);
    auth_result_t ar = auth_check_as(api->auth, header, AUTH_SCOPE_ADMIN, label);
    if (ar == AUTH_OK)
        return AUTH_SCOPE_ADMIN;
    if (ar == AUTH_UNAUTHORIZED)
        return 0;
    ar = auth_check_as(api->auth, header, AUTH_SCOPE_OPERATOR, label);
    return ar == AUTH_OK ? AUTH_SCOPE_OPERATOR : -1;
}

void api_console_login(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    form_pairs_t form;
    char err[256] = "";
    if (form_parse(&form, rq->body, rq->body_len, NULL, err, sizeof err) != 0) {
        form_free(&form);
        api_console_login_page(rq, out, 400, "The form could not be read. Try again.");
        return;
    }
    const char *token = form_get(&form, "token");
    const char *label = "";
    int scope = token && api->auth ? session_token_scope(api, token, &label) : 0;
    form_free(&form);
    if (scope == 0) {
        api_console_login_page(rq, out, 401, "That token is not valid.");
        return;
    }
    if (scope < 0) {
        api_console_login_page(rq, out, 403,
                               "That token is the workflow's: the console needs an operator or "
                               "admin token.");
        return;
    }
    unsigned char raw[SESSION_ID_BYTES];
    char id[SESSION_ID_HEX + 1], hash[65];
    if (cry_random(raw, sizeof raw) != 0) {
        http_answer_error(out, 500, "internal_error", "no random bytes");
        return;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    cry_sha256_hex(id, SESSION_ID_HEX, hash);
    PGconn *conn = api_db_conn(rq, out, "console_login_failed");
    if (!conn)
        return;
    int rc = store_session_create(conn, hash, scope, label, api->app->cfg->console_session_s, err,
                                  sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc != 0) {
        api_db_failed(out, lost, "console_login_failed", err);
        return;
    }
    log_info("api", "console_login", "actor", label, "scope",
             scope == AUTH_SCOPE_ADMIN ? "admin" : "operator", NULL);
    http_answer_redirect(out, 303, "/console");
    out->set_cookie = session_set_cookie(api, id);
}

void api_console_logout(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[SESSION_ID_HEX + 1], hash[65], err[256] = "";
    session_cookie(rq, id);
    if (id[0]) {
        cry_sha256_hex(id, strlen(id), hash);
        PGconn *conn = api_db_conn(rq, out, "console_logout_failed");
        if (!conn)
            return;
        int rc = store_session_delete(conn, hash, err, sizeof err);
        int lost = rc < 0 && db_conn_lost(conn);
        db_pool_put(api->app->pool, conn);
        if (rc != 0) {
            api_db_failed(out, lost, "console_logout_failed", err);
            return;
        }
    }
    log_info("api", "console_logout", "actor", rq->actor, NULL);
    http_answer_json(out, 200, strdup("{\"logged_out\":true}"));
    out->set_cookie = session_set_cookie(api, NULL);
}

void api_console_session(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    char id[SESSION_ID_HEX + 1], csrf[SESSION_CSRF_HEX + 1], actor[AUTH_LABEL_MAX];
    session_cookie(rq, id);
    int scopes = 0;
    /* a bearer token reaches this route too, and has no session to show */
    if (!id[0] || session_find(api, id, &scopes, actor, sizeof actor) != AUTH_OK ||
        session_csrf(api, id, csrf) != 0) {
        http_answer_error(out, 404, "not_found", "this request has no console session");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    char *json = NULL;
    if (o && cJSON_AddStringToObject(o, "actor", actor) &&
        cJSON_AddStringToObject(o, "scope", scopes & AUTH_SCOPE_ADMIN ? "admin" : "operator") &&
        cJSON_AddStringToObject(o, "csrf", csrf))
        json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    http_answer_json(out, 200, json);
}
