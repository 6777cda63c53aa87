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
    char phase[8];     /* the command the last reply answered: "mail", "rcpt", "data"
                          (the DATA command or the end of the message), ... ; "" unknown */
    char text[256];    /* last reply line or curl's error, never a secret */
} smtp_result_t;

/* Classifies a final reply: its code and enhanced code ("" or NULL if
 * none). 0 means no reply arrived at all. */
errc_t smtp_classify(int reply_code, const char *enhanced);

/* 1 when a final reply says the recipient's address itself is dead, so that
 * mail to it must stop (a hard bounce, which suppresses the address): a 5yz
 * reply to RCPT or DATA (phase "rcpt" or "data"), permanent by
 * smtp_classify, whose enhanced code is one
 * of bad destination mailbox (5.1.1), bad destination system (5.1.2), bad
 * mailbox address syntax (5.1.3), mailbox moved without forwarding
 * (5.1.6), a domain that accepts no mail (null MX, 5.1.10) or mailbox
 * disabled (5.2.1). Everything else is 0: a reply to MAIL FROM is about
 * our sender, a 5yz without an enhanced code says too little, and policy
 * or content refusals (5.7.x, 5.2.2 mailbox full, 5.3.4 too big) fail the
 * message without saying the address is gone. */
int smtp_hard_bounce(int reply_code, const char *enhanced, const char *phase);

#endif
