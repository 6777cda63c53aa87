/* commands: the sub-commands of the crier binary. Each returns the process
 * exit code: 0 ok, 1 runtime failure, 2 usage or bad input. argv[0] is the
 * sub-command's own name (e.g. "templates"). */
#ifndef CRIER_COMMANDS_H
#define CRIER_COMMANDS_H

#include "channel/dkim.h"
#include "config.h"
#include "crypto/crypto.h"

int cmd_serve(int argc, char **argv, cfg_t *cfg);
int cmd_migrate(int argc, char **argv, cfg_t *cfg);
/* crier templates check | render NAME --context FILE [--channel email] */
int cmd_templates(int argc, char **argv, cfg_t *cfg);
/* crier rules test [DIR] | dry-run --request FILE [--client FILE] [--now ISO-8601] [--rules DIR] */
int cmd_rules(int argc, char **argv, cfg_t *cfg);
/* crier keys status | rotate [--batch N] [--dry-run] | index-key */
int cmd_keys(int argc, char **argv, cfg_t *cfg);

/* The key ring of the settings (CRIER_ENCRYPTION_KEYS or
 * CRIER_ENCRYPTION_KEY, and CRIER_BLIND_INDEX_KEY), for every command that
 * needs it: 0 loaded, 1 when no key is set (keys not loaded), -1 with err
 * naming the setting (and the entry, never a key) when one is bad or both
 * key settings are given. */
int keys_from_cfg(const cfg_t *cfg, cry_keys_t *keys, char *err, size_t errlen);

/* crier simulate SCENARIO [--rules DIR] [--templates DIR] [--json]
 *              | test DIR [--rules DIR] [--templates DIR] */
int cmd_simulate(int argc, char **argv, cfg_t *cfg);

/* crier config check [--offline] */
int cmd_config(int argc, char **argv, cfg_t *cfg);

/* crier purge [--dry-run] [--batch N] */
int cmd_purge(int argc, char **argv, cfg_t *cfg);

/* crier dkim keygen --selector S [--domain D] [--algorithm rsa|ed25519] [--bits N] --out FILE
 *          | record */
int cmd_dkim(int argc, char **argv, cfg_t *cfg);

/* The DKIM signer of the settings (CRIER_DKIM_KEY_FILE, CRIER_DKIM_SELECTOR,
 * CRIER_DKIM_DOMAIN or the domain of CRIER_MAIL_FROM), for serve and
 * `crier dkim record`: 0 with *signer loaded (the caller frees it), 1 when
 * no key file is set, -1 with err naming the setting and the file (never
 * the key) when it cannot be used. */
int dkim_cmd_signer(const cfg_t *cfg, dkim_signer_t **signer, char *err, size_t errlen);

#endif
