/* smtp_easy: one SMTP transfer on a curl easy handle that the transport's
 * multi loop drives.
 *
 * The email driver's SMTP call (driver/smtp_call.h) sets the handle up
 * (smtp_easy_setup), loads one message onto it (smtp_easy_begin), and when
 * the multi reports the transfer done turns the outcome into an
 * smtp_result_t (smtp_easy_finish): the server's last reply, its
 * classification, and a text with no secret or address in it. */
#ifndef CRIER_SMTP_EASY_H
#define CRIER_SMTP_EASY_H

#include "channel/smtp.h"

#include <curl/curl.h>

#include <stddef.h>

/* Longest SMTP reply line kept (RFC 5321 §4.5.3.1.5 allows 512). */
#define SMTP_EASY_LINE_MAX 512

/* Per-transfer state the curl callbacks write into. It must stay at the same
 * address while the handle that was set up with it is alive. */
typedef struct smtp_wire {
    char line[SMTP_EASY_LINE_MAX]; /* last reply line, CRLF stripped */
    size_t line_len;
    char phase[8];  /* the last command sent ("mail", "rcpt", "data", ...) */
    const char *up; /* message bytes still to upload; borrowed */
    size_t up_left;
    char errbuf[CURL_ERROR_SIZE];
} smtp_wire_t;

/* Sets every per-connection option on h (URL, TLS policy and verification,
 * no signals, timeout, upload, reply capture into w, credentials) and
 * registers the password as a log secret. Returns 0, or -1 for a URL that is
 * neither smtp:// nor smtps:// or an option curl refused. The commands curl
 * sends are watched (CURLOPT_DEBUGFUNCTION) only for their verb, so that
 * the result can say which command the last reply answered. */
int smtp_easy_setup(CURL *h, const smtp_settings_t *s, smtp_wire_t *w);

/* 1 when a is a bare address safe on an SMTP command line. */
int smtp_easy_addr_ok(const char *a);

/* Prepares h for one message: envelope, size, upload source msg[0..len)
 * (borrowed until the transfer ends) and a cleared reply. *rcpts receives
 * the recipient list, which the caller must keep alive until the transfer
 * ends and then free with curl_slist_free_all. Returns 0, or -1 with res
 * filled (invalid address, out of memory). */
int smtp_easy_begin(CURL *h, smtp_wire_t *w, const char *from, const char *rcpt, const char *msg,
                    size_t len, struct curl_slist **rcpts, smtp_result_t *res);

/* Turns a finished transfer (rc from the multi's done message) into res:
 * reply code, enhanced code, category, scrubbed text. Detaches the recipient
 * list and upload from h. Returns 0 when the server accepted the
 * message, -1 otherwise. password may be NULL. */
int smtp_easy_finish(CURL *h, CURLcode rc, smtp_wire_t *w, const char *password, const char *from,
                     const char *rcpt, smtp_result_t *res);

#endif
