/* analytics: the figures of GET /v1/analytics (sql/015_analytics.sql) —
 * the hourly sums the engine keeps, the deltas not yet folded into them,
 * and the rows themselves where an hour is cut by the range or a plan or
 * client is asked for — and the fold of the deltas. */
#ifndef CRIER_STORE_ANALYTICS_H
#define CRIER_STORE_ANALYTICS_H

#include <libpq-fe.h>
#include <stddef.h>

/* What the figures are grouped by. */
typedef enum {
    STORE_ANALYTICS_NONE, /* one row: the summary */
    STORE_ANALYTICS_CHANNEL,
    STORE_ANALYTICS_MESSAGE_TYPE,
    STORE_ANALYTICS_DAY,  /* UTC days, "YYYY-MM-DD" */
    STORE_ANALYTICS_HOUR, /* UTC hours, "YYYY-MM-DDTHH:00:00Z" */
} store_analytics_by_t;

typedef struct store_analytics_query {
    const char *from, *to; /* created_at in [from, to): ISO-8601 UTC, checked by the caller */
    const char *plan_id;   /* a lower-case UUID, or NULL */
    const char *client_id; /* a lower-case UUID, or NULL */
    store_analytics_by_t by;
} store_analytics_query_t;

/* The sums of one group (sql/015_analytics.sql says what each counts). */
typedef struct store_analytics_row {
    char key[40]; /* the group: a channel, message type, day or hour; "" for the summary */
    long long total, sent, delivered, opened, clicked, failed, fallback;
    long long delivery_n, responses, response_n;
    double delivery_s, response_s;           /* seconds, summed */
    long long sent_email, sent_sms, sent_wa; /* sent, by channel: what the cost is made of */
} store_analytics_row_t;

/* The largest number of groups an answer has (an hourly breakdown of the
 * longest range the API allows, with room to spare). */
#define STORE_ANALYTICS_MAX_ROWS 9000

/* The groups of q, in key order, into a new array (*rows, the caller's:
 * free) of *n entries; the summary is always one row, zeros when nothing
 * matched. 0, or -1 with err. */
int store_analytics(PGconn *conn, const store_analytics_query_t *q, store_analytics_row_t **rows,
                    int *n, char *err, size_t errlen);

/* Folds every delta into the hourly sums, in one transaction of its own
 * (conn must have none open), by one process at a time: *folded is how
 * many deltas went, 0 when another process holds the fold. 0, or -1. */
int store_analytics_fold(PGconn *conn, long long *folded, char *err, size_t errlen);

#endif
