#include "channel/mime.h"
#include "util/errmsg.h"

#include "util/base64.h"

#include <openssl/rand.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 §2.1.1: lines SHOULD stay within 78 characters; we fold there. */
#define MIME_FOLD_AT 78
/* RFC 2047 §2: an encoded-word is at most 75 characters. */
#define MIME_EWORD_MAX 75
/* "=?UTF-8?B?" + "?=" around the base64 text. */
#define MIME_EWORD_OVERHEAD 12
/* Quoted-printable and base64 body lines (RFC 2045 §6.7, §6.8). */
#define MIME_BODY_LINE 76

/* Input ceilings: a hostile request must not make a header line exceed the
 * 998-byte hard limit or the message grow without bound through headers. */
#define MIME_MAX_SUBJECT  1000
#define MIME_MAX_NAME     256
#define MIME_MAX_FILENAME 255
#define MIME_MAX_ADDR     254
#define MIME_MAX_URL      900
#define MIME_MAX_ENTITY   128
#define MIME_MAX_CTYPE    127

/* ---- text cleaning ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is invalid
 * (overlong forms, surrogates and values above U+10FFFF included); the code
 * point goes to *cp. */
static size_t mime_utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Appends s to out as valid UTF-8 of at most max bytes (cut on a character
 * boundary): invalid bytes become U+FFFD and every control character (C0,
 * DEL, C1, line/paragraph separators) becomes a space. This is the one gate
 * through which request text reaches a header, so no CR or LF can ever start
 * a new header line. */
static int mime_clean(const char *s, size_t max, buf_t *out)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), used = 0;
    size_t i = 0;
    while (i < n) {
        unsigned cp;
        size_t len = mime_utf8_seq(p + i, n - i, &cp);
        const char *emit = (const char *)p + i;
        size_t elen = len;
        if (len == 0) {
            emit = replacement;
            elen = 3;
            len = 1;
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0x2028 ||
                   cp == 0x2029) {
            emit = " ";
            elen = 1;
        }
        if (used + elen > max)
            break;
        if (buf_append(out, emit, elen) != 0)
            return -1;
        used += elen;
        i += len;
    }
    return buf_append(out, "", 0);
}

static int mime_is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* ---- header writer ------------------------------------------------------ */

/* Writes one header field as a sequence of tokens separated by single
 * spaces, folding (CRLF SPACE) before a token that would push the line past
 * 78 characters. Errors are sticky so callers check once per field. */
typedef struct mime_hw {
    buf_t *out; /* borrowed */
    size_t col; /* characters on the current line */
    int ntok;   /* tokens written in this field */
    int rc;
} mime_hw_t;

static void hw_start(mime_hw_t *hw, buf_t *out, const char *name)
{
    hw->out = out;
    hw->ntok = 0;
    hw->rc = buf_printf(out, "%s:", name);
    hw->col = strlen(name) + 1;
}

/* Room left on the current line for a token placed after a space. */
static size_t hw_room(const mime_hw_t *hw)
{
    return hw->col + 1 < MIME_FOLD_AT ? MIME_FOLD_AT - hw->col - 1 : 0;
}

static void hw_token(mime_hw_t *hw, const char *tok, size_t len)
{
    if (hw->rc != 0)
        return;
    /* The first token stays beside the field name: a field must not start
     * with a folded empty line. */
    if (hw->ntok > 0 && len > hw_room(hw)) {
        hw->rc = buf_append(hw->out, "\r\n ", 3);
        hw->col = 1;
    } else {
        hw->rc = buf_putc(hw->out, ' ');
        hw->col++;
    }
    if (hw->rc == 0)
        hw->rc = buf_append(hw->out, tok, len);
    hw->col += len;
    hw->ntok++;
}

static int hw_end(mime_hw_t *hw)
{
    if (hw->rc == 0)
        hw->rc = buf_append(hw->out, "\r\n", 2);
    return hw->rc;
}

/* Writes s as RFC 2047 B encoded-words. Each word carries whole UTF-8
 * characters only, so every word decodes to valid UTF-8 on its own (RFC 2047
 * §5 forbids splitting a character), and each is sized so its line stays
 * within 78 characters. Whitespace between adjacent encoded-words is ignored
 * by decoders, so the folding adds nothing to the decoded text. */
