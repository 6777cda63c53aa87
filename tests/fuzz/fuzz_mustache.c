/* Fuzzes the Mustache renderer. The input is a template, a NUL, then a
 * JSON context; when the context part is missing or is no JSON object, a
 * fixed context stands in. Each input is checked (mst_check), walked for
 * partials (mst_references) and rendered loose and strict, with a partial
 * lookup that knows "p" (a fixed text) and "self" (the template itself,
 * so recursion meets the depth ceiling). Context and output are kept
 * small so that nested sections stay bounded. */
#include "fuzz_input.h"
#include "template/mustache.h"
#include "util/buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MST_MAX_TEMPLATE 8192
#define FUZZ_MST_MAX_NODES    48 /* values in the context, all told */

static const char fixed_context[] =
    "{\"client_name\":\"Asha Rao\",\"plan\":{\"title\":\"Garden party\",\"date\":\"2026-06-14\","
    "\"guests\":12,\"confirmed\":true},\"items\":[{\"name\":\"Tent\",\"qty\":1},{\"name\":"
    "\"Chairs\",\"qty\":24}],\"empty\":[],\"none\":null,\"html\":\"<b>&\\\"'</b>\","
    "\"nested\":{\"a\":{\"b\":{\"c\":\"deep\"}}}}";

static int count_nodes(const cJSON *v)
{
    int n = 0;
    for (const cJSON *c = v; c && n <= FUZZ_MST_MAX_NODES; c = c->next)
        n += 1 + count_nodes(c->child);
    return n;
}

static int partial(void *ud, const char *name, char **src)
{
    const char *text = NULL;
    if (strcmp(name, "p") == 0)
        text = "[{{client_name}}{{#items}}<{{name}}>{{/items}}]";
    else if (strcmp(name, "self") == 0)
        text = ud;
    if (!text)
        return 1;
    *src = fuzz_strndup((const uint8_t *)text, strlen(text));
    return *src ? 0 : -1;
}

static int reference(void *ud, const char *name, size_t len)
{
    size_t *total = ud;
    (void)name;
    *total += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const uint8_t *rest = data;
    size_t left = size;
    char *tpl = fuzz_next(&rest, &left);
    if (!tpl)
        return 0;
    if (strlen(tpl) > FUZZ_MST_MAX_TEMPLATE) {
        free(tpl);
        return 0;
    }
    cJSON *ctx = left ? cJSON_ParseWithLength((const char *)rest, left) : NULL;
    if (!cJSON_IsObject(ctx) || count_nodes(ctx) > FUZZ_MST_MAX_NODES) {
        cJSON_Delete(ctx);
        ctx = cJSON_Parse(fixed_context);
        if (!ctx) {
            free(tpl);
            return 0;
        }
    }

    char err[256];
    (void)mst_check(tpl, err, sizeof err);
    size_t total = 0;
    (void)mst_references(tpl, reference, &total, err, sizeof err);

    for (int strict = 0; strict <= 1; strict++) {
        mst_options_t opt = {
            .partials = partial,
            .partials_ud = tpl,
            .strict = strict,
            .max_output = 64 * 1024,
            .max_depth = 8,
        };
        buf_t out;
        buf_init(&out, 128 * 1024);
        (void)mst_render(tpl, ctx, &opt, &out, err, sizeof err);
        buf_free(&out);
    }
    cJSON_Delete(ctx);
    free(tpl);
    return 0;
}
