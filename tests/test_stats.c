/* tests/test_stats.c: cmocka tests for handlers/stats.c: the scoreboard
 * snapshot, the GET /stats JSON (shape: handlers/stats.h; README, "Watching
 * sharing: `GET /stats`, `GET /metrics`, `cowdag stats`"), and the GET
 * /metrics text, held to the exposition format by the checker in
 * tests/exposition.h and, when it is installed, by `promtool check metrics`. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handlers/stats.h"
#include "heap/heap.h"
#include "tests/exposition.h"

/* ====================================================================== */
/* {  Fixture: a scoreboard filled by hand                                 */
/* ====================================================================== */

#define NOW_MS 100000u

/* Entries at scattered indices, so the snapshot has to sort them. */
enum {
    IDX_CLAIMED = 1, /* slot 2, gen 2, no pid yet: starting */
    IDX_NEW = 3,     /* slot 0, gen 2: ready, sampled */
    IDX_ONE = 7,     /* slot 1, gen 2: ready, sampled, no state resident */
    IDX_OLD = 10,    /* slot 0, gen 1: draining, never sampled, no requests */
    IDX_FREED = 12,  /* free, with leftovers: skipped */
};
/* The snapshot's order: by slot, then generation. */
static const int order[] = {IDX_OLD, IDX_NEW, IDX_ONE, IDX_CLAIMED};
#define NORDER 4

/* A gc mode that needs escaping as a label value: quote, backslash, newline. */
static const char MODE[] = "fr\"e\\e\nz";

typedef struct fx {
    ms_scoreboard *sb;
    h_snapshot *snap;
} fx;

/* Every field from `base`, so no two entries (or fields) agree. */
static void fill_entry(ms_entry *e, int slot, int gen, int pid, ms_status st, uint64_t base)
{
    e->slot = slot;
    e->generation = gen;
    e->pid = pid;
    e->status = st;
    e->started_ms = 40000 + base;
    e->requests = base + 100;
    e->errors = base + 7;
    e->by_class[2] = base + 80;
    e->by_class[4] = base + 5;
    e->by_class[5] = 2;
    e->duration[0] = 3;
    e->duration[3] = 4;
    e->duration[7] = base % 97;
    e->duration[MS_HIST_BUCKETS - 1] = 2;
    e->duration_sum_us = 1234567 + base;
    for (int g = 0; g < MS_GC_GENS; g++) {
        e->gc.collections[g] = base + 10 + (uint64_t)g;
        e->gc.collected[g] = base * 10 + (uint64_t)g;
    }
    e->gc.pause_ns[0] = 1500;
    e->gc.pause_ns[1] = 2500;
    e->gc.pause_ns[2] = 999; /* total 4999 ns: 4 us, not 1 + 2 + 0 */
    e->gc.pause_ns_max = 1250000;
    e->gc.tracked = base + 11;
    e->gc.frozen = base + 12;
    e->gc.objects = base + 13;
}

static void fill_sample(ms_sample *m, uint64_t base, uint64_t at_ms)
{
    m->rollup.rss_bytes = (base + 1) * 4096;
    m->rollup.pss_bytes = (base + 2) * 4096;
    m->rollup.shared_clean_bytes = (base + 3) * 4096;
    m->rollup.shared_dirty_bytes = (base + 4) * 4096;
    m->rollup.private_clean_bytes = (base + 5) * 4096;
    m->rollup.private_dirty_bytes = (base + 6) * 4096;
    m->at_ms = at_ms;
    m->cost_us = 321;
}

