/* tests/test_scoreboard.c: cmocka tests for the scoreboard -- claiming and
 * freeing entries, the master part, the duration histogram's buckets, and
 * the seqlock: real forked writers against a reading parent, and writers
 * that die mid-update.  Contract: memstats/scoreboard.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "memstats/scoreboard.h"

#define ENTRY_UPDATES 200000u  /* brackets the entry-writing child makes */
#define MASTER_UPDATES 100000u /* ... and the master-writing child */
#define FORK_DEADLINE_MS 60000 /* a reader loop gives up (and fails) after this */
#define MID_WAIT_MS 60000      /* a writer waits at most this for the reader */

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ms(void) { return base_now_ms(); }

static int sb_setup(void **state)
{
    ms_scoreboard *sb = ms_sb_create();
    if (!sb)
        return -1;
    *state = sb;
    return 0;
}

static int sb_teardown(void **state)
{
    ms_sb_destroy(*state);
    return 0;
}

/* Every field of a part, as (address, size), so a test can set all of them
 * to one value inside one bracket and check that a copy holds one value
 * throughout.  Sizes: 8 (uint64_t, and char arrays in 8-byte pieces), 4
 * (int32_t), 1 (bool: holds the value's low bit). */
typedef struct fref {
    void *p;
    size_t size;
} fref;

#define MAX_REFS 512

#define REF(x) (refs[n++] = (fref){(void *)&(x), sizeof(x)})
#define REF_ARRAY(a)                                                         \
    do {                                                                     \
        for (size_t j_ = 0; j_ < sizeof(a) / sizeof((a)[0]); j_++)           \
            REF((a)[j_]);                                                    \
    } while (0)

static size_t sample_refs(ms_sample *m, fref *refs, size_t n)
{
    REF(m->rollup.rss_bytes);
    REF(m->rollup.pss_bytes);
    REF(m->rollup.shared_clean_bytes);
    REF(m->rollup.shared_dirty_bytes);
    REF(m->rollup.private_clean_bytes);
    REF(m->rollup.private_dirty_bytes);
    REF(m->state.pages);
    REF(m->state.shared_pages);
    REF(m->state.private_pages);
    REF(m->state.zero_pages);
    REF(m->state.swapped_pages);
    REF(m->copied.pages);
    REF(m->copied.by_type);
    REF(m->copied.only);
    REF(m->copied.mixed);
    REF(m->copied.empty);
    REF(m->copied.by_region);
    REF(m->copied_known);
    REF(m->at_ms);
    REF(m->cost_us);
    return n;
}

/* An entry's fields but seq; with identity, slot/generation/pid/status too. */
static size_t entry_refs(ms_entry *e, bool identity, fref *refs)
{
    size_t n = 0;
    if (identity) {
        REF(e->slot);
        REF(e->generation);
        REF(e->pid);
        REF(e->status);
    }
    REF(e->started_ms);
    REF(e->requests);
    REF(e->errors);
    REF_ARRAY(e->by_class);
    REF_ARRAY(e->duration);
    REF(e->duration_sum_us);
    REF_ARRAY(e->gc.collections);
    REF_ARRAY(e->gc.collected);
    REF_ARRAY(e->gc.pause_ns);
    REF(e->gc.pause_ns_max);
    REF(e->gc.tracked);
    REF(e->gc.frozen);
    REF(e->gc.objects);
    for (size_t j = 0; j < sizeof e->serving; j += 8)
        refs[n++] = (fref){&e->serving[j], 8};
    REF(e->serving_since_ms);
    REF(e->beat_ms);
    return n; /* the memory sample is a part of its own: mem_refs */
}

/* The entry's memory sample, written under mem_seq. */
static size_t mem_refs(ms_entry *e, fref *refs) { return sample_refs(&e->mem, refs, 0); }

static size_t master_refs(ms_master *x, fref *refs)
{
    size_t n = 0;
    REF(x->pid);
    REF(x->workers);
    for (size_t j = 0; j < sizeof x->gc_mode; j += 8)
        refs[n++] = (fref){&x->gc_mode[j], 8};
    REF_ARRAY(x->thresholds);
    REF(x->immortal);
    REF(x->state_bytes);
    REF(x->state_pages);
    n = sample_refs(&x->mem, refs, n);
    REF(x->restarts); /* the whole table, one word at a time (set_refs) */
    return n;
}

static void set_refs(const fref *refs, size_t n, uint64_t k)
{
    for (size_t i = 0; i < n; i++) {
        if (refs[i].size % 8 == 0) { /* a word, or a table of them */
            for (size_t w = 0; w < refs[i].size; w += 8)
                memcpy((char *)refs[i].p + w, &k, 8);
        } else if (refs[i].size == 4) {
            int32_t v = (int32_t)(uint32_t)k;
            memcpy(refs[i].p, &v, 4);
        } else {
            uint8_t v = (uint8_t)(k & 1);
            memcpy(refs[i].p, &v, 1);
        }
    }
}

