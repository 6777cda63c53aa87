#include "channel/outbox.h"
#include "util/errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounded well under PATH_MAX so every path we build fits a stack buffer. */
#define OUTBOX_DIR_MAX  3072
#define OUTBOX_NAME_MAX 200
#define OUTBOX_PATH_MAX (OUTBOX_DIR_MAX + OUTBOX_NAME_MAX + 16)

/* A plain file name: no directory part, not hidden (which also rules out
 * "." and ".." and our own ".tmp-" files), no control characters. */
static int outbox_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > OUTBOX_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* mkdir -p with mode 0700: the outbox holds whole messages, addresses
 * included, so only the service user may read it. */
static int outbox_mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[OUTBOX_DIR_MAX + 1];
    size_t n = strlen(dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            errmsg_set(err, errlen, "cannot create outbox directory: %s", strerror(errno));
            return -1;
        }
        p[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errmsg_set(err, errlen, "outbox path is not a directory");
        return -1;
    }
    return 0;
}

static int outbox_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

int outbox_write(const char *dir, const char *name, const char *data, size_t len, char *path,
                 size_t pathlen, char *err, size_t errlen)
{
    if (!dir || !*dir || !name || (!data && len > 0)) {
        errmsg_set(err, errlen, "missing argument");
        return -1;
    }
    if (strlen(dir) > OUTBOX_DIR_MAX) {
        errmsg_set(err, errlen, "outbox directory path too long");
        return -1;
    }
    if (!outbox_name_ok(name)) {
        errmsg_set(err, errlen, "invalid outbox file name");
        return -1;
    }
    if (outbox_mkdirs(dir, err, errlen) != 0)
        return -1;

    char tmp[OUTBOX_PATH_MAX], final[OUTBOX_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    if (path && strlen(final) >= pathlen) {
        errmsg_set(err, errlen, "path buffer too small");
        return -1;
    }

    /* O_EXCL never follows a planted symlink. A leftover temporary file can
     * only come from a writer that died mid-write (names are unique per
     * message), so it is removed (unlink removes a link, not its target) and
     * the exclusive create tried once more. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        errmsg_set(err, errlen, "cannot create outbox file: %s", strerror(errno));
        return -1;
    }
    /* fsync before rename: otherwise a crash can leave the final name
     * pointing at an empty file. */
    if (outbox_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        errmsg_set(err, errlen, "cannot write outbox file: %s", strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0) {
        errmsg_set(err, errlen, "cannot close outbox file: %s", strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, final) != 0) {
        errmsg_set(err, errlen, "cannot rename outbox file: %s", strerror(errno));
        unlink(tmp);
        return -1;
    }
    /* Make the rename itself durable. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        errmsg_set(err, errlen, "cannot sync outbox directory: %s", strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    if (path)
        snprintf(path, pathlen, "%s", final);
    return 0;
}
