/* Running the operators' policy cases: load each test file in a sandbox,
 * turn each case into a decision's inputs, decide with the rules under test
 * and compare only the fields the case expects. */
#include "policy/rules_cases.h"
#include "util/file.h"
#include "util/errmsg.h"

#include "policy/rules_json.h"
#include "util/buf.h"
#include "util/timefmt.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define RC_WRAP_HEAD "function cases() "
#define RC_WRAP_TAIL "\nend\n"
#define RC_MSG_MAX   512

static int rc_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua names of dir, sorted; the caller frees each and the array. */
static char **rc_list(const char *dir, int *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        errmsg_set(err, errlen, "%s: cannot open the tests directory", dir);
        return NULL;
    }
    char **names = calloc(RULES_CASES_MAX_FILES, sizeof *names);
    *n = 0;
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || e->d_name[0] == '.' || strcmp(e->d_name + len - 4, ".lua") != 0)
            continue;
        if (*n >= RULES_CASES_MAX_FILES) {
            errmsg_set(err, errlen, "%s: more than %d test files", dir, RULES_CASES_MAX_FILES);
            for (int i = 0; i < *n; i++)
                free(names[i]);
            free(names);
            closedir(d);
            return NULL;
        }
        names[*n] = strdup(e->d_name);
        if (!names[*n])
            break;
        (*n)++;
    }
    closedir(d);
    if (!names) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    qsort(names, (size_t)*n, sizeof *names, rc_cmp);
    return names;
}

/* Loads one test file, wrapped so that the list it returns becomes the
 * result of a function: the wrapper shares the file's first line, so line
 * numbers in errors are the file's own. */
static cJSON *rc_load_file(const char *dir, const char *file, char *err, size_t errlen)
{
    char display[512];
    snprintf(display, sizeof display, "tests/%s", file);
    buf_t b;
    buf_init(&b, LH_MAX_FILE_BYTES);
    buf_puts(&b, RC_WRAP_HEAD); /* fits: the buffer is empty and far larger */
    int rc = file_append_in_dir(dir, file, display, &b, err, errlen);
    if (rc == 0 && (buf_puts(&b, RC_WRAP_TAIL) != 0)) {
        errmsg_set(err, errlen, "%s: larger than %d bytes", display, LH_MAX_FILE_BYTES);
        rc = -1;
    }
    if (rc != 0) {
        buf_free(&b);
        return NULL;
    }
    cJSON *cases = NULL;
    lh_state_t *h = lh_new(NULL, err, errlen);
    if (h && rules_time_register(h) == 0 &&
        lh_load_buffer(h, "cases", display, b.data, b.len, err, errlen) == LH_OK &&
        lh_freeze(h) == LH_OK) {
        if (lh_call_json(h, "cases", "cases", NULL, 0, &cases, err, errlen) != LH_OK) {
            /* lh_call's message names the wrapper; the file is what to fix */
            char inner[RC_MSG_MAX];
            snprintf(inner, sizeof inner, "%s", err);
            errmsg_set(err, errlen, "%s: %s", display, inner);
            cases = NULL;
        } else if (!cJSON_IsArray(cases)) {
            errmsg_set(err, errlen, "%s: must return a list of cases", display);
            cJSON_Delete(cases);
            cases = NULL;
        }
    }
    lh_free(h);
    buf_free(&b);
    return cases;
}

typedef struct rc_check {
    char msg[RC_MSG_MAX];
    int bad;
} rc_check_t;

static void rc_fail(rc_check_t *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rc_fail(rc_check_t *ck, const char *fmt, ...)
{
    if (ck->bad++)
        return; /* the first mismatch is the one to read */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ck->msg, sizeof ck->msg, fmt, ap);
    va_end(ap);
}

static void rc_expect_str(rc_check_t *ck, const cJSON *exp, const char *field, const char *got)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(exp, field);
    if (!e)
        return;
    if (cJSON_IsNull(e) || cJSON_IsFalse(e)) {
        if (got && got[0])
            rc_fail(ck, "%s: expected none, got %s", field, got);
        return;
    }
    if (!cJSON_IsString(e))
        rc_fail(ck, "%s: the expectation must be a string", field);
    else if (!got || strcmp(e->valuestring, got) != 0)
        rc_fail(ck, "%s: expected %s, got %s", field, e->valuestring, got && got[0] ? got : "none");
}

static void rc_local(const char *zone, double t, char out[40])
{
    out[0] = '\0';
    const tz_zone_t *z = tz_get(zone, NULL, 0);
    tz_local_t l;
    if (z && tz_localtime(z, (int64_t)floor(t), &l) == 0)
        snprintf(out, 40, "%04d-%02d-%02d %02d:%02d", l.year, l.month, l.day, l.hour, l.min);
}

