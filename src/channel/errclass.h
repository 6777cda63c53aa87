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

#endif
