/* smtp_call: one SMTP send as a transport request. The transport knows no
 * SMTP: this sets the easy handle up with channel/smtp_easy.h when the
 * transfer starts and turns its end into the transport's result (the
 * server's last reply, smtp_classify's verdict, a text with no secret or
 * address in it). */
#ifndef CRIER_SMTP_CALL_H
#define CRIER_SMTP_CALL_H

#include "transport/transport.h"

#include <stddef.h>

typedef struct smtp_call_params {
    const char *url;      /* smtp://host:port or smtps://host:port */
    int tls_required;     /* STARTTLS required on smtp:// */
    const char *username; /* may be NULL */
    const char *password; /* may be NULL */
    const char *from;     /* envelope sender, bare address */
    const char *rcpt;     /* envelope recipient, bare address */
    long timeout_ms;
} smtp_call_params_t;

/* An SMTP send of msg[0..len) (a finished RFC 5322 message). Every string
 * is copied; the request owns its copies. NULL when p lacks url, from or
 * rcpt, msg is NULL, or out of memory. */
tx_request_t *smtp_call_new(const smtp_call_params_t *p, const char *msg, size_t len);

#endif
