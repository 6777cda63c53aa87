/* pages: crier's own HTML pages (see pages.h). */
#include "template/pages.h"

#include "crypto/crypto.h"
#include "template/mustache.h"
#include "util/base64.h"
#include "util/errmsg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGES_MAX_OUTPUT (256 * 1024)

/* The one style sheet. Its SHA-256 is the only style the page's
 * Content-Security-Policy allows, so it must reach the page byte for byte:
 * it holds no Mustache tag. Focus is always visible; controls are at least
 * 24 px; one column, which fits a phone. */
#define PAGES_CSS                                                                                  \
    "\n*{box-sizing:border-box}\n"                                                                 \
    "body{margin:0;background:#f4f1ec;color:#1f1f1f;"                                              \
    "font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Helvetica,Arial,sans-serif}\n"             \
    "main{max-width:38rem;min-height:100vh;margin:0 auto;padding:1.25rem 1rem 2rem;"               \
    "background:#fff}\n"                                                                           \
    ".brand{margin:0 0 1rem;font-weight:bold;color:#3d2c5e;letter-spacing:.03em}\n"                \
    "h1{margin:0 0 1rem;font-size:1.5rem;line-height:1.3;color:#3d2c5e}\n"                         \
    "h2{margin:1.75rem 0 .5rem;font-size:1.15rem;color:#3d2c5e}\n"                                 \
    "fieldset{margin:0 0 1rem;padding:.75rem 1rem;border:1px solid #cfc8bc;border-radius:6px}\n"   \
    "legend{padding:0 .25rem;font-weight:bold}\n"                                                  \
    ".choice{display:flex;align-items:center;gap:.6rem;margin:.4rem 0}\n"                          \
    ".choice input{width:1.5rem;height:1.5rem;margin:0;flex:none}\n"                               \
    ".times{display:flex;flex-wrap:wrap;gap:.5rem 1rem;margin:.5rem 0 0 2.1rem}\n"                 \
    ".times span{display:inline-flex;align-items:center;gap:.4rem}\n"                              \
    "input[type=time]{font:inherit;padding:.35rem .5rem;border:1px solid #6b6b6b;"                 \
    "border-radius:4px;min-height:2.5rem}\n"                                                       \
    "button{font:inherit;font-weight:bold;min-height:2.75rem;padding:.6rem 1.2rem;"                \
    "border:2px solid #3d2c5e;border-radius:4px;background:#3d2c5e;color:#fff;cursor:pointer}\n"   \
    "button.quiet{background:#fff;color:#8a1c1c;border-color:#8a1c1c}\n"                           \
    "a{color:#3d2c5e}\n"                                                                           \
    ":focus-visible{outline:3px solid #b8860b;outline-offset:2px}\n"                               \
    ".hint{margin:.25rem 0 .5rem;color:#4f4f4f;font-size:.95rem}\n"                                \
    ".status{margin:0;padding:0;list-style:none}\n"                                                \
    ".status li{margin:.25rem 0}\n"                                                                \
    ".on{color:#1d6b2f}\n"                                                                         \
    ".off{color:#8a1c1c}\n"                                                                        \
    "footer{margin-top:2rem;color:#4f4f4f;font-size:.85rem}\n"                                     \
    "@media (max-width:30rem){button{width:100%} }\n"

