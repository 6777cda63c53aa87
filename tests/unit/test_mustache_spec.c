/* Runs every case of the official Mustache spec files (kept in the tree,
 * with the spec's licence, under tests/conformance/mustache-spec) through
 * mst_render in non-strict mode, with each case's partials. */
#include "template/mustache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MIN_CASES 163
#define SPEC_MAX_FILE  (4 * 1024 * 1024)

/* Partials come from the case's "partials" object. */
static int case_partial(void *ud, const char *name, char **src)
{
    const cJSON *partials = ud;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(partials, name);
    if (!cJSON_IsString(p))
        return 1;
    *src = strdup(p->valuestring);
    return *src ? 0 : -1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf_t b;
    buf_init(&b, SPEC_MAX_FILE);
    char chunk[8192];
    size_t n;
    int ok = 1;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(&b, chunk, n) != 0) {
            ok = 0;
            break;
        }
    fclose(f);
    if (!ok) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_file(const char *path, const char *file, int *passed, int *failed)
{
    char *text = read_file(path);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    assert_non_null(doc);
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(doc, "tests");
    assert_true(cJSON_IsArray(tests));
    const cJSON *tc;
    cJSON_ArrayForEach(tc, tests)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "name"));
        const char *tpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "template"));
        const char *want = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "expected"));
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(tc, "data");
        const cJSON *partials = cJSON_GetObjectItemCaseSensitive(tc, "partials");
        assert_non_null(name);
        assert_non_null(tpl);
        assert_non_null(want);

        mst_options_t opt = {.partials = case_partial, .partials_ud = (void *)partials};
        buf_t out;
        buf_init(&out, 1 << 20);
        char err[256];
        int rc = mst_render(tpl, data, &opt, &out, err, sizeof err);
        const char *got = out.data ? out.data : "";
        if (rc == 0 && strcmp(got, want) == 0) {
            (*passed)++;
        } else {
            (*failed)++;
            if (rc != 0)
                printf("FAIL %s: %s: error: %s\n", file, name, err);
            else
                printf("FAIL %s: %s:\n  expected: [%s]\n  got:      [%s]\n", file, name, want, got);
        }
        buf_free(&out);
    }
    cJSON_Delete(doc);
}

static void test_spec(void **state)
{
    (void)state;
    const char *src = getenv("CRIER_SOURCE_DIR");
    assert_non_null(src);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/conformance/mustache-spec", src);
    DIR *d = opendir(dir);
    if (!d)
        fprintf(stderr, "cannot open %s\n", dir);
    assert_non_null(d);

    char *names[64];
    size_t nnames = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nnames < 64) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            names[nnames] = strdup(e->d_name);
            assert_non_null(names[nnames]);
            nnames++;
        }
    }
    closedir(d);
    qsort(names, nnames, sizeof names[0], by_name);

    int passed = 0, failed = 0;
    for (size_t i = 0; i < nnames; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        run_file(path, names[i], &passed, &failed);
        free(names[i]);
    }
    printf("%d passed, %d failed\n", passed, failed);
    assert_int_equal(failed, 0);
    assert_true(passed + failed >= SPEC_MIN_CASES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_spec)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
