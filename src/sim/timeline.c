#include "sim/timeline.h"

#include "tz/tz.h"
#include "util/json_text.h"
#include "util/timefmt.h"

#include <stdlib.h>
#include <string.h>

void timeline_local(const char *zone, double t, char out[40])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    char err[64];
    const tz_zone_t *z = tz_get(zone ? zone : "UTC", err, sizeof err);
    tz_local_t l;
    if (!z || tz_localtime(z, (int64_t)t, &l) != 0) {
        char iso[32];
        time_iso8601(t, iso);
        snprintf(out, 40, "%s", iso);
        return;
    }
    snprintf(out, 40, "%s %04d-%02d-%02d %02d:%02d:%02d", days[l.wday % 7], l.year, l.month, l.day,
             l.hour, l.min, l.sec);
}

/* The messages in number order (requests first, then digests). */
static int *timeline_order(const sim_result_t *r)
{
    int *ix = malloc((size_t)(r->n_msgs > 0 ? r->n_msgs : 1) * sizeof *ix);
    if (!ix)
        return NULL;
    for (int i = 0; i < r->n_msgs; i++)
        ix[i] = i;
    for (int i = 1; i < r->n_msgs; i++) {
        int k = ix[i], j = i - 1;
        while (j >= 0 && r->msgs[ix[j]].number > r->msgs[k].number) {
            ix[j + 1] = ix[j];
            j--;
        }
        ix[j + 1] = k;
    }
    return ix;
}

static const char *timeline_name(const sim_msg_t *m)
{
    return m->req && m->req->label[0] ? m->req->label : m->type;
}

void timeline_print(FILE *f, const scenario_t *s, const sim_result_t *r)
{
    const char *zone = r->zone ? r->zone : "UTC";
    char start[40], until[40];
    timeline_local(zone, s->start, start);
    timeline_local(zone, s->until, until);
    fprintf(f, "scenario %s\n", s->name[0] ? s->name : s->path);
    fprintf(f, "  client in %s, %s to %s; rules %.12s, templates %s, %s transport\n", zone, start,
            until, r->rules_version, r->templates_version[0] ? r->templates_version : "none",
            s->sandbox ? "sandbox" : "live");
    int *ix = timeline_order(r);
    for (int k = 0; ix && k < r->n_msgs; k++) {
        const sim_msg_t *m = &r->msgs[ix[k]];
        char at[40];
        timeline_local(zone, m->requested_at, at);
        fprintf(f, "\nmessage %d: %s (%s)%s, %s %s\n", m->number, timeline_name(m), m->urgency,
                m->is_digest ? " digest" : "", m->is_digest ? "opened" : "requested", at);
        for (int i = 0; i < m->n_lines; i++) {
            timeline_local(zone, m->lines[i].at, at);
            fprintf(f, "  %s  %s\n", at, m->lines[i].text);
        }
        fprintf(f, "  final: %s", m->status);
        if (m->channel[0] && strcmp(m->status, "skipped") != 0)
            fprintf(f, " on %s", m->channel);
        if (m->skip_reason[0])
            fprintf(f, " (%s)", m->skip_reason);
        fprintf(f, " after %d attempt%s", m->attempts, m->attempts == 1 ? "" : "s");
        if (m->reached_at >= 0) {
            timeline_local(zone, m->reached_at, at);
            fprintf(f, "; reached the client %s by %s (%s", at, m->reached_channel, m->via);
            if (m->segments > 0)
                fprintf(f, ", %d segment%s", m->segments, m->segments == 1 ? "" : "s");
            fprintf(f, ")");
        }
        fprintf(f, "\n");
    }
    free(ix);
    if (r->truncated)
        fprintf(f, "\nstopped after %d steps: the scenario makes too much happen\n", r->steps);
}

static int timeline_time(buf_t *out, const char *key, const char *zone, double t)
{
    char iso[32], local[40];
    time_iso8601(t, iso);
    timeline_local(zone, t, local);
    int rc = buf_printf(out, "\"%s\":", key);
    rc |= jtext_string(out, iso);
    rc |= buf_puts(out, ",\"local\":");
    rc |= jtext_string(out, local);
    return rc;
}

