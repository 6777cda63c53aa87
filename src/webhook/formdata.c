#include "webhook/formdata.h"

#include "util/errmsg.h"
#include "validate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FORMDATA_BOUNDARY_MAX 70   /* RFC 2046 section 5.1.1 */
#define FORMDATA_HEADERS_MAX  4096 /* the header lines of one part */
#define FORMDATA_PARAM_MAX    1024 /* a parameter's value */

/* RFC 2046 bchars (the space only inside, never last). */
static int formdata_bchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

/* RFC 7230 tchar: the characters of a token. */
static int formdata_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Reads a parameter value at *p (a token, or a quoted string with its
 * backslash escapes undone) into out[0..max), NUL-terminated; *p moves past
 * it. 0, or -1 when it is neither, or longer than max - 1. */
static int formdata_param_value(const char **p, const char *end, char *out, size_t max)
{
    const char *s = *p;
    size_t o = 0;
    if (s < end && *s == '"') {
        s++;
        while (s < end && *s != '"') {
            if (*s == '\\' && s + 1 < end)
                s++;
            if ((unsigned char)*s < 0x20 && *s != '\t')
                return -1;
            if (o + 1 >= max)
                return -1;
            out[o++] = *s++;
        }
        if (s == end)
            return -1; /* unterminated */
        s++;
    } else {
        while (s < end && formdata_tchar((unsigned char)*s)) {
            if (o + 1 >= max)
                return -1;
            out[o++] = *s++;
        }
        if (o == 0)
            return -1;
    }
    out[o] = '\0';
    *p = s;
    return 0;
}

static const char *formdata_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Walks the parameters after a media type or disposition type in
 * [p, end): for each, name and value are handed to fn, which returns 0 to
 * go on and -1 to refuse. 0, or -1 when malformed or refused. */
typedef int (*formdata_param_fn)(void *cls, const char *name, size_t nlen, const char *value);

static int formdata_params(const char *p, const char *end, formdata_param_fn fn, void *cls,
                           size_t value_max)
{
    char *value = malloc(value_max);
    if (!value)
        return -1;
    int rc = 0;
    for (;;) {
        p = formdata_ows(p, end);
        if (p == end)
            break;
        if (*p != ';') {
            rc = -1;
            break;
        }
        p = formdata_ows(p + 1, end);
        if (p == end)
            break; /* a trailing ';' */
        const char *name = p;
        while (p < end && formdata_tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name);
        p = formdata_ows(p, end);
        if (nlen == 0 || p == end || *p != '=') {
            rc = -1;
            break;
        }
        p = formdata_ows(p + 1, end);
        if (formdata_param_value(&p, end, value, value_max) != 0 ||
            fn(cls, name, nlen, value) != 0) {
            rc = -1;
            break;
        }
    }
    free(value);
    return rc;
}

