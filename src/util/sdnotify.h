/* sdnotify: telling systemd how the service is (Type=notify): ready once it
 * serves, stopping once it drains, and alive at the watchdog's pace. Outside
 * systemd (no NOTIFY_SOCKET) every call does nothing. */
#ifndef CRIER_SDNOTIFY_H
#define CRIER_SDNOTIFY_H

/* READY=1 with a status line. */
void sdnotify_ready(const char *status);
/* STOPPING=1 with a status line. */
void sdnotify_stopping(const char *status);
/* WATCHDOG=1. */
void sdnotify_alive(void);
/* How often to call sdnotify_alive, in milliseconds: half the watchdog's
 * interval (WATCHDOG_USEC), or 0 when no watchdog is set for this process. */
long sdnotify_alive_every_ms(void);

#endif
