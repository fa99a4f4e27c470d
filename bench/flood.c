/* bench/flood.c: a connection-exhaustion load tool for cowdag (or any HTTP/1.1
 * server on 127.0.0.0/8): slow "drip" headers, idle keep-alive connections and
 * timed normal requests, all on one epoll loop.  Run by bench/conn_defense.sh.
 *
 *   flood PORT --drip N --idle M --normal K --seconds S [--host 127.0.0.1]
 *              [--timeout-ms 5000] [--sources 1]
 *
 * Phases:
 *   1. ramp    open the N drip and M idle connections (interleaved), until all
 *              have connected or failed, at most RAMP_MAX_MS;
 *   2. run     for S seconds start the K normal requests evenly spread, each on
 *              a new connection (GET /healthz, Connection: close), timed from
 *              connect to the last byte of the answer, failed after the
 *              timeout; meanwhile every drip connection sends one more byte of
 *              a header that never ends, once a second, and every idle
 *              connection, once answered, sends nothing;
 *   3. tail    wait for the normal requests still in flight (at most the
 *              timeout), then report and close everything.
 * A connection the server closes (EOF or RST seen) is counted with the time it
 * took.  The last line of the output, "RESULT key=value ...", is for scripts.
 * Nothing here aborts on a resource error (EMFILE, EADDRNOTAVAIL, ...): the
 * connection that hit it is counted as a local failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

enum {
    RAMP_MAX_MS = 5000,   /* phase 1 ends after this even if connects hang */
    RAMP_BATCH = 256,     /* connects started per loop turn while ramping */
    TICK_MS = 10,         /* the loop wakes at least this often */
    DRIP_EVERY_MS = 1000, /* one header byte per drip connection per second */
    RESP_MAX = 1024,      /* bytes of an answer kept to parse its head */
    MAX_COUNT = 1000000,  /* bound on N, M and K */
};

/* --- connections ------------------------------------------------------------ */

typedef enum { K_DRIP, K_IDLE, K_NORMAL } kind;

/* Life of a connection, in order; a connection only moves forward. */
typedef enum {
    S_UNUSED,     /* not opened yet (normal requests wait for their turn) */
    S_CONNECTING, /* non-blocking connect in progress */
    S_OPEN,       /* connected: drip sending, idle/normal waiting for the answer */
    S_ANSWERED,   /* idle: answer read, now holding the connection quiet */
    S_DONE,       /* finished: closed by the server, failed, or (normal) complete */
} state;

/* Why a connection is S_DONE. */
typedef enum {
    E_NONE,
    E_OK,         /* normal: full answer read */
    E_PEER_CLOSE, /* EOF or RST from the server */
    E_REFUSED,    /* connect refused */
    E_CONNECT,    /* connect failed otherwise (SO_ERROR) */
    E_TIMEOUT,    /* normal: no full answer within the timeout */
    E_LOCAL,      /* socket()/connect() failed here: EMFILE, EADDRNOTAVAIL, ... */
    E_PROTO,      /* an answer this tool could not parse */
    E_COUNT
} ending;

static const char *const ending_name[E_COUNT] = {"none", "ok", "closed by server", "refused", "connect error",
                                                 "timeout", "local error", "bad answer"};

typedef struct {
    int fd;
    kind k;
    state s;
    ending e;
    int err;          /* errno of a connect or local failure */
    double t_start;   /* ms: connect started */
    double t_ready;   /* ms: connected (drip, idle) or answered (idle) */
    double t_end;     /* ms: S_DONE reached */
    double next_drip; /* ms: when the next drip byte is due */
    unsigned dripped; /* header bytes sent so far (drip) */
    int status;       /* HTTP status of the answer, 0 before */
    bool got_bytes;   /* drip: the server sent something (an error answer) */
    unsigned len;     /* bytes in resp */
    long body_left;   /* body bytes still expected, -1: until EOF */
    char *resp;       /* RESP_MAX + 1 bytes, NUL-ended, idle and normal only */
} conn;

typedef struct {
    const char *host;
    int port;
    long n_drip, n_idle, n_normal;
    double seconds;
    double timeout_ms;
    int sources;
} options;

typedef struct {
    options o;
    int ep;
    conn *c;    /* n_drip + n_idle + n_normal: drip, then idle, then normal */
    long total;
    int err_first_local; /* errno of the first local failure, for the report */
} flood;

static double now_ms(void) { return (double)base_now_ns() / 1e6; }

/* The request bytes.  A drip connection sends DRIP_HEAD one byte at a time and
 * then 'a' forever: a header line that never ends. */
