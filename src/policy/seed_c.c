/* The seed's policy in C, step for step the same as the shipped
 * rules/channels.lua, fallback.lua, timing.lua and batching.lua. A change to
 * one must be made to the other: tests/unit/test_rules.c compares them on
 * generated inputs. */
#include "policy/seed_c.h"
#include "channel/ch.h"
#include "util/errmsg.h"

#include "tz/tz.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SEED_BUSINESS_START (9 * 60)
#define SEED_BUSINESS_END   (18 * 60)
#define SEED_BATCH_SLOT     (9 * 60)
#define SEED_BATCH_WINDOW   300
#define SEED_BATCH_MAX      3
#define SEED_STALE_S        (24 * 3600)

static const char *const seed_all[] = {CH_NAME_EMAIL, CH_NAME_SMS, CH_NAME_WHATSAPP};

/* Workflow Trigger Points: the channels that suit each type, best first
 * (the confirmation of a preferences change suits them all). */
static const struct {
    const char *type;
    const char *ch[3];
} seed_types[] = {
    {"welcome", {CH_NAME_EMAIL}},
    {"budget_summary", {CH_NAME_EMAIL}},
    {"vendor_options", {CH_NAME_EMAIL, CH_NAME_WHATSAPP}},
    {"selection_confirmation", {CH_NAME_EMAIL, CH_NAME_SMS}},
    {"blueprint_delivery", {CH_NAME_EMAIL, CH_NAME_WHATSAPP}},
    {"error_notification", {CH_NAME_SMS, CH_NAME_EMAIL}},
    {"reminder", {CH_NAME_EMAIL, CH_NAME_SMS}},
    {"preferences_updated", {CH_NAME_EMAIL, CH_NAME_SMS, CH_NAME_WHATSAPP}},
};

/* Fallback Mechanisms: the seed's example chains. */
static const struct {
    const char *primary;
    const char *chain[2];
} seed_chains[] = {
    {CH_NAME_WHATSAPP, {CH_NAME_SMS, CH_NAME_EMAIL}},
    {CH_NAME_EMAIL, {CH_NAME_SMS, NULL}},
    {CH_NAME_SMS, {CH_NAME_EMAIL, NULL}},
};

static int seed_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

typedef struct seed_list {
    const char *ch[8];
    int n;
} seed_list_t;

static void seed_add(seed_list_t *l, const char *ch)
{
    if (!ch || !ch[0] || l->n >= 8)
        return;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->ch[i], ch) == 0)
            return;
    l->ch[l->n++] = ch;
}

/* channels.select: fills cand, or returns the skip reason. */
static const char *seed_select(const policy_msg_t *m, const policy_client_t *c, seed_list_t *cand)
{
    seed_list_t order = {{0}, 0};
    seed_add(&order, m->preferred_channel);
    if (seed_eq(m->urgency, "critical")) {
        int wa_pref = seed_eq(m->preferred_channel, CH_NAME_WHATSAPP) ||
                      seed_eq(c->preferred_channels[0], CH_NAME_WHATSAPP);
        if (wa_pref && rules_channel_allowed(c, CH_NAME_WHATSAPP, NULL))
            seed_add(&order, CH_NAME_WHATSAPP);
        seed_add(&order, CH_NAME_SMS);
    }
    static const char *const email_only[3] = {CH_NAME_EMAIL};
    const char *const *suited = email_only;
    for (size_t i = 0; i < sizeof seed_types / sizeof seed_types[0]; i++)
        if (seed_eq(m->message_type, seed_types[i].type))
            suited = seed_types[i].ch;
    /* the suitable channels the client chose first, in the client's order;
     * the default list, email alone, is no choice */
    const char *const *pref = c->preferred_channels;
    int chosen = pref[0] && (!seed_eq(pref[0], CH_NAME_EMAIL) || pref[1]);
    for (int i = 0; chosen && i < POLICY_MAX_CHANNELS && c->preferred_channels[i]; i++)
        for (int j = 0; j < 3 && suited[j]; j++)
            if (seed_eq(suited[j], c->preferred_channels[i]))
                seed_add(&order, suited[j]);
    for (int j = 0; j < 3 && suited[j]; j++)
        seed_add(&order, suited[j]);
    for (int i = 0; i < POLICY_MAX_CHANNELS && c->preferred_channels[i]; i++)
        seed_add(&order, c->preferred_channels[i]);
    for (int i = 0; i < 3; i++)
        seed_add(&order, seed_all[i]);

    cand->n = 0;
    for (int i = 0; i < order.n; i++)
        if (rules_channel_allowed(c, order.ch[i], NULL))
            seed_add(cand, order.ch[i]);
    if (cand->n > 0)
        return NULL;
    if (!c->has_email && !c->has_phone)
        return "no_contact";
    for (int i = 0; i < 3; i++) {
        const char *why;
        if (!rules_channel_allowed(c, seed_all[i], &why) && seed_eq(why, "unavailable"))
            return "channel_unavailable";
    }
    for (int i = 0; i < 3; i++) {
        const char *why;
        if (!rules_channel_allowed(c, seed_all[i], &why) && seed_eq(why, "no_consent"))
            return "no_consent";
    }
    for (int i = 0; i < 3; i++) {
        const char *why;
        if (!rules_channel_allowed(c, seed_all[i], &why) && seed_eq(why, "suppressed"))
            return "suppressed";
    }
    return "opt_out";
}

