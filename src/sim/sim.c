#include "sim/sim.h"

#include "sim/timeline.h"

#include "channel/ch.h"
#include "channel/errclass.h"
#include "channel/gsm7.h"
#include "channel/smtp.h"
#include "channel/twilio.h"
#include "channel/whatsapp.h"
#include "circuit/circuit.h"
#include "policy/apply.h"
#include "policy/rules.h"
#include "template/context.h"
#include "tz/tz.h"
#include "util/buf.h"
#include "util/errmsg.h"
#include "util/file.h"
#include "util/timefmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_WINDOW_S    (24 * 3600) /* WhatsApp's customer-service window */
#define SIM_EXAMPLE_MAX ((size_t)256 * 1024)

/* The world while a scenario plays. */
typedef struct sim {
    const scenario_t *s;
    const sim_env_t *env;
    sim_result_t *out;
    int cap_msgs;
    rules_input_t client; /* the client now (its policy_client_t points into it) */
    circ_t *circ;
    int *rule_uses; /* per scenario rule: attempts it answered */
    int n_digests;
    int oom;
} sim_t;

typedef struct sim_outcome {
    int ok;      /* 1 sent (or delivered) */
    int skipped; /* 1 not attempted: skip_reason */
    char skip_reason[32];
    errc_t category; /* a failure's */
    int code;
    int retry_after; /* -1 none */
    int answered;
    int opt_out, window_closed, hard_bounce;
    char error[320];
} sim_outcome_t;

int sim_final(const sim_msg_t *m)
{
    static const char *const done[] = {"sent", "delivered", "failed", "bounced", "skipped"};
    for (size_t i = 0; i < sizeof done / sizeof *done; i++)
        if (strcmp(m->status, done[i]) == 0)
            return 1;
    return 0;
}

