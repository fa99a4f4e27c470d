/* test_gc: the cycle collector, its schedule and its modes (heap/gc.h).
 * Runs also with COWDAG_GC_STRESS=1; the cases that count the schedule's own
 * collections turn stress off for themselves, since stress adds collections
 * by design. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heap/gc.h"
#include "heap/heap.h"
#include "heap/heap_internal.h"
#include "tests/support.h"

static gc_stats stats(void)
{
    gc_stats s;
    gc_get_stats(&s);
    return s;
}

static void configure(gc_mode mode, int t0, int t1, int t2, double full_ratio)
{
    gc_configure(&(gc_config){.mode = mode, .thresholds = {t0, t1, t2}, .full_ratio = full_ratio});
}

/* a <-> b through a dict and a list: the smallest mixed cycle. */
static void make_cycle(heap_obj **a_out, heap_obj **b_out)
{
    heap_obj *a = heap_list_new(0), *b = heap_dict_new();
    heap_list_append(a, b);
    heap_dict_set_str_new(b, "back", a);
    heap_incref(a);
    heap_dict_set_str_new(b, "payload", heap_float_new(1.0));
    *a_out = a;
    *b_out = b;
}

/* --- finding cycles -------------------------------------------------- */

static void cycle_of_list_and_dict_is_freed_only_by_a_collection(void **state)
{
    (void)state;
    configure(GC_DISABLE, 700, 10, 10, 0.25);
    uint64_t base = live_objects();
    heap_obj *a, *b;
    make_cycle(&a, &b);
    heap_decref(a);
    heap_decref(b);
    /* Unreachable but still counted: reference counting cannot free it. */
    assert_int_equal(live_objects(), base + 5); /* list, dict, 2 keys, float */
    uint64_t freed = gc_collect(2);
    assert_int_equal(freed, 2);
    assert_int_equal(live_objects(), base);
    assert_true(stats().collected[2] >= 2);
}

static void self_referencing_list_is_collected(void **state)
{
    (void)state;
    heap_obj *l = heap_list_new(0);
    heap_list_append(l, l);
    heap_list_append_new(l, heap_str_from("x"));
    heap_decref(l);
    assert_int_equal(live_objects(), 2);
    assert_int_equal(gc_collect(2), 1);
    assert_int_equal(live_objects(), 0);
}

static void cycle_held_from_c_survives(void **state)
{
    (void)state;
    heap_obj *a, *b;
    make_cycle(&a, &b);
    heap_decref(b); /* a is still held by this function */
    assert_int_equal(gc_collect(2), 0);
    assert_ptr_equal(heap_list_get(a, 0), b);
    assert_ptr_equal(heap_dict_get_str(b, "back"), a);
    assert_int_equal(live_objects(), 5);
    heap_decref(a);
    assert_int_equal(gc_collect(2), 2);
    assert_int_equal(live_objects(), 0);
}

static void young_cycle_held_by_an_old_object_survives(void **state)
{
    (void)state;
    gc_set_stress(false); /* this case checks which generation holds what */
    heap_obj *old = heap_dict_new();
    gc_collect(2); /* old is now in the oldest generation */
    heap_obj *a, *b;
    make_cycle(&a, &b);
    heap_dict_set_str_new(old, "cycle", a);
    heap_decref(b);
    assert_int_equal(gc_collect(0), 0); /* only young objects examined */
    assert_int_equal(stats().examined, 1 + 2);
    heap_decref(old);
    assert_int_equal(gc_collect(2), 2);
    assert_int_equal(live_objects(), 0);
}

static void reachable_objects_met_late_are_rescued(void **state)
{
    (void)state;
    /* A chain c0 -> c1 -> ... -> cn built so that the rooted head comes
     * last in the list: every other element is first judged unreachable,
     * then moved back when the walk reaches it from the root. */
    enum { N = 50 };
    heap_obj *c[N];
    for (int i = 0; i < N; i++)
        c[i] = heap_list_new(1);
    for (int i = N - 1; i > 0; i--)
        heap_list_append(c[i], c[i - 1]); /* ci -> c(i-1): c(N-1) is the head */
    heap_list_append(c[0], c[N - 1]);     /* and a back edge: one big cycle */
    for (int i = 0; i < N - 1; i++)
        heap_decref(c[i]);
    assert_int_equal(gc_collect(0), 0);
    assert_int_equal(live_objects(), N);
    heap_decref(c[N - 1]);
    assert_int_equal(gc_collect(2), N);
}

