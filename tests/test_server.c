/* test_server: integration tests of `cowdag serve`.  Starts the real binary
 * ($COWDAG, default build/cowdag) on a free port with the fixtures in
 * tests/fixtures/server, speaks raw HTTP/1.1 to it and signals its master. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FIXTURES "tests/fixtures/server"
/* Every test here waits on events it can see -- a log line, a pid, a status
 * in /stats, a reply -- never on this machine's speed.  A deadline only ends
 * a test that hangs, so it is far above what any event takes on a slow or
 * loaded machine. */
#define HANG_MS 60000
#define IO_TIMEOUT_S 30 /* per connect/send/recv: a hung server fails, never hangs */
#define MAX_PIDS 64
#define GRACEFUL_TIMEOUT_MS 60000 /* as in the fixture configs: far above any run */
#define STATS_INTERVAL_MS 1000    /* as in cowdag.json and recycle.json */
#define MAX_BODY_BYTES 131072     /* as in the fixture configs */

/* ====================================================================== */
/* {  Small helpers                                                        */
/* ====================================================================== */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Replaces a file in one step (write aside, rename), so the server never
 * reads half of it. */
static void write_file(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *text = slurp(from, &len);
    assert_non_null(text);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(text);
}

/* Copies a folder of folders and regular files. */
static void copy_tree(const char *from, const char *to)
{
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        struct stat st;
        assert_int_equal(stat(src, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            assert_int_equal(mkdir(dst, 0700), 0);
            copy_tree(src, dst);
        } else if (S_ISREG(st.st_mode)) {
            copy_file(src, dst);
        }
    }
    closedir(d);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* }====================================================================== */

/* ====================================================================== */
/* {  Processes: children of the master, from /proc                         */
/* ====================================================================== */

/* State letter and parent of a process ('\0' if it is gone). */
static char proc_state(pid_t pid, pid_t *ppid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *text = slurp(path, NULL);
    if (!text)
        return '\0';
    char state = '\0';
    int parent = 0;
    const char *close_paren = strrchr(text, ')'); /* the command name may hold anything */
    if (close_paren && sscanf(close_paren + 1, " %c %d", &state, &parent) != 2)
        state = '\0';
    free(text);
    if (ppid)
        *ppid = parent;
    return state;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* The live (not zombie) children of `parent`, sorted; returns how many. */
static int children_of(pid_t parent, pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        pid_t ppid;
        char state = proc_state((pid_t)pid, &ppid);
        if (state && state != 'Z' && state != 'X' && ppid == parent && n < cap)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_pid);
    return n;
}

