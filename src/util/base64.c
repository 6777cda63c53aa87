#include "util/base64.h"

#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes at most 3 input bytes into 4 output characters, padding with '='. */
static void b64_quad(const unsigned char *in, size_t n, char out[4])
{
    unsigned v = (unsigned)in[0] << 16;
    if (n > 1)
        v |= (unsigned)in[1] << 8;
    if (n > 2)
        v |= in[2];
    out[0] = b64_alphabet[(v >> 18) & 63];
    out[1] = b64_alphabet[(v >> 12) & 63];
    out[2] = n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? b64_alphabet[v & 63] : '=';
}

int b64_encode(buf_t *out, const void *data, size_t len, size_t line_len)
{
    const unsigned char *p = data;
    size_t col = 0;
    size_t start = out->len;
    for (size_t i = 0; i < len; i += 3) {
        char q[4];
        b64_quad(p + i, len - i < 3 ? len - i : 3, q);
        for (int k = 0; k < 4; k++) {
            if (buf_putc(out, q[k]) != 0)
                goto fail;
            if (line_len > 0 && ++col == line_len) {
                if (buf_append(out, "\r\n", 2) != 0)
                    goto fail;
                col = 0;
            }
        }
    }
    /* A partial last line still needs its CRLF so the next MIME line starts clean. */
    if (line_len > 0 && col > 0 && buf_append(out, "\r\n", 2) != 0)
        goto fail;
    return 0;
fail:
    /* Leave the buffer as it was: a half-written encoding is never useful. */
    buf_truncate(out, start);
    return -1;
}

int b64_char_value(unsigned char c, int url_safe)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url_safe ? '-' : '+'))
        return 62;
    if (c == (url_safe ? '_' : '/'))
        return 63;
    return -1;
}

int b64_decode(buf_t *out, const char *text, size_t len, int allow_newlines)
{
    size_t start = out->len;
    int vals[4];
    int nq = 0;   /* characters collected in the current quantum */
    int pad = 0;  /* '=' seen in the current quantum */
    int done = 0; /* a padded quantum ends the data: nothing may follow */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\r' || c == '\n') {
            if (!allow_newlines)
                goto fail;
            continue;
        }
        if (done)
            goto fail;
        if (c == '=') {
            /* Padding is only valid in the last two positions of a quantum. */
            if (nq < 2)
                goto fail;
            pad++;
            vals[nq++] = 0;
        } else {
            int v = b64_char_value(c, 0);
            if (v < 0 || pad > 0)
                goto fail;
            vals[nq++] = v;
        }
        if (nq == 4) {
            unsigned char o[3];
            unsigned w = ((unsigned)vals[0] << 18) | ((unsigned)vals[1] << 12) |
                         ((unsigned)vals[2] << 6) | (unsigned)vals[3];
            o[0] = (unsigned char)(w >> 16);
            o[1] = (unsigned char)(w >> 8);
            o[2] = (unsigned char)w;
            /* Non-zero bits under the padding mean a non-canonical encoding. */
            if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
                goto fail;
            if (buf_append(out, o, (size_t)(3 - pad)) != 0)
                goto fail;
            if (pad)
                done = 1;
            nq = 0;
            pad = 0;
        }
    }
    if (nq != 0)
        goto fail;
    if (!out->data && buf_append(out, "", 0) != 0)
        goto fail;
    return 0;
fail:
    buf_truncate(out, start);
    return -1;
}
