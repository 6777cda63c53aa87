#include "channel/answer.h"

#include <stdio.h>
#include <string.h>

int answer_read(const answer_ops_t *ops, int http_status, const char *body, void *res)
{
    char text[128];
    int accepted = http_status >= 200 && http_status < 300;
    size_t len = body ? strnlen(body, ops->max + 1) : 0;
    if (len > ops->max) {
        snprintf(text, sizeof text, "%s: answer over %zu bytes (HTTP %d)", ops->provider, ops->max,
                 http_status);
        ops->fail(res, ERRC_TRANSIENT, text);
        return -1;
    }
    cJSON *root = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    if (root && cJSON_IsObject(root)) {
        int rc = -1;
        if (accepted)
            rc = ops->success(root, res);
        else
            ops->error(root, http_status, res);
        cJSON_Delete(root);
        return rc;
    }
    cJSON_Delete(root);
    /* a proxy's HTML page or an empty body: only the status is known */
    snprintf(text, sizeof text, "%s: HTTP %d with a malformed JSON answer", ops->provider,
             http_status);
    errc_t c = accepted ? ERRC_TRANSIENT : ops->status_category(http_status);
    ops->fail(res, c == ERRC_PERMANENT ? ERRC_TRANSIENT : c, text);
    return -1;
}

const char *answer_str(const cJSON *o, const char *name)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}
