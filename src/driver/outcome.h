/* outcome: what one delivery attempt came to, in the same terms for every
 * channel, so the delivery worker records, counts and hands failures to the
 * rules without knowing which driver made the attempt.
 *
 * Phone numbers, addresses and message bodies never reach error or
 * detail_json: those end up in logs and delivery events. */
#ifndef CRIER_OUTCOME_H
#define CRIER_OUTCOME_H

#include "channel/errclass.h"
#include "template/catalog.h"

struct cJSON;

typedef enum {
    OUTCOME_SENT,      /* accepted by the provider */
    OUTCOME_DELIVERED, /* written to the sandbox outbox */
    OUTCOME_FAILED,    /* see category: the rules decide retry or give up */
    /* Not attempted: the recipient must not be sent on this channel
     * (skip_reason says why, e.g. "suppressed"); the message moves to its
     * chain's next channel, or is skipped when none is left. */
    OUTCOME_SKIPPED,
} outcome_status_t;

/* What a provider's answer says beyond this attempt. */
typedef enum {
    OUTCOME_SIGNAL_NONE = 0,
    OUTCOME_SIGNAL_OPT_OUT,       /* the recipient opted out of this channel */
    OUTCOME_SIGNAL_WINDOW_CLOSED, /* free text refused outside the conversation window:
                                     resend at once, as a template */
    OUTCOME_SIGNAL_HARD_BOUNCE,   /* the recipient's address does not exist (SMTP 5.1.1 and
                                     the like): suppress contact_bidx */
} outcome_signal_t;

typedef struct outcome {
    outcome_status_t status;
    errc_t category;       /* ERRC_NONE unless OUTCOME_FAILED */
    int code;              /* the provider's reply or error code, 0 if none */
    char message_id[160];  /* the provider's id for what was sent */
    char subject[256];     /* rendered subject (cut at a character boundary), email only */
    char error[320];       /* why it failed; addresses masked */
    char detail_json[768]; /* provider response for delivery_events */
    int retry_after;       /* seconds the provider asked us to wait; -1 when it did not */
    int answered;          /* a provider call was made and the provider answered it */
    outcome_signal_t signal;
    char skip_reason[32]; /* OUTCOME_SKIPPED only */
    /* The blind index of the address or number the call went to ("" when
     * none was made): what a hard bounce suppresses. The address itself is
     * never kept here. */
    char contact_bidx[65];
    /* the version of the template the message was rendered with ("" when
     * nothing was rendered): recorded with the outcome */
    char template_version[24];
} outcome_t;

/* Resets out for a new attempt: nothing decided, no Retry-After. */
void outcome_init(outcome_t *out);

/* Marks out failed with category cat (ERRC_NONE reads as transient),
 * provider code and "stage: detail" (stage may be NULL). */
void outcome_fail(outcome_t *out, errc_t cat, int code, const char *stage, const char *detail);

/* Marks out not attempted, for reason (a short word: the skip_reason the
 * communication gets if no channel is left). */
void outcome_skip(outcome_t *out, const char *reason);
/* Notes that the message was rendered from the template of type on
 * channel in catalogue c. */
void outcome_set_template(outcome_t *out, const tpl_catalog_t *c, const char *type,
                          const char *channel);

/* Stores the JSON text json as out's detail_json, or fallback when json is
 * NULL or does not fit (the event keeps what is certain rather than a cut
 * text). */
void outcome_set_detail(outcome_t *out, const char *json, const char *fallback);
/* The same with obj printed; consumes obj (which may be NULL). */
void outcome_set_detail_obj(outcome_t *out, struct cJSON *obj, const char *fallback);

#endif
