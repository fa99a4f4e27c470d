/* sampler.c: memory and collector samples for the scoreboard
 * (server/sampler.h). */
#include "server/sampler.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

struct srv_state_map {
    heap_region *regions;
    size_t n;
    ms_page_label *labels; /* every region's pages, one after another; NULL until labelled */
};

srv_state_map *srv_state_map_new(const heap_region *regions, size_t n)
{
    srv_state_map *m = calloc(1, sizeof *m);
    if (m)
        m->regions = malloc((n ? n : 1) * sizeof *m->regions);
    if (!m || !m->regions) {
        srv_state_map_free(m);
        return NULL;
    }
    memcpy(m->regions, regions, n * sizeof *regions);
    m->n = n;
    return m;
}

int srv_state_map_label(srv_state_map *m)
{
    size_t npages = 0, most = 0;
    for (size_t i = 0; i < m->n; i++) {
        size_t k = (m->regions[i].end - m->regions[i].start) / HEAP_PAGE_SIZE;
        npages += k;
        most = k > most ? k : most;
    }
    heap_page_info *info = malloc((most ? most : 1) * sizeof *info);
    ms_page_label *labels = malloc((npages ? npages : 1) * sizeof *labels);
    if (!info || !labels) {
        free(info);
        free(labels);
        return MS_ERR;
    }
    ms_page_label *l = labels;
    for (size_t i = 0; i < m->n; i++) {
        size_t k = (m->regions[i].end - m->regions[i].start) / HEAP_PAGE_SIZE;
        heap_region_pages(&m->regions[i], info);
        for (size_t j = 0; j < k; j++)
            *l++ = (ms_page_label){.types = info[j].types, .region = info[j].region};
    }
    free(info);
    m->labels = labels;
    return MS_OK;
}

void srv_state_map_free(srv_state_map *m)
{
    if (!m)
        return;
    free(m->regions);
    free(m->labels);
    free(m);
}

int srv_state_map_sample(const srv_state_map *m, ms_pages *pages, ms_copied *copied, bool *labelled)
{
    enum { CHUNK = 4096 };
    uint64_t buf[CHUNK];
    uint64_t zero_pfn = ms_zero_pfn();
    *pages = (ms_pages){0};
    *copied = (ms_copied){0};
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MS_ERR;
    const ms_page_label *l = m->labels;
    int rc = MS_OK;
    for (size_t i = 0; i < m->n && rc == MS_OK; i++) {
        size_t k = (m->regions[i].end - m->regions[i].start) / HEAP_PAGE_SIZE;
        uint64_t page = m->regions[i].start / HEAP_PAGE_SIZE;
        for (size_t done = 0; done < k && rc == MS_OK; done += CHUNK) {
            size_t c = k - done < CHUNK ? k - done : CHUNK;
            rc = ms_pagemap_entries_fd(fd, page + done, c, buf);
            if (rc == MS_OK) {
                ms_pagemap_classify(buf, c, zero_pfn, pages);
                if (l)
                    ms_copied_add(buf, l + done, c, copied);
            }
        }
        if (l)
            l += k;
    }
    close(fd);
    if (rc != MS_OK) {
        *pages = (ms_pages){0};
        *copied = (ms_copied){0};
    }
    *labelled = rc == MS_OK && m->labels;
    return rc;
}

int srv_state_copied(ms_pages *pages, ms_copied *copied)
{
    size_t n = heap_inherited_regions(NULL, 0);
    heap_region *r = malloc((n ? n : 1) * sizeof *r);
    if (!r)
        return MS_ERR;
    n = heap_inherited_regions(r, n);
    srv_state_map *m = srv_state_map_new(r, n);
    free(r);
    bool labelled = false;
    int rc = m && srv_state_map_label(m) == MS_OK ? srv_state_map_sample(m, pages, copied, &labelled) : MS_ERR;
    srv_state_map_free(m);
    return rc;
}

/* ---------------------------------------------------------------------- */

struct srv_sampler {
    int interval_ms;
    srv_state_map *map; /* the inherited regions, taken at start */
    ms_entry *e;
    atomic_uint_fast64_t count;
};

static void *sampler_main(void *arg)
{
    srv_sampler *s = arg;
    for (bool first = true;; first = false) {
        ms_sample mem = {0};
        uint64_t t0 = base_now_ns();
        ms_rollup_read(0, &mem.rollup);
        bool labelled = false;
        srv_state_map_sample(s->map, &mem.state, &mem.copied, &labelled);
        mem.copied_known = labelled;
        uint64_t t1 = base_now_ns();
        mem.at_ms = t1 / 1000000u; /* base/clock.h: comparable across processes */
        mem.cost_us = (t1 - t0) / 1000u;
        ms_sb_write_begin(&s->e->mem_seq);
        s->e->mem = mem;
        ms_sb_write_end(&s->e->mem_seq);
        atomic_fetch_add_explicit(&s->count, 1, memory_order_release);
        /* After the first sample, the labels: this thread reads the
         * inherited layout once (1.6 s for 1 GiB of records), so neither the
         * heap's thread nor the first figures wait for it. */
        if (first)
            srv_state_map_label(s->map);
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
    size_t n = heap_inherited_regions(NULL, 0);
    heap_region *r = malloc((n ? n : 1) * sizeof *r);
    if (r)
        n = heap_inherited_regions(r, n);
    s->map = r ? srv_state_map_new(r, n) : NULL;
    free(r);
    if (!s->map) {
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
        srv_state_map_free(s->map);
        free(s);
        return NULL;
    }
    return s;
}

uint64_t srv_sampler_count(const srv_sampler *s)
{
    return s ? atomic_load_explicit(&((srv_sampler *)s)->count, memory_order_acquire) : 0;
}
