/* mustache: parse a template once into a node tree, then walk the tree
 * against a cJSON context stack.
 *
 * Parsing runs in three passes: a tokenizer (which honours set-delimiter
 * tags and splits text after every newline, so each text token covers at
 * most one line), a standalone pass over the token lines (a line holding
 * only whitespace and non-output tags vanishes from the output), and a tree
 * builder that pairs sections with their closing tags.
 *
 * Indentation (standalone partials and parents, inheritance blocks) is
 * applied while rendering: the renderer knows whether the output is at the
 * start of a line and writes the current indentation lazily before the
 * next character, so interpolated values are never re-indented and the
 * line after a partial's final newline gets nothing.
 *
 * Truthiness: false, null, a missing name, an empty list and an empty
 * string are falsey; everything else is truthy. */
#include "template/mustache.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MST_DEFAULT_MAX_OUTPUT ((size_t)4 * 1024 * 1024)
#define MST_DEFAULT_MAX_DEPTH  64
#define MST_PARSE_MAX_NEST     256 /* section nesting a template may declare */
#define MST_MAX_DELIM          16  /* bytes in a custom delimiter */
#define MST_MAX_NAME           256 /* bytes in a tag name */
#define MST_MAX_PARTIALS       256 /* distinct partials loaded by one render */

typedef enum {
    K_TEXT,
    K_VAR, /* escaped interpolation */
    K_RAW, /* {{{x}}} and {{&x}} */
    K_SECTION,
    K_INVERTED,
    K_CLOSE,
    K_COMMENT,
    K_PARTIAL,
    K_PARENT,
    K_BLOCK,
    K_DELIM,
    K_ROOT
} kind_t;

typedef struct tok {
    kind_t kind;
    size_t start, end; /* span of the whole token in the source */
    const char *name;  /* points into the source; not NUL-terminated */
    size_t name_len;
    int line;
    int drop;       /* text removed by the standalone rule */
    int standalone; /* tag sat on a standalone line */
    size_t ind_start, ind_len;
} tok_t;

typedef struct node node_t;
struct node {
    kind_t kind;
    int line;
    const char *str; /* text, or the tag name; points into the owner's source */
    size_t len;
    int at_bol;     /* text begins a source line */
    int standalone; /* partial/parent: indent the expansion; block: see below */
    /* partial/parent: whitespace before the standalone tag. block: the
     * indentation of its content, removed from an override's lines and
     * added at the place of expansion. */
    const char *ind;
    size_t ind_len;
    const char *tname; /* owning template's name, NULL for the top level */
    node_t *kids;      /* owned array */
    size_t nkids, cap;
};

typedef struct tmpl {
    char *name; /* owned; NULL for the top-level template */
    char *src;  /* owned; nodes point into it */
    node_t root;
} tmpl_t;