static bool pid_in(pid_t pid, const pid_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* Waits until a process has exited (gone, or a zombie not yet reaped):
 * true if it did before the deadline. */
static bool wait_gone(pid_t pid)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        char st = proc_state(pid, NULL);
        if (st == '\0' || st == 'Z')
            return true;
        if (now_ms() > deadline)
            return false;
        sleep_ms(5);
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The server under test                                                */
/* ====================================================================== */

typedef struct server {
    pid_t pid; /* the master; 0: none */
    int port;
    char log[64]; /* its stderr */
    bool reaped;
    int status; /* once reaped */
} server;

static char *server_log(const server *s)
{
    char *text = slurp(s->log, NULL);
    return text ? text : strdup("");
}

static bool log_has(const server *s, const char *needle)
{
    char *text = server_log(s);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static bool wait_log(const server *s, const char *needle, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    do {
        if (log_has(s, needle))
            return true;
        sleep_ms(10);
    } while (now_ms() < deadline);
    return false;
}

/* Prints the server's log without its access lines (the supervision is what
 * explains a failure), ending with the last few access lines. */
static void dump_log(const server *s, const char *why)
{
    if (!s->log[0])
        return;
    char *text = server_log(s);
    fprintf(stderr, "---- server log (%s), %s; access lines left out but the last 5 ----\n", s->log, why);
    size_t access = 0, shown_from;
    for (char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        access += strncmp(p, "127.0.0.1 \"", 11) == 0;
    shown_from = access > 5 ? access - 5 : 0;
    size_t k = 0;
    for (char *p = text; *p;) {
        char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) + 1 : strlen(p);
        bool is_access = strncmp(p, "127.0.0.1 \"", 11) == 0;
        if (!is_access || k++ >= shown_from)
            fwrite(p, 1, n, stderr);
        p += n;
    }
    fprintf(stderr, "---- end of server log ----\n");
    free(text);
}

/* Reaps the master if it has exited; true once it has. */
static bool server_exited(server *s)
{
    if (s->reaped)
        return true;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
        s->reaped = true;
        s->status = st;
    }
    return s->reaped;
}

/* Waits up to timeout_ms for the master to exit; true if it did. */
static bool server_wait_exit(server *s, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    while (!server_exited(s)) {
        if (now_ms() >= deadline)
            return false;
        sleep_ms(5);
    }
    return true;
}

/* The open-files limit the next server starts with (soft and hard); 0:
 * the test's own. */
static int server_nofile;

/* Starts `cowdag serve -c config --listen 127.0.0.1:PORT [--workers N]`
 * (port 0: any free one) in a process group of its own, stderr to a temp
 * file; waits for the "listening on" line and takes the port from it. */
static void server_start_at(server *s, const char *config, int workers, int port)
{
    memset(s, 0, sizeof *s);
    snprintf(s->log, sizeof s->log, "/tmp/cowdag-test-server-XXXXXX");
    int logfd = mkstemp(s->log);
    assert_true(logfd >= 0);
    fcntl(logfd, F_SETFL, fcntl(logfd, F_GETFL) | O_APPEND);
    char nworkers[16];
    snprintf(nworkers, sizeof nworkers, "%d", workers);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(logfd, 2);
        signal(SIGPIPE, SIG_DFL);
        if (server_nofile) {
            struct rlimit rl = {(rlim_t)server_nofile, (rlim_t)server_nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        char listen[32];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        const char *bin = cowdag_bin();
        if (workers > 0)
            execl(bin, bin, "serve", "-c", config, "--listen", listen, "--workers", nworkers, (char *)NULL);
        else
            execl(bin, bin, "serve", "-c", config, "--listen", listen, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with a kill of the group */
    close(logfd);
    s->pid = pid;
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        char *text = server_log(s);
        const char *at = strstr(text, "listening on http://");
        if (at) {
            const char *eol = strchr(at, '\n');
            const char *colon = NULL;
            for (const char *p = at + strlen("listening on http://"); *p && p != eol; p++)
                if (*p == ':')
                    colon = p;
            if (colon && eol)
                s->port = atoi(colon + 1);
        }
        free(text);
        if (s->port > 0)
            return;
        if (server_exited(s) || now_ms() > deadline) {
            dump_log(s, "it did not start");
            if (!s->reaped) { /* alive but silent: leave nothing behind */
                kill(-s->pid, SIGKILL);
                waitpid(s->pid, &s->status, 0);
                s->reaped = true;
            }
            fail_msg("cowdag serve -c %s did not start listening", config);
        }
        sleep_ms(10);
    }
}

static void server_start(server *s, const char *config, int workers) { server_start_at(s, config, workers, 0); }

/* SIGTERM, a bounded wait, SIGKILL to the whole group as a last resort;
 * never leaves a process behind. */
static void server_stop(server *s)
{
    if (!s->pid)
        return;
    if (!s->reaped) {
        kill(s->pid, SIGTERM);
        if (!server_wait_exit(s, HANG_MS)) {
            fprintf(stderr, "test_server: master %d ignored SIGTERM for %d ms; SIGKILL\n", (int)s->pid, HANG_MS);
            kill(-s->pid, SIGKILL);
            int st;
            waitpid(s->pid, &st, 0);
            s->reaped = true;
            s->status = st;
        }
    }
    kill(-s->pid, SIGKILL); /* stray workers, if any (ESRCH when none) */
    if (!getenv("COWDAG_TEST_KEEP_LOGS"))
        unlink(s->log);
    else
        fprintf(stderr, "test_server: server log kept in %s\n", s->log);
    s->pid = 0;
}

static int workers_of(const server *s, pid_t *out) { return children_of(s->pid, out, MAX_PIDS); }

/* Waits until the master has exactly n live children; returns the count
 * seen last, the pids in out. */
static int wait_workers(const server *s, int n, unsigned timeout_ms, pid_t *out)
{
    uint64_t deadline = now_ms() + timeout_ms;
    int got;
    for (;;) {
        got = workers_of(s, out);
        if (got == n || now_ms() >= deadline)
            return got;
        sleep_ms(10);
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  A tiny HTTP/1.1 client                                               */
/* ====================================================================== */

typedef struct reply {
    int status;      /* 0: no valid reply (see err) */
    char err[160];
    char *raw;       /* the whole response */
    size_t rawlen;
    size_t headlen;  /* status line and headers, up to and with the blank line */
    char *body;      /* de-chunked, NUL-terminated */
    size_t len;
    json_t *json;    /* the body parsed, when it is JSON */
} reply;

static void reply_free(reply *r)
{
    free(r->raw);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static int fail_reply(reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail_reply(reply *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    r->status = 0;
    return -1;
}

/* Copies header `name`'s value (trimmed) into buf; false if absent. */
static bool reply_header(const reply *r, const char *name, char *buf, size_t cap)
{
    if (!r->raw)
        return false;
    size_t nlen = strlen(name);
    const char *p = strstr(r->raw, "\r\n");
    const char *end = r->raw + r->headlen;
    while (p && p + 2 < end) {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (!eol || eol > end)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = (size_t)(eol - v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            snprintf(buf, cap, "%.*s", (int)n, v);
            return true;
        }
        p = eol;
    }
    return false;
}

/* Connects to 127.0.0.1:port with send/receive timeouts; -1 on failure. */
static int conn_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* De-chunks a chunked body into r->body. */
static int dechunk(reply *r, const char *p, const char *end)
{
    size_t cap = (size_t)(end - p) + 1, len = 0;
    r->body = malloc(cap);
    for (;;) {
        char *after;
        unsigned long n = strtoul(p, &after, 16);
        const char *eol = strstr(after, "\r\n");
        if (after == p || !eol || eol + 2 > end)
            return fail_reply(r, "malformed chunk size");
        p = eol + 2;
        if (n == 0)
            break;
        if (n > (size_t)(end - p) || n + 2 > (size_t)(end - p))
            return fail_reply(r, "truncated chunk");
        memcpy(r->body + len, p, n);
        len += n;
        p += n + 2;
    }
    r->body[len] = '\0';
    r->len = len;
    return 0;
}

static int parse_reply(reply *r);

/* Reads the response until the server closes, then parses it. */
static int conn_read_reply(int fd, reply *r)
{
    size_t cap = 8192;
    r->raw = malloc(cap);
    r->rawlen = 0;
    uint64_t deadline = now_ms() + 2 * IO_TIMEOUT_S * 1000;
    for (;;) {
        if (cap - r->rawlen < 4096) {
            cap *= 2;
            r->raw = realloc(r->raw, cap);
        }
        ssize_t n = recv(fd, r->raw + r->rawlen, cap - r->rawlen - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_reply(r, "recv after %zu bytes: %s", r->rawlen, strerror(errno));
        if (n == 0)
            break;
        r->rawlen += (size_t)n;
        if (now_ms() > deadline)
            return fail_reply(r, "the response never ended");
    }
    r->raw[r->rawlen] = '\0';
    if (r->rawlen == 0)
        return fail_reply(r, "the server closed the connection without a response");
    return parse_reply(r);
}

/* Parses the response in r->raw (r->rawlen bytes, NUL-terminated). */
static int parse_reply(reply *r)
{
    const char *blank = strstr(r->raw, "\r\n\r\n");
    if (!blank)
        return fail_reply(r, "no end of headers in %zu bytes", r->rawlen);
    r->headlen = (size_t)(blank + 4 - r->raw);
    int status = 0;
    if (sscanf(r->raw, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599)
        return fail_reply(r, "bad status line");
    const char *body = r->raw + r->headlen, *end = r->raw + r->rawlen;
    char value[64];
    if (reply_header(r, "Transfer-Encoding", value, sizeof value) && strcasecmp(value, "chunked") == 0) {
        if (dechunk(r, body, end) != 0)
            return -1;
    } else {
        size_t len = (size_t)(end - body);
        if (reply_header(r, "Content-Length", value, sizeof value)) {
            size_t want = strtoul(value, NULL, 10);
            if (want > len)
                return fail_reply(r, "body cut short: %zu of %zu bytes", len, want);
            len = want;
        }
        r->body = malloc(len + 1);
        memcpy(r->body, body, len);
        r->body[len] = '\0';
        r->len = len;
    }
    if (reply_header(r, "Content-Type", value, sizeof value) && strstr(value, "json"))
        r->json = json_loadb(r->body, r->len, 0, NULL);
    r->status = status;
    return 0;
}

/* Reads one response on a keep-alive connection: the head, then as many
 * body bytes as Content-Length says (the routes the tests use this for
 * answer with one), without waiting for the server to close. */
static int conn_read_one(int fd, reply *r)
{
    memset(r, 0, sizeof *r);
    size_t cap = 8192, want = 0;
    r->raw = malloc(cap);
    for (;;) {
        if (cap - r->rawlen < 4096) {
            cap *= 2;
            r->raw = realloc(r->raw, cap);
        }
        ssize_t n = recv(fd, r->raw + r->rawlen, cap - r->rawlen - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail_reply(r, "%s after %zu bytes of the response", n ? strerror(errno) : "EOF", r->rawlen);
        r->rawlen += (size_t)n;
        r->raw[r->rawlen] = '\0';
        const char *blank = strstr(r->raw, "\r\n\r\n");
        if (blank && !want) {
            r->headlen = (size_t)(blank + 4 - r->raw);
            char value[32];
            if (!reply_header(r, "Content-Length", value, sizeof value))
                return fail_reply(r, "a keep-alive response without Content-Length");
            want = r->headlen + strtoul(value, NULL, 10);
        }
        if (want && r->rawlen >= want)
            return parse_reply(r);
    }
}

/* The server's end of a connection the test opened, from /proc/net/tcp:
 * its inode (0 while the connection waits in the listen backlog, not yet
 * accepted by any worker) and the bytes it holds that no worker has read.
 * False if it is not there (closed, or not yet established). */
static bool server_end(int client_fd, unsigned long *inode, unsigned long *unread)
{
    struct sockaddr_in me, peer;
    socklen_t len = sizeof me;
    if (getsockname(client_fd, (struct sockaddr *)&me, &len) != 0)
        return false;
    len = sizeof peer;
    if (getpeername(client_fd, (struct sockaddr *)&peer, &len) != 0)
        return false;
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned local_port, rem_port, st;
        unsigned long rx, ino;
        /* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode */
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*x:%lx %*x:%*x %*x %*u %*u %lu", &local_port, &rem_port, &st, &rx,
                   &ino) != 5)
            continue;
        if (local_port == ntohs(peer.sin_port) && rem_port == ntohs(me.sin_port) && st == 1 /* ESTABLISHED */) {
            *inode = ino;
            *unread = rx;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Waits until a worker has accepted the connection and, if `read` is set,
 * read every byte the test sent on it. */
static void wait_server_took(int client_fd, bool read)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        unsigned long inode = 0, unread = 0;
        if (server_end(client_fd, &inode, &unread) && inode != 0 && (!read || unread == 0))
            return;
        if (now_ms() > deadline)
            fail_msg("no worker %s the connection within %d ms (inode %lu, %lu bytes unread)",
                     read ? "read what was sent on" : "accepted", HANG_MS, inode, unread);
        sleep_ms(5);
    }
}

/* One exchange on a fresh connection: sends `req` (whole), reads the reply.
 * A failed send is tolerated when a reply still arrives (a server may answer
 * early, then close, as with a body that is too large). */
static int http_raw(int port, const char *req, size_t len, reply *r)
{
    memset(r, 0, sizeof *r);
    int fd = conn_open(port);
    if (fd < 0)
        return fail_reply(r, "connect to port %d: %s", port, strerror(errno));
    int sent = send_all(fd, req, len);
    int e = errno;
    int rc = conn_read_reply(fd, r);
    close(fd);
    if (rc != 0 && sent != 0)
        snprintf(r->err + strlen(r->err), sizeof r->err - strlen(r->err), " (send: %s)", strerror(e));
    return rc;
}

/* The request text: method, path, Connection: close, and a JSON body with
 * Content-Length when body is not NULL. */
static char *request_text(int port, const char *method, const char *path, const char *body, size_t *len)
{
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    int h = body ? snprintf(head, sizeof head,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                            method, path, port, blen)
                 : snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
                            method, path, port);
    char *req = malloc((size_t)h + blen + 1);
    memcpy(req, head, (size_t)h);
    if (blen)
        memcpy(req + h, body, blen);
    req[h + blen] = '\0';
    *len = (size_t)h + blen;
    return req;
}

static int http(int port, const char *method, const char *path, const char *body, reply *r)
{
    size_t len;
    char *req = request_text(port, method, path, body, &len);
    int rc = http_raw(port, req, len, r);
    free(req);
    return rc;
}

/* POST path with a chunked body (no Content-Length), `chunk` bytes a piece. */
static int http_chunked(int port, const char *path, const char *body, size_t blen, size_t chunk, reply *r)
{
    size_t cap = blen + (blen / chunk + 2) * 16 + 512, len = 0;
    char *req = malloc(cap);
    len += (size_t)snprintf(req, cap,
                            "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                            path, port);
    for (size_t off = 0; off < blen; off += chunk) {
        size_t n = blen - off < chunk ? blen - off : chunk;
        len += (size_t)snprintf(req + len, cap - len, "%zx\r\n", n);
        memcpy(req + len, body + off, n);
        len += n;
        memcpy(req + len, "\r\n", 2);
        len += 2;
    }
    len += (size_t)snprintf(req + len, cap - len, "0\r\n\r\n");
    int rc = http_raw(port, req, len, r);
    free(req);
    return rc;
}

static int run_dag(int port, const char *name, const char *body, reply *r)
{
    char path[256];
    snprintf(path, sizeof path, "/dags/%s/run", name);
    return http(port, "POST", path, body, r);
}

/* Integer at outputs.<name> / stats.<name> of a run reply; -1 if absent. */
static long long run_output_int(const reply *r, const char *name)
{
    json_t *v = json_object_get(json_object_get(r->json, "outputs"), name);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static long long run_stat(const reply *r, const char *name)
{
    json_t *v = json_object_get(json_object_get(r->json, "stats"), name);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* POST /dags/version/run: 0 with the answer and the worker pid, or -1 (a
 * description in r->err or the status). */
static int run_version(int port, long long *answer, pid_t *pid, reply *r)
{
    if (run_dag(port, "version", "{}", r) != 0)
        return -1;
    if (r->status != 200) {
        snprintf(r->err, sizeof r->err, "status %d: %.100s", r->status, r->body);
        return -1;
    }
    *answer = run_output_int(r, "answer");
    *pid = (pid_t)run_stat(r, "pid");
    return *answer >= 0 && *pid > 0 ? 0 : -1;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Assertions on replies                                                */
/* ====================================================================== */

static void show_reply(const reply *r)
{
    if (r->status == 0)
        print_message("no reply: %s\n", r->err);
    else
        print_message("reply %d: %.*s\n", r->status, (int)(r->len > 600 ? 600 : r->len), r->body);
}

static void expect_status(const reply *r, int status)
{
    if (r->status != status)
        show_reply(r);
    assert_int_equal(r->status, status);
}

/* The spec's error body: exactly {"error": {"code": C, "message": M,
 * "node": N?}}, with the status and code wanted. */
static void expect_error(const reply *r, int status, const char *code)
{
    expect_status(r, status);
    char type[128] = "";
    reply_header(r, "Content-Type", type, sizeof type);
    assert_non_null(strstr(type, "application/json"));
    if (!json_is_object(r->json))
        show_reply(r);
    assert_true(json_is_object(r->json));
    assert_int_equal(json_object_size(r->json), 1);
    json_t *err = json_object_get(r->json, "error");
    assert_true(json_is_object(err));
    assert_true(json_is_string(json_object_get(err, "code")));
    assert_true(json_is_string(json_object_get(err, "message")));
    assert_true(strlen(json_string_value(json_object_get(err, "message"))) > 0);
    const char *key;
    json_t *v;
    json_object_foreach(err, key, v)
    {
        bool known = strcmp(key, "code") == 0 || strcmp(key, "message") == 0 || strcmp(key, "node") == 0;
        if (!known)
            print_message("unexpected member error.%s\n", key);
        assert_true(known);
        assert_true(json_is_string(v));
    }
    if (strcmp(json_string_value(json_object_get(err, "code")), code) != 0)
        show_reply(r);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
}

static const char *error_node(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "node"));
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Per-test state                                                       */
/* ====================================================================== */

/* A client loop in a child process, counting into shared memory. */
typedef struct loop_shared {
    int stop;
    int ok, failed;
    int saw_new;       /* answers equal to `new_answer` */
    long long new_answer;
    int limit;         /* stop after this many requests; 0: when told */
    char failure[256]; /* the first failure */
} loop_shared;

typedef struct test_ctx {
    server srv;
    char tmpdir[64]; /* a copy of the fixtures, "" if none */
    pid_t loop_pid;
    loop_shared *loop;
    bool passed; /* set by the last line of a test; else teardown shows the log */
} test_ctx;

static test_ctx T;         /* the current standalone test */
static server group_srv;   /* the server a group of tests shares */
static bool group_test_ok; /* the current group test reached its end */
static pid_t group_pids[MAX_PIDS];
static int group_npids;

static int standalone_setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    return 0;
}

static void loop_stop(test_ctx *c)
{
    if (c->loop_pid > 0) {
        __atomic_store_n(&c->loop->stop, 1, __ATOMIC_SEQ_CST);
        uint64_t deadline = now_ms() + 3 * IO_TIMEOUT_S * 1000;
        int st;
        while (waitpid(c->loop_pid, &st, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(c->loop_pid, SIGKILL);
                waitpid(c->loop_pid, &st, 0);
                break;
            }
            sleep_ms(5);
        }
        c->loop_pid = 0;
    }
}

/* Waits for a loop with a limit to finish by itself (then stops it). */
static void loop_stop_when_done(test_ctx *c, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    int st;
    while (c->loop_pid > 0 && now_ms() < deadline) {
        if (waitpid(c->loop_pid, &st, WNOHANG) == c->loop_pid) {
            c->loop_pid = 0;
            return;
        }
        sleep_ms(5);
    }
    loop_stop(c);
}

static int standalone_teardown(void **state)
{
    (void)state;
    loop_stop(&T);
    if (T.loop) {
        munmap(T.loop, sizeof *T.loop);
        T.loop = NULL;
    }
    if (!T.passed)
        dump_log(&T.srv, "the test failed");
    server_stop(&T.srv);
    if (T.tmpdir[0])
        rm_tree(T.tmpdir);
    return 0;
}

/* Copies the fixtures to a fresh temp folder (so a test may edit them). */
static void copy_fixtures(test_ctx *c)
{
    snprintf(c->tmpdir, sizeof c->tmpdir, "/tmp/cowdag-test-fixtures-XXXXXX");
    assert_non_null(mkdtemp(c->tmpdir));
    copy_tree(FIXTURES, c->tmpdir);
}

static void tmp_path(const test_ctx *c, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", c->tmpdir, rel);
}

/* Starts a child that sends POST /dags/version/run on a new connection
 * each time until told to stop (or `limit` requests), counting successes
 * and failures. */
static void loop_start(test_ctx *c, long long new_answer, int limit)
{
    c->loop = mmap(NULL, sizeof *c->loop, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(c->loop != MAP_FAILED);
    memset(c->loop, 0, sizeof *c->loop);
    c->loop->new_answer = new_answer;
    c->loop->limit = limit;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        loop_shared *sh = c->loop;
        for (int sent = 0; !__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST) && (!sh->limit || sent < sh->limit);
             sent++) {
            reply r;
            long long answer;
            pid_t wpid;
            if (run_version(c->srv.port, &answer, &wpid, &r) == 0) {
                __atomic_add_fetch(&sh->ok, 1, __ATOMIC_SEQ_CST);
                if (answer == sh->new_answer)
                    __atomic_add_fetch(&sh->saw_new, 1, __ATOMIC_SEQ_CST);
            } else if (__atomic_add_fetch(&sh->failed, 1, __ATOMIC_SEQ_CST) == 1) {
                snprintf(sh->failure, sizeof sh->failure, "%s", r.err[0] ? r.err : "a 200 without outputs.answer");
            }
            reply_free(&r);
        }
        _exit(0);
    }
    c->loop_pid = pid;
}

/* Waits until the loop has `n` answers, good or bad. */
static void loop_wait_answers(test_ctx *c, int n)
{
    uint64_t deadline = now_ms() + HANG_MS;
    while (__atomic_load_n(&c->loop->ok, __ATOMIC_SEQ_CST) + __atomic_load_n(&c->loop->failed, __ATOMIC_SEQ_CST) < n) {
        if (now_ms() > deadline)
            fail_msg("the client loop got no more than %d answers", c->loop->ok + c->loop->failed);
        sleep_ms(5);
    }
}

/* Group tests: the server is the group's; a failed test shows its log. */
static int in_group_setup(void **state)
{
    (void)state;
    group_test_ok = false;
    return 0;
}

static int in_group_teardown(void **state)
{
    (void)state;
    if (!group_test_ok)
        dump_log(&group_srv, "the test failed");
    return 0;
}

static int group_setup_default(void **state)
{
    (void)state;
    server_start(&group_srv, FIXTURES "/cowdag.json", 0);
    group_npids = wait_workers(&group_srv, 2, HANG_MS, group_pids);
    if (group_npids != 2) {
        dump_log(&group_srv, "the workers did not start");
        server_stop(&group_srv);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(&group_srv);
    return 0;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Routes                                                               */
/* ====================================================================== */

static void run_answers_outputs_and_stats(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing",
                             "{\"inputs\": {\"spend\": [10, 10, 20, 40, 40, 50], \"signups\": [1, 10, 50, 100, 200, 400]},"
                             " \"outputs\": [\"spend_mean\", \"avg_3wk_spend\"]}",
                             &r),
                     0);
    expect_status(&r, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "dag")), "marketing");
    json_t *out = json_object_get(r.json, "outputs");
    assert_int_equal(json_object_size(out), 2);
    assert_float_equal(json_number_value(json_object_get(out, "spend_mean")), 28.333333333333332, 1e-9);
    json_t *rolling = json_object_get(out, "avg_3wk_spend");
    assert_true(json_is_array(rolling));
    assert_int_equal(json_array_size(rolling), 6);
    assert_float_equal(json_number_value(json_array_get(rolling, 2)), 40.0 / 3.0, 1e-9);
    /* the plan: inputs spend and window (counted as executed), then mean and rolling_mean */
    assert_int_equal(run_stat(&r, "nodes_executed"), 4);
    assert_true(run_stat(&r, "elapsed_us") >= 0);
    assert_true(run_stat(&r, "peak_bytes") >= 0);
    long long worker = run_stat(&r, "worker");
    assert_true(worker == 0 || worker == 1);
    /* stats.pid names the worker that answered: a child of the master */
    pid_t kids[MAX_PIDS];
    int n = workers_of(&group_srv, kids);
    assert_true(pid_in((pid_t)run_stat(&r, "pid"), kids, n));
    reply_free(&r);
    group_test_ok = true;
}

static void run_accepts_a_chunked_body(void **state)
{
    (void)state;
    const char *body = "{\"inputs\": {\"ids\": [1, 2, 3]}}";
    reply r;
    assert_int_equal(http_chunked(group_srv.port, "/dags/customer_score/run", body, strlen(body), 7, &r), 0);
    expect_status(&r, 200);
    json_t *scores = json_object_get(json_object_get(r.json, "outputs"), "scores");
    assert_true(json_is_array(scores));
    assert_int_equal(json_array_size(scores), 3);
    reply_free(&r);
    group_test_ok = true;
}

static void dags_lists_every_dag(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(json_is_array(r.json));
    const char *want[] = {"big", "customer_score", "marketing", "slow", "version"};
    assert_int_equal(json_array_size(r.json), 5);
    for (size_t k = 0; k < 5; k++) {
        bool found = false;
        size_t i;
        json_t *d;
        json_array_foreach(r.json, i, d)
        {
            if (json_is_string(json_object_get(d, "name")) &&
                strcmp(json_string_value(json_object_get(d, "name")), want[k]) == 0) {
                found = true;
                assert_true(json_is_string(json_object_get(d, "description")));
                assert_true(json_is_object(json_object_get(d, "inputs")));
                assert_true(json_is_array(json_object_get(d, "outputs")));
            }
        }
        if (!found)
            print_message("GET /dags lacks %s\n", want[k]);
        assert_true(found);
    }
    reply_free(&r);
    group_test_ok = true;
}

static void dag_detail_lists_nodes(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags/customer_score", NULL, &r), 0);
    expect_status(&r, 200);
    json_t *nodes = json_object_get(r.json, "nodes");
    assert_true(json_is_array(nodes));
    assert_int_equal(json_array_size(nodes), 9); /* 8 nodes + the input */
    bool saw_lookup = false;
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        assert_true(json_is_string(json_object_get(n, "kind")));
        assert_true(json_is_array(json_object_get(n, "deps")));
        if (strcmp(json_string_value(json_object_get(n, "name")), "records") == 0) {
            saw_lookup = true;
            assert_string_equal(json_string_value(json_object_get(n, "kind")), "op");
            assert_string_equal(json_string_value(json_object_get(n, "op")), "lookup");
            assert_int_equal(json_array_size(json_object_get(n, "deps")), 2);
        }
    }
    assert_true(saw_lookup);
    reply_free(&r);
    group_test_ok = true;
}

static void dag_dot_is_a_digraph(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags/marketing/dot", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(strncmp(r.body, "digraph ", 8) == 0);
    assert_non_null(strstr(r.body, "\"spend_mean\" -> \"spend_zero_mean\";"));
    assert_true(r.len > 0 && r.body[r.len - 2] == '}');
    reply_free(&r);
    group_test_ok = true;
}

static void healthz_says_ok(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/healthz", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(strncmp(r.body, "ok", 2) == 0);
    reply_free(&r);
    group_test_ok = true;
}

static void gc_collect_is_forbidden_without_admin(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
    expect_error(&r, 403, "forbidden");
    reply_free(&r);
    group_test_ok = true;
}

/* GET /stats until every worker has a memory sample (bounded); the
 * document, parsed. */
static json_t *stats_sampled(int port, int nworkers)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        reply r;
        assert_int_equal(http(port, "GET", "/stats", NULL, &r), 0);
        expect_status(&r, 200);
        json_t *doc = json_incref(r.json);
        reply_free(&r);
        json_t *ws = json_object_get(doc, "workers");
        size_t i, sampled = 0;
        json_t *w;
        json_array_foreach(ws, i, w) sampled += json_is_integer(json_object_get(w, "sampled_ms_ago"));
        if ((int)sampled >= nworkers || now_ms() > deadline)
            return doc;
        json_decref(doc);
        sleep_ms(50);
    }
}

/* GET /stats until every worker's sample was taken after `since` (a
 * CLOCK_MONOTONIC time in ms, the clock the scoreboard stamps samples with):
 * a copy read at `asked` or later whose sample is less than asked - since ms
 * old was sampled after since.  The document, parsed. */
static json_t *stats_sampled_after(int port, int nworkers, uint64_t since)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        uint64_t asked = now_ms();
        reply r;
        assert_int_equal(http(port, "GET", "/stats", NULL, &r), 0);
        expect_status(&r, 200);
        json_t *doc = json_incref(r.json);
        reply_free(&r);
        size_t i;
        int fresh = 0;
        json_t *w;
        json_array_foreach(json_object_get(doc, "workers"), i, w)
        {
            json_t *ago = json_object_get(w, "sampled_ms_ago");
            fresh += json_is_integer(ago) && (uint64_t)json_integer_value(ago) + 1 < asked - since;
        }
        if (fresh >= nworkers)
            return doc;
        json_decref(doc);
        if (now_ms() > deadline)
            fail_msg("the workers did not sample again within %d ms", HANG_MS);
        sleep_ms(20);
    }
}

static void stats_and_metrics_describe_every_worker(void **state)
{
    (void)state;
    json_t *doc = stats_sampled(group_srv.port, 2);
    json_t *m = json_object_get(doc, "master");
    assert_int_equal(json_integer_value(json_object_get(m, "pid")), group_srv.pid);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "gc"), "mode")), "freeze");
    assert_true(json_integer_value(json_object_get(m, "state_bytes")) > 0);
    json_t *ws = json_object_get(doc, "workers");
    assert_int_equal(json_array_size(ws), 2);
    pid_t pids[MAX_PIDS];
    int n = workers_of(&group_srv, pids);
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w)
    {
        assert_true(pid_in((pid_t)json_integer_value(json_object_get(w, "pid")), pids, n));
        assert_string_equal(json_string_value(json_object_get(w, "status")), "ready");
        json_t *st = json_object_get(json_object_get(w, "memory"), "state");
        assert_true(json_integer_value(json_object_get(st, "pages")) > 0);
        assert_true(json_is_real(json_object_get(st, "shared_ratio")));
        assert_true(json_is_integer(json_object_get(w, "sampled_ms_ago")));
        /* one interval, and half of one for the sampling itself */
        assert_true(json_integer_value(json_object_get(w, "sampled_ms_ago")) <= STATS_INTERVAL_MS * 3 / 2);
    }
    json_decref(doc);
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/metrics", NULL, &r), 0);
    expect_status(&r, 200);
    char type[128] = "";
    reply_header(&r, "Content-Type", type, sizeof type);
    assert_non_null(strstr(type, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE cowdag_request_duration_seconds histogram"));
    assert_non_null(strstr(r.body, "cowdag_worker_state_pages{worker=\"0\""));
    reply_free(&r);
    group_test_ok = true;
}

/* `cowdag stats`: one row per worker in the table; --json is the document. */
static void cowdag_stats_prints_a_row_per_worker(void **state)
{
    (void)state;
    json_decref(stats_sampled(group_srv.port, 2));
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "%s stats --url http://127.0.0.1:%d 2>&1", cowdag_bin(), group_srv.port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int rows = 0;
    bool header = false, master = false;
    while (fgets(line, sizeof line, p)) {
        header |= strncmp(line, "slot", 4) == 0 && strstr(line, "shared") != NULL;
        master |= strncmp(line, "master pid", 10) == 0;
        rows += strstr(line, " ready ") != NULL;
    }
    assert_int_equal(pclose(p), 0);
    assert_true(header && master);
    assert_int_equal(rows, 2);
    snprintf(cmd, sizeof cmd, "%s stats --json --url http://127.0.0.1:%d", cowdag_bin(), group_srv.port);
    p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t jerr;
    json_t *doc = json_loadf(p, 0, &jerr);
    assert_int_equal(pclose(p), 0);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "workers")), 2);
    json_decref(doc);
    /* nobody there: a message and exit 1 */
    snprintf(cmd, sizeof cmd, "%s stats --url http://127.0.0.1:1 >/dev/null 2>&1", cowdag_bin());
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    group_test_ok = true;
}