static void rc_check_decision(rc_check_t *ck, const cJSON *exp, const policy_decision_t *d,
                              const rules_input_t *in, double now)
{
    static const char *const known[] = {
        "status",   "primary_channel", "fallback_channels", "send_at", "send_at_local", "send_now",
        "priority", "batch",           "skip_reason",       "urgency"};
    const cJSON *f;
    cJSON_ArrayForEach(f, exp)
    {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(f->string, known[i]) == 0;
        if (!ok)
            rc_fail(ck, "expect: unknown field \"%.40s\"", f->string);
    }
    rc_expect_str(ck, exp, "status", d->status);
    rc_expect_str(ck, exp, "urgency", d->urgency);
    rc_expect_str(ck, exp, "primary_channel", d->primary);
    rc_expect_str(ck, exp, "skip_reason", d->skip_reason);
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(exp, "fallback_channels");
    if (fb) {
        char got[64] = "", want[64] = "";
        for (int i = 0; i < d->n_fallback; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "",
                     d->fallback[i]);
        const cJSON *it;
        int i = 0;
        cJSON_ArrayForEach(it, fb)
        {
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i++ ? "," : "",
                     cJSON_IsString(it) ? it->valuestring : "?");
        }
        if (!cJSON_IsArray(fb) || strcmp(got, want) != 0)
            rc_fail(ck, "fallback_channels: expected [%s], got [%s]", want, got);
    }
    char when[32];
    time_iso8601(d->send_at, when);
    rc_expect_str(ck, exp, "send_at", when);
    char local[40];
    rc_local(in->client.timezone, d->send_at, local);
    rc_expect_str(ck, exp, "send_at_local", local);
    const cJSON *sn = cJSON_GetObjectItemCaseSensitive(exp, "send_now");
    if (sn && cJSON_IsTrue(sn) != (d->send_at == now))
        rc_fail(ck, "send_now: expected %s, send_at is %s", cJSON_IsTrue(sn) ? "now" : "later",
                when);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(exp, "priority");
    if (pr && (!cJSON_IsNumber(pr) || pr->valuedouble != d->priority))
        rc_fail(ck, "priority: expected %s, got %d", cJSON_IsNumber(pr) ? "another" : "a number",
                d->priority);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(exp, "batch");
    if (b) {
        if (cJSON_IsFalse(b) || cJSON_IsNull(b)) {
            if (d->batch_key[0])
                rc_fail(ck, "batch: expected none, got %s", d->batch_key);
        } else if (cJSON_IsTrue(b)) {
            if (!d->batch_key[0])
                rc_fail(ck, "batch: expected a batch, got none");
        } else if (cJSON_IsObject(b)) {
            if (!d->batch_key[0])
                rc_fail(ck, "batch: expected a batch, got none");
            rc_expect_str(ck, b, "key", d->batch_key);
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(b, "window_seconds");
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(b, "max_size");
            if (w && (!cJSON_IsNumber(w) || w->valuedouble != d->batch_window))
                rc_fail(ck, "batch.window_seconds: got %d", d->batch_window);
            if (m && (!cJSON_IsNumber(m) || m->valuedouble != d->batch_max))
                rc_fail(ck, "batch.max_size: got %d", d->batch_max);
        } else {
            rc_fail(ck, "batch: the expectation must be false, true or an object");
        }
    }
}

static void rc_run_failure(rc_check_t *ck, rules_set_t *set, const cJSON *of, const cJSON *exp,
                           const rules_input_t *in)
{
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(of, "attempt");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(of, "channel");
    const cJSON *cat = cJSON_GetObjectItemCaseSensitive(of, "category");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(of, "provider_code");
    const cJSON *rem = cJSON_GetObjectItemCaseSensitive(of, "remaining");
    if (!cJSON_IsNumber(att) || !cJSON_IsString(ch) || !cJSON_IsString(cat) ||
        (rem && !cJSON_IsArray(rem)) || cJSON_GetArraySize(rem) > POLICY_MAX_CHANNELS) {
        rc_fail(ck, "on_failure needs attempt (number), channel, category and optionally "
                    "remaining (a list) and provider_code");
        return;
    }
    const char *remaining[POLICY_MAX_CHANNELS];
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, rem)
    {
        if (!cJSON_IsString(it)) {
            rc_fail(ck, "on_failure.remaining: channel names expected");
            return;
        }
        remaining[n++] = it->valuestring;
    }
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(of, "retry_after");
    rules_failure_t f;
    char err[RC_MSG_MAX];
    if (rules_on_failure(set, &in->msg, (int)att->valuedouble, ch->valuestring, cat->valuestring,
                         cJSON_IsNumber(code) ? (int)code->valuedouble : 0,
                         cJSON_IsNumber(ra) ? (int)ra->valuedouble : -1, remaining, n, &f, err,
                         sizeof err) != 0) {
        rc_fail(ck, "rule error: %s", err);
        return;
    }
    rc_expect_str(ck, exp, "action", rules_action_name(f.action));
    if (f.action == POLICY_NEXT_CHANNEL)
        rc_expect_str(ck, exp, "next_channel", f.next_channel);
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(exp, "retry_after_min");
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(exp, "retry_after_max");
    if ((lo || hi) && f.action != POLICY_RETRY)
        rc_fail(ck, "retry_after: expected a retry");
    else if ((cJSON_IsNumber(lo) && f.retry_after < lo->valuedouble) ||
             (cJSON_IsNumber(hi) && f.retry_after > hi->valuedouble))
        rc_fail(ck, "retry_after: %d s is outside the expected range", f.retry_after);
}

