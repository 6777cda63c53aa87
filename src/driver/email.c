#include "driver/email.h"
#include "driver/target.h"

#include "channel/dkim.h"
#include "channel/mime.h"
#include "channel/outbox.h"
#include "channel/smtp_easy.h"
#include "driver/actions.h"
#include "driver/email_track.h"
#include "driver/smtp_call.h"
#include "driver/unsub.h"
#include "store/store.h"
#include "template/catalog.h"
#include "template/context.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A message carries at most the request body's attachments (bounded by the
 * body limit) plus text; 32 MiB leaves room for base64 growth. */
#define EMAIL_MAX_MESSAGE ((size_t)32 * 1024 * 1024)
/* A DKIM-Signature field is under 2 KiB even with an RSA 8192 signature. */
#define EMAIL_MAX_DKIM_FIELD ((size_t)8192)

/* A worker's sender: what every message of the worker shares. */
typedef struct email_sender {
    int live; /* SMTP through the transport; else the sandbox outbox */
    char envelope_from[256];
} email_sender_t;

static int email_live(const cfg_t *cfg)
{
    return strcmp(cfg->transport_email, "live") == 0;
}

/* Email needs no credentials to be tried: a live server refusing ours is
 * the circuit's to notice. */
static int email_available(const cfg_t *cfg)
{
    return 1;
}

/* The host[:port] of an SMTP URL, without any userinfo. */
static void email_smtp_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    snprintf(out, outlen, "%.*s", (int)(end - p), p);
}

/* Limited per SMTP host: the relay's own limits are per host. */
static cfg_rate_t email_rate(const cfg_t *cfg, char *sender, size_t senderlen)
{
    email_smtp_host(cfg->smtp_url, sender, senderlen);
    return cfg->rate_smtp;
}

static int email_worker_new(const drv_env_t *env, void **state, char *err, size_t errlen)
{
    const cfg_t *cfg = env->cfg;
    email_sender_t *s = calloc(1, sizeof *s);
    if (!s || mime_addr_spec(cfg->mail_from, s->envelope_from, sizeof s->envelope_from) != 0 ||
        !smtp_easy_addr_ok(s->envelope_from)) {
        free(s);
        snprintf(err, errlen,
                 "cannot create the email sender (check mail_from and the SMTP settings)");
        return -1;
    }
    s->live = email_live(cfg);
    *state = s;
    return 0;
}

static void email_worker_free(void *state)
{
    free(state);
}

/* SMTP has a loop of its own (docs/architecture.md, Transport: why apart). */
static tx_t *email_loop(const drv_env_t *env)
{
    return env->tx_mail ? tx_pool_pick(env->tx_mail) : NULL;
}

/* Copies text into out, replacing every whitespace-delimited word that holds
 * an '@' with "[address]": replies from mail servers quote the recipient,
 * and addresses must not land in error columns or logs in clear. */
static void email_mask_addresses(const char *text, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p = text;
    while (*p && o + 1 < outlen) {
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t wl = (size_t)(p - w);
        const char *rep = memchr(w, '@', wl) ? "[address]" : NULL;
        size_t rl = rep ? strlen(rep) : wl;
        if (o + rl >= outlen)
            break;
        memcpy(out + o, rep ? rep : w, rl);
        o += rl;
        while (*p == ' ' && o + 1 < outlen)
            out[o++] = *p++;
    }
    out[o] = '\0';
}

/* Stores the provider response JSON built in d, or a minimal object when
 * it did not fit; frees d. */
static void email_set_detail(outcome_t *out, buf_t *d, int rc, const char *fallback)
{
    outcome_set_detail(out, rc == 0 ? d->data : NULL, fallback);
    buf_free(d);
}

/* Writes the message to the outbox (sandbox), or builds the SMTP send
 * into call->req (live). */
