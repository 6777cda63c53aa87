/* suppress: the email suppression list (sql/009_suppressions.sql). An
 * address that hard-bounced is suppressed by its blind index, never by the
 * address itself: later email to it is not sent, and the policy sees the
 * client's email as unusable. A client whose address changes has another
 * index and is no longer suppressed. Every function takes a connection the
 * caller owns and runs as one statement (its own transaction when the
 * caller has none open). */
#ifndef CRIER_STORE_SUPPRESS_H
#define CRIER_STORE_SUPPRESS_H

#include <libpq-fe.h>
#include <stddef.h>

/* Clients told about at most: those whose address is the one suppressed
 * (one in practice; a few when clients share an address). The others'
 * cached facts are still checked by version, so none is ever misread. */
#define SUPP_CHANGED_MAX 8

/* What a hard bounce records. */
typedef struct supp_bounce {
    const char *email_bidx;       /* the bounced address's blind index (64 hex) */
    int smtp_code;                /* the reply code, e.g. 550 */
    const char *enhanced;         /* e.g. "5.1.1" */
    const char *communication_id; /* the message that bounced; may be NULL */
} supp_bounce_t;

/* Suppresses b's address for a hard bounce; an address already suppressed
 * keeps its first entry (*created 0). The suppression moves the preference
 * version of every client with that address (a trigger), and changed
 * receives the ids of up to SUPP_CHANGED_MAX of them, for the preference
 * cache. 0, or -1 with err. */
int supp_hard_bounce(PGconn *conn, const supp_bounce_t *b, int *created,
                     char changed[SUPP_CHANGED_MAX][37], int *n_changed, char *err, size_t errlen);

#endif
