/* test_fork: proves which collector modes leave inherited memory unwritten.
 * A master builds a store and settles; a forked child makes every inherited
 * arena and mapping read-only, then works.  A single write to inherited
 * memory kills the child with SIGSEGV, so "exited 0" means "wrote nothing
 * there".  Each case runs its child in its own process. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "heap/gc.h"
#include "heap/heap.h"
#include "server/cowtest.h"
#include "load/state.h"

#define RECORDS 20000

typedef struct work {
    uint64_t lookups;
    bool allocate; /* new objects, cycles among them, some pointing at inherited ones */
    bool collect;  /* collections of every generation */
} work;

static int teardown(void **state)
{
    (void)state;
    heap_destroy();
    return 0;
}

static void protect_inherited(void)
{
    heap_region r[4096];
    size_t n = heap_inherited_regions(r, 4096);
    if (n > 4096)
        _exit(90);
    for (size_t i = 0; i < n; i++)
        if (mprotect((void *)r[i].start, r[i].end - r[i].start, PROT_READ) != 0)
            _exit(91);
}

static _Noreturn void child(heap_obj *store, const work *w)
{
    /* A fault must kill the child: cmocka's handlers would catch it. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    heap_after_fork();
    protect_inherited();
    if (w->lookups)
        srv_cow_lookups(store, RECORDS, w->lookups, 7);
    if (w->allocate) {
        for (int i = 0; i < 2000; i++) {
            heap_obj *a = heap_list_new(0), *b = heap_dict_new();
            heap_list_append(a, b);
            heap_dict_set_str_new(b, "a", a); /* a cycle */
            heap_dict_set_str_new(b, "x", heap_float_new(i));
            heap_decref(b);
        }
    }
    if (w->collect) {
        gc_collect(0);
        gc_collect(1);
        gc_collect(2);
    }
    if (w->allocate) {
        heap_stats s;
        heap_get_stats(&s);
        if (s.inherited_frees)
            _exit(92);
    }
    _exit(0);
}

/* Builds the store in the given mode, settles, forks the child; returns
 * its wait status. */
