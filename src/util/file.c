#include "util/file.h"

#include "util/errmsg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int file_append(const char *path, const char *display, buf_t *b, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errmsg_set(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        return -1;
    }
    char chunk[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(b, chunk, n) != 0) {
            errmsg_set(err, errlen, "%s: larger than %zu bytes", display, b->max);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        errmsg_set(err, errlen, "%s: read error", display);
        rc = -1;
    }
    fclose(f);
    return rc;
}
