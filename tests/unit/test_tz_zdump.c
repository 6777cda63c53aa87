/* Every zone of the system's tzdata against the C library's zdump.
 *
 * For each zone file under the zone directory (CRIER_ZONEINFO_DIR, else the
 * default), zdump -v lists each transition as the second before it and the
 * second it happens, with the local time, DST flag, offset and
 * abbreviation. tz_localtime must agree on all four at every such instant.
 * zdump runs through fork/exec with an argument vector (no shell), a batch
 * of zones per run, with absolute paths so both sides read the same files.
 *
 * Which files count as zones: those whose names tz_name_valid accepts and
 * that start with the TZif magic. That leaves out the "posix/" tree (the
 * same files again), "right/" (leap-second variants, which crier refuses),
 * "posixrules" and "localtime" (aliases, not zone names), and the tables
 * (zone.tab, tzdata.zi, leapseconds, ...). */
#include "tz/tz.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define ZD_MAX_ZONES     2000
#define ZD_MAX_DEPTH     4
#define ZD_BATCH         64
#define ZD_LINE_MAX      512
#define ZD_SHOW_MISMATCH 10
/* The years of the contract (2020..2035) and, past the end of the explicit
 * transitions that Debian's files carry (2037), years that only the POSIX
 * footer rule describes. */
static const char *const zd_ranges[] = {"2020,2036", "2036,2100"};

typedef struct {
    char *names[ZD_MAX_ZONES]; /* owned */
    size_t n;
} zd_list_t;

typedef struct {
    size_t zones, checks, mismatches;
} zd_stats_t;

static const char *zd_dir(void)
{
    const char *d = getenv("CRIER_ZONEINFO_DIR");
    return d && *d ? d : TZ_DEFAULT_DIR;
}

static int zd_is_tzif(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == 4 && memcmp(magic, "TZif", 4) == 0;
}

/* Collects zone names under dir/rel (rel "" for the top). */
static void zd_walk(const char *dir, const char *rel, int depth, zd_list_t *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char name[TZ_NAME_MAX + 2];
        int n = snprintf(name, sizeof name, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (n < 0 || (size_t)n >= sizeof name || !tz_name_valid(name))
            continue;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", dir, name);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < ZD_MAX_DEPTH)
                zd_walk(dir, name, depth + 1, out);
        } else if (S_ISREG(st.st_mode) && zd_is_tzif(full)) {
            assert_true(out->n < ZD_MAX_ZONES);
            out->names[out->n] = strdup(name);
            assert_non_null(out->names[out->n]);
            out->n++;
        }
    }
    closedir(d);
}

static int zd_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int zd_month(const char *mon)
{
    static const char *const m[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++)
        if (strcmp(m[i], mon) == 0)
            return i + 1;
    return 0;
}

/* Checks one zdump -v line; the zone is known from its path prefix. */
static void zd_check_line(const char *line, const char *dir, zd_stats_t *st)
{
    char zpath[1024], uwd[4], umon[4], lwd[4], lmon[4], abbr[32];
    int uday, uh, um, us, lday, lh, lm, ls, isdst;
    long long uyear, lyear, gmtoff;
    int n = sscanf(line,
                   "%1023s %3s %3s %d %d:%d:%d %lld UT = %3s %3s %d %d:%d:%d %lld %31s isdst=%d "
                   "gmtoff=%lld",
                   zpath, uwd, umon, &uday, &uh, &um, &us, &uyear, lwd, lmon, &lday, &lh, &lm, &ls,
                   &lyear, abbr, &isdst, &gmtoff);
    if (n != 18) {
        /* Only the lines for the extremes of time_t ("= NULL") are not
         * transitions; anything else unparsed is a format we do not know. */
        assert_non_null(strstr(line, "= NULL"));
        return;
    }
    size_t dl = strlen(dir);
    assert_true(strncmp(zpath, dir, dl) == 0 && zpath[dl] == '/');
    const char *name = zpath + dl + 1;

    char err[128];
    const tz_zone_t *z = tz_get(name, err, sizeof err);
    if (!z)
        fail_msg("%s: %s", name, err);
    struct tm utm = {.tm_year = (int)(uyear - 1900),
                     .tm_mon = zd_month(umon) - 1,
                     .tm_mday = uday,
                     .tm_hour = uh,
                     .tm_min = um,
                     .tm_sec = us};
    int64_t t = (int64_t)timegm(&utm); /* UTC: independent of TZ */
    tz_local_t lt;
    assert_int_equal(tz_localtime(z, t, &lt), 0);
    st->checks++;
    if (lt.is_dst != isdst || lt.utc_offset != gmtoff || strcmp(lt.abbr, abbr) != 0 ||
        lt.year != lyear || lt.month != zd_month(lmon) || lt.day != lday || lt.hour != lh ||
        lt.min != lm || lt.sec != ls) {
        if (st->mismatches < ZD_SHOW_MISMATCH)
            printf("mismatch %s at %lld: zdump %04lld-%02d-%02d %02d:%02d:%02d %s isdst=%d "
                   "gmtoff=%lld; tz %04d-%02d-%02d %02d:%02d:%02d %s isdst=%d gmtoff=%d\n",
                   name, (long long)t, lyear, zd_month(lmon), lday, lh, lm, ls, abbr, isdst, gmtoff,
                   lt.year, lt.month, lt.day, lt.hour, lt.min, lt.sec, lt.abbr, lt.is_dst,
                   lt.utc_offset);
        st->mismatches++;
    }
}

/* Runs zdump -v -c range on names[0..n) and checks every line. */
static void zd_run_batch(const char *dir, const char *range, char *const *names, size_t n,
                         zd_stats_t *st)
{
    char *argv[ZD_BATCH + 5];
    char *paths[ZD_BATCH];
    size_t argc = 0;
    argv[argc++] = "zdump";
    argv[argc++] = "-v";
    argv[argc++] = "-c";
    argv[argc++] = (char *)range;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        paths[i] = malloc(len);
        assert_non_null(paths[i]);
        snprintf(paths[i], len, "%s/%s", dir, names[i]);
        argv[argc++] = paths[i];
    }
    argv[argc] = NULL;

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(f);
    char line[ZD_LINE_MAX];
    while (fgets(line, sizeof line, f)) {
        assert_non_null(strchr(line, '\n')); /* no line longer than the buffer */
        zd_check_line(line, dir, st);
    }
    fclose(f);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
}

static void test_tz_matches_zdump(void **state)
{
    (void)state;
    const char *dir = zd_dir();
    zd_list_t *zones = calloc(1, sizeof *zones);
    assert_non_null(zones);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    zd_walk(dir, "", 0, zones);
    qsort(zones->names, zones->n, sizeof zones->names[0], zd_cmp);

    zd_stats_t st = {.zones = zones->n};
    for (size_t r = 0; r < sizeof zd_ranges / sizeof zd_ranges[0]; r++)
        for (size_t i = 0; i < zones->n; i += ZD_BATCH) {
            size_t n = zones->n - i < ZD_BATCH ? zones->n - i : ZD_BATCH;
            zd_run_batch(dir, zd_ranges[r], zones->names + i, n, &st);
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("zones: %zu, checks: %zu, mismatches: %zu (%.2f s)\n", st.zones, st.checks,
           st.mismatches, secs);
    for (size_t i = 0; i < zones->n; i++)
        free(zones->names[i]);
    free(zones);
    assert_true(st.zones >= 300);
    assert_true(st.checks >= 10000);
    assert_int_equal(st.mismatches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tz_matches_zdump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
