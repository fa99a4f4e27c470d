/* test_value: the JSON boundary (dag/value.h): typed conversion in, the
 * streaming writer out (numbers as Python's repr, strings escaped, NaN as
 * null), round trips, and the depth guard against cyclic values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dag/dtoa.h"
#include "dag/value.h"
#include "heap/gc.h"
#include "tests/support.h"

static int teardown(void **state)
{
    (void)state;
    gc_collect(2);
    heap_stats s;
    heap_get_stats(&s);
    heap_destroy();
    return s.objects == 0 ? 0 : -1; /* every case releases what it made */
}

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

/* Emits o and compares with the expected text. */
static void assert_emits(heap_obj *o, const char *expected)
{
    dag_writer w;
    dag_writer_init_mem(&w);
    char err[128];
    assert_int_equal(dag_emit_value(&w, o, err, sizeof err), DAG_OK);
    assert_string_equal(w.buf, expected);
    dag_writer_free(&w);
}

static void typed_conversion_accepts_and_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        dag_vtype t;
        bool ok;
    } cases[] = {
        {"3", DV_INT, true},         {"3.0", DV_INT, false},     {"true", DV_INT, false},
        {"3", DV_FLOAT, true},       {"2.5", DV_FLOAT, true},    {"\"2.5\"", DV_FLOAT, false},
        {"\"x\"", DV_STR, true},     {"1", DV_STR, false},       {"false", DV_BOOL, true},
        {"[1, 2.5, null]", DV_ARRAY, true}, {"[1, \"2\"]", DV_ARRAY, false}, {"{}", DV_ARRAY, false},
        {"[1, \"a\", [2]]", DV_LIST, true}, {"{\"a\": 1}", DV_DICT, true}, {"[]", DV_DICT, false},
        {"null", DV_ANY, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = js(cases[i].json);
        heap_obj *o = NULL;
        char err[128] = "";
        int rc = dag_value_from_json(j, cases[i].t, &o, err, sizeof err);
        if ((rc == DAG_OK) != cases[i].ok)
            fail_msg("%s as %s: expected %s, got %s (%s)", cases[i].json, dag_vtype_name(cases[i].t),
                     cases[i].ok ? "ok" : "error", rc == DAG_OK ? "ok" : "error", err);
        if (rc == DAG_OK)
            assert_true(dag_value_is(o, cases[i].t));
        else
            assert_null(o);
        heap_xdecref(o);
        json_decref(j);
    }
}

static void array_input_maps_null_to_nan_and_names_bad_elements(void **state)
{
    (void)state;
    json_t *j = js("[1, null, 2.5]");
    heap_obj *a;
    char err[128];
    assert_int_equal(dag_value_from_json(j, DV_ARRAY, &a, err, sizeof err), DAG_OK);
    assert_true(isnan(heap_array_f64(a)[1]));
    assert_true(heap_array_f64(a)[2] == 2.5);
    heap_decref(a);
    json_decref(j);
    j = js("[1, 2, \"3\"]");
    assert_int_equal(dag_value_from_json(j, DV_ARRAY, &a, err, sizeof err), DAG_ERR);
    assert_non_null(strstr(err, "element 2"));
    json_decref(j);
}

static void doubles_print_as_python_repr(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.4, "0.4"}, {1.0, "1.0"}, {100.0, "100.0"}, {-2.5, "-2.5"}, {13.333333333333334, "13.333333333333334"},
        {0.1 + 0.2, "0.30000000000000004"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
        {0.0001, "0.0001"}, {0.00001, "1e-05"}, {5e-324, "5e-324"}, {-0.0, "-0.0"},
        {1.7976931348623157e308, "1.7976931348623157e+308"}, {9999999999999998.0, "9999999999999998.0"},
        {-1e300, "-1e+300"}, {1e-323, "1e-323"}, {123456789.0, "123456789.0"}, {-7.0, "-7.0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        heap_obj *f = heap_float_new(cases[i].v);
        assert_emits(f, cases[i].text);
        heap_decref(f);
    }
    heap_obj *nan = heap_float_new(NAN), *inf = heap_float_new(-INFINITY);
    assert_emits(nan, "null");
    assert_emits(inf, "null");
    heap_decref(nan);
    heap_decref(inf);
}

