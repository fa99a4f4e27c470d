/* bench_heap: the heap's and collector's speed figures for bench/RESULTS.md.
 * Each figure is a median over repetitions, measured side by side in one
 * run; `make bench` runs it (bench/run.sh).
 *
 *   alloc    small-object allocate+free against malloc/free, same pattern
 *   young    generation-0 collection pause, p50/p99/max, with 0 and with
 *            2 million frozen objects in the heap
 *   full     full collection time per million tracked objects
 *   sample   one memory sample of a worker whose inherited state is 1 GiB
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "heap/gc.h"
#include "heap/heap.h"
#include "load/state.h"
#include "server/sampler.h"
#include <sys/wait.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* ---------------------------------------------------------------------- */
/* alloc: BATCH blocks allocated, then freed in a scrambled order, ROUNDS
 * times; the same for malloc/free.  ns per allocate+free pair. */

#define BATCH 4096
#define ROUNDS 500
#define REPS 9

static void *blocks[BATCH];
static unsigned order[BATCH];

static double run_pairs(int which, size_t size)
{
    uint64_t t0 = base_now_ns();
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < BATCH; i++)
            blocks[i] = which == 0 ? malloc(size) : which == 1 ? heap_raw_alloc(size) : (void *)heap_float_new(i);
        for (int i = 0; i < BATCH; i++) {
            void *b = blocks[order[i]];
            if (which == 0)
                free(b);
            else if (which == 1)
                heap_raw_free(b, size);
            else
                heap_decref(b);
        }
    }
    return (double)(base_now_ns() - t0) / ((double)ROUNDS * BATCH);
}

static void bench_alloc(void)
{
    uint64_t s = 12345;
    for (unsigned i = 0; i < BATCH; i++)
        order[i] = i;
    for (unsigned i = BATCH - 1; i > 0; i--) { /* a fixed shuffle */
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned j = (unsigned)((s >> 33) % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    static const size_t sizes[] = {24, 64, 256};
    printf("## alloc: allocate+free pairs, batches of %d freed in shuffled order (ns per pair, median of %d)\n\n",
           BATCH, REPS);
    printf("| block | malloc/free | heap_raw_alloc/free | ratio malloc/heap |\n|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint64_t m[REPS], h[REPS];
        for (int r = 0; r < REPS; r++) { /* interleaved, so drift hits both */
            m[r] = (uint64_t)(run_pairs(0, sizes[k]) * 1000);
            h[r] = (uint64_t)(run_pairs(1, sizes[k]) * 1000);
        }
        double mm = (double)pct(m, REPS, 0.5) / 1000, hm = (double)pct(h, REPS, 0.5) / 1000;
        printf("| %zu B | %.2f | %.2f | %.2fx |\n", sizes[k], mm, hm, mm / hm);
    }
    uint64_t m[REPS], f[REPS];
    for (int r = 0; r < REPS; r++) {
        m[r] = (uint64_t)(run_pairs(0, 24) * 1000);
        f[r] = (uint64_t)(run_pairs(2, 24) * 1000);
    }
    double mm = (double)pct(m, REPS, 0.5) / 1000, fm = (double)pct(f, REPS, 0.5) / 1000;
    printf("| float object (heap_float_new/decref) vs malloc(24)/free | %.2f | %.2f | %.2fx |\n\n", mm, fm, mm / fm);
}

/* ---------------------------------------------------------------------- */
/* young: with `frozen` tracked objects frozen in the heap, ROUNDS times:
 * allocate 700 young dicts, a third of which point at frozen records and a
 * fifth of which are cycles; drop half, time gc_collect(0) (it examines the
 * 350 live ones and the dropped cycles), then drop the rest. */

#define YOUNG_ROUNDS 2000

static void young_pauses(uint64_t records, uint64_t *p50, uint64_t *p99, uint64_t *pmax, uint64_t *frozen)
{
    heap_init(NULL);
    gc_configure(&(gc_config){.mode = GC_DISABLE, .thresholds = {700, 10, 10}, .full_ratio = 0.25});
    heap_obj *store = ld_state_generate_records(records, 42);
    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {0, 10, 10}, .full_ratio = 0.25});
    gc_settle();
    gc_stats gs;
    gc_get_stats(&gs);
    *frozen = gs.frozen;
    static uint64_t pause[YOUNG_ROUNDS];
    heap_obj *keep[700];
    for (int r = 0; r < YOUNG_ROUNDS; r++) {
        for (int i = 0; i < 700; i++) {
            heap_obj *d = heap_dict_new();
            if (records && i % 3 == 0)
                heap_dict_set_str_new(d, "rec", heap_dict_get_int(store, (int64_t)((r * 700 + i) % records)));
            if (records && i % 3 == 0)
                heap_incref(heap_dict_get_str(d, "rec"));
            if (i % 5 == 1) /* a cycle */
                heap_dict_set_str_new(d, "self", (heap_incref(d), d));
            keep[i] = d;
        }
        for (int i = 0; i < 700; i += 2) /* half become garbage (cycles stay) */
            heap_decref(keep[i]);
        uint64_t t0 = base_now_ns();
        gc_collect(0);
        pause[r] = base_now_ns() - t0;
        for (int i = 1; i < 700; i += 2) /* the other half die after it */
            heap_decref(keep[i]);
    }
    *p50 = pct(pause, YOUNG_ROUNDS, 0.5);
    *p99 = pct(pause, YOUNG_ROUNDS, 0.99);
    *pmax = pause[YOUNG_ROUNDS - 1];
    heap_destroy();
}

