#include "driver/smtp_call.h"

#include "channel/smtp_easy.h"
#include "util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One send's state; owned by its transport request. */
typedef struct smtp_call {
    char *url;
    int tls_required;
    char *username;
    char *password; /* wiped on free */
    char *from;
    char *rcpt;
    char *msg;
    size_t msg_len;
    struct curl_slist *rcpts; /* alive while in flight */
    smtp_wire_t wire;         /* the handle's callbacks write here: never moves */
} smtp_call_t;

static void smtp_call_free(void *ud)
{
    smtp_call_t *c = ud;
    if (!c)
        return;
    free(c->url);
    free(c->username);
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    free(c->from);
    free(c->rcpt);
    free(c->msg);
    curl_slist_free_all(c->rcpts);
    free(c);
}

static tx_err_t smtp_call_setup(void *ud, CURL *h, long timeout_ms, char *why, size_t whylen)
{
    smtp_call_t *c = ud;
    smtp_settings_t s = {
        .url = c->url,
        .tls_required = c->tls_required,
        .username = c->username,
        .password = c->password,
        .timeout_ms = timeout_ms,
    };
    if (smtp_easy_setup(h, &s, &c->wire) != 0) {
        snprintf(why, whylen, "unusable SMTP URL");
        return TX_ERR_INVALID;
    }
    smtp_result_t sr;
    if (smtp_easy_begin(h, &c->wire, c->from, c->rcpt, c->msg, c->msg_len, &c->rcpts, &sr) != 0) {
        snprintf(why, whylen, "%s", sr.text);
        return sr.category == ERRC_INVALID_INPUT ? TX_ERR_INVALID : TX_ERR_NOMEM;
    }
    return TX_OK;
}

static void smtp_call_finish(void *ud, CURL *h, CURLcode rc, tx_result_t *res)
{
    smtp_call_t *c = ud;
    smtp_result_t sr;
    smtp_easy_finish(h, rc, &c->wire, c->password, c->from, c->rcpt, &sr);
    res->status = sr.reply_code;
    res->category = sr.category;
    memcpy(res->enhanced, sr.enhanced, sizeof res->enhanced);
    memcpy(res->phase, sr.phase, sizeof res->phase);
    memcpy(res->text, sr.text, sizeof res->text);
    /* A final 4xx/5xx reply is an answer about the message even though curl
     * reports it as an error; anything else without CURLE_OK is the
     * transport failing (no reply, or one cut off mid-dialogue). */
    res->err = (rc == CURLE_OK || sr.reply_code >= 400) ? TX_OK : TX_ERR_CURL;
}

static const tx_easy_ops_t smtp_call_ops = {
    .setup = smtp_call_setup,
    .finish = smtp_call_finish,
    .free = smtp_call_free,
    /* After a failed transfer the connection may be out of step with the
     * server (a reply to DATA still on its way after a timeout), yet
     * libcurl can keep it in the pool; the next message would read that
     * late reply as its own. A fresh connection is a new session. */
    .drop_on_error = 1,
};

tx_request_t *smtp_call_new(const smtp_call_params_t *p, const char *msg, size_t len)
{
    if (!p || !p->url || !p->from || !p->rcpt || !msg)
        return NULL;
    smtp_call_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->tls_required = p->tls_required;
    c->url = strdup(p->url);
    c->from = strdup(p->from);
    c->rcpt = strdup(p->rcpt);
    c->msg = text_dup_n(msg, len);
    c->msg_len = len;
    int ok = c->url && c->from && c->rcpt && c->msg;
    if (p->username && *p->username)
        ok &= (c->username = strdup(p->username)) != NULL;
    if (p->password && *p->password)
        ok &= (c->password = strdup(p->password)) != NULL;
    if (!ok) {
        smtp_call_free(c);
        return NULL;
    }
    return tx_easy_new(&smtp_call_ops, c, p->timeout_ms); /* frees c on failure */
}
