#include "sim/expect.h"

#include "sim/timeline.h"
#include "tz/tz.h"

#include <string.h>

static const sim_msg_t *expect_msg(const sim_result_t *r, int number)
{
    for (int i = 0; i < r->n_msgs; i++)
        if (!r->msgs[i].is_digest && r->msgs[i].number == number)
            return &r->msgs[i];
    return NULL;
}

/* The local wall clock of t in zone: minutes after midnight, and the date. */
static int expect_local(const char *zone, double t, int *mod, char date[11])
{
    char err[64];
    const tz_zone_t *z = tz_get(zone ? zone : "UTC", err, sizeof err);
    tz_local_t l;
    if (!z || tz_localtime(z, (int64_t)t, &l) != 0)
        return -1;
    *mod = l.hour * 60 + l.min;
    snprintf(date, 11, "%04d-%02d-%02d", l.year, l.month, l.day);
    return 0;
}

static int expect_minutes(const char *hhmm)
{
    return ((hhmm[0] - '0') * 10 + (hhmm[1] - '0')) * 60 + (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
}

static int expect_message(const scenario_expect_t *x, const sim_result_t *r, FILE *f)
{
    const sim_msg_t *m = expect_msg(r, x->message);
    int bad = 0;
    if (!m) {
        fprintf(f, "  %s: message %d was never requested within the scenario\n", x->entry,
                x->message);
        return 1;
    }
    if (x->state[0] && strcmp(x->state, m->status) != 0) {
        fprintf(f, "  %s: message %d ended %s, expected %s\n", x->entry, m->number, m->status,
                x->state);
        bad++;
    }
    if (x->channel[0] && strcmp(x->channel, m->channel) != 0) {
        fprintf(f, "  %s: message %d ended on %s, expected %s\n", x->entry, m->number,
                m->channel[0] ? m->channel : "no channel", x->channel);
        bad++;
    }
    if (x->attempts >= 0 && x->attempts != m->attempts) {
        fprintf(f, "  %s: message %d took %d attempts, expected %d\n", x->entry, m->number,
                m->attempts, x->attempts);
        bad++;
    }
    int needs_reach = x->local_time[0] || x->local_date[0] || x->via[0] || x->segments >= 0;
    if (needs_reach && m->reached_at < 0) {
        fprintf(f, "  %s: message %d never reached the client\n", x->entry, m->number);
        return bad + 1;
    }
    int mod = 0;
    char date[11] = "";
    if (needs_reach && expect_local(r->zone, m->reached_at, &mod, date) != 0) {
        fprintf(f, "  %s: message %d: its time cannot be read in %s\n", x->entry, m->number,
                r->zone ? r->zone : "UTC");
        return bad + 1;
    }
    char at[40];
    timeline_local(r->zone, m->reached_at, at);
    if (x->local_time[0] && expect_minutes(x->local_time) != mod) {
        fprintf(f, "  %s: message %d reached the client %s, expected at %s local\n", x->entry,
                m->number, at, x->local_time);
        bad++;
    }
    if (x->local_date[0] && strcmp(x->local_date, date) != 0) {
        fprintf(f, "  %s: message %d reached the client %s, expected on %s\n", x->entry, m->number,
                at, x->local_date);
        bad++;
    }
    if (x->via[0] && strcmp(x->via, m->via) != 0) {
        fprintf(f, "  %s: message %d went as %s, expected %s\n", x->entry, m->number, m->via,
                x->via);
        bad++;
    }
    if (x->segments >= 0 && x->segments != m->segments) {
        fprintf(f, "  %s: message %d took %d SMS segments, expected %d\n", x->entry, m->number,
                m->segments, x->segments);
        bad++;
    }
    return bad;
}

static int expect_digest(const scenario_expect_t *x, const sim_result_t *r, FILE *f)
{
    int digest = -2;
    for (int i = 0; i < x->n_members; i++) {
        const sim_msg_t *m = expect_msg(r, x->members[i]);
        int d = m ? m->digest : -1;
        if (d < 0) {
            fprintf(f, "  %s: message %d is in no digest\n", x->entry, x->members[i]);
            return 1;
        }
        if (digest != -2 && d != digest) {
            fprintf(f, "  %s: messages %d and %d are in different digests (%d and %d)\n", x->entry,
                    x->members[0], x->members[i], r->msgs[digest].number, r->msgs[d].number);
            return 1;
        }
        digest = d;
    }
    return 0;
}

static int expect_quiet(const scenario_expect_t *x, const sim_result_t *r, FILE *f)
{
    int qs = expect_minutes(x->quiet_start), qe = expect_minutes(x->quiet_end);
    int bad = 0;
    for (int i = 0; i < r->n_msgs; i++) {
        const sim_msg_t *m = &r->msgs[i];
        int mod;
        char date[11];
        if (m->is_digest || m->reached_at < 0 || expect_local(r->zone, m->reached_at, &mod, date))
            continue;
        int inside = qs < qe ? mod >= qs && mod < qe : qs > qe && (mod >= qs || mod < qe);
        if (inside) {
            char at[40];
            timeline_local(r->zone, m->reached_at, at);
            fprintf(f, "  %s: message %d reached the client %s, inside %s-%s\n", x->entry,
                    m->number, at, x->quiet_start, x->quiet_end);
            bad++;
        }
    }
    return bad;
}

int expect_check(const scenario_t *s, const sim_result_t *r, FILE *f)
{
    int failed = 0;
    for (int i = 0; i < s->n_expect; i++) {
        const scenario_expect_t *x = &s->expect[i];
        int bad = 0;
        switch (x->kind) {
        case SCENARIO_EXPECT_MESSAGE:
            bad = expect_message(x, r, f);
            break;
        case SCENARIO_EXPECT_DIGEST:
            bad = expect_digest(x, r, f);
            break;
        case SCENARIO_EXPECT_QUIET:
            bad = expect_quiet(x, r, f);
            break;
        case SCENARIO_EXPECT_SENT: {
            int n = 0;
            for (int k = 0; k < r->n_msgs; k++)
                n += !r->msgs[k].is_digest && r->msgs[k].reached_at >= 0;
            if (n != x->count) {
                fprintf(f, "  %s: %d messages reached the client, expected %d\n", x->entry, n,
                        x->count);
                bad = 1;
            }
            break;
        }
        }
        failed += bad != 0;
    }
    return failed;
}
