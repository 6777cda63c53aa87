/* mustache: a Mustache renderer conforming to the official specification
 * (interpolation, sections, inverted sections, partials, comments,
 * set-delimiters and the optional inheritance module), on cJSON data.
 *
 * Lambdas are not supported (the spec marks them optional). */
#ifndef CRIER_MUSTACHE_H
#define CRIER_MUSTACHE_H

#include "util/buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Looks up a partial (or a parent template, for inheritance) by name.
 * Returns 0 and sets *src to a malloc'd template text the renderer frees,
 * 1 when no such partial exists, -1 on error. */
typedef int (*mst_partial_fn)(void *ud, const char *name, char **src);

typedef struct mst_options {
    mst_partial_fn partials; /* may be NULL: every partial is then missing */
    void *partials_ud;
    /* strict: an interpolation tag ({{x}}, {{{x}}}, {{&x}}) whose name
     * resolves to nothing, and a missing partial or parent, are errors
     * instead of the spec's empty string. Sections and inverted sections over
     * a missing name stay falsey, which is how templates write optional parts.
     * crier's own templates render strict; the conformance suite does not. */
    int strict;
    size_t max_output; /* ceiling for the rendered text; 0 means 4 MiB */
    int max_depth;     /* partial/section nesting ceiling; 0 means 64 */
} mst_options_t;

/* Renders template src with data (the root context) into out. Returns 0, or
 * -1 with a message in err naming the problem and its line ("line 3: missing
 * variable 'client_name'", "line 1: unclosed section 'items'"). */
int mst_render(const char *src, const cJSON *data, const mst_options_t *opt, buf_t *out, char *err,
               size_t errlen);

/* Parses src only, reporting syntax errors as mst_render would. */
int mst_check(const char *src, char *err, size_t errlen);

/* Calls fn with the name of every partial ({{>name}}) and parent
 * ({{<name}}) src refers to, in order, as the tokenizer reads them (so
 * set-delimiter tags are honoured); name is not NUL-terminated. A non-zero
 * return from fn stops the walk. Returns 0, or -1 with err when src does
 * not parse. */
typedef int (*mst_ref_fn)(void *ud, const char *name, size_t len);
int mst_references(const char *src, mst_ref_fn fn, void *ud, char *err, size_t errlen);

#endif