static void fill_scoreboard(ms_scoreboard *sb)
{
    ms_master *m = &sb->master;
    m->pid = 4242;
    m->workers = 3;
    memcpy(m->gc_mode, MODE, sizeof MODE);
    m->thresholds[0] = 700;
    m->thresholds[1] = 10;
    m->thresholds[2] = 10;
    m->immortal = true;
    m->state_bytes = 123456789;
    m->state_pages = 30141;
    fill_sample(&m->mem, 500, NOW_MS - 1000);
    m->restarts[0][MS_RESTART_CRASH] = 2;  /* slot 0 is in use */
    m->restarts[5][MS_RESTART_RELOAD] = 1; /* slot 5 is not, but was replaced */

    fill_entry(&sb->entries[IDX_NEW], 0, 2, 2001, MS_READY, 2000);
    fill_sample(&sb->entries[IDX_NEW].mem, 2000, NOW_MS - 2500);
    sb->entries[IDX_NEW].mem.state = (ms_pages){.pages = 400, .shared_pages = 300, .private_pages = 100};
    /* Its 100 private pages: 60 of dicts beside lists (mixed), 30 of
     * floats alone, 4 of storage, 6 holding nothing live. */
    ms_copied *c = &sb->entries[IDX_NEW].mem.copied;
    *c = (ms_copied){.pages = 100, .mixed = 60, .empty = 6};
    c->by_type[HT_DICT] = 60;
    c->by_type[HT_LIST] = 60;
    c->by_type[HT_FLOAT] = 30;
    c->only[HT_FLOAT] = 30;
    c->by_type[HT__COUNT] = 4; /* storage */
    c->only[HT__COUNT] = 4;
    c->by_region[3] = 60;                 /* pool_64 */
    c->by_region[1] = 30;                 /* pool_32 */
    c->by_region[HEAP_REGION_LARGE] = 10; /* storage and the empty pages */
    sb->entries[IDX_NEW].mem.copied_known = 1;

    fill_entry(&sb->entries[IDX_ONE], 1, 2, 3001, MS_READY, 3000);
    fill_sample(&sb->entries[IDX_ONE].mem, 3000, NOW_MS - 10);

    fill_entry(&sb->entries[IDX_OLD], 0, 1, 1001, MS_DRAINING, 1000);
    memset(sb->entries[IDX_OLD].by_class, 0, sizeof sb->entries[IDX_OLD].by_class);
    sb->entries[IDX_OLD].requests = 0;

    sb->entries[IDX_CLAIMED].slot = 2;
    sb->entries[IDX_CLAIMED].generation = 2;
    sb->entries[IDX_CLAIMED].status = MS_STARTING;

    fill_entry(&sb->entries[IDX_FREED], 3, 1, 9999, MS_FREE, 9000);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->sb = calloc(1, sizeof *f->sb);
    f->snap = calloc(1, sizeof *f->snap);
    if (!f->sb || !f->snap)
        return -1;
    fill_scoreboard(f->sb);
    h_snapshot_take(f->sb, f->snap);
    f->snap->now_ms = NOW_MS; /* the fixture's clock */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    free(f->snap);
    free(f->sb);
    free(f);
    return 0;
}

static const ms_entry *entry(fx *f, int idx)
{
    return &f->sb->entries[idx];
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Snapshot                                                             */
/* ====================================================================== */

static void snapshot_skips_free_entries_and_sorts_by_slot_then_generation(void **state)
{
    fx *f = *state;
    assert_int_equal(f->snap->nworkers, NORDER);
    for (int i = 0; i < NORDER; i++) {
        const ms_entry *got = &f->snap->workers[i], *want = entry(f, order[i]);
        assert_int_equal(got->slot, want->slot);
        assert_int_equal(got->generation, want->generation);
        assert_int_equal(got->pid, want->pid);
        assert_memory_equal(got, want, sizeof *got);
    }
    assert_int_equal(f->snap->master.pid, 4242);
    assert_memory_equal(&f->snap->master, &f->sb->master, sizeof f->snap->master);
}

static void snapshot_skips_an_entry_caught_mid_write(void **state)
{
    fx *f = *state;
    f->sb->entries[IDX_ONE].seq = 7; /* odd: its writer never finished */
    h_snapshot_take(f->sb, f->snap);
    assert_int_equal(f->snap->nworkers, NORDER - 1);
    for (size_t i = 0; i < f->snap->nworkers; i++)
        assert_int_not_equal(f->snap->workers[i].pid, 3001);
}

static void snapshot_reports_a_torn_master_as_zeros(void **state)
{
    fx *f = *state;
    f->sb->master.seq = 3;
    h_snapshot_take(f->sb, f->snap);
    assert_int_equal(f->snap->master.pid, 0);
    assert_int_equal(f->snap->master.restarts[0][MS_RESTART_CRASH], 0);
    assert_int_equal(f->snap->nworkers, NORDER);
}

static void snapshot_is_stamped_with_the_monotonic_clock(void **state)
{
    fx *f = *state;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    h_snapshot_take(f->sb, f->snap);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t lo = (uint64_t)a.tv_sec * 1000 + (uint64_t)a.tv_nsec / 1000000;
    uint64_t hi = (uint64_t)b.tv_sec * 1000 + (uint64_t)b.tv_nsec / 1000000;
    assert_in_range(f->snap->now_ms, lo, hi);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /stats                                                          */
/* ====================================================================== */

static json_t *stats_doc(fx *f)
{
    char *text = h_stats_json(f->snap);
    assert_non_null(text);
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);
    if (!doc)
        print_error("bad JSON at %d:%d: %s\n%s\n", e.line, e.column, e.text, text);
    assert_non_null(doc);
    free(text);
    return doc;
}

static json_t *member(json_t *o, const char *key)
{
    assert_true(json_is_object(o));
    json_t *v = json_object_get(o, key);
    if (!v)
        print_error("missing \"%s\"\n", key);
    assert_non_null(v);
    return v;
}

static void assert_uint_member(json_t *o, const char *key, uint64_t want)
{
    json_t *v = member(o, key);
    if (!json_is_integer(v))
        print_error("\"%s\" is not an integer\n", key);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
}

static void assert_uint3_member(json_t *o, const char *key, const uint64_t want[3])
{
    json_t *a = member(o, key);
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_true(json_is_integer(json_array_get(a, i)));
        assert_int_equal(json_integer_value(json_array_get(a, i)), want[i]);
    }
}