static void set_err(char *err, size_t errlen, const char *tname, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set_err(char *err, size_t errlen, const char *tname, int line, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    int n;
    if (tname)
        n = snprintf(err, errlen, "'%s' line %d: ", tname, line);
    else
        n = snprintf(err, errlen, "line %d: ", line);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- tokens */

typedef struct tokvec {
    tok_t *v;
    size_t n, cap;
} tokvec_t;

static int tok_push(tokvec_t *tv, const tok_t *t)
{
    if (tv->n == tv->cap) {
        size_t cap = tv->cap ? tv->cap * 2 : 64;
        tok_t *p = realloc(tv->v, cap * sizeof *p);
        if (!p)
            return -1;
        tv->v = p;
        tv->cap = cap;
    }
    tv->v[tv->n++] = *t;
    return 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char **p, size_t *n)
{
    while (*n && is_space(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_space((*p)[*n - 1]))
        (*n)--;
}

/* Parses the inside of a set-delimiter tag ("<% %>") into new delimiters. */
static int parse_delims(const char *p, size_t n, char *otag, char *ctag)
{
    trim(&p, &n);
    size_t a = 0;
    while (a < n && !is_space(p[a]))
        a++;
    size_t b = a;
    while (b < n && is_space(p[b]))
        b++;
    size_t c = b;
    while (c < n && !is_space(p[c]))
        c++;
    if (a == 0 || a > MST_MAX_DELIM || b == a || c == b || c != n || c - b > MST_MAX_DELIM)
        return -1;
    if (memchr(p, '=', a) || memchr(p + b, '=', c - b))
        return -1;
    memcpy(otag, p, a);
    otag[a] = '\0';
    memcpy(ctag, p + b, c - b);
    ctag[c - b] = '\0';
    return 0;
}

static int count_nl(const char *p, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n';
    return k;
}

static int tokenize(const char *s, const char *tname, tokvec_t *tv, char *err, size_t errlen)
{
    char otag[MST_MAX_DELIM + 1] = "{{", ctag[MST_MAX_DELIM + 1] = "}}";
    char pat[MST_MAX_DELIM + 2];
    size_t n = strlen(s), pos = 0;
    int line = 1;

    while (pos < n) {
        const char *o = strstr(s + pos, otag);
        size_t tstart = o ? (size_t)(o - s) : n;
        /* Text is cut after each newline so that standalone detection and
         * indentation can work line by line on whole tokens. */
        while (pos < tstart) {
            const char *nl = memchr(s + pos, '\n', tstart - pos);
            size_t e = nl ? (size_t)(nl - s) + 1 : tstart;
            tok_t t = {.kind = K_TEXT, .start = pos, .end = e, .line = line};
            if (tok_push(tv, &t) != 0)
                goto oom;
            if (nl)
                line++;
            pos = e;
        }
        if (!o)
            break;

        size_t p = tstart + strlen(otag);
        char lead = s[p];
        size_t inner = p; /* start of the tag's content */
        if (lead == '{' || lead == '=') {
            pat[0] = lead == '{' ? '}' : '=';
            strcpy(pat + 1, ctag);
            inner = p + 1;
        } else {
            strcpy(pat, ctag);
        }
        const char *c = strstr(s + inner, pat);
        if (!c) {
            set_err(err, errlen, tname, line, "unclosed tag");
            return -1;
        }
        size_t cpos = (size_t)(c - s);
        size_t tend = cpos + strlen(pat);
        const char *body = s + inner;
        size_t blen = cpos - inner;

        tok_t t = {.start = tstart, .end = tend, .line = line};
        if (lead == '{') {
            t.kind = K_RAW;
        } else if (lead == '=') {
            t.kind = K_DELIM;
            if (parse_delims(body, blen, otag, ctag) != 0) {
                set_err(err, errlen, tname, line, "invalid set-delimiter tag");
                return -1;
            }
        } else {
            trim(&body, &blen);
            t.kind = K_VAR;
            if (blen > 0) {
                switch (body[0]) {
                case '#':
                    t.kind = K_SECTION;
                    break;
                case '^':
                    t.kind = K_INVERTED;
                    break;
                case '/':
                    t.kind = K_CLOSE;
                    break;
                case '!':
                    t.kind = K_COMMENT;
                    break;
                case '>':
                    t.kind = K_PARTIAL;
                    break;
                case '<':
                    t.kind = K_PARENT;
                    break;
                case '$':
                    t.kind = K_BLOCK;
                    break;
                case '&':
                    t.kind = K_RAW;
                    break;
                default:
                    break;
                }
                if (t.kind != K_VAR) {
                    body++;
                    blen--;
                }
            }
        }
        if (t.kind != K_COMMENT && t.kind != K_DELIM) {
            trim(&body, &blen);
            if (blen == 0) {
                set_err(err, errlen, tname, line, "empty tag name");
                return -1;
            }
            if (blen > MST_MAX_NAME) {
                set_err(err, errlen, tname, line, "tag name longer than %d bytes", MST_MAX_NAME);
                return -1;
            }
            for (size_t i = 0; i < blen; i++) {
                if (is_space(body[i])) {
                    set_err(err, errlen, tname, line, "invalid tag name '%.*s'", (int)blen, body);
                    return -1;
                }
            }
            t.name = body;
            t.name_len = blen;
        }
        if (tok_push(tv, &t) != 0)
            goto oom;
        line += count_nl(s + tstart, tend - tstart);
        pos = tend;
    }
    return 0;
oom:
    set_err(err, errlen, tname, line, "out of memory");
    return -1;
}

static int can_stand_alone(kind_t k)
{
    return k != K_TEXT && k != K_VAR && k != K_RAW;
}

/* Whether a text token holds only blanks and, at its end, a line break. */
static int text_is_blank(const char *s, const tok_t *t)
{
    for (size_t i = t->start; i < t->end; i++) {
        char c = s[i];
        if (is_blank(c))
            continue;
        if (c == '\r' && i + 2 == t->end && s[i + 1] == '\n')
            continue;
        if (c == '\n' && i + 1 == t->end)
            continue;
        return 0;
    }
    return 1;
}

/* Marks standalone lines: a line whose tags are all non-output tags and
 * whose text is only whitespace disappears, newline included. Two
 * refinements make inheritance read naturally: several such tags may share
 * a line ("{{<layout}}{{$body}}"), but a block opened and closed on the
 * same line keeps its line (its content takes the place of the tags). */
static void mark_standalone(const char *s, tokvec_t *tv)
{
    size_t i = 0;
    while (i < tv->n) {
        size_t last = i;
        while (last + 1 < tv->n && !(tv->v[last].kind == K_TEXT && s[tv->v[last].end - 1] == '\n'))
            last++;
        int ok = 1, ntags = 0, nembed = 0, pair = 0;
        for (size_t k = i; k <= last; k++) {
            tok_t *t = &tv->v[k];
            if (t->kind == K_TEXT) {
                if (!text_is_blank(s, t))
                    ok = 0;
                continue;
            }
            ntags++;
            if (!can_stand_alone(t->kind))
                ok = 0;
            if (t->kind == K_PARTIAL || t->kind == K_PARENT)
                nembed++;
            if (t->kind == K_BLOCK && k + 1 <= last && tv->v[k + 1].kind == K_CLOSE)
                pair = 1;
        }
        int standalone = ok && ntags > 0 && nembed <= 1 && !pair;

        /* leading whitespace of the line */
        size_t lead_start = tv->v[i].start, lead_len = 0;
        if (tv->v[i].kind == K_TEXT) {
            lead_len = tv->v[i].end - tv->v[i].start;
            while (lead_len && !is_blank(s[lead_start + lead_len - 1]))
                lead_len--;
        }
        /* where the next line starts, for a standalone block's content */
        size_t next = tv->v[last].end;
        int has_next = tv->v[last].kind == K_TEXT && s[next - 1] == '\n';

        for (size_t k = i; k <= last; k++) {
            tok_t *t = &tv->v[k];
            if (standalone) {
                if (t->kind == K_TEXT) {
                    t->drop = 1;
                    continue;
                }
                t->standalone = 1;
                if (t->kind == K_PARTIAL || t->kind == K_PARENT) {
                    t->ind_start = lead_start;
                    t->ind_len = lead_len;
                } else if (t->kind == K_BLOCK) {
                    if (has_next) {
                        size_t e = next;
                        while (is_blank(s[e]))
                            e++;
                        t->ind_start = next;
                        t->ind_len = e - next;
                    } else {
                        t->ind_start = lead_start;
                        t->ind_len = lead_len;
                    }
                }
            } else if (t->kind == K_BLOCK) {
                /* an inline block indents its later lines like the text
                 * before it, when only whitespace precedes it */
                int first = (k == i) ||
                            (k == i + 1 && tv->v[i].kind == K_TEXT && text_is_blank(s, &tv->v[i]));
                if (first) {
                    t->ind_start = lead_start;
                    t->ind_len = lead_len;
                }
            }
        }
        i = last + 1;
    }
}

/* ------------------------------------------------------------------ tree */

static void node_free(node_t *nd)
{
    for (size_t i = 0; i < nd->nkids; i++)
        node_free(&nd->kids[i]);
    free(nd->kids);
    nd->kids = NULL;
    nd->nkids = nd->cap = 0;
}

static node_t *node_add(node_t *parent)
{
    if (parent->nkids == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        node_t *p = realloc(parent->kids, cap * sizeof *p);
        if (!p)
            return NULL;
        parent->kids = p;
        parent->cap = cap;
    }
    node_t *nd = &parent->kids[parent->nkids++];
    memset(nd, 0, sizeof *nd);
    return nd;
}

static int build_tree(const char *s, const char *tname, const tokvec_t *tv, node_t *root, char *err,
                      size_t errlen)
{
    node_t *stack[MST_PARSE_MAX_NEST];
    int depth = 0;
    node_t *cur = root;

    for (size_t i = 0; i < tv->n; i++) {
        const tok_t *t = &tv->v[i];
        if (t->drop || t->kind == K_COMMENT || t->kind == K_DELIM)
            continue;
        if (t->kind == K_TEXT && t->end == t->start)
            continue;
        if (t->kind == K_CLOSE) {
            if (depth == 0) {
                set_err(err, errlen, tname, t->line, "unexpected closing tag '%.*s'",
                        (int)t->name_len, t->name);
                return -1;
            }
            if (cur->len != t->name_len || memcmp(cur->str, t->name, t->name_len) != 0) {
                set_err(err, errlen, tname, t->line,
                        "closing tag '%.*s' does not match section '%.*s' opened on line %d",
                        (int)t->name_len, t->name, (int)cur->len, cur->str, cur->line);
                return -1;
            }
            cur = stack[--depth];
            continue;
        }
        node_t *nd = node_add(cur);
        if (!nd) {
            set_err(err, errlen, tname, t->line, "out of memory");
            return -1;
        }
        nd->kind = t->kind;
        nd->line = t->line;
        nd->tname = tname;
        nd->standalone = t->standalone;
        nd->ind = s + t->ind_start;
        nd->ind_len = t->ind_len;
        if (t->kind == K_TEXT) {
            nd->str = s + t->start;
            nd->len = t->end - t->start;
            nd->at_bol = t->start == 0 || s[t->start - 1] == '\n';
        } else {
            nd->str = t->name;
            nd->len = t->name_len;
        }
        if (t->kind == K_SECTION || t->kind == K_INVERTED || t->kind == K_PARENT ||
            t->kind == K_BLOCK) {
            if (depth == MST_PARSE_MAX_NEST) {
                set_err(err, errlen, tname, t->line, "sections nested deeper than %d",
                        MST_PARSE_MAX_NEST);
                return -1;
            }
            stack[depth++] = cur;
            cur = nd;
        }
    }
    if (depth > 0) {
        set_err(err, errlen, tname, cur->line, "unclosed section '%.*s'", (int)cur->len, cur->str);
        return -1;
    }
    return 0;
}

/* Parses src (which the tree then points into) under root. */
static int parse(const char *src, const char *tname, node_t *root, char *err, size_t errlen)
{
    tokvec_t tv = {0};
    memset(root, 0, sizeof *root);
    root->kind = K_ROOT;
    int rc = tokenize(src, tname, &tv, err, errlen);
    if (rc == 0) {
        mark_standalone(src, &tv);
        rc = build_tree(src, tname, &tv, root, err, errlen);
    }
    free(tv.v);
    if (rc != 0)
        node_free(root);
    return rc;
}

static void tmpl_free(tmpl_t *t)
{
    if (!t)
        return;
    node_free(&t->root);
    free(t->name);
    free(t->src);
    free(t);
}

/* -------------------------------------------------------------- render */

typedef struct frame {
    const char *ind; /* written at the start of each output line */
    size_t ind_len;
    const char *strip; /* removed from the start of each source line */
    size_t strip_len;
} frame_t;

typedef struct pcache {
    char *name; /* owned */
    tmpl_t *t;  /* owned; NULL when the partial does not exist */
} pcache_t;

typedef struct rstate {
    const mst_options_t *opt;
    buf_t *out;
    size_t base, max_out;
    const cJSON **ctx; /* owned array; the context stack */
    int nctx;
    const node_t **ov; /* owned array; parent tags whose blocks override */
    int nov;
    int depth, max_depth;
    int bol; /* output is at the start of a line */
    pcache_t cache[MST_MAX_PARTIALS];
    size_t ncache;
    char *err;
    size_t errlen;
} rstate_t;

static int render_kids(rstate_t *r, const frame_t *fr, const node_t *nd);

static int emit(rstate_t *r, const node_t *nd, const char *p, size_t n)
{
    if (n > r->max_out || r->out->len - r->base > r->max_out - n) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "output exceeds %zu bytes", r->max_out);
        return -1;
    }
    if (buf_append(r->out, p, n) != 0) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "output buffer full");
        return -1;
    }
    return 0;
}

