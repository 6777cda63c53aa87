#include "api/rules.h"

#include "api/api.h"
#include "api/refuse.h"
#include "policy/dryrun.h"
#include "policy/runtime.h"
#include "request/request.h"
#include "util/buf.h"
#include "util/timefmt.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_STATUS_MAX   (8 * 1024) /* the status holds a path and one error */
#define RULES_DEFAULT_BODY (1024 * 1024)
/* The request sits one level inside the dry-run body: one more level here
 * leaves it exactly the nesting POST /v1/communications allows. */
#define RULES_MAX_DEPTH (REQ_MAX_DEPTH + 1)

/* Dry-runs decide on rules locals of their own, kept in a small pool so a
 * dry-run answers with the published set even after the files on disk
 * changed (a new local loads what is on disk). The lock guards only taking
 * a local from the pool and giving it back, never a decision: dry-runs
 * share no lock with the engine's decisions or with each other, and run
 * under the same hard deadline. */
#define RULES_POOL 4
static pthread_mutex_t rules_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static prt_local_t *rules_pool[RULES_POOL]; /* owned; guarded by rules_pool_mu */
static int rules_pool_n;                    /* guarded by rules_pool_mu */
static prt_t *rules_pool_of;                /* the runtime the pool's locals belong to */

static prt_local_t *rules_pool_take(prt_t *p)
{
    prt_local_t *l = NULL;
    pthread_mutex_lock(&rules_pool_mu);
    if (rules_pool_of == p && rules_pool_n > 0)
        l = rules_pool[--rules_pool_n];
    pthread_mutex_unlock(&rules_pool_mu);
    return l ? l : prt_local_new(p);
}

static void rules_pool_give(prt_t *p, prt_local_t *l)
{
    prt_local_t *drop[RULES_POOL + 1];
    int n = 0;
    pthread_mutex_lock(&rules_pool_mu);
    if (rules_pool_of != p) {
        /* another runtime than the pool's: start over */
        while (rules_pool_n > 0)
            drop[n++] = rules_pool[--rules_pool_n];
        rules_pool_of = p;
    }
    if (rules_pool_n < RULES_POOL)
        rules_pool[rules_pool_n++] = l;
    else
        drop[n++] = l;
    pthread_mutex_unlock(&rules_pool_mu);
    while (n > 0)
        prt_local_free(drop[--n]); /* outside the lock: it joins a thread */
}
static void rules_unavailable(http_answer_t *out)
{
    http_answer_error(out, 503, "rules_unavailable", "the rules runtime is not running");
}

void api_rules_status(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    prt_t *p = api->app->rules;
    if (!p) {
        rules_unavailable(out);
        return;
    }
    buf_t b;
    buf_init(&b, RULES_STATUS_MAX);
    if (prt_status_json(p, &b) != 0) {
        buf_free(&b);
        http_answer_error(out, 500, "internal_error", "the rules status could not be built");
        return;
    }
    http_answer_json(out, 200, buf_detach(&b));
}

/* The checks req_parse makes on raw text before cJSON sees it, made on the
 * whole body: cJSON recurses once per nesting level, keeps raw control
 * characters and cuts strings at an escaped NUL. A body that passes them
 * holds a request that passes them too, so the request can be validated
 * from its re-printed text exactly as if it had been posted. */
