/* gsm7: how many SMS segments a text costs, as the carrier will bill it.
 *
 * A text is sent in the GSM 03.38 default alphabet (7-bit septets; the
 * extension table's characters cost two septets, ESC + code) when every
 * character is in it, otherwise the whole text goes as UCS-2 (UTF-16 code
 * units; a character outside the BMP is a surrogate pair, two units).
 * One segment holds 160 septets or 70 units; a concatenated message holds
 * 153 or 67 per segment, and a character (an escape pair, a surrogate pair,
 * an emoji sequence) is never split across two segments, so segments are
 * counted by a greedy fit, as Twilio counts them. */
#ifndef CRIER_GSM7_H
#define CRIER_GSM7_H

#include <stddef.h>
#include <stdint.h>

#define GSM7_SINGLE_SEPTETS 160
#define GSM7_MULTI_SEPTETS  153
#define GSM7_SINGLE_UCS2    70
#define GSM7_MULTI_UCS2     67

typedef enum gsm7_encoding {
    GSM7_ENC_GSM7 = 0,
    GSM7_ENC_UCS2 = 1,
} gsm7_encoding_t;

typedef struct gsm7_count {
    gsm7_encoding_t encoding;
    size_t units;    /* septets (GSM-7) or UTF-16 code units (UCS-2), in all */
    size_t segments; /* 0 for an empty text */
    size_t chars;    /* Unicode code points */
    /* GSM-7: unused (0). UCS-2: the byte offset and code point of the first
     * character outside the GSM alphabet, so a message can say what to
     * change. On an invalid-UTF-8 error: the offset of the bad byte. */
    size_t offset;
    uint32_t ucs2_char;
} gsm7_count_t;

/* Counts len bytes of UTF-8 text (NUL bytes count as characters). Returns
 * 0, or -1 when the text is not valid UTF-8 (overlong forms, surrogates,
 * code points above U+10FFFF, truncated sequences): out->offset then names
 * the offending byte. */
int gsm7_count(const char *utf8, size_t len, gsm7_count_t *out);

/* "GSM-7" or "UCS-2". */
const char *gsm7_encoding_name(gsm7_encoding_t e);

/* Septets code point cp costs in the GSM alphabet: 1 (basic table),
 * 2 (extension table) or 0 (not representable: forces UCS-2). */
int gsm7_septets(uint32_t cp);

#endif
