/* Bearer tokens with scopes: parsing CRIER_API_TOKENS, and deciding 401 vs
 * 403 vs OK for a presented Authorization header. */
#include "http/auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#define ANY_READ (AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN)
#define CREATE   (AUTH_SCOPE_WORKFLOW | AUTH_SCOPE_ADMIN)

static void test_parse(void **state)
{
    (void)state;
    char err[256];
    auth_t *a =
        auth_new("workflow:wf-secret-1, operator:op-secret-2,admin:ad-secret-3", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_count(a), 3);
    auth_free(a);

    a = auth_new("", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_count(a), 0);
    auth_free(a);

    a = auth_new(NULL, err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_count(a), 0);
    auth_free(a);

    /* a trailing comma is harmless */
    a = auth_new("workflow:abc123,", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_count(a), 1);
    auth_free(a);
}

static void test_parse_errors(void **state)
{
    (void)state;
    char err[256];
    assert_null(auth_new("workflow", err, sizeof err));
    assert_non_null(strstr(err, "entry 1"));
    assert_null(auth_new("workflow:ok-token,root:sup3r-secret", err, sizeof err));
    assert_non_null(strstr(err, "entry 2"));
    assert_null(strstr(err, "sup3r-secret")); /* the token is never echoed */
    assert_null(auth_new("admin:", err, sizeof err));
    assert_null(auth_new("admin:has space", err, sizeof err));
}

static void test_scope_parse(void **state)
{
    (void)state;
    assert_int_equal(auth_scope_parse("workflow", 8), AUTH_SCOPE_WORKFLOW);
    assert_int_equal(auth_scope_parse("operator", 8), AUTH_SCOPE_OPERATOR);
    assert_int_equal(auth_scope_parse("admin", 5), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_scope_parse("adm", 3), 0);
    assert_int_equal(auth_scope_parse("Admin", 5), 0);
}

static void test_check(void **state)
{
    (void)state;
    char err[256];
    auth_t *a =
        auth_new("workflow:wf-secret-1,operator:op-secret-2,admin:ad-secret-3", err, sizeof err);
    assert_non_null(a);

    /* right token, right scope */
    assert_int_equal(auth_check(a, "Bearer wf-secret-1", CREATE), AUTH_OK);
    assert_int_equal(auth_check(a, "Bearer ad-secret-3", CREATE), AUTH_OK);
    assert_int_equal(auth_check(a, "Bearer op-secret-2", ANY_READ), AUTH_OK);
    assert_int_equal(auth_check(a, "bearer  wf-secret-1 ", ANY_READ), AUTH_OK);

    /* right token, wrong scope */
    assert_int_equal(auth_check(a, "Bearer op-secret-2", CREATE), AUTH_FORBIDDEN);

    /* wrong or missing token */
    assert_int_equal(auth_check(a, NULL, ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer ", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer wf-secret-2", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer wf-secret-1x", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearer wf-secret-", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Basic wf-secret-1", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "Bearerwf-secret-1", ANY_READ), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_check(a, "wf-secret-1", ANY_READ), AUTH_UNAUTHORIZED);
    /* an unknown token is 401 even when no scope would do */
    assert_int_equal(auth_check(a, "Bearer nope", 0), AUTH_UNAUTHORIZED);
    auth_free(a);
}

static void test_no_tokens_configured(void **state)
{
    (void)state;
    char err[256];
    auth_t *a = auth_new("", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_check(a, "Bearer anything", ANY_READ), AUTH_UNAUTHORIZED);
    auth_free(a);
    assert_int_equal(auth_check(NULL, "Bearer anything", ANY_READ), AUTH_UNAUTHORIZED);
}

static void test_same_token_two_scopes(void **state)
{
    (void)state;
    char err[256];
    auth_t *a = auth_new("operator:shared-tok,workflow:shared-tok", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_check(a, "Bearer shared-tok", CREATE), AUTH_OK);
    assert_int_equal(auth_check(a, "Bearer shared-tok", AUTH_SCOPE_OPERATOR), AUTH_OK);
    assert_int_equal(auth_check(a, "Bearer shared-tok", AUTH_SCOPE_ADMIN), AUTH_FORBIDDEN);
    auth_free(a);
}

/* Labels name a token in the audit log: given after the scope, or the
 * scope and position; the first entry a token matches gives its label. */
static void test_labels(void **state)
{
    (void)state;
    char err[256];
    auth_t *a =
        auth_new("admin/dpo-alice:tok-1,workflow:tok-2,operator/support.2:tok-2", err, sizeof err);
    assert_non_null(a);
    const char *label = NULL;
    assert_int_equal(auth_check_as(a, "Bearer tok-1", AUTH_SCOPE_ADMIN, &label), AUTH_OK);
    assert_string_equal(label, "dpo-alice");
    assert_int_equal(auth_check_as(a, "Bearer tok-2", ANY_READ, &label), AUTH_OK);
    assert_string_equal(label, "workflow#2");
    /* a refused token has no label */
    assert_int_equal(auth_check_as(a, "Bearer nope", ANY_READ, &label), AUTH_UNAUTHORIZED);
    assert_string_equal(label, "");
    assert_int_equal(auth_check_as(a, "Bearer tok-1", AUTH_SCOPE_WORKFLOW, &label), AUTH_FORBIDDEN);
    auth_free(a);

    /* a label is a name, not free text */
    assert_null(auth_new("admin/bad label:tok", err, sizeof err));
    assert_non_null(strstr(err, "entry 1"));
    assert_null(strstr(err, "tok"));
    assert_null(auth_new("admin/:tok", err, sizeof err));
    assert_null(auth_new("workflow:a,admin/x\"y:tok", err, sizeof err));
    assert_non_null(strstr(err, "entry 2"));
    assert_null(auth_new("nobody/alice:tok", err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_scope_parse),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_no_tokens_configured),
        cmocka_unit_test(test_same_token_two_scopes),
        cmocka_unit_test(test_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