/* Whether every field holds k (truncated as set_refs truncates it). */
static bool refs_hold(const fref *refs, size_t n, uint64_t k)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0, want;
        if (refs[i].size % 8 == 0) { /* every word of it */
            want = k;
            v = k;
            for (size_t w = 0; w < refs[i].size && v == want; w += 8)
                memcpy(&v, (const char *)refs[i].p + w, 8);
        } else if (refs[i].size == 4) {
            uint32_t w;
            memcpy(&w, refs[i].p, 4);
            v = w;
            want = (uint32_t)k;
        } else {
            uint8_t b;
            memcpy(&b, refs[i].p, 1);
            v = b;
            want = k & 1;
        }
        if (v != want)
            return false;
    }
    return true;
}

static uint64_t ref_u64(const fref *r)
{
    uint64_t v;
    assert_int_equal(r->size, 8);
    memcpy(&v, r->p, 8);
    return v;
}

/* Asserts the refs cover bytes [from, size) of the part exactly once, but
 * [gap_from, gap_to), padding, which they must not touch. */
static void assert_refs_cover(const void *base, size_t size, size_t from,
                              const fref *refs, size_t n, size_t gap_from,
                              size_t gap_to)
{
    unsigned char *hits = calloc(size, 1);
    assert_non_null(hits);
    for (size_t i = 0; i < n; i++) {
        size_t off = (size_t)((const char *)refs[i].p - (const char *)base);
        assert_true(off + refs[i].size <= size);
        for (size_t b = 0; b < refs[i].size; b++)
            hits[off + b]++;
    }
    for (size_t b = 0; b < size; b++) {
        unsigned want = b < from || (b >= gap_from && b < gap_to) ? 0 : 1;
        if (hits[b] != want)
            fail_msg("byte %zu of %zu covered %u times, want %u", b, size, hits[b], want);
    }
    free(hits);
}

/* Shared between a test's processes: start and stop flags, and what the
 * reader has seen. */
typedef struct ctl {
    uint32_t go;       /* reader is reading: writers start */
    uint32_t stop;     /* writers (other than the counted one) stop */
    uint32_t seen_mid; /* reader has had a consistent mid-run copy */
} ctl;

static ctl *ctl_create(void)
{
    void *p = mmap(NULL, sizeof(ctl), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

static uint32_t ctl_get(const uint32_t *f) { return __atomic_load_n(f, __ATOMIC_ACQUIRE); }
static void ctl_set(uint32_t *f) { __atomic_store_n(f, 1, __ATOMIC_RELEASE); }

/* A writer child waits for the reader, at most MID_WAIT_MS. */
static void wait_flag(const uint32_t *f)
{
    uint64_t until = now_ms() + MID_WAIT_MS;
    while (!ctl_get(f) && now_ms() < until)
        usleep(100);
}

static void assert_child_ok(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

/* Whether an entry's figures are zero from `from` on: the worker's part up
 * to the memory counter, and the memory sample (the counter only counts
 * up, and must be even). */
static bool figures_zero(const ms_entry *e, size_t from)
{
    return all_zero((const char *)e + from, offsetof(ms_entry, mem_seq) - from) && e->mem_seq % 2 == 0 &&
           all_zero(&e->mem, sizeof e->mem);
}

/* ---- creation, claiming, freeing ----------------------------------------- */

static void test_create_is_zeroed_and_free(void **state)
{
    ms_scoreboard *sb = *state;
    ms_master m;
    ms_entry e;

    memset(&m, 0xa5, sizeof m);
    assert_true(ms_sb_read_master(sb, &m));
    assert_true(all_zero(&m, sizeof m));
    for (int i = 0; i < MS_SB_ENTRIES; i++) {
        memset(&e, 0xa5, sizeof e);
        assert_true(ms_sb_read_entry(sb, i, &e));
        assert_true(all_zero(&e, sizeof e));
        assert_int_equal(e.status, MS_FREE);
    }
}

static void test_claim_sets_identity_and_zero_figures(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;

    uint64_t before = now_ms();
    int i = ms_sb_claim(sb, 7, 3);
    uint64_t after = now_ms();
    assert_int_equal(i, 0);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.slot, 7);
    assert_int_equal(e.generation, 3);
    assert_int_equal(e.status, MS_STARTING);
    assert_int_equal(e.pid, 0);
    assert_true(e.started_ms >= before && e.started_ms <= after);
    assert_true(e.started_ms > 0);
    assert_int_equal(e.seq % 2, 0);
    assert_true(e.seq > 0); /* the claim was bracketed */
    assert_int_equal(e.requests, 0);
    assert_true(figures_zero(&e, offsetof(ms_entry, requests)));

    ms_sb_set_pid(sb, i, 4242);
    ms_sb_set_status(sb, i, MS_READY);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.pid, 4242);
    assert_int_equal(e.status, MS_READY);
    assert_int_equal(e.slot, 7);
    assert_int_equal(e.seq % 2, 0);
    ms_sb_set_status(sb, i, MS_DRAINING);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.status, MS_DRAINING);

    /* the next claim takes the next entry */
    assert_int_equal(ms_sb_claim(sb, 7, 4), 1);
    assert_true(ms_sb_read_entry(sb, 1, &e));
    assert_int_equal(e.generation, 4);
}

