/* master.c: the master process -- listen socket, loading, settling, forking,
 * and supervision from one loop (server/serve.h).
 *
 * Signals only set flags; the master keeps them blocked and waits for them
 * in one place, ppoll() with the signals unblocked (sigsuspend with a
 * timeout), then acts on every flag raised:
 *   SIGCHLD          reap every exited worker; respawn it, at once after a
 *                    normal exit (max_requests), with back-off after quick
 *                    deaths, never after a start-up failure (SRV_EXIT_FATAL)
 *   SIGTERM, SIGINT  graceful stop: SIGINT the workers, which take what the
 *                    socket has queued and shut it, answer what reached
 *                    them and leave by themselves at graceful_timeout_ms;
 *                    SIGKILL what is left a second later, exit 0
 *   SIGQUIT          immediate stop: SIGQUIT the workers, exit
 *   SIGHUP           reload: config, state and DAGs into a new generation,
 *                    which starts (and says it is ready) before the old one
 *                    is retired; a new config that fails leaves the old
 *                    generation serving, and the reason in the log
 *   SIGTTIN/SIGTTOU  one worker more / fewer
 */
#include "server/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "heap/gc.h"
#include "memstats/memstats.h"
#include "memstats/scoreboard.h"
#include "server/sampler.h"

#define MAX_WORKERS LD_MAX_WORKERS
#define MAX_RETIRING (MAX_WORKERS * 8)
#define MAX_GENERATIONS 8

/* ====================================================================== */
/* {  Flags and time                                                       */
/* ====================================================================== */

static volatile sig_atomic_t sig_chld, sig_term, sig_quit, sig_hup, sig_ttin, sig_ttou;

static void on_signal(int sig)
{
    int saved = errno;
    switch (sig) {
    case SIGCHLD:
        sig_chld = 1;
        break;
    case SIGTERM:
    case SIGINT:
        sig_term = 1;
        break;
    case SIGQUIT:
        sig_quit = 1;
        break;
    case SIGHUP:
        sig_hup = 1;
        break;
    case SIGTTIN:
        sig_ttin++;
        break;
    case SIGTTOU:
        sig_ttou++;
        break;
    }
    errno = saved;
}

static const int master_signals[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU};

static void mlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One write per line, so workers' lines never land inside it. */
static void mlog(const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "cowdag[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The listen socket                                                    */
/* ====================================================================== */

/* The kernel caps the queue at net.core.somaxconn (4096 by default). */
enum { LISTEN_BACKLOG = 4096 };

/* A unix socket at cfg->listen_unix, mode 0660 (the owner and its group,
 * a proxy's user among them).  A socket file nobody listens on any more
 * (a server that was killed) is removed first; one in use is an error. */
static int listen_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "listen unix:%s: the path is longer than %zu bytes", path, sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen unix:%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(err, errlen, "listen unix:%s: Address already in use", path);
            close(fd);
            return -1;
        }
        unlink(path); /* stale */
    }
    mode_t old = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "listen unix:%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The socket was handed down (systemd, $COWDAG_LISTEN_FD): its file, if it
 * is a unix socket, is the giver's to remove. */
static bool socket_handed_down;

/* A listening socket handed down by systemd (LISTEN_FDS, LISTEN_PID) or
 * in $COWDAG_LISTEN_FD; -2 when there is none, -1 (err filled) when the
 * one handed down is not a listening stream socket. */
