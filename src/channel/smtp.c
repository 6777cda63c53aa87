#include "channel/smtp.h"

#include "channel/smtp_easy.h"
#include "util/log.h"

#include <curl/curl.h>

#include <stdio.h>
#include <string.h>

/* Longest envelope address we pass to curl (RFC 5321 path limit). */
#define SMTP_ADDR_MAX 256

static size_t smtp_header_cb(char *data, size_t size, size_t n, void *userp)
{
    smtp_wire_t *w = userp;
    size_t len = size * n;
    /* 221 only ever answers QUIT, which curl sends when it drops a
     * connection after a failed command; it is not the reply that matters. */
    if (len >= 4 && memcmp(data, "221", 3) == 0 && (data[3] == ' ' || data[3] == '-'))
        return len;
    /* Keep only the last line: on failure it is the failing command's reply. */
    size_t keep = len < SMTP_EASY_LINE_MAX - 1 ? len : SMTP_EASY_LINE_MAX - 1;
    memcpy(w->line, data, keep);
    while (keep > 0 && (w->line[keep - 1] == '\r' || w->line[keep - 1] == '\n'))
        keep--;
    w->line[keep] = '\0';
    w->line_len = keep;
    return len;
}

/* The commands whose replies matter, as curl sends them (a verb with no
 * argument ends at its CRLF, so no base64 AUTH continuation matches). */
static const struct {
    const char *verb;
    const char *phase;
} smtp_phases[] = {
    {"MAIL ", "mail"}, {"RCPT ", "rcpt"}, {"DATA\r", "data"},    {"EHLO ", "ehlo"},
    {"HELO ", "ehlo"}, {"AUTH ", "auth"}, {"STARTTLS\r", "tls"}, {"RSET\r", "rset"},
};

/* Sees what curl sends only to note which command went last: the reply
 * that fails a transfer answers it. Nothing of the line is kept (an AUTH
 * line carries the credentials); a line that starts no known verb (an AUTH
 * continuation, QUIT) leaves the phase as it was. */
static int smtp_debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
    (void)h;
    smtp_wire_t *w = userp;
    if (type != CURLINFO_HEADER_OUT)
        return 0;
    for (size_t i = 0; i < sizeof smtp_phases / sizeof smtp_phases[0]; i++) {
        size_t n = strlen(smtp_phases[i].verb);
        if (size >= n && memcmp(data, smtp_phases[i].verb, n) == 0) {
            snprintf(w->phase, sizeof w->phase, "%s", smtp_phases[i].phase);
            break;
        }
    }
    return 0;
}

static size_t smtp_read_cb(char *dst, size_t size, size_t n, void *userp)
{
    smtp_wire_t *w = userp;
    size_t room = size * n;
    size_t k = w->up_left < room ? w->up_left : room;
    if (k > 0)
        memcpy(dst, w->up, k);
    w->up += k;
    w->up_left -= k;
    return k;
}

int smtp_easy_setup(CURL *h, const smtp_settings_t *s, smtp_wire_t *w)
{
    if (!h || !s || !s->url || !w)
        return -1;
    int smtps = strncmp(s->url, "smtps://", 8) == 0;
    if (!smtps && strncmp(s->url, "smtp://", 7) != 0)
        return -1;
    int ok = 1;
    ok &= curl_easy_setopt(h, CURLOPT_URL, s->url) == CURLE_OK;
    /* STARTTLS is all-or-nothing: CURLUSESSL_TRY would silently fall back to
     * plaintext when a man in the middle strips the offer. */
    if (!smtps)
        ok &= curl_easy_setopt(h, CURLOPT_USE_SSL,
                               s->tls_required ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE) ==
              CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    /* The transport thread shares the process with others: curl must not
     * use signals for its timeouts. */
    ok &= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms > 0 ? s->timeout_ms : 30000L) ==
          CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_READFUNCTION, smtp_read_cb) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_READDATA, w) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, smtp_header_cb) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_HEADERDATA, w) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, w->errbuf) == CURLE_OK;
    /* Verbose only feeds the debug callback, which writes nothing out. */
    ok &= curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, smtp_debug_cb) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_DEBUGDATA, w) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_VERBOSE, 1L) == CURLE_OK;
    if (s->username && *s->username)
        ok &= curl_easy_setopt(h, CURLOPT_USERNAME, s->username) == CURLE_OK;
    if (s->password && *s->password) {
        ok &= curl_easy_setopt(h, CURLOPT_PASSWORD, s->password) == CURLE_OK;
        log_add_secret(s->password);
    }
    return ok ? 0 : -1;
}

/* A CR or LF in an address would let a request append its own SMTP
 * commands: only printable ASCII, no spaces or angle brackets, one '@'. */
int smtp_easy_addr_ok(const char *a)
{
    if (!a)
        return 0;
    size_t n = strlen(a), ats = 0;
    if (n == 0 || n > SMTP_ADDR_MAX - 3)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)a[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>')
            return 0;
        ats += ch == '@';
    }
    return ats == 1;
}

