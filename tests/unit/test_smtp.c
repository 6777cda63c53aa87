/* smtp: reply classification and the per-transfer pieces (smtp_easy), then
 * real sends through the transport to the test SMTP sink
 * (tests/support/smtp_sink.py): exact bytes and connection reuse, a 552
 * reply, injected addresses refused before any connection, a timeout and
 * recovery, a refused connection, and unusable settings. 451 and 550 replies
 * and a burst over a few connections are test_transport's cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/mime.h"
#include "channel/smtp.h"
#include "channel/smtp_easy.h"
#include "driver/smtp_call.h"
#include "transport/transport.h"

#include <curl/curl.h>

#include <dirent.h>
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

#define FROM "bounces@mail.planiva.test"

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

/* Which final replies suppress the address: the documented list of
 * "this mailbox is gone" codes, in a 5yz reply to RCPT or DATA only. */
static void test_hard_bounce_table(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *enh;
        const char *phase;
        int want;
    } cases[] = {
        {550, "5.1.1", "rcpt", 1},
        {550, "5.1.1", "data", 1},
        {554, "5.1.1", "data", 1},
        {550, "5.1.2", "rcpt", 1},
        {553, "5.1.3", "rcpt", 1},
        {550, "5.1.6", "rcpt", 1},
        {556, "5.1.10", "rcpt", 1},
        {550, "5.2.1", "rcpt", 1},
        /* about our sender, not the recipient */
        {550, "5.1.1", "mail", 0},
        {550, "5.1.7", "mail", 0},
        {550, "5.1.8", "rcpt", 0},
        /* an unknown phase says nothing about whom the reply is for */
        {550, "5.1.1", "", 0},
        {550, "5.1.1", "ehlo", 0},
        /* permanent, but not "the address is gone" */
        {550, "5.7.1", "rcpt", 0},
        {554, "5.7.1", "data", 0},
        {550, "5.7.26", "data", 0},
        {550, "5.1.0", "rcpt", 0},
        {550, "5.1.4", "rcpt", 0},
        {552, "5.3.4", "data", 0},
        {550, "", "rcpt", 0},
        {553, "", "rcpt", 0},
        /* not permanent: never a suppression */
        {552, "5.2.2", "rcpt", 0},
        {552, "5.2.1", "rcpt", 0},
        {451, "4.1.1", "rcpt", 0},
        {450, "4.2.1", "rcpt", 0},
        {250, "2.1.5", "rcpt", 0},
        {0, "", "", 0},
        /* a 4yz reply whose enhanced class says 5: the reply code decides */
        {450, "5.1.1", "rcpt", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = smtp_hard_bounce(cases[i].code, cases[i].enh, cases[i].phase);
        if (got != cases[i].want)
            fail_msg("%d %s at %s: got %d, want %d", cases[i].code, cases[i].enh, cases[i].phase,
                     got, cases[i].want);
    }
    assert_int_equal(smtp_hard_bounce(550, NULL, "rcpt"), 0);
    assert_int_equal(smtp_hard_bounce(550, "5.1.1", NULL), 0);
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

static void test_addr_ok(void **state)
{
    (void)state;
    assert_true(smtp_easy_addr_ok("client@example.com"));
    assert_true(smtp_easy_addr_ok("a+tag@sub.example.com"));
    /* Anything that could end the path or start a new command line. */
    assert_false(smtp_easy_addr_ok("a@b>\r\nRCPT TO:<x@y.z"));
    assert_false(smtp_easy_addr_ok("a@b\nx"));
    assert_false(smtp_easy_addr_ok("a b@c.d"));
    assert_false(smtp_easy_addr_ok("<a@b.c>"));
    assert_false(smtp_easy_addr_ok("a@b@c"));
    assert_false(smtp_easy_addr_ok("no-at-sign"));
    assert_false(smtp_easy_addr_ok("caf\xc3\xa9@example.com"));
    assert_false(smtp_easy_addr_ok(""));
    assert_false(smtp_easy_addr_ok(NULL));
    /* Longer than an RFC 5321 path once wrapped in angle brackets. */
    char longer[300];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    longer[10] = '@';
    assert_false(smtp_easy_addr_ok(longer));
}

/* A port nothing listens on: bind one, read it, close it. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
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

/* Sends m from `from` to rcpt at url through tx and waits for the result,
 * which the caller releases with tx_result_clear. */
static void send_mail(tx_t *tx, const char *url, const char *from, const char *rcpt, const buf_t *m,
                      long timeout_ms, tx_result_t *r)
{
    smtp_call_params_t p = {.url = url, .from = from, .rcpt = rcpt, .timeout_ms = timeout_ms};
    tx_request_t *req = smtp_call_new(&p, m->data, m->len);
    assert_non_null(req);
    assert_int_equal(tx_send_wait(tx, req, r), 0);
}

static void sink_url(const sink_t *s, char *url, size_t cap)
{
    snprintf(url, cap, "smtp://127.0.0.1:%d", s->port);
}

static void test_settings(void **state)
{
    (void)state;
    /* The handle setup on its own: only smtp:// and smtps:// are usable. */
    CURL *h = curl_easy_init();
    assert_non_null(h);
    smtp_wire_t w;
    memset(&w, 0, sizeof w);
    smtp_settings_t bad = {.url = "http://127.0.0.1:25", .timeout_ms = 1000};
    assert_int_equal(smtp_easy_setup(h, &bad, &w), -1);
    assert_int_equal(smtp_easy_setup(h, NULL, &w), -1);
    smtp_settings_t ok = {.url = "smtps://127.0.0.1:465", .username = "", .password = ""};
    assert_int_equal(smtp_easy_setup(h, &ok, &w), 0);
    curl_easy_cleanup(h);

    buf_t m;
    build_message("client@example.com", "settings", &m);
    smtp_call_params_t none = {.url = NULL, .from = FROM, .rcpt = "client@example.com"};
    assert_null(smtp_call_new(NULL, m.data, m.len));
    assert_null(smtp_call_new(&none, m.data, m.len));

    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    int port = closed_port();
    char url[64];
    tx_result_t r;
    /* Another scheme is refused when the transfer starts, not sent. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    send_mail(tx, url, FROM, "client@example.com", &m, 5000, &r);
    assert_int_equal(r.err, TX_ERR_INVALID);
    assert_int_equal(r.category, ERRC_INVALID_INPUT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.num_connects, 0);
    tx_result_clear(&r);
    /* smtps:// with empty credentials is usable: it gets as far as trying
     * to connect. */
    snprintf(url, sizeof url, "smtps://127.0.0.1:%d", port);
    smtp_call_params_t p = {
        .url = url,
        .from = FROM,
        .rcpt = "client@example.com",
        .username = "",
        .password = "",
        .timeout_ms = 5000,
    };
    tx_request_t *req = smtp_call_new(&p, m.data, m.len);
    assert_non_null(req);
    assert_int_equal(tx_send_wait(tx, req, &r), 0);
    assert_int_equal(r.err, TX_ERR_CURL);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    tx_result_clear(&r);
    tx_free(tx);
    buf_free(&m);
}

static void test_connection_refused(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", closed_port());
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    buf_t m;
    build_message("client@example.com", "nobody home", &m);
    tx_result_t r;
    send_mail(tx, url, FROM, "client@example.com", &m, 5000, &r);
    /* No reply at all: worth another attempt later. */
    assert_int_equal(r.err, TX_ERR_CURL);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.enhanced, "");
    assert_true(strlen(r.text) > 0);
    assert_null(strstr(r.text, "client@"));
    tx_result_clear(&r);
    buf_free(&m);
    tx_free(tx);
}