/* The significant digits of a number's text (no sign, point, leading
 * zeros or exponent) and its decimal exponent: "0.00123" has "123" and
 * -3 (0.123e-2 -> the first digit's place, counted as Python's decpt). */
static int digits_of(const char *s, char *digits, int *point)
{
    int n = 0, before = 0;
    bool seen_point = false, leading = true;
    const char *p = s + (*s == '-');
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            seen_point = true;
            continue;
        }
        if (leading && *p == '0') {
            if (seen_point)
                before--;
            continue;
        }
        leading = false;
        digits[n++] = *p;
        if (!seen_point)
            before++;
    }
    while (n > 1 && digits[n - 1] == '0') /* "100.0": the digit 1 */
        n--;
    digits[n] = '\0';
    *point = before + (*p == 'e' ? atoi(p + 1) : 0);
    return n;
}

static void doubles_are_shortest_round_trips_in_python_s_layout(void **state)
{
    (void)state;
    uint64_t x = 99;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double v;
        if (i % 2) {
            uint64_t bits = x ^ (x >> 29);
            memcpy(&v, &bits, sizeof v);
        } else { /* decimals a person types: 1 to 6 digits at some scale */
            v = (double)((x >> 20) % 1000000) * pow(10.0, (int)((x >> 50) % 40) - 20);
        }
        if (!isfinite(v))
            continue;
        char buf[DAG_DTOA_BUF];
        int len = dag_dtoa(v, buf);
        assert_int_equal(len, (int)strlen(buf));
        double back = strtod(buf, NULL);
        if (memcmp(&back, &v, sizeof v) != 0)
            fail_msg("%s does not read back as %.17g", buf, v);
        if (v == 0) {
            assert_string_equal(buf, signbit(v) ? "-0.0" : "0.0");
            continue;
        }
        /* as few digits as any text that reads back */
        int shortest = 1;
        for (; shortest < 17; shortest++) {
            char t[40];
            snprintf(t, sizeof t, "%.*e", shortest - 1, v);
            if (strtod(t, NULL) == v)
                break;
        }
        char digits[32];
        int point;
        int n = digits_of(buf, digits, &point);
        if (n != shortest)
            fail_msg("%s has %d digits, %.*e has %d", buf, n, shortest - 1, v, shortest);
        /* Python's layout: exponent from 1e16 and below 1e-4, else fixed with a point */
        bool sci = strchr(buf, 'e') != NULL;
        if (sci != (point > 16 || point <= -4))
            fail_msg("%s: point at %d, %s notation", buf, point, sci ? "scientific" : "fixed");
        if (sci) {
            const char *e = strchr(buf, 'e');
            assert_true(e[1] == '+' || e[1] == '-');
            assert_true(strlen(e + 2) >= 2);
        } else {
            assert_non_null(strchr(buf, '.'));
        }
    }
}

static void strings_are_escaped_and_always_valid_utf8(void **state)
{
    (void)state;
    heap_obj *s = heap_str_from("a\"b\\c\nd\te\x01 é €");
    assert_emits(s, "\"a\\\"b\\\\c\\nd\\te\\u0001 é €\"");
    heap_decref(s);
    /* A lone continuation byte, a truncated sequence, an overlong '/'. */
    heap_obj *bad = heap_str_new("x\x80y\xe2\x82z\xc0\xaf", 8);
    assert_emits(bad, "\"x\\ufffdy\\ufffd\\ufffdz\\ufffd\\ufffd\"");
    heap_decref(bad);
}

