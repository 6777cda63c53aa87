/* prefbody: the body of PUT /v1/clients/{id}/preferences (and of the
 * seed's POST /api/crm/preferences, which names the client in the body),
 * parsed and validated into the store's change. Every field is optional,
 * but a body must change something:
 *   preferred_channels  1 to 3 distinct channels, best first
 *   quiet_hours_start, quiet_hours_end  "HH:MM" (24 h; start after end wraps
 *                       midnight), or both null for none; given together
 *   opt_out_email | opt_out_sms | opt_out_whatsapp  booleans
 *   timezone            an IANA name
 * Any other field is refused, so that a misspelt one is not silently
 * ignored. */
#ifndef CRIER_REQUEST_PREFBODY_H
#define CRIER_REQUEST_PREFBODY_H

#include "request/request.h"
#include "store/clients.h"

#include <stddef.h>

typedef struct prefbody {
    char client_id[37];          /* lower case; only with want_client_id */
    store_prefs_change_t change; /* its strings point into this struct */
    char preferred_json[64];     /* the channels as a JSON array */
    char timezone[65];
} prefbody_t;

/* Parses body[0..len); want_client_id: the body must hold "client_id".
 * 0 with *out filled, or -1 with *err (naming the field). */
int prefbody_parse(const char *body, size_t len, int want_client_id, prefbody_t *out,
                   req_error_t *err);

/* 1 when s is "HH:MM" with HH 00-23 and MM 00-59, exactly five
 * characters: a time of quiet hours. */
int prefbody_hhmm(const char *s);

#endif