static int rules_prescan(const char *body, size_t len, req_error_t *err)
{
    int depth = 0, in_string = 0;
    const char *why = NULL;
    req_err_t kind = REQ_BAD_JSON;
    for (size_t i = 0; i < len && !why; i++) {
        unsigned char c = (unsigned char)body[i];
        if (in_string) {
            if (c == '\\') {
                if (i + 5 < len && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0)
                    why = "NUL characters (\\u0000) are not accepted";
                i++; /* the escaped character cannot end the string */
            } else if (c == '"') {
                in_string = 0;
            } else if (c < 0x20) {
                why = "control character inside a string";
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > RULES_MAX_DEPTH) {
                why = "JSON nested too deeply";
                kind = REQ_TOO_DEEP;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        } else if (c == '\0') {
            why = "NUL byte in the body";
        }
    }
    if (!why)
        return 0;
    err->kind = kind;
    if (kind == REQ_TOO_DEEP)
        snprintf(err->message, sizeof err->message,
                 "JSON nested deeper than %d levels (%d inside request)", RULES_MAX_DEPTH,
                 REQ_MAX_DEPTH);
    else
        snprintf(err->message, sizeof err->message, "%s", why);
    return -1;
}

/* Parses the body into a JSON object; NULL with err filled. */
static cJSON *rules_parse_body(const http_req_t *rq, req_error_t *err)
{
    memset(err, 0, sizeof *err);
    err->kind = REQ_BAD_JSON;
    if (rq->body_len == 0) {
        snprintf(err->message, sizeof err->message, "empty body");
        return NULL;
    }
    if (!val_utf8(rq->body, rq->body_len)) {
        err->kind = REQ_BAD_UTF8;
        snprintf(err->message, sizeof err->message, "the body is not valid UTF-8");
        return NULL;
    }
    if (rules_prescan(rq->body, rq->body_len, err) != 0)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(rq->body, rq->body_len, &end, 0);
    int trailing = 0;
    for (const char *p = end; root && p < rq->body + rq->body_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            trailing = 1;
    if (!root || trailing) {
        cJSON_Delete(root);
        snprintf(err->message, sizeof err->message, "%s",
                 trailing ? "trailing data after the JSON value" : "malformed JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        err->kind = REQ_BAD_FIELD;
        snprintf(err->message, sizeof err->message, "body: must be a JSON object");
        return NULL;
    }
    return root;
}

static void rules_field(http_answer_t *out, const char *message)
{
    api_refuse(out, REQ_BAD_FIELD, message);
}

/* Reads the dry-run body into in and *now; 0, or -1 with out answered. */
static int rules_read_input(const http_req_t *rq, cJSON *root, rules_input_t *in, double *now,
                            http_answer_t *out)
{
    const api_t *api = rq->ctx;
    for (const cJSON *f = root->child; f; f = f->next) {
        const char *k = f->string ? f->string : "";
        if (strcmp(k, "request") != 0 && strcmp(k, "client") != 0 && strcmp(k, "now") != 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "%.40s: unknown field (request, client and now are)", k);
            rules_field(out, msg);
            return -1;
        }
    }
    const cJSON *request = cJSON_GetObjectItemCaseSensitive(root, "request");
    if (!request || cJSON_IsNull(request)) {
        rules_field(out, "request: required");
        return -1;
    }
    if (!cJSON_IsObject(request)) {
        rules_field(out, "request: must be an object (a POST /v1/communications body)");
        return -1;
    }
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(root, "client");
    if (client && cJSON_IsNull(client))
        client = NULL;
    if (client && !cJSON_IsObject(client)) {
        rules_field(out, "client: must be an object");
        return -1;
    }
    const cJSON *when = cJSON_GetObjectItemCaseSensitive(root, "now");
    *now = time_now();
    if (when && !cJSON_IsNull(when) &&
        (!cJSON_IsString(when) || rules_time_parse(when->valuestring, now) != 0)) {
        rules_field(out, "now: must be an ISO-8601 time such as 2026-03-08T06:30:00Z");
        return -1;
    }

    char *text = cJSON_PrintUnformatted(request);
    if (!text) {
        http_answer_error(out, 500, "internal_error", "out of memory");
        return -1;
    }
    const cfg_t *cfg = api->app->cfg;
    size_t max_decoded = cfg->max_body ? cfg->max_body : RULES_DEFAULT_BODY;
    req_error_t err;
    rules_input_defaults(in);
    int rc = dryrun_input(in, text, strlen(text), max_decoded, client, &err);
    cJSON_free(text);
    if (rc == 0)
        return 0;
    if (err.kind == REQ_NO_MEMORY) {
        api_refuse(out, err.kind, err.message);
        return -1;
    }
    /* Name the field from the body's top: "request.plan_id: required".
     * The client's messages mostly name it already ("client: unknown
     * field"); the rest name its fields ("timezone: ..."). */
    const char *prefix = "request.";
    if (rc == DRYRUN_BAD_CLIENT)
        prefix = strncmp(err.message, "client", 6) == 0 ? "" : "client.";
    char msg[sizeof err.message + 16];
    snprintf(msg, sizeof msg, "%s%s", prefix, err.message);
    api_refuse(out, err.kind, msg);
    return -1;
}

/* One decision with the live rules; 0, or -1 when out of memory. */
static int rules_decide_live(prt_t *p, const rules_input_t *in, double now, policy_decision_t *d)
{
    prt_local_t *l = rules_pool_take(p);
    if (!l)
        return -1;
    prt_decide(l, &in->msg, &in->client, now, &in->pending, d);
    rules_pool_give(p, l);
    return 0;
}

void api_rules_dry_run(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    prt_t *p = api->app->rules;
    if (!p) {
        rules_unavailable(out);
        return;
    }
    req_error_t err;
    cJSON *root = rules_parse_body(rq, &err);
    if (!root) {
        api_refuse(out, err.kind, err.message);
        return;
    }
    /* in's strings live in in itself; root is not needed past this call */
    rules_input_t in;
    double now = 0;
    int rc = rules_read_input(rq, root, &in, &now, out);
    cJSON_Delete(root);
    if (rc != 0)
        return;

    policy_decision_t d;
    if (rules_decide_live(p, &in, now, &d) != 0) {
        http_answer_error(out, 500, "internal_error", "out of memory");
        return;
    }
    char why[512];
    int failed = dryrun_rules_error(&d, why, sizeof why);
    char *json = dryrun_answer_json(&d, failed ? why : NULL, 0);
    if (!json) {
        http_answer_error(out, 500, "internal_error", "the answer could not be built");
        return;
    }
    http_answer_json(out, 200, json);
}

void api_rules_cleanup(void)
{
    pthread_mutex_lock(&rules_pool_mu);
    int n = rules_pool_n;
    prt_local_t *drop[RULES_POOL];
    for (int i = 0; i < n; i++)
        drop[i] = rules_pool[i];
    rules_pool_n = 0;
    rules_pool_of = NULL;
    pthread_mutex_unlock(&rules_pool_mu);
    for (int i = 0; i < n; i++)
        prt_local_free(drop[i]);
}
