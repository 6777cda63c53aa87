/* expect: a scenario's expectations checked against what the simulator
 * played — `crier simulate test` and the CLI's exit code. */
#ifndef CRIER_EXPECT_H
#define CRIER_EXPECT_H

#include "sim/sim.h"

#include <stdio.h>

/* Checks every expectation of s against r; prints one line to f for each
 * that does not hold ("  expect[2]: message 2: state sent, wanted
 * failed"). Returns the number that failed. */
int expect_check(const scenario_t *s, const sim_result_t *r, FILE *f);

#endif