static int emit_indent(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    if (r->bol && fr->ind_len && emit(r, nd, fr->ind, fr->ind_len) != 0)
        return -1;
    r->bol = 0;
    return 0;
}

static int emit_escaped(rstate_t *r, const node_t *nd, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        /* beyond the spec's set, so single-quoted attributes are safe too */
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        if (emit(r, nd, s + run, i - run) != 0 || emit(r, nd, rep, strlen(rep)) != 0)
            return -1;
        run = i + 1;
    }
    return emit(r, nd, s + run, n - run);
}

static const cJSON *child_named(const cJSON *obj, const char *name, size_t len)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strlen(c->string) == len && memcmp(c->string, name, len) == 0)
            return c;
    return NULL;
}

/* Resolves a (dotted) name against the context stack; NULL when missing. */
static const cJSON *lookup(const rstate_t *r, const char *name, size_t len)
{
    if (len == 1 && name[0] == '.')
        return r->ctx[r->nctx - 1];
    const char *dot = memchr(name, '.', len);
    size_t seg = dot ? (size_t)(dot - name) : len;
    const cJSON *v = NULL;
    for (int i = r->nctx - 1; i >= 0 && !v; i--)
        v = child_named(r->ctx[i], name, seg);
    /* once the first part is found, the rest must resolve inside it */
    while (v && dot) {
        const char *rest = dot + 1;
        size_t left = len - (size_t)(rest - name);
        dot = memchr(rest, '.', left);
        seg = dot ? (size_t)(dot - rest) : left;
        v = child_named(v, rest, seg);
    }
    return v;
}