/* fallback.chain */
static void seed_chain(const policy_msg_t *m, const seed_list_t *cand, policy_decision_t *d)
{
    const char *primary = cand->ch[0];
    snprintf(d->primary, sizeof d->primary, "%s", primary);
    seed_list_t fb = {{0}, 0};
    seed_add(&fb, primary);
    const char *want[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < sizeof seed_types / sizeof seed_types[0]; i++)
        if (seed_eq(m->message_type, seed_types[i].type) && seed_types[i].ch[1] &&
            seed_eq(seed_types[i].ch[0], primary))
            want[0] = seed_types[i].ch[1];
    for (size_t i = 0; i < sizeof seed_chains / sizeof seed_chains[0]; i++)
        if (seed_eq(primary, seed_chains[i].primary)) {
            want[1] = seed_chains[i].chain[0];
            want[2] = seed_chains[i].chain[1];
        }
    for (int i = 0; i < 3; i++) {
        int allowed = 0;
        for (int j = 0; want[i] && j < cand->n; j++)
            allowed |= strcmp(want[i], cand->ch[j]) == 0;
        if (allowed && fb.n - 1 < POLICY_MAX_CHANNELS - 1)
            seed_add(&fb, want[i]);
    }
    d->n_fallback = fb.n - 1;
    for (int i = 1; i < fb.n; i++)
        snprintf(d->fallback[i - 1], sizeof d->fallback[0], "%s", fb.ch[i]);
}

/* "HH:MM" (one or two hour digits) as minutes after midnight, else dflt:
 * the same pattern timing.lua accepts. */
static int seed_minutes(const char *hhmm, int dflt)
{
    if (!hhmm)
        return dflt;
    size_t n = strlen(hhmm);
    const char *colon = strchr(hhmm, ':');
    if (!colon || n < 4 || n > 5 || (size_t)(colon - hhmm) != n - 3)
        return dflt;
    for (const char *p = hhmm; *p; p++)
        if (p != colon && (*p < '0' || *p > '9'))
            return dflt;
    int h = colon - hhmm == 2 ? (hhmm[0] - '0') * 10 + (hhmm[1] - '0') : hhmm[0] - '0';
    return h * 60 + (colon[1] - '0') * 10 + (colon[2] - '0');
}

static int seed_in_quiet(int mod, int qs, int qe)
{
    if (qs == qe)
        return 0;
    if (qs < qe)
        return mod >= qs && mod < qe;
    return mod >= qs || mod < qe;
}

/* Minutes after local midnight at t. */
static int seed_mod(const tz_zone_t *z, double t, int *mod)
{
    tz_local_t l;
    if (tz_localtime(z, (int64_t)floor(t), &l) != 0)
        return -1;
    *mod = l.hour * 60 + l.min;
    return 0;
}

/* The first instant at or after t whose local wall clock reads mod (a time
 * in a DST gap moves forward, one in an overlap is the earlier instant). */
static int seed_next_local(const tz_zone_t *z, double t, int mod, double *out)
{
    tz_local_t l;
    if (tz_localtime(z, (int64_t)floor(t), &l) != 0)
        return -1;
    tz_fields_t f = {l.year, l.month, l.day, mod / 60, mod % 60, 0};
    int64_t at;
    if (tz_from_local(z, &f, &at, NULL) != 0)
        return -1;
    if ((double)at < t) {
        f.day++;
        if (tz_from_local(z, &f, &at, NULL) != 0)
            return -1;
    }
    *out = (double)at;
    return 0;
}

