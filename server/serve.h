/* serve: the pre-fork server.  The master binds (or inherits) the listen
 * socket, loads the world, settles the collector and forks workers; it then
 * only supervises, from one loop (server/master.c).  Each worker serves
 * HTTP on the shared socket with a single-threaded libmicrohttpd daemon
 * (server/worker.c).  Signals and their meaning are in README.md.
 *
 * The listen socket.  One socket, bound and listening in the master, is
 * inherited by every worker; a worker accepts from it itself (accept4) and
 * hands each connection to its daemon (MHD_add_connection), one accept per
 * turn of its loop.  So:
 *   - libmicrohttpd never owns the shared socket, and stopping a worker's
 *     daemon cannot shut() it down under the other workers;
 *   - a busy worker comes back to accept later than an idle one, which
 *     spreads connections by load, where a shared epoll listener that
 *     accepts until EAGAIN lets one worker take them all;
 *   - a dead worker loses nothing queued: the queue belongs to the socket,
 *     which the master and the other workers keep open.
 * SO_REUSEPORT was the alternative: one queue per worker, spread by a
 * hash of the client's address and port rather than by load, and the
 * connections queued on a worker's socket are reset when it exits.
 */
#ifndef COWDAG_SERVE_H
#define COWDAG_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "load/config.h"
#include "load/world.h"
#include "memstats/scoreboard.h"

/* Exit status of a worker that cannot start (no daemon, say): the master
 * does not respawn it. */
#define SRV_EXIT_FATAL 3

/* The result convention of the server's own functions (srv_http_get). */
#define SRV_OK 0
#define SRV_ERR (-1)

/* The listening socket: one systemd passed (LISTEN_FDS) or the one in
 * $COWDAG_LISTEN_FD, else cfg's address bound here (SO_REUSEADDR, or a
 * unix socket of mode 0660, a stale file replaced), backlog 4096,
 * non-blocking.  Returns the fd, or -1 with err filled. */
int srv_listen(const ld_config *cfg, char *err, size_t errlen);

/* Runs the server with cfg (loaded, flags applied: ld_config_override)
 * until SIGTERM/SIGINT/SIGQUIT; returns the exit status.  Takes cfg: the
 * caller's copy is left empty.  A SIGHUP reloads cfg->path and applies
 * cfg->flags again. */
int srv_serve(ld_config *cfg);

/* --- the worker ---------------------------------------------------------- */

typedef struct srv_worker_args {
    const ld_config *cfg;
    const ld_world *world;
    int listen_fd;
    int slot;
    int generation;
    uint64_t max_requests; /* 0: no limit; jitter already applied */
    int ready_fd;          /* written once the daemon runs, then closed; -1: none */
    pid_t master_pid;      /* the worker stops when its parent is no longer this */
    uint32_t seal;         /* its generation's memory carries seals from this on */
    unsigned max_connections; /* open at once, from the open-files limit */
    ms_scoreboard *sb;     /* shared figures; NULL: none */
    int sb_index;          /* this worker's entry */
} srv_worker_args;

/* The worker's whole life, after fork: never returns.  Leaves with _exit:
 * 0 after a graceful stop or max_requests, SRV_EXIT_FATAL if it cannot
 * start. */
_Noreturn void srv_worker_main(const srv_worker_args *a);

#endif