static void assert_rollup_members(json_t *mem, const ms_rollup *r)
{
    assert_uint_member(mem, "rss_bytes", r->rss_bytes);
    assert_uint_member(mem, "pss_bytes", r->pss_bytes);
    assert_uint_member(mem, "shared_clean_bytes", r->shared_clean_bytes);
    assert_uint_member(mem, "shared_dirty_bytes", r->shared_dirty_bytes);
    assert_uint_member(mem, "private_clean_bytes", r->private_clean_bytes);
    assert_uint_member(mem, "private_dirty_bytes", r->private_dirty_bytes);
}

static void stats_master_has_the_spec_fields_and_values(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    assert_int_equal(json_object_size(doc), 2);
    json_t *m = member(doc, "master");
    assert_int_equal(json_object_size(m), 5); /* pid, gc, state_bytes, state_pages, memory */
    assert_uint_member(m, "pid", 4242);
    json_t *gc = member(m, "gc");
    assert_int_equal(json_object_size(gc), 3);
    assert_true(json_is_string(member(gc, "mode")));
    assert_string_equal(json_string_value(member(gc, "mode")), MODE);
    assert_uint3_member(gc, "thresholds", (const uint64_t[]){700, 10, 10});
    assert_true(json_is_true(member(gc, "immortal")));
    assert_uint_member(m, "state_bytes", 123456789);
    assert_uint_member(m, "state_pages", 30141);
    json_t *mem = member(m, "memory");
    assert_int_equal(json_object_size(mem), 6);
    assert_rollup_members(mem, &f->sb->master.mem.rollup);
    json_decref(doc);
}

static void stats_workers_have_the_spec_fields_and_values(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    json_t *ws = member(doc, "workers");
    assert_true(json_is_array(ws));
    assert_int_equal(json_array_size(ws), NORDER);
    for (int i = 0; i < NORDER; i++) {
        const ms_entry *e = entry(f, order[i]);
        json_t *w = json_array_get(ws, (size_t)i);
        assert_int_equal(json_object_size(w), 10); /* id ... sampled_ms_ago, restarts */
        json_t *rs = member(w, "restarts");
        assert_int_equal(json_object_size(rs), MS_RESTART_REASONS);
        for (int r = 0; r < MS_RESTART_REASONS; r++)
            assert_uint_member(rs, ms_restart_reason_name((ms_restart_reason)r),
                               f->sb->master.restarts[e->slot][r]);
        assert_uint_member(w, "id", (uint64_t)e->slot);
        assert_uint_member(w, "pid", (uint64_t)e->pid);
        assert_uint_member(w, "generation", (uint64_t)e->generation);
        assert_true(json_is_string(member(w, "status")));
        assert_string_equal(json_string_value(member(w, "status")), ms_status_name(e->status));
        assert_uint_member(w, "requests", e->requests);
        assert_uint_member(w, "errors", e->errors);

        json_t *gc = member(w, "gc");
        assert_int_equal(json_object_size(gc), 7);
        assert_uint3_member(gc, "collections", e->gc.collections);
        assert_uint3_member(gc, "collected", e->gc.collected);
        uint64_t pause_ns = e->gc.pause_ns[0] + e->gc.pause_ns[1] + e->gc.pause_ns[2];
        assert_uint_member(gc, "pause_us_total", pause_ns / 1000);
        assert_uint_member(gc, "pause_us_max", e->gc.pause_ns_max / 1000);
        assert_uint_member(gc, "tracked", e->gc.tracked);
        assert_uint_member(gc, "frozen", e->gc.frozen);
        assert_uint_member(gc, "objects", e->gc.objects);

        json_t *mem = member(w, "memory");
        assert_int_equal(json_object_size(mem), 7);
        assert_rollup_members(mem, &e->mem.rollup);
        json_t *st = member(mem, "state");
        assert_int_equal(json_object_size(st), e->mem.copied_known ? 8 : 4);
        assert_uint_member(st, "pages", e->mem.state.pages);
        assert_uint_member(st, "shared_pages", e->mem.state.shared_pages);
        assert_uint_member(st, "private_pages", e->mem.state.private_pages);
        assert_true(json_is_real(member(st, "shared_ratio")));

        json_t *ago = member(w, "sampled_ms_ago");
        if (e->mem.at_ms)
            assert_uint_member(w, "sampled_ms_ago", NOW_MS - e->mem.at_ms);
        else
            assert_true(json_is_null(ago));
    }
    json_decref(doc);
}

static void stats_ratio_and_age_follow_the_sample(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    json_t *ws = member(doc, "workers");
    /* order: OLD (unsampled), NEW (300 of 400 shared), ONE (no pages) */
    json_t *old = json_array_get(ws, 0), *new = json_array_get(ws, 1), *one = json_array_get(ws, 2);
    assert_true(json_is_null(member(old, "sampled_ms_ago")));
    assert_int_equal(json_integer_value(member(new, "sampled_ms_ago")), 2500);
    assert_int_equal(json_integer_value(member(one, "sampled_ms_ago")), 10);
    assert_true(json_real_value(member(member(member(new, "memory"), "state"), "shared_ratio")) == 0.75);
    assert_true(json_real_value(member(member(member(one, "memory"), "state"), "shared_ratio")) == 1.0);
    assert_true(json_real_value(member(member(member(old, "memory"), "state"), "shared_ratio")) == 1.0);
    /* pause_us_total is the total in ns, then in us: 4999 ns is 4 us */
    assert_int_equal(json_integer_value(member(member(new, "gc"), "pause_us_total")), 4);
    json_decref(doc);
}

