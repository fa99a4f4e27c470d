/* top.c: `cowdag top` (server/top.h).  Every interval: GET /stats (the
 * workers, their memory and collector figures) and GET /metrics (the
 * request-duration histograms); req/s and p50/p99 come from the
 * difference between two readings, so they describe the last interval.
 * ncurses draws into a buffer and sends only what changed, so redrawing
 * does not flicker; a resize redraws at once. */
#include "server/top.h"

#include <curses.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "server/client.h"
#include "server/serve.h"

#define TOP_ROWS 256    /* workers shown at most */
#define TOP_BUCKETS 32  /* histogram buckets read per worker */
#define BAR 20          /* width of the copied-share bar */

typedef struct hist {
    int pid;
    int n;
    double le[TOP_BUCKETS];  /* upper bounds, ascending; +Inf last */
    double cum[TOP_BUCKETS]; /* cumulative counts */
} hist;

typedef struct row {
    int slot, pid, gen;
    char status[16];
    uint64_t requests;
    double rps, p50_ms, p99_ms; /* p50_ms < 0: no request in the interval */
    double shared, copied_mib, pss_mib;
    long long coll[3];
    double pause_max_ms;
} row;

typedef struct view {
    const char *url;
    double interval;
    char sort; /* 0 slot, 's' shared, 'r' req/s, 'm' memory */
    row rows[TOP_ROWS];
    int nrows;
    char master[256];
    char types[256]; /* the most copied object types, when the server says */
    char error[512];
    /* the previous reading, for rates */
    hist prev[TOP_ROWS];
    int nprev; /* histograms in prev */
    int nprev_rows;
    uint64_t prev_req[TOP_ROWS];
    int prev_pid[TOP_ROWS];
    uint64_t prev_at_ms;
} view;

static const char *const usage_top =
    "usage: cowdag top [--url URL] [--interval S]\n"
    "\n"
    "A live view of a running server: one line per worker (slot, pid,\n"
    "generation, status, req/s, p50 and p99 over the last interval, the\n"
    "share of the inherited state still shared, the MiB it has copied, its\n"
    "collections and longest pause), and the master with the total PSS.\n"
    "Keys: s sorts by shared (least first), r by req/s, m by copied memory,\n"
    "any other the slot order; q quits.\n"
    "\n"
    "  --url URL       the server (default http://127.0.0.1:8080)\n"
    "  --interval S    seconds between readings (default 1)\n";

/* ---- reading ------------------------------------------------------------ */

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

/* The label `key` of a sample line ("...key=\"VALUE\"..."), into out. */
static bool label(const char *line, const char *key, char *out, size_t cap)
{
    char pat[32];
    snprintf(pat, sizeof pat, "%s=\"", key);
    const char *at = strstr(line, pat);
    if (!at)
        return false;
    at += strlen(pat);
    const char *end = strchr(at, '"');
    if (!end || (size_t)(end - at) >= cap)
        return false;
    memcpy(out, at, (size_t)(end - at));
    out[end - at] = '\0';
    return true;
}

/* Every worker's duration histogram in the metrics text. */
static int read_histograms(const char *text, hist *out, int cap)
{
    static const char name[] = "cowdag_request_duration_seconds_bucket{";
    int n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, sizeof name - 1) != 0)
            continue;
        char pid[16], le[32];
        const char *close = strchr(p, '}');
        if (!close || !label(p, "pid", pid, sizeof pid) || !label(p, "le", le, sizeof le))
            continue;
        int k = 0, id = atoi(pid);
        while (k < n && out[k].pid != id)
            k++;
        if (k == n) {
            if (n == cap)
                continue;
            out[n++] = (hist){.pid = id};
        }
        hist *h = &out[k];
        if (h->n < TOP_BUCKETS) {
            h->le[h->n] = strcmp(le, "+Inf") == 0 ? 1e300 : strtod(le, NULL);
            h->cum[h->n] = strtod(close + 1, NULL);
            h->n++;
        }
    }
    return n;
}

/* The q-quantile's bucket bound, in ms, of what a histogram gained since
 * `before` (NULL: since the start); -1 when it gained nothing. */
