/* The built-in policy: the seed's channel table restricted to the channels
 * this build can deliver (email), sent now. It is deliberately simple and
 * total — it is what crier falls back to when anything smarter fails. */
#include "policy/policy.h"
#include "channel/ch.h"

#include "util/json_text.h"
#include "util/timefmt.h"

#include <stdio.h>
#include <string.h>

/* The seed's "Workflow Trigger Points": primary channel per message type. */
static const struct {
    const char *type;
    const char *primary;
} policy_seed_table[] = {
    {"welcome", CH_NAME_EMAIL},
    {"budget_summary", CH_NAME_EMAIL},
    {"vendor_options", CH_NAME_EMAIL},
    {"selection_confirmation", CH_NAME_EMAIL},
    {"blueprint_delivery", CH_NAME_EMAIL},
    {"error_notification", CH_NAME_SMS},
    {"reminder", CH_NAME_EMAIL},
};

int policy_priority(const char *urgency)
{
    static const char *const order[] = {"critical", "high", "normal", "low"};
    for (int i = 0; i < 4; i++)
        if (urgency && strcmp(urgency, order[i]) == 0)
            return i;
    return 2;
}

const char *policy_default_urgency(const char *message_type)
{
    static const char *const critical[] = {"error_notification"};
    static const char *const high[] = {"vendor_options", "blueprint_delivery"};
    if (message_type && strcmp(message_type, critical[0]) == 0)
        return "critical";
    for (size_t i = 0; message_type && i < sizeof high / sizeof high[0]; i++)
        if (strcmp(message_type, high[i]) == 0)
            return "high";
    return "normal";
}

const char *policy_seed_primary(const char *message_type)
{
    for (size_t i = 0; i < sizeof policy_seed_table / sizeof policy_seed_table[0]; i++)
        if (message_type && strcmp(message_type, policy_seed_table[i].type) == 0)
            return policy_seed_table[i].primary;
    return CH_NAME_EMAIL;
}

void policy_builtin_decide(const policy_msg_t *m, const policy_client_t *c, double now,
                           policy_decision_t *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->urgency, sizeof d->urgency, "%s",
             m->urgency && m->urgency[0] ? m->urgency : policy_default_urgency(m->message_type));
    d->priority = policy_priority(d->urgency);
    d->send_at = now;
    snprintf(d->rules_version, sizeof d->rules_version, "%s", POLICY_BUILTIN_VERSION);
    const char *seed = policy_seed_primary(m->message_type);

    const char *skip = NULL;
    if (!c->has_email)
        skip = "no_email_address";
    else if (c->opt_out[CH_EMAIL])
        skip = "opt_out";
    else if (c->email_suppressed)
        skip = "suppressed";

    if (skip) {
        snprintf(d->status, sizeof d->status, "skipped");
        snprintf(d->skip_reason, sizeof d->skip_reason, "%s", skip);
    } else {
        snprintf(d->status, sizeof d->status, "queued");
        snprintf(d->primary, sizeof d->primary, CH_NAME_EMAIL);
    }
    /* The trace says why, in the same shape the Lua rules' steps will use. */
    snprintf(d->trace_json, sizeof d->trace_json,
             "[{\"step\":\"builtin\",\"seed_primary\":\"%s\",\"available\":[\"email\"],"
             "\"result\":%s%s%s}]",
             seed, skip ? "\"skip:" : "\"", skip ? skip : CH_NAME_EMAIL, "\"");
}

int policy_fallback_json(const policy_decision_t *d, buf_t *out)
{
    int rc = buf_putc(out, '[');
    for (int i = 0; i < d->n_fallback; i++) {
        if (i)
            rc |= buf_putc(out, ',');
        rc |= jtext_string(out, d->fallback[i]);
    }
    rc |= buf_putc(out, ']');
    return rc ? -1 : 0;
}

int policy_decision_json(const policy_decision_t *d, buf_t *out)
{
    char when[32];
    time_iso8601(d->send_at, when);
    int rc = buf_puts(out, "{\"primary_channel\":");
    rc |= d->primary[0] ? jtext_string(out, d->primary) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"fallback_channels\":[");
    for (int i = 0; i < d->n_fallback; i++) {
        if (i)
            rc |= buf_putc(out, ',');
        rc |= jtext_string(out, d->fallback[i]);
    }
    rc |= buf_printf(out, "],\"send_at\":\"%s\",\"priority\":%d,\"batch\":", when, d->priority);
    if (d->batch_key[0]) {
        rc |= buf_puts(out, "{\"key\":");
        rc |= jtext_string(out, d->batch_key);
        rc |= buf_printf(out, ",\"window_seconds\":%d,\"max_size\":%d}", d->batch_window,
                         d->batch_max);
    } else {
        rc |= buf_puts(out, "null");
    }
    rc |= buf_puts(out, ",\"skip_reason\":");
    rc |= d->skip_reason[0] ? jtext_string(out, d->skip_reason) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"rules_version\":");
    rc |= jtext_string(out, d->rules_version);
    rc |= buf_printf(out, ",\"trace\":%s}", d->trace_json[0] ? d->trace_json : "[]");
    return rc ? -1 : 0;
}
