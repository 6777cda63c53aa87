/* live: the catalogue a running crier renders from, replaced while it runs.
 *
 * The templates directory is watched (inotify on it and its folders, edits
 * settled for a moment as for the rules) and re-read on tpl_live_reload
 * (SIGHUP). A new catalogue is loaded and checked in full — every file
 * parses, every HTML part is well-formed, every type renders with its
 * example context (template/check.h), exactly `crier templates check` —
 * before it replaces the live one. A set that fails never goes live: the
 * old one stays, and the error (file and line) is logged, counted and kept
 * for GET /v1/templates.
 *
 * A reader takes one catalogue per message (tpl_live_acquire) and renders
 * everything of that message from it, then lets it go (tpl_catalog_free).
 * A swap only moves the live pointer under a short lock; the catalogue it
 * replaces is freed by whichever holder lets go of it last, so a message
 * being rendered keeps its catalogue to the end and never mixes two. */
#ifndef CRIER_TPL_LIVE_H
#define CRIER_TPL_LIVE_H

#include "template/catalog.h"
#include "template/check.h"
#include "util/buf.h"

#include <stddef.h>

typedef struct tpl_live tpl_live_t;

/* Loads and checks dir; NULL with err (naming the file and line) when that
 * first set fails, since there is nothing to fall back on. With watch, the
 * directory is watched (a directory that cannot be watched is logged;
 * tpl_live_reload still works). opts and the strings it points to must
 * outlive the holder. */
tpl_live_t *tpl_live_start(const char *dir, const tpl_check_opts_t *opts, int watch, char *err,
                           size_t errlen);
/* Stops the watcher and drops the holder's reference to the live
 * catalogue. Call after every reader has stopped acquiring; catalogues
 * still held stay valid until they are let go. */
void tpl_live_stop(tpl_live_t *t);
/* A reference to the live catalogue (never NULL for a started holder);
 * the caller lets go of it with tpl_catalog_free. */
tpl_catalog_t *tpl_live_acquire(tpl_live_t *t);
/* Re-reads the directory now: 0 when it passed (the new version, if it
 * differs, is live), -1 when it failed and the old one stays. Reloads from
 * the watcher and from SIGHUP take turns. */
int tpl_live_reload(tpl_live_t *t);

/* {"templates_dir", "version", "loaded_at", "last_reload": {"ok", "at",
 *  "error"}, "reloads": {"ok", "error"}, "templates": [{"name", "channel",
 *  "version"}]} */
int tpl_live_status_json(tpl_live_t *t, buf_t *out);

typedef struct tpl_live_counters {
    long reloads_ok;    /* reloads that passed (a new version, or the same again) */
    long reloads_error; /* reloads refused */
    int last_ok;        /* the last reload (or the start) passed */
    char version[32];   /* the live catalogue's version */
} tpl_live_counters_t;
void tpl_live_counters(tpl_live_t *t, tpl_live_counters_t *out);

#endif