static void test_claim_rejects_slot_out_of_range(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;

    assert_int_equal(ms_sb_claim(sb, -1, 0), -1);
    assert_int_equal(ms_sb_claim(sb, MS_SB_SLOTS, 0), -1);
    assert_int_equal(ms_sb_claim(sb, INT_MIN, 0), -1);
    assert_int_equal(ms_sb_claim(sb, INT_MAX, 0), -1);
    assert_int_equal(ms_sb_claim(NULL, 0, 0), -1);
    assert_true(ms_sb_read_entry(sb, 0, &e));
    assert_int_equal(e.status, MS_FREE); /* nothing taken */

    assert_int_equal(ms_sb_claim(sb, 0, 0), 0);
    assert_int_equal(ms_sb_claim(sb, MS_SB_SLOTS - 1, 0), 1);
    assert_true(ms_sb_read_entry(sb, 1, &e));
    assert_int_equal(e.slot, MS_SB_SLOTS - 1);
}

static void test_claim_until_full_then_reuse(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;

    for (int i = 0; i < MS_SB_ENTRIES; i++)
        assert_int_equal(ms_sb_claim(sb, i % MS_SB_SLOTS, i / MS_SB_SLOTS), i);
    assert_int_equal(ms_sb_claim(sb, 0, 9), -1);
    assert_int_equal(ms_sb_claim(sb, 0, 9), -1);

    assert_true(ms_sb_read_entry(sb, MS_SB_ENTRIES - 1, &e));
    assert_int_equal(e.slot, (MS_SB_ENTRIES - 1) % MS_SB_SLOTS);
    assert_int_equal(e.generation, (MS_SB_ENTRIES - 1) / MS_SB_SLOTS);

    ms_sb_release(sb, 300);
    ms_sb_release(sb, 100);
    assert_int_equal(ms_sb_claim(sb, 5, 9), 100); /* the first free one */
    assert_int_equal(ms_sb_claim(sb, 6, 9), 300);
    assert_int_equal(ms_sb_claim(sb, 7, 9), -1);
    assert_true(ms_sb_read_entry(sb, 300, &e));
    assert_int_equal(e.slot, 6);
    assert_int_equal(e.generation, 9);
    assert_int_equal(e.status, MS_STARTING);
}

static void test_release_zeroes_then_claim_reuses(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;

    int i = ms_sb_claim(sb, 2, 1);
    assert_int_equal(i, 0);
    ms_sb_set_pid(sb, i, 99);
    ms_sb_set_status(sb, i, MS_READY);
    ms_entry *w = &sb->entries[i];
    ms_sb_write_begin(&w->seq);
    w->requests = 5;
    w->errors = 1;
    w->duration[3] = 4;
    w->gc.objects = 1000;
    w->mem.rollup.rss_bytes = 4096;
    ms_sb_write_end(&w->seq);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.requests, 5);
    uint64_t seq_before = e.seq;

    ms_sb_release(sb, i);
    memset(&e, 0xa5, sizeof e);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.status, MS_FREE);
    assert_true(e.seq > seq_before);
    assert_int_equal(e.seq % 2, 0);
    assert_true(figures_zero(&e, sizeof e.seq));

    assert_int_equal(ms_sb_claim(sb, 3, 2), i);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.slot, 3);
    assert_int_equal(e.generation, 2);
    assert_int_equal(e.pid, 0);
    assert_int_equal(e.requests, 0);
    assert_int_equal(e.mem.rollup.rss_bytes, 0);
}

/* Figures left in a free entry (whatever put them there) do not leak into
 * the next process's. */
static void test_claim_zeroes_stale_figures(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;
    ms_entry *w = &sb->entries[0];
    fref refs[MAX_REFS];
    size_t n = entry_refs(w, false, refs);

    ms_sb_write_begin(&w->seq);
    set_refs(refs, n, 77);
    w->pid = 12;
    ms_sb_write_end(&w->seq);

    assert_int_equal(ms_sb_claim(sb, 1, 1), 0);
    assert_true(ms_sb_read_entry(sb, 0, &e));
    assert_int_equal(e.pid, 0);
    assert_true(e.started_ms > 0);
    assert_true(figures_zero(&e, offsetof(ms_entry, requests)));
}

static void test_find_pid_finds_claimed_entries_only(void **state)
{
    ms_scoreboard *sb = *state;
    int a = ms_sb_claim(sb, 0, 1), b = ms_sb_claim(sb, 1, 1);
    ms_sb_set_pid(sb, a, 4100);
    ms_sb_set_pid(sb, b, 4200);
    assert_int_equal(ms_sb_find_pid(sb, 4200), b);
    assert_int_equal(ms_sb_find_pid(sb, 4100), a);
    assert_int_equal(ms_sb_find_pid(sb, 4300), -1);
    assert_int_equal(ms_sb_find_pid(sb, 0), -1); /* free entries hold pid 0 */
    ms_sb_release(sb, b);
    assert_int_equal(ms_sb_find_pid(sb, 4200), -1);
    assert_int_equal(ms_sb_find_pid(NULL, 4100), -1);
}

