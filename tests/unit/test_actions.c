/* Action links: the token kind, the actions each message type declares
 * from its context, the links and reply hint they put into it, the
 * wording of the answer page, and the shipped templates showing them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "crypto/crypto.h"
#include "crypto/linktok.h"
#include "driver/actions.h"
#include "template/actions.h"
#include "template/catalog.h"
#include "template/context.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char KEY[32] = {9,  8,  7,  6,  5,  4,  3,  2,  1,  0,  11,
                                      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                      23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const char ID[] = "6a1f3c2e-8d4b-4f5a-9e7c-1b2d3e4f5a6b";

static cJSON *parse(const char *json)
{
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    return v;
}

static void test_token_kind(void **state)
{
    (void)state;
    linktok_t t = {.kind = LINKTOK_ACTION, .arg = 1, .day = 20600};
    memcpy(t.id, ID, sizeof ID);
    char tok[LINKTOK_TEXT_MAX];
    assert_int_equal(linktok_make(KEY, &t, tok), 0);
    linktok_t r;
    assert_int_equal(linktok_read(KEY, tok, strlen(tok), LINKTOK_ACTION, &r), 0);
    assert_int_equal(r.kind, LINKTOK_ACTION);
    assert_string_equal(r.id, ID);
    assert_int_equal(r.arg, 1);
    /* signed with its kind: no other use takes it, nor it another's */
    assert_int_equal(linktok_read(KEY, tok, strlen(tok), LINKTOK_CLICK, &r), -1);
    assert_int_equal(linktok_read(KEY, tok, strlen(tok), LINKTOK_UNSUB, &r), -1);
    t.kind = LINKTOK_CLICK;
    char click[LINKTOK_TEXT_MAX];
    assert_int_equal(linktok_make(KEY, &t, click), 0);
    assert_int_equal(linktok_read(KEY, click, strlen(click), LINKTOK_ACTION, &r), -1);
    /* as old as any link may be, and no older */
    r.day = 20600;
    assert_int_equal(linktok_expired(&r, (time_t)(20600 + 365) * 86400, 365), 0);
    assert_int_equal(linktok_expired(&r, (time_t)(20600 + 366) * 86400, 365), 1);
}

static void test_action_url(void **state)
{
    (void)state;
    cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char base[] = "https://crier.planiva.example/";
    cfg.public_url = base;
    cry_keys_t keys;
    memset(&keys, 0, sizeof keys);
    memcpy(keys.link, KEY, sizeof KEY);
    char url[ACTIONS_URL_MAX];
    assert_int_equal(actions_url(&cfg, &keys, ID, 2, (time_t)20600 * 86400, url), 0);
    const char *prefix = "https://crier.planiva.example/a/";
    assert_memory_equal(url, prefix, strlen(prefix));
    const char *tok = url + strlen(prefix);
    assert_int_equal(strlen(tok), LINKTOK_LEN);
    linktok_t r;
    assert_int_equal(linktok_read(KEY, tok, strlen(tok), LINKTOK_ACTION, &r), 0);
    assert_string_equal(r.id, ID);
    assert_int_equal(r.arg, 2);
    assert_int_equal(r.day, 20600);
    assert_int_equal(actions_url(&cfg, &keys, "not-a-uuid", 0, 0, url), -1);
}