static void garbage_hanging_off_a_cycle_is_freed_too(void **state)
{
    (void)state;
    heap_obj *a, *b;
    make_cycle(&a, &b);
    heap_obj *tail = heap_list_new(0);
    for (int i = 0; i < 100; i++)
        heap_list_append_new(tail, heap_float_new(i));
    heap_dict_set_str_new(b, "tail", tail);
    heap_decref(a);
    heap_decref(b);
    gc_collect(2);
    assert_int_equal(live_objects(), 0);
}

static void large_cyclic_graph_is_collected(void **state)
{
    (void)state;
    size_t n = gc_stress() ? 60 : 20000;
    heap_obj *nodes = heap_list_new(n);
    for (size_t i = 0; i < n; i++) {
        heap_obj *node = heap_dict_new();
        heap_dict_set_str_new(node, "id", heap_int_new((int64_t)i));
        heap_dict_set_str_new(node, "edges", heap_list_new(2));
        heap_list_append_new(nodes, node);
    }
    for (size_t i = 0; i < n; i++) {
        heap_obj *edges = heap_dict_get_str(heap_list_get(nodes, i), "edges");
        heap_list_append(edges, heap_list_get(nodes, (i + 1) % n));
        heap_list_append(edges, heap_list_get(nodes, (i * 7) % n));
    }
    heap_decref(nodes);
    assert_true(live_objects() > 2 * n);
    gc_collect(2);
    assert_int_equal(live_objects(), 0);
}

/* --- the schedule ---------------------------------------------------- */

static uint64_t *collections_after_allocs(heap_obj *holder, int n)
{
    static uint64_t c[GC_GENERATIONS];
    for (int i = 0; i < n; i++)
        heap_list_append_new(holder, heap_list_new(0));
    gc_stats s = stats();
    memcpy(c, s.collections, sizeof c);
    return c;
}

static void assert_collections(const uint64_t *c, uint64_t g0, uint64_t g1, uint64_t g2)
{
    assert_int_equal(c[0], g0);
    assert_int_equal(c[1], g1);
    assert_int_equal(c[2], g2);
}

static void thresholds_trigger_collections_at_the_right_counts(void **state)
{
    (void)state;
    gc_set_stress(false); /* this case counts the schedule's own collections */
    heap_obj *holder = heap_list_new(1024);
    configure(GC_TUNED, 10, 3, 2, 0);
    gc_collect(2);
    gc_reset_stats();
    /* A collection is due on every 11th allocation (count 11 > 10).  Each
     * picks the oldest generation whose count is past its threshold: gen 1
     * once it has seen 4 > 3 gen-0 runs (allocations 55, 110, 165), gen 2
     * once it has seen 3 > 2 gen-1 runs (the next one due, at 176). */
    assert_collections(collections_after_allocs(holder, 10), 0, 0, 0);
    assert_collections(collections_after_allocs(holder, 1), 1, 0, 0);   /* 11 */
    assert_collections(collections_after_allocs(holder, 33), 4, 0, 0);  /* 44 */
    assert_collections(collections_after_allocs(holder, 11), 4, 1, 0);  /* 55 */
    assert_collections(collections_after_allocs(holder, 120), 12, 3, 0); /* 175 */
    assert_collections(collections_after_allocs(holder, 1), 12, 3, 1);  /* 176 */
    assert_collections(collections_after_allocs(holder, 44), 16, 3, 1); /* 220 */
    heap_decref(holder);
}

static void full_ratio_postpones_full_collections(void **state)
{
    (void)state;
    gc_set_stress(false);
    heap_obj *holder = heap_list_new(2048);
    configure(GC_TUNED, 0, 3, 2, 0.25);
    for (int i = 0; i < 999; i++)
        heap_list_append_new(holder, heap_list_new(0));
    gc_collect(2); /* 1000 long-lived objects */
    configure(GC_TUNED, 10, 3, 2, 0.25);
    gc_reset_stats();
    /* Gen-1 runs at allocations 55, 110, ... move what was allocated since
     * the last one (the run comes before its own allocation) to gen 2:
     * pending 54, 109, 164, 219, 274.  Gen 2's count passes 2 after the
     * third, but the full collection waits until pending > 0.25 * 1000,
     * so it is the collection due at 286, after the fifth. */
    assert_collections(collections_after_allocs(holder, 285), 20, 5, 0);
    assert_collections(collections_after_allocs(holder, 1), 20, 5, 1);
    heap_decref(holder);
}

