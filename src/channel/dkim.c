/* dkim: relaxed/relaxed DKIM signatures with rsa-sha256 and ed25519-sha256.
 *
 * The steps are RFC 6376 section 3.7: the body hash over the relaxed body,
 * then the signature over the listed header fields and the DKIM-Signature
 * field itself with an empty b=, each relaxed. The field is folded as it
 * is built, and what is signed is the canonical form of exactly that text,
 * so the folding can never disagree with what a verifier reconstructs. */
#include "channel/dkim.h"

#include "util/base64.h"
#include "util/errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A PEM key is a few kilobytes even at RSA 8192; anything larger is not one. */
#define DKIM_KEY_FILE_MAX 65536
/* Header fields of one message looked at; crier's messages carry about a dozen. */
#define DKIM_MAX_FIELDS 256
/* Lines of the DKIM-Signature field stay under 78 characters (RFC 5322 2.1.1). */
#define DKIM_LINE_MAX 77
/* The field is under 2 KiB even with an RSA 8192 signature. */
#define DKIM_SIG_FIELD_MAX 8192
#define DKIM_NAMES_MAX     2048
#define DKIM_RSA_MAX_BITS  8192

struct dkim_signer {
    EVP_PKEY *key; /* owned */
    dkim_alg_t alg;
    int bits;
    char selector[64];
    char domain[256];
};

/* ------------------------------------------------------------ the message */

typedef struct dkim_field {
    const char *p;  /* the field's first byte, in the caller's message */
    size_t len;     /* up to its final line end, folds included */
    size_t namelen; /* bytes before the colon; 0 when the field has none */
} dkim_field_t;

typedef struct dkim_msg {
    dkim_field_t f[DKIM_MAX_FIELDS];
    int n;
    const char *body;
    size_t bodylen;
} dkim_msg_t;

static int dkim_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits msg into its header fields and its body. A line ends at LF, with
 * or without CR before it (a verifier reads a bare LF as CRLF too). */
static int dkim_parse(const char *msg, size_t len, dkim_msg_t *m, char *err, size_t errlen)
{
    m->n = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *eol = memchr(msg + pos, '\n', len - pos);
        if (!eol)
            break;
        size_t end = (size_t)(eol - msg);
        size_t cend = end > pos && msg[end - 1] == '\r' ? end - 1 : end;
        if (cend == pos) {
            m->body = eol + 1;
            m->bodylen = len - (end + 1);
            return 0;
        }
        if (dkim_wsp(msg[pos])) {
            if (m->n == 0) {
                errmsg_set(err, errlen, "the message starts with a folded line");
                return -1;
            }
            dkim_field_t *f = &m->f[m->n - 1];
            f->len = cend - (size_t)(f->p - msg);
        } else {
            if (m->n == DKIM_MAX_FIELDS) {
                errmsg_set(err, errlen, "more than %d header fields", DKIM_MAX_FIELDS);
                return -1;
            }
            dkim_field_t *f = &m->f[m->n++];
            f->p = msg + pos;
            f->len = cend - pos;
            const char *colon = memchr(f->p, ':', f->len);
            f->namelen = colon ? (size_t)(colon - f->p) : 0;
        }
        pos = end + 1;
    }
    errmsg_set(err, errlen, "the message has no empty line after its header");
    return -1;
}

/* The field's name without the WSP before its colon. */
static size_t dkim_name_len(const dkim_field_t *f)
{
    size_t n = f->namelen;
    while (n > 0 && dkim_wsp(f->p[n - 1]))
        n--;
    return n;
}

static int dkim_field_is(const dkim_field_t *f, const char *name, size_t len)
{
    return f->namelen > 0 && dkim_name_len(f) == len && strncasecmp(f->p, name, len) == 0;
}

/* ------------------------------------------------------- canonicalisation */

/* Where canonical text goes: a buffer (tests, header input) or a digest. */
typedef struct dkim_out {
    buf_t *buf;
    EVP_MD_CTX *md;
    int rc;
} dkim_out_t;

