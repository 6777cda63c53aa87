/* Fuzzes the intake parser: the body of POST /v1/communications through
 * req_parse (JSON reading, every field rule, attachment decoding), the
 * body of PUT /v1/clients/{id} through req_parse_client_body, and the
 * shared JSON reader req_json_parse. */
#include "fuzz_input.h"
#include "request/request.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const char *body = (const char *)data;
    req_error_t err;

    req_comm_t r;
    if (req_parse(body, size, 64 * 1024, &r, &err) == 0) {
        char uuid[37];
        (void)req_uuid_lower(r.plan_id, uuid);
        req_free(&r);
    }

    req_client_t c;
    if (req_parse_client_body(body, size, &c, &err) == 0)
        req_client_free(&c);

    cJSON *root = NULL;
    if (req_json_parse(body, size, &root, &err) == 0)
        cJSON_Delete(root);

    /* The header checks read C strings: the input up to its first NUL. */
    char *s = fuzz_strndup(data, size);
    if (s) {
        char uuid[37];
        (void)req_idempotency_key_ok(s);
        (void)req_uuid_lower(s, uuid);
        free(s);
    }
    return 0;
}
