#include "util/redact.h"

#include <string.h>

void redact_copy_digits(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; src[i] && o + 1 < cap;) {
        size_t run = strspn(src + i, "0123456789");
        if (run >= 7) {
            for (size_t k = 0; k < 3 && o + 1 < cap; k++)
                dst[o++] = '*';
            i += run;
        } else if (run > 0) {
            for (size_t k = 0; k < run && o + 1 < cap; k++)
                dst[o++] = src[i + k];
            i += run;
        } else {
            unsigned char c = (unsigned char)src[i++];
            dst[o++] = c < 0x20 ? ' ' : (char)c;
        }
    }
    /* never leave half a UTF-8 sequence at the cut */
    while (o > 0 && ((unsigned char)dst[o - 1] & 0x80)) {
        size_t start = o - 1;
        while (start > 0 && ((unsigned char)dst[start] & 0xC0) == 0x80)
            start--;
        unsigned char lead = (unsigned char)dst[start];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (o - start >= need)
            break;
        o = start;
    }
    dst[o] = '\0';
}