static void dkim_emit(dkim_out_t *o, const char *p, size_t n)
{
    if (o->rc != 0 || n == 0)
        return;
    if (o->buf)
        o->rc = buf_append(o->buf, p, n);
    else if (EVP_DigestUpdate(o->md, p, n) != 1)
        o->rc = -1;
}

/* One body line (without its line end): WSP runs become one SP, WSP at the
 * end goes. An empty result is held back in *empties, since empty lines at
 * the end of the body are dropped. */
static void dkim_body_line(dkim_out_t *o, const char *p, size_t n, size_t *empties)
{
    while (n > 0 && dkim_wsp(p[n - 1]))
        n--;
    if (n == 0) {
        (*empties)++;
        return;
    }
    /* Empty lines held back were inside the body after all. */
    for (; *empties > 0; (*empties)--)
        dkim_emit(o, "\r\n", 2);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !dkim_wsp(p[j]))
            j++;
        dkim_emit(o, p + i, j - i);
        if (j == n)
            break;
        /* A WSP run here is followed by more text: the end was trimmed. */
        dkim_emit(o, " ", 1);
        while (j < n && dkim_wsp(p[j]))
            j++;
        i = j;
    }
    dkim_emit(o, "\r\n", 2);
}

static void dkim_body(dkim_out_t *o, const char *body, size_t len)
{
    size_t empties = 0, pos = 0;
    while (pos < len) {
        const char *eol = memchr(body + pos, '\n', len - pos);
        size_t end = eol ? (size_t)(eol - body) : len;
        size_t cend = eol && end > pos && body[end - 1] == '\r' ? end - 1 : end;
        dkim_body_line(o, body + pos, cend - pos, &empties);
        pos = eol ? end + 1 : len;
    }
}

int dkim_canon_body(const char *body, size_t len, buf_t *out)
{
    size_t start = out->len;
    dkim_out_t o = {.buf = out};
    dkim_body(&o, body, len);
    if (o.rc != 0)
        buf_truncate(out, start);
    return o.rc;
}

/* Appends the relaxed form of a field whose name is namelen bytes (WSP
 * before the colon included) and whose value follows the colon. */
static int dkim_canon_field(const char *p, size_t len, size_t namelen, buf_t *out)
{
    size_t nl = namelen;
    while (nl > 0 && dkim_wsp(p[nl - 1]))
        nl--;
    int rc = 0;
    for (size_t i = 0; i < nl && rc == 0; i++) {
        char c = p[i];
        rc = buf_putc(out, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
    }
    if (rc == 0)
        rc = buf_putc(out, ':');
    /* Unfolding removes the line ends; every WSP run becomes one SP, and
     * none stays at either end of the value. */
    int started = 0, space = 0;
    for (size_t i = namelen + 1; i < len && rc == 0; i++) {
        char c = p[i];
        if (c == '\r' || c == '\n')
            continue;
        if (dkim_wsp(c)) {
            space = 1;
            continue;
        }
        if (space && started)
            rc = buf_putc(out, ' ');
        if (rc == 0)
            rc = buf_putc(out, c);
        started = 1;
        space = 0;
    }
    return rc;
}

int dkim_canon_header(const char *field, size_t len, buf_t *out)
{
    const char *colon = memchr(field, ':', len);
    if (!colon)
        return -1;
    size_t start = out->len;
    if (dkim_canon_field(field, len, (size_t)(colon - field), out) != 0) {
        buf_truncate(out, start);
        return -1;
    }
    return 0;
}

/* base64(SHA-256(relaxed body)) into b64[45]. */
static int dkim_hash_body(const char *body, size_t len, char b64[45])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    dkim_out_t o = {.md = ctx, .rc = ctx ? 0 : -1};
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        o.rc = -1;
    dkim_body(&o, body, len);
    if (o.rc == 0 && (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32))
        o.rc = -1;
    EVP_MD_CTX_free(ctx);
    if (o.rc == 0)
        EVP_EncodeBlock((unsigned char *)b64, md, 32);
    return o.rc;
}