/* --- the sharing figures, checked against /proc/PID/smaps --------------- */

typedef struct span {
    unsigned long long start, end;
} span;

/* The regions as GET /admin/regions lists them. */
static int state_regions(int port, span *out, int cap)
{
    reply r;
    assert_int_equal(http(port, "GET", "/admin/regions", NULL, &r), 0);
    expect_status(&r, 200);
    json_t *regs = json_object_get(r.json, "regions");
    int n = 0;
    size_t i;
    json_t *pair;
    json_array_foreach(regs, i, pair)
    {
        if (n < cap)
            out[n++] = (span){(unsigned long long)json_integer_value(json_array_get(pair, 0)),
                              (unsigned long long)json_integer_value(json_array_get(pair, 1))};
    }
    reply_free(&r);
    return n;
}

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The state's address ranges, from GET /admin/regions (admin configs),
 * sorted, and touching ones joined: two regions mapped side by side with
 * the same flags are one mapping to the kernel (smaps shows them as one). */
static int state_ranges(int port, span *out, int cap)
{
    int n = state_regions(port, out, cap);
    qsort(out, (size_t)n, sizeof *out, cmp_span);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && out[m - 1].end == out[i].start)
            out[m - 1].end = out[i].end;
        else
            out[m++] = out[i];
    }
    return m;
}


static bool inside(const span *ranges, int n, unsigned long long lo, unsigned long long hi)
{
    for (int i = 0; i < n; i++)
        if (lo >= ranges[i].start && hi <= ranges[i].end)
            return true;
    return false;
}

/* Reads /proc/PID/smaps on its own (no cowdag code): for the mappings that
 * lie inside the ranges, resident, private and shared kB.  Fails if a
 * mapping straddles a range's edge (then the two could not be compared). */
static void smaps_state(pid_t pid, const span *ranges, int n, unsigned long long *rss_kb,
                        unsigned long long *private_kb, unsigned long long *shared_kb)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    *rss_kb = *private_kb = *shared_kb = 0;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, kb;
        char key[64];
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = inside(ranges, n, lo, hi);
            for (int i = 0; i < n && !in; i++)
                if (lo < ranges[i].end && hi > ranges[i].start)
                    fail_msg("mapping %llx-%llx straddles state range %llx-%llx", lo, hi, ranges[i].start,
                             ranges[i].end);
            continue;
        }
        if (!in || sscanf(line, "%63[^:]: %llu kB", key, &kb) != 2)
            continue;
        if (strcmp(key, "Rss") == 0)
            *rss_kb += kb;
        else if (strcmp(key, "Private_Clean") == 0 || strcmp(key, "Private_Dirty") == 0)
            *private_kb += kb;
        else if (strcmp(key, "Shared_Clean") == 0 || strcmp(key, "Shared_Dirty") == 0)
            *shared_kb += kb;
    }
    fclose(f);
}