static void test_vendor_options(void **state)
{
    (void)state;
    cJSON *ctx = parse("{\"vendor_combinations\": ["
                       " {\"name\": \"Lakeside classic\", \"id\": \"combo-a\"},"
                       " {\"title\": \"Modern courtyard\", \"id\": 42},"
                       " {\"name\": \"Garden\"}]}");
    act_list_t l;
    char err[256];
    assert_int_equal(act_declared("vendor_options"), 1);
    assert_int_equal(act_declare("vendor_options", ctx, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(l.a[i].action, "choose");
    assert_string_equal(l.a[0].value, "combo-a");
    assert_string_equal(l.a[0].label, "Lakeside classic");
    assert_string_equal(l.a[1].value, "42");
    assert_string_equal(l.a[1].label, "Modern courtyard");
    assert_string_equal(l.a[2].value, "3"); /* no id: its 1-based position */
    assert_string_equal(l.a[2].label, "Garden");

    char hint[ACT_HINT_MAX];
    act_reply_hint(&l, hint, sizeof hint);
    assert_string_equal(hint, "Reply 1 for Lakeside classic, 2 for Modern courtyard or 3 for "
                              "Garden.");
    l.n = 2;
    act_reply_hint(&l, hint, sizeof hint);
    assert_string_equal(hint, "Reply 1 for Lakeside classic or 2 for Modern courtyard.");
    act_reply_hint(&l, hint, 10); /* cut short it would name the wrong answers */
    assert_string_equal(hint, "");

    char *url[] = {"https://c.example/a/1", "https://c.example/a/2"};
    assert_int_equal(act_context_set(ctx, "vendor_options", &l, url), 0);
    const cJSON *combos = cJSON_GetObjectItem(ctx, "vendor_combinations");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(combos, 0), "action_url")->valuestring, url[0]);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(combos, 1), "action_url")->valuestring, url[1]);
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(combos, 2), "action_url"));
    const cJSON *actions = cJSON_GetObjectItem(ctx, "actions");
    assert_int_equal(cJSON_GetArraySize(actions), 2);
    const cJSON *second = cJSON_GetArrayItem(actions, 1);
    assert_string_equal(cJSON_GetObjectItem(second, "url")->valuestring, url[1]);
    assert_string_equal(cJSON_GetObjectItem(second, "label")->valuestring, "Modern courtyard");
    assert_int_equal(cJSON_GetObjectItem(second, "number")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(ctx, "reply_hint")->valuestring,
                        "Reply 1 for Lakeside classic or 2 for Modern courtyard.");
    cJSON_Delete(ctx);
}

static void test_request_cannot_supply_links(void **state)
{
    (void)state;
    cJSON *ctx = parse("{\"vendor_combinations\": [{\"name\": \"A\","
                       " \"action_url\": \"https://evil.example/\"}],"
                       " \"actions\": [{\"url\": \"https://evil.example/\"}],"
                       " \"reply_hint\": \"Reply 9\"}");
    act_list_t l = {.n = 0};
    assert_int_equal(act_context_set(ctx, "vendor_options", &l, NULL), 0);
    assert_null(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(ctx, "vendor_combinations"), 0), "action_url"));
    assert_null(cJSON_GetObjectItem(ctx, "actions"));
    assert_null(cJSON_GetObjectItem(ctx, "reply_hint"));
    /* a type that declares nothing keeps the workflow's own names */
    assert_int_equal(act_context_set(ctx, "welcome", &l, NULL), 0);
    cJSON_Delete(ctx);
}