static int inherited_socket(char *err, size_t errlen)
{
    int fd = -2;
    int n = sd_listen_fds(1);
    const char *inherited = getenv("COWDAG_LISTEN_FD");
    if (n > 0) {
        fd = SD_LISTEN_FDS_START;
        if (n > 1)
            mlog("systemd passed %d sockets; serving on the first", n);
    } else if (inherited) {
        char *end;
        long v = strtol(inherited, &end, 10);
        fd = *end || v < 0 || v > INT_MAX ? -1 : (int)v;
    } else {
        return -2;
    }
    if (fd < 0 || sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
        if (n > 0)
            snprintf(err, errlen, "the socket systemd passed (fd %d) is not a listening stream socket", fd);
        else
            snprintf(err, errlen, "COWDAG_LISTEN_FD=%s is not a listening socket", inherited);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    socket_handed_down = true;
    return fd;
}

int srv_listen(const ld_config *cfg, char *err, size_t errlen)
{
    int inherited = inherited_socket(err, errlen);
    if (inherited != -2)
        return inherited;
    if (cfg->listen_unix)
        return listen_unix(cfg->listen_unix, err, errlen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s:%d: %s", cfg->listen_host, cfg->listen_port, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
            break;
        snprintf(err, errlen, "listen %s:%d: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void describe_socket(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_UNIX) {
            snprintf(out, cap, "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
            return;
        }
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            snprintf(out, cap, "[%s]:%d", host, port);
            return;
        }
    }
    snprintf(out, cap, "%s:%d", host, port);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The process table                                                    */
/* ====================================================================== */

typedef struct slot {
    pid_t pid;          /* 0: not running */
    int sb_index;       /* its scoreboard entry, -1: none */
    bool spawned;       /* has run before (a new start is a restart) */
    int generation;
    uint64_t started_ms;
    unsigned quick_deaths; /* in a row, each within 1 s of its start */
    uint64_t respawn_at;   /* when it may start again */
    bool disabled;         /* failed at start-up: not respawned */
    bool timed_out;        /* the watchdog killed it */
} slot;

typedef struct retiring {
    pid_t pid;
    int sb_index;
    int generation;
    uint64_t kill_at; /* SIGKILL if still there */
} retiring;

/* A loaded generation: the world its workers inherited, kept in the
 * master until the last of them has gone. */
typedef struct generation {
    int id;
    uint32_t seal; /* heap_seal() number its memory carries */
    ld_config cfg;
    ld_world world;
    bool live;
} generation;

typedef struct master {
    int listen_fd;
    unsigned max_connections; /* a worker's, from the open-files limit */
    generation gens[MAX_GENERATIONS];
    int current; /* index into gens */
    int next_id;
    slot slots[MAX_WORKERS];
    int nslots; /* wanted workers */
    retiring retiring[MAX_RETIRING];
    int nretiring;
    bool stopping;
    uint64_t stop_deadline;
    ms_scoreboard *sb;
    uint64_t next_sample;
    int pending[MAX_WORKERS]; /* ready pipes not yet read: children close them */
    int npending;
    char *socket_file;                /* a unix socket's path to remove at the stop; NULL: none */
    bool notified_ready;              /* systemd was told READY=1 */
    char last_status[128];            /* the last STATUS= line sent */
    uint64_t watchdog_ms, next_watchdog; /* WATCHDOG=1 this often (0: not asked) */
    pid_t mem_recycling;              /* the worker last retired for its memory, while it drains */
    uint64_t mem_recycle_not_before; /* the next may retire from then on */
} master;

static generation *cur(master *m) { return &m->gens[m->current]; }

static uint64_t jittered(uint64_t max_requests)
{
    if (!max_requests)
        return 0;
    return max_requests + (uint64_t)random() % (max_requests / 10 + 1);
}

/* Forks a worker of generation g for slot i; *sb_out gets its scoreboard
 * entry.  With ready_fd_out, hands back the read end of the pipe the worker
 * writes once it is serving (kept in m->pending until wait_ready, so that
 * workers forked meanwhile close it).  The slot table is the caller's. */
static pid_t fork_worker(master *m, generation *g, int i, int *ready_fd_out, int *sb_out)
{
    int pfd[2] = {-1, -1};
    if (ready_fd_out && pipe2(pfd, O_CLOEXEC) != 0)
        pfd[0] = pfd[1] = -1;
    int sbi = m->sb ? ms_sb_claim(m->sb, i, g->id) : -1;
    if (m->sb && sbi < 0)
        mlog("worker %d: the scoreboard is full; it will not be reported", i);
    srv_worker_args a = {.cfg = &g->cfg,
                         .sb = m->sb,
                         .sb_index = sbi,
                         .world = &g->world,
                         .listen_fd = m->listen_fd,
                         .slot = i,
                         .generation = g->id,
                         .max_requests = jittered(g->cfg.max_requests),
                         .ready_fd = pfd[1],
                         .master_pid = getpid(),
                         .seal = g->seal,
                         .max_connections = m->max_connections};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (pfd[0] >= 0)
            close(pfd[0]);
        for (int k = 0; k < m->npending; k++) /* other workers' pipes */
            close(m->pending[k]);
        srv_worker_main(&a);
    }
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pid < 0) {
        if (sbi >= 0)
            ms_sb_release(m->sb, sbi);
        mlog("worker %d: fork: %s", i, strerror(errno));
        if (pfd[0] >= 0)
            close(pfd[0]);
        return -1;
    }
    if (sbi >= 0)
        ms_sb_set_pid(m->sb, sbi, (int)pid);
    if (ready_fd_out) {
        *ready_fd_out = pfd[0];
        if (pfd[0] >= 0 && m->npending < MAX_WORKERS)
            m->pending[m->npending++] = pfd[0];
    }
    *sb_out = sbi;
    mlog("worker %d started, pid %d, generation %d", i, (int)pid, g->id);
    return pid;
}

/* (Re)starts slot i of the current generation. */
static void spawn(master *m, int i)
{
    slot *s = &m->slots[i];
    int sbi = -1;
    pid_t pid = fork_worker(m, cur(m), i, NULL, &sbi);
    if (pid < 0) {
        s->respawn_at = base_now_ms() + 1000;
        return;
    }
    *s = (slot){.pid = pid, .sb_index = sbi, .spawned = true, .generation = cur(m)->id, .started_ms = base_now_ms()};
}

/* A worker gives up on its own after graceful_timeout_ms (closing what is
 * left, logging it, exiting 0); the master's SIGKILL is the backstop for
 * one that cannot, this much later, so it does not cut that exit short. */
enum { KILL_MARGIN_MS = 1000 };

/* Counts a replacement of slot i's worker, by reason (/stats, /metrics). */
static void count_restart(master *m, int i, ms_restart_reason why)
{
    if (!m->sb || i < 0 || i >= MS_SB_SLOTS)
        return;
    ms_sb_write_begin(&m->sb->master.seq);
    m->sb->master.restarts[i][why]++;
    ms_sb_write_end(&m->sb->master.seq);
}

