/* actions: the answers a client can give to a message with one click
 * (docs/tracking.md, Actions). Some message types ask the client
 * something; each possible answer is an action, declared here from the
 * type and its render context:
 *
 *   vendor_options          one "choose" per element of vendor_combinations
 *                           (value: its "id", else its 1-based position;
 *                           label: its "name", else its "title")
 *   selection_confirmation  "confirm" (yes, Confirm) and "request_changes"
 *                           (changes, Ask for changes)
 *   reminder                "open_options" (open, See the options)
 *
 * The email driver stores them, makes a signed link per action and puts
 * the links into the context with act_context_set. The wording of the
 * page a click answers with is here too, so the message and its answer
 * speak alike. */
#ifndef CRIER_TEMPLATE_ACTIONS_H
#define CRIER_TEMPLATE_ACTIONS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define ACT_MAX        16  /* actions of one message; further combinations get none */
#define ACT_NAME_MAX   32  /* an action's name with its NUL */
#define ACT_VALUE_MAX  128 /* a value with its NUL: an id longer than this is refused */
#define ACT_LABEL_MAX  256 /* a label with its NUL: a longer one is cut (UTF-8 safe) */
#define ACT_HINT_MAX   1024
#define ACT_THANKS_MAX (ACT_LABEL_MAX + 160)

typedef struct act_decl {
    char action[ACT_NAME_MAX];
    char value[ACT_VALUE_MAX];
    char label[ACT_LABEL_MAX];
} act_decl_t;

typedef struct act_list {
    int n; /* actions a[0..n): a[i]'s index is i */
    act_decl_t a[ACT_MAX];
} act_list_t;

/* 1 when messages of message_type declare actions, else 0. */
int act_declared(const char *message_type);

/* The actions of message_type rendered with ctx into *l (n 0 when the type
 * declares none, or its context offers none). 0, or -1 with err when the
 * context cannot give them (a combination id too long to keep whole). */
int act_declare(const char *message_type, const cJSON *ctx, act_list_t *l, char *err,
                size_t errlen);

/* Puts the links of l into ctx, url[i] being action i's: for
 * vendor_options each combination's action_url; for every declared type
 * actions [{url, label, number}] (number 1-based) and reply_hint ("Reply 1
 * for A or 2 for B."), each left out when l has no action. What the
 * request put under those names is dropped first: only crier makes them.
 * A type that declares none is left as it is. 0, or -1 on OOM. */
int act_context_set(cJSON *ctx, const char *message_type, const act_list_t *l, char *const *url);

/* The reply hint of l into out ("" when l has no action or it does not
 * fit). */
void act_reply_hint(const act_list_t *l, char *out, size_t outlen);

/* The sentence of the page that confirms an answer (action and its
 * label), e.g. "Thanks — we've let your planner know you chose Lakeside
 * classic." */
void act_thanks(const char *action, const char *label, char *out, size_t outlen);

#endif
