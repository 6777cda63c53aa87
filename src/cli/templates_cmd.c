/* crier templates: check the message catalogue, or render one message
 * with a context file so wording can be reviewed before it is live. */
#include "cli/commands.h"
#include "channel/ch.h"
#include "channel/gsm7.h"
#include "util/file.h"
#include "template/catalog.h"
#include "template/check.h"
#include "validate.h"
#include "template/context.h"
#include "util/buf.h"
#include "util/text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TPLCMD_MAX_CONTEXT (1024 * 1024) /* bytes of a context file */

static void tplcmd_usage(FILE *f)
{
    fprintf(f, "usage: crier templates check\n"
               "       crier templates render NAME --context FILE [--channel email|sms|whatsapp]\n"
               "\n"
               "check   loads every template under CRIER_TEMPLATES_DIR, checks that each\n"
               "        parses and that every HTML part is well-formed, then renders each\n"
               "        type with its example context (examples/<type>.json): the email, the\n"
               "        SMS (which must fit CRIER_SMS_SEGMENT_BUDGET segments), the WhatsApp\n"
               "        text and the approved WhatsApp template's parameters. An email whose\n"
               "        text or HTML part does not show the unsubscribe link fails.\n"
               "render  renders the email NAME (welcome, budget_summary, vendor_options,\n"
               "        selection_confirmation, blueprint_delivery, error_notification,\n"
               "        reminder) with the JSON object in FILE as the workflow context, and\n"
               "        prints the subject, the text part and the HTML part; with --channel sms\n"
               "        the SMS with its encoding and segments, with --channel whatsapp the\n"
               "        free text and the approved template. client_name and plan_id are\n"
               "        taken from FILE when present.\n");
}

/* Reads a whole file of at most TPLCMD_MAX_CONTEXT bytes; NULL with a
 * message on stderr otherwise. */
static char *tplcmd_read(const char *path, size_t *len)
{
    buf_t b;
    buf_init(&b, TPLCMD_MAX_CONTEXT);
    char err[512];
    if (file_append(path, path, &b, err, sizeof err) != 0) {
        fprintf(stderr, "crier templates: %s\n", err);
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return buf_detach(&b);
}

/* Parses a context file; a JSON error names the file, line and column. */
static cJSON *tplcmd_load_context(const char *path)
{
    size_t len = 0;
    char *text = tplcmd_read(path, &len);
    if (!text)
        return NULL;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc) {
        int line, col;
        text_line_col(text, len, end, &line, &col);
        fprintf(stderr, "crier templates: %s: invalid JSON at line %d, column %d\n", path, line,
                col);
    } else if (!cJSON_IsObject(doc)) {
        fprintf(stderr, "crier templates: %s: the context must be a JSON object\n", path);
        cJSON_Delete(doc);
        doc = NULL;
    }
    free(text);
    return doc;
}

static int tplcmd_is_type(const char *name)
{
    for (size_t i = 0; i < VAL_SHORT_TYPES; i++)
        if (strcmp(name, val_message_types[i]) == 0)
            return 1;
    return 0;
}

static void tplcmd_line(void *ud, int ok, const char *line)
{
    (void)ud;
    printf("%s %s\n", ok ? "ok  " : "FAIL", line);
}

static tpl_check_opts_t tplcmd_opts(const cfg_t *cfg)
{
    return (tpl_check_opts_t){.site = {.brand_name = cfg->brand_name,
                                       .support_email = cfg->support_email,
                                       .physical_address = cfg->physical_address,
                                       .public_url = cfg->public_url},
                              .sms_segment_budget = cfg->sms_segment_budget};
}

/* The context of a preview; link is the footer's unsubscribe link, which
 * crier makes for a real email. */