static void retire(master *m, pid_t pid, int sb_index, int generation, int sig)
{
    if (m->nretiring == MAX_RETIRING) { /* nothing could track it: no grace */
        mlog("too many workers retiring; worker %d is killed at once", (int)pid);
        sig = SIGKILL;
    } else {
        m->retiring[m->nretiring++] =
            (retiring){pid, sb_index, generation, base_now_ms() + (uint64_t)cur(m)->cfg.graceful_timeout_ms + KILL_MARGIN_MS};
    }
    if (sig == SIGTERM) /* reported at once, even if the worker is busy with a long run */
        ms_sb_set_status(m->sb, sb_index, MS_DRAINING);
    kill(pid, sig);
}

static const char *how(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "stopped (status %d)", status);
    return buf;
}

/* Reaps every exited child and decides what follows for its slot. */
static void reap(master *m)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0 || (pid < 0 && errno == ECHILD))
            return;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            mlog("waitpid: %s", strerror(errno));
            return;
        }
        char why[96];
        bool found = false;
        for (int k = 0; k < m->nretiring; k++) {
            if (m->retiring[k].pid == pid) {
                mlog("retired worker (pid %d, generation %d) %s", (int)pid, m->retiring[k].generation,
                     how(status, why, sizeof why));
                if (m->retiring[k].sb_index >= 0)
                    ms_sb_release(m->sb, m->retiring[k].sb_index);
                m->retiring[k] = m->retiring[--m->nretiring];
                found = true;
                break;
            }
        }
        for (int i = 0; i < MAX_WORKERS && !found; i++) {
            slot *s = &m->slots[i];
            if (s->pid != pid)
                continue;
            found = true;
            s->pid = 0;
            ms_sb_set_conns(m->sb, i, MS_SLOT_UNAVAILABLE); /* until it is back */
            if (s->sb_index >= 0)
                ms_sb_release(m->sb, s->sb_index);
            s->sb_index = -1;
            uint64_t now = base_now_ms();
            if (WIFEXITED(status) && WEXITSTATUS(status) == SRV_EXIT_FATAL) {
                s->disabled = true;
                mlog("worker %d (pid %d) failed at start-up; not respawning it", i, (int)pid);
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                s->quick_deaths = 0;
                s->respawn_at = now;
                if (m->stopping)
                    mlog("worker %d (pid %d) stopped", i, (int)pid);
                else
                    mlog("worker %d (pid %d) exited normally (recycled); respawning", i, (int)pid);
            } else {
                if (!s->timed_out) /* counted when the watchdog struck */
                    count_restart(m, i, MS_RESTART_CRASH);
                s->timed_out = false;
                s->quick_deaths = now - s->started_ms < 1000 ? s->quick_deaths + 1 : 0;
                uint64_t delay = s->quick_deaths ? 100u << (s->quick_deaths < 7 ? s->quick_deaths - 1 : 6) : 0;
                s->respawn_at = now + delay;
                mlog("worker %d (pid %d) %s; respawning in %llu ms", i, (int)pid, how(status, why, sizeof why),
                     (unsigned long long)delay);
            }
        }
        if (!found) { /* a worker killed untracked (too many retiring at once): free its entry */
            int e = ms_sb_find_pid(m->sb, (int)pid);
            if (e >= 0)
                ms_sb_release(m->sb, e);
            mlog("%s child %d %s", e >= 0 ? "untracked" : "unknown", (int)pid, how(status, why, sizeof why));
        }
    }
}

static bool generation_has_workers(const master *m, int id)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (m->slots[i].pid && m->slots[i].generation == id)
            return true;
    for (int k = 0; k < m->nretiring; k++)
        if (m->retiring[k].generation == id)
            return true;
    return false;
}

static void drop_generation(generation *g, uint32_t from, uint32_t before);

/* Once every older generation's last worker has gone, frees their worlds:
 * their memory was sealed before the current generation loaded, so it can
 * be made mortal again (immortal state is otherwise never freed) without
 * touching the current state, which the workers share. */
static void drop_old_generations(master *m)
{
    bool any = false;
    for (int k = 0; k < MAX_GENERATIONS; k++) {
        generation *g = &m->gens[k];
        if (g->live && k != m->current) {
            if (generation_has_workers(m, g->id))
                return;
            any = true;
        }
    }
    if (!any)
        return;
    heap_stats before, after;
    heap_get_stats(&before);
    for (int k = 0; k < MAX_GENERATIONS; k++) {
        generation *g = &m->gens[k];
        if (!g->live || k == m->current)
            continue;
        /* Its modules close here, with its world, and not before: until
         * its last worker has gone, one of them may be running their code. */
        size_t nmodules = g->world.modules.n;
        drop_generation(g, 0, cur(m)->seal);
        if (nmodules)
            mlog("generation %d released, its %zu module%s closed", g->id, nmodules, nmodules == 1 ? "" : "s");
        else
            mlog("generation %d released", g->id);
    }
    /* The old state's large mappings, cached for reuse, and what loading
     * took from malloc (parse trees, CSV text) go back to the system: kept,
     * they would be resident in the master alone once the old workers are
     * gone. */
    heap_trim();
    malloc_trim(0);
    heap_get_stats(&after);
    mlog("heap: %.1f MiB -> %.1f MiB mapped", (double)before.mapped_bytes / 1048576.0,
         (double)after.mapped_bytes / 1048576.0);
}

