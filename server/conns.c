/* conns.c: a worker's table of open connections and their deadlines
 * (server/conns.h; README, "Connections, limits and timeouts").
 *
 * Each connection is in one of four states.  Those waiting for a header and
 * those idle each sit on a list ordered by the time they entered it, so a
 * sweep looks only at the heads that are due, and the head of the idle list
 * is the longest-idle connection.  Busy and closing ones are on no list. */
#include "server/conns.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "base/clock.h"

typedef enum { C_HEADER, C_BUSY, C_IDLE, C_CLOSING } conn_state;

typedef struct conn {
    struct MHD_Connection *mhd;
    int fd;
    conn_state state;
    bool used;           /* it has carried a request */
    uint64_t since_ms;   /* when it entered its list */
    uint64_t rx_at_idle; /* bytes received when it went idle */
    struct conn *prev, *next;
} conn;

typedef struct list {
    conn *head, *tail;
} list;

struct srv_conns {
    uint64_t header_ms, keepalive_ms;
    unsigned limit;
    list header, idle;
    size_t open, busy;
    srv_conns_closed closed;
};

/* ---- lists ------------------------------------------------------------- */

static void unlink_conn(list *l, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static void append(list *l, conn *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

/* Inserts keeping the list ordered by since_ms (from the tail: entries
 * mostly arrive in order). */
static void insert_ordered(list *l, conn *c)
{
    conn *after = l->tail;
    while (after && after->since_ms > c->since_ms)
        after = after->prev;
    if (!after) {
        c->prev = NULL;
        c->next = l->head;
        if (l->head)
            l->head->prev = c;
        else
            l->tail = c;
        l->head = c;
        return;
    }
    c->prev = after;
    c->next = after->next;
    if (after->next)
        after->next->prev = c;
    else
        l->tail = c;
    after->next = c;
}

static list *list_of(srv_conns *t, conn *c)
{
    return c->state == C_HEADER ? &t->header : c->state == C_IDLE ? &t->idle : NULL;
}

/* Takes c off its list and puts it in `state` (on that state's list, in
 * order of since_ms). */
static void move(srv_conns *t, conn *c, conn_state state)
{
    list *from = list_of(t, c);
    if (from)
        unlink_conn(from, c);
    if (c->state == C_BUSY)
        t->busy--;
    c->state = state;
    if (state == C_BUSY)
        t->busy++;
    list *to = list_of(t, c);
    if (to)
        insert_ordered(to, c);
}

/* ---- the socket -------------------------------------------------------- */

/* Bytes the kernel has received on the connection since it opened, or
 * UINT64_MAX when it cannot say (then FIONREAD tells if any wait unread). */
static uint64_t received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return ti.tcpi_bytes_received;
    return UINT64_MAX;
}

/* Has a byte of a next request reached the socket since it went idle? */
static bool sent_more(const conn *c)
{
    uint64_t now = received(c->fd);
    if (now != UINT64_MAX && c->rx_at_idle != UINT64_MAX)
        return now > c->rx_at_idle;
    int unread = 0;
    return ioctl(c->fd, SIOCINQ, &unread) != 0 || unread > 0; /* when in doubt, it has */
}

/* The daemon sees the socket shut on its next turn and closes it. */
static void close_conn(srv_conns *t, conn *c, uint64_t *reason)
{
    shutdown(c->fd, SHUT_RDWR);
    move(t, c, C_CLOSING);
    (*reason)++;
}

/* ---- the daemon's callbacks -------------------------------------------- */

srv_conns *srv_conns_new(int header_timeout_ms, int keepalive_timeout_ms, unsigned limit)
{
    srv_conns *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->header_ms = (uint64_t)header_timeout_ms;
    t->keepalive_ms = (uint64_t)keepalive_timeout_ms;
    t->limit = limit;
    return t;
}

void srv_conns_free(srv_conns *t) { free(t); }

void srv_conns_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    srv_conns *t = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn *c = calloc(1, sizeof *c);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!c || !ci) { /* untracked: the daemon's own timeout still bounds it */
            free(c);
            return;
        }
        c->mhd = mc;
        c->fd = ci->connect_fd;
        c->state = C_HEADER;
        c->since_ms = base_now_ms();
        append(&t->header, c);
        t->open++;
        *socket_context = c;
        return;
    }
    conn *c = *socket_context;
    if (!c)
        return;
    list *l = list_of(t, c);
    if (l)
        unlink_conn(l, c);
    if (c->state == C_BUSY)
        t->busy--;
    t->open--;
    free(c);
    *socket_context = NULL;
}

static conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void *srv_conns_request_line(void *cls, const char *uri, struct MHD_Connection *mc)
{
    (void)uri;
    srv_conns *t = cls;
    conn *c = conn_of(mc);
    if (c && c->state == C_IDLE) { /* a kept-alive connection: its header's time starts now */
        unlink_conn(&t->idle, c);
        c->state = C_HEADER;
        c->since_ms = base_now_ms();
        append(&t->header, c);
    }
    return NULL;
}

void srv_conns_begin(void *cls, struct MHD_Connection *mc)
{
    conn *c = conn_of(mc);
    if (c && c->state != C_CLOSING && c->state != C_BUSY) {
        c->used = true;
        move(cls, c, C_BUSY);
    }
}

void srv_conns_end(void *cls, struct MHD_Connection *mc)
{
    conn *c = conn_of(mc);
    if (!c || c->state == C_CLOSING)
        return;
    c->since_ms = base_now_ms();
    c->rx_at_idle = received(c->fd);
    move(cls, c, C_IDLE);
}

/* ---- deadlines --------------------------------------------------------- */

static uint64_t later(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Connections waiting for a header: past header_timeout_ms they close; a
 * draining worker also closes one never used that has received nothing
 * for SRV_DRAIN_FRESH_MS.  Returns the earliest deadline left. */
static uint64_t sweep_header(srv_conns *t, uint64_t now, uint64_t drain_start)
{
    conn *c = t->header.head;
    while (c) {
        conn *next = c->next;
        if (c->since_ms + t->header_ms <= now) {
            close_conn(t, c, &t->closed.header_timeout);
        } else if (drain_start && !c->used && later(c->since_ms, drain_start) + SRV_DRAIN_FRESH_MS <= now) {
            if (received(c->fd) == 0)
                close_conn(t, c, &t->closed.draining);
        } else {
            break; /* the list is in order: the rest are due later */
        }
        c = next;
    }
    if (!c)
        return UINT64_MAX;
    uint64_t due = c->since_ms + t->header_ms;
    if (drain_start && !c->used)
        due = due < later(c->since_ms, drain_start) + SRV_DRAIN_FRESH_MS
                  ? due
                  : later(c->since_ms, drain_start) + SRV_DRAIN_FRESH_MS;
    return due;
}

/* A connection that goes from idle to waiting for a header keeps its time:
 * its header is due header_timeout_ms after it went idle. */
static void to_header(srv_conns *t, conn *c) { move(t, c, C_HEADER); }

/* Idle connections: past keepalive_timeout_ms they close (or, if a next
 * request has begun to arrive, wait for its header); a draining worker
 * closes each after SRV_DRAIN_IDLE_MS. */
static uint64_t sweep_idle(srv_conns *t, uint64_t now, uint64_t drain_start)
{
    conn *c = t->idle.head;
    while (c) {
        conn *next = c->next;
        bool expired = c->since_ms + t->keepalive_ms <= now;
        bool drained = drain_start && later(c->since_ms, drain_start) + SRV_DRAIN_IDLE_MS <= now;
        if (!expired && !drained)
            break;
        if (sent_more(c))
            to_header(t, c);
        else
            close_conn(t, c, expired ? &t->closed.keepalive_timeout : &t->closed.draining);
        c = next;
    }
    if (!c)
        return UINT64_MAX;
    uint64_t due = c->since_ms + t->keepalive_ms;
    if (drain_start && later(c->since_ms, drain_start) + SRV_DRAIN_IDLE_MS < due)
        due = later(c->since_ms, drain_start) + SRV_DRAIN_IDLE_MS;
    return due;
}

long srv_conns_sweep(srv_conns *t, uint64_t now, uint64_t drain_start, long cap)
{
    uint64_t a = sweep_idle(t, now, drain_start); /* first: it may move some to the header list */
    uint64_t b = sweep_header(t, now, drain_start);
    uint64_t due = a < b ? a : b;
    if (due == UINT64_MAX || due >= now + (uint64_t)cap)
        return cap;
    return due > now ? (long)(due - now) : 0;
}

bool srv_conns_room(srv_conns *t)
{
    uint64_t nine_tenths = (uint64_t)t->limit * 9 / 10;
    if (t->open >= nine_tenths && t->idle.head)
        close_conn(t, t->idle.head, &t->closed.to_make_room);
    return t->open < t->limit;
}

size_t srv_conns_open(const srv_conns *t) { return t->open; }
size_t srv_conns_busy(const srv_conns *t) { return t->busy; }
srv_conns_closed srv_conns_closed_counts(const srv_conns *t) { return t->closed; }
