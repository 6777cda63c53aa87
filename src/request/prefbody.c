#include "request/prefbody.h"

#include "channel/ch.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

int prefbody_hhmm(const char *s)
{
    if (strlen(s) != 5 || s[2] != ':')
        return 0;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return 0;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60;
}

static int prefbody_channels(const cJSON *v, prefbody_t *out, req_error_t *err)
{
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 1 || n > CH_N)
        return req_field(err, "preferred_channels: must be a list of 1 to %d channels", CH_N);
    int seen = 0;
    size_t at = 0;
    out->preferred_json[at++] = '[';
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        ch_id_t ch;
        if (!cJSON_IsString(it) || ch_by_name(it->valuestring, &ch) != 0)
            return req_field(err, "preferred_channels: each must be email, sms or whatsapp");
        if (seen & CH_BIT(ch))
            return req_field(err, "preferred_channels: %s is listed twice", ch_name(ch));
        seen |= CH_BIT(ch);
        int w = snprintf(out->preferred_json + at, sizeof out->preferred_json - at, "%s\"%s\"",
                         at > 1 ? "," : "", ch_name(ch));
        if (w < 0 || (size_t)w >= sizeof out->preferred_json - at)
            return req_field(err, "preferred_channels: too long");
        at += (size_t)w;
    }
    if (at + 2 > sizeof out->preferred_json)
        return req_field(err, "preferred_channels: too long");
    out->preferred_json[at++] = ']';
    out->preferred_json[at] = '\0';
    out->change.preferred_json = out->preferred_json;
    return 0;
}

/* One end of the quiet hours: 1 given as a time, 0 given as null, -1
 * absent; -2 on a bad value (err set). */
static int prefbody_quiet_end(const cJSON *root, const char *key, char out[6], req_error_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v)
        return -1;
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !prefbody_hhmm(v->valuestring)) {
        req_field(err, "%s: must be \"HH:MM\" (00:00 to 23:59) or null", key);
        return -2;
    }
    memcpy(out, v->valuestring, 6);
    return 1;
}

static int prefbody_known(const char *key, int want_client_id)
{
    static const char *const keys[] = {
        "preferred_channels", "quiet_hours_start", "quiet_hours_end", "opt_out_email",
        "opt_out_sms",        "opt_out_whatsapp",  "timezone",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return want_client_id && strcmp(key, "client_id") == 0;
}

static int prefbody_fields(const cJSON *root, int want_client_id, prefbody_t *out, req_error_t *err)
{
    for (const cJSON *k = root->child; k; k = k->next)
        if (!prefbody_known(k->string, want_client_id))
            return req_field(err, "%.64s: not a preference (see the API reference)", k->string);
    if (want_client_id) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "client_id");
        if (!cJSON_IsString(id) || req_uuid_lower(id->valuestring, out->client_id) != 0)
            return req_field(err, "client_id: must be a UUID");
    }
    int given = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "preferred_channels");
    if (v) {
        if (prefbody_channels(v, out, err) != 0)
            return -1;
        given = 1;
    }
    int qs = prefbody_quiet_end(root, "quiet_hours_start", out->change.quiet_start, err);
    int qe = prefbody_quiet_end(root, "quiet_hours_end", out->change.quiet_end, err);
    if (qs == -2 || qe == -2)
        return -1;
    if ((qs == -1) != (qe == -1) || (qs == 0) != (qe == 0))
        return req_field(err, "quiet_hours_start, quiet_hours_end: give both, as times or "
                              "both null for no quiet hours");
    if (qs >= 0) {
        out->change.quiet_given = 1;
        given = 1;
    }
    for (int ch = 0; ch < CH_N; ch++) {
        char key[32];
        snprintf(key, sizeof key, "opt_out_%s", ch_name((ch_id_t)ch));
        out->change.opt_out[ch] = -1;
        v = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!v)
            continue;
        if (!cJSON_IsBool(v))
            return req_field(err, "%s: must be a boolean", key);
        out->change.opt_out[ch] = cJSON_IsTrue(v) ? 1 : 0;
        given = 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "timezone");
    if (v) {
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof out->timezone ||
            !val_timezone(v->valuestring))
            return req_field(err, "timezone: not a known IANA time zone");
        snprintf(out->timezone, sizeof out->timezone, "%s", v->valuestring);
        out->change.timezone = out->timezone;
        given = 1;
    }
    if (!given)
        return req_field(err, "body: give at least one preference to change");
    return 0;
}

int prefbody_parse(const char *body, size_t len, int want_client_id, prefbody_t *out,
                   req_error_t *err)
{
    memset(out, 0, sizeof *out);
    for (int ch = 0; ch < CH_N; ch++)
        out->change.opt_out[ch] = -1;
    cJSON *root = NULL;
    if (req_json_parse(body, len, &root, err) != 0)
        return -1;
    int rc = prefbody_fields(root, want_client_id, out, err);
    cJSON_Delete(root);
    if (rc != 0) {
        req_error_t keep = *err;
        memset(out, 0, sizeof *out);
        *err = keep;
    }
    return rc;
}
