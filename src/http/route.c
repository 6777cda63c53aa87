/* route: matching a request against the route table (see route.h). */
#include "http/route.h"

#include "http/stats.h"

#include <stdio.h>
#include <string.h>

/* The segment of s starting at s (after a '/'): its length. */
static size_t route_seg_len(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash ? (size_t)(slash - s) : strlen(s);
}

/* 1 when the pattern segment seg[0..len) is a {name} segment. */
static int route_is_param(const char *seg, size_t len)
{
    return len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
}

/* 1 when path matches pattern, with its {name} values in p. */
static int route_path_matches(const char *pattern, const char *path, route_params_t *p)
{
    p->n = 0;
    const char *pp = pattern, *sp = path;
    while (*pp == '/' && *sp == '/') {
        pp++;
        sp++;
        size_t plen = route_seg_len(pp), slen = route_seg_len(sp);
        if (route_is_param(pp, plen)) {
            if (p->n >= ROUTE_PARAMS_MAX)
                return 0; /* route_check refuses such a pattern */
            size_t keep = slen < ROUTE_PARAM_MAX ? slen : ROUTE_PARAM_MAX - 1;
            p->name[p->n] = pp + 1;
            p->name_len[p->n] = plen - 2;
            memcpy(p->value[p->n], sp, keep);
            p->value[p->n][keep] = '\0';
            p->n++;
        } else if (plen != slen || memcmp(pp, sp, plen) != 0) {
            return 0;
        }
        pp += plen;
        sp += slen;
        if (*pp == '\0' && *sp == '\0')
            return 1;
    }
    return 0;
}

/* 1 when a request with method is served by a route of route_method. */
static int route_method_ok(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* Appends method to the comma-separated list in allow unless it is there. */
static void route_allow_add(char *allow, size_t allowlen, const char *method)
{
    size_t mlen = strlen(method);
    for (const char *at = allow; (at = strstr(at, method)) != NULL; at += mlen)
        if ((at == allow || at[-1] == ' ') && (at[mlen] == '\0' || at[mlen] == ','))
            return;
    size_t used = strlen(allow);
    /* a table with more methods than fit is cut: the header stays well formed */
    if (used + (used ? 2 : 0) + mlen >= allowlen)
        return;
    snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", method);
}

route_match_t route_match(const route_t *routes, size_t n, const char *method, const char *path,
                          const route_t **found, route_params_t *params, char *allow,
                          size_t allowlen)
{
    *found = NULL;
    if (allowlen)
        allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const route_t *r = &routes[i];
        if (!route_path_matches(r->pattern, path, params))
            continue;
        if (route_method_ok(r->method, method)) {
            *found = r;
            return ROUTE_FOUND;
        }
        if (!*found)
            *found = r; /* the path's first route, for its counters */
    }
    if (!*found)
        return ROUTE_NO_PATH;
    /* Again, for the Allow list: only now is it known to be needed. */
    route_params_t ignored;
    for (size_t i = 0; i < n && allowlen; i++) {
        if (!route_path_matches(routes[i].pattern, path, &ignored))
            continue;
        route_allow_add(allow, allowlen, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            route_allow_add(allow, allowlen, "HEAD");
    }
    return ROUTE_NO_METHOD;
}

const char *route_param(const route_params_t *p, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < p->n; i++)
        if (p->name_len[i] == len && memcmp(p->name[i], name, len) == 0)
            return p->value[i];
    return NULL;
}

/* NULL when pattern is well formed, else what is wrong with it. */
static const char *route_pattern_fault(const char *pattern)
{
    int params = 0;
    if (!pattern || pattern[0] != '/')
        return "the pattern must start with /";
    for (const char *s = pattern + 1;; s++) {
        size_t len = route_seg_len(s);
        if (route_is_param(s, len)) {
            if (len == 2 || memchr(s + 1, '{', len - 2) || memchr(s + 1, '}', len - 2))
                return "a parameter needs a name, without braces";
            if (++params > ROUTE_PARAMS_MAX)
                return "too many parameters";
        } else if (memchr(s, '{', len) || memchr(s, '}', len)) {
            return "a parameter must be a whole segment";
        }
        s += len;
        if (*s == '\0')
            return NULL;
    }
}

int route_check(const route_t *routes, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const route_t *r = &routes[i];
        const char *why = NULL;
        if (!r->method || !r->method[0])
            why = "no method";
        else if (!r->handle)
            why = "no handler";
        else if (r->stat < 1 || r->stat >= HTTP_STATS_SLOTS)
            why = "its counters slot is out of range";
        else
            why = route_pattern_fault(r->pattern);
        if (why) {
            snprintf(err, errlen, "route %zu (%s %s): %s", i, r->method ? r->method : "?",
                     r->pattern ? r->pattern : "?", why);
            return -1;
        }
    }
    return 0;
}