static void email_send_built(const email_sender_t *s, const cfg_t *cfg, const queue_job_t *job,
                             const store_client_t *cl, const buf_t *msg, call_t *call,
                             outcome_t *out)
{
    if (!s->live) {
        char name[64], path[1024], err[256];
        snprintf(name, sizeof name, "%s.eml", job->id);
        if (outbox_write(cfg->outbox_dir, name, msg->data, msg->len, path, sizeof path, err,
                         sizeof err) != 0) {
            outcome_fail(out, ERRC_TRANSIENT, 0, "outbox", err);
            return;
        }
        out->status = OUTCOME_DELIVERED;
        buf_t d;
        buf_init(&d, sizeof out->detail_json - 1);
        int rc = buf_puts(&d, "{\"transport\":\"sandbox\",\"file\":");
        rc |= jtext_string(&d, path);
        rc |= buf_putc(&d, '}');
        email_set_detail(out, &d, rc, "{\"transport\":\"sandbox\"}");
        return;
    }
    if (!smtp_easy_addr_ok(cl->email)) {
        /* A CR, LF or bracket in an address would change the SMTP dialogue. */
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "smtp", "the recipient address is not usable");
        return;
    }
    /* the stored index of the address this send goes to: what a hard
     * bounce suppresses, even if the client's address changes meanwhile */
    snprintf(out->contact_bidx, sizeof out->contact_bidx, "%s", cl->email_bidx);
    smtp_call_params_t p = {
        .url = cfg->smtp_url,
        .tls_required = cfg->smtp_tls_required,
        .username = cfg->smtp_username,
        .password = cfg->smtp_password,
        .from = s->envelope_from,
        .rcpt = cl->email,
        .timeout_ms = cfg->smtp_timeout_ms,
    };
    call->req = smtp_call_new(&p, msg->data, msg->len);
    if (!call->req)
        outcome_fail(out, ERRC_TRANSIENT, 0, "smtp", "cannot build the send");
}

static void email_finish(const call_t *call, outcome_t *out)
{
    if (!call->submitted) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "transport", "cannot submit the send");
        return;
    }
    const tx_result_t *res = &call->res;
    out->code = res->status;
    out->answered = res->err == TX_OK;
    char masked[256];
    email_mask_addresses(res->text, masked, sizeof masked);
    buf_t d;
    buf_init(&d, sizeof out->detail_json - 1);
    int drc =
        buf_printf(&d, "{\"transport\":\"smtp\",\"reply_code\":%d,\"enhanced\":", res->status);
    drc |= jtext_string(&d, res->enhanced);
    drc |= buf_puts(&d, ",\"phase\":");
    drc |= jtext_string(&d, res->phase);
    drc |= buf_puts(&d, ",\"reply\":");
    drc |= jtext_string(&d, masked);
    drc |= buf_putc(&d, '}');
    email_set_detail(out, &d, drc, "{\"transport\":\"smtp\"}");
    if (res->err == TX_OK && res->category == ERRC_NONE) {
        out->status = OUTCOME_SENT;
        return;
    }
    out->status = OUTCOME_FAILED;
    /* No reply at all (refused, cut off, timed out) is worth a retry. */
    out->category = res->err == TX_OK ? res->category : ERRC_TRANSIENT;
    if (out->category == ERRC_NONE)
        out->category = ERRC_TRANSIENT;
    /* The address itself is gone: the worker suppresses it. Without the
     * index of where the send went there is nothing to suppress by. */
    if (res->err == TX_OK && out->contact_bidx[0] &&
        smtp_hard_bounce(res->status, res->enhanced, res->phase))
        out->signal = OUTCOME_SIGNAL_HARD_BOUNCE;
    snprintf(out->error, sizeof out->error, "smtp %d%s%s: %s", res->status,
             res->enhanced[0] ? " " : "", res->enhanced, masked);
}

/* The template context of one email: the request's context, crier's names
 * and the unsubscribe links of the email it goes into (a digest's for its
 * members). NULL on OOM. */
