/* transport: the libcurl multi loop against local servers: the provider
 * stub (tests/support/provider_stub.py) for HTTP and the SMTP sink
 * (tests/support/smtp_sink.py) for mail. Concurrency with connection reuse,
 * timeouts (including time spent queued), dropped connections, the body
 * cap, SMTP replies, and stopping with transfers in flight. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "driver/smtp_call.h"
#include "transport/transport.h"
#include "transport/tx_pool.h"

#include <curl/curl.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helper servers ----------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    char dir[64];
} server_t;

typedef struct fixture {
    server_t stub;
    server_t sink;
} fixture_t;

/* Starts a support script with --port 0 --dir <fresh dir> plus extra args
 * and waits (bounded) for its READY line. */
static int server_start(server_t *s, const char *script, const char *const *extra)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "CRIER_SOURCE_DIR is not set\n");
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "crier-tx-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/support/%s", src, script);
    const char *argv[24];
    int k = 0;
    argv[k++] = "python3";
    argv[k++] = path;
    argv[k++] = "--port";
    argv[k++] = "0";
    argv[k++] = "--host";
    argv[k++] = "127.0.0.1";
    argv[k++] = "--dir";
    argv[k++] = s->dir;
    for (int i = 0; extra && extra[i] && k < 23; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv("/usr/bin/python3", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char line[64];
    size_t n = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    while (n < sizeof line - 1 && poll(&pfd, 1, 15000) > 0) {
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    if (sscanf(line, "READY %d", &s->port) != 1 || s->port <= 0) {
        fprintf(stderr, "%s did not start (got \"%s\")\n", script, line);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
        return -1;
    }
    return 0;
}

static void server_stop(server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
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
        rmdir(s->dir);
    }
}

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    /* Recipients ending in these digits get the fault modes. */
    static const char *const stub_args[] = {
        "--recipient-mode",
        "777=http500",
        "--recipient-mode",
        "666=http429:7",
        "--recipient-mode",
        "888=drop",
        "--recipient-mode",
        "999=slow:3",
        "--recipient-mode",
        "555=slow:20",
        NULL,
    };
    if (server_start(&f->stub, "provider_stub.py", stub_args) != 0 ||
        server_start(&f->sink, "smtp_sink.py", NULL) != 0) {
        server_stop(&f->stub);
        server_stop(&f->sink);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    server_stop(&f->stub);
    server_stop(&f->sink);
    free(f);
    return 0;
}

/* ---- collecting results ------------------------------------------------- */

#define MAX_SLOTS 256

typedef struct slot {
    int calls;
    tx_err_t err;
    int curl_code;
    int status;
    char enhanced[16];
    errc_t category;
    long num_connects;
    long elapsed_ms;
    char retry_after[64];
    char text[256];
    size_t body_len;
} slot_t;

typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* callbacks seen, all slots */
    slot_t slots[MAX_SLOTS];
} collector_t;

typedef struct slot_ref {
    collector_t *c;
    int i;
} slot_ref_t;

static slot_ref_t g_refs[MAX_SLOTS];

static void coll_init(collector_t *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (int i = 0; i < MAX_SLOTS; i++)
        g_refs[i] = (slot_ref_t){c, i};
}

