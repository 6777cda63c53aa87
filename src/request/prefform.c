#include "request/prefform.h"

#include "channel/ch.h"
#include "request/prefbody.h"
#include "webhook/form.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* A page's form has a dozen fields of a few bytes each. */
static const form_limits_t prefform_limits = {4096, 16, 32, 128};

static int prefform_known(const char *key)
{
    static const char *const keys[] = {"form_token",    "action",      "preferred_channel",
                                       "quiet",         "quiet_start", "quiet_end",
                                       "opt_out_email", "opt_out_sms", "opt_out_whatsapp"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return 0;
}

/* Every field known and given once. */
static int prefform_fields(const form_pairs_t *f, req_error_t *err)
{
    for (size_t i = 0; i < f->count; i++) {
        if (!prefform_known(f->pairs[i].key))
            return req_field(err, "%.32s: not a field of the preference page", f->pairs[i].key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->pairs[i].key, f->pairs[j].key) == 0)
                return req_field(err, "%.32s: given twice", f->pairs[i].key);
    }
    return 0;
}

/* preferred_channels with ch first and the client's others after it, in
 * their order. */
static int prefform_preferred(ch_id_t ch, const char *now_json, prefform_t *out, req_error_t *err)
{
    ch_id_t order[CH_N];
    int n = 0;
    order[n++] = ch;
    cJSON *now = now_json ? cJSON_Parse(now_json) : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, now)
    {
        ch_id_t c;
        if (!cJSON_IsString(it) || ch_by_name(it->valuestring, &c) != 0 || n == CH_N)
            continue;
        int seen = 0;
        for (int k = 0; k < n; k++)
            seen |= order[k] == c;
        if (!seen)
            order[n++] = c;
    }
    cJSON_Delete(now);
    size_t at = 0;
    out->preferred_json[at++] = '[';
    for (int k = 0; k < n; k++) {
        int w = snprintf(out->preferred_json + at, sizeof out->preferred_json - at, "%s\"%s\"",
                         k ? "," : "", ch_name(order[k]));
        if (w < 0 || (size_t)w >= sizeof out->preferred_json - at - 1)
            return req_field(err, "preferred_channel: too long");
        at += (size_t)w;
    }
    out->preferred_json[at++] = ']';
    out->preferred_json[at] = '\0';
    out->change.preferred_json = out->preferred_json;
    return 0;
}

static int prefform_quiet(const form_pairs_t *f, prefform_t *out, req_error_t *err)
{
    const char *quiet = form_get(f, "quiet");
    if (!quiet)
        return 0; /* unchanged */
    if (strcmp(quiet, "none") == 0) {
        out->change.quiet_given = 1; /* "" and "": none */
        return 0;
    }
    if (strcmp(quiet, "hours") != 0)
        return req_field(err, "quiet: must be none or hours");
    const char *qs = form_get(f, "quiet_start");
    const char *qe = form_get(f, "quiet_end");
    if (!qs || !prefbody_hhmm(qs))
        return req_field(err, "quiet_start: must be a time HH:MM (00:00 to 23:59)");
    if (!qe || !prefbody_hhmm(qe))
        return req_field(err, "quiet_end: must be a time HH:MM (00:00 to 23:59)");
    if (strcmp(qs, qe) == 0)
        return req_field(err, "quiet_end: must differ from quiet_start (or choose no quiet hours)");
    memcpy(out->change.quiet_start, qs, 6);
    memcpy(out->change.quiet_end, qe, 6);
    out->change.quiet_given = 1;
    return 0;
}

static int prefform_read(const form_pairs_t *f, const prefform_ctx_t *ctx, prefform_t *out,
                         req_error_t *err)
{
    if (prefform_fields(f, err) != 0)
        return -1;
    const char *tok = form_get(f, "form_token");
    if (!tok || !tok[0] || strlen(tok) > PREFFORM_TOKEN_MAX)
        return req_field(err, "form_token: missing or malformed");
    snprintf(out->form_token, sizeof out->form_token, "%s", tok);
    const char *action = form_get(f, "action");
    if (action && strcmp(action, "unsubscribe_email") == 0) {
        if (f->count != 2)
            return req_field(err, "action: unsubscribe_email takes no other field");
        if (!(ctx->shown & CH_BIT(CH_EMAIL)))
            return req_field(err, "action: there is no email address to unsubscribe");
        out->unsubscribe_email = 1;
        out->change.opt_out[CH_EMAIL] = 1;
        return 0;
    }
    if (action && strcmp(action, "save") != 0)
        return req_field(err, "action: must be save or unsubscribe_email");
    const char *pref = form_get(f, "preferred_channel");
    if (pref) {
        ch_id_t ch;
        if (ch_by_name(pref, &ch) != 0 || !(ctx->shown & CH_BIT(ch)))
            return req_field(err, "preferred_channel: must be one of the channels shown");
        if (prefform_preferred(ch, ctx->preferred_json, out, err) != 0)
            return -1;
    }
    if (prefform_quiet(f, out, err) != 0)
        return -1;
    for (int ch = 0; ch < CH_N; ch++) {
        char key[32];
        snprintf(key, sizeof key, "opt_out_%s", ch_name((ch_id_t)ch));
        const char *v = form_get(f, key);
        if (!(ctx->shown & CH_BIT(ch))) {
            if (v)
                return req_field(err, "%s: not a channel of this page", key);
            continue;
        }
        if (v && strcmp(v, "1") != 0)
            return req_field(err, "%s: must be 1 when ticked", key);
        out->change.opt_out[ch] = v ? 1 : 0;
    }
    return 0;
}

int prefform_parse(const char *body, size_t len, const prefform_ctx_t *ctx, prefform_t *out,
                   req_error_t *err)
{
    memset(out, 0, sizeof *out);
    for (int ch = 0; ch < CH_N; ch++)
        out->change.opt_out[ch] = -1;
    form_pairs_t f;
    char why[128];
    if (form_parse(&f, body, len, &prefform_limits, why, sizeof why) != 0) {
        form_free(&f);
        memset(out, 0, sizeof *out);
        return req_field(err, "body: not a form of the preference page (%s)", why);
    }
    int rc = prefform_read(&f, ctx, out, err);
    form_free(&f);
    if (rc != 0) {
        req_error_t keep = *err;
        memset(out, 0, sizeof *out);
        *err = keep;
    }
    return rc;
}
