/* comm_detail: what the console's page of one communication shows beyond
 * GET /v1/communications/{id}: the workflow callbacks it raised, and the
 * facts a preview of its message is rendered from. */
#ifndef CRIER_STORE_COMM_DETAIL_H
#define CRIER_STORE_COMM_DETAIL_H

#include <libpq-fe.h>
#include <stddef.h>

/* {"callbacks": [{"event_type", "state", "attempts", "created_at",
 * "delivered_at", "last_error"}...]} oldest first, without their payloads
 * (a reply's text is the client's). *json is the caller's. 0, 1 when there
 * is no such communication, -1 with err. */
int store_comm_callbacks_json(PGconn *conn, const char *id, char **json, char *err, size_t errlen);

/* What a preview renders from. */
typedef struct store_comm_facts {
    char message_type[32];
    char channel[12]; /* "" when none was chosen (skipped) */
    char plan_id[37], client_id[37];
    char template_version[40]; /* "" when not yet rendered */
    char *context_json;        /* owned: the workflow's context object */
} store_comm_facts_t;

/* 0, 1 when there is no such communication, -1 with err. Free with
 * store_comm_facts_free. */
int store_comm_facts_load(PGconn *conn, const char *id, store_comm_facts_t *out, char *err,
                          size_t errlen);
void store_comm_facts_free(store_comm_facts_t *f);

#endif
