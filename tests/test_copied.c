/* test_copied: the copied pages of a worker's inherited state, attributed to
 * the object types that live on them (README.md, "Which object types were
 * copied").  A master builds a store and settles in a collector mode; a
 * forked child works as a worker would, then takes the breakdown the
 * sampler takes (srv_state_copied: the heap's page map against
 * /proc/self/pagemap) and counts the same figures independently: it walks
 * every live object of the inherited memory, marks the pages its block lies
 * on, and reads each page's pagemap entry itself.  The child sends both to
 * the test, which compares them and checks which types each mode copies. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "heap/gc.h"
#include "heap/heap.h"
#include "heap/heap_internal.h"
#include "load/state.h"
#include "memstats/memstats.h"
#include "server/cowtest.h"
#include "server/sampler.h"

#define RECORDS 20000
#define BIG 20000 /* elements of the array: its data is a mapping of its own */

typedef enum { WORK_COLLECT, WORK_LOOKUPS } work;

/* What the child sends back. */
typedef struct report {
    int ok;
    ms_pages pages;
    ms_copied copied;
    uint64_t walked_pages;             /* private pages the walk found holding some object */
    uint64_t walked[MS_PAGE_TYPES];    /* ... holding type t */
    uint64_t walked_only[MS_PAGE_TYPES];
    uint64_t walked_mixed;
} report;

static int teardown(void **state)
{
    (void)state;
    heap_destroy();
    return 0;
}

/* --- the independent count ---------------------------------------------- */

typedef struct mark {
    uint64_t page;
    uint16_t bit;
} mark;

typedef struct marks {
    mark *m;
    size_t len, cap;
    const heap_region *reg;
    size_t nreg;
} marks;

static void mark_add(marks *s, uint64_t page, uint16_t bit)
{
    if (s->len == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 65536;
        s->m = realloc(s->m, s->cap * sizeof *s->m);
        if (!s->m)
            _exit(70);
    }
    s->m[s->len++] = (mark){page, bit};
}

static bool inherited(const marks *s, uintptr_t p)
{
    for (size_t i = 0; i < s->nreg; i++)
        if (p >= s->reg[i].start && p < s->reg[i].end)
            return true;
    return false;
}

/* Every page the object's block lies on: containers' blocks start with the
 * collector's link; a large object's mapping starts with its header. */
static void mark_object(heap_obj *o, void *arg)
{
    marks *s = arg;
    uintptr_t block = (uintptr_t)o - (heap__is_container(o->type) ? sizeof(gc_link) : 0);
    if (!inherited(s, block))
        return;
    uintptr_t start = block, end;
    if (o->flags & HF_LARGE) {
        const large_hdr *h = (const large_hdr *)block - 1;
        start = (uintptr_t)h;
        end = start + h->map_size;
    } else {
        end = block + class_size(o->sclass);
    }
    for (uint64_t p = start / HEAP_PAGE_SIZE; p <= (end - 1) / HEAP_PAGE_SIZE; p++)
        mark_add(s, p, (uint16_t)(1u << o->type));
}

static int cmp_mark(const void *a, const void *b)
{
    const mark *x = a, *y = b;
    return x->page < y->page ? -1 : x->page > y->page;
}

static void count_by_walking(report *r)
{
    marks s = {0};
    heap_region reg[4096];
    s.nreg = heap_inherited_regions(reg, 4096);
    if (s.nreg > 4096)
        _exit(71);
    s.reg = reg;
    heap_walk(mark_object, &s);
    qsort(s.m, s.len, sizeof *s.m, cmp_mark);
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        _exit(72);
    for (size_t i = 0; i < s.len;) {
        uint64_t page = s.m[i].page;
        unsigned types = 0;
        for (; i < s.len && s.m[i].page == page; i++)
            types |= s.m[i].bit;
        uint64_t e;
        if (pread(fd, &e, sizeof e, (off_t)(page * 8)) != (ssize_t)sizeof e)
            _exit(73);
        if (!(e & (1ULL << 63)) || !(e & (1ULL << 56))) /* not present, or shared */
            continue;
        r->walked_pages++;
        if (__builtin_popcount(types) == 1)
            r->walked_only[__builtin_ctz(types)]++;
        else
            r->walked_mixed++;
        for (unsigned t = 0; t < MS_PAGE_TYPES; t++)
            if (types & (1u << t))
                r->walked[t]++;
    }
    close(fd);
    free(s.m);
}

/* --- master and worker --------------------------------------------------- */

/* The state: the records, a table with an array column (a small header;
 * its data, storage, in a mapping of its own), a str in a mapping of its
 * own. */
static heap_obj *build_state(heap_obj **big_array, heap_obj **big_str)
{
    heap_obj *store = ld_state_generate_records(RECORDS, 42);
    heap_obj *table = heap_table_new(BIG);
    heap_obj *col = heap_array_new(HD_F64, BIG), *name = heap_str_from("x");
    for (size_t i = 0; i < BIG; i++)
        heap_array_f64(col)[i] = (double)i;
    heap_table_add_column(table, name, col);
    heap_decref(name);
    char text[6000];
    memset(text, 'a', sizeof text);
    heap_obj *str = heap_str_new(text, sizeof text);
    heap_dict_set_str_new(store, "table", table);
    heap_dict_set_str_new(store, "text", str);
    *big_array = col;
    heap_decref(col);
    *big_str = str;
    return store;
}

