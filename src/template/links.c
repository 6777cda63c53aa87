/* links: link rewriting and the open pixel of a tracked HTML email (see
 * links.h). A small scanner of HTML tags, not a parser: it walks text,
 * comments and tags in order, reads the attributes of each start tag as the
 * HTML tokenizer does (quoted, single-quoted or unquoted values), and copies
 * everything but the href values it replaces. */
#include "template/links.h"

#include "crypto/linktok.h"
#include "util/buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The markup the pixel adds, besides its URL. */
#define LINKS_PIXEL_HTML_MAX 200

typedef struct links_ctx {
    const links_opts_t *o;
    const char *base; /* public_url without a trailing '/' */
    size_t base_len;
    buf_t *out;
    links_t *l;
    int cap;           /* slots in l->url */
    size_t body_close; /* offset in out of the last "</body", or SIZE_MAX */
    char *err;
    size_t errlen;
} links_ctx_t;

static int links_fail(links_ctx_t *c, const char *why)
{
    snprintf(c->err, c->errlen, "link tracking: %s", why);
    return -1;
}

static int links_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f';
}

/* 1 when s[0..n) is word (ASCII, any case) and the next byte ends a name. */
static int links_name_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* Appends s[0..n) to out escaped for a double-quoted attribute value. */
static int links_put_attr(buf_t *out, const char *s, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        switch (s[i]) {
        case '&':
            rc = buf_puts(out, "&amp;");
            break;
        case '"':
            rc = buf_puts(out, "&quot;");
            break;
        case '<':
            rc = buf_puts(out, "&lt;");
            break;
        case '>':
            rc = buf_puts(out, "&gt;");
            break;
        default:
            rc = buf_putc(out, s[i]);
        }
    }
    return rc;
}

/* Appends code point cp as UTF-8; -1 for one no URL may hold (NUL, a
 * surrogate, beyond U+10FFFF). */
static int links_put_utf8(buf_t *out, unsigned long cp)
{
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return -1;
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(out, u, n);
}

