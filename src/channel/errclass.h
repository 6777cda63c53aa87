/* errclass: the seed's error categories, shared by every channel. */
#ifndef CRIER_ERRCLASS_H
#define CRIER_ERRCLASS_H

typedef enum {
    ERRC_NONE = 0,      /* success */
    ERRC_TRANSIENT,     /* retry with backoff */
    ERRC_PERMANENT,     /* do not retry this message */
    ERRC_RATE_LIMIT,    /* retry after the provider's window */
    ERRC_AUTH_FAILURE,  /* our credentials are wrong: alert */
    ERRC_INVALID_INPUT, /* the message itself is malformed */
} errc_t;

/* "transient", "permanent", ... ; "none" for ERRC_NONE. */
const char *errc_name(errc_t c);
/* The category errc_name names; ERRC_PERMANENT for NULL or any other
 * word (what cannot be classified is not retried). */
errc_t errc_from_name(const char *name);
/* What an HTTP provider's status alone says, the same for every provider:
 * 429 a rate limit, 5xx transient, 401/403 our credentials; ERRC_NONE when
 * the status says nothing more (the provider's code decides). */
errc_t errc_from_http_status(int http_status);

#endif
