#include "driver/call.h"

#include <stdio.h>
#include <string.h>

#define CALL_URL_MAX 2048

void call_clear(call_t *call)
{
    tx_request_free(call->req);
    tx_result_clear(&call->res);
    memset(call, 0, sizeof *call);
}

int call_http_post(const char *base, const char *path, const char *content_type,
                   const char *auth_value, const buf_t *body, long timeout_ms, call_t *call,
                   outcome_t *out)
{
    char url[CALL_URL_MAX];
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--; /* a configured base may end in "/"; the path starts with one */
    int n = snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path);
    if (n < 0 || (size_t)n >= sizeof url) {
        outcome_fail(out, ERRC_INVALID_INPUT, 0, "transport", "the API URL is too long");
        return -1;
    }
    tx_request_t *req =
        tx_http_new("POST", url, body->data ? body->data : "", body->len, timeout_ms);
    char ctype[96], auth[1024];
    snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
    n = snprintf(auth, sizeof auth, "Authorization: %s", auth_value);
    int rc = req ? 0 : -1;
    rc |= rc == 0 ? tx_http_add_header(req, ctype) : 0;
    rc |= rc == 0 ? tx_http_add_header(req, "Accept: application/json") : 0;
    rc |= rc == 0 && n > 0 && (size_t)n < sizeof auth ? tx_http_set_auth(req, auth) : -1;
    explicit_bzero(auth, sizeof auth);
    if (rc != 0) {
        tx_request_free(req);
        outcome_fail(out, ERRC_TRANSIENT, 0, "transport", "cannot build the request");
        return -1;
    }
    call->req = req;
    return 0;
}

int call_answer(const call_t *call, outcome_t *out)
{
    if (!call->submitted) {
        outcome_fail(out, ERRC_TRANSIENT, 0, "transport", "cannot submit the request");
        return -1;
    }
    const tx_result_t *res = &call->res;
    if (res->err != TX_OK) {
        char why[320];
        snprintf(why, sizeof why, "%s: %s", tx_err_name(res->err), res->text);
        outcome_fail(out, ERRC_TRANSIENT, 0, "transport", why);
        return -1;
    }
    out->answered = 1;
    return 0;
}
