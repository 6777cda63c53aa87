#include "driver/sms.h"

#include "channel/gsm7.h"
#include "channel/twilio.h"
#include "driver/actions.h"
#include "driver/sandbox.h"
#include "driver/target.h"
#include "template/catalog.h"
#include "util/buf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMS_CALLBACK_PATH "/webhooks/twilio/status"

static int sms_live_on(const cfg_t *cfg)
{
    return strcmp(cfg->transport_sms, "live") == 0;
}

static int sms_set(const char *s)
{
    return s && s[0];
}

static int sms_available(const cfg_t *cfg)
{
    return !sms_live_on(cfg) ||
           (sms_set(cfg->twilio_account_sid) && sms_set(cfg->twilio_auth_token) &&
            sms_set(cfg->twilio_from_number));
}

/* Limited per From number: that is what Twilio meters. */
static cfg_rate_t sms_rate(const cfg_t *cfg, char *sender, size_t senderlen)
{
    snprintf(sender, senderlen, "%s", cfg->twilio_from_number);
    return cfg->rate_twilio;
}

static tx_t *sms_loop(const drv_env_t *env)
{
    return env->tx;
}

/* The sandbox's answer: what would be sent, as a record in the outbox, or
 * the refusal Twilio gives an invalid number. */
static void sms_sandbox(const drv_env_t *env, const queue_job_t *job, const char *to,
                        const char *body, const gsm7_count_t *count, outcome_t *out)
{
    const cfg_t *cfg = env->cfg;
    if (sandbox_refuses(to)) {
        outcome_fail(out, twilio_classify(21211, 400), 21211, "sandbox",
                     "twilio 21211: the 'To' number is not a valid phone number");
        outcome_set_detail_obj(out, cJSON_Parse("{\"transport\":\"sandbox\",\"error_code\":21211}"),
                               "{\"transport\":\"sandbox\"}");
        return;
    }
    cJSON *rec = cJSON_CreateObject();
    if (!rec || !cJSON_AddStringToObject(rec, "to", to) ||
        !cJSON_AddStringToObject(rec, "from", cfg->twilio_from_number) ||
        !cJSON_AddStringToObject(rec, "body", body) ||
        !cJSON_AddStringToObject(rec, "encoding", gsm7_encoding_name(count->encoding)) ||
        !cJSON_AddNumberToObject(rec, "segments", (double)count->segments) ||
        !cJSON_AddStringToObject(rec, "status", "delivered")) {
        cJSON_Delete(rec);
        outcome_fail(out, ERRC_TRANSIENT, 0, "outbox", "out of memory");
        return;
    }
    sandbox_deliver(cfg, job->id, "sms", rec, out);
    cJSON_Delete(rec);
}

/* The StatusCallback URL: where Twilio reports delivery of this message. */
static int sms_callback_url(const cfg_t *cfg, char *out, size_t outlen)
{
    size_t bl = strlen(cfg->public_url);
    while (bl > 0 && cfg->public_url[bl - 1] == '/')
        bl--;
    int n = snprintf(out, outlen, "%.*s%s", (int)bl, cfg->public_url, SMS_CALLBACK_PATH);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* Builds the Twilio send into call->req, or fails out. */
static void sms_live(const drv_env_t *env, const char *to, const char *body, call_t *call,
                     outcome_t *out)
{
    const cfg_t *cfg = env->cfg;
    char callback[TWILIO_CALLBACK_MAX + 1], err[256];
    if (sms_callback_url(cfg, callback, sizeof callback) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "twilio", "CRIER_PUBLIC_URL is too long");
        return;
    }
    twilio_send_t in = {
        .account_sid = cfg->twilio_account_sid,
        .auth_token = cfg->twilio_auth_token,
        .to = to,
        .from = cfg->twilio_from_number,
        .body = body,
        .status_callback = callback,
    };
    twilio_request_t req;
    errc_t bad = twilio_build_send(&in, &req, err, sizeof err);
    if (bad != ERRC_NONE) {
        twilio_request_free(&req);
        outcome_fail(out, bad, 0, "twilio", err);
        return;
    }
    /* out says why when the request cannot be built */
    (void)call_http_post(cfg->twilio_api_base, req.path, "application/x-www-form-urlencoded",
                         req.authorization.data, &req.form, cfg->provider_timeout_ms, call, out);
    twilio_request_free(&req);
}

