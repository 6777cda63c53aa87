/* Bounded file reads: the loaders' file_append_in_dir reads regular files
 * only, never blocks on a FIFO, follows symlinks only inside its directory
 * and never reads what one outside points to; file_append still reads a
 * pipe, as a CLI argument may be one. */
#include "util/buf.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define SECRET "root:$6$not-for-your-eyes"

static char root[64];   /* the scratch tree */
static char rules[128]; /* the loader's directory: root/rules */
static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
    (void)sig;
    alarm_fired = 1;
}

/* A call that blocks is interrupted by the alarm (no SA_RESTART), so a
 * regression fails the test instead of hanging it. */
static void arm(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    alarm_fired = 0;
    alarm(5);
}

static void disarm(void)
{
    alarm(0);
    assert_false(alarm_fired);
}

static void in_root(const char *rel, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", root, rel);
}

static void link_in_root(const char *target, const char *rel)
{
    char path[256];
    in_root(rel, path, sizeof path);
    assert_int_equal(symlink(target, path), 0);
}

static void mkdir_in_root(const char *rel)
{
    char path[256];
    in_root(rel, path, sizeof path);
    assert_int_equal(mkdir(path, 0700), 0);
}

/* Writes root/rel; 0 or -1 (setup cannot assert). */
static int write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = fputs(text, f) >= 0 ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/crier-file-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    snprintf(rules, sizeof rules, "%s/rules", root);
    static const char *const dirs[] = {"rules", "rules/..data", "rules/..data/email", "outside"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        if (mkdir(path, 0700) != 0)
            return -1;
    }
    if (write_file("rules/plain.lua", "return 1\n") != 0 ||
        write_file("rules/..data/timing.lua", "return 2\n") != 0 ||
        write_file("rules/..data/email/welcome.html", "<p>hi</p>\n") != 0 ||
        write_file("outside/secret.lua", SECRET "\n") != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* the tree is small and fixed: remove what the tests made */
    static const char *const files[] = {"rules/channels.lua",
                                        "rules/timing.lua",
                                        "rules/fallback.lua",
                                        "rules/abs.lua",
                                        "rules/batching.lua",
                                        "rules/todir.lua",
                                        "rules/plain.lua",
                                        "rules/escape",
                                        "rules/email",
                                        "rules/..data/timing.lua",
                                        "rules/..data/email/welcome.html",
                                        "outside/secret.lua",
                                        "outside/pipe.lua",
                                        "pipe",
                                        "link"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        in_root(files[i], path, sizeof path);
        unlink(path);
    }
    static const char *const dirs[] = {"rules/dir.lua", "rules/..data/email", "rules/..data",
                                       "rules", "outside"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[256];
        in_root(dirs[i], path, sizeof path);
        rmdir(path);
    }
    rmdir(root);
    return 0;
}

/* Runs file_append_in_dir(dir, name) expecting failure with message want
 * and nothing read. */
static void expect_refused(const char *dir, const char *name, const char *want)
{
    char display[128], err[256];
    snprintf(display, sizeof display, "rules/%s", name);
    buf_t b;
    buf_init(&b, 4096);
    arm();
    int rc = file_append_in_dir(dir, name, display, &b, err, sizeof err);
    disarm();
    assert_int_equal(rc, -1);
    assert_string_equal(err, want);
    assert_int_equal(b.len, 0);
    assert_null(strstr(err, SECRET));
    buf_free(&b);
}