/* The master's part of the scoreboard: who it is and its config. */
static void publish_master(master *m)
{
    if (!m->sb)
        return;
    const ld_config *c = &cur(m)->cfg;
    ms_master *x = &m->sb->master;
    ms_sb_write_begin(&x->seq);
    x->pid = (int32_t)getpid();
    x->workers = m->nslots;
    snprintf(x->gc_mode, sizeof x->gc_mode, "%s", gc_mode_name(c->gc.mode));
    for (int g = 0; g < MS_GC_GENS; g++)
        x->thresholds[g] = c->gc.thresholds[g];
    x->immortal = c->gc.immortal;
    ms_sb_write_end(&x->seq);
}

static void sample_master(master *m)
{
    if (!m->sb)
        return;
    ms_sample mem;
    uint64_t bytes, pages;
    srv_sample_master(&mem, &bytes, &pages);
    ms_sb_write_begin(&m->sb->master.seq);
    m->sb->master.mem = mem;
    m->sb->master.state_bytes = bytes;
    m->sb->master.state_pages = pages;
    ms_sb_write_end(&m->sb->master.seq);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Loading and reloading                                                */
/* ====================================================================== */

/* Loads state and DAGs into a free generation slot, with the config given
 * (taken), or else the current one's file and flags read again; -1 on error
 * (logged).  The first generation loads into
 * the heap as it is; a reload seals what is there first, so the new state
 * gets fresh memory. */
static int load_generation(master *m, bool reload, ld_config *given)
{
    int k = 0;
    while (k < MAX_GENERATIONS && m->gens[k].live)
        k++;
    if (k == MAX_GENERATIONS) {
        mlog("too many generations still retiring; try again later");
        if (given)
            ld_config_free(given);
        return -1;
    }
    generation *g = &m->gens[k];
    g->seal = reload ? heap_seal() : 0;
    char err[1024];
    if (given) {
        g->cfg = *given;
        *given = (ld_config){0};
    } else if (ld_config_reload(&cur(m)->cfg, &g->cfg, err, sizeof err) != LD_OK) {
        mlog("%s", err);
        ld_config_free(&g->cfg);
        return -1;
    }
    gc_configure(&g->cfg.gc);
    if (ld_world_load(&g->cfg, NULL, LD_STATE_ALL, &g->world, stderr) != LD_OK) {
        ld_config_free(&g->cfg);
        if (reload) /* the running generation's collector settings again */
            gc_configure(&cur(m)->cfg.gc);
        return -1;
    }
    gc_settle();
    g->id = m->next_id++;
    g->live = true;
    heap_stats hs;
    heap_get_stats(&hs);
    for (size_t i = 0; i < g->world.modules.n; i++)
        mlog("generation %d: module %s loaded", g->id, g->world.modules.v[i].file);
    mlog("generation %d loaded: %zu DAGs, %zu state entries, %.1f MiB in the heap, gc %s%s", g->id,
         g->world.ndags, g->cfg.nstate, (double)hs.live_bytes / 1048576.0, gc_mode_name(g->cfg.gc.mode),
         g->cfg.gc.immortal ? " + immortal" : "");
    return k;
}

/* Waits (up to 10 s in all) for each pipe to say its worker is serving;
 * returns how many did (a worker that died first closes its pipe unread). */
static int wait_ready(master *m, int *fds, int n)
{
    uint64_t deadline = base_now_ms() + 10000;
    int ready = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        uint64_t now = base_now_ms();
        char c;
        if (now < deadline && poll(&p, 1, (int)(deadline - now)) > 0 && read(fds[i], &c, 1) == 1)
            ready++;
        close(fds[i]);
    }
    m->npending = 0;
    return ready;
}

/* Frees a generation's state in the master: mortal first (it was settled
 * immortal, maybe) when its memory carries seals from `from` on. */
static void drop_generation(generation *g, uint32_t from, uint32_t before)
{
    gc_mortalize_sealed(from, before);
    ld_world_free(&g->world);
    ld_config_free(&g->cfg);
    g->live = false;
    gc_collect(GC_GENERATIONS - 1);
}

/* --- systemd ------------------------------------------------------------
 * Readiness and state for a Type=notify service (each a no-op without
 * $NOTIFY_SOCKET): READY=1 once every worker serves, RELOADING=1 then
 * READY=1 around a reload, STOPPING=1, a STATUS= line, and WATCHDOG=1 at
 * half of WatchdogSec when it is set. */

