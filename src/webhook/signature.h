/* signature: proof that a webhook request really comes from the provider.
 *
 * Twilio signs with X-Twilio-Signature (HMAC-SHA1 under the account's auth
 * token over the URL and the posted parameters), Meta with X-Hub-Signature-256
 * (HMAC-SHA256 under the app secret over the raw body), and Meta's GET
 * subscription handshake proves we know the verify token.
 *
 * Every check returns 1 when the request is genuine and 0 otherwise, so a
 * failure of any kind (including out of memory) refuses the request. The
 * optional why tells the caller which failure it was, for the response code
 * and the log; none of these functions logs or copies a secret anywhere. */
#ifndef CRIER_WEBHOOK_SIGNATURE_H
#define CRIER_WEBHOOK_SIGNATURE_H

#include "webhook/form.h"

#include <stddef.h>

typedef enum {
    SIG_OK,            /* genuine */
    SIG_MISSING,       /* no signature header / no verify token given */
    SIG_MALFORMED,     /* header, URL or handshake fields not in the expected form */
    SIG_MISMATCH,      /* well-formed but wrong: forged, tampered, or a wrong secret */
    SIG_BODY_MISMATCH, /* Twilio bodySHA256 missing, duplicated or not the body's hash */
    SIG_UNCONFIGURED,  /* our own secret is empty or absurdly long */
    SIG_INTERNAL       /* out of memory or a crypto library failure */
} sig_reason_t;

/* A stable lower-case name for logs and metrics ("mismatch", ...). */
const char *sig_reason_name(sig_reason_t why);

/* Twilio, form-encoded POST (and GET, with params NULL: the query string is
 * then already part of url).
 * url: the public URL exactly as Twilio requested it (scheme, host, optional
 * port, path and query), i.e. our public base URL + path + query.
 * params: the decoded body, any order, duplicates allowed; NULL means none.
 * Accepts a signature over url itself, over url without its port, or over url
 * with the scheme's default port added (Twilio signs inconsistently there).
 * A url whose query carries bodySHA256 is refused here: that request has a raw
 * body, and only sig_twilio_body_valid checks it. */
int sig_twilio_valid(const char *auth_token, const char *url, const form_pairs_t *params,
                     const char *header_value, sig_reason_t *why);

/* Twilio, raw (e.g. JSON) body: url's query must carry bodySHA256 = lower-case
 * hex SHA-256 of body[0..len), and the signature covers the URL alone (with
 * the same port leniency as above). */
int sig_twilio_body_valid(const char *auth_token, const char *url, const void *body, size_t len,
                          const char *header_value, sig_reason_t *why);

/* Meta: header_value is "sha256=" followed by the 64-digit hex HMAC-SHA256 of
 * the raw body under the app secret; the hex digits may be in either case. */
int sig_meta_valid(const char *app_secret, const void *raw_body, size_t len,
                   const char *header_value, sig_reason_t *why);

/* Longest hub.challenge we echo back. */
#define SIG_CHALLENGE_MAX 256

/* Meta GET handshake: mode must be "subscribe" and token our verify token.
 * The challenge is echoed as the response body, so it must be 1 to
 * SIG_CHALLENGE_MAX visible ASCII characters (Meta sends digits; the
 * reference does not promise that, so we do not require it, but nothing that
 * could break out of a text/plain body is echoed). On success *answer points
 * at challenge (borrowed from the caller); otherwise it is NULL. */
int sig_meta_handshake(const char *verify_token, const char *mode, const char *token,
                       const char *challenge, const char **answer, sig_reason_t *why);

#endif
