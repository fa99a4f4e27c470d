/* cowtest.c: `cowdag cowtest`, the copy-on-write experiment in one process
 * pair (server/cowtest.h; the figures it gives are in bench/RESULTS.md). */
#include "server/cowtest.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "handlers/stats.h"
#include "load/state.h"
#include "memstats/memstats.h"
#include "server/sampler.h"

static double now_ms(void) { return (double)base_now_ns() / 1e6; }

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

double srv_cow_lookups(heap_obj *store, uint64_t n, uint64_t k, uint64_t seed)
{
    heap_obj *k_spend = heap_str_from("spend");
    heap_obj *k_name = heap_str_from("name");
    heap_obj *k_id = heap_str_from("id");
    heap_obj *k_score = heap_str_from("score");
    uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 1;
    double checksum = 0;
    for (uint64_t q = 0; q < k && n; q++) {
        int64_t id = (int64_t)(xorshift(&rng) % n);
        heap_obj *rec = heap_dict_get_int(store, id);
        if (!rec)
            continue;
        heap_incref(rec);
        heap_obj *spend = heap_dict_get(rec, k_spend);
        heap_incref(spend);
        double sum = 0;
        for (size_t i = 0, len = heap_list_len(spend); i < len; i++) {
            heap_obj *f = heap_list_get(spend, i);
            heap_incref(f);
            sum += heap_float_value(f);
            heap_decref(f);
        }
        heap_obj *name = heap_dict_get(rec, k_name);
        heap_incref(name);
        sum += (double)heap_str_len(name);
        heap_decref(name);

        heap_obj *result = heap_dict_new();
        heap_dict_set(result, k_id, heap_dict_get(rec, k_id));
        heap_dict_set_new(result, k_score, heap_float_new(sum));
        checksum += heap_float_value(heap_dict_get(result, k_score));
        heap_decref(result);
        heap_decref(spend);
        heap_decref(rec);
    }
    heap_decref(k_spend);
    heap_decref(k_name);
    heap_decref(k_id);
    heap_decref(k_score);
    return checksum;
}

/* Pages (4 KiB) holding the collector's fields of some tracked object:
 * the pages a collection writes. */
typedef struct page_set {
    uint64_t *pages;
    size_t len, cap;
} page_set;

static void page_add(page_set *s, uint64_t page)
{
    if (s->len && s->pages[s->len - 1] == page)
        return;
    if (s->len == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->pages = base_realloc(s->pages, s->cap * sizeof(uint64_t));
    }
    s->pages[s->len++] = page;
}

