/* test_heap: the object model, the allocator and reference counting
 * (heap/heap.h).  Runs also with COWDAG_GC_STRESS=1, where every object
 * allocation runs a full collection first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heap/gc.h"
#include "heap/heap.h"
#include "tests/support.h"

static uint64_t live_bytes(void)
{
    heap_stats s;
    heap_get_stats(&s);
    return s.live_bytes;
}

/* Under stress each allocation runs a full collection: keep sizes small. */
static size_t scaled(size_t n, size_t stressed) { return gc_stress() ? stressed : n; }

static void stress_follows_the_environment(void **state)
{
    (void)state;
    const char *env = getenv("COWDAG_GC_STRESS");
    assert_int_equal(gc_stress(), env && strcmp(env, "1") == 0);
}

/* --- scalars --------------------------------------------------------- */

static void scalars_hold_their_values(void **state)
{
    (void)state;
    heap_obj *i = heap_int_new(-123456789012LL), *f = heap_float_new(2.5), *s = heap_str_from("héllo");
    assert_int_equal(heap_type_of(i), HT_INT);
    assert_true(heap_int_value(i) == -123456789012LL);
    assert_true(heap_float_value(f) == 2.5);
    assert_int_equal(heap_str_len(s), strlen("héllo"));
    assert_string_equal(heap_str_data(s), "héllo");
    assert_true(heap_str_eq(s, "héllo", strlen("héllo")));
    assert_false(heap_str_eq(s, "hello", 5));
    assert_true(heap_bool_value(heap_bool(true)));
    assert_false(heap_bool_value(heap_bool(false)));
    assert_int_equal(live_objects(), 3);
    heap_decref(i);
    heap_decref(f);
    heap_decref(s);
    assert_int_equal(live_objects(), 0);
    assert_int_equal(live_bytes(), 0);
}

static void singletons_and_small_ints_are_immortal_and_shared(void **state)
{
    (void)state;
    heap_obj *a = heap_int_new(7), *b = heap_int_new(7);
    assert_ptr_equal(a, b);
    assert_true(a->flags & HF_IMMORTAL);
    int64_t rc = a->rc;
    for (int k = 0; k < 1000; k++)
        heap_decref(a);
    assert_true(a->rc == rc);
    assert_ptr_equal(heap_none(), heap_none());
    assert_true(heap_none()->flags & HF_IMMORTAL);
    assert_int_equal(live_objects(), 0); /* statics are not heap objects */
    heap_obj *big = heap_int_new(257);
    assert_int_equal(live_objects(), 1);
    heap_decref(big);
}

/* --- reference counting ---------------------------------------------- */

static void acyclic_garbage_is_freed_at_once(void **state)
{
    (void)state;
    size_t n = scaled(2000, 200);
    heap_obj *root = heap_list_new(0);
    for (size_t i = 0; i < n; i++) {
        heap_obj *d = heap_dict_new();
        heap_dict_set_str_new(d, "x", heap_float_new((double)i));
        heap_dict_set_str_new(d, "tags", heap_list_new(2));
        heap_list_append_new(root, d);
    }
    assert_true(live_objects() >= 5 * n);
    gc_stats before;
    gc_get_stats(&before);
    heap_decref(root);
    gc_stats after;
    gc_get_stats(&after);
    /* No collection was needed, and nothing is left. */
    assert_int_equal(after.collections[0] + after.collections[1] + after.collections[2],
                     before.collections[0] + before.collections[1] + before.collections[2]);
    assert_int_equal(live_objects(), 0);
    assert_int_equal(live_bytes(), 0);
}

static void deep_nesting_is_freed_without_recursion(void **state)
{
    (void)state;
    size_t depth = scaled(1000000, 500);
    heap_obj *inner = heap_list_new(1);
    for (size_t i = 0; i < depth; i++) {
        heap_obj *outer = heap_list_new(1);
        heap_list_append_new(outer, inner);
        inner = outer;
    }
    assert_int_equal(live_objects(), depth + 1);
    heap_decref(inner);
    assert_int_equal(live_objects(), 0);
}

