/* worker.c: a worker's life after fork -- one single-threaded event loop
 * that accepts from the shared socket and drives a libmicrohttpd daemon
 * (the socket design is at the top of server/serve.h), keeping a table of
 * its connections' deadlines beside it (server/conns.h).
 *
 * Signals: SIGTERM retires the worker (HUP, TTOU, recycling: the socket is
 * the next workers' too), SIGINT stops it with the whole server (the
 * master's stop, a terminal's ^C, the master's death through
 * PR_SET_PDEATHSIG): then the worker first takes every connection the
 * socket has queued and shuts the socket, so new connects are refused.
 * Either way it answers every request that reached it (README, "Signals"). */
#include "server/serve.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "handlers/handlers.h"
#include "handlers/stats.h"
#include "heap/heap.h"
#include "server/conns.h"
#include "server/sampler.h"

static void on_quit(int sig)
{
    (void)sig;
    _exit(0); /* immediate: no teardown */
}

/* Handlers of the worker's own; the master's (reload, scaling) are reset.
 * SIGTERM and SIGINT stay blocked and arrive on a signalfd the loop polls
 * beside its sockets, so a stop is seen on the turn it comes, however busy
 * the sockets keep the loop (a signal handler runs only when a wait is
 * interrupted).  Returns the signalfd, or -1. */
static int worker_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
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
    return signalfd(-1, &block, SFD_NONBLOCK | SFD_CLOEXEC);
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

/* After each answered request (h_server.on_request); the request is no
 * longer what the worker serves (conn_begin). */
static void publish_request(void *arg, unsigned status, uint64_t duration_us)
{
    board *b = arg;
    if (!b->e)
        return;
    ms_sb_write_begin(&b->e->seq);
    b->e->serving[0] = '\0';
    b->e->serving_since_ms = 0;
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

/* --- the worker ---------------------------------------------------------- */

typedef struct worker {
    const srv_worker_args *a;
    struct MHD_Daemon *d;
    int epfd;
    int listen_fd;  /* -1 once the worker no longer accepts */
    srv_conns *conns;
    h_server hs;
    board b;
    volatile int phase;
    srv_sampler *sampler;
    uint64_t samples_seen;
    int sigfd;               /* SIGTERM (retire) and SIGINT (stop) arrive here */
    bool retire, stop;       /* asked for */
    uint64_t drain_start_ms; /* 0 while serving */
    uint64_t full_until_ms;  /* at the connection limit: no accepts before this */
} worker;

/* A request begins / ends on a connection: the connection table's state,
 * and what the worker is serving, for the watchdog's log line. */
static void conn_begin(void *arg, struct MHD_Connection *c, const char *method, const char *url)
{
    worker *w = arg;
    srv_conns_begin(w->conns, c);
    if (!w->b.e)
        return;
    ms_sb_write_begin(&w->b.e->seq);
    snprintf(w->b.e->serving, sizeof w->b.e->serving, "%s %s", method, url);
    w->b.e->serving_since_ms = base_now_ms();
    ms_sb_write_end(&w->b.e->seq);
}

/* An answered request was cleared by publish_request's bracket (which
 * comes first); one abandoned without an answer is cleared here. */
static void conn_end(void *arg, struct MHD_Connection *c)
{
    worker *w = arg;
    srv_conns_end(w->conns, c);
    if (!w->b.e || !w->b.e->serving_since_ms)
        return;
    ms_sb_write_begin(&w->b.e->seq);
    w->b.e->serving[0] = '\0';
    w->b.e->serving_since_ms = 0;
    ms_sb_write_end(&w->b.e->seq);
}

/* The daemon, its epoll fd, the connection table and the sampler; exits
 * with SRV_EXIT_FATAL when the daemon cannot start.  libmicrohttpd's own
 * timeout stays as a backstop for a request whose body stalls. */
static void start_daemon(worker *w)
{
    const srv_worker_args *a = w->a;
    w->conns = srv_conns_new(a->cfg->header_timeout_ms, a->cfg->keepalive_timeout_ms, a->max_connections);
    w->hs = (h_server){.cfg = a->cfg,
                       .world = a->world,
                       .worker = a->slot,
                       .pid = (long)getpid(),
                       .phase = &w->phase,
                       .on_request = publish_request,
                       .on_request_arg = &w->b,
                       .on_begin = conn_begin,
                       .on_end = conn_end,
                       .conn_arg = w,
                       .stats_json = w->b.sb ? stats_json : NULL,
                       .metrics_text = w->b.sb ? metrics_text : NULL,
                       .stats_arg = &w->b};
    w->d = w->conns ? MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, h_access, &w->hs,
                                       MHD_OPTION_NOTIFY_COMPLETED, h_completed, &w->hs,
                                       MHD_OPTION_NOTIFY_CONNECTION, srv_conns_notify, w->conns,
                                       MHD_OPTION_URI_LOG_CALLBACK, srv_conns_request_line, w->conns,
                                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                                       MHD_OPTION_CONNECTION_LIMIT, a->max_connections + 16, MHD_OPTION_END)
                    : NULL;
    const union MHD_DaemonInfo *info = w->d ? MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        fprintf(stderr, "cowdag: worker %d: cannot start the HTTP daemon\n", a->slot);
        _exit(SRV_EXIT_FATAL);
    }
    w->epfd = info->epoll_fd;
    w->sampler = srv_sampler_start(a->cfg->stats_interval_ms, w->b.e);
}