static void coll_free(collector_t *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void on_done(void *ud, const tx_result_t *r)
{
    slot_ref_t *ref = ud;
    collector_t *c = ref->c;
    pthread_mutex_lock(&c->mu);
    slot_t *s = &c->slots[ref->i];
    s->calls++;
    s->err = r->err;
    s->curl_code = r->curl_code;
    s->status = r->status;
    memcpy(s->enhanced, r->enhanced, sizeof s->enhanced);
    s->category = r->category;
    s->num_connects = r->num_connects;
    s->elapsed_ms = r->elapsed_ms;
    memcpy(s->retry_after, r->retry_after, sizeof s->retry_after);
    memcpy(s->text, r->text, sizeof s->text);
    s->body_len = r->body_len;
    c->done++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits until n callbacks arrived or max_ms passed; returns the count. */
static int coll_wait(collector_t *c, int n, long max_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += max_ms / 1000;
    dl.tv_nsec += (max_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->done < n)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    int got = c->done;
    pthread_mutex_unlock(&c->mu);
    return got;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* ---- requests ----------------------------------------------------------- */

/* A WhatsApp Cloud API text send to the stub for recipient number to. */
static tx_request_t *wa_request(const server_t *stub, const char *to, long timeout_ms)
{
    char url[128], body[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v21.0/1234567890/messages", stub->port);
    int n = snprintf(body, sizeof body,
                     "{\"messaging_product\":\"whatsapp\",\"to\":\"%s\",\"type\":\"text\","
                     "\"text\":{\"body\":\"hello\"}}",
                     to);
    tx_request_t *r = tx_http_new("POST", url, body, (size_t)n, timeout_ms);
    assert_non_null(r);
    assert_int_equal(tx_http_add_header(r, "Content-Type: application/json"), 0);
    assert_int_equal(tx_http_set_auth(r, "Authorization: Bearer test-token"), 0);
    return r;
}

static void submit_slot(tx_t *tx, tx_request_t *r, int i)
{
    tx_request_on_done(r, on_done, &g_refs[i]);
    assert_int_equal(tx_submit(tx, r), 0);
}

/* ---- HTTP --------------------------------------------------------------- */

static void test_http_concurrent_reuse(void **state)
{
    fixture_t *f = *state;
    tx_limits_t lim = {.max_host_conns = 8, .max_total_conns = 16};
    tx_t *tx = tx_new(&lim);
    assert_non_null(tx);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    enum { N = 200 };
    for (int i = 0; i < N; i++)
        submit_slot(tx, wa_request(&f->stub, i % 4 == 0 ? "15550000777" : "15550000123", 20000), i);
    assert_int_equal(coll_wait(c, N, 60000), N);
    long conns = 0;
    for (int i = 0; i < N; i++) {
        slot_t *s = &c->slots[i];
        assert_int_equal(s->calls, 1);
        if (s->err != TX_OK)
            fail_msg("request %d: %s (%s)", i, tx_err_name(s->err), s->text);
        assert_int_equal(s->status, i % 4 == 0 ? 500 : 200);
        assert_int_equal(s->category, ERRC_NONE);
        assert_true(s->body_len > 0);
        conns += s->num_connects;
    }
    /* The per-host cap bounds how many connections a burst can open; the
     * rest reuse them. */
    if (conns < 1 || conns > 16)
        fail_msg("%ld connections for %d requests", conns, N);
    tx_free(tx);
    coll_free(c);
    free(c);
}

static void test_http_slow_times_out_others_complete(void **state)
{
    fixture_t *f = *state;
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    long t0 = now_ms();
    submit_slot(tx, wa_request(&f->stub, "15550000999", 1000), 0);
    for (int i = 1; i <= 10; i++)
        submit_slot(tx, wa_request(&f->stub, "15550000123", 10000), i);
    assert_int_equal(coll_wait(c, 11, 20000), 11);
    slot_t *slow = &c->slots[0];
    assert_int_equal(slow->calls, 1);
    assert_int_equal(slow->err, TX_ERR_CURL);
    assert_int_equal(slow->curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(slow->category, ERRC_TRANSIENT);
    if (slow->elapsed_ms < 900 || slow->elapsed_ms > 2500)
        fail_msg("timed out after %ld ms, set 1000", slow->elapsed_ms);
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(c->slots[i].calls, 1);
        assert_int_equal(c->slots[i].status, 200);
        /* They did not wait for the slow one's answer (3 s). */
        if (c->slots[i].elapsed_ms >= 2500)
            fail_msg("request %d took %ld ms", i, c->slots[i].elapsed_ms);
    }
    assert_true(now_ms() - t0 < 5000);
    tx_free(tx);
    coll_free(c);
    free(c);
}

static void test_http_queue_wait_counts(void **state)
{
    fixture_t *f = *state;
    tx_limits_t lim = {.max_in_flight = 1};
    tx_t *tx = tx_new(&lim);
    assert_non_null(tx);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    /* The first holds the only slot for 3 s; the second's 500 ms run out in
     * the queue, and it must not wait for the slot to say so. */
    submit_slot(tx, wa_request(&f->stub, "15550000999", 10000), 0);
    submit_slot(tx, wa_request(&f->stub, "15550000123", 500), 1);
    assert_int_equal(coll_wait(c, 1, 10000), 1);
    assert_int_equal(c->slots[1].calls, 1);
    assert_int_equal(c->slots[0].calls, 0);
    assert_int_equal(c->slots[1].curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(c->slots[1].err, TX_ERR_CURL);
    if (c->slots[1].elapsed_ms < 450 || c->slots[1].elapsed_ms > 1500)
        fail_msg("queued request timed out after %ld ms, set 500", c->slots[1].elapsed_ms);
    assert_int_equal(coll_wait(c, 2, 10000), 2);
    assert_int_equal(c->slots[0].status, 200);
    tx_free(tx);
    coll_free(c);
    free(c);
}

static void test_http_drop_and_retry_after(void **state)
{
    fixture_t *f = *state;
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    tx_result_t r;
    assert_int_equal(tx_send_wait(tx, wa_request(&f->stub, "15550000888", 5000), &r), 0);
    assert_int_equal(r.err, TX_ERR_CURL);
    assert_int_not_equal(r.curl_code, CURLE_OK);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_true(strlen(r.text) > 0);
    tx_result_clear(&r);

    assert_int_equal(tx_send_wait(tx, wa_request(&f->stub, "15550000666", 5000), &r), 0);
    assert_int_equal(r.err, TX_OK);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.retry_after, "7");
    assert_non_null(strstr(r.body, "130429"));
    tx_result_clear(&r);

    /* A plain success carries no Retry-After and the whole body. */
    assert_int_equal(tx_send_wait(tx, wa_request(&f->stub, "15550000123", 5000), &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.retry_after, "");
    assert_int_equal(strlen(r.body), r.body_len);
    assert_non_null(strstr(r.body, "\"wamid."));
    tx_result_clear(&r);

    /* Nothing listens on a closed port: an error, not a hang. */
    tx_request_t *bad = tx_http_new("GET", "http://127.0.0.1:1/", NULL, 0, 3000);
    assert_non_null(bad);
    assert_int_equal(tx_send_wait(tx, bad, &r), 0);
    assert_int_equal(r.err, TX_ERR_CURL);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    tx_result_clear(&r);

    /* Schemes other than http(s) never run. */
    bad = tx_http_new("GET", "file:///etc/hostname", NULL, 0, 3000);
    assert_non_null(bad);
    assert_int_equal(tx_send_wait(tx, bad, &r), 0);
    assert_int_equal(r.err, TX_ERR_CURL);
    assert_int_equal(r.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
    tx_result_clear(&r);

    /* Header lines cannot smuggle extra lines. */
    tx_request_t *h = tx_http_new("GET", "http://127.0.0.1:1/", NULL, 0, 1000);
    assert_int_equal(tx_http_add_header(h, "X-A: 1\r\nX-B: 2"), -1);
    assert_int_equal(tx_http_set_auth(h, "Authorization: x\nX: y"), -1);
    tx_request_free(h);
    tx_free(tx);
}

static void test_http_body_cap(void **state)
{
    fixture_t *f = *state;
    /* The stub's success answer is about 150 bytes. */
    tx_limits_t lim = {.body_cap = 64};
    tx_t *tx = tx_new(&lim);
    assert_non_null(tx);
    tx_result_t r;
    assert_int_equal(tx_send_wait(tx, wa_request(&f->stub, "15550000123", 5000), &r), 0);
    assert_int_equal(r.err, TX_ERR_BODY_CAP);
    assert_int_equal(r.curl_code, CURLE_WRITE_ERROR);
    assert_int_equal(r.body_len, 0);
    assert_non_null(strstr(r.text, "64 bytes"));
    tx_result_clear(&r);
    tx_free(tx);

    lim.body_cap = 4096;
    tx = tx_new(&lim);
    assert_non_null(tx);
    assert_int_equal(tx_send_wait(tx, wa_request(&f->stub, "15550000123", 5000), &r), 0);
    assert_int_equal(r.err, TX_OK);
    assert_true(r.body_len > 64 && r.body_len < 4096);
    tx_result_clear(&r);
    tx_free(tx);
}

/* ---- SMTP --------------------------------------------------------------- */

static tx_request_t *mail_request(const server_t *sink, const char *rcpt, int n, long timeout_ms)
{
    char url[64], msg[512];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", sink->port);
    int len = snprintf(msg, sizeof msg,
                       "From: Planiva <no-reply@mail.planiva.test>\r\n"
                       "To: <%s>\r\n"
                       "Subject: transport %d\r\n"
                       "Message-ID: <tx-%d@mail.planiva.test>\r\n"
                       "\r\n"
                       "Message %d.\r\n.leading dot\r\n",
                       rcpt, n, n, n);
    smtp_call_params_t p = {
        .url = url,
        .from = "bounces@mail.planiva.test",
        .rcpt = rcpt,
        .timeout_ms = timeout_ms,
    };
    tx_request_t *r = smtp_call_new(&p, msg, (size_t)len);
    assert_non_null(r);
    return r;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Counts .eml files in the sink's folder and the distinct client ports
 * recorded in their .json envelopes. */
static int sink_scan(const server_t *sink, int *distinct_ports)
{
    DIR *d = opendir(sink->dir);
    assert_non_null(d);
    int ports[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || l > 200 || strcmp(e->d_name + l - 4, ".eml") != 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%.*s.json", sink->dir, (int)(l - 4), e->d_name);
        FILE *fp = fopen(p, "r");
        assert_non_null(fp);
        char j[2048];
        size_t k = fread(j, 1, sizeof j - 1, fp);
        fclose(fp);
        j[k] = '\0';
        const char *q = strstr(j, "\"peer\": [\"127.0.0.1\", ");
        assert_non_null(q);
        assert_true(n < 512);
        ports[n++] = atoi(q + strlen("\"peer\": [\"127.0.0.1\", "));
    }
    closedir(d);
    qsort(ports, (size_t)n, sizeof ports[0], cmp_int);
    int distinct = 0;
    for (int i = 0; i < n; i++)
        distinct += i == 0 || ports[i] != ports[i - 1];
    *distinct_ports = distinct;
    return n;
}

static void test_smtp_fifty_with_reuse(void **state)
{
    fixture_t *f = *state;
    int before_ports;
    int before = sink_scan(&f->sink, &before_ports);
    tx_limits_t lim = {.max_host_conns = 4};
    tx_t *tx = tx_new(&lim);
    assert_non_null(tx);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    enum { N = 50 };
    for (int i = 0; i < N; i++)
        submit_slot(tx, mail_request(&f->sink, "client@example.com", i, 20000), i);
    assert_int_equal(coll_wait(c, N, 60000), N);
    long conns = 0;
    for (int i = 0; i < N; i++) {
        slot_t *s = &c->slots[i];
        assert_int_equal(s->calls, 1);
        if (s->err != TX_OK || s->status != 250)
            fail_msg("mail %d: %s %d (%s)", i, tx_err_name(s->err), s->status, s->text);
        assert_string_equal(s->enhanced, "2.0.0");
        assert_int_equal(s->category, ERRC_NONE);
        conns += s->num_connects;
    }
    assert_true(conns >= 1 && conns <= 4);
    tx_free(tx);
    int ports;
    int after = sink_scan(&f->sink, &ports);
    assert_int_equal(after - before, N);
    /* The sink saw the same few connections carry all fifty. */
    assert_true(ports - before_ports >= 1 && ports - before_ports <= 4);
    coll_free(c);
    free(c);
}

/* A pool of three loops takes the sends in turn, each loop with one session
 * of its own that carries all of its messages. */
static void test_smtp_pool_one_session_per_loop(void **state)
{
    fixture_t *f = *state;
    int before_ports;
    int before = sink_scan(&f->sink, &before_ports);
    assert_null(tx_pool_new(0, NULL));
    assert_null(tx_pool_new(TX_POOL_MAX + 1, NULL));
    tx_pool_t *pool = tx_pool_new(3, NULL);
    assert_non_null(pool);
    assert_int_equal(tx_pool_size(pool), 3);
    tx_t *first = tx_pool_pick(pool);
    assert_true(tx_pool_pick(pool) != first);
    assert_true(tx_pool_pick(pool) != first);
    assert_ptr_equal(tx_pool_pick(pool), first);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    enum { N = 30 };
    for (int i = 0; i < N; i++)
        submit_slot(tx_pool_pick(pool), mail_request(&f->sink, "client@example.com", i, 20000), i);
    assert_int_equal(coll_wait(c, N, 60000), N);
    long conns = 0;
    for (int i = 0; i < N; i++) {
        slot_t *s = &c->slots[i];
        assert_int_equal(s->calls, 1);
        if (s->err != TX_OK || s->status != 250)
            fail_msg("mail %d: %s %d (%s)", i, tx_err_name(s->err), s->status, s->text);
        conns += s->num_connects;
    }
    assert_int_equal(conns, 3);
    tx_pool_free(pool);
    tx_pool_free(NULL);
    int ports;
    int after = sink_scan(&f->sink, &ports);
    assert_int_equal(after - before, N);
    assert_int_equal(ports - before_ports, 3);
    coll_free(c);
    free(c);
}

static void test_smtp_fault_replies(void **state)
{
    fixture_t *f = *state;
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    tx_result_t r;
    assert_int_equal(tx_send_wait(tx, mail_request(&f->sink, "fail451@example.com", 1, 10000), &r),
                     0);
    assert_int_equal(r.err, TX_OK);
    assert_int_equal(r.status, 451);
    assert_string_equal(r.enhanced, "4.3.0");
    assert_int_equal(r.category, ERRC_TRANSIENT);
    assert_non_null(strstr(r.text, "Try again later"));
    tx_result_clear(&r);

    assert_int_equal(tx_send_wait(tx, mail_request(&f->sink, "fail550@example.com", 2, 10000), &r),
                     0);
    assert_int_equal(r.err, TX_OK);
    assert_int_equal(r.status, 550);
    assert_string_equal(r.enhanced, "5.1.1");
    assert_int_equal(r.category, ERRC_PERMANENT);
    assert_null(strstr(r.text, "fail550@"));
    tx_result_clear(&r);

    /* A failure leaves no broken connection behind for the next mail. */
    assert_int_equal(tx_send_wait(tx, mail_request(&f->sink, "client@example.com", 3, 10000), &r),
                     0);
    assert_int_equal(r.status, 250);
    assert_int_equal(r.category, ERRC_NONE);
    tx_result_clear(&r);

    /* An address that would inject commands never reaches the wire. */
    assert_int_equal(
        tx_send_wait(tx, mail_request(&f->sink, "a@example.com>\r\nRCPT TO:<b@c.d", 4, 10000), &r),
        0);
    assert_int_equal(r.err, TX_ERR_INVALID);
    assert_int_equal(r.category, ERRC_INVALID_INPUT);
    assert_int_equal(r.status, 0);
    tx_result_clear(&r);
    tx_free(tx);
}

/* ---- stopping ----------------------------------------------------------- */

static void test_stop_cancels_in_flight_once(void **state)
{
    fixture_t *f = *state;
    tx_limits_t lim = {.max_in_flight = 8};
    tx_t *tx = tx_new(&lim);
    assert_non_null(tx);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    /* 2 quick mails, then 12 that would take 20 s: 6 in flight, 6 queued. */
    enum { N = 14 };
    submit_slot(tx, mail_request(&f->sink, "client@example.com", 100, 30000), 12);
    submit_slot(tx, mail_request(&f->sink, "client@example.com", 101, 30000), 13);
    for (int i = 0; i < 12; i++)
        submit_slot(tx, wa_request(&f->stub, "15550000555", 30000), i);
    /* Let the transfers get under way. */
    struct timespec pause = {0, 300 * 1000000L};
    nanosleep(&pause, NULL);
    long t0 = now_ms();
    tx_stop(tx, 500);
    long took = now_ms() - t0;
    if (took < 400 || took > 3000)
        fail_msg("stop took %ld ms with 500 ms grace", took);
    /* Stop returns only after every callback ran. */
    assert_int_equal(c->done, N);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(c->slots[i].calls, 1);
        assert_int_equal(c->slots[i].err, TX_ERR_CANCELLED);
        assert_int_equal(c->slots[i].category, ERRC_TRANSIENT);
        assert_non_null(strstr(c->slots[i].text, "cancelled"));
    }
    /* The quick ones finished within the grace period. */
    for (int i = 12; i < N; i++) {
        assert_int_equal(c->slots[i].calls, 1);
        assert_int_equal(c->slots[i].status, 250);
    }
    /* A stopped transport refuses work and never calls back. */
    tx_request_t *late = wa_request(&f->stub, "15550000123", 1000);
    tx_request_on_done(late, on_done, &g_refs[N]);
    assert_int_equal(tx_submit(tx, late), -1);
    tx_result_t r;
    assert_int_equal(tx_send_wait(tx, wa_request(&f->stub, "15550000123", 1000), &r), -1);
    tx_stop(tx, 0); /* a second stop is harmless */
    tx_free(tx);
    assert_int_equal(c->slots[N].calls, 0);
    assert_int_equal(c->done, N);
    coll_free(c);
    free(c);
}

static void test_stop_with_grace_finishes(void **state)
{
    fixture_t *f = *state;
    tx_t *tx = tx_new(NULL);
    assert_non_null(tx);
    collector_t *c = malloc(sizeof *c);
    assert_non_null(c);
    coll_init(c);
    for (int i = 0; i < 20; i++)
        submit_slot(tx, wa_request(&f->stub, "15550000123", 10000), i);
    tx_stop(tx, 10000);
    assert_int_equal(c->done, 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(c->slots[i].calls, 1);
        assert_int_equal(c->slots[i].err, TX_OK);
        assert_int_equal(c->slots[i].status, 200);
    }
    tx_free(tx);
    coll_free(c);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_concurrent_reuse),
        cmocka_unit_test(test_http_slow_times_out_others_complete),
        cmocka_unit_test(test_http_queue_wait_counts),
        cmocka_unit_test(test_http_drop_and_retry_after),
        cmocka_unit_test(test_http_body_cap),
        cmocka_unit_test(test_smtp_fifty_with_reuse),
        cmocka_unit_test(test_smtp_pool_one_session_per_loop),
        cmocka_unit_test(test_smtp_fault_replies),
        cmocka_unit_test(test_stop_cancels_in_flight_once),
        cmocka_unit_test(test_stop_with_grace_finishes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
