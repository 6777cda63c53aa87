#include "api/console.h"

#include "api/api.h"
#include "api/session.h"
#include "template/pages.h"
#include "util/buf.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The console's files are small; anything bigger is not one of them. */
#define CONSOLE_FILE_MAX (2u << 20)
#define CONSOLE_MESSAGE  "<!-- message -->"

static const char *const console_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options",
    "DENY",
    "Referrer-Policy",
    "no-referrer",
    "X-Content-Type-Options",
    "nosniff",
    NULL};

/* The views index.html's script draws; any other {page} is a 404. */
static const char *const console_views[] = {
    "overview",      "channels", "timeline", "funnel", "preferences", "history",
    "communication", "client",   "rules",    "review", NULL};

/* Files served under /console/assets/: the name asked for, where it is
 * under the console folder, and its type. */
static const struct {
    const char *name, *path, *type;
} console_assets[] = {
    {"app.js", "app.js", "text/javascript; charset=utf-8"},
    {"app.css", "app.css", "text/css; charset=utf-8"},
    {"uplot.js", "node_modules/uplot/dist/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
    {"uplot.css", "node_modules/uplot/dist/uPlot.min.css", "text/css; charset=utf-8"},
};

/* Reads dir/rel into b (bounded). 0, or -1 with err. */
static int console_read(const char *dir, const char *rel, buf_t *b, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", rel, strerror(errno));
        return -1;
    }
    buf_init(b, CONSOLE_FILE_MAX);
    char chunk[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(b, chunk, n) != 0) {
            snprintf(err, errlen, "%s: larger than %u bytes", rel, CONSOLE_FILE_MAX);
            rc = -1;
            break;
        }
    if (ferror(f) && rc == 0) {
        snprintf(err, errlen, "%s: read error", rel);
        rc = -1;
    }
    fclose(f);
    if (rc != 0)
        buf_free(b);
    return rc;
}

/* Answers the console file rel (an HTML page unless type says otherwise),
 * with message put where the page has CONSOLE_MESSAGE. */
static void console_file(const http_req_t *rq, http_answer_t *out, int status, const char *rel,
                         const char *type, const char *message)
{
    const api_t *api = rq->ctx;
    buf_t b;
    char err[512];
    if (console_read(api->app->cfg->console_dir, rel, &b, err, sizeof err) != 0) {
        log_error("api", "console_file_missing", "error", err, "dir", api->app->cfg->console_dir,
                  NULL);
        http_answer_error(out, 500, "console_unavailable",
                          "the console's files are missing (CRIER_CONSOLE_DIR)");
        return;
    }
    const char *text = b.data ? b.data : "";
    const char *at = message ? strstr(text, CONSOLE_MESSAGE) : NULL;
    if (at) {
        buf_t page;
        buf_init(&page, CONSOLE_FILE_MAX + 1024);
        int rc = buf_append(&page, text, (size_t)(at - text));
        rc |= buf_printf(&page, "<p class=\"problem\" role=\"alert\">%s</p>", message);
        rc |= buf_puts(&page, at + strlen(CONSOLE_MESSAGE));
        buf_free(&b);
        if (rc != 0) {
            buf_free(&page);
            http_answer_error(out, 500, "internal_error", "out of memory");
            return;
        }
        b = page;
    }
    http_answer_bytes(out, status, b.data ? b.data : "", b.len);
    buf_free(&b);
    out->ctype = type ? type : PAGES_TYPE;
    out->headers = console_headers;
    out->no_cache = 1;
}

void api_console_login_page(const http_req_t *rq, http_answer_t *out, int status,
                            const char *message)
{
    console_file(rq, out, status, "login.html", NULL, message);
}

void api_console_login_get(const http_req_t *rq, http_answer_t *out)
{
    console_file(rq, out, 200, "login.html", NULL, NULL);
}

static int console_view_known(const char *page)
{
    for (const char *const *v = console_views; *v; v++)
        if (strcmp(*v, page) == 0)
            return 1;
    return 0;
}

void api_console_page(const http_req_t *rq, http_answer_t *out)
{
    const char *page = http_req_param(rq, "page");
    if (page && !console_view_known(page)) {
        http_answer_error(out, 404, "not_found", "no such console page");
        return;
    }
    char actor[AUTH_LABEL_MAX];
    auth_result_t ar =
        api_session_of(rq, AUTH_SCOPE_OPERATOR | AUTH_SCOPE_ADMIN, actor, sizeof actor);
    if (ar == AUTH_UNAUTHORIZED) {
        http_answer_redirect(out, 303, "/console/login");
        return;
    }
    if (ar == AUTH_FORBIDDEN) {
        api_console_login_page(rq, out, 403, "Your session may not open the console.");
        return;
    }
    console_file(rq, out, 200, "index.html", NULL, NULL);
}

void api_console_asset(const http_req_t *rq, http_answer_t *out)
{
    const char *name = http_req_param(rq, "name");
    for (size_t i = 0; name && i < sizeof console_assets / sizeof console_assets[0]; i++)
        if (strcmp(console_assets[i].name, name) == 0) {
            console_file(rq, out, 200, console_assets[i].path, console_assets[i].type, NULL);
            return;
        }
    http_answer_error(out, 404, "not_found", "no such console file");
}
