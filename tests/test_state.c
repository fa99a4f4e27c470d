/* test_state: loading the master's state (load/state.h): the generated
 * customer store (README, "The config file"), checked against its formula
 * in load/state.h recomputed here, and records, tables and documents read
 * from tests/fixtures/state.  CSV syntax itself is tested in tests/test_csv.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heap/heap.h"
#include "load/config.h"
#include "load/state.h"
#include "tests/support.h"

#define FIX "tests/fixtures/state/"

/* The specs a config would give (built by hand: the config loader is
 * tested on its own). */
static ld_state_spec table_spec(const char *csv)
{
    return (ld_state_spec){.name = "t", .kind = LD_STATE_TABLE, .csv = (char *)csv};
}

static ld_state_spec records_spec(const char *csv, const char *key)
{
    return (ld_state_spec){.name = "r", .kind = LD_STATE_RECORDS, .csv = (char *)csv, .key = (char *)key};
}

static ld_state_spec json_spec(const char *file)
{
    return (ld_state_spec){.name = "j", .kind = LD_STATE_JSON, .file = (char *)file};
}

static heap_obj *load_ok(ld_state_spec spec)
{
    char err[512] = "";
    heap_obj *out = NULL;
    if (ld_state_load(&spec, &out, err, sizeof err) != LD_OK)
        fail_msg("load failed: %s", err);
    assert_non_null(out);
    return out;
}

/* Loading fails with exactly `want`, leaves *out NULL and no heap objects. */
static void expect_load_error(ld_state_spec spec, const char *want)
{
    char err[512] = "";
    heap_obj *out = (heap_obj *)&err; /* must be reset */
    assert_int_equal(ld_state_load(&spec, &out, err, sizeof err), LD_ERR);
    assert_null(out);
    assert_string_equal(err, want);
    assert_int_equal(live_objects(), 0);
}

static void assert_str(heap_obj *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(heap_type_of(o), HT_STR);
    assert_string_equal(heap_str_data(o), want);
}

static void assert_int_obj(heap_obj *o, int64_t want)
{
    assert_non_null(o);
    assert_int_equal(heap_type_of(o), HT_INT);
    assert_true(heap_int_value(o) == want);
}

static void assert_float_obj(heap_obj *o, double want)
{
    assert_non_null(o);
    assert_int_equal(heap_type_of(o), HT_FLOAT);
    if (isnan(want))
        assert_true(isnan(heap_float_value(o)));
    else
        assert_true(heap_float_value(o) == want);
}

/* The record's keys in order, joined by commas. */
static void assert_keys(const heap_obj *d, const char *want)
{
    char got[256] = "";
    size_t pos = 0;
    heap_obj *k, *v;
    while (heap_dict_next(d, &pos, &k, &v)) {
        strcat(got, *got ? "," : "");
        strcat(got, heap_str_data(k));
    }
    assert_string_equal(got, want);
}

/* --- records + generate --------------------------------------------------- */

/* The generator, written out again from its description in load/state.h. */
static uint64_t lcg(uint64_t *x)
{
    *x = (1103515245ull * *x + 12345ull) & 0x7fffffffull;
    return *x;
}

static void check_generated(heap_obj *rec, int64_t i, uint64_t *x, const char *tag7, const char *tag11)
{
    char name[32];
    snprintf(name, sizeof name, "customer-%lld", (long long)i);
    assert_int_equal(heap_type_of(rec), HT_DICT);
    assert_keys(rec, "id,name,segment,spend,tags");
    assert_int_obj(heap_dict_get_str(rec, "id"), i);
    assert_str(heap_dict_get_str(rec, "name"), name);
    assert_int_obj(heap_dict_get_str(rec, "segment"), i % 16);
    heap_obj *spend = heap_dict_get_str(rec, "spend");
    assert_int_equal(heap_type_of(spend), HT_LIST);
    assert_int_equal(heap_list_len(spend), 12);
    for (size_t j = 0; j < 12; j++) {
        double want = (double)(lcg(x) % 100000) / 100.0;
        assert_float_obj(heap_list_get(spend, j), want);
    }
    heap_obj *tags = heap_dict_get_str(rec, "tags");
    assert_int_equal(heap_list_len(tags), 2);
    assert_str(heap_list_get(tags, 0), tag7);
    assert_str(heap_list_get(tags, 1), tag11);
}