static void stats_of_an_empty_scoreboard(void **state)
{
    (void)state;
    ms_scoreboard *sb = calloc(1, sizeof *sb);
    h_snapshot *snap = calloc(1, sizeof *snap);
    assert_non_null(sb);
    assert_non_null(snap);
    h_snapshot_take(sb, snap);
    assert_int_equal(snap->nworkers, 0);
    char *text = h_stats_json(snap);
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_true(json_is_array(member(doc, "workers")));
    assert_int_equal(json_array_size(member(doc, "workers")), 0);
    assert_string_equal(json_string_value(member(member(member(doc, "master"), "gc"), "mode")), "");
    json_decref(doc);
    free(text);
    free(snap);
    free(sb);
}

/* The mode field is 16 bytes of shared memory: it may fill them without a
 * NUL, and need not be UTF-8; both renderings stay valid. */
static void stats_and_metrics_survive_an_unterminated_or_non_utf8_mode(void **state)
{
    fx *f = *state;
    memcpy(f->snap->master.gc_mode, "abcdefghijklmnop", 16);
    json_t *doc = stats_doc(f);
    assert_string_equal(json_string_value(member(member(member(doc, "master"), "gc"), "mode")),
                        "abcdefghijklmnop");
    json_decref(doc);

    memset(f->snap->master.gc_mode, 0, sizeof f->snap->master.gc_mode);
    /* a stray byte, a good 2-byte letter, then a 3-byte sign cut short */
    memcpy(f->snap->master.gc_mode, "a\xff" "b\xc3\xa9" "\xe2\x82", 7);
    doc = stats_doc(f);
    assert_string_equal(json_string_value(member(member(member(doc, "master"), "gc"), "mode")),
                        "a?b\xc3\xa9??");
    json_decref(doc);

    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    expo x;
    parse_ok(text, &x);
    const psample *s = find_sample(&x, "cowdag_master_info", "pid", "4242", "mode", "a?b\xc3\xa9??", "immortal",
                                   "true", NULL);
    assert_non_null(s);
    expo_free(&x);
    free(text);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /metrics                                                         */
/* ====================================================================== */

/* Every family the text must hold (handlers/stats.c's table). */
static const char *const all_families[] = {
    "cowdag_master_info", "cowdag_master_gc_threshold", "cowdag_master_state_bytes",
    "cowdag_master_state_pages", "cowdag_master_memory_bytes", "cowdag_workers_desired", "cowdag_workers",
    "cowdag_worker_restarts_total", "cowdag_worker_info", "cowdag_worker_generation",
    "cowdag_worker_uptime_seconds", "cowdag_requests_total", "cowdag_request_errors_total",
    "cowdag_request_duration_seconds", "cowdag_worker_memory_bytes", "cowdag_worker_state_pages",
    "cowdag_worker_state_shared_ratio", "cowdag_worker_state_copied_pages", "cowdag_worker_sample_age_seconds",
    "cowdag_gc_collections_total",
    "cowdag_gc_collected_objects_total", "cowdag_gc_pause_seconds_total", "cowdag_gc_pause_max_seconds",
    "cowdag_gc_tracked_objects", "cowdag_gc_frozen_objects", "cowdag_heap_objects",
};
#define N_FAMILIES (sizeof all_families / sizeof all_families[0])

static char *metrics(fx *f, expo *x)
{
    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    parse_ok(text, x);
    return text;
}

static const char *type_of(const expo *x, const char *family)
{
    int i = find_family(x, family);
    assert_true(i >= 0);
    return x->fam[i].type;
}

/* The value of the one sample with these labels, which must exist. */
#define VALUE(x, ...) (must(find_sample((x), __VA_ARGS__, NULL))->v)
#define RAW(x, ...) (must(find_sample((x), __VA_ARGS__, NULL))->raw)

static void metrics_follow_the_exposition_rules(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x); /* parse_ok has asserted the rules */
    assert_int_equal(x.nfam, N_FAMILIES);
    for (size_t i = 0; i < N_FAMILIES; i++)
        assert_true(find_family(&x, all_families[i]) >= 0);
    for (int i = 0; i < x.nfam; i++) {
        const char *n = x.fam[i].name;
        assert_int_equal(strncmp(n, "cowdag_", 7), 0);
        bool total = strlen(n) > 6 && strcmp(n + strlen(n) - 6, "_total") == 0;
        assert_true(total == (strcmp(x.fam[i].type, "counter") == 0)); /* _total iff a counter */
    }
    assert_string_equal(type_of(&x, "cowdag_request_duration_seconds"), "histogram");
    assert_string_equal(type_of(&x, "cowdag_worker_memory_bytes"), "gauge");
    assert_string_equal(type_of(&x, "cowdag_gc_pause_seconds_total"), "counter");
    /* per-worker series carry worker and pid; the entry without a pid has none */
    for (int i = 0; i < x.ns; i++) {
        const psample *s = &x.s[i];
        if (strncmp(s->name, "cowdag_master_", 14) == 0 || strncmp(s->name, "cowdag_workers", 14) == 0 ||
            strcmp(s->name, "cowdag_worker_restarts_total") == 0)
            continue;
        assert_non_null(label_of(s, "worker"));
        assert_non_null(label_of(s, "pid"));
        assert_string_not_equal(label_of(s, "pid"), "0");
    }
    assert_int_equal(text[strlen(text) - 1], '\n');
    expo_free(&x);
    free(text);
}

