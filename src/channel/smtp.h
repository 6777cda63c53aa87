/* smtp: sending a finished message over SMTP with libcurl.
 *
 * One smtp_client per worker thread: it keeps a curl handle, so the SMTP
 * connection is reused between messages. Replies are classified per the
 * reply code and the enhanced status code (4xx transient, 5xx permanent). */
#ifndef CRIER_SMTP_H
#define CRIER_SMTP_H

#include "channel/errclass.h"

#include <stddef.h>

typedef struct smtp_client smtp_client_t;

typedef struct smtp_settings {
    const char *url;      /* smtp://host:port or smtps://host:port */
    int tls_required;     /* STARTTLS required on smtp:// */
    const char *username; /* may be NULL or "" */
    const char *password; /* may be NULL or "" */
    long timeout_ms;
} smtp_settings_t;

typedef struct smtp_result {
    errc_t category;   /* ERRC_NONE on success */
    int reply_code;    /* last SMTP reply code, 0 if none (connect failed) */
    char enhanced[16]; /* e.g. "5.1.1", "" if the server gave none */
    char text[256];    /* last reply line or curl's error, never a secret */
} smtp_result_t;

smtp_client_t *smtp_client_new(const smtp_settings_t *s);
void smtp_client_free(smtp_client_t *c);
/* Sends msg[0..len) from envelope_from to rcpt (bare addresses). Returns 0
 * when the server accepted it, -1 otherwise; res says why either way. */
int smtp_send(smtp_client_t *c, const char *envelope_from, const char *rcpt, const char *msg,
              size_t len, smtp_result_t *res);
/* Classifies a reply: code, enhanced ("" if none); exported for tests. */
errc_t smtp_classify(int reply_code, const char *enhanced);

#endif
