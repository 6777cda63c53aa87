/* review: what an operator does with a communication whose every channel
 * failed — send it again as the rules decide now, or close it with a note.
 * The queue itself is a listing (store/review.h); the review opens in the
 * database when a chain ends (sql/013_review.sql). */
#ifndef CRIER_REVIEW_H
#define CRIER_REVIEW_H

#include "app.h"

#include <libpq-fe.h>
#include <stddef.h>

typedef enum {
    REVIEW_DONE = 0,
    REVIEW_NOT_FOUND = 1, /* no such communication */
    REVIEW_NOT_OPEN = 2,  /* it is not waiting for review: nothing changed */
    REVIEW_ERASED = 3,    /* its client was erased: nothing to send to */
    REVIEW_FAILED = -1,   /* err says why; nothing changed */
} review_rc_t;

/* Decides the communication id again with the live rules and what is known
 * of its client now, and queues the new chain, in one transaction on conn.
 * On REVIEW_DONE *json (the caller's, free) is {"communication_id",
 * "status", "decision"}. */
review_rc_t review_retry(app_t *app, PGconn *conn, const char *id, char **json, char *err,
                         size_t errlen);

/* Closes the review of id with note (may be NULL). */
review_rc_t review_resolve(PGconn *conn, const char *id, const char *note, char *err,
                           size_t errlen);

#endif