static void expect_read(const char *dir, const char *name, const char *want)
{
    char err[256] = "";
    buf_t b;
    buf_init(&b, 4096);
    arm();
    int rc = file_append_in_dir(dir, name, name, &b, err, sizeof err);
    disarm();
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", name, err);
    assert_int_equal(rc, 0);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_regular_file(void **state)
{
    (void)state;
    expect_read(rules, "plain.lua", "return 1\n");
    /* a trailing slash on the directory changes nothing */
    char slashed[160];
    snprintf(slashed, sizeof slashed, "%s/", rules);
    expect_read(slashed, "plain.lua", "return 1\n");
    /* the bound still holds */
    char err[256];
    buf_t b;
    buf_init(&b, 4);
    assert_int_equal(file_append_in_dir(rules, "plain.lua", "rules/plain.lua", &b, err, sizeof err),
                     -1);
    assert_string_equal(err, "rules/plain.lua: larger than 4 bytes");
    buf_free(&b);
    expect_refused(rules, "missing.lua",
                   "rules/missing.lua: cannot open: No such file or directory");
}

static void test_fifo_refused_without_blocking(void **state)
{
    (void)state;
    char path[256];
    in_root("rules/channels.lua", path, sizeof path);
    assert_int_equal(mkfifo(path, 0600), 0);
    /* no writer: a blocking open would wait for one forever */
    expect_refused(rules, "channels.lua", "rules/channels.lua: not a regular file");
}

static void test_directory_refused(void **state)
{
    (void)state;
    mkdir_in_root("rules/dir.lua");
    expect_refused(rules, "dir.lua", "rules/dir.lua: not a regular file");
    link_in_root("..data", "rules/todir.lua");
    expect_refused(rules, "todir.lua", "rules/todir.lua: not a regular file");
}

static void test_symlink_inside_accepted(void **state)
{
    (void)state;
    /* a Kubernetes ConfigMap volume: every key is a link into ..data */
    link_in_root("..data/timing.lua", "rules/timing.lua");
    expect_read(rules, "timing.lua", "return 2\n");
    link_in_root("..data/email", "rules/email");
    expect_read(rules, "email/welcome.html", "<p>hi</p>\n");
    /* the directory itself may be reached through a link */
    char link[256];
    link_in_root(rules, "link");
    in_root("link", link, sizeof link);
    expect_read(link, "timing.lua", "return 2\n");
}

static void test_symlink_outside_refused(void **state)
{
    (void)state;
    link_in_root("../outside/secret.lua", "rules/fallback.lua");
    expect_refused(rules, "fallback.lua", "rules/fallback.lua: symlink points outside rules");
    char abs[256];
    in_root("outside/secret.lua", abs, sizeof abs);
    link_in_root(abs, "rules/abs.lua");
    expect_refused(rules, "abs.lua", "rules/abs.lua: symlink points outside rules");
    /* a directory on the way out counts the same */
    link_in_root("../outside", "rules/escape");
    expect_refused(rules, "escape/secret.lua",
                   "rules/escape/secret.lua: symlink points outside rules");
    /* the target is never opened: a FIFO outside would block an open */
    char fifo[256];
    in_root("outside/pipe.lua", fifo, sizeof fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_refused(rules, "escape/pipe.lua", "rules/escape/pipe.lua: symlink points outside rules");
}

static void test_dangling_symlink_refused(void **state)
{
    (void)state;
    link_in_root("..data/gone.lua", "rules/batching.lua");
    expect_refused(rules, "batching.lua", "rules/batching.lua: dangling symlink");
}

/* The generic read keeps reading pipes: "--request FILE" may be one. */
static void test_file_append_reads_a_pipe(void **state)
{
    (void)state;
    char path[256];
    in_root("pipe", path, sizeof path);
    assert_int_equal(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY);
        if (fd < 0 || write(fd, "{\"a\":1}", 7) != 7)
            _exit(1);
        close(fd);
        _exit(0);
    }
    char err[256] = "";
    buf_t b;
    buf_init(&b, 64);
    arm();
    int rc = file_append(path, "request", &b, err, sizeof err);
    disarm();
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rc, 0);
    assert_string_equal(b.data, "{\"a\":1}");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regular_file),
        cmocka_unit_test(test_fifo_refused_without_blocking),
        cmocka_unit_test(test_directory_refused),
        cmocka_unit_test(test_symlink_inside_accepted),
        cmocka_unit_test(test_symlink_outside_refused),
        cmocka_unit_test(test_dangling_symlink_refused),
        cmocka_unit_test(test_file_append_reads_a_pipe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
