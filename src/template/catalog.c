/* catalog: the templates directory read into memory once, checked, and
 * rendered from memory. Partial and parent names are looked up in the
 * in-memory table only, so a template can never reach a file outside the
 * catalogue whatever name it asks for. */
#include "template/catalog.h"

#include "template/mustache.h"
#include "util/buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAT_MAX_FILE    (256 * 1024)  /* bytes per template file */
#define CAT_MAX_FILES   256           /* files in the catalogue */
#define CAT_MAX_OUTPUT  (1024 * 1024) /* rendered bytes per part */
#define CAT_HTML_NEST   128           /* element nesting the checker follows */
#define CAT_VERSION_LEN 16

const char *const tpl_email_types[7] = {
    "welcome",
    "budget_summary",
    "vendor_options",
    "selection_confirmation",
    "blueprint_delivery",
    "error_notification",
    "reminder",
};

/* Types the engine composes itself, never requested by the workflow: the
 * digest of batched LOW messages. Required and renderable like the seven. */
static const char *const cat_engine_types[] = {"digest"};
#define CAT_N_ENGINE_TYPES (sizeof cat_engine_types / sizeof cat_engine_types[0])

/* The name of email type t: the seven seed types, then the engine's. */
static const char *cat_type(size_t t)
{
    return t < 7 ? tpl_email_types[t] : cat_engine_types[t - 7];
}

typedef struct cat_file {
    char *name; /* owned; relative to email/, e.g. "welcome.html", "partials/x.mustache" */
    char *text; /* owned; NUL-terminated, no embedded NUL */
} cat_file_t;

struct tpl_catalog {
    cat_file_t files[CAT_MAX_FILES];
    size_t n;
    char version[CAT_VERSION_LEN + 1];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *cat_find(const tpl_catalog_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->files[i].name, name) == 0)
            return c->files[i].text;
    return NULL;
}

/* Reads one regular file of at most CAT_MAX_FILE bytes. */
static int read_small_file(const char *path, char **out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    buf_t b;
    buf_init(&b, CAT_MAX_FILE);
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            close(fd);
            if (b.len != strlen(b.data ? b.data : "")) {
                set_err(err, errlen, "%s: contains a NUL byte", path);
                buf_free(&b);
                return -1;
            }
            *out = buf_detach(&b);
            return *out ? 0 : -1;
        }
        if (buf_append(&b, chunk, (size_t)n) != 0) {
            set_err(err, errlen, "%s: larger than %d bytes", path, CAT_MAX_FILE);
            break;
        }
    }
    close(fd);
    buf_free(&b);
    return -1;
}

static int cat_add(tpl_catalog_t *c, const char *dir, const char *prefix, const char *file,
                   char *err, size_t errlen)
{
    if (c->n == CAT_MAX_FILES) {
        set_err(err, errlen, "more than %d template files", CAT_MAX_FILES);
        return -1;
    }
    char path[4096], name[512];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path ||
        (size_t)snprintf(name, sizeof name, "%s%s", prefix, file) >= sizeof name) {
        set_err(err, errlen, "%s/%s: path too long", dir, file);
        return -1;
    }
    char *text = NULL;
    if (read_small_file(path, &text, err, errlen) != 0)
        return -1;
    c->files[c->n].name = strdup(name);
    c->files[c->n].text = text;
    if (!c->files[c->n].name) {
        free(text);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    c->n++;
    return 0;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Adds every non-hidden regular file of dir whose name ends with one of
 * the suffixes (a NULL-terminated list). */
static int cat_scan(tpl_catalog_t *c, const char *dir, const char *prefix,
                    const char *const *suffixes, int required, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (!required && errno == ENOENT)
            return 0;
        set_err(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int match = 0;
        for (const char *const *s = suffixes; *s; s++)
            match |= has_suffix(e->d_name, *s);
        if (match)
            rc = cat_add(c, dir, prefix, e->d_name, err, errlen);
    }
    closedir(d);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cat_file_t *)a)->name, ((const cat_file_t *)b)->name);
}

/* ------------------------------------------------------ HTML well-formedness */

static int is_void_element(const char *name, size_t n)
{
    static const char *const voids[] = {"area",  "base", "br",   "col",    "embed", "hr", "img",
                                        "input", "link", "meta", "source", "track", "wbr"};
    for (size_t i = 0; i < sizeof voids / sizeof voids[0]; i++)
        if (strlen(voids[i]) == n && strncasecmp(voids[i], name, n) == 0)
            return 1;
    return 0;
}

static const char *find_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

static int line_at(const char *s, const char *p)
{
    int line = 1;
    for (; s < p; s++)
        line += *s == '\n';
    return line;
}

/* Checks that every element of an HTML template is closed, in order.
 * Mustache tags are blanked first (newlines kept, so lines still match);
 * a template whose sections wrap whole elements then checks as its output
 * would. */