static cJSON *email_context(const cJSON *reqctx, const tpl_site_t *site, const char *client_name,
                            const char *plan_id, const char *id, const unsub_links_t *links)
{
    cJSON *ctx = tpl_context_build(reqctx, site, client_name, plan_id, id);
    if (ctx && tpl_context_set_links(ctx, links->url, links->url) != 0) {
        cJSON_Delete(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* The engine's own message type: LOW messages merged into one email. */
#define EMAIL_DIGEST_TYPE "digest"

/* The member context key a digest item links to, first found wins: each
 * seed type names its main link differently. */
static const char *email_item_url(const cJSON *mctx)
{
    static const char *const keys[] = {"action_url", "plan_url", "review_url", "options_url",
                                       "blueprint_url"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(mctx, keys[i]);
        if (cJSON_IsString(v) && v->valuestring[0])
            return v->valuestring;
    }
    return NULL;
}

/* One digest item: the member's subject, rendered from its own type and
 * context exactly as its own email would have been, and its main link.
 * 0, or -1 with out failed. */
static int email_digest_item(const drv_env_t *env, const store_digest_member_t *m,
                             const char *client_name, const tpl_site_t *site,
                             const unsub_links_t *links, cJSON *items, outcome_t *out)
{
    char err[512];
    cJSON *mctx = cJSON_Parse(m->context_json);
    cJSON *ctx = email_context(mctx, site, client_name, m->plan_id, m->id, links);
    tpl_email_t em = {0};
    cJSON *item = cJSON_CreateObject();
    int rc = -1;
    if (!ctx || !item) {
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the digest");
        goto done;
    }
    /* A member that cannot render fails the digest, as it would have failed
     * on its own: strict templates never send a blank. */
    if (tpl_render_email(env->templates, m->message_type, ctx, &em, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "digest item", err);
        goto done;
    }
    const char *url = email_item_url(mctx);
    if (!cJSON_AddStringToObject(item, "message_type", m->message_type) ||
        !cJSON_AddStringToObject(item, "subject", em.subject) ||
        !(url ? cJSON_AddStringToObject(item, "action_url", url)
              : cJSON_AddNullToObject(item, "action_url"))) {
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the digest");
        goto done;
    }
    cJSON_AddItemToArray(items, item);
    item = NULL;
    rc = 0;
done:
    cJSON_Delete(item);
    tpl_email_free(&em);
    cJSON_Delete(ctx);
    cJSON_Delete(mctx);
    return rc;
}

/* The context of a digest: {count, items: [{message_type, subject,
 * action_url}]} plus the names every template has. The caller deletes it;
 * NULL with out failed. */
static cJSON *email_digest_context(const drv_env_t *env, PGconn *conn, const queue_job_t *job,
                                   const char *client_name, const tpl_site_t *site,
                                   const unsub_links_t *links, outcome_t *out)
{
    char err[512];
    store_digest_member_t *m = NULL;
    int n = 0;
    cJSON *dctx = NULL, *ctx = NULL;
    if (store_digest_members_load(conn, job->id, &m, &n, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "digest", err);
        return NULL;
    }
    if (n == 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "digest", "no members");
        goto done;
    }
    dctx = cJSON_CreateObject();
    cJSON *items = dctx ? cJSON_AddArrayToObject(dctx, "items") : NULL;
    if (!items || !cJSON_AddNumberToObject(dctx, "count", n)) {
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the digest");
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (email_digest_item(env, &m[i], client_name, site, links, items, out) != 0)
            goto done;
    ctx = email_context(dctx, site, client_name, job->plan_id, job->id, links);
    if (!ctx)
        outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the context");
done:
    cJSON_Delete(dctx);
    store_digest_members_free(m, n);
    return ctx;
}

/* Puts the DKIM-Signature field on top of the built message, signed over
 * the exact bytes that go to SMTP or the outbox, at the message's Date.
 * 0, or -1 with out failed (msg as it was). */
static int email_dkim_sign(const dkim_signer_t *dkim, buf_t *msg, time_t date, outcome_t *out)
{
    char err[256];
    buf_t signed_msg;
    buf_init(&signed_msg, EMAIL_MAX_MESSAGE + EMAIL_MAX_DKIM_FIELD);
    int rc = dkim_sign(dkim, msg->data, msg->len, (long long)date, &signed_msg, err, sizeof err);
    if (rc == 0 && buf_append(&signed_msg, msg->data, msg->len) != 0) {
        snprintf(err, sizeof err, "the signed message does not fit");
        rc = -1;
    }
    if (rc != 0) {
        buf_free(&signed_msg);
        /* Nothing in a built message can make signing fail but its size or
         * memory: worth another try rather than sending it unsigned. */
        outcome_fail(out, ERRC_TRANSIENT, 0, "dkim", err);
        return -1;
    }
    buf_free(msg);
    *msg = signed_msg;
    return 0;
}

static void email_prepare(void *state, const drv_env_t *env, PGconn *conn, const queue_job_t *job,
                          call_t *call, outcome_t *out)
{
    outcome_init(out);
    const email_sender_t *s = state;
    const cfg_t *cfg = env->cfg;
    char err[512];
    store_client_t cl;
    memset(&cl, 0, sizeof cl);
    store_attachment_t *att = NULL;
    int natt = 0;
    cJSON *reqctx = NULL, *ctx = NULL;
    tpl_email_t em = {0};
    mime_attachment_t *matt = NULL;
    buf_t msg;
    buf_init(&msg, EMAIL_MAX_MESSAGE);

    int rc = store_client_load(conn, env->keys, job->client_id, &cl, err, sizeof err);
    if (rc != 0) {
        /* A missing client is a data error; a database error is worth a retry. */
        outcome_fail(out, rc == 1 ? ERRC_INVALID_INPUT : ERRC_TRANSIENT, 0, "client",
                     rc == 1 ? "not found" : err);
        goto done;
    }
    if (!cl.email || !cl.email[0]) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, NULL, "client has no email address");
        goto done;
    }
    /* Decided before the address bounced (or before another process's
     * bounce of it), or before an unsubscribe: checked again here, on the
     * row just read. */
    if (!target_allowed(&cl, CH_NAME_EMAIL, out))
        goto done;
    /* one round trip less per message for the many that have none */
    if (!job->no_attachments &&
        store_attachments_load(conn, job->id, &att, &natt, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "attachments", err);
        goto done;
    }
    tpl_site_t site = {
        .brand_name = cfg->brand_name,
        .support_email = cfg->support_email,
        .physical_address = cfg->physical_address,
        .public_url = cfg->public_url,
    };
    const char *client_name = cl.name ? cl.name : "there";
    /* every email, whatever its type or context, can be unsubscribed from */
    unsub_links_t links;
    if (unsub_links_make(cfg, env->keys, job->id, time(NULL), &links, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "unsubscribe link", err);
        goto done;
    }
    if (strcmp(job->message_type, EMAIL_DIGEST_TYPE) == 0) {
        ctx = email_digest_context(env, conn, job, client_name, &site, &links, out);
        if (!ctx)
            goto done; /* out says why */
    } else {
        reqctx = cJSON_Parse(job->context_json ? job->context_json : "{}");
        ctx = email_context(reqctx, &site, client_name, job->plan_id, job->id, &links);
        if (!ctx) {
            outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory building the context");
            goto done;
        }
        /* a digest's members answer in their own emails, not in the digest */
        if (actions_apply(env, conn, job, ctx, NULL, out) != 0)
            goto done; /* out says why */
    }
    if (tpl_render_email(env->templates, job->message_type, ctx, &em, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "template", err);
        goto done;
    }
    outcome_set_template(out, env->templates, job->message_type, CH_NAME_EMAIL);
    text_copy_utf8(em.subject, out->subject, sizeof out->subject);
    if (email_track_apply(env, conn, job, &em.html, out) != 0)
        goto done; /* out says why */
    if (natt > 0) {
        matt = calloc((size_t)natt, sizeof *matt);
        if (!matt) {
            outcome_fail(out, ERRC_TRANSIENT, 0, NULL, "out of memory");
            goto done;
        }
        for (int i = 0; i < natt; i++)
            matt[i] =
                (mime_attachment_t){att[i].filename, att[i].content_type, att[i].data, att[i].len};
    }
    mime_message_t m = {
        .from = cfg->mail_from,
        .to_name = cl.name,
        .to_addr = cl.email,
        .subject = em.subject,
        .text = em.text,
        .html = em.html,
        .attachments = matt,
        .n_attachments = natt,
        .list_unsubscribe_url = links.url,
        .list_unsubscribe_mailto = links.mailto,
        .entity_id = job->id,
        .date = time(NULL),
    };
    if (mime_build(&m, &msg, out->message_id, sizeof out->message_id, err, sizeof err) != 0) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "mime", err);
        goto done;
    }
    if (env->dkim && email_dkim_sign(env->dkim, &msg, m.date, out) != 0)
        goto done; /* out says why */
    email_send_built(s, cfg, job, &cl, &msg, call, out);

done:
    buf_free(&msg);
    free(matt);
    tpl_email_free(&em);
    cJSON_Delete(ctx);
    cJSON_Delete(reqctx);
    store_attachments_free(att, natt);
    store_client_free(&cl);
}

const drv_t email_driver = {
    .id = CH_EMAIL,
    .provider = "smtp",
    .circuit = CIRC_SMTP,
    .api = METRICS_API_SMTP,
    .live = email_live,
    .available = email_available,
    .rate = email_rate,
    .worker_new = email_worker_new,
    .worker_free = email_worker_free,
    .prepare = email_prepare,
    .finish = email_finish,
    .loop = email_loop,
};
