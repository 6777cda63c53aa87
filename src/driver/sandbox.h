/* sandbox: the transport that sends nothing. Each driver writes what it
 * would have sent to the outbox folder instead, and refuses the documented
 * test recipients the way its provider would, so the demo and the tests see
 * a permanent failure and its fallback without credentials. */
#ifndef CRIER_SANDBOX_H
#define CRIER_SANDBOX_H

#include "config.h"
#include "driver/outcome.h"

#include <cjson/cJSON.h>

/* The digits a sandbox phone number ends with to be refused. */
#define SANDBOX_FAIL_SUFFIX "0000"

/* 1 when the sandbox refuses phone (its digits end in SANDBOX_FAIL_SUFFIX). */
int sandbox_refuses(const char *phone);

/* Writes record (a JSON object, borrowed) to the outbox as
 * <job_id>.<kind>.json and marks out delivered; or marks it failed
 * (transient) when the write fails. */
void sandbox_deliver(const cfg_t *cfg, const char *job_id, const char *kind, const cJSON *record,
                     outcome_t *out);

#endif
