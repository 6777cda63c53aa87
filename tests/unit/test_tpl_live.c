/* The live catalogue: each template's version follows exactly the files it
 * is made of; a catalogue held by a reader survives a swap and keeps
 * rendering its own text; a broken set (a parse error, or a type that no
 * longer renders its example) never replaces the live one and is reported
 * with its file and line; readers on several threads never see a catalogue
 * freed or mixed while reloads swap it under them; an edit in a watched
 * folder goes live by itself. */
#include "template/catalog.h"
#include "template/check.h"
#include "template/live.h"
#include "util/buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARK_B "Edition B of the reminder."

static const tpl_check_opts_t opts = {
    .site = {.brand_name = "Planiva",
             .support_email = "help@planiva.example",
             .physical_address = "742 Evergreen Terrace, Springfield, OR 97403",
             .public_url = "https://crier.planiva.example"},
    .sms_segment_budget = 2,
};

static char shipped[4096];

/* A private copy of the shipped catalogue, removed by rm_dir. */
static char *copy_catalogue(void)
{
    char tmpl[] = "/tmp/crier-tpl-live-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -R '%s/.' '%s/'", shipped, d);
    assert_int_equal(system(cmd), 0);
    return strdup(d);
}

static void rm_dir(char *d)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

static char *read_file(const char *dir, const char *rel)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(buf_append(&b, chunk, n), 0);
    fclose(f);
    char *s = buf_detach(&b);
    return s ? s : strdup("");
}

/* Writes text as dir/rel the way a deployment should: a new file renamed
 * over the old one, so no reader ever sees half of it. */
static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* reminder.txt with MARK_B in its content, or as shipped. */
static char *reminder_b(const char *shipped_text)
{
    const char *at = strstr(shipped_text, "A quick reminder.");
    assert_non_null(at);
    size_t head = (size_t)(at - shipped_text);
    size_t n = strlen(shipped_text) + strlen(MARK_B) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%.*s%s\n%s", (int)head, shipped_text, MARK_B, at);
    return s;
}

static cJSON *example_ctx(const char *type)
{
    char rel[128];
    snprintf(rel, sizeof rel, "examples/%s.json", type);
    char *text = read_file(shipped, rel);
    cJSON *req = cJSON_Parse(text);
    free(text);
    assert_non_null(req);
    cJSON *ctx = tpl_check_context(&opts.site, req);
    cJSON_Delete(req);
    assert_non_null(ctx);
    return ctx;
}

/* 1 when the reminder email rendered from c carries MARK_B, 0 when not. */
static int renders_b(const tpl_catalog_t *c, const cJSON *ctx)
{
    tpl_email_t em;
    char err[512];
    assert_int_equal(tpl_render_email(c, "reminder", ctx, &em, err, sizeof err), 0);
    int b = strstr(em.text, MARK_B) != NULL;
    tpl_email_free(&em);
    return b;
}

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("CRIER_SOURCE_DIR");
    if (!src)
        return -1;
    snprintf(shipped, sizeof shipped, "%s/templates", src);
    return 0;
}

static tpl_catalog_t *load(const char *dir)
{
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(dir, err, sizeof err);
    if (!c)
        fail_msg("%s: %s", dir, err);
    return c;
}

