#include "api/templates.h"

#include "api/api.h"
#include "template/live.h"
#include "util/buf.h"

/* A path, one error and a few dozen short entries. */
#define TEMPLATES_STATUS_MAX (64 * 1024)

void api_templates_status(const http_req_t *rq, http_answer_t *out)
{
    const api_t *api = rq->ctx;
    tpl_live_t *t = api->app->templates;
    if (!t) {
        /* serve does not start without a catalogue: only a mistake gets here */
        http_answer_error(out, 500, "internal_error", "no template catalogue is live");
        return;
    }
    buf_t b;
    buf_init(&b, TEMPLATES_STATUS_MAX);
    if (tpl_live_status_json(t, &b) != 0) {
        buf_free(&b);
        http_answer_error(out, 500, "internal_error", "the templates status could not be built");
        return;
    }
    http_answer_json(out, 200, buf_detach(&b));
}
