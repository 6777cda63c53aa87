#include "engine/sms_job.h"

#include "channel/gsm7.h"
#include "channel/twilio.h"
#include "engine/msg_job.h"
#include "template/catalog.h"
#include "util/buf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMS_CALLBACK_PATH "/webhooks/twilio/status"

/* The sandbox's answer: what would be sent, as a record in the outbox, or
 * the refusal Twilio gives an invalid number. */
static void sms_sandbox(const app_t *app, const queue_job_t *job, const char *to, const char *body,
                        const gsm7_count_t *count, email_outcome_t *out)
{
    const cfg_t *cfg = app->cfg;
    if (msg_sandbox_refuses(to)) {
        msg_fail(out, twilio_classify(21211, 400), 21211, "sandbox",
                 "twilio 21211: the 'To' number is not a valid phone number");
        msg_set_detail(out, cJSON_Parse("{\"transport\":\"sandbox\",\"error_code\":21211}"),
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
        msg_fail(out, ERRC_TRANSIENT, 0, "outbox", "out of memory");
        return;
    }
    msg_outbox_deliver(cfg, job, "sms", rec, out);
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
static void sms_live(const app_t *app, const char *to, const char *body, msg_call_t *call,
                     email_outcome_t *out)
{
    const cfg_t *cfg = app->cfg;
    char callback[TWILIO_CALLBACK_MAX + 1], err[256];
    if (sms_callback_url(cfg, callback, sizeof callback) != 0) {
        msg_fail(out, ERRC_INVALID_INPUT, 0, "twilio", "CRIER_PUBLIC_URL is too long");
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
        msg_fail(out, bad, 0, "twilio", err);
        return;
    }
    msg_http_request(cfg, cfg->twilio_api_base, req.path, "application/x-www-form-urlencoded",
                     req.authorization.data, &req.form, call, out);
    twilio_request_free(&req);
}

void sms_finish(msg_call_t *call, email_outcome_t *out)
{
    if (msg_call_answer(call, out) != 0)
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
    msg_set_detail(out, d, "{\"transport\":\"twilio\"}");
    if (ok == 0) {
        out->status = EMAIL_SENT;
        snprintf(out->message_id, sizeof out->message_id, "%s", tr.sid);
        return;
    }
    /* The parser masks digit runs of phone length in Twilio's text. */
    char why[320];
    snprintf(why, sizeof why, "twilio %d (http %d): %s", tr.error_code, tr.http_status, tr.message);
    msg_fail(out, tr.category, tr.error_code, NULL, why);
    if (tr.retry_after >= 0)
        out->retry_after = tr.retry_after;
    if (tr.opt_out)
        out->signal = EMAIL_SIGNAL_OPT_OUT;
}

void sms_prepare(app_t *app, PGconn *conn, const queue_job_t *job, msg_call_t *call,
                 email_outcome_t *out)
{
    email_outcome_init(out);
    const cfg_t *cfg = app->cfg;
    char err[512];
    char *body = NULL;
    msg_target_t t;
    if (msg_target_load(app, conn, job, &t, out) != 0)
        goto done;
    if (tpl_render_sms(app->templates, job->message_type, t.ctx, &body, err, sizeof err) != 0) {
        msg_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
        goto done;
    }
    gsm7_count_t count;
    if (gsm7_count(body, strlen(body), &count) != 0) {
        msg_fail(out, ERRC_INVALID_INPUT, 0, "template", "the SMS body is not valid UTF-8");
        goto done;
    }
    if (count.segments > (size_t)cfg->sms_segment_budget) {
        char why[160];
        snprintf(why, sizeof why, "%zu %s segments, over the budget of %d", count.segments,
                 gsm7_encoding_name(count.encoding), cfg->sms_segment_budget);
        msg_fail(out, ERRC_INVALID_INPUT, 0, "sms", why);
        goto done;
    }
    if (strcmp(cfg->transport_sms, "live") == 0)
        sms_live(app, t.client.phone, body, call, out);
    else
        sms_sandbox(app, job, t.client.phone, body, &count, out);
done:
    free(body);
    msg_target_free(&t);
}
