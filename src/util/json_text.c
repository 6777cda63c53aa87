#include "util/json_text.h"

#include <stdio.h>

int jtext_string(buf_t *b, const char *s)
{
    int rc = buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        switch (*p) {
        case '"':
            rc = buf_puts(b, "\\\"");
            break;
        case '\\':
            rc = buf_puts(b, "\\\\");
            break;
        case '\n':
            rc = buf_puts(b, "\\n");
            break;
        case '\r':
            rc = buf_puts(b, "\\r");
            break;
        case '\t':
            rc = buf_puts(b, "\\t");
            break;
        default:
            if (*p < 0x20)
                rc = buf_printf(b, "\\u%04x", *p);
            else
                rc = buf_putc(b, (char)*p);
        }
    }
    return rc | buf_putc(b, '"');
}
