/* links: the tracking of a rendered HTML email (docs/tracking.md).
 *
 * Every http(s) link of an <a> or <area> element (its href, quoted or not,
 * in any case) becomes crier's click redirect, PUBLIC_URL/t/c/<token>, where
 * the token is a signed reference to (communication, link index)
 * (crypto/linktok.h); the URL it stood for is handed back, its character
 * references decoded ("&amp;" is "&"), for the caller to store under that
 * index. A 1x1 open pixel, PUBLIC_URL/t/o/<token>.gif, goes before the last
 * </body> (or at the end when there is none).
 *
 * Left as they are: links already under PUBLIC_URL (crier's own, such as
 * the unsubscribe and preference links), other schemes (mailto:, tel:, a
 * fragment), links whose decoded URL holds a control character or is longer
 * than LINKS_URL_MAX (no redirect could carry it), everything after the
 * first max_links links, and anything inside comments, <script>, <style>,
 * <textarea> and <title>. Only the HTML is read: the plain-text part keeps
 * readable links. */
#ifndef CRIER_TPL_LINKS_H
#define CRIER_TPL_LINKS_H

#include <stddef.h>
#include <stdint.h>

#define LINKS_MAX_DEFAULT 256  /* links rewritten per message */
#define LINKS_URL_MAX     8192 /* longest URL that is rewritten (decoded bytes) */

typedef struct links_opts {
    const char *public_url;       /* crier's base URL (CRIER_PUBLIC_URL); a trailing / is ignored */
    const unsigned char *key;     /* 32 bytes: the link key */
    const char *communication_id; /* lower-case UUID: what the tokens name */
    uint32_t day;                 /* linktok_day of the rendering */
    int max_links;                /* at most this many links are rewritten (1..100000) */
} links_opts_t;

/* The original URLs, url[i] under link index i. */
typedef struct links {
    char **url; /* owned, each element too */
    int n;
} links_t;

/* Rewrites html as above into *out (malloc'd, the caller's) and fills l
 * (freed with links_free). 0, or -1 with err (out of memory, a token that
 * could not be made): *out NULL and l empty. */
int links_rewrite(const char *html, const links_opts_t *o, char **out, links_t *l, char *err,
                  size_t errlen);
void links_free(links_t *l);

#endif
