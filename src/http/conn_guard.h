/* conn_guard: a deadline on how long a request may take to arrive.
 *
 * libmicrohttpd's connection timeout is an idle timeout: every byte resets
 * it, so a client that drips one byte every few seconds holds a connection
 * for ever. The guard gives each connection a clock that only the server
 * restarts: a request must arrive whole (request line, headers and body)
 * within the limit, or a sweeper thread shuts the socket down and
 * libmicrohttpd closes the connection as it would after a peer's hang-up.
 *
 * The clock starts when the connection opens or its previous answer has
 * been sent, and starts again when a request line arrives, so a client
 * that idles on a keep-alive connection and then sends a request promptly
 * still has the whole limit for it. It stops once the request has been
 * received: the handler's and the intake's time are not the client's.
 *
 * Thread safety: every function may be called from any thread. The server
 * calls cg_open and cg_close from libmicrohttpd's connection
 * notifications, which run before the socket is closed, and the sweeper
 * shuts a socket down only under the same lock: a descriptor it touches is
 * therefore still the connection's own, never a number reused by a newer
 * socket. */
#ifndef CRIER_HTTP_CONN_GUARD_H
#define CRIER_HTTP_CONN_GUARD_H

#include <stddef.h>

/* How often the sweeper looks, and so how late past its deadline a
 * connection may be closed; also the longest cg_free can wait for it
 * (it is woken at once, so in practice it does not wait). */
#define CG_POLL_MS 250

typedef struct cg cg_t;
typedef struct cg_conn cg_conn_t;

/* A guard for up to capacity connections at once, limit_s seconds per
 * request, and its sweeper thread. Returns NULL with a message in err. */
cg_t *cg_new(size_t capacity, int limit_s, char *err, size_t errlen);
/* Stops and joins the sweeper and frees g (NULL is fine). Every connection
 * must have been closed (cg_close) first. */
void cg_free(cg_t *g);

/* A connection on socket fd has opened: its clock starts. Returns its
 * tracker, or NULL when all capacity trackers are taken; then the socket
 * has been shut down already (refused rather than left without a deadline). */
cg_conn_t *cg_open(cg_t *g, int fd);
/* The connection is closing and fd is about to be closed: forget it. */
void cg_close(cg_t *g, cg_conn_t *t);

/* A request line has arrived: the request's clock starts again. */
void cg_request_line(cg_t *g, cg_conn_t *t);
/* The headers have arrived (the access handler's first call). Returns 0, or
 * -1 when the connection has been shut down for being too slow already: the
 * request must not be handled. */
int cg_headers(cg_t *g, cg_conn_t *t);
/* The request has been received whole, or answered before its body was
 * read: the clock stops. Returns 0, or -1 as cg_headers. */
int cg_received(cg_t *g, cg_conn_t *t);
/* The answer has been sent: the clock of the next request on this
 * connection starts. */
void cg_next(cg_t *g, cg_conn_t *t);

#endif