/* The parent of every page: blocks title and content. */
static const char pages_layout[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<meta name=\"robots\" content=\"noindex, nofollow\">\n"
    "<title>{{$title}}{{/title}} - {{brand_name}}</title>\n"
    "<style>" PAGES_CSS "</style>\n"
    "</head>\n"
    "<body>\n"
    "<main>\n"
    "<p class=\"brand\">{{brand_name}}</p>\n"
    "{{$content}}{{/content}}\n"
    "<footer><p>{{brand_name}}{{#physical_address}} &middot; "
    "{{physical_address}}{{/physical_address}}</p></footer>\n"
    "</main>\n"
    "</body>\n"
    "</html>\n";

static const char pages_preferences[] =
    "{{<layout}}\n"
    "{{$title}}Your message preferences{{/title}}\n"
    "{{$content}}\n"
    "<h1>Your message preferences</h1>\n"
    "<section aria-labelledby=\"now\">\n"
    "<h2 id=\"now\">Where you get messages now</h2>\n"
    "<ul class=\"status\">\n"
    "{{#channels}}\n"
    "<li><strong>{{label}}</strong>: <span class=\"{{#on}}on{{/on}}{{^on}}off{{/on}}\">"
    "{{status}}</span></li>\n"
    "{{/channels}}\n"
    "</ul>\n"
    "</section>\n"
    "<h2 id=\"change\">Change them</h2>\n"
    "<form method=\"post\" action=\"{{action}}\" aria-labelledby=\"change\">\n"
    "<input type=\"hidden\" name=\"form_token\" value=\"{{form_token}}\">\n"
    "<fieldset>\n"
    "<legend>Preferred channel</legend>\n"
    "<p class=\"hint\" id=\"pref-hint\">We use it first for every message it suits.</p>\n"
    "{{#channels}}\n"
    "<div class=\"choice\"><input type=\"radio\" id=\"pref-{{name}}\" name=\"preferred_channel\" "
    "value=\"{{name}}\" aria-describedby=\"pref-hint\"{{#preferred}} checked{{/preferred}}>"
    "<label for=\"pref-{{name}}\">{{label}}</label></div>\n"
    "{{/channels}}\n"
    "</fieldset>\n"
    "<fieldset>\n"
    "<legend>Quiet hours</legend>\n"
    "<p class=\"hint\" id=\"quiet-hint\">Routine messages wait until your quiet hours are over; "
    "urgent ones still come. Times are in {{timezone}}.</p>\n"
    "<div class=\"choice\"><input type=\"radio\" id=\"quiet-none\" name=\"quiet\" value=\"none\" "
    "aria-describedby=\"quiet-hint\"{{#quiet_none}} checked{{/quiet_none}}>"
    "<label for=\"quiet-none\">No quiet hours</label></div>\n"
    "<div class=\"choice\"><input type=\"radio\" id=\"quiet-hours\" name=\"quiet\" value=\"hours\" "
    "aria-describedby=\"quiet-hint\"{{^quiet_none}} checked{{/quiet_none}}>"
    "<label for=\"quiet-hours\">Quiet hours at these times:</label></div>\n"
    "<div class=\"times\">\n"
    "<span><label for=\"quiet-start\">Start</label>\n"
    "<input type=\"time\" id=\"quiet-start\" name=\"quiet_start\" value=\"{{quiet_start}}\">"
    "</span>\n"
    "<span><label for=\"quiet-end\">End</label>\n"
    "<input type=\"time\" id=\"quiet-end\" name=\"quiet_end\" value=\"{{quiet_end}}\"></span>\n"
    "</div>\n"
    "</fieldset>\n"
    "<fieldset>\n"
    "<legend>Stop messages</legend>\n"
    "{{#channels}}\n"
    "<div class=\"choice\"><input type=\"checkbox\" id=\"out-{{name}}\" name=\"opt_out_{{name}}\" "
    "value=\"1\"{{#opted_out}} checked{{/opted_out}}>"
    "<label for=\"out-{{name}}\">No messages by {{label}}</label></div>\n"
    "{{/channels}}\n"
    "</fieldset>\n"
    "<button type=\"submit\">Save my preferences</button>\n"
    "</form>\n"
    "{{#has_email}}\n"
    "<h2 id=\"all\">Unsubscribe from all email</h2>\n"
    "<form method=\"post\" action=\"{{action}}\" aria-labelledby=\"all\">\n"
    "<input type=\"hidden\" name=\"form_token\" value=\"{{form_token}}\">\n"
    "<input type=\"hidden\" name=\"action\" value=\"unsubscribe_email\">\n"
    "<p class=\"hint\">One step: we stop sending you email at once. Messages by other "
    "channels follow the choices above.</p>\n"
    "<button type=\"submit\" class=\"quiet\">Unsubscribe from all email</button>\n"
    "</form>\n"
    "{{/has_email}}\n"
    "{{/content}}\n"
    "{{/layout}}\n";

static const char pages_saved[] = "{{<layout}}\n"
                                  "{{$title}}{{heading}}{{/title}}\n"
                                  "{{$content}}\n"
                                  "<h1>{{heading}}</h1>\n"
                                  "<p role=\"status\">{{message}}</p>\n"
                                  "{{#has_changes}}\n"
                                  "<ul>\n"
                                  "{{#changes}}\n"
                                  "<li>{{.}}</li>\n"
                                  "{{/changes}}\n"
                                  "</ul>\n"
                                  "{{/has_changes}}\n"
                                  "{{#confirmation_sent}}\n"
                                  "<p>We have sent you a message that confirms the change.</p>\n"
                                  "{{/confirmation_sent}}\n"
                                  "<p><a href=\"{{back}}\">Back to your preferences</a></p>\n"
                                  "{{/content}}\n"
                                  "{{/layout}}\n";

static const char pages_problem[] = "{{<layout}}\n"
                                    "{{$title}}{{heading}}{{/title}}\n"
                                    "{{$content}}\n"
                                    "<h1>{{heading}}</h1>\n"
                                    "<p role=\"alert\">{{message}}</p>\n"
                                    "{{#back}}\n"
                                    "<p><a href=\"{{back}}\">{{back_label}}</a></p>\n"
                                    "{{/back}}\n"
                                    "{{/content}}\n"
                                    "{{/layout}}\n";

static const char pages_answered[] = "{{<layout}}\n"
                                     "{{$title}}{{heading}}{{/title}}\n"
                                     "{{$content}}\n"
                                     "<h1>{{heading}}</h1>\n"
                                     "<p role=\"status\">{{message}}</p>\n"
                                     "{{/content}}\n"
                                     "{{/layout}}\n";

static int pages_partial(void *ud, const char *name, char **src)
{
    (void)ud;
    if (strcmp(name, "layout") != 0)
        return 1;
    *src = strdup(pages_layout);
    return *src ? 0 : -1;
}

int pages_render(pages_kind_t kind, const cJSON *view, buf_t *out, char *err, size_t errlen)
{
    const char *src = kind == PAGES_PREFERENCES ? pages_preferences
                      : kind == PAGES_SAVED     ? pages_saved
                      : kind == PAGES_ANSWERED  ? pages_answered
                                                : pages_problem;
    mst_options_t opt = {.partials = pages_partial,
                         .partials_ud = NULL,
                         .strict = 1,
                         .max_output = PAGES_MAX_OUTPUT};
    char e[256];
    if (mst_render(src, view, &opt, out, e, sizeof e) != 0) {
        errmsg_set(err, errlen, "page: %s", e);
        return -1;
    }
    return 0;
}

/* The policy: nothing but the style sheet above, and forms posted back to
 * crier; not framed, no <base>, no referrer (the token is in the URL). */
static char pages_csp[256];
static const char *pages_header_list[] = {
    "Content-Security-Policy",
    pages_csp,
    "Referrer-Policy",
    "no-referrer",
    "X-Frame-Options",
    "DENY",
    "X-Content-Type-Options",
    "nosniff",
    NULL,
};
static pthread_once_t pages_once = PTHREAD_ONCE_INIT;

static int pages_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void pages_make_csp(void)
{
    static const char css[] = PAGES_CSS;
    char hex[65];
    unsigned char digest[32];
    cry_sha256_hex(css, sizeof css - 1, hex);
    for (int i = 0; i < 32; i++)
        digest[i] = (unsigned char)(pages_hexval(hex[2 * i]) << 4 | pages_hexval(hex[2 * i + 1]));
    buf_t b;
    buf_init(&b, 64);
    const char *hash = b64_encode(&b, digest, sizeof digest, 0) == 0 ? b.data : NULL;
    /* without the hash the style is refused, which leaves the page plain
     * but working: never a weaker policy */
    snprintf(pages_csp, sizeof pages_csp,
             "default-src 'none'; style-src %s%s%s; form-action 'self'; frame-ancestors 'none'; "
             "base-uri 'none'",
             hash ? "'sha256-" : "'none'", hash ? hash : "", hash ? "'" : "");
    buf_free(&b);
}

const char *const *pages_headers(void)
{
    pthread_once(&pages_once, pages_make_csp);
    return pages_header_list;
}