/* Every worker's served state figures equal smaps' over the same ranges
 * (read once the server is idle and has sampled again); the worst private
 * share is returned. */
static double check_against_smaps(const server *srv)
{
    span ranges[4096];
    int nr = state_ranges(srv->port, ranges, 4096);
    assert_true(nr > 0);
    json_t *doc = stats_sampled_after(srv->port, 2, now_ms()); /* idle from here on */
    double worst = 0;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        pid_t pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
        json_t *st = json_object_get(json_object_get(w, "memory"), "state");
        long long pages = json_integer_value(json_object_get(st, "pages"));
        long long priv = json_integer_value(json_object_get(st, "private_pages"));
        long long shared = json_integer_value(json_object_get(st, "shared_pages"));
        unsigned long long rss_kb, priv_kb, shared_kb;
        smaps_state(pid, ranges, nr, &rss_kb, &priv_kb, &shared_kb);
        print_message("worker pid %d: served %lld pages (%lld private, %lld shared); smaps %llu kB rss, %llu kB "
                      "private, %llu kB shared\n",
                      (int)pid, pages, priv, shared, rss_kb, priv_kb, shared_kb);
        assert_true(pages > 0);
        assert_int_equal((unsigned long long)pages * 4, rss_kb);
        assert_int_equal((unsigned long long)priv * 4, priv_kb);
        assert_int_equal((unsigned long long)shared * 4, shared_kb);
        double share = (double)priv / (double)pages;
        worst = share > worst ? share : worst;
    }
    json_decref(doc);
    return worst;
}

static double least_private_share(const server *srv)
{
    json_t *doc = stats_sampled(srv->port, 2);
    double least = 1;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        json_t *st = json_object_get(json_object_get(w, "memory"), "state");
        double share = (double)json_integer_value(json_object_get(st, "private_pages")) /
                       (double)json_integer_value(json_object_get(st, "pages"));
        least = share < least ? share : least;
    }
    json_decref(doc);
    return least;
}

static void tuned_full_collection_copies_the_tracked_pages_of_every_worker(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/tuned.json", 2);
    pid_t pids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, pids), 2);
    /* A full collection in each worker: ask until both have answered. */
    pid_t done[2] = {0, 0};
    uint64_t deadline = now_ms() + HANG_MS;
    while (!(done[0] && done[1]) && now_ms() < deadline) {
        reply r;
        assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
        expect_status(&r, 200);
        pid_t p = (pid_t)json_integer_value(json_object_get(r.json, "pid"));
        if (p != done[0] && p != done[1])
            done[done[0] ? 1 : 0] = p;
        reply_free(&r);
    }
    assert_true(done[0] && done[1]);
    check_against_smaps(&T.srv);
    assert_true(least_private_share(&T.srv) >= 0.15);
    T.passed = true;
}

static void freeze_immortal_keeps_the_state_shared_through_10000_requests(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/sharing.json", 2);
    pid_t pids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, pids), 2);
    unsigned x = 12345;
    for (int q = 0; q < 10000; q++) {
        char body[512];
        int len = snprintf(body, sizeof body, "{\"inputs\": {\"ids\": [");
        for (int k = 0; k < 32; k++) {
            x = x * 1103515245u + 12345u;
            len += snprintf(body + len, sizeof body - (size_t)len, "%s%u", k ? "," : "", (x >> 8) % 20000);
        }
        snprintf(body + len, sizeof body - (size_t)len, "]}}");
        reply r;
        assert_int_equal(run_dag(T.srv.port, "customer_score", body, &r), 0);
        expect_status(&r, 200);
        reply_free(&r);
    }
    double worst = check_against_smaps(&T.srv);
    assert_true(worst <= 0.01);
    T.passed = true;
}

static void gc_collect_answers_when_admin(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/admin.json", 1);
    reply r;
    assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(json_is_integer(json_object_get(r.json, "collected")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "generation")), 2);
    reply_free(&r);
    /* a generation that does not exist is refused */
    assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=7", NULL, &r), 0);
    expect_error(&r, 422, "type_error");
    reply_free(&r);
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Errors: each from a real malformed request, on one server            */
/* ====================================================================== */

static void bad_json_is_400(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing", "{\"inputs\": {", &r), 0);
    expect_error(&r, 400, "bad_json");
    reply_free(&r);
    group_test_ok = true;
}

static void deep_nesting_is_400_and_the_worker_survives(void **state)
{
    (void)state;
    size_t n = 100000;
    assert_true(n < MAX_BODY_BYTES);
    char *body = malloc(n + 1);
    memset(body, '[', n);
    body[n] = '\0';
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing", body, &r), 0);
    free(body);
    expect_error(&r, 400, "bad_json");
    reply_free(&r);
    pid_t now[MAX_PIDS];
    int k = workers_of(&group_srv, now);
    assert_int_equal(k, group_npids);
    assert_memory_equal(now, group_pids, sizeof(pid_t) * (size_t)k);
    assert_false(log_has(&group_srv, "killed by signal"));
    assert_int_equal(http(group_srv.port, "GET", "/healthz", NULL, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    group_test_ok = true;
}

static void wrong_types_are_422_type_error(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"marketing", "{\"inputs\": {\"spend\": \"abc\", \"signups\": [1, 2]}}"},                 /* array input: a string */
        {"marketing", "{\"inputs\": {\"spend\": [1, 2], \"signups\": [1, 2], \"window\": 1.5}}"}, /* int input: a float */
        {"version", "[1, 2, 3]"},                                                                 /* request: not an object */
        {"version", "{\"inputs\": [1]}"},                                                         /* inputs: not an object */
        {"version", "{\"outputs\": \"answer\"}"},                                                 /* outputs: not an array */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        reply r;
        assert_int_equal(run_dag(group_srv.port, cases[i][0], cases[i][1], &r), 0);
        expect_error(&r, 422, "type_error");
        reply_free(&r);
    }
    group_test_ok = true;
}

static void unknown_dag_is_404(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "no_such_dag", "{}", &r), 0);
    expect_error(&r, 404, "unknown_dag");
    reply_free(&r);
    assert_int_equal(http(group_srv.port, "GET", "/dags/no_such_dag", NULL, &r), 0);
    expect_error(&r, 404, "unknown_dag");
    reply_free(&r);
    group_test_ok = true;
}

static void unknown_route_is_404_not_found(void **state)
{
    (void)state;
    const char *paths[] = {"/nope", "/dags/marketing/nope", "/admin"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        reply r;
        assert_int_equal(http(group_srv.port, "GET", paths[i], NULL, &r), 0);
        expect_error(&r, 404, "not_found");
        reply_free(&r);
    }
    group_test_ok = true;
}

static void unknown_output_is_422(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "version", "{\"outputs\": [\"answer\", \"no_such_node\"]}", &r), 0);
    expect_error(&r, 422, "unknown_output");
    assert_string_equal(error_node(&r), "no_such_node");
    reply_free(&r);
    group_test_ok = true;
}

static void missing_input_is_422(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing", "{\"inputs\": {\"spend\": [1, 2]}}", &r), 0);
    expect_error(&r, 422, "missing_input");
    assert_string_equal(error_node(&r), "signups");
    reply_free(&r);
    group_test_ok = true;
}

static void op_error_is_422_naming_the_node(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "customer_score", "{\"inputs\": {\"ids\": [1, 99999]}}", &r), 0);
    expect_error(&r, 422, "op_error");
    assert_non_null(error_node(&r));
    assert_string_equal(error_node(&r), "records");
    reply_free(&r);
    group_test_ok = true;
}

static void limit_is_422_limit_exceeded(void **state)
{
    (void)state;
    reply r;
    /* fill(size_mb * 131072) with 4096 MiB: 2^29 elements, over the 2^28 limit */
    assert_int_equal(run_dag(group_srv.port, "slow", "{\"inputs\": {\"size_mb\": 4096}}", &r), 0);
    expect_error(&r, 422, "limit_exceeded");
    assert_string_equal(error_node(&r), "step_0");
    reply_free(&r);
    group_test_ok = true;
}

static void body_too_large_by_content_length_is_413(void **state)
{
    (void)state;
    size_t n = MAX_BODY_BYTES + 60000;
    char *body = malloc(n + 1);
    memset(body, ' ', n);
    body[n] = '\0';
    reply r;
    assert_int_equal(run_dag(group_srv.port, "version", body, &r), 0);
    free(body);
    expect_error(&r, 413, "body_too_large");
    reply_free(&r);
    group_test_ok = true;
}

static void chunked_body_too_large_is_413(void **state)
{
    (void)state;
    size_t n = MAX_BODY_BYTES + 60000;
    char *body = malloc(n);
    memset(body, ' ', n);
    reply r;
    assert_int_equal(http_chunked(group_srv.port, "/dags/version/run", body, n, 4096, &r), 0);
    free(body);
    expect_error(&r, 413, "body_too_large");
    reply_free(&r);
    group_test_ok = true;
}

/* 405 with an Allow header holding `allow`; on a mismatch says what came
 * and returns false (no assertion, so one test can list every case). */
static bool is_405_allowing(const char *method, const char *path, const char *allow)
{
    reply r;
    bool good = false;
    char value[64] = "";
    if (http(group_srv.port, method, path, strcmp(method, "POST") == 0 ? "{}" : NULL, &r) != 0) {
        print_message("%s %s: no reply: %s\n", method, path, r.err);
    } else if (r.status != 405) {
        print_message("%s %s: status %d, wanted 405\n", method, path, r.status);
    } else if (!reply_header(&r, "Allow", value, sizeof value)) {
        print_message("%s %s: 405 without an Allow header\n", method, path);
    } else if (!strstr(value, allow)) {
        print_message("%s %s: 405 with Allow: %s, wanted %s\n", method, path, value, allow);
    } else {
        good = true;
    }
    reply_free(&r);
    return good;
}

static void wrong_method_is_405_with_allow(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags/marketing/run", NULL, &r), 0);
    expect_error(&r, 405, "method_not_allowed");
    reply_free(&r);
    assert_true(is_405_allowing("GET", "/dags/marketing/run", "POST"));
    assert_true(is_405_allowing("POST", "/dags/marketing", "GET"));
    assert_true(is_405_allowing("POST", "/dags/marketing/dot", "GET"));
    assert_true(is_405_allowing("POST", "/healthz", "GET"));
    assert_true(is_405_allowing("POST", "/dags", "GET"));
    assert_true(is_405_allowing("GET", "/admin/gc/collect", "POST"));
    group_test_ok = true;
}

/* Methods other than GET and POST: every route refuses them, and Allow
 * names what the route takes, not the opposite of the method refused. */
static void other_methods_are_405_with_the_routes_allow(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"DELETE", "/healthz", "GET"},           {"PATCH", "/dags", "GET"},
        {"DELETE", "/dags/marketing", "GET"},    {"PUT", "/dags/marketing/dot", "GET"},
        {"PUT", "/admin/gc/collect", "POST"},    {"DELETE", "/dags/marketing/run", "POST"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        bad += !is_405_allowing(cases[i][0], cases[i][1], cases[i][2]);
    assert_int_equal(bad, 0);
    group_test_ok = true;
}

/* --- HTTP-level faults the server decides ------------------------------- */