static const char DRIP_HEAD[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ";
static const char IDLE_REQ[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
static const char NORMAL_REQ[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

static void finish(flood *f, conn *c, ending e, int err)
{
    if (c->fd >= 0) {
        epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->s = S_DONE;
    c->e = e;
    c->err = err;
    c->t_end = now_ms();
}

/* Starts a non-blocking connect for C (index I).  Failures here are counted as
 * E_LOCAL (or E_REFUSED when the kernel answers at once), never fatal. */
static void open_conn(flood *f, long i)
{
    conn *c = &f->c[i];
    c->t_start = now_ms();
    c->s = S_CONNECTING;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (!f->err_first_local)
            f->err_first_local = errno;
        finish(f, c, E_LOCAL, errno);
        return;
    }
    c->fd = fd;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->o.port)};
    inet_pton(AF_INET, f->o.host, &dst.sin_addr);
    if (f->o.sources > 1) {
        /* 127.0.0.(1 + i mod sources); the port is picked at connect time. */
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % f->o.sources));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            if (!f->err_first_local)
                f->err_first_local = errno;
            finish(f, c, E_LOCAL, errno);
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)i};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (!f->err_first_local)
            f->err_first_local = errno;
        finish(f, c, E_LOCAL, errno);
        return;
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        int e = errno;
        if (e == ECONNREFUSED) {
            finish(f, c, E_REFUSED, e);
        } else {
            if (!f->err_first_local)
                f->err_first_local = e;
            finish(f, c, E_LOCAL, e);
        }
    }
}

/* Sends the whole of a small request; it fits in an empty socket buffer. */
static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void drip_byte(flood *f, conn *c, double t)
{
    char b = c->dripped < sizeof DRIP_HEAD - 1 ? DRIP_HEAD[c->dripped] : 'a';
    ssize_t w = send(c->fd, &b, 1, MSG_NOSIGNAL);
    if (w == 1) {
        c->dripped++;
    } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        finish(f, c, E_PEER_CLOSE, errno); /* EPIPE, ECONNRESET */
        return;
    }
    c->next_drip = t + DRIP_EVERY_MS;
}

/* The connect of C finished (EPOLLOUT): start its traffic. */
static void on_connected(flood *f, conn *c, long i)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
        finish(f, c, soerr == ECONNREFUSED ? E_REFUSED : E_CONNECT, soerr);
        return;
    }
    double t = now_ms();
    c->s = S_OPEN;
    c->t_ready = t;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)i};
    epoll_ctl(f->ep, EPOLL_CTL_MOD, c->fd, &ev);
    if (c->k == K_DRIP) {
        drip_byte(f, c, t);
        return;
    }
    const char *req = c->k == K_IDLE ? IDLE_REQ : NORMAL_REQ;
    if (!send_all(c->fd, req, strlen(req)))
        finish(f, c, E_PEER_CLOSE, errno);
}

/* Parses the head of an answer once it is complete: the status and how many
 * body bytes follow.  Returns 1 when the head is parsed, 0 when more bytes are
 * needed, -1 when it is not HTTP or too long for RESP_MAX. */
