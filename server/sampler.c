/* sampler.c: memory and collector samples for the scoreboard
 * (server/sampler.h). */
#include "server/sampler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "heap/gc.h"
#include "heap/heap.h"

/* The heap's regions (inherited, or all) as memstats ranges: a malloc'ed
 * array of *n, or NULL. */
static ms_range *region_ranges(bool inherited, size_t *n)
{
    *n = inherited ? heap_inherited_regions(NULL, 0) : heap_all_regions(NULL, 0);
    heap_region *r = malloc((*n ? *n : 1) * sizeof *r);
    ms_range *ranges = malloc((*n ? *n : 1) * sizeof *ranges);
    if (!r || !ranges) {
        free(r);
        free(ranges);
        *n = 0;
        return NULL;
    }
    *n = inherited ? heap_inherited_regions(r, *n) : heap_all_regions(r, *n);
    for (size_t i = 0; i < *n; i++)
        ranges[i] = (ms_range){r[i].start, r[i].end};
    free(r);
    return ranges;
}

/* Pages of the given heap regions (inherited, or all). */
static void count_regions(bool inherited, ms_pages *out)
{
    size_t n;
    ms_range *ranges = region_ranges(inherited, &n);
    *out = (ms_pages){0};
    if (ranges)
        ms_pagemap_count(0, ranges, n, out);
    free(ranges);
}

static void sample(bool inherited, ms_sample *mem)
{
    uint64_t t0 = base_now_us();
    ms_rollup_read(0, &mem->rollup);
    count_regions(inherited, &mem->state);
    uint64_t t1 = base_now_us();
    mem->at_ms = t1 / 1000u;
    mem->cost_us = t1 - t0;
}

void srv_sample_worker(ms_sample *mem, ms_gc_figures *gc)
{
    sample(true, mem);
    srv_gc_figures(gc);
}

void srv_gc_figures(ms_gc_figures *gc)
{
    gc_stats gs;
    gc_get_stats(&gs);
    heap_stats hs;
    heap_get_stats(&hs);
    *gc = (ms_gc_figures){.pause_ns_max = gs.pause_ns_max,
                          .tracked = gs.tracked,
                          .frozen = gs.frozen,
                          .objects = hs.objects};
    for (int g = 0; g < MS_GC_GENS; g++) {
        gc->collections[g] = gs.collections[g];
        gc->collected[g] = gs.collected[g];
        gc->pause_ns[g] = gs.pause_ns[g];
    }
}

void srv_sample_master(ms_sample *mem, uint64_t *state_bytes, uint64_t *state_pages)
{
    sample(false, mem);
    *state_bytes = heap_live_bytes();
    *state_pages = mem->state.pages;
}

/* ---------------------------------------------------------------------- */

struct srv_sampler {
    int interval_ms;
    ms_range *ranges; /* the inherited regions, taken at start */
    size_t nranges;
    ms_entry *e;
    atomic_uint_fast64_t count;
};

static void *sampler_main(void *arg)
{
    srv_sampler *s = arg;
    for (;;) {
        ms_sample mem = {0};
        uint64_t t0 = base_now_ns();
        ms_rollup_read(0, &mem.rollup);
        ms_pagemap_count(0, s->ranges, s->nranges, &mem.state);
        uint64_t t1 = base_now_ns();
        mem.at_ms = t1 / 1000000u; /* base/clock.h: comparable across processes */
        mem.cost_us = (t1 - t0) / 1000u;
        ms_sb_write_begin(&s->e->mem_seq);
        s->e->mem = mem;
        ms_sb_write_end(&s->e->mem_seq);
        atomic_fetch_add_explicit(&s->count, 1, memory_order_release);
        base_sleep_until_ns(t0 + (uint64_t)s->interval_ms * 1000000u);
    }
    return NULL;
}

srv_sampler *srv_sampler_start(int interval_ms, ms_entry *e)
{
    if (!e)
        return NULL;
    srv_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    s->e = e;
    s->ranges = region_ranges(true, &s->nranges);
    if (!s->ranges) {
        free(s);
        return NULL;
    }
    atomic_init(&s->count, 0);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, sampler_main, s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(s->ranges);
        free(s);
        return NULL;
    }
    return s;
}

uint64_t srv_sampler_count(const srv_sampler *s)
{
    return s ? atomic_load_explicit(&((srv_sampler *)s)->count, memory_order_acquire) : 0;
}
