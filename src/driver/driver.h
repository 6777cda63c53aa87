/* driver: what delivering on one channel takes, behind one struct per
 * channel, so the delivery worker never asks which channel it holds.
 *
 * A driver turns a claimed communication into a provider call (prepare),
 * reads the provider's answer into the neutral outcome (finish), and names
 * what guards its provider: the circuit, the rate limit and its key, the
 * metrics label and the transport loop the call goes on. Whether a channel
 * sends for real or writes to the sandbox outbox is the driver's own
 * transport choice (live), not another channel. */
#ifndef CRIER_DRIVER_H
#define CRIER_DRIVER_H

#include "channel/ch.h"
#include "channel/dkim.h"
#include "circuit/circuit.h"
#include "config.h"
#include "crypto/crypto.h"
#include "driver/call.h"
#include "driver/outcome.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "template/catalog.h"
#include "transport/transport.h"
#include "transport/tx_pool.h"

#include <libpq-fe.h>
#include <stddef.h>

/* What drivers work with, all borrowed from the running process. */
typedef struct drv_env {
    const cfg_t *cfg;
    const cry_keys_t *keys;         /* to decrypt the client's contact */
    const tpl_catalog_t *templates; /* the loaded templates */
    tx_t *tx;                       /* the loop of live HTTP API calls; NULL if none */
    tx_pool_t *tx_mail;             /* the loops of live SMTP sends; NULL if none */
    const dkim_signer_t *dkim;      /* signs every email, sandbox too; NULL: unsigned */
} drv_env_t;

typedef struct drv {
    ch_id_t id;              /* its name is ch_name(id) */
    const char *provider;    /* the provider's name in logs, rate-limit keys and metrics */
    circ_provider_t circuit; /* the breaker of its live provider */
    metrics_api_t api;       /* the api label of its provider calls */
    /* 1 when cfg sends this channel to its provider, 0 for the sandbox. */
    int (*live)(const cfg_t *cfg);
    /* 1 when the channel can deliver with cfg: a live provider needs its
     * credentials, the sandbox nothing. */
    int (*available)(const cfg_t *cfg);
    /* The live provider's send rate in cfg and the sender it is counted
     * per (written to sender, "" when there is none). */
    cfg_rate_t (*rate)(const cfg_t *cfg, char *sender, size_t senderlen);
    /* A worker thread's state for this driver (NULL when it needs none):
     * 0, or -1 with err saying why the worker cannot deliver. May be NULL. */
    int (*worker_new)(const drv_env_t *env, void **state, char *err, size_t errlen);
    void (*worker_free)(void *state);
    /* Everything up to the provider call: out is reset, then either final
     * (sandbox, or a failure before any call) with call->req NULL, or the
     * call to make is left in call->req. call must be zeroed. */
    void (*prepare)(void *state, const drv_env_t *env, PGconn *conn, const queue_job_t *job,
                    call_t *call, outcome_t *out);
    /* Reads the answer to the call prepare left into out. */
    void (*finish)(const call_t *call, outcome_t *out);
    /* The transport loop its live calls go on (NULL when there is none). */
    tx_t *(*loop)(const drv_env_t *env);
} drv_t;

/* The driver of channel c, or NULL when c is no channel. */
const drv_t *drv_get(ch_id_t c);

/* The driver of the channel called name, or NULL. */
const drv_t *drv_by_name(const char *name);

/* The channels that cannot deliver with cfg (CH_BIT set), for the policy. */
unsigned drv_channels_off(const cfg_t *cfg);

#endif
