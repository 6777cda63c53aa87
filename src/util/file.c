/* file: bounded whole-file reads.
 *
 * Loaders read files an operator put in a configuration directory, while
 * crier may run as root: a FIFO there must not hang the loader, and a
 * symlink there must not make crier read (and quote in a parse error) a file
 * the operator could not read. Symlinks inside the directory stay allowed,
 * since Kubernetes mounts every ConfigMap key as one. */
#include "util/file.h"

#include "util/errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_PATH_MAX 4096

/* Reads fd to its end into b. */
static int file_read_fd(int fd, const char *display, buf_t *b, char *err, size_t errlen)
{
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errmsg_set(err, errlen, "%s: read error", display);
            return -1;
        }
        if (n == 0)
            return 0;
        if (buf_append(b, chunk, (size_t)n) != 0) {
            errmsg_set(err, errlen, "%s: larger than %zu bytes", display, b->max);
            return -1;
        }
    }
}

int file_append(const char *path, const char *display, buf_t *b, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errmsg_set(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        return -1;
    }
    int rc = file_read_fd(fd, display, b, err, errlen);
    close(fd);
    return rc;
}

const char *file_dir_label(const char *dir, size_t *len)
{
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    size_t s = end;
    while (s > 0 && dir[s - 1] != '/')
        s--;
    if (s == end && end > 0) /* dir is "/" */
        s = end - 1;
    *len = end - s;
    return dir + s;
}

/* 1 when path (resolved, no symlinks) is dir (resolved) or lies below it. */
static int file_inside(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Opens dir/name for reading once it is known to be a regular file inside
 * dir; returns the descriptor, or -1 with err set. */
static int file_open_in_dir(const char *dir, const char *name, const char *display, char *err,
                            size_t errlen)
{
    char path[FILE_PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        errmsg_set(err, errlen, "%s: path too long", display);
        return -1;
    }
    char *rdir = realpath(dir, NULL);
    if (!rdir) {
        errmsg_set(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        return -1;
    }
    int fd = -1;
    char *rpath = realpath(path, NULL);
    if (!rpath) {
        int e = errno;
        struct stat lst;
        if (e == ENOENT && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
            errmsg_set(err, errlen, "%s: dangling symlink", display);
        else
            errmsg_set(err, errlen, "%s: cannot open: %s", display, strerror(e));
        goto done;
    }
    /* Decided on the resolved path before anything is opened: opening a
     * device outside the directory could itself have effects. */
    if (!file_inside(rdir, rpath)) {
        size_t llen;
        const char *label = file_dir_label(dir, &llen);
        errmsg_set(err, errlen, "%s: symlink points outside %.*s", display, (int)llen, label);
        goto done;
    }
    struct stat st;
    if (stat(rpath, &st) != 0) {
        errmsg_set(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        errmsg_set(err, errlen, "%s: not a regular file", display);
        goto done;
    }
    /* Between the checks and the open the file may be replaced: O_NONBLOCK
     * keeps a FIFO put there from blocking the open, O_NOFOLLOW refuses a
     * symlink put there, and the inode opened must be the one checked, so a
     * directory on the way swapped for a symlink is caught too. */
    fd = open(rpath, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        errmsg_set(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        goto done;
    }
    struct stat fst;
    if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev ||
        fst.st_ino != st.st_ino) {
        errmsg_set(err, errlen, "%s: changed while being opened", display);
        close(fd);
        fd = -1;
    }
done:
    free(rpath);
    free(rdir);
    return fd;
}

int file_append_in_dir(const char *dir, const char *name, const char *display, buf_t *b, char *err,
                       size_t errlen)
{
    if (!dir || !*dir || !name || !*name) {
        errmsg_set(err, errlen, "%s: no directory or file name", display ? display : "file");
        return -1;
    }
    int fd = file_open_in_dir(dir, name, display, err, errlen);
    if (fd < 0)
        return -1;
    int rc = file_read_fd(fd, display, b, err, errlen);
    close(fd);
    return rc;
}
