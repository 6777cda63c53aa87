/* receipts: what provider webhooks change in the store, once their signature
 * was checked. Delivery receipts move a communication forward (never back),
 * inbound messages are kept (encrypted), STOP/START keywords change the
 * sender's opt-outs, a WhatsApp message opens the 24-hour window, and a free
 * reply is queued for the workflow as a workflow_callbacks row.
 *
 * Every function but rcpt_write takes a connection the caller owns and runs
 * in whatever transaction the caller has open; each returns 0, or -1 with
 * err set (never holding a phone number or a message text). rcpt_write is
 * what a webhook handler calls: the whole request's writes in one
 * transaction of its own. */
#ifndef CRIER_STORE_RECEIPTS_H
#define CRIER_STORE_RECEIPTS_H

#include "crypto/crypto.h"
#include "store/db.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Our reading of a provider status. */
typedef enum {
    RCPT_IGNORED,   /* a status that says nothing new to us (queued, accepted, ...) */
    RCPT_SENT,      /* the carrier / Meta accepted it */
    RCPT_DELIVERED, /* on the handset */
    RCPT_READ,      /* read receipt; stored as status 'opened' */
    RCPT_FAILED,    /* failed or undelivered: terminal, but only over sent or earlier */
} rcpt_status_t;

/* Twilio MessageStatus / WhatsApp status values, case-sensitive as sent. */
rcpt_status_t rcpt_status_twilio(const char *message_status);
rcpt_status_t rcpt_status_whatsapp(const char *status);
/* The communications.status a receipt moves to ("sent", ...); NULL for RCPT_IGNORED. */
const char *rcpt_status_column(rcpt_status_t s);

/* One delivery receipt. */
typedef struct rcpt_receipt {
    const char *provider;            /* "twilio" or "whatsapp" */
    const char *channel;             /* "sms" or "whatsapp", recorded on the event */
    const char *provider_message_id; /* MessageSid or wamid */
    const char *provider_status;     /* as sent, recorded on the event */
    rcpt_status_t status;
    int provider_code;          /* ErrorCode / errors[0].code, 0 when none */
    const char *error_category; /* errc_name() of the code, NULL when none */
} rcpt_receipt_t;

/* What rcpt_apply did. */
typedef enum {
    RCPT_APPLIED,   /* the communication moved forward */
    RCPT_DUPLICATE, /* it already had this status: event recorded only */
    RCPT_STALE,     /* older than what it has (out of order) or after a terminal status */
    RCPT_UNKNOWN,   /* no communication carries this id: kept in unmatched_receipts */
} rcpt_outcome_t;

/* A receipt that made a communication known delivered for the first time:
 * how long after its send, and whose (ids, type and channel: never PII). */
typedef struct rcpt_confirmed {
    int yes;        /* 0: this receipt confirmed no delivery */
    double seconds; /* delivered_at - sent_at */
    char id[37], plan_id[37], client_id[37];
    char message_type[32], channel[12];
} rcpt_confirmed_t;

/* Applies r in one statement: the communication with that provider message
 * id moves to r's status when it is further along (rank queued/sending <
 * sent < delivered < opened < clicked; failed only over sent or earlier),
 * and every receipt, moved or not, becomes a delivery_events row
 * ("receipt", "receipt_duplicate" or "receipt_stale"). *confirmed says
 * whether it was the one that made the message known delivered. */
int rcpt_apply(PGconn *conn, const rcpt_receipt_t *r, rcpt_outcome_t *outcome,
               rcpt_confirmed_t *confirmed, char *err, size_t errlen);

/* Keywords of an inbound text (provider reference, STOP/START/HELP): the
 * whole trimmed body, case-insensitive. opt_out_type is Twilio's OptOutType
 * (NULL when absent), which wins when set. */
typedef enum { RCPT_KW_NONE, RCPT_KW_STOP, RCPT_KW_START, RCPT_KW_HELP } rcpt_keyword_t;
rcpt_keyword_t rcpt_keyword(const char *body, const char *opt_out_type);
/* "STOP", "START", "HELP" or NULL. */
const char *rcpt_keyword_name(rcpt_keyword_t k);

/* One message a client sent us. */
typedef struct rcpt_inbound {
    const char *channel;             /* "sms" or "whatsapp" */
    const char *provider_message_id; /* MessageSid or wamid: redeliveries are ignored */
    const char *from;                /* E.164, "whatsapp:+…" or a wa_id (digits) */
    const char *body;                /* text, may be "" (media, buttons without text) */
    const char *reply_to;            /* provider id of the message replied to, or NULL */
    long long sent_at;               /* provider timestamp, epoch s; 0 when unknown */
    rcpt_keyword_t keyword;
    /* A tapped WhatsApp reply button or list row, or a template's quick
     * reply, whose id (payload) is an action link token the webhook has
     * verified: the communication and the action's index. "" when none. */
    char answer_id[37];
    int answer_index;
} rcpt_inbound_t;

