/* clients: a client as the clients API shows it (its profile decrypted, its
 * preferences, its communications newest first), and the changes the
 * preferences API makes. Every function takes a connection the caller owns
 * and runs in whatever transaction the caller has open.
 *
 * Results are 0, STORE_NO_CLIENT when there is no such client,
 * STORE_ERASED when it was erased (only its id and erased_at are left), or
 * -1 with err. */
#ifndef CRIER_STORE_CLIENTS_H
#define CRIER_STORE_CLIENTS_H

#include "channel/ch.h"
#include "crypto/crypto.h"

#include <libpq-fe.h>
#include <stddef.h>

#define STORE_NO_CLIENT  1
#define STORE_ERASED     2
#define STORE_BAD_CURSOR 3 /* a listing's "before" names none of the client's communications */
#define STORE_NO_COMM    4 /* no such communication (never made, or purged) */

/* Whether client id exists and is not erased: 0 (it is live), or one of
 * the results above. */
int store_client_state(PGconn *conn, const char *id, char *err, size_t errlen);

/* The client a communication was for, into client_id: 0, STORE_NO_COMM
 * (also for an id that is no UUID), or -1 with err. */
int store_comm_client(PGconn *conn, const char *comm_id, char client_id[37], char *err,
                      size_t errlen);

/* Locks client id's row for the rest of the open transaction (FOR UPDATE,
 * as store_prefs_update does) and reads its prefs_version, which moves
 * with every change to what a decision reads of it (sql/006): 0,
 * STORE_NO_CLIENT, STORE_ERASED, or -1 with err. */
int store_client_version_lock(PGconn *conn, const char *id, long long *version, char *err,
                              size_t errlen);

/* The client as JSON text (*json owned by the caller): client_id, name,
 * email, phone (decrypted; with_pii 0 says only has_name, has_email,
 * has_phone instead, and decrypts nothing), timezone, locale, consent and
 * when each was last changed, email_suppressed (the address hard-bounced:
 * no email is sent to it), created_at, updated_at. */
int store_client_json(PGconn *conn, const cry_keys_t *keys, const char *id, int with_pii,
                      char **json, char *err, size_t errlen);

/* The preferences as JSON text: client_id, preferred_channels,
 * quiet_hours_start and _end ("HH:MM", both null when there are none),
 * opt_out_email|sms|whatsapp, timezone, updated_at. A client without a
 * preferences row has the seed's defaults. */
int store_prefs_json(PGconn *conn, const char *id, char **json, char *err, size_t errlen);

/* A change to a client's preferences; what is not given stays. */
typedef struct store_prefs_change {
    const char *preferred_json; /* JSON array of channel names; NULL: unchanged */
    int quiet_given;            /* 1: quiet_start/quiet_end below are the new hours */
    char quiet_start[6];        /* "HH:MM", or "" (both) for no quiet hours */
    char quiet_end[6];
    int opt_out[CH_N];    /* 0/1, or -1: unchanged */
    const char *timezone; /* IANA name; NULL: unchanged */
} store_prefs_change_t;

/* Applies ch (validated by the caller) to client id; *changed is 1 when a
 * stored value became different. */
int store_prefs_update(PGconn *conn, const char *id, const store_prefs_change_t *ch, int *changed,
                       char *err, size_t errlen);

/* The client's communications newest first, at most limit, as JSON text:
 * {"client_id", "communications": [...], "next_before": id or null}.
 * before_id (NULL: from the newest) continues a listing: only the ones
 * older than that communication of the client. */
int store_client_comms_json(PGconn *conn, const char *id, int limit, const char *before_id,
                            char **json, char *err, size_t errlen);

#endif
