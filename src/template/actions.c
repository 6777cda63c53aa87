/* actions: the one-click answers of a message (see actions.h). */
#include "template/actions.h"

#include "util/buf.h"
#include "util/errmsg.h"
#include "util/text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ACT_VENDOR_OPTIONS "vendor_options"
#define ACT_CONFIRMATION   "selection_confirmation"
#define ACT_REMINDER       "reminder"
#define ACT_COMBINATIONS   "vendor_combinations"

/* The fixed answers of a type that does not take them from its context. */
typedef struct act_fixed {
    const char *action, *value, *label;
} act_fixed_t;

static const act_fixed_t act_confirmation[] = {
    {"confirm", "yes", "Confirm"},
    {"request_changes", "changes", "Ask for changes"},
};
static const act_fixed_t act_reminder[] = {
    {"open_options", "open", "See the options"},
};

int act_declared(const char *message_type)
{
    return message_type &&
           (strcmp(message_type, ACT_VENDOR_OPTIONS) == 0 ||
            strcmp(message_type, ACT_CONFIRMATION) == 0 || strcmp(message_type, ACT_REMINDER) == 0);
}

static void act_put(act_list_t *l, const char *action, const char *value, const char *label)
{
    act_decl_t *d = &l->a[l->n++];
    snprintf(d->action, sizeof d->action, "%s", action);
    snprintf(d->value, sizeof d->value, "%s", value);
    text_copy_utf8(label, d->label, sizeof d->label);
}

static void act_put_fixed(act_list_t *l, const act_fixed_t *f, size_t n)
{
    for (size_t i = 0; i < n && l->n < ACT_MAX; i++)
        act_put(l, f[i].action, f[i].value, f[i].label);
}

/* The value of combination c at 0-based position i: its id (a string, or
 * a number written as the workflow would read it back), else i + 1. 0, or
 * -1 when the id does not fit. */
static int act_combination_value(const cJSON *c, int i, char out[ACT_VALUE_MAX])
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
    int w;
    if (cJSON_IsString(id) && id->valuestring[0])
        w = snprintf(out, ACT_VALUE_MAX, "%s", id->valuestring);
    else if (cJSON_IsNumber(id) && isfinite(id->valuedouble) &&
             id->valuedouble == floor(id->valuedouble) && fabs(id->valuedouble) < 1e15)
        w = snprintf(out, ACT_VALUE_MAX, "%.0f", id->valuedouble);
    else if (cJSON_IsNumber(id) && isfinite(id->valuedouble))
        w = snprintf(out, ACT_VALUE_MAX, "%.17g", id->valuedouble);
    else
        w = snprintf(out, ACT_VALUE_MAX, "%d", i + 1);
    return w < 0 || w >= ACT_VALUE_MAX ? -1 : 0;
}

/* The label of combination c at position i: its name, else its title,
 * else "Option N" (a button must say something). */
static void act_combination_label(const cJSON *c, int i, char out[ACT_LABEL_MAX])
{
    static const char *const keys[] = {"name", "title"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[k]);
        if (cJSON_IsString(v) && v->valuestring[0]) {
            text_copy_utf8(v->valuestring, out, ACT_LABEL_MAX);
            return;
        }
    }
    snprintf(out, ACT_LABEL_MAX, "Option %d", i + 1);
}

static int act_combinations(const cJSON *ctx, act_list_t *l, char *err, size_t errlen)
{
    const cJSON *found = cJSON_GetObjectItemCaseSensitive(ctx, ACT_COMBINATIONS);
    const cJSON *arr = cJSON_IsArray(found) ? found : NULL;
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, arr)
    {
        if (l->n >= ACT_MAX)
            break;
        char value[ACT_VALUE_MAX], label[ACT_LABEL_MAX];
        if (act_combination_value(c, i, value) != 0) {
            errmsg_set(err, errlen, "vendor_combinations[%d].id is longer than %d bytes", i,
                       ACT_VALUE_MAX - 1);
            l->n = 0;
            return -1;
        }
        act_combination_label(c, i, label);
        act_put(l, "choose", value, label);
        i++;
    }
    return 0;
}

