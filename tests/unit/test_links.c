/* Link tracking of rendered HTML: which links are rewritten and to what,
 * what is stored for each index, where the pixel goes, what is left alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "crypto/linktok.h"
#include "template/links.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char KEY[32] = {9,  8,  7,  6,  5,  4,  3,  2,  1,  0,  11,
                                      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                      23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const char ID[] = "3c9d1e2f-4a5b-4c6d-8e7f-901a2b3c4d5e";
static const char BASE[] = "https://crier.example";

typedef struct rewritten {
    char *html;
    links_t l;
} rewritten_t;

static rewritten_t rewrite_max(const char *html, int max)
{
    links_opts_t o = {.public_url = "https://crier.example/",
                      .key = KEY,
                      .communication_id = ID,
                      .day = 20500,
                      .max_links = max};
    rewritten_t r;
    char err[256];
    assert_int_equal(links_rewrite(html, &o, &r.html, &r.l, err, sizeof err), 0);
    assert_non_null(r.html);
    return r;
}

static rewritten_t rewrite(const char *html)
{
    return rewrite_max(html, LINKS_MAX_DEFAULT);
}

static void done(rewritten_t *r)
{
    free(r->html);
    links_free(&r->l);
}

/* The n-th occurrence (from 0) of a click URL in html: its token read
 * back, which must name ID and return its link index. */
static int click_index(const char *html, int n)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s/t/c/", BASE);
    const char *p = html;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, prefix);
        if (!p)
            return -1;
        p += strlen(prefix);
    }
    linktok_t t;
    assert_int_equal(linktok_read(KEY, p, LINKTOK_LEN, LINKTOK_CLICK, &t), 0);
    assert_string_equal(t.id, ID);
    assert_int_equal(t.day, 20500);
    assert_true(p[LINKTOK_LEN] == '"');
    return (int)t.arg;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_quoting_and_case(void **state)
{
    (void)state;
    rewritten_t r = rewrite("<p><a href=\"https://a.example/1\">one</a>"
                            "<A HREF='http://b.example/2?x=1'>two</A>"
                            "<a class=button href=https://c.example/3>three</a>"
                            "<area shape=rect href = \"https://d.example/4\">"
                            "<a\nhref=\"HTTPS://E.example/5\" title=\"t\">five</a></p>");
    assert_int_equal(r.l.n, 5);
    assert_string_equal(r.l.url[0], "https://a.example/1");
    assert_string_equal(r.l.url[1], "http://b.example/2?x=1");
    assert_string_equal(r.l.url[2], "https://c.example/3");
    assert_string_equal(r.l.url[3], "https://d.example/4");
    assert_string_equal(r.l.url[4], "HTTPS://E.example/5");
    for (int i = 0; i < 5; i++)
        assert_int_equal(click_index(r.html, i), i);
    /* the rest of each tag is kept, the link text too */
    assert_non_null(strstr(r.html, "<a class=button href=\"https://crier.example/t/c/"));
    assert_non_null(strstr(r.html, "\" title=\"t\">five</a>"));
    assert_non_null(strstr(r.html, ">three</a>"));
    assert_null(strstr(r.html, "a.example"));
    assert_null(strstr(r.html, "E.example"));
    done(&r);
}

static void test_entities_decoded(void **state)
{
    (void)state;
    rewritten_t r = rewrite("<a href=\"https://a.example/p?x=1&amp;y=2&#38;z=&#x33;&quot;"
                            "&lt;&gt;&apos;&#39;&nbsp;\">x</a>"
                            "<a href=\"  https://b.example/t  \">padded</a>"
                            "<a href=\"https://c.example/caf&#xE9;\">utf8</a>");
    assert_int_equal(r.l.n, 3);
    assert_string_equal(r.l.url[0], "https://a.example/p?x=1&y=2&z=3\"<>''&nbsp;");
    assert_string_equal(r.l.url[1], "https://b.example/t");
    assert_string_equal(r.l.url[2], "https://c.example/caf\xc3\xa9");
    done(&r);
}

static void test_left_alone(void **state)
{
    (void)state;
    const char *html = "<a href=\"mailto:support@planiva.example\">mail</a>"
                       "<a href=\"tel:+15555550100\">call</a>"
                       "<a href=\"#top\">top</a>"
                       "<a href=\"https://crier.example/u/abc\">unsubscribe</a>"
                       "<a href=\"HTTPS://CRIER.EXAMPLE?x=1\">own, any case</a>"
                       "<a href=\"https://crier.example\">own root</a>"
                       "<a href=\"https://crier.example.evil/x\">not own</a>"
                       "<a href=\"https://x.example/a&#10;b\">a newline</a>"
                       "<a href=\"javascript:alert(1)\">js</a>"
                       "<a name=\"anchor\">no href</a>"
                       "<link href=\"https://fonts.example/css\" rel=\"stylesheet\">"
                       "<img src=\"https://img.example/a.png\">"
                       "<!-- <a href=\"https://comment.example/\">x</a> -->"
                       "<style>a[href=\"https://style.example/\"] {}</style>"
                       "<script>var s = '<a href=\"https://script.example/\">';</script>"
                       "<abbr href=\"https://abbr.example/\">abbr is no link</abbr>";
    rewritten_t r = rewrite(html);
    assert_int_equal(r.l.n, 1);
    assert_string_equal(r.l.url[0], "https://crier.example.evil/x");
    /* everything else is byte for byte as it was, before the pixel */
    const char *own = "<a href=\"https://crier.example/u/abc\">unsubscribe</a>";
    assert_non_null(strstr(r.html, own));
    assert_non_null(strstr(r.html, "mailto:support@planiva.example"));
    assert_non_null(strstr(r.html, "https://x.example/a&#10;b"));
    assert_non_null(strstr(r.html, "https://comment.example/"));
    assert_non_null(strstr(r.html, "https://style.example/"));
    assert_non_null(strstr(r.html, "https://script.example/"));
    assert_non_null(strstr(r.html, "https://abbr.example/"));
    assert_non_null(strstr(r.html, "https://fonts.example/css"));
    assert_non_null(strstr(r.html, "https://img.example/a.png"));
    assert_null(strstr(r.html, "crier.example.evil"));
    done(&r);
}

