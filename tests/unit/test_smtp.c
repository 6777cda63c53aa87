/* smtp: reply classification, then real sends through the test SMTP sink
 * (tests/support/smtp_sink.py): connection reuse, fault replies, timeouts,
 * and a refused connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/mime.h"
#include "channel/smtp.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_classify_table(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *enh;
        errc_t want;
    } cases[] = {
        {250, "2.0.0", ERRC_NONE},         {250, "", ERRC_NONE},
        {421, "4.7.0", ERRC_TRANSIENT},    {421, "", ERRC_TRANSIENT},
        {450, "4.2.1", ERRC_TRANSIENT},    {451, "4.3.0", ERRC_TRANSIENT},
        {452, "4.2.2", ERRC_TRANSIENT},    {454, "4.7.0", ERRC_TRANSIENT},
        {530, "5.7.0", ERRC_AUTH_FAILURE}, {535, "5.7.8", ERRC_AUTH_FAILURE},
        {535, "", ERRC_AUTH_FAILURE},      {550, "5.1.1", ERRC_PERMANENT},
        {550, "5.7.1", ERRC_PERMANENT},    {550, "5.7.26", ERRC_PERMANENT},
        {550, "", ERRC_PERMANENT},         {552, "", ERRC_TRANSIENT},
        {552, "5.2.2", ERRC_TRANSIENT},    {552, "5.3.4", ERRC_PERMANENT},
        {553, "5.1.3", ERRC_PERMANENT},    {554, "5.7.1", ERRC_PERMANENT},
        {554, "", ERRC_PERMANENT},         {0, "", ERRC_TRANSIENT},
        {354, "", ERRC_TRANSIENT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errc_t got = smtp_classify(cases[i].code, cases[i].enh);
        if (got != cases[i].want)
            fail_msg("%d %s: got %s, want %s", cases[i].code, cases[i].enh, errc_name(got),
                     errc_name(cases[i].want));
    }
    /* A NULL enhanced code is "none". */
    assert_int_equal(smtp_classify(451, NULL), ERRC_TRANSIENT);
    assert_int_equal(smtp_classify(550, NULL), ERRC_PERMANENT);
}

/* ---- the sink ----------------------------------------------------------- */

typedef struct sink {
    pid_t pid;
    int port;
    char dir[64];
} sink_t;

/* Starts the sink on a free port and waits for its READY line. Fails the
 * test (never skips) when it cannot start: the sink is part of the test. */