static void http11_without_host_is_400_bad_request(void **state)
{
    (void)state;
    reply r;
    const char *req = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_int_equal(http_raw(group_srv.port, req, strlen(req), &r), 0);
    expect_error(&r, 400, "bad_request");
    reply_free(&r);
    req = "GET /healthz HTTP/1.0\r\n\r\n"; /* HTTP/1.0 needs none */
    assert_int_equal(http_raw(group_srv.port, req, strlen(req), &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    group_test_ok = true;
}

/* Two lengths, or a length and chunked coding, leave the body's end in
 * doubt: a proxy in front may have read the message otherwise. */
static void conflicting_body_lengths_are_400_bad_request(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        char req[512];
        int len = snprintf(req, sizeof req,
                           "POST /dags/version/run HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\n%s\r\n{}",
                           heads[i]);
        reply r;
        assert_int_equal(http_raw(group_srv.port, req, (size_t)len, &r), 0);
        expect_error(&r, 400, "bad_request");
        reply_free(&r);
    }
    /* the same length twice says one thing */
    const char *same = "POST /dags/version/run HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
    reply r;
    assert_int_equal(http_raw(group_srv.port, same, strlen(same), &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    group_test_ok = true;
}

/* A body that is JSON but not an object is one fault, whatever it is. */
static void a_body_that_is_not_an_object_is_422_type_error(void **state)
{
    (void)state;
    static const char *const bodies[] = {"[1, 2]", "3", "\"inputs\"", "null", "true"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        reply r;
        assert_int_equal(run_dag(group_srv.port, "version", bodies[i], &r), 0);
        expect_error(&r, 422, "type_error");
        reply_free(&r);
    }
    group_test_ok = true;
}

/* Last of the group: none of the bad requests above took a worker down. */
/* Peak resident memory of a process (VmHWM), in KiB; -1 if unreadable. */
static long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static const char big_request[] = "{\"inputs\": {\"n\": 2000000}, \"outputs\": [\"thirds\"]}";

/* --- long runs, sized on this machine -------------------------------- */

/* CPU time of a process's main thread (the one that serves requests; the
 * sampling thread is another), in ms; -1 if it is gone. */
static long main_thread_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    unsigned long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* The size_mb that makes the slow DAG (a size_mb MiB array multiplied down
 * a chain of 1000 nodes) run at least `ms` on this machine as it is now:
 * one run of CALIBRATE_MB is timed by the worker's own elapsed_us, and the
 * run time grows with the size (a little faster than it, as larger arrays
 * fit the caches less: runs last up to twice what is asked).  Tests that
 * need a run to outlast something size it so, rather than assume a speed. */
#define CALIBRATE_MB 4
#define LONG_RUN_MAX_MB 512
static int long_run_mb(int port, unsigned ms)
{
    char body[64];
    snprintf(body, sizeof body, "{\"inputs\": {\"size_mb\": %d}}", CALIBRATE_MB);
    reply r;
    assert_int_equal(run_dag(port, "slow", body, &r), 0);
    expect_status(&r, 200);
    long long us = run_stat(&r, "elapsed_us");
    reply_free(&r);
    assert_true(us > 0);
    long long mb = (long long)ms * 1000 * CALIBRATE_MB / us + 1;
    mb = mb < CALIBRATE_MB ? CALIBRATE_MB : mb > LONG_RUN_MAX_MB ? LONG_RUN_MAX_MB : mb;
    print_message("a %d MiB run took %lld us: %lld MiB for about %u ms\n", CALIBRATE_MB, us, mb, ms);
    return (int)mb;
}

/* A long run in flight: the connection its answer will come on, and what
 * the workers' main threads had spent before it was sent. */
typedef struct long_run {
    int fd;
    int mb;
    int nworkers;
    pid_t workers[MAX_PIDS];
    long cpu_before[MAX_PIDS];
} long_run;

/* Sends a run of the slow DAG of `mb` MiB on a new connection to a server
 * with `nworkers` workers; its answer is still to come. */
static long_run long_run_start(const server *s, int nworkers, int mb)
{
    long_run lr = {.fd = -1, .mb = mb};
    lr.nworkers = wait_workers(s, nworkers, HANG_MS, lr.workers);
    assert_int_equal(lr.nworkers, nworkers);
    for (int i = 0; i < nworkers; i++)
        lr.cpu_before[i] = main_thread_cpu_ms(lr.workers[i]);
    char body[64];
    snprintf(body, sizeof body, "{\"inputs\": {\"size_mb\": %d}}", mb);
    size_t len;
    char *req = request_text(s->port, "POST", "/dags/slow/run", body, &len);
    lr.fd = conn_open(s->port);
    assert_true(lr.fd >= 0);
    assert_int_equal(send_all(lr.fd, req, len), 0);
    free(req);
    return lr;
}

/* Waits until the run is under way -- a worker's main thread has spent
 * 50 ms of CPU since it was sent, which nothing else asks of an idle
 * worker -- and returns that worker's pid. */
static pid_t long_run_wait_busy(const long_run *lr)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        for (int i = 0; i < lr->nworkers; i++)
            if (main_thread_cpu_ms(lr->workers[i]) - lr->cpu_before[i] >= 50)
                return lr->workers[i];
        if (now_ms() > deadline)
            fail_msg("no worker took up the run of %d MiB", lr->mb);
        sleep_ms(5);
    }
}

/* True once the run's answer has begun to arrive. */
static bool long_run_answered(const long_run *lr)
{
    struct pollfd p = {.fd = lr->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Copies the fixtures to T's folder and writes into its cowdag.json the
 * text `to` in place of `from` (which must be there); *cfg gets its path. */
static void edited_fixture_config(const char *from, const char *to, char *cfg, size_t cap)
{
    copy_fixtures(&T);
    tmp_path(&T, "cowdag.json", cfg, cap);
    char *text = slurp(cfg, NULL), *at = text ? strstr(text, from) : NULL;
    assert_non_null(at);
    char *edited = dup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_file(cfg, edited);
    free(edited);
    free(text);
}

/* Results still being streamed to clients that stopped reading count
 * against max_run_bytes: with 40 MiB, two stalled 16 MB responses leave too
 * little for a third run, which is refused, until they are gone. */
static void stalled_streams_count_against_max_run_bytes(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"max_run_bytes\": 41943040,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    size_t len;
    char *req = request_text(T.srv.port, "POST", "/dags/big/run", big_request, &len);
    int stalled[2];
    for (int k = 0; k < 2; k++) { /* each reads the start of its answer, then stops */
        stalled[k] = conn_open(T.srv.port);
        assert_true(stalled[k] >= 0);
        assert_int_equal(send_all(stalled[k], req, len), 0);
        char buf[4096];
        assert_true(recv(stalled[k], buf, sizeof buf, 0) > 0);
    }
    free(req);
    reply r;
    assert_int_equal(run_dag(T.srv.port, "big", big_request, &r), 0);
    expect_error(&r, 422, "limit_exceeded");
    print_message("%s\n", json_string_value(json_object_get(json_object_get(r.json, "error"), "message")));
    reply_free(&r);
    assert_int_equal(run_dag(T.srv.port, "version", "{}", &r), 0); /* small runs go on */
    expect_status(&r, 200);
    reply_free(&r);
    for (int k = 0; k < 2; k++)
        close(stalled[k]);
    uint64_t deadline = now_ms() + HANG_MS;
    int status = 0;
    while (status != 200 && now_ms() < deadline) { /* once the worker sees them gone */
        assert_int_equal(run_dag(T.srv.port, "big", "{\"inputs\": {\"n\": 2000000}, \"outputs\": [\"thirds\"]}", &r), 0);
        status = r.status;
        reply_free(&r);
        if (status != 200)
            sleep_ms(50);
    }
    assert_int_equal(status, 200);
    T.passed = true;
}

/* On a server of its own, so that the worker's peak is measured from a
 * start no earlier test has raised. */
static void a_large_response_is_streamed_in_bounded_memory(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    reply r;
    assert_int_equal(http(T.srv.port, "GET", "/healthz", NULL, &r), 0); /* the worker is serving */
    expect_status(&r, 200);
    reply_free(&r);
    long before = vm_hwm_kb(kids[0]);
    assert_int_equal(run_dag(T.srv.port, "big", big_request, &r), 0);
    expect_status(&r, 200);
    char value[32];
    assert_false(reply_header(&r, "Content-Length", value, sizeof value)); /* sent as it was written */
    json_t *thirds = json_object_get(json_object_get(r.json, "outputs"), "thirds");
    assert_int_equal(json_array_size(thirds), 2000000);
    assert_true(json_real_value(json_array_get(thirds, 0)) == 1.0 / 3.0);
    assert_true(json_real_value(json_array_get(thirds, 1999999)) == 1.0 / 3.0);
    assert_true(r.len > 2000000 * 19 - 1 && r.len < 2000000 * 19 + 256); /* 18 digits and a comma each */
    assert_int_equal(run_stat(&r, "pid"), kids[0]);
    /* The worker's peak grew by the run's 16 MB array and one piece of
     * text -- not by the 38 MB of text, which was never whole. */
    long grew = vm_hwm_kb(kids[0]) - before;
    print_message("worker %d: peak grew by %ld KiB for a %zu-byte response\n", (int)kids[0], grew, r.len);
    assert_true(grew > 15 * 1024 && grew < 32 * 1024);
    reply_free(&r);

    /* An HTTP/1.0 client has no chunked encoding: the body ends where the
     * connection does. */
    const char *body = "{\"inputs\": {\"n\": 100000}}";
    char req[512];
    int len = snprintf(req, sizeof req,
                       "POST /dags/big/run HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       strlen(body), body);
    assert_int_equal(http_raw(T.srv.port, req, (size_t)len, &r), 0);
    expect_status(&r, 200);
    assert_false(reply_header(&r, "Content-Length", value, sizeof value));
    assert_false(reply_header(&r, "Transfer-Encoding", value, sizeof value));
    assert_int_equal(json_array_size(json_object_get(json_object_get(r.json, "outputs"), "thirds")), 100000);
    reply_free(&r);
    T.passed = true;
}

static void an_abandoned_stream_leaves_the_worker_serving(void **state)
{
    (void)state;
    size_t len;
    char *req = request_text(group_srv.port, "POST", "/dags/big/run", big_request, &len);
    for (int k = 0; k < 4; k++) { /* enough to reach both workers */
        int fd = conn_open(group_srv.port);
        assert_true(fd >= 0);
        assert_int_equal(send_all(fd, req, len), 0);
        char buf[16384];
        size_t got = 0;
        while (got < 100000) { /* a little of the text, then gone */
            ssize_t m = recv(fd, buf, sizeof buf, 0);
            assert_true(m > 0);
            got += (size_t)m;
        }
        close(fd);
    }
    free(req);
    reply r;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(http(group_srv.port, "GET", "/healthz", NULL, &r), 0);
        expect_status(&r, 200);
        reply_free(&r);
    }
    assert_true(log_has(&group_srv, "(aborted)"));
    group_test_ok = true; /* the worker pids are checked by the test that follows */
}

static void bad_requests_leave_every_worker_alive(void **state)
{
    (void)state;
    pid_t now[MAX_PIDS];
    int k = workers_of(&group_srv, now);
    assert_int_equal(k, group_npids);
    assert_memory_equal(now, group_pids, sizeof(pid_t) * (size_t)k);
    assert_false(log_has(&group_srv, "killed by signal"));
    assert_false(log_has(&group_srv, "respawning"));
    reply r;
    long long answer;
    pid_t pid;
    assert_int_equal(run_version(group_srv.port, &answer, &pid, &r), 0);
    assert_int_equal(answer, 1);
    assert_true(pid_in(pid, group_pids, group_npids));
    reply_free(&r);
    group_test_ok = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The master: respawn, stop, reload, scaling, recycling                 */
/* ====================================================================== */

/* A worker killed is replaced at once: the master says so as it reaps it
 * (a delay of 0, or the 100 ms back-off of a worker that died within a
 * second of its start), and the new worker serves. */
static void sigkill_of_a_worker_is_replaced_at_once(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    reply r;
    long long answer;
    pid_t before, after = 0;
    assert_int_equal(run_version(T.srv.port, &answer, &before, &r), 0);
    reply_free(&r);
    assert_int_equal(before, kids[0]);

    uint64_t t0 = now_ms();
    assert_int_equal(kill(before, SIGKILL), 0);
    char line[128];
    snprintf(line, sizeof line, "(pid %d) killed by signal 9", (int)before);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    char *log = server_log(&T.srv), *respawn = strstr(strstr(log, line), "; respawning in ");
    assert_non_null(respawn);
    unsigned long long delay = strtoull(respawn + strlen("; respawning in "), NULL, 10);
    free(log);
    assert_true(delay <= 100);
    /* dead, so it cannot take the next connection: the next answer is the
     * new worker's */
    while (after <= 0 || after == before) {
        if (run_version(T.srv.port, &answer, &after, &r) != 0)
            show_reply(&r);
        reply_free(&r);
        if (now_ms() - t0 > HANG_MS)
            fail_msg("no new worker answered within %d ms of the kill", HANG_MS);
    }
    print_message("respawned after %llu ms; a new worker answered %llu ms after the kill\n", delay,
                  (unsigned long long)(now_ms() - t0));
    assert_false(server_exited(&T.srv));
    assert_int_equal(kill(T.srv.pid, 0), 0);
    assert_int_equal(workers_of(&T.srv, kids), 1);
    assert_int_equal(kids[0], after);
    T.passed = true;
}

static void sigterm_finishes_the_inflight_run_and_exits_0(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 0);
    long_run lr = long_run_start(&T.srv, 2, long_run_mb(T.srv.port, 1000));
    long_run_wait_busy(&lr);
    uint64_t t_term = now_ms();
    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    reply r;
    memset(&r, 0, sizeof r);
    int rc = conn_read_reply(lr.fd, &r);
    uint64_t t_reply = now_ms();
    close(lr.fd);
    if (rc != 0)
        show_reply(&r);
    assert_int_equal(rc, 0);
    expect_status(&r, 200);
    assert_float_equal(json_number_value(json_object_get(json_object_get(r.json, "outputs"), "total")),
                       lr.mb * 131072.0, 1e-6);
    print_message("run took %lld us; its reply came %llu ms after SIGTERM\n", run_stat(&r, "elapsed_us"),
                  (unsigned long long)(t_reply - t_term));
    reply_free(&r);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    print_message("the master exited %llu ms after SIGTERM\n", (unsigned long long)(now_ms() - t_term));
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    /* within graceful_timeout_ms: the workers left by themselves */
    assert_false(log_has(&T.srv, "SIGKILL"));
    char last[64];
    snprintf(last, sizeof last, "cowdag[%d]: stopped\n", (int)T.srv.pid);
    assert_true(log_has(&T.srv, last));
    /* nothing of the server is left */
    uint64_t deadline = now_ms() + HANG_MS;
    while (kill(-T.srv.pid, 0) == 0 && now_ms() < deadline)
        sleep_ms(10);
    assert_int_equal(kill(-T.srv.pid, 0), -1);
    T.passed = true;
}

static const char version_dag[] = "{\n"
                                  "  \"name\": \"version\",\n"
                                  "  \"description\": \"answers a constant; the reload test edits it\",\n"
                                  "  \"nodes\": {\n"
                                  "    \"version\": { \"const\": %d },\n"
                                  "    \"answer\": { \"op\": \"add\", \"args\": [\"version\", 0] }\n"
                                  "  }\n"
                                  "}\n";

/* A request that never finishes arriving holds its worker only until
 * graceful_timeout_ms: then the worker closes it and leaves by itself (exit
 * 0, its last log line), before the master's SIGKILL backstop. */
static void sigterm_with_a_stalled_client_lets_the_worker_leave_by_itself(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"graceful_timeout_ms\": 60000", "\"graceful_timeout_ms\": 1000", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /dags/version/run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{\"inputs\"",
                     T.srv.port);
    assert_int_equal(send_all(fd, head, (size_t)n), 0); /* 10 of 100 body bytes, and no more */
    wait_server_took(fd, true);                          /* the request is in flight */
    uint64_t t_term = now_ms();
    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    uint64_t took = now_ms() - t_term;
    close(fd);
    print_message("the master exited %llu ms after SIGTERM\n", (unsigned long long)took);
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    assert_true(took >= 1000); /* the worker held on for graceful_timeout_ms... */
    assert_true(log_has(&T.srv, "graceful_timeout_ms passed with 1 requests in flight"));
    assert_true(log_has(&T.srv, "worker 0 served"));
    assert_false(log_has(&T.srv, "SIGKILL")); /* ...and left before the backstop a second later */
    T.passed = true;
}

/* The nice value of a process (field 19 of /proc/PID/stat). */
static int nice_of(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    assert_non_null(p);
    int nice = 99;
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d", &nice), 1);
    return nice;
}

static void worker_priority_sets_the_workers_nice_value(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"worker_priority\": 7,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    assert_int_equal(nice_of(T.srv.pid), nice_of(getpid())); /* the master keeps its own */
    for (int i = 0; i < 2; i++) {
        uint64_t deadline = now_ms() + HANG_MS; /* each sets it as it starts */
        while (nice_of(kids[i]) != 7 && now_ms() < deadline)
            sleep_ms(10);
        assert_int_equal(nice_of(kids[i]), 7);
    }
    T.passed = true;
}

/* The master binds before it loads any state: an address in use fails at
 * once, with nothing loaded. */
static void an_address_in_use_fails_before_the_state_loads(void **state)
{
    (void)state;
    int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(taken >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(taken, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(taken, (struct sockaddr *)&sa, &len), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s serve -c %s --listen 127.0.0.1:%d 2>&1", cowdag_bin(), FIXTURES "/cowdag.json",
             ntohs(sa.sin_port));
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    close(taken);
    print_message("%s", out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(out, "Address already in use"));
    assert_null(strstr(out, "loaded")); /* no "generation 1 loaded: ..." */
    T.passed = true;
}


/* Reads the answer to a long run (waiting as long as a hung test would be
 * let, not the usual receive timeout): 200 and the sum the DAG computes. */
static void expect_long_run_ok(const long_run *lr)
{
    struct pollfd p = {.fd = lr->fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, HANG_MS), 1);
    reply r;
    memset(&r, 0, sizeof r);
    assert_int_equal(conn_read_reply(lr->fd, &r), 0);
    expect_status(&r, 200);
    assert_float_equal(json_number_value(json_object_get(json_object_get(r.json, "outputs"), "total")),
                       lr->mb * 131072.0, 1e-6);
    reply_free(&r);
}

/* A worker busy with a long run still has a fresh memory sample: its
 * sampling thread writes it to the scoreboard without waiting for the
 * worker's loop.  The copies of /stats judged are those taken while the run
 * was going on and at least 1.5 intervals into it, when a sample published
 * only between requests would be that old; the run is sized to last three
 * intervals or more, and sized again, longer, if it ended before three
 * copies were judged. */
static void a_busy_worker_keeps_its_memory_sample_fresh(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    json_t *doc = stats_sampled(T.srv.port, 2); /* both have a first sample */
    json_decref(doc);
    long long oldest = -1;
    int judged = 0;
    for (unsigned ms = 3 * STATS_INTERVAL_MS; judged < 3 && ms <= 48 * STATS_INTERVAL_MS; ms *= 2) {
        long_run lr = long_run_start(&T.srv, 2, long_run_mb(T.srv.port, ms));
        pid_t busy = long_run_wait_busy(&lr);
        uint64_t t0 = now_ms();
        while (!long_run_answered(&lr)) {
            reply r;
            assert_int_equal(http(T.srv.port, "GET", "/stats", NULL, &r), 0);
            expect_status(&r, 200);
            bool running = !long_run_answered(&lr);
            if (running && now_ms() - t0 >= STATS_INTERVAL_MS * 3 / 2) {
                judged++;
                size_t i;
                json_t *w;
                json_array_foreach(json_object_get(r.json, "workers"), i, w)
                {
                    json_t *ago = json_object_get(w, "sampled_ms_ago");
                    assert_true(json_is_integer(ago));
                    if (json_integer_value(json_object_get(w, "pid")) == busy && json_integer_value(ago) > oldest)
                        oldest = json_integer_value(ago);
                }
            }
            reply_free(&r);
            sleep_ms(STATS_INTERVAL_MS / 4);
        }
        print_message("%d copies of /stats judged during a %llu ms run; the busy worker's oldest sample was %lld "
                      "ms old\n",
                      judged, (unsigned long long)(now_ms() - t0), oldest);
        expect_long_run_ok(&lr);
        close(lr.fd);
    }
    assert_true(judged >= 3);
    assert_true(oldest <= STATS_INTERVAL_MS * 3 / 2); /* one interval, and half of one for the sampling */
    T.passed = true;
}

/* A worker told to retire reports "draining" at once, even while a long
 * run keeps it from reading its own signal; it finishes the run.  The run
 * is sized to outlast a reload; if the reload took longer still, the next
 * generation's worker is tried with a run twice as long. */
static void a_busy_retiring_worker_reports_draining(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    bool judged = false;
    for (int gen = 2, ms = 2000; !judged && gen <= 5; gen++, ms *= 2) {
        long_run lr = long_run_start(&T.srv, 1, long_run_mb(T.srv.port, (unsigned)ms));
        pid_t old = long_run_wait_busy(&lr);
        assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
        char serving[64];
        snprintf(serving, sizeof serving, "generation %d serving", gen);
        assert_true(wait_log(&T.srv, serving, HANG_MS));
        reply r;
        assert_int_equal(http(T.srv.port, "GET", "/stats", NULL, &r), 0); /* the new worker answers */
        expect_status(&r, 200);
        judged = !long_run_answered(&lr); /* the old worker was still running when /stats was read */
        const char *status = NULL;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(r.json, "workers"), i, w)
        if (json_integer_value(json_object_get(w, "pid")) == old)
            status = json_string_value(json_object_get(w, "status"));
        print_message("generation %d: the run of %d MiB was %s when /stats said the old worker was %s\n", gen,
                      lr.mb, judged ? "going on" : "over", status ? status : "gone");
        if (judged) {
            assert_non_null(status);
            assert_string_equal(status, "draining");
        }
        reply_free(&r);
        expect_long_run_ok(&lr); /* and it finishes its run */
        close(lr.fd);
    }
    assert_true(judged);
    T.passed = true;
}

static void sighup_reloads_a_changed_dag_without_failing_a_request(void **state)
{
    (void)state;
    copy_fixtures(&T);
    char config[256], dagfile[256], text[1024];
    tmp_path(&T, "cowdag.json", config, sizeof config);
    tmp_path(&T, "dags/version.json", dagfile, sizeof dagfile);
    server_start(&T.srv, config, 0);
    pid_t old[MAX_PIDS], now[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, old), 2);
    reply r;
    long long answer;
    pid_t pid;
    assert_int_equal(run_version(T.srv.port, &answer, &pid, &r), 0);
    reply_free(&r);
    assert_int_equal(answer, 1);

    loop_start(&T, 2, 0);
    loop_wait_answers(&T, 1); /* the loop is going */
    snprintf(text, sizeof text, version_dag, 2);
    write_file(dagfile, text);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);

    /* our own requests too, until the new value shows */
    int own_failed = 0;
    uint64_t deadline = now_ms() + HANG_MS;
    answer = 1;
    while (answer != 2 && now_ms() < deadline) {
        if (run_version(T.srv.port, &answer, &pid, &r) != 0) {
            own_failed++;
            show_reply(&r);
        }
        reply_free(&r);
    }
    assert_int_equal(answer, 2);
    assert_false(pid_in(pid, old, 2));
    /* the old generation retires; keep the loop going until it has gone */
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    deadline = now_ms() + HANG_MS;
    while ((kill(old[0], 0) == 0 || kill(old[1], 0) == 0) && now_ms() < deadline)
        sleep_ms(10);
    loop_wait_answers(&T, __atomic_load_n(&T.loop->ok, __ATOMIC_SEQ_CST) + 10); /* the new ones answer */
    loop_stop(&T);
    print_message("client loop: %d ok, %d failed, %d saw the new value%s%s\n", T.loop->ok, T.loop->failed,
                  T.loop->saw_new, T.loop->failed ? "; first failure: " : "", T.loop->failure);
    assert_int_equal(own_failed, 0);
    assert_int_equal(T.loop->failed, 0);
    assert_true(T.loop->ok > 0);
    assert_true(T.loop->saw_new > 0);
    /* a new generation: new pids only */
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, now), 2);
    assert_false(pid_in(now[0], old, 2));
    assert_false(pid_in(now[1], old, 2));
    assert_true(log_has(&T.srv, "generation 2 loaded"));
    T.passed = true;
}

