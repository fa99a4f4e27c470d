/* stats.c: the bodies of GET /stats (JSON, built with jansson) and GET /metrics
 * (Prometheus text exposition 0.0.4), both rendered from one snapshot of the
 * scoreboard.  Contract: handlers/stats.h; shapes: SPEC.md "Metrics". */
#include "handlers/stats.h"

#include "base/clock.h"
#include "heap/heap.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ====================================================================== */
/* {  The /metrics families                                               */
/* ====================================================================== */

/* Every family GET /metrics writes, in the order it writes them; the help
 * column is the family's # HELP text.
 *
 * Per-worker families carry `worker` (the slot number) and `pid`: during a
 * reload the old and the new process of one slot report side by side, and a
 * respawned worker is a new pid, so a new series whose counters start at
 * zero (which is what Prometheus expects of a restarted counter anyway).
 * An entry without a pid yet (claimed, not forked) has no figures of its
 * own: it is counted in cowdag_workers and has no per-worker series.
 *
 * Memory figures are sampled from /proc now and then; until an entry's first
 * sample (at_ms == 0) its memory, state and sample-age series are left out
 * rather than reported as zero, and likewise the master's memory.
 *
 * Units are in the names: bytes, seconds, pages and objects; counters end
 * in _total.  The histogram's buckets are the scoreboard's
 * (ms_hist_bounds), written cumulatively as Prometheus wants them. */
typedef enum fam_id {
    /* the master and the pool */
    F_MASTER_INFO,
    F_MASTER_GC_THRESHOLD,
    F_MASTER_STATE_BYTES,
    F_MASTER_STATE_PAGES,
    F_MASTER_MEMORY,
    F_WORKERS_DESIRED,
    F_WORKERS,
    F_RESTARTS,
    /* each worker */
    F_WORKER_INFO,
    F_WORKER_GENERATION,
    F_WORKER_UPTIME,
    F_REQUESTS,
    F_ERRORS,
    F_DURATION,
    F_WORKER_MEMORY,
    F_STATE_PAGES,
    F_STATE_RATIO,
    F_STATE_COPIED,
    F_SAMPLE_AGE,
    F_GC_COLLECTIONS,
    F_GC_COLLECTED,
    F_GC_PAUSE,
    F_GC_PAUSE_MAX,
    F_GC_TRACKED,
    F_GC_FROZEN,
    F_HEAP_OBJECTS,
    F_COUNT
} fam_id;

typedef struct family {
    const char *name;
    const char *type;
    const char *labels; /* documentation only: what the samples carry */
    const char *help;
} family;

