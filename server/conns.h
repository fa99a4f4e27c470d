/* conns: a worker's open connections and the deadlines it keeps on them
 * (README, "Connections, limits and timeouts").  libmicrohttpd restarts its
 * own connection timeout on every byte and has no notion of "idle between
 * requests", so the worker keeps this table beside its daemon:
 *
 *   waiting for a header  from the connect (or from the moment a request
 *                         line arrives on a kept-alive connection) the whole
 *                         header must be in within header_timeout_ms
 *   busy                  a request is being read, run or answered: no
 *                         deadline here (timeout_ms bounds the run)
 *   idle                  a response went out and the connection is kept
 *                         alive: closed after keepalive_timeout_ms
 *
 * A connection is closed by shutdown() of its socket; the daemon notices on
 * its next turn and reports it closed, which frees the entry.  Near its
 * connection limit the worker closes the longest-idle connections first.
 * A draining worker closes an idle connection once it has been idle for
 * SRV_DRAIN_IDLE_MS (one never used: SRV_DRAIN_FRESH_MS) counted from the
 * later of its last response and the drain's start, and only if no byte of
 * a next request has reached the socket (TCP_INFO's bytes received).
 *
 * Everything runs on the worker's one thread.
 */
#ifndef COWDAG_SERVER_CONNS_H
#define COWDAG_SERVER_CONNS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SRV_DRAIN_IDLE_MS = 250,   /* a draining worker's patience with a kept-alive connection */
    SRV_DRAIN_FRESH_MS = 1000, /* ... and with one accepted that has not sent a byte yet */
};

typedef struct srv_conns srv_conns;

/* A table for connections with these deadlines and at most `limit` open at
 * once; NULL when out of memory. */
srv_conns *srv_conns_new(int header_timeout_ms, int keepalive_timeout_ms, unsigned limit);
void srv_conns_free(srv_conns *t);

/* The daemon's callbacks, with the table as closure: a connection opened
 * or closed (MHD_OPTION_NOTIFY_CONNECTION); a request line arrived
 * (MHD_OPTION_URI_LOG_CALLBACK; returns NULL, the request's state). */
void srv_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
void *srv_conns_request_line(void *cls, const char *uri, struct MHD_Connection *c);

/* A request's header is whole (the access handler's first call) / its
 * answer is done (the completion callback): the connection is busy / idle. */
void srv_conns_begin(void *cls, struct MHD_Connection *c);
void srv_conns_end(void *cls, struct MHD_Connection *c);

/* Closes every connection past its deadline at `now_ms`; a draining table
 * (drain_start_ms > 0) also closes idle connections as described above.
 * Returns the ms until the next deadline (at most `cap`). */
long srv_conns_sweep(srv_conns *t, uint64_t now_ms, uint64_t drain_start_ms, long cap);

/* Whether the worker may accept one more connection now.  At the limit it
 * may not; from nine tenths of it on, the longest-idle connection is closed
 * to make room (true if one was, or if the table is below nine tenths). */
bool srv_conns_room(srv_conns *t);

/* Open connections (those closed by the table count until the daemon has
 * let them go), and of those, the ones with a request under way. */
size_t srv_conns_open(const srv_conns *t);
size_t srv_conns_busy(const srv_conns *t);

/* What the table closed, by reason, since it was made. */
typedef struct srv_conns_closed {
    uint64_t header_timeout, keepalive_timeout, to_make_room, draining;
} srv_conns_closed;
srv_conns_closed srv_conns_closed_counts(const srv_conns *t);

#endif