static void test_bad_index_or_null_is_harmless(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;
    ms_master m;

    assert_int_equal(ms_sb_claim(sb, 0, 0), 0);
    ms_scoreboard *copy = malloc(sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, sb, sizeof *copy);

    memset(&e, 0xa5, sizeof e);
    assert_false(ms_sb_read_entry(sb, -1, &e));
    assert_true(all_zero(&e, sizeof e));
    memset(&e, 0xa5, sizeof e);
    assert_false(ms_sb_read_entry(sb, MS_SB_ENTRIES, &e));
    assert_true(all_zero(&e, sizeof e));
    assert_false(ms_sb_read_entry(NULL, 0, &e));
    assert_false(ms_sb_read_entry(sb, 0, NULL));
    assert_false(ms_sb_read_master(NULL, &m));
    assert_false(ms_sb_read_master(sb, NULL));

    ms_sb_set_pid(sb, -1, 1);
    ms_sb_set_pid(sb, MS_SB_ENTRIES, 1);
    ms_sb_set_status(sb, -1, MS_READY);
    ms_sb_set_status(sb, MS_SB_ENTRIES, MS_READY);
    ms_sb_release(sb, -1);
    ms_sb_release(sb, MS_SB_ENTRIES);
    ms_sb_set_pid(NULL, 0, 1);
    ms_sb_set_status(NULL, 0, MS_READY);
    ms_sb_release(NULL, 0);
    ms_sb_destroy(NULL);
    assert_memory_equal(copy, sb, sizeof *copy);
    free(copy);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(ms_status_name(MS_FREE), "free");
    assert_string_equal(ms_status_name(MS_STARTING), "starting");
    assert_string_equal(ms_status_name(MS_READY), "ready");
    assert_string_equal(ms_status_name(MS_DRAINING), "draining");
    assert_non_null(ms_status_name((ms_status)42));
}

/* ---- the master part ---------------------------------------------------- */

static void test_master_part_read(void **state)
{
    ms_scoreboard *sb = *state;
    ms_master *x = &sb->master;
    ms_master m;

    ms_sb_write_begin(&x->seq);
    x->pid = 1234;
    x->workers = 8;
    snprintf(x->gc_mode, sizeof x->gc_mode, "%s", "generational");
    x->thresholds[0] = 700;
    x->thresholds[1] = 10;
    x->thresholds[2] = 10;
    x->immortal = true;
    x->state_bytes = 1u << 30;
    x->state_pages = 262144;
    x->mem.rollup.rss_bytes = 5000;
    x->mem.state.shared_pages = 17;
    x->mem.at_ms = 123;
    x->restarts[0][MS_RESTART_CRASH] = 1;
    x->restarts[MS_SB_SLOTS - 1][MS_RESTART_SCALE] = 9;
    ms_sb_write_end(&x->seq);

    assert_true(ms_sb_read_master(sb, &m));
    assert_int_equal(m.seq, 2);
    assert_int_equal(m.pid, 1234);
    assert_int_equal(m.workers, 8);
    assert_string_equal(m.gc_mode, "generational");
    assert_int_equal(m.thresholds[0], 700);
    assert_int_equal(m.thresholds[2], 10);
    assert_true(m.immortal);
    assert_int_equal(m.state_bytes, 1u << 30);
    assert_int_equal(m.state_pages, 262144);
    assert_int_equal(m.mem.rollup.rss_bytes, 5000);
    assert_int_equal(m.mem.state.shared_pages, 17);
    assert_int_equal(m.mem.at_ms, 123);
    assert_int_equal(m.restarts[0][MS_RESTART_CRASH], 1);
    assert_int_equal(m.restarts[0][MS_RESTART_TIMEOUT], 0);
    assert_int_equal(m.restarts[1][MS_RESTART_CRASH], 0);
    assert_int_equal(m.restarts[MS_SB_SLOTS - 1][MS_RESTART_SCALE], 9);

    /* the master part is apart from the entries */
    ms_entry e;
    assert_true(ms_sb_read_entry(sb, 0, &e));
    assert_true(all_zero(&e, sizeof e));
}

/* ---- the histogram ------------------------------------------------------ */

static void test_hist_bounds_ladder(void **state)
{
    (void)state;
    assert_int_equal(sizeof ms_hist_bounds / sizeof ms_hist_bounds[0], MS_HIST_BUCKETS - 1);
    assert_true(ms_hist_bounds[0] == 0.0001);
    assert_true(ms_hist_bounds[MS_HIST_BUCKETS - 2] == 10.0);
    for (int i = 1; i < MS_HIST_BUCKETS - 1; i++)
        if (!(ms_hist_bounds[i] > ms_hist_bounds[i - 1]))
            fail_msg("bound %d (%g) not above bound %d (%g)", i, ms_hist_bounds[i], i - 1,
                     ms_hist_bounds[i - 1]);
}

