/* The shipped email catalogue: every type renders with its example
 * context, is well-formed, carries the CAN-SPAM footer and escapes
 * request data in HTML; a link is only ever http, https or mailto; the
 * loader reads regular files inside the catalogue only (a ConfigMap volume's
 * links load, a link out of it or a FIFO is refused). */
#include "template/catalog.h"
#include "validate.h"
#include "template/context.h"
#include "util/buf.h"

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
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOSTILE_NAME "<script>alert(1)</script> Zoë"
#define ESCAPED_NAME "&lt;script&gt;alert(1)&lt;/script&gt; Zoë"
#define TEST_ADDRESS "742 Evergreen Terrace, Springfield, OR 97403"

static const tpl_site_t site = {.brand_name = "Planiva",
                                .support_email = "help@planiva.example",
                                .physical_address = TEST_ADDRESS,
                                .public_url = "https://crier.planiva.example"};

/* What the engine puts in every email's footer (tpl_context_set_links). */
#define TEST_LINK                                                                                  \
    "https://crier.planiva.example/u/AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static char templates_dir[4096];

/* A context as the email driver makes it: crier's names and the links. */
static cJSON *email_ctx(const cJSON *req, const tpl_site_t *s, const char *client_name,
                        const char *plan_id, const char *id)
{
    cJSON *ctx = tpl_context_build(req, s, client_name, plan_id, id);
    assert_non_null(ctx);
    assert_int_equal(tpl_context_set_links(ctx, TEST_LINK, TEST_LINK), 0);
    return ctx;
}

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src)
        return -1;
    snprintf(templates_dir, sizeof templates_dir, "%s/templates", src);
    return 0;
}

static cJSON *load_example(const char *type)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/examples/%s.json", templates_dir, type);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(buf_append(&b, chunk, n), 0);
    fclose(f);
    cJSON *j = cJSON_Parse(b.data);
    buf_free(&b);
    assert_non_null(j);
    return j;
}

/* Tiny tag-balance checker: every non-void element closes, in order.
 * Returns 1 when balanced. */
static int html_balanced(const char *html)
{
    static const char *const voids[] = {"area",  "base", "br",   "col",    "embed", "hr", "img",
                                        "input", "link", "meta", "source", "track", "wbr"};
    char stack[256][32];
    int depth = 0;
    for (const char *p = strchr(html, '<'); p; p = strchr(p, '<')) {
        if (strncmp(p, "<!--", 4) == 0) {
            p = strstr(p, "-->");
            if (!p)
                return 0;
            continue;
        }
        const char *end = strchr(p, '>');
        if (!end)
            return 0;
        if (p[1] == '!') {
            p = end;
            continue;
        }
        int closing = p[1] == '/';
        const char *nm = p + 1 + closing;
        size_t len = strspn(nm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        if (len == 0 || len >= 32)
            return 0;
        char name[32];
        memcpy(name, nm, len);
        name[len] = '\0';
        if (closing) {
            if (depth == 0 || strcasecmp(stack[depth - 1], name) != 0)
                return 0;
            depth--;
        } else {
            int is_void = end[-1] == '/';
            for (size_t i = 0; i < sizeof voids / sizeof voids[0]; i++)
                is_void |= strcasecmp(voids[i], name) == 0;
            if (!is_void) {
                if (depth == 256)
                    return 0;
                strcpy(stack[depth++], name);
            }
            if (strcasecmp(name, "style") == 0) {
                end = strstr(end, "</style>");
                if (!end)
                    return 0;
                end--;
            }
        }
        p = end + 1;
    }
    return depth == 0;
}

static void test_checker_catches_imbalance(void **state)
{
    (void)state;
    assert_true(html_balanced("<p>a<br>b<img src=x></p>"));
    assert_false(html_balanced("<div><p>x</div></p>"));
    assert_false(html_balanced("<div>"));
}

static void test_every_type_renders(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    if (!c)
        fprintf(stderr, "load: %s\n", err);
    assert_non_null(c);
    assert_int_equal(strlen(tpl_catalog_version(c)), 16);

    /* every email, the engine's digest too */
    for (size_t i = 0; i < VAL_MESSAGE_TYPES; i++) {
        const char *type = val_message_types[i];
        cJSON *req = load_example(type);
        cJSON *ctx = email_ctx(req, &site, HOSTILE_NAME, "5b1d7c2e-plan", "comm-1");
        assert_non_null(ctx);
        tpl_email_t m;
        int rc = tpl_render_email(c, type, ctx, &m, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", type, err);
        assert_int_equal(rc, 0);
        assert_true(m.subject[0] != '\0');
        assert_null(strchr(m.subject, '\n'));
        assert_null(strchr(m.subject, '\r'));
        assert_true(strlen(m.text) > 100);
        assert_true(strlen(m.html) > 100);
        assert_non_null(strstr(m.html, TEST_ADDRESS));
        assert_non_null(strstr(m.text, TEST_ADDRESS));
        assert_non_null(strstr(m.html, "help@planiva.example"));
        assert_non_null(strstr(m.html, "Planiva"));
        if (!html_balanced(m.html))
            fprintf(stderr, "%s: unbalanced HTML\n", type);
        assert_true(html_balanced(m.html));
        assert_non_null(strstr(m.html, ESCAPED_NAME));
        assert_null(strstr(m.html, "<script>"));
        /* the text part is not HTML: the name reads as written there */
        assert_non_null(strstr(m.text, HOSTILE_NAME));
        /* the way out is visible in both parts (CAN-SPAM), a link in HTML */
        assert_non_null(strstr(m.text, TEST_LINK));
        assert_non_null(strstr(m.html, "<a href=\"" TEST_LINK "\">Unsubscribe</a>"));
        tpl_email_free(&m);
        cJSON_Delete(ctx);
        cJSON_Delete(req);
    }
    tpl_catalog_free(c);
}

/* Removes a required variable from the example and expects an error
 * naming it. */
static void expect_missing(tpl_catalog_t *c, const char *type, const char *key,
                           const char *client_name)
{
    cJSON *req = load_example(type);
    cJSON_DeleteItemFromObjectCaseSensitive(req, key);
    cJSON *ctx = email_ctx(req, &site, client_name, "p-1", "c-1");
    tpl_email_t m;
    char err[512];
    assert_int_equal(tpl_render_email(c, type, ctx, &m, err, sizeof err), -1);
    const char *want = key ? key : "client_name";
    if (!strstr(err, want))
        fprintf(stderr, "error does not name %s: %s\n", want, err);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "line"));
    assert_null(m.html);
    cJSON_Delete(ctx);
    cJSON_Delete(req);
}