/* The first href of a tag is the one a browser follows. */
static void test_first_href_only(void **state)
{
    (void)state;
    rewritten_t r = rewrite("<a href=\"https://first.example/\" href=\"https://second.example/\">"
                            "x</a><a href=\"\">empty</a><a href>bare</a>");
    assert_int_equal(r.l.n, 1);
    assert_string_equal(r.l.url[0], "https://first.example/");
    assert_non_null(strstr(r.html, "href=\"https://second.example/\""));
    assert_non_null(strstr(r.html, "<a href=\"\">empty</a><a href>bare</a>"));
    done(&r);
}

static void test_limit(void **state)
{
    (void)state;
    char html[8192] = "";
    for (int i = 0; i < 12; i++) {
        char a[64];
        snprintf(a, sizeof a, "<a href=\"https://l.example/%d\">%d</a>", i, i);
        strcat(html, a);
    }
    rewritten_t r = rewrite_max(html, 10);
    assert_int_equal(r.l.n, 10);
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "https://l.example/%d", i);
        assert_string_equal(r.l.url[i], want);
        assert_int_equal(click_index(r.html, i), i);
    }
    assert_non_null(strstr(r.html, "<a href=\"https://l.example/10\">10</a>"));
    assert_non_null(strstr(r.html, "<a href=\"https://l.example/11\">11</a>"));
    assert_int_equal(count(r.html, "/t/c/"), 10);
    done(&r);
}

static const char *pixel_of(const char *html)
{
    const char *p = strstr(html, "<img src=\"https://crier.example/t/o/");
    if (!p)
        return NULL;
    const char *tok = p + strlen("<img src=\"https://crier.example/t/o/");
    linktok_t t;
    assert_int_equal(linktok_read(KEY, tok, LINKTOK_LEN, LINKTOK_OPEN, &t), 0);
    assert_string_equal(t.id, ID);
    assert_int_equal(t.arg, 0);
    assert_memory_equal(tok + LINKTOK_LEN, ".gif\" width=\"1\" height=\"1\" alt=\"\"", 33);
    return p;
}

static void test_pixel_placement(void **state)
{
    (void)state;
    /* before the last </body>, in any case */
    rewritten_t r = rewrite("<html><body><p>x</p><!-- </body> --></BODY >\n</html>\n");
    const char *px = pixel_of(r.html);
    assert_non_null(px);
    assert_int_equal(count(r.html, "/t/o/"), 1);
    assert_true(strncmp(strchr(px, '>') + 1, "</BODY >\n</html>\n", 17) == 0);
    assert_true(strstr(r.html, "<!-- </body> -->") < px);
    assert_int_equal(r.l.n, 0);
    done(&r);

    /* none: at the end */
    r = rewrite("<p>no body here</p>");
    px = pixel_of(r.html);
    assert_non_null(px);
    assert_int_equal(strncmp(r.html, "<p>no body here</p><img ", 24), 0);
    assert_string_equal(strchr(px, '>'), ">");
    done(&r);
}

/* Markup cut off in the middle is copied as it is, and nothing after the
 * cut is taken for a link. */
static void test_unterminated(void **state)
{
    (void)state;
    rewritten_t r = rewrite("<a href=\"https://ok.example/\">ok</a><a href=\"https://cut.example/");
    assert_int_equal(r.l.n, 1);
    assert_string_equal(r.l.url[0], "https://ok.example/");
    assert_non_null(strstr(r.html, "<a href=\"https://cut.example/"));
    done(&r);
    r = rewrite("<p>a < b and <a");
    assert_int_equal(r.l.n, 0);
    assert_int_equal(strncmp(r.html, "<p>a < b and <a", 15), 0);
    done(&r);
}

static void test_refuses(void **state)
{
    (void)state;
    links_opts_t o = {.public_url = BASE, .key = KEY, .communication_id = "nope", .max_links = 4};
    char *out = (char *)1;
    links_t l;
    char err[256];
    assert_int_equal(
        links_rewrite("<a href=\"https://x.example/\">x</a>", &o, &out, &l, err, sizeof err), -1);
    assert_null(out);
    assert_int_equal(l.n, 0);
    assert_non_null(strstr(err, "token"));
    o.communication_id = ID;
    o.max_links = 0;
    assert_int_equal(links_rewrite("<p></p>", &o, &out, &l, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting_and_case),
        cmocka_unit_test(test_entities_decoded),
        cmocka_unit_test(test_left_alone),
        cmocka_unit_test(test_first_href_only),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_pixel_placement),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