static void metrics_hold_the_master_and_pool_figures(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    const ms_master *m = &f->sb->master;
    assert_true(VALUE(&x, "cowdag_master_info", "pid", "4242", "mode", MODE, "immortal", "true") == 1);
    assert_true(VALUE(&x, "cowdag_master_gc_threshold", "generation", "0") == 700);
    assert_true(VALUE(&x, "cowdag_master_gc_threshold", "generation", "2") == 10);
    assert_string_equal(RAW(&x, "cowdag_master_state_bytes"), "123456789");
    assert_string_equal(RAW(&x, "cowdag_master_state_pages"), "30141");
    assert_int_equal(count_samples(&x, "cowdag_master_memory_bytes"), 6);
    assert_true(VALUE(&x, "cowdag_master_memory_bytes", "kind", "rss") == (double)m->mem.rollup.rss_bytes);
    assert_true(VALUE(&x, "cowdag_master_memory_bytes", "kind", "private_dirty") ==
                (double)m->mem.rollup.private_dirty_bytes);
    assert_true(VALUE(&x, "cowdag_workers_desired") == 3);
    assert_true(VALUE(&x, "cowdag_workers", "status", "starting") == 1);
    assert_true(VALUE(&x, "cowdag_workers", "status", "ready") == 2);
    assert_true(VALUE(&x, "cowdag_workers", "status", "draining") == 1);
    assert_int_equal(count_samples(&x, "cowdag_workers"), 3);
    /* slots in use (0, 1, 2) and slots that were ever replaced (5), each
     * with every reason */
    assert_int_equal(count_samples(&x, "cowdag_worker_restarts_total"), 4 * MS_RESTART_REASONS);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "0", "reason", "crash") == 2);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "0", "reason", "timeout") == 0);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "1", "reason", "crash") == 0);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "2", "reason", "scale") == 0);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "5", "reason", "reload") == 1);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "5", "reason", "crash") == 0);
    expo_free(&x);
    free(text);
}

static void metrics_hold_each_workers_figures(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    static const struct { int idx; const char *worker, *pid; } ws[] = {
        {IDX_OLD, "0", "1001"}, {IDX_NEW, "0", "2001"}, {IDX_ONE, "1", "3001"}};
    for (size_t i = 0; i < 3; i++) {
        const ms_entry *e = entry(f, ws[i].idx);
        const char *w = ws[i].worker, *p = ws[i].pid;
        assert_true(VALUE(&x, "cowdag_worker_info", "worker", w, "pid", p, "status", ms_status_name(e->status)) == 1);
        assert_true(VALUE(&x, "cowdag_worker_generation", "worker", w, "pid", p) == e->generation);
        assert_true(VALUE(&x, "cowdag_request_errors_total", "worker", w, "pid", p) == (double)e->errors);
        assert_true(VALUE(&x, "cowdag_requests_total", "worker", w, "pid", p, "code", "2xx") ==
                    (double)e->by_class[2]);
        assert_null(find_sample(&x, "cowdag_requests_total", "worker", w, "pid", p, "code", "3xx", NULL));
        for (int g = 0; g < MS_GC_GENS; g++) {
            const char *gen = (const char *[]){"0", "1", "2"}[g];
            assert_true(VALUE(&x, "cowdag_gc_collections_total", "worker", w, "pid", p, "generation", gen) ==
                        (double)e->gc.collections[g]);
            assert_true(VALUE(&x, "cowdag_gc_collected_objects_total", "worker", w, "pid", p, "generation", gen) ==
                        (double)e->gc.collected[g]);
            assert_true(VALUE(&x, "cowdag_gc_pause_seconds_total", "worker", w, "pid", p, "generation", gen) ==
                        (double)e->gc.pause_ns[g] / 1e9);
        }
        assert_true(VALUE(&x, "cowdag_gc_tracked_objects", "worker", w, "pid", p) == (double)e->gc.tracked);
        assert_true(VALUE(&x, "cowdag_gc_frozen_objects", "worker", w, "pid", p) == (double)e->gc.frozen);
        assert_true(VALUE(&x, "cowdag_heap_objects", "worker", w, "pid", p) == (double)e->gc.objects);
        assert_true(VALUE(&x, "cowdag_worker_uptime_seconds", "worker", w, "pid", p) ==
                    (double)(NOW_MS - e->started_ms) / 1000);
    }
    /* the old worker answered nothing: 2xx still there, at zero, alone */
    assert_true(VALUE(&x, "cowdag_requests_total", "worker", "0", "pid", "1001", "code", "2xx") == 0);
    assert_null(find_sample(&x, "cowdag_requests_total", "worker", "0", "pid", "1001", "code", "4xx", NULL));
    assert_true(VALUE(&x, "cowdag_requests_total", "worker", "0", "pid", "2001", "code", "4xx") == 2005);
    assert_true(VALUE(&x, "cowdag_requests_total", "worker", "0", "pid", "2001", "code", "5xx") == 2);
    assert_int_equal(count_samples(&x, "cowdag_worker_info"), 3);
    expo_free(&x);
    free(text);
}

