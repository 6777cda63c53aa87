/* Fuzzes the webhook form readers: the whole input as a Twilio
 * application/x-www-form-urlencoded body (form_parse, with the default and
 * with tight limits), and, when it holds a NUL, as a Content-Type (before
 * the NUL) and a multipart/form-data body (after it) through
 * formdata_boundary and formdata_parse. */
#include "fuzz_input.h"
#include "webhook/form.h"
#include "webhook/formdata.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every pair back, so a pointer that went astray is touched. */
static size_t form_touch(const form_pairs_t *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->count; i++)
        n += strlen(p->pairs[i].key) + strlen(p->pairs[i].value);
    (void)form_get(p, "MessageSid");
    (void)form_get(p, "Body");
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char err[256];
    form_pairs_t p;

    if (form_parse(&p, (const char *)data, size, NULL, err, sizeof err) == 0)
        (void)form_touch(&p);
    form_free(&p);

    const form_limits_t tight = {512, 4, 16, 64};
    if (form_parse(&p, (const char *)data, size, &tight, err, sizeof err) == 0)
        (void)form_touch(&p);
    form_free(&p);

    const uint8_t *rest = data;
    size_t left = size;
    if (!memchr(data, '\0', size))
        return 0;
    char *ctype = fuzz_next(&rest, &left);
    if (!ctype)
        return 0;
    char boundary[71];
    (void)formdata_boundary(ctype, boundary);
    if (formdata_parse(&p, ctype, (const char *)rest, left, NULL, err, sizeof err) == 0)
        (void)form_touch(&p);
    form_free(&p);
    free(ctype);
    return 0;
}