static void hw_encoded_words(mime_hw_t *hw, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && hw->rc == 0) {
        /* A word sits after a space on this line, or after a fold. */
        size_t room = hw_room(hw);
        if (hw->ntok > 0 && room < MIME_EWORD_OVERHEAD + 8)
            room = MIME_FOLD_AT - 2;
        size_t wmax = room < MIME_EWORD_MAX ? room : MIME_EWORD_MAX;
        size_t bytes = wmax > MIME_EWORD_OVERHEAD ? (wmax - MIME_EWORD_OVERHEAD) / 4 * 3 : 0;
        if (bytes < 4) /* must fit any UTF-8 character */
            bytes = (MIME_EWORD_MAX - MIME_EWORD_OVERHEAD) / 4 * 3;
        size_t take = 0;
        while (i + take < n) {
            unsigned cp;
            size_t len = mime_utf8_seq((const unsigned char *)s + i + take, n - i - take, &cp);
            if (len == 0)
                len = 1; /* cleaned input is valid UTF-8; stay total anyway */
            if (take + len > bytes)
                break;
            take += len;
        }
        buf_t w;
        buf_init(&w, 128);
        int rc = buf_puts(&w, "=?UTF-8?B?");
        if (rc == 0)
            rc = b64_encode(&w, s + i, take, 0);
        if (rc == 0)
            rc = buf_puts(&w, "?=");
        if (rc == 0)
            hw_token(hw, w.data, w.len);
        else
            hw->rc = -1;
        buf_free(&w);
        i += take;
    }
}

/* Writes an ASCII text as space-separated words; runs of whitespace collapse
 * to one space, which is how readers display them anyway. */
static void hw_words(mime_hw_t *hw, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (j > i)
            hw_token(hw, s + i, j - i);
        i = j;
    }
}

/* 1 when an ASCII text can go into a header as plain words: no word too long
 * to fold and nothing a reader would take for an encoded-word. */
static int mime_plain_ok(const char *s, size_t n, size_t max_word)
{
    if (!mime_is_ascii(s, n) || strstr(s, "=?"))
        return 0;
    size_t word = 0;
    for (size_t i = 0; i < n; i++) {
        word = s[i] == ' ' ? 0 : word + 1;
        if (word > max_word)
            return 0;
    }
    return 1;
}

/* Writes an unstructured header value (Subject). */
static void hw_unstructured(mime_hw_t *hw, const char *s)
{
    size_t n = strlen(s);
    if (mime_plain_ok(s, n, 70))
        hw_words(hw, s, n);
    else
        hw_encoded_words(hw, s, n);
}

/* RFC 5322 specials: a display name with any of these must be quoted. */
static int mime_has_specials(const char *s)
{
    return strpbrk(s, "()<>[]:;@\\,.\"") != NULL;
}

/* Writes a display name as a phrase: atoms when plain, a quoted-string when
 * it holds specials, encoded-words when non-ASCII or too long to quote on
 * one line. */
static void hw_phrase(mime_hw_t *hw, const char *name)
{
    size_t n = strlen(name);
    if (!mime_plain_ok(name, n, 64) || n > 64) {
        hw_encoded_words(hw, name, n);
        return;
    }
    if (!mime_has_specials(name)) {
        hw_words(hw, name, n);
        return;
    }
    char q[2 * 64 + 3];
    size_t k = 0;
    q[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '"' || name[i] == '\\')
            q[k++] = '\\';
        q[k++] = name[i];
    }
    q[k++] = '"';
    hw_token(hw, q, k);
}

/* ---- addresses ---------------------------------------------------------- */

/* RFC 5322 atext plus '.', the characters of a dot-atom local part. */
static int mime_local_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

static int mime_domain_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

/* 1 when a[0..n) is a plain ASCII addr-spec: dot-atom "@" domain. Quoted
 * local parts and address literals are refused: nothing we send needs them
 * and they are where header and SMTP command injection hide. */