static int sink_setup(void **state)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "CRIER_SOURCE_DIR is not set\n");
        return -1;
    }
    sink_t *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    /* Relative: the test's working directory is the build tree. */
    snprintf(s->dir, sizeof s->dir, "crier-smtp-XXXXXX");
    if (!mkdtemp(s->dir)) {
        free(s);
        return -1;
    }
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/support/smtp_sink.py", src);
    int fds[2];
    if (pipe(fds) != 0) {
        free(s);
        return -1;
    }
    s->pid = fork();
    if (s->pid < 0) {
        free(s);
        return -1;
    }
    if (s->pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", script, "--port", "0", "--dir", s->dir, "--host",
              "127.0.0.1", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[64];
    size_t k = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    /* Bounded wait: 15 s for the interpreter to start and bind. */
    while (k < sizeof line - 1 && poll(&pfd, 1, 15000) > 0) {
        ssize_t r = read(fds[0], line + k, 1);
        if (r <= 0)
            break;
        if (line[k] == '\n')
            break;
        k++;
    }
    line[k] = '\0';
    close(fds[0]);
    if (sscanf(line, "READY %d", &s->port) != 1 || s->port <= 0) {
        fprintf(stderr, "smtp sink did not start (got \"%s\")\n", line);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        rmdir(s->dir);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int sink_teardown(void **state)
{
    sink_t *s = *state;
    if (!s)
        return 0;
    kill(s->pid, SIGTERM);
    int st;
    waitpid(s->pid, &st, 0);
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof p, "%s/%s", s->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(s->dir);
    free(s);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Names of the .eml files in the sink's folder, sorted (arrival order). */
static int sink_messages(const sink_t *s, char names[][128], int max)
{
    DIR *d = opendir(s->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] != '.' && l > 4 && l < 128 && strcmp(e->d_name + l - 4, ".eml") == 0 &&
            n < max)
            memcpy(names[n++], e->d_name, l + 1);
    }
    closedir(d);
    qsort(names, (size_t)n, 128, cmp_names);
    return n;
}

/* Reads dir/name into a malloc'd string. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char p[512];
    int pn = snprintf(p, sizeof p, "%s/%s", dir, name);
    assert_true(pn > 0 && (size_t)pn < sizeof p);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    char *data = calloc(1, 1 << 20);
    assert_non_null(data);
    size_t n = fread(data, 1, (1 << 20) - 1, f);
    fclose(f);
    if (len)
        *len = n;
    return data;
}

/* The client port the sink recorded for a message (from its .json). */
static int sink_peer_port(const sink_t *s, const char *eml)
{
    char json[160];
    snprintf(json, sizeof json, "%.*s.json", (int)(strlen(eml) - 4), eml);
    char *j = slurp(s->dir, json, NULL);
    const char *p = strstr(j, "\"peer\": [\"127.0.0.1\", ");
    assert_non_null(p);
    int port = atoi(p + strlen("\"peer\": [\"127.0.0.1\", "));
    free(j);
    return port;
}

static void build_message(const char *to, const char *subject, buf_t *b)
{
    mime_message_t m = {
        .from = "Planiva <no-reply@mail.planiva.test>",
        .to_name = "Test Client",
        .to_addr = to,
        .subject = subject,
        .text = "Hello.\n.\n..leading dots survive dot-stuffing\n",
        .html = "<p>Hello.</p>\n",
        .date = time(NULL),
    };
    char id[300], err[128];
    buf_init(b, 1 << 20);
    assert_int_equal(mime_build(&m, b, id, sizeof id, err, sizeof err), 0);
}

static smtp_client_t *client_for_port(int port, long timeout_ms)
{
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", port);
    smtp_settings_t set = {.url = url, .tls_required = 0, .timeout_ms = timeout_ms};
    smtp_client_t *c = smtp_client_new(&set);
    assert_non_null(c);
    return c;
}

static void test_send_and_reuse(void **state)
{
    sink_t *s = *state;
    smtp_client_t *c = client_for_port(s->port, 10000);
    const char *from = "bounces@mail.planiva.test";
    buf_t msgs[3];
    for (int i = 0; i < 3; i++) {
        char subj[32];
        snprintf(subj, sizeof subj, "message %d", i);
        build_message("client@example.com", subj, &msgs[i]);
        smtp_result_t r;
        int rc = smtp_send(c, from, "client@example.com", msgs[i].data, msgs[i].len, &r);
        if (rc != 0)
            fail_msg("send %d: %s (%d %s)", i, r.text, r.reply_code, r.enhanced);
        assert_int_equal(r.category, ERRC_NONE);
        assert_int_equal(r.reply_code, 250);
        assert_string_equal(r.enhanced, "2.0.0");
    }
    char names[8][128];
    assert_int_equal(sink_messages(s, names, 8), 3);
    /* The sink got exactly our bytes (dot-stuffing undone on its side). */
    for (int i = 0; i < 3; i++) {
        size_t len;
        char *got = slurp(s->dir, names[i], &len);
        assert_int_equal(len, msgs[i].len);
        assert_memory_equal(got, msgs[i].data, len);
        free(got);
        buf_free(&msgs[i]);
    }
    /* What arrived is a well-formed message by Python's email parser. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s/tests/support/mime_check.py' '%s/%s' >/dev/null",
             getenv("CRIER_SOURCE_DIR"), s->dir, names[0]);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* One connection for all three: the same client port each time. */
    int p0 = sink_peer_port(s, names[0]);
    assert_true(p0 > 0);
    assert_int_equal(sink_peer_port(s, names[1]), p0);
    assert_int_equal(sink_peer_port(s, names[2]), p0);
    smtp_client_free(c);
}

static void test_fault_replies(void **state)
{
    sink_t *s = *state;
    smtp_client_t *c = client_for_port(s->port, 10000);
    const char *from = "bounces@mail.planiva.test";
    buf_t m;
    smtp_result_t r;

    build_message("fail451@example.com", "soft", &m);
    assert_int_equal(smtp_send(c, from, "fail451@example.com", m.data, m.len, &r), -1);
    assert_int_equal(r.reply_code, 451);
    if (strcmp(r.enhanced, "4.3.0") != 0)
        fail_msg("enhanced \"%s\" text \"%s\"", r.enhanced, r.text);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_non_null(strstr(r.text, "Try again later"));
    buf_free(&m);

    build_message("fail550@example.com", "hard", &m);
    assert_int_equal(smtp_send(c, from, "fail550@example.com", m.data, m.len, &r), -1);
    assert_int_equal(r.reply_code, 550);
    assert_string_equal(r.enhanced, "5.1.1");
    assert_int_equal(r.category, ERRC_PERMANENT);
    assert_null(strstr(r.text, "fail550@"));
    buf_free(&m);

    build_message("fail552@example.com", "full", &m);
    assert_int_equal(smtp_send(c, from, "fail552@example.com", m.data, m.len, &r), -1);
    assert_int_equal(r.reply_code, 552);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    buf_free(&m);

    /* The failures do not poison the client: the next send goes through. */
    build_message("client@example.com", "after failures", &m);
    assert_int_equal(smtp_send(c, from, "client@example.com", m.data, m.len, &r), 0);
    assert_int_equal(r.category, ERRC_NONE);
    buf_free(&m);

    /* An address that would inject SMTP commands never reaches the wire. */
    build_message("client@example.com", "injection", &m);
    assert_int_equal(smtp_send(c, from, "client@example.com>\r\nRCPT TO:<x@y.z", m.data, m.len, &r),
                     -1);
    assert_int_equal(r.category, ERRC_INVALID_INPUT);
    assert_int_equal(r.reply_code, 0);
    buf_free(&m);

    char names[8][128];
    assert_int_equal(sink_messages(s, names, 8), 1);
    smtp_client_free(c);
}

static void test_timeout_then_recover(void **state)
{
    sink_t *s = *state;
    smtp_client_t *c = client_for_port(s->port, 1000);
    const char *from = "bounces@mail.planiva.test";
    buf_t m;
    smtp_result_t r;
    build_message("slow@example.com", "slow", &m);
    assert_int_equal(smtp_send(c, from, "slow@example.com", m.data, m.len, &r), -1);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_true(strlen(r.text) > 0);
    buf_free(&m);
    /* The timed-out connection is left behind; a new one carries this. */
    build_message("client@example.com", "after timeout", &m);
    int rc = smtp_send(c, from, "client@example.com", m.data, m.len, &r);
    if (rc != 0)
        fail_msg("send after timeout: %s (%d)", r.text, r.reply_code);
    assert_int_equal(r.reply_code, 250);
    buf_free(&m);
    smtp_client_free(c);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* A port that was free a moment ago: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);
    close(fd);

    smtp_client_t *c = client_for_port(port, 5000);
    buf_t m;
    smtp_result_t r;
    build_message("client@example.com", "nobody home", &m);
    assert_int_equal(
        smtp_send(c, "bounces@mail.planiva.test", "client@example.com", m.data, m.len, &r), -1);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_int_equal(r.reply_code, 0);
    assert_string_equal(r.enhanced, "");
    assert_true(strlen(r.text) > 0);
    buf_free(&m);
    smtp_client_free(c);
}

static void test_client_settings(void **state)
{
    (void)state;
    smtp_settings_t bad = {.url = "http://127.0.0.1:25", .timeout_ms = 1000};
    assert_null(smtp_client_new(&bad));
    assert_null(smtp_client_new(NULL));
    smtp_settings_t ok = {.url = "smtps://127.0.0.1:465", .username = "", .password = ""};
    smtp_client_t *c = smtp_client_new(&ok);
    assert_non_null(c);
    smtp_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_client_settings),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test_setup_teardown(test_send_and_reuse, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_fault_replies, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_recover, sink_setup, sink_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
