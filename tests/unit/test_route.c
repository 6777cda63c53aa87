/* The route matcher: literal and {name} segments, the parameters a handler
 * gets, 404 (no such path) against 405 (no such method, with the Allow
 * list), table order, and the checks http_start makes on a table. Also the
 * API's own table, which must pass those checks and route as documented. */
#include "api/api.h"
#include "http/route.h"
#include "http/stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void handler_a(const struct http_req *rq, http_answer_t *out)
{
    (void)rq;
    (void)out;
}

static void handler_b(const struct http_req *rq, http_answer_t *out)
{
    (void)rq;
    (void)out;
}

static const route_t table[] = {
    {"GET", "/healthz", 0, ROUTE_BODY_NONE, NULL, 1, handler_a},
    {"POST", "/v1/items", 0, ROUTE_BODY_JSON, NULL, 2, handler_a},
    /* a literal before the {name} route that would also match it */
    {"GET", "/v1/items/special", 0, ROUTE_BODY_NONE, NULL, 3, handler_b},
    {"GET", "/v1/items/{id}", 0, ROUTE_BODY_NONE, NULL, 4, handler_a},
    {"DELETE", "/v1/items/{id}", 0, ROUTE_BODY_NONE, NULL, 4, handler_b},
    {"GET", "/v1/plans/{plan_id}/items/{item_id}", 0, ROUTE_BODY_NONE, NULL, 5, handler_a},
    {"POST", "/hook", 0, ROUTE_BODY_FORM, NULL, 6, handler_b},
    {"GET", "/hook", 0, ROUTE_BODY_NONE, NULL, 6, handler_a},
};
#define N_TABLE (sizeof table / sizeof table[0])

/* Matches and returns the outcome; *found, params and allow as set. */
static route_match_t match(const char *method, const char *path, const route_t **found,
                           route_params_t *p, char allow[ROUTE_ALLOW_MAX])
{
    return route_match(table, N_TABLE, method, path, found, p, allow, ROUTE_ALLOW_MAX);
}