static const family families[F_COUNT] = {
    [F_MASTER_INFO] = {"cowdag_master_info", "gauge", "pid, mode, immortal",
        "Always 1; the master's pid and collector settings (mode: the gc mode, immortal: true|false)."},
    [F_MASTER_GC_THRESHOLD] = {"cowdag_master_gc_threshold", "gauge", "generation",
        "Collector threshold of each generation (0, 1, 2), as the master set it."},
    [F_MASTER_STATE_BYTES] = {"cowdag_master_state_bytes", "gauge", "",
        "Heap bytes the master holds as the shared state."},
    [F_MASTER_STATE_PAGES] = {"cowdag_master_state_pages", "gauge", "",
        "Resident pages of the master's heap regions."},
    [F_MASTER_MEMORY] = {"cowdag_master_memory_bytes", "gauge", "kind",
        "Master memory from smaps_rollup (kind: rss, pss, shared_clean, shared_dirty, private_clean, "
        "private_dirty); absent until the first sample."},
    [F_WORKERS_DESIRED] = {"cowdag_workers_desired", "gauge", "",
        "Workers the master is configured to keep running."},
    [F_WORKERS] = {"cowdag_workers", "gauge", "status",
        "Worker processes on the scoreboard, by status (starting, ready, draining)."},
    [F_RESTARTS] = {"cowdag_worker_restarts_total", "counter", "worker, reason",
        "Times the master replaced the worker of this slot, by reason (timeout, crash, max_requests, copied, rss, "
        "reload, scale)."},
    [F_WORKER_INFO] = {"cowdag_worker_info", "gauge", "worker, pid, status",
        "Always 1; the worker's status (starting, ready, draining)."},
    [F_WORKER_GENERATION] = {"cowdag_worker_generation", "gauge", "worker, pid",
        "Reload generation the worker belongs to."},
    [F_WORKER_UPTIME] = {"cowdag_worker_uptime_seconds", "gauge", "worker, pid",
        "Seconds since the master started the worker."},
    [F_REQUESTS] = {"cowdag_requests_total", "counter", "worker, pid, code",
        "Requests answered, by status class (code: 1xx..5xx; 2xx is always present)."},
    [F_ERRORS] = {"cowdag_request_errors_total", "counter", "worker, pid",
        "Requests answered with a status of 400 or more."},
    [F_DURATION] = {"cowdag_request_duration_seconds", "histogram", "worker, pid (+ le)",
        "Time from a request's arrival to its response."},
    [F_WORKER_MEMORY] = {"cowdag_worker_memory_bytes", "gauge", "worker, pid, kind",
        "Worker memory from smaps_rollup (kind: rss, pss, shared_clean, shared_dirty, private_clean, "
        "private_dirty); absent until the first sample."},
    [F_STATE_PAGES] = {"cowdag_worker_state_pages", "gauge", "worker, pid, sharing",
        "Resident pages of the state inherited from the master (sharing: shared = still the master's, "
        "private = copied on write)."},
    [F_STATE_RATIO] = {"cowdag_worker_state_shared_ratio", "gauge", "worker, pid",
        "Shared over resident pages of the inherited state (1 when none is resident)."},
    [F_STATE_COPIED] = {"cowdag_worker_state_copied_pages", "gauge", "worker, pid, type",
        "Pages of the inherited state copied on write that hold an object of this type (int, float, str, list, "
        "dict, array, table) or storage (list items, dict tables, array data); a page holding several types counts "
        "for each."},
    [F_SAMPLE_AGE] = {"cowdag_worker_sample_age_seconds", "gauge", "worker, pid",
        "Age of the worker's memory sample; absent until the first sample."},
    [F_GC_COLLECTIONS] = {"cowdag_gc_collections_total", "counter", "worker, pid, generation",
        "Collections of each generation (0, 1, 2)."},
    [F_GC_COLLECTED] = {"cowdag_gc_collected_objects_total", "counter", "worker, pid, generation",
        "Objects freed by collections of each generation."},
    [F_GC_PAUSE] = {"cowdag_gc_pause_seconds_total", "counter", "worker, pid, generation",
        "Time spent paused in collections of each generation."},
    [F_GC_PAUSE_MAX] = {"cowdag_gc_pause_max_seconds", "gauge", "worker, pid",
        "Longest single collection pause so far."},
    [F_GC_TRACKED] = {"cowdag_gc_tracked_objects", "gauge", "worker, pid",
        "Objects the collector tracks."},
    [F_GC_FROZEN] = {"cowdag_gc_frozen_objects", "gauge", "worker, pid",
        "Objects frozen out of collection (inherited from the master)."},
    [F_HEAP_OBJECTS] = {"cowdag_heap_objects", "gauge", "worker, pid",
        "Heap objects alive."},
};

/* }====================================================================== */

/* ====================================================================== */
/* {  Snapshot                                                             */
/* ====================================================================== */

static int by_slot_then_generation(const void *a, const void *b)
{
    const ms_entry *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    if (x->generation != y->generation)
        return x->generation < y->generation ? -1 : 1;
    if (x->pid != y->pid) /* only to make the order total */
        return x->pid < y->pid ? -1 : 1;
    return 0;
}

/* Copies each entry straight into its place in out->workers and keeps it
 * (advances nworkers) only if it read consistently and is in use.  A master
 * part that cannot be read consistently is reported as zeros rather than
 * torn.  now_ms is taken last, so no sample is younger than the snapshot. */
