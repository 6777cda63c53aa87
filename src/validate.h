/* validate: checks on request fields, shared by the API and the CLI. */
#ifndef CRIER_VALIDATE_H
#define CRIER_VALIDATE_H

#include <stddef.h>

/* Each returns 1 when valid, 0 when not. */
int val_uuid(const char *s);
/* A practical addr-spec: local@domain, ASCII, no spaces or controls, a dot in
 * the domain, at most 254 bytes. */
int val_email(const char *s);
/* E.164: "+" then 8 to 15 digits, the first not 0. */
int val_e164(const char *s);
/* An IANA zone name present in the system's tzdata (no "..", no leading "/"). */
int val_timezone(const char *s);
/* Well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
int val_utf8(const char *s, size_t len);
/* A value a template may put in a link (href): an absolute URL whose scheme
 * is http, https or mailto (any case), with no control characters and no
 * white space at either end; http and https need a host after "//". */
int val_link_url(const char *s);
/* 1 when a context key names a link by crier's convention: "url" or a key
 * ending in "_url" (plan_url, options[].select_url, unsubscribe_url). */
int val_url_key(const char *key);

/* The message types: the seven a workflow may request (the seed's), then
 * the ones the engine sends of itself: the confirmation of a preferences
 * change (on any channel, so it has short templates too) and the digest it
 * composes from batched LOW messages (email only). The one list the API,
 * the templates and the metrics use. */
#define VAL_REQUEST_TYPES 7
#define VAL_SHORT_TYPES   8 /* the types with SMS and WhatsApp templates */
#define VAL_MESSAGE_TYPES 9
extern const char *const val_message_types[VAL_MESSAGE_TYPES];

#endif