/* Ready, unless told to stop already: the master marks a worker it stops
 * draining, which this must not undo (the signal is pending: SIGTERM and
 * SIGINT stay blocked until the loop reads them). */
static void report_ready(worker *w)
{
    ms_sb_set_conns(w->b.sb, w->a->slot, 0);
    sigset_t pending;
    sigpending(&pending);
    if (!sigismember(&pending, SIGTERM) && !sigismember(&pending, SIGINT))
        publish_status(&w->b, MS_READY);
    if (w->a->ready_fd >= 0) {
        (void)!write(w->a->ready_fd, "r", 1);
        close(w->a->ready_fd);
    }
}

/* The last connections the socket has queued are this worker's to answer
 * (accepted whatever the limit); then the socket is shut, for every
 * process that holds it, and connects are refused from here on. */
static void take_the_queue_and_shut(worker *w)
{
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int c = accept4(w->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* EAGAIN: none left; EINVAL: another worker shut it first */
        }
        MHD_add_connection(w->d, c, (struct sockaddr *)&addr, len);
    }
    shutdown(w->listen_fd, SHUT_RD);
}

/* Stops taking connections: retiring, the worker only lets go of its copy
 * of the socket; stopping (`whole`), it shuts the socket for everyone. */
static void begin_drain(worker *w, bool whole)
{
    w->drain_start_ms = base_now_ms();
    w->phase = H_DRAINING; /* every response from here on closes its connection */
    publish_status(&w->b, MS_DRAINING);
    ms_sb_set_conns(w->b.sb, w->a->slot, MS_SLOT_UNAVAILABLE); /* nobody waits on us */
    if (whole)
        take_the_queue_and_shut(w);
    close(w->listen_fd);
    w->listen_fd = -1;
}

/* A draining worker is done once its last connection is closed, or when
 * graceful_timeout_ms has passed: then what arrives is told 503, and
 * what is left is closed. */
static bool drained(worker *w)
{
    if (srv_conns_open(w->conns) == 0)
        return true;
    if (base_now_ms() - w->drain_start_ms < (uint64_t)w->a->cfg->graceful_timeout_ms)
        return false;
    fprintf(stderr, "cowdag[%d]: worker %d: graceful_timeout_ms passed with %llu requests in flight\n", (int)getpid(),
            w->a->slot, (unsigned long long)w->hs.inflight);
    w->phase = H_REFUSING;
    MHD_run(w->d);
    return true;
}

/* Whether to accept this turn: not while draining; not while another
 * worker holds fewer connections (a burst of connects would otherwise all
 * go to whichever worker woke first); not at the connection limit.  *ms
 * shrinks to 2 when the worker defers, so it looks again soon. */
static bool accepting(worker *w, long *ms)
{
    if (w->listen_fd < 0)
        return false;
    uint64_t now = base_now_ms();
    if (now < w->full_until_ms) {
        *ms = (long)(w->full_until_ms - now);
        return false;
    }
    uint32_t mine = (uint32_t)srv_conns_open(w->conns);
    if (w->b.sb) {
        ms_sb_set_conns(w->b.sb, w->a->slot, mine);
        int nslots = __atomic_load_n(&w->b.sb->master.workers, __ATOMIC_RELAXED);
        if (!ms_sb_should_accept(w->b.sb, w->a->slot, nslots, mine)) {
            *ms = 2;
            return false;
        }
    }
    return true;
}

/* One connection a turn: a busy worker comes back to accept later.  Near
 * its limit the worker first closes its longest-idle connection; at the
 * limit, with none idle, it leaves the connection queued for another
 * worker and looks again FULL_WAIT_MS later (the socket stays readable:
 * polling it meanwhile would spin). */
enum { FULL_WAIT_MS = 10 };

static void accept_one(worker *w)
{
    if (!srv_conns_room(w->conns)) {
        w->full_until_ms = base_now_ms() + FULL_WAIT_MS;
        return;
    }
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int c = accept4(w->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0)
        MHD_add_connection(w->d, c, (struct sockaddr *)&addr, len);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        fprintf(stderr, "cowdag: worker %d: accept: %s\n", w->a->slot, strerror(errno));
}

/* Reads the signals waiting on the signalfd into w->retire / w->stop. */
static void read_signals(worker *w)
{
    struct signalfd_siginfo si;
    while (read(w->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGINT)
            w->stop = true;
        else
            w->retire = true;
    }
}