static int formdata_is(const char *name, size_t nlen, const char *want)
{
    return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

static int formdata_boundary_param(void *cls, const char *name, size_t nlen, const char *value)
{
    char *out = cls;
    if (!formdata_is(name, nlen, "boundary"))
        return 0;
    size_t n = strlen(value);
    if (out[0] || n == 0 || n > FORMDATA_BOUNDARY_MAX || value[n - 1] == ' ')
        return -1; /* twice, empty, too long, or ending in a space */
    for (size_t i = 0; i < n; i++)
        if (!formdata_bchar((unsigned char)value[i]))
            return -1;
    memcpy(out, value, n + 1);
    return 0;
}

int formdata_boundary(const char *ctype, char out[71])
{
    static const char type[] = "multipart/form-data";
    out[0] = '\0';
    if (!ctype)
        return -1;
    const char *end = ctype + strlen(ctype);
    const char *p = formdata_ows(ctype, end);
    if (strncasecmp(p, type, sizeof type - 1) != 0)
        return -1;
    p += sizeof type - 1;
    if (formdata_params(p, end, formdata_boundary_param, out, FORMDATA_PARAM_MAX) != 0 || !out[0]) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* What a part's Content-Disposition says. */
typedef struct formdata_disp {
    char name[FORMDATA_PARAM_MAX];
    int has_name;
    int has_filename;
    size_t max_key;
    int too_long;
} formdata_disp_t;

static int formdata_disp_param(void *cls, const char *name, size_t nlen, const char *value)
{
    formdata_disp_t *d = cls;
    if (formdata_is(name, nlen, "filename") || formdata_is(name, nlen, "filename*")) {
        d->has_filename = 1;
        return 0;
    }
    if (!formdata_is(name, nlen, "name"))
        return 0;
    if (d->has_name)
        return -1; /* two names */
    if (strlen(value) > d->max_key) {
        d->too_long = 1;
        return -1;
    }
    snprintf(d->name, sizeof d->name, "%s", value);
    d->has_name = 1;
    return 0;
}

/* Reads one part's header lines in [p, end) (the empty line excluded) into
 * d. 0, or -1 with err. */
static int formdata_headers(const char *p, const char *end, formdata_disp_t *d, size_t part_no,
                            char *err, size_t errlen)
{
    int seen = 0;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) {
            errmsg_set(err, errlen, "part %zu: malformed header line", part_no);
            return -1;
        }
        for (const char *q = p; q < colon; q++)
            if (!formdata_tchar((unsigned char)*q)) {
                errmsg_set(err, errlen, "part %zu: malformed header name", part_no);
                return -1;
            }
        if (formdata_is(p, (size_t)(colon - p), "Content-Disposition")) {
            static const char fd[] = "form-data";
            const char *v = formdata_ows(colon + 1, eol);
            if (seen || (size_t)(eol - v) < sizeof fd - 1 ||
                strncasecmp(v, fd, sizeof fd - 1) != 0 ||
                formdata_params(v + sizeof fd - 1, eol, formdata_disp_param, d,
                                FORMDATA_PARAM_MAX) != 0) {
                errmsg_set(err, errlen,
                           d->too_long ? "part %zu: name longer than the limit"
                                       : "part %zu: Content-Disposition is not form-data; name=...",
                           part_no);
                return -1;
            }
            seen = 1;
        }
        p = eol + 2; /* the caller made sure every line ends in CRLF */
    }
    if (!seen || !d->has_name) {
        errmsg_set(err, errlen, "part %zu: no Content-Disposition: form-data with a name", part_no);
        return -1;
    }
    if (d->has_filename) {
        errmsg_set(err, errlen, "part %zu: a file, not a field", part_no);
        return -1;
    }
    return 0;
}

/* The first "\r\n" + delim at or after p, or NULL. */
static const char *formdata_find(const char *p, const char *end, const char *delim, size_t dlen)
{
    while (p + 2 + dlen <= end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (!cr || cr + 2 + dlen > end)
            return NULL;
        if (cr[1] == '\n' && memcmp(cr + 2, delim, dlen) == 0)
            return cr;
        p = cr + 1;
    }
    return NULL;
}

/* 1 when [p, end), which follows a CRLF, holds no bare CR or LF: every
 * line ends in CRLF. */
static int formdata_crlf_only(const char *p, const char *end)
{
    for (; p < end; p++) {
        if (*p == '\r' && (p + 1 == end || p[1] != '\n'))
            return 0;
        if (*p == '\n' && p[-1] != '\r')
            return 0;
    }
    return 1;
}

static int formdata_add(form_pairs_t *out, size_t *cap, const form_limits_t *lim, char **dst,
                        const char *name, const char *value, size_t vlen, size_t part_no, char *err,
                        size_t errlen)
{
    if (out->count == lim->max_pairs) {
        errmsg_set(err, errlen, "form has more than %zu fields", lim->max_pairs);
        return -1;
    }
    if (vlen > lim->max_value) {
        errmsg_set(err, errlen, "part %zu: value longer than %zu bytes", part_no, lim->max_value);
        return -1;
    }
    size_t nlen = strlen(name);
    if (memchr(value, '\0', vlen) || !val_utf8(name, nlen) || !val_utf8(value, vlen)) {
        errmsg_set(err, errlen, "part %zu: NUL byte or invalid UTF-8", part_no);
        return -1;
    }
    if (out->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        form_pair_t *np = realloc(out->pairs, ncap * sizeof *np);
        if (!np) {
            errmsg_set(err, errlen, "out of memory");
            return -1;
        }
        out->pairs = np;
        *cap = ncap;
    }
    form_pair_t *p = &out->pairs[out->count++];
    p->key = *dst;
    p->key_len = nlen;
    memcpy(*dst, name, nlen + 1);
    *dst += nlen + 1;
    p->value = *dst;
    p->value_len = vlen;
    memcpy(*dst, value, vlen);
    (*dst)[vlen] = '\0';
    *dst += vlen + 1;
    return 0;
}