/* The value of digit ch in base 16 (hex) or 10, or -1. */
static int links_digit(char ch, int hex)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (hex && ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (hex && ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The character reference at s[0..n) (s[0] is '&'): its length with the
 * ';', or 0 when it is none this decoder knows (it stays literal). The
 * named ones are those a template or a URL writer escapes with; HTML's
 * other names are left as written. */
static size_t links_ref(const char *s, size_t n, buf_t *dec, int *bad)
{
    static const struct {
        const char *name;
        char ch;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    const char *semi = memchr(s, ';', n < 12 ? n : 12);
    if (!semi)
        return 0;
    size_t len = (size_t)(semi - s) + 1;
    if (len > 2 && s[1] == '#') {
        int hex = s[2] == 'x' || s[2] == 'X';
        size_t i = hex ? 3 : 2;
        if (i >= len - 1)
            return 0;
        unsigned long cp = 0;
        for (; i < len - 1; i++) {
            int d = links_digit(s[i], hex);
            if (d < 0)
                return 0;
            cp = cp * (hex ? 16 : 10) + (unsigned long)d;
            if (cp > 0x10FFFF)
                cp = 0x110000; /* stays out of range, without overflow */
        }
        if (links_put_utf8(dec, cp) != 0)
            *bad = 1;
        return len;
    }
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
        if (links_name_is(s + 1, len - 2, named[k].name)) {
            if (buf_putc(dec, named[k].ch) != 0)
                *bad = 1;
            return len;
        }
    return 0;
}

/* The URL an href value v[0..n) stands for, into dec (bounded by
 * LINKS_URL_MAX): references decoded, the surrounding white space HTML
 * allows dropped. 0, or -1 when it cannot be a tracked link. */
static int links_decode(const char *v, size_t n, buf_t *dec)
{
    int bad = 0;
    for (size_t i = 0; i < n && !bad;) {
        size_t r = v[i] == '&' ? links_ref(v + i, n - i, dec, &bad) : 0;
        if (r) {
            i += r;
            continue;
        }
        if (buf_putc(dec, v[i]) != 0)
            bad = 1;
        i++;
    }
    if (bad || !dec->data)
        return -1;
    size_t a = 0, z = dec->len;
    while (a < z && links_space(dec->data[a]))
        a++;
    while (z > a && links_space(dec->data[z - 1]))
        z--;
    memmove(dec->data, dec->data + a, z - a);
    buf_truncate(dec, z - a);
    /* a control character could end a Location header early */
    for (size_t i = 0; i < dec->len; i++)
        if ((unsigned char)dec->data[i] < 0x20 || dec->data[i] == 0x7f)
            return -1;
    return 0;
}

/* 1 when url is http(s) and not under crier's own base URL. */
static int links_trackable(const links_ctx_t *c, const char *url, size_t n)
{
    if (!(n > 7 && strncasecmp(url, "http://", 7) == 0) &&
        !(n > 8 && strncasecmp(url, "https://", 8) == 0))
        return 0;
    if (c->base_len && n >= c->base_len && strncasecmp(url, c->base, c->base_len) == 0) {
        char next = n > c->base_len ? url[c->base_len] : '\0';
        if (next == '\0' || next == '/' || next == '?' || next == '#')
            return 0;
    }
    return 1;
}

/* Appends crier's URL for kind and index (PUBLIC_URL/t/<kind>/<token>
 * [suffix]) as an attribute value, quotes included. */
static int links_put_tracked(links_ctx_t *c, linktok_kind_t kind, uint32_t index,
                             const char *suffix)
{
    linktok_t t = {.kind = kind, .arg = index, .day = c->o->day};
    snprintf(t.id, sizeof t.id, "%s", c->o->communication_id);
    char tok[LINKTOK_TEXT_MAX];
    if (linktok_make(c->o->key, &t, tok) != 0)
        return links_fail(c, "cannot make a token (is the communication id a UUID?)");
    char path[16 + LINKTOK_TEXT_MAX + 8];
    snprintf(path, sizeof path, "/t/%c/%s%s", (char)kind, tok, suffix);
    int rc = buf_putc(c->out, '"');
    rc |= links_put_attr(c->out, c->base, c->base_len);
    rc |= links_put_attr(c->out, path, strlen(path));
    rc |= buf_putc(c->out, '"');
    return rc ? links_fail(c, "the message grew past its bound") : 0;
}

/* The href value v[0..n) (raw, quotes excluded) of an <a> or <area>:
 * written tracked (1) when it is a link to track and the limit allows,
 * else 0 (the caller copies it); -1 on failure. */
static int links_href(links_ctx_t *c, const char *v, size_t n)
{
    if (c->l->n >= c->o->max_links)
        return 0;
    buf_t dec;
    buf_init(&dec, LINKS_URL_MAX);
    if (links_decode(v, n, &dec) != 0 || !links_trackable(c, dec.data, dec.len)) {
        buf_free(&dec);
        return 0;
    }
    if (c->l->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        if (cap > c->o->max_links)
            cap = c->o->max_links;
        char **u = realloc(c->l->url, (size_t)cap * sizeof *u);
        if (!u) {
            buf_free(&dec);
            return links_fail(c, "out of memory");
        }
        c->l->url = u;
        c->cap = cap;
    }
    if (links_put_tracked(c, LINKTOK_CLICK, (uint32_t)c->l->n, "") != 0) {
        buf_free(&dec);
        return -1;
    }
    c->l->url[c->l->n++] = buf_detach(&dec);
    return 1;
}

/* Copies s[0..n) to the output. */
static int links_copy(links_ctx_t *c, const char *s, size_t n)
{
    return buf_append(c->out, s, n) ? links_fail(c, "the message grew past its bound") : 0;
}

/* The start tag at s (s[0] is '<', s[1] a letter), name of length nl:
 * copied with its href rewritten when it is an <a> or <area>. Returns the
 * bytes consumed, or 0 when the tag never ends (the caller copies the rest
 * as it is), -1 on failure. */
static long links_start_tag(links_ctx_t *c, const char *s, size_t nl)
{
    int link = links_name_is(s + 1, nl, "a") || links_name_is(s + 1, nl, "area");
    int href_seen = 0;
    size_t i = 1 + nl, copied = 0;
    for (;;) {
        while (s[i] && (links_space(s[i]) || s[i] == '/'))
            i++;
        if (!s[i])
            return 0;
        if (s[i] == '>')
            break;
        size_t name = i;
        i++; /* a name may start with '=', which is then part of it */
        while (s[i] && !links_space(s[i]) && s[i] != '/' && s[i] != '>' && s[i] != '=')
            i++;
        size_t name_len = i - name;
        size_t j = i;
        while (s[j] && links_space(s[j]))
            j++;
        if (s[j] != '=')
            continue; /* no value: the next attribute starts here */
        j++;
        while (s[j] && links_space(s[j]))
            j++;
        size_t vat = j, vstart, vlen, vend; /* the value: with its quotes, without; after it */
        if (s[j] == '"' || s[j] == '\'') {
            const char *q = strchr(s + j + 1, s[j]);
            if (!q)
                return 0;
            vstart = j + 1;
            vlen = (size_t)(q - (s + vstart));
            vend = vstart + vlen + 1;
        } else {
            vstart = j;
            while (s[j] && !links_space(s[j]) && s[j] != '>')
                j++;
            vlen = j - vstart;
            vend = j;
        }
        /* HTML keeps the first of repeated attributes: so does the rewriter */
        if (link && !href_seen && links_name_is(s + name, name_len, "href")) {
            href_seen = 1;
            if (links_copy(c, s + copied, vat - copied) != 0)
                return -1;
            int r = links_href(c, s + vstart, vlen);
            if (r < 0)
                return -1;
            copied = r ? vend : vat; /* not tracked: the value is copied as written */
        }
        i = vend;
    }
    if (links_copy(c, s + copied, i + 1 - copied) != 0)
        return -1;
    return (long)(i + 1);
}

/* The raw text of a <script>, <style>, <textarea> or <title> after its
 * start tag, up to its end tag: how many bytes of s to copy untouched. */
static size_t links_raw_text(const char *s, const char *name, size_t nl)
{
    for (const char *p = s; (p = strstr(p, "</")) != NULL; p += 2)
        if (strncasecmp(p + 2, name, nl) == 0 &&
            (links_space(p[2 + nl]) || p[2 + nl] == '>' || p[2 + nl] == '/'))
            return (size_t)(p - s);
    return strlen(s);
}

static int links_walk(links_ctx_t *c, const char *html)
{
    const char *p = html;
    for (;;) {
        const char *lt = strchr(p, '<');
        if (!lt)
            return links_copy(c, p, strlen(p));
        if (links_copy(c, p, (size_t)(lt - p)) != 0)
            return -1;
        p = lt;
        if (strncmp(p, "<!--", 4) == 0) {
            const char *end = strstr(p + 4, "-->");
            size_t n = end ? (size_t)(end + 3 - p) : strlen(p);
            if (links_copy(c, p, n) != 0)
                return -1;
            p += n;
            continue;
        }
        if (p[1] == '/' && isalpha((unsigned char)p[2])) {
            size_t nl = 0;
            while (isalnum((unsigned char)p[2 + nl]))
                nl++;
            if (links_name_is(p + 2, nl, "body") &&
                (links_space(p[2 + nl]) || p[2 + nl] == '>' || p[2 + nl] == '\0'))
                c->body_close = c->out->len;
            const char *gt = strchr(p, '>');
            size_t n = gt ? (size_t)(gt + 1 - p) : strlen(p);
            if (links_copy(c, p, n) != 0)
                return -1;
            p += n;
            continue;
        }
        if (!isalpha((unsigned char)p[1])) {
            /* "<!DOCTYPE", "<?", a lone '<': nothing to rewrite in it */
            if (links_copy(c, p, 1) != 0)
                return -1;
            p++;
            continue;
        }
        size_t nl = 0;
        while (isalnum((unsigned char)p[1 + nl]) || p[1 + nl] == '-' || p[1 + nl] == ':')
            nl++;
        long used = links_start_tag(c, p, nl);
        if (used < 0)
            return -1;
        if (used == 0) /* a tag cut off at the end: left as it is */
            return links_copy(c, p, strlen(p));
        static const char *const raw[] = {"script", "style", "textarea", "title"};
        for (size_t k = 0; k < sizeof raw / sizeof raw[0]; k++)
            if (links_name_is(p + 1, nl, raw[k])) {
                size_t n = links_raw_text(p + used, raw[k], nl);
                if (links_copy(c, p + used, n) != 0)
                    return -1;
                used += (long)n;
                break;
            }
        p += used;
    }
}

/* Puts the pixel before the last </body>, or at the end. */
static int links_pixel(links_ctx_t *c)
{
    size_t at = c->body_close == (size_t)-1 ? c->out->len : c->body_close;
    buf_t px;
    buf_init(&px, c->base_len * 6 + LINKTOK_TEXT_MAX + LINKS_PIXEL_HTML_MAX);
    buf_t *keep = c->out;
    c->out = &px;
    int rc = buf_puts(&px, "<img src=");
    if (rc == 0)
        rc = links_put_tracked(c, LINKTOK_OPEN, 0, ".gif");
    rc |= buf_puts(&px, " width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;"
                        "height:1px;border:0;margin:0;padding:0\">");
    c->out = keep;
    if (rc != 0) {
        buf_free(&px);
        return links_fail(c, "cannot add the open pixel");
    }
    size_t tail = c->out->len - at;
    if (buf_append(c->out, px.data, px.len) != 0) {
        buf_free(&px);
        return links_fail(c, "the message grew past its bound");
    }
    /* move the tail (</body>...) after the pixel */
    memmove(c->out->data + at + px.len, c->out->data + at, tail);
    memcpy(c->out->data + at, px.data, px.len);
    buf_free(&px);
    return 0;
}

void links_free(links_t *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->url[i]);
    free(l->url);
    l->url = NULL;
    l->n = 0;
}

int links_rewrite(const char *html, const links_opts_t *o, char **out, links_t *l, char *err,
                  size_t errlen)
{
    *out = NULL;
    memset(l, 0, sizeof *l);
    if (errlen)
        err[0] = '\0';
    if (!html || !o || !o->key || !o->public_url || !o->communication_id || o->max_links < 1 ||
        o->max_links > 100000) {
        snprintf(err, errlen, "link tracking: bad arguments");
        return -1;
    }
    size_t base_len = strlen(o->public_url);
    while (base_len && o->public_url[base_len - 1] == '/')
        base_len--;
    /* each rewritten link is a base, a path and a token, escaped at worst
     * six bytes a byte; plus the pixel */
    size_t per = base_len * 6 + LINKTOK_TEXT_MAX + 32;
    size_t cap = strlen(html) + ((size_t)o->max_links + 1) * per + LINKS_PIXEL_HTML_MAX;
    buf_t b;
    buf_init(&b, cap);
    links_ctx_t c = {
        .o = o,
        .base = o->public_url,
        .base_len = base_len,
        .out = &b,
        .l = l,
        .body_close = (size_t)-1,
        .err = err,
        .errlen = errlen,
    };
    if (links_walk(&c, html) != 0 || links_pixel(&c) != 0 || (*out = buf_detach(&b)) == NULL) {
        if (!err[0])
            links_fail(&c, "out of memory");
        buf_free(&b);
        links_free(l);
        return -1;
    }
    return 0;
}
