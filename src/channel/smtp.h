/* smtp: what an SMTP send is configured with, what its outcome looks like,
 * and how a reply is judged.
 *
 * The sending itself runs on the transport's loop (src/transport/): the
 * email driver's SMTP call (driver/smtp_call.h) sets each transfer up with
 * the per-transfer pieces in channel/smtp_easy.h. Replies are
 * classified by the reply code and the RFC 3463 enhanced status code (4xx
 * transient, 5xx permanent, with the exceptions smtp_classify explains). */
#ifndef CRIER_SMTP_H
#define CRIER_SMTP_H

#include "channel/errclass.h"

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

/* Classifies a final reply: its code and enhanced code ("" or NULL if
 * none). 0 means no reply arrived at all. */
errc_t smtp_classify(int reply_code, const char *enhanced);

#endif
