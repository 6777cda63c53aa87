/* Fuzzes SMS segment counting: gsm7_count on arbitrary bytes, with the
 * invariants every count must keep. */
#include "channel/gsm7.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsm7_count_t c;
    if (gsm7_count((const char *)data, size, &c) != 0) {
        if (c.offset >= size)
            abort(); /* the bad byte must be inside the text */
        return 0;
    }
    (void)gsm7_encoding_name(c.encoding);
    /* A code point takes at least one byte; an empty text takes no segment,
     * and any other at least one. */
    if (c.chars > size || (size == 0) != (c.segments == 0))
        abort();
    if (c.encoding == GSM7_ENC_GSM7 && c.units < c.chars)
        abort();
    size_t per = c.encoding == GSM7_ENC_GSM7 ? GSM7_MULTI_SEPTETS : GSM7_MULTI_UCS2;
    if (c.segments > 1 && c.segments * per < c.units)
        abort();
    return 0;
}