static void sim_line(sim_t *w, sim_msg_t *m, double at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sim_line(sim_t *w, sim_msg_t *m, double at, const char *fmt, ...)
{
    if (m->n_lines == m->cap_lines) {
        int cap = m->cap_lines ? m->cap_lines * 2 : 8;
        sim_line_t *l = realloc(m->lines, (size_t)cap * sizeof *l);
        if (!l) {
            w->oom = 1;
            return;
        }
        m->lines = l;
        m->cap_lines = cap;
    }
    sim_line_t *l = &m->lines[m->n_lines++];
    l->at = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
}

static sim_msg_t *sim_new_msg(sim_t *w)
{
    sim_result_t *r = w->out;
    if (r->n_msgs == w->cap_msgs) {
        int cap = w->cap_msgs ? w->cap_msgs * 2 : 16;
        sim_msg_t *m = realloc(r->msgs, (size_t)cap * sizeof *m);
        if (!m) {
            w->oom = 1;
            return NULL;
        }
        r->msgs = m;
        w->cap_msgs = cap;
    }
    sim_msg_t *m = &r->msgs[r->n_msgs];
    memset(m, 0, sizeof *m);
    m->number = r->n_msgs + 1;
    m->due = m->receipt_at = m->reached_at = -1;
    m->digest = -1;
    m->segments = -1;
    r->n_msgs++;
    return m;
}

/* ---- the provider's answer ---------------------------------------------- */

static circ_provider_t sim_provider(const char *channel)
{
    if (strcmp(channel, CH_NAME_SMS) == 0)
        return CIRC_TWILIO;
    if (strcmp(channel, CH_NAME_WHATSAPP) == 0)
        return CIRC_WHATSAPP;
    return CIRC_SMTP;
}

/* The first scenario rule that answers this attempt (NULL: none, "ok"). */
static const scenario_rule_t *sim_rule(sim_t *w, const sim_msg_t *m, double now)
{
    const scenario_t *s = w->s;
    for (int i = 0; i < s->n_rules; i++) {
        const scenario_rule_t *r = &s->rules[i];
        if (strcmp(r->channel, m->channel) != 0 || (r->from && now < r->from) ||
            (r->until && now >= r->until) || (r->attempt && r->attempt != m->channel_attempt) ||
            (r->message && r->message != m->number) || (r->times && w->rule_uses[i] >= r->times))
            continue;
        w->rule_uses[i]++;
        return r;
    }
    return NULL;
}

/* What the driver would make of the provider's answer res. */
static void sim_answer(const sim_msg_t *m, const scenario_result_t *res, sim_outcome_t *o)
{
    if (res->answer == SCENARIO_OK) {
        o->ok = 1;
        o->answered = 1;
        return;
    }
    if (res->answer == SCENARIO_TIMEOUT) {
        o->category = ERRC_TRANSIENT;
        snprintf(o->error, sizeof o->error, "no answer (timeout)");
        return;
    }
    o->answered = 1;
    o->code = res->code ? res->code : res->http_status;
    o->retry_after = res->retry_after;
    if (strcmp(m->channel, CH_NAME_EMAIL) == 0) {
        const char *enh = res->enhanced[0] ? res->enhanced : NULL;
        o->category = smtp_classify(res->code, enh);
        o->hard_bounce = smtp_hard_bounce(res->code, enh, "rcpt");
        snprintf(o->error, sizeof o->error, "smtp %d%s%s", res->code, enh ? " " : "",
                 enh ? enh : "");
    } else if (strcmp(m->channel, CH_NAME_SMS) == 0) {
        o->category = res->code ? twilio_classify(res->code, res->http_status)
                                : errc_from_http_status(res->http_status);
        o->opt_out = res->code == 21610;
        snprintf(o->error, sizeof o->error, "twilio %d (http %d)", res->code, res->http_status);
    } else {
        o->category = res->code ? wa_classify(res->code, -1, res->http_status)
                                : errc_from_http_status(res->http_status);
        o->opt_out = res->code == 131050;
        o->window_closed = res->code == 131047;
        snprintf(o->error, sizeof o->error, "whatsapp %d (http %d)", res->code, res->http_status);
    }
    if (o->category == ERRC_NONE)
        o->category = ERRC_TRANSIENT;
}

/* ---- rendering: what the client would get ------------------------------- */

static cJSON *sim_context(sim_t *w, const sim_msg_t *m)
{
    const cfg_t *cfg = w->env->cfg;
    tpl_site_t site = {
        .brand_name = cfg->brand_name,
        .support_email = cfg->support_email,
        .physical_address = cfg->physical_address,
        .public_url = cfg->public_url,
    };
    char id[40];
    snprintf(id, sizeof id, "5a1d0000-0000-4000-8000-%012d", m->number);
    cJSON *example = NULL;
    const cJSON *given = m->req ? m->req->context : NULL;
    if (!given && w->env->examples_dir) {
        char err[256];
        buf_t b;
        buf_init(&b, SIM_EXAMPLE_MAX);
        char name[64];
        snprintf(name, sizeof name, "%s.json", m->type);
        if (file_append_in_dir(w->env->examples_dir, name, name, &b, err, sizeof err) == 0)
            example = cJSON_Parse(b.data ? b.data : "");
        buf_free(&b);
        given = example;
    }
    cJSON *ctx = tpl_context_build(given, &site, w->s->client_name, w->s->plan_id, id);
    cJSON_Delete(example);
    char unsub[512], prefs[512];
    snprintf(unsub, sizeof unsub, "%s/u/simulated", cfg->public_url ? cfg->public_url : "");
    snprintf(prefs, sizeof prefs, "%s/p/simulated", cfg->public_url ? cfg->public_url : "");
    if (ctx && tpl_context_set_links(ctx, unsub, prefs) != 0) {
        cJSON_Delete(ctx);
        return NULL;
    }
    return ctx;
}

/* Renders m for its channel as the driver would; a template that cannot be
 * rendered fails the attempt as invalid input, as it does in the engine. */
static int sim_render(sim_t *w, sim_msg_t *m, double now, sim_outcome_t *o)
{
    const tpl_catalog_t *tc = w->env->templates;
    m->segments = -1;
    m->what[0] = '\0';
    if (m->is_digest) {
        snprintf(m->via, sizeof m->via, "digest");
        snprintf(m->what, sizeof m->what, "a digest of %d messages", m->size);
        return 0;
    }
    int wa = strcmp(m->channel, CH_NAME_WHATSAPP) == 0;
    int open = wa && w->client.client.whatsapp_window_until > now;
    snprintf(m->via, sizeof m->via, "%s", wa ? (open ? "free_text" : "template") : "text");
    if (!tc)
        return 0;
    cJSON *ctx = sim_context(w, m);
    char err[256] = "";
    int rc = -1;
    if (!ctx) {
        snprintf(err, sizeof err, "out of memory");
    } else if (strcmp(m->channel, CH_NAME_EMAIL) == 0) {
        tpl_email_t e = {0};
        rc = tpl_render_email(tc, m->type, ctx, &e, err, sizeof err);
        if (rc == 0)
            snprintf(m->what, sizeof m->what, "\"%s\"", e.subject ? e.subject : "");
        tpl_email_free(&e);
    } else if (strcmp(m->channel, CH_NAME_SMS) == 0) {
        char *body = NULL;
        rc = tpl_render_sms(tc, m->type, ctx, &body, err, sizeof err);
        gsm7_count_t n;
        if (rc == 0 && gsm7_count(body, strlen(body), &n) != 0) {
            snprintf(err, sizeof err, "the SMS body is not valid UTF-8");
            rc = -1;
        } else if (rc == 0) {
            m->segments = (int)n.segments;
            snprintf(m->what, sizeof m->what, "%zu %s characters", n.chars,
                     gsm7_encoding_name(n.encoding));
            if (n.segments > (size_t)w->env->cfg->sms_segment_budget) {
                snprintf(err, sizeof err, "sms: %zu segments, over the budget of %d", n.segments,
                         w->env->cfg->sms_segment_budget);
                rc = -1;
            }
        }
        free(body);
    } else if (open) {
        char *text = NULL;
        rc = tpl_render_whatsapp_text(tc, m->type, ctx, &text, err, sizeof err);
        if (rc == 0)
            snprintf(m->what, sizeof m->what, "free text, %zu bytes", strlen(text));
        free(text);
    } else {
        tpl_wa_template_t t = {0};
        rc = tpl_render_whatsapp_template(tc, m->type, ctx, &t, err, sizeof err);
        if (rc == 0)
            snprintf(m->what, sizeof m->what, "template %s (%s)", t.name, t.language);
        tpl_wa_template_free(&t);
    }
    cJSON_Delete(ctx);
    if (rc != 0) {
        o->category = ERRC_INVALID_INPUT;
        snprintf(o->error, sizeof o->error, "template: %s", err);
    }
    return rc;
}

/* ---- time and the client ------------------------------------------------ */

/* The time in the client's zone now (the zone may change mid-scenario). */
static void sim_local(sim_t *w, double t, char out[40])
{
    timeline_local(w->client.client.timezone, t, out);
}

/* LOW messages waiting in the client's open digests, as the intake counts
 * them. */
static void sim_pending(sim_t *w, rules_pending_t *p)
{
    p->count = 0;
    p->oldest_at = 0;
    for (int i = 0; i < w->out->n_msgs; i++) {
        const sim_msg_t *d = &w->out->msgs[i];
        if (!d->is_digest || strcmp(d->status, "pending") != 0)
            continue;
        p->count += d->size;
        if (p->oldest_at == 0 || d->opened_at < p->oldest_at)
            p->oldest_at = d->opened_at;
    }
}

/* ---- intake ------------------------------------------------------------- */

/* The decision's trace, a line a step. */
static void sim_trace(sim_t *w, sim_msg_t *m, double now)
{
    cJSON *steps = cJSON_Parse(m->d.trace_json);
    const cJSON *it;
    cJSON_ArrayForEach(it, steps)
    {
        char *text = cJSON_PrintUnformatted(it);
        if (text)
            sim_line(w, m, now, "    trace %s", text);
        free(text);
    }
    cJSON_Delete(steps);
}

static void sim_digest_join(sim_t *w, int mi, double now)
{
    sim_msg_t *m = &w->out->msgs[mi];
    const policy_decision_t *d = &m->d;
    int di = -1;
    for (int i = 0; i < w->out->n_msgs; i++) {
        const sim_msg_t *x = &w->out->msgs[i];
        if (x->is_digest && strcmp(x->status, "pending") == 0 &&
            strcmp(x->batch_key, d->batch_key) == 0 && x->size < x->max_size)
            di = i;
    }
    if (di < 0) {
        sim_msg_t *g = sim_new_msg(w);
        if (!g)
            return;
        m = &w->out->msgs[mi]; /* the array may have moved */
        d = &m->d;
        g->is_digest = 1;
        g->number = w->s->n_requests + ++w->n_digests;
        snprintf(g->type, sizeof g->type, "digest");
        snprintf(g->urgency, sizeof g->urgency, "low");
        snprintf(g->channel, sizeof g->channel, "%s", d->primary);
        snprintf(g->fallback_json, sizeof g->fallback_json, "[]");
        snprintf(g->batch_key, sizeof g->batch_key, "%s", d->batch_key);
        snprintf(g->status, sizeof g->status, "pending");
        snprintf(g->d.rules_version, sizeof g->d.rules_version, "%s", d->rules_version);
        g->requested_at = g->opened_at = now;
        g->first_send_at = d->send_at;
        g->window = d->batch_window;
        g->max_size = d->batch_max;
        di = w->out->n_msgs - 1;
    }
    sim_msg_t *g = &w->out->msgs[di];
    if (g->size < SIM_DIGEST_MAX)
        g->members[g->size] = mi;
    g->size++;
    int full = apply_digest_due(g->first_send_at, g->window, g->size, g->max_size, now, &g->due);
    if (full)
        snprintf(g->status, sizeof g->status, "queued");
    m->digest = di;
    snprintf(m->status, sizeof m->status, "batched");
    char at[40];
    sim_local(w, g->due, at);
    sim_line(w, m, now, "joined digest %d (%s, %d of %d): it goes %s%s", g->number, g->batch_key,
             g->size, g->max_size, at, full ? ", full" : " unless it fills first");
    sim_line(w, g, now, "%s message %d (%d of %d); goes %s%s",
             g->size == 1 ? "opened by" : "joined by", m->number, g->size, g->max_size, at,
             full ? ", full" : "");
}

static void sim_request(sim_t *w, int ri, double now)
{
    const scenario_request_t *q = &w->s->requests[ri];
    sim_msg_t *m = sim_new_msg(w);
    if (!m)
        return;
    int mi = w->out->n_msgs - 1;
    m->req = q;
    m->number = ri + 1;
    m->requested_at = now;
    snprintf(m->type, sizeof m->type, "%s", q->in.msg.message_type);
    rules_pending_t pending;
    sim_pending(w, &pending);
    w->client.client.channels_off = 0;
    prt_decide(w->env->policy, &q->in.msg, &w->client.client, now, &pending, &m->d);
    policy_decision_t *d = &m->d;
    int batched = apply_batch_guard(d, q->in.msg.has_attachment);
    snprintf(m->urgency, sizeof m->urgency, "%s", d->urgency);
    buf_t fb;
    buf_init(&fb, sizeof m->fallback_json - 1);
    if (policy_fallback_json(d, &fb) == 0 && fb.data)
        snprintf(m->fallback_json, sizeof m->fallback_json, "%s", fb.data);
    else
        snprintf(m->fallback_json, sizeof m->fallback_json, "[]");
    buf_free(&fb);
    snprintf(m->channel, sizeof m->channel, "%s", d->primary);
    char at[40];
    sim_local(w, d->send_at, at);
    if (strcmp(d->status, "skipped") == 0) {
        snprintf(m->status, sizeof m->status, "skipped");
        snprintf(m->skip_reason, sizeof m->skip_reason, "%s", d->skip_reason);
        sim_line(w, m, now, "decided (rules %.12s): skipped, %s", d->rules_version, d->skip_reason);
        return;
    }
    sim_line(w, m, now, "decided (rules %.12s): %s then %s, %s%s", d->rules_version, d->primary,
             m->fallback_json, d->urgency, batched ? ", batched" : "");
    sim_line(w, m, now, "  send at %s%s", at,
             strcmp(d->status, "pending") == 0 ? " (pending)" : "");
    sim_trace(w, m, now);
    snprintf(m->status, sizeof m->status, "%s", d->status);
    m->due = d->send_at > now ? d->send_at : now;
    if (batched) {
        m->due = -1;
        sim_digest_join(w, mi, now);
    }
}

/* ---- an attempt --------------------------------------------------------- */

static void sim_reached(sim_t *w, sim_msg_t *m, double now)
{
    m->reached_at = now;
    snprintf(m->reached_channel, sizeof m->reached_channel, "%s", m->channel);
    w->client.client.last_contact_at = now;
    for (int k = 0; m->is_digest && k < m->size && k < SIM_DIGEST_MAX; k++) {
        sim_msg_t *x = &w->out->msgs[m->members[k]];
        x->reached_at = now;
        snprintf(x->reached_channel, sizeof x->reached_channel, "%s", m->channel);
        snprintf(x->via, sizeof x->via, "digest");
        snprintf(x->what, sizeof x->what, "in digest %d", m->number);
    }
}

/* A digest's members follow its final state (the store's trigger). */
static void sim_members(sim_t *w, sim_msg_t *m, double now)
{
    for (int k = 0; m->is_digest && sim_final(m) && k < m->size && k < SIM_DIGEST_MAX; k++) {
        sim_msg_t *x = &w->out->msgs[m->members[k]];
        if (strcmp(x->status, m->status) == 0)
            continue;
        snprintf(x->status, sizeof x->status, "%s", m->status);
        snprintf(x->channel, sizeof x->channel, "%s", m->channel);
        sim_line(w, x, now, "%s with digest %d", m->status, m->number);
    }
}

/* The message goes on at st's time on st's channel, with the chain after it
 * (the queue's move: its per-channel count starts again). */
static void sim_move(sim_msg_t *m, const apply_step_t *st)
{
    snprintf(m->channel, sizeof m->channel, "%s", st->channel);
    snprintf(m->fallback_json, sizeof m->fallback_json, "%s", st->fallback_json);
    snprintf(m->status, sizeof m->status, "queued");
    m->channel_attempt = 0;
    m->due = st->at;
}

/* Acts on the rules' answer to a failure, as the delivery worker does. */
static void sim_after_failure(sim_t *w, sim_msg_t *m, const sim_outcome_t *o, double now)
{
    apply_chain_t chain;
    apply_chain_parse(m->fallback_json, &chain);
    policy_msg_t pm = {.message_type = m->type, .urgency = m->urgency};
    policy_failure_t f;
    prt_on_failure(w->env->policy, &pm, m->channel_attempt, m->channel, errc_name(o->category),
                   o->code, o->retry_after, chain.list, chain.n, &f);
    apply_step_t st;
    apply_failure(&f, o->retry_after, &chain, now, &st);
    char at[40];
    switch (st.action) {
    case POLICY_RETRY:
        sim_local(w, st.at, at);
        snprintf(m->status, sizeof m->status, "queued");
        m->due = st.at;
        sim_line(w, m, now, "  rules: retry %s at %s (%s)", m->channel, at, f.reason);
        return;
    case POLICY_NEXT_CHANNEL:
        sim_line(w, m, now, "  rules: next channel %s (%s)", st.channel, f.reason);
        sim_move(m, &st);
        return;
    case POLICY_FAIL:
        break;
    }
    snprintf(m->status, sizeof m->status, "%s", o->hard_bounce ? "bounced" : "failed");
    m->due = -1;
    sim_line(w, m, now, "  rules: give up (%s): %s", f.reason, m->status);
    sim_members(w, m, now);
}

static void sim_attempt(sim_t *w, sim_msg_t *m, double now)
{
    sim_outcome_t o;
    memset(&o, 0, sizeof o);
    o.retry_after = -1;
    m->attempts++;
    m->channel_attempt++;
    m->due = -1;
    ch_id_t ch;
    const char *why = NULL;
    int live = !w->s->sandbox;
    circ_provider_t p = sim_provider(m->channel);
    int probe = 0, called = 0;
    if (ch_by_name(m->channel, &ch) != 0) {
        o.category = ERRC_INVALID_INPUT;
        snprintf(o.error, sizeof o.error, "no transport for this channel");
    } else if (!rules_channel_allowed(&w->client.client, m->channel, &why)) {
        o.skipped = 1;
        snprintf(o.skip_reason, sizeof o.skip_reason, "%s", why ? why : "not_allowed");
    } else {
        circ_verdict_t v = live ? circ_check(w->circ, p, (long long)(now * 1000)) : CIRC_ALLOW;
        if (v == CIRC_REFUSE) {
            o.category = ERRC_AUTH_FAILURE;
            snprintf(o.error, sizeof o.error, "circuit open: %s refused our credentials",
                     circ_provider_name(p));
        } else if (sim_render(w, m, now, &o) == 0) {
            probe = v == CIRC_PROBE;
            const scenario_rule_t *r = sim_rule(w, m, now);
            scenario_result_t ok = {.answer = SCENARIO_OK, .retry_after = -1};
            const scenario_result_t *res = r ? &r->result : &ok;
            sim_answer(m, res, &o);
            called = 1;
            if (o.ok && res->receipt) {
                m->receipt = *res;
                m->receipt_at = now + res->receipt_after;
            }
        }
    }
    if (live && (called || probe))
        circ_report(w->circ, p, probe, o.answered, o.ok ? ERRC_NONE : o.category,
                    (long long)(now * 1000));
    if (o.ok) {
        snprintf(m->status, sizeof m->status, "%s", live ? "sent" : "delivered");
        sim_reached(w, m, now);
        sim_line(w, m, now, "attempt %d: %s %s — %s%s%s", m->attempts, m->channel, m->status,
                 m->via, m->what[0] ? ", " : "", m->what);
        if (m->segments > 0)
            sim_line(w, m, now, "  %d SMS segment%s", m->segments, m->segments == 1 ? "" : "s");
        sim_members(w, m, now);
        return;
    }
    if (o.skipped) {
        apply_chain_t chain;
        apply_chain_parse(m->fallback_json, &chain);
        policy_failure_t f;
        apply_step_t st;
        apply_skip(o.skip_reason, &chain, now, &f, &st);
        sim_line(w, m, now, "attempt %d: %s not allowed (%s)", m->attempts, m->channel,
                 o.skip_reason);
        if (st.action == POLICY_FAIL) {
            snprintf(m->status, sizeof m->status, "skipped");
            snprintf(m->skip_reason, sizeof m->skip_reason, "%s", o.skip_reason);
            sim_line(w, m, now, "  skipped: no channel left");
            sim_members(w, m, now);
            return;
        }
        sim_line(w, m, now, "  next channel %s", st.channel);
        sim_move(m, &st);
        return;
    }
    sim_line(w, m, now, "attempt %d: %s failed, %s: %s", m->attempts, m->channel,
             errc_name(o.category), o.error);
    if (o.opt_out && ch_by_name(m->channel, &ch) == 0) {
        w->client.client.opt_out[ch] = 1;
        sim_line(w, m, now, "  the provider says the client opted out of %s", m->channel);
    }
    if (o.hard_bounce) {
        w->client.client.email_suppressed = 1;
        sim_line(w, m, now, "  the address is suppressed (hard bounce)");
    }
    if (o.window_closed) {
        /* free text refused outside the window: again at once, as a
         * template, without asking the rules */
        w->client.client.whatsapp_window_until = 0;
        snprintf(m->status, sizeof m->status, "queued");
        m->due = now;
        sim_line(w, m, now, "  the window is closed: again at once as a template");
        return;
    }
    sim_after_failure(w, m, &o, now);
}

/* A receipt the scenario scripted for a sent message. */
static void sim_receipt(sim_t *w, sim_msg_t *m, double now)
{
    m->receipt_at = -1;
    if (strcmp(m->status, "sent") != 0)
        return;
    if (m->receipt.receipt == SCENARIO_RECEIPT_DELIVERED) {
        snprintf(m->status, sizeof m->status, "delivered");
        sim_line(w, m, now, "receipt: delivered");
        sim_members(w, m, now);
        return;
    }
    /* A failure after "sent": the claim that follows counts an attempt and
     * shows the rules the failed send's number on the channel. */
    sim_outcome_t o;
    memset(&o, 0, sizeof o);
    o.code = m->receipt.receipt_code;
    o.retry_after = -1;
    o.category = strcmp(m->channel, CH_NAME_SMS) == 0 ? twilio_classify(o.code, 0)
                                                      : wa_classify(o.code, -1, 0);
    if (o.category == ERRC_NONE)
        o.category = ERRC_TRANSIENT;
    m->attempts++;
    m->reached_at = -1;
    m->reached_channel[0] = '\0';
    sim_line(w, m, now, "receipt: undelivered (%d, %s); attempt %d asks the rules", o.code,
             errc_name(o.category), m->attempts);
    sim_after_failure(w, m, &o, now);
}

/* ---- client events ------------------------------------------------------ */

/* The latest message that reached the client on channel ("" any), or NULL. */
static sim_msg_t *sim_latest(sim_t *w, const char *channel)
{
    sim_msg_t *best = NULL;
    for (int i = 0; i < w->out->n_msgs; i++) {
        sim_msg_t *m = &w->out->msgs[i];
        if (m->reached_at >= 0 && !m->is_digest &&
            (!channel[0] || strcmp(m->reached_channel, channel) == 0) &&
            (!best || m->reached_at >= best->reached_at))
            best = m;
    }
    return best;
}

static void sim_event(sim_t *w, const scenario_event_t *e, double now)
{
    ch_id_t ch;
    sim_msg_t *m = NULL;
    switch (e->kind) {
    case SCENARIO_EV_REPLY:
        if (strcmp(e->channel, CH_NAME_WHATSAPP) == 0)
            w->client.client.whatsapp_window_until = now + SIM_WINDOW_S;
        m = sim_latest(w, e->channel);
        if (m)
            sim_line(w, m, now, "client replied on %s%s", e->channel,
                     strcmp(e->channel, CH_NAME_WHATSAPP) == 0 ? " (window open 24 h)" : "");
        return;
    case SCENARIO_EV_STOP:
    case SCENARIO_EV_START:
        if (ch_by_name(e->channel, &ch) == 0)
            w->client.client.opt_out[ch] = e->kind == SCENARIO_EV_STOP;
        m = sim_latest(w, e->channel);
        if (m)
            sim_line(w, m, now, "client sent %s on %s",
                     e->kind == SCENARIO_EV_STOP ? "STOP" : "START", e->channel);
        return;
    case SCENARIO_EV_CLICK:
        for (int i = 0; i < w->out->n_msgs; i++)
            if (!w->out->msgs[i].is_digest && w->out->msgs[i].number == e->message)
                m = &w->out->msgs[i];
        if (m)
            sim_line(w, m, now, "client tapped %s%s", e->action[0] ? e->action : "an action",
                     m->reached_at >= 0 ? "" : " (before it reached them: ignored)");
        return;
    case SCENARIO_EV_PREFS: {
        char why[256];
        /* checked when the scenario loaded */
        if (rules_input_client(&w->client, e->client, why, sizeof why) != 0)
            w->oom = 1;
        return;
    }
    }
}

/* ---- the clock ---------------------------------------------------------- */

/* The indices 0..n) sorted by times[i], ties by index. */
static int *sim_order(int n, const double *times)
{
    int *ix = malloc((size_t)(n > 0 ? n : 1) * sizeof *ix);
    if (!ix)
        return NULL;
    for (int i = 0; i < n; i++)
        ix[i] = i;
    /* insertion sort: scenarios are small and mostly in order already */
    for (int i = 1; i < n; i++) {
        int k = ix[i], j = i - 1;
        while (j >= 0 && times[ix[j]] > times[k]) {
            ix[j + 1] = ix[j];
            j--;
        }
        ix[j + 1] = k;
    }
    return ix;
}

/* The order requests (events 0) or events (1) happen in. */
static int *sim_order_of(const scenario_t *s, int events)
{
    int n = events ? s->n_events : s->n_requests;
    double *t = malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
    if (!t)
        return NULL;
    for (int i = 0; i < n; i++)
        t[i] = events ? s->events[i].at : s->requests[i].at;
    int *ix = sim_order(n, t);
    free(t);
    return ix;
}

int sim_run(const scenario_t *s, const sim_env_t *env, sim_result_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sim_t w = {.s = s, .env = env, .out = out};
    /* the client changes as the scenario plays; a string the copy does not
     * rewrite keeps pointing into s, which outlives the run */
    w.client = s->client;
    w.circ = circ_new(env->cfg->circuit_probe_ms > 0 ? env->cfg->circuit_probe_ms : 60000);
    w.rule_uses = calloc((size_t)s->n_rules + 1, sizeof *w.rule_uses);
    int *rq = sim_order_of(s, 0);
    int *ev = sim_order_of(s, 1);
    if (!w.circ || !w.rule_uses || !rq || !ev) {
        circ_free(w.circ);
        free(w.rule_uses);
        free(rq);
        free(ev);
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    out->zone = s->client.client.timezone;
    int ri = 0, ei = 0;
    while (!w.oom) {
        /* the next thing: an event, a request, a receipt, a message due */
        double t = -1;
        int kind = -1, which = -1;
        if (ei < s->n_events) {
            t = s->events[ev[ei]].at;
            kind = 0;
        }
        if (ri < s->n_requests && (kind < 0 || s->requests[rq[ri]].at < t)) {
            t = s->requests[rq[ri]].at;
            kind = 1;
        }
        for (int i = 0; i < out->n_msgs; i++) {
            const sim_msg_t *m = &out->msgs[i];
            if (m->receipt_at >= 0 && (kind < 0 || m->receipt_at < t)) {
                t = m->receipt_at;
                kind = 2;
                which = i;
            }
        }
        for (int i = 0; i < out->n_msgs; i++) {
            const sim_msg_t *m = &out->msgs[i];
            if (m->due >= 0 && !sim_final(m) && (kind < 0 || m->due < t)) {
                t = m->due;
                kind = 3;
                which = i;
            }
        }
        if (kind < 0 || t > s->until)
            break;
        if (out->steps++ >= SIM_MAX_STEPS) {
            out->truncated = 1;
            break;
        }
        if (kind == 0)
            sim_event(&w, &s->events[ev[ei++]], t);
        else if (kind == 1)
            sim_request(&w, rq[ri++], t);
        else if (kind == 2)
            sim_receipt(&w, &out->msgs[which], t);
        else
            sim_attempt(&w, &out->msgs[which], t);
    }
    free(rq);
    free(ev);
    free(w.rule_uses);
    circ_free(w.circ);
    if (out->n_msgs > 0)
        snprintf(out->rules_version, sizeof out->rules_version, "%s", out->msgs[0].d.rules_version);
    if (env->templates)
        snprintf(out->templates_version, sizeof out->templates_version, "%s",
                 tpl_catalog_version(env->templates));
    if (w.oom) {
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void sim_result_free(sim_result_t *r)
{
    for (int i = 0; i < r->n_msgs; i++)
        free(r->msgs[i].lines);
    free(r->msgs);
    memset(r, 0, sizeof *r);
}