/* Memory, state and sample age only for the workers that have a sample. */
static void metrics_report_memory_only_once_sampled(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    const ms_entry *new = entry(f, IDX_NEW), *one = entry(f, IDX_ONE);
    assert_int_equal(count_samples(&x, "cowdag_worker_memory_bytes"), 12);
    assert_int_equal(count_samples(&x, "cowdag_worker_state_pages"), 4);
    assert_int_equal(count_samples(&x, "cowdag_worker_state_shared_ratio"), 2);
    assert_int_equal(count_samples(&x, "cowdag_worker_sample_age_seconds"), 2);
    assert_null(find_sample(&x, "cowdag_worker_sample_age_seconds", "worker", "0", "pid", "1001", NULL));
    static const char *const kinds[] = {"rss", "pss", "shared_clean", "shared_dirty", "private_clean",
                                        "private_dirty"};
    const ms_rollup *nr = &new->mem.rollup;
    const uint64_t r[6] = {nr->rss_bytes, nr->pss_bytes, nr->shared_clean_bytes, nr->shared_dirty_bytes,
                           nr->private_clean_bytes, nr->private_dirty_bytes};
    for (int k = 0; k < 6; k++)
        assert_true(VALUE(&x, "cowdag_worker_memory_bytes", "worker", "0", "pid", "2001", "kind", kinds[k]) ==
                    (double)r[k]);
    assert_true(VALUE(&x, "cowdag_worker_memory_bytes", "worker", "1", "pid", "3001", "kind", "pss") ==
                (double)one->mem.rollup.pss_bytes);
    assert_true(VALUE(&x, "cowdag_worker_state_pages", "worker", "0", "pid", "2001", "sharing", "shared") == 300);
    assert_true(VALUE(&x, "cowdag_worker_state_pages", "worker", "0", "pid", "2001", "sharing", "private") == 100);
    assert_string_equal(RAW(&x, "cowdag_worker_state_shared_ratio", "worker", "0", "pid", "2001"), "0.75");
    assert_string_equal(RAW(&x, "cowdag_worker_state_shared_ratio", "worker", "1", "pid", "3001"), "1");
    assert_string_equal(RAW(&x, "cowdag_worker_sample_age_seconds", "worker", "0", "pid", "2001"), "2.5");
    assert_string_equal(RAW(&x, "cowdag_worker_sample_age_seconds", "worker", "1", "pid", "3001"), "0.01");
    expo_free(&x);
    free(text);
}

/* The copied pages by type and region, where the sample has them: every
 * type a state page can hold, in JSON and in /metrics. */
static void stats_and_metrics_attribute_copied_pages_to_types(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    json_t *ws = member(doc, "workers");
    json_t *old = member(member(json_array_get(ws, 0), "memory"), "state");
    json_t *st = member(member(json_array_get(ws, 1), "memory"), "state");
    assert_null(json_object_get(old, "copied_by_type"));
    json_t *types = member(st, "copied_by_type");
    static const char *const names[] = {"int", "float", "str", "list", "dict", "array", "table", "storage"};
    static const uint64_t pages[] = {0, 30, 0, 60, 60, 0, 0, 4}, only[] = {0, 30, 0, 0, 0, 0, 0, 4};
    assert_int_equal(json_object_size(types), 8);
    uint64_t sum_only = 0;
    for (int i = 0; i < 8; i++) {
        json_t *t = member(types, names[i]);
        assert_uint_member(t, "pages", pages[i]);
        assert_uint_member(t, "only", only[i]);
        sum_only += only[i];
    }
    assert_uint_member(st, "copied_mixed_pages", 60);
    assert_uint_member(st, "copied_empty_pages", 6);
    assert_int_equal(sum_only + 60 + 6, 100); /* the private pages */
    json_t *regions = member(st, "copied_by_region");
    assert_int_equal(json_object_size(regions), 3);
    assert_uint_member(regions, "pool_64", 60);
    assert_uint_member(regions, "pool_32", 30);
    assert_uint_member(regions, "large", 10);
    json_decref(doc);

    expo x;
    char *text = metrics(f, &x);
    assert_int_equal(count_samples(&x, "cowdag_worker_state_copied_pages"), 8);
    for (int i = 0; i < 8; i++)
        assert_true(VALUE(&x, "cowdag_worker_state_copied_pages", "worker", "0", "pid", "2001", "type", names[i]) ==
                    (double)pages[i]);
    expo_free(&x);
    free(text);
}