/* The clients one keyword or provider opt-out changed, told to the
 * preference cache: those sharing a number beyond this many keep their
 * cached entry until it expires. */
#define RCPT_CHANGED_MAX 8

typedef struct rcpt_inbound_result {
    int duplicate;      /* 1: this message was already stored; nothing changed */
    int clients;        /* clients whose phone matched the sender */
    char client_id[37]; /* the most recently updated of them, "" when none */
    int callback; /* 1 when a workflow callback row was queued (or, for an answer, is there) */
    int answered; /* 1: the message answered a message's actions (client_action, not a reply) */
    char changed[RCPT_CHANGED_MAX][37]; /* clients whose opt-out a keyword set */
    int n_changed;
} rcpt_inbound_result_t;

/* Stores m (sender and text encrypted), applies its keyword to the opt-out
 * of m's channel for every client with the sender's number (STOP sets it,
 * START clears it), opens the WhatsApp window of those clients for a
 * WhatsApp message, records an answer to a message's actions (a verified
 * button token, or an SMS or WhatsApp reply that is just the number of one
 * of the actions of the latest message to the client on that channel still
 * waiting for an answer: store_action_answer, with its client_action
 * callback), and otherwise queues a "client_reply" workflow callback for a
 * free reply from a known client (body: type, inbound_message_id,
 * client_id, channel, provider_message_id, communication_id, text,
 * received_at; stored encrypted in payload_enc, with the same object
 * without the text in payload). The row's id is taken from its sequence
 * first, since the tokens are bound to it. Run it inside a transaction. */
int rcpt_inbound(PGconn *conn, const cry_keys_t *keys, const rcpt_inbound_t *m,
                 rcpt_inbound_result_t *out, char *err, size_t errlen);

/* One thing a webhook reported. Its strings are borrowed from the request. */
typedef enum { RCPT_ITEM_RECEIPT, RCPT_ITEM_INBOUND } rcpt_item_kind_t;
typedef struct rcpt_item {
    rcpt_item_kind_t kind;
    rcpt_receipt_t receipt;       /* RCPT_ITEM_RECEIPT */
    rcpt_inbound_t inbound;       /* RCPT_ITEM_INBOUND */
    rcpt_outcome_t outcome;       /* out, RCPT_ITEM_RECEIPT: what rcpt_apply did */
    rcpt_confirmed_t confirmed;   /* out, RCPT_ITEM_RECEIPT: the delivery it confirmed */
    rcpt_inbound_result_t result; /* out, RCPT_ITEM_INBOUND: what rcpt_inbound did */
} rcpt_item_t;

/* What became of a webhook's writes. */
typedef enum {
    RCPT_WRITTEN,           /* committed: every item's out field is set */
    RCPT_WRITE_UNAVAILABLE, /* no usable connection: nothing was tried */
    RCPT_WRITE_LOST,        /* the connection was lost on the way: nothing stays */
    RCPT_WRITE_FAILED,      /* a statement failed (err says which): nothing stays */
} rcpt_write_t;

/* Applies items[0..n) in order (rcpt_apply or rcpt_inbound each) in one
 * transaction on a connection of pool, committed before it returns: a
 * provider is answered 2xx only for what is durable, and retries anything
 * else, which must then have left nothing behind. n may be 0 (the
 * transaction is still run, so that an unreachable database is reported
 * the same way). */
rcpt_write_t rcpt_write(db_pool_t *pool, const cry_keys_t *keys, rcpt_item_t *items, int n,
                        char *err, size_t errlen);

/* The blind index of a sender: "whatsapp:" dropped, a missing "+" added
 * (WhatsApp wa_ids are digits only), then as clients' phones are indexed.
 * -1 when from holds no digits, or when the index cannot be computed. */
int rcpt_phone_bidx(const cry_keys_t *keys, const char *from, char out[65]);

/* A provider refused a send because the recipient opted out (Twilio
 * 21610, WhatsApp 131050): sets the channel's ("sms" or "whatsapp")
 * opt-out for every client with the job client's number, as a STOP would,
 * and says which clients that changed (changed[0..*n_changed)). 0, or -1
 * with err. */
int rcpt_provider_opt_out(PGconn *conn, const char *client_id, const char *channel,
                          char changed[RCPT_CHANGED_MAX][37], int *n_changed, char *err,
                          size_t errlen);

/* Whether client_id's WhatsApp customer-service window is open now (a
 * client who never wrote, or no such client: closed). 0 with *open set, or
 * -1 with err. */
int rcpt_window_open(PGconn *conn, const char *client_id, int *open, char *err, size_t errlen);

/* WhatsApp refused free text as outside the window (131047): the window of
 * every client with that number ends now, whatever our clock said. */
int rcpt_window_close(PGconn *conn, const char *client_id, char *err, size_t errlen);

#endif