void h_snapshot_take(const ms_scoreboard *sb, h_snapshot *out)
{
    if (!ms_sb_read_master(sb, &out->master))
        memset(&out->master, 0, sizeof out->master);
    out->nworkers = 0;
    for (int i = 0; i < MS_SB_ENTRIES; i++) {
        ms_entry *e = &out->workers[out->nworkers];
        if (ms_sb_read_entry(sb, i, e) && e->status != MS_FREE)
            out->nworkers++;
    }
    qsort(out->workers, out->nworkers, sizeof out->workers[0], by_slot_then_generation);
    out->now_ms = base_now_ms();
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Shared helpers                                                       */
/* ====================================================================== */

/* The name of a status as read from shared memory, which may hold anything. */
static const char *status_name(int32_t st)
{
    if (st < MS_FREE || st > MS_DRAINING)
        return "unknown";
    const char *n = ms_status_name((ms_status)st);
    return n ? n : "unknown";
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0
 * if it is not one (stray continuation, overlong form, surrogate, beyond
 * U+10FFFF, or cut short). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else
        return 0;
    if (n < need + 1 || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return need + 1;
}

#define MODE_CAP (sizeof ((ms_master *)0)->gc_mode + 1)

/* The master's gc mode as text: the field need not be NUL-terminated and,
 * being shared memory, need not be UTF-8; bytes that are not part of a
 * well-formed sequence become '?' (jansson and Prometheus both require
 * UTF-8).  out has room for the whole field plus the NUL. */
static void gc_mode_text(const ms_master *m, char out[MODE_CAP])
{
    const unsigned char *s = (const unsigned char *)m->gc_mode;
    size_t n = strnlen(m->gc_mode, sizeof m->gc_mode), i = 0;
    while (i < n) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0) {
            out[i++] = '?';
            continue;
        }
        memcpy(out + i, s + i, k);
        i += k;
    }
    out[n] = '\0';
}

/* How long ago a sample was taken; the clock is system-wide, but stay at
 * zero if a sample ever claims to be from the future. */
static uint64_t ms_since(uint64_t now_ms, uint64_t then_ms)
{
    return now_ms > then_ms ? now_ms - then_ms : 0;
}

static double shared_ratio(const ms_pages *p)
{
    return p->pages ? (double)p->shared_pages / (double)p->pages : 1.0;
}

static uint64_t pause_ns_total(const ms_gc_figures *g)
{
    uint64_t t = 0;
    for (int k = 0; k < MS_GC_GENS; k++)
        t += g->pause_ns[k];
    return t;
}

/* The six smaps_rollup figures, in the order both renderings use. */
typedef struct rollup_field {
    const char *kind; /* /metrics label value; /stats key is kind + "_bytes" */
    const char *key;
    size_t offset;
} rollup_field;

static const rollup_field rollup_fields[] = {
    {"rss", "rss_bytes", offsetof(ms_rollup, rss_bytes)},
    {"pss", "pss_bytes", offsetof(ms_rollup, pss_bytes)},
    {"shared_clean", "shared_clean_bytes", offsetof(ms_rollup, shared_clean_bytes)},
    {"shared_dirty", "shared_dirty_bytes", offsetof(ms_rollup, shared_dirty_bytes)},
    {"private_clean", "private_clean_bytes", offsetof(ms_rollup, private_clean_bytes)},
    {"private_dirty", "private_dirty_bytes", offsetof(ms_rollup, private_dirty_bytes)},
};
#define N_ROLLUP (sizeof rollup_fields / sizeof rollup_fields[0])

static uint64_t rollup_get(const ms_rollup *r, const rollup_field *f)
{
    uint64_t v;
    memcpy(&v, (const char *)r + f->offset, sizeof v);
    return v;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /stats                                                          */
/* ====================================================================== */

/* JSON integers are signed 64-bit in jansson; a counter past that (never in
 * practice) is pinned to the largest rather than wrapped negative. */
static json_int_t jint(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

/* All the functions below return a new reference, or NULL when jansson
 * could not allocate (json_pack then fails too and frees what it took). */

static json_t *u64_array(const uint64_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(jint(v[i]))) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *memory_json(const ms_rollup *r)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < N_ROLLUP; i++)
        if (json_object_set_new(o, rollup_fields[i].key, json_integer(jint(rollup_get(r, &rollup_fields[i])))) !=
            0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

static json_t *master_json(const ms_master *m)
{
    char mode[MODE_CAP];
    gc_mode_text(m, mode);
    return json_pack("{s:i, s:{s:s, s:[i,i,i], s:b}, s:I, s:I, s:o}",
                     "pid", (int)m->pid,
                     "gc", "mode", mode, "thresholds", (int)m->thresholds[0], (int)m->thresholds[1],
                     (int)m->thresholds[2], "immortal", (int)m->immortal,
                     "state_bytes", jint(m->state_bytes),
                     "state_pages", jint(m->state_pages),
                     "memory", memory_json(&m->mem.rollup));
}

static json_t *worker_gc_json(const ms_gc_figures *g)
{
    return json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I}",
                     "collections", u64_array(g->collections, MS_GC_GENS),
                     "collected", u64_array(g->collected, MS_GC_GENS),
                     "pause_us_total", jint(pause_ns_total(g) / 1000),
                     "pause_us_max", jint(g->pause_ns_max / 1000),
                     "tracked", jint(g->tracked),
                     "frozen", jint(g->frozen),
                     "objects", jint(g->objects));
}