static void zero_threshold_turns_automatic_collection_off(void **state)
{
    (void)state;
    gc_set_stress(false);
    configure(GC_TUNED, 0, 10, 10, 0.25);
    for (int i = 0; i < 5000; i++)
        heap_decref(heap_list_new(0));
    assert_collections(stats().collections, 0, 0, 0);
}

/* --- modes ----------------------------------------------------------- */

static void disable_runs_no_automatic_collection_and_cycles_leak(void **state)
{
    (void)state;
    gc_set_stress(false);
    configure(GC_DISABLE, 10, 10, 10, 0.25);
    for (int i = 0; i < 3000; i++) {
        heap_obj *a, *b;
        make_cycle(&a, &b);
        heap_decref(a);
        heap_decref(b);
    }
    assert_collections(stats().collections, 0, 0, 0);
    assert_int_equal(live_objects(), 3000 * 5);
    assert_int_equal(gc_collect(2), 6000); /* an explicit collection still runs */
    assert_int_equal(live_objects(), 0);
}

static void frozen_objects_are_never_examined_and_survive(void **state)
{
    (void)state;
    heap_obj *holder = heap_list_new(0);
    for (int i = 0; i < 1000; i++)
        heap_list_append_new(holder, heap_dict_new());
    heap_obj *a, *b; /* frozen garbage: a freeze keeps it for good */
    make_cycle(&a, &b);
    heap_decref(a);
    heap_decref(b);
    gc_freeze();
    gc_stats s = stats();
    assert_int_equal(s.frozen, 1003);
    assert_int_equal(s.tracked, 0);
    gc_reset_stats();
    heap_obj *young = heap_list_new(0);
    for (int i = 0; i < 9; i++)
        heap_list_append_new(young, heap_dict_new());
    gc_collect(2);
    s = stats();
    /* Only the ten young ones, in each collection (stress runs more). */
    assert_true(s.examined <= 10 * (s.collections[0] + s.collections[1] + s.collections[2]));
    if (!gc_stress())
        assert_int_equal(s.examined, 10);
    assert_int_equal(s.frozen, 1003);
    assert_int_equal(heap_list_len(holder), 1000);
    assert_int_equal(live_objects(), 1003 + 2 + 1 + 10); /* frozen + keys/float + young */
    heap_decref(young);
    gc_unfreeze();
    heap_decref(holder);
    assert_int_equal(gc_collect(2), 2);
    assert_int_equal(live_objects(), 0);
}

typedef struct rc_snapshot {
    heap_obj **obj;
    int64_t *rc;
    size_t len, cap;
} rc_snapshot;

static void snap(heap_obj *o, void *arg)
{
    rc_snapshot *s = arg;
    if (s->len == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->obj = realloc(s->obj, s->cap * sizeof *s->obj);
        s->rc = realloc(s->rc, s->cap * sizeof *s->rc);
        assert_non_null(s->obj);
        assert_non_null(s->rc);
    }
    s->obj[s->len] = o;
    s->rc[s->len++] = o->rc;
}

static void immortal_refcounts_never_change(void **state)
{
    (void)state;
    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {5, 2, 2}, .full_ratio = 0.25, .immortal = true});
    heap_obj *store = heap_dict_new();
    for (int64_t i = 0; i < 300; i++) {
        heap_obj *rec = heap_dict_new();
        heap_dict_set_str_new(rec, "spend", heap_float_new((double)i));
        heap_dict_set_str_new(rec, "tags", heap_list_new(0));
        heap_obj *k = heap_int_new(i + 1000);
        heap_dict_set_new(store, k, rec);
        heap_decref(k);
    }
    gc_settle();
    rc_snapshot before = {0};
    heap_walk(snap, &before);
    assert_int_equal(before.len, live_objects());
    assert_int_equal(stats().immortal, before.len);

    /* Everything a worker does with them: hold, store, drop, collect. */
    heap_obj *mine = heap_list_new(0);
    for (int64_t i = 0; i < 300; i++) {
        heap_obj *rec = heap_dict_get_int(store, i + 1000);
        heap_incref(rec);
        heap_list_append(mine, rec);
        heap_list_append(mine, heap_dict_get_str(rec, "spend"));
        heap_decref(rec);
    }
    gc_collect(2);
    heap_decref(mine);
    heap_decref(store); /* the master's own reference, dropped: no effect */
    heap_decref(store);
    gc_collect(2);
    for (size_t i = 0; i < before.len; i++) {
        assert_true(before.obj[i]->flags & HF_IMMORTAL);
        assert_true(before.obj[i]->rc == before.rc[i]);
    }
    assert_int_equal(heap_dict_len(store), 300);
    free(before.obj);
    free(before.rc);
}

