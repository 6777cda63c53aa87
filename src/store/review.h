/* review: the communications whose every channel failed, as operators work
 * through them — a filtered listing, a new attempt chain, a close with a
 * note (sql/013_review.sql opens the review when a chain ends). */
#ifndef CRIER_STORE_REVIEW_H
#define CRIER_STORE_REVIEW_H

#include <libpq-fe.h>
#include <stddef.h>

#define STORE_REVIEW_NOTE_MAX 1000 /* bytes of an operator's note */

/* What GET /v1/communications filters on; NULL or 0 fields match all. */
typedef struct store_comm_filter {
    const char *status;        /* a communication status */
    const char *review;        /* open, retried or resolved */
    const char *plan_id;       /* a lower-case UUID */
    const char *client_id;     /* a lower-case UUID */
    const char *message_type;  /* a message type */
    const char *since, *until; /* created_at in [since, until): ISO-8601 UTC, checked */
    int limit;                 /* 1..500 */
} store_comm_filter_t;

/* {"communications": [...]} newest first, each as GET /v1/communications/{id}
 * shows it without its events. *json is the caller's (free). 0 or -1. */
int store_comm_list_json(PGconn *conn, const store_comm_filter_t *f, char **json, char *err,
                         size_t errlen);

/* What a new decision for a communication needs, read under its row lock
 * (the caller holds a transaction). */
typedef struct store_review_target {
    char message_type[32], urgency[12], preferred_channel[12];
    char client_id[37];
    char status[12], review[12]; /* review "" when none */
    int has_attachment;
} store_review_target_t;

/* 0, 1 when there is no such communication, -1 with err. */
int store_review_lock(PGconn *conn, const char *id, store_review_target_t *t, char *err,
                      size_t errlen);

/* The new attempt chain of an open review, as the rules decided it now. */
typedef struct store_review_chain {
    const char *status;        /* queued, pending or skipped */
    const char *channel;       /* NULL when skipped */
    const char *fallback_json; /* JSON array of channel names */
    double send_at;            /* epoch s */
    int priority;
    const char *decision_json;
    const char *rules_version;
    const char *skip_reason; /* NULL unless skipped */
} store_review_chain_t;

/* Sends the communication again: a chain that starts from the channel's
 * first attempt, the last failure cleared, review "retried", an event
 * recording it. 0, 1 when its review is not open (nothing changed), -1. */
int store_review_retry(PGconn *conn, const char *id, const store_review_chain_t *c, char *err,
                       size_t errlen);

/* Closes an open review with note (may be NULL). 0, 1 when the review is
 * not open (nothing changed), -1 with err. */
int store_review_resolve(PGconn *conn, const char *id, const char *note, char *err, size_t errlen);

#endif