static _Noreturn void child(int fd, heap_obj *store, heap_obj *big_array, heap_obj *big_str, work w)
{
    heap_after_fork();
    if (w == WORK_COLLECT) {
        gc_collect(2);
    } else {
        srv_cow_lookups(store, RECORDS, 20000, 7);
        /* Read as an interpreter reads: a reference taken and dropped. */
        heap_incref(big_array);
        heap_decref(big_array);
        heap_incref(big_str);
        heap_decref(big_str);
    }
    report r = {0};
    r.ok = srv_state_copied(&r.pages, &r.copied) == MS_OK;
    count_by_walking(&r);
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(74);
    _exit(0);
}

static report run(gc_mode mode, bool immortal, work w)
{
    heap_init(NULL);
    gc_configure(&(gc_config){.mode = mode, .thresholds = {700, 10, 10}, .full_ratio = 0.25,
                              .immortal = immortal});
    heap_obj *big_array, *big_str;
    heap_obj *store = build_state(&big_array, &big_str);
    gc_settle();
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child(p[1], store, big_array, big_str, w);
    }
    close(p[1]);
    report r;
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = read(p[0], (char *)&r + got, sizeof r - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(r.ok);
    return r;
}

/* What holds in every mode: the breakdown adds up, and the sampler's map
 * and the walk agree type by type (storage holds no object to walk). */
static void assert_consistent(const report *r)
{
    const ms_copied *c = &r->copied;
    assert_int_equal(c->pages, r->pages.private_pages);
    uint64_t only = 0, regions = 0;
    for (unsigned t = 0; t < MS_PAGE_TYPES; t++)
        only += c->only[t];
    for (unsigned i = 0; i < MS_PAGE_REGIONS; i++)
        regions += c->by_region[i];
    assert_int_equal(only + c->mixed + c->empty, c->pages);
    assert_int_equal(regions, c->pages);
    for (unsigned t = 0; t < HT__COUNT; t++) {
        assert_int_equal(c->by_type[t], r->walked[t]);
        assert_int_equal(c->only[t], r->walked_only[t]);
    }
    assert_int_equal(c->mixed, r->walked_mixed);
    assert_int_equal(c->by_type[HT__COUNT], 0); /* reads never write storage */
    assert_int_equal(c->empty, 0);
    assert_int_equal(r->walked_pages, c->pages);
}

static uint16_t copied_types(const ms_copied *c)
{
    uint16_t types = 0;
    for (unsigned t = 0; t < MS_PAGE_TYPES; t++)
        if (c->by_type[t])
            types |= (uint16_t)(1u << t);
    return types;
}

/* tuned: a full collection writes every tracked object's collector fields,
 * and nothing else: the copied pages are exactly the containers' pages. */
static void tuned_full_collection_copies_the_tracked_types_only(void **state)
{
    (void)state;
    report r = run(GC_TUNED, false, WORK_COLLECT);
    assert_consistent(&r);
    uint16_t tracked = (1u << HT_LIST) | (1u << HT_DICT) | (1u << HT_TABLE);
    assert_true(r.copied.pages > 0);
    assert_int_equal(copied_types(&r.copied), tracked);
    assert_int_equal(r.copied.by_region[HEAP_REGION_LARGE], 0);
}

/* freeze: collections leave the state alone, but look-ups write the counts
 * of what they read -- records (dicts), spend lists, their floats -- and
 * of the large objects read; the store's index (storage) stays shared. */
static void freeze_lookups_copy_what_they_read(void **state)
{
    (void)state;
    report r = run(GC_FREEZE, false, WORK_LOOKUPS);
    assert_consistent(&r);
    assert_true(r.copied.by_type[HT_DICT] > 0);
    assert_true(r.copied.by_type[HT_LIST] > 0);
    assert_true(r.copied.by_type[HT_FLOAT] > 0);
    assert_true(r.copied.by_type[HT_ARRAY] > 0); /* its header; its data is storage */
    assert_true(r.copied.by_type[HT_STR] > 0);
    assert_int_equal(r.copied.by_region[HEAP_REGION_LARGE], 1); /* the large str's first page */
}

/* freeze + immortal: the same work copies nothing. */
static void freeze_immortal_lookups_copy_nothing(void **state)
{
    (void)state;
    report r = run(GC_FREEZE, true, WORK_LOOKUPS);
    assert_consistent(&r);
    assert_int_equal(r.copied.pages, 0);
    assert_int_equal(copied_types(&r.copied), 0);
    assert_true(r.pages.pages > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(tuned_full_collection_copies_the_tracked_types_only, teardown),
        cmocka_unit_test_teardown(freeze_lookups_copy_what_they_read, teardown),
        cmocka_unit_test_teardown(freeze_immortal_lookups_copy_nothing, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
