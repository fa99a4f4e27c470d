/* handlers.c: the routes (handlers/handlers.h).
 *
 *   POST /dags/{name}/run             run result             dag/dag.h
 *   GET  /dags                        names, inputs, outputs
 *   GET  /dags/{name}                 nodes, kinds, deps
 *   GET  /dags/{name}/dot             Graphviz DOT
 *   GET  /stats, GET /metrics         from the worker's scoreboard
 *   GET  /healthz                     "ok"
 *   GET  /dashboard                   the live page (handlers/dashboard.h)
 *   POST /admin/gc/collect?generation=G   403 unless admin
 *
 * Life of a request in libmicrohttpd: the first call only creates its state;
 * upload calls append to a buffer under max_body_bytes (checked against
 * Content-Length first, then while reading, so chunked bodies are bounded
 * too); the final call parses once, runs, and queues the one response.
 * h_completed frees the state and does the accounting and access log.
 */
#include "handlers/handlers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "dag/dag.h"
#include "dag/json_in.h"
#include "handlers/dashboard.h"
#include "heap/gc.h"

typedef struct h_stream h_stream;

typedef struct h_req {
    h_server *server;
    h_stream *stream; /* a streamed response still being sent */
    uint64_t t0_ns;
    char *body;
    size_t len, cap;
    bool started;       /* past the first call */
    uint64_t discarded; /* body bytes dropped once it was too large */
    unsigned status;
    size_t bytes_out;
    const char *allow; /* the route's methods, for a 405 */
    char method[8];
    char url[160];
} h_req;

/* ====================================================================== */
/* {  Responses                                                            */
/* ====================================================================== */

/* Queues `body` (malloc'ed; taken) with a status and content type. */
static enum MHD_Result respond(struct MHD_Connection *conn, h_req *r, unsigned status, const char *type, char *body,
                               size_t len, bool close_after)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (close_after || *r->server->phase != H_SERVING || r->server->cfg->keepalive_timeout_ms == 0)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    r->bytes_out = len;
    return rc;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, h_req *r, unsigned status, dag_writer *w)
{
    size_t len;
    char *body = dag_writer_take(w, &len);
    return respond(conn, r, status, "application/json", body, len, false);
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, h_req *r, unsigned status, const char *code,
                                     const char *node, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static enum MHD_Result respond_error(struct MHD_Connection *conn, h_req *r, unsigned status, const char *code,
                                     const char *node, const char *fmt, ...)
{
    dag_fail f = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.message, sizeof f.message, fmt, ap);
    va_end(ap);
    snprintf(f.node, sizeof f.node, "%s", node ? node : "");
    dag_writer w;
    dag_writer_init_mem(&w);
    dag_write_error(&w, &f);
    size_t len;
    char *body = dag_writer_take(&w, &len);
    /* A body we did not read leaves the connection unusable: close it. */
    bool unread = status == MHD_HTTP_CONTENT_TOO_LARGE || strcmp(code, "bad_request") == 0;
    return respond(conn, r, status, "application/json", body, len, unread);
}

/* A page compiled in (len bytes), copied for the one response. */
static enum MHD_Result respond_static(struct MHD_Connection *conn, h_req *r, const char *type, const char *page,
                                      size_t len)
{
    char *body = malloc(len);
    if (!body)
        return MHD_NO;
    memcpy(body, page, len);
    return respond(conn, r, MHD_HTTP_OK, type, body, len, false);
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, h_req *r, unsigned status, const char *type,
                                    const char *text)
{
    char *body = strdup(text);
    if (!body)
        return MHD_NO;
    return respond(conn, r, status, type, body, strlen(body), false);
}

static enum MHD_Result respond_jansson(struct MHD_Connection *conn, h_req *r, json_t *doc)
{
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!body)
        return respond_error(conn, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "cannot render JSON");
    return respond(conn, r, MHD_HTTP_OK, "application/json", body, strlen(body), false);
}

