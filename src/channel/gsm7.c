/* gsm7: SMS encoding choice and segment count (GSM 03.38 / UCS-2). */
#include "channel/gsm7.h"

#include <stdbool.h>

/* GSM 03.38 default alphabet, indexed by septet. 0x1B is the escape to the
 * extension table, not a character: the Unicode mapping's U+00A0 there is
 * only a round-trip artefact, and carriers (and Twilio) do not send a
 * no-break space as GSM, so that slot holds a value no text contains. */
#define GSM7_NO_CHAR 0xFFFFu
static const uint16_t gsm7_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5,       0x00E8, 0x00E9, 0x00F9, 0x00EC, /* @ £ $ ¥ è é ù ì */
    0x00F2, 0x00C7, 0x000A, 0x00D8,       0x00F8, 0x000D, 0x00C5, 0x00E5, /* ò Ç LF Ø ø CR Å å */
    0x0394, 0x005F, 0x03A6, 0x0393,       0x039B, 0x03A9, 0x03A0, 0x03A8, /* Δ _ Φ Γ Λ Ω Π Ψ */
    0x03A3, 0x0398, 0x039E, GSM7_NO_CHAR, 0x00C6, 0x00E6, 0x00DF, 0x00C9, /* Σ Θ Ξ ESC Æ æ ß É */
    0x0020, 0x0021, 0x0022, 0x0023,       0x00A4, 0x0025, 0x0026, 0x0027, /* SP ! " # ¤ % & ' */
    0x0028, 0x0029, 0x002A, 0x002B,       0x002C, 0x002D, 0x002E, 0x002F, /* ( ) * + , - . / */
    0x0030, 0x0031, 0x0032, 0x0033,       0x0034, 0x0035, 0x0036, 0x0037, /* 0-7 */
    0x0038, 0x0039, 0x003A, 0x003B,       0x003C, 0x003D, 0x003E, 0x003F, /* 8 9 : ; < = > ? */
    0x00A1, 0x0041, 0x0042, 0x0043,       0x0044, 0x0045, 0x0046, 0x0047, /* ¡ A-G */
    0x0048, 0x0049, 0x004A, 0x004B,       0x004C, 0x004D, 0x004E, 0x004F, /* H-O */
    0x0050, 0x0051, 0x0052, 0x0053,       0x0054, 0x0055, 0x0056, 0x0057, /* P-W */
    0x0058, 0x0059, 0x005A, 0x00C4,       0x00D6, 0x00D1, 0x00DC, 0x00A7, /* X Y Z Ä Ö Ñ Ü § */
    0x00BF, 0x0061, 0x0062, 0x0063,       0x0064, 0x0065, 0x0066, 0x0067, /* ¿ a-g */
    0x0068, 0x0069, 0x006A, 0x006B,       0x006C, 0x006D, 0x006E, 0x006F, /* h-o */
    0x0070, 0x0071, 0x0072, 0x0073,       0x0074, 0x0075, 0x0076, 0x0077, /* p-w */
    0x0078, 0x0079, 0x007A, 0x00E4,       0x00F6, 0x00F1, 0x00FC, 0x00E0, /* x y z ä ö ñ ü à */
};

/* Extension table: reached through ESC, so each costs two septets. */
static const uint16_t gsm7_ext[10] = {
    0x000C, /* form feed */
    0x005E, /* ^ */
    0x007B, /* { */
    0x007D, /* } */
    0x005C, /* \ */
    0x005B, /* [ */
    0x007E, /* ~ */
    0x005D, /* ] */
    0x007C, /* | */
    0x20AC, /* € */
};

int gsm7_septets(uint32_t cp)
{
    /* most text is plain letters, digits and spaces: answer those at once */
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
        cp == ' ')
        return 1;
    for (size_t i = 0; i < sizeof gsm7_basic / sizeof gsm7_basic[0]; i++)
        if (gsm7_basic[i] == cp)
            return 1;
    for (size_t i = 0; i < sizeof gsm7_ext / sizeof gsm7_ext[0]; i++)
        if (gsm7_ext[i] == cp)
            return 2;
    return 0;
}

const char *gsm7_encoding_name(gsm7_encoding_t e)
{
    return e == GSM7_ENC_UCS2 ? "UCS-2" : "GSM-7";
}

/* Decodes one UTF-8 sequence at s[*i]; advances *i. Returns -1 (leaving *i
 * at the bad sequence) for anything RFC 3629 forbids. */
static int gsm7_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char c = s[*i];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        (*i)++;
        return 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return -1; /* stray continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (len - *i < n)
        return -1;
    for (size_t k = 1; k < n; k++) {
        unsigned char t = s[*i + k];
        if ((t & 0xC0u) != 0x80u)
            return -1;
        v = (v << 6) | (t & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -1;
    *cp = v;
    *i += n;
    return 0;
}

/* Whether cp belongs to the same user-perceived character as the one before
 * it: combining marks, variation selectors, skin tones, emoji tags, the
 * joiner and what it joins, the second half of a flag, LF after CR. A close
 * approximation of grapheme clusters, enough that an emoji sequence is
 * never split across segments. */