static int mime_addr_valid(const char *a, size_t n)
{
    if (n == 0 || n > MIME_MAX_ADDR)
        return 0;
    const char *at = memchr(a, '@', n);
    if (!at || at == a || at == a + n - 1 || memchr(at + 1, '@', (size_t)(a + n - at - 1)))
        return 0;
    for (const char *p = a; p < at; p++)
        if (!mime_local_char((unsigned char)*p))
            return 0;
    for (const char *p = at + 1; p < a + n; p++)
        if (!mime_domain_char((unsigned char)*p))
            return 0;
    return at[1] != '.' && a[n - 1] != '.' && a[0] != '.' && at[-1] != '.';
}

int mime_addr_spec(const char *mailbox, char *out, size_t outlen)
{
    if (!mailbox || !out || outlen == 0)
        return -1;
    const char *s = mailbox, *e;
    const char *lt = strrchr(mailbox, '<');
    if (lt) {
        s = lt + 1;
        e = strchr(s, '>');
        if (!e)
            return -1;
    } else {
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
    }
    size_t n = (size_t)(e - s);
    if (!mime_addr_valid(s, n) || n + 1 > outlen)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* The display-name part of "Name <addr>" (quotes and escapes removed) into
 * out; empty when there is none. */
static int mime_from_name(const char *mailbox, buf_t *out)
{
    const char *lt = strrchr(mailbox, '<');
    if (!lt)
        return buf_append(out, "", 0);
    const char *s = mailbox, *e = lt;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e - s >= 2 && *s == '"' && e[-1] == '"') {
        s++;
        e--;
    }
    /* Longer names are cut here; mime_clean cuts again on a character. */
    for (const char *p = s; p < e && out->len < 4 * MIME_MAX_NAME; p++) {
        if (*p == '\\' && p + 1 < e)
            p++;
        if (buf_putc(out, *p) != 0)
            return -1;
    }
    return buf_append(out, "", 0);
}

/* Writes [phrase] <addr> for a To/From field. */
static int mime_mailbox_field(buf_t *out, const char *field, const char *raw_name, const char *addr)
{
    buf_t name;
    buf_init(&name, 4 * MIME_MAX_NAME);
    int rc = mime_clean(raw_name ? raw_name : "", MIME_MAX_NAME, &name);
    mime_hw_t hw;
    hw_start(&hw, out, field);
    if (rc == 0) {
        /* Trim: a name of blanks is no name. */
        size_t b = 0, e = name.len;
        while (b < e && name.data[b] == ' ')
            b++;
        while (e > b && name.data[e - 1] == ' ')
            e--;
        name.data[e] = '\0';
        if (e > b)
            hw_phrase(&hw, name.data + b);
        char a[MIME_MAX_ADDR + 3];
        snprintf(a, sizeof a, "<%s>", addr);
        hw_token(&hw, a, strlen(a));
        rc = hw_end(&hw);
    }
    buf_free(&name);
    return rc;
}

/* ---- randomness --------------------------------------------------------- */

static int mime_random_hex(char *out, size_t nbytes)
{
    unsigned char r[32];
    if (nbytes > sizeof r || RAND_bytes(r, (int)nbytes) != 1)
        return -1;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* A version 4 UUID from OpenSSL's CSPRNG: Message-IDs must be globally
 * unique, and unpredictable ones do not reveal the send rate. */
static int mime_uuid(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return 0;
}

/* ---- body encodings ----------------------------------------------------- */

/* Quoted-printable (RFC 2045 §6.7) of UTF-8 text. Any line break in the
 * input (LF, CRLF or a lone CR) becomes a CRLF hard break; output lines are
 * at most 76 characters counting the soft-break '='. */
static int mime_qp(buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            if (*p == '\r' && p[1] == '\n')
                p++;
            if (buf_append(out, "\r\n", 2) != 0)
                return -1;
            col = 0;
            continue;
        }
        char tok[3];
        size_t tlen = 1;
        int line_end = p[1] == '\0' || p[1] == '\r' || p[1] == '\n';
        /* Trailing blanks are stripped by transports, so they are encoded;
         * '=' is always encoded, which is also what keeps boundaries out. */
        if ((*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !line_end)) {
            tok[0] = (char)*p;
        } else {
            tok[0] = '=';
            tok[1] = hex[*p >> 4];
            tok[2] = hex[*p & 15];
            tlen = 3;
        }
        if (col + tlen > MIME_BODY_LINE - 1) {
            if (buf_append(out, "=\r\n", 3) != 0)
                return -1;
            col = 0;
        }
        if (buf_append(out, tok, tlen) != 0)
            return -1;
        col += tlen;
    }
    return 0;
}