/* --- streamed responses ----------------------------------------------------
 * A run response larger than H_STREAM_ABOVE is sent while it is written:
 * libmicrohttpd asks for the next piece whenever the socket takes more
 * (with chunked transfer encoding, as much as its connection buffer holds,
 * about 32 KiB; H_STREAM_BLOCK is the piece for HTTP/1.0 clients), so the
 * worker holds one piece of the text, not all of it, and serves other
 * connections in between.  The stream and its request each clear the
 * other's pointer when they go, in whichever order libmicrohttpd ends them
 * (it runs the completion callback first, then frees the response). */
enum { H_STREAM_ABOVE = 256 << 10, H_STREAM_BLOCK = 16 << 10 };

typedef struct h_stream {
    h_server *server;
    uint64_t held;  /* its result's heap bytes, counted in server->streaming_bytes */
    dag_response *resp;
    dag_writer w;   /* written, not yet handed over: from `off` */
    size_t off;
    bool more;      /* the response has more to write */
    uint64_t sent;
    h_req *req;     /* NULL once the request has completed */
} h_stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    h_stream *st = cls;
    if (st->off == st->w.len) {
        st->w.len = st->off = 0;
        if (!st->more)
            return MHD_CONTENT_READER_END_OF_STREAM;
        st->more = dag_response_fill(st->resp, &st->w, max);
    }
    size_t n = st->w.len - st->off < max ? st->w.len - st->off : max;
    memcpy(buf, st->w.buf + st->off, n);
    st->off += n;
    st->sent += n;
    if (st->req)
        st->req->bytes_out = st->sent;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    h_stream *st = cls;
    if (st->req)
        st->req->stream = NULL;
    st->server->streaming_bytes -= st->held;
    dag_response_free(st->resp);
    dag_writer_free(&st->w);
    free(st);
}

/* Queues the response whose first part is in w (taken); the rest of it
 * comes from resp (taken) as the client reads. */
static enum MHD_Result respond_stream(struct MHD_Connection *conn, h_req *r, dag_response *resp, dag_writer *w,
                                      uint64_t held)
{
    h_stream *st = malloc(sizeof *st);
    if (!st) {
        dag_response_free(resp);
        dag_writer_free(w);
        return MHD_NO;
    }
    *st = (h_stream){.server = r->server, .held = held, .resp = resp, .w = *w, .more = true, .req = r};
    r->server->streaming_bytes += held;
    struct MHD_Response *resp_h =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, H_STREAM_BLOCK, stream_read, st, stream_free);
    if (!resp_h) {
        stream_free(st);
        return MHD_NO;
    }
    r->stream = st;
    MHD_add_response_header(resp_h, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (*r->server->phase != H_SERVING || r->server->cfg->keepalive_timeout_ms == 0)
        MHD_add_response_header(resp_h, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp_h);
    MHD_destroy_response(resp_h);
    r->status = MHD_HTTP_OK;
    return rc;
}