static double quantile_ms(const hist *now, const hist *before, double q)
{
    double total = now->cum[now->n - 1] - (before ? before->cum[before->n - 1] : 0);
    if (now->n == 0 || total <= 0)
        return -1;
    for (int b = 0; b < now->n; b++) {
        double got = now->cum[b] - (before && b < before->n ? before->cum[b] : 0);
        if (got >= q * total)
            return now->le[b] >= 1e300 ? 1e9 : now->le[b] * 1000.0;
    }
    return -1;
}

static void read_master(view *v, json_t *doc)
{
    json_t *m = json_object_get(doc, "master"), *gc = json_object_get(m, "gc");
    double pss = num(json_object_get(m, "memory"), "pss_bytes");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w) pss += num(json_object_get(w, "memory"), "pss_bytes");
    const char *mode = json_string_value(json_object_get(gc, "mode"));
    snprintf(v->master, sizeof v->master,
             "master pid %lld, gc %s%s, state %.1f MiB, %d workers, total PSS %.1f MiB",
             (long long)json_integer_value(json_object_get(m, "pid")), mode ? mode : "?",
             json_is_true(json_object_get(gc, "immortal")) ? " + immortal" : "", num(m, "state_bytes") / 1048576.0,
             (int)json_array_size(json_object_get(doc, "workers")), pss / 1048576.0);
}

/* The object types that copied the most pages, summed over the workers,
 * from memory.state.copied_by_type when the server reports it. */
static void read_types(view *v, json_t *doc)
{
    v->types[0] = '\0';
    json_t *sum = json_object();
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        json_t *by = json_object_get(json_object_get(json_object_get(w, "memory"), "state"), "copied_by_type");
        const char *type;
        json_t *pages;
        json_object_foreach(by, type, pages)
        {
            json_t *pages_n = json_is_object(pages) ? json_object_get(pages, "pages") : pages;
            json_object_set_new(sum, type,
                                json_integer(json_integer_value(json_object_get(sum, type)) +
                                             json_integer_value(pages_n)));
        }
    }
    size_t len = 0;
    for (int shown = 0; shown < 4 && json_object_size(sum); shown++) {
        const char *best = NULL, *type;
        json_t *pages;
        json_object_foreach(sum, type, pages) if (!best || json_integer_value(pages) >
                                                              json_integer_value(json_object_get(sum, best))) best =
            type;
        if (!best || json_integer_value(json_object_get(sum, best)) <= 0)
            break;
        len += (size_t)snprintf(v->types + len, sizeof v->types - len, "%s%s %lld pages", shown ? ", " : "", best,
                                (long long)json_integer_value(json_object_get(sum, best)));
        json_object_del(sum, best);
        if (len >= sizeof v->types)
            break;
    }
    json_decref(sum);
}

static void read_rows(view *v, json_t *doc, const hist *h, int nh, uint64_t now)
{
    double secs = v->prev_at_ms ? (double)(now - v->prev_at_ms) / 1000.0 : 0;
    v->nrows = 0;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        if (v->nrows == TOP_ROWS)
            break;
        row *r = &v->rows[v->nrows++];
        json_t *mem = json_object_get(w, "memory"), *st = json_object_get(mem, "state"),
               *gc = json_object_get(w, "gc"), *coll = json_object_get(gc, "collections");
        *r = (row){.slot = (int)json_integer_value(json_object_get(w, "id")),
                   .pid = (int)json_integer_value(json_object_get(w, "pid")),
                   .gen = (int)json_integer_value(json_object_get(w, "generation")),
                   .requests = (uint64_t)json_integer_value(json_object_get(w, "requests")),
                   .shared = num(st, "shared_ratio"),
                   .copied_mib = num(st, "private_pages") * 4096.0 / 1048576.0,
                   .pss_mib = num(mem, "pss_bytes") / 1048576.0,
                   .pause_max_ms = num(gc, "pause_us_max") / 1000.0,
                   .rps = -1,
                   .p50_ms = -1,
                   .p99_ms = -1};
        const char *status = json_string_value(json_object_get(w, "status"));
        snprintf(r->status, sizeof r->status, "%s", status ? status : "?");
        for (int g = 0; g < 3; g++)
            r->coll[g] = (long long)json_integer_value(json_array_get(coll, (size_t)g));
        for (int k = 0; k < v->nprev_rows; k++)
            if (v->prev_pid[k] == r->pid && secs > 0)
                r->rps = (double)(r->requests - v->prev_req[k]) / secs;
        for (int k = 0; k < nh; k++) {
            if (h[k].pid != r->pid || h[k].n == 0)
                continue;
            const hist *before = NULL;
            for (int j = 0; j < v->nprev; j++)
                if (v->prev[j].pid == r->pid)
                    before = &v->prev[j];
            r->p50_ms = quantile_ms(&h[k], before, 0.5);
            r->p99_ms = quantile_ms(&h[k], before, 0.99);
        }
    }
}