/* ---- attachment parameters ---------------------------------------------- */

/* A content type we pass on only when it is exactly type "/" subtype in
 * RFC 2045 token syntax; anything else (parameters, spaces, controls) could
 * smuggle header text, so it becomes application/octet-stream. */
static const char *mime_safe_ctype(const char *ct)
{
    static const char fallback[] = "application/octet-stream";
    if (!ct)
        return fallback;
    size_t n = strlen(ct), slash = 0, nslash = 0;
    if (n == 0 || n > MIME_MAX_CTYPE)
        return fallback;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)ct[i];
        if (c == '/') {
            slash = i;
            nslash++;
        } else if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"[]?=", c)) {
            return fallback;
        }
    }
    if (nslash != 1 || slash == 0 || slash == n - 1)
        return fallback;
    return ct;
}

/* The filename as shown to the recipient: cleaned of controls, without
 * quotes or backslashes (they would end or escape the quoted parameter) and
 * with '/' made '_' so no client saves it outside its download folder. */
static int mime_safe_filename(const char *raw, buf_t *out)
{
    buf_t c;
    buf_init(&c, 4 * MIME_MAX_FILENAME);
    int rc = mime_clean(raw ? raw : "", MIME_MAX_FILENAME, &c);
    for (size_t i = 0; rc == 0 && i < c.len; i++) {
        char ch = c.data[i];
        if (ch == '"' || ch == '\\')
            continue;
        rc = buf_putc(out, ch == '/' ? '_' : ch);
    }
    buf_free(&c);
    if (rc == 0 && out->len == 0)
        rc = buf_puts(out, "attachment");
    return rc == 0 ? buf_append(out, "", 0) : -1;
}

/* Writes "; <attr>=..." parameters for a filename. Short ASCII names go in
 * a quoted-string. Others use RFC 2231 (extended value UTF-8, split into
 * numbered continuations so each line stays short) rather than RFC 2047:
 * RFC 2047 §5 does not allow encoded-words inside quoted parameter values,
 * while RFC 2231 is the standard form and decoders (Python's email among
 * them) reassemble it. */
static int mime_filename_param(buf_t *out, const char *attr, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(name);
    if (mime_is_ascii(name, n) && n <= 60) {
        int plain = 1;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)name[i] < 0x20)
                plain = 0;
        if (plain)
            return buf_printf(out, ";\r\n %s=\"%s\"", attr, name);
    }
    int seg = 0;
    size_t i = 0;
    while (i < n) {
        if (buf_printf(out, ";\r\n %s*%d*=%s", attr, seg, seg == 0 ? "UTF-8''" : "") != 0)
            return -1;
        size_t chars = 0;
        while (i < n && chars < 48) {
            unsigned char c = (unsigned char)name[i++];
            int lit = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_';
            char t[3] = {(char)c, hex[c >> 4], hex[c & 15]};
            if (lit) {
                if (buf_putc(out, (char)c) != 0)
                    return -1;
                chars++;
            } else {
                if (buf_putc(out, '%') != 0 || buf_append(out, t + 1, 2) != 0)
                    return -1;
                chars += 3;
            }
        }
        seg++;
    }
    return 0;
}