/* The status for each run error code (README.md, "Serving"). */
static unsigned status_of(const char *code)
{
    if (strcmp(code, "bad_json") == 0)
        return MHD_HTTP_BAD_REQUEST;
    if (strcmp(code, "unknown_dag") == 0 || strcmp(code, "not_found") == 0)
        return MHD_HTTP_NOT_FOUND;
    if (strcmp(code, "internal") == 0)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    return MHD_HTTP_UNPROCESSABLE_CONTENT;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Routes                                                               */
/* ====================================================================== */

static enum MHD_Result route_run(h_server *s, struct MHD_Connection *conn, h_req *r, const dag *d)
{
    heap_obj *req = NULL;
    if (r->len) { /* straight into heap values (dag/json_in.h) */
        json_error_t jerr;
        if (dag_request_parse(r->body, r->len, &req, &jerr) != DAG_OK)
            return respond_error(conn, r, MHD_HTTP_BAD_REQUEST, "bad_json", NULL, "line %d, column %d: %s",
                                 jerr.line, jerr.column, jerr.text);
        if (heap_type_of(req) != HT_DICT) { /* JSON, of the wrong type: whatever the type, one fault */
            const char *kind = dag_value_kind(req);
            heap_decref(req);
            return respond_error(conn, r, MHD_HTTP_UNPROCESSABLE_CONTENT, "type_error", NULL,
                                 "the request body must be a JSON object, got %s", kind);
        }
    }
    /* What responses still being sent hold counts against the budget: slow
     * readers do not multiply a worker's memory by max_run_bytes. */
    dag_result res;
    dag_fail f = {0};
    int rc = ld_world_run(s->world, s->cfg, d, req, r->t0_ns, s->streaming_bytes, &res, &f);
    heap_xdecref(req);
    uint64_t held = rc == DAG_OK ? res.held_bytes : 0; /* what the outputs hold */
    dag_response *out = NULL;
    if (rc == DAG_OK && dag_response_new(d, &res, s->worker, s->pid ? s->pid : (long)getpid(), &out, &f) != DAG_OK) {
        dag_result_free(&res);
        rc = DAG_ERR;
    }
    dag_writer w;
    dag_writer_init_mem(&w);
    if (rc != DAG_OK) {
        dag_write_error(&w, &f);
        return respond_json(conn, r, status_of(f.code), &w);
    }
    dag_writer_reserve(&w, 4096);
    if (!dag_response_fill(out, &w, H_STREAM_ABOVE)) { /* all of it: one buffer */
        dag_response_free(out);
        return respond_json(conn, r, MHD_HTTP_OK, &w);
    }
    return respond_stream(conn, r, out, &w, held);
}

static enum MHD_Result route_dags(h_server *s, struct MHD_Connection *conn, h_req *r)
{
    json_t *list = json_array();
    for (size_t i = 0; i < s->world->ndags; i++)
        json_array_append_new(list, dag_summary_json(s->world->dags[i]));
    return respond_jansson(conn, r, list);
}

static enum MHD_Result route_collect(h_server *s, struct MHD_Connection *conn, h_req *r)
{
    if (!s->cfg->admin)
        return respond_error(conn, r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
                             "admin routes are off (set \"admin\": true in the config)");
    const char *g = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "generation");
    int gen = 2;
    if (g) {
        char *end;
        long v = strtol(g, &end, 10);
        if (!*g || *end || v < 0 || v >= GC_GENERATIONS)
            return respond_error(conn, r, MHD_HTTP_UNPROCESSABLE_CONTENT, "type_error", NULL,
                                 "generation must be 0, 1 or 2, not '%s'", g);
        gen = (int)v;
    }
    uint64_t t0 = base_now_ns();
    uint64_t freed = gc_collect(gen);
    uint64_t us = (base_now_ns() - t0) / 1000;
    gc_stats gs;
    gc_get_stats(&gs);
    return respond_jansson(conn, r,
                           json_pack("{s:i, s:I, s:I, s:I, s:I, s:i, s:I}", "generation", gen, "collected",
                                     (json_int_t)freed, "pause_us", (json_int_t)us, "tracked",
                                     (json_int_t)gs.tracked, "frozen", (json_int_t)gs.frozen, "worker", s->worker,
                                     "pid", (json_int_t)getpid()));
}

/* The address ranges this worker's state figures cover: what a test needs
 * to check them against /proc/PID/smaps.  Admin only. */
static enum MHD_Result route_regions(h_server *s, struct MHD_Connection *conn, h_req *r)
{
    if (!s->cfg->admin)
        return respond_error(conn, r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
                             "admin routes are off (set \"admin\": true in the config)");
    size_t n = heap_inherited_regions(NULL, 0);
    heap_region *reg = malloc((n ? n : 1) * sizeof *reg);
    if (!reg)
        return respond_error(conn, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
    n = heap_inherited_regions(reg, n);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("[I,I]", (json_int_t)reg[i].start, (json_int_t)reg[i].end));
    free(reg);
    return respond_jansson(conn, r,
                           json_pack("{s:i, s:I, s:o}", "worker", s->worker, "pid", (json_int_t)getpid(), "regions",
                                     list));
}

static enum MHD_Result route_generated(struct MHD_Connection *conn, h_req *r, char *(*render)(void *), void *arg,
                                       const char *type)
{
    char *body = render ? render(arg) : NULL;
    if (!body)
        return respond_error(conn, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                             "this worker has no statistics to serve");
    return respond(conn, r, MHD_HTTP_OK, type, body, strlen(body), false);
}