static void test_missing_required_variable(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    assert_non_null(c);
    expect_missing(c, "welcome", "event_type", "Asha");
    expect_missing(c, "blueprint_delivery", "blueprint_url", "Asha");
    expect_missing(c, "reminder", "pending_action", "Asha");
    expect_missing(c, "error_notification", NULL, NULL); /* no client_name */
    tpl_catalog_free(c);
}

static void test_unknown_type_and_context_override(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    assert_non_null(c);
    tpl_email_t m;
    cJSON *ctx = tpl_context_build(NULL, &site, "A", "p", "c");
    assert_int_equal(tpl_render_email(c, "../../etc/passwd", ctx, &m, err, sizeof err), -1);
    cJSON_Delete(ctx);

    /* the request cannot replace crier's own keys */
    cJSON *req = cJSON_Parse("{\"client_name\":\"Mallory\",\"site\":{\"brand_name\":\"Evil\"},"
                             "\"event_type\":\"party\"}");
    ctx = tpl_context_build(req, &site, "Asha", "p", "c");
    assert_string_equal(cJSON_GetObjectItem(ctx, "client_name")->valuestring, "Asha");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(ctx, "site"), "brand_name")->valuestring,
        "Planiva");
    assert_string_equal(cJSON_GetObjectItem(ctx, "event_type")->valuestring, "party");
    /* and the request object itself is left alone */
    assert_string_equal(cJSON_GetObjectItem(req, "client_name")->valuestring, "Mallory");
    cJSON_Delete(ctx);
    cJSON_Delete(req);

    /* nor the footer's links: a request's are dropped, so an email without
     * the engine's fails (strict) rather than link somewhere else */
    req = load_example("welcome");
    cJSON_AddStringToObject(req, "unsubscribe_url", "https://evil.example/u/x");
    cJSON_AddStringToObject(req, "preferences_url", "https://evil.example/p/x");
    ctx = tpl_context_build(req, &site, "Asha", "p", "c");
    assert_null(cJSON_GetObjectItem(ctx, "unsubscribe_url"));
    assert_null(cJSON_GetObjectItem(ctx, "preferences_url"));
    assert_int_equal(tpl_render_email(c, "welcome", ctx, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "unsubscribe_url"));
    assert_int_equal(tpl_context_set_links(ctx, TEST_LINK, TEST_LINK), 0);
    assert_int_equal(tpl_render_email(c, "welcome", ctx, &m, err, sizeof err), 0);
    assert_null(strstr(m.html, "evil.example"));
    assert_null(strstr(m.text, "evil.example"));
    assert_non_null(strstr(m.text, TEST_LINK));
    tpl_email_free(&m);
    cJSON_Delete(ctx);
    cJSON_Delete(req);
    tpl_catalog_free(c);
}

