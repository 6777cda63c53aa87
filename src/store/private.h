/* private: what the files of store/ share and nothing outside uses (the
 * layer check keeps it that way only by convention: include it from
 * store/ alone). Defined in store.c. */
#ifndef CRIER_STORE_PRIVATE_H
#define CRIER_STORE_PRIVATE_H

#include "crypto/crypto.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Writes "what: detail" (or "what") into err; returns -1. */
int store_fail(char *err, size_t errlen, const char *what, const char *detail);
/* Decrypts column col of row 0 into a new string (*out, owned by the
 * caller); a NULL column gives NULL. -1 on a wrong key or a damaged token. */
int store_decrypt_col(const cry_keys_t *keys, const cry_place_t *at, PGresult *r, int col,
                      char **out);
char *store_strdup_col(PGresult *r, int col); /* row 0; NULL column -> NULL */
int store_bool_col(PGresult *r, int col);     /* row 0; NULL -> 0 */
char *store_strdup_row(PGresult *r, int row, int col);
int store_bool_row(PGresult *r, int row, int col);
/* Takes row 0 column 0 of r as a new string into *json and clears r: 0,
 * 1 when r has no row, -1 when out of memory. */
int store_json_result(PGresult *r, char **json, char *err, size_t errlen);

/* The API's communication object (without events), for a
 * json_build_object over communications c. 'sending' is an internal state:
 * to the API a message being handed over is still queued. */
#define STORE_COMM_JSON                                                                            \
    "'communication_id', c.id, 'plan_id', c.plan_id, 'client_id', c.client_id,"                    \
    " 'message_type', c.message_type, 'urgency', c.urgency,"                                       \
    " 'status', CASE c.status WHEN 'sending' THEN 'queued' ELSE c.status END,"                     \
    " 'channel', c.channel, 'attempts', c.attempts, 'send_at', crier_iso(c.send_at),"              \
    " 'sent_at', crier_iso(c.sent_at), 'delivered_at', crier_iso(c.delivered_at),"                 \
    " 'opened_at', crier_iso(c.opened_at), 'clicked_at', crier_iso(c.clicked_at),"                 \
    " 'error_message', c.error_message, 'error_category', c.error_category,"                       \
    " 'provider_code', c.provider_code, 'decision', c.decision,"                                   \
    " 'review', c.review, 'review_note', c.review_note, 'reviewed_at', crier_iso(c.reviewed_at),"  \
    " 'created_at', crier_iso(c.created_at)"

#endif
