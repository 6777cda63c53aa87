#include "driver/outcome.h"

#include "util/text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void outcome_init(outcome_t *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
}

void outcome_fail(outcome_t *out, errc_t cat, int code, const char *stage, const char *detail)
{
    out->status = OUTCOME_FAILED;
    out->category = cat == ERRC_NONE ? ERRC_TRANSIENT : cat;
    out->code = code;
    out->error[0] = '\0';
    if (stage)
        snprintf(out->error, sizeof out->error, "%s: ", stage);
    size_t used = strlen(out->error);
    text_copy_utf8(detail ? detail : "", out->error + used, sizeof out->error - used);
}

void outcome_skip(outcome_t *out, const char *reason)
{
    out->status = OUTCOME_SKIPPED;
    out->category = ERRC_NONE;
    snprintf(out->skip_reason, sizeof out->skip_reason, "%s", reason);
}

void outcome_set_template(outcome_t *out, const tpl_catalog_t *c, const char *type,
                          const char *channel)
{
    const char *v = tpl_template_version(c, type, channel);
    snprintf(out->template_version, sizeof out->template_version, "%s", v ? v : "");
}

void outcome_set_detail(outcome_t *out, const char *json, const char *fallback)
{
    snprintf(out->detail_json, sizeof out->detail_json, "%s",
             json && strlen(json) < sizeof out->detail_json ? json : fallback);
}

void outcome_set_detail_obj(outcome_t *out, cJSON *obj, const char *fallback)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    outcome_set_detail(out, text, fallback);
    free(text);
    cJSON_Delete(obj);
}
