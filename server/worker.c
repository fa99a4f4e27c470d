/* worker.c: a worker's life after fork -- one single-threaded event loop
 * that accepts from the shared socket and drives a libmicrohttpd daemon
 * (the socket design is at the top of server/serve.h). */
#include "server/serve.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "handlers/handlers.h"
#include "handlers/stats.h"
#include "heap/heap.h"
#include "server/sampler.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_quit(int sig)
{
    (void)sig;
    _exit(0); /* immediate: no teardown */
}

/* Handlers of the worker's own; the master's (reload, scaling) are reset.
 * SIGTERM and SIGINT stay blocked except while the loop waits, so a stop
 * request is never lost between checking the flag and sleeping. */
static void worker_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_quit;
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTTIN, &sa, NULL);
    sigaction(SIGTTOU, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_SETMASK, &block, NULL);
    sigemptyset(wait_mask);
}

/* --- the worker's entry in the scoreboard ------------------------------ */

typedef struct board {
    ms_scoreboard *sb;
    ms_entry *e; /* ours; NULL: no scoreboard */
} board;

static void publish_status(board *b, ms_status st)
{
    if (!b->e)
        return;
    ms_sb_write_begin(&b->e->seq);
    b->e->status = st;
    ms_sb_write_end(&b->e->seq);
}

/* After each answered request (h_server.on_request). */
static void publish_request(void *arg, unsigned status, uint64_t duration_us)
{
    board *b = arg;
    if (!b->e)
        return;
    ms_sb_write_begin(&b->e->seq);
    b->e->requests++;
    if (status >= 400)
        b->e->errors++;
    if (status / 100 < 6)
        b->e->by_class[status / 100]++;
    b->e->duration[ms_hist_bucket((double)duration_us / 1e6)]++;
    b->e->duration_sum_us += duration_us;
    ms_sb_write_end(&b->e->seq);
}

/* Every turn of the loop: once the sampling thread has written a new
 * memory sample, the collector's figures of the moment beside it. */
static void publish_gc(board *b, const srv_sampler *sampler, uint64_t *seen)
{
    uint64_t n = srv_sampler_count(sampler);
    if (!b->e || n == *seen)
        return;
    *seen = n;
    ms_gc_figures gc;
    srv_gc_figures(&gc);
    ms_sb_write_begin(&b->e->seq);
    b->e->gc = gc;
    ms_sb_write_end(&b->e->seq);
}

static char *render(const board *b, char *(*fn)(const h_snapshot *))
{
    if (!b->sb)
        return NULL;
    h_snapshot *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    h_snapshot_take(b->sb, s);
    char *text = fn(s);
    free(s);
    return text;
}

static char *stats_json(void *arg) { return render(arg, h_stats_json); }
static char *metrics_text(void *arg) { return render(arg, h_metrics_text); }

/* --- the loop ---------------------------------------------------------- */

/* A worker's whole state, on the stack of srv_worker_main (which never
 * returns, so the pointers the daemon's closure holds stay valid). */
typedef struct worker {
    const srv_worker_args *a;
    sigset_t wait_mask;     /* the mask ppoll waits with: stop signals let in */
    volatile int phase;     /* H_SERVING, H_DRAINING, H_REFUSING (h_server.phase) */
    bool draining;
    uint64_t drain_start_ms;
    board b;
    h_server hs;
    struct MHD_Daemon *d;
    int epfd;               /* the daemon's epoll fd */
    srv_sampler *sampler;
    uint64_t samples_seen;
} worker;

/* What follows the fork: the heap's new epoch, the nice value, signals,
 * the scoreboard entry and the routes' view of this worker. */
static void worker_init(worker *w, const srv_worker_args *a)
{
    heap_after_fork();
    /* An absolute nice value, as nginx's worker_priority; lowering it needs
     * privileges, and without them the worker serves at the one it has. */
    if (a->cfg->worker_priority && setpriority(PRIO_PROCESS, 0, a->cfg->worker_priority) != 0)
        fprintf(stderr, "cowdag[%d]: worker %d: worker_priority %d not applied: %s\n", (int)getpid(), a->slot,
                a->cfg->worker_priority, strerror(errno));
    w->a = a;
    worker_signals(&w->wait_mask);
    w->phase = H_SERVING;
    w->b = (board){.sb = a->sb, .e = a->sb && a->sb_index >= 0 ? &a->sb->entries[a->sb_index] : NULL};
    w->hs = (h_server){.cfg = a->cfg,
                       .world = a->world,
                       .worker = a->slot,
                       .pid = (long)getpid(),
                       .phase = &w->phase,
                       .on_request = publish_request,
                       .on_request_arg = &w->b,
                       .stats_json = w->b.sb ? stats_json : NULL,
                       .metrics_text = w->b.sb ? metrics_text : NULL,
                       .stats_arg = &w->b};
}

/* The daemon and the sampling thread; then the worker says it is ready
 * (scoreboard, and the master's pipe).  Leaves with SRV_EXIT_FATAL if the
 * daemon cannot start. */
static void start_serving(worker *w)
{
    const srv_worker_args *a = w->a;
    w->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, h_access, &w->hs,
                            MHD_OPTION_NOTIFY_COMPLETED, h_completed, &w->hs, MHD_OPTION_NOTIFY_CONNECTION,
                            h_connection, &w->hs, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)1000, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = w->d ? MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        fprintf(stderr, "cowdag: worker %d: cannot start the HTTP daemon\n", a->slot);
        _exit(SRV_EXIT_FATAL);
    }
    w->epfd = info->epoll_fd;
    w->sampler = srv_sampler_start(a->cfg->stats_interval_ms, w->b.e);
    ms_sb_set_conns(w->b.sb, a->slot, 0);
    /* Ready, unless told to stop already: the master marks a worker it
     * stops draining, which this must not undo (the signal is pending:
     * SIGTERM and SIGINT are blocked until the loop waits). */
    sigset_t pending;
    sigpending(&pending);
    if (!sigismember(&pending, SIGTERM) && !sigismember(&pending, SIGINT))
        publish_status(&w->b, MS_READY);
    if (a->ready_fd >= 0) {
        (void)!write(a->ready_fd, "r", 1);
        close(a->ready_fd);
    }
}