static void test_send_and_reuse(void **state)
{
    sink_t *s = *state;
    char url[64];
    sink_url(s, url, sizeof url);
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    buf_t msgs[3];
    for (int i = 0; i < 3; i++) {
        char subj[32];
        snprintf(subj, sizeof subj, "message %d", i);
        build_message("client@example.com", subj, &msgs[i]);
        tx_result_t r;
        send_mail(tx, url, FROM, "client@example.com", &msgs[i], 10000, &r);
        if (r.err != TX_OK || r.status != 250)
            fail_msg("send %d: %s %d (%s)", i, tx_err_name(r.err), r.status, r.text);
        assert_int_equal(r.curl_code, CURLE_OK);
        assert_int_equal(r.category, ERRC_NONE);
        assert_string_equal(r.enhanced, "2.0.0");
        /* One after another, the first connection carries all three. */
        assert_int_equal(r.num_connects, i == 0 ? 1 : 0);
        tx_result_clear(&r);
    }
    tx_free(tx);
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
    /* The sink saw the same client port each time. */
    int p0 = sink_peer_port(s, names[0]);
    assert_true(p0 > 0);
    assert_int_equal(sink_peer_port(s, names[1]), p0);
    assert_int_equal(sink_peer_port(s, names[2]), p0);
}