static void sigttin_adds_a_worker_and_sigttou_removes_one(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS], more[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    assert_int_equal(kill(T.srv.pid, SIGTTIN), 0);
    assert_int_equal(wait_workers(&T.srv, 3, HANG_MS, more), 3);
    assert_true(pid_in(kids[0], more, 3) && pid_in(kids[1], more, 3));
    assert_true(log_has(&T.srv, "SIGTTIN: 3 workers"));
    assert_int_equal(kill(T.srv.pid, SIGTTOU), 0);
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    assert_true(log_has(&T.srv, "SIGTTOU: 2 workers"));
    assert_int_equal(kill(T.srv.pid, SIGTTOU), 0);
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    /* the last worker stays */
    assert_int_equal(kill(T.srv.pid, SIGTTOU), 0);
    assert_true(wait_log(&T.srv, "SIGTTOU: 1 worker, the least; it stays", HANG_MS));
    assert_int_equal(workers_of(&T.srv, kids), 1);
    reply r;
    long long answer;
    pid_t pid;
    assert_int_equal(run_version(T.srv.port, &answer, &pid, &r), 0);
    assert_int_equal(pid, kids[0]);
    reply_free(&r);
    assert_false(server_exited(&T.srv));
    T.passed = true;
}

static void max_requests_recycles_the_worker(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 */
    pid_t seen[MAX_PIDS];
    int nseen = 0, failed = 0;
    for (int i = 0; i < 60; i++) {
        reply r;
        long long answer;
        pid_t pid;
        if (run_version(T.srv.port, &answer, &pid, &r) != 0) {
            failed++;
            print_message("request %d failed: ", i);
            show_reply(&r);
        } else if (!pid_in(pid, seen, nseen) && nseen < MAX_PIDS) {
            seen[nseen++] = pid;
        }
        reply_free(&r);
    }
    print_message("60 requests: %d pids answered, %d failed\n", nseen, failed);
    assert_int_equal(failed, 0);
    assert_true(nseen >= 2);
    /* the master either refills the slot as the worker starts draining, or
     * (when the drain is quicker than the master's look) once it exits */
    assert_true(log_has(&T.srv, "is recycling; starting its replacement") ||
                log_has(&T.srv, "exited normally (recycled)"));
    T.passed = true;
}

