#include "http/answer.h"

#include "util/buf.h"
#include "util/json_text.h"

#include <stdlib.h>
#include <string.h>

/* Error bodies are short; this only guards against a runaway message. */
#define ANSWER_ERROR_MAX 4096

void http_answer_json(http_answer_t *a, int status, char *body)
{
    memset(a, 0, sizeof *a);
    a->status = status;
    a->body = body;
    a->len = body ? strlen(body) : 0;
}

void http_answer_bytes(http_answer_t *a, int status, const void *body, size_t len)
{
    memset(a, 0, sizeof *a);
    a->status = status;
    a->body = malloc(len ? len : 1);
    if (!a->body)
        return;
    if (len)
        memcpy(a->body, body, len);
    a->len = len;
}

void http_answer_redirect(http_answer_t *a, int status, const char *location)
{
    buf_t b;
    buf_init(&b, ANSWER_ERROR_MAX + strlen(location) * 6);
    int rc = buf_puts(&b, "{\"location\":");
    rc |= jtext_string(&b, location);
    rc |= buf_putc(&b, '}');
    char *loc = strdup(location);
    if (rc != 0 || !loc) {
        buf_free(&b);
        free(loc);
        http_answer_json(a, 500, NULL);
        return;
    }
    http_answer_json(a, status, buf_detach(&b));
    a->location = loc;
}

void http_answer_error(http_answer_t *a, int status, const char *code, const char *message)
{
    buf_t b;
    buf_init(&b, ANSWER_ERROR_MAX);
    int rc = buf_puts(&b, "{\"error\":{\"code\":");
    rc |= jtext_string(&b, code);
    rc |= buf_puts(&b, ",\"message\":");
    rc |= jtext_string(&b, message ? message : "");
    rc |= buf_puts(&b, "}}");
    if (rc != 0) {
        buf_free(&b);
        http_answer_json(a, status, NULL);
        return;
    }
    http_answer_json(a, status, buf_detach(&b));
}

void http_answer_free(http_answer_t *a)
{
    free(a->body);
    free(a->location);
    free(a->set_cookie);
    memset(a, 0, sizeof *a);
}

void http_answer_move(http_answer_t *dst, http_answer_t *src)
{
    *dst = *src;
    memset(src, 0, sizeof *src);
}