/* An immortal container's count stops counting new references, so it must
 * never be examined again: neither unfreeze nor an immortalize without a
 * freeze may put it back on a generation list. */
static void unfreeze_keeps_immortal_objects_frozen(void **state)
{
    (void)state;
    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {700, 10, 10}, .full_ratio = 0.25, .immortal = true});
    heap_obj *store = heap_dict_new();
    heap_dict_set_str_new(store, "k", heap_float_new(1));
    gc_settle();
    gc_unfreeze();
    heap_obj *young = heap_list_new(0);
    heap_list_append(young, young);
    heap_list_append(young, store);
    heap_decref(young);
    gc_collect(2);
    assert_int_equal(heap_dict_len(store), 1);
    assert_int_equal(stats().frozen, 1);
}

static void immortalize_freezes_first(void **state)
{
    (void)state;
    heap_obj *store = heap_dict_new();
    heap_dict_set_str_new(store, "k", heap_float_new(1));
    assert_true(gc_immortalize_all() >= 2);
    heap_obj *holder = heap_list_new(0);
    heap_list_append(holder, store);
    heap_list_append(holder, store);
    gc_collect(2);
    assert_int_equal(heap_dict_len(store), 1);
    assert_true(store->flags & HF_FROZEN);
    heap_decref(holder);
}

/* Freeing a frozen object inherited from the master must not write its
 * neighbours on the permanent list (two more inherited objects). */
static void freeing_an_inherited_frozen_object_leaves_its_neighbours_alone(void **state)
{
    (void)state;
    heap_obj *l = heap_list_new(3);
    for (int i = 0; i < 3; i++)
        heap_list_append_new(l, heap_dict_new());
    gc_freeze();
    heap_after_fork();
    heap_obj *mid = heap_list_get(l, 1);
    gc_link *prev = GC_LINK(mid)->prev, *next = GC_LINK(mid)->next;
    gc_link prev_before = *prev, next_before = *next;
    heap_list_set_new(l, 1, heap_none()); /* mid's count drops to zero */
    assert_memory_equal(prev, &prev_before, sizeof prev_before);
    assert_memory_equal(next, &next_before, sizeof next_before);
    assert_int_equal(stats().frozen, 3); /* the list and two dicts */
    gc_unfreeze(); /* drops the dead node */
    assert_int_equal(stats().frozen, 0);
    assert_int_equal(stats().tracked, 3);
    heap_decref(l);
    gc_collect(2);
}

/* A master that reloads: the old state was settled immortal, the new one
 * goes to fresh memory, and once the old is mortalized dropping it frees
 * every object and unmaps its arenas, while the new state stays put. */
static heap_obj *store_with_a_cycle(int n)
{
    heap_obj *store = heap_dict_new();
    for (int i = 0; i < n; i++) {
        heap_obj *rec = heap_dict_new();
        heap_dict_set_str_new(rec, "x", heap_float_new(i));
        heap_obj *k = heap_int_new(1000 + i);
        heap_dict_set_new(store, k, rec);
        heap_decref(k);
    }
    heap_dict_set_str_new(store, "self", (heap_incref(store), store));
    return store;
}

static void mortalized_sealed_state_is_freed_and_unmapped(void **state)
{
    (void)state;
    gc_set_stress(false);
    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {700, 10, 10}, .full_ratio = 0.25, .immortal = true});
    heap_obj *old = store_with_a_cycle(20000);
    gc_settle();
    heap_stats s0;
    heap_get_stats(&s0);
    uint32_t seal = heap_seal();
    heap_obj *young = store_with_a_cycle(10);
    gc_settle();
    heap_obj *probe = heap_dict_get_int(young, 1003);
    heap_seal(); /* a later seal (a failed reload) must not matter */
    assert_int_equal(gc_mortalize_sealed(0, seal), s0.objects);
    heap_decref(old); /* the master's reference: now it counts */
    gc_collect(2);    /* the cycle */
    heap_stats s1;
    heap_get_stats(&s1);
    assert_true(s1.objects < 100); /* the young store and its keys */
    assert_true(s1.arenas < s0.arenas);
    assert_true(probe->flags & HF_IMMORTAL); /* the young state is untouched */
    assert_true(young->flags & HF_FROZEN);
    assert_int_equal(heap_dict_len(young), 11);
}

