/* audit: the audit log of who read, exported, changed or erased a client's
 * personal data (GDPR Art. 5(2) accountability), and the settings that say
 * who and what changes consent inside a transaction (the consent ledger's
 * triggers read them, see sql/006_clients_privacy.sql). */
#ifndef CRIER_STORE_AUDIT_H
#define CRIER_STORE_AUDIT_H

#include <libpq-fe.h>
#include <stddef.h>

/* One audit entry. Strings are borrowed; NULL or "" leaves a column empty
 * (actor becomes "unknown"). detail_json, when given, is a JSON object that
 * holds no personal data itself (ids, counts, field names). */
typedef struct store_audit {
    const char *actor;        /* a token's label, or "cli" */
    const char *action;       /* "client.read", "client.export", "client.erase", ... */
    const char *subject_type; /* "client" */
    const char *subject_id;
    const char *address; /* the peer's address, or "cli" */
    const char *detail_json;
} store_audit_t;

/* Appends the entry, in the caller's transaction if one is open. 0, or -1
 * with err. */
int store_audit_write(PGconn *conn, const store_audit_t *a, char *err, size_t errlen);

/* Consent sources the ledger knows (its CHECK constraint lists the same). */
#define STORE_SOURCE_API              "api"
#define STORE_SOURCE_PREFERENCES      "preferences"
#define STORE_SOURCE_KEYWORD          "keyword"
#define STORE_SOURCE_PROVIDER_CODE    "provider_code"
#define STORE_SOURCE_UNSUBSCRIBE_LINK "unsubscribe_link"
#define STORE_SOURCE_PREFERENCE_PAGE  "preference_page"
#define STORE_SOURCE_ERASURE          "erasure"

/* Says, for the rest of the open transaction, what changes consent (one of
 * the sources above) and on whose authority (a token's label; NULL or ""
 * when none): every ledger row the transaction makes carries both. Outside
 * a transaction it lasts only for the statement, so call it after
 * db_begin. 0, or -1 with err. */
int store_consent_context(PGconn *conn, const char *source, const char *actor, char *err,
                          size_t errlen);

#endif