/* One reading of both routes into the view; false (v->error said) when
 * the server cannot be read. */
static bool read_server(view *v)
{
    char err[256], *stats = NULL, *metrics = NULL;
    int st1 = 0, st2 = 0;
    if (srv_http_get(v->url, "/stats", &st1, &stats, err, sizeof err) != SRV_OK ||
        srv_http_get(v->url, "/metrics", &st2, &metrics, err, sizeof err) != SRV_OK || st1 != 200 || st2 != 200) {
        if (st1 && st1 != 200)
            snprintf(err, sizeof err, "/stats answered %d", st1);
        else if (st2 && st2 != 200)
            snprintf(err, sizeof err, "/metrics answered %d", st2);
        snprintf(v->error, sizeof v->error, "cannot read %s: %s; retrying every %g s", v->url, err, v->interval);
        free(stats);
        free(metrics);
        v->nprev = v->nprev_rows = 0; /* a restarted server starts its counters again */
        v->prev_at_ms = 0;
        return false;
    }
    json_t *doc = json_loads(stats, 0, NULL);
    free(stats);
    if (!doc) {
        free(metrics);
        snprintf(v->error, sizeof v->error, "%s/stats is not JSON; retrying every %g s", v->url, v->interval);
        return false;
    }
    static hist h[TOP_ROWS];
    int nh = read_histograms(metrics, h, TOP_ROWS);
    free(metrics);
    uint64_t now = base_now_ms();
    v->error[0] = '\0';
    read_master(v, doc);
    read_types(v, doc);
    read_rows(v, doc, h, nh, now);
    json_decref(doc);
    memcpy(v->prev, h, (size_t)nh * sizeof *h);
    for (int k = 0; k < v->nrows; k++) {
        v->prev_pid[k] = v->rows[k].pid;
        v->prev_req[k] = v->rows[k].requests;
    }
    v->nprev = nh;
    v->nprev_rows = v->nrows;
    v->prev_at_ms = now;
    return true;
}

/* ---- drawing ------------------------------------------------------------- */

static const view *sorting;

static int by_key(const void *a, const void *b)
{
    const row *x = a, *y = b;
    double d = 0;
    switch (sorting->sort) {
    case 's':
        d = x->shared - y->shared; /* least shared first */
        break;
    case 'r':
        d = y->rps - x->rps;
        break;
    case 'm':
        d = y->copied_mib - x->copied_mib;
        break;
    }
    if (d != 0)
        return d < 0 ? -1 : 1;
    return x->slot != y->slot ? x->slot - y->slot : x->pid - y->pid;
}

static void fmt_ms(char *out, size_t cap, double ms)
{
    if (ms < 0)
        snprintf(out, cap, "-");
    else if (ms >= 1e8)
        snprintf(out, cap, ">max");
    else
        snprintf(out, cap, "%.3g", ms);
}