static int html_check(const char *name, const char *src, char *err, size_t errlen)
{
    char *s = strdup(src);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (char *o = strstr(s, "{{"); o; o = strstr(o, "{{")) {
        char *e = strstr(o + 2, "}}");
        if (!e)
            break; /* the Mustache check reports this */
        e += 2;
        while (e < s + strlen(s) && *e == '}')
            e++;
        for (char *q = o; q < e; q++)
            if (*q != '\n')
                *q = ' ';
        o = e;
    }

    struct {
        const char *name;
        size_t len;
        int line;
    } stack[CAT_HTML_NEST];
    int depth = 0, rc = 0;
    const char *p = s;
    while (rc == 0 && (p = strchr(p, '<')) != NULL) {
        if (strncmp(p, "<!--", 4) == 0) {
            const char *e = strstr(p + 4, "-->");
            if (!e) {
                set_err(err, errlen, "%s: line %d: unterminated comment", name, line_at(s, p));
                rc = -1;
                break;
            }
            p = e + 3;
            continue;
        }
        int closing = p[1] == '/';
        const char *nm = p + (closing ? 2 : 1);
        size_t nlen = 0;
        while ((nm[nlen] >= 'a' && nm[nlen] <= 'z') || (nm[nlen] >= 'A' && nm[nlen] <= 'Z') ||
               (nm[nlen] >= '0' && nm[nlen] <= '9'))
            nlen++;
        /* find the end of the tag, skipping quoted attribute values */
        const char *e = p + 1;
        char quote = 0;
        while (*e && (quote || *e != '>')) {
            if (quote && *e == quote)
                quote = 0;
            else if (!quote && (*e == '"' || *e == '\''))
                quote = *e;
            e++;
        }
        if (!*e) {
            set_err(err, errlen, "%s: line %d: unterminated tag", name, line_at(s, p));
            rc = -1;
            break;
        }
        if (p[1] == '!' || p[1] == '?' || nlen == 0) {
            if (p[1] != '!' && p[1] != '?') {
                set_err(err, errlen, "%s: line %d: stray '<' (write &lt;)", name, line_at(s, p));
                rc = -1;
            }
            p = e + 1;
            continue;
        }
        int self_closed = e[-1] == '/';
        if (closing) {
            if (depth == 0 || stack[depth - 1].len != nlen ||
                strncasecmp(stack[depth - 1].name, nm, nlen) != 0) {
                if (depth == 0)
                    set_err(err, errlen, "%s: line %d: </%.*s> closes nothing", name, line_at(s, p),
                            (int)nlen, nm);
                else
                    set_err(err, errlen, "%s: line %d: </%.*s> but <%.*s> from line %d is open",
                            name, line_at(s, p), (int)nlen, nm, (int)stack[depth - 1].len,
                            stack[depth - 1].name, stack[depth - 1].line);
                rc = -1;
                break;
            }
            depth--;
        } else if (!self_closed && !is_void_element(nm, nlen)) {
            if (depth == CAT_HTML_NEST) {
                set_err(err, errlen, "%s: line %d: elements nested deeper than %d", name,
                        line_at(s, p), CAT_HTML_NEST);
                rc = -1;
                break;
            }
            stack[depth].name = nm;
            stack[depth].len = nlen;
            stack[depth].line = line_at(s, p);
            depth++;
            /* raw-text elements: their content is not markup */
            if ((nlen == 5 && strncasecmp(nm, "style", 5) == 0) ||
                (nlen == 6 && strncasecmp(nm, "script", 6) == 0)) {
                char closer[10];
                snprintf(closer, sizeof closer, "</%.*s", (int)nlen, nm);
                const char *c = find_nocase(e, closer);
                if (!c) {
                    set_err(err, errlen, "%s: line %d: <%.*s> never closed", name,
                            stack[depth - 1].line, (int)nlen, nm);
                    rc = -1;
                    break;
                }
                p = c;
                continue;
            }
        }
        p = e + 1;
    }
    if (rc == 0 && depth > 0) {
        set_err(err, errlen, "%s: line %d: <%.*s> never closed", name, stack[depth - 1].line,
                (int)stack[depth - 1].len, stack[depth - 1].name);
        rc = -1;
    }
    free(s);
    return rc;
}

/* ---------------------------------------------------------------- load */

static int cat_hash(tpl_catalog_t *c)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return -1;
    int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < c->n; i++) {
        /* name and text with terminators, so boundaries cannot shift */
        ok = EVP_DigestUpdate(md, c->files[i].name, strlen(c->files[i].name) + 1) == 1 &&
             EVP_DigestUpdate(md, c->files[i].text, strlen(c->files[i].text) + 1) == 1;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    ok = ok && EVP_DigestFinal_ex(md, d, &dlen) == 1 && dlen * 2 >= CAT_VERSION_LEN;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    for (int i = 0; i < CAT_VERSION_LEN / 2; i++)
        snprintf(c->version + 2 * i, 3, "%02x", d[i]);
    return 0;
}

