/* ch: the channels crier delivers on, as ids and as the names the API, the
 * queue, the rules and the metrics use.
 *
 * The id lives here, below every layer that keeps a flag per channel (the
 * store's consent and opt-out columns, the policy's view of a client), so
 * that each of them can hold an array indexed by ch_id_t instead of one
 * named field per channel. What a channel does is its driver's (driver/). */
#ifndef CRIER_CH_H
#define CRIER_CH_H

typedef enum {
    CH_EMAIL = 0,
    CH_SMS,
    CH_WHATSAPP,
    CH_N, /* the number of channels; never a channel */
} ch_id_t;

/* The channels' names, for tables that are data at compile time (a
 * policy's defaults, a list of accepted values); code asks ch_name(). */
#define CH_NAME_EMAIL    "email"
#define CH_NAME_SMS      "sms"
#define CH_NAME_WHATSAPP "whatsapp"

/* Longest channel name; a name fits in char[CH_NAME_MAX + 1]. */
#define CH_NAME_MAX 11

/* The bit of channel c in a channel set (policy_client_t.channels_off). */
#define CH_BIT(c) (1u << (unsigned)(c))

/* What a channel reaches a client at. */
typedef enum {
    CH_CONTACT_EMAIL, /* an email address */
    CH_CONTACT_PHONE, /* a phone number */
} ch_contact_t;

/* The name of c ("email", "sms", "whatsapp"), or NULL when c is none. */
const char *ch_name(ch_id_t c);

/* The name of c as a message to a client writes it ("email", "SMS",
 * "WhatsApp"), or NULL when c is none. */
const char *ch_label(ch_id_t c);

/* Sets *out to the channel called name. Returns 0, or -1 (out untouched)
 * for NULL or a name that is no channel: names are exact, case included. */
int ch_by_name(const char *name, ch_id_t *out);

/* What c reaches a client at (CH_CONTACT_EMAIL for no channel). */
ch_contact_t ch_contact(ch_id_t c);

/* 1 when sending on c needs the client's recorded consent; 0 when giving
 * the contact is consent enough (email). */
int ch_needs_consent(ch_id_t c);

#endif
