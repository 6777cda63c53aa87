/* report: the overview PDF is a PDF, carries its title and figures, and
 * keeps within its bounds. */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "report/report.h"

#include <stdio.h>
#include <string.h>

static void fill(report_t *r, int days, int bars)
{
    memset(r, 0, sizeof *r);
    snprintf(r->title, sizeof r->title, "crier overview");
    snprintf(r->period, sizeof r->period, "2026-11-01 to 2026-11-30");
    r->n_figures = 12;
    for (int i = 0; i < r->n_figures; i++) {
        snprintf(r->figures[i].label, sizeof r->figures[i].label, "Figure %d", i);
        snprintf(r->figures[i].value, sizeof r->figures[i].value, "%d.5 %%", i);
    }
    r->n_points = days;
    for (int i = 0; i < days; i++) {
        snprintf(r->points[i].label, sizeof r->points[i].label, "2026-11-%02d", 1 + i % 30);
        r->points[i].sent = 10 + i;
        r->points[i].delivered = 8 + i;
    }
    r->n_bars = bars;
    for (int i = 0; i < bars; i++) {
        snprintf(r->bars[i].label, sizeof r->bars[i].label, "ch%d", i);
        r->bars[i].sent = 100.0 * (i + 1);
        r->bars[i].delivered = 90.0 * (i + 1);
        r->bars[i].failed = 5;
    }
}

static void test_a_pdf_with_its_title(void **state)
{
    (void)state;
    static report_t r;
    fill(&r, 30, 3);
    buf_t out;
    char err[128] = "";
    assert_int_equal(report_pdf(&r, &out, err, sizeof err), 0);
    assert_true(out.len > 1000);
    assert_memory_equal(out.data, "%PDF-", 5);
    /* the document's title is in its metadata (an uncompressed string) */
    assert_non_null(memmem(out.data, out.len, "crier overview", strlen("crier overview")));
    assert_non_null(memmem(out.data, out.len, "%%EOF", 5));
    buf_free(&out);
}

static void test_empty_and_full_ranges(void **state)
{
    (void)state;
    static report_t r;
    buf_t out;
    char err[128] = "";
    fill(&r, 0, 0); /* nothing happened: still a page, no division by zero */
    assert_int_equal(report_pdf(&r, &out, err, sizeof err), 0);
    assert_memory_equal(out.data, "%PDF-", 5);
    buf_free(&out);
    fill(&r, 1, 1);
    assert_int_equal(report_pdf(&r, &out, err, sizeof err), 0);
    buf_free(&out);
    fill(&r, REPORT_POINTS_MAX, REPORT_BARS_MAX);
    assert_int_equal(report_pdf(&r, &out, err, sizeof err), 0);
    assert_true(out.len <= REPORT_PDF_MAX);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_pdf_with_its_title),
        cmocka_unit_test(test_empty_and_full_ranges),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    report_shutdown(); /* the font caches, as crier serve lets go of them */
    return failed;
}