/* The page types a worker's state can hold: none and bool are statics,
 * never in the heap's memory. */
static bool page_type_shown(unsigned t) { return t < HEAP_PAGE_NTYPES && t != HT_NONE && t != HT_BOOL; }

int h_copied_into(json_t *state, const ms_copied *c)
{
    json_t *types = json_object(), *regions = json_object();
    int rc = types && regions ? 0 : -1;
    for (unsigned t = 0; rc == 0 && t < MS_PAGE_TYPES; t++)
        if (page_type_shown(t))
            rc = json_object_set_new(types, heap_page_type_name(t),
                                     json_pack("{s:I, s:I}", "pages", jint(c->by_type[t]), "only", jint(c->only[t])));
    for (unsigned r = 0; rc == 0 && r < HEAP_CLASSES; r++) {
        char name[24];
        snprintf(name, sizeof name, "pool_%u", (r + 1) * HEAP_ALIGN);
        if (c->by_region[r])
            rc = json_object_set_new(regions, name, json_integer(jint(c->by_region[r])));
    }
    if (rc == 0)
        rc = json_object_set_new(regions, "large", json_integer(jint(c->by_region[HEAP_REGION_LARGE])));
    if (rc != 0) {
        json_decref(types);
        json_decref(regions);
        return -1;
    }
    json_object_set_new(state, "copied_by_type", types);
    json_object_set_new(state, "copied_by_region", regions);
    json_object_set_new(state, "copied_mixed_pages", json_integer(jint(c->mixed)));
    json_object_set_new(state, "copied_empty_pages", json_integer(jint(c->empty)));
    return 0;
}

static json_t *worker_memory_json(const ms_sample *s)
{
    json_t *mem = memory_json(&s->rollup);
    json_t *state = json_pack("{s:I, s:I, s:I, s:f}",
                              "pages", jint(s->state.pages),
                              "shared_pages", jint(s->state.shared_pages),
                              "private_pages", jint(s->state.private_pages),
                              "shared_ratio", shared_ratio(&s->state));
    if (state && s->copied_known && h_copied_into(state, &s->copied) != 0) {
        json_decref(state);
        state = NULL;
    }
    if (!mem || !state || json_object_set_new(mem, "state", state) != 0) {
        json_decref(mem);
        if (!mem)
            json_decref(state);
        return NULL;
    }
    return mem;
}

