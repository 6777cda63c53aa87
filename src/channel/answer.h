/* answer: reading a provider's JSON answer to a send, the part every HTTP
 * provider shares (Twilio, the WhatsApp Cloud API): a bound on its size, a
 * JSON object or not, a 2xx or not. What the object says is the
 * provider's own (its ops). */
#ifndef CRIER_ANSWER_H
#define CRIER_ANSWER_H

#include "channel/errclass.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct answer_ops {
    const char *provider; /* "twilio": how messages start */
    size_t max;           /* the most bytes an answer may have */
    /* A 2xx answer that is a JSON object: 0 when it names the message made,
     * else -1 after fail. */
    int (*success)(const cJSON *root, void *res);
    /* Any other answer that is a JSON object: records the failure it says. */
    void (*error)(const cJSON *root, int http_status, void *res);
    /* The category of a non-2xx answer that is no JSON, from its status. */
    errc_t (*status_category)(int http_status);
    /* Records a failure of category c with message msg in res. */
    void (*fail)(void *res, errc_t c, const char *msg);
} answer_ops_t;

/* Reads body (NUL-terminated or NULL), the answer of HTTP status
 * http_status, into res through ops. Returns 0 when the provider took the
 * message, else -1 with the failure recorded. An answer over ops->max, or
 * one that is no JSON object, is a transient failure unless its status
 * says otherwise (a permanent one is then retried too: what is not clearly
 * ours to fix is worth a retry). */
int answer_read(const answer_ops_t *ops, int http_status, const char *body, void *res);

/* The string member name of o, or NULL when it is missing or no string. */
const char *answer_str(const cJSON *o, const char *name);

#endif
