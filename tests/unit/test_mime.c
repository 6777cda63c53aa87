/* mime: header encoding, injection resistance, body encodings, structure,
 * and a cross-check of whole messages with Python's email parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel/mime.h"
#include "util/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MSG (4u << 20)

static const mime_message_t base_msg = {
    .from = "Planiva Events <no-reply@mail.planiva.test>",
    .to_name = "Asha Rao",
    .to_addr = "asha@example.com",
    .subject = "Your plan is ready",
    .text = "Hello Asha,\nyour plan is ready.\n",
    .html = "<p>Hello Asha,</p><p>your plan is ready.</p>\n",
    .date = 1503410923, /* Tue, 22 Aug 2017 14:08:43 UTC */
};

/* Builds m into b (initialised here) and checks the generic wire rules that
 * hold for every message: CRLF only, 7-bit, no line over 998 bytes. */
static void build_ok(const mime_message_t *m, buf_t *b, char *msgid, size_t idlen)
{
    char err[128] = "";
    buf_init(b, MAX_MSG);
    int rc = mime_build(m, b, msgid, idlen, err, sizeof err);
    if (rc != 0)
        fail_msg("mime_build failed: %s", err);
    assert_true(b->len > 0);
    size_t col = 0;
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        assert_true(c < 0x80 && c != 0);
        if (c == '\r') {
            assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
        } else if (c == '\n') {
            assert_true(i > 0 && b->data[i - 1] == '\r');
            col = 0;
            continue;
        }
        if (c != '\r' && ++col > 998)
            fail_msg("line longer than 998 bytes at offset %zu", i);
    }
    assert_true(b->len >= 2 && b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n');
}

/* Length of the header block (up to and including the first CRLF CRLF). */
static size_t header_len(const buf_t *b)
{
    const char *e = strstr(b->data, "\r\n\r\n");
    assert_non_null(e);
    return (size_t)(e - b->data) + 4;
}

/* The unfolded value of the first top-level header "name" (malloc'd), or
 * NULL. Folding CRLF SP becomes SP... minus the CRLF, per RFC 5322 §2.2.3. */
static char *header_value(const buf_t *b, const char *name)
{
    size_t hl = header_len(b), nl = strlen(name);
    const char *p = b->data;
    while (p < b->data + hl) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            char *out = malloc(hl + 1);
            size_t k = 0;
            while (!(v[0] == '\r' && v[1] == '\n' && v[2] != ' ' && v[2] != '\t')) {
                if (v[0] == '\r' && v[1] == '\n') {
                    v += 2;
                    continue;
                }
                out[k++] = *v++;
            }
            out[k] = '\0';
            return out;
        }
        p = strstr(p, "\r\n") + 2;
    }
    return NULL;
}

/* Longest line of the header block, CRLF excluded. */
static size_t max_header_line(const buf_t *b)
{
    size_t hl = header_len(b), best = 0;
    const char *p = b->data;
    while (p < b->data + hl) {
        const char *e = strstr(p, "\r\n");
        if ((size_t)(e - p) > best)
            best = (size_t)(e - p);
        p = e + 2;
    }
    return best;
}

