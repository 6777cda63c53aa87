#include "driver/sandbox.h"

#include "channel/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Outbox records hold one short message; far below this. */
#define SANDBOX_RECORD_MAX ((size_t)256 * 1024)

int sandbox_refuses(const char *phone)
{
    static const char suffix[] = SANDBOX_FAIL_SUFFIX;
    size_t want = sizeof suffix - 1, have = 0;
    /* Compare digits only, from the end, so formatting never matters. */
    for (size_t i = phone ? strlen(phone) : 0; i > 0 && have < want; i--) {
        char c = phone[i - 1];
        if (c < '0' || c > '9')
            continue;
        if (c != suffix[want - 1 - have])
            return 0;
        have++;
    }
    return have == want;
}

void sandbox_deliver(const cfg_t *cfg, const char *job_id, const char *kind, const cJSON *record,
                     outcome_t *out)
{
    char *text = cJSON_Print(record);
    if (!text || strlen(text) > SANDBOX_RECORD_MAX) {
        free(text);
        outcome_fail(out, ERRC_TRANSIENT, 0, "outbox", "cannot print the record");
        return;
    }
    char name[96], path[1024], err[256];
    snprintf(name, sizeof name, "%s.%s.json", job_id, kind);
    int rc =
        outbox_write(cfg->outbox_dir, name, text, strlen(text), path, sizeof path, err, sizeof err);
    free(text);
    if (rc != 0) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "outbox", err);
        return;
    }
    out->status = OUTCOME_DELIVERED;
    cJSON *d = cJSON_CreateObject();
    if (d) {
        cJSON_AddStringToObject(d, "transport", "sandbox");
        cJSON_AddStringToObject(d, "file", path);
    }
    outcome_set_detail_obj(out, d, "{\"transport\":\"sandbox\"}");
}