static void bench_young(void)
{
    printf("## young: generation-0 collection of 700 young containers (%d collections)\n\n", YOUNG_ROUNDS);
    printf("| frozen objects | p50 µs | p99 µs | max µs |\n|---|---|---|---|\n");
    uint64_t recs[] = {0, 666667};
    for (int k = 0; k < 2; k++) {
        uint64_t p50, p99, pmax, frozen;
        young_pauses(recs[k], &p50, &p99, &pmax, &frozen);
        printf("| %llu | %.1f | %.1f | %.1f |\n", (unsigned long long)frozen, p50 / 1e3, p99 / 1e3, pmax / 1e3);
    }
    printf("\n");
}

/* ---------------------------------------------------------------------- */
/* full: gc_collect(2) over a store of `records` records (3 tracked
 * containers each), nothing frozen; ms per million tracked objects. */

static void bench_full(void)
{
    printf("## full: full collection of the customer store (median of 5)\n\n");
    printf("| tracked objects | collection ms | ms per million tracked |\n|---|---|---|\n");
    uint64_t recs[] = {333333, 666667};
    for (int k = 0; k < 2; k++) {
        heap_init(NULL);
        gc_configure(&(gc_config){.mode = GC_DISABLE, .thresholds = {700, 10, 10}, .full_ratio = 0.25});
        heap_obj *store = ld_state_generate_records(recs[k], 42);
        (void)store;
        uint64_t t[5];
        for (int r = 0; r < 5; r++) {
            uint64_t t0 = base_now_ns();
            gc_collect(2);
            t[r] = base_now_ns() - t0;
        }
        gc_stats gs;
        gc_get_stats(&gs);
        double ms = (double)pct(t, 5, 0.5) / 1e6;
        printf("| %llu | %.1f | %.1f |\n", (unsigned long long)gs.tracked, ms, ms / ((double)gs.tracked / 1e6));
        heap_destroy();
    }
    printf("\n");
}

/* ---------------------------------------------------------------------- */
/* sample: a store of about 1 GiB, settled freeze + immortal; a forked
 * child takes 21 samples as a worker does (smaps_rollup, pagemap over the
 * inherited regions, collector figures); median and max cost. */

static void bench_sample(void)
{
    heap_init(NULL);
    gc_configure(&(gc_config){.mode = GC_DISABLE, .thresholds = {700, 10, 10}, .full_ratio = 0.25});
    heap_obj *store = ld_state_generate_records(1050000, 42);
    (void)store;
    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {700, 10, 10}, .full_ratio = 0.25, .immortal = true});
    gc_settle();
    (void)ms_zero_pfn();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        heap_after_fork();
        enum { N = 21 };
        uint64_t cost[N], typed[N];
        ms_sample mem = {0};
        ms_gc_figures gcf;
        /* The map of what lives on each page, built once as the sampling
         * thread does, then samples with and without the attribution to
         * types, alternating. */
        size_t nreg = heap_inherited_regions(NULL, 0);
        heap_region *reg = malloc(nreg * sizeof *reg);
        nreg = heap_inherited_regions(reg, nreg);
        uint64_t t0 = base_now_us();
        srv_state_map *map = srv_state_map_new(reg, nreg);
        srv_state_map_label(map);
        uint64_t build_us = base_now_us() - t0;
        for (int i = 0; i < N; i++) {
            srv_sample_worker(&mem, &gcf);
            cost[i] = mem.cost_us;
            ms_sample with = {0};
            ms_copied copied;
            t0 = base_now_us();
            ms_rollup_read(0, &with.rollup);
            bool labelled;
            srv_state_map_sample(map, &with.state, &copied, &labelled);
            srv_gc_figures(&gcf);
            typed[i] = base_now_us() - t0;
        }
        printf("## sample: one memory sample of a worker (median of %d)\n\n", N);
        printf("| inherited state | resident pages | median ms | max ms | median ms, copied pages by type |"
               " max ms, by type | building the page map, once |\n|---|---|---|---|---|---|---|\n");
        uint64_t mx = 0, mxt = 0;
        for (int i = 0; i < N; i++) {
            mx = cost[i] > mx ? cost[i] : mx;
            mxt = typed[i] > mxt ? typed[i] : mxt;
        }
        printf("| %.0f MiB | %llu | %.2f | %.2f | %.2f | %.2f | %.1f ms |\n\n",
               (double)mem.state.pages * 4096 / 1048576.0, (unsigned long long)mem.state.pages,
               (double)pct(cost, N, 0.5) / 1e3, (double)mx / 1e3, (double)pct(typed, N, 0.5) / 1e3,
               (double)mxt / 1e3, (double)build_us / 1e3);
        srv_state_map_free(map);
        free(reg);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    heap_destroy();
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    heap_init(NULL);
    if (!only || strcmp(only, "alloc") == 0)
        bench_alloc();
    heap_destroy();
    if (!only || strcmp(only, "young") == 0)
        bench_young();
    if (!only || strcmp(only, "full") == 0)
        bench_full();
    if (!only || strcmp(only, "sample") == 0)
        bench_sample();
    return 0;
}
