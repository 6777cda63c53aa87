/* privacy: a client's data subject rights on the data model — the export of
 * everything crier holds on one client (GDPR Art. 15 and 20) and its
 * erasure (Art. 17). Both read or change every table that can hold
 * something of the client; docs/privacy.md says what each keeps. */
#ifndef CRIER_STORE_PRIVACY_H
#define CRIER_STORE_PRIVACY_H

#include "crypto/crypto.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Opens the transaction an export runs in: REPEATABLE READ, so that every
 * section of the document comes from one snapshot (a message sent while
 * the export is read is in all of its sections or in none). 0, or -1 with
 * err. */
int store_export_begin(PGconn *conn, char *err, size_t errlen);

/* The export document of client_id (lower-case UUID) as JSON text, owned
 * by the caller: the client with its name, email and phone decrypted, its
 * preferences, the suppression of its address (email_suppression, or
 * null), consent ledger, communications (decrypted subjects, each
 * with its events and attachments), inbound messages (decrypted sender and
 * text), workflow callbacks (decrypted bodies) and the audit entries about
 * it. Every column of those rows is there except the ciphertexts and the
 * blind indexes, which hold the same facts in another form. Runs in the
 * caller's transaction (store_export_begin). Returns 0, 1 when there is no
 * such client, 2 when it was erased, -1 with err (a token that does not
 * decrypt fails the whole export: a partial one would not be complete). */
int store_client_export_json(PGconn *conn, const cry_keys_t *keys, const char *client_id,
                             char **json, char *err, size_t errlen);

/* What an erasure changed. */
typedef struct store_erase_counts {
    char erased_at[32];   /* ISO-8601 UTC, as the API writes times */
    int communications;   /* rows scrubbed (all of the client's) */
    int cancelled;        /* of those, not yet sent: now skipped, reason "erased" */
    int events;           /* delivery events whose provider detail was dropped */
    int attachments;      /* attachments deleted */
    int inbound;          /* inbound messages whose sender and text were dropped */
    int callbacks;        /* workflow callbacks stripped to their ids */
    int callbacks_failed; /* of those, not yet delivered: now failed */
} store_erase_counts_t;

/* Erases client_id (lower-case UUID) in one transaction: the caller's when
 * one is open (so that its audit entry commits with the erasure), else one
 * of its own. Locks the client row first, so that an intake upsert or a
 * second erasure waits. Consent revocations it causes are ledgered with
 * source "erasure" and actor (a token's label). Returns 0 with *counts, 1
 * when there is no such client, 2 when it was erased already (nothing
 * changes), -1 with err (the transaction is then aborted). */
int store_client_erase(PGconn *conn, const char *client_id, const char *actor,
                       store_erase_counts_t *counts, char *err, size_t errlen);

#endif
