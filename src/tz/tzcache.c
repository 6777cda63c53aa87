/* Zone lookup by name: validation, reading the file, and the process-wide
 * cache.
 *
 * Zones never change once loaded and are never freed, so a pointer handed
 * out stays valid without reference counting. The cache is bounded twice:
 * by distinct files (aliases such as "US/Eastern" share the zone of
 * "America/New_York", recognised by device and inode) and by names. Only
 * names that exist as zone files can enter it, so its size is bounded by
 * the zone directory as well. */
#include "tz/tz_internal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_NAME_SLOTS 2048 /* open-addressing table, a power of two > 2 * TZ_CACHE_NAMES */
#define TZ_DIR_MAX    512

typedef struct {
    char name[TZ_NAME_MAX + 1]; /* "" when the slot is free */
    const tz_zone_t *zone;      /* borrowed from tz_files */
} tz_name_slot_t;

typedef struct {
    dev_t dev;
    ino_t ino;
    tz_zone_t *zone; /* owned by the cache, for the life of the process */
} tz_file_slot_t;

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static tz_name_slot_t tz_names[TZ_NAME_SLOTS];
static size_t tz_nnames;
static tz_file_slot_t tz_files[TZ_CACHE_ZONES];
static size_t tz_nfiles;

static pthread_once_t tz_dir_once = PTHREAD_ONCE_INIT;
static char tz_dir[TZ_DIR_MAX];

int tz_name_valid(const char *name)
{
    if (!name)
        return 0;
    size_t len = strnlen(name, TZ_NAME_MAX + 1);
    if (len == 0 || len > TZ_NAME_MAX || name[0] < 'A' || name[0] > 'Z' || name[len - 1] == '/')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '/') {
            if (name[i + 1] == '/') /* no empty components */
                return 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '+' || c == '-';
        if (!ok) /* '.' is not allowed at all, so neither is ".." */
            return 0;
    }
    return 1;
}

static void tz_seterr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* Reads the zone file name under dir into a zone; reports its identity. */
static tz_zone_t *tz_load_file(const char *dir, const char *name, dev_t *dev, ino_t *ino, char *err,
                               size_t errlen)
{
    if (!tz_name_valid(name)) {
        tz_seterr(err, errlen, "invalid time zone name");
        return NULL;
    }
    char path[TZ_DIR_MAX + TZ_NAME_MAX + 2];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        tz_seterr(err, errlen, "time zone directory path too long");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tz_seterr(err, errlen,
                  errno == ENOENT || errno == ENOTDIR ? "unknown time zone"
                                                      : "cannot read time zone file");
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        /* A directory such as "America" is not a zone. */
        close(fd);
        tz_seterr(err, errlen, "unknown time zone");
        return NULL;
    }
    if (st.st_size <= 0 || st.st_size > TZ_FILE_MAX) {
        close(fd);
        tz_seterr(err, errlen, "corrupt time zone file: bad size");
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *data = malloc(size);
    if (!data) {
        close(fd);
        tz_seterr(err, errlen, "out of memory");
        return NULL;
    }
    while (got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(data);
        tz_seterr(err, errlen, "cannot read time zone file");
        return NULL;
    }
    tz_zone_t *z = tz_parse_tzif(data, size, name, err, errlen);
    free(data);
    *dev = st.st_dev;
    *ino = st.st_ino;
    return z;
}

tz_zone_t *tz_load(const char *dir, const char *name, char *err, size_t errlen)
{
    dev_t dev;
    ino_t ino;
    return tz_load_file(dir ? dir : TZ_DEFAULT_DIR, name, &dev, &ino, err, errlen);
}

static void tz_dir_init(void)
{
    const char *env = getenv("CRIER_ZONEINFO_DIR");
    if (!env || !*env || strlen(env) >= sizeof tz_dir)
        env = TZ_DEFAULT_DIR;
    snprintf(tz_dir, sizeof tz_dir, "%s", env);
}

/* FNV-1a: short keys, no adversary (only existing zone names get in). */
static size_t tz_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h & (TZ_NAME_SLOTS - 1);
}

/* The slot holding name, or the free slot where it would go. Lock held. */
static tz_name_slot_t *tz_slot(const char *name)
{
    size_t i = tz_hash(name);
    while (tz_names[i].name[0] && strcmp(tz_names[i].name, name) != 0)
        i = (i + 1) & (TZ_NAME_SLOTS - 1);
    return &tz_names[i];
}

const tz_zone_t *tz_get(const char *name, char *err, size_t errlen)
{
    if (!tz_name_valid(name)) {
        tz_seterr(err, errlen, "invalid time zone name");
        return NULL;
    }
    pthread_mutex_lock(&tz_lock);
    const tz_zone_t *hit = tz_slot(name)->zone;
    pthread_mutex_unlock(&tz_lock);
    if (hit)
        return hit;

    /* Load outside the lock so a slow disk does not stall other lookups;
     * a racing thread may load the same zone, and the loser's copy is
     * dropped below. */
    pthread_once(&tz_dir_once, tz_dir_init);
    dev_t dev;
    ino_t ino;
    tz_zone_t *z = tz_load_file(tz_dir, name, &dev, &ino, err, errlen);
    if (!z)
        return NULL;

    const tz_zone_t *res = NULL;
    int full = 0;
    pthread_mutex_lock(&tz_lock);
    tz_name_slot_t *slot = tz_slot(name);
    if (slot->zone) {
        res = slot->zone;
    } else if (tz_nnames >= TZ_CACHE_NAMES) {
        full = 1;
    } else {
        for (size_t i = 0; i < tz_nfiles; i++) {
            if (tz_files[i].dev == dev && tz_files[i].ino == ino) {
                res = tz_files[i].zone;
                break;
            }
        }
        if (!res && tz_nfiles < TZ_CACHE_ZONES) {
            tz_files[tz_nfiles++] = (tz_file_slot_t){dev, ino, z};
            res = z;
            z = NULL; /* now owned by the cache */
        }
        if (res) {
            snprintf(slot->name, sizeof slot->name, "%s", name);
            slot->zone = res;
            tz_nnames++;
        } else {
            full = 1;
        }
    }
    pthread_mutex_unlock(&tz_lock);
    tz_free(z);
    if (full) {
        log_warn("tz", "cache_full", "zone", name, NULL);
        tz_seterr(err, errlen, "time zone cache full");
    }
    return res;
}