/* Draining: no more accepts; every request in flight is answered, and so
 * is every connection already accepted whose request has not arrived yet
 * (for up to FRESH_GRACE_MS: its client has connected and is sending).
 * Connections idle between keep-alive requests are closed at the end. */
enum { FRESH_GRACE_MS = 1000 };

/* A stop request, or max_requests reached, turns the worker to draining. */
static void drain_if_asked(worker *w)
{
    if (w->draining || !(stop_requested || (w->a->max_requests && w->hs.requests >= w->a->max_requests)))
        return;
    w->draining = true;
    w->phase = H_DRAINING;
    publish_status(&w->b, MS_DRAINING);
    ms_sb_set_conns(w->b.sb, w->a->slot, MS_SLOT_UNAVAILABLE); /* nobody waits on us */
    w->drain_start_ms = base_now_ms();
}

/* Whether a draining worker is done: nothing left to answer, the grace
 * for fresh connections over, or graceful_timeout_ms passed. */
static bool drained(worker *w)
{
    long waited = (long)(base_now_ms() - w->drain_start_ms);
    if (waited >= w->a->cfg->graceful_timeout_ms) { /* a client that never finishes does not hold us */
        fprintf(stderr, "cowdag[%d]: worker %d: graceful_timeout_ms passed with %llu requests in flight\n",
                (int)getpid(), w->a->slot, (unsigned long long)w->hs.inflight);
        return true;
    }
    if (w->hs.inflight == 0 && w->hs.fresh == 0)
        return true;
    if (w->hs.inflight == 0 && waited >= FRESH_GRACE_MS) { /* last call: what arrives now gets 503 */
        w->phase = H_REFUSING;
        MHD_run(w->d);
        return true;
    }
    return false;
}

/* Whether to accept this turn.  Spread connections: accept only while no
 * other worker holds fewer (a burst of connects would otherwise all go to
 * whichever worker woke first); one that defers looks again in 2 ms
 * (*wait_ms). */
static bool may_accept(worker *w, long *wait_ms)
{
    if (w->draining)
        return false;
    if (!w->b.sb)
        return true;
    const union MHD_DaemonInfo *ci = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    uint32_t mine = ci ? ci->num_connections : 0;
    ms_sb_set_conns(w->b.sb, w->a->slot, mine);
    int nslots = __atomic_load_n(&w->b.sb->master.workers, __ATOMIC_RELAXED);
    if (!ms_sb_should_accept(w->b.sb, w->a->slot, nslots, mine)) {
        *wait_ms = 2;
        return false;
    }
    return true;
}

/* Waits up to wait_ms (less if the daemon wants to run sooner) for the
 * daemon's connections, the listen socket when accepting, or a stop
 * signal.  *listen_ready: a connection waits to be accepted.  False on a
 * poll error (logged): the worker leaves. */
static bool wait_turn(worker *w, bool accepting, long wait_ms, bool *listen_ready)
{
    struct pollfd fds[2] = {{.fd = w->epfd, .events = POLLIN}, {.fd = w->a->listen_fd, .events = POLLIN}};
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    if (MHD_get_timeout(w->d, &mhd_ms) == MHD_YES && mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait_ms)
        wait_ms = (long)mhd_ms;
    struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
    int n = ppoll(fds, accepting ? 2 : 1, &ts, &w->wait_mask);
    if (n < 0 && errno != EINTR) {
        fprintf(stderr, "cowdag: worker %d: poll: %s\n", w->a->slot, strerror(errno));
        return false;
    }
    *listen_ready = n > 0 && accepting && (fds[1].revents & POLLIN);
    return true;
}

/* One connection per turn: a busy worker comes back later. */
static void accept_one(worker *w)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int c = accept4(w->a->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0)
        MHD_add_connection(w->d, c, (struct sockaddr *)&addr, len);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        fprintf(stderr, "cowdag: worker %d: accept: %s\n", w->a->slot, strerror(errno));
}

_Noreturn void srv_worker_main(const srv_worker_args *a)
{
    worker w = {0};
    worker_init(&w, a);
    start_serving(&w);
    for (;;) {
        drain_if_asked(&w);
        if (w.draining && drained(&w))
            break;
        publish_gc(&w.b, w.sampler, &w.samples_seen);
        long wait_ms = 50; /* the loop wakes at least this often to publish samples */
        bool accepting = may_accept(&w, &wait_ms), listen_ready;
        if (!wait_turn(&w, accepting, wait_ms, &listen_ready))
            break;
        /* ppoll can return ready descriptors and run the stop handler in
         * the same call: a stop that arrived during it takes no connection. */
        if (listen_ready && !stop_requested)
            accept_one(&w);
        MHD_run(w.d);
    }
    MHD_stop_daemon(w.d); /* closes idle keep-alive connections; the shared socket is not its own */
    fprintf(stderr, "cowdag[%d]: worker %d served %llu requests (%llu errors)\n", (int)getpid(), a->slot,
            (unsigned long long)w.hs.requests, (unsigned long long)w.hs.errors);
    _exit(0);
}