/* How Prometheus's Go code spells these bounds (strconv 'g', shortest). */
static const struct { double v; const char *text; } go_spelling[] = {
    {0.0001, "0.0001"}, {0.00025, "0.00025"}, {0.0005, "0.0005"}, {0.001, "0.001"}, {0.0025, "0.0025"},
    {0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"}, {0.05, "0.05"}, {0.1, "0.1"}, {0.25, "0.25"},
    {0.5, "0.5"}, {1, "1"}, {2.5, "2.5"}, {5, "5"}, {10, "10"}, {1e-05, "1e-05"}, {60, "60"},
};

static void metrics_histogram_is_cumulative_with_prometheus_le(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x); /* the checker: cumulative, +Inf == _count */
    const ms_entry *e = entry(f, IDX_NEW);
    uint64_t cum = 0;
    int k = 0;
    for (int i = 0; i < x.ns; i++) {
        const psample *s = &x.s[i];
        if (strcmp(s->name, "cowdag_request_duration_seconds_bucket") != 0 ||
            strcmp(label_of(s, "pid"), "2001") != 0)
            continue;
        assert_true(k < MS_HIST_BUCKETS);
        cum += e->duration[k];
        assert_true(s->v == (double)cum);
        const char *le = label_of(s, "le");
        if (k == MS_HIST_BUCKETS - 1) {
            assert_string_equal(le, "+Inf");
        } else {
            assert_true(strtod(le, NULL) == ms_hist_bounds[k]); /* reads back exactly */
            assert_null(strstr(le, "00000"));                    /* and is short */
            for (size_t j = 0; j < sizeof go_spelling / sizeof go_spelling[0]; j++)
                if (go_spelling[j].v == ms_hist_bounds[k])
                    assert_string_equal(le, go_spelling[j].text);
        }
        k++;
    }
    assert_int_equal(k, MS_HIST_BUCKETS);
    assert_true(VALUE(&x, "cowdag_request_duration_seconds_count", "worker", "0", "pid", "2001") == (double)cum);
    assert_string_equal(RAW(&x, "cowdag_request_duration_seconds_sum", "worker", "0", "pid", "2001"), "1.236567");
    assert_int_equal(count_samples(&x, "cowdag_request_duration_seconds_bucket"), 3 * MS_HIST_BUCKETS);
    expo_free(&x);
    free(text);
}

static void metrics_spell_floats_as_prometheus_does(void **state)
{
    fx *f = *state;
    f->snap->now_ms = 2000000000; /* uptime of the slot-1 worker: 1999957 s */
    expo x;
    char *text = metrics(f, &x);
    assert_string_equal(RAW(&x, "cowdag_gc_pause_seconds_total", "worker", "0", "pid", "2001", "generation", "0"),
                        "1.5e-06");
    assert_string_equal(RAW(&x, "cowdag_gc_pause_seconds_total", "worker", "0", "pid", "2001", "generation", "2"),
                        "9.99e-07");
    assert_string_equal(RAW(&x, "cowdag_gc_pause_max_seconds", "worker", "0", "pid", "2001"), "0.00125");
    assert_string_equal(RAW(&x, "cowdag_worker_uptime_seconds", "worker", "1", "pid", "3001"), "1.999957e+06");
    assert_string_equal(RAW(&x, "cowdag_worker_uptime_seconds", "worker", "0", "pid", "2001"), "1.999958e+06");
    assert_string_equal(RAW(&x, "cowdag_request_errors_total", "worker", "0", "pid", "2001"), "2007");
    expo_free(&x);
    free(text);

    /* a large integer counter stays an integer, not 1.8e+19 */

    f->snap->workers[1].errors = UINT64_MAX;
    text = metrics(f, &x);
    assert_string_equal(RAW(&x, "cowdag_request_errors_total", "worker", "0", "pid", "2001"),
                        "18446744073709551615");
    expo_free(&x);
    free(text);
}

static void metrics_escape_label_values(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    /* as written: quote, backslash and newline escaped */
    assert_non_null(strstr(text, "mode=\"fr\\\"e\\\\e\\nz\""));
    /* as read back: the mode itself */
    const psample *s = must(find_sample(&x, "cowdag_master_info", "pid", "4242", "mode", MODE, "immortal", "true",
                                        NULL));
    assert_string_equal(label_of(s, "mode"), MODE);
    /* a plain value is written as it is */
    assert_non_null(strstr(text, "cowdag_worker_info{worker=\"0\",pid=\"2001\",status=\"ready\"} 1\n"));
    expo_free(&x);
    free(text);
}

