#include "webhook/form.h"

#include "util/errmsg.h"
#include "validate.h"
#include "util/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Decodes src[0..n) into dst (room for n + 1 bytes), refusing what form.h
 * says is refused. what names the part ("key"/"value") for the error text;
 * the offending bytes themselves are never quoted, as they may be personal data. */
static int form_decode(const char *src, size_t n, size_t max, char *dst, size_t *outlen,
                       size_t pair_no, const char *what, char *err, size_t errlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3) {
                errmsg_set(err, errlen, "pair %zu: truncated percent escape in %s", pair_no, what);
                return -1;
            }
            int hi = text_hexval((unsigned char)src[i + 1]);
            int lo = text_hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0) {
                errmsg_set(err, errlen, "pair %zu: invalid percent escape in %s", pair_no, what);
                return -1;
            }
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0') {
            errmsg_set(err, errlen, "pair %zu: NUL byte in %s", pair_no, what);
            return -1;
        }
        if (o == max) {
            errmsg_set(err, errlen, "pair %zu: %s longer than %zu bytes", pair_no, what, max);
            return -1;
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    if (!val_utf8(dst, o)) {
        errmsg_set(err, errlen, "pair %zu: %s is not valid UTF-8", pair_no, what);
        return -1;
    }
    *outlen = o;
    return 0;
}

static size_t form_count_segments(const char *body, size_t len)
{
    size_t count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || body[i] == '&') {
            if (i > start)
                count++;
            start = i + 1;
        }
    }
    return count;
}

int form_parse(form_pairs_t *out, const char *body, size_t len, const form_limits_t *limits,
               char *err, size_t errlen)
{
    static const form_limits_t defaults = FORM_LIMITS_DEFAULT;
    const form_limits_t *lim = limits ? limits : &defaults;

    out->pairs = NULL;
    out->count = 0;
    out->arena = NULL;
    if (len > 0 && !body) {
        errmsg_set(err, errlen, "no body");
        return -1;
    }
    /* The arena bound below doubles len; keep that from overflowing too. */
    if (len > lim->max_body || len > SIZE_MAX / 2 - 1) {
        errmsg_set(err, errlen, "form body longer than %zu bytes", lim->max_body);
        return -1;
    }
    size_t nseg = form_count_segments(body, len);
    if (nseg > lim->max_pairs) {
        errmsg_set(err, errlen, "form has more than %zu fields", lim->max_pairs);
        return -1;
    }
    if (nseg == 0)
        return 0;

    /* Decoding never lengthens text, and each non-empty segment (at least one
     * byte plus its separator) needs two terminators, so 2 * len + 2 always
     * holds every key and value. */
    out->arena = malloc(2 * len + 2);
    out->pairs = calloc(nseg, sizeof *out->pairs);
    if (!out->arena || !out->pairs) {
        errmsg_set(err, errlen, "out of memory");
        form_free(out);
        return -1;
    }

    char *dst = out->arena;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && body[i] != '&')
            continue;
        if (i > start) {
            const char *seg = body + start;
            size_t seglen = i - start;
            const char *eq = memchr(seg, '=', seglen);
            size_t klen = eq ? (size_t)(eq - seg) : seglen;
            const char *vsrc = eq ? eq + 1 : seg + seglen;
            size_t vlen = seglen - klen - (eq ? 1 : 0);
            form_pair_t *p = &out->pairs[out->count];
            size_t pair_no = out->count + 1;

            p->key = dst;
            if (form_decode(seg, klen, lim->max_key, dst, &p->key_len, pair_no, "key", err,
                            errlen) != 0)
                goto fail;
            dst += p->key_len + 1;
            p->value = dst;
            if (form_decode(vsrc, vlen, lim->max_value, dst, &p->value_len, pair_no, "value", err,
                            errlen) != 0)
                goto fail;
            dst += p->value_len + 1;
            out->count++;
        }
        start = i + 1;
    }
    return 0;
fail:
    form_free(out);
    return -1;
}

void form_free(form_pairs_t *p)
{
    free(p->pairs);
    free(p->arena);
    p->pairs = NULL;
    p->arena = NULL;
    p->count = 0;
}

const char *form_get(const form_pairs_t *p, const char *key)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->pairs[i].key, key) == 0)
            return p->pairs[i].value;
    return NULL;
}
