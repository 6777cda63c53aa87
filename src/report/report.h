/* report: the console's overview of a period as a PDF, drawn with cairo's
 * PDF surface: a title and the period, the figures in a grid, a line chart
 * of what was sent and delivered each day, and a bar chart of the channels.
 * It draws what it is handed and reads nothing else, so the API decides
 * what the figures are and the report only how they look. */
#ifndef CRIER_REPORT_H
#define CRIER_REPORT_H

#include "util/buf.h"

#include <stddef.h>

#define REPORT_FIGURES_MAX 24  /* figures in the grid */
#define REPORT_POINTS_MAX  400 /* days on the line chart */
#define REPORT_BARS_MAX    8   /* channels on the bar chart */
#define REPORT_TEXT_MAX    64  /* bytes of a label or value, the NUL included */
#define REPORT_PDF_MAX     (4u << 20)

typedef struct report_figure {
    char label[REPORT_TEXT_MAX];
    char value[REPORT_TEXT_MAX]; /* as shown: "91.0 %", "1,234", "-" */
} report_figure_t;

typedef struct report_point {
    char label[16]; /* the day, "2026-11-24" */
    double sent, delivered;
} report_point_t;

typedef struct report_bar {
    char label[REPORT_TEXT_MAX]; /* the channel */
    double sent, delivered, failed;
} report_bar_t;

typedef struct report {
    char title[REPORT_TEXT_MAX];
    char period[REPORT_TEXT_MAX]; /* "2026-11-01 to 2026-11-30" */
    int n_figures;
    report_figure_t figures[REPORT_FIGURES_MAX];
    int n_points;
    report_point_t points[REPORT_POINTS_MAX];
    int n_bars;
    report_bar_t bars[REPORT_BARS_MAX];
} report_t;

/* Draws r as a one-page A4 PDF into out (initialised here, the caller's to
 * free). 0, or -1 with err (out then empty). */
int report_pdf(const report_t *r, buf_t *out, char *err, size_t errlen);

/* Lets go of what cairo and fontconfig keep for the whole process (the
 * font caches the first report fills), so a leak checker at exit sees
 * only real leaks. Call once, at exit, when no report is being drawn. */
void report_shutdown(void);

#endif