static void shared_child_lives_until_its_last_owner_goes(void **state)
{
    (void)state;
    heap_obj *child = heap_str_from("shared");
    heap_obj *a = heap_list_new(0), *b = heap_list_new(0);
    heap_list_append(a, child);
    heap_list_append(b, child);
    heap_decref(child);
    assert_int_equal(child->rc, 2);
    heap_decref(a);
    assert_int_equal(child->rc, 1);
    assert_string_equal(heap_str_data(heap_list_get(b, 0)), "shared");
    heap_decref(b);
    assert_int_equal(live_objects(), 0);
}

/* --- containers ------------------------------------------------------ */

static void list_grows_and_keeps_order(void **state)
{
    (void)state;
    heap_obj *l = heap_list_new(0);
    for (int64_t i = 0; i < 1000; i++)
        heap_list_append_new(l, heap_int_new(i * 3));
    assert_int_equal(heap_list_len(l), 1000);
    for (int64_t i = 0; i < 1000; i++)
        assert_true(heap_int_value(heap_list_get(l, (size_t)i)) == i * 3);
    heap_list_set_new(l, 5, heap_str_from("five"));
    assert_string_equal(heap_str_data(heap_list_get(l, 5)), "five");
    heap_list_clear(l);
    assert_int_equal(heap_list_len(l), 0);
    heap_decref(l);
    assert_int_equal(live_objects(), 0);
}

static void dict_sets_gets_replaces_and_deletes(void **state)
{
    (void)state;
    heap_obj *d = heap_dict_new();
    heap_obj *k = heap_str_from("alpha");
    heap_dict_set_new(d, k, heap_int_new(1));
    heap_dict_set_new(d, k, heap_float_new(2.0)); /* replaces, frees nothing else */
    assert_int_equal(heap_dict_len(d), 1);
    assert_true(heap_float_value(heap_dict_get_str(d, "alpha")) == 2.0);
    heap_obj *ik = heap_int_new(1000000);
    heap_dict_set_new(d, ik, heap_str_from("million"));
    assert_string_equal(heap_str_data(heap_dict_get_int(d, 1000000)), "million");
    assert_null(heap_dict_get_str(d, "beta"));
    assert_null(heap_dict_get_int(d, 999999));
    assert_true(heap_dict_del(d, k));
    assert_false(heap_dict_del(d, k));
    assert_null(heap_dict_get(d, k));
    assert_int_equal(heap_dict_len(d), 1);
    heap_decref(k);
    heap_decref(ik);
    heap_decref(d);
    assert_int_equal(live_objects(), 0);
}

static void dict_keeps_insertion_order_through_resizes_and_deletes(void **state)
{
    (void)state;
    size_t n = scaled(20000, 300);
    heap_obj *d = heap_dict_new();
    for (size_t i = 0; i < n; i++) {
        heap_obj *k = heap_int_new((int64_t)(i * 7919));
        heap_dict_set_new(d, k, heap_int_new((int64_t)i));
        heap_decref(k);
    }
    for (size_t i = 0; i < n; i += 2) {
        heap_obj *k = heap_int_new((int64_t)(i * 7919));
        assert_true(heap_dict_del(d, k));
        heap_decref(k);
    }
    assert_int_equal(heap_dict_len(d), n / 2);
    size_t pos = 0, seen = 0;
    heap_obj *k, *v;
    int64_t last = -1;
    while (heap_dict_next(d, &pos, &k, &v)) {
        assert_true(heap_int_value(v) > last); /* insertion order */
        assert_true(heap_int_value(v) % 2 == 1);
        assert_true(heap_int_value(k) == heap_int_value(v) * 7919);
        last = heap_int_value(v);
        seen++;
    }
    assert_int_equal(seen, n / 2);
    for (size_t i = 1; i < n; i += 2)
        assert_true(heap_int_value(heap_dict_get_int(d, (int64_t)(i * 7919))) == (int64_t)i);
    heap_decref(d);
    assert_int_equal(live_objects(), 0);
    assert_int_equal(live_bytes(), 0);
}