static cJSON *tplcmd_build(const cfg_t *cfg, const cJSON *request, const char *link)
{
    tpl_check_opts_t o = tplcmd_opts(cfg);
    cJSON *ctx = tpl_check_context(&o.site, request);
    if (ctx && tpl_context_set_links(ctx, link, link) != 0) {
        cJSON_Delete(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* The same check a running crier makes before a reloaded catalogue may go
 * live (template/check.h). */
static int tplcmd_check(cfg_t *cfg)
{
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(cfg->templates_dir, err, sizeof err);
    if (!c) {
        printf("FAIL catalogue %s: %s\n", cfg->templates_dir, err);
        return 1;
    }
    printf("ok   catalogue %s (version %s)\n", cfg->templates_dir, tpl_catalog_version(c));
    tpl_check_opts_t o = tplcmd_opts(cfg);
    int failed = tpl_check_examples(c, cfg->templates_dir, &o, tplcmd_line, NULL, err, sizeof err);
    tpl_catalog_free(c);
    return failed ? 1 : 0;
}

/* Prints the SMS or WhatsApp messages of one type rendered with ctx. */
static int tplcmd_print_short(const cfg_t *cfg, const tpl_catalog_t *c, const char *channel,
                              const char *type, const cJSON *ctx)
{
    char err[512], desc[160];
    char *text = NULL;
    gsm7_count_t n;
    if (strcmp(channel, CH_NAME_SMS) == 0) {
        if (tpl_render_sms(c, type, ctx, &text, err, sizeof err) != 0) {
            fprintf(stderr, "crier templates: %s\n", err);
            return 2;
        }
        if (gsm7_count(text, strlen(text), &n) != 0) {
            fprintf(stderr, "crier templates: sms/%s: not valid UTF-8 at byte %zu\n", type,
                    n.offset);
            free(text);
            return 2;
        }
        tpl_check_describe_sms(&n, desc, sizeof desc);
        printf("%s\n----- sms: %s (budget %d) -----\n", text, desc, cfg->sms_segment_budget);
        free(text);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (tpl_render_whatsapp_text(c, type, ctx, &text, err, sizeof err) != 0) {
        fprintf(stderr, "crier templates: %s\n", err);
        return 2;
    }
    if (gsm7_count(text, strlen(text), &n) != 0) {
        fprintf(stderr, "crier templates: whatsapp/%s.txt: not valid UTF-8\n", type);
        free(text);
        return 2;
    }
    printf("%s\n----- whatsapp text (inside the 24-hour window): %zu characters of %d -----\n",
           text, n.chars, TPL_CHECK_WA_TEXT_MAX);
    free(text);
    tpl_wa_template_t wa;
    if (tpl_render_whatsapp_template(c, type, ctx, &wa, err, sizeof err) != 0) {
        fprintf(stderr, "crier templates: %s\n", err);
        return 2;
    }
    printf("----- whatsapp template (outside the window) -----\nname: %s\nlanguage: %s\n", wa.name,
           wa.language);
    for (size_t i = 0; i < wa.n_params; i++)
        printf("{{%zu}}: %s\n", i + 1, wa.params[i]);
    tpl_wa_template_free(&wa);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int tplcmd_render(cfg_t *cfg, const char *name, const char *context_path,
                         const char *channel)
{
    if (!tplcmd_is_type(name)) {
        fprintf(stderr, "crier templates: unknown message type \"%s\"\n", name);
        return 2;
    }
    cJSON *request = tplcmd_load_context(context_path);
    if (!request)
        return 2;
    char err[512];
    tpl_catalog_t *c = tpl_catalog_load(cfg->templates_dir, err, sizeof err);
    if (!c) {
        fprintf(stderr, "crier templates: %s: %s\n", cfg->templates_dir, err);
        cJSON_Delete(request);
        return 1;
    }
    int rc = 1;
    /* a real email's link names its communication; a preview has none */
    char link[1024];
    snprintf(link, sizeof link, "%s/u/preview", cfg->public_url ? cfg->public_url : "");
    cJSON *ctx = tplcmd_build(cfg, request, link);
    tpl_email_t mail;
    if (!ctx) {
        fprintf(stderr, "crier templates: out of memory\n");
    } else if (strcmp(channel, CH_NAME_EMAIL) != 0) {
        rc = tplcmd_print_short(cfg, c, channel, name, ctx);
    } else if (tpl_render_email(c, name, ctx, &mail, err, sizeof err) != 0) {
        /* the context did not fit the template: bad input, not a crash */
        fprintf(stderr, "crier templates: %s\n", err);
        rc = 2;
    } else {
        printf("Subject: %s\n\n%s", mail.subject, mail.text);
        if (mail.text[0] && mail.text[strlen(mail.text) - 1] != '\n')
            putchar('\n');
        printf("----- text/html -----\n%s", mail.html);
        if (mail.html[0] && mail.html[strlen(mail.html) - 1] != '\n')
            putchar('\n');
        tpl_email_free(&mail);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    cJSON_Delete(ctx);
    cJSON_Delete(request);
    tpl_catalog_free(c);
    return rc;
}

int cmd_templates(int argc, char **argv, cfg_t *cfg)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            tplcmd_usage(stdout);
            return 0;
        }
    }
    if (argc < 2) {
        tplcmd_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "check") == 0) {
        if (argc != 2) {
            fprintf(stderr, "crier templates check: unexpected argument \"%s\"\n", argv[2]);
            return 2;
        }
        return tplcmd_check(cfg);
    }
    if (strcmp(argv[1], "render") != 0) {
        fprintf(stderr, "crier templates: unknown action \"%s\"\n", argv[1]);
        tplcmd_usage(stderr);
        return 2;
    }
    const char *name = NULL, *context = NULL, *channel = CH_NAME_EMAIL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--context") == 0 && i + 1 < argc) {
            context = argv[++i];
        } else if (strcmp(argv[i], "--channel") == 0 && i + 1 < argc) {
            channel = argv[++i];
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            fprintf(stderr, "crier templates render: unexpected argument \"%s\"\n", argv[i]);
            tplcmd_usage(stderr);
            return 2;
        }
    }
    if (!name || !context) {
        fprintf(stderr, "crier templates render: NAME and --context FILE are required\n");
        tplcmd_usage(stderr);
        return 2;
    }
    if (strcmp(channel, CH_NAME_EMAIL) != 0 && strcmp(channel, CH_NAME_SMS) != 0 &&
        strcmp(channel, CH_NAME_WHATSAPP) != 0) {
        fprintf(stderr, "crier templates render: unknown channel \"%s\"\n", channel);
        return 2;
    }
    return tplcmd_render(cfg, name, context, channel);
}
