#include "report/report.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <stdio.h>
#include <string.h>

/* A4 in points, and the margins of the page. */
#define PAGE_W   595.0
#define PAGE_H   842.0
#define MARGIN   40.0
#define CHART_H  190.0
#define GRID_COL 4

typedef struct rgb {
    double r, g, b;
} rgb_t;

/* The console's colours (console/app.css), so the PDF looks like the page. */
static const rgb_t INK = {0.106, 0.122, 0.141};
static const rgb_t MUTED = {0.290, 0.325, 0.376};
static const rgb_t LINE = {0.788, 0.816, 0.847};
static const rgb_t SERIES[] = {{0.043, 0.361, 0.678}, {0.761, 0.255, 0.047}, {0.082, 0.502, 0.239}};

static void colour(cairo_t *cr, rgb_t c)
{
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

static void text(cairo_t *cr, double x, double y, double size, int bold, rgb_t c, const char *s)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    colour(cr, c);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, s);
}

static cairo_status_t report_write(void *closure, const unsigned char *data, unsigned int len)
{
    return buf_append(closure, data, len) == 0 ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

/* The figures, four to a row; returns the y below them. */
static double report_grid(cairo_t *cr, const report_t *r, double y)
{
    double w = (PAGE_W - 2 * MARGIN) / GRID_COL;
    for (int i = 0; i < r->n_figures; i++) {
        double x = MARGIN + (i % GRID_COL) * w, top = y + (i / GRID_COL) * 52.0;
        colour(cr, LINE);
        cairo_set_line_width(cr, 0.8);
        cairo_rectangle(cr, x + 2, top, w - 4, 46);
        cairo_stroke(cr);
        text(cr, x + 8, top + 15, 8.5, 0, MUTED, r->figures[i].label);
        text(cr, x + 8, top + 36, 15, 1, INK, r->figures[i].value);
    }
    int rows = (r->n_figures + GRID_COL - 1) / GRID_COL;
    return y + rows * 52.0 + 10;
}

/* A frame with a heading and a y axis scaled to top; returns the plot's
 * left, bottom, width and height through the pointers. */
static void report_axes(cairo_t *cr, const char *heading, double y, double top, double *px,
                        double *py, double *pw, double *ph)
{
    text(cr, MARGIN, y + 12, 11, 1, INK, heading);
    *px = MARGIN + 36;
    *pw = PAGE_W - MARGIN - *px;
    *ph = CHART_H - 50;
    *py = y + 24 + *ph;
    cairo_set_line_width(cr, 0.5);
    for (int i = 0; i <= 4; i++) {
        double gy = *py - *ph * i / 4.0;
        colour(cr, LINE);
        cairo_move_to(cr, *px, gy);
        cairo_line_to(cr, *px + *pw, gy);
        cairo_stroke(cr);
        char v[32];
        snprintf(v, sizeof v, "%g", top * i / 4.0);
        text(cr, MARGIN, gy + 3, 7.5, 0, MUTED, v);
    }
}

static void report_legend(cairo_t *cr, double x, double y, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        colour(cr, SERIES[i]);
        cairo_rectangle(cr, x, y - 7, 8, 8);
        cairo_fill(cr);
        text(cr, x + 12, y, 8, 0, INK, names[i]);
        x += 80;
    }
}

/* A round top for an axis: the next 1, 2 or 5 times a power of ten. */
static double report_top(double max)
{
    double step = 1;
    while (step * 10 <= max)
        step *= 10;
    double tops[] = {step, 2 * step, 5 * step, 10 * step};
    for (int i = 0; i < 4; i++)
        if (tops[i] >= max)
            return tops[i];
    return 10 * step;
}

static double report_days(cairo_t *cr, const report_t *r, double y)
{
    double max = 1;
    for (int i = 0; i < r->n_points; i++)
        max = r->points[i].sent > max ? r->points[i].sent : max;
    double top = report_top(max), x0, y0, w, h;
    report_axes(cr, "Sent and delivered per day", y, top, &x0, &y0, &w, &h);
    int n = r->n_points;
    for (int s = 0; s < 2 && n > 0; s++) {
        colour(cr, SERIES[s]);
        cairo_set_line_width(cr, 1.5);
        for (int i = 0; i < n; i++) {
            double v = s == 0 ? r->points[i].sent : r->points[i].delivered;
            double px = x0 + (n == 1 ? w / 2 : w * i / (n - 1)), py = y0 - h * v / top;
            if (i == 0)
                cairo_move_to(cr, px, py);
            else
                cairo_line_to(cr, px, py);
        }
        cairo_stroke(cr);
    }
    /* a few day labels, never crowded */
    int every = n > 8 ? (n + 7) / 8 : 1;
    for (int i = 0; i < n; i += every)
        text(cr, x0 + (n == 1 ? w / 2 : w * i / (n - 1)) - 18, y0 + 12, 7, 0, MUTED,
             r->points[i].label);
    static const char *const names[] = {"Sent", "Delivered"};
    report_legend(cr, x0, y0 + 26, names, 2);
    return y + CHART_H + 10;
}

static double report_channels(cairo_t *cr, const report_t *r, double y)
{
    double max = 1;
    for (int i = 0; i < r->n_bars; i++)
        max = r->bars[i].sent > max ? r->bars[i].sent : max;
    double top = report_top(max), x0, y0, w, h;
    report_axes(cr, "Volume and outcomes by channel", y, top, &x0, &y0, &w, &h);
    double slot = r->n_bars ? w / r->n_bars : w, bw = slot / 4.5;
    for (int i = 0; i < r->n_bars; i++) {
        double v[3] = {r->bars[i].sent, r->bars[i].delivered, r->bars[i].failed};
        for (int s = 0; s < 3; s++) {
            double bh = h * v[s] / top;
            colour(cr, SERIES[s]);
            cairo_rectangle(cr, x0 + i * slot + bw * (0.5 + s * 1.2), y0 - bh, bw, bh);
            cairo_fill(cr);
        }
        text(cr, x0 + i * slot + slot / 2 - 16, y0 + 12, 8, 0, INK, r->bars[i].label);
    }
    static const char *const names[] = {"Sent", "Delivered", "Failed"};
    report_legend(cr, x0, y0 + 26, names, 3);
    return y + CHART_H + 10;
}

int report_pdf(const report_t *r, buf_t *out, char *err, size_t errlen)
{
    buf_init(out, REPORT_PDF_MAX);
    cairo_surface_t *s = cairo_pdf_surface_create_for_stream(report_write, out, PAGE_W, PAGE_H);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "cairo: %s", cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        buf_free(out);
        return -1;
    }
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, r->title);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "crier");
    cairo_t *cr = cairo_create(s);
    text(cr, MARGIN, MARGIN + 14, 18, 1, INK, r->title);
    text(cr, MARGIN, MARGIN + 32, 10, 0, MUTED, r->period);
    double y = report_grid(cr, r, MARGIN + 48);
    y = report_days(cr, r, y);
    report_channels(cr, r, y);
    cairo_show_page(cr);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "cairo: %s", cairo_status_to_string(st));
        buf_free(out);
        return -1;
    }
    return 0;
}

void report_shutdown(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
