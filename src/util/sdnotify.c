#include "util/sdnotify.h"

#include "util/log.h"

#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

/* A failed notification is logged, not fatal: the service still serves,
 * and systemd's own timeouts say what it did not hear. */
static void sdnotify_send(const char *what, const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        log_warn("serve", "sd_notify_failed", "state", what, NULL);
}

void sdnotify_ready(const char *status)
{
    char state[256];
    snprintf(state, sizeof state, "READY=1\nSTATUS=%s", status);
    sdnotify_send("ready", state);
}

void sdnotify_stopping(const char *status)
{
    char state[256];
    snprintf(state, sizeof state, "STOPPING=1\nSTATUS=%s", status);
    sdnotify_send("stopping", state);
}

void sdnotify_alive(void)
{
    sdnotify_send("watchdog", "WATCHDOG=1");
}

long sdnotify_alive_every_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    long ms = (long)(usec / 2000);
    return ms > 0 ? ms : 1;
}
