/* linktok: signed link tokens (see linktok.h). */
#include "crypto/linktok.h"

#include "crypto/crypto.h"
#include "util/base64.h"
#include "util/text.h"

#include <string.h>

#define LINKTOK_VERSION 1
#define LINKTOK_BODY    26 /* version, kind, id, arg, day */
#define LINKTOK_MAC     16
#define LINKTOK_BYTES   (LINKTOK_BODY + LINKTOK_MAC)

_Static_assert(LINKTOK_BYTES % 3 == 0, "a token encodes without padding");
_Static_assert(LINKTOK_BYTES / 3 * 4 == LINKTOK_LEN, "the text length follows the layout");

/* URL-safe: a token sits in a path segment as it is. */
static const char linktok_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 16 bytes of a UUID in 8-4-4-4-12 form; -1 when it is not one. */
static int linktok_uuid_bytes(const char *s, unsigned char out[16])
{
    if (strlen(s) != 36)
        return -1;
    int o = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i++] != '-')
                return -1;
            continue;
        }
        int hi = text_hexval(s[i]), lo = text_hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

static void linktok_uuid_text(const unsigned char in[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[in[i] >> 4];
        out[o++] = hex[in[i] & 15];
    }
    out[o] = '\0';
}

static void linktok_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t linktok_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int linktok_kind_ok(int k)
{
    return k == LINKTOK_CLICK || k == LINKTOK_OPEN || k == LINKTOK_UNSUB || k == LINKTOK_FORM ||
           k == LINKTOK_ACTION;
}

/* The signature of body: a label first, so no other HMAC crier computes
 * under a related key can be taken for a token's. */
static int linktok_mac(const unsigned char key[32], const unsigned char body[LINKTOK_BODY],
                       unsigned char mac[32])
{
    static const char label[] = "crier link v1";
    unsigned char in[sizeof label + LINKTOK_BODY];
    memcpy(in, label, sizeof label); /* with its NUL */
    memcpy(in + sizeof label, body, LINKTOK_BODY);
    return cry_hmac_sha256(key, 32, in, sizeof in, mac);
}

uint32_t linktok_day(time_t t)
{
    return t < 0 ? 0 : (uint32_t)(t / 86400);
}

int linktok_make(const unsigned char key[32], const linktok_t *t, char out[LINKTOK_TEXT_MAX])
{
    unsigned char raw[LINKTOK_BYTES], mac[32];
    out[0] = '\0';
    if (!linktok_kind_ok(t->kind))
        return -1;
    raw[0] = LINKTOK_VERSION;
    raw[1] = (unsigned char)t->kind;
    if (linktok_uuid_bytes(t->id, raw + 2) != 0)
        return -1;
    linktok_put32(raw + 18, t->arg);
    linktok_put32(raw + 22, t->day);
    if (linktok_mac(key, raw, mac) != 0)
        return -1;
    memcpy(raw + LINKTOK_BODY, mac, LINKTOK_MAC);
    int o = 0;
    for (int i = 0; i < LINKTOK_BYTES; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = linktok_alphabet[v >> 18 & 63];
        out[o++] = linktok_alphabet[v >> 12 & 63];
        out[o++] = linktok_alphabet[v >> 6 & 63];
        out[o++] = linktok_alphabet[v & 63];
    }
    out[o] = '\0';
    return 0;
}

int linktok_read(const unsigned char key[32], const char *text, size_t len, linktok_kind_t want,
                 linktok_t *t)
{
    memset(t, 0, sizeof *t);
    if (!text || len != LINKTOK_LEN)
        return -1;
    unsigned char raw[LINKTOK_BYTES], mac[32];
    for (size_t i = 0, o = 0; i < LINKTOK_LEN; i += 4, o += 3) {
        unsigned v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = b64_char_value((unsigned char)text[i + k], 1);
            if (d < 0)
                return -1;
            v = v << 6 | (unsigned)d;
        }
        raw[o] = (unsigned char)(v >> 16);
        raw[o + 1] = (unsigned char)(v >> 8);
        raw[o + 2] = (unsigned char)v;
    }
    if (raw[0] != LINKTOK_VERSION || raw[1] != (unsigned char)want)
        return -1;
    if (linktok_mac(key, raw, mac) != 0 || !cry_equal(mac, raw + LINKTOK_BODY, LINKTOK_MAC))
        return -1;
    t->kind = want;
    linktok_uuid_text(raw + 2, t->id);
    t->arg = linktok_get32(raw + 18);
    t->day = linktok_get32(raw + 22);
    return 0;
}

int linktok_expired(const linktok_t *t, time_t now, uint32_t max_days)
{
    uint32_t today = linktok_day(now);
    if (t->day > today + 1)
        return 1;
    return t->day < today && today - t->day > max_days;
}