static void notify_status(master *m)
{
    if (!m->sb)
        return;
    int ready = 0;
    uint64_t pages = 0, shared = 0;
    for (int i = 0; i < m->nslots; i++) {
        ms_entry e;
        if (!m->slots[i].pid || !ms_sb_read_entry(m->sb, m->slots[i].sb_index, &e) || e.status != MS_READY)
            continue;
        ready++;
        pages += e.mem.state.pages;
        shared += e.mem.state.shared_pages;
    }
    char shared_txt[48] = "not sampled yet", status[sizeof m->last_status];
    if (pages)
        snprintf(shared_txt, sizeof shared_txt, "%.1f%% shared", 100.0 * (double)shared / (double)pages);
    snprintf(status, sizeof status, "STATUS=%d of %d workers serving, generation %d, state %s", ready, m->nslots,
             cur(m)->id, shared_txt);
    if (strcmp(status, m->last_status) != 0) { /* only what changed */
        sd_notify(0, status);
        memcpy(m->last_status, status, sizeof status);
    }
    if (!m->notified_ready && ready == m->nslots) {
        sd_notify(0, "READY=1");
        m->notified_ready = true;
    }
}

static void notify_watchdog(master *m, uint64_t now, uint64_t *wake)
{
    if (!m->watchdog_ms)
        return;
    if (now >= m->next_watchdog) {
        sd_notify(0, "WATCHDOG=1");
        m->next_watchdog = now + m->watchdog_ms;
    }
    if (m->next_watchdog < *wake)
        *wake = m->next_watchdog;
}

static void reload_generation(master *m);

static void reload(master *m)
{
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)base_now_us());
    reload_generation(m);
    sd_notify(0, "READY=1");
    notify_status(m);
}

static void reload_generation(master *m)
{
    mlog("reloading %s", cur(m)->cfg.path);
    int k = load_generation(m, true, NULL);
    if (k < 0) {
        mlog("reload failed; generation %d goes on serving", cur(m)->id);
        return;
    }
    generation *g = &m->gens[k];
    if (strcmp(g->cfg.listen_host, cur(m)->cfg.listen_host) != 0 || g->cfg.listen_port != cur(m)->cfg.listen_port ||
        !g->cfg.listen_unix != !cur(m)->cfg.listen_unix ||
        (g->cfg.listen_unix && strcmp(g->cfg.listen_unix, cur(m)->cfg.listen_unix) != 0))
        mlog("listen address changes need a restart; keeping the current socket");
    /* The new generation starts beside the old one and must say it serves;
     * only then does the old one retire.  If none of it comes up, it goes
     * and the old generation goes on serving. */
    int n = g->cfg.workers;
    pid_t pids[MAX_WORKERS];
    int sbs[MAX_WORKERS], ready[MAX_WORKERS];
    for (int i = 0; i < n; i++) {
        ready[i] = -1;
        pids[i] = fork_worker(m, g, i, &ready[i], &sbs[i]);
    }
    if (wait_ready(m, ready, n) == 0) {
        for (int i = 0; i < n; i++)
            if (pids[i] > 0)
                retire(m, pids[i], sbs[i], g->id, SIGKILL);
        drop_generation(g, g->seal, UINT32_MAX);
        gc_configure(&cur(m)->cfg.gc);
        mlog("reload failed: no worker of the new generation started; generation %d goes on serving", cur(m)->id);
        return;
    }
    int old_gen = cur(m)->id, nold = 0;
    for (int i = 0; i < MAX_WORKERS; i++) {
        slot *s = &m->slots[i];
        if (s->pid) {
            retire(m, s->pid, s->sb_index, s->generation, SIGTERM);
            count_restart(m, i, MS_RESTART_RELOAD);
            nold++;
        }
        *s = (slot){.sb_index = -1};
    }
    m->current = k;
    m->nslots = n;
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            m->slots[i] = (slot){.pid = pids[i], .sb_index = sbs[i], .generation = g->id, .started_ms = base_now_ms(),
                                 .spawned = true};
    publish_master(m);
    mlog("generation %d serving; generation %d retiring (%d workers)", g->id, old_gen, nold);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The loop                                                             */
/* ====================================================================== */

/* On the way out: what the master holds goes back (it outlives its
 * workers, so nothing is shared any more). */
/* A unix socket's file, once: new connects fail at once from then on; what
 * the socket had queued is still the workers'. */
static void remove_socket_file(master *m)
{
    if (m->socket_file) {
        unlink(m->socket_file);
        free(m->socket_file);
        m->socket_file = NULL;
    }
}

static int finish(master *m, int status)
{
    remove_socket_file(m);
    for (int k = 0; k < MAX_GENERATIONS; k++) {
        if (!m->gens[k].live)
            continue;
        ld_world_free(&m->gens[k].world);
        ld_config_free(&m->gens[k].cfg);
        m->gens[k].live = false;
    }
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    ms_sb_destroy(m->sb);
    heap_destroy();
    return status;
}

/* Open files: raised to the hard limit (no privilege needed), which every
 * worker inherits; a worker keeps FD_RESERVE of them for its own files
 * and may hold the rest as connections. */
enum { FD_RESERVE = 64, MIN_CONNECTIONS = 16 };

static void raise_open_files(master *m)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        rl.rlim_cur = rl.rlim_max = 1024;
    } else if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
        struct rlimit up = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
    }
    rlim_t n = rl.rlim_cur == RLIM_INFINITY ? 1048576 : rl.rlim_cur;
    m->max_connections = n > FD_RESERVE + MIN_CONNECTIONS ? (unsigned)(n - FD_RESERVE) : MIN_CONNECTIONS;
    if (m->max_connections > 1000000)
        m->max_connections = 1000000;
    char hard[32];
    if (rl.rlim_max == RLIM_INFINITY)
        snprintf(hard, sizeof hard, "unlimited");
    else
        snprintf(hard, sizeof hard, "%llu", (unsigned long long)rl.rlim_max);
    mlog("open files %llu (hard limit %s): up to %u connections a worker", (unsigned long long)n, hard,
         m->max_connections);
}