static void generated_records_follow_the_spec_formula(void **state)
{
    (void)state;
    ld_state_spec spec = {.name = "customers", .kind = LD_STATE_RECORDS, .generate = true, .count = 20, .seed = 42};
    heap_obj *store = load_ok(spec);
    assert_int_equal(heap_type_of(store), HT_DICT);
    assert_int_equal(heap_dict_len(store), 20);

    uint64_t x = 42;
    check_generated(heap_dict_get_int(store, 0), 0, &x, "t0", "t0");
    check_generated(heap_dict_get_int(store, 1), 1, &x, "t1", "t1"); /* x carries on from record 0 */
    /* the first draw from seed 42, worked by hand: 1103515245*42 + 12345 =
     * 46347652635, & 0x7fffffff = 1250496027, % 100000 = 96027 */
    assert_float_obj(heap_list_get(heap_dict_get_str(heap_dict_get_int(store, 0), "spend"), 0), 960.27);

    /* record 17: segment 1, tags t3 and t6, spend after 17*12 draws */
    x = 42;
    for (int k = 0; k < 17 * 12; k++)
        lcg(&x);
    check_generated(heap_dict_get_int(store, 17), 17, &x, "t3", "t6");
    assert_null(heap_dict_get_int(store, 20));
    heap_decref(store);
    assert_int_equal(live_objects(), 0);
}

/* --- table + csv ---------------------------------------------------------- */

static void a_csv_table_has_typed_columns_in_header_order(void **state)
{
    (void)state;
    heap_obj *t = load_ok(table_spec(FIX "table.csv"));
    assert_int_equal(heap_type_of(t), HT_TABLE);
    assert_int_equal(heap_table_nrows(t), 3);
    assert_int_equal(heap_table_ncols(t), 6);
    const char *names[] = {"id", "price", "label", "qty", "big", "note"};
    for (size_t i = 0; i < 6; i++)
        assert_str(heap_table_name_at(t, i), names[i]);

    heap_obj *id = heap_table_column(t, "id");
    assert_int_equal(heap_type_of(id), HT_ARRAY);
    assert_int_equal(heap_array_dtype(id), HD_I64);
    assert_true(heap_array_i64(id)[0] == 1 && heap_array_i64(id)[1] == 2 && heap_array_i64(id)[2] == 3);

    heap_obj *price = heap_table_column(t, "price"); /* 2.5, 1e3, -0.5 */
    assert_int_equal(heap_array_dtype(price), HD_F64);
    assert_true(heap_array_f64(price)[0] == 2.5);
    assert_true(heap_array_f64(price)[1] == 1000.0);
    assert_true(heap_array_f64(price)[2] == -0.5);

    heap_obj *label = heap_table_column(t, "label");
    assert_int_equal(heap_type_of(label), HT_LIST);
    assert_int_equal(heap_list_len(label), 3);
    assert_str(heap_list_get(label, 0), "apple");
    assert_str(heap_list_get(label, 1), "pear, green");
    assert_str(heap_list_get(label, 2), "say \"hi\"");

    heap_obj *qty = heap_table_column(t, "qty"); /* 10, empty, 7: float with NaN */
    assert_int_equal(heap_array_dtype(qty), HD_F64);
    assert_true(heap_array_f64(qty)[0] == 10.0);
    assert_true(isnan(heap_array_f64(qty)[1]));
    assert_true(heap_array_f64(qty)[2] == 7.0);

    heap_obj *big = heap_table_column(t, "big"); /* INT64_MAX, INT64_MAX + 1, 1 */
    assert_int_equal(heap_array_dtype(big), HD_F64);
    assert_true(heap_array_f64(big)[1] == 9223372036854775808.0);
    assert_true(heap_array_f64(big)[2] == 1.0);

    heap_obj *note = heap_table_column(t, "note"); /* "", x, "" */
    assert_int_equal(heap_type_of(note), HT_LIST);
    assert_str(heap_list_get(note, 0), "");
    assert_str(heap_list_get(note, 1), "x");
    assert_str(heap_list_get(note, 2), "");

    heap_decref(t);
    assert_int_equal(live_objects(), 0);
}

