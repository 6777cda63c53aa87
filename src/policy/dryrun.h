/* dryrun: what `crier rules dry-run` and POST /v1/rules/dry-run share — the
 * inputs read and validated the same way and the same JSON answer — so an
 * operator sees one decision whichever of the two is asked. */
#ifndef CRIER_DRYRUN_H
#define CRIER_DRYRUN_H

#include "policy/policy.h"
#include "policy/rules_json.h"
#include "request/request.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Which input dryrun_input refused. */
enum {
    DRYRUN_BAD_REQUEST = 1,
    DRYRUN_BAD_CLIENT = 2,
};

/* Reads into in (already set up, e.g. by rules_input_defaults) the
 * POST /v1/communications body request[0..len) (request[len] must be NUL),
 * validated exactly as the API validates it (max_decoded bounds its
 * attachments), then the client object (NULL: none) over the request's own
 * client fields. Returns 0, or DRYRUN_BAD_REQUEST / DRYRUN_BAD_CLIENT with
 * err filled: the kind of fault and a message naming the field (of the
 * request or the client object), never a value. */
int dryrun_input(rules_input_t *in, const char *request, size_t len, size_t max_decoded,
                 const cJSON *client, req_error_t *err);

/* The answer: {"decision": {primary_channel, fallback_channels, send_at,
 * priority, batch, skip_reason, status}, "rules_version", "trace"} plus
 * "rules_error" when rules_error is not NULL. pretty: indented for a
 * terminal. Returns text owned by the caller (free()), or NULL when out of
 * memory. */
char *dryrun_answer_json(const policy_decision_t *d, const char *rules_error, int pretty);

/* Why the rules failed a decision that prt_decide answered with the built-in
 * policy: the error of the failed "rules" step it puts first in the trace.
 * Copies it into out and returns 1, or returns 0 when the rules decided. */
int dryrun_rules_error(const policy_decision_t *d, char *out, size_t outlen);

#endif