int dkim_body_hash(const char *msg, size_t len, char b64[45])
{
    dkim_msg_t *m = malloc(sizeof *m);
    int rc = -1;
    if (m && dkim_parse(msg, len, m, NULL, 0) == 0)
        rc = dkim_hash_body(m->body, m->bodylen, b64);
    free(m);
    return rc;
}

/* The header hash input over parsed fields: each name of names in turn
 * takes the bottom-most field of that name not taken yet (RFC 6376 5.4.2);
 * a name with none left adds nothing. */
static int dkim_input(const dkim_msg_t *m, const char *names, const char *sig, size_t siglen,
                      buf_t *out)
{
    char used[DKIM_MAX_FIELDS] = {0};
    const char *p = names;
    int rc = 0;
    while (*p && rc == 0) {
        while (*p == ':' || dkim_wsp(*p) || *p == '\r' || *p == '\n')
            p++;
        const char *s = p;
        while (*p && *p != ':')
            p++;
        size_t n = (size_t)(p - s);
        while (n > 0 && (dkim_wsp(s[n - 1]) || s[n - 1] == '\r' || s[n - 1] == '\n'))
            n--;
        if (n == 0)
            continue;
        for (int i = m->n - 1; i >= 0; i--) {
            if (used[i] || !dkim_field_is(&m->f[i], s, n))
                continue;
            used[i] = 1;
            rc = dkim_canon_field(m->f[i].p, m->f[i].len, m->f[i].namelen, out);
            if (rc == 0)
                rc = buf_append(out, "\r\n", 2);
            break;
        }
    }
    const char *colon = memchr(sig, ':', siglen);
    if (rc == 0)
        rc = colon ? dkim_canon_field(sig, siglen, (size_t)(colon - sig), out) : -1;
    return rc;
}

