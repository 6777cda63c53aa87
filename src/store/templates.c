#include "store/templates.h"

#include "store/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one process remembers before it starts over: each reload that
 * changes a template adds one version, so this is many reloads' worth. A
 * full set is emptied, which costs one statement per version used next. */
#define TPLSEEN_MAX 4096
#define TPLSEEN_KEY 160

typedef struct tplseen_entry {
    char key[TPLSEEN_KEY]; /* "name/channel/hash" */
    char id[37];           /* its row */
} tplseen_entry_t;

struct store_tplseen {
    pthread_mutex_t mu; /* guards e and n */
    tplseen_entry_t *e; /* owned: TPLSEEN_MAX of them */
    size_t n;
};

static int tplseen_key(char *out, const char *name, const char *channel, const char *hash)
{
    return (size_t)snprintf(out, TPLSEEN_KEY, "%s/%s/%s", name, channel, hash) < TPLSEEN_KEY ? 0
                                                                                             : -1;
}

store_tplseen_t *store_tplseen_new(void)
{
    store_tplseen_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->e = calloc(TPLSEEN_MAX, sizeof *s->e);
    if (!s->e) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void store_tplseen_free(store_tplseen_t *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->e);
    free(s);
}

int store_tplseen_get(store_tplseen_t *s, const char *name, const char *channel, const char *hash,
                      char id[37])
{
    char key[TPLSEEN_KEY];
    if (!s || tplseen_key(key, name, channel, hash) != 0)
        return 0;
    int found = 0;
    pthread_mutex_lock(&s->mu);
    /* newest first: the live versions were the last added */
    for (size_t i = s->n; i > 0 && !found; i--) {
        if (strcmp(s->e[i - 1].key, key) == 0) {
            memcpy(id, s->e[i - 1].id, 37);
            found = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void tplseen_add(store_tplseen_t *s, const char *key, const char *id)
{
    pthread_mutex_lock(&s->mu);
    if (s->n == TPLSEEN_MAX)
        s->n = 0;
    snprintf(s->e[s->n].key, sizeof s->e[s->n].key, "%s", key);
    snprintf(s->e[s->n].id, sizeof s->e[s->n].id, "%s", id);
    s->n++;
    pthread_mutex_unlock(&s->mu);
}

int store_template_record(PGconn *conn, store_tplseen_t *seen, const store_template_t *t,
                          char id[37], char *err, size_t errlen)
{
    char key[TPLSEEN_KEY];
    id[0] = '\0';
    if (!t->name || !t->channel || !t->hash || !t->content || !t->files_json ||
        tplseen_key(key, t->name, t->channel, t->hash) != 0) {
        snprintf(err, errlen, "incomplete template version");
        return -1;
    }
    if (store_tplseen_get(seen, t->name, t->channel, t->hash, id))
        return 0;
    if (db_begin(conn, err, errlen) != 0)
        return -1;
    /* Two processes meeting a new version at once would both number it
     * after the same last one: the table lock lets one finish first. It
     * does not wait for the communications' key checks (row share). */
    PGresult *r =
        db_query(conn, "LOCK TABLE crm_communication_templates IN SHARE ROW EXCLUSIVE MODE", 0,
                 NULL, err, errlen);
    int rc = r ? 0 : -1;
    PQclear(r);
    if (rc == 0) {
        const char *params[] = {t->name,    t->channel, t->hash,
                                t->subject, t->content, t->files_json};
        /* the new row, or the one recorded before (this statement's
         * snapshot is taken under the lock, so it sees it) */
        r = db_query(conn,
                     "WITH ins AS (INSERT INTO crm_communication_templates (template_name,"
                     "  channel, version, hash, subject_template, content_template, files)"
                     " SELECT $1::text, $2::text, COALESCE(max(version), 0) + 1, $3::text,"
                     "  $4::text, $5::text, $6::jsonb"
                     " FROM crm_communication_templates"
                     " WHERE template_name = $1::text AND channel = $2::text"
                     " ON CONFLICT (template_name, channel, hash) DO NOTHING"
                     " RETURNING template_id)"
                     " SELECT template_id FROM ins"
                     " UNION ALL SELECT template_id FROM crm_communication_templates"
                     "  WHERE template_name = $1::text AND channel = $2::text AND hash = $3::text"
                     " LIMIT 1",
                     6, params, err, errlen);
        rc = r ? 0 : -1;
        if (r && (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != 36)) {
            snprintf(err, errlen, "template version %s/%s %s: no row", t->channel, t->name,
                     t->hash);
            rc = -1;
        }
        if (rc == 0)
            memcpy(id, PQgetvalue(r, 0, 0), 37);
        PQclear(r);
    }
    if (db_end(conn, rc, err, errlen) != 0) {
        id[0] = '\0';
        return -1;
    }
    if (seen)
        tplseen_add(seen, key, id);
    return 0;
}