static void test_hist_bucket_edges(void **state)
{
    (void)state;
    for (int i = 0; i < MS_HIST_BUCKETS - 1; i++) {
        double b = ms_hist_bounds[i];
        assert_int_equal(ms_hist_bucket(b), i);                    /* bound: inclusive */
        assert_int_equal(ms_hist_bucket(nextafter(b, INFINITY)), i + 1); /* just above */
        assert_int_equal(ms_hist_bucket(nextafter(b, 0.0)), i);    /* just below */
    }
    assert_int_equal(ms_hist_bucket(0.0), 0);
    assert_int_equal(ms_hist_bucket(-0.0), 0);
    assert_int_equal(ms_hist_bucket(DBL_MIN), 0);
    assert_int_equal(ms_hist_bucket(-1.0), 0);
    assert_int_equal(ms_hist_bucket(-INFINITY), 0);
    assert_int_equal(ms_hist_bucket(0.00015), 1);
    assert_int_equal(ms_hist_bucket(0.003), 5);
    assert_int_equal(ms_hist_bucket(10.0), MS_HIST_BUCKETS - 2);
    assert_int_equal(ms_hist_bucket(10.5), MS_HIST_BUCKETS - 1);
    assert_int_equal(ms_hist_bucket(3600.0), MS_HIST_BUCKETS - 1);
    assert_int_equal(ms_hist_bucket(1e300), MS_HIST_BUCKETS - 1);
    assert_int_equal(ms_hist_bucket(DBL_MAX), MS_HIST_BUCKETS - 1);
    assert_int_equal(ms_hist_bucket(INFINITY), MS_HIST_BUCKETS - 1);
    assert_int_equal(ms_hist_bucket(NAN), MS_HIST_BUCKETS - 1);
    /* how the worker calls it: microseconds over 1e6 */
    assert_int_equal(ms_hist_bucket(100 / 1e6), 0);
    assert_int_equal(ms_hist_bucket(101 / 1e6), 1);
    assert_int_equal(ms_hist_bucket(1000000 / 1e6), 12);
}

/* ---- the seqlock, in one process ---------------------------------------- */

static void test_field_lists_cover_every_byte(void **state)
{
    (void)state;
    fref refs[MAX_REFS];
    ms_entry e;
    ms_master m;

    size_t n = entry_refs(&e, true, refs);
    assert_true(n <= MAX_REFS);
    /* the worker's part, up to the memory part's counter, which starts a
     * cache line: the padding before it */
    assert_refs_cover(&e, offsetof(ms_entry, mem_seq), sizeof e.seq, refs, n,
                      offsetof(ms_entry, beat_ms) + sizeof e.beat_ms, offsetof(ms_entry, mem_seq));
    /* the memory part, after its counter; entries are cache-line aligned:
     * the padding after the last field */
    n = mem_refs(&e, refs);
    assert_refs_cover(&e, sizeof e, offsetof(ms_entry, mem), refs, n, offsetof(ms_entry, mem) + sizeof e.mem, sizeof e);
    assert_int_equal(offsetof(ms_entry, mem_seq) % 64, 0);

    n = master_refs(&m, refs);
    assert_true(n <= MAX_REFS);
    assert_refs_cover(&m, sizeof m, sizeof m.seq, refs, n,
                      offsetof(ms_master, immortal) + sizeof m.immortal,
                      offsetof(ms_master, state_bytes));
}

static void test_bracket_makes_seq_odd_then_even(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;
    ms_master m;
    uint64_t *seq = &sb->entries[3].seq;

    ms_sb_write_begin(seq);
    assert_int_equal(*seq, 1);
    ms_sb_write_end(seq);
    assert_int_equal(*seq, 2);
    assert_true(ms_sb_read_entry(sb, 3, &e));
    assert_int_equal(e.seq, 2);

    ms_sb_write_begin(&sb->master.seq);
    assert_int_equal(sb->master.seq % 2, 1);
    ms_sb_write_end(&sb->master.seq);
    assert_true(ms_sb_read_master(sb, &m));
    assert_int_equal(m.seq, 2);
}

/* A writer that began and never ended (it died mid-update): reads give up
 * after bounded retries with a zeroed copy; end lets them through again. */
static void test_read_gives_up_on_open_bracket(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;
    ms_master m;

    int i = ms_sb_claim(sb, 0, 0);
    assert_int_equal(i, 0);
    ms_sb_write_begin(&sb->entries[i].seq);
    sb->entries[i].requests = 1;

    memset(&e, 0xa5, sizeof e);
    uint64_t t0 = now_ms();
    assert_false(ms_sb_read_entry(sb, i, &e));
    uint64_t took = now_ms() - t0;
    assert_true(took < 5000);
    assert_true(all_zero(&e, sizeof e));
    /* the other entries are unaffected */
    assert_true(ms_sb_read_entry(sb, i + 1, &e));

    ms_sb_write_begin(&sb->master.seq);
    assert_false(ms_sb_read_master(sb, &m));
    ms_sb_write_end(&sb->master.seq);
    assert_true(ms_sb_read_master(sb, &m));

    ms_sb_write_end(&sb->entries[i].seq);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.requests, 1);
    assert_int_equal(e.status, MS_STARTING);
}

/* The master sets pid and status while the worker may be inside a bracket:
 * the entry must stay unreadable until the worker's end, then show both. */
static void test_set_pid_status_inside_worker_bracket(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;

    int i = ms_sb_claim(sb, 4, 1);
    ms_entry *w = &sb->entries[i];
    ms_sb_write_begin(&w->seq);
    w->requests = 10;
    ms_sb_set_pid(sb, i, 555);
    ms_sb_set_status(sb, i, MS_DRAINING);
    assert_int_equal(w->seq % 2, 1);
    assert_false(ms_sb_read_entry(sb, i, &e));
    w->errors = 2;
    ms_sb_write_end(&w->seq);

    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.seq % 2, 0);
    assert_int_equal(e.pid, 555);
    assert_int_equal(e.status, MS_DRAINING);
    assert_int_equal(e.requests, 10);
    assert_int_equal(e.errors, 2);
}

/* ---- the seqlock, across processes -------------------------------------- */

