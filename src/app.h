/* app: what the parts of one running crier process share. */
#ifndef CRIER_APP_H
#define CRIER_APP_H

#include "channel/dkim.h"
#include "config.h"
#include "crypto/crypto.h"
#include "store/db.h"
#include "template/check.h"
#include "template/live.h"

#include <stdatomic.h>

typedef struct intake intake_t;
typedef struct prt prt_t;
typedef struct tx tx_t;
typedef struct tx_pool tx_pool_t;
typedef struct circ circ_t;
typedef struct prefcache prefcache_t;

typedef struct app {
    cfg_t *cfg; /* borrowed from main */
    cry_keys_t keys;
    tpl_check_opts_t tpl_opts; /* what a reloaded catalogue is checked with; strings
                                  borrowed from cfg */
    tpl_live_t *templates;     /* owned: the live catalogue (hot-reloaded) */
    db_pool_t *pool;           /* owned: short reads from API handlers */
    intake_t *intake;          /* owned: the group-commit writer */
    prt_t *rules;              /* owned: the live policy rules (hot-reloaded) */
    tx_t *tx;                  /* owned: transport of live SMS/WhatsApp; NULL if none */
    tx_pool_t *tx_mail;        /* owned: transport loops of live SMTP, one per session;
                                  NULL if sandboxed (see docs/architecture.md, Transport) */
    dkim_signer_t *dkim;       /* owned: signs every email; NULL when mail goes unsigned */
    circ_t *circuit;           /* owned: per-provider circuit after auth failures */
    prefcache_t *prefs;        /* owned: the preference cache as the API and the
                                  workers tell it of changes (shared, locked) */
    atomic_int db_ready;       /* 1 while PostgreSQL answered the last probe */
    atomic_int stopping;       /* set by SIGTERM/SIGINT */
} app_t;

#endif
