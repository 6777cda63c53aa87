/* rules_cases: the table-driven policy cases of `crier rules test`.
 *
 * Each tests/<name>.lua file of a rules directory is Lua that returns a
 * list of cases (see docs/rules.md for every field):
 *   return {
 *     { name = "...", now = "2026-03-08T06:30:00Z",
 *       msg = { type = "budget_summary", urgency = "normal" },
 *       client = { has_email = true, timezone = "America/New_York" },
 *       expect = { primary_channel = "email", send_at_local = "2026-03-08 09:00" } },
 *   }
 * The files are operator-written code, so they run in their own sandbox
 * (same limits as the rules) and only the data they return is used. */
#ifndef CRIER_RULES_CASES_H
#define CRIER_RULES_CASES_H

#include "policy/rules.h"

#include <stdio.h>

#define RULES_CASES_MAX_FILES 200

/* Runs every case of every *.lua file in tests_dir (in name order) against
 * set, writing one line per case to out. Returns 0 with the counts, or -1
 * with err naming the file (and line) when a file cannot be read, does not
 * compile, or does not return a list of cases. */
int rules_cases_run(rules_set_t *set, const char *tests_dir, FILE *out, int *passed, int *failed,
                    char *err, size_t errlen);

#endif