static void metrics_of_an_empty_scoreboard(void **state)
{
    (void)state;
    ms_scoreboard *sb = calloc(1, sizeof *sb);
    h_snapshot *snap = calloc(1, sizeof *snap);
    assert_non_null(sb);
    assert_non_null(snap);
    h_snapshot_take(sb, snap);
    char *text = h_metrics_text(snap);
    assert_non_null(text);
    expo x;
    parse_ok(text, &x);
    assert_int_equal(x.nfam, N_FAMILIES); /* every family declared, even without samples */
    assert_int_equal(count_samples(&x, "cowdag_worker_info"), 0);
    assert_int_equal(count_samples(&x, "cowdag_master_memory_bytes"), 0); /* master never sampled */
    assert_int_equal(count_samples(&x, "cowdag_worker_restarts_total"), 0);
    assert_true(VALUE(&x, "cowdag_workers", "status", "ready") == 0);
    expo_free(&x);
    free(text);
    free(snap);
    free(sb);
}

/* Hundreds of workers: the text outgrows any first buffer, and each
 * family's samples still come together. */
static void metrics_of_many_workers_keep_families_contiguous(void **state)
{
    fx *f = *state;
    memset(f->sb, 0, sizeof *f->sb);
    fill_scoreboard(f->sb);
    for (int i = 20; i < 320; i++) {
        int slot = i % MS_SB_SLOTS;
        fill_entry(&f->sb->entries[i], slot, 3 + i / MS_SB_SLOTS, 50000 + i, MS_READY, (uint64_t)i);
        fill_sample(&f->sb->entries[i].mem, (uint64_t)i, 1);
    }
    h_snapshot_take(f->sb, f->snap);
    assert_int_equal(f->snap->nworkers, NORDER + 300);
    expo x;
    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    assert_true(strlen(text) > 1000000);
    parse_ok(text, &x);
    assert_int_equal(count_samples(&x, "cowdag_worker_info"), 303);
    assert_int_equal(count_samples(&x, "cowdag_worker_restarts_total"), MS_SB_SLOTS * MS_RESTART_REASONS);
    assert_int_equal(count_samples(&x, "cowdag_request_duration_seconds_count"), 303);
    /* sorted: the first worker_info sample is slot 0's oldest generation */
    const psample *first = NULL;
    for (int i = 0; i < x.ns && !first; i++)
        if (strcmp(x.s[i].name, "cowdag_worker_info") == 0)
            first = &x.s[i];
    assert_string_equal(label_of(must(first), "pid"), "1001");
    expo_free(&x);
    free(text);
}

/* promtool, where it is installed, is the last word on the format. */
static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char *dirs = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", *d ? d : ".", prog);
        found = access(full, X_OK) == 0;
    }
    free(dirs);
    return found;
}

static void promtool_accepts(const char *text)
{
    char in[] = "/tmp/test_stats_metrics_XXXXXX", out[] = "/tmp/test_stats_promtool_XXXXXX";
    int fd = mkstemp(in), fo = mkstemp(out);
    assert_true(fd >= 0 && fo >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    close(fo);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s 2>&1", in, out);
    int st = system(cmd);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        char buf[4096] = "";
        FILE *fp = fopen(out, "r");
        if (fp) {
            size_t n = fread(buf, 1, sizeof buf - 1, fp);
            buf[n] = '\0';
            fclose(fp);
        }
        print_error("promtool check metrics failed (status %d):\n%s\n", st, buf);
    }
    unlink(in);
    unlink(out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void metrics_pass_promtool(void **state)
{
    fx *f = *state;
    if (!on_path("promtool")) {
        print_message("promtool not on PATH (Debian: apt-get install prometheus); skipped\n");
        skip();
    }
    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    promtool_accepts(text);
    free(text);

    ms_scoreboard *sb = calloc(1, sizeof *sb);
    assert_non_null(sb);
    h_snapshot_take(sb, f->snap);
    text = h_metrics_text(f->snap);
    assert_non_null(text);
    promtool_accepts(text);
    free(text);
    free(sb);
}

/* }====================================================================== */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(snapshot_skips_free_entries_and_sorts_by_slot_then_generation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(snapshot_skips_an_entry_caught_mid_write, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_reports_a_torn_master_as_zeros, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_is_stamped_with_the_monotonic_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_master_has_the_spec_fields_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_and_metrics_attribute_copied_pages_to_types, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_workers_have_the_spec_fields_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_ratio_and_age_follow_the_sample, setup, teardown),
        cmocka_unit_test(stats_of_an_empty_scoreboard),
        cmocka_unit_test_setup_teardown(stats_and_metrics_survive_an_unterminated_or_non_utf8_mode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(metrics_follow_the_exposition_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_hold_the_master_and_pool_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_hold_each_workers_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_report_memory_only_once_sampled, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_histogram_is_cumulative_with_prometheus_le, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_spell_floats_as_prometheus_does, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_escape_label_values, setup, teardown),
        cmocka_unit_test(metrics_of_an_empty_scoreboard),
        cmocka_unit_test_setup_teardown(metrics_of_many_workers_keep_families_contiguous, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_pass_promtool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