static void settle_applies_each_mode(void **state)
{
    (void)state;
    gc_set_stress(false);
    heap_obj *l = heap_list_new(0);
    heap_obj *a, *b;
    make_cycle(&a, &b);
    heap_decref(a);
    heap_decref(b);

    configure(GC_DISABLE, 10, 10, 10, 0.25);
    gc_settle(); /* one full collection in every mode: the cycle goes */
    assert_int_equal(stats().collected[2], 2);
    for (int i = 0; i < 100; i++)
        heap_list_append_new(l, heap_list_new(0));
    assert_int_equal(stats().collections[0], 0);

    configure(GC_TUNED, 10, 10, 10, 0.25);
    gc_settle();
    assert_int_equal(stats().frozen, 0);
    for (int i = 0; i < 100; i++)
        heap_list_append_new(l, heap_list_new(0));
    assert_true(stats().collections[0] >= 9);

    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {10, 10, 10}, .full_ratio = 0.25});
    gc_settle();
    assert_int_equal(stats().frozen, 201);
    assert_int_equal(stats().tracked, 0);
    assert_false(l->flags & HF_IMMORTAL);
    heap_decref(l);
    gc_unfreeze();
}

static void config_check_names_each_problem(void **state)
{
    (void)state;
    const char *why = NULL;
    gc_config c = gc_default_config();
    assert_int_equal(gc_config_check(&c, &why), HEAP_OK);
    c.immortal = true;
    assert_int_equal(gc_config_check(&c, &why), HEAP_ERR);
    assert_non_null(strstr(why, "immortal"));
    c = gc_default_config();
    c.thresholds[1] = -1;
    assert_int_equal(gc_config_check(&c, &why), HEAP_ERR);
    assert_non_null(strstr(why, "thresholds"));
    c = gc_default_config();
    c.full_ratio = 2;
    assert_int_equal(gc_config_check(&c, &why), HEAP_ERR);
    assert_non_null(strstr(why, "full_ratio"));
    gc_mode m;
    assert_int_equal(gc_mode_parse("freeze", &m), HEAP_OK);
    assert_int_equal(m, GC_FREEZE);
    assert_int_equal(gc_mode_parse("frozen", &m), HEAP_ERR);
}

static void stress_mode_collects_on_every_allocation(void **state)
{
    (void)state;
    gc_set_stress(true);
    heap_obj *f = heap_float_new(1);
    heap_obj *l = heap_list_new(0);
    assert_int_equal(stats().collections[2], 2);
    heap_decref(f);
    heap_decref(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_heap, teardown_heap)
        T(cycle_of_list_and_dict_is_freed_only_by_a_collection),
        T(self_referencing_list_is_collected),
        T(cycle_held_from_c_survives),
        T(young_cycle_held_by_an_old_object_survives),
        T(reachable_objects_met_late_are_rescued),
        T(garbage_hanging_off_a_cycle_is_freed_too),
        T(large_cyclic_graph_is_collected),
        T(thresholds_trigger_collections_at_the_right_counts),
        T(full_ratio_postpones_full_collections),
        T(zero_threshold_turns_automatic_collection_off),
        T(disable_runs_no_automatic_collection_and_cycles_leak),
        T(frozen_objects_are_never_examined_and_survive),
        T(immortal_refcounts_never_change),
        T(unfreeze_keeps_immortal_objects_frozen),
        T(immortalize_freezes_first),
        T(freeing_an_inherited_frozen_object_leaves_its_neighbours_alone),
        T(mortalized_sealed_state_is_freed_and_unmapped),
        T(settle_applies_each_mode),
        T(config_check_names_each_problem),
        T(stress_mode_collects_on_every_allocation),
#undef T
    };
    return cmocka_run_group_tests_name("gc", tests, NULL, NULL);
}
