/* answer: an HTTP answer (status, body, the few extra headers crier
 * sends) as a plain value, so handlers and the intake writer can build one
 * without knowing about libmicrohttpd. A handler that answers with a body
 * of its own kind (an HTML page, also for an error) names its type and may
 * add headers of its own. */
#ifndef CRIER_HTTP_ANSWER_H
#define CRIER_HTTP_ANSWER_H

#include <stddef.h>

typedef struct http_answer {
    int status;
    char *body; /* owned: JSON text, or the bytes of the route's ok_type in a 200;
                   NULL only after an allocation failure */
    size_t len;
    const char *allow; /* static: the Allow header of a 405, or NULL */
    int www_auth;      /* 1: send WWW-Authenticate: Bearer (401) */
    char *location;    /* owned: the Location header of a redirect (3xx), or NULL */
    char *set_cookie;  /* owned: one Set-Cookie header's value, or NULL */
    int no_cache;      /* 1: also tell HTTP/1.0 caches and revalidating ones not to
                          keep it (Pragma, Expires, no-cache, must-revalidate) */
    /* static, or NULL: the Content-Type of this answer whatever its status
     * (NULL: the route's type for a 200, JSON for everything else) */
    const char *ctype;
    /* static, or NULL: more headers, name and value in turn, NULL after
     * the last name */
    const char *const *headers;
} http_answer_t;

/* Sets a to status with body (ownership moves to a; may be NULL on OOM). */
void http_answer_json(http_answer_t *a, int status, char *body);
/* Sets a to status with a copy of body[0..len) (binary is fine): the bytes
 * of the route's ok_type. On OOM the body is NULL (a 500 is sent). */
void http_answer_bytes(http_answer_t *a, int status, const void *body, size_t len);
/* Sets a to a redirect (status 3xx) to location (copied; an absolute URL
 * without CR or LF, which the caller has made sure of), with a small JSON
 * body naming it. */
void http_answer_redirect(http_answer_t *a, int status, const char *location);
/* Sets a to status with {"error":{"code":code,"message":message}}. */
void http_answer_error(http_answer_t *a, int status, const char *code, const char *message);
/* Frees the body and clears a. */
void http_answer_free(http_answer_t *a);
/* Moves src into dst (dst must be empty); src is left empty. */
void http_answer_move(http_answer_t *dst, http_answer_t *src);

#endif
