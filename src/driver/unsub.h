/* unsub: the unsubscribe links every email carries, made for one
 * communication by the engine (never taken from a request):
 *   url     CRIER_PUBLIC_URL/u/<token>: the List-Unsubscribe URL a mailbox
 *           provider posts to (RFC 8058), and the footer's link to the
 *           preference page, where a GET shows and never changes anything
 *   mailto  mailto:<CRIER_UNSUBSCRIBE_MAILTO>?subject=unsubscribe-<token>,
 *           listed after the URL (RFC 2369)
 * The token is a LINKTOK_UNSUB of the communication, dated today, under
 * the link key (crypto/linktok.h): the client is looked up from the
 * communication when it is used. */
#ifndef CRIER_DRIVER_UNSUB_H
#define CRIER_DRIVER_UNSUB_H

#include "config.h"
#include "crypto/crypto.h"

#include <stddef.h>
#include <time.h>

#define UNSUB_URL_MAX    1024
#define UNSUB_MAILTO_MAX 1024

typedef struct unsub_links {
    char url[UNSUB_URL_MAX];
    char mailto[UNSUB_MAILTO_MAX];
} unsub_links_t;

/* Makes the links of communication comm_id (a UUID) issued at now. 0, or
 * -1 with err (a configuration that cannot give them: a public URL or an
 * address too long or unusable). */
int unsub_links_make(const cfg_t *cfg, const cry_keys_t *keys, const char *comm_id, time_t now,
                     unsub_links_t *out, char *err, size_t errlen);

#endif
