/* analytics: see analytics.h. The figures are made once as text, then
 * written as JSON or as CSV, so the two can never disagree. */
#include "api/analytics.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "report/report.h"
#include "request/request.h"
#include "store/analytics.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/json_text.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AN_MAX_DAYS  366 /* the longest range asked: an hourly breakdown stays in bounds */
#define AN_BODY_MAX  (8u << 20)
#define AN_CSV_TYPE  "text/csv; charset=utf-8"
#define AN_FIGURES_N 18

/* The figures of a group, in the order of their columns. */
static const char *const an_names[AN_FIGURES_N] = {
    "total",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "responded",
    "failed",
    "fallback_used",
    "delivery_rate",
    "open_rate",
    "click_through_rate",
    "response_rate",
    "failure_rate",
    "fallback_rate",
    "avg_delivery_time_seconds",
    "avg_response_time_seconds",
    "cost_total",
    "cost_per_communication",
};

/* A figure's text: a JSON number, or "" for null (a rate over nothing). */
typedef struct an_figures {
    char v[AN_FIGURES_N][32];
} an_figures_t;

/* Whole seconds "YYYY-MM-DDTHH:MM:SSZ" (optionally a fraction before the
 * Z), or a day "YYYY-MM-DD" (its midnight, UTC), that is a real time (no
 * 30 February): *t its Unix time. 0, or -1. PostgreSQL reads many more
 * shapes, and a range that quietly means something else is worse than a
 * refusal. */
static int an_time(const char *s, time_t *t)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    int day_only = strlen(s) == 10;
    size_t i = 0;
    for (; shape[i] && !(day_only && i == 10); i++)
        if (!s[i] || (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]))
            return -1;
    if (!day_only) {
        if (s[i] == '.') {
            size_t digits = 0;
            for (i++; s[i] >= '0' && s[i] <= '9' && digits < 6; i++)
                digits++;
            if (!digits)
                return -1;
        }
        if (s[i] != 'Z' || s[i + 1] != '\0')
            return -1;
    }
    struct tm tm = {0};
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    if (!day_only) {
        tm.tm_hour = atoi(s + 11);
        tm.tm_min = atoi(s + 14);
        tm.tm_sec = atoi(s + 17);
    }
    struct tm want = tm;
    *t = timegm(&tm);
    return tm.tm_year == want.tm_year && tm.tm_mon == want.tm_mon && tm.tm_mday == want.tm_mday &&
                   tm.tm_hour == want.tm_hour && tm.tm_min == want.tm_min &&
                   tm.tm_sec == want.tm_sec && tm.tm_year >= 70
               ? 0
               : -1;
}

/* The range, filters and answer type of rq into q (strings pointing into
 * the request or into plan and client); 0, or -1 with out set to 422. */
static int an_query(const http_req_t *rq, store_analytics_query_t *q, char plan[37],
                    char client[37], int *csv, http_answer_t *out)
{
    static const char *const ends[] = {"from", "to"};
    time_t t[2];
    const char *v[2];
    for (int i = 0; i < 2; i++) {
        v[i] = http_req_query(rq, ends[i]);
        if (!v[i] || an_time(v[i], &t[i]) != 0) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "%s: required, an ISO-8601 UTC time (2026-11-24T22:00:00Z) or a day "
                     "(2026-11-24)",
                     ends[i]);
            http_answer_error(out, 422, "invalid_field", msg);
            return -1;
        }
    }
    if (t[1] <= t[0] || t[1] - t[0] > (time_t)AN_MAX_DAYS * 86400) {
        http_answer_error(out, 422, "invalid_field",
                          "to: must be after from, and at most 366 days after it");
        return -1;
    }
    q->from = v[0];
    q->to = v[1];
    if (api_query_uuid(rq, "plan_id", plan, &q->plan_id, out) != 0 ||
        api_query_uuid(rq, "client_id", client, &q->client_id, out) != 0)
        return -1;
    const char *format = http_req_query(rq, "format");
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
        http_answer_error(out, 422, "invalid_field", "format: must be json or csv");
        return -1;
    }
    const char *accept = http_req_header(rq, "Accept");
    *csv = format ? strcmp(format, "csv") == 0 : (accept && strstr(accept, "text/csv") != NULL);
    return 0;
}

/* A count's text. */
static void an_count(char *dst, long long n)
{
    snprintf(dst, 32, "%lld", n);
}

/* num / den as a number with enough digits to read back the same double,
 * or null (a rate or mean over nothing). */