/* A real worker dies inside a bracket: reads fail (without hanging) until
 * the master releases the entry, which mends the counter for the next
 * process. */
static void test_writer_killed_mid_bracket(void **state)
{
    ms_scoreboard *sb = *state;
    ms_entry e;

    int i = ms_sb_claim(sb, 1, 1);
    assert_int_equal(i, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ms_entry *w = &sb->entries[i];
        ms_sb_write_begin(&w->seq);
        w->requests = 3;
        _exit(0); /* no end */
    }
    ms_sb_set_pid(sb, i, (int)pid);
    assert_child_ok(pid);

    uint64_t t0 = now_ms();
    assert_false(ms_sb_read_entry(sb, i, &e));
    assert_false(ms_sb_read_entry(sb, i, &e));
    assert_true(now_ms() - t0 < 10000);

    ms_sb_release(sb, i);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.seq % 2, 0);
    assert_int_equal(e.status, MS_FREE);
    assert_int_equal(e.requests, 0);

    assert_int_equal(ms_sb_claim(sb, 2, 2), i);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.slot, 2);
    assert_int_equal(e.status, MS_STARTING);
    ms_entry *w = &sb->entries[i];
    ms_sb_write_begin(&w->seq);
    w->requests = 1;
    ms_sb_write_end(&w->seq);
    assert_true(ms_sb_read_entry(sb, i, &e));
    assert_int_equal(e.requests, 1);
}

/* Counts from a reader loop. */
typedef struct reads {
    uint64_t ok, failed, mid, torn, backwards, last;
    uint64_t torn_example;
} reads;

typedef bool (*read_fn)(const ms_scoreboard *sb, int i, void *out);

static bool read_entry_fn(const ms_scoreboard *sb, int i, void *out)
{
    return ms_sb_read_entry(sb, i, out);
}

static bool read_master_fn(const ms_scoreboard *sb, int i, void *out)
{
    (void)i;
    return ms_sb_read_master(sb, out);
}

/* Reader side of the fork tests: reads until a copy holds `final` (or the
 * deadline passes), counting copies that do not hold one value in all
 * `refs` fields (the first a uint64_t) or that go back from the last. */
static reads read_until(const ms_scoreboard *sb, int i, read_fn rd, void *copy,
                        const fref *refs, size_t n, uint64_t final, ctl *c,
                        void (*extra)(const void *copy, reads *r))
{
    reads r = {0};
    uint64_t until = now_ms() + FORK_DEADLINE_MS;

    ctl_set(&c->go);
    for (uint64_t t = 0;; t++) {
        if (rd(sb, i, copy)) {
            r.ok++;
            uint64_t k = ref_u64(&refs[0]);
            if (!refs_hold(refs, n, k)) {
                if (!r.torn)
                    r.torn_example = k;
                r.torn++;
            }
            if (extra)
                extra(copy, &r);
            if (k < r.last)
                r.backwards++;
            r.last = k;
            if (k > 0 && k < final) {
                r.mid++;
                ctl_set(&c->seen_mid);
            }
            if (k == final)
                break;
        } else {
            r.failed++;
        }
        if ((t & 1023) == 0 && now_ms() > until)
            break;
    }
    return r;
}

static void assert_reads(const reads *r, uint64_t final, const char *what)
{
    print_message("    %s: %llu consistent reads (%llu mid-run), %llu gave up\n", what,
                  (unsigned long long)r->ok, (unsigned long long)r->mid,
                  (unsigned long long)r->failed);
    if (r->torn)
        fail_msg("%s: %llu torn copies (first with first field %llu)", what,
                 (unsigned long long)r->torn, (unsigned long long)r->torn_example);
    assert_int_equal(r->backwards, 0);
    assert_int_equal(r->last, final); /* the final value was seen */
    assert_true(r->mid > 0);          /* reads did overlap the writes */
}

/* The entry-writing child: every field of the entry, identity included,
 * set to k in one bracket, k = 1 .. ENTRY_UPDATES.  Before the last
 * update it waits (bounded) until the reader had a mid-run copy, so the
 * test cannot pass on the final value alone. */
static void entry_writer(ms_scoreboard *sb, int i, ctl *c, bool identity)
{
    ms_entry *w = &sb->entries[i];
    fref refs[MAX_REFS], mrefs[MAX_REFS];
    size_t n = entry_refs(w, identity, refs), m = mem_refs(w, mrefs);

    wait_flag(&c->go);
    for (uint64_t k = 1; k <= ENTRY_UPDATES; k++) {
        if (k == ENTRY_UPDATES)
            wait_flag(&c->seen_mid);
        ms_sb_write_begin(&w->seq);
        set_refs(refs, n, k);
        ms_sb_write_end(&w->seq);
        /* the memory part in a bracket of its own, as the sampling thread
         * writes it: with a value of its own, so a copy may pair any two */
        ms_sb_write_begin(&w->mem_seq);
        set_refs(mrefs, m, 3 * k);
        ms_sb_write_end(&w->mem_seq);
    }
    _exit(0);
}

/* On every copy: the memory part holds one value throughout (of some
 * update of its own; 0 before the first). */
