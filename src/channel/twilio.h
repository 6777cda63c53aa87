/* twilio: the wire format of Twilio's Messages API (SMS), without the network.
 *
 * twilio_build_send turns a message into the request the transport sends:
 * the path under the API base (TWILIO_API_BASE), the form body and the
 * Authorization value. twilio_parse_response turns Twilio's answer into a
 * message SID or an error category for the retry policy. The error-code
 * table follows the provider reference (Twilio error codes, "Error codes:
 * classification for retry logic"). */
#ifndef CRIER_TWILIO_H
#define CRIER_TWILIO_H

#include "channel/errclass.h"
#include "util/buf.h"

#include <stddef.h>
#include <time.h>

#define TWILIO_API_VERSION       "2010-04-01"
#define TWILIO_BODY_MAX_CHARS    1600  /* Twilio's documented Body limit */
#define TWILIO_CALLBACK_MAX      4000  /* StatusCallback limit (error 21609) */
#define TWILIO_FORM_MAX          32768 /* every field percent-encoded at worst */
#define TWILIO_RESPONSE_MAX      65536 /* larger answers are not Twilio's */
#define TWILIO_VALIDITY_MAX      36000 /* ValidityPeriod range is 1..36000 s */
#define TWILIO_RATE_RETRY_NONE   (-1)
#define TWILIO_PUMPING_RETRY_SEC 1800 /* 30450: temporary block of 15-30 min */

typedef struct twilio_send {
    const char *account_sid;           /* "AC" + 32 alphanumerics; goes into the path */
    const char *auth_user;             /* NULL or "": the account SID; else an API key SID */
    const char *auth_token;            /* the auth token or API key secret */
    const char *to;                    /* E.164, or "whatsapp:" + E.164 */
    const char *from;                  /* NULL or "" when messaging_service_sid is set */
    const char *messaging_service_sid; /* NULL or "" unless sending via a service */
    const char *body;                  /* UTF-8, 1..1600 characters */
    const char *status_callback;       /* NULL or "": none; else absolute http(s) URL */
    int validity_period;               /* 0: Twilio's default; else 1..36000 s */
} twilio_send_t;

typedef struct twilio_request {
    char path[80];       /* "/2010-04-01/Accounts/AC…/Messages.json" */
    buf_t form;          /* owned: application/x-www-form-urlencoded body */
    buf_t authorization; /* owned: "Basic …"; a secret, wiped on free, never log it */
} twilio_request_t;

typedef struct twilio_result {
    errc_t category;   /* ERRC_NONE when Twilio accepted the message */
    int http_status;   /* as given */
    int error_code;    /* Twilio's code, 0 when none */
    int retry_after;   /* seconds to wait before retrying, TWILIO_RATE_RETRY_NONE if no hint */
    int opt_out;       /* 1 on 21610: the recipient replied STOP; record the opt-out */
    char sid[64];      /* "SM…"/"MM…" on success, else "" */
    char status[32];   /* queued, accepted, scheduled, ... on success, else "" */
    char message[256]; /* Twilio's error text (digit runs of phone length masked) or ours */
} twilio_result_t;

/* Builds the send request into out (which the caller frees with
 * twilio_request_free, even on failure). Returns ERRC_NONE, ERRC_INVALID_INPUT
 * for a malformed message (to, from, body, callback) or ERRC_AUTH_FAILURE for
 * missing or malformed credentials; err says which field. */
errc_t twilio_build_send(const twilio_send_t *in, twilio_request_t *out, char *err, size_t errlen);
void twilio_request_free(twilio_request_t *r);

/* Appends s percent-encoded for a form body: every byte except A-Z a-z 0-9
 * - . _ ~ becomes %XX (so "+" is %2B and space is %20). */
int twilio_form_escape(buf_t *out, const char *s);

/* Reads Twilio's answer to a send. body may be NULL (no body); retry_after is
 * the Retry-After header value or NULL. Returns 0 when the message was
 * accepted (sid and status set), -1 otherwise (category set, never
 * ERRC_NONE). Malformed or oversized JSON is ERRC_TRANSIENT. */
int twilio_parse_response(int http_status, const char *body, const char *retry_after_header,
                          twilio_result_t *out);

/* The category of a Twilio error code; http_status decides for codes the
 * table does not know (0 when there is none, e.g. an ErrorCode in a status
 * callback). Exported for the status-callback handler. */
errc_t twilio_classify(int code, int http_status);

/* Seconds to wait per a Retry-After value, which HTTP allows as
 * delta-seconds or an HTTP-date (RFC 9110 10.2.3); now is the current time.
 * -1 when the value is missing or unreadable; a date in the past gives 0. */
int twilio_retry_after_seconds(const char *value, time_t now);

#endif
