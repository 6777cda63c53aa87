/* email_track: open and click tracking in the email driver
 * (docs/tracking.md). Between rendering and the MIME build, the HTML part's
 * links become crier's redirects and the open pixel is added
 * (template/links.h), and the links it stood for are stored with the
 * communication (store/tracking.h); the plain-text part is not touched.
 * CRIER_TRACKING=off, or the message's type in CRIER_TRACKING_OFF_TYPES,
 * leaves the email as rendered. */
#ifndef CRIER_DRIVER_EMAIL_TRACK_H
#define CRIER_DRIVER_EMAIL_TRACK_H

#include "driver/driver.h"

#include <libpq-fe.h>
#include <stddef.h>

/* 0 when every name in cfg->tracking_off_types is a message type, or -1
 * with err naming the first that is not (for start-up). */
int email_track_check(const cfg_t *cfg, char *err, size_t errlen);

/* 1 when emails of message_type are tracked under cfg. */
int email_track_on(const cfg_t *cfg, const char *message_type);

/* Tracks the rendered *html of job (replacing it, owned as before) when
 * its type is tracked. 0, or -1 with out failed (a transient failure: the
 * links could not be stored). */
int email_track_apply(const drv_env_t *env, PGconn *conn, const queue_job_t *job, char **html,
                      outcome_t *out);

#endif