static enum MHD_Result not_allowed(struct MHD_Connection *conn, h_req *r, const char *url, const char *allow)
{
    r->allow = allow;
    return respond_error(conn, r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL, "%s: use %s", url,
                         allow);
}

/* Splits "/dags/NAME[/REST]": copies NAME, points *rest at what follows
 * (NULL if nothing). */
static bool dag_path(const char *url, char *name, size_t cap, const char **rest)
{
    if (strncmp(url, "/dags/", 6) != 0)
        return false;
    const char *p = url + 6, *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= cap)
        return false;
    memcpy(name, p, n);
    name[n] = '\0';
    *rest = slash ? slash + 1 : NULL;
    return true;
}

/* Decides the route and answers it (the body, if any, is in r). */
static enum MHD_Result dispatch(h_server *s, struct MHD_Connection *conn, h_req *r, const char *url,
                                const char *method)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    char name[128];
    const char *rest;
    if (strcmp(url, "/healthz") == 0)
        return get ? respond_text(conn, r, MHD_HTTP_OK, "text/plain", "ok\n")
                   : not_allowed(conn, r, url, "GET, HEAD");
    if (strcmp(url, "/dashboard") == 0) {
        if (!s->cfg->dashboard)
            return respond_error(conn, r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                                 "the dashboard is off (\"dashboard\": false in the config)");
        return get ? respond_static(conn, r, "text/html; charset=utf-8", h_dashboard_html, h_dashboard_len)
                   : not_allowed(conn, r, url, "GET, HEAD");
    }
    if (strcmp(url, "/dags") == 0 || strcmp(url, "/dags/") == 0)
        return get ? route_dags(s, conn, r)
                   : not_allowed(conn, r, url, "GET, HEAD");
    if (strcmp(url, "/stats") == 0 || strcmp(url, "/metrics") == 0) {
        if (!get)
            return not_allowed(conn, r, url, "GET, HEAD");
        return url[1] == 's' ? route_generated(conn, r, s->stats_json, s->stats_arg, "application/json")
                             : route_generated(conn, r, s->metrics_text, s->stats_arg,
                                               "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/admin/regions") == 0)
        return get ? route_regions(s, conn, r) : not_allowed(conn, r, url, "GET, HEAD");
    if (strcmp(url, "/admin/gc/collect") == 0)
        return post ? route_collect(s, conn, r)
                    : not_allowed(conn, r, url, "POST");
    if (dag_path(url, name, sizeof name, &rest)) {
        const dag *d = ld_world_dag(s->world, name);
        bool run = rest && strcmp(rest, "run") == 0, dot = rest && strcmp(rest, "dot") == 0;
        if (rest && !run && !dot && *rest)
            return respond_error(conn, r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no route %s", url);
        if (run ? !post : !get)
            return not_allowed(conn, r, url, run ? "POST" : "GET, HEAD");
        if (!d)
            return respond_error(conn, r, MHD_HTTP_NOT_FOUND, "unknown_dag", NULL, "no DAG named '%s'", name);
        if (run)
            return route_run(s, conn, r, d);
        if (dot) {
            char *text = dag_dot(d);
            return respond(conn, r, MHD_HTTP_OK, "text/vnd.graphviz", text, strlen(text), false);
        }
        return respond_jansson(conn, r, dag_detail_json(d));
    }
    return respond_error(conn, r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no route %s", url);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The MHD callbacks                                                    */
/* ====================================================================== */

/* Values of header `name` in the request: how many, and whether they all
 * say the same. */
typedef struct header_count {
    const char *name;
    unsigned n;
    bool differ;
    const char *first;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    header_count *h = cls;
    if (strcasecmp(key, h->name) != 0)
        return MHD_YES;
    if (h->n++ == 0)
        h->first = value;
    else if (strcmp(value, h->first) != 0)
        h->differ = true;
    return MHD_YES;
}

static header_count count_headers(struct MHD_Connection *conn, const char *name)
{
    header_count h = {.name = name};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &h);
    return h;
}

/* The faults of the HTTP message itself that libmicrohttpd lets through
 * (RFC 9112): an HTTP/1.1 request without exactly one Host; Content-Length
 * values that differ, or one beside Transfer-Encoding, or a transfer coding
 * other than chunked -- where the body ends would be in doubt, and a proxy
 * in front may have read it otherwise.  NULL when the message is sound. */
static const char *message_fault(struct MHD_Connection *conn, const char *version)
{
    if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && count_headers(conn, MHD_HTTP_HEADER_HOST).n != 1)
        return "an HTTP/1.1 request needs exactly one Host header";
    header_count cl = count_headers(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl.differ)
        return "Content-Length headers disagree";
    header_count te = count_headers(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te.n && cl.n)
        return "a request may have Content-Length or Transfer-Encoding, not both";
    if (te.n && (te.n > 1 || strcasecmp(te.first, "chunked") != 0))
        return "the only transfer coding taken is chunked";
    return NULL;
}

