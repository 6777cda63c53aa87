/* timeline: a played scenario as a person reads it (every message's
 * decision, attempts, outcome and what reached the client, in local time)
 * or as JSON for a program (`crier simulate --json`). */
#ifndef CRIER_TIMELINE_H
#define CRIER_TIMELINE_H

#include "sim/sim.h"
#include "util/buf.h"

#include <stdio.h>

/* Prints r as text to f. */
void timeline_print(FILE *f, const scenario_t *s, const sim_result_t *r);

/* Appends r as one JSON document: {"scenario", "rules_version",
 * "templates_version", "timezone", "messages": [{"number", "type",
 * "urgency", "digest" (its number, or null), "requested_at", "decision",
 * "state", "channel", "attempts", "skip_reason", "reached": null or {"at",
 * "local", "channel", "via", "segments", "what"}, "timeline": [{"at",
 * "local", "text"}]}], "truncated"}. 0, or -1 when out is full. */
int timeline_json(const scenario_t *s, const sim_result_t *r, buf_t *out);

/* "Mon 2026-03-09 09:00:00" in zone (UTC when NULL or unknown). */
void timeline_local(const char *zone, double t, char out[40]);

#endif