/* One turn: wait for the daemon's sockets, a signal, the shared socket
 * (when accepting) or the next deadline; then accept, run the daemon, and
 * close what is past its deadline.  False on a poll error. */
static bool turn(worker *w)
{
    if (w->b.e) /* the watchdog's beat: the loop came back */
        __atomic_store_n(&w->b.e->beat_ms, base_now_ms(), __ATOMIC_RELAXED);
    publish_gc(&w->b, w->sampler, &w->samples_seen);
    long ms = 50; /* the loop wakes at least this often to publish samples */
    bool acc = accepting(w, &ms);
    ms = srv_conns_sweep(w->conns, base_now_ms(), w->drain_start_ms, ms);
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    if (MHD_get_timeout(w->d, &mhd_ms) == MHD_YES && mhd_ms < (MHD_UNSIGNED_LONG_LONG)ms)
        ms = (long)mhd_ms;
    struct pollfd fds[3] = {{.fd = w->epfd, .events = POLLIN},
                            {.fd = w->sigfd, .events = POLLIN},
                            {.fd = w->listen_fd, .events = POLLIN}};
    int n = poll(fds, acc ? 3 : 2, (int)ms);
    if (n < 0 && errno != EINTR) {
        fprintf(stderr, "cowdag: worker %d: poll: %s\n", w->a->slot, strerror(errno));
        return false;
    }
    if (n > 0 && (fds[1].revents & POLLIN))
        read_signals(w);
    if (n > 0 && acc && (fds[2].revents & (POLLHUP | POLLERR | POLLNVAL))) {
        close(w->listen_fd); /* another worker shut the socket: the server is stopping */
        w->listen_fd = -1;
        acc = false;
    }
    /* A stop that came with ready descriptors takes no connection, and
     * what the daemon answers next already closes its connection. */
    if (!w->drain_start_ms && (w->retire || w->stop))
        begin_drain(w, w->stop);
    else if (n > 0 && acc && (fds[2].revents & POLLIN))
        accept_one(w);
    MHD_run(w->d);
    return true;
}

_Noreturn void srv_worker_main(const srv_worker_args *a)
{
    heap_after_fork();
    /* An older generation's state, still in the master while its workers
     * finish, is none of this worker's: mapped here, it would stay with the
     * worker once the master frees it (README, "Signals"). */
    uint64_t released = heap_release_sealed_before(a->seal);
    if (released)
        fprintf(stderr, "cowdag[%d]: worker %d: gave up %.1f MiB of older generations' state\n", (int)getpid(),
                a->slot, (double)released / 1048576.0);
    worker w = {.a = a, .listen_fd = a->listen_fd, .phase = H_SERVING, .sigfd = worker_signals()};
    if (w.sigfd < 0) {
        fprintf(stderr, "cowdag: worker %d: signalfd: %s\n", a->slot, strerror(errno));
        _exit(SRV_EXIT_FATAL);
    }
    /* The master's death stops the worker as the master's own stop would;
     * a master that died before this line is seen by the parent check. */
    prctl(PR_SET_PDEATHSIG, SIGINT);
    if (getppid() != a->master_pid)
        w.stop = true;
    /* An absolute nice value, as nginx's worker_priority; lowering it needs
     * privileges, and without them the worker serves at the one it has. */
    if (a->cfg->worker_priority && setpriority(PRIO_PROCESS, 0, a->cfg->worker_priority) != 0)
        fprintf(stderr, "cowdag[%d]: worker %d: worker_priority %d not applied: %s\n", (int)getpid(), a->slot,
                a->cfg->worker_priority, strerror(errno));

    w.b = (board){.sb = a->sb, .e = a->sb && a->sb_index >= 0 ? &a->sb->entries[a->sb_index] : NULL};
    start_daemon(&w);
    report_ready(&w);
    for (;;) {
        if (!w.drain_start_ms && (w.retire || w.stop || (a->max_requests && w.hs.requests >= a->max_requests)))
            begin_drain(&w, w.stop);
        if (w.drain_start_ms && drained(&w))
            break;
        if (!turn(&w))
            break;
    }
    MHD_stop_daemon(w.d); /* closes what is left; the shared socket is not its own */
    srv_conns_closed cc = srv_conns_closed_counts(w.conns);
    fprintf(stderr,
            "cowdag[%d]: worker %d served %llu requests (%llu errors); closed %llu connections at header_timeout_ms, "
            "%llu at keepalive_timeout_ms, %llu to make room\n",
            (int)getpid(), a->slot, (unsigned long long)w.hs.requests, (unsigned long long)w.hs.errors,
            (unsigned long long)cc.header_timeout, (unsigned long long)cc.keepalive_timeout,
            (unsigned long long)cc.to_make_room);
    _exit(0);
}