static void test_mailbox_full_and_injection(void **state)
{
    sink_t *s = *state;
    char url[64];
    sink_url(s, url, sizeof url);
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    buf_t m;
    tx_result_t r;

    /* 552 5.2.2 (mailbox full) is soft despite its 5: RFC 5321 asks for a
     * retry, and the mailbox may have room later. */
    build_message("fail552@example.com", "full", &m);
    send_mail(tx, url, FROM, "fail552@example.com", &m, 10000, &r);
    assert_int_equal(r.err, TX_OK);
    assert_int_equal(r.status, 552);
    assert_string_equal(r.enhanced, "5.2.2");
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_non_null(strstr(r.text, "Mailbox full"));
    tx_result_clear(&r);
    buf_free(&m);

    /* An address that would append its own SMTP command: the request is
     * accepted (it only copies), and the transfer is refused as it starts,
     * before any connection is opened. */
    build_message("client@example.com", "injection", &m);
    static const char *const injected = "a@b>\r\nRCPT TO:<x@y.z";
    send_mail(tx, url, FROM, injected, &m, 10000, &r);
    assert_int_equal(r.err, TX_ERR_INVALID);
    assert_int_equal(r.category, ERRC_INVALID_INPUT);
    assert_int_equal(r.curl_code, CURLE_FAILED_INIT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.num_connects, 0);
    assert_null(strstr(r.text, "RCPT TO"));
    tx_result_clear(&r);
    /* The same holds for the envelope sender. */
    send_mail(tx, url, "bounces@mail.planiva.test>\r\nRCPT TO:<x@y.z", "client@example.com", &m,
              10000, &r);
    assert_int_equal(r.err, TX_ERR_INVALID);
    assert_int_equal(r.category, ERRC_INVALID_INPUT);
    assert_int_equal(r.num_connects, 0);
    tx_result_clear(&r);

    /* Neither the soft failure nor the refusals get in the next mail's way. */
    send_mail(tx, url, FROM, "client@example.com", &m, 10000, &r);
    assert_int_equal(r.err, TX_OK);
    assert_int_equal(r.status, 250);
    assert_int_equal(r.category, ERRC_NONE);
    tx_result_clear(&r);
    buf_free(&m);
    tx_free(tx);

    /* Only that last mail arrived, addressed to its one recipient. */
    char names[8][128];
    assert_int_equal(sink_messages(s, names, 8), 1);
    char json[160];
    snprintf(json, sizeof json, "%.*s.json", (int)(strlen(names[0]) - 4), names[0]);
    char *env = slurp(s->dir, json, NULL);
    assert_non_null(strstr(env, "\"rcpt_tos\": [\"client@example.com\"]"));
    assert_null(strstr(env, "x@y.z"));
    free(env);
}