static void an_ratio(char *dst, double num, long long den)
{
    if (den <= 0) {
        dst[0] = '\0';
        return;
    }
    double x = num / (double)den;
    snprintf(dst, 32, "%.15g", x);
    if (strtod(dst, NULL) != x)
        snprintf(dst, 32, "%.17g", x);
}

/* millionths as a decimal: "0.0079", "12", "0". */
static void an_money(char *dst, long long micros)
{
    int n = snprintf(dst, 32, "%lld.%06lld", micros / 1000000, micros % 1000000);
    while (n > 0 && dst[n - 1] == '0')
        dst[--n] = '\0';
    if (n > 0 && dst[n - 1] == '.')
        dst[--n] = '\0';
}

static void an_figures(const store_analytics_row_t *r, const cfg_t *cfg, an_figures_t *f)
{
    an_count(f->v[0], r->total);
    an_count(f->v[1], r->sent);
    an_count(f->v[2], r->delivered);
    an_count(f->v[3], r->opened);
    an_count(f->v[4], r->clicked);
    an_count(f->v[5], r->responses);
    an_count(f->v[6], r->failed);
    an_count(f->v[7], r->fallback);
    an_ratio(f->v[8], (double)r->delivered, r->sent);
    an_ratio(f->v[9], (double)r->opened, r->delivered);
    an_ratio(f->v[10], (double)r->clicked, r->opened);
    an_ratio(f->v[11], (double)r->responses, r->sent);
    an_ratio(f->v[12], (double)r->failed, r->total);
    an_ratio(f->v[13], (double)r->fallback, r->total);
    an_ratio(f->v[14], r->delivery_s, r->delivery_n);
    an_ratio(f->v[15], r->response_s, r->response_n);
    /* prices are at most 1000 (config.c): exact below 9 billion messages */
    long long micros = r->sent_email * cfg->cost_email_micros +
                       r->sent_sms * cfg->cost_sms_segment_micros +
                       r->sent_wa * cfg->cost_whatsapp_micros;
    an_money(f->v[16], micros);
    if (r->sent > 0)
        an_money(f->v[17], (micros + r->sent / 2) / r->sent);
    else
        f->v[17][0] = '\0';
}

/* One CSV field: quoted when it holds a comma, a quote or a line break
 * (RFC 4180), its quotes doubled. */
static int an_csv_field(buf_t *b, const char *s, int first)
{
    int rc = first ? 0 : buf_putc(b, ',');
    if (!strpbrk(s, ",\"\r\n"))
        return rc | buf_puts(b, s);
    rc |= buf_putc(b, '"');
    for (; *s; s++)
        rc |= *s == '"' ? buf_puts(b, "\"\"") : buf_putc(b, *s);
    return rc | buf_putc(b, '"');
}

static int an_csv_header(buf_t *b, const char *key)
{
    int rc = 0, first = 1;
    if (key) {
        rc |= an_csv_field(b, key, 1);
        first = 0;
    }
    for (int i = 0; i < AN_FIGURES_N; i++, first = 0)
        rc |= an_csv_field(b, an_names[i], first);
    return rc | an_csv_field(b, "currency", 0) | buf_puts(b, "\r\n");
}

static int an_csv_row(buf_t *b, const char *key, const an_figures_t *f, const char *currency)
{
    int rc = 0, first = 1;
    if (key) {
        rc |= an_csv_field(b, key, 1);
        first = 0;
    }
    for (int i = 0; i < AN_FIGURES_N; i++, first = 0)
        rc |= an_csv_field(b, f->v[i], first);
    return rc | an_csv_field(b, currency, 0) | buf_puts(b, "\r\n");
}

/* The figures as members of an open JSON object (a comma first). */
static int an_json_figures(buf_t *b, const an_figures_t *f)
{
    int rc = 0;
    for (int i = 0; i < AN_FIGURES_N; i++)
        rc |= buf_printf(b, ",\"%s\":%s", an_names[i], f->v[i][0] ? f->v[i] : "null");
    return rc;
}

static int an_json_opt(buf_t *b, const char *name, const char *s)
{
    int rc = buf_printf(b, ",\"%s\":", name);
    return rc | (s ? jtext_string(b, s) : buf_puts(b, "null"));
}

/* The head every JSON answer starts with: range, filters, currency. */
static int an_json_head(buf_t *b, const store_analytics_query_t *q, const char *currency)
{
    int rc = buf_puts(b, "{\"from\":") | jtext_string(b, q->from);
    rc |= buf_puts(b, ",\"to\":") | jtext_string(b, q->to);
    rc |= an_json_opt(b, "plan_id", q->plan_id) | an_json_opt(b, "client_id", q->client_id);
    return rc | an_json_opt(b, "currency", currency);
}

