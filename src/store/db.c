#include "store/db.h"

#include "util/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpq's messages end with a newline; errors are embedded in log lines and
 * API answers, so it is dropped. */
static void db_set_err(char *err, size_t errlen, const char *msg)
{
    if (!err || errlen == 0)
        return;
    snprintf(err, errlen, "%s", msg && *msg ? msg : "database error");
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == '\r'))
        err[--n] = '\0';
}

void db_error_text(const PGresult *r, const PGconn *conn, char *err, size_t errlen)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!primary) {
        db_set_err(err, errlen, PQerrorMessage(conn));
        return;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    char msg[512];
    snprintf(msg, sizeof msg, "%s (SQLSTATE %s)", primary, state ? state : "?");
    db_set_err(err, errlen, msg);
}

/* libpq prints server notices on stderr by default, which would break the
 * one-JSON-object-per-line log; they go to the debug log instead. */
static void db_notice(void *arg, const char *message)
{
    (void)arg;
    char text[512];
    snprintf(text, sizeof text, "%s", message);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    log_kv(LOG_DEBUG, "db", "notice", "message", text, NULL);
}

/* The session options of every connection: fixed ones, then what
 * db_set_callback_events added. Written before any thread connects, read
 * only after. */
#define DB_OPTIONS_BASE "-c TimeZone=UTC -c statement_timeout=30000"
static char db_options[512] = DB_OPTIONS_BASE;

int db_set_callback_events(const char *events)
{
    size_t n = strlen(events);
    if (n > 300)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!((events[i] >= 'a' && events[i] <= 'z') || events[i] == '_' || events[i] == ','))
            return -1;
    /* the option's value may not be empty: "none" names no event */
    snprintf(db_options, sizeof db_options, "%s -c crier.callback_events=%s", DB_OPTIONS_BASE,
             n ? events : "none");
    return 0;
}

PGconn *db_connect(const char *url, char *err, size_t errlen)
{
    /* Keywords before dbname are defaults the URL may override (a URL that
     * asks for a longer connect timeout gets it); options comes after, since
     * the code relies on UTC sessions and bounded statements. Setting them as
     * connection options rather than SET keeps them across PQreset. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", "options", NULL};
    const char *vals[] = {"10", "crier", url, db_options, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        db_set_err(err, errlen, "out of memory connecting to the database");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        db_set_err(err, errlen, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, db_notice, NULL);
    return conn;
}

int db_ensure(PGconn *conn)
{
    if (!conn)
        return -1;
    /* libpq notices a server that went away only when it next reads; a
     * non-blocking read now turns an idle dead connection into
     * CONNECTION_BAD here instead of into a failed query later. */
    for (int i = 0;
         i < 2 && PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
         i++) {
        /* the first read may return the server's goodbye message, the
         * second then sees the closed socket */
        if (PQconsumeInput(conn) != 1)
            break;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        PQreset(conn);
        if (PQstatus(conn) != CONNECTION_OK)
            return -1;
    }
    /* A connection handed back mid-transaction (a bug or an aborted request)
     * must not leak its half-done work into the next user. */
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return -1;
    } else if (ts == PQTRANS_ACTIVE || ts == PQTRANS_UNKNOWN) {
        return -1;
    }
    return 0;
}

