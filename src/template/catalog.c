/* catalog: the templates directory read into memory once, checked, and
 * rendered from memory. Partial and parent names are looked up in the
 * in-memory table only, so a template can never reach a file outside the
 * catalogue whatever name it asks for. */
#include "template/catalog.h"
#include "channel/ch.h"

#include "template/mustache.h"
#include "util/buf.h"
#include "util/errmsg.h"
#include "util/file.h"
#include "util/json_text.h"
#include "validate.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CAT_MAX_FILE      (256 * 1024)  /* bytes per template file */
#define CAT_MAX_FILES     256           /* files in the catalogue */
#define CAT_MAX_OUTPUT    (1024 * 1024) /* rendered bytes per part */
#define CAT_HTML_NEST     128           /* element nesting the checker follows */
#define CAT_VERSION_LEN   16
#define CAT_WA_MAX_PARAMS 16  /* body parameters of one WhatsApp template */
#define CAT_WA_MAX_QUICK  10  /* quick-reply buttons Meta lets a template have */
#define CAT_WA_MAX_NAME   512 /* Meta's limit on a template name */

/* The name of email type t: the seed types, then the engine's own. */
static const char *cat_type(size_t t)
{
    return val_message_types[t];
}

typedef struct cat_file {
    /* owned; relative to email/, e.g. "welcome.html", "partials/x.mustache",
     * or, for short messages, "sms/welcome.txt", "whatsapp/welcome.json" */
    char *name;
    char *text; /* owned; NUL-terminated, no embedded NUL */
} cat_file_t;

/* One template: what renders one message type on one channel, with the
 * files it is made of (its own and every partial or parent they reach). */
typedef struct cat_entry {
    const char *type;                 /* borrowed: val_message_types */
    const char *channel;              /* borrowed: a CH_NAME_* */
    unsigned char dep[CAT_MAX_FILES]; /* 1 for each file of files[] it uses */
    char version[CAT_VERSION_LEN + 1];
} cat_entry_t;

#define CAT_MAX_ENTRIES (VAL_MESSAGE_TYPES + 2 * VAL_SHORT_TYPES)

struct tpl_catalog {
    cat_file_t files[CAT_MAX_FILES];
    size_t n;
    char version[CAT_VERSION_LEN + 1];
    cat_entry_t entries[CAT_MAX_ENTRIES];
    size_t n_entries;
    /* holders: the loader's reference plus one per tpl_catalog_acquire, so
     * a catalogue replaced while a worker renders from it lives until that
     * worker lets go */
    atomic_int refs;
};

static const char *cat_find(const tpl_catalog_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->files[i].name, name) == 0)
            return c->files[i].text;
    return NULL;
}

/* Reads the template rel (relative to the catalogue's root dir, e.g.
 * "email/welcome.html"): a regular file of at most CAT_MAX_FILE bytes
 * without NUL bytes. A symlink is followed only to a file inside the
 * catalogue (file_append_in_dir), so a ConfigMap volume loads and a link to
 * a system file is refused unread. */
