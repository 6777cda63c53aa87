#include "template/check.h"

#include "channel/ch.h"
#include "util/buf.h"
#include "util/errmsg.h"
#include "util/file.h"
#include "util/text.h"
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_MAX_CONTEXT      (1024 * 1024) /* bytes of an example context */
#define CHECK_PLACEHOLDER_PLAN "00000000-0000-0000-0000-000000000000"
#define CHECK_PREVIEW_ID       "preview"

typedef struct check_run {
    tpl_check_line_fn fn;
    void *ud;
    char *first_err;
    size_t errlen;
    int failed;
} check_run_t;

static void check_say(check_run_t *r, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check_say(check_run_t *r, int ok, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!ok && r->failed++ == 0 && r->first_err && r->errlen)
        snprintf(r->first_err, r->errlen, "%s", line);
    if (r->fn)
        r->fn(r->ud, ok, line);
}

void tpl_check_describe_sms(const gsm7_count_t *n, char *out, size_t outlen)
{
    int w = snprintf(out, outlen, "%s, %zu %s, %zu segment%s", gsm7_encoding_name(n->encoding),
                     n->units, n->encoding == GSM7_ENC_GSM7 ? "septets" : "UTF-16 units",
                     n->segments, n->segments == 1 ? "" : "s");
    if (n->encoding == GSM7_ENC_UCS2 && w > 0 && (size_t)w < outlen)
        snprintf(out + w, outlen - (size_t)w, "; U+%04X at byte %zu forces UCS-2",
                 (unsigned)n->ucs2_char, n->offset);
}

static const char *check_str(const cJSON *obj, const char *key, const char *fallback)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
    return s && *s ? s : fallback;
}

cJSON *tpl_check_context(const tpl_site_t *site, const cJSON *request)
{
    cJSON *ctx =
        tpl_context_build(request, site, check_str(request, "client_name", "Client"),
                          check_str(request, "plan_id", CHECK_PLACEHOLDER_PLAN), CHECK_PREVIEW_ID);
    if (ctx && tpl_context_set_links(ctx, TPL_CHECK_LINK, TPL_CHECK_LINK) != 0) {
        cJSON_Delete(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* Reads and parses an example context; NULL with why (naming the file, and
 * for bad JSON the line and column). */
static cJSON *check_example(const char *path, char *why, size_t whylen)
{
    buf_t b;
    buf_init(&b, CHECK_MAX_CONTEXT);
    if (file_append(path, path, &b, why, whylen) != 0) {
        buf_free(&b);
        return NULL;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(b.data ? b.data : "", b.len, &end, 0);
    if (!doc) {
        int line, col;
        text_line_col(b.data ? b.data : "", b.len, end, &line, &col);
        errmsg_set(why, whylen, "%s: invalid JSON at line %d, column %d", path, line, col);
    } else if (!cJSON_IsObject(doc)) {
        errmsg_set(why, whylen, "%s: the context must be a JSON object", path);
        cJSON_Delete(doc);
        doc = NULL;
    }
    buf_free(&b);
    return doc;
}

/* The SMS and WhatsApp messages of one type rendered with ctx. */
static void check_short(const tpl_catalog_t *c, const tpl_check_opts_t *o, const char *type,
                        const cJSON *ctx, check_run_t *r)
{
    char err[512], desc[160];
    char *text = NULL;
    gsm7_count_t n;
    if (tpl_render_sms(c, type, ctx, &text, err, sizeof err) != 0) {
        check_say(r, 0, "sms/%s: %s", type, err);
    } else if (gsm7_count(text, strlen(text), &n) != 0) {
        check_say(r, 0, "sms/%s: not valid UTF-8 at byte %zu", type, n.offset);
    } else {
        tpl_check_describe_sms(&n, desc, sizeof desc);
        if (n.segments > (size_t)o->sms_segment_budget)
            check_say(r, 0, "sms/%s: %s, over the budget of %d (CRIER_SMS_SEGMENT_BUDGET)", type,
                      desc, o->sms_segment_budget);
        else
            check_say(r, 1, "sms/%s (%s)", type, desc);
    }
    free(text);
    text = NULL;

    if (tpl_render_whatsapp_text(c, type, ctx, &text, err, sizeof err) != 0)
        check_say(r, 0, "whatsapp/%s.txt: %s", type, err);
    else if (gsm7_count(text, strlen(text), &n) != 0 || n.chars > TPL_CHECK_WA_TEXT_MAX)
        check_say(r, 0, "whatsapp/%s.txt: invalid UTF-8 or longer than %d characters", type,
                  TPL_CHECK_WA_TEXT_MAX);
    else
        check_say(r, 1, "whatsapp/%s.txt (%zu characters)", type, n.chars);
    free(text);

    tpl_wa_template_t wa;
    if (tpl_render_whatsapp_template(c, type, ctx, &wa, err, sizeof err) != 0) {
        check_say(r, 0, "whatsapp/%s.json: %s", type, err);
    } else {
        check_say(r, 1, "whatsapp/%s.json (%s, %s, %zu parameter%s)", type, wa.name, wa.language,
                  wa.n_params, wa.n_params == 1 ? "" : "s");
        tpl_wa_template_free(&wa);
    }
}

int tpl_check_examples(const tpl_catalog_t *c, const char *dir, const tpl_check_opts_t *opts,
                       tpl_check_line_fn fn, void *ud, char *first_err, size_t errlen)
{
    check_run_t r = {.fn = fn, .ud = ud, .first_err = first_err, .errlen = errlen};
    if (first_err && errlen)
        first_err[0] = '\0';
    /* every email, the engine's digest too; the short messages of the
     * types that have them */
    for (size_t i = 0; i < VAL_MESSAGE_TYPES; i++) {
        const char *type = val_message_types[i];
        char path[4096], why[600];
        snprintf(path, sizeof path, "%s/examples/%s.json", dir, type);
        cJSON *request = check_example(path, why, sizeof why);
        if (!request) {
            check_say(&r, 0, "email/%s: no usable example context: %s", type, why);
            continue;
        }
        cJSON *ctx = tpl_check_context(&opts->site, request);
        tpl_email_t mail;
        char err[512];
        if (!ctx) {
            check_say(&r, 0, "email/%s: out of memory", type);
        } else if (tpl_render_email(c, type, ctx, &mail, err, sizeof err) != 0) {
            check_say(&r, 0, "email/%s: %s", type, err);
        } else {
            const char *missing = !strstr(mail.text, TPL_CHECK_LINK)   ? "text"
                                  : !strstr(mail.html, TPL_CHECK_LINK) ? "HTML"
                                                                       : NULL;
            if (missing)
                check_say(&r, 0,
                          "email/%s: the %s part does not show the unsubscribe link "
                          "({{unsubscribe_url}})",
                          type, missing);
            else
                check_say(&r, 1, "email/%s (subject, text, html, unsubscribe link)", type);
            tpl_email_free(&mail);
        }
        if (ctx && i < VAL_SHORT_TYPES)
            check_short(c, opts, type, ctx, &r);
        cJSON_Delete(ctx);
        cJSON_Delete(request);
    }
    return r.failed;
}