/* Parses the RFC 3463 code after the reply code: "550 5.1.1 ..." or
 * "550-5.1.1 ...". Writes "" when there is none. */
static void smtp_parse_enhanced(const char *line, char out[16])
{
    out[0] = '\0';
    const char *p = line;
    for (int i = 0; i < 3; i++)
        if (p[i] < '0' || p[i] > '9')
            return;
    if (p[3] != ' ' && p[3] != '-')
        return;
    p += 4;
    if ((p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
        return;
    size_t k = 2;
    for (int part = 0; part < 2; part++) {
        size_t d = 0;
        while (p[k + d] >= '0' && p[k + d] <= '9')
            d++;
        if (d < 1 || d > 3)
            return;
        k += d;
        if (part == 0) {
            if (p[k] != '.')
                return;
            k++;
        }
    }
    if (p[k] != '\0' && p[k] != ' ')
        return;
    memcpy(out, p, k);
    out[k] = '\0';
}

static char smtp_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Replaces each (ASCII case-insensitive) occurrence of needle in s (a
 * NUL-terminated string in a buffer of cap bytes) with repl, truncating the
 * result to fit. */
static void smtp_scrub(char *s, size_t cap, const char *needle, const char *repl)
{
    size_t nl = needle ? strlen(needle) : 0, rl = strlen(repl);
    if (nl == 0)
        return;
    char tmp[SMTP_EASY_LINE_MAX];
    size_t k = 0;
    size_t lim = cap < sizeof tmp ? cap : sizeof tmp;
    for (const char *p = s; *p && k + 1 < lim;) {
        size_t i = 0;
        while (i < nl && p[i] && smtp_lower(p[i]) == smtp_lower(needle[i]))
            i++;
        if (i == nl) {
            for (size_t j = 0; j < rl && k + 1 < lim; j++)
                tmp[k++] = repl[j];
            p += nl;
        } else {
            tmp[k++] = *p++;
        }
    }
    tmp[k] = '\0';
    memcpy(s, tmp, k + 1);
}

errc_t smtp_classify(int reply_code, const char *enhanced)
{
    int cls = reply_code / 100;
    if (cls == 2)
        return ERRC_NONE;
    /* No reply at all: the connection failed or timed out before the server
     * said anything; the next attempt may well reach it. */
    if (reply_code <= 0)
        return ERRC_TRANSIENT;
    int has_enh = enhanced && (enhanced[0] == '4' || enhanced[0] == '5') && enhanced[1] == '.';
    /* Authentication required (530), failed (535) or refused for the
     * mechanism (534, 538), and 5.7.8/5.7.9: our credentials, not the
     * message, are wrong, so the provider circuit must open and alert. */
    if (reply_code == 530 || reply_code == 534 || reply_code == 535 || reply_code == 538 ||
        (has_enh && (strcmp(enhanced, "5.7.8") == 0 || strcmp(enhanced, "5.7.9") == 0)))
        return ERRC_AUTH_FAILURE;
    /* RFC 5321 §4.5.3.1.10 asks clients to treat 552 as temporary, and a
     * 552 5.2.2 (mailbox full) is soft; only "message too big" (5.3.4,
     * 5.2.3) would fail the same way on every retry. */
    if (reply_code == 552) {
        if (has_enh && (strcmp(enhanced, "5.3.4") == 0 || strcmp(enhanced, "5.2.3") == 0))
            return ERRC_PERMANENT;
        return ERRC_TRANSIENT;
    }
    /* The enhanced class is the finer signal (RFC 3463); trust it first. */
    if (has_enh)
        cls = enhanced[0] - '0';
    if (cls == 4)
        return ERRC_TRANSIENT;
    /* 5.1.x bounces, 5.7.x policy refusals and other 5yz: repeating the same
     * message will not change the answer. */
    if (cls == 5)
        return ERRC_PERMANENT;
    /* 1yz/3yz as a final answer: the dialogue broke off mid-way. */
    return ERRC_TRANSIENT;
}

int smtp_hard_bounce(int reply_code, const char *enhanced, const char *phase)
{
    /* RFC 3463 codes that name the recipient's address as the cause. */
    static const char *const dead[] = {"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"};
    /* A reply the classification keeps for a retry (552 is read as
     * temporary whatever its enhanced code) is no verdict on the address. */
    if (reply_code / 100 != 5 || !enhanced || !phase ||
        smtp_classify(reply_code, enhanced) != ERRC_PERMANENT)
        return 0;
    if (strcmp(phase, "rcpt") != 0 && strcmp(phase, "data") != 0)
        return 0;
    for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++)
        if (strcmp(enhanced, dead[i]) == 0)
            return 1;
    return 0;
}

static void smtp_set_text(smtp_result_t *res, const char *text)
{
    size_t k = 0;
    for (const char *p = text; *p && k < sizeof res->text - 1; p++) {
        unsigned char ch = (unsigned char)*p;
        res->text[k++] = (ch < 0x20 || ch >= 0x7f) ? ' ' : (char)ch;
    }
    res->text[k] = '\0';
}

int smtp_easy_begin(CURL *h, smtp_wire_t *w, const char *from, const char *rcpt, const char *msg,
                    size_t len, struct curl_slist **rcpts, smtp_result_t *res)
{
    memset(res, 0, sizeof *res);
    *rcpts = NULL;
    if (!h || !w || !msg || !smtp_easy_addr_ok(from) || !smtp_easy_addr_ok(rcpt)) {
        res->category = ERRC_INVALID_INPUT;
        smtp_set_text(res, "invalid envelope address or message");
        return -1;
    }
    char from_path[SMTP_ADDR_MAX], rcpt_path[SMTP_ADDR_MAX];
    snprintf(from_path, sizeof from_path, "<%s>", from);
    snprintf(rcpt_path, sizeof rcpt_path, "<%s>", rcpt);
    /* curl copies strings but not lists: the list outlives this call. */
    struct curl_slist *list = curl_slist_append(NULL, rcpt_path);
    if (!list) {
        res->category = ERRC_TRANSIENT;
        smtp_set_text(res, "out of memory");
        return -1;
    }
    w->line[0] = '\0';
    w->line_len = 0;
    w->phase[0] = '\0';
    w->errbuf[0] = '\0';
    w->up = msg;
    w->up_left = len;
    int ok = 1;
    ok &= curl_easy_setopt(h, CURLOPT_MAIL_FROM, from_path) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_MAIL_RCPT, list) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len) == CURLE_OK;
    if (!ok) {
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, NULL);
        curl_slist_free_all(list);
        w->up = NULL;
        w->up_left = 0;
        res->category = ERRC_TRANSIENT;
        smtp_set_text(res, "curl refused an option");
        return -1;
    }
    *rcpts = list;
    return 0;
}