static int cat_read(const char *root, const char *rel, char **out, char *err, size_t errlen)
{
    buf_t b;
    buf_init(&b, CAT_MAX_FILE);
    if (file_append_in_dir(root, rel, rel, &b, err, errlen) != 0) {
        buf_free(&b);
        return -1;
    }
    if (b.len != strlen(b.data ? b.data : "")) {
        errmsg_set(err, errlen, "%s: contains a NUL byte", rel);
        buf_free(&b);
        return -1;
    }
    *out = buf_detach(&b);
    if (!*out) {
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Adds root/sub/file to the catalogue as prefix + file. */
static int cat_add(tpl_catalog_t *c, const char *root, const char *sub, const char *prefix,
                   const char *file, char *err, size_t errlen)
{
    if (c->n == CAT_MAX_FILES) {
        errmsg_set(err, errlen, "more than %d template files", CAT_MAX_FILES);
        return -1;
    }
    char rel[600], name[512];
    if ((size_t)snprintf(rel, sizeof rel, "%s/%s", sub, file) >= sizeof rel ||
        (size_t)snprintf(name, sizeof name, "%s%s", prefix, file) >= sizeof name) {
        errmsg_set(err, errlen, "%s/%s: path too long", sub, file);
        return -1;
    }
    char *text = NULL;
    if (cat_read(root, rel, &text, err, errlen) != 0)
        return -1;
    c->files[c->n].name = strdup(name);
    c->files[c->n].text = text;
    if (!c->files[c->n].name) {
        free(text);
        errmsg_set(err, errlen, "out of memory");
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

/* Adds every non-hidden file of root/sub whose name ends with one of the
 * suffixes (a NULL-terminated list); anything but a regular file of that
 * name is an error, not skipped, so a misplaced FIFO or link is noticed. */
static int cat_scan(tpl_catalog_t *c, const char *root, const char *sub, const char *prefix,
                    const char *const *suffixes, int required, char *err, size_t errlen)
{
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", root, sub) >= sizeof dir) {
        errmsg_set(err, errlen, "%s: path too long", sub);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (!required && errno == ENOENT)
            return 0;
        errmsg_set(err, errlen, "%s: %s", dir, strerror(errno));
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
            rc = cat_add(c, root, sub, prefix, e->d_name, err, errlen);
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
        errmsg_set(err, errlen, "out of memory");
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
                errmsg_set(err, errlen, "%s: line %d: unterminated comment", name, line_at(s, p));
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
            errmsg_set(err, errlen, "%s: line %d: unterminated tag", name, line_at(s, p));
            rc = -1;
            break;
        }
        if (p[1] == '!' || p[1] == '?' || nlen == 0) {
            if (p[1] != '!' && p[1] != '?') {
                errmsg_set(err, errlen, "%s: line %d: stray '<' (write &lt;)", name, line_at(s, p));
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
                    errmsg_set(err, errlen, "%s: line %d: </%.*s> closes nothing", name,
                               line_at(s, p), (int)nlen, nm);
                else
                    errmsg_set(err, errlen, "%s: line %d: </%.*s> but <%.*s> from line %d is open",
                               name, line_at(s, p), (int)nlen, nm, (int)stack[depth - 1].len,
                               stack[depth - 1].name, stack[depth - 1].line);
                rc = -1;
                break;
            }
            depth--;
        } else if (!self_closed && !is_void_element(nm, nlen)) {
            if (depth == CAT_HTML_NEST) {
                errmsg_set(err, errlen, "%s: line %d: elements nested deeper than %d", name,
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
                    errmsg_set(err, errlen, "%s: line %d: <%.*s> never closed", name,
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
        errmsg_set(err, errlen, "%s: line %d: <%.*s> never closed", name, stack[depth - 1].line,
                   (int)stack[depth - 1].len, stack[depth - 1].name);
        rc = -1;
    }
    free(s);
    return rc;
}

/* ------------------------------------------------------ short messages */

static int cat_is_short(const char *name)
{
    return strncmp(name, "sms/", 4) == 0 || strncmp(name, "whatsapp/", 9) == 0;
}

static int cat_is_wa_json(const char *name)
{
    return strncmp(name, "whatsapp/", 9) == 0 && has_suffix(name, ".json");
}

static int wa_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CAT_WA_MAX_NAME)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* ll or lll, optionally _CC: "en", "en_US", "pt_BR", "fil". */
static int wa_language_ok(const char *s)
{
    size_t n = 0;
    while (s[n] >= 'a' && s[n] <= 'z')
        n++;
    if (n < 2 || n > 3)
        return 0;
    if (s[n] == '\0')
        return 1;
    return s[n] == '_' && s[n + 1] >= 'A' && s[n + 1] <= 'Z' && s[n + 2] >= 'A' &&
           s[n + 2] <= 'Z' && s[n + 3] == '\0';
}

/* The approved body must use exactly the placeholders {{1}}..{{n}} that the
 * parameters fill, so a parameter can neither go unused nor be missing. */
static int wa_placeholders_ok(const char *label, const char *body, size_t n, char *err,
                              size_t errlen)
{
    int seen[CAT_WA_MAX_PARAMS + 1] = {0};
    for (const char *p = strstr(body, "{{"); p; p = strstr(p + 2, "{{")) {
        const char *q = p + 2;
        unsigned long v = 0;
        while (*q >= '0' && *q <= '9' && v <= CAT_WA_MAX_PARAMS)
            v = v * 10 + (unsigned long)(*q++ - '0');
        if (q == p + 2 || strncmp(q, "}}", 2) != 0)
            continue; /* not a placeholder: plain text for Meta */
        if (v == 0 || v > n) {
            errmsg_set(err, errlen, "%s: approved_body uses {{%lu}} but there are %zu parameters",
                       label, v, n);
            return -1;
        }
        seen[v] = 1;
    }
    for (size_t k = 1; k <= n; k++) {
        if (!seen[k]) {
            errmsg_set(err, errlen, "%s: parameter %zu is not used by approved_body ({{%zu}})",
                       label, k, k);
            return -1;
        }
    }
    return 0;
}

static int wa_json_check(const char *label, const char *text, char *err, size_t errlen)
{
    cJSON *doc = cJSON_Parse(text);
    if (!cJSON_IsObject(doc)) {
        errmsg_set(err, errlen, "%s: not a JSON object", label);
        cJSON_Delete(doc);
        return -1;
    }
    int rc = -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
    const cJSON *lang = cJSON_GetObjectItemCaseSensitive(doc, "language");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(doc, "approved_body");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "parameters");
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        if (strcmp(it->string, "name") != 0 && strcmp(it->string, "language") != 0 &&
            strcmp(it->string, "approved_body") != 0 && strcmp(it->string, "parameters") != 0 &&
            strcmp(it->string, "quick_replies") != 0) {
            errmsg_set(err, errlen, "%s: unknown key \"%.64s\"", label, it->string);
            goto out;
        }
    }
    if (!cJSON_IsString(name) || !wa_name_ok(name->valuestring)) {
        errmsg_set(err, errlen, "%s: \"name\" must be the approved template name ([a-z0-9_]+)",
                   label);
        goto out;
    }
    if (!cJSON_IsString(lang) || !wa_language_ok(lang->valuestring)) {
        errmsg_set(err, errlen, "%s: \"language\" must be a code like \"en\" or \"en_US\"", label);
        goto out;
    }
    if (!cJSON_IsArray(params) || cJSON_GetArraySize(params) > CAT_WA_MAX_PARAMS) {
        errmsg_set(err, errlen, "%s: \"parameters\" must be a list of at most %d expressions",
                   label, CAT_WA_MAX_PARAMS);
        goto out;
    }
    size_t k = 0;
    cJSON_ArrayForEach(it, params)
    {
        char e[256];
        k++;
        if (!cJSON_IsString(it)) {
            errmsg_set(err, errlen, "%s: parameter %zu is not a string", label, k);
            goto out;
        }
        if (mst_check(it->valuestring, e, sizeof e) != 0) {
            errmsg_set(err, errlen, "%s: parameter %zu: %s", label, k, e);
            goto out;
        }
    }
    /* the approved quick-reply buttons' texts, in order: each tap sends the
     * payload crier gives it (an action's token, see driver/whatsapp.c) */
    const cJSON *quick = cJSON_GetObjectItemCaseSensitive(doc, "quick_replies");
    int nq = 0;
    cJSON_ArrayForEach(it, quick)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 80)
            nq = -1;
        else if (nq >= 0)
            nq++;
    }
    if (quick && (!cJSON_IsArray(quick) || nq < 0 || nq > CAT_WA_MAX_QUICK)) {
        errmsg_set(err, errlen, "%s: \"quick_replies\" must be a list of at most %d button texts",
                   label, CAT_WA_MAX_QUICK);
        goto out;
    }
    if (body && (!cJSON_IsString(body) ||
                 wa_placeholders_ok(label, body->valuestring, k, err, errlen) != 0)) {
        if (!cJSON_IsString(body))
            errmsg_set(err, errlen, "%s: \"approved_body\" must be a string", label);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(doc);
    return rc;
}

/* SMS and WhatsApp text bodies are Mustache; WhatsApp .json files describe
 * an approved template. */
static int short_check(const cat_file_t *f, char *err, size_t errlen)
{
    if (cat_is_wa_json(f->name))
        return wa_json_check(f->name, f->text, err, errlen);
    char e[256];
    if (mst_check(f->text, e, sizeof e) != 0) {
        errmsg_set(err, errlen, "%s: %s", f->name, e);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- load */

static int cat_index(const tpl_catalog_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->files[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Resolves a partial or parent name as cat_partial does; -1 when none. */
static int cat_resolve(const tpl_catalog_t *c, const char *name)
{
    if (!name[0] || name[0] == '/' || strstr(name, ".."))
        return -1;
    int i = cat_index(c, name);
    if (i < 0 && !strchr(name, '/')) {
        char alt[300];
        if ((size_t)snprintf(alt, sizeof alt, "partials/%s.mustache", name) < sizeof alt)
            i = cat_index(c, alt);
    }
    return i;
}

typedef struct cat_refs {
    const tpl_catalog_t *c;
    cat_entry_t *e;
} cat_refs_t;

static int cat_mark_ref(void *ud, const char *name, size_t len)
{
    cat_refs_t *r = ud;
    char n[300];
    if (len >= sizeof n)
        return 0; /* longer than any file name: the render reports it */
    memcpy(n, name, len);
    n[len] = '\0';
    int i = cat_resolve(r->c, n);
    if (i >= 0 && !r->e->dep[i])
        r->e->dep[i] = 2; /* reached, not yet read */
    return 0;
}

/* Marks in e every file the file i refers to. A WhatsApp approved template
 * is JSON whose parameters are the Mustache. */
static void cat_scan_refs(const tpl_catalog_t *c, cat_entry_t *e, size_t i)
{
    cat_refs_t r = {c, e};
    char err[256];
    if (!cat_is_wa_json(c->files[i].name)) {
        (void)mst_references(c->files[i].text, cat_mark_ref, &r, err, sizeof err);
        return;
    }
    cJSON *doc = cJSON_Parse(c->files[i].text);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, "parameters"))
    {
        if (cJSON_IsString(it))
            (void)mst_references(it->valuestring, cat_mark_ref, &r, err, sizeof err);
    }
    cJSON_Delete(doc);
}

/* Hashes the files marked in dep (all of them when dep is NULL) into a
 * version of CAT_VERSION_LEN hex digits. */
static int cat_hash_files(const tpl_catalog_t *c, const unsigned char *dep, char *version)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return -1;
    int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < c->n; i++) {
        if (dep && !dep[i])
            continue;
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
        snprintf(version + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* Adds the template of type on channel, made of the given root files (all
 * present: the load checked) and everything they reach. */
static int cat_entry_add(tpl_catalog_t *c, const char *type, const char *channel,
                         const char *const *roots, size_t n_roots)
{
    cat_entry_t *e = &c->entries[c->n_entries];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->channel = channel;
    for (size_t k = 0; k < n_roots; k++) {
        int i = cat_index(c, roots[k]);
        if (i < 0)
            return -1;
        e->dep[i] = 2;
    }
    /* each pass reads the files reached by the last; at most one per file */
    for (int more = 1; more;) {
        more = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (e->dep[i] != 2)
                continue;
            e->dep[i] = 1;
            cat_scan_refs(c, e, i);
            more = 1;
        }
    }
    if (cat_hash_files(c, e->dep, e->version) != 0)
        return -1;
    c->n_entries++;
    return 0;
}

static int cat_entries(tpl_catalog_t *c)
{
    for (size_t t = 0; t < VAL_MESSAGE_TYPES; t++) {
        char subject[128], text[128], html[128];
        snprintf(subject, sizeof subject, "%s.subject", cat_type(t));
        snprintf(text, sizeof text, "%s.txt", cat_type(t));
        snprintf(html, sizeof html, "%s.html", cat_type(t));
        const char *roots[] = {subject, text, html};
        if (cat_entry_add(c, cat_type(t), CH_NAME_EMAIL, roots, 3) != 0)
            return -1;
    }
    for (size_t t = 0; t < VAL_SHORT_TYPES; t++) {
        char sms[128], wa_text[128], wa_json[128];
        snprintf(sms, sizeof sms, "sms/%s.txt", cat_type(t));
        snprintf(wa_text, sizeof wa_text, "whatsapp/%s.txt", cat_type(t));
        snprintf(wa_json, sizeof wa_json, "whatsapp/%s.json", cat_type(t));
        const char *sms_roots[] = {sms};
        /* inside the window or out of it, one WhatsApp message: one version */
        const char *wa_roots[] = {wa_text, wa_json};
        if (cat_entry_add(c, cat_type(t), CH_NAME_SMS, sms_roots, 1) != 0 ||
            cat_entry_add(c, cat_type(t), CH_NAME_WHATSAPP, wa_roots, 2) != 0)
            return -1;
    }
    return 0;
}

static void cat_destroy(tpl_catalog_t *c);

tpl_catalog_t *tpl_catalog_load(const char *dir, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!dir || !*dir) {
        errmsg_set(err, errlen, "no templates directory configured");
        return NULL;
    }
    tpl_catalog_t *c = calloc(1, sizeof *c);
    if (!c) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    static const char *const email_suffixes[] = {".html", ".txt", ".subject", NULL};
    static const char *const partial_suffixes[] = {".mustache", NULL};
    static const char *const sms_suffixes[] = {".txt", NULL};
    static const char *const wa_suffixes[] = {".txt", ".json", NULL};
    if (cat_scan(c, dir, CH_NAME_EMAIL, "", email_suffixes, 1, err, errlen) != 0 ||
        cat_scan(c, dir, "email/partials", "partials/", partial_suffixes, 0, err, errlen) != 0 ||
        cat_scan(c, dir, CH_NAME_SMS, "sms/", sms_suffixes, 1, err, errlen) != 0 ||
        cat_scan(c, dir, CH_NAME_WHATSAPP, "whatsapp/", wa_suffixes, 1, err, errlen) != 0)
        goto fail;
    qsort(c->files, c->n, sizeof c->files[0], by_name);

    for (size_t i = 0; i < c->n; i++) {
        char e[256];
        if (cat_is_short(c->files[i].name)) {
            if (short_check(&c->files[i], err, errlen) != 0)
                goto fail;
            continue;
        }
        if (mst_check(c->files[i].text, e, sizeof e) != 0) {
            errmsg_set(err, errlen, "email/%s: %s", c->files[i].name, e);
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
    for (size_t t = 0; t < VAL_MESSAGE_TYPES; t++) {
        for (size_t k = 0; k < 3; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s%s", cat_type(t), parts[k]);
            if (!cat_find(c, name)) {
                errmsg_set(err, errlen, "email/%s: missing", name);
                goto fail;
            }
        }
    }
    /* every type but the digest can be sent on every channel the rules may pick */
    static const char *const short_dirs[] = {"sms/", "whatsapp/", "whatsapp/"};
    static const char *const short_exts[] = {".txt", ".txt", ".json"};
    for (size_t t = 0; t < VAL_SHORT_TYPES; t++) {
        for (size_t k = 0; k < 3; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s%s%s", short_dirs[k], val_message_types[t],
                     short_exts[k]);
            if (!cat_find(c, name)) {
                errmsg_set(err, errlen, "%s: missing", name);
                goto fail;
            }
        }
    }
    if (cat_hash_files(c, NULL, c->version) != 0 || cat_entries(c) != 0) {
        errmsg_set(err, errlen, "cannot hash the catalogue");
        goto fail;
    }
    atomic_init(&c->refs, 1);
    return c;
fail:
    cat_destroy(c);
    return NULL;
}

/* Frees c whatever its count: a catalogue that failed to load has no
 * holders. */
static void cat_destroy(tpl_catalog_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->files[i].name);
        free(c->files[i].text);
    }
    free(c);
}

void tpl_catalog_free(tpl_catalog_t *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        cat_destroy(c);
}

tpl_catalog_t *tpl_catalog_acquire(tpl_catalog_t *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

const char *tpl_catalog_version(const tpl_catalog_t *c)
{
    return c ? c->version : "";
}

size_t tpl_catalog_count(const tpl_catalog_t *c)
{
    return c ? c->n_entries : 0;
}

static const cat_entry_t *cat_entry_find(const tpl_catalog_t *c, const char *type,
                                         const char *channel)
{
    for (size_t i = 0; c && type && channel && i < c->n_entries; i++)
        if (strcmp(c->entries[i].type, type) == 0 && strcmp(c->entries[i].channel, channel) == 0)
            return &c->entries[i];
    return NULL;
}

/* The file's name as the operator sees it: "email/" before email files. */
static const char *cat_dir_of(const char *name)
{
    return cat_is_short(name) ? "" : "email/";
}

static void cat_source_fill(const tpl_catalog_t *c, const cat_entry_t *e, tpl_source_t *out)
{
    char name[160];
    out->name = e->type;
    out->channel = e->channel;
    out->version = e->version;
    out->subject = NULL;
    if (strcmp(e->channel, CH_NAME_EMAIL) == 0) {
        snprintf(name, sizeof name, "%s.subject", e->type);
        out->subject = cat_find(c, name);
        snprintf(name, sizeof name, "%s.txt", e->type);
    } else {
        snprintf(name, sizeof name, "%s/%s.txt", e->channel, e->type);
    }
    out->content = cat_find(c, name);
}

int tpl_catalog_entry(const tpl_catalog_t *c, size_t i, tpl_source_t *out)
{
    if (!c || i >= c->n_entries)
        return -1;
    cat_source_fill(c, &c->entries[i], out);
    return 0;
}

int tpl_template_source(const tpl_catalog_t *c, const char *type, const char *channel,
                        tpl_source_t *out)
{
    const cat_entry_t *e = cat_entry_find(c, type, channel);
    if (!e)
        return -1;
    cat_source_fill(c, e, out);
    return 0;
}

const char *tpl_template_version(const tpl_catalog_t *c, const char *type, const char *channel)
{
    const cat_entry_t *e = cat_entry_find(c, type, channel);
    return e ? e->version : NULL;
}

int tpl_template_files_json(const tpl_catalog_t *c, const char *type, const char *channel,
                            buf_t *out)
{
    const cat_entry_t *e = cat_entry_find(c, type, channel);
    if (!e)
        return -1;
    int rc = buf_putc(out, '{');
    int first = 1;
    for (size_t i = 0; i < c->n; i++) {
        if (!e->dep[i])
            continue;
        char name[600];
        snprintf(name, sizeof name, "%s%s", cat_dir_of(c->files[i].name), c->files[i].name);
        rc |= first ? 0 : buf_putc(out, ',');
        rc |= jtext_string(out, name) | buf_putc(out, ':') | jtext_string(out, c->files[i].text);
        first = 0;
    }
    rc |= buf_putc(out, '}');
    return rc;
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

/* Renders the catalogue file name; errors name it as the operator sees it
 * ("email/welcome.txt", "sms/welcome.txt"). */
static char *render_file(const tpl_catalog_t *c, const char *name, const cJSON *ctx, char *err,
                         size_t errlen)
{
    const char *dir = cat_is_short(name) ? "" : "email/";
    const char *src = cat_find(c, name);
    if (!src) {
        errmsg_set(err, errlen, "%s%s: missing", dir, name);
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
        errmsg_set(err, errlen, "%s%s: %s", dir, name, e);
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b);
}

static char *render_part(const tpl_catalog_t *c, const char *type, const char *ext,
                         const cJSON *ctx, char *err, size_t errlen)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s", type, ext);
    return render_file(c, name, ctx, err, errlen);
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

/* The API refuses a link other than http, https or mailto (request.c);
 * this is the second line, for rows accepted before that check and for
 * contexts the engine composes (a digest's items): an email never renders
 * such a value, which HTML escaping leaves intact, into an href. Returns 1,
 * or 0 with *bad the offending key (never NULL then: only a key makes a
 * link). The elements of an array take the array's key, as at the API. */
static int cat_links_ok(const cJSON *node, int is_url, const char *key, const char **bad)
{
    if (cJSON_IsString(node)) {
        if (is_url && !val_link_url(node->valuestring)) {
            *bad = key;
            return 0;
        }
    } else if (cJSON_IsArray(node)) {
        for (const cJSON *c = node->child; c; c = c->next)
            if (!cat_links_ok(c, is_url, key, bad))
                return 0;
    } else if (cJSON_IsObject(node)) {
        for (const cJSON *c = node->child; c; c = c->next)
            if (!cat_links_ok(c, val_url_key(c->string), c->string, bad))
                return 0;
    }
    return 1;
}

int tpl_render_email(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                     tpl_email_t *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!c || !message_type) {
        errmsg_set(err, errlen, "no catalogue or message type");
        return -1;
    }
    int known = 0;
    for (size_t t = 0; t < VAL_MESSAGE_TYPES; t++)
        known |= strcmp(message_type, cat_type(t)) == 0;
    if (!known) {
        errmsg_set(err, errlen, "unknown email message type '%.64s'", message_type);
        return -1;
    }
    /* "site" is configuration (tpl_context_build replaces any the request
     * sent), trusted like the templates themselves */
    const char *bad = NULL;
    for (const cJSON *k = cJSON_IsObject(ctx) ? ctx->child : NULL; k; k = k->next)
        if (strcmp(k->string, "site") != 0 &&
            !cat_links_ok(k, val_url_key(k->string), k->string, &bad))
            break;
    if (bad) {
        errmsg_set(err, errlen, "%s email: %.64s: only http, https and mailto URLs are accepted",
                   message_type, bad);
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
        errmsg_set(err, errlen, "email/%s.subject: renders empty", message_type);
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

/* ------------------------------------------------------ short messages */

static int cat_short_type(const char *type)
{
    for (size_t t = 0; t < VAL_SHORT_TYPES; t++)
        if (strcmp(type, val_message_types[t]) == 0)
            return 1;
    return 0;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* A template file ends with a newline that is not part of the message (in
 * an SMS it would cost a septet): the ends are trimmed. */
static void trim(char *s)
{
    char *b = s;
    while (is_space(*b))
        b++;
    size_t n = strlen(b);
    while (n && is_space(b[n - 1]))
        n--;
    memmove(s, b, n);
    s[n] = '\0';
}

/* Renders channel/<type><ext> ("sms/", ".txt") trimmed, or NULL. */
static char *render_short(const tpl_catalog_t *c, const char *channel, const char *type,
                          const char *ext, const cJSON *ctx, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!c || !type || !cat_short_type(type)) {
        errmsg_set(err, errlen, "unknown %s message type '%.64s'", channel, type ? type : "(none)");
        return NULL;
    }
    char name[128];
    snprintf(name, sizeof name, "%s/%s%s", channel, type, ext);
    char *out = render_file(c, name, ctx, err, errlen);
    if (!out)
        return NULL;
    trim(out);
    if (!out[0]) {
        errmsg_set(err, errlen, "%s: renders empty", name);
        free(out);
        return NULL;
    }
    return out;
}

int tpl_render_sms(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx, char **out,
                   char *err, size_t errlen)
{
    *out = render_short(c, CH_NAME_SMS, message_type, ".txt", ctx, err, errlen);
    return *out ? 0 : -1;
}

int tpl_render_whatsapp_text(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                             char **out, char *err, size_t errlen)
{
    *out = render_short(c, CH_NAME_WHATSAPP, message_type, ".txt", ctx, err, errlen);
    return *out ? 0 : -1;
}

/* Meta refuses a parameter with a line break, a tab or a long run of
 * spaces: white space runs become one space, and the ends are trimmed. */
static void one_spaced_line(char *s)
{
    char *w = s;
    int space = 0;
    for (const char *r = s; *r; r++) {
        if (is_space(*r)) {
            space = 1;
            continue;
        }
        if (space && w != s)
            *w++ = ' ';
        space = 0;
        *w++ = *r;
    }
    *w = '\0';
}

int tpl_render_whatsapp_template(const tpl_catalog_t *c, const char *message_type, const cJSON *ctx,
                                 tpl_wa_template_t *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!c || !message_type || !cat_short_type(message_type)) {
        errmsg_set(err, errlen, "unknown whatsapp message type '%.64s'",
                   message_type ? message_type : "(none)");
        return -1;
    }
    char name[128];
    snprintf(name, sizeof name, "whatsapp/%s.json", message_type);
    const char *text = cat_find(c, name);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    if (!doc) {
        /* checked at load, so only an allocation failure gets here */
        errmsg_set(err, errlen, "%s: cannot be read", name);
        return -1;
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "parameters");
    size_t n = (size_t)cJSON_GetArraySize(params);
    out->quick_replies = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "quick_replies"));
    out->name = strdup(cJSON_GetObjectItemCaseSensitive(doc, "name")->valuestring);
    out->language = strdup(cJSON_GetObjectItemCaseSensitive(doc, "language")->valuestring);
    out->params = calloc(n ? n : 1, sizeof *out->params);
    if (!out->name || !out->language || !out->params) {
        errmsg_set(err, errlen, "out of memory");
        goto fail;
    }
    mst_options_t opt = {.partials = cat_partial,
                         .partials_ud = (void *)c,
                         .strict = 1,
                         .max_output = CAT_MAX_OUTPUT};
    const cJSON *it;
    cJSON_ArrayForEach(it, params)
    {
        buf_t b;
        buf_init(&b, CAT_MAX_OUTPUT + 1);
        char e[256];
        size_t k = out->n_params + 1;
        if (mst_render(it->valuestring, ctx, &opt, &b, e, sizeof e) != 0) {
            errmsg_set(err, errlen, "%s: parameter %zu: %s", name, k, e);
            buf_free(&b);
            goto fail;
        }
        char *v = buf_detach(&b);
        if (!v) {
            errmsg_set(err, errlen, "out of memory");
            goto fail;
        }
        one_spaced_line(v);
        out->params[out->n_params++] = v;
        if (!v[0]) {
            errmsg_set(err, errlen, "%s: parameter %zu renders empty", name, k);
            goto fail;
        }
    }
    cJSON_Delete(doc);
    return 0;
fail:
    cJSON_Delete(doc);
    tpl_wa_template_free(out);
    return -1;
}

void tpl_wa_template_free(tpl_wa_template_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_params; i++)
        free(t->params[i]);
    free(t->params);
    free(t->name);
    free(t->language);
    memset(t, 0, sizeof *t);
}