static void check_mem_part(const void *copy, reads *r)
{
    fref refs[MAX_REFS];
    size_t n = mem_refs((ms_entry *)copy, refs);
    if (!refs_hold(refs, n, ref_u64(&refs[0])) || ref_u64(&refs[0]) % 3 != 0)
        r->torn++;
}

static void test_fork_entry_reads_are_consistent(void **state)
{
    ms_scoreboard *sb = *state;
    ctl *c = ctl_create();
    fref wrefs[MAX_REFS], refs[MAX_REFS];
    ms_entry copy;

    int i = ms_sb_claim(sb, 0, 0);
    assert_int_equal(i, 0);
    /* start from one value (0) throughout, identity included */
    ms_entry *w = &sb->entries[i];
    ms_sb_write_begin(&w->seq);
    set_refs(wrefs, entry_refs(w, true, wrefs), 0);
    ms_sb_write_end(&w->seq);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        entry_writer(sb, i, c, true);

    size_t n = entry_refs(&copy, true, refs);
    /* refs[0] is slot (int32): check from started_ms, a uint64_t, and
     * rotate the identity fields to the end */
    fref ordered[MAX_REFS];
    memcpy(ordered, refs + 4, (n - 4) * sizeof *refs);
    memcpy(ordered + n - 4, refs, 4 * sizeof *refs);
    reads r = read_until(sb, i, read_entry_fn, &copy, ordered, n, ENTRY_UPDATES, c, check_mem_part);
    if (r.last != ENTRY_UPDATES)
        kill(pid, SIGKILL);
    assert_child_ok(pid);
    munmap(c, sizeof *c);
    assert_reads(&r, ENTRY_UPDATES, "entry");

    /* with the writer gone, the final state reads back */
    assert_true(ms_sb_read_entry(sb, i, &copy));
    assert_true(refs_hold(ordered, n, ENTRY_UPDATES));
    assert_int_equal(copy.seq, 2 + 2 * (uint64_t)ENTRY_UPDATES + 2); /* claim, fill, updates */
    fref mrefs[MAX_REFS];
    assert_true(refs_hold(mrefs, mem_refs(&copy, mrefs), 3 * (uint64_t)ENTRY_UPDATES));
    assert_int_equal(copy.mem_seq, 2 + 2 * (uint64_t)ENTRY_UPDATES); /* the claim's zeroing, the updates */
}

static void test_fork_master_reads_are_consistent(void **state)
{
    ms_scoreboard *sb = *state;
    ctl *c = ctl_create();
    fref refs[MAX_REFS];
    ms_master copy;

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ms_master *x = &sb->master;
        fref wrefs[MAX_REFS];
        size_t wn = master_refs(x, wrefs);
        wait_flag(&c->go);
        for (uint64_t k = 1; k <= MASTER_UPDATES; k++) {
            if (k == MASTER_UPDATES)
                wait_flag(&c->seen_mid);
            ms_sb_write_begin(&x->seq);
            set_refs(wrefs, wn, k);
            ms_sb_write_end(&x->seq);
        }
        _exit(0);
    }

    size_t n = master_refs(&copy, refs);
    /* check from state_bytes (a uint64_t): move it first */
    size_t first = 0;
    while (refs[first].p != (void *)&copy.state_bytes)
        first++;
    fref t = refs[0];
    refs[0] = refs[first];
    refs[first] = t;
    reads r = read_until(sb, 0, read_master_fn, &copy, refs, n, MASTER_UPDATES, c, NULL);
    if (r.last != MASTER_UPDATES)
        kill(pid, SIGKILL);
    assert_child_ok(pid);
    munmap(c, sizeof *c);
    assert_reads(&r, MASTER_UPDATES, "master");

    assert_true(ms_sb_read_master(sb, &copy));
    assert_true(refs_hold(refs, n, MASTER_UPDATES));
}

/* Status and pid the "master" child may set; checked on every copy. */
static void check_identity(const void *copy, reads *r)
{
    const ms_entry *e = copy;
    if ((e->status != MS_READY && e->status != MS_DRAINING && e->status != MS_STARTING) ||
        e->pid < 0 || e->slot != 5 || e->generation != 6)
        r->torn++;
}

/* Two writers on one entry, as in the server: its worker brackets its
 * figures while the master sets pid and status.  The worker's copies must
 * stay consistent (the master's updates must not break its brackets). */
/* The master releases and claims an entry again and again (zeroing it),
 * and each holder writes one memory sample of its own value in between: a
 * reader's copy of the sample holds one value throughout, never a mix of
 * an old sample and the zeroing. */