/* The phase a refusal came in, through the real dialogue: RCPT, the end
 * of DATA and MAIL FROM, and what each means for the address. */
static void test_bounce_phases(void **state)
{
    sink_t *s = *state;
    char url[64];
    sink_url(s, url, sizeof url);
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    static const struct {
        const char *from, *rcpt;
        int status;
        const char *enhanced, *phase;
        int hard;
    } cases[] = {
        {FROM, "fail550@example.com", 550, "5.1.1", "rcpt", 1},
        {FROM, "data554@example.com", 554, "5.1.1", "data", 1},
        {FROM, "fail521@example.com", 550, "5.2.1", "rcpt", 1},
        {FROM, "fail571@example.com", 550, "5.7.1", "rcpt", 0},
        {FROM, "data571@example.com", 554, "5.7.1", "data", 0},
        {FROM, "fail550bare@example.com", 550, "", "rcpt", 0},
        {FROM, "fail451@example.com", 451, "4.3.0", "rcpt", 0},
        {"mailfail550@mail.planiva.test", "client@example.com", 550, "5.1.1", "mail", 0},
        {FROM, "client@example.com", 250, "2.0.0", "data", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t m;
        tx_result_t r;
        build_message(cases[i].rcpt, "bounce", &m);
        send_mail(tx, url, cases[i].from, cases[i].rcpt, &m, 10000, &r);
        if (r.err != TX_OK || r.status != cases[i].status ||
            strcmp(r.enhanced, cases[i].enhanced) != 0 || strcmp(r.phase, cases[i].phase) != 0)
            fail_msg("%s -> %s: %s %d %s at \"%s\" (%s)", cases[i].from, cases[i].rcpt,
                     tx_err_name(r.err), r.status, r.enhanced, r.phase, r.text);
        assert_int_equal(smtp_hard_bounce(r.status, r.enhanced, r.phase), cases[i].hard);
        /* neither address is in the text that is kept */
        assert_null(strstr(r.text, "@example.com"));
        tx_result_clear(&r);
        buf_free(&m);
    }
    tx_free(tx);
    /* only the accepted one was stored */
    char names[8][128];
    assert_int_equal(sink_messages(s, names, 8), 1);
}

static void test_timeout_then_recover(void **state)
{
    sink_t *s = *state;
    char url[64];
    sink_url(s, url, sizeof url);
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    buf_t m;
    tx_result_t r;
    /* The sink holds its answer to the end of DATA for 3 s. */
    build_message("slow@example.com", "slow", &m);
    send_mail(tx, url, FROM, "slow@example.com", &m, 1000, &r);
    assert_int_equal(r.err, TX_ERR_CURL);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_true(strlen(r.text) > 0);
    if (r.elapsed_ms < 900 || r.elapsed_ms > 2500)
        fail_msg("timed out after %ld ms, set 1000", r.elapsed_ms);
    tx_result_clear(&r);
    buf_free(&m);
    /* The timed-out connection is not reused; a new one carries this. */
    build_message("client@example.com", "after timeout", &m);
    send_mail(tx, url, FROM, "client@example.com", &m, 10000, &r);
    if (r.err != TX_OK || r.status != 250)
        fail_msg("send after timeout: %s %d curl %d conns %ld %ld ms (%s)", tx_err_name(r.err),
                 r.status, r.curl_code, r.num_connects, r.elapsed_ms, r.text);
    assert_int_equal(r.category, ERRC_NONE);
    assert_int_equal(r.num_connects, 1);
    tx_result_clear(&r);
    buf_free(&m);
    tx_free(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_hard_bounce_table),
        cmocka_unit_test(test_addr_ok),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test_setup_teardown(test_send_and_reuse, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_full_and_injection, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_recover, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_bounce_phases, sink_setup, sink_teardown),
    };
    /* smtp_easy_setup is used on a handle of this test's own. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