/* Reads the figures of q; 0 with *rows and *n (free *rows), or -1 with
 * out set. */
static int an_read(const http_req_t *rq, const store_analytics_query_t *q,
                   store_analytics_row_t **rows, int *n, http_answer_t *out)
{
    PGconn *conn = api_db_conn(rq, out, "analytics_failed");
    if (!conn)
        return -1;
    char err[512] = "";
    int rc = store_analytics(conn, q, rows, n, err, sizeof err);
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(((const api_t *)rq->ctx)->app->pool, conn);
    if (rc != 0) {
        api_db_failed(out, lost, "analytics_failed", err);
        return -1;
    }
    return 0;
}

static void an_send(buf_t *b, int rc, int csv, http_answer_t *out)
{
    if (rc != 0) {
        buf_free(b);
        http_answer_error(out, 500, "internal", "the answer does not fit");
        return;
    }
    if (csv) {
        http_answer_bytes(out, 200, b->data ? b->data : "", b->len);
        out->ctype = AN_CSV_TYPE;
        buf_free(b);
        return;
    }
    http_answer_json(out, 200, buf_detach(b));
}

void api_analytics_summary(const http_req_t *rq, http_answer_t *out)
{
    store_analytics_query_t q = {.by = STORE_ANALYTICS_NONE};
    char plan[37], client[37];
    int csv = 0;
    if (an_query(rq, &q, plan, client, &csv, out) != 0)
        return;
    store_analytics_row_t *rows = NULL;
    int n = 0;
    if (an_read(rq, &q, &rows, &n, out) != 0)
        return;
    const cfg_t *cfg = ((const api_t *)rq->ctx)->app->cfg;
    an_figures_t f = {0};
    an_figures(&rows[0], cfg, &f);
    free(rows);
    buf_t b;
    buf_init(&b, AN_BODY_MAX);
    int rc;
    if (csv)
        rc = an_csv_header(&b, NULL) | an_csv_row(&b, NULL, &f, cfg->cost_currency);
    else
        rc = an_json_head(&b, &q, cfg->cost_currency) | an_json_figures(&b, &f) | buf_putc(&b, '}');
    an_send(&b, rc, csv, out);
}

void api_analytics_breakdown(const http_req_t *rq, http_answer_t *out)
{
    static const char *const bys[] = {"channel", "message_type", "day", "hour"};
    static const store_analytics_by_t by_ids[] = {STORE_ANALYTICS_CHANNEL,
                                                  STORE_ANALYTICS_MESSAGE_TYPE, STORE_ANALYTICS_DAY,
                                                  STORE_ANALYTICS_HOUR};
    const char *by = http_req_query(rq, "by");
    store_analytics_query_t q = {.by = STORE_ANALYTICS_NONE};
    for (int i = 0; by && i < 4; i++)
        if (strcmp(by, bys[i]) == 0) {
            q.by = by_ids[i];
            by = bys[i];
        }
    if (q.by == STORE_ANALYTICS_NONE) {
        http_answer_error(out, 422, "invalid_field",
                          "by: required, one of channel, message_type, day, hour");
        return;
    }
    char plan[37], client[37];
    int csv = 0;
    if (an_query(rq, &q, plan, client, &csv, out) != 0)
        return;
    store_analytics_row_t *rows = NULL;
    int n = 0;
    if (an_read(rq, &q, &rows, &n, out) != 0)
        return;
    const cfg_t *cfg = ((const api_t *)rq->ctx)->app->cfg;
    buf_t b;
    buf_init(&b, AN_BODY_MAX);
    int rc = csv ? an_csv_header(&b, by)
                 : an_json_head(&b, &q, cfg->cost_currency) | buf_puts(&b, ",\"by\":") |
                       jtext_string(&b, by) | buf_puts(&b, ",\"rows\":[");
    for (int i = 0; i < n && rc == 0; i++) {
        an_figures_t f = {0};
        an_figures(&rows[i], cfg, &f);
        if (csv) {
            rc |= an_csv_row(&b, rows[i].key, &f, cfg->cost_currency);
            continue;
        }
        rc |= buf_printf(&b, "%s{\"%s\":", i ? "," : "", by) | jtext_string(&b, rows[i].key);
        rc |= an_json_figures(&b, &f) | buf_putc(&b, '}');
    }
    free(rows);
    if (!csv)
        rc |= buf_puts(&b, "]}");
    an_send(&b, rc, csv, out);
}