static void batched_lookups_agree_with_single_ones(void **state)
{
    (void)state;
    size_t n = scaled(5000, 200);
    heap_obj *d = heap_dict_new();
    for (size_t i = 0; i < n; i++) {
        heap_obj *k = heap_int_new((int64_t)(i * 3)), *rec = heap_dict_new();
        heap_dict_set_str_new(rec, "v", heap_int_new((int64_t)i));
        heap_dict_set_new(d, k, rec);
        heap_decref(k);
    }
    /* 150 keys: more than one batch of 64; every third one missing. */
    int64_t keys[150];
    heap_obj *vals[150], *recs[150], *fields[150];
    for (size_t j = 0; j < 150; j++)
        keys[j] = (int64_t)(j * 7 % (3 * n)) + (j % 3 == 2);
    heap_dict_get_int_many(d, keys, 150, vals);
    size_t nrec = 0;
    for (size_t j = 0; j < 150; j++) {
        assert_ptr_equal(vals[j], heap_dict_get_int(d, keys[j]));
        assert_true((vals[j] == NULL) == (keys[j] % 3 != 0));
        if (vals[j])
            recs[nrec++] = vals[j];
    }
    heap_dicts_get_str_many(recs, nrec, "v", fields);
    for (size_t j = 0; j < nrec; j++)
        assert_ptr_equal(fields[j], heap_dict_get_str(recs[j], "v"));
    heap_dicts_get_str_many(recs, nrec, "absent", fields);
    for (size_t j = 0; j < nrec; j++)
        assert_null(fields[j]);
    heap_obj *empty = heap_dict_new();
    heap_dict_get_int_many(empty, keys, 3, vals);
    assert_null(vals[0]);
    assert_null(vals[2]);
    heap_decref(empty);
    heap_decref(d);
    assert_int_equal(live_objects(), 0);
}

static void str_keys_compare_by_content(void **state)
{
    (void)state;
    heap_obj *d = heap_dict_new();
    heap_obj *k1 = heap_str_from("name"), *k2 = heap_str_from("name");
    assert_ptr_not_equal(k1, k2);
    assert_true(heap_str_hash(k1) == heap_str_hash(k2));
    heap_dict_set_new(d, k1, heap_int_new(1));
    heap_dict_set_new(d, k2, heap_int_new(2));
    assert_int_equal(heap_dict_len(d), 1);
    assert_true(heap_int_value(heap_dict_get(d, k1)) == 2);
    heap_decref(k1);
    heap_decref(k2);
    heap_decref(d);
    assert_int_equal(live_objects(), 0);
}

static void arrays_are_zeroed_and_typed(void **state)
{
    (void)state;
    heap_obj *small = heap_array_new(HD_F64, 16);
    heap_obj *large = heap_array_new(HD_I64, 100000);
    assert_non_null(heap_array_f64(small));
    assert_null(heap_array_i64(small));
    int64_t *v = heap_array_i64(large);
    for (size_t i = 0; i < 100000; i++)
        assert_true(v[i] == 0);
    v[99999] = 42;
    assert_int_equal(heap_array_len(large), 100000);
    heap_stats s;
    heap_get_stats(&s);
    assert_int_equal(s.large_maps, 1);
    heap_decref(small);
    heap_decref(large);
    assert_int_equal(live_objects(), 0);
}

static void freed_large_mapping_is_reused_and_rezeroed(void **state)
{
    (void)state;
    heap_obj *a = heap_array_new(HD_F64, 50000);
    double *pa = heap_array_f64(a);
    pa[123] = 9.0;
    heap_decref(a);
    heap_obj *b = heap_array_new(HD_F64, 50000);
    assert_ptr_equal(heap_array_f64(b), pa);
    assert_true(heap_array_f64(b)[123] == 0.0);
    heap_decref(b);
}

static void table_columns_by_name(void **state)
{
    (void)state;
    heap_obj *t = heap_table_new(3);
    heap_obj *name = heap_str_from("spend"), *col = heap_array_new(HD_F64, 3);
    heap_array_f64(col)[2] = 1.5;
    heap_table_add_column(t, name, col);
    heap_decref(name);
    heap_decref(col);
    assert_int_equal(heap_table_ncols(t), 1);
    assert_int_equal(heap_table_nrows(t), 3);
    assert_true(heap_array_f64(heap_table_column(t, "spend"))[2] == 1.5);
    assert_null(heap_table_column(t, "missing"));
    assert_string_equal(heap_str_data(heap_table_name_at(t, 0)), "spend");
    heap_decref(t);
    assert_int_equal(live_objects(), 0);
}

/* --- allocator ------------------------------------------------------- */

static void count_walk(heap_obj *o, void *arg)
{
    (void)o;
    ++*(uint64_t *)arg;
}