static void test_bad_directory(void **state)
{
    (void)state;
    char err[512];
    assert_null(tpl_catalog_load("/nonexistent-crier-templates", err, sizeof err));
    assert_true(err[0] != '\0');
}

/* A context value named like a link with another scheme is refused before
 * anything renders, naming the key: the second line behind the API. */
static void expect_link_refused(tpl_catalog_t *c, const char *type, cJSON *req, const char *key)
{
    cJSON *ctx = email_ctx(req, &site, "Asha", "p-1", "c-1");
    tpl_email_t m;
    char err[512];
    assert_int_equal(tpl_render_email(c, type, ctx, &m, err, sizeof err), -1);
    if (!strstr(err, key) || !strstr(err, "only http, https and mailto URLs"))
        fprintf(stderr, "error does not name %s: %s\n", key, err);
    assert_non_null(strstr(err, key));
    assert_non_null(strstr(err, "only http, https and mailto URLs"));
    assert_null(strstr(err, "alert")); /* the value is not quoted */
    assert_null(m.html);
    cJSON_Delete(ctx);
}

static void test_render_refuses_other_link_schemes(void **state)
{
    (void)state;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(templates_dir, err, sizeof err);
    assert_non_null(c);
    static const char *const bad[] = {"javascript:alert(1)",
                                      "JavaScript:alert(1)",
                                      " javascript:alert(1)",
                                      "data:text/html,alert",
                                      "vbscript:alert",
                                      "/relative",
                                      "http://"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *req = load_example("welcome");
        cJSON_ReplaceItemInObjectCaseSensitive(req, "plan_url", cJSON_CreateString(bad[i]));
        expect_link_refused(c, "welcome", req, "plan_url");
        cJSON_Delete(req);
    }
    /* inside a list, as vendor_options' select_url is */
    cJSON *req = load_example("vendor_options");
    cJSON *combo = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "vendor_combinations"), 1);
    assert_non_null(combo);
    cJSON_ReplaceItemInObjectCaseSensitive(combo, "select_url",
                                           cJSON_CreateString("javascript:alert(1)"));
    expect_link_refused(c, "vendor_options", req, "select_url");
    cJSON_Delete(req);

    /* site is configuration, not held to the rule (nor replaceable by the
     * request) */
    tpl_site_t odd = site;
    odd.public_url = "";
    req = load_example("welcome");
    cJSON *octx = email_ctx(req, &odd, "Asha", "p-1", "c-1");
    tpl_email_t om;
    assert_int_equal(tpl_render_email(c, "welcome", octx, &om, err, sizeof err), 0);
    tpl_email_free(&om);
    cJSON_Delete(octx);
    cJSON_Delete(req);

    /* the accepted schemes render as given */
    static const char *const good[] = {"https://app.planiva.example/p", "HTTP://planiva.example",
                                       "mailto:help@planiva.example"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        req = load_example("welcome");
        cJSON_ReplaceItemInObjectCaseSensitive(req, "plan_url", cJSON_CreateString(good[i]));
        cJSON *ctx = email_ctx(req, &site, "Asha", "p-1", "c-1");
        tpl_email_t m;
        assert_int_equal(tpl_render_email(c, "welcome", ctx, &m, err, sizeof err), 0);
        char href[128];
        snprintf(href, sizeof href, "href=\"%s\"", good[i]);
        assert_non_null(strstr(m.html, href));
        tpl_email_free(&m);
        cJSON_Delete(ctx);
        cJSON_Delete(req);
    }
    tpl_catalog_free(c);
}

/* ------------------------------------------------- files on disk */

static char tree[64]; /* scratch catalogue trees */

static void at(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", tree, rel);
}