static int truthy(const cJSON *v)
{
    if (!v || cJSON_IsFalse(v) || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsArray(v))
        return v->child != NULL;
    if (cJSON_IsString(v))
        return v->valuestring && v->valuestring[0];
    return 1;
}

static void format_number(double v, char *b, size_t n)
{
    if (v == 0) {
        snprintf(b, n, "0");
    } else if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) {
        snprintf(b, n, "%.0f", v);
    } else {
        snprintf(b, n, "%.15g", v);
        if (strtod(b, NULL) != v)
            snprintf(b, n, "%.17g", v);
    }
}

static int render_var(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    const cJSON *v = lookup(r, nd->str, nd->len);
    if (!v) {
        if (r->opt->strict) {
            set_err(r->err, r->errlen, nd->tname, nd->line, "missing variable '%.*s'", (int)nd->len,
                    nd->str);
            return -1;
        }
        return 0;
    }
    char num[64];
    const char *s = "";
    if (cJSON_IsString(v)) {
        s = v->valuestring ? v->valuestring : "";
    } else if (cJSON_IsNumber(v)) {
        format_number(v->valuedouble, num, sizeof num);
        s = num;
    } else if (cJSON_IsBool(v)) {
        s = cJSON_IsTrue(v) ? "true" : "false";
    } else if (!cJSON_IsNull(v) && r->opt->strict) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "variable '%.*s' is not a scalar",
                (int)nd->len, nd->str);
        return -1;
    }
    size_t n = strlen(s);
    if (n == 0)
        return 0;
    if (emit_indent(r, fr, nd) != 0)
        return -1;
    return nd->kind == K_VAR ? emit_escaped(r, nd, s, n) : emit(r, nd, s, n);
}