static void malformed_csv_is_reported_with_file_line_and_column(void **state)
{
    (void)state;
    /* the quoted field on lines 2-3 moves the stray quote to line 4 */
    expect_load_error(table_spec(FIX "malformed.csv"), FIX "malformed.csv:4:5: quote inside an unquoted field");
    expect_load_error(records_spec(FIX "malformed.csv", "id"), FIX "malformed.csv:4:5: quote inside an unquoted field");
}

/* --- records + csv + key -------------------------------------------------- */

static void csv_records_are_keyed_by_an_int_column(void **state)
{
    (void)state;
    heap_obj *store = load_ok(records_spec(FIX "people.csv", "id"));
    assert_int_equal(heap_dict_len(store), 3);
    assert_null(heap_dict_get_str(store, "1")); /* keys are ints, not strings */

    heap_obj *ann = heap_dict_get_int(store, 1);
    assert_non_null(ann);
    assert_keys(ann, "id,name,age,score,tags");
    assert_int_obj(heap_dict_get_str(ann, "id"), 1);
    assert_str(heap_dict_get_str(ann, "name"), "Ann");
    assert_float_obj(heap_dict_get_str(ann, "age"), 34.0); /* float: Bob's age is empty */
    assert_float_obj(heap_dict_get_str(ann, "score"), 9.5);
    assert_str(heap_dict_get_str(ann, "tags"), "a,b");

    heap_obj *bob = heap_dict_get_int(store, 2);
    assert_float_obj(heap_dict_get_str(bob, "age"), NAN);
    assert_float_obj(heap_dict_get_str(bob, "score"), 7.0);
    assert_str(heap_dict_get_str(bob, "tags"), "");

    heap_obj *cy = heap_dict_get_int(store, 10);
    assert_str(heap_dict_get_str(cy, "name"), "Cy \"C\"");
    assert_float_obj(heap_dict_get_str(cy, "score"), 100.0);
    heap_decref(store);
    assert_int_equal(live_objects(), 0);
}

static void csv_records_share_one_str_per_column_name(void **state)
{
    (void)state;
    heap_obj *store = load_ok(records_spec(FIX "people.csv", "id"));
    heap_obj *first_keys[5];
    size_t pos = 0, i = 0;
    heap_obj *k, *v;
    while (heap_dict_next(heap_dict_get_int(store, 1), &pos, &k, &v))
        first_keys[i++] = k;
    assert_int_equal(i, 5);
    pos = i = 0;
    while (heap_dict_next(heap_dict_get_int(store, 10), &pos, &k, &v))
        assert_ptr_equal(k, first_keys[i++]);
    heap_decref(store);
}

static void csv_records_are_keyed_by_a_string_column(void **state)
{
    (void)state;
    heap_obj *store = load_ok(records_spec(FIX "cities.csv", "city"));
    assert_int_equal(heap_dict_len(store), 3);
    heap_obj *ny = heap_dict_get_str(store, "New York, NY");
    assert_non_null(ny);
    assert_keys(ny, "city,country,pop,area");
    assert_str(heap_dict_get_str(ny, "city"), "New York, NY");
    assert_str(heap_dict_get_str(ny, "country"), "USA");
    assert_int_obj(heap_dict_get_str(ny, "pop"), 8336000);
    assert_float_obj(heap_dict_get_str(ny, "area"), NAN);
    heap_obj *lyon = heap_dict_get_str(store, "Lyon");
    assert_int_obj(heap_dict_get_str(lyon, "pop"), 513000);
    assert_float_obj(heap_dict_get_str(lyon, "area"), 47.87);
    /* insertion order is file order */
    size_t pos = 0;
    heap_obj *k, *v;
    assert_true(heap_dict_next(store, &pos, &k, &v));
    assert_str(k, "Paris");
    heap_decref(store);
    assert_int_equal(live_objects(), 0);
}