int smtp_easy_finish(CURL *h, CURLcode rc, smtp_wire_t *w, const char *password, const char *from,
                     const char *rcpt, smtp_result_t *res)
{
    memset(res, 0, sizeof *res);
    long code = 0;
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
        code = 0;
    /* Nothing may point at the caller's message or list after this. */
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, NULL);
    w->up = NULL;
    w->up_left = 0;

    /* A curl failure before any reply in this transaction can leave the
     * code of the previous transaction: only trust it if a line came in. */
    if (w->line_len == 0)
        code = 0;
    res->reply_code = (int)code;
    /* The enhanced code is only meaningful on the line that carried code. */
    char code_txt[8];
    snprintf(code_txt, sizeof code_txt, "%03ld", code);
    if (code > 0 && strncmp(w->line, code_txt, 3) == 0)
        smtp_parse_enhanced(w->line, res->enhanced);
    if (code > 0)
        snprintf(res->phase, sizeof res->phase, "%s", w->phase);

    if (rc == CURLE_OK && code / 100 == 2) {
        res->category = ERRC_NONE;
        smtp_set_text(res, w->line);
        return 0;
    }

    if (rc == CURLE_LOGIN_DENIED) {
        res->category = ERRC_AUTH_FAILURE;
    } else if (rc == CURLE_USE_SSL_FAILED) {
        /* The server did not offer STARTTLS though we require it. We never
         * fall back to plaintext; the message is kept for a retry rather
         * than failed for good, because a stripped offer (a middlebox, a
         * server mid-restart) is often temporary, and a lasting
         * misconfiguration still surfaces through the retry limit and the
         * warning below without losing mail. */
        res->category = ERRC_TRANSIENT;
        log_warn("smtp", "starttls_unavailable", "detail", "server did not offer STARTTLS", NULL);
    } else if (code > 0) {
        res->category = smtp_classify((int)code, res->enhanced);
        /* A 2xx/3xx last reply with a curl error (timeout mid-upload, a
         * dropped connection) is not a verdict on the message. */
        if (res->category == ERRC_NONE)
            res->category = ERRC_TRANSIENT;
    } else {
        res->category = ERRC_TRANSIENT;
    }

    if (code > 0 && w->line_len > 0) {
        smtp_set_text(res, w->line);
    } else {
        char t[SMTP_EASY_LINE_MAX];
        snprintf(t, sizeof t, "%s%s%s", curl_easy_strerror(rc), w->errbuf[0] ? ": " : "",
                 w->errbuf);
        smtp_set_text(res, t);
    }
    /* Replies often echo the addresses, and nothing here may carry a secret. */
    smtp_scrub(res->text, sizeof res->text, password, "[redacted]");
    smtp_scrub(res->text, sizeof res->text, rcpt, "[rcpt]");
    smtp_scrub(res->text, sizeof res->text, from, "[from]");
    return -1;
}
