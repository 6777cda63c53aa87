#include "util/text.h"

#include <stdlib.h>
#include <string.h>

int text_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t text_utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

void text_line_col(const char *text, size_t len, const char *at, int *line, int *col)
{
    int ln = 1, cl = 1;
    for (const char *p = text; at && p < at && p < text + len; p++) {
        if (*p == '\n') {
            ln++;
            cl = 1;
        } else {
            cl++;
        }
    }
    *line = ln;
    *col = cl;
}

void text_copy_utf8(const char *s, char *out, size_t outlen)
{
    size_t n = strlen(s);
    if (n >= outlen) {
        n = outlen - 1;
        /* back off continuation bytes (10xxxxxx) to the character's start */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

char *text_dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    if (n > 0)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}