int dkim_header_input(const char *msg, size_t len, const char *names, const char *sig,
                      size_t siglen, buf_t *out, char *err, size_t errlen)
{
    dkim_msg_t *m = malloc(sizeof *m);
    if (!m) {
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    size_t start = out->len;
    int rc = dkim_parse(msg, len, m, err, errlen);
    if (rc == 0 && (rc = dkim_input(m, names, sig, siglen, out)) != 0) {
        errmsg_set(err, errlen, "the header hash input does not fit");
        buf_truncate(out, start);
    }
    free(m);
    return rc;
}

/* ------------------------------------------------------------- signatures */

int dkim_sign_input(const dkim_signer_t *s, const char *input, size_t len, buf_t *b64)
{
    unsigned char digest[32];
    const unsigned char *data = (const unsigned char *)input;
    size_t datalen = len;
    const EVP_MD *md = EVP_sha256();
    if (s->alg == DKIM_ED25519_SHA256) {
        /* RFC 8463 3: PureEdDSA over the SHA-256 hash of the input. */
        unsigned int dl = 0;
        if (EVP_Digest(input, len, digest, &dl, EVP_sha256(), NULL) != 1 || dl != 32) {
            ERR_clear_error();
            return -1;
        }
        data = digest;
        datalen = sizeof digest;
        md = NULL;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t siglen = 0;
    int rc = -1;
    if (ctx && EVP_DigestSignInit(ctx, NULL, md, NULL, s->key) == 1 &&
        EVP_DigestSign(ctx, NULL, &siglen, data, datalen) == 1 && siglen > 0 &&
        (sig = malloc(siglen)) != NULL && EVP_DigestSign(ctx, sig, &siglen, data, datalen) == 1)
        rc = b64_encode(b64, sig, siglen, 0);
    if (rc != 0)
        ERR_clear_error();
    free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Builds a folded field: words go on the current line while it stays under
 * DKIM_LINE_MAX + 1 characters, else on a new line starting with one SP. */
typedef struct dkim_fold {
    buf_t *b;
    size_t col;
    int rc;
} dkim_fold_t;

static void dkim_fold_word(dkim_fold_t *f, const char *w, size_t n, int space)
{
    if (f->rc != 0)
        return;
    if (f->col + (space ? 1u : 0u) + n > DKIM_LINE_MAX && f->col > 1) {
        f->rc = buf_append(f->b, "\r\n ", 3);
        f->col = 1;
    } else if (space) {
        f->rc = buf_putc(f->b, ' ');
        f->col++;
    }
    if (f->rc == 0)
        f->rc = buf_append(f->b, w, n);
    f->col += n;
}

static void dkim_fold_tag(dkim_fold_t *f, const char *tag, const char *value)
{
    char w[320];
    int n = snprintf(w, sizeof w, "%s=%s;", tag, value);
    if (n < 0 || (size_t)n >= sizeof w)
        f->rc = -1;
    else
        dkim_fold_word(f, w, (size_t)n, 1);
}

/* The h= list for the fields of m: each name of DKIM_HEADERS as often as
 * it is present, then DKIM_OVERSIGNED. */
static int dkim_names(const dkim_msg_t *m, buf_t *names)
{
    const char *p = DKIM_HEADERS;
    int rc = 0;
    while (*p && rc == 0) {
        const char *s = p;
        while (*p && *p != ':')
            p++;
        size_t n = (size_t)(p - s);
        for (int i = 0; i < m->n && rc == 0; i++)
            if (dkim_field_is(&m->f[i], s, n))
                rc = buf_printf(names, "%.*s:", (int)n, s);
        if (*p == ':')
            p++;
    }
    return rc == 0 ? buf_puts(names, DKIM_OVERSIGNED) : -1;
}

int dkim_sign(const dkim_signer_t *s, const char *msg, size_t len, long long t, buf_t *out,
              char *err, size_t errlen)
{
    dkim_msg_t *m = malloc(sizeof *m);
    buf_t names, field, input;
    buf_init(&names, DKIM_NAMES_MAX);
    buf_init(&field, DKIM_SIG_FIELD_MAX);
    buf_init(&input, len + DKIM_SIG_FIELD_MAX);
    char bh[45];
    int rc = -1;
    if (!m) {
        errmsg_set(err, errlen, "out of memory");
        goto done;
    }
    if (dkim_parse(msg, len, m, err, errlen) != 0)
        goto done;
    if (dkim_hash_body(m->body, m->bodylen, bh) != 0) {
        errmsg_set(err, errlen, "cannot hash the body");
        goto done;
    }
    if (dkim_names(m, &names) != 0) {
        errmsg_set(err, errlen, "too many header fields to sign");
        goto done;
    }
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", t);
    dkim_fold_t f = {.b = &field};
    f.rc = buf_puts(&field, "DKIM-Signature:");
    f.col = field.len;
    dkim_fold_tag(&f, "v", "1");
    dkim_fold_tag(&f, "a", dkim_alg_name(s->alg));
    dkim_fold_tag(&f, "c", "relaxed/relaxed");
    dkim_fold_tag(&f, "d", s->domain);
    dkim_fold_tag(&f, "s", s->selector);
    dkim_fold_tag(&f, "t", ts);
    /* h= may fold after any colon: FWS is allowed around each name. */
    const char *p = names.data;
    int first = 1;
    while (*p) {
        const char *w = p;
        while (*p && *p != ':')
            p++;
        char word[80];
        int n = snprintf(word, sizeof word, "%s%.*s%c", first ? "h=" : "", (int)(p - w), w,
                         *p ? ':' : ';');
        if (n < 0 || (size_t)n >= sizeof word) {
            f.rc = -1;
            break;
        }
        dkim_fold_word(&f, word, (size_t)n, first);
        first = 0;
        if (*p)
            p++;
    }
    dkim_fold_tag(&f, "bh", bh);
    dkim_fold_word(&f, "b=", 2, 1);
    if (f.rc != 0) {
        errmsg_set(err, errlen, "the DKIM-Signature field does not fit");
        goto done;
    }
    /* What is signed ends at "b=": the value follows once known. */
    buf_t sig;
    buf_init(&sig, 4096);
    if (dkim_input(m, names.data, field.data, field.len, &input) != 0 ||
        dkim_sign_input(s, input.data, input.len, &sig) != 0) {
        buf_free(&sig);
        errmsg_set(err, errlen, "cannot sign the message");
        goto done;
    }
    /* b= is folded anywhere: a verifier drops every WSP inside it. */
    size_t off = 0;
    while (off < sig.len && f.rc == 0) {
        if (f.col >= DKIM_LINE_MAX) {
            f.rc = buf_append(&field, "\r\n ", 3);
            f.col = 1;
        }
        size_t room = DKIM_LINE_MAX - f.col;
        size_t n = sig.len - off < room ? sig.len - off : room;
        if (f.rc == 0)
            f.rc = buf_append(&field, sig.data + off, n);
        f.col += n;
        off += n;
    }
    buf_free(&sig);
    if (f.rc == 0)
        f.rc = buf_append(&field, "\r\n", 2);
    if (f.rc != 0 || buf_append(out, field.data, field.len) != 0) {
        errmsg_set(err, errlen, "the DKIM-Signature field does not fit");
        goto done;
    }
    rc = 0;
done:
    buf_free(&input);
    buf_free(&field);
    buf_free(&names);
    free(m);
    return rc;
}

/* ------------------------------------------------------------------- keys */

const char *dkim_alg_name(dkim_alg_t alg)
{
    return alg == DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

dkim_alg_t dkim_signer_alg(const dkim_signer_t *s)
{
    return s->alg;
}

int dkim_signer_bits(const dkim_signer_t *s)
{
    return s->bits;
}

const char *dkim_signer_selector(const dkim_signer_t *s)
{
    return s->selector;
}

const char *dkim_signer_domain(const dkim_signer_t *s)
{
    return s->domain;
}

/* A DNS name of letters, digits, hyphens and underscores in dot-separated
 * labels of 1 to 63: nothing that could end a tag (';') or a line. */
static int dkim_dns_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

/* Never prompts for a passphrase: a key crier runs with must be readable
 * unattended, and a prompt would hang serve on a terminal. */
static int dkim_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* Reads the whole key file into memory the caller cleanses and frees. */
static char *dkim_read_key_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        errmsg_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errmsg_set(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size <= 0 || st.st_size > DKIM_KEY_FILE_MAX) {
        errmsg_set(err, errlen, "%s: %s", path,
                   st.st_size <= 0 ? "empty" : "too large to be a private key");
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *data = malloc(size + 1);
    while (data && got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!data || got == 0) {
        /* chosen before the free: a freed pointer's value is not to be read */
        const char *why = data ? "read error" : "out of memory";
        if (data) {
            OPENSSL_cleanse(data, size);
            free(data);
        }
        errmsg_set(err, errlen, "%s: %s", path, why);
        return NULL;
    }
    data[got] = '\0';
    *len = got;
    return data;
}

int dkim_names_check(const char *selector, const char *domain, char *err, size_t errlen)
{
    if (!dkim_dns_name_ok(selector, 63)) {
        errmsg_set(err, errlen,
                   "the selector must be letters, digits, '-' and '_' in labels separated by "
                   "dots");
        return -1;
    }
    if (!dkim_dns_name_ok(domain, 253)) {
        errmsg_set(err, errlen,
                   "the signing domain must be a DNS name (letters, digits, '-', dots; "
                   "A-labels for an internationalised name)");
        return -1;
    }
    return 0;
}

dkim_signer_t *dkim_signer_load(const char *path, const char *selector, const char *domain,
                                char *err, size_t errlen)
{
    if (dkim_names_check(selector, domain, err, errlen) != 0)
        return NULL;
    size_t len = 0;
    char *text = dkim_read_key_file(path, &len, err, errlen);
    if (!text)
        return NULL;
    EVP_PKEY *key = NULL;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    if (bio)
        key = PEM_read_bio_PrivateKey(bio, NULL, dkim_no_passphrase, NULL);
    BIO_free(bio);
    int encrypted = strstr(text, "ENCRYPTED") != NULL;
    OPENSSL_cleanse(text, len);
    free(text);
    ERR_clear_error();
    if (!key) {
        errmsg_set(err, errlen, "%s: %s", path,
                   encrypted ? "the private key is encrypted; crier needs it unencrypted "
                               "(keep the file mode 0600)"
                             : "not a PEM private key");
        return NULL;
    }
    dkim_signer_t *s = calloc(1, sizeof *s);
    int id = EVP_PKEY_get_base_id(key);
    if (!s) {
        errmsg_set(err, errlen, "out of memory");
        goto fail;
    }
    s->bits = EVP_PKEY_get_bits(key);
    if (id == EVP_PKEY_RSA) {
        s->alg = DKIM_RSA_SHA256;
        if (s->bits < DKIM_RSA_MIN_BITS) {
            errmsg_set(err, errlen,
                       "%s: the RSA key has %d bits; DKIM needs at least %d (2048 advised)", path,
                       s->bits, DKIM_RSA_MIN_BITS);
            goto fail;
        }
    } else if (id == EVP_PKEY_ED25519) {
        s->alg = DKIM_ED25519_SHA256;
    } else {
        const char *type = OBJ_nid2sn(id);
        errmsg_set(err, errlen, "%s: a %s key; DKIM signs with RSA or Ed25519 keys only", path,
                   type ? type : "unknown");
        goto fail;
    }
    s->key = key;
    snprintf(s->selector, sizeof s->selector, "%s", selector);
    snprintf(s->domain, sizeof s->domain, "%s", domain);
    return s;
fail:
    free(s);
    EVP_PKEY_free(key);
    return NULL;
}

void dkim_signer_free(dkim_signer_t *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    free(s);
}

int dkim_record(const dkim_signer_t *s, buf_t *out)
{
    size_t start = out->len;
    int rc = -1;
    if (s->alg == DKIM_ED25519_SHA256) {
        unsigned char raw[32];
        size_t n = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(s->key, raw, &n) == 1 && n == sizeof raw)
            rc = buf_puts(out, "v=DKIM1; k=ed25519; p=") == 0 && b64_encode(out, raw, n, 0) == 0
                     ? 0
                     : -1;
    } else {
        /* SubjectPublicKeyInfo, as RFC 6376 Appendix C and RFC 8463 A.2 publish. */
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(s->key, &der);
        if (n > 0)
            rc = buf_puts(out, "v=DKIM1; k=rsa; p=") == 0 && b64_encode(out, der, (size_t)n, 0) == 0
                     ? 0
                     : -1;
        OPENSSL_free(der);
    }
    if (rc != 0) {
        ERR_clear_error();
        buf_truncate(out, start);
    }
    return rc;
}

/* Writes all of data to fd. */
static int dkim_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int dkim_keygen(dkim_alg_t alg, int bits, const char *path, char *err, size_t errlen)
{
    if (alg == DKIM_RSA_SHA256 && (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS)) {
        errmsg_set(err, errlen, "RSA keys have %d to %d bits", DKIM_RSA_MIN_BITS,
                   DKIM_RSA_MAX_BITS);
        return -1;
    }
    EVP_PKEY *key = alg == DKIM_RSA_SHA256 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)
                                           : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!key) {
        ERR_clear_error();
        errmsg_set(err, errlen, "cannot generate the key");
        return -1;
    }
    /* Secure memory is cleansed when freed, so the PEM leaves no copy. */
    BIO *bio = BIO_new(BIO_s_secmem());
    char *pem = NULL;
    long pemlen = 0;
    if (!bio || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
        ERR_clear_error();
        BIO_free(bio);
        EVP_PKEY_free(key);
        errmsg_set(err, errlen, "cannot write the key as PEM");
        return -1;
    }
    EVP_PKEY_free(key);
    /* O_EXCL: never over an existing file, and never through a symlink. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        errmsg_set(err, errlen, "%s: %s", path,
                   errno == EEXIST ? "already exists (a key is never overwritten)"
                                   : strerror(errno));
        BIO_free(bio);
        return -1;
    }
    int rc = fchmod(fd, 0600) == 0 && dkim_write_all(fd, pem, (size_t)pemlen) == 0 && fsync(fd) == 0
                 ? 0
                 : -1;
    int saved = errno;
    if (close(fd) != 0)
        rc = -1;
    BIO_free(bio);
    if (rc != 0) {
        unlink(path);
        errmsg_set(err, errlen, "%s: cannot write: %s", path, strerror(saved));
    }
    return rc;
}