static void begin_stop(master *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    sd_notify(0, "STOPPING=1");
    m->stop_deadline = base_now_ms() + (uint64_t)cur(m)->cfg.graceful_timeout_ms + KILL_MARGIN_MS;
    close(m->listen_fd);
    m->listen_fd = -1;
    remove_socket_file(m);
    /* SIGINT, not the SIGTERM of a retirement: the workers take what the
     * socket has queued, then shut it, so new connects are refused. */
    for (int i = 0; i < MAX_WORKERS; i++)
        if (m->slots[i].pid) {
            ms_sb_set_status(m->sb, m->slots[i].sb_index, MS_DRAINING);
            kill(m->slots[i].pid, SIGINT);
        }
    for (int k = 0; k < m->nretiring; k++) {
        ms_sb_set_status(m->sb, m->retiring[k].sb_index, MS_DRAINING);
        kill(m->retiring[k].pid, SIGINT);
    }
    mlog("stopping: waiting up to %d ms for in-flight requests", cur(m)->cfg.graceful_timeout_ms);
}

static bool any_child(const master *m)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (m->slots[i].pid)
            return true;
    return m->nretiring > 0;
}

static void kill_all(master *m, int sig)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (m->slots[i].pid)
            kill(m->slots[i].pid, sig);
    for (int k = 0; k < m->nretiring; k++)
        kill(m->retiring[k].pid, sig);
}

static void scale(master *m)
{
    while (sig_ttin > 0) {
        sig_ttin--;
        if (m->nslots < MAX_WORKERS) {
            m->nslots++;
            m->slots[m->nslots - 1] = (slot){.sb_index = -1};
            mlog("SIGTTIN: %d workers", m->nslots);
        }
    }
    while (sig_ttou > 0) {
        sig_ttou--;
        if (m->nslots > 1) {
            slot *s = &m->slots[m->nslots - 1];
            if (s->pid) {
                retire(m, s->pid, s->sb_index, s->generation, SIGTERM);
                count_restart(m, m->nslots - 1, MS_RESTART_SCALE);
            }
            *s = (slot){.sb_index = -1};
            m->nslots--;
            mlog("SIGTTOU: %d workers", m->nslots);
        } else {
            mlog("SIGTTOU: 1 worker, the least; it stays");
        }
    }
}

/* Signals blocked from here on; *waiting is the mask to wait with, which
 * lets them in. */
