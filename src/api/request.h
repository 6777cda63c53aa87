/* request: the body of POST /v1/communications, parsed and validated into a
 * C value. Nothing here touches the database: everything that can be said
 * about a request from its bytes alone is said here, so a rejected request
 * never reaches the writer. */
#ifndef CRIER_API_REQUEST_H
#define CRIER_API_REQUEST_H

#include "store/store.h"

#include <stddef.h>

#define REQ_MAX_DEPTH       32   /* nesting of arrays/objects */
#define REQ_MAX_ARRAY       1000 /* elements of any array */
#define REQ_MAX_ATTACHMENTS 10
#define REQ_NAME_MAX        200 /* characters */
#define REQ_LOCALE_MAX      16
#define REQ_FILENAME_MAX    200

typedef struct req_client {
    int present;                                      /* 1 when the body had a "client" object */
    char *name;                                       /* owned; NULL when not given */
    char *email;                                      /* owned; NULL when not given */
    char *phone;                                      /* owned; NULL when not given */
    char *timezone;                                   /* owned; NULL when not given */
    char *locale;                                     /* owned; NULL when not given */
    int consent_email, consent_sms, consent_whatsapp; /* -1 not given, 0, 1 */
} req_client_t;

typedef struct req_comm {
    char plan_id[37];   /* lower-case UUID */
    char client_id[37]; /* lower-case UUID */
    char message_type[32];
    char urgency[12];
    char preferred_channel[12]; /* "" when null or absent */
    req_client_t client;
    char *context_json;              /* owned, compact JSON object text ("{}" by default) */
    store_attachment_t *attachments; /* owned, n_attachments entries, decoded */
    int n_attachments;
} req_comm_t;

typedef struct req_error {
    int status;        /* 400, 422 */
    char code[32];     /* invalid_json, invalid_utf8, json_too_deep, invalid_field */
    char message[256]; /* names the field, never echoes a value */
} req_error_t;

/* Parses body[0..len). max_decoded bounds the decoded size of all
 * attachments together. Returns 0 with *out filled (free with req_free), or
 * -1 with *err filled and *out empty. */
int req_parse(const char *body, size_t len, size_t max_decoded, req_comm_t *out, req_error_t *err);
void req_free(req_comm_t *r);

/* 1 when s is a valid Idempotency-Key: 1..200 printable ASCII characters. */
int req_idempotency_key_ok(const char *s);
/* Copies a valid UUID in lower case into out; 0, or -1 when s is no UUID. */
int req_uuid_lower(const char *s, char out[37]);

#endif
