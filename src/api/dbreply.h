/* dbreply: what the handlers that read or write the database share — a
 * pooled connection that answers, the answer to a failed step, and the
 * client id of a path with the answers for a client that is missing or
 * erased. */
#ifndef CRIER_API_DBREPLY_H
#define CRIER_API_DBREPLY_H

#include "api/api.h"
#include "http/answer.h"
#include "http/server.h"

#include <libpq-fe.h>

/* A database step failed: 503 when the database went away (retry later:
 * nothing was done), 500 when a statement failed (logged as what; err
 * never holds a client's data, the store sees to that). */
void api_db_failed(http_answer_t *out, int lost, const char *what, const char *err);
/* A pooled connection that answers (give it back with db_pool_put on the
 * app's pool), or NULL with out set to 503. */
PGconn *api_db_conn(const http_req_t *rq, http_answer_t *out, const char *what);
/* A pooled connection that answered, for a handler that answers in its
 * own way (a page); NULL with err when PostgreSQL cannot be reached. Give
 * it back with db_pool_put. */
PGconn *api_db_take(const api_t *api, char *err, size_t errlen);
/* The path's {client_id} in lower case: 0, or -1 with out set to 422
 * naming the field. */
int api_client_id(const http_req_t *rq, char id[37], http_answer_t *out);
/* The path's {id} (a communication) in lower case: 0, or -1 with out set
 * to 422 naming the field. */
int api_comm_id(const http_req_t *rq, char id[37], http_answer_t *out);
/* The optional query argument name, a UUID, in lower case into buf: *id is
 * buf, or NULL when the argument is absent. 0, or -1 with out set to 422
 * naming it. */
int api_query_uuid(const http_req_t *rq, const char *name, char buf[37], const char **id,
                   http_answer_t *out);
/* 404 for STORE_NO_CLIENT, 410 client_erased for STORE_ERASED. */
void api_client_missing(http_answer_t *out, int rc);
/* Ends conn's open transaction, committing when rc is 0. Returns 0 when it
 * committed; otherwise out is the answer (api_client_missing for rc > 0,
 * api_db_failed, logged as what, for a failure) and -1. conn stays the
 * caller's. */
int api_db_end(PGconn *conn, int rc, http_answer_t *out, const char *what, char *err,
               size_t errlen);
/* Writes the audit entry of action on client id, by rq's token from rq's
 * address, in conn's open transaction (detail_json: counts or field names,
 * never a value; may be NULL). 0, or -1 with err. */
int api_audit(const http_req_t *rq, PGconn *conn, const char *action, const char *id,
              const char *detail_json, char *err, size_t errlen);
/* A listing's ?limit=: absent gives def; else strict decimal in [1, max]
 * ("10abc", "+5", "" refused rather than read as something else). 0, or
 * -1 when refused. */
int api_parse_limit(const char *s, int def, int max, int *out);

#endif