static void test_fixed_and_none(void **state)
{
    (void)state;
    cJSON *ctx = parse("{}");
    act_list_t l;
    char err[256];
    assert_int_equal(act_declare("selection_confirmation", ctx, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.a[0].action, "confirm");
    assert_string_equal(l.a[0].value, "yes");
    assert_string_equal(l.a[0].label, "Confirm");
    assert_string_equal(l.a[1].action, "request_changes");
    assert_string_equal(l.a[1].value, "changes");
    assert_string_equal(l.a[1].label, "Ask for changes");
    assert_int_equal(act_declare("reminder", ctx, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.a[0].action, "open_options");
    assert_string_equal(l.a[0].value, "open");
    assert_string_equal(l.a[0].label, "See the options");
    assert_int_equal(act_declared("welcome"), 0);
    assert_int_equal(act_declare("welcome", ctx, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(act_declare("vendor_options", ctx, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0); /* no combinations, no actions */
    cJSON_Delete(ctx);
}

static void test_bounds(void **state)
{
    (void)state;
    /* more combinations than a message holds actions: the first ACT_MAX */
    cJSON *ctx = parse("{}");
    cJSON *arr = cJSON_AddArrayToObject(ctx, "vendor_combinations");
    for (int i = 0; i < ACT_MAX + 4; i++) {
        cJSON *c = cJSON_CreateObject();
        assert_non_null(cJSON_AddStringToObject(c, "name", "n"));
        assert_true(cJSON_AddItemToArray(arr, c));
    }
    act_list_t l;
    char err[256];
    assert_int_equal(act_declare("vendor_options", ctx, &l, err, sizeof err), 0);
    assert_int_equal(l.n, ACT_MAX);
    cJSON_Delete(ctx);
    /* an id too long to keep whole is refused, never cut */
    char id[ACT_VALUE_MAX + 8];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    ctx = parse("{\"vendor_combinations\": [{\"name\": \"n\"}]}");
    assert_non_null(
        cJSON_AddStringToObject(cJSON_GetArrayItem(cJSON_GetObjectItem(ctx, "vendor_"
                                                                            "combinations"),
                                                   0),
                                "id", id));
    assert_int_equal(act_declare("vendor_options", ctx, &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "vendor_combinations[0].id"));
    cJSON_Delete(ctx);
}

static void test_thanks(void **state)
{
    (void)state;
    char out[ACT_THANKS_MAX];
    act_thanks("choose", "Lakeside classic", out, sizeof out);
    assert_string_equal(
        out, "Thanks \xe2\x80\x94 we've let your planner know you chose Lakeside classic.");
    act_thanks("confirm", "Confirm", out, sizeof out);
    assert_non_null(strstr(out, "confirmed"));
    act_thanks("request_changes", "Ask for changes", out, sizeof out);
    assert_non_null(strstr(out, "changes"));
    act_thanks("open_options", "See the options", out, sizeof out);
    assert_non_null(strstr(out, "options"));
}

/* The shipped templates show the links once the context has them, and the
 * workflow's own links without them (templates check renders that way). */
static void test_templates_show_actions(void **state)
{
    (void)state;
    const char *src = getenv("CRIER_SOURCE_DIR");
    assert_non_null(src);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/templates", src);
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(dir, err, sizeof err);
    assert_non_null(c);
    const tpl_site_t site = {.brand_name = "Planiva",
                             .support_email = "help@planiva.example",
                             .physical_address = "1 Main St",
                             .public_url = "https://crier.planiva.example"};
    static const char *const types[] = {"vendor_options", "selection_confirmation", "reminder"};
    for (size_t k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/examples/%s.json", dir, types[k]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char text[16384];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        cJSON *req = parse(text);
        cJSON *ctx = tpl_context_build(req, &site, "Zoë", ID, ID);
        assert_non_null(ctx);
        assert_int_equal(tpl_context_set_links(ctx, "https://crier.planiva.example/u/x",
                                               "https://crier.planiva.example/u/x"),
                         0);
        act_list_t l;
        assert_int_equal(act_declare(types[k], ctx, &l, err, sizeof err), 0);
        assert_true(l.n >= 1);
        char urls[ACT_MAX][64];
        char *url[ACT_MAX];
        for (int i = 0; i < l.n; i++) {
            snprintf(urls[i], sizeof urls[i], "https://crier.planiva.example/a/act-%d", i);
            url[i] = urls[i];
        }
        assert_int_equal(act_context_set(ctx, types[k], &l, url), 0);
        tpl_email_t em = {0};
        assert_int_equal(tpl_render_email(c, types[k], ctx, &em, err, sizeof err), 0);
        for (int i = 0; i < l.n; i++) {
            assert_non_null(strstr(em.html, url[i]));
            assert_non_null(strstr(em.text, url[i]));
        }
        if (k == 0) { /* the buttons are crier's now, not the workflow's */
            assert_null(strstr(em.html, "/vendors/1\""));
            assert_non_null(strstr(em.html, "Choose Lakeside classic"));
        }
        tpl_email_free(&em);
        char *sms = NULL;
        assert_int_equal(tpl_render_sms(c, types[k], ctx, &sms, err, sizeof err), 0);
        char hint[ACT_HINT_MAX];
        act_reply_hint(&l, hint, sizeof hint);
        assert_non_null(strstr(sms, hint));
        free(sms);
        cJSON_Delete(ctx);
        cJSON_Delete(req);
    }
    tpl_catalog_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_kind),     cmocka_unit_test(test_action_url),
        cmocka_unit_test(test_vendor_options), cmocka_unit_test(test_request_cannot_supply_links),
        cmocka_unit_test(test_fixed_and_none), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_thanks),         cmocka_unit_test(test_templates_show_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
