/* whatsapp: the wire format of the WhatsApp Cloud API (Meta Graph API)
 * messages endpoint, without the network.
 *
 * wa_build_text and wa_build_template make the JSON bodies (free-form text
 * only inside the 24-hour customer-service window; approved templates
 * outside it); wa_parse_response turns Meta's answer into a wamid or an error
 * category, classified on the Graph error code as the provider reference's
 * "Error envelope and codes" table says (not on titles or HTTP status). */
#ifndef CRIER_WHATSAPP_H
#define CRIER_WHATSAPP_H

#include "channel/errclass.h"
#include "util/buf.h"

#include <stddef.h>

#define WA_TEXT_MAX_CHARS       4096  /* text body limit */
#define WA_TEMPLATE_MAX_PARAMS  64    /* far above any approved template's {{n}} count */
#define WA_PARAM_MAX_BYTES      1024  /* one template parameter */
#define WA_CALLBACK_DATA_MAX    512   /* biz_opaque_callback_data */
#define WA_BODY_MAX             65536 /* one request body */
#define WA_RESPONSE_MAX         65536 /* larger answers are not Meta's */
#define WA_PAIR_RETRY_SEC       6     /* 131056: about one message per 6 s to one user */
#define WA_ENGAGEMENT_RETRY_SEC 86400 /* 131049: wait at least 24 h */

typedef struct wa_result {
    errc_t category;         /* ERRC_NONE when Meta accepted the message */
    int http_status;         /* as given */
    int error_code;          /* Graph error code, 0 when none */
    int retry_after;         /* seconds to wait when the code implies it, else -1 */
    int outside_window;      /* 1 on 131047: only a template may reach this user now */
    int opt_out;             /* 1 on 131050: the user stopped marketing messages */
    char wamid[160];         /* messages[0].id on success, else "" */
    char message_status[40]; /* "accepted", "held_for_quality_assessment" or "" */
    char message[256];       /* Meta's error text (digit runs of phone length masked) or ours */
} wa_result_t;

/* Writes "/{version}/{phone_number_id}/messages" (version like "v21.0")
 * into out. -1 when either part is malformed or out is too small. */
int wa_messages_path(const char *version, const char *phone_number_id, char *out, size_t outlen,
                     char *err, size_t errlen);
/* Appends "Bearer <token>" to out (a secret: never log it). */
int wa_authorization(buf_t *out, const char *access_token);

/* The body of a free-form text message to `to` (E.164 with or without "+";
 * sent as digits only, as Meta's examples do). callback_data (NULL or "")
 * becomes biz_opaque_callback_data, which status webhooks echo back.
 * Appends to out; returns ERRC_NONE or ERRC_INVALID_INPUT with err set. */
errc_t wa_build_text(buf_t *out, const char *to, const char *text, const char *callback_data,
                     char *err, size_t errlen);
/* An answer the client can tap: id comes back in the webhook
 * (interactive.button_reply.id or list_reply.id), title is what it says. */
typedef struct wa_choice {
    const char *id;    /* 1..256 bytes */
    const char *title; /* cut to the limit of its kind, in characters */
} wa_choice_t;

#define WA_BUTTONS_MAX      3    /* reply buttons of one message */
#define WA_LIST_ROWS_MAX    10   /* rows of a list message */
#define WA_BUTTON_TITLE_MAX 20   /* characters of a reply button's title */
#define WA_ROW_TITLE_MAX    24   /* characters of a list row's title */
#define WA_INTERACTIVE_MAX  1024 /* characters of an interactive message's body */

/* The body of an interactive message to `to` (inside the window): text
 * with up to WA_BUTTONS_MAX reply buttons, or, with more choices (up to
 * WA_LIST_ROWS_MAX), a list opened by a "Choose" button. ERRC_INVALID_INPUT
 * for no choice, too many, a text over WA_INTERACTIVE_MAX characters or an
 * id Meta would refuse. */
errc_t wa_build_choices(buf_t *out, const char *to, const char *text, const wa_choice_t *c,
                        size_t n, const char *callback_data, char *err, size_t errlen);
/* The body of a template message: name (lower case, digits, "_"), language
 * code ("en_US", "en"), nparams positional body parameters for
 * {{1}}..{{n}} (params may be NULL when nparams is 0), and the payloads of
 * its first npayloads quick-reply buttons (NULL when 0; each 1..128 bytes),
 * which the webhook returns as button.payload when one is tapped. */
errc_t wa_build_template(buf_t *out, const char *to, const char *name, const char *language,
                         const char *const *params, size_t nparams, const char *const *payloads,
                         size_t npayloads, const char *callback_data, char *err, size_t errlen);

/* Reads Meta's answer to a send. body may be NULL. Meta documents no
 * Retry-After; the waits come from the codes (131056, 131049). Returns 0 when accepted
 * (wamid set), -1 otherwise (category set, never ERRC_NONE). Malformed or
 * oversized JSON is ERRC_TRANSIENT. */
int wa_parse_response(int http_status, const char *body, wa_result_t *out);

/* The category of a Graph error code. is_transient is the envelope's flag
 * (-1 when absent) and http_status decides only for codes the table does not
 * know (0 when none, e.g. an error inside a status webhook). */
errc_t wa_classify(int code, int is_transient, int http_status);

#endif
