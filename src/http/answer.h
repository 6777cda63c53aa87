/* answer: an HTTP answer (status, JSON body, the few extra headers crier
 * sends) as a plain value, so handlers and the intake writer can build one
 * without knowing about libmicrohttpd. */
#ifndef CRIER_HTTP_ANSWER_H
#define CRIER_HTTP_ANSWER_H

#include <stddef.h>

typedef struct http_answer {
    int status;
    char *body; /* owned, JSON text; NULL only after an allocation failure */
    size_t len;
    const char *allow; /* static: the Allow header of a 405, or NULL */
    int www_auth;      /* 1: send WWW-Authenticate: Bearer (401) */
} http_answer_t;

/* Sets a to status with body (ownership moves to a; may be NULL on OOM). */
void http_answer_json(http_answer_t *a, int status, char *body);
/* Sets a to status with {"error":{"code":code,"message":message}}. */
void http_answer_error(http_answer_t *a, int status, const char *code, const char *message);
/* Frees the body and clears a. */
void http_answer_free(http_answer_t *a);
/* Moves src into dst (dst must be empty); src is left empty. */
void http_answer_move(http_answer_t *dst, http_answer_t *src);

#endif