static void draw(view *v)
{
    erase();
    static const char *const sort_names[] = {"slot", "shared", "req/s", "memory"};
    const char *sort_name = sort_names[v->sort == 's' ? 1 : v->sort == 'r' ? 2 : v->sort == 'm' ? 3 : 0];
    mvprintw(0, 0, "cowdag top  %s  every %g s  sorted by %s  (s shared, r req/s, m memory, q quit)", v->url,
             v->interval, sort_name);
    if (v->error[0]) {
        mvprintw(2, 0, "%s", v->error);
        refresh();
        return;
    }
    mvprintw(1, 0, "%s", v->master);
    int y = 3;
    attron(A_BOLD);
    mvprintw(y++, 0, "%-4s %-8s %-3s %-9s %8s %7s %7s %7s %10s %-*s %11s %9s", "slot", "pid", "gen", "status",
             "req/s", "p50 ms", "p99 ms", "shared", "copied MiB", BAR + 2, "", "collections", "pause ms");
    attroff(A_BOLD);
    sorting = v;
    qsort(v->rows, (size_t)v->nrows, sizeof *v->rows, by_key);
    for (int i = 0; i < v->nrows && y < LINES - 2; i++) {
        const row *r = &v->rows[i];
        char rps[16], p50[16], p99[16], bar[BAR + 3], coll[40];
        if (r->rps < 0)
            snprintf(rps, sizeof rps, "-");
        else
            snprintf(rps, sizeof rps, "%.0f", r->rps);
        fmt_ms(p50, sizeof p50, r->p50_ms);
        fmt_ms(p99, sizeof p99, r->p99_ms);
        int fill = (int)((1.0 - r->shared) * BAR + 0.5);
        fill = fill < 0 ? 0 : fill > BAR ? BAR : fill;
        bar[0] = '[';
        for (int k = 0; k < BAR; k++)
            bar[1 + k] = k < fill ? '#' : '.';
        bar[BAR + 1] = ']';
        bar[BAR + 2] = '\0';
        snprintf(coll, sizeof coll, "%lld/%lld/%lld", r->coll[0], r->coll[1], r->coll[2]);
        mvprintw(y++, 0, "%-4d %-8d %-3d %-9s %8s %7s %7s %6.1f%% %10.1f %s %11s %9.2f", r->slot, r->pid, r->gen,
                 r->status, rps, p50, p99, 100.0 * r->shared, r->copied_mib, bar, coll, r->pause_max_ms);
    }
    if (v->types[0] && y < LINES - 1)
        mvprintw(y + 1, 0, "most copied: %s", v->types);
    refresh();
}

/* ---- the command ------------------------------------------------------------ */

int srv_top(int argc, char **argv)
{
    enum { O_URL = 1, O_INTERVAL };
    static const struct option opts[] = {{"url", required_argument, NULL, O_URL},
                                         {"interval", required_argument, NULL, O_INTERVAL},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static view v;
    memset(&v, 0, sizeof v);
    v.url = "http://127.0.0.1:8080";
    v.interval = 1;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_URL) {
            v.url = optarg;
        } else if (c == O_INTERVAL) {
            char *end;
            v.interval = strtod(optarg, &end);
            if (*end || !(v.interval >= 0.05 && v.interval <= 3600)) {
                fprintf(stderr, "cowdag top: --interval wants seconds from 0.05 to 3600, not '%s'\n", optarg);
                return 2;
            }
        } else if (c == 'h') {
            fputs(usage_top, stdout);
            return 0;
        } else {
            fprintf(stderr, "cowdag top: unknown or incomplete option '%s'\n\n%s", argv[optind - 1], usage_top);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cowdag top: unexpected argument '%s'\n\n%s", argv[optind], usage_top);
        return 2;
    }
    SCREEN *screen = newterm(NULL, stdout, stdin);
    if (!screen) {
        fprintf(stderr, "cowdag top: needs a terminal (TERM=%s)\n", getenv("TERM") ? getenv("TERM") : "");
        return 1;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    uint64_t next = 0;
    for (;;) {
        if (base_now_ms() >= next) { /* a reading, then the wait for the next */
            read_server(&v);
            next = base_now_ms() + (uint64_t)(v.interval * 1000);
            draw(&v);
        }
        long wait = (long)(next - base_now_ms());
        timeout(wait > 0 ? (int)wait : 0);
        int key = getch();
        if (key == 'q' || key == 'Q')
            break;
        if (key == 's' || key == 'r' || key == 'm' || key == 'n') {
            v.sort = key == 'n' ? 0 : (char)key;
            draw(&v);
        } else if (key == KEY_RESIZE) {
            draw(&v);
        }
    }
    endwin();
    delscreen(screen);
    return 0;
}