static void containers_emit_in_order_with_int_keys_as_strings(void **state)
{
    (void)state;
    heap_obj *d = heap_dict_new();
    heap_obj *k = heap_int_new(42);
    heap_dict_set_new(d, k, heap_str_from("answer"));
    heap_decref(k);
    heap_dict_set_str_new(d, "list", heap_list_new(0));
    heap_obj *a = heap_array_new(HD_I64, 3);
    heap_array_i64(a)[2] = -7;
    heap_dict_set_str_new(d, "ints", a);
    heap_obj *t = heap_table_new(2);
    heap_obj *name = heap_str_from("x"), *col = heap_array_new(HD_F64, 2);
    heap_array_f64(col)[1] = 0.5;
    heap_table_add_column(t, name, col);
    heap_decref(name);
    heap_decref(col);
    heap_dict_set_str_new(d, "table", t);
    heap_dict_set_str_new(d, "none", heap_none());
    assert_emits(d, "{\"42\":\"answer\",\"list\":[],\"ints\":[0,0,-7],\"table\":{\"x\":[0.0,0.5]},\"none\":null}");
    heap_decref(d);
}

static void json_round_trips_through_the_heap(void **state)
{
    (void)state;
    const char *doc = "{\"name\":\"cowdag\",\"n\":-12,\"x\":0.1,\"ok\":true,\"nothing\":null,"
                      "\"nested\":{\"list\":[1,[2,[3,\"four\"]],{\"k\":\"v\"}],\"empty\":{}},\"uni\":\"\\u00e9\\u20ac\"}";
    json_t *in = js(doc);
    heap_obj *o;
    char err[128];
    assert_int_equal(dag_value_from_json(in, DV_ANY, &o, err, sizeof err), DAG_OK);
    json_t *out = dag_value_to_json(o, err, sizeof err);
    assert_non_null(out);
    assert_true(json_equal(in, out));
    json_decref(out);
    json_decref(in);
    heap_decref(o);
}

static void cyclic_values_fail_cleanly(void **state)
{
    (void)state;
    heap_obj *l = heap_list_new(0);
    heap_list_append(l, l);
    char err[128];
    assert_int_equal(dag_value_check(l, err, sizeof err), DAG_ERR);
    assert_non_null(strstr(err, "cyclic"));
    dag_writer w;
    dag_writer_init_mem(&w);
    assert_int_equal(dag_emit_value(&w, l, err, sizeof err), DAG_ERR);
    dag_writer_free(&w);
    assert_null(dag_value_to_json(l, err, sizeof err));
    heap_decref(l);
}

/* --- the sink writer ----------------------------------------------------- */

typedef struct sink {
    size_t calls, bytes;
    int fail_after;
} sink;

static int count_flush(void *arg, const char *buf, size_t len)
{
    (void)buf;
    sink *s = arg;
    s->calls++;
    s->bytes += len;
    return s->fail_after && (int)s->calls >= s->fail_after ? -1 : 0;
}

static void sink_writer_streams_in_bounded_chunks(void **state)
{
    (void)state;
    heap_obj *a = heap_array_new(HD_F64, 100000); /* "0.0," x 100000: ~400 kB of text */
    sink s = {0};
    dag_writer w;
    dag_writer_init_sink(&w, count_flush, &s);
    char err[64];
    assert_int_equal(dag_emit_value(&w, a, err, sizeof err), DAG_OK);
    assert_int_equal(dag_writer_finish(&w), DAG_OK);
    assert_int_equal(s.bytes, 2 + 100000 * 3 + 99999);
    assert_true(s.calls >= 6);           /* flushed as it went */
    assert_true(w.cap <= 65536);         /* never grew */
    dag_writer_free(&w);
    sink failing = {.fail_after = 2};
    dag_writer_init_sink(&w, count_flush, &failing);
    dag_emit_value(&w, a, err, sizeof err);
    assert_int_equal(dag_writer_finish(&w), DAG_ERR);
    assert_int_equal(failing.calls, 2); /* nothing more after a failure */
    dag_writer_free(&w);
    heap_decref(a);
}

/* --- the piecewise emitter ----------------------------------------------- */