static void test_literal(void **state)
{
    (void)state;
    const route_t *r;
    route_params_t p;
    char allow[ROUTE_ALLOW_MAX];
    assert_int_equal(match("GET", "/healthz", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[0]);
    assert_int_equal(p.n, 0);
    /* a GET route answers HEAD too */
    assert_int_equal(match("HEAD", "/healthz", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[0]);
    assert_int_equal(match("POST", "/v1/items", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[1]);
}

static void test_params(void **state)
{
    (void)state;
    const route_t *r;
    route_params_t p;
    char allow[ROUTE_ALLOW_MAX];
    assert_int_equal(match("GET", "/v1/items/abc-123", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[3]);
    assert_string_equal(route_param(&p, "id"), "abc-123");
    assert_null(route_param(&p, "plan_id"));
    assert_null(route_param(&p, "i")); /* a prefix of a name is no name */

    /* the method picks between routes of one pattern */
    assert_int_equal(match("DELETE", "/v1/items/abc", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[4]);
    assert_string_equal(route_param(&p, "id"), "abc");

    assert_int_equal(match("GET", "/v1/plans/P1/items/I2", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[5]);
    assert_int_equal(p.n, 2);
    assert_string_equal(route_param(&p, "plan_id"), "P1");
    assert_string_equal(route_param(&p, "item_id"), "I2");

    /* an empty segment is a value too: the handler refuses it, naming the field */
    assert_int_equal(match("GET", "/v1/items/", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[3]);
    assert_string_equal(route_param(&p, "id"), "");
    assert_int_equal(match("GET", "/v1/plans//items/x", &r, &p, allow), ROUTE_FOUND);
    assert_string_equal(route_param(&p, "plan_id"), "");
}

static void test_long_param_is_cut(void **state)
{
    (void)state;
    char path[256] = "/v1/items/";
    size_t at = strlen(path);
    memset(path + at, 'x', 150);
    path[at + 150] = '\0';
    const route_t *r;
    route_params_t p;
    char allow[ROUTE_ALLOW_MAX];
    assert_int_equal(match("GET", path, &r, &p, allow), ROUTE_FOUND);
    assert_int_equal(strlen(route_param(&p, "id")), ROUTE_PARAM_MAX - 1);
}

static void test_table_order(void **state)
{
    (void)state;
    const route_t *r;
    route_params_t p;
    char allow[ROUTE_ALLOW_MAX];
    assert_int_equal(match("GET", "/v1/items/special", &r, &p, allow), ROUTE_FOUND);
    assert_ptr_equal(r, &table[2]);
    assert_int_equal(p.n, 0);
}

static void test_not_found(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "/",
        "",
        "*",
        "/nope",
        "/healthz/",     /* a trailing slash is another path */
        "//healthz",     /* so is an empty first segment */
        "/HEALTHZ",      /* and another case */
        "/healthzz",     /* a literal matches whole */
        "/v1/items/a/b", /* a {name} takes one segment, not two */
        "/v1/plans/P1/items",
        "/v1/plans/P1/other/I2",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const route_t *r = &table[0];
        route_params_t p;
        char allow[ROUTE_ALLOW_MAX] = "junk";
        if (match("GET", paths[i], &r, &p, allow) != ROUTE_NO_PATH)
            fail_msg("\"%s\" was found", paths[i]);
        assert_null(r);
    }
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    const route_t *r;
    route_params_t p;
    char allow[ROUTE_ALLOW_MAX];

    assert_int_equal(match("DELETE", "/v1/items", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "POST");
    assert_ptr_equal(r, &table[1]); /* whose counters count the refusal */
    assert_int_equal(match("HEAD", "/v1/items", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "POST");

    assert_int_equal(match("PUT", "/healthz", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET, HEAD");
    /* methods are case-sensitive */
    assert_int_equal(match("get", "/healthz", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET, HEAD");

    /* every route of the path, in table order, each once */
    assert_int_equal(match("PUT", "/v1/items/abc", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    assert_ptr_equal(r, &table[3]);
    assert_int_equal(match("PUT", "/hook", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "POST, GET, HEAD");

    /* the literal route and the {name} routes a path matches all count */
    assert_int_equal(match("POST", "/v1/items/special", &r, &p, allow), ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    assert_ptr_equal(r, &table[2]);
}

static void test_allow_bounded(void **state)
{
    (void)state;
    const route_t *r;
    route_params_t p;
    char allow[12];
    /* "GET, HEAD, DELETE" does not fit: whole names only, never a cut one */
    assert_int_equal(route_match(table, N_TABLE, "PUT", "/v1/items/x", &r, &p, allow, sizeof allow),
                     ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET, HEAD");
}

static void test_check(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(route_check(table, N_TABLE, err, sizeof err), 0);

    static const struct {
        route_t r;
        const char *why;
    } bad[] = {
        {{"GET", "healthz", 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "must start with /"},
        {{"GET", NULL, 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "must start with /"},
        {{"GET", "/a/{}", 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "needs a name"},
        {{"GET", "/a/{b{c}", 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "needs a name"},
        {{"GET", "/a/x{id}", 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "whole segment"},
        {{"GET", "/a/{id", 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "whole segment"},
        {{"GET", "/{a}/{b}/{c}/{d}/{e}", 0, ROUTE_BODY_NONE, NULL, 1, handler_a},
         "too many parameters"},
        {{"", "/a", 0, ROUTE_BODY_NONE, NULL, 1, handler_a}, "no method"},
        {{"GET", "/a", 0, ROUTE_BODY_NONE, NULL, 1, NULL}, "no handler"},
        {{"GET", "/a", 0, ROUTE_BODY_NONE, NULL, HTTP_STATS_UNROUTED, handler_a}, "counters"},
        {{"GET", "/a", 0, ROUTE_BODY_NONE, NULL, HTTP_STATS_SLOTS, handler_a}, "counters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (route_check(&bad[i].r, 1, err, sizeof err) != -1)
            fail_msg("route %zu accepted", i);
        if (!strstr(err, bad[i].why))
            fail_msg("route %zu: \"%s\" does not say \"%s\"", i, err, bad[i].why);
    }
}

/* The API's table as the server gets it: well formed, and routing the
 * paths the OpenAPI document names. */
static void test_api_table(void **state)
{
    (void)state;
    size_t n = 0;
    const route_t *routes = api_routes(&n);
    char err[256];
    assert_int_equal(route_check(routes, n, err, sizeof err), 0);

    const route_t *r;
    route_params_t p;
    char allow[ROUTE_ALLOW_MAX];
    assert_int_equal(
        route_match(routes, n, "GET", "/v1/plans/P/communications", &r, &p, allow, sizeof allow),
        ROUTE_FOUND);
    assert_string_equal(route_param(&p, "plan_id"), "P");
    assert_int_equal(
        route_match(routes, n, "POST", "/v1/rules/dry-run", &r, &p, allow, sizeof allow),
        ROUTE_FOUND);
    assert_int_equal(
        route_match(routes, n, "DELETE", "/v1/communications", &r, &p, allow, sizeof allow),
        ROUTE_NO_METHOD);
    assert_string_equal(allow, "POST, GET, HEAD");
    assert_int_equal(
        route_match(routes, n, "POST", "/v1/communications/I/retry", &r, &p, allow, sizeof allow),
        ROUTE_FOUND);
    assert_string_equal(route_param(&p, "id"), "I");
    assert_int_equal(
        route_match(routes, n, "PUT", "/webhooks/whatsapp", &r, &p, allow, sizeof allow),
        ROUTE_NO_METHOD);
    assert_string_equal(allow, "GET, HEAD, POST");
    assert_int_equal(route_match(routes, n, "GET", "/v1/nothing", &r, &p, allow, sizeof allow),
                     ROUTE_NO_PATH);

    /* every slot a route counts in has a label of its own in the metrics */
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(api_stat_name(routes[i].stat), "other");
    assert_string_equal(api_stat_name(HTTP_STATS_UNROUTED), "other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),           cmocka_unit_test(test_params),
        cmocka_unit_test(test_long_param_is_cut), cmocka_unit_test(test_table_order),
        cmocka_unit_test(test_not_found),         cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_allow_bounded),     cmocka_unit_test(test_check),
        cmocka_unit_test(test_api_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