static void collect_tracked_page(heap_obj *o, void *arg)
{
    if (!(o->flags & HF_TRACKED))
        return;
    uintptr_t first = (uintptr_t)o - 16, last = (uintptr_t)o + sizeof(heap_obj) - 1;
    page_add(arg, first >> 12);
    page_add(arg, last >> 12);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t count_tracked_pages(void)
{
    page_set s = {0};
    heap_walk(collect_tracked_page, &s);
    qsort(s.pages, s.len, sizeof(uint64_t), cmp_u64);
    uint64_t n = 0;
    for (size_t i = 0; i < s.len; i++)
        if (i == 0 || s.pages[i] != s.pages[i - 1])
            n++;
    free(s.pages);
    return n;
}

static json_t *gc_stats_json(const gc_stats *g)
{
    json_t *coll = json_array(), *freed = json_array();
    for (int i = 0; i < GC_GENERATIONS; i++) {
        json_array_append_new(coll, json_integer((json_int_t)g->collections[i]));
        json_array_append_new(freed, json_integer((json_int_t)g->collected[i]));
    }
    return json_pack("{s:o, s:o, s:I, s:f, s:f, s:I, s:I, s:I}", "collections", coll, "collected", freed,
                     "examined", (json_int_t)g->examined, "pause_us_total", (double)g->pause_ns_total / 1e3,
                     "pause_us_max", (double)g->pause_ns_max / 1e3, "tracked", (json_int_t)g->tracked,
                     "frozen", (json_int_t)g->frozen, "immortal", (json_int_t)g->immortal);
}

/* The child: everything after the fork, ending in one JSON line. */
static _Noreturn void child_run(const srv_cow_options *opt, heap_obj *store, uint64_t tracked_pages,
                                double build_ms, FILE *out)
{
    heap_after_fork();
    double t0 = now_ms();
    double checksum = srv_cow_lookups(store, opt->records, opt->lookups, opt->seed);
    double t1 = now_ms();
    if (opt->collect >= 0)
        gc_collect(opt->collect);
    double t2 = now_ms();

    ms_pages pg = {0};
    ms_copied copied = {0};
    ms_rollup ru = {0};
    int ok = srv_state_copied(&pg, &copied) == MS_OK && ms_rollup_read(0, &ru) == MS_OK;

    gc_stats gs;
    gc_get_stats(&gs);
    heap_stats hs;
    heap_get_stats(&hs);
    const gc_config *c = &opt->gc;
    json_t *collect = opt->collect >= 0 ? json_integer(opt->collect) : json_null();
    json_t *doc = json_pack(
        "{s:s, s:[i,i,i], s:b, s:I, s:I, s:o,"
        " s:{s:I, s:I, s:I, s:I, s:f, s:I, s:f},"
        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
        " s:o, s:{s:I, s:I, s:I}, s:{s:f, s:f, s:f}, s:f}",
        "mode", gc_mode_name(c->mode), "thresholds", c->thresholds[0], c->thresholds[1], c->thresholds[2],
        "immortal", c->immortal, "records", (json_int_t)opt->records, "lookups", (json_int_t)opt->lookups,
        "collect", collect,
        "state", "pages", (json_int_t)pg.pages, "shared_pages", (json_int_t)pg.shared_pages,
        "private_pages", (json_int_t)pg.private_pages, "zero_pages", (json_int_t)pg.zero_pages,
        "private_ratio", pg.pages ? (double)pg.private_pages / (double)pg.pages : 0.0,
        "tracked_pages", (json_int_t)tracked_pages,
        "tracked_share", pg.pages ? (double)tracked_pages / (double)pg.pages : 0.0,
        "process", "rss_bytes", (json_int_t)ru.rss_bytes, "pss_bytes", (json_int_t)ru.pss_bytes,
        "shared_clean_bytes", (json_int_t)ru.shared_clean_bytes, "shared_dirty_bytes",
        (json_int_t)ru.shared_dirty_bytes, "private_clean_bytes", (json_int_t)ru.private_clean_bytes,
        "private_dirty_bytes", (json_int_t)ru.private_dirty_bytes,
        "gc", gc_stats_json(&gs),
        "heap", "objects", (json_int_t)hs.objects, "live_bytes", (json_int_t)hs.live_bytes,
        "inherited_frees", (json_int_t)hs.inherited_frees,
        "elapsed_ms", "build", build_ms, "lookups", t1 - t0, "collect", t2 - t1,
        "checksum", checksum);
    if (doc && h_copied_into(json_object_get(doc, "state"), &copied) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    if (!doc || !ok) {
        fprintf(stderr, "cowdag cowtest: %s\n", ok ? "cannot build the report" : "cannot read /proc/self");
        _exit(1);
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    fprintf(out, "%s\n", text);
    fflush(out);
    _exit(0); /* a worker leaves without teardown */
}

int srv_cowtest(const srv_cow_options *opt, FILE *out)
{
    heap_init(NULL);
    (void)ms_zero_pfn(); /* cache it before forking */
    /* As a master does: load with automatic collection off (loading makes
     * no garbage worth finding), then settle once in the chosen mode. */
    gc_configure(&opt->gc);
    gc_pause(); /* building makes no garbage: collect once, when settling */
    double t0 = now_ms();
    heap_obj *store = ld_state_generate_records(opt->records, opt->seed);
    gc_resume();
    gc_settle();
    double build_ms = now_ms() - t0;
    uint64_t tracked_pages = count_tracked_pages();
    fflush(out);

    pid_t pid = fork();
    if (pid < 0) {
        perror("cowdag cowtest: fork");
        return 1;
    }
    if (pid == 0)
        child_run(opt, store, tracked_pages, build_ms, out);

    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("cowdag cowtest: waitpid");
            return 1;
        }
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "cowdag cowtest: child killed by signal %d\n", WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status);
}