int db_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    /* PQexecParams even without parameters: it accepts a single statement
     * only, so a command string can never smuggle in a second one. */
    PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        db_error_text(r, conn, err, errlen);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params, char *err,
                   size_t errlen)
{
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        db_error_text(r, conn, err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

int db_begin(PGconn *conn, char *err, size_t errlen)
{
    return db_exec(conn, "BEGIN", err, errlen);
}

int db_commit(PGconn *conn, char *err, size_t errlen)
{
    return db_exec(conn, "COMMIT", err, errlen);
}

int db_rollback(PGconn *conn, char *err, size_t errlen)
{
    return db_exec(conn, "ROLLBACK", err, errlen);
}

int db_end(PGconn *conn, int rc, char *err, size_t errlen)
{
    if (rc == 0 && db_commit(conn, err, errlen) == 0)
        return 0;
    char ignored[128];
    if (!db_conn_lost(conn))
        (void)db_rollback(conn, ignored, sizeof ignored);
    return -1;
}

/* 1 when name is a plain lower-case identifier of at most 63 bytes (the
 * server's limit), which needs no quoting. */
static int db_plain_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return 0;
    return 1;
}

/* Runs "<verb> <name>" for an identifier the caller chose (never request
 * text), after checking that it is a plain one. */
static int db_exec_named(PGconn *conn, const char *verb, const char *name, char *err, size_t errlen)
{
    if (!db_plain_name(name)) {
        db_set_err(err, errlen, "not a plain identifier");
        return -1;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "%s %s", verb, name);
    return db_exec(conn, sql, err, errlen);
}

int db_savepoint(PGconn *conn, const char *name, char *err, size_t errlen)
{
    return db_exec_named(conn, "SAVEPOINT", name, err, errlen);
}

int db_release(PGconn *conn, const char *name, char *err, size_t errlen)
{
    return db_exec_named(conn, "RELEASE SAVEPOINT", name, err, errlen);
}

int db_rollback_to(PGconn *conn, const char *name, char *err, size_t errlen)
{
    return db_exec_named(conn, "ROLLBACK TO SAVEPOINT", name, err, errlen);
}

int db_listen(PGconn *conn, const char *channel, char *err, size_t errlen)
{
    return db_exec_named(conn, "LISTEN", channel, err, errlen);
}

int db_conn_lost(const PGconn *conn)
{
    return !conn || PQstatus(conn) == CONNECTION_BAD;
}

typedef struct db_slot {
    PGconn *conn; /* owned by the pool; NULL until first used */
    int busy;
} db_slot_t;

struct db_pool {
    char *url; /* owned copy */
    int size;
    db_slot_t *slots; /* owned, size entries */
    pthread_mutex_t mu;
    pthread_cond_t freed;
};

db_pool_t *db_pool_new(const char *url, int size)
{
    if (!url || size <= 0 || size > 1024)
        return NULL;
    db_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->url = strdup(url);
    p->slots = calloc((size_t)size, sizeof *p->slots);
    if (!p->url || !p->slots || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->url);
        free(p->slots);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->freed, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p->url);
        free(p->slots);
        free(p);
        return NULL;
    }
    p->size = size;
    return p;
}

PGconn *db_pool_get(db_pool_t *p, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    int idx = -1;
    for (;;) {
        for (int i = 0; i < p->size; i++) {
            if (!p->slots[i].busy) {
                idx = i;
                break;
            }
        }
        if (idx >= 0)
            break;
        pthread_cond_wait(&p->freed, &p->mu);
    }
    p->slots[idx].busy = 1;
    PGconn *conn = p->slots[idx].conn;
    pthread_mutex_unlock(&p->mu);

    /* Connecting or resetting happens outside the lock: the slot is already
     * ours, and other threads keep using the other connections meanwhile. */
    if (conn && db_ensure(conn) != 0) {
        db_set_err(err, errlen, PQerrorMessage(conn));
        PQfinish(conn);
        conn = NULL;
    } else if (!conn) {
        conn = db_connect(p->url, err, errlen);
    }

    pthread_mutex_lock(&p->mu);
    p->slots[idx].conn = conn;
    if (!conn) {
        p->slots[idx].busy = 0;
        pthread_cond_signal(&p->freed);
    }
    pthread_mutex_unlock(&p->mu);
    return conn;
}

void db_pool_put(db_pool_t *p, PGconn *conn)
{
    if (!conn)
        return;
    /* Roll back anything left open now rather than when the next user takes
     * it: an idle open transaction holds locks and blocks vacuum. */
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
    }
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->size; i++) {
        if (p->slots[i].conn == conn && p->slots[i].busy) {
            p->slots[i].busy = 0;
            pthread_cond_signal(&p->freed);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

void db_pool_free(db_pool_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++)
        if (p->slots[i].conn)
            PQfinish(p->slots[i].conn);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->url);
    free(p);
}