/* One case; returns 1 when it passed. */
static int rc_case(rules_set_t *set, const cJSON *c, const char *file, int index, FILE *out)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
    char label[200];
    snprintf(label, sizeof label, "%s #%d %s", file, index,
             cJSON_IsString(name) ? name->valuestring : "(unnamed)");
    rc_check_t ck = {.bad = 0};
    rules_input_t in;
    rules_input_defaults(&in);
    char err[RC_MSG_MAX];
    const cJSON *f;
    cJSON_ArrayForEach(f, c)
    {
        static const char *const known[] = {"name",    "now",    "msg",       "client",
                                            "pending", "expect", "on_failure"};
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(f->string, known[i]) == 0;
        if (!ok)
            rc_fail(&ck, "unknown field \"%.40s\"", f->string);
    }
    const cJSON *jnow = cJSON_GetObjectItemCaseSensitive(c, "now");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c, "msg");
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(c, "client");
    const cJSON *pend = cJSON_GetObjectItemCaseSensitive(c, "pending");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "expect");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(c, "on_failure");
    double now = 0;
    if (!cJSON_IsObject(c))
        rc_fail(&ck, "a case must be a table");
    else if (!cJSON_IsString(jnow) || rules_time_parse(jnow->valuestring, &now) != 0)
        rc_fail(&ck, "now must be an ISO-8601 time such as 2026-03-08T06:30:00Z");
    else if (!cJSON_IsObject(exp))
        rc_fail(&ck, "expect must be a table");
    else if (msg && rules_input_msg(&in, msg, err, sizeof err) != 0)
        rc_fail(&ck, "%s", err);
    else if (client && rules_input_client(&in, client, err, sizeof err) != 0)
        rc_fail(&ck, "%s", err);
    if (!ck.bad && pend) {
        const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(pend, "count");
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(pend, "oldest_at");
        in.pending.count = cJSON_IsNumber(cnt) ? (int)cnt->valuedouble : 0;
        if (old && (!cJSON_IsString(old) ||
                    rules_time_parse(old->valuestring, &in.pending.oldest_at) != 0))
            rc_fail(&ck, "pending.oldest_at must be an ISO-8601 time");
    }
    if (!ck.bad) {
        if (of) {
            rc_run_failure(&ck, set, of, exp, &in);
        } else {
            policy_decision_t d;
            if (rules_decide(set, &in.msg, &in.client, now, &in.pending, &d, err, sizeof err) != 0)
                rc_fail(&ck, "rule error: %s", err);
            else
                rc_check_decision(&ck, exp, &d, &in, now);
        }
    }
    if (ck.bad)
        fprintf(out, "FAIL %s: %s\n", label, ck.msg);
    else
        fprintf(out, "ok   %s\n", label);
    return !ck.bad;
}

int rules_cases_run(rules_set_t *set, const char *tests_dir, FILE *out, int *passed, int *failed,
                    char *err, size_t errlen)
{
    *passed = *failed = 0;
    int n = 0;
    char **files = rc_list(tests_dir, &n, err, errlen);
    if (!files)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        cJSON *cases = rc_load_file(tests_dir, files[i], err, errlen);
        if (!cases) {
            rc = -1;
            break;
        }
        int k = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cases)
        {
            if (rc_case(set, c, files[i], ++k, out))
                (*passed)++;
            else
                (*failed)++;
        }
        cJSON_Delete(cases);
    }
    for (int i = 0; i < n; i++)
        free(files[i]);
    free(files);
    return rc;
}