static int render_text(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    const char *p = nd->str;
    size_t n = nd->len;
    if (nd->at_bol) {
        size_t k = 0;
        while (k < fr->strip_len && k < n && p[k] == fr->strip[k])
            k++;
        p += k;
        n -= k;
    }
    if (n == 0)
        return 0;
    if (emit_indent(r, fr, nd) != 0 || emit(r, nd, p, n) != 0)
        return -1;
    r->bol = p[n - 1] == '\n';
    return 0;
}

static int enter(rstate_t *r, const node_t *nd)
{
    if (r->depth >= r->max_depth) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "nesting deeper than %d at '%.*s'",
                r->max_depth, (int)nd->len, nd->str);
        return -1;
    }
    r->depth++;
    return 0;
}

static int render_section(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    const cJSON *v = lookup(r, nd->str, nd->len);
    int rc = 0;
    if (nd->kind == K_INVERTED) {
        if (truthy(v))
            return 0;
        if (enter(r, nd) != 0)
            return -1;
        rc = render_kids(r, fr, nd);
        r->depth--;
        return rc;
    }
    if (!truthy(v))
        return 0;
    if (enter(r, nd) != 0)
        return -1;
    if (cJSON_IsArray(v)) {
        for (const cJSON *it = v->child; it && rc == 0; it = it->next) {
            r->ctx[r->nctx++] = it;
            rc = render_kids(r, fr, nd);
            r->nctx--;
        }
    } else {
        r->ctx[r->nctx++] = v;
        rc = render_kids(r, fr, nd);
        r->nctx--;
    }
    r->depth--;
    return rc;
}

