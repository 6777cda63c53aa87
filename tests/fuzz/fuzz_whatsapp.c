/* Fuzzes what crier reads from Meta. The webhook's own walk over
 * entry[].changes[].value is private to the API layer, so this harness
 * drives the layers under it on the same JSON: wa_parse_response (Meta's
 * answer to a send, under several HTTP statuses), the status and keyword
 * readers a webhook item goes through (rcpt_status_whatsapp,
 * rcpt_keyword, wa_classify) and sig_meta_valid on the raw body. */
#include "channel/errclass.h"
#include "channel/whatsapp.h"
#include "fuzz_input.h"
#include "store/receipts.h"
#include "webhook/signature.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void read_status(const cJSON *st)
{
    rcpt_status_t s = rcpt_status_whatsapp(jstr(st, "status"));
    (void)rcpt_status_column(s);
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(st, "errors");
    const cJSON *e0 = cJSON_IsArray(errors) ? cJSON_GetArrayItem(errors, 0) : NULL;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e0, "code");
    if (cJSON_IsNumber(code) && code->valuedouble > 0 && code->valuedouble < 1e9)
        (void)errc_name(wa_classify((int)code->valuedouble, -1, 0));
}

static void read_message(const cJSON *msg)
{
    const char *type = jstr(msg, "type");
    const cJSON *part = type ? cJSON_GetObjectItemCaseSensitive(msg, type) : NULL;
    const char *said[] = {jstr(part, "body"), jstr(part, "text"), jstr(part, "payload")};
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++)
        if (said[i])
            (void)rcpt_keyword_name(rcpt_keyword(said[i], NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *body = fuzz_strndup(data, size);
    if (!body)
        return 0;
    static const int statuses[] = {200, 400, 401, 429, 500, 503};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        wa_result_t r;
        (void)wa_parse_response(statuses[i], body, &r);
    }

    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *e, *ch, *it;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "entry"))
    {
        cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(e, "changes"))
        {
            const cJSON *value = cJSON_GetObjectItemCaseSensitive(ch, "value");
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(value, "statuses"))
            {
                read_status(it);
            }
            cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(value, "messages"))
            {
                read_message(it);
            }
        }
    }
    cJSON_Delete(root);

    sig_reason_t why;
    (void)sig_meta_valid("fuzz-app-secret", data, size,
                         "sha256=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                         &why);
    (void)sig_meta_valid("fuzz-app-secret", "{}", 2, body, &why);
    free(body);
    return 0;
}
