/* templates: the record of template versions (crm_communication_templates,
 * sql/010_templates.sql), written once per version the first time a
 * message rendered with it is recorded, and remembered per process so that
 * a message whose version is known costs no statement.
 *
 * A communication names its version by the row's id (template_id, a
 * foreign key): record the versions of a batch before its outcomes. */
#ifndef CRIER_STORE_TEMPLATES_H
#define CRIER_STORE_TEMPLATES_H

#include <libpq-fe.h>
#include <stddef.h>

/* One version as the catalogue gives it; every string borrowed. */
typedef struct store_template {
    const char *name;       /* the message type */
    const char *channel;    /* email, sms or whatsapp */
    const char *hash;       /* the version's content hash (16 hex digits) */
    const char *subject;    /* the subject's source; NULL but on email */
    const char *content;    /* the text body's source */
    const char *files_json; /* {"email/x.html": source, ...} */
} store_template_t;

/* The versions this process has seen recorded, with their rows' ids;
 * shared by threads (it locks itself). */
typedef struct store_tplseen store_tplseen_t;
store_tplseen_t *store_tplseen_new(void);
void store_tplseen_free(store_tplseen_t *s);
/* 1 with the row's id in id when name/channel/hash is known to be
 * recorded, else 0. */
int store_tplseen_get(store_tplseen_t *s, const char *name, const char *channel, const char *hash,
                      char id[37]);

/* The id of t's row into id: from seen, or recorded now in a transaction
 * of its own (nothing is written when another process recorded it
 * already), numbered after the name and channel's last version, and
 * remembered in seen. 0, or -1 with err. */
int store_template_record(PGconn *conn, store_tplseen_t *seen, const store_template_t *t,
                          char id[37], char *err, size_t errlen);

#endif