static int parse_head(conn *c)
{
    char *end = memmem(c->resp, c->len, "\r\n\r\n", 4);
    if (!end)
        return c->len >= RESP_MAX ? -1 : 0;
    int status;
    if (sscanf(c->resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    c->status = status;
    c->body_left = -1;
    for (char *p = c->resp; p < end; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
            c->body_left = strtol(p + 16, NULL, 10);
            break;
        }
    }
    long got_body = (long)(c->resp + c->len - (end + 4));
    if (c->body_left >= 0)
        c->body_left -= got_body;
    return 1;
}

/* Readable (or hung up): reads what there is.  An idle or normal connection
 * parses its one answer; after that, and on a drip connection, bytes are read
 * and dropped, and EOF or an error ends the connection as closed by the server. */
static void on_readable(flood *f, conn *c)
{
    char scratch[4096];
    for (;;) {
        bool head = (c->k != K_DRIP) && c->status == 0;
        char *dst = head ? c->resp + c->len : scratch;
        size_t room = head ? RESP_MAX - c->len : sizeof scratch;
        ssize_t r = recv(c->fd, dst, room, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0) {
            finish(f, c, E_PEER_CLOSE, errno);
            return;
        }
        if (r == 0) {
            /* An answer without Content-Length ends at EOF. */
            if (c->k == K_NORMAL && c->status && c->body_left < 0)
                finish(f, c, E_OK, 0);
            else
                finish(f, c, E_PEER_CLOSE, 0);
            return;
        }
        if (c->k == K_DRIP) {
            c->got_bytes = true;
            continue;
        }
        if (head) {
            c->len += (unsigned)r;
            c->resp[c->len] = '\0';
            int p = parse_head(c);
            if (p < 0) {
                finish(f, c, E_PROTO, 0);
                return;
            }
            if (p == 0)
                continue;
        } else if (c->body_left > 0) {
            c->body_left -= r;
        }
        if (c->status && c->body_left == 0 && c->s == S_OPEN) {
            if (c->k == K_NORMAL) {
                finish(f, c, E_OK, 0);
                return;
            }
            c->s = S_ANSWERED; /* idle: now hold it open and say nothing */
            c->t_ready = now_ms();
        }
    }
}

/* --- the loop ---------------------------------------------------------------- */

static void handle_events(flood *f, int wait_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(f->ep, evs, 256, wait_ms);
    for (int j = 0; j < n; j++) {
        long i = (long)evs[j].data.u64;
        conn *c = &f->c[i];
        if (c->fd < 0)
            continue;
        if (c->s == S_CONNECTING) {
            if (evs[j].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(f, c, i);
            if (c->fd < 0 || c->s == S_CONNECTING)
                continue;
        }
        if (evs[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            on_readable(f, c);
    }
}

/* Timers: drip bytes due, normal requests past their timeout. */
static void handle_timers(flood *f)
{
    double t = now_ms();
    for (long i = 0; i < f->total; i++) {
        conn *c = &f->c[i];
        if (c->k == K_DRIP && c->s == S_OPEN && c->next_drip <= t)
            drip_byte(f, c, t);
        else if (c->k == K_NORMAL && (c->s == S_CONNECTING || c->s == S_OPEN) && t - c->t_start >= f->o.timeout_ms)
            finish(f, c, E_TIMEOUT, 0);
    }
}

static long count_state(const flood *f, kind k, state s)
{
    long n = 0;
    for (long i = 0; i < f->total; i++)
        n += f->c[i].k == k && f->c[i].s == s;
    return n;
}

/* Phase 1: abusive connections, drip and idle interleaved, RAMP_BATCH a turn. */
static void ramp(flood *f)
{
    long nd = 0, ni = 0;
    double start = now_ms();
    while (nd < f->o.n_drip || ni < f->o.n_idle) {
        for (int b = 0; b < RAMP_BATCH && (nd < f->o.n_drip || ni < f->o.n_idle); b++) {
            if (nd < f->o.n_drip)
                open_conn(f, nd++);
            if (ni < f->o.n_idle)
                open_conn(f, f->o.n_drip + ni++);
        }
        handle_events(f, 0);
        handle_timers(f);
    }
    while (now_ms() - start < RAMP_MAX_MS &&
           count_state(f, K_DRIP, S_CONNECTING) + count_state(f, K_IDLE, S_CONNECTING) > 0) {
        handle_events(f, TICK_MS);
        handle_timers(f);
    }
}

/* Phases 2 and 3: normal request i starts at t_run + i * S / K; then the
 * ones in flight are waited for, each at most its timeout. */
static double run(flood *f)
{
    double t_run = now_ms();
    double span = f->o.seconds * 1e3;
    long base = f->o.n_drip + f->o.n_idle, next = 0;
    for (;;) {
        double t = now_ms();
        while (next < f->o.n_normal && t >= t_run + span * (double)next / (double)f->o.n_normal)
            open_conn(f, base + next++);
        bool in_flight = count_state(f, K_NORMAL, S_CONNECTING) + count_state(f, K_NORMAL, S_OPEN) > 0;
        if (t - t_run >= span && next == f->o.n_normal && !in_flight)
            break;
        if (t - t_run >= span + f->o.timeout_ms + 1000) /* cannot happen: every normal one times out */
            break;
        handle_events(f, TICK_MS);
        handle_timers(f);
    }
    return t_run;
}

/* --- the report -------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile P (0..100) of N sorted values. */
static double pct(const double *v, long n, double p)
{
    long r = (long)(p / 100.0 * (double)n + 0.999999);
    if (r < 1)
        r = 1;
    if (r > n)
        r = n;
    return v[r - 1];
}

typedef struct {
    long opened, connected, closed, closed_answered, answered, got_bytes, still_connecting, open_end;
    long ends[E_COUNT];
    double close_med_s, close_max_s;
} abuse_stats;

/* Drip: every close is timed, from connect.  Idle: a close after the answer
 * (the server ending a keep-alive connection) is timed from that answer; one
 * before it is a refusal (at accept, or a connection limit) and not timed. */
static abuse_stats abuse(const flood *f, long from, long n)
{
    abuse_stats a = {0};
    double *t = calloc((size_t)n + 1, sizeof *t);
    long nt = 0;
    for (long i = from; i < from + n; i++) {
        const conn *c = &f->c[i];
        if (c->s == S_UNUSED)
            continue;
        a.opened++;
        if (c->t_ready > 0)
            a.connected++;
        if (c->s == S_CONNECTING)
            a.still_connecting++;
        if (c->s == S_OPEN || c->s == S_ANSWERED)
            a.open_end++;
        if (c->status)
            a.answered++;
        if (c->got_bytes)
            a.got_bytes++;
        a.ends[c->e]++;
        if (c->e != E_PEER_CLOSE)
            continue;
        a.closed++;
        a.closed_answered += c->status != 0;
        if (t && (c->k == K_DRIP || c->status))
            t[nt++] = (c->t_end - c->t_ready) / 1e3;
    }
    if (nt && t) {
        qsort(t, (size_t)nt, sizeof *t, cmp_double);
        a.close_med_s = pct(t, nt, 50);
        a.close_max_s = t[nt - 1];
    }
    free(t);
    return a;
}

static void print_failures(const long *ends)
{
    bool any = false;
    for (int e = E_REFUSED; e < E_COUNT; e++) {
        if (e == E_PEER_CLOSE || !ends[e])
            continue;
        printf("%s%ld %s", any ? ", " : "; failed: ", ends[e], ending_name[e]);
        any = true;
    }
}

static void report(const flood *f, double t_run)
{
    const options *o = &f->o;
    abuse_stats d = abuse(f, 0, o->n_drip);
    abuse_stats id = abuse(f, o->n_drip, o->n_idle);

    long base = o->n_drip + o->n_idle, ok = 0, non2xx = 0;
    long ends[E_COUNT] = {0};
    double *lat = calloc((size_t)o->n_normal + 1, sizeof *lat);
    for (long i = base; i < base + o->n_normal; i++) {
        const conn *c = &f->c[i];
        ends[c->e]++;
        if (c->e != E_OK)
            continue;
        if (c->status >= 200 && c->status < 300) {
            if (lat)
                lat[ok] = c->t_end - c->t_start;
            ok++;
        } else {
            non2xx++;
        }
    }
    double p50 = 0, p99 = 0, max = 0;
    if (ok && lat) {
        qsort(lat, (size_t)ok, sizeof *lat, cmp_double);
        p50 = pct(lat, ok, 50);
        p99 = pct(lat, ok, 99);
        max = lat[ok - 1];
    }
    free(lat);

    printf("flood: %s:%d, %ld drip, %ld idle, %ld normal over %.0f s (timeout %.0f ms), run of %.1f s\n", o->host,
           o->port, o->n_drip, o->n_idle, o->n_normal, o->seconds, o->timeout_ms, (now_ms() - t_run) / 1e3);
    printf("drip:   %ld connected of %ld", d.connected, o->n_drip);
    print_failures(d.ends);
    printf("; %ld still connecting; %ld got bytes back; %ld still open at the end; closed by the server: %ld",
           d.still_connecting, d.got_bytes, d.open_end, d.closed);
    if (d.closed)
        printf(" (median %.1f s, last %.1f s after connect)", d.close_med_s, d.close_max_s);
    printf("\nidle:   %ld connected of %ld, %ld answered", id.connected, o->n_idle, id.answered);
    print_failures(id.ends);
    printf("; %ld still connecting; %ld still open at the end; closed by the server: %ld", id.still_connecting,
           id.open_end, id.closed);
    if (id.closed)
        printf(", %ld of them unanswered", id.closed - id.closed_answered);
    if (id.closed_answered)
        printf(", %ld after their answer (median %.1f s, last %.1f s after it)", id.closed_answered, id.close_med_s,
               id.close_max_s);
    printf("\nnormal: %ld/%ld ok (2xx), %ld non-2xx", ok, o->n_normal, non2xx);
    for (int e = E_PEER_CLOSE; e < E_COUNT; e++)
        if (ends[e])
            printf(", %ld %s", ends[e], ending_name[e]);
    if (ok)
        printf("; latency of the 2xx: p50 %.1f ms, p99 %.1f ms, max %.1f ms", p50, p99, max);
    printf("\n");
    if (f->err_first_local)
        printf("local errors: first was %s (raise `ulimit -n` or use --sources for EADDRNOTAVAIL)\n",
               strerror(f->err_first_local));
    printf("RESULT drip=%ld drip_connected=%ld drip_open=%ld drip_closed=%ld "
           "drip_close_median_s=%.1f idle=%ld idle_connected=%ld idle_answered=%ld idle_open=%ld idle_closed=%ld "
           "idle_closed_answered=%ld idle_close_median_s=%.1f normal=%ld normal_ok=%ld normal_non2xx=%ld "
           "normal_timeout=%ld normal_refused=%ld normal_closed=%ld normal_local=%ld normal_bad=%ld p50_ms=%.1f "
           "p99_ms=%.1f max_ms=%.1f\n",
           o->n_drip, d.connected, d.open_end, d.closed, d.close_med_s, o->n_idle, id.connected,
           id.answered, id.open_end, id.closed, id.closed_answered, id.close_med_s, o->n_normal, ok, non2xx,
           ends[E_TIMEOUT], ends[E_REFUSED], ends[E_PEER_CLOSE], ends[E_LOCAL] + ends[E_CONNECT], ends[E_PROTO],
           p50, p99, max);
}

/* --- main ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: flood PORT --drip N --idle M --normal K --seconds S [--host 127.0.0.1] "
                    "[--timeout-ms 5000] [--sources 1]\n");
    exit(2);
}

static long num(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "flood: %s: expected a number from %ld to %ld\n", s, lo, hi);
        exit(2);
    }
    return v;
}

static options parse_args(int argc, char **argv)
{
    options o = {.host = "127.0.0.1", .seconds = 10, .timeout_ms = 5000, .sources = 1};
    if (argc < 2)
        usage();
    o.port = (int)num(argv[1], 1, 65535);
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--drip"))
            o.n_drip = num(v, 0, MAX_COUNT);
        else if (!strcmp(k, "--idle"))
            o.n_idle = num(v, 0, MAX_COUNT);
        else if (!strcmp(k, "--normal"))
            o.n_normal = num(v, 0, MAX_COUNT);
        else if (!strcmp(k, "--seconds"))
            o.seconds = (double)num(v, 1, 3600);
        else if (!strcmp(k, "--timeout-ms"))
            o.timeout_ms = (double)num(v, 1, 600000);
        else if (!strcmp(k, "--sources"))
            o.sources = (int)num(v, 1, 254);
        else if (!strcmp(k, "--host"))
            o.host = v;
        else
            usage();
    }
    /* Loopback only: this tool is for this machine's own server. */
    struct in_addr a;
    if (inet_pton(AF_INET, o.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "flood: --host must be an address in 127.0.0.0/8\n");
        exit(2);
    }
    return o;
}

/* The soft fd limit up to the hard one; says so when that is still short. */
static void raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fprintf(stderr, "flood: cannot raise RLIMIT_NOFILE: %s\n", strerror(errno));
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want)
        fprintf(stderr, "flood: RLIMIT_NOFILE is %ld, below the %ld connections asked: expect local errors\n",
                (long)rl.rlim_cur, want);
}

int main(int argc, char **argv)
{
    flood f = {.o = parse_args(argc, argv)};
    f.total = f.o.n_drip + f.o.n_idle + f.o.n_normal;
    raise_nofile(f.total + 16);
    signal(SIGPIPE, SIG_IGN);
    f.ep = epoll_create1(EPOLL_CLOEXEC);
    f.c = calloc((size_t)f.total + 1, sizeof *f.c);
    if (f.ep < 0 || !f.c) {
        fprintf(stderr, "flood: cannot start: %s\n", strerror(errno));
        return 1;
    }
    for (long i = 0; i < f.total; i++) {
        f.c[i].fd = -1;
        f.c[i].k = i < f.o.n_drip ? K_DRIP : i < f.o.n_drip + f.o.n_idle ? K_IDLE : K_NORMAL;
        if (f.c[i].k != K_DRIP && !(f.c[i].resp = malloc(RESP_MAX + 1))) {
            fprintf(stderr, "flood: out of memory\n");
            return 1;
        }
    }

    ramp(&f);
    double t_run = run(&f);
    report(&f, t_run);

    for (long i = 0; i < f.total; i++) {
        if (f.c[i].fd >= 0)
            close(f.c[i].fd);
        free(f.c[i].resp);
    }
    free(f.c);
    close(f.ep);
    return 0;
}
