/* validate: syntactic checks on request fields. Each check is strict on
 * purpose: whatever passes here is later stored, rendered into messages or
 * handed to providers, so a value is rejected at the door rather than
 * half-accepted. */
#include "validate.h"

#include "tz/tz.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const val_message_types[VAL_MESSAGE_TYPES] = {
    "welcome",
    "budget_summary",
    "vendor_options",
    "selection_confirmation",
    "blueprint_delivery",
    "error_notification",
    "reminder",
    "preferences_updated",
    "digest",
};

#define VAL_EMAIL_MAX 254
#define VAL_TZ_MAX    64

static int val_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int val_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!val_is_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* The characters RFC 5322 allows unquoted in a local part (atext and dots).
 * Quoted local parts are legal but no workflow sends them, and refusing them
 * keeps addresses safe to put in headers. */
static int val_local_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

static int val_domain(const char *d, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    size_t label = 0;
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            /* empty labels and labels ending in '-' are not hostnames */
            if (label == 0 || d[i - 1] == '-')
                return 0;
            label = 0;
            dots++;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c == '-' && label > 0);
        if (!ok || ++label > 63)
            return 0;
    }
    return dots > 0 && label > 0 && d[len - 1] != '-';
}

int val_email(const char *s)
{
    if (!s)
        return 0;
    size_t len = strlen(s);
    if (len < 3 || len > VAL_EMAIL_MAX)
        return 0;
    const char *at = strrchr(s, '@');
    if (!at || at == s)
        return 0;
    size_t local_len = (size_t)(at - s);
    if (local_len > 64 || s[0] == '.' || s[local_len - 1] == '.')
        return 0;
    for (size_t i = 0; i < local_len; i++) {
        if (!val_local_char((unsigned char)s[i]))
            return 0;
        if (s[i] == '.' && s[i + 1] == '.')
            return 0;
    }
    return val_domain(at + 1, len - local_len - 1);
}

int val_e164(const char *s)
{
    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++)
        if (*p < '0' || *p > '9')
            return 0;
    return n >= 8 && n <= 15;
}

int val_timezone(const char *s)
{
    /* The same zone table the policy's time functions use, so the API never
     * accepts a zone the rules cannot read, nor refuses one they can. */
    char err[128];
    return s && tz_get(s, err, sizeof err) != NULL;
}

int val_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp;
        unsigned min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0; /* continuation byte, C0/C1 overlong lead, or past U+10FFFF */
        }
        if (len - i - 1 < n)
            return 0; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* The scheme is checked, not merely escaped: HTML escaping leaves
 * "javascript:…" or "data:…" intact, and a mail client that runs or opens
 * it does so with the recipient's trust in the sender. */
int val_link_url(const char *s)
{
    if (!s || !*s || s[0] == ' ' || s[strlen(s) - 1] == ' ')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) /* C1 controls, U+0080..U+009F */
            return 0;
    }
    if (strncasecmp(s, "mailto:", 7) == 0)
        return s[7] != '\0';
    const char *rest;
    if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else
        return 0;
    /* the authority runs to the path, query or fragment; its host follows
     * any user information and precedes any port */
    size_t alen = strcspn(rest, "/?#\\");
    const char *host = rest;
    for (size_t i = 0; i < alen; i++)
        if (rest[i] == '@')
            host = rest + i + 1;
    size_t hlen = alen - (size_t)(host - rest);
    if (memchr(rest, ' ', alen))
        return 0;
    if (hlen > 0 && host[0] == '[')
        return hlen > 2 && memchr(host, ']', hlen) != NULL;
    const char *colon = memchr(host, ':', hlen);
    return (colon ? (size_t)(colon - host) : hlen) > 0;
}

int val_url_key(const char *key)
{
    if (!key)
        return 0;
    size_t n = strlen(key);
    return strcmp(key, "url") == 0 || (n >= 4 && strcmp(key + n - 4, "_url") == 0);
}
