/* unsub: the unsubscribe links of an email (see unsub.h). */
#include "driver/unsub.h"

#include "channel/mime.h"
#include "crypto/linktok.h"

#include <stdio.h>
#include <string.h>

/* Characters an address keeps as they are in a mailto: URI (RFC 6068:
 * unreserved, '@' and the sub-delimiters that mean nothing there); any
 * other is percent-encoded, so '?', '&', '%' and '#' in a local part
 * cannot end the address or start a header. */
static int unsub_mailto_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$'*+@", c) != NULL;
}

static int unsub_mailto(const cfg_t *cfg, const char *token, char *out, size_t outlen)
{
    const char *box = cfg->unsubscribe_mailto && cfg->unsubscribe_mailto[0]
                          ? cfg->unsubscribe_mailto
                          : cfg->mail_from;
    char addr[320];
    if (!box || mime_addr_spec(box, addr, sizeof addr) != 0)
        return -1;
    size_t o = 0;
    int w = snprintf(out, outlen, "mailto:");
    if (w < 0 || (size_t)w >= outlen)
        return -1;
    o = (size_t)w;
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
        if (o + 4 >= outlen)
            return -1;
        if (unsub_mailto_char(*p))
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, outlen - o, "%%%02X", *p);
    }
    w = snprintf(out + o, outlen - o, "?subject=unsubscribe-%s", token);
    return w < 0 || (size_t)w >= outlen - o ? -1 : 0;
}

int unsub_links_make(const cfg_t *cfg, const cry_keys_t *keys, const char *comm_id, time_t now,
                     unsub_links_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    linktok_t t = {.kind = LINKTOK_UNSUB, .arg = 0, .day = linktok_day(now)};
    char token[LINKTOK_TEXT_MAX];
    if (snprintf(t.id, sizeof t.id, "%s", comm_id) >= (int)sizeof t.id ||
        linktok_make(keys->link, &t, token) != 0) {
        snprintf(err, errlen, "cannot make the unsubscribe token");
        return -1;
    }
    /* a base with a trailing slash would give "//u/" */
    const char *base = cfg->public_url ? cfg->public_url : "";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    int w = snprintf(out->url, sizeof out->url, "%.*s/u/%s", (int)blen, base, token);
    if (w < 0 || (size_t)w >= sizeof out->url) {
        snprintf(err, errlen, "CRIER_PUBLIC_URL is too long for the unsubscribe link");
        return -1;
    }
    if (unsub_mailto(cfg, token, out->mailto, sizeof out->mailto) != 0) {
        snprintf(err, errlen, "CRIER_UNSUBSCRIBE_MAILTO (or CRIER_MAIL_FROM) is no usable address");
        return -1;
    }
    return 0;
}