tpl_catalog_t *tpl_catalog_load(const char *dir, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!dir || !*dir) {
        set_err(err, errlen, "no templates directory configured");
        return NULL;
    }
    tpl_catalog_t *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    char email[4096], partials[4096];
    snprintf(email, sizeof email, "%s/email", dir);
    snprintf(partials, sizeof partials, "%s/email/partials", dir);
    static const char *const email_suffixes[] = {".html", ".txt", ".subject", NULL};
    static const char *const partial_suffixes[] = {".mustache", NULL};
    if (cat_scan(c, email, "", email_suffixes, 1, err, errlen) != 0 ||
        cat_scan(c, partials, "partials/", partial_suffixes, 0, err, errlen) != 0)
        goto fail;
    qsort(c->files, c->n, sizeof c->files[0], by_name);

    for (size_t i = 0; i < c->n; i++) {
        char e[256];
        if (mst_check(c->files[i].text, e, sizeof e) != 0) {
            set_err(err, errlen, "email/%s: %s", c->files[i].name, e);
            goto fail;
        }
        if (has_suffix(c->files[i].name, ".html")) {
            char label[600];
            snprintf(label, sizeof label, "email/%s", c->files[i].name);
            if (html_check(label, c->files[i].text, err, errlen) != 0)
                goto fail;
        }
    }
    /* every message type the engine may send must be renderable */
    static const char *const parts[] = {".subject", ".txt", ".html"};
    for (size_t t = 0; t < 7 + CAT_N_ENGINE_TYPES; t++) {
        for (size_t k = 0; k < 3; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s%s", cat_type(t), parts[k]);
            if (!cat_find(c, name)) {
                set_err(err, errlen, "email/%s: missing", name);
                goto fail;
            }
        }
    }
    if (cat_hash(c) != 0) {
        set_err(err, errlen, "cannot hash the catalogue");
        goto fail;
    }
    return c;
fail:
    tpl_catalog_free(c);
    return NULL;
}

void tpl_catalog_free(tpl_catalog_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->files[i].name);
        free(c->files[i].text);
    }
    free(c);
}

const char *tpl_catalog_version(const tpl_catalog_t *c)
{
    return c ? c->version : "";
}

/* -------------------------------------------------------------- render */

/* Partials and parents: "layout.html" style names as they are, otherwise
 * "partials/<name>.mustache". Only the in-memory table is consulted. */
static int cat_partial(void *ud, const char *name, char **src)
{
    const tpl_catalog_t *c = ud;
    if (!name[0] || name[0] == '/' || strstr(name, ".."))
        return 1;
    const char *text = cat_find(c, name);
    if (!text && !strchr(name, '/')) {
        char alt[300];
        if ((size_t)snprintf(alt, sizeof alt, "partials/%s.mustache", name) < sizeof alt)
            text = cat_find(c, alt);
    }
    if (!text)
        return 1;
    *src = strdup(text);
    return *src ? 0 : -1;
}

static char *render_part(const tpl_catalog_t *c, const char *type, const char *ext,
                         const cJSON *ctx, char *err, size_t errlen)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s", type, ext);
    const char *src = cat_find(c, name);
    if (!src) {
        set_err(err, errlen, "email/%s: missing", name);
        return NULL;
    }
    mst_options_t opt = {.partials = cat_partial,
                         .partials_ud = (void *)c,
                         .strict = 1,
                         .max_output = CAT_MAX_OUTPUT};
    buf_t b;
    buf_init(&b, CAT_MAX_OUTPUT + 1);
    char e[256];
    if (mst_render(src, ctx, &opt, &b, e, sizeof e) != 0) {
        set_err(err, errlen, "email/%s: %s", name, e);
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* A header line must stay one line: CR and LF become spaces, and the
 * ends are trimmed. */
static void one_line(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\r' || *p == '\n' || *p == '\t')
            *p = ' ';
    char *b = s;
    while (*b == ' ')
        b++;
    size_t n = strlen(b);
    while (n && b[n - 1] == ' ')
        n--;
    memmove(s, b, n);
    s[n] = '\0';
}

int tpl_render_email(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                     tpl_email_t *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!c || !message_type) {
        set_err(err, errlen, "no catalogue or message type");
        return -1;
    }
    int known = 0;
    for (size_t t = 0; t < 7 + CAT_N_ENGINE_TYPES; t++)
        known |= strcmp(message_type, cat_type(t)) == 0;
    if (!known) {
        set_err(err, errlen, "unknown email message type '%.64s'", message_type);
        return -1;
    }
    out->subject = render_part(c, message_type, ".subject", ctx, err, errlen);
    if (out->subject)
        out->text = render_part(c, message_type, ".txt", ctx, err, errlen);
    if (out->text)
        out->html = render_part(c, message_type, ".html", ctx, err, errlen);
    if (!out->html) {
        tpl_email_free(out);
        return -1;
    }
    one_line(out->subject);
    if (!out->subject[0]) {
        set_err(err, errlen, "email/%s.subject: renders empty", message_type);
        tpl_email_free(out);
        return -1;
    }
    return 0;
}

void tpl_email_free(tpl_email_t *e)
{
    if (!e)
        return;
    free(e->subject);
    free(e->text);
    free(e->html);
    e->subject = e->text = e->html = NULL;
}
