/* db: PostgreSQL connections with libpq.
 *
 * Every query is parameterised (PQexecParams); no SQL is ever built from
 * request text. */
#ifndef CRIER_DB_H
#define CRIER_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects and sets the session up (UTC time zone, a statement timeout).
 * Returns NULL with a message in err (libpq's text, which never contains the
 * password of a URI: libpq does not echo it). */
PGconn *db_connect(const char *url, char *err, size_t errlen);
/* The status callbacks this process's sessions write (the setting
 * crier.callback_events of sql/012): "all", "" or a comma list of event
 * names, lower-case letters and '_' only. Set once at start-up, before any
 * connection is made; every later db_connect carries it. 0, or -1 when
 * events holds another character or is too long (nothing changes). */
int db_set_callback_events(const char *events);
/* Ensures conn is usable, resetting it once if the server went away.
 * Returns 0 when the connection is (again) OK. */
int db_ensure(PGconn *conn);
/* The error of result r (or of conn when r has none) into err: the primary
 * message and the SQLSTATE only. The server's DETAIL ("Failing row
 * contains (...)") can quote a row's values, a client's data among them,
 * and errors end up in log lines. */
void db_error_text(const PGresult *r, const PGconn *conn, char *err, size_t errlen);
/* Runs a parameterless command (BEGIN, COMMIT, ...). 0 or -1 with err. */
int db_exec(PGconn *conn, const char *sql, char *err, size_t errlen);
/* PQexecParams with text parameters; returns the result (caller PQclear()s)
 * or NULL with a message in err when the status is not COMMAND_OK/TUPLES_OK. */
PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *params, char *err,
                   size_t errlen);
/* Transaction control, so that no caller outside store/ and queue/ writes
 * SQL text of its own. Each returns 0, or -1 with err. A savepoint's name
 * and a channel are identifiers, which SQL cannot take as parameters: they
 * must be lower-case letters, digits and '_' (not first a digit), anything
 * else is refused before it reaches the server. */
int db_begin(PGconn *conn, char *err, size_t errlen);
int db_commit(PGconn *conn, char *err, size_t errlen);
int db_rollback(PGconn *conn, char *err, size_t errlen);
/* Ends the open transaction: COMMIT when rc is 0, else ROLLBACK, keeping in
 * err the failure that rc reports (a rollback that fails too only means the
 * connection is gone, which its next use notices). Returns 0 when
 * committed, else -1. */
int db_end(PGconn *conn, int rc, char *err, size_t errlen);
int db_savepoint(PGconn *conn, const char *name, char *err, size_t errlen);
/* RELEASE SAVEPOINT name: keeps what was done since it. */
int db_release(PGconn *conn, const char *name, char *err, size_t errlen);
/* ROLLBACK TO SAVEPOINT name: undoes what was done since it; the savepoint
 * stays (release it to drop it). */
int db_rollback_to(PGconn *conn, const char *name, char *err, size_t errlen);
/* LISTEN channel on conn. */
int db_listen(PGconn *conn, const char *channel, char *err, size_t errlen);

/* 1 when the last error on conn was a lost connection (retry later), else 0. */
int db_conn_lost(const PGconn *conn);

/* A fixed set of connections shared by threads: get blocks until one is free. */
typedef struct db_pool db_pool_t;
db_pool_t *db_pool_new(const char *url, int size);
PGconn *db_pool_get(db_pool_t *p, char *err, size_t errlen); /* connects lazily */
void db_pool_put(db_pool_t *p, PGconn *conn);
void db_pool_free(db_pool_t *p);

#endif
