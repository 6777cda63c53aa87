/* timefmt: ISO-8601 UTC timestamps, the one format crier writes. */
#ifndef CRIER_TIMEFMT_H
#define CRIER_TIMEFMT_H

/* Writes t (epoch seconds) as "2026-11-24T22:33:50Z" into out[32]. */
void time_iso8601(double t, char out[32]);
/* Current wall-clock time in epoch seconds. */
double time_now(void);
/* Monotonic time in milliseconds, for timeouts and durations. */
long long time_mono_ms(void);

#endif