static bool gsm7_extends(uint32_t prev, uint32_t cp, bool prev_joined_ri)
{
    if (prev == 0x200D || cp == 0x200D)
        return true;
    if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
        (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
        (cp >= 0xFE20 && cp <= 0xFE2F))
        return true; /* combining marks */
    if ((cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xE0100 && cp <= 0xE01EF))
        return true; /* variation selectors */
    if (cp >= 0x1F3FB && cp <= 0x1F3FF)
        return true; /* skin tone modifiers */
    if (cp >= 0xE0020 && cp <= 0xE007F)
        return true; /* tag sequences (subdivision flags) */
    bool ri_prev = prev >= 0x1F1E6 && prev <= 0x1F1FF;
    bool ri_cp = cp >= 0x1F1E6 && cp <= 0x1F1FF;
    if (ri_prev && ri_cp && !prev_joined_ri)
        return true; /* regional indicators pair into one flag */
    return prev == '\r' && cp == '\n';
}

/* Adds one indivisible cluster of cost units to a concatenated message. */
static void gsm7_fit(size_t cost, size_t cap, size_t *segments, size_t *used)
{
    if (cost > cap) {
        /* longer than a segment (an absurd joiner chain): it must split */
        while (cost > 0) {
            size_t room = cap - *used;
            if (room == 0) {
                (*segments)++;
                *used = 0;
                room = cap;
            }
            size_t take = cost < room ? cost : room;
            *used += take;
            cost -= take;
        }
        return;
    }
    if (*used + cost > cap) {
        (*segments)++;
        *used = 0;
    }
    *used += cost;
}

static size_t gsm7_cost(gsm7_encoding_t enc, uint32_t cp)
{
    if (enc == GSM7_ENC_GSM7)
        return (size_t)gsm7_septets(cp);
    return cp >= 0x10000 ? 2 : 1;
}

int gsm7_count(const char *utf8, size_t len, gsm7_count_t *out)
{
    const unsigned char *s = (const unsigned char *)utf8;
    *out = (gsm7_count_t){.encoding = GSM7_ENC_GSM7};
    if (len > 0 && !utf8)
        return -1;

    /* first pass: validity, the encoding, the totals */
    size_t i = 0;
    while (i < len) {
        size_t at = i;
        uint32_t cp;
        if (gsm7_utf8_next(s, len, &i, &cp) != 0) {
            *out = (gsm7_count_t){.encoding = GSM7_ENC_GSM7, .offset = at};
            return -1;
        }
        out->chars++;
        if (out->encoding == GSM7_ENC_GSM7 && gsm7_septets(cp) == 0) {
            out->encoding = GSM7_ENC_UCS2;
            out->offset = at;
            out->ucs2_char = cp;
        }
    }
    i = 0;
    while (i < len) {
        uint32_t cp = 0;
        (void)gsm7_utf8_next(s, len, &i, &cp); /* validated above */
        out->units += gsm7_cost(out->encoding, cp);
    }

    size_t single = out->encoding == GSM7_ENC_GSM7 ? GSM7_SINGLE_SEPTETS : GSM7_SINGLE_UCS2;
    size_t cap = out->encoding == GSM7_ENC_GSM7 ? GSM7_MULTI_SEPTETS : GSM7_MULTI_UCS2;
    if (out->units == 0)
        return 0;
    if (out->units <= single) {
        out->segments = 1;
        return 0;
    }

    /* second pass: greedy fit of whole clusters into concatenated segments */
    size_t segments = 1, used = 0, cluster = 0;
    uint32_t prev = 0;
    bool prev_joined_ri = false; /* prev was the second half of a flag */
    i = 0;
    while (i < len) {
        uint32_t cp = 0;
        (void)gsm7_utf8_next(s, len, &i, &cp);
        size_t cost = gsm7_cost(out->encoding, cp);
        if (cluster > 0 && gsm7_extends(prev, cp, prev_joined_ri)) {
            bool ri = cp >= 0x1F1E6 && cp <= 0x1F1FF && prev >= 0x1F1E6 && prev <= 0x1F1FF;
            prev_joined_ri = ri && !prev_joined_ri;
            cluster += cost;
        } else {
            if (cluster > 0)
                gsm7_fit(cluster, cap, &segments, &used);
            cluster = cost;
            prev_joined_ri = false;
        }
        prev = cp;
    }
    if (cluster > 0)
        gsm7_fit(cluster, cap, &segments, &used);
    out->segments = segments;
    return 0;
}