/* A document with every container kind, nested, strings to escape and an
 * array longer than one run of numbers. */
static heap_obj *mixed_document(void)
{
    heap_obj *doc = heap_dict_new();
    heap_obj *a = heap_array_new(HD_F64, 3 * DAG_EMIT_ARRAY_RUN + 5);
    double *v = heap_array_f64(a);
    for (size_t i = 0; i < 3 * DAG_EMIT_ARRAY_RUN + 5; i++)
        v[i] = (double)i / 3.0;
    heap_dict_set_str_new(doc, "floats", a);
    heap_obj *ints = heap_array_new(HD_I64, 2);
    heap_array_i64(ints)[0] = -7;
    heap_array_i64(ints)[1] = 1LL << 40;
    heap_obj *inner = heap_list_new(0);
    heap_list_append_new(inner, ints);
    heap_list_append_new(inner, heap_str_from("quote \" and \\ and \n"));
    heap_list_append_new(inner, heap_list_new(0)); /* empty */
    heap_list_append_new(inner, heap_dict_new());  /* empty */
    heap_list_append_new(inner, heap_none());
    heap_list_append_new(inner, heap_bool(true));
    heap_obj *byint = heap_dict_new();
    heap_obj *k = heap_int_new(42);
    heap_dict_set_new(byint, k, inner);
    heap_decref(k);
    heap_dict_set_str_new(doc, "by_int", byint);
    heap_obj *t = heap_table_new(2);
    heap_obj *col = heap_array_new(HD_I64, 2), *name = heap_str_from("c");
    heap_table_add_column(t, name, col);
    heap_decref(col);
    heap_decref(name);
    heap_dict_set_str_new(doc, "table", t);
    return doc;
}

static void the_emitter_in_pieces_writes_what_the_whole_does(void **state)
{
    (void)state;
    heap_obj *doc = mixed_document();
    dag_writer whole;
    dag_writer_init_mem(&whole);
    char err[128];
    assert_int_equal(dag_emit_value(&whole, doc, err, sizeof err), DAG_OK);
    json_error_t jerr;
    json_t *parsed = json_loads(whole.buf, 0, &jerr);
    assert_non_null(parsed); /* valid JSON */
    json_decref(parsed);

    dag_emitter *e = malloc(sizeof *e);
    dag_emitter_init(e, doc);
    dag_writer w;
    dag_writer_init_mem(&w);
    size_t steps = 0, largest = 0;
    bool more;
    do {
        size_t before = w.len;
        more = dag_emitter_step(e, &w);
        steps++;
        if (w.len - before > largest)
            largest = w.len - before;
    } while (more);
    assert_string_equal(w.buf, whole.buf);
    assert_false(dag_emitter_step(e, &w)); /* done stays done */
    assert_true(steps > 10);
    /* a piece is at most a run of numbers: 256 of "N/3" at most 20 bytes */
    assert_true(largest <= DAG_EMIT_ARRAY_RUN * 20);
    /* a scalar is one piece */
    heap_obj *f = heap_float_new(0.5);
    dag_emitter_init(e, f);
    dag_writer_free(&w);
    dag_writer_init_mem(&w);
    assert_false(dag_emitter_step(e, &w));
    assert_string_equal(w.buf, "0.5");
    heap_decref(f);
    free(e);
    dag_writer_free(&w);
    dag_writer_free(&whole);
    heap_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_heap, teardown)
        T(typed_conversion_accepts_and_rejects),
        T(array_input_maps_null_to_nan_and_names_bad_elements),
        T(doubles_print_as_python_repr),
        T(doubles_are_shortest_round_trips_in_python_s_layout),
        T(strings_are_escaped_and_always_valid_utf8),
        T(containers_emit_in_order_with_int_keys_as_strings),
        T(json_round_trips_through_the_heap),
        T(cyclic_values_fail_cleanly),
        T(sink_writer_streams_in_bounded_chunks),
        T(the_emitter_in_pieces_writes_what_the_whole_does),
#undef T
    };
    return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