/* Copies the regular files of the shipped catalogue's sub into dst. */
static void copy_dir(const char *sub, const char *dst)
{
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/%s", templates_dir, sub);
    at(to, sizeof to, dst);
    assert_int_equal(mkdir(to, 0700), 0);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char src[8400], out[8400];
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(out, sizeof out, "%s/%s", to, e->d_name);
        struct stat st;
        assert_int_equal(stat(src, &st), 0);
        if (!S_ISREG(st.st_mode))
            continue;
        FILE *in = fopen(src, "rb"), *o = fopen(out, "wb");
        assert_non_null(in);
        assert_non_null(o);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
            assert_int_equal(fwrite(chunk, 1, n, o), n);
        fclose(in);
        assert_int_equal(fclose(o), 0);
    }
    closedir(d);
}

static void link_at(const char *target, const char *rel)
{
    char path[256];
    at(path, sizeof path, rel);
    assert_int_equal(symlink(target, path), 0);
}

/* The layout Kubernetes gives a ConfigMap volume: the files in a
 * timestamped directory, "..data" linked to it, each entry a link through
 * "..data". Returns the catalogue's root. */
static const char *configmap_tree(void)
{
    static char root[128];
    char path[256];
    snprintf(root, sizeof root, "%s/cm", tree);
    assert_int_equal(mkdir(root, 0700), 0);
    at(path, sizeof path, "cm/..2026_01_01");
    assert_int_equal(mkdir(path, 0700), 0);
    copy_dir("email", "cm/..2026_01_01/email");
    copy_dir("sms", "cm/..2026_01_01/sms");
    copy_dir("whatsapp", "cm/..2026_01_01/whatsapp");
    link_at("..2026_01_01", "cm/..data");
    link_at("..data/email", "cm/email");
    link_at("..data/sms", "cm/sms");
    link_at("..data/whatsapp", "cm/whatsapp");
    return root;
}

static void test_files_on_disk(void **state)
{
    (void)state;
    snprintf(tree, sizeof tree, "/tmp/crier-cat-XXXXXX");
    assert_non_null(mkdtemp(tree));
    char err[512], path[256];

    /* links inside the catalogue load, to the same catalogue */
    tpl_catalog_t *shipped = tpl_catalog_load(templates_dir, err, sizeof err);
    assert_non_null(shipped);
    const char *root = configmap_tree();
    tpl_catalog_t *c = tpl_catalog_load(root, err, sizeof err);
    if (!c)
        fprintf(stderr, "configmap layout: %s\n", err);
    assert_non_null(c);
    assert_string_equal(tpl_catalog_version(c), tpl_catalog_version(shipped));
    tpl_catalog_free(c);
    tpl_catalog_free(shipped);

    /* a template linked to a file outside is refused, and not read */
    at(path, sizeof path, "secret.txt");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("root:$6$secret-token\n", f);
    assert_int_equal(fclose(f), 0);
    char target[256];
    at(target, sizeof target, "cm/..2026_01_01/email/welcome.txt");
    assert_int_equal(unlink(target), 0);
    assert_int_equal(symlink(path, target), 0);
    assert_null(tpl_catalog_load(root, err, sizeof err));
    assert_string_equal(err, "email/welcome.txt: symlink points outside cm");

    /* a FIFO is refused without waiting for a writer (the alarm would end
     * a blocked test) */
    assert_int_equal(unlink(target), 0);
    assert_int_equal(mkfifo(target, 0600), 0);
    alarm(10);
    assert_null(tpl_catalog_load(root, err, sizeof err));
    alarm(0);
    assert_string_equal(err, "email/welcome.txt: not a regular file");

    /* scratch removal: the tree's files are known */
    static const char *const subs[] = {"email", "sms", "whatsapp"};
    for (size_t i = 0; i < 3; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s/cm/..2026_01_01/%s", tree, subs[i]);
        DIR *d = opendir(dir);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[600];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (e->d_name[0] != '.')
                unlink(p);
        }
        closedir(d);
        rmdir(dir);
        snprintf(dir, sizeof dir, "%s/cm/%s", tree, subs[i]);
        unlink(dir);
    }
    at(path, sizeof path, "cm/..data");
    unlink(path);
    at(path, sizeof path, "cm/..2026_01_01");
    rmdir(path);
    at(path, sizeof path, "cm");
    rmdir(path);
    at(path, sizeof path, "secret.txt");
    unlink(path);
    rmdir(tree);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_catches_imbalance),
        cmocka_unit_test(test_every_type_renders),
        cmocka_unit_test(test_missing_required_variable),
        cmocka_unit_test(test_unknown_type_and_context_override),
        cmocka_unit_test(test_bad_directory),
        cmocka_unit_test(test_render_refuses_other_link_schemes),
        cmocka_unit_test(test_files_on_disk),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