static int mime_attachment(buf_t *out, const char *boundary, const mime_attachment_t *a)
{
    buf_t fname;
    buf_init(&fname, 4 * MIME_MAX_FILENAME);
    int rc = mime_safe_filename(a->filename, &fname);
    if (rc == 0)
        rc =
            buf_printf(out, "--%s\r\nContent-Type: %s", boundary, mime_safe_ctype(a->content_type));
    if (rc == 0)
        rc = mime_filename_param(out, "name", fname.data);
    if (rc == 0)
        rc = buf_puts(out, "\r\nContent-Disposition: attachment");
    if (rc == 0)
        rc = mime_filename_param(out, "filename", fname.data);
    if (rc == 0)
        rc = buf_puts(out, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    if (rc == 0)
        rc = a->len ? b64_encode(out, a->data, a->len, MIME_BODY_LINE) : buf_puts(out, "\r\n");
    buf_free(&fname);
    return rc;
}

static int mime_text_part(buf_t *out, const char *boundary, const char *subtype, const char *s)
{
    if (buf_printf(out,
                   "--%s\r\nContent-Type: text/%s; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                   boundary, subtype) != 0 ||
        mime_qp(out, s) != 0)
        return -1;
    /* The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1). */
    return buf_append(out, "\r\n", 2);
}

/* ---- the message -------------------------------------------------------- */

static int mime_date(buf_t *out, time_t t)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
        return -1;
    /* Names come from tables, not strftime, so the locale cannot change them. */
    return buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                      tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                      tm.tm_sec);
}

/* 1 when a URI can stand in List-Unsubscribe as is: one of the schemes
 * given, printable ASCII with no spaces or angle brackets (RFC 2369: no
 * white space inside the brackets), bounded. */
static int mime_list_uri_ok(const char *u, const char *scheme, const char *scheme2)
{
    size_t n = strlen(u);
    if (n > MIME_MAX_URL || (strncasecmp(u, scheme, strlen(scheme)) != 0 &&
                             (!scheme2 || strncasecmp(u, scheme2, strlen(scheme2)) != 0)))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
            return 0;
    }
    return 1;
}