static void sms_finish(const call_t *call, outcome_t *out)
{
    if (call_answer(call, out) != 0)
        return; /* out says why */
    const tx_result_t *res = &call->res;
    twilio_result_t tr;
    int ok = twilio_parse_response(res->status, res->body,
                                   res->retry_after[0] ? res->retry_after : NULL, &tr);
    cJSON *d = cJSON_CreateObject();
    if (d) {
        cJSON_AddStringToObject(d, "transport", "twilio");
        cJSON_AddNumberToObject(d, "http_status", tr.http_status);
        if (ok == 0) {
            cJSON_AddStringToObject(d, "sid", tr.sid);
            cJSON_AddStringToObject(d, "status", tr.status);
        } else {
            cJSON_AddNumberToObject(d, "error_code", tr.error_code);
            cJSON_AddStringToObject(d, "message", tr.message);
            if (tr.retry_after >= 0)
                cJSON_AddNumberToObject(d, "retry_after", tr.retry_after);
        }
    }
    outcome_set_detail_obj(out, d, "{\"transport\":\"twilio\"}");
    if (ok == 0) {
        out->status = OUTCOME_SENT;
        snprintf(out->message_id, sizeof out->message_id, "%s", tr.sid);
        return;
    }
    /* The parser masks digit runs of phone length in Twilio's text. */
    char why[320];
    snprintf(why, sizeof why, "twilio %d (http %d): %s", tr.error_code, tr.http_status, tr.message);
    outcome_fail(out, tr.category, tr.error_code, NULL, why);
    if (tr.retry_after >= 0)
        out->retry_after = tr.retry_after;
    if (tr.opt_out)
        out->signal = OUTCOME_SIGNAL_OPT_OUT;
}

static void sms_prepare(void *state, const drv_env_t *env, PGconn *conn, const queue_job_t *job,
                        call_t *call, outcome_t *out)
{
    outcome_init(out);
    const cfg_t *cfg = env->cfg;
    char err[512];
    char *body = NULL;
    target_t t;
    if (target_load(env, conn, job, &t, out) != 0)
        goto done;
    if (!target_allowed(&t.client, CH_NAME_SMS, out))
        goto done; /* a STOP or a withdrawn consent since the decision */
    /* the reply hint, and the rows a numbered reply is matched against */
    if (actions_apply(env, conn, job, t.ctx, NULL, out) != 0)
        goto done; /* out says why */
    if (tpl_render_sms(env->templates, job->message_type, t.ctx, &body, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
        goto done;
    }
    outcome_set_template(out, env->templates, job->message_type, CH_NAME_SMS);
    gsm7_count_t count;
    if (gsm7_count(body, strlen(body), &count) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "template", "the SMS body is not valid UTF-8");
        goto done;
    }
    if (count.segments > (size_t)cfg->sms_segment_budget) {
        char why[160];
        snprintf(why, sizeof why, "%zu %s segments, over the budget of %d", count.segments,
                 gsm7_encoding_name(count.encoding), cfg->sms_segment_budget);
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "sms", why);
        goto done;
    }
    if (sms_live_on(cfg))
        sms_live(env, t.client.phone, body, call, out);
    else
        sms_sandbox(env, job, t.client.phone, body, &count, out);
done:
    free(body);
    target_free(&t);
}

const drv_t sms_driver = {
    .id = CH_SMS,
    .provider = "twilio",
    .circuit = CIRC_TWILIO,
    .api = METRICS_API_TWILIO,
    .live = sms_live_on,
    .available = sms_available,
    .rate = sms_rate,
    .prepare = sms_prepare,
    .finish = sms_finish,
    .loop = sms_loop,
};
