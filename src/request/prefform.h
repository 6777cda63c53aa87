/* prefform: the body of the preference page's forms (POST
 * /u/{token}/preferences, application/x-www-form-urlencoded), parsed and
 * validated into the store's change, as prefbody does for the API.
 *
 *   form_token         required: the signed token of the form (the caller
 *                      checks it)
 *   action             "save" (the default) or "unsubscribe_email", which
 *                      opts out of email and takes no other field
 *   preferred_channel  one of the channels the page shows; it goes first
 *                      in preferred_channels, the others keep their order
 *   quiet              "none", or "hours" with quiet_start and quiet_end
 *                      ("HH:MM", 24 h, different; start after end wraps
 *                      midnight); the times are not read with "none"
 *   opt_out_<channel>  "1" when ticked; for each channel the page shows, a
 *                      box not sent is a box not ticked, so the page always
 *                      says every opt-out of those channels
 * A channel the page does not show (no address or number for it) cannot be
 * chosen or changed. Any other field, a field given twice, or a value out
 * of its range is refused with a message naming the field; a body that
 * changes nothing is not refused (the page always sends everything). */
#ifndef CRIER_REQUEST_PREFFORM_H
#define CRIER_REQUEST_PREFFORM_H

#include "request/request.h"
#include "store/clients.h"

#include <stddef.h>

#define PREFFORM_TOKEN_MAX 64

/* What the form was made for. */
typedef struct prefform_ctx {
    unsigned shown;             /* CH_BIT of each channel the page shows */
    const char *preferred_json; /* the client's preferred_channels now (JSON array) */
} prefform_ctx_t;

typedef struct prefform {
    char form_token[PREFFORM_TOKEN_MAX + 1];
    int unsubscribe_email;       /* 1: the one-button unsubscribe from all email */
    store_prefs_change_t change; /* its strings point into this struct */
    char preferred_json[64];
} prefform_t;

/* Parses body[0..len) for a page made as ctx says. 0 with *out filled, or
 * -1 with *err (out then empty). */
int prefform_parse(const char *body, size_t len, const prefform_ctx_t *ctx, prefform_t *out,
                   req_error_t *err);

#endif
