/* request: the body of POST /v1/communications, parsed and validated into a
 * C value. Nothing here touches the database: everything that can be said
 * about a request from its bytes alone is said here, so a rejected request
 * never reaches the writer.
 *
 * Below the engine and the policy, which consume the value, and below the
 * API and the CLI, which both read requests (`crier rules dry-run` validates
 * exactly as the API does). A refusal says what kind of fault it is; which
 * HTTP status and error code that is, is the API's to say. */
#ifndef CRIER_REQUEST_H
#define CRIER_REQUEST_H

#include "channel/ch.h"
#include "store/store.h"

#include <stddef.h>

#define REQ_MAX_DEPTH       32   /* nesting of arrays/objects */
#define REQ_MAX_ARRAY       1000 /* elements of any array */
#define REQ_MAX_ATTACHMENTS 10
#define REQ_NAME_MAX        200 /* characters */
#define REQ_LOCALE_MAX      16
#define REQ_FILENAME_MAX    200
/* The plan of crier's own messages (a preferences confirmation), which
 * belong to no plan: the nil UUID, which no plan has (plans have random,
 * version 4 ids) and no request may name. */
#define REQ_NO_PLAN "00000000-0000-0000-0000-000000000000"

typedef struct req_client {
    int present;       /* 1 when the body had a "client" object */
    char *name;        /* owned; NULL when not given */
    char *email;       /* owned; NULL when not given */
    char *phone;       /* owned; NULL when not given */
    char *timezone;    /* owned; NULL when not given */
    char *locale;      /* owned; NULL when not given */
    int consent[CH_N]; /* by ch_id_t: -1 not given, 0, 1 */
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

/* What is wrong with a refused request. */
typedef enum {
    REQ_BAD_JSON = 1, /* no JSON, or JSON crier does not read (NUL, raw controls, trailing data) */
    REQ_BAD_UTF8,     /* the bytes are not UTF-8 */
    REQ_TOO_DEEP,     /* nested deeper than REQ_MAX_DEPTH */
    REQ_BAD_FIELD,    /* JSON, but a field breaks its rule */
    REQ_NO_MEMORY,    /* nothing wrong with the request: an allocation failed */
} req_err_t;

typedef struct req_error {
    req_err_t kind;
    char message[256]; /* names the field, never echoes a value */
} req_error_t;

/* Parses body[0..len). max_decoded bounds the decoded size of all
 * attachments together. Returns 0 with *out filled (free with req_free), or
 * -1 with *err filled and *out empty. */
int req_parse(const char *body, size_t len, size_t max_decoded, req_comm_t *out, req_error_t *err);
void req_free(req_comm_t *r);

/* The body of PUT /v1/clients/{id}: a client object as in a request
 * (req_client_t's rules; fields named without "client."). 0 with *out
 * filled (free with req_client_free), or -1 with *err and *out empty. */
int req_parse_client_body(const char *body, size_t len, req_client_t *out, req_error_t *err);
void req_client_free(req_client_t *c);

/* Fills err as a REQ_BAD_FIELD refusal whose message (which names the
 * field, never echoes its value) is fmt; returns -1. */
int req_field(req_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct cJSON;
/* What every JSON body crier reads goes through: UTF-8, no NUL or raw
 * controls in strings, at most REQ_MAX_DEPTH deep and REQ_MAX_ARRAY
 * elements an array, one object and nothing after it. 0 with *root (free
 * with cJSON_Delete), or -1 with *err. */
int req_json_parse(const char *body, size_t len, struct cJSON **root, req_error_t *err);

/* 1 when s is a valid Idempotency-Key: 1..200 printable ASCII characters. */
int req_idempotency_key_ok(const char *s);
/* Copies a valid UUID in lower case into out; 0, or -1 when s is no UUID. */
int req_uuid_lower(const char *s, char out[37]);

#endif