static void test_fork_release_and_claim_never_tear_the_sample(void **state)
{
    ms_scoreboard *sb = *state;
    ctl *c = ctl_create();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        wait_flag(&c->go);
        for (uint64_t k = 1; !ctl_get(&c->stop) && k < 100000000u; k++) {
            int i = ms_sb_claim(sb, 0, 0);
            if (i != 0)
                _exit(3);
            ms_entry *e = &sb->entries[i];
            fref refs[MAX_REFS];
            size_t n = mem_refs(e, refs);
            ms_sb_write_begin(&e->mem_seq);
            set_refs(refs, n, k);
            ms_sb_write_end(&e->mem_seq);
            ms_sb_release(sb, i);
        }
        _exit(0);
    }
    ctl_set(&c->go);
    /* Reads for 400 ms, and on until 100 of them have met a sample however
     * long that takes (a loaded machine may run the child seldom). */
    uint64_t t0 = now_ms(), reads = 0, torn = 0, nonzero = 0;
    ms_entry copy;
    fref refs[MAX_REFS];
    size_t n = mem_refs(&copy, refs);
    while ((now_ms() - t0 < 400 || nonzero < 100) && now_ms() - t0 < FORK_DEADLINE_MS) {
        if (!ms_sb_read_entry(sb, 0, &copy))
            continue;
        reads++;
        uint64_t k = ref_u64(&refs[0]);
        nonzero += k != 0;
        if (!refs_hold(refs, n, k))
            torn++;
    }
    ctl_set(&c->stop);
    assert_child_ok(pid);
    munmap(c, sizeof *c);
    print_message("    %llu reads, %llu of a sample, %llu torn\n", (unsigned long long)reads,
                  (unsigned long long)nonzero, (unsigned long long)torn);
    assert_int_equal(torn, 0);
    assert_true(nonzero >= 100); /* the reads did meet samples */
}

static void test_fork_master_sets_status_while_worker_writes(void **state)
{
    ms_scoreboard *sb = *state;
    ctl *c = ctl_create();
    fref refs[MAX_REFS];
    ms_entry copy;

    int i = ms_sb_claim(sb, 5, 6);
    assert_int_equal(i, 0);
    /* start from one value (0) in the worker's fields (claim set started_ms) */
    fref wrefs[MAX_REFS];
    ms_entry *w = &sb->entries[i];
    ms_sb_write_begin(&w->seq);
    set_refs(wrefs, entry_refs(w, false, wrefs), 0);
    ms_sb_write_end(&w->seq);

    pid_t worker = fork();
    assert_true(worker >= 0);
    if (worker == 0)
        entry_writer(sb, i, c, false);

    pid_t master = fork();
    assert_true(master >= 0);
    if (master == 0) {
        wait_flag(&c->go);
        for (uint64_t k = 0; !ctl_get(&c->stop) && k < 100000000u; k++) {
            ms_sb_set_pid(sb, i, (int)(k & 0x7fffffff));
            ms_sb_set_status(sb, i, (k & 1) ? MS_READY : MS_DRAINING);
        }
        _exit(0);
    }

    size_t n = entry_refs(&copy, false, refs);
    reads r = read_until(sb, i, read_entry_fn, &copy, refs, n, ENTRY_UPDATES, c, check_identity);
    ctl_set(&c->stop);
    if (r.last != ENTRY_UPDATES)
        kill(worker, SIGKILL);
    assert_child_ok(worker);
    assert_child_ok(master);
    munmap(c, sizeof *c);
    assert_reads(&r, ENTRY_UPDATES, "entry with master updates");

    assert_true(ms_sb_read_entry(sb, i, &copy));
    assert_int_equal(copy.seq % 2, 0);
    assert_true(refs_hold(refs, n, ENTRY_UPDATES));
    assert_true(copy.status == MS_READY || copy.status == MS_DRAINING);
}

int main(void)
{
    const struct CMUnitTest entries[] = {
        cmocka_unit_test_setup_teardown(test_create_is_zeroed_and_free, sb_setup, sb_teardown),
        cmocka_unit_test_setup_teardown(test_claim_sets_identity_and_zero_figures, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_claim_rejects_slot_out_of_range, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_claim_until_full_then_reuse, sb_setup, sb_teardown),
        cmocka_unit_test_setup_teardown(test_release_zeroes_then_claim_reuses, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_claim_zeroes_stale_figures, sb_setup, sb_teardown),
        cmocka_unit_test_setup_teardown(test_find_pid_finds_claimed_entries_only, sb_setup, sb_teardown),
        cmocka_unit_test_setup_teardown(test_bad_index_or_null_is_harmless, sb_setup,
                                        sb_teardown),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test_setup_teardown(test_master_part_read, sb_setup, sb_teardown),
    };
    const struct CMUnitTest hist[] = {
        cmocka_unit_test(test_hist_bounds_ladder),
        cmocka_unit_test(test_hist_bucket_edges),
    };
    const struct CMUnitTest seqlock[] = {
        cmocka_unit_test(test_field_lists_cover_every_byte),
        cmocka_unit_test_setup_teardown(test_bracket_makes_seq_odd_then_even, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_read_gives_up_on_open_bracket, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_set_pid_status_inside_worker_bracket, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_writer_killed_mid_bracket, sb_setup, sb_teardown),
        cmocka_unit_test_setup_teardown(test_fork_entry_reads_are_consistent, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_fork_master_reads_are_consistent, sb_setup,
                                        sb_teardown),
        cmocka_unit_test_setup_teardown(test_fork_release_and_claim_never_tear_the_sample, sb_setup, sb_teardown),
        cmocka_unit_test_setup_teardown(test_fork_master_sets_status_while_worker_writes,
                                        sb_setup, sb_teardown),
    };
    int failed = cmocka_run_group_tests_name("scoreboard_entries", entries, NULL, NULL);
    failed += cmocka_run_group_tests_name("scoreboard_hist", hist, NULL, NULL);
    failed += cmocka_run_group_tests_name("scoreboard_seqlock", seqlock, NULL, NULL);
    return failed != 0;
}