int formdata_parse(form_pairs_t *out, const char *ctype, const char *body, size_t len,
                   const form_limits_t *limits, char *err, size_t errlen)
{
    static const form_limits_t defaults = FORM_LIMITS_DEFAULT;
    const form_limits_t *lim = limits ? limits : &defaults;
    memset(out, 0, sizeof *out);
    char boundary[FORMDATA_BOUNDARY_MAX + 1];
    if (formdata_boundary(ctype, boundary) != 0) {
        errmsg_set(err, errlen, "not multipart/form-data with a boundary");
        return -1;
    }
    if (len > lim->max_body || len > SIZE_MAX / 2 - 2 || (len > 0 && !body)) {
        errmsg_set(err, errlen, "form body longer than %zu bytes", lim->max_body);
        return -1;
    }
    char delim[FORMDATA_BOUNDARY_MAX + 3];
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "--%s", boundary);
    const char *end = body + len;
    /* the first delimiter opens the body, or ends a preamble */
    const char *p;
    if (len >= dlen && memcmp(body, delim, dlen) == 0)
        p = body + dlen;
    else if ((p = formdata_find(body, end, delim, dlen)) != NULL)
        p += 2 + dlen;
    else {
        errmsg_set(err, errlen, "no boundary delimiter");
        return -1;
    }
    /* every name and value is a copy of bytes of the body, each with its
     * NUL, and each part costs more than two bytes of delimiter */
    out->arena = malloc(len + 2);
    if (!out->arena) {
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    char *dst = out->arena;
    size_t cap = 0;
    formdata_disp_t *d = malloc(sizeof *d);
    if (!d) {
        errmsg_set(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t part_no = 1;; part_no++) {
        /* after a delimiter: "--" closes (the epilogue is ignored, RFC
         * 2046), else optional padding and CRLF open a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        p = formdata_ows(p, end);
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            errmsg_set(err, errlen, "part %zu: malformed boundary delimiter", part_no);
            goto fail;
        }
        p += 2;
        /* the headers end at the first empty line (none at all: at once) */
        const char *hend;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hend = p;
        } else {
            hend = NULL;
            for (const char *q = p; q + 4 <= end && q - p < FORMDATA_HEADERS_MAX; q++)
                if (memcmp(q, "\r\n\r\n", 4) == 0) {
                    hend = q + 2;
                    break;
                }
            if (!hend) {
                errmsg_set(err, errlen, "part %zu: headers without an end", part_no);
                goto fail;
            }
        }
        if (!formdata_crlf_only(p, hend)) {
            errmsg_set(err, errlen, "part %zu: a header line not ended by CRLF", part_no);
            goto fail;
        }
        memset(d, 0, sizeof *d);
        d->max_key = lim->max_key;
        if (formdata_headers(p, hend, d, part_no, err, errlen) != 0)
            goto fail;
        const char *content = hend + 2;
        const char *next = formdata_find(hend, end, delim, dlen);
        /* the CRLF that ends the headers may be the one before the delimiter */
        if (!next || next + 2 < content) {
            errmsg_set(err, errlen, "part %zu: no closing boundary delimiter", part_no);
            goto fail;
        }
        size_t vlen = next >= content ? (size_t)(next - content) : 0;
        if (formdata_add(out, &cap, lim, &dst, d->name, content, vlen, part_no, err, errlen) != 0)
            goto fail;
        p = next + 2 + dlen;
    }
    free(d);
    return 0;
fail:
    free(d);
    form_free(out);
    return -1;
}
