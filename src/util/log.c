#include "util/log.h"

#include "util/buf.h"
#include "util/json_text.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX_SECRETS 32
#define LOG_LINE_MAX    (16 * 1024)

static log_level_t log_min = LOG_INFO;
static char *log_secrets[LOG_MAX_SECRETS];
static int log_nsecrets;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};

void log_set_level(log_level_t min)
{
    log_min = min;
}

int log_enabled(log_level_t level)
{
    return level >= log_min;
}

int log_level_parse(const char *s)
{
    static const char *const lower[] = {"debug", "info", "warning", "error", "critical"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, lower[i]) == 0)
            return i;
    return -1;
}

void log_add_secret(const char *value)
{
    if (!value || strlen(value) < 4)
        return;
    pthread_mutex_lock(&log_lock);
    if (log_nsecrets < LOG_MAX_SECRETS) {
        char *copy = strdup(value);
        if (copy)
            log_secrets[log_nsecrets++] = copy;
    }
    pthread_mutex_unlock(&log_lock);
}

/* Replaces every registered secret in line (in place, shrinking it). Secrets
 * are registered at start-up only, so reading the table under the lock that
 * also serialises writes is enough. */
static void log_scrub(buf_t *line)
{
    static const char mask[] = "[redacted]";
    for (int i = 0; i < log_nsecrets; i++) {
        const char *s = log_secrets[i];
        size_t sl = strlen(s);
        char *hit;
        while ((hit = strstr(line->data, s)) != NULL) {
            size_t ml = sizeof(mask) - 1;
            size_t tail = line->len - (size_t)(hit - line->data) - sl;
            if (ml <= sl) {
                memcpy(hit, mask, ml);
                memmove(hit + ml, hit + sl, tail + 1);
                line->len -= sl - ml;
            } else {
                memset(hit, '*', sl); /* too short for the mask: blank it */
            }
        }
    }
}

void log_kv(log_level_t level, const char *component, const char *event, ...)
{
    if (level < log_min)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(ts.tv_nsec / 1000000) % 1000);

    buf_t line;
    buf_init(&line, LOG_LINE_MAX);
    int rc = buf_printf(&line, "{\"timestamp\":\"%s\",\"level\":\"%s\",\"component\":", when,
                        log_names[level]);
    rc |= jtext_string(&line, component ? component : "crier");
    rc |= buf_puts(&line, ",\"event\":");
    rc |= jtext_string(&line, event ? event : "");
    va_list ap;
    va_start(ap, event);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        rc |= buf_putc(&line, ',');
        rc |= jtext_string(&line, k);
        rc |= buf_putc(&line, ':');
        rc |= v ? jtext_string(&line, v) : buf_puts(&line, "null");
    }
    va_end(ap);
    if (rc != 0) {
        /* Over the line limit: say so rather than print a cut, invalid line. */
        buf_reset(&line);
        buf_printf(&line, "{\"timestamp\":\"%s\",\"level\":\"%s\",\"event\":\"log_line_too_long\"",
                   when, log_names[level]);
    }
    buf_puts(&line, "}\n");

    pthread_mutex_lock(&log_lock);
    log_scrub(&line);
    fwrite(line.data, 1, line.len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
    buf_free(&line);
}