static void walk_visits_every_live_object_once(void **state)
{
    (void)state;
    heap_obj *keep = heap_list_new(0);
    for (int i = 0; i < 500; i++) {
        heap_list_append_new(keep, heap_float_new(i));
        heap_obj *gone = heap_dict_new();
        heap_decref(gone);
    }
    heap_list_append_new(keep, heap_str_new("x", 1));
    char big[4000];
    memset(big, 'b', sizeof big);
    heap_list_append_new(keep, heap_str_new(big, sizeof big)); /* a large object */
    uint64_t walked = 0;
    heap_walk(count_walk, &walked);
    assert_int_equal(walked, live_objects());
    assert_int_equal(walked, 503);
    heap_decref(keep);
}

static void blocks_are_aligned_and_pooled_by_class(void **state)
{
    (void)state;
    heap_obj *f1 = heap_float_new(1), *f2 = heap_float_new(2);
    assert_int_equal((uintptr_t)f1 % HEAP_ALIGN, 0);
    /* Same class, same pool: consecutive blocks. */
    assert_int_equal((uintptr_t)f2 - (uintptr_t)f1, 32);
    heap_decref(f2);
    heap_obj *f3 = heap_float_new(3); /* reuses the freed block */
    assert_ptr_equal(f3, f2);
    heap_decref(f1);
    heap_decref(f3);
    void *raw = heap_raw_alloc(100);
    assert_int_equal((uintptr_t)raw % HEAP_ALIGN, 0);
    heap_raw_free(raw, 100);
    assert_int_equal(live_bytes(), 0);
}

static bool in_regions(const void *p, const heap_region *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((uintptr_t)p >= r[i].start && (uintptr_t)p < r[i].end)
            return true;
    return false;
}

static void after_fork_never_allocates_into_inherited_memory(void **state)
{
    (void)state;
    heap_obj *old = heap_list_new(0);
    for (int i = 0; i < 100; i++)
        heap_list_append_new(old, heap_float_new(i));
    heap_obj *victim = heap_float_new(-1.0);
    heap_obj *big = heap_array_new(HD_F64, 10000);
    heap_region all[16];
    size_t nall = heap_all_regions(all, 16);
    assert_true(nall >= 2);
    assert_int_equal(heap_inherited_regions(NULL, 0), 0);

    heap_after_fork(); /* as a worker would, without forking */

    heap_region inh[16];
    assert_int_equal(heap_inherited_regions(inh, 16), nall);
    /* A freed inherited block is left alone, never handed out again. */
    heap_decref(victim);
    heap_decref(big);
    heap_stats s;
    heap_get_stats(&s);
    assert_int_equal(s.inherited_frees, 3); /* the float, the array, its data */
    /* The freed inherited mapping was unmapped: what is inherited now. */
    nall = heap_inherited_regions(inh, 16);
    assert_int_equal(nall, s.inherited_arenas + s.inherited_large_maps);
    for (int i = 0; i < 1000; i++) {
        heap_obj *f = heap_float_new(i);
        assert_false(in_regions(f, inh, nall));
        heap_list_append_new(old, f);
    }
    heap_obj *d = heap_dict_new();
    assert_false(in_regions(d, inh, nall));
    heap_obj *a = heap_array_new(HD_F64, 10000);
    assert_false(in_regions(heap_array_f64(a), inh, nall));
    heap_decref(a);
    heap_decref(d);
    heap_decref(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_heap, teardown_heap)
        T(stress_follows_the_environment),
        T(scalars_hold_their_values),
        T(singletons_and_small_ints_are_immortal_and_shared),
        T(acyclic_garbage_is_freed_at_once),
        T(deep_nesting_is_freed_without_recursion),
        T(shared_child_lives_until_its_last_owner_goes),
        T(list_grows_and_keeps_order),
        T(dict_sets_gets_replaces_and_deletes),
        T(dict_keeps_insertion_order_through_resizes_and_deletes),
        T(batched_lookups_agree_with_single_ones),
        T(str_keys_compare_by_content),
        T(arrays_are_zeroed_and_typed),
        T(freed_large_mapping_is_reused_and_rezeroed),
        T(table_columns_by_name),
        T(walk_visits_every_live_object_once),
        T(blocks_are_aligned_and_pooled_by_class),
        T(after_fork_never_allocates_into_inherited_memory),
#undef T
    };
    return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