/* 1 when the message has a line that begins with prefix. */
static int has_line_starting(const buf_t *b, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(b->data, prefix, n) == 0)
        return 1;
    for (const char *p = strstr(b->data, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncmp(p + 2, prefix, n) == 0)
            return 1;
    return 0;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

/* Decodes a header value made only of B encoded-words separated by spaces,
 * checking each word's length and that each decodes to whole characters. */
static void decode_words(const char *v, buf_t *out, int *nwords)
{
    *nwords = 0;
    while (*v) {
        while (*v == ' ')
            v++;
        if (!*v)
            break;
        const char *e = strchr(v, ' ');
        size_t n = e ? (size_t)(e - v) : strlen(v);
        assert_true(n <= 75);
        assert_true(n > 12);
        assert_memory_equal(v, "=?UTF-8?B?", 10);
        assert_memory_equal(v + n - 2, "?=", 2);
        buf_t w;
        buf_init(&w, 256);
        assert_int_equal(b64_decode(&w, v + 10, n - 12, 0), 0);
        assert_true(utf8_valid((const unsigned char *)w.data, w.len));
        assert_int_equal(buf_append(out, w.data, w.len), 0);
        buf_free(&w);
        (*nwords)++;
        v += n;
    }
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Quoted-printable decoding of s[0..n), checking line lengths on the way. */
static void qp_decode(const char *s, size_t n, buf_t *out)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            assert_int_equal(buf_append(out, "\n", 1), 0);
            col = 0;
            i++;
            continue;
        }
        assert_true(++col <= 76);
        if (s[i] == '=') {
            if (s[i + 1] == '\r' && s[i + 2] == '\n') {
                col = 0;
                i += 2;
                continue;
            }
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            assert_true(h >= 0 && l >= 0);
            assert_int_equal(buf_putc(out, (char)(h * 16 + l)), 0);
            i += 2;
            col += 2;
            assert_true(col <= 76);
            continue;
        }
        assert_int_equal(buf_putc(out, s[i]), 0);
    }
}

/* The body of the first part whose headers contain marker, up to the next
 * "\r\n--" delimiter. */
static void part_body(const buf_t *b, const char *marker, const char **body, size_t *len)
{
    const char *p = strstr(b->data, marker);
    assert_non_null(p);
    p = strstr(p, "\r\n\r\n");
    assert_non_null(p);
    p += 4;
    const char *e = strstr(p, "\r\n--=_crier_");
    assert_non_null(e);
    *body = p;
    *len = (size_t)(e - p);
}

static void test_subject_example(void **state)
{
    (void)state;
    mime_message_t m = base_msg;
    m.subject = "R\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93 pr\xc3\xaat";
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    assert_true(has_line_starting(&b, "Subject: =?UTF-8?B?UsOpc3Vtw6kg4pyTIHByw6p0?=\r\n"));
    buf_free(&b);
}

static void test_long_multibyte_subject(void **state)
{
    (void)state;
    /* 300 characters mixing 1-, 2-, 3- and 4-byte sequences. */
    static const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x9c\x93", "\xf0\x9f\x8e\x89", " "};
    buf_t subj;
    buf_init(&subj, 4096);
    for (int i = 0; i < 300; i++)
        assert_int_equal(buf_puts(&subj, pieces[(i * 7 + i / 3) % 5]), 0);
    mime_message_t m = base_msg;
    m.subject = subj.data;
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    assert_true(max_header_line(&b) <= 78);
    char *v = header_value(&b, "Subject");
    assert_non_null(v);
    buf_t dec;
    buf_init(&dec, 4096);
    int nwords = 0;
    decode_words(v, &dec, &nwords);
    assert_true(nwords > 5);
    assert_int_equal(dec.len, subj.len);
    assert_memory_equal(dec.data, subj.data, subj.len);
    free(v);
    buf_free(&dec);
    buf_free(&b);
    buf_free(&subj);
}

static void test_long_ascii_subject_folds(void **state)
{
    (void)state;
    buf_t subj;
    buf_init(&subj, 4096);
    for (int i = 0; i < 40; i++)
        assert_int_equal(buf_printf(&subj, "%sword%d", i ? " " : "", i), 0);
    mime_message_t m = base_msg;
    m.subject = subj.data;
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    assert_true(max_header_line(&b) <= 78);
    char *v = header_value(&b, "Subject");
    /* Plain text, not encoded, and unfolding gives the subject back. */
    assert_non_null(v);
    assert_int_equal(v[0], ' ');
    assert_string_equal(v + 1, subj.data);
    assert_null(strstr(v, "=?"));
    free(v);
    buf_free(&b);
    buf_free(&subj);
}