static void test_versions_follow_files(void **state)
{
    (void)state;
    char *dir = copy_catalogue();
    tpl_catalog_t *a = load(dir);
    /* nine email types, eight on each short channel */
    assert_int_equal(tpl_catalog_count(a), 9 + 8 + 8);
    tpl_source_t s;
    assert_int_equal(tpl_template_source(a, "reminder", "email", &s), 0);
    assert_int_equal(strlen(s.version), 16);
    assert_non_null(s.subject);
    assert_non_null(strstr(s.content, "A quick reminder."));
    assert_int_equal(tpl_template_source(a, "digest", "sms", &s), -1);
    assert_null(tpl_template_version(a, "nope", "email"));

    buf_t files;
    buf_init(&files, 1 << 22);
    assert_int_equal(tpl_template_files_json(a, "reminder", "email", &files), 0);
    cJSON *fj = cJSON_Parse(files.data);
    assert_non_null(fj);
    /* its own three parts and both layouts it inherits from, nothing else */
    assert_int_equal(cJSON_GetArraySize(fj), 5);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(fj, "email/reminder.subject"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(fj, "email/layout.html"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(fj, "email/layout.txt"));
    cJSON_Delete(fj);
    buf_free(&files);

    /* a partial used by one template changes that template's version only */
    char path[4200];
    snprintf(path, sizeof path, "%s/email/partials", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    write_file(dir, "email/partials/sig.mustache", "Signed: A\n");
    char *txt = read_file(dir, "email/reminder.txt");
    char *at = strstr(txt, "{{/content}}");
    assert_non_null(at);
    char with_sig[8192];
    snprintf(with_sig, sizeof with_sig, "%.*s{{>sig}}\n%s", (int)(at - txt), txt, at);
    free(txt);
    write_file(dir, "email/reminder.txt", with_sig);
    tpl_catalog_t *b = load(dir);
    assert_string_not_equal(tpl_template_version(a, "reminder", "email"),
                            tpl_template_version(b, "reminder", "email"));
    assert_string_equal(tpl_template_version(a, "welcome", "email"),
                        tpl_template_version(b, "welcome", "email"));
    assert_string_equal(tpl_template_version(a, "reminder", "sms"),
                        tpl_template_version(b, "reminder", "sms"));
    buf_init(&files, 1 << 22);
    assert_int_equal(tpl_template_files_json(b, "reminder", "email", &files), 0);
    assert_non_null(strstr(files.data, "\"email/partials/sig.mustache\":\"Signed: A\\n\""));
    buf_free(&files);

    write_file(dir, "email/partials/sig.mustache", "Signed: B\n");
    tpl_catalog_t *c = load(dir);
    assert_string_not_equal(tpl_template_version(b, "reminder", "email"),
                            tpl_template_version(c, "reminder", "email"));
    assert_string_equal(tpl_template_version(b, "welcome", "email"),
                        tpl_template_version(c, "welcome", "email"));

    /* a layout every email inherits from changes every email, no SMS */
    char *layout = read_file(dir, "email/layout.txt");
    char more[16384];
    snprintf(more, sizeof more, "%s\n", layout);
    free(layout);
    write_file(dir, "email/layout.txt", more);
    tpl_catalog_t *d = load(dir);
    for (size_t i = 0; i < tpl_catalog_count(d); i++) {
        tpl_source_t x;
        assert_int_equal(tpl_catalog_entry(d, i, &x), 0);
        const char *before = tpl_template_version(c, x.name, x.channel);
        if (strcmp(x.channel, "email") == 0)
            assert_string_not_equal(before, x.version);
        else
            assert_string_equal(before, x.version);
    }
    assert_string_not_equal(tpl_catalog_version(c), tpl_catalog_version(d));
    tpl_catalog_free(a);
    tpl_catalog_free(b);
    tpl_catalog_free(c);
    tpl_catalog_free(d);
    rm_dir(dir);
}

/* A reader's catalogue outlives the swap that replaces it. */
static void test_swap_while_held(void **state)
{
    (void)state;
    char *dir = copy_catalogue();
    char err[768];
    tpl_live_t *t = tpl_live_start(dir, &opts, 0, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    cJSON *ctx = example_ctx("reminder");
    tpl_catalog_t *held = tpl_live_acquire(t);
    char old_version[32];
    snprintf(old_version, sizeof old_version, "%s", tpl_catalog_version(held));
    assert_int_equal(renders_b(held, ctx), 0);

    char *txt = read_file(dir, "email/reminder.txt");
    char *b = reminder_b(txt);
    write_file(dir, "email/reminder.txt", b);
    free(txt);
    free(b);
    assert_int_equal(tpl_live_reload(t), 0);

    tpl_catalog_t *now = tpl_live_acquire(t);
    assert_string_not_equal(tpl_catalog_version(now), old_version);
    assert_int_equal(renders_b(now, ctx), 1);
    /* the one held since before renders what it always did */
    assert_int_equal(renders_b(held, ctx), 0);
    assert_string_equal(tpl_catalog_version(held), old_version);
    tpl_catalog_free(held);
    assert_int_equal(renders_b(now, ctx), 1);

    /* the same files again: passes, nothing changes */
    assert_int_equal(tpl_live_reload(t), 0);
    tpl_catalog_t *same = tpl_live_acquire(t);
    assert_ptr_equal(same, now);
    tpl_catalog_free(same);
    tpl_catalog_free(now);

    tpl_live_counters_t tc;
    tpl_live_counters(t, &tc);
    assert_int_equal(tc.reloads_ok, 2);
    assert_int_equal(tc.reloads_error, 0);
    assert_int_equal(tc.last_ok, 1);
    cJSON_Delete(ctx);
    tpl_live_stop(t);
    rm_dir(dir);
}

static cJSON *status(tpl_live_t *t)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    assert_int_equal(tpl_live_status_json(t, &b), 0);
    cJSON *j = cJSON_Parse(b.data);
    buf_free(&b);
    assert_non_null(j);
    return j;
}

/* A set that fails to parse, or parses and fails its example render, is
 * refused: the live one stays and the error names the file and line. */
static void test_broken_set_rejected(void **state)
{
    (void)state;
    char *dir = copy_catalogue();
    char err[768];
    tpl_live_t *t = tpl_live_start(dir, &opts, 0, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    tpl_catalog_t *c = tpl_live_acquire(t);
    char live[32];
    snprintf(live, sizeof live, "%s", tpl_catalog_version(c));
    tpl_catalog_free(c);

    char *html = read_file(dir, "email/reminder.html");
    char broken[16384];
    snprintf(broken, sizeof broken, "%s{{#never_closed}}\n", html);
    write_file(dir, "email/reminder.html", broken);
    assert_int_equal(tpl_live_reload(t), -1);
    c = tpl_live_acquire(t);
    assert_string_equal(tpl_catalog_version(c), live);
    tpl_catalog_free(c);
    cJSON *st = status(t);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(st, "version")), live);
    const cJSON *last = cJSON_GetObjectItem(st, "last_reload");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(last, "ok")));
    const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(last, "error"));
    assert_non_null(why);
    assert_non_null(strstr(why, "email/reminder.html"));
    assert_non_null(strstr(why, "line "));
    assert_non_null(strstr(why, "never_closed"));
    cJSON_Delete(st);

    /* parses, but the example no longer renders: a variable it lacks */
    write_file(dir, "email/reminder.html", html);
    char *txt = read_file(dir, "email/reminder.txt");
    char *at = strstr(txt, "{{/content}}");
    char missing[8192];
    snprintf(missing, sizeof missing, "%.*s{{& not_in_any_context}}\n%s", (int)(at - txt), txt, at);
    write_file(dir, "email/reminder.txt", missing);
    assert_int_equal(tpl_live_reload(t), -1);
    st = status(t);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(st, "version")), live);
    why =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "last_reload"), "error"));
    assert_non_null(why);
    assert_non_null(strstr(why, "email/reminder"));
    assert_non_null(strstr(why, "not_in_any_context"));
    cJSON_Delete(st);

    /* fixed: passes, the error is gone, and the same version is live */
    write_file(dir, "email/reminder.txt", txt);
    assert_int_equal(tpl_live_reload(t), 0);
    st = status(t);
    last = cJSON_GetObjectItem(st, "last_reload");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(last, "ok")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(last, "error")));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(st, "version")), live);
    const cJSON *list = cJSON_GetObjectItem(st, "templates");
    assert_int_equal(cJSON_GetArraySize(list), 25);
    cJSON_Delete(st);
    tpl_live_counters_t tc;
    tpl_live_counters(t, &tc);
    assert_int_equal(tc.reloads_error, 2);
    assert_int_equal(tc.reloads_ok, 1);
    free(txt);
    free(html);
    tpl_live_stop(t);

    /* a first set that fails has nothing to fall back on */
    write_file(dir, "email/reminder.html", broken);
    assert_null(tpl_live_start(dir, &opts, 0, err, sizeof err));
    assert_non_null(strstr(err, "email/reminder.html"));
    rm_dir(dir);
}