/* Finds (and parses, once per render) the partial called name. Returns 0
 * with *out NULL when it does not exist. */
static int load_partial(rstate_t *r, const node_t *nd, tmpl_t **out)
{
    *out = NULL;
    for (size_t i = 0; i < r->ncache; i++) {
        if (strlen(r->cache[i].name) == nd->len &&
            memcmp(r->cache[i].name, nd->str, nd->len) == 0) {
            *out = r->cache[i].t;
            return 0;
        }
    }
    if (r->ncache == MST_MAX_PARTIALS) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "more than %d distinct partials",
                MST_MAX_PARTIALS);
        return -1;
    }
    char *name = strndup(nd->str, nd->len);
    if (!name) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "out of memory");
        return -1;
    }
    char *src = NULL;
    int rc = r->opt->partials ? r->opt->partials(r->opt->partials_ud, name, &src) : 1;
    if (rc < 0) {
        set_err(r->err, r->errlen, nd->tname, nd->line, "cannot load partial '%s'", name);
        free(name);
        return -1;
    }
    tmpl_t *t = NULL;
    if (rc == 0) {
        t = calloc(1, sizeof *t);
        if (!t) {
            free(src);
            free(name);
            set_err(r->err, r->errlen, nd->tname, nd->line, "out of memory");
            return -1;
        }
        t->src = src ? src : strdup("");
        t->name = strdup(name);
        if (!t->src || !t->name) {
            tmpl_free(t);
            free(name);
            set_err(r->err, r->errlen, nd->tname, nd->line, "out of memory");
            return -1;
        }
        if (parse(t->src, t->name, &t->root, r->err, r->errlen) != 0) {
            tmpl_free(t);
            free(name);
            return -1;
        }
    }
    r->cache[r->ncache].name = name;
    r->cache[r->ncache].t = t;
    r->ncache++;
    *out = t;
    return 0;
}

/* Indentation for an expansion: the frame's own plus add, where add is
 * measured in the current source and so first loses the frame's strip. */
static char *indent_join(const frame_t *fr, const char *add, size_t add_len, size_t *out_len)
{
    size_t k = 0;
    while (k < fr->strip_len && k < add_len && add[k] == fr->strip[k])
        k++;
    add += k;
    add_len -= k;
    char *s = malloc(fr->ind_len + add_len + 1);
    if (!s)
        return NULL;
    if (fr->ind_len)
        memcpy(s, fr->ind, fr->ind_len);
    if (add_len)
        memcpy(s + fr->ind_len, add, add_len);
    s[fr->ind_len + add_len] = '\0';
    *out_len = fr->ind_len + add_len;
    return s;
}

static int render_partial(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    tmpl_t *t;
    if (load_partial(r, nd, &t) != 0)
        return -1;
    if (!t) {
        if (r->opt->strict) {
            set_err(r->err, r->errlen, nd->tname, nd->line, "missing %s '%.*s'",
                    nd->kind == K_PARENT ? "parent" : "partial", (int)nd->len, nd->str);
            return -1;
        }
        return 0;
    }
    if (enter(r, nd) != 0)
        return -1;
    frame_t sub = {.ind = fr->ind, .ind_len = fr->ind_len};
    char *ind = NULL;
    if (nd->standalone) {
        ind = indent_join(fr, nd->ind, nd->ind_len, &sub.ind_len);
        if (!ind) {
            set_err(r->err, r->errlen, nd->tname, nd->line, "out of memory");
            return -1;
        }
        sub.ind = ind;
    }
    if (nd->kind == K_PARENT)
        r->ov[r->nov++] = nd;
    int rc = render_kids(r, &sub, &t->root);
    if (nd->kind == K_PARENT)
        r->nov--;
    free(ind);
    r->depth--;
    return rc;
}

/* The override for a block: the outermost parent tag that supplies one
 * wins, so a page's blocks beat those of the layouts between. */
static const node_t *find_override(const rstate_t *r, const node_t *nd)
{
    for (int i = 0; i < r->nov; i++) {
        const node_t *p = r->ov[i];
        for (size_t k = 0; k < p->nkids; k++) {
            const node_t *b = &p->kids[k];
            if (b->kind == K_BLOCK && b->len == nd->len && memcmp(b->str, nd->str, nd->len) == 0)
                return b;
        }
    }
    return NULL;
}