static void test_header_injection(void **state)
{
    (void)state;
    static const unsigned char pdf[] = "%PDF-1.4\n";
    mime_attachment_t att = {.filename = "plan\r\nX-Evil: 1\".pdf",
                             .content_type = "application/pdf\r\nX-Evil: 2",
                             .data = pdf,
                             .len = sizeof pdf - 1};
    mime_message_t m = base_msg;
    m.to_name = "Eve\r\nBcc: victim@example.org";
    m.subject = "Hi\r\nBcc: victim@example.org\nX-Evil: 3\r\n\r\nbody";
    m.from = "Sender\r\nX-Evil: 4 <no-reply@mail.planiva.test>";
    m.attachments = &att;
    m.n_attachments = 1;
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    assert_false(has_line_starting(&b, "Bcc:"));
    assert_false(has_line_starting(&b, "X-Evil:"));
    assert_false(has_line_starting(&b, "body"));
    /* The content type could not be trusted, so it fell back. */
    assert_non_null(strstr(b.data, "Content-Type: application/octet-stream"));
    assert_null(strstr(b.data, "Content-Type: application/pdf"));
    /* Quotes cannot close the filename parameter early. */
    assert_non_null(strstr(b.data, "filename=\"plan  X-Evil: 1.pdf\""));
    /* Every header line in the top block is a field or a fold. */
    size_t hl = header_len(&b);
    for (const char *p = b.data; p < b.data + hl - 2; p = strstr(p, "\r\n") + 2) {
        if (*p == ' ')
            continue;
        const char *colon = strchr(p, ':');
        assert_true(colon && colon < strstr(p, "\r\n"));
        assert_true(strncmp(p, "Date:", 5) == 0 || strncmp(p, "From:", 5) == 0 ||
                    strncmp(p, "To:", 3) == 0 || strncmp(p, "Message-ID:", 11) == 0 ||
                    strncmp(p, "Subject:", 8) == 0 || strncmp(p, "MIME-Version:", 13) == 0 ||
                    strncmp(p, "Content-Type:", 13) == 0);
    }
    buf_free(&b);

    /* An address is never "cleaned": an unsafe one is refused. */
    char err[128];
    buf_t b2;
    buf_init(&b2, MAX_MSG);
    m = base_msg;
    m.to_addr = "asha@example.com\r\nBcc: victim@example.org";
    assert_int_equal(mime_build(&m, &b2, id, sizeof id, err, sizeof err), -1);
    assert_int_equal(b2.len, 0);
    m = base_msg;
    m.list_unsubscribe_url = "https://x.test/u\r\nBcc: a@b.c";
    assert_int_equal(mime_build(&m, &b2, id, sizeof id, err, sizeof err), -1);
    buf_free(&b2);
}

static void test_display_names(void **state)
{
    (void)state;
    buf_t b;
    char id[300];
    mime_message_t m = base_msg;
    m.to_name = "Rao, Asha";
    build_ok(&m, &b, id, sizeof id);
    assert_true(has_line_starting(&b, "To: \"Rao, Asha\" <asha@example.com>\r\n"));
    buf_free(&b);

    m.to_name = "Zo\xc3\xab";
    build_ok(&m, &b, id, sizeof id);
    assert_true(has_line_starting(&b, "To: =?UTF-8?B?Wm/Dqw==?= <asha@example.com>\r\n"));
    buf_free(&b);

    m.to_name = NULL;
    build_ok(&m, &b, id, sizeof id);
    assert_true(has_line_starting(&b, "To: <asha@example.com>\r\n"));
    assert_true(has_line_starting(&b, "From: Planiva Events <no-reply@mail.planiva.test>\r\n"));
    assert_true(has_line_starting(&b, "Date: Tue, 22 Aug 2017 14:08:43 +0000\r\n"));
    /* Message-ID: <uuid@sender's domain>, returned to the caller as written. */
    assert_int_equal(strlen(id), 1 + 36 + 1 + strlen("mail.planiva.test") + 1);
    assert_non_null(strstr(id, "@mail.planiva.test>"));
    char line[400];
    snprintf(line, sizeof line, "Message-ID: %s\r\n", id);
    assert_true(has_line_starting(&b, line));
    buf_free(&b);

    /* Two messages never share a Message-ID. */
    char id2[300];
    build_ok(&m, &b, id2, sizeof id2);
    assert_string_not_equal(id, id2);
    buf_free(&b);
}

