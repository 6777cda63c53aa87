#include "policy/dryrun.h"

#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRYRUN_DECISION_MAX (64 * 1024) /* a decision's JSON; the trace is at most 4 KiB */

static int dryrun_field(req_error_t *err, const char *message)
{
    err->kind = REQ_BAD_FIELD;
    snprintf(err->message, sizeof err->message, "%s", message);
    return -1;
}

int dryrun_input(rules_input_t *in, const char *request, size_t len, size_t max_decoded,
                 const cJSON *client, req_error_t *err)
{
    /* The API's own validation first, so a dry-run accepts exactly the
     * requests POST /v1/communications accepts; what the policy reads of the
     * request is then taken from the same text. */
    req_comm_t parsed;
    if (req_parse(request, len, max_decoded, &parsed, err) != 0)
        return DRYRUN_BAD_REQUEST;
    req_free(&parsed);

    char msg[256];
    cJSON *req = rules_json_parse(request, len, msg, sizeof msg);
    if (!req) {
        /* req_parse accepted it: only an allocation can fail here */
        err->kind = REQ_NO_MEMORY;
        snprintf(err->message, sizeof err->message, "out of memory");
        return DRYRUN_BAD_REQUEST;
    }
    int rc = rules_input_request(in, req, msg, sizeof msg);
    cJSON_Delete(req);
    if (rc != 0) {
        dryrun_field(err, msg);
        return DRYRUN_BAD_REQUEST;
    }
    if (client && rules_input_client(in, client, msg, sizeof msg) != 0) {
        dryrun_field(err, msg);
        return DRYRUN_BAD_CLIENT;
    }
    return 0;
}

/* Adds item to obj, or frees it: either way the caller no longer owns it. */
static int dryrun_attach(cJSON *obj, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(obj, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

char *dryrun_answer_json(const policy_decision_t *d, const char *rules_error, int pretty)
{
    buf_t b;
    buf_init(&b, DRYRUN_DECISION_MAX);
    if (policy_decision_json(d, &b) != 0) {
        buf_free(&b);
        return NULL;
    }
    cJSON *dec = cJSON_Parse(b.data);
    buf_free(&b);
    cJSON *top = cJSON_CreateObject();
    if (!dec || !top) {
        cJSON_Delete(dec);
        cJSON_Delete(top);
        return NULL;
    }
    /* The version and the trace describe the run, not the decision: they
     * move up a level, and the status (queued, pending, skipped) joins the
     * decision so the answer reads like what the engine would store. */
    cJSON *version = cJSON_DetachItemFromObjectCaseSensitive(dec, "rules_version");
    cJSON *trace = cJSON_DetachItemFromObjectCaseSensitive(dec, "trace");
    int ok = cJSON_AddStringToObject(dec, "status", d->status) != NULL;
    ok &= dryrun_attach(top, "decision", dec);
    ok &= dryrun_attach(top, "rules_version", version);
    ok &= dryrun_attach(top, "trace", trace);
    if (rules_error)
        ok &= cJSON_AddStringToObject(top, "rules_error", rules_error) != NULL;
    char *text = ok ? (pretty ? cJSON_Print(top) : cJSON_PrintUnformatted(top)) : NULL;
    cJSON_Delete(top);
    if (!text)
        return NULL;
    /* cJSON allocates with its own hooks: hand out plain malloc memory */
    char *out = strdup(text);
    cJSON_free(text);
    return out;
}

int dryrun_rules_error(const policy_decision_t *d, char *out, size_t outlen)
{
    cJSON *trace = cJSON_Parse(d->trace_json);
    const cJSON *first = cJSON_IsArray(trace) ? trace->child : NULL;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(first, "step");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(first, "error");
    int failed =
        cJSON_IsString(step) && strcmp(step->valuestring, "rules") == 0 && cJSON_IsString(error);
    if (failed)
        snprintf(out, outlen, "%s", error->valuestring);
    cJSON_Delete(trace);
    return failed;
}