static int run(gc_mode mode, bool immortal, const work *w)
{
    heap_init(NULL);
    gc_configure(&(gc_config){.mode = mode, .thresholds = {700, 10, 10}, .full_ratio = 0.25,
                              .immortal = immortal});
    heap_obj *store = ld_state_generate_records(RECORDS, 42);
    /* Cyclic state too, as graph code leaves it. */
    heap_obj *ring = heap_list_new(0);
    heap_list_append(ring, ring);
    heap_dict_set_str_new(heap_dict_get_int(store, 0), "ring", ring);
    gc_settle();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child(store, w);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_clean_exit(int status)
{
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void assert_write_fault(int status)
{
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

static void freeze_immortal_child_writes_no_inherited_page(void **state)
{
    (void)state;
    work w = {.lookups = 100000, .allocate = true, .collect = true};
    assert_clean_exit(run(GC_FREEZE, true, &w));
}

static void freeze_child_collections_write_no_inherited_page(void **state)
{
    (void)state;
    work w = {.allocate = true, .collect = true};
    assert_clean_exit(run(GC_FREEZE, false, &w));
}

static void freeze_child_lookups_write_refcounts(void **state)
{
    (void)state;
    work w = {.lookups = 1};
    assert_write_fault(run(GC_FREEZE, false, &w));
}

static void tuned_child_full_collection_writes_inherited_pages(void **state)
{
    (void)state;
    work w = {.collect = true};
    assert_write_fault(run(GC_TUNED, false, &w));
}

static void disable_child_lookups_write_refcounts(void **state)
{
    (void)state;
    work w = {.lookups = 1};
    assert_write_fault(run(GC_DISABLE, false, &w));
}

/* --- a reload: the new generation's worker gives up the old state -------- */

/* Builds a store and a ring (cyclic state), as a generation's world. */
static heap_obj *generation_state(uint64_t seed)
{
    heap_obj *store = ld_state_generate_records(RECORDS, seed);
    heap_obj *ring = heap_list_new(0);
    heap_list_append(ring, ring);
    heap_dict_set_str_new(heap_dict_get_int(store, 0), "ring", ring);
    return store;
}

/* Does any mapping of this process overlap [lo, hi)? */
static bool mapped(uintptr_t lo, uintptr_t hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        _exit(95);
    char line[512];
    bool any = false;
    while (!any && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
            any = true;
    }
    fclose(f);
    return any;
}

/* A master with generation 1 loaded seals the heap and loads generation
 * 2; a worker of generation 2 gives up every region of generation 1 --
 * exactly those bytes, none of which stays mapped -- and then works on its
 * own state: look-ups, allocation, collections of every generation (which
 * would fault on an old object left on the collector's lists), and no
 * longer counts generation 1's objects alive.  With
 * freeze + immortal the state left is also made read-only first: giving up
 * the old state wrote nothing to the new. */
static int reload_child_status(gc_mode mode, bool immortal)
{
    heap_init(NULL);
    gc_configure(&(gc_config){.mode = mode, .thresholds = {700, 10, 10}, .full_ratio = 0.25,
                              .immortal = immortal});
    heap_obj *old = generation_state(42);
    gc_settle();
    static heap_region first[4096];
    size_t nfirst = heap_all_regions(first, 4096);
    assert_true(nfirst > 0 && nfirst <= 4096);
    uint64_t first_bytes = 0;
    for (size_t i = 0; i < nfirst; i++)
        first_bytes += first[i].end - first[i].start;
    heap_stats st;
    heap_get_stats(&st);
    uint64_t first_objects = st.objects; /* generation 1's */
    uint32_t seal = heap_seal();
    heap_obj *store = generation_state(43);
    gc_settle();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        heap_after_fork();
        heap_stats before, after;
        heap_get_stats(&before);
        if (heap_release_sealed_before(seal) != first_bytes)
            _exit(93);
        heap_get_stats(&after); /* generation 1's objects are no longer counted alive */
        if (after.objects != before.objects - first_objects)
            _exit(96);
        for (size_t i = 0; i < nfirst; i++)
            if (mapped(first[i].start, first[i].end))
                _exit(94);
        if (immortal)
            protect_inherited();
        srv_cow_lookups(store, RECORDS, 100000, 7);
        for (int i = 0; i < 2000; i++) {
            heap_obj *a = heap_list_new(0), *b = heap_dict_new();
            heap_list_append(a, b);
            heap_dict_set_str_new(b, "a", a);
            heap_decref(b);
        }
        gc_collect(0);
        gc_collect(1);
        gc_collect(2);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    srv_cow_lookups(old, RECORDS, 1000, 7); /* the master still has both */
    return status;
}

static void a_reloaded_freeze_immortal_worker_gives_up_the_old_state(void **state)
{
    (void)state;
    assert_clean_exit(reload_child_status(GC_FREEZE, true));
}

static void a_reloaded_tuned_worker_gives_up_the_old_state(void **state)
{
    (void)state;
    assert_clean_exit(reload_child_status(GC_TUNED, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(freeze_immortal_child_writes_no_inherited_page, teardown),
        cmocka_unit_test_teardown(freeze_child_collections_write_no_inherited_page, teardown),
        cmocka_unit_test_teardown(freeze_child_lookups_write_refcounts, teardown),
        cmocka_unit_test_teardown(tuned_child_full_collection_writes_inherited_pages, teardown),
        cmocka_unit_test_teardown(disable_child_lookups_write_refcounts, teardown),
        cmocka_unit_test_teardown(a_reloaded_freeze_immortal_worker_gives_up_the_old_state, teardown),
        cmocka_unit_test_teardown(a_reloaded_tuned_worker_gives_up_the_old_state, teardown),
    };
    return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