static void a_duplicate_key_is_reported_at_its_cell(void **state)
{
    (void)state;
    /* name,id,score / ... / cat,1,5 on line 4: the id cell starts at column 5 */
    expect_load_error(records_spec(FIX "dup_key.csv", "id"), FIX "dup_key.csv:4:5: duplicate key '1'");
}

static void a_missing_key_column_is_an_error(void **state)
{
    (void)state;
    expect_load_error(records_spec(FIX "people.csv", "ID"), FIX "people.csv: key column 'ID' not found");
}

static void a_float_key_column_is_an_error(void **state)
{
    (void)state;
    expect_load_error(records_spec(FIX "float_key.csv", "k"),
                      FIX "float_key.csv: key column 'k' is float (keys must be int or string; "
                          "an empty cell makes an int column float)");
    /* people.csv's age column is float because of an empty cell */
    expect_load_error(records_spec(FIX "people.csv", "age"),
                      FIX "people.csv: key column 'age' is float (keys must be int or string; "
                          "an empty cell makes an int column float)");
}

/* --- json + file ---------------------------------------------------------- */

static void a_json_file_becomes_heap_values(void **state)
{
    (void)state;
    heap_obj *doc = load_ok(json_spec(FIX "doc.json"));
    assert_int_equal(heap_type_of(doc), HT_DICT);
    assert_keys(doc, "name,matrix,flags,empty");
    assert_str(heap_dict_get_str(doc, "name"), "demo");
    heap_obj *m = heap_dict_get_str(doc, "matrix"); /* [[1, 2], [3.5, null]] */
    assert_int_equal(heap_type_of(m), HT_LIST);
    assert_int_equal(heap_list_len(m), 2);
    heap_obj *row0 = heap_list_get(m, 0), *row1 = heap_list_get(m, 1);
    assert_int_equal(heap_type_of(row0), HT_LIST);
    assert_int_obj(heap_list_get(row0, 0), 1);
    assert_int_obj(heap_list_get(row0, 1), 2);
    assert_float_obj(heap_list_get(row1, 0), 3.5);
    assert_int_equal(heap_type_of(heap_list_get(row1, 1)), HT_NONE);
    heap_obj *flags = heap_dict_get_str(doc, "flags");
    assert_true(heap_bool_value(heap_dict_get_str(flags, "on")));
    assert_false(heap_bool_value(heap_dict_get_str(flags, "off")));
    assert_int_equal(heap_list_len(heap_dict_get_str(doc, "empty")), 0);
    heap_decref(doc);
    assert_int_equal(live_objects(), 0);
}

static void malformed_json_is_reported_with_line_and_column(void **state)
{
    (void)state;
    /* line 3 is `  "b": [3 4]`: jansson stops at the 4, column 11 */
    expect_load_error(json_spec(FIX "bad.json"), FIX "bad.json:3:11: ']' expected near '4'");
}

/* --- files ---------------------------------------------------------------- */

static void a_missing_file_is_reported_with_the_system_error(void **state)
{
    (void)state;
    expect_load_error(table_spec(FIX "absent.csv"), FIX "absent.csv: No such file or directory");
    expect_load_error(records_spec(FIX "absent.csv", "id"), FIX "absent.csv: No such file or directory");
    expect_load_error(json_spec(FIX "absent.json"), FIX "absent.json: No such file or directory");
    /* a folder opens but does not read */
    expect_load_error(json_spec("tests/fixtures/state"), "tests/fixtures/state: Is a directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(generated_records_follow_the_spec_formula, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_csv_table_has_typed_columns_in_header_order, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(malformed_csv_is_reported_with_file_line_and_column, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(csv_records_are_keyed_by_an_int_column, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(csv_records_share_one_str_per_column_name, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(csv_records_are_keyed_by_a_string_column, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_duplicate_key_is_reported_at_its_cell, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_missing_key_column_is_an_error, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_float_key_column_is_an_error, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_json_file_becomes_heap_values, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(malformed_json_is_reported_with_line_and_column, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_missing_file_is_reported_with_the_system_error, setup_heap, teardown_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