static int timeline_msg_json(const sim_result_t *r, const sim_msg_t *m, const char *zone,
                             buf_t *out)
{
    int rc = buf_printf(out, "{\"number\":%d,\"type\":", m->number);
    rc |= jtext_string(out, m->type);
    rc |= buf_puts(out, ",\"label\":");
    rc |= m->req && m->req->label[0] ? jtext_string(out, m->req->label) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"urgency\":");
    rc |= jtext_string(out, m->urgency);
    if (m->digest >= 0)
        rc |= buf_printf(out, ",\"digest\":%d", r->msgs[m->digest].number);
    else
        rc |= buf_puts(out, ",\"digest\":null");
    rc |= buf_puts(out, ",\"requested\":{");
    rc |= timeline_time(out, "at", zone, m->requested_at);
    rc |= buf_puts(out, "},\"decision\":");
    if (m->is_digest) {
        rc |= buf_puts(out, "null");
    } else {
        buf_t d;
        buf_init(&d, 16384);
        rc |= policy_decision_json(&m->d, &d);
        rc |= d.data ? buf_append(out, d.data, d.len) : -1;
        buf_free(&d);
    }
    rc |= buf_puts(out, ",\"state\":");
    rc |= jtext_string(out, m->status);
    rc |= buf_puts(out, ",\"channel\":");
    rc |= m->channel[0] ? jtext_string(out, m->channel) : buf_puts(out, "null");
    rc |= buf_printf(out, ",\"attempts\":%d,\"skip_reason\":", m->attempts);
    rc |= m->skip_reason[0] ? jtext_string(out, m->skip_reason) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"reached\":");
    if (m->reached_at >= 0) {
        rc |= buf_putc(out, '{');
        rc |= timeline_time(out, "at", zone, m->reached_at);
        rc |= buf_puts(out, ",\"channel\":");
        rc |= jtext_string(out, m->reached_channel);
        rc |= buf_puts(out, ",\"via\":");
        rc |= jtext_string(out, m->via);
        if (m->segments > 0)
            rc |= buf_printf(out, ",\"segments\":%d", m->segments);
        else
            rc |= buf_puts(out, ",\"segments\":null");
        rc |= buf_puts(out, ",\"what\":");
        rc |= jtext_string(out, m->what);
        rc |= buf_putc(out, '}');
    } else {
        rc |= buf_puts(out, "null");
    }
    rc |= buf_puts(out, ",\"timeline\":[");
    for (int i = 0; i < m->n_lines; i++) {
        rc |= buf_puts(out, i ? ",{" : "{");
        rc |= timeline_time(out, "at", zone, m->lines[i].at);
        rc |= buf_puts(out, ",\"text\":");
        rc |= jtext_string(out, m->lines[i].text);
        rc |= buf_putc(out, '}');
    }
    rc |= buf_puts(out, "]}");
    return rc;
}

int timeline_json(const scenario_t *s, const sim_result_t *r, buf_t *out)
{
    const char *zone = r->zone ? r->zone : "UTC";
    int rc = buf_puts(out, "{\"scenario\":");
    rc |= jtext_string(out, s->name[0] ? s->name : s->path);
    rc |= buf_puts(out, ",\"rules_version\":");
    rc |= jtext_string(out, r->rules_version);
    rc |= buf_puts(out, ",\"templates_version\":");
    rc |= r->templates_version[0] ? jtext_string(out, r->templates_version) : buf_puts(out, "null");
    rc |= buf_puts(out, ",\"timezone\":");
    rc |= jtext_string(out, zone);
    rc |= buf_puts(out, ",\"messages\":[");
    int *ix = timeline_order(r);
    if (!ix)
        return -1;
    for (int k = 0; k < r->n_msgs; k++) {
        rc |= k ? buf_putc(out, ',') : 0;
        rc |= timeline_msg_json(r, &r->msgs[ix[k]], zone, out);
    }
    free(ix);
    rc |= buf_printf(out, "],\"truncated\":%s}", r->truncated ? "true" : "false");
    return rc ? -1 : 0;
}
