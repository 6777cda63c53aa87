#include "api/page.h"

#include "util/buf.h"
#include "util/log.h"

/* A page is a few kilobytes. */
#define PAGE_MAX (256 * 1024)

cJSON *api_page_view(const api_t *api)
{
    const cfg_t *cfg = api->app->cfg;
    cJSON *v = cJSON_CreateObject();
    if (!v || !cJSON_AddStringToObject(v, "brand_name", cfg->brand_name ? cfg->brand_name : "") ||
        (cfg->physical_address && cfg->physical_address[0] &&
         !cJSON_AddStringToObject(v, "physical_address", cfg->physical_address))) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

void api_page_answer(http_answer_t *out, int status, pages_kind_t kind, cJSON *view)
{
    buf_t b;
    buf_init(&b, PAGE_MAX);
    char err[256] = "out of memory";
    int rc = view ? pages_render(kind, view, &b, err, sizeof err) : -1;
    cJSON_Delete(view);
    char *body = rc == 0 ? buf_detach(&b) : NULL;
    buf_free(&b);
    if (!body) {
        log_error("api", "page_not_rendered", "error", err, NULL);
        http_answer_error(out, 500, "internal_error", "the page could not be made");
        return;
    }
    http_answer_json(out, status, body);
    out->ctype = PAGES_TYPE;
    out->headers = pages_headers();
}