/* A client that sends half a request and stalls must not stop a recycling
 * worker's slot from serving: the master refills the slot as the worker
 * starts draining, and the drain itself ends at graceful_timeout_ms. */
static void a_stalled_client_does_not_stop_a_recycling_slot(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 */
    int stalled = conn_open(T.srv.port);
    assert_true(stalled >= 0);
    const char *half = "POST /dags/version/run HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp";
    assert_int_equal(send_all(stalled, half, strlen(half)), 0);
    int failed = 0;
    uint64_t t0 = now_ms(), slowest = 0;
    for (int i = 0; i < 60; i++) { /* three recycles' worth */
        reply r;
        long long answer;
        pid_t pid;
        uint64_t t = now_ms();
        if (run_version(T.srv.port, &answer, &pid, &r) != 0)
            failed++;
        reply_free(&r);
        slowest = now_ms() - t > slowest ? now_ms() - t : slowest;
    }
    print_message("60 requests beside a stalled one: %d failed, slowest %llu ms, %llu ms in all\n", failed,
                  (unsigned long long)slowest, (unsigned long long)(now_ms() - t0));
    close(stalled);
    assert_int_equal(failed, 0);
    /* a slot that waited for the drained worker to leave would answer after
     * graceful_timeout_ms */
    assert_true(slowest < GRACEFUL_TIMEOUT_MS / 2);
    T.passed = true;
}

/* A connection a worker has accepted is its to answer, even when the
 * request bytes come a moment after the connect (a slow client, a request
 * split over packets): the worker must not retire with it unanswered.  The
 * client here sends only once a worker has accepted the connection, which
 * makes the race that concurrent clients hit now and then (an empty reply)
 * happen every time. */
static int open_idle_connection(int port)
{
    int fd = conn_open(port);
    assert_true(fd >= 0);
    wait_server_took(fd, false);
    return fd;
}

static void send_version_and_expect_200(int fd, int port)
{
    size_t len;
    char *req = request_text(port, "POST", "/dags/version/run", "{}", &len);
    int sent = send_all(fd, req, len);
    free(req);
    reply r;
    memset(&r, 0, sizeof r);
    int rc = conn_read_reply(fd, &r);
    close(fd);
    if (rc != 0 || sent != 0)
        print_message("the early connection got no answer (send %s): %s\n", sent ? strerror(errno) : "ok",
                      r.err);
    assert_int_equal(rc, 0);
    expect_status(&r, 200);
    reply_free(&r);
}

static void recycling_worker_answers_the_connection_it_accepted(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 (+0..2 jitter) */
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    int early = open_idle_connection(T.srv.port);
    /* A child sends 25 requests, one after the other: the worker drains
     * after its 20th to 22nd.  Once 22 are answered, or 20 and the answers
     * have stopped coming for 100 ms, it is draining (or gone): then the
     * early connection sends its request. */
    loop_start(&T, -1, 25);
    int last = -1;
    uint64_t since = now_ms(), deadline = now_ms() + HANG_MS;
    for (;;) {
        int ok = __atomic_load_n(&T.loop->ok, __ATOMIC_SEQ_CST) + __atomic_load_n(&T.loop->failed, __ATOMIC_SEQ_CST);
        if (ok != last) {
            last = ok;
            since = now_ms();
        }
        if (ok >= 22 || (ok >= 20 && now_ms() - since >= 100) || now_ms() > deadline)
            break;
        sleep_ms(2);
    }
    print_message("the early connection sends after %d other answers\n", last);
    send_version_and_expect_200(early, T.srv.port);
    loop_stop_when_done(&T, HANG_MS);
    print_message("the other requests: %d ok, %d failed%s%s\n", T.loop->ok, T.loop->failed,
                  T.loop->failed ? "; first failure: " : "", T.loop->failure);
    assert_int_equal(T.loop->failed, 0);
    assert_int_equal(T.loop->ok, 25);
    /* the master either refills the slot as the worker starts draining, or
     * (when the drain is quicker than the master's look) once it exits */
    assert_true(log_has(&T.srv, "is recycling; starting its replacement") ||
                log_has(&T.srv, "exited normally (recycled)"));
    T.passed = true;
}

static void reload_answers_a_connection_the_old_worker_accepted(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 0);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    int early = open_idle_connection(T.srv.port);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    sleep_ms(300); /* time for an old worker to retire if it thinks it is idle */
    send_version_and_expect_200(early, T.srv.port);
    T.passed = true;
}

static void broken_config_on_sighup_keeps_the_old_generation(void **state)
{
    (void)state;
    copy_fixtures(&T);
    char config[256], good_config[256];
    tmp_path(&T, "cowdag.json", config, sizeof config);
    snprintf(good_config, sizeof good_config, "%s", FIXTURES "/cowdag.json");
    server_start(&T.srv, config, 0);
    pid_t old[MAX_PIDS], now[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, old), 2);
    write_file(config, "{ \"workers\": 2, \"listen\": \n");
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "reload failed", HANG_MS));
    assert_true(log_has(&T.srv, "generation 1 goes on serving"));
    for (int i = 0; i < 10; i++) {
        reply r;
        long long answer;
        pid_t pid;
        assert_int_equal(run_version(T.srv.port, &answer, &pid, &r), 0);
        assert_int_equal(answer, 1);
        assert_true(pid_in(pid, old, 2));
        reply_free(&r);
    }
    assert_int_equal(workers_of(&T.srv, now), 2);
    assert_memory_equal(now, old, 2 * sizeof(pid_t));
    assert_false(server_exited(&T.srv));
    /* once the file is mended, the next reload goes through */
    char *text = slurp(good_config, NULL);
    assert_non_null(text);
    write_file(config, text);
    free(text);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, now), 2);
    assert_false(pid_in(now[0], old, 2) || pid_in(now[1], old, 2));
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Zero loss: keep-alive clients across reload, scaling, recycling, stop */
/* ====================================================================== */

/* Keep-alive clients, each in a child process, that count every request
 * they sent and every one answered.  A request is lost when its connection
 * ends before a whole 200 came back; a connect refused is counted apart
 * (after a stop the port refuses, which loses nothing).  A response with
 * Connection: close makes the client reconnect, as HTTP clients do. */
#define KA_CLIENTS 8

typedef struct ka_shared {
    int stop;
    int going; /* clients that have had an answer */
    long sent, answered, lost, refused, reconnects;
    char failure[256]; /* the first loss */
} ka_shared;

static ka_shared *KA;
static pid_t ka_pids[KA_CLIENTS];

static void ka_lost(ka_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ka_lost(ka_shared *sh, const char *fmt, ...)
{
    if (__atomic_add_fetch(&sh->lost, 1, __ATOMIC_SEQ_CST) == 1) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(sh->failure, sizeof sh->failure, fmt, ap);
        va_end(ap);
    }
}

static _Noreturn void ka_client(int port, ka_shared *sh)
{
    char req[256];
    int len = snprintf(req, sizeof req,
                       "POST /dags/version/run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}",
                       port);
    int fd = -1;
    bool going = false;
    while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
        if (fd < 0) {
            fd = conn_open(port);
            if (fd < 0) {
                if (errno == ECONNREFUSED)
                    __atomic_add_fetch(&sh->refused, 1, __ATOMIC_SEQ_CST);
                else
                    ka_lost(sh, "connect: %s", strerror(errno));
                sleep_ms(5);
                continue;
            }
            __atomic_add_fetch(&sh->reconnects, 1, __ATOMIC_SEQ_CST);
        }
        __atomic_add_fetch(&sh->sent, 1, __ATOMIC_SEQ_CST);
        reply r;
        memset(&r, 0, sizeof r);
        if (send_all(fd, req, (size_t)len) != 0) {
            ka_lost(sh, "send: %s", strerror(errno));
        } else if (conn_read_one(fd, &r) != 0) {
            ka_lost(sh, "%s", r.err);
        } else if (r.status != 200) {
            ka_lost(sh, "status %d: %.120s", r.status, r.body);
        } else {
            __atomic_add_fetch(&sh->answered, 1, __ATOMIC_SEQ_CST);
            if (!going && (going = true))
                __atomic_add_fetch(&sh->going, 1, __ATOMIC_SEQ_CST);
            char conn[32];
            if (!reply_header(&r, "Connection", conn, sizeof conn) || strcasecmp(conn, "close") != 0) {
                reply_free(&r);
                continue; /* keep the connection */
            }
        }
        reply_free(&r);
        close(fd);
        fd = -1;
    }
    _exit(0);
}

static void ka_start(int port)
{
    KA = mmap(NULL, sizeof *KA, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(KA != MAP_FAILED);
    memset(KA, 0, sizeof *KA);
    fflush(NULL);
    for (int i = 0; i < KA_CLIENTS; i++) {
        ka_pids[i] = fork();
        assert_true(ka_pids[i] >= 0);
        if (ka_pids[i] == 0)
            ka_client(port, KA);
    }
    uint64_t deadline = now_ms() + HANG_MS;
    while (__atomic_load_n(&KA->going, __ATOMIC_SEQ_CST) < KA_CLIENTS) { /* every client has been answered */
        if (now_ms() > deadline)
            fail_msg("%d of %d keep-alive clients had an answer in %d ms", KA->going, KA_CLIENTS, HANG_MS);
        sleep_ms(5);
    }
}

static long ka_answered(void) { return __atomic_load_n(&KA->answered, __ATOMIC_SEQ_CST); }

/* Waits until the clients have `more` answers beyond what they had. */
static void ka_wait_more(long more)
{
    long want = ka_answered() + more;
    uint64_t deadline = now_ms() + HANG_MS;
    while (ka_answered() < want) {
        if (now_ms() > deadline)
            fail_msg("the keep-alive clients got %ld answers, not %ld, in %d ms", ka_answered(), want, HANG_MS);
        sleep_ms(5);
    }
}

/* Stops the clients (each ends its exchange first). */
static void ka_stop(void)
{
    if (!KA)
        return;
    __atomic_store_n(&KA->stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < KA_CLIENTS; i++) {
        if (ka_pids[i] <= 0)
            continue;
        uint64_t deadline = now_ms() + HANG_MS;
        int st;
        while (waitpid(ka_pids[i], &st, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(ka_pids[i], SIGKILL);
                waitpid(ka_pids[i], &st, 0);
                break;
            }
            sleep_ms(5);
        }
        ka_pids[i] = 0;
    }
}

/* Stops the clients and checks that nothing they sent went unanswered. */
static void ka_expect_no_loss(const char *what)
{
    ka_stop();
    print_message("%s: %ld sent, %ld answered, %ld lost, %ld connections, %ld connects refused%s%s\n", what, KA->sent,
                  KA->answered, KA->lost, KA->reconnects, KA->refused, KA->lost ? "; first loss: " : "",
                  KA->failure);
    assert_int_equal(KA->lost, 0);
    assert_int_equal(KA->answered, KA->sent);
    assert_true(KA->answered > 0);
}

static int ka_setup(void **state)
{
    KA = NULL;
    return standalone_setup(state);
}

static int ka_teardown(void **state)
{
    ka_stop();
    if (KA)
        munmap(KA, sizeof *KA);
    KA = NULL;
    return standalone_teardown(state);
}

static void keepalive_clients_lose_nothing_across_sighup(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    ka_start(T.srv.port);
    ka_wait_more(100);
    for (int gen = 2; gen <= 4; gen++) {
        assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
        char line[64];
        snprintf(line, sizeof line, "generation %d serving", gen);
        assert_true(wait_log(&T.srv, line, HANG_MS));
        /* the old generation leaves while the clients go on */
        assert_true(wait_gone(kids[0]) && wait_gone(kids[1]));
        assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
        ka_wait_more(100);
    }
    ka_expect_no_loss("three reloads");
    T.passed = true;
}

static void keepalive_clients_lose_nothing_across_sigttin_and_sigttou(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    ka_start(T.srv.port);
    ka_wait_more(100);
    const int sig[] = {SIGTTIN, SIGTTOU, SIGTTOU, SIGTTIN, SIGTTOU};
    const int want[] = {3, 2, 1, 2, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(kill(T.srv.pid, sig[i]), 0);
        assert_int_equal(wait_workers(&T.srv, want[i], HANG_MS, kids), want[i]);
        ka_wait_more(100);
    }
    ka_expect_no_loss("workers 2 -> 3 -> 2 -> 1 -> 2 -> 1");
    T.passed = true;
}

static void keepalive_clients_lose_nothing_across_max_requests(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 */
    ka_start(T.srv.port);
    ka_wait_more(400); /* about twenty recycles */
    ka_expect_no_loss("max_requests 20");
    assert_true(log_has(&T.srv, "is recycling; starting its replacement") ||
                log_has(&T.srv, "exited normally (recycled)"));
    T.passed = true;
}

static void keepalive_clients_lose_nothing_across_sigterm(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    ka_start(T.srv.port);
    ka_wait_more(100);
    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    /* the clients go on until each has been refused: the port is closed */
    uint64_t deadline = now_ms() + HANG_MS;
    while (__atomic_load_n(&KA->refused, __ATOMIC_SEQ_CST) < KA_CLIENTS && now_ms() < deadline)
        sleep_ms(5);
    ka_expect_no_loss("SIGTERM");
    assert_true(KA->refused >= KA_CLIENTS);
    assert_false(log_has(&T.srv, "SIGKILL"));
    T.passed = true;
}

/* --- a request already sent on an idle keep-alive connection ------------- */

/* True while `sig` is pending for the process (its shared pending set). */
static bool signal_pending(pid_t pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    bool pending = false;
    unsigned long long mask;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "ShdPnd: %llx", &mask) == 1)
            pending = mask & (1ull << (sig - 1));
    if (f)
        fclose(f);
    return pending;
}

