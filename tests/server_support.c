/* server_support.c: the harness of the suites that run `cowdag serve`
 * (tests/server_support.h): the server under test and its processes, a tiny
 * HTTP/1.1 client, and the assertions on its replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/clock.h"
#include "tests/server_support.h"
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

/* ====================================================================== */
/* {  Small helpers                                                        */
/* ====================================================================== */

uint64_t now_ms(void) { return base_now_ms(); } /* the server's clock too */

void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Replaces a file in one step (write aside, rename), so the server never
 * reads half of it. */
void write_file(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

void copy_file(const char *from, const char *to)
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
void copy_tree(const char *from, const char *to)
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

void rm_tree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* }====================================================================== */

/* ====================================================================== */
/* {  Processes: children of the master, from /proc                         */
/* ====================================================================== */

/* State letter and parent of a process ('\0' if it is gone). */
char proc_state(pid_t pid, pid_t *ppid)
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
int children_of(pid_t parent, pid_t *out, int cap)
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

bool pid_in(pid_t pid, const pid_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* Waits until a process has exited (gone, or a zombie not yet reaped):
 * true if it did before the deadline. */
bool wait_gone(pid_t pid)
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

char *server_log(const server *s)
{
    char *text = slurp(s->log, NULL);
    return text ? text : strdup("");
}

bool log_has(const server *s, const char *needle)
{
    char *text = server_log(s);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

bool wait_log(const server *s, const char *needle, unsigned timeout_ms)
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
void dump_log(const server *s, const char *why)
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
bool server_exited(server *s)
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
bool server_wait_exit(server *s, unsigned timeout_ms)
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
int server_nofile;
const char *server_listen;

/* Starts `cowdag serve -c config --listen 127.0.0.1:PORT [--workers N]`
 * (port 0: any free one) in a process group of its own, stderr to a temp
 * file; waits for the "listening on" line and takes the port from it. */
void server_start_at(server *s, const char *config, int workers, int port)
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
        char listen[256];
        snprintf(listen, sizeof listen, "%s", server_listen ? server_listen : "");
        if (!server_listen)
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
        bool up = s->port > 0 || (server_listen && strstr(text, "listening on unix:"));
        free(text);
        if (up)
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

void server_start(server *s, const char *config, int workers) { server_start_at(s, config, workers, 0); }

/* SIGTERM, a bounded wait, SIGKILL to the whole group as a last resort;
 * never leaves a process behind. */
void server_stop(server *s)
{
    if (!s->pid)
        return;
    if (!s->reaped) {
        kill(s->pid, SIGTERM);
        if (!server_wait_exit(s, HANG_MS)) {
            fprintf(stderr, "%s: master %d ignored SIGTERM for %d ms; SIGKILL\n", program_invocation_short_name,
                    (int)s->pid, HANG_MS);
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
        fprintf(stderr, "%s: server log kept in %s\n", program_invocation_short_name, s->log);
    s->pid = 0;
}

int workers_of(const server *s, pid_t *out) { return children_of(s->pid, out, MAX_PIDS); }

/* Waits until the master has exactly n live children; returns the count
 * seen last, the pids in out. */
int wait_workers(const server *s, int n, unsigned timeout_ms, pid_t *out)
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

void reply_free(reply *r)
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
bool reply_header(const reply *r, const char *name, char *buf, size_t cap)
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
int conn_open(int port)
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

int send_all(int fd, const char *buf, size_t len)
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
int conn_read_reply(int fd, reply *r)
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
int conn_read_one(int fd, reply *r)
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
bool server_end(int client_fd, unsigned long *inode, unsigned long *unread)
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
void wait_server_took(int client_fd, bool read)
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
int http_raw(int port, const char *req, size_t len, reply *r)
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
char *request_text(int port, const char *method, const char *path, const char *body, size_t *len)
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

int http(int port, const char *method, const char *path, const char *body, reply *r)
{
    size_t len;
    char *req = request_text(port, method, path, body, &len);
    int rc = http_raw(port, req, len, r);
    free(req);
    return rc;
}

/* POST path with a chunked body (no Content-Length), `chunk` bytes a piece. */
int http_chunked(int port, const char *path, const char *body, size_t blen, size_t chunk, reply *r)
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

int run_dag(int port, const char *name, const char *body, reply *r)
{
    char path[256];
    snprintf(path, sizeof path, "/dags/%s/run", name);
    return http(port, "POST", path, body, r);
}

/* Integer at outputs.<name> / stats.<name> of a run reply; -1 if absent. */
long long run_output_int(const reply *r, const char *name)
{
    json_t *v = json_object_get(json_object_get(r->json, "outputs"), name);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

long long run_stat(const reply *r, const char *name)
{
    json_t *v = json_object_get(json_object_get(r->json, "stats"), name);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* POST /dags/version/run: 0 with the answer and the worker pid, or -1 (a
 * description in r->err or the status). */
int run_version(int port, long long *answer, pid_t *pid, reply *r)
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

/* GET /stats until every worker has a memory sample (bounded); the
 * document, parsed. */
json_t *stats_sampled(int port, int nworkers)
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
json_t *stats_sampled_after(int port, int nworkers, uint64_t since)
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

/* }====================================================================== */

/* ====================================================================== */
/* {  Assertions on replies                                                */
/* ====================================================================== */

void show_reply(const reply *r)
{
    if (r->status == 0)
        print_message("no reply: %s\n", r->err);
    else
        print_message("reply %d: %.*s\n", r->status, (int)(r->len > 600 ? 600 : r->len), r->body);
}

void expect_status(const reply *r, int status)
{
    if (r->status != status)
        show_reply(r);
    assert_int_equal(r->status, status);
}

/* The error document (README, "Serving: `cowdag serve`"): exactly
 * {"error": {"code": C, "message": M, "node": N?}}, with the status and
 * code wanted. */
void expect_error(const reply *r, int status, const char *code)
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

const char *error_node(const reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "node"));
}

/* }====================================================================== */

/* ====================================================================== */
/* {  A server of each test's own                                          */
/* ====================================================================== */

test_ctx T;

int standalone_setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    return 0;
}

void loop_stop(test_ctx *c)
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
void loop_stop_when_done(test_ctx *c, unsigned timeout_ms)
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

int standalone_teardown(void **state)
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
void copy_fixtures(test_ctx *c)
{
    snprintf(c->tmpdir, sizeof c->tmpdir, "/tmp/cowdag-test-fixtures-XXXXXX");
    assert_non_null(mkdtemp(c->tmpdir));
    copy_tree(FIXTURES, c->tmpdir);
}

void tmp_path(const test_ctx *c, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", c->tmpdir, rel);
}

/* Starts a child that sends POST /dags/version/run on a new connection
 * each time until told to stop (or `limit` requests), counting successes
 * and failures. */
void loop_start(test_ctx *c, long long new_answer, int limit)
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
void loop_wait_answers(test_ctx *c, int n)
{
    uint64_t deadline = now_ms() + HANG_MS;
    while (__atomic_load_n(&c->loop->ok, __ATOMIC_SEQ_CST) + __atomic_load_n(&c->loop->failed, __ATOMIC_SEQ_CST) < n) {
        if (now_ms() > deadline)
            fail_msg("the client loop got no more than %d answers", c->loop->ok + c->loop->failed);
        sleep_ms(5);
    }
}

/* Copies the fixtures to T's folder and writes into its cowdag.json the
 * text `to` in place of `from` (which must be there); *cfg gets its path. */
void edited_fixture_config(const char *from, const char *to, char *cfg, size_t cap)
{
    edited_fixture("cowdag.json", from, to, cfg, cap);
}

void edited_fixture(const char *name, const char *from, const char *to, char *cfg, size_t cap)
{
    copy_fixtures(&T);
    tmp_path(&T, name, cfg, cap);
    char *text = slurp(cfg, NULL), *at = text ? strstr(text, from) : NULL;
    assert_non_null(at);
    char *edited = dup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_file(cfg, edited);
    free(edited);
    free(text);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Long runs, sized on this machine                                    */
/* ====================================================================== */

/* CPU time of a process's main thread (the one that serves requests; the
 * sampling thread is another), in ms; -1 if it is gone. */
long main_thread_cpu_ms(pid_t pid)
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
int long_run_mb(int port, unsigned ms)
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

/* Sends a run of the slow DAG of `mb` MiB on a new connection to a server
 * with `nworkers` workers; its answer is still to come. */
long_run long_run_start(const server *s, int nworkers, int mb)
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
pid_t long_run_wait_busy(const long_run *lr)
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
bool long_run_answered(const long_run *lr)
{
    struct pollfd p = {.fd = lr->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Reads the answer to a long run (waiting as long as a hung test would be
 * let, not the usual receive timeout): 200 and the sum the DAG computes. */
void expect_long_run_ok(const long_run *lr)
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

/* }====================================================================== */

/* ====================================================================== */
/* {  The state's ranges, and smaps over them                               */
/* ====================================================================== */

/* The regions as GET /admin/regions lists them. */
int state_regions(int port, span *out, int cap)
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
int state_ranges(int port, span *out, int cap)
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
void smaps_state(pid_t pid, const span *ranges, int n, unsigned long long *rss_kb,
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

/* }====================================================================== */

int run_cmd(const char *cmdline, char **out)
{
    char *full = dup_printf("timeout %d %s 2>&1", HANG_MS / 1000, cmdline);
    fflush(NULL);
    FILE *f = popen(full, "r");
    assert_non_null(f);
    *out = slurp_stream(f, NULL);
    int st = pclose(f);
    free(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

void stop_process(pid_t pid)
{
    assert_int_equal(kill(pid, SIGSTOP), 0);
    uint64_t deadline = now_ms() + HANG_MS;
    while (proc_state(pid, NULL) != 'T') {
        if (now_ms() > deadline)
            fail_msg("process %d did not stop within %d ms", (int)pid, HANG_MS);
        sleep_ms(1);
    }
}

void run_dag_random_ids(int port, const char *name, int n)
{
    unsigned x = 12345;
    for (int q = 0; q < n; q++) {
        char body[512];
        int len = snprintf(body, sizeof body, "{\"inputs\": {\"ids\": [");
        for (int k = 0; k < 32; k++) {
            x = x * 1103515245u + 12345u;
            len += snprintf(body + len, sizeof body - (size_t)len, "%s%u", k ? "," : "", (x >> 8) % 20000);
        }
        snprintf(body + len, sizeof body - (size_t)len, "]}}");
        reply r;
        assert_int_equal(run_dag(port, name, body, &r), 0);
        expect_status(&r, 200);
        reply_free(&r);
    }
}

double check_against_smaps(const server *srv)
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