enum MHD_Result h_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                         const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    h_server *s = cls;
    h_req *r = *req_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->server = s;
        r->t0_ns = base_now_ns();
        s->inflight++;
        if (s->on_begin)
            s->on_begin(s->conn_arg, conn, method, url);
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        *req_cls = r;
        if (*s->phase == H_REFUSING)
            return respond_error(conn, r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", NULL,
                                 "this worker is shutting down; retry");
        const char *fault = message_fault(conn, version);
        if (fault) /* answered now, closing: the body, if any, is never read as a request */
            return respond_error(conn, r, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, "%s", fault);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > s->cfg->max_body_bytes)
                return respond_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL,
                                     "the body (%s bytes) exceeds max_body_bytes (%" PRIu64 ")", cl,
                                     s->cfg->max_body_bytes);
            if (n && (r->body = malloc(n))) /* the whole body, in one allocation */
                r->cap = n;
        }
        return MHD_YES;
    }
    if (r->status) /* answered already (an early error); drain */
        return *upload_data_size = 0, MHD_YES;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->discarded || r->len + n > s->cfg->max_body_bytes) {
            /* Too large.  The rest is read and dropped, so the client, still
             * sending, gets its 413 cleanly at the end (closing on unread
             * input would reset the connection under the answer) -- but only
             * up to a cap: an endless body is cut off. */
            r->discarded += n;
            uint64_t cap = 8 * s->cfg->max_body_bytes > (8u << 20) ? 8 * s->cfg->max_body_bytes : (8u << 20);
            if (r->discarded > cap)
                return respond_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL,
                                     "the body exceeds max_body_bytes (%" PRIu64 ")", s->cfg->max_body_bytes);
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b)
                return respond_error(conn, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->discarded)
        return respond_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL,
                             "the body exceeds max_body_bytes (%" PRIu64 ")", s->cfg->max_body_bytes);
    return dispatch(s, conn, r, url, method);
}

void h_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    h_server *s = cls;
    h_req *r = *req_cls;
    if (!r) { /* libmicrohttpd refused it before any route saw it */
        if (s->on_end)
            s->on_end(s->conn_arg, conn);
        return;
    }
    *req_cls = NULL;
    s->inflight--;
    if (r->stream)
        r->stream->req = NULL;
    if (r->status) {
        uint64_t us = (base_now_ns() - r->t0_ns) / 1000;
        s->requests++;
        if (r->status >= 400)
            s->errors++;
        if (s->on_request)
            s->on_request(s->on_request_arg, r->status, us);
        if (s->cfg->access_log) {
            char addr[INET6_ADDRSTRLEN] = "-";
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
                else if (sa->sa_family == AF_INET6)
                    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
            }
            fprintf(stderr, "%s \"%s %s\" %u %zu %.6fs w%d%s\n", addr, r->method, r->url, r->status, r->bytes_out,
                    (double)us / 1e6, s->worker, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
        }
    }
    free(r->body);
    free(r);
    if (s->on_end) /* after on_request: the connection is idle from here */
        s->on_end(s->conn_arg, conn);
}

/* }====================================================================== */