/* The worker is stopped (SIGSTOP) with a keep-alive connection idle; the
 * client sends its next request, which waits unread in the worker's
 * socket; the master tells the worker to retire (the signal waits
 * pending); the worker goes on: it must answer the request, marking the
 * answer Connection: close, and then leave. */
static void retiring_with_a_request_unread(int signal_to_master)
{
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    char req[256];
    int len = snprintf(req, sizeof req,
                       "POST /dags/version/run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}",
                       T.srv.port);
    reply r;
    assert_int_equal(send_all(fd, req, (size_t)len), 0);
    assert_int_equal(conn_read_one(fd, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);

    assert_int_equal(kill(kids[0], SIGSTOP), 0);
    assert_int_equal(send_all(fd, req, (size_t)len), 0); /* unread: the worker is stopped */
    assert_int_equal(kill(T.srv.pid, signal_to_master), 0);
    uint64_t deadline = now_ms() + HANG_MS;
    /* the master has told it: SIGTERM to retire, SIGINT to stop */
    while (!signal_pending(kids[0], SIGTERM) && !signal_pending(kids[0], SIGINT)) {
        if (now_ms() > deadline)
            fail_msg("the master did not signal its worker within %d ms", HANG_MS);
        sleep_ms(5);
    }
    assert_int_equal(kill(kids[0], SIGCONT), 0);
    int rc = conn_read_one(fd, &r);
    if (rc != 0)
        show_reply(&r);
    assert_int_equal(rc, 0);
    expect_status(&r, 200);
    char conn[32] = "";
    assert_true(reply_header(&r, "Connection", conn, sizeof conn));
    assert_string_equal(conn, "close");
    reply_free(&r);
    char byte;
    assert_int_equal(recv(fd, &byte, 1, 0), 0); /* and then it closes */
    close(fd);
    assert_true(wait_gone(kids[0]));
}

static void a_reload_answers_a_request_sent_on_an_idle_keepalive_connection(void **state)
{
    (void)state;
    retiring_with_a_request_unread(SIGHUP);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    T.passed = true;
}

static void a_stop_answers_a_request_sent_on_an_idle_keepalive_connection(void **state)
{
    (void)state;
    retiring_with_a_request_unread(SIGTERM);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    T.passed = true;
}

/* --- the master's death --------------------------------------------------- */

static void workers_leave_when_the_master_is_killed(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    int port = T.srv.port;
    uint64_t t0 = now_ms();
    assert_int_equal(kill(T.srv.pid, SIGKILL), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_true(wait_gone(kids[0]) && wait_gone(kids[1]));
    uint64_t took = now_ms() - t0;
    print_message("both workers gone %llu ms after the master's SIGKILL\n", (unsigned long long)took);
    assert_true(took <= 2000);
    /* the port is free for a new master at once */
    server next;
    server_start_at(&next, FIXTURES "/cowdag.json", 1, port);
    assert_int_equal(next.port, port);
    server_stop(&next);
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Connection defense                                                   */
/* ====================================================================== */

/* Waits for the server to close the connection, reading (and returning
 * how many bytes of) whatever it sends; *took gets the ms from t0. */
static size_t wait_closed(int fd, uint64_t t0, uint64_t *took)
{
    size_t got = 0;
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
                break;
            if (n > 0)
                got += (size_t)n;
        }
        if (now_ms() > deadline)
            fail_msg("the server kept the connection open for %d ms", HANG_MS);
    }
    *took = now_ms() - t0;
    return got;
}

/* A header dripped a byte at a time must still arrive whole within
 * header_timeout_ms: the server closes the connection then, though every
 * byte came well within any idle timeout. */
static void a_header_must_arrive_within_header_timeout_ms(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"header_timeout_ms\": 1000,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    uint64_t t0 = now_ms();
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t sent = 0;
    bool closed = false;
    while (!closed && now_ms() - t0 < HANG_MS) { /* a byte every 50 ms */
        char c = sent < strlen(head) ? head[sent] : 'a';
        if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
            break;
        sent++;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        closed = poll(&p, 1, 50) == 1;
    }
    uint64_t took;
    size_t answer = wait_closed(fd, t0, &took);
    close(fd);
    print_message("closed after %llu ms and %zu bytes dripped; %zu bytes of answer\n", (unsigned long long)took, sent,
                  answer);
    assert_true(took >= 1000);
    assert_int_equal(answer, 0);
    T.passed = true;
}

static void an_idle_keepalive_connection_closes_after_keepalive_timeout_ms(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"keepalive_timeout_ms\": 500,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send_all(fd, req, strlen(req)), 0);
    reply r;
    assert_int_equal(conn_read_one(fd, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    uint64_t t0 = now_ms(), took;
    assert_int_equal(wait_closed(fd, t0, &took), 0);
    close(fd);
    print_message("an idle keep-alive connection closed after %llu ms\n", (unsigned long long)took);
    assert_true(took >= 500);
    T.passed = true;
}

/* With 256 open files a worker takes fewer connections than the test
 * opens; idle keep-alive connections and headers that never end fill every
 * worker, and requests are still answered: the longest-idle connections
 * make room, the dripping ones end at header_timeout_ms. */
#define FLOOD_NOFILE 256
#define FLOOD_EACH 300
static void a_flood_of_idle_and_unfinished_connections_locks_nobody_out(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"header_timeout_ms\": 2000,", cfg, sizeof cfg);
    server_nofile = FLOOD_NOFILE;
    server_start(&T.srv, cfg, 2);
    server_nofile = 0;
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    char line[128];
    snprintf(line, sizeof line, "open files %d", FLOOD_NOFILE);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    static int idle[FLOOD_EACH], drip[FLOOD_EACH];
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int nidle = 0, ndrip = 0;
    for (int i = 0; i < FLOOD_EACH; i++) { /* kept open, idle after one answer */
        int fd = conn_open(T.srv.port);
        assert_true(fd >= 0);
        reply r;
        if (send_all(fd, req, strlen(req)) == 0 && conn_read_one(fd, &r) == 0 && r.status == 200)
            idle[nidle++] = fd;
        else
            close(fd);
        reply_free(&r);
    }
    for (int i = 0; i < FLOOD_EACH; i++) { /* a header begun and never ended */
        int fd = conn_open(T.srv.port);
        assert_true(fd >= 0);
        assert_int_equal(send_all(fd, "GET /healthz HTTP/1.1\r\nHost", 27), 0);
        drip[ndrip++] = fd;
    }
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        reply r;
        if (http(T.srv.port, "GET", "/healthz", NULL, &r) == 0 && r.status == 200)
            ok++;
        else
            show_reply(&r);
        reply_free(&r);
    }
    print_message("%d idle and %d unfinished connections opened; %d of 20 requests answered\n", nidle, ndrip, ok);
    assert_int_equal(nidle, FLOOD_EACH);
    assert_int_equal(ok, 20);
    for (int i = 0; i < nidle; i++)
        close(idle[i]);
    for (int i = 0; i < ndrip; i++)
        close(drip[i]);
    T.passed = true;
}

/* }====================================================================== */

#define STANDALONE(f) cmocka_unit_test_setup_teardown(f, standalone_setup, standalone_teardown)
#define IN_GROUP(f) cmocka_unit_test_setup_teardown(f, in_group_setup, in_group_teardown)
#define KEEPALIVE(f) cmocka_unit_test_setup_teardown(f, ka_setup, ka_teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='sig*' runs the tests so named */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest routes[] = {
        IN_GROUP(run_answers_outputs_and_stats),
        IN_GROUP(run_accepts_a_chunked_body),
        IN_GROUP(dags_lists_every_dag),
        IN_GROUP(dag_detail_lists_nodes),
        IN_GROUP(dag_dot_is_a_digraph),
        IN_GROUP(healthz_says_ok),
        IN_GROUP(gc_collect_is_forbidden_without_admin),
        IN_GROUP(stats_and_metrics_describe_every_worker),
        IN_GROUP(cowdag_stats_prints_a_row_per_worker),
    };
    const struct CMUnitTest errors[] = {
        IN_GROUP(bad_json_is_400),
        IN_GROUP(deep_nesting_is_400_and_the_worker_survives),
        IN_GROUP(wrong_types_are_422_type_error),
        IN_GROUP(unknown_dag_is_404),
        IN_GROUP(unknown_route_is_404_not_found),
        IN_GROUP(unknown_output_is_422),
        IN_GROUP(missing_input_is_422),
        IN_GROUP(op_error_is_422_naming_the_node),
        IN_GROUP(limit_is_422_limit_exceeded),
        IN_GROUP(body_too_large_by_content_length_is_413),
        IN_GROUP(chunked_body_too_large_is_413),
        IN_GROUP(wrong_method_is_405_with_allow),
        IN_GROUP(other_methods_are_405_with_the_routes_allow),
        IN_GROUP(an_abandoned_stream_leaves_the_worker_serving),
        IN_GROUP(http11_without_host_is_400_bad_request),
        IN_GROUP(conflicting_body_lengths_are_400_bad_request),
        IN_GROUP(a_body_that_is_not_an_object_is_422_type_error),
        IN_GROUP(bad_requests_leave_every_worker_alive),
    };
    const struct CMUnitTest master[] = {
        STANDALONE(gc_collect_answers_when_admin),
        STANDALONE(a_large_response_is_streamed_in_bounded_memory),
        STANDALONE(stalled_streams_count_against_max_run_bytes),
        STANDALONE(tuned_full_collection_copies_the_tracked_pages_of_every_worker),
        STANDALONE(freeze_immortal_keeps_the_state_shared_through_10000_requests),
        STANDALONE(sigkill_of_a_worker_is_replaced_at_once),
        STANDALONE(sigterm_finishes_the_inflight_run_and_exits_0),
        STANDALONE(sigterm_with_a_stalled_client_lets_the_worker_leave_by_itself),
        STANDALONE(worker_priority_sets_the_workers_nice_value),
        STANDALONE(an_address_in_use_fails_before_the_state_loads),
        STANDALONE(a_busy_worker_keeps_its_memory_sample_fresh),
        STANDALONE(a_busy_retiring_worker_reports_draining),
        STANDALONE(sighup_reloads_a_changed_dag_without_failing_a_request),
        STANDALONE(sigttin_adds_a_worker_and_sigttou_removes_one),
        STANDALONE(max_requests_recycles_the_worker),
        STANDALONE(broken_config_on_sighup_keeps_the_old_generation),
        STANDALONE(recycling_worker_answers_the_connection_it_accepted),
        STANDALONE(a_stalled_client_does_not_stop_a_recycling_slot),
        STANDALONE(reload_answers_a_connection_the_old_worker_accepted),
        STANDALONE(a_reload_answers_a_request_sent_on_an_idle_keepalive_connection),
        STANDALONE(a_stop_answers_a_request_sent_on_an_idle_keepalive_connection),
        STANDALONE(workers_leave_when_the_master_is_killed),
        STANDALONE(a_header_must_arrive_within_header_timeout_ms),
        STANDALONE(an_idle_keepalive_connection_closes_after_keepalive_timeout_ms),
        STANDALONE(a_flood_of_idle_and_unfinished_connections_locks_nobody_out),
    };
    const struct CMUnitTest zero_loss[] = {
        KEEPALIVE(keepalive_clients_lose_nothing_across_sighup),
        KEEPALIVE(keepalive_clients_lose_nothing_across_sigttin_and_sigttou),
        KEEPALIVE(keepalive_clients_lose_nothing_across_max_requests),
        KEEPALIVE(keepalive_clients_lose_nothing_across_sigterm),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("server routes", routes, group_setup_default, group_teardown);
    failed += cmocka_run_group_tests_name("server errors", errors, group_setup_default, group_teardown);
    failed += cmocka_run_group_tests_name("server master", master, NULL, NULL);
    failed += cmocka_run_group_tests_name("server zero loss", zero_loss, NULL, NULL);
    return failed ? 1 : 0;
}
