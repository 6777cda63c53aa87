/* dbreply: what the handlers that read or write the database share — a
 * pooled connection that answers, the answer to a failed step, and the
 * client id of a path with the answers for a client that is missing or
 * erased. */
#ifndef CRIER_API_DBREPLY_H
#define CRIER_API_DBREPLY_H

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
/* The path's {client_id} in lower case: 0, or -1 with out set to 422
 * naming the field. */
int api_client_id(const http_req_t *rq, char id[37], http_answer_t *out);
/* 404 for STORE_NO_CLIENT, 410 client_erased for STORE_ERASED. */
void api_client_missing(http_answer_t *out, int rc);

#endif