/* Readers on several threads, each rendering one catalogue per message,
 * while the main thread swaps two editions back and forth: every message
 * is wholly of the edition its catalogue's version says. */
#define READERS 4
#define SWAPS   40

typedef struct reader {
    tpl_live_t *t;
    const char *version_b; /* the reminder email's version in edition B */
    atomic_int *stop;
    long renders, mismatches;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    cJSON *ctx = example_ctx("reminder");
    while (!atomic_load(r->stop) || r->renders == 0) {
        tpl_catalog_t *c = tpl_live_acquire(r->t);
        int is_b = strcmp(tpl_template_version(c, "reminder", "email"), r->version_b) == 0;
        tpl_email_t em;
        char err[512];
        if (tpl_render_email(c, "reminder", ctx, &em, err, sizeof err) != 0 ||
            (strstr(em.text, MARK_B) != NULL) != is_b)
            r->mismatches++;
        tpl_email_free(&em);
        tpl_catalog_free(c);
        r->renders++;
    }
    cJSON_Delete(ctx);
    return NULL;
}

static void test_readers_during_swaps(void **state)
{
    (void)state;
    char *dir = copy_catalogue();
    char *a = read_file(dir, "email/reminder.txt");
    char *b = reminder_b(a);
    write_file(dir, "email/reminder.txt", b);
    tpl_catalog_t *cb = load(dir);
    char version_b[32];
    snprintf(version_b, sizeof version_b, "%s", tpl_template_version(cb, "reminder", "email"));
    tpl_catalog_free(cb);
    write_file(dir, "email/reminder.txt", a);

    char err[768];
    tpl_live_t *t = tpl_live_start(dir, &opts, 0, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    atomic_int stop;
    atomic_init(&stop, 0);
    reader_t rd[READERS];
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++) {
        rd[i] = (reader_t){.t = t, .version_b = version_b, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
    }
    for (int i = 0; i < SWAPS; i++) {
        write_file(dir, "email/reminder.txt", i % 2 == 0 ? b : a);
        assert_int_equal(tpl_live_reload(t), 0);
    }
    atomic_store(&stop, 1);
    long renders = 0;
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rd[i].mismatches, 0);
        renders += rd[i].renders;
    }
    assert_true(renders >= READERS);
    tpl_live_counters_t tc;
    tpl_live_counters(t, &tc);
    assert_int_equal(tc.reloads_ok, SWAPS);
    tpl_live_stop(t);
    free(a);
    free(b);
    rm_dir(dir);
}

/* An edit renamed into a watched folder goes live without a reload call. */
static void test_watched_edit_goes_live(void **state)
{
    (void)state;
    char *dir = copy_catalogue();
    char err[768];
    tpl_live_t *t = tpl_live_start(dir, &opts, 1, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    cJSON *ctx = example_ctx("reminder");
    char *a = read_file(dir, "email/reminder.txt");
    char *b = reminder_b(a);
    write_file(dir, "email/reminder.txt", b);
    int live_b = 0;
    for (int i = 0; i < 200 && !live_b; i++) { /* at most 10 s */
        tpl_catalog_t *c = tpl_live_acquire(t);
        live_b = renders_b(c, ctx);
        tpl_catalog_free(c);
        if (!live_b) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(live_b, 1);
    cJSON_Delete(ctx);
    free(a);
    free(b);
    tpl_live_stop(t);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_follow_files),  cmocka_unit_test(test_swap_while_held),
        cmocka_unit_test(test_broken_set_rejected),    cmocka_unit_test(test_readers_during_swaps),
        cmocka_unit_test(test_watched_edit_goes_live),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
