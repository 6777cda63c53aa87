/* tracking: the rows of email open and click tracking (docs/tracking.md):
 * the links a tracked email stood for (communication_links), the record of
 * one open or click, and the open rate sampled for the metrics.
 *
 * Each function runs one statement on a connection the caller owns (in
 * whatever transaction it has open) and returns 0, or -1 with err (never
 * holding a URL: a link can carry what the workflow knew of the client). */
#ifndef CRIER_STORE_TRACKING_H
#define CRIER_STORE_TRACKING_H

#include <libpq-fe.h>
#include <stddef.h>

/* Stores url[0..n) as the links 0..n-1 of communication id (lower-case
 * UUID), replacing what an earlier rendering of it stored (a retry renders
 * again), and marks the communication tracked; only while it is being sent
 * (a message an erasure cancelled keeps nothing). */
int store_links_put(PGconn *conn, const char *id, char *const *url, int n, char *err,
                    size_t errlen);

/* One hit on a tracking URL. */
typedef struct store_track_hit {
    const char *communication_id; /* lower-case UUID, from a verified token */
    int link_index;               /* a click's link; -1 for an open */
    const char *agent;            /* the User-Agent's class: "human", "proxy" or "scanner" */
    int machine_window_s;         /* a hit this soon after sending is a machine's */
} store_track_hit_t;

/* What recording a hit came to. */
typedef struct store_track_result {
    int found;       /* 0: no such communication or link, or its client was erased:
                        nothing was written */
    char *url;       /* owned (free it): a click's stored URL */
    char agent[16];  /* the class recorded: "scanner" also when it came too early */
    int opened_now;  /* this hit was the message's first counted open */
    int clicked_now; /* this hit was the message's first counted click */
    char message_type[32];
    char channel[16];
} store_track_result_t;

/* Records h in one statement: locks the communication (and finds the link),
 * moves it forward only (a click to "clicked", an open to "opened"; only
 * from sent, delivered or opened, never back and never out of a failure),
 * sets opened_at (a click implies an open), clicked_at and delivered_at the
 * first time, and appends a delivery_events row ("opened" or "clicked",
 * with the agent, why it was taken for a machine, and the link index).
 * A hit by a machine (scanner, or within machine_window_s of sending, or
 * before crier recorded the send) is recorded but moves nothing. */
int store_track_hit(PGconn *conn, const store_track_hit_t *h, store_track_result_t *r, char *err,
                    size_t errlen);

/* Looks a hit up without recording it (a HEAD request): 1 when the
 * communication exists, its client is not erased and (link_index >= 0) it
 * has that link, whose URL goes to *url (owned; NULL for an open); 0 when
 * not; -1 with err. */
int store_track_peek(PGconn *conn, const char *id, int link_index, char **url, char *err,
                     size_t errlen);

/* The tracked emails of one message type sent in the last days. */
typedef struct store_open_rate {
    char message_type[32];
    long long sent;   /* sent (or delivered, opened, clicked), not bounced */
    long long opened; /* of those, opened or clicked by a person (or an image proxy) */
} store_open_rate_t;

/* Up to max message types' counts over the tracked emails sent in the last
 * days (1..3650) into rows[0..*n). */
int store_open_rates(PGconn *conn, int days, store_open_rate_t *rows, int max, int *n, char *err,
                     size_t errlen);

#endif
