#include "api/refuse.h"

void api_refuse(http_answer_t *out, req_err_t kind, const char *message)
{
    switch (kind) {
    case REQ_BAD_JSON:
        http_answer_error(out, 400, "invalid_json", message);
        return;
    case REQ_BAD_UTF8:
        http_answer_error(out, 400, "invalid_utf8", message);
        return;
    case REQ_TOO_DEEP:
        http_answer_error(out, 400, "json_too_deep", message);
        return;
    case REQ_BAD_FIELD:
        http_answer_error(out, 422, "invalid_field", message);
        return;
    case REQ_NO_MEMORY:
        break;
    }
    /* out of memory, or a kind this switch does not know yet: not the
     * client's fault either way */
    http_answer_error(out, 500, "internal_error", message);
}