static int mime_headers(const mime_message_t *m, buf_t *out, const char *from_addr,
                        const char *msgid, const char *top_ctype, const char *top_boundary)
{
    buf_t tmp;
    buf_init(&tmp, 4 * MIME_MAX_SUBJECT + 16);
    int rc = mime_date(out, m->date);
    if (rc == 0)
        rc = mime_from_name(m->from, &tmp);
    if (rc == 0)
        rc = mime_mailbox_field(out, "From", tmp.data, from_addr);
    if (rc == 0)
        rc = mime_mailbox_field(out, "To", m->to_name, m->to_addr);
    if (rc == 0)
        rc = buf_printf(out, "Message-ID: %s\r\n", msgid);
    buf_reset(&tmp);
    if (rc == 0)
        rc = mime_clean(m->subject ? m->subject : "", MIME_MAX_SUBJECT, &tmp);
    if (rc == 0) {
        mime_hw_t hw;
        hw_start(&hw, out, "Subject");
        hw_unstructured(&hw, tmp.data);
        rc = hw_end(&hw);
    }
    if (rc == 0)
        rc = buf_puts(out, "MIME-Version: 1.0\r\n");
    if (rc == 0 && m->entity_id && *m->entity_id) {
        /* Our own id, but filtered all the same: only token characters. */
        char id[MIME_MAX_ENTITY + 1];
        size_t k = 0;
        for (const char *p = m->entity_id; *p && k < MIME_MAX_ENTITY; p++)
            id[k++] = (mime_domain_char((unsigned char)*p) || *p == '_' || *p == ':') ? *p : '_';
        id[k] = '\0';
        rc = buf_printf(out, "X-Crier-Id: %s\r\n", id);
    }
    /* RFC 8058: one List-Unsubscribe with the HTTPS URI (first: the order
     * is the sender's preference) and any other after it, folded after the
     * comma, never inside the brackets */
    if (rc == 0 && m->list_unsubscribe_url)
        rc = buf_printf(out, "List-Unsubscribe: <%s>", m->list_unsubscribe_url);
    if (rc == 0 && m->list_unsubscribe_url && m->list_unsubscribe_mailto)
        rc = buf_printf(out, ",\r\n <%s>", m->list_unsubscribe_mailto);
    if (rc == 0 && m->list_unsubscribe_url)
        rc = buf_puts(out, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    if (rc == 0)
        rc = buf_printf(out, "Content-Type: %s;\r\n boundary=\"%s\"\r\n\r\n", top_ctype,
                        top_boundary);
    buf_free(&tmp);
    return rc;
}

int mime_build(const mime_message_t *m, buf_t *out, char *message_id, size_t idlen, char *err,
               size_t errlen)
{
    char from_addr[MIME_MAX_ADDR + 1];
    if (!m || !out || !message_id) {
        errmsg_set(err, errlen, "missing argument");
        return -1;
    }
    if (!m->from || mime_addr_spec(m->from, from_addr, sizeof from_addr) != 0) {
        errmsg_set(err, errlen, "invalid sender address");
        return -1;
    }
    if (!m->to_addr || !mime_addr_valid(m->to_addr, strlen(m->to_addr))) {
        errmsg_set(err, errlen, "invalid recipient address");
        return -1;
    }
    if (!m->text || !m->html) {
        errmsg_set(err, errlen, "both a text and an html part are required");
        return -1;
    }
    if (m->list_unsubscribe_url &&
        !mime_list_uri_ok(m->list_unsubscribe_url, "https://", "http://")) {
        errmsg_set(err, errlen, "invalid unsubscribe url");
        return -1;
    }
    if (m->list_unsubscribe_mailto &&
        !mime_list_uri_ok(m->list_unsubscribe_mailto, "mailto:", NULL)) {
        errmsg_set(err, errlen, "invalid unsubscribe mailto");
        return -1;
    }
    if (m->n_attachments < 0 || (m->n_attachments > 0 && !m->attachments)) {
        errmsg_set(err, errlen, "invalid attachment list");
        return -1;
    }

    /* Boundaries: "=_crier_" + random hex. Text parts are quoted-printable,
     * where a literal '=' is always written "=3D" and every other '=' starts
     * a hex escape or ends a line, so "=_" cannot occur in them; base64 has
     * neither '_' nor a '=' before its final padding. So no encoded body can
     * contain a boundary, whatever the content, and no scan is needed. The
     * random part keeps nested boundaries distinct from each other. */
    char uuid[37], rnd_alt[25], rnd_mix[25], b_alt[40], b_mix[40];
    if (mime_uuid(uuid) != 0 || mime_random_hex(rnd_alt, 12) != 0 ||
        mime_random_hex(rnd_mix, 12) != 0) {
        errmsg_set(err, errlen, "no randomness available");
        return -1;
    }
    snprintf(b_alt, sizeof b_alt, "=_crier_%s", rnd_alt);
    snprintf(b_mix, sizeof b_mix, "=_crier_%s", rnd_mix);

    const char *domain = strchr(from_addr, '@') + 1;
    int idn = snprintf(message_id, idlen, "<%s@%s>", uuid, domain);
    if (idn < 0 || (size_t)idn >= idlen) {
        errmsg_set(err, errlen, "message id buffer too small");
        return -1;
    }

    size_t start = out->len;
    int mixed = m->n_attachments > 0;
    int rc =
        mime_headers(m, out, from_addr, message_id,
                     mixed ? "multipart/mixed" : "multipart/alternative", mixed ? b_mix : b_alt);
    if (rc == 0 && mixed)
        rc = buf_printf(out,
                        "--%s\r\nContent-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n",
                        b_mix, b_alt);
    if (rc == 0)
        rc = mime_text_part(out, b_alt, "plain", m->text);
    if (rc == 0)
        rc = mime_text_part(out, b_alt, "html", m->html);
    if (rc == 0)
        rc = buf_printf(out, "--%s--\r\n", b_alt);
    for (int i = 0; rc == 0 && i < m->n_attachments; i++)
        rc = mime_attachment(out, b_mix, &m->attachments[i]);
    if (rc == 0 && mixed)
        rc = buf_printf(out, "--%s--\r\n", b_mix);
    if (rc != 0) {
        buf_truncate(out, start);
        message_id[0] = '\0';
        errmsg_set(err, errlen, "message exceeds the size limit");
        return -1;
    }
    return 0;
}