static void block_signals(sigset_t *waiting)
{
    sigset_t blocked;
    sigemptyset(&blocked);
    for (size_t i = 0; i < sizeof master_signals / sizeof *master_signals; i++)
        sigaddset(&blocked, master_signals[i]);
    sigprocmask(SIG_BLOCK, &blocked, waiting);
    for (size_t i = 0; i < sizeof master_signals / sizeof *master_signals; i++)
        sigdelset(waiting, master_signals[i]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_NOCLDSTOP;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof master_signals / sizeof *master_signals; i++)
        sigaction(master_signals[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The socket first (an address in use is known before the state loads),
 * then the first generation, the slots and the scoreboard.  False when the
 * master cannot serve (logged). */
static bool start(master *m, ld_config *cfg)
{
    char err[1024];
    m->listen_fd = srv_listen(cfg, err, sizeof err);
    if (m->listen_fd < 0) {
        mlog("%s", err);
        ld_config_free(cfg);
        return false;
    }
    int k = load_generation(m, false, cfg);
    if (k < 0)
        return false;
    m->current = k;
    char where[160];
    describe_socket(m->listen_fd, where, sizeof where);
    bool unix_socket = strncmp(where, "unix:", 5) == 0;
    mlog("listening on %s%s with %d workers", unix_socket ? "" : "http://", where, cur(m)->cfg.workers);
    /* A socket file the master made goes with it (on its stop, so connects
     * fail at once); one handed down is the giver's. */
    if (unix_socket && cur(m)->cfg.listen_unix && !socket_handed_down)
        m->socket_file = base_strdup(cur(m)->cfg.listen_unix);
    raise_open_files(m);
    uint64_t watchdog_us = 0;
    if (sd_watchdog_enabled(0, &watchdog_us) > 0)
        m->watchdog_ms = watchdog_us / 2000 ? watchdog_us / 2000 : 1;

    m->nslots = cur(m)->cfg.workers;
    for (int i = 0; i < MAX_WORKERS; i++)
        m->slots[i].sb_index = -1;
    m->sb = ms_sb_create();
    if (!m->sb)
        mlog("cannot map the scoreboard: /stats and /metrics will answer 503");
    for (int i = 0; i < MS_SB_SLOTS; i++) /* no worker yet: nobody defers to these */
        ms_sb_set_conns(m->sb, i, MS_SLOT_UNAVAILABLE);
    publish_master(m);
    sample_master(m);
    return true;
}

/* A worker that stopped accepting by itself (max_requests) is recycling:
 * it finishes as a retiring worker, with a deadline, and its slot is
 * refilled now rather than when it exits. */
static void replace_recycling(master *m, uint64_t now)
{
    for (int i = 0; i < m->nslots; i++) {
        slot *s = &m->slots[i];
        if (s->pid && ms_sb_status(m->sb, s->sb_index) == MS_DRAINING) {
            mlog("worker %d (pid %d) is recycling; starting its replacement", i, (int)s->pid);
            retire(m, s->pid, s->sb_index, s->generation, 0);
            count_restart(m, i, MS_RESTART_MAX_REQUESTS);
            *s = (slot){.sb_index = -1, .spawned = true, .respawn_at = now};
        }
    }
}

/* The watchdog: a worker whose loop has not come back for
 * worker_timeout_ms -- an op stuck in a loop, a stopped process -- is
 * killed and respawned.  A request may run for timeout_ms without the loop
 * coming back, so one under way has that much more.  The sampling thread
 * is no beat: only the loop writes beat_ms. */
static void watchdog(master *m, uint64_t now, uint64_t *wake)
{
    uint64_t limit = (uint64_t)cur(m)->cfg.worker_timeout_ms;
    if (!limit || !m->sb)
        return;
    for (int i = 0; i < m->nslots; i++) {
        slot *s = &m->slots[i];
        if (!s->pid || s->timed_out || s->sb_index < 0 || ms_sb_status(m->sb, s->sb_index) != MS_READY)
            continue; /* (one killed already waits to be reaped) */
        uint64_t beat = __atomic_load_n(&m->sb->entries[s->sb_index].beat_ms, __ATOMIC_RELAXED);
        if (!beat)
            continue; /* not serving yet */
        ms_entry e;
        bool read = ms_sb_read_entry(m->sb, s->sb_index, &e);
        uint64_t allowed = limit + (read && e.serving_since_ms ? (uint64_t)cur(m)->cfg.timeout_ms : 0);
        if (now < beat + allowed) {
            if (beat + allowed < *wake)
                *wake = beat + allowed;
            continue;
        }
        mlog("worker %d (pid %d) has not come back to its loop for %llu ms (%s%s): SIGKILL", i, (int)s->pid,
             (unsigned long long)(now - beat), read && e.serving[0] ? "serving " : "idle",
             read ? e.serving : "");
        kill(s->pid, SIGKILL);
        s->timed_out = true;
        count_restart(m, i, MS_RESTART_TIMEOUT);
    }
}

/* Recycling on memory: a worker that has copied more of the inherited
 * state than max_copied_mib or max_copied_ratio allow, or whose RSS passed
 * max_rss_mib, retires as a reload's workers do (answering all it has) and
 * a fresh one forks from the master's still-shared pages.  One at a time:
 * the next may retire once that one has gone and a sampling interval, with
 * jitter, has passed, so workers never all recycle together. */
static void recycle_on_memory(master *m, uint64_t now)
{
    const ld_config *c = &cur(m)->cfg;
    if ((!c->max_copied_mib && c->max_copied_ratio <= 0 && !c->max_rss_mib) || !m->sb ||
        now < m->mem_recycle_not_before)
        return;
    for (int r = 0; r < m->nretiring; r++)
        if (m->retiring[r].pid == m->mem_recycling)
            return; /* the last one is still draining */
    for (int i = 0; i < m->nslots; i++) {
        slot *s = &m->slots[i];
        ms_entry e;
        if (!s->pid || s->sb_index < 0 || !ms_sb_read_entry(m->sb, s->sb_index, &e) || e.status != MS_READY ||
            !e.mem.at_ms)
            continue;
        double copied_mib = (double)e.mem.state.private_pages * 4096.0 / 1048576.0;
        double ratio = e.mem.state.pages ? (double)e.mem.state.private_pages / (double)e.mem.state.pages : 0;
        double rss_mib = (double)e.mem.rollup.rss_bytes / 1048576.0;
        ms_restart_reason why;
        char what[128];
        if (c->max_copied_mib && copied_mib > (double)c->max_copied_mib) {
            why = MS_RESTART_COPIED;
            snprintf(what, sizeof what, "copied %.1f MiB of the state, past max_copied_mib %llu", copied_mib,
                     (unsigned long long)c->max_copied_mib);
        } else if (c->max_copied_ratio > 0 && ratio > c->max_copied_ratio) {
            why = MS_RESTART_COPIED;
            snprintf(what, sizeof what, "copied %.1f%% of the state, past max_copied_ratio %g", 100 * ratio,
                     c->max_copied_ratio);
        } else if (c->max_rss_mib && rss_mib > (double)c->max_rss_mib) {
            why = MS_RESTART_RSS;
            snprintf(what, sizeof what, "RSS %.1f MiB, past max_rss_mib %llu", rss_mib,
                     (unsigned long long)c->max_rss_mib);
        } else {
            continue;
        }
        mlog("worker %d (pid %d) %s; recycling it", i, (int)s->pid, what);
        m->mem_recycling = s->pid;
        retire(m, s->pid, s->sb_index, s->generation, SIGTERM);
        count_restart(m, i, why);
        *s = (slot){.sb_index = -1, .spawned = true, .respawn_at = now};
        uint64_t interval = (uint64_t)c->stats_interval_ms;
        m->mem_recycle_not_before = now + interval + (uint64_t)random() % (interval + 1);
        return;
    }
}

/* Starts every empty slot whose time has come; lowers *wake to the next
 * one due.  False when every slot failed at start-up: nothing can serve. */
static bool spawn_due(master *m, uint64_t now, uint64_t *wake)
{
    for (int i = 0; i < m->nslots; i++) {
        slot *s = &m->slots[i];
        if (s->pid || s->disabled)
            continue;
        if (s->respawn_at <= now)
            spawn(m, i);
        else if (s->respawn_at < *wake)
            *wake = s->respawn_at;
    }
    for (int i = 0; i < m->nslots; i++)
        if (!m->slots[i].disabled)
            return true;
    return false;
}

/* SIGKILL for retiring workers past their deadline; lowers *wake to the
 * next deadline. */
static void kill_overdue(master *m, uint64_t now, uint64_t *wake)
{
    for (int r = 0; r < m->nretiring; r++) {
        if (m->retiring[r].kill_at <= now) {
            mlog("retiring worker %d did not finish in time: SIGKILL", (int)m->retiring[r].pid);
            kill(m->retiring[r].pid, SIGKILL);
            m->retiring[r].kill_at = now + 60000;
        } else if (m->retiring[r].kill_at < *wake) {
            *wake = m->retiring[r].kill_at;
        }
    }
}

/* The master's own memory sample, every stats_interval_ms; lowers *wake to
 * the next one. */
static void sample_due(master *m, uint64_t now, uint64_t *wake)
{
    if (now >= m->next_sample) {
        sample_master(m);
        notify_status(m);
        m->next_sample = now + (uint64_t)cur(m)->cfg.stats_interval_ms;
    }
    if (!m->notified_ready) { /* until every worker serves, look often */
        notify_status(m);
        if (now + 50 < *wake)
            *wake = now + 50;
    }
    if (m->next_sample < *wake)
        *wake = m->next_sample;
}

/* Sleeps until `wake` or a signal: the one place signals arrive. */
static void wait_signals(uint64_t now, uint64_t wake, const sigset_t *waiting)
{
    uint64_t wait = wake > now ? wake - now : 0;
    struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
    ppoll(NULL, 0, &ts, waiting);
}

/* Acts on every flag raised; returns the exit status once the master is
 * done, -1 to go on. */
static int act_on_signals(master *m)
{
    if (sig_chld) {
        sig_chld = 0;
        reap(m);
    }
    if (sig_quit) {
        mlog("SIGQUIT: stopping now");
        kill_all(m, SIGQUIT);
        return 0;
    }
    if (sig_term) {
        sig_term = 0;
        begin_stop(m);
    }
    if (m->stopping) {
        if (!any_child(m)) {
            mlog("stopped");
            return 0;
        }
        if (base_now_ms() >= m->stop_deadline) {
            mlog("graceful_timeout_ms passed: SIGKILL to what is left");
            kill_all(m, SIGKILL);
            m->stop_deadline = base_now_ms() + 60000;
        }
        return -1;
    }
    if (sig_hup) {
        sig_hup = 0;
        reload(m);
    }
    scale(m);
    drop_old_generations(m);
    publish_master(m);
    return -1;
}

int srv_serve(ld_config *cfg)
{
    master m = {.listen_fd = -1, .next_id = 1};
    heap_init(NULL);
    (void)ms_zero_pfn(); /* cached before forking */
    srandom((unsigned)getpid() ^ (unsigned)base_now_ms());
    sigset_t waiting;
    block_signals(&waiting);
    if (!start(&m, cfg))
        return finish(&m, 1);
    for (;;) {
        uint64_t now = base_now_ms(), wake = now + 1000;
        if (!m.stopping) {
            replace_recycling(&m, now);
            recycle_on_memory(&m, now);
            watchdog(&m, now, &wake);
            if (cur(&m)->cfg.max_requests)
                wake = now + 100; /* to notice recycling workers promptly */
            if (!spawn_due(&m, now, &wake)) {
                mlog("every worker failed at start-up; stopping");
                kill_all(&m, SIGKILL);
                return finish(&m, 1);
            }
        }
        kill_overdue(&m, now, &wake);
        notify_watchdog(&m, now, &wake);
        if (m.stopping && m.stop_deadline < wake)
            wake = m.stop_deadline;
        sample_due(&m, now, &wake);
        wait_signals(now, wake, &waiting);
        int status = act_on_signals(&m);
        if (status >= 0)
            return finish(&m, status);
    }
}

/* }====================================================================== */