/* The slot's replacements by reason: {"timeout": n, "crash": n, ...}. */
static json_t *restarts_json(const uint64_t *by_reason)
{
    json_t *o = json_object();
    for (int r = 0; o && r < MS_RESTART_REASONS; r++)
        if (json_object_set_new(o, ms_restart_reason_name((ms_restart_reason)r), json_integer(jint(by_reason[r]))) !=
            0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

static json_t *worker_json(const ms_entry *e, uint64_t now_ms, const uint64_t *restarts)
{
    json_t *ago = e->mem.at_ms ? json_integer(jint(ms_since(now_ms, e->mem.at_ms))) : json_null();
    return json_pack("{s:i, s:i, s:i, s:s, s:I, s:I, s:o, s:o, s:o, s:o}",
                     "id", (int)e->slot,
                     "pid", (int)e->pid,
                     "generation", (int)e->generation,
                     "status", status_name(e->status),
                     "requests", jint(e->requests),
                     "errors", jint(e->errors),
                     "gc", worker_gc_json(&e->gc),
                     "memory", worker_memory_json(&e->mem),
                     "sampled_ms_ago", ago,
                     "restarts", restarts_json(restarts));
}

char *h_stats_json(const h_snapshot *s)
{
    json_t *workers = json_array();
    for (size_t i = 0; workers && i < s->nworkers; i++)
        if (json_array_append_new(workers, worker_json(&s->workers[i], s->now_ms,
                                                           s->master.restarts[s->workers[i].slot % MS_SB_SLOTS])) != 0) {
            json_decref(workers);
            workers = NULL;
        }
    json_t *root = json_pack("{s:o, s:o}", "master", master_json(&s->master), "workers", workers);
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /metrics: text output                                            */
/* ====================================================================== */

/* A growable text buffer.  After an allocation failure it stops growing and
 * tb_take returns NULL, so writers need not check each call. */
typedef struct tbuf {
    char *p;
    size_t len, cap;
    bool failed;
} tbuf;

static bool tb_room(tbuf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void tb_put(tbuf *b, const char *s, size_t n)
{
    if (!tb_room(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_puts(tbuf *b, const char *s)
{
    tb_put(b, s, strlen(s));
}

static void tb_putc(tbuf *b, char c)
{
    tb_put(b, &c, 1);
}

/* The text so far, owned by the caller; NULL if any growth failed. */
static char *tb_take(tbuf *b)
{
    if (b->failed || !tb_room(b, 0)) {
        free(b->p);
        return NULL;
    }
    b->p[b->len] = '\0';
    return b->p;
}

/* A float as Prometheus's own Go code writes one (strconv 'g', shortest):
 * the fewest digits that read back to the same double, in exponent form
 * only when the exponent is below -4 or at least 6 ("0.0001", "0.005",
 * "1", "2.5", "1e-05", "1e+06"); the non-finite as +Inf, -Inf, NaN.
 * out needs 32 bytes. */
static void prom_float(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char e[32];
    int digits;
    for (digits = 1; digits < 17; digits++) { /* 17 digits always round-trip */
        snprintf(e, sizeof e, "%.*e", digits - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof e, "%.*e", digits - 1, v);
    int exp = atoi(strchr(e, 'e') + 1);
    if (exp < -4 || exp >= 6)
        snprintf(out, cap, "%s", e);
    else
        snprintf(out, cap, "%.*f", digits - 1 - exp > 0 ? digits - 1 - exp : 0, v);
}

/* A label value between its quotes: backslash, double quote and newline
 * escaped as \\, \" and \n; everything else (UTF-8) as is. */
static void put_label_value(tbuf *b, const char *v)
{
    for (; *v; v++) {
        switch (*v) {
        case '\\': tb_puts(b, "\\\\"); break;
        case '"':  tb_puts(b, "\\\""); break;
        case '\n': tb_puts(b, "\\n"); break;
        default:   tb_putc(b, *v);
        }
    }
}

/* # HELP text: backslash and newline escaped (quotes are fine there). */
static void put_help_text(tbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            tb_puts(b, "\\\\");
        else if (*v == '\n')
            tb_puts(b, "\\n");
        else
            tb_putc(b, *v);
    }
}

static void put_family_head(tbuf *b, fam_id f)
{
    tb_puts(b, "# HELP ");
    tb_puts(b, families[f].name);
    tb_putc(b, ' ');
    put_help_text(b, families[f].help);
    tb_puts(b, "\n# TYPE ");
    tb_puts(b, families[f].name);
    tb_putc(b, ' ');
    tb_puts(b, families[f].type);
    tb_putc(b, '\n');
}

typedef struct label {
    const char *name, *value;
} label;

/* One line: family name + suffix, {labels} when there are any, the value. */
static void put_sample(tbuf *b, fam_id f, const char *suffix, const label *ls, size_t n, const char *value)
{
    tb_puts(b, families[f].name);
    tb_puts(b, suffix);
    for (size_t i = 0; i < n; i++) {
        tb_putc(b, i == 0 ? '{' : ',');
        tb_puts(b, ls[i].name);
        tb_puts(b, "=\"");
        put_label_value(b, ls[i].value);
        tb_putc(b, '"');
    }
    if (n)
        tb_putc(b, '}');
    tb_putc(b, ' ');
    tb_puts(b, value);
    tb_putc(b, '\n');
}

static void put_u64(tbuf *b, fam_id f, const char *suffix, const label *ls, size_t n, uint64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRIu64, v);
    put_sample(b, f, suffix, ls, n, t);
}

static void put_f64(tbuf *b, fam_id f, const char *suffix, const label *ls, size_t n, double v)
{
    char t[32];
    prom_float(t, sizeof t, v);
    put_sample(b, f, suffix, ls, n, t);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /metrics: the families                                           */
/* ====================================================================== */

/* What the family writers share: the buffer, the snapshot, and the entries
 * that get per-worker series (those with a process). */
typedef struct mctx {
    tbuf b;
    const h_snapshot *s;
    const ms_entry *w[MS_SB_ENTRIES];
    size_t nw;
} mctx;

/* A worker's identifying labels, plus room for two more (a family's own
 * label and a histogram's le).  n = 2 after init. */
typedef struct wlabels {
    char worker[16], pid[16];
    label l[4];
} wlabels;

static const label *worker_labels(wlabels *w, const ms_entry *e)
{
    snprintf(w->worker, sizeof w->worker, "%" PRId32, e->slot);
    snprintf(w->pid, sizeof w->pid, "%" PRId32, e->pid);
    w->l[0] = (label){"worker", w->worker};
    w->l[1] = (label){"pid", w->pid};
    return w->l;
}

static const char *const gen_names[MS_GC_GENS] = {"0", "1", "2"};

static void write_master(mctx *c)
{
    tbuf *b = &c->b;
    const ms_master *m = &c->s->master;
    char pid[16], mode[MODE_CAP];
    snprintf(pid, sizeof pid, "%" PRId32, m->pid);
    gc_mode_text(m, mode);

    put_family_head(b, F_MASTER_INFO);
    label info[] = {{"pid", pid}, {"mode", mode}, {"immortal", m->immortal ? "true" : "false"}};
    put_u64(b, F_MASTER_INFO, "", info, 3, 1);

    put_family_head(b, F_MASTER_GC_THRESHOLD);
    for (int g = 0; g < MS_GC_GENS; g++) {
        label l = {"generation", gen_names[g]};
        char v[16];
        snprintf(v, sizeof v, "%" PRId32, m->thresholds[g]);
        put_sample(b, F_MASTER_GC_THRESHOLD, "", &l, 1, v);
    }

    put_family_head(b, F_MASTER_STATE_BYTES);
    put_u64(b, F_MASTER_STATE_BYTES, "", NULL, 0, m->state_bytes);
    put_family_head(b, F_MASTER_STATE_PAGES);
    put_u64(b, F_MASTER_STATE_PAGES, "", NULL, 0, m->state_pages);

    put_family_head(b, F_MASTER_MEMORY);
    for (size_t k = 0; m->mem.at_ms && k < N_ROLLUP; k++) {
        label l = {"kind", rollup_fields[k].kind};
        put_u64(b, F_MASTER_MEMORY, "", &l, 1, rollup_get(&m->mem.rollup, &rollup_fields[k]));
    }
}

/* The pool as the master sees it: how many it wants, how many entries of
 * each status there are, and the respawns of each slot that is in use now
 * or ever respawned. */
static void write_pool(mctx *c)
{
    tbuf *b = &c->b;
    const h_snapshot *s = c->s;
    uint64_t by_status[MS_DRAINING + 1] = {0}, unknown = 0;
    bool present[MS_SB_SLOTS] = {false};
    for (size_t i = 0; i < s->nworkers; i++) {
        const ms_entry *e = &s->workers[i];
        if (e->status > MS_FREE && e->status <= MS_DRAINING)
            by_status[e->status]++;
        else
            unknown++;
        if (e->slot >= 0 && e->slot < MS_SB_SLOTS)
            present[e->slot] = true;
    }

    put_family_head(b, F_WORKERS_DESIRED);
    put_u64(b, F_WORKERS_DESIRED, "", NULL, 0, s->master.workers > 0 ? (uint64_t)s->master.workers : 0);

    put_family_head(b, F_WORKERS);
    for (int st = MS_STARTING; st <= MS_DRAINING; st++) {
        label l = {"status", status_name(st)};
        put_u64(b, F_WORKERS, "", &l, 1, by_status[st]);
    }
    if (unknown) {
        label l = {"status", "unknown"};
        put_u64(b, F_WORKERS, "", &l, 1, unknown);
    }

    put_family_head(b, F_RESTARTS);
    for (int slot = 0; slot < MS_SB_SLOTS; slot++) {
        uint64_t any = 0;
        for (int r = 0; r < MS_RESTART_REASONS; r++)
            any += s->master.restarts[slot][r];
        if (!present[slot] && any == 0)
            continue;
        char w[16];
        snprintf(w, sizeof w, "%d", slot);
        for (int r = 0; r < MS_RESTART_REASONS; r++) {
            label l[2] = {{"worker", w}, {"reason", ms_restart_reason_name((ms_restart_reason)r)}};
            put_u64(b, F_RESTARTS, "", l, 2, s->master.restarts[slot][r]);
        }
    }
}

static void write_identity(mctx *c)
{
    tbuf *b = &c->b;
    wlabels w;

    put_family_head(b, F_WORKER_INFO);
    for (size_t i = 0; i < c->nw; i++) {
        const label *l = worker_labels(&w, c->w[i]);
        w.l[2] = (label){"status", status_name(c->w[i]->status)};
        put_u64(b, F_WORKER_INFO, "", l, 3, 1);
    }

    put_family_head(b, F_WORKER_GENERATION);
    for (size_t i = 0; i < c->nw; i++) {
        char v[16];
        snprintf(v, sizeof v, "%" PRId32, c->w[i]->generation);
        put_sample(b, F_WORKER_GENERATION, "", worker_labels(&w, c->w[i]), 2, v);
    }

    put_family_head(b, F_WORKER_UPTIME);
    for (size_t i = 0; i < c->nw; i++)
        if (c->w[i]->started_ms)
            put_f64(b, F_WORKER_UPTIME, "", worker_labels(&w, c->w[i]), 2,
                    (double)ms_since(c->s->now_ms, c->w[i]->started_ms) / 1000.0);
}

/* Requests by class, errors, and the duration histogram.  The scoreboard
 * keeps per-bucket counts; Prometheus wants each bucket to count everything
 * at or below its bound, so they are summed on the way out, and _count is
 * that sum (the +Inf bucket) by construction. */
static void write_requests(mctx *c)
{
    tbuf *b = &c->b;
    wlabels w;
    static const char *const classes[] = {"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"};

    put_family_head(b, F_REQUESTS);
    for (size_t i = 0; i < c->nw; i++) {
        const ms_entry *e = c->w[i];
        const label *l = worker_labels(&w, e);
        for (int k = 1; k <= 5; k++) {
            if (k != 2 && e->by_class[k] == 0)
                continue;
            w.l[2] = (label){"code", classes[k]};
            put_u64(b, F_REQUESTS, "", l, 3, e->by_class[k]);
        }
    }

    put_family_head(b, F_ERRORS);
    for (size_t i = 0; i < c->nw; i++)
        put_u64(b, F_ERRORS, "", worker_labels(&w, c->w[i]), 2, c->w[i]->errors);

    char le[MS_HIST_BUCKETS][32];
    for (int k = 0; k < MS_HIST_BUCKETS - 1; k++)
        prom_float(le[k], sizeof le[k], ms_hist_bounds[k]);
    snprintf(le[MS_HIST_BUCKETS - 1], sizeof le[0], "+Inf");

    put_family_head(b, F_DURATION);
    for (size_t i = 0; i < c->nw; i++) {
        const ms_entry *e = c->w[i];
        const label *l = worker_labels(&w, e);
        uint64_t cum = 0;
        for (int k = 0; k < MS_HIST_BUCKETS; k++) {
            cum += e->duration[k];
            w.l[2] = (label){"le", le[k]};
            put_u64(b, F_DURATION, "_bucket", l, 3, cum);
        }
        put_f64(b, F_DURATION, "_sum", l, 2, (double)e->duration_sum_us / 1e6);
        put_u64(b, F_DURATION, "_count", l, 2, cum);
    }
}

/* The memory sample of each worker that has one. */
static void write_memory(mctx *c)
{
    tbuf *b = &c->b;
    wlabels w;

    put_family_head(b, F_WORKER_MEMORY);
    for (size_t i = 0; i < c->nw; i++) {
        const ms_entry *e = c->w[i];
        if (!e->mem.at_ms)
            continue;
        const label *l = worker_labels(&w, e);
        for (size_t k = 0; k < N_ROLLUP; k++) {
            w.l[2] = (label){"kind", rollup_fields[k].kind};
            put_u64(b, F_WORKER_MEMORY, "", l, 3, rollup_get(&e->mem.rollup, &rollup_fields[k]));
        }
    }

    put_family_head(b, F_STATE_PAGES);
    for (size_t i = 0; i < c->nw; i++) {
        const ms_entry *e = c->w[i];
        if (!e->mem.at_ms)
            continue;
        const label *l = worker_labels(&w, e);
        w.l[2] = (label){"sharing", "shared"};
        put_u64(b, F_STATE_PAGES, "", l, 3, e->mem.state.shared_pages);
        w.l[2] = (label){"sharing", "private"};
        put_u64(b, F_STATE_PAGES, "", l, 3, e->mem.state.private_pages);
    }

    put_family_head(b, F_STATE_RATIO);
    for (size_t i = 0; i < c->nw; i++)
        if (c->w[i]->mem.at_ms)
            put_f64(b, F_STATE_RATIO, "", worker_labels(&w, c->w[i]), 2, shared_ratio(&c->w[i]->mem.state));

    put_family_head(b, F_STATE_COPIED);
    for (size_t i = 0; i < c->nw; i++) {
        const ms_entry *e = c->w[i];
        if (!e->mem.at_ms || !e->mem.copied_known)
            continue;
        const label *l = worker_labels(&w, e);
        for (unsigned t = 0; t < MS_PAGE_TYPES; t++) {
            if (!page_type_shown(t))
                continue;
            w.l[2] = (label){"type", heap_page_type_name(t)};
            put_u64(b, F_STATE_COPIED, "", l, 3, e->mem.copied.by_type[t]);
        }
    }

    put_family_head(b, F_SAMPLE_AGE);
    for (size_t i = 0; i < c->nw; i++)
        if (c->w[i]->mem.at_ms)
            put_f64(b, F_SAMPLE_AGE, "", worker_labels(&w, c->w[i]), 2,
                    (double)ms_since(c->s->now_ms, c->w[i]->mem.at_ms) / 1000.0);
}

/* The gc figures are read by offset, so their types are pinned here. */
_Static_assert(sizeof ((ms_gc_figures *)0)->collections == MS_GC_GENS * sizeof(uint64_t), "collections");
_Static_assert(sizeof ((ms_gc_figures *)0)->collected == MS_GC_GENS * sizeof(uint64_t), "collected");
_Static_assert(sizeof ((ms_gc_figures *)0)->pause_ns == MS_GC_GENS * sizeof(uint64_t), "pause_ns");
_Static_assert(sizeof ((ms_gc_figures *)0)->tracked == sizeof(uint64_t), "tracked");
_Static_assert(sizeof ((ms_gc_figures *)0)->frozen == sizeof(uint64_t), "frozen");
_Static_assert(sizeof ((ms_gc_figures *)0)->objects == sizeof(uint64_t), "objects");
_Static_assert(sizeof(ms_rollup) == 6 * sizeof(uint64_t), "ms_rollup is six uint64_t");

/* A per-generation gc counter (three uint64_t at `offset` in the figures)
 * of each worker: a count, or nanoseconds written as seconds. */
static void write_gc_by_generation(mctx *c, fam_id f, size_t offset, bool ns_as_seconds)
{
    tbuf *b = &c->b;
    wlabels w;
    put_family_head(b, f);
    for (size_t i = 0; i < c->nw; i++) {
        const label *l = worker_labels(&w, c->w[i]);
        uint64_t v[MS_GC_GENS];
        memcpy(v, (const char *)&c->w[i]->gc + offset, sizeof v);
        for (int g = 0; g < MS_GC_GENS; g++) {
            w.l[2] = (label){"generation", gen_names[g]};
            if (ns_as_seconds)
                put_f64(b, f, "", l, 3, (double)v[g] / 1e9);
            else
                put_u64(b, f, "", l, 3, v[g]);
        }
    }
}

static void write_gc_gauge(mctx *c, fam_id f, size_t offset)
{
    wlabels w;
    put_family_head(&c->b, f);
    for (size_t i = 0; i < c->nw; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&c->w[i]->gc + offset, sizeof v);
        put_u64(&c->b, f, "", worker_labels(&w, c->w[i]), 2, v);
    }
}

static void write_gc(mctx *c)
{
    write_gc_by_generation(c, F_GC_COLLECTIONS, offsetof(ms_gc_figures, collections), false);
    write_gc_by_generation(c, F_GC_COLLECTED, offsetof(ms_gc_figures, collected), false);
    write_gc_by_generation(c, F_GC_PAUSE, offsetof(ms_gc_figures, pause_ns), true);

    wlabels w;
    put_family_head(&c->b, F_GC_PAUSE_MAX);
    for (size_t i = 0; i < c->nw; i++)
        put_f64(&c->b, F_GC_PAUSE_MAX, "", worker_labels(&w, c->w[i]), 2, (double)c->w[i]->gc.pause_ns_max / 1e9);

    write_gc_gauge(c, F_GC_TRACKED, offsetof(ms_gc_figures, tracked));
    write_gc_gauge(c, F_GC_FROZEN, offsetof(ms_gc_figures, frozen));
    write_gc_gauge(c, F_HEAP_OBJECTS, offsetof(ms_gc_figures, objects));
}

/* Family by family, each written whole (header, then every worker's
 * samples) so that a family's samples are contiguous, as the format
 * requires. */
char *h_metrics_text(const h_snapshot *s)
{
    mctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->s = s;
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].pid > 0)
            c->w[c->nw++] = &s->workers[i];

    write_master(c);
    write_pool(c);
    write_identity(c);
    write_requests(c);
    write_memory(c);
    write_gc(c);

    char *text = tb_take(&c->b);
    free(c);
    return text;
}

/* }====================================================================== */