int act_declare(const char *message_type, const cJSON *ctx, act_list_t *l, char *err, size_t errlen)
{
    l->n = 0;
    if (!act_declared(message_type))
        return 0;
    if (strcmp(message_type, ACT_VENDOR_OPTIONS) == 0)
        return act_combinations(ctx, l, err, errlen);
    if (strcmp(message_type, ACT_CONFIRMATION) == 0)
        act_put_fixed(l, act_confirmation, sizeof act_confirmation / sizeof act_confirmation[0]);
    else
        act_put_fixed(l, act_reminder, sizeof act_reminder / sizeof act_reminder[0]);
    return 0;
}

void act_reply_hint(const act_list_t *l, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (l->n <= 0)
        return;
    buf_t b;
    buf_init(&b, outlen - 1);
    int rc = buf_puts(&b, "Reply ");
    for (int i = 0; i < l->n; i++) {
        const char *sep = i == 0 ? "" : i == l->n - 1 ? " or " : ", ";
        rc |= buf_printf(&b, "%s%d for %s", sep, i + 1, l->a[i].label);
    }
    rc |= buf_putc(&b, '.');
    /* a hint cut short would promise an answer it no longer names */
    if (rc == 0)
        snprintf(out, outlen, "%s", b.data);
    buf_free(&b);
}

/* Replaces key in obj with a string; 0, or -1 on OOM. */
static int act_set_string(cJSON *obj, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    return cJSON_AddStringToObject(obj, key, value) ? 0 : -1;
}

/* Each combination's action_url: the link of the action at its position.
 * One the request gave is dropped even where crier has none (past
 * ACT_MAX), so no button leads where crier did not say. */
static int act_set_combinations(cJSON *ctx, const act_list_t *l, char *const *url)
{
    cJSON *found = cJSON_GetObjectItemCaseSensitive(ctx, ACT_COMBINATIONS);
    cJSON *arr = cJSON_IsArray(found) ? found : NULL;
    cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, arr)
    {
        if (!cJSON_IsObject(c)) {
            i++;
            continue;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(c, "action_url");
        if (i < l->n && act_set_string(c, "action_url", url[i]) != 0)
            return -1;
        i++;
    }
    return 0;
}

int act_context_set(cJSON *ctx, const char *message_type, const act_list_t *l, char *const *url)
{
    if (!act_declared(message_type))
        return 0;
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "actions");
    cJSON_DeleteItemFromObjectCaseSensitive(ctx, "reply_hint");
    if (strcmp(message_type, ACT_VENDOR_OPTIONS) == 0 && act_set_combinations(ctx, l, url) != 0)
        return -1;
    if (l->n <= 0)
        return 0;
    cJSON *list = cJSON_AddArrayToObject(ctx, "actions");
    if (!list)
        return -1;
    for (int i = 0; i < l->n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "url", url[i]) ||
            !cJSON_AddStringToObject(o, "label", l->a[i].label) ||
            !cJSON_AddNumberToObject(o, "number", i + 1)) {
            cJSON_Delete(o);
            return -1;
        }
        if (!cJSON_AddItemToArray(list, o)) {
            cJSON_Delete(o);
            return -1;
        }
    }
    char hint[ACT_HINT_MAX];
    act_reply_hint(l, hint, sizeof hint);
    return hint[0] ? act_set_string(ctx, "reply_hint", hint) : 0;
}

void act_thanks(const char *action, const char *label, char *out, size_t outlen)
{
    static const char lead[] = "Thanks \xe2\x80\x94 we've let your planner know you";
    if (strcmp(action, "confirm") == 0)
        snprintf(out, outlen, "%s confirmed your selection.", lead);
    else if (strcmp(action, "request_changes") == 0)
        snprintf(out, outlen, "%s would like some changes. They will be in touch.", lead);
    else if (strcmp(action, "open_options") == 0)
        snprintf(out, outlen, "%s would like to see the options again.", lead);
    else {
        char l[ACT_LABEL_MAX];
        text_copy_utf8(label ? label : "", l, sizeof l);
        snprintf(out, outlen, "%s chose %s.", lead, l);
    }
}
