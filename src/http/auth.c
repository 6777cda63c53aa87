#include "http/auth.h"

#include "crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct auth_entry {
    char digest[65]; /* hex SHA-256 of the token */
    int scope;
    char label[AUTH_LABEL_MAX];
} auth_entry_t;

struct auth {
    auth_entry_t entries[AUTH_MAX_TOKENS];
    int n;
};

int auth_scope_parse(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int scope;
    } scopes[] = {
        {"workflow", AUTH_SCOPE_WORKFLOW},
        {"operator", AUTH_SCOPE_OPERATOR},
        {"admin", AUTH_SCOPE_ADMIN},
    };
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
        if (strlen(scopes[i].name) == len && memcmp(scopes[i].name, name, len) == 0)
            return scopes[i].scope;
    return 0;
}

/* A token is printable ASCII without spaces or commas (the list separator). */
static int auth_token_ok(const char *t, size_t len)
{
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (t[i] <= ' ' || t[i] > '~' || t[i] == ',')
            return 0;
    return 1;
}

/* Labels go into logs and rows as they are: a small alphabet keeps them
 * from carrying anything but a name. */
static int auth_label_ok(const char *l, size_t len)
{
    if (len == 0 || len >= AUTH_LABEL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = l[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int auth_add(auth_t *a, const char *item, size_t len, int pos, char *err, size_t errlen)
{
    const char *colon = memchr(item, ':', len);
    if (!colon) {
        snprintf(err, errlen, "CRIER_API_TOKENS entry %d: expected scope:token", pos);
        return -1;
    }
    const char *slash = memchr(item, '/', (size_t)(colon - item));
    size_t scope_len = (size_t)((slash ? slash : colon) - item);
    int scope = auth_scope_parse(item, scope_len);
    if (!scope) {
        snprintf(err, errlen,
                 "CRIER_API_TOKENS entry %d: unknown scope (workflow, operator or admin)", pos);
        return -1;
    }
    const char *tok = colon + 1;
    size_t toklen = len - (size_t)(tok - item);
    if (!auth_token_ok(tok, toklen)) {
        snprintf(err, errlen, "CRIER_API_TOKENS entry %d: token empty, too long or not printable",
                 pos);
        return -1;
    }
    if (a->n >= AUTH_MAX_TOKENS) {
        snprintf(err, errlen, "CRIER_API_TOKENS: more than %d tokens", AUTH_MAX_TOKENS);
        return -1;
    }
    auth_entry_t *e = &a->entries[a->n];
    if (slash) {
        const char *l = slash + 1;
        size_t llen = (size_t)(colon - l);
        if (!auth_label_ok(l, llen)) {
            snprintf(err, errlen,
                     "CRIER_API_TOKENS entry %d: a label is 1 to %d of A-Z a-z 0-9 . _ -", pos,
                     AUTH_LABEL_MAX - 1);
            return -1;
        }
        memcpy(e->label, l, llen);
        e->label[llen] = '\0';
    } else {
        snprintf(e->label, sizeof e->label, "%.*s#%d", (int)scope_len, item, pos);
    }
    cry_sha256_hex(tok, toklen, e->digest);
    e->scope = scope;
    a->n++;
    return 0;
}

auth_t *auth_new(const char *spec, char *err, size_t errlen)
{
    auth_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!spec)
        return a;
    const char *p = spec;
    int pos = 0;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* tolerate spaces around entries: lists are often written by hand */
        const char *s = p;
        size_t n = len;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        pos++;
        if (n && auth_add(a, s, n, pos, err, errlen) != 0) {
            auth_free(a);
            return NULL;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return a;
}

void auth_free(auth_t *a)
{
    free(a);
}

int auth_count(const auth_t *a)
{
    return a ? a->n : 0;
}

auth_result_t auth_check(const auth_t *a, const char *authorization, int need)
{
    return auth_check_as(a, authorization, need, NULL);
}

auth_result_t auth_check_as(const auth_t *a, const char *authorization, int need,
                            const char **label)
{
    if (label)
        *label = "";
    if (!a || !authorization)
        return AUTH_UNAUTHORIZED;
    const char *p = authorization;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || p[6] != ' ')
        return AUTH_UNAUTHORIZED;
    p += 6;
    while (*p == ' ')
        p++;
    size_t len = strlen(p);
    while (len && p[len - 1] == ' ')
        len--;
    if (!auth_token_ok(p, len))
        return AUTH_UNAUTHORIZED;

    char digest[65];
    cry_sha256_hex(p, len, digest);
    /* Visit every entry whatever matches, so timing does not reveal which
     * (or whether an early) entry matched. Digests are all 64 chars, so
     * cry_str_equal's length dependence reveals nothing either. */
    int scopes = 0, known = 0, first = 0;
    for (int i = 0; i < a->n; i++) {
        int eq = cry_str_equal(digest, a->entries[i].digest);
        /* the first match's index, chosen without a branch on eq */
        int take = eq & !known;
        first = (first & (take - 1)) | (i & -take);
        known |= eq;
        scopes |= a->entries[i].scope & -eq;
    }
    if (!known)
        return AUTH_UNAUTHORIZED;
    if (label)
        *label = a->entries[first].label;
    return (scopes & need) ? AUTH_OK : AUTH_FORBIDDEN;
}