/* timing.send_at */
static int seed_send_at(const policy_msg_t *m, const policy_client_t *c, double now,
                        const tz_zone_t *z, double *at)
{
    int qs = seed_minutes(c->quiet_start, 22 * 60);
    int qe = seed_minutes(c->quiet_end, 8 * 60);
    if (seed_eq(m->urgency, "critical")) {
        *at = now;
        return 0;
    }
    double t = now;
    int mod;
    if (seed_eq(m->urgency, "low")) {
        if (seed_next_local(z, now, SEED_BATCH_SLOT, &t) != 0)
            return -1;
    } else if (!seed_eq(m->urgency, "high") && qs == 22 * 60 && qe == 8 * 60) {
        /* NORMAL keeps business hours unless the client chose quiet hours of
         * its own, which then say alone when not to write */
        if (seed_mod(z, now, &mod) != 0)
            return -1;
        if ((mod < SEED_BUSINESS_START || mod >= SEED_BUSINESS_END) &&
            seed_next_local(z, now, SEED_BUSINESS_START, &t) != 0)
            return -1;
    }
    if (seed_mod(z, t, &mod) != 0)
        return -1;
    if (seed_in_quiet(mod, qs, qe) && seed_next_local(z, t, qe, &t) != 0)
        return -1;
    *at = t;
    return 0;
}

/* batching.decide */
static void seed_batch(const policy_msg_t *m, const policy_client_t *c, double now,
                       const rules_pending_t *pending, const tz_zone_t *z, policy_decision_t *d)
{
    if (!seed_eq(m->urgency, "low"))
        return;
    if (!seed_eq(d->primary, CH_NAME_EMAIL)) /* a digest is an email */
        return;
    if (!(c->last_contact_at > 0) || now - c->last_contact_at > SEED_STALE_S)
        return;
    if (pending && pending->count >= SEED_BATCH_MAX)
        return;
    tz_local_t l;
    if (tz_localtime(z, (int64_t)floor(d->send_at), &l) != 0)
        return;
    snprintf(d->batch_key, sizeof d->batch_key, "low:%04d-%02d-%02d", l.year, l.month, l.day);
    d->batch_window = SEED_BATCH_WINDOW;
    d->batch_max = SEED_BATCH_MAX;
}

int policy_seed_decide(const policy_msg_t *m, const policy_client_t *c, double now,
                       const rules_pending_t *pending, policy_decision_t *d, char *err,
                       size_t errlen)
{
    memset(d, 0, sizeof *d);
    snprintf(d->urgency, sizeof d->urgency, "%s",
             m->urgency && m->urgency[0] ? m->urgency : policy_default_urgency(m->message_type));
    policy_msg_t resolved = *m;
    resolved.urgency = d->urgency;
    m = &resolved;
    d->priority = policy_priority(m->urgency);
    d->send_at = now;
    snprintf(d->rules_version, sizeof d->rules_version, "%s", POLICY_SEED_C_VERSION);
    const char *tzname = c->timezone && c->timezone[0] ? c->timezone : "UTC";
    char zerr[128];
    const tz_zone_t *z = tz_get(tzname, zerr, sizeof zerr);
    if (!z) {
        errmsg_set(err, errlen, "time zone: %s", zerr);
        return -1;
    }
    seed_list_t cand;
    const char *skip = seed_select(m, c, &cand);
    if (skip) {
        snprintf(d->status, sizeof d->status, "skipped");
        snprintf(d->skip_reason, sizeof d->skip_reason, "%s", skip);
        snprintf(d->trace_json, sizeof d->trace_json,
                 "[{\"step\":\"seed_c\",\"result\":{\"skip\":\"%s\"}}]", skip);
        return 0;
    }
    seed_chain(m, &cand, d);
    if (seed_send_at(m, c, now, z, &d->send_at) != 0) {
        errmsg_set(err, errlen, "time out of range");
        return -1;
    }
    seed_batch(m, c, now, pending, z, d);
    snprintf(d->status, sizeof d->status, "%s",
             d->send_at <= now + RULES_DUE_SLACK_S ? "queued" : "pending");
    snprintf(d->trace_json, sizeof d->trace_json,
             "[{\"step\":\"seed_c\",\"result\":{\"primary\":\"%s\",\"fallbacks\":%d}}]", d->primary,
             d->n_fallback);
    return 0;
}