static int render_block(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    const node_t *o = find_override(r, nd);
    if (enter(r, nd) != 0)
        return -1;
    int rc;
    if (!o || o == nd) {
        rc = render_kids(r, fr, nd);
    } else {
        /* the override's own indentation goes, the block's comes in */
        frame_t sub = {.strip = o->ind, .strip_len = o->ind_len};
        char *ind = indent_join(fr, nd->ind, nd->ind_len, &sub.ind_len);
        if (!ind) {
            set_err(r->err, r->errlen, nd->tname, nd->line, "out of memory");
            r->depth--;
            return -1;
        }
        sub.ind = ind;
        rc = render_kids(r, &sub, o);
        free(ind);
    }
    r->depth--;
    return rc;
}

static int render_kids(rstate_t *r, const frame_t *fr, const node_t *nd)
{
    for (size_t i = 0; i < nd->nkids; i++) {
        const node_t *k = &nd->kids[i];
        int rc = 0;
        switch (k->kind) {
        case K_TEXT:
            rc = render_text(r, fr, k);
            break;
        case K_VAR:
        case K_RAW:
            rc = render_var(r, fr, k);
            break;
        case K_SECTION:
        case K_INVERTED:
            rc = render_section(r, fr, k);
            break;
        case K_PARTIAL:
        case K_PARENT:
            rc = render_partial(r, fr, k);
            break;
        case K_BLOCK:
            rc = render_block(r, fr, k);
            break;
        default:
            break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

int mst_render(const char *src, const cJSON *data, const mst_options_t *opt, buf_t *out, char *err,
               size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!src || !out) {
        set_err(err, errlen, NULL, 0, "no template");
        return -1;
    }
    static const mst_options_t defaults = {0};
    if (!opt)
        opt = &defaults;

    rstate_t *r = calloc(1, sizeof *r);
    if (!r) {
        set_err(err, errlen, NULL, 0, "out of memory");
        return -1;
    }
    r->opt = opt;
    r->out = out;
    r->base = out->len;
    r->max_out = opt->max_output ? opt->max_output : MST_DEFAULT_MAX_OUTPUT;
    r->max_depth = opt->max_depth > 0 ? opt->max_depth : MST_DEFAULT_MAX_DEPTH;
    r->bol = 1;
    r->err = err;
    r->errlen = errlen;
    /* every push onto either stack happens under a depth increment */
    r->ctx = calloc((size_t)r->max_depth + 2, sizeof *r->ctx);
    r->ov = calloc((size_t)r->max_depth + 2, sizeof *r->ov);

    int rc = -1;
    node_t root;
    if (!r->ctx || !r->ov) {
        set_err(err, errlen, NULL, 0, "out of memory");
    } else if (parse(src, NULL, &root, err, errlen) == 0) {
        static cJSON empty = {.type = cJSON_NULL};
        r->ctx[r->nctx++] = data ? data : &empty;
        frame_t top = {0};
        rc = render_kids(r, &top, &root);
        node_free(&root);
    }

    if (rc != 0 && out->data) {
        /* leave the caller's buffer as it was */
        out->len = r->base;
        out->data[out->len] = '\0';
    }
    for (size_t i = 0; i < r->ncache; i++) {
        free(r->cache[i].name);
        tmpl_free(r->cache[i].t);
    }
    free(r->ctx);
    free(r->ov);
    free(r);
    return rc;
}

int mst_check(const char *src, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!src) {
        set_err(err, errlen, NULL, 0, "no template");
        return -1;
    }
    node_t root;
    if (parse(src, NULL, &root, err, errlen) != 0)
        return -1;
    node_free(&root);
    return 0;
}

int mst_references(const char *src, mst_ref_fn fn, void *ud, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!src) {
        set_err(err, errlen, NULL, 0, "no template");
        return -1;
    }
    tokvec_t tv = {0};
    int rc = tokenize(src, NULL, &tv, err, errlen);
    for (size_t i = 0; rc == 0 && i < tv.n; i++)
        if ((tv.v[i].kind == K_PARTIAL || tv.v[i].kind == K_PARENT) &&
            fn(ud, tv.v[i].name, tv.v[i].name_len) != 0)
            break;
    free(tv.v);
    return rc;
}
