/* commands: the sub-commands of the crier binary. Each returns the process
 * exit code: 0 ok, 1 runtime failure, 2 usage or bad input. argv[0] is the
 * sub-command's own name (e.g. "templates"). */
#ifndef CRIER_COMMANDS_H
#define CRIER_COMMANDS_H

#include "config.h"

int cmd_serve(int argc, char **argv, cfg_t *cfg);
int cmd_migrate(int argc, char **argv, cfg_t *cfg);
/* crier templates check | render NAME --context FILE [--channel email] */
int cmd_templates(int argc, char **argv, cfg_t *cfg);
/* crier rules test [DIR] | dry-run --request FILE [--client FILE] [--now ISO-8601] [--rules DIR] */
int cmd_rules(int argc, char **argv, cfg_t *cfg);

#endif