static void test_quoted_printable(void **state)
{
    (void)state;
    buf_t text;
    buf_init(&text, 8192);
    /* A 300-character line full of '=', a trailing space, UTF-8, tabs. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_puts(&text, "a=b"), 0);
    assert_int_equal(buf_puts(&text, " \nR\xc3\xa9sum\xc3\xa9\tok\t\nlast line"), 0);
    mime_message_t m = base_msg;
    m.text = text.data;
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    const char *body;
    size_t len;
    part_body(&b, "Content-Type: text/plain; charset=UTF-8", &body, &len);
    assert_non_null(strstr(body, "a=3Db"));
    buf_t dec;
    buf_init(&dec, 8192);
    qp_decode(body, len, &dec);
    assert_string_equal(dec.data, text.data);
    /* Trailing whitespace is encoded so transports cannot strip it. */
    assert_non_null(strstr(body, "=20\r\n"));
    assert_non_null(strstr(body, "=09\r\n"));
    buf_free(&dec);
    buf_free(&b);
    buf_free(&text);
}

static void test_structure_alternative(void **state)
{
    (void)state;
    buf_t b;
    char id[300];
    mime_message_t m = base_msg;
    m.entity_id = "6f1c2b7e-1d2a-4c55-9a0e-1b2c3d4e5f60";
    m.list_unsubscribe_url = "https://crier.test/u/Zk9xT2VbR1c";
    build_ok(&m, &b, id, sizeof id);
    assert_true(max_header_line(&b) <= 78);
    assert_true(has_line_starting(&b, "MIME-Version: 1.0\r\n"));
    assert_true(has_line_starting(&b, "X-Crier-Id: 6f1c2b7e-1d2a-4c55-9a0e-1b2c3d4e5f60\r\n"));
    assert_true(has_line_starting(&b, "List-Unsubscribe: <https://crier.test/u/Zk9xT2VbR1c>\r\n"));
    assert_true(has_line_starting(&b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    char *ct = header_value(&b, "Content-Type");
    assert_non_null(strstr(ct, "multipart/alternative"));
    free(ct);
    assert_null(strstr(b.data, "multipart/mixed"));
    const char *plain = strstr(b.data, "Content-Type: text/plain; charset=UTF-8");
    const char *html = strstr(b.data, "Content-Type: text/html; charset=UTF-8");
    assert_non_null(plain);
    assert_non_null(html);
    assert_true(plain < html);
    buf_free(&b);

    /* Without the optional fields, none of their headers. */
    build_ok(&base_msg, &b, id, sizeof id);
    assert_false(has_line_starting(&b, "X-Crier-Id:"));
    assert_false(has_line_starting(&b, "List-Unsubscribe"));
    buf_free(&b);
}

/* RFC 2369 / 8058: one List-Unsubscribe, the https URI first and the
 * mailto after the comma, folded there and nowhere inside a bracket. */
static void test_list_unsubscribe_mailto(void **state)
{
    (void)state;
    buf_t b;
    char id[300];
    mime_message_t m = base_msg;
    m.list_unsubscribe_url = "https://crier.test/u/Zk9xT2VbR1c";
    m.list_unsubscribe_mailto = "mailto:unsub@mail.planiva.test?subject=unsubscribe-Zk9xT2VbR1c";
    build_ok(&m, &b, id, sizeof id);
    assert_true(has_line_starting(&b, "List-Unsubscribe: <https://crier.test/u/Zk9xT2VbR1c>,\r\n"
                                      " <mailto:unsub@mail.planiva.test?subject=unsubscribe-"
                                      "Zk9xT2VbR1c>\r\nList-Unsubscribe-Post: "
                                      "List-Unsubscribe=One-Click\r\n"));
    char *v = header_value(&b, "List-Unsubscribe");
    assert_string_equal(v, " <https://crier.test/u/Zk9xT2VbR1c>, "
                           "<mailto:unsub@mail.planiva.test?subject=unsubscribe-Zk9xT2VbR1c>");
    free(v);
    /* exactly one of each field */
    const char *first = strstr(b.data, "\r\nList-Unsubscribe:");
    assert_non_null(first);
    assert_null(strstr(first + 2, "\r\nList-Unsubscribe:"));
    first = strstr(b.data, "\r\nList-Unsubscribe-Post:");
    assert_non_null(first);
    assert_null(strstr(first + 2, "\r\nList-Unsubscribe-Post:"));
    buf_free(&b);

    /* a mailto alone is no one-click: without the URL neither is written */
    m.list_unsubscribe_url = NULL;
    build_ok(&m, &b, id, sizeof id);
    assert_false(has_line_starting(&b, "List-Unsubscribe"));
    assert_null(strstr(b.data, "mailto:unsub@"));
    buf_free(&b);

    /* what cannot stand between brackets is refused, not cleaned */
    char err[128];
    buf_init(&b, MAX_MSG);
    static const char *const bad[] = {
        "mailto:a@b.test?subject=x y",      "mailto:a@b.test>, <https://evil.test/",
        "mailto:a@b.test\r\nBcc: v@x.test", "https://crier.test/u/x",
        "mailto:a@b.test?subject=\xc3\xa9",
    };
    m.list_unsubscribe_url = "https://crier.test/u/Zk9xT2VbR1c";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m.list_unsubscribe_mailto = bad[i];
        assert_int_equal(mime_build(&m, &b, id, sizeof id, err, sizeof err), -1);
        assert_string_equal(err, "invalid unsubscribe mailto");
        assert_int_equal(b.len, 0);
    }
    /* nor may the URL be another scheme */
    m.list_unsubscribe_mailto = NULL;
    m.list_unsubscribe_url = "javascript:alert(1)";
    assert_int_equal(mime_build(&m, &b, id, sizeof id, err, sizeof err), -1);
    buf_free(&b);
}

static void test_structure_attachments(void **state)
{
    (void)state;
    unsigned char blob[1000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 31 + 7);
    mime_attachment_t att[2] = {
        {.filename = "blueprint.pdf",
         .content_type = "application/pdf",
         .data = blob,
         .len = sizeof blob},
        {.filename = "R\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93.txt",
         .content_type = "text/plain",
         .data = (const unsigned char *)"hi",
         .len = 2},
    };
    mime_message_t m = base_msg;
    m.attachments = att;
    m.n_attachments = 2;
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    char *ct = header_value(&b, "Content-Type");
    assert_non_null(strstr(ct, "multipart/mixed"));
    free(ct);
    const char *alt = strstr(b.data, "Content-Type: multipart/alternative");
    const char *pdf = strstr(b.data, "Content-Type: application/pdf");
    assert_non_null(alt);
    assert_non_null(pdf);
    assert_true(alt < pdf);
    assert_non_null(strstr(b.data, " name=\"blueprint.pdf\""));
    assert_non_null(
        strstr(b.data, "Content-Disposition: attachment;\r\n filename=\"blueprint.pdf\""));
    /* Non-ASCII filenames go out as RFC 2231 extended values. */
    assert_non_null(strstr(b.data, "filename*0*=UTF-8''R%C3%A9sum%C3%A9%20%E2%9C%93.txt"));
    const char *body;
    size_t len;
    part_body(&b, "Content-Type: application/pdf", &body, &len);
    for (const char *p = body; p < body + len;) {
        const char *e = strstr(p, "\r\n");
        assert_true(e - p <= 76);
        p = e + 2;
    }
    buf_t dec;
    buf_init(&dec, 4096);
    assert_int_equal(b64_decode(&dec, body, len, 1), 0);
    assert_int_equal(dec.len, sizeof blob);
    assert_memory_equal(dec.data, blob, sizeof blob);
    buf_free(&dec);
    buf_free(&b);
}

static void test_invalid_input(void **state)
{
    (void)state;
    char id[300], err[128];
    buf_t b;
    buf_init(&b, MAX_MSG);
    mime_message_t m = base_msg;
    m.from = "not an address";
    assert_int_equal(mime_build(&m, &b, id, sizeof id, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    m = base_msg;
    m.html = NULL;
    assert_int_equal(mime_build(&m, &b, id, sizeof id, err, sizeof err), -1);
    /* A message id buffer too small is an error, not a truncated id. */
    assert_int_equal(mime_build(&base_msg, &b, id, 10, err, sizeof err), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    /* A message over the buffer's ceiling fails cleanly. */
    buf_init(&b, 512);
    assert_int_equal(mime_build(&base_msg, &b, id, sizeof id, err, sizeof err), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_addr_spec(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(mime_addr_spec("Planiva <no-reply@mail.planiva.test>", out, sizeof out), 0);
    assert_string_equal(out, "no-reply@mail.planiva.test");
    assert_int_equal(mime_addr_spec("  a.b+c@example.com ", out, sizeof out), 0);
    assert_string_equal(out, "a.b+c@example.com");
    assert_int_equal(mime_addr_spec("\"Rao, A\" <asha@example.com>", out, sizeof out), 0);
    assert_string_equal(out, "asha@example.com");
    assert_int_equal(mime_addr_spec("Name <broken@example.com", out, sizeof out), -1);
    assert_int_equal(mime_addr_spec("no at sign", out, sizeof out), -1);
    assert_int_equal(mime_addr_spec("a@b@c", out, sizeof out), -1);
    assert_int_equal(mime_addr_spec("<a\r\n@b.c>", out, sizeof out), -1);
    assert_int_equal(mime_addr_spec("averyveryverylongaddress@example.com", out, 10), -1);
}

/* Runs the Python checker on a file; returns its exit status. */
static int run_mime_check(const char *file)
{
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src)
        fail_msg("CRIER_SOURCE_DIR is not set");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/support/mime_check.py' '%s' >/dev/null",
             src, file);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_python_email_accepts(void **state)
{
    (void)state;
    /* Relative: the test's working directory is the build tree. */
    char dir[] = "crier-mime-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/m.eml", dir);

    static const unsigned char pdf[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";
    mime_attachment_t att[2] = {
        {.filename = "blueprint.pdf",
         .content_type = "application/pdf",
         .data = pdf,
         .len = sizeof pdf - 1},
        {.filename = "pr\xc3\xaat \"final\".txt",
         .content_type = "bad type",
         .data = pdf,
         .len = 5},
    };
    mime_message_t m = base_msg;
    m.subject = "R\xc3\xa9sum\xc3\xa9 \xe2\x9c\x93 pr\xc3\xaat";
    m.to_name = "Zo\xc3\xab \"Z\" Smith";
    m.list_unsubscribe_url = "https://crier.test/u/abc";
    m.list_unsubscribe_mailto = "mailto:unsub@mail.planiva.test?subject=unsubscribe-abc";
    m.entity_id = "42";
    m.attachments = att;
    m.n_attachments = 2;
    buf_t b;
    char id[300];
    build_ok(&m, &b, id, sizeof id);
    write_file(path, b.data, b.len);
    assert_int_equal(run_mime_check(path), 0);
    buf_free(&b);

    build_ok(&base_msg, &b, id, sizeof id);
    write_file(path, b.data, b.len);
    assert_int_equal(run_mime_check(path), 0);

    /* The checker is not a rubber stamp: a bare LF makes it fail. */
    char *bad = strstr(b.data, "\r\nSubject:");
    assert_non_null(bad);
    bad[0] = ' ';
    write_file(path, b.data, b.len);
    assert_int_equal(run_mime_check(path), 1);
    buf_free(&b);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_example),
        cmocka_unit_test(test_long_multibyte_subject),
        cmocka_unit_test(test_long_ascii_subject_folds),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_structure_alternative),
        cmocka_unit_test(test_list_unsubscribe_mailto),
        cmocka_unit_test(test_structure_attachments),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_addr_spec),
        cmocka_unit_test(test_python_email_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