/* What the PDF shows of the figures (an_names' indexes), and how. */
static const struct {
    int i;
    const char *label;
    char kind; /* 'n' a count, 'r' a rate, 's' seconds, 'm' money */
} an_report_figures[] = {
    {0, "Communications", 'n'},
    {1, "Sent", 'n'},
    {2, "Delivered", 'n'},
    {8, "Delivery rate", 'r'},
    {9, "Open rate", 'r'},
    {10, "Click-through rate", 'r'},
    {11, "Response rate", 'r'},
    {12, "Failure rate", 'r'},
    {13, "Fallback rate", 'r'},
    {14, "Average delivery time", 's'},
    {15, "Average response time", 's'},
    {17, "Cost per communication", 'm'},
};

/* A figure as the console shows it: "91.0 %", "56.8 s", "-" for none. */
static void an_report_value(char *dst, size_t len, const char *v, char kind, const char *currency)
{
    if (!v[0]) {
        snprintf(dst, len, "-");
        return;
    }
    double x = strtod(v, NULL);
    switch (kind) {
    case 'r':
        snprintf(dst, len, "%.1f %%", 100.0 * x);
        break;
    case 's':
        snprintf(dst, len,
                 x < 90     ? "%.1f s"
                 : x < 5400 ? "%.1f min"
                            : "%.1f h",
                 x < 90     ? x
                 : x < 5400 ? x / 60
                            : x / 3600);
        break;
    case 'm':
        snprintf(dst, len, "%s %s", v, currency);
        break;
    default:
        snprintf(dst, len, "%s", v);
    }
}

static const char *const an_pdf_headers[] = {"Content-Disposition",
                                             "attachment; filename=\"crier-overview.pdf\"", NULL};

void api_analytics_report(const http_req_t *rq, http_answer_t *out)
{
    store_analytics_query_t q = {.by = STORE_ANALYTICS_NONE};
    char plan[37], client[37];
    int csv = 0;
    if (an_query(rq, &q, plan, client, &csv, out) != 0)
        return;
    const cfg_t *cfg = ((const api_t *)rq->ctx)->app->cfg;
    store_analytics_row_t *sum = NULL, *days = NULL, *chans = NULL;
    int n_sum = 0, n_days = 0, n_chans = 0;
    if (an_read(rq, &q, &sum, &n_sum, out) != 0)
        return;
    q.by = STORE_ANALYTICS_DAY;
    if (an_read(rq, &q, &days, &n_days, out) != 0) {
        free(sum);
        return;
    }
    q.by = STORE_ANALYTICS_CHANNEL;
    if (an_read(rq, &q, &chans, &n_chans, out) != 0) {
        free(sum);
        free(days);
        return;
    }
    report_t *r = calloc(1, sizeof *r);
    if (!r) {
        free(sum);
        free(days);
        free(chans);
        http_answer_error(out, 500, "internal_error", "out of memory");
        return;
    }
    snprintf(r->title, sizeof r->title, "crier overview");
    snprintf(r->period, sizeof r->period, "%.10s to %.10s (end excluded), UTC", q.from, q.to);
    an_figures_t f = {0};
    if (n_sum > 0)
        an_figures(&sum[0], cfg, &f);
    for (size_t k = 0; k < sizeof an_report_figures / sizeof an_report_figures[0]; k++) {
        report_figure_t *rf = &r->figures[r->n_figures++];
        snprintf(rf->label, sizeof rf->label, "%s", an_report_figures[k].label);
        an_report_value(rf->value, sizeof rf->value, f.v[an_report_figures[k].i],
                        an_report_figures[k].kind, cfg->cost_currency);
    }
    for (int i = 0; i < n_days && r->n_points < REPORT_POINTS_MAX; i++) {
        report_point_t *p = &r->points[r->n_points++];
        snprintf(p->label, sizeof p->label, "%.10s", days[i].key);
        p->sent = (double)days[i].sent;
        p->delivered = (double)days[i].delivered;
    }
    for (int i = 0; i < n_chans && r->n_bars < REPORT_BARS_MAX; i++) {
        report_bar_t *b = &r->bars[r->n_bars++];
        snprintf(b->label, sizeof b->label, "%s", chans[i].key);
        b->sent = (double)chans[i].sent;
        b->delivered = (double)chans[i].delivered;
        b->failed = (double)chans[i].failed;
    }
    free(sum);
    free(days);
    free(chans);
    buf_t pdf;
    char err[256];
    int rc = report_pdf(r, &pdf, err, sizeof err);
    free(r);
    if (rc != 0) {
        log_error("api", "report_failed", "error", err, NULL);
        http_answer_error(out, 500, "internal_error", "the report could not be drawn");
        return;
    }
    http_answer_bytes(out, 200, pdf.data, pdf.len);
    buf_free(&pdf);
    out->ctype = "application/pdf";
    out->headers = an_pdf_headers;
}
