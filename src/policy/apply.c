#include "policy/apply.h"

#include "channel/ch.h"
#include "util/buf.h"
#include "util/json_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

void apply_chain_parse(const char *fallback_json, apply_chain_t *c)
{
    memset(c, 0, sizeof *c);
    cJSON *arr = cJSON_Parse(fallback_json ? fallback_json : "[]");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (c->n < POLICY_MAX_CHANNELS && cJSON_IsString(it) && strlen(it->valuestring) < 12) {
            snprintf(c->names[c->n], sizeof c->names[c->n], "%s", it->valuestring);
            c->list[c->n] = c->names[c->n];
            c->n++;
        }
    }
    cJSON_Delete(arr);
}

/* Fills out to go on at once on channel next, with the chain but it after
 * it. 0, or -1 when the chain does not fit (out then fails). */
static int apply_move(const apply_chain_t *chain, const char *next, double now, apply_step_t *out)
{
    buf_t b;
    buf_init(&b, sizeof out->fallback_json - 1);
    int rc = buf_putc(&b, '[');
    int first = 1;
    for (int i = 0; i < chain->n; i++) {
        if (strcmp(chain->list[i], next) == 0)
            continue;
        rc |= first ? 0 : buf_putc(&b, ',');
        rc |= jtext_string(&b, chain->list[i]);
        first = 0;
    }
    rc |= buf_putc(&b, ']');
    if (rc == 0 && strlen(next) < sizeof out->channel) {
        out->action = POLICY_NEXT_CHANNEL;
        out->at = now;
        snprintf(out->channel, sizeof out->channel, "%s", next);
        snprintf(out->fallback_json, sizeof out->fallback_json, "%s", b.data);
    } else {
        rc = -1;
        out->action = POLICY_FAIL;
    }
    buf_free(&b);
    return rc;
}

void apply_failure(const policy_failure_t *f, int provider_retry_after, const apply_chain_t *chain,
                   double now, apply_step_t *out)
{
    memset(out, 0, sizeof *out);
    switch (f->action) {
    case POLICY_RETRY: {
        double after = f->retry_after;
        if (provider_retry_after > after)
            after = provider_retry_after;
        out->action = POLICY_RETRY;
        out->at = now + after;
        return;
    }
    case POLICY_NEXT_CHANNEL:
        (void)apply_move(chain, f->next_channel, now, out);
        return;
    case POLICY_FAIL:
        break;
    }
    out->action = POLICY_FAIL;
}

void apply_skip(const char *reason, const apply_chain_t *chain, double now, policy_failure_t *f,
                apply_step_t *out)
{
    memset(out, 0, sizeof *out);
    memset(f, 0, sizeof *f);
    snprintf(f->reason, sizeof f->reason, "%s", reason ? reason : "skipped");
    if (chain->n > 0) {
        f->action = POLICY_NEXT_CHANNEL;
        snprintf(f->next_channel, sizeof f->next_channel, "%s", chain->list[0]);
        if (apply_move(chain, f->next_channel, now, out) == 0)
            return;
    }
    f->action = POLICY_FAIL;
    out->action = POLICY_FAIL;
}

int apply_batch_guard(policy_decision_t *d, int has_attachment)
{
    if (d->batch_key[0] && has_attachment)
        d->batch_key[0] = '\0';
    if (d->batch_key[0] && strcmp(d->primary, CH_NAME_EMAIL) != 0)
        d->batch_key[0] = '\0';
    return d->batch_key[0] != '\0' && d->primary[0] != '\0' && strcmp(d->status, "skipped") != 0;
}

int apply_digest_due(double first_send_at, int window_seconds, int size, int max_size, double now,
                     double *due)
{
    if (size >= max_size) {
        *due = first_send_at > now ? first_send_at : now;
        return 1;
    }
    *due = first_send_at + window_seconds;
    return 0;
}
