/* test_ops: the op library (dag/ops.h), op by op, against values worked
 * out by hand; params compilation and load-time checks; errors and limits.
 * Each case runs on a fresh heap and must leave no object behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "dag/ops.h"
#include "dag/value.h"
#include "heap/gc.h"
#include "heap/heap.h"

/* --- fixtures -------------------------------------------------------- */

static uint64_t baseline;
static uint64_t max_elems = 1u << 20; /* what call() gives ops; limit tests lower it */

static uint64_t live_objects(void)
{
    heap_stats s;
    heap_get_stats(&s);
    return s.objects;
}

static int setup(void **state)
{
    (void)state;
    heap_init(NULL);
    baseline = live_objects();
    max_elems = 1u << 20;
    return 0;
}

/* Fails the case if it left heap objects behind. */
static int teardown(void **state)
{
    (void)state;
    uint64_t live = live_objects();
    heap_destroy();
    if (live != baseline) {
        fprintf(stderr, "leak: %llu heap objects left, %llu at the start\n", (unsigned long long)live,
                (unsigned long long)baseline);
        return -1;
    }
    return 0;
}

/* --- values ---------------------------------------------------------- */

static heap_obj *I(int64_t v) { return heap_int_new(v); }
static heap_obj *F(double v) { return heap_float_new(v); }
static heap_obj *S(const char *s) { return heap_str_from(s); }
static heap_obj *B(bool v) { return heap_bool(v); }

static heap_obj *from_json(const char *text, dag_vtype t)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    heap_obj *o;
    char err[128];
    if (dag_value_from_json(j, t, &o, err, sizeof err) != DAG_OK)
        fail_msg("test JSON %s: %s", text, err);
    json_decref(j);
    return o;
}

/* Any JSON value (lists, dicts with str keys, numbers, strs). */
static heap_obj *J(const char *text) { return from_json(text, DV_ANY); }

/* A float64 array from a JSON array of numbers (null: NaN). */
static heap_obj *A(const char *text) { return from_json(text, DV_ARRAY); }

/* An int64 array from a JSON array of ints. */
static heap_obj *IA(const char *text)
{
    heap_obj *l = J(text);
    size_t n = heap_list_len(l);
    heap_obj *a = heap_array_new_uninit(HD_I64, n);
    for (size_t i = 0; i < n; i++)
        heap_array_i64(a)[i] = heap_int_value(heap_list_get(l, i));
    heap_decref(l);
    return a;
}

/* A table from a JSON object of columns: ints make an int64 column, other
 * numbers a float64 one, anything else a list. */
static heap_obj *table_of(const char *text)
{
    heap_obj *cols = J(text);
    heap_obj *t = NULL, *name, *col;
    size_t pos = 0;
    while (heap_dict_next(cols, &pos, &name, &col)) {
        size_t n = heap_list_len(col);
        bool ints = true, nums = true;
        for (size_t i = 0; i < n; i++) {
            heap_type ty = heap_type_of(heap_list_get(col, i));
            ints &= ty == HT_INT;
            nums &= ty == HT_INT || ty == HT_FLOAT;
        }
        heap_obj *c;
        if (ints || nums) {
            c = heap_array_new_uninit(ints ? HD_I64 : HD_F64, n);
            for (size_t i = 0; i < n; i++) {
                heap_obj *e = heap_list_get(col, i);
                if (ints)
                    heap_array_i64(c)[i] = heap_int_value(e);
                else
                    heap_array_f64(c)[i] =
                        heap_type_of(e) == HT_INT ? (double)heap_int_value(e) : heap_float_value(e);
            }
        } else {
            c = col;
            heap_incref(c);
        }
        if (!t)
            t = heap_table_new(n);
        heap_table_add_column(t, name, c);
        heap_decref(c);
    }
    heap_decref(cols);
    return t;
}

/* --- running ops ----------------------------------------------------- */

typedef struct res {
    int rc;
    heap_obj *out;
    dag_op_ctx ctx;
} res;

/* Runs op `name` as the executor does: params compiled from JSON text
 * (NULL: none), arity and the op's check hook verified first.  The args are
 * new references, dropped after the call. */
static res call(const char *name, const char *params, size_t nargs, ...)
{
    const dag_op *op = dag_op_find(name);
    if (!op)
        fail_msg("no op %s", name);
    heap_obj *args[16];
    assert_true(nargs <= 16);
    va_list ap;
    va_start(ap, nargs);
    for (size_t i = 0; i < nargs; i++)
        args[i] = va_arg(ap, heap_obj *);
    va_end(ap);
    assert_true((int)nargs >= op->min_args);
    assert_true(op->max_args < 0 || (int)nargs <= op->max_args);

    json_t *pj = NULL;
    if (params) {
        pj = json_loads(params, 0, NULL);
        assert_non_null(pj);
    }
    dag_params p;
    char err[256];
    if (dag_params_compile(op, pj, &p, err, sizeof err) != DAG_OK)
        fail_msg("%s params: %s", name, err);
    if (op->check && op->check(nargs, &p, err, sizeof err) != DAG_OK)
        fail_msg("%s check: %s", name, err);

    res r = {.out = NULL, .ctx = {.max_elems = max_elems}};
    r.rc = op->run(&r.ctx, args, nargs, &p, &r.out);
    dag_params_free(&p);
    json_decref(pj);
    for (size_t i = 0; i < nargs; i++)
        heap_decref(args[i]);
    return r;
}

/* The result of a call that must succeed (new reference). */
static heap_obj *ok(res r)
{
    if (r.rc != DAG_OK)
        fail_msg("op failed: %s: %s", r.ctx.code ? r.ctx.code : "(no code)", r.ctx.msg);
    assert_non_null(r.out);
    return r.out;
}

/* A call that must fail with `code`, its message holding each of the
 * (up to two) fragments. */
static void expect_err(res r, const char *code, const char *frag1, const char *frag2)
{
    if (r.rc == DAG_OK) {
        heap_decref(r.out);
        fail_msg("expected %s, the op succeeded", code);
    }
    assert_int_equal(r.rc, DAG_ERR);
    assert_non_null(r.ctx.code);
    if (strcmp(r.ctx.code, code) != 0)
        fail_msg("expected %s, got %s: %s", code, r.ctx.code, r.ctx.msg);
    if (frag1 && !strstr(r.ctx.msg, frag1))
        fail_msg("message \"%s\" lacks \"%s\"", r.ctx.msg, frag1);
    if (frag2 && !strstr(r.ctx.msg, frag2))
        fail_msg("message \"%s\" lacks \"%s\"", r.ctx.msg, frag2);
}

/* --- checking results (each steals the result) ----------------------- */

static void near(double got, double want, double tol, const char *what, size_t i)
{
    if (isnan(want)) {
        if (!isnan(got))
            fail_msg("%s[%zu]: got %.17g, want nan", what, i);
    } else if (isinf(want) || tol == 0.0) {
        if (got != want)
            fail_msg("%s[%zu]: got %.17g, want %.17g", what, i, got, want);
    } else if (!(fabs(got - want) <= tol)) {
        fail_msg("%s[%zu]: got %.17g, want %.17g (tolerance %g)", what, i, got, want, tol);
    }
}

static void f64s(heap_obj *o, double tol, const double *want, size_t n)
{
    assert_int_equal(heap_type_of(o), HT_ARRAY);
    assert_int_equal(heap_array_dtype(o), HD_F64);
    assert_int_equal(heap_array_len(o), n);
    for (size_t i = 0; i < n; i++)
        near(heap_array_f64(o)[i], want[i], tol, "float64 array", i);
    heap_decref(o);
}

static void i64s(heap_obj *o, const int64_t *want, size_t n)
{
    assert_int_equal(heap_type_of(o), HT_ARRAY);
    assert_int_equal(heap_array_dtype(o), HD_I64);
    assert_int_equal(heap_array_len(o), n);
    for (size_t i = 0; i < n; i++)
        if (heap_array_i64(o)[i] != want[i])
            fail_msg("int64 array[%zu]: got %lld, want %lld", i, (long long)heap_array_i64(o)[i],
                     (long long)want[i]);
    heap_decref(o);
}

#define F64S(o, tol, ...) f64s((o), (tol), (const double[]){__VA_ARGS__}, sizeof((const double[]){__VA_ARGS__}) / 8)
#define I64S(o, ...) i64s((o), (const int64_t[]){__VA_ARGS__}, sizeof((const int64_t[]){__VA_ARGS__}) / 8)

static void is_float(heap_obj *o, double want, double tol)
{
    assert_int_equal(heap_type_of(o), HT_FLOAT);
    near(heap_float_value(o), want, tol, "float", 0);
    heap_decref(o);
}

static void is_int(heap_obj *o, int64_t want)
{
    assert_int_equal(heap_type_of(o), HT_INT);
    assert_int_equal(heap_int_value(o), want);
    heap_decref(o);
}

static void is_bool(heap_obj *o, bool want)
{
    assert_int_equal(heap_type_of(o), HT_BOOL);
    assert_int_equal(heap_bool_value(o), want);
    heap_decref(o);
}

static void is_empty(heap_obj *o, heap_dtype dt)
{
    assert_int_equal(heap_type_of(o), HT_ARRAY);
    assert_int_equal(heap_array_dtype(o), dt);
    assert_int_equal(heap_array_len(o), 0);
    heap_decref(o);
}

/* ====================================================================== */
/* Elementwise                                                             */
/* ====================================================================== */

static void elementwise_broadcasts_a_number_both_ways(void **state)
{
    (void)state;
    F64S(ok(call("add", NULL, 2, A("[1, 2, 3]"), F(10))), 0, 11, 12, 13);
    F64S(ok(call("add", NULL, 2, F(10), A("[1, 2, 3]"))), 0, 11, 12, 13);
    F64S(ok(call("sub", NULL, 2, A("[1, 2, 3]"), I(10))), 0, -9, -8, -7);
    F64S(ok(call("sub", NULL, 2, I(10), A("[1, 2, 3]"))), 0, 9, 8, 7);
    F64S(ok(call("div", NULL, 2, I(1), A("[1, 2, 4]"))), 0, 1, 0.5, 0.25);
    F64S(ok(call("div", NULL, 2, A("[1, 2, 4]"), I(4))), 0, 0.25, 0.5, 1);
    F64S(ok(call("pow", NULL, 2, I(2), A("[0, 1, 3]"))), 0, 1, 2, 8);
    F64S(ok(call("pow", NULL, 2, A("[1, 2, 3]"), I(2))), 0, 1, 4, 9);
    F64S(ok(call("mul", NULL, 2, J("[1, 2, 3]"), F(0.5))), 0, 0.5, 1, 1.5);
    F64S(ok(call("mul", NULL, 2, F(-2), J("[1.5, 0]"))), 0, -3, -0.0);
}

static void elementwise_pairs_arrays_and_lists(void **state)
{
    (void)state;
    F64S(ok(call("add", NULL, 2, A("[1, 2, 3]"), A("[10, 20, 30]"))), 0, 11, 22, 33);
    F64S(ok(call("mul", NULL, 2, A("[1, 2, 3]"), J("[4, 5, 6]"))), 0, 4, 10, 18);
    F64S(ok(call("div", NULL, 2, J("[1, 3]"), J("[2, 4]"))), 0, 0.5, 0.75);
    F64S(ok(call("pow", NULL, 2, A("[2, 3]"), A("[3, 2]"))), 0, 8, 9);
    F64S(ok(call("sub", NULL, 2, IA("[5, 6]"), A("[0.5, 0.25]"))), 0, 4.5, 5.75);
    is_empty(ok(call("add", NULL, 2, A("[]"), A("[]"))), HD_F64);
    is_empty(ok(call("add", NULL, 2, A("[]"), I(1))), HD_F64);
}

static void int_inputs_keep_ints_where_documented(void **state)
{
    (void)state;
    is_int(ok(call("add", NULL, 2, I(2), I(3))), 5);
    is_int(ok(call("sub", NULL, 2, I(2), I(5))), -3);
    is_int(ok(call("mul", NULL, 2, I(4), I(-6))), -24);
    is_int(ok(call("neg", NULL, 1, I(5))), -5);
    is_int(ok(call("abs", NULL, 1, I(-7))), 7);
    is_float(ok(call("div", NULL, 2, I(7), I(2))), 3.5, 0);
    is_float(ok(call("div", NULL, 2, I(6), I(3))), 2.0, 0);
    is_float(ok(call("pow", NULL, 2, I(2), I(3))), 8.0, 0);
    is_float(ok(call("add", NULL, 2, I(1), F(0.5))), 1.5, 0);
    is_float(ok(call("abs", NULL, 1, F(-2.5))), 2.5, 0);

    I64S(ok(call("add", NULL, 2, IA("[1, 2, 3]"), I(10))), 11, 12, 13);
    I64S(ok(call("sub", NULL, 2, I(10), IA("[1, 2, 3]"))), 9, 8, 7);
    I64S(ok(call("mul", NULL, 2, IA("[1, 2, 3]"), IA("[4, 5, 6]"))), 4, 10, 18);
    I64S(ok(call("neg", NULL, 1, IA("[1, -2]"))), -1, 2);
    I64S(ok(call("abs", NULL, 1, IA("[-3, 4]"))), 3, 4);
    /* exact beyond 2^53, where a float64 detour would round */
    I64S(ok(call("add", NULL, 2, IA("[9007199254740993]"), I(2))), 9007199254740995);
    /* a float, a list or a true division anywhere gives float64 */
    F64S(ok(call("add", NULL, 2, IA("[1, 2]"), F(0.5))), 0, 1.5, 2.5);
    F64S(ok(call("add", NULL, 2, IA("[1, 2]"), J("[1, 1]"))), 0, 2, 3);
    F64S(ok(call("div", NULL, 2, IA("[1, 2]"), I(2))), 0, 0.5, 1);
    F64S(ok(call("pow", NULL, 2, IA("[3]"), I(2))), 0, 9);
    F64S(ok(call("sqrt", NULL, 1, IA("[4]"))), 0, 2);
}

static void mod_follows_python_signs(void **state)
{
    (void)state;
    is_int(ok(call("mod", NULL, 2, I(7), I(3))), 1);
    is_int(ok(call("mod", NULL, 2, I(-7), I(3))), 2);
    is_int(ok(call("mod", NULL, 2, I(7), I(-3))), -2);
    is_int(ok(call("mod", NULL, 2, I(-7), I(-3))), -1);
    is_int(ok(call("mod", NULL, 2, I(INT64_MIN), I(-1))), 0);
    is_float(ok(call("mod", NULL, 2, F(-7.5), I(2))), 0.5, 0);
    is_float(ok(call("mod", NULL, 2, F(7.5), F(-2))), -0.5, 0);
    I64S(ok(call("mod", NULL, 2, IA("[-7, -1, 0, 5]"), I(3))), 2, 2, 0, 2);
    I64S(ok(call("mod", NULL, 2, I(10), IA("[3, -3, 7]"))), 1, -2, 3);
    F64S(ok(call("mod", NULL, 2, A("[5.5, -0.5]"), I(2))), 0, 1.5, 1.5);
}

static void mod_by_zero_is_an_op_error(void **state)
{
    (void)state;
    expect_err(call("mod", NULL, 2, I(1), I(0)), DAG_E_OP, "mod", "zero");
    expect_err(call("mod", NULL, 2, IA("[1, 2]"), IA("[1, 0]")), DAG_E_OP, "mod", "zero");
    expect_err(call("mod", NULL, 2, A("[1]"), F(0.0)), DAG_E_OP, "mod", "zero");
}

static void division_by_zero_follows_ieee(void **state)
{
    (void)state;
    is_float(ok(call("div", NULL, 2, I(1), I(0))), INFINITY, 0);
    is_float(ok(call("div", NULL, 2, I(-1), F(0))), -INFINITY, 0);
    is_float(ok(call("div", NULL, 2, F(0), I(0))), NAN, 0);
    F64S(ok(call("div", NULL, 2, A("[1, -1, 0]"), I(0))), 0, INFINITY, -INFINITY, NAN);
}

static void unary_math(void **state)
{
    (void)state;
    F64S(ok(call("sqrt", NULL, 1, A("[4, 9, 2.25]"))), 0, 2, 3, 1.5);
    is_float(ok(call("sqrt", NULL, 1, I(16))), 4.0, 0);
    is_float(ok(call("sqrt", NULL, 1, F(-1))), NAN, 0);
    F64S(ok(call("log", NULL, 1, J("[1, 0]"))), 0, 0, -INFINITY);
    is_float(ok(call("log", NULL, 1, I(100))), 4.605170185988092, 1e-15);
    is_float(ok(call("exp", NULL, 1, I(0))), 1.0, 0);
    is_float(ok(call("exp", NULL, 1, F(1))), 2.718281828459045, 1e-15);
    F64S(ok(call("neg", NULL, 1, A("[1.5, -2]"))), 0, -1.5, 2);
    F64S(ok(call("abs", NULL, 1, J("[-1, 2.5]"))), 0, 1, 2.5);
}

static void clip_bounds_each_element(void **state)
{
    (void)state;
    F64S(ok(call("clip", NULL, 3, A("[-5, 0.5, 7]"), I(0), I(1))), 0, 0, 0.5, 1);
    F64S(ok(call("clip", NULL, 3, A("[1, 5, 9]"), A("[2, 2, 2]"), A("[4, 4, 10]"))), 0, 2, 4, 9);
    F64S(ok(call("clip", NULL, 3, I(2), A("[0, 3]"), I(4))), 0, 2, 3);
    F64S(ok(call("clip", NULL, 3, A("[null, 3]"), I(0), I(1))), 0, NAN, 1);
    is_float(ok(call("clip", NULL, 3, I(5), I(0), I(3))), 3.0, 0);
    is_float(ok(call("clip", NULL, 3, F(-1), I(0), I(3))), 0.0, 0);
}

static void comparisons_give_flags_or_bools(void **state)
{
    (void)state;
    F64S(ok(call("gt", NULL, 2, A("[1, 5, 3]"), I(3))), 0, 0, 1, 0);
    F64S(ok(call("lt", NULL, 2, I(3), A("[1, 5, 3]"))), 0, 0, 1, 0);
    F64S(ok(call("eq", NULL, 2, A("[1, 2, 3]"), J("[1, 0, 3]"))), 0, 1, 0, 1);
    F64S(ok(call("eq", NULL, 2, A("[null]"), A("[null]"))), 0, 0);
    /* ints compare exactly: 2^53 + 1 is not 2^53 */
    F64S(ok(call("eq", NULL, 2, IA("[9007199254740993, 7]"), I(9007199254740992))), 0, 0, 0);
    F64S(ok(call("gt", NULL, 2, IA("[1, 2]"), F(1.5))), 0, 0, 1);
    is_bool(ok(call("gt", NULL, 2, I(2), F(1.5))), true);
    is_bool(ok(call("lt", NULL, 2, I(2), F(1.5))), false);
    is_bool(ok(call("eq", NULL, 2, I(3), I(4))), false);
    is_bool(ok(call("eq", NULL, 2, I(3), F(3.0))), true);
}

static void where_picks_by_condition(void **state)
{
    (void)state;
    F64S(ok(call("where", NULL, 3, A("[1, 0, 2]"), A("[1, 2, 3]"), I(0))), 0, 1, 0, 3);
    F64S(ok(call("where", NULL, 3, B(true), A("[1, 2]"), A("[3, 4]"))), 0, 1, 2);
    F64S(ok(call("where", NULL, 3, B(false), I(5), A("[1, 2]"))), 0, 1, 2);
    F64S(ok(call("where", NULL, 3, J("[0, 1]"), I(7), I(8))), 0, 8, 7);
    F64S(ok(call("where", NULL, 3, IA("[0, 3]"), A("[1, 2]"), A("[3, 4]"))), 0, 3, 2);
    F64S(ok(call("where", NULL, 3, A("[null]"), I(1), I(2))), 0, 1); /* nan is nonzero */
    is_float(ok(call("where", NULL, 3, I(1), I(2), I(3))), 2.0, 0);
    is_float(ok(call("where", NULL, 3, B(false), I(2), F(3.5))), 3.5, 0);
}

static void wrong_kinds_are_type_errors(void **state)
{
    (void)state;
    expect_err(call("add", NULL, 2, S("x"), I(1)), DAG_E_TYPE, "add", "str");
    expect_err(call("add", NULL, 2, I(1), S("x")), DAG_E_TYPE, "add", "str");
    expect_err(call("add", NULL, 2, B(true), I(1)), DAG_E_TYPE, "add", "bool");
    expect_err(call("mul", NULL, 2, I(1), J("[1, \"a\"]")), DAG_E_TYPE, "mul", "str");
    expect_err(call("sub", NULL, 2, J("[true]"), I(1)), DAG_E_TYPE, "sub", "bool");
    expect_err(call("neg", NULL, 1, J("{}")), DAG_E_TYPE, "neg", "dict");
    expect_err(call("gt", NULL, 2, J("null"), I(1)), DAG_E_TYPE, "gt", "none");
    expect_err(call("where", NULL, 3, S("x"), I(1), I(2)), DAG_E_TYPE, "where", "str");
    expect_err(call("where", NULL, 3, B(true), B(true), I(2)), DAG_E_TYPE, "where", "bool");
    expect_err(call("clip", NULL, 3, A("[1]"), S("lo"), I(2)), DAG_E_TYPE, "clip", "str");
    expect_err(call("sum", NULL, 1, S("abc")), DAG_E_TYPE, "sum", "str");
    expect_err(call("mean", NULL, 1, B(false)), DAG_E_TYPE, "mean", "bool");
}

static void sequences_of_different_lengths_are_op_errors(void **state)
{
    (void)state;
    expect_err(call("add", NULL, 2, A("[1, 2, 3]"), A("[1, 2]")), DAG_E_OP, "add", "length");
    expect_err(call("eq", NULL, 2, J("[1]"), IA("[1, 2]")), DAG_E_OP, "eq", "length");
    expect_err(call("where", NULL, 3, A("[1, 0]"), A("[1, 2, 3]"), I(0)), DAG_E_OP, "where", "length");
    expect_err(call("clip", NULL, 3, A("[1, 2]"), A("[0, 0, 0]"), I(1)), DAG_E_OP, "clip", "length");
}

/* ====================================================================== */
/* Reductions                                                              */
/* ====================================================================== */

static void sum_keeps_ints_and_adds_floats(void **state)
{
    (void)state;
    is_float(ok(call("sum", NULL, 1, A("[1.5, 2.5]"))), 4.0, 0);
    is_float(ok(call("sum", NULL, 1, A("[1, 2, 3, 4, 5, 6, 7, 8, 9]"))), 45.0, 0);
    is_int(ok(call("sum", NULL, 1, IA("[1, 2, 3]"))), 6);
    is_int(ok(call("sum", NULL, 1, J("[1, 2, 3, 4, 5]"))), 15);
    is_float(ok(call("sum", NULL, 1, J("[1, 2.5]"))), 3.5, 0);
    is_int(ok(call("sum", NULL, 1, I(5))), 5);
    is_float(ok(call("sum", NULL, 1, F(2.5))), 2.5, 0);
    is_float(ok(call("sum", NULL, 1, A("[]"))), 0.0, 0);
    is_int(ok(call("sum", NULL, 1, J("[]"))), 0);
    is_float(ok(call("sum", NULL, 1, A("[1, null]"))), NAN, 0);
}

static void mean_min_max_and_count(void **state)
{
    (void)state;
    is_float(ok(call("mean", NULL, 1, A("[1, 2, 3, 4]"))), 2.5, 0);
    is_float(ok(call("mean", NULL, 1, IA("[1, 2]"))), 1.5, 0);
    is_float(ok(call("mean", NULL, 1, J("[1, 2, 6]"))), 3.0, 0);
    is_float(ok(call("mean", NULL, 1, I(3))), 3.0, 0);
    is_float(ok(call("mean", NULL, 1, A("[]"))), NAN, 0);

    is_float(ok(call("min", NULL, 1, A("[3, 1, 2]"))), 1.0, 0);
    is_float(ok(call("max", NULL, 1, A("[3, 1, 2]"))), 3.0, 0);
    is_int(ok(call("min", NULL, 1, IA("[3, -1, 2]"))), -1);
    is_int(ok(call("max", NULL, 1, J("[1, 5, 2]"))), 5);
    is_float(ok(call("max", NULL, 1, J("[1, 2.5]"))), 2.5, 0);
    is_float(ok(call("max", NULL, 1, A("[1, null, 3]"))), NAN, 0);
    is_float(ok(call("min", NULL, 1, A("[]"))), NAN, 0);
    is_float(ok(call("max", NULL, 1, J("[]"))), NAN, 0);
    is_int(ok(call("min", NULL, 1, I(4))), 4);

    is_int(ok(call("count", NULL, 1, A("[1, 2, 3]"))), 3);
    is_int(ok(call("count", NULL, 1, J("[1, \"a\"]"))), 2);
    is_int(ok(call("count", NULL, 1, J("{\"a\": 1}"))), 1);
    is_int(ok(call("count", NULL, 1, S("h\xc3\xa9llo"))), 5);
    is_int(ok(call("count", NULL, 1, table_of("{\"a\": [1, 2, 3, 4]}"))), 4);
    expect_err(call("count", NULL, 1, I(1)), DAG_E_TYPE, "count", "int");
}

static void std_follows_ddof(void **state)
{
    (void)state;
    /* deviations from 5: -3 -1 -1 -1 0 0 2 4, squares sum to 32 */
    is_float(ok(call("std", NULL, 1, A("[2, 4, 4, 4, 5, 5, 7, 9]"))), 2.138089935299395, 1e-15); /* sqrt(32/7) */
    is_float(ok(call("std", "{\"ddof\": 0}", 1, A("[2, 4, 4, 4, 5, 5, 7, 9]"))), 2.0, 0);
    is_float(ok(call("std", NULL, 1, IA("[1, 3]"))), 1.4142135623730951, 1e-15); /* sqrt(2) */
    is_float(ok(call("std", NULL, 1, A("[5]"))), NAN, 0);
    is_float(ok(call("std", "{\"ddof\": 0}", 1, A("[5]"))), 0.0, 0);
    is_float(ok(call("std", "{\"ddof\": 2}", 1, A("[1, 3]"))), NAN, 0);
    is_float(ok(call("std", NULL, 1, A("[]"))), NAN, 0);
}

/* ====================================================================== */
/* Windows                                                                 */
/* ====================================================================== */

static void rolling_windows_match_pandas(void **state)
{
    (void)state;
    F64S(ok(call("rolling_sum", NULL, 2, A("[1, 2, 3, 4, 5]"), I(2))), 0, NAN, 3, 5, 7, 9);
    F64S(ok(call("rolling_mean", NULL, 2, A("[1, 2, 3, 4, 5]"), I(2))), 0, NAN, 1.5, 2.5, 3.5, 4.5);
    F64S(ok(call("rolling_sum", NULL, 2, A("[1, 2, 3]"), I(1))), 0, 1, 2, 3);
    F64S(ok(call("rolling_mean", NULL, 2, J("[1, 2]"), I(3))), 0, NAN, NAN);
    F64S(ok(call("rolling_mean", NULL, 2, IA("[2, 4, 6]"), F(2.0))), 0, NAN, 3, 5);
    /* a NaN spoils only the windows that hold it */
    F64S(ok(call("rolling_sum", NULL, 2, A("[1, null, 3, 4, 5]"), I(2))), 0, NAN, NAN, NAN, 7, 9);
    F64S(ok(call("rolling_sum", NULL, 2, J("[1, 2, 3, 4]"), I(2))), 0, NAN, 3, 5, 7);
    /* an infinity likewise; +inf with -inf is nan */
    heap_obj *x = heap_array_new_uninit(HD_F64, 5);
    double v[5] = {1, INFINITY, -INFINITY, 4, 5};
    memcpy(heap_array_f64(x), v, sizeof v);
    F64S(ok(call("rolling_sum", NULL, 2, x, I(2))), 0, NAN, INFINITY, NAN, -INFINITY, 9);
    /* compensation: 1e16 passing through does not swallow the small values
     * (a plain running sum gives 0 for the third window); 1e16 + 1 is not a
     * double, the second window is the nearest one */
    F64S(ok(call("rolling_sum", NULL, 2, A("[1e16, 1, 1, 1, 2]"), I(2))), 0, NAN, 1e16 + 1, 2, 2, 3);
    is_empty(ok(call("rolling_sum", NULL, 2, A("[]"), I(3))), HD_F64);
}

static void rolling_window_must_be_a_positive_int(void **state)
{
    (void)state;
    expect_err(call("rolling_mean", NULL, 2, A("[1, 2]"), I(-1)), DAG_E_OP, "rolling_mean", "window");
    expect_err(call("rolling_sum", NULL, 2, A("[1, 2]"), I(0)), DAG_E_OP, "rolling_sum", "window");
    expect_err(call("rolling_mean", NULL, 2, A("[1, 2]"), S("3")), DAG_E_TYPE, "window", "str");
    expect_err(call("rolling_mean", NULL, 2, A("[1, 2]"), F(2.5)), DAG_E_TYPE, "window", "float");
    expect_err(call("rolling_mean", NULL, 2, I(3), I(2)), DAG_E_TYPE, "rolling_mean", "int");
}

static void cumsum_shift_and_diff(void **state)
{
    (void)state;
    F64S(ok(call("cumsum", NULL, 1, A("[1, 2, 3.5]"))), 0, 1, 3, 6.5);
    I64S(ok(call("cumsum", NULL, 1, IA("[1, 2, 3]"))), 1, 3, 6);
    I64S(ok(call("cumsum", NULL, 1, J("[1, -2]"))), 1, -1);
    F64S(ok(call("cumsum", NULL, 1, J("[1, 0.5]"))), 0, 1, 1.5);
    is_empty(ok(call("cumsum", NULL, 1, A("[]"))), HD_F64);

    F64S(ok(call("shift", NULL, 2, A("[1, 2, 3, 4]"), I(1))), 0, NAN, 1, 2, 3);
    F64S(ok(call("shift", NULL, 2, A("[1, 2, 3, 4]"), I(-2))), 0, 3, 4, NAN, NAN);
    F64S(ok(call("shift", NULL, 2, A("[1, 2, 3, 4]"), I(0))), 0, 1, 2, 3, 4);
    F64S(ok(call("shift", NULL, 2, A("[1, 2]"), I(10))), 0, NAN, NAN);
    F64S(ok(call("shift", NULL, 2, A("[1, 2]"), I(INT64_MIN))), 0, NAN, NAN);
    F64S(ok(call("shift", NULL, 2, IA("[1, 2]"), I(1))), 0, NAN, 1);

    F64S(ok(call("diff", NULL, 1, A("[1, 4, 9, 16]"))), 0, NAN, 3, 5, 7);
    F64S(ok(call("diff", NULL, 2, A("[1, 4, 9, 16]"), I(2))), 0, NAN, NAN, 8, 12);
    F64S(ok(call("diff", NULL, 2, A("[1, 4, 9, 16]"), I(-1))), 0, -3, -5, -7, NAN);
    F64S(ok(call("diff", NULL, 2, J("[1, 4]"), I(4))), 0, NAN, NAN);
    F64S(ok(call("diff", NULL, 1, IA("[10, 7]"))), 0, NAN, -3);
    expect_err(call("shift", NULL, 2, A("[1]"), S("1")), DAG_E_TYPE, "shift", "periods");
    expect_err(call("diff", NULL, 1, F(1)), DAG_E_TYPE, "diff", "float");
}

/* The numbers of Hamilton's hello-world DAG (pandas computed them). */
static void hamilton_hello_world_numbers(void **state)
{
    (void)state;
    const char *spend = "[10, 10, 20, 40, 40, 50]", *signups = "[1, 10, 50, 100, 200, 400]";
    F64S(ok(call("rolling_mean", NULL, 2, A(spend), I(3))), 0, NAN, NAN, 13.333333333333334, 23.333333333333332,
         33.333333333333336, 43.333333333333336);
    F64S(ok(call("div", NULL, 2, A(spend), A(signups))), 0, 10, 1, 0.4, 0.4, 0.2, 0.125);

    heap_obj *mean = ok(call("mean", NULL, 1, A(spend)));
    heap_obj *std = ok(call("std", NULL, 1, A(spend)));
    assert_true(heap_float_value(mean) == 28.333333333333332);
    near(heap_float_value(std), 17.224014243685083, 1e-12, "std", 0);
    heap_obj *zero_mean = ok(call("sub", NULL, 2, A(spend), mean)); /* the call drops mean and std */
    /* (50 - 28.3333...) / 17.2240... = 1.2579336 (the brief's 1.2579271 is a typo) */
    F64S(ok(call("div", NULL, 2, zero_mean, std)), 1e-6, -1.0644054, -1.0644054, -0.4838206, 0.6773489, 0.6773489,
         1.2579336);
}

/* ====================================================================== */
/* Records                                                                 */
/* ====================================================================== */

/* {10: "ten", 20: "twenty", 30: 3.5} */
static heap_obj *int_keyed(void)
{
    heap_obj *d = heap_dict_new();
    heap_obj *k;
    k = I(10), heap_dict_set_new(d, k, S("ten")), heap_decref(k);
    k = I(20), heap_dict_set_new(d, k, S("twenty")), heap_decref(k);
    k = I(30), heap_dict_set_new(d, k, F(3.5)), heap_decref(k);
    return d;
}

static void lookup_returns_the_values_themselves(void **state)
{
    (void)state;
    heap_obj *d = int_keyed();
    heap_obj *v30 = heap_dict_get_int(d, 30);
    assert_int_equal(v30->rc, 1);

    heap_incref(d);
    heap_obj *r = ok(call("lookup", NULL, 2, d, IA("[30, 10]")));
    assert_int_equal(heap_list_len(r), 2);
    assert_ptr_equal(heap_list_get(r, 0), v30);
    assert_ptr_equal(heap_list_get(r, 1), heap_dict_get_int(d, 10));
    assert_int_equal(v30->rc, 2); /* the list holds its own reference */
    heap_decref(r);
    assert_int_equal(v30->rc, 1);

    heap_incref(d);
    r = ok(call("lookup", NULL, 2, d, A("[20.0]")));
    assert_ptr_equal(heap_list_get(r, 0), heap_dict_get_int(d, 20));
    heap_decref(r);
    heap_incref(d);
    r = ok(call("lookup", NULL, 2, d, I(10)));
    assert_int_equal(heap_list_len(r), 1);
    assert_true(heap_str_eq(heap_list_get(r, 0), "ten", 3));
    heap_decref(r);
    heap_incref(d);
    r = ok(call("lookup", NULL, 2, d, J("[20, 20]")));
    assert_int_equal(heap_list_len(r), 2);
    heap_decref(r);
    heap_decref(d);

    heap_obj *s = J("{\"a\": 1, \"b\": [1, 2], \"c\": \"x\"}");
    heap_incref(s);
    r = ok(call("lookup", NULL, 2, s, J("[\"c\", \"a\"]")));
    assert_ptr_equal(heap_list_get(r, 0), heap_dict_get_str(s, "c"));
    assert_ptr_equal(heap_list_get(r, 1), heap_dict_get_str(s, "a"));
    heap_decref(r);
    heap_incref(s);
    r = ok(call("lookup", NULL, 2, s, S("b")));
    assert_ptr_equal(heap_list_get(r, 0), heap_dict_get_str(s, "b"));
    heap_decref(r);
    heap_decref(s);
}

static void lookup_names_a_missing_key(void **state)
{
    (void)state;
    expect_err(call("lookup", NULL, 2, int_keyed(), IA("[10, 99]")), DAG_E_OP, "lookup", "99");
    expect_err(call("lookup", NULL, 2, int_keyed(), J("[10, \"zed\"]")), DAG_E_OP, "lookup", "zed");
    expect_err(call("lookup", NULL, 2, int_keyed(), I(11)), DAG_E_OP, "lookup", "11");
    expect_err(call("lookup", NULL, 2, int_keyed(), A("[1.5]")), DAG_E_TYPE, "lookup", "1.5");
    expect_err(call("lookup", NULL, 2, int_keyed(), B(true)), DAG_E_TYPE, "lookup", "bool");
    expect_err(call("lookup", NULL, 2, int_keyed(), J("[1, 2.0]")), DAG_E_TYPE, "lookup", "float");
    expect_err(call("lookup", NULL, 2, J("[1]"), I(0)), DAG_E_TYPE, "lookup", "list");
}

static void field_reads_one_field_of_each_record(void **state)
{
    (void)state;
    heap_obj *recs = J("[{\"id\": 1, \"spend\": 2.5}, {\"id\": 2, \"spend\": 4}]");
    heap_incref(recs);
    heap_obj *r = ok(call("field", "{\"name\": \"spend\"}", 1, recs));
    assert_int_equal(heap_list_len(r), 2);
    assert_ptr_equal(heap_list_get(r, 0), heap_dict_get_str(heap_list_get(recs, 0), "spend"));
    assert_int_equal(heap_type_of(heap_list_get(r, 1)), HT_INT);
    assert_int_equal(heap_int_value(heap_list_get(r, 1)), 4);
    heap_decref(r);
    heap_decref(recs);

    r = ok(call("field", "{\"name\": \"v\"}", 1, J("{\"x\": {\"v\": 1}, \"y\": {\"v\": 2}}")));
    assert_int_equal(heap_list_len(r), 2);
    assert_int_equal(heap_int_value(heap_list_get(r, 0)), 1);
    assert_int_equal(heap_int_value(heap_list_get(r, 1)), 2);
    heap_decref(r);

    expect_err(call("field", "{\"name\": \"a\"}", 1, J("[{\"a\": 1}, {\"b\": 2}]")), DAG_E_OP, "record 1", "\"a\"");
    expect_err(call("field", "{\"name\": \"a\"}", 1, J("[1, 2]")), DAG_E_TYPE, "field", "int");
    expect_err(call("field", "{\"name\": \"a\"}", 1, I(1)), DAG_E_TYPE, "field", "int");
}

static void row_sum_sums_each_row(void **state)
{
    (void)state;
    heap_obj *rows = heap_list_new(4);
    heap_list_append_new(rows, J("[1, 2, 3]"));
    heap_list_append_new(rows, A("[0.5, 2]"));
    heap_list_append_new(rows, IA("[1, 2]"));
    heap_list_append_new(rows, J("[]"));
    heap_list_append_new(rows, A("[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"));
    F64S(ok(call("row_sum", NULL, 1, rows)), 0, 6, 2.5, 3, 0, 12);
    expect_err(call("row_sum", NULL, 1, J("[[1, \"a\"]]")), DAG_E_TYPE, "row_sum", "str");
    expect_err(call("row_sum", NULL, 1, J("[[1], 5]")), DAG_E_TYPE, "row 1", "int");
    expect_err(call("row_sum", NULL, 1, A("[1]")), DAG_E_TYPE, "row_sum", "float64 array");
}

static void make_record_pairs_names_with_args(void **state)
{
    (void)state;
    heap_obj *x = S("x");
    heap_incref(x);
    heap_obj *r = ok(call("make_record", "{\"names\": [\"a\", \"b\"]}", 2, I(1), x));
    assert_int_equal(heap_dict_len(r), 2);
    heap_obj *k, *v;
    size_t pos = 0;
    assert_true(heap_dict_next(r, &pos, &k, &v));
    assert_true(heap_str_eq(k, "a", 1));
    assert_int_equal(heap_int_value(v), 1);
    assert_true(heap_dict_next(r, &pos, &k, &v));
    assert_true(heap_str_eq(k, "b", 1));
    assert_ptr_equal(v, x);
    heap_decref(r);
    heap_decref(x);

    r = ok(call("make_record", "{\"names\": []}", 0));
    assert_int_equal(heap_dict_len(r), 0);
    heap_decref(r);
}

/* ====================================================================== */
/* Tables                                                                  */
/* ====================================================================== */

static const char SALES[] = "{\"seg\": [1, 2, 1, 3], \"name\": [\"a\", \"b\", \"a\", \"c\"], "
                            "\"v\": [1.5, 2.0, 3.5, 4.0]}";

static void column_returns_the_column(void **state)
{
    (void)state;
    heap_obj *t = table_of(SALES);
    heap_incref(t);
    heap_obj *c = ok(call("column", "{\"name\": \"v\"}", 1, t));
    assert_ptr_equal(c, heap_table_column(t, "v"));
    heap_decref(c);
    expect_err(call("column", "{\"name\": \"zzz\"}", 1, t), DAG_E_OP, "column", "zzz");
    expect_err(call("column", "{\"name\": \"v\"}", 1, J("{\"v\": [1]}")), DAG_E_TYPE, "column", "dict");
}

static void filter_keeps_rows_where_the_mask_is_nonzero(void **state)
{
    (void)state;
    F64S(ok(call("filter", NULL, 2, A("[1, 2, 3]"), J("[true, false, true]"))), 0, 1, 3);
    I64S(ok(call("filter", NULL, 2, IA("[5, 6, 7]"), A("[0, 1, 0.5]"))), 6, 7);
    is_empty(ok(call("filter", NULL, 2, IA("[5]"), A("[0]"))), HD_I64);

    heap_obj *l = ok(call("filter", NULL, 2, J("[\"x\", \"y\", \"z\"]"), IA("[0, 2, 0]")));
    assert_int_equal(heap_list_len(l), 1);
    assert_true(heap_str_eq(heap_list_get(l, 0), "y", 1));
    heap_decref(l);

    /* a table: every column, same kinds */
    heap_obj *t = ok(call("filter", NULL, 2, table_of(SALES), A("[1, 0, 1, 0]")));
    assert_int_equal(heap_type_of(t), HT_TABLE);
    assert_int_equal(heap_table_nrows(t), 2);
    assert_int_equal(heap_table_ncols(t), 3);
    heap_obj *seg = heap_table_column(t, "seg"), *name = heap_table_column(t, "name"), *v = heap_table_column(t, "v");
    assert_int_equal(heap_array_i64(seg)[0], 1);
    assert_int_equal(heap_array_i64(seg)[1], 1);
    assert_true(heap_str_eq(heap_list_get(name, 1), "a", 1));
    assert_true(heap_array_f64(v)[0] == 1.5 && heap_array_f64(v)[1] == 3.5);
    heap_decref(t);

    expect_err(call("filter", NULL, 2, A("[1, 2]"), A("[1]")), DAG_E_OP, "filter", "mask");
    expect_err(call("filter", NULL, 2, I(1), A("[1]")), DAG_E_TYPE, "filter", "int");
    expect_err(call("filter", NULL, 2, A("[1]"), I(1)), DAG_E_TYPE, "mask", "int");
    expect_err(call("filter", NULL, 2, A("[1]"), J("[\"yes\"]")), DAG_E_TYPE, "mask", "str");
}

/* Checks d against keys (ints, or strs when skeys) and float values, in order. */
static void dict_is(heap_obj *d, const int64_t *ikeys, const char *const *skeys, const double *want, size_t n)
{
    assert_int_equal(heap_type_of(d), HT_DICT);
    assert_int_equal(heap_dict_len(d), n);
    heap_obj *k, *v;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(heap_dict_next(d, &pos, &k, &v));
        if (skeys)
            assert_true(heap_str_eq(k, skeys[i], strlen(skeys[i])));
        else
            assert_int_equal(heap_int_value(k), ikeys[i]);
        assert_int_equal(heap_type_of(v), HT_FLOAT);
        near(heap_float_value(v), want[i], 0, "group", i);
    }
    heap_decref(d);
}

static void group_sum_and_mean_by_first_appearance(void **state)
{
    (void)state;
    dict_is(ok(call("group_sum", "{\"by\": \"seg\", \"value\": \"v\"}", 1, table_of(SALES))),
            (const int64_t[]){1, 2, 3}, NULL, (const double[]){5.0, 2.0, 4.0}, 3);
    dict_is(ok(call("group_mean", "{\"by\": \"name\", \"value\": \"v\"}", 1, table_of(SALES))), NULL,
            (const char *const[]){"a", "b", "c"}, (const double[]){2.5, 2.0, 4.0}, 3);
    dict_is(ok(call("group_mean", "{\"by\": \"name\", \"value\": \"seg\"}", 1, table_of(SALES))), NULL,
            (const char *const[]){"a", "b", "c"}, (const double[]){1.0, 2.0, 3.0}, 3);
    dict_is(ok(call("group_sum", "{\"by\": \"seg\", \"value\": \"v\"}", 1, table_of("{\"seg\": [], \"v\": []}"))),
            NULL, NULL, NULL, 0);

    expect_err(call("group_sum", "{\"by\": \"nope\", \"value\": \"v\"}", 1, table_of(SALES)), DAG_E_OP, "group_sum",
               "nope");
    expect_err(call("group_sum", "{\"by\": \"seg\", \"value\": \"nope\"}", 1, table_of(SALES)), DAG_E_OP,
               "group_sum", "nope");
    expect_err(call("group_mean", "{\"by\": \"v\", \"value\": \"seg\"}", 1, table_of(SALES)), DAG_E_TYPE,
               "group_mean", "float64 array");
    expect_err(call("group_sum", "{\"by\": \"seg\", \"value\": \"name\"}", 1, table_of(SALES)), DAG_E_TYPE,
               "group_sum", "str");
    expect_err(call("group_sum", "{\"by\": \"a\", \"value\": \"b\"}", 1, J("[]")), DAG_E_TYPE, "group_sum", "list");
}

/* ====================================================================== */
/* Constructors and limits                                                 */
/* ====================================================================== */

static void range_and_fill_build_arrays(void **state)
{
    (void)state;
    I64S(ok(call("range", NULL, 1, I(4))), 0, 1, 2, 3);
    I64S(ok(call("range", NULL, 2, I(-2), I(2))), -2, -1, 0, 1);
    I64S(ok(call("range", NULL, 1, F(3.0))), 0, 1, 2);
    is_empty(ok(call("range", NULL, 2, I(5), I(2))), HD_I64);
    is_empty(ok(call("range", NULL, 1, I(-3))), HD_I64);
    expect_err(call("range", NULL, 1, F(2.5)), DAG_E_TYPE, "range", "float");
    expect_err(call("range", NULL, 1, S("3")), DAG_E_TYPE, "range", "str");

    F64S(ok(call("fill", NULL, 2, I(3), F(1.5))), 0, 1.5, 1.5, 1.5);
    F64S(ok(call("fill", NULL, 2, I(2), I(7))), 0, 7, 7);
    is_empty(ok(call("fill", NULL, 2, I(0), F(1))), HD_F64);
    expect_err(call("fill", NULL, 2, I(-1), F(1)), DAG_E_OP, "fill", "-1");
    expect_err(call("fill", NULL, 2, I(2), B(true)), DAG_E_TYPE, "fill", "bool");
}

static heap_obj *fill_ones(size_t n)
{
    heap_obj *a = heap_array_new_uninit(HD_F64, n);
    for (size_t i = 0; i < n; i++)
        heap_array_f64(a)[i] = 1.0;
    return a;
}

static void results_over_the_limit_fail_before_allocating(void **state)
{
    (void)state;
    /* the runner's limit, not a small one: still no attempt to allocate */
    expect_err(call("fill", NULL, 2, I(1000000000000), F(1.0)), DAG_E_LIMIT, "fill", NULL);
    expect_err(call("fill", NULL, 2, F(1e12), F(1.0)), DAG_E_LIMIT, "fill", NULL);
    expect_err(call("range", NULL, 2, I(INT64_MIN), I(INT64_MAX)), DAG_E_LIMIT, "range", NULL);

    max_elems = 10;
    uint64_t before = live_objects();
    const char *eleven = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
    is_empty(ok(call("range", NULL, 1, I(0))), HD_I64);
    heap_decref(ok(call("range", NULL, 1, I(10))));
    expect_err(call("range", NULL, 1, I(11)), DAG_E_LIMIT, "range", "10");
    expect_err(call("add", NULL, 2, A(eleven), I(1)), DAG_E_LIMIT, "add", NULL);
    expect_err(call("add", NULL, 2, IA(eleven), I(1)), DAG_E_LIMIT, "add", NULL);
    expect_err(call("sqrt", NULL, 1, A(eleven)), DAG_E_LIMIT, "sqrt", NULL);
    expect_err(call("where", NULL, 3, A(eleven), I(1), I(0)), DAG_E_LIMIT, "where", NULL);
    expect_err(call("rolling_mean", NULL, 2, A(eleven), I(2)), DAG_E_LIMIT, "rolling_mean", NULL);
    expect_err(call("cumsum", NULL, 1, IA(eleven)), DAG_E_LIMIT, "cumsum", NULL);
    expect_err(call("lookup", NULL, 2, J("{\"a\": 1}"), J("[\"a\", \"a\", \"a\", \"a\", \"a\", \"a\", \"a\", "
                                                           "\"a\", \"a\", \"a\", \"a\"]")),
               DAG_E_LIMIT, "lookup", NULL);
    expect_err(call("filter", NULL, 2, A(eleven), fill_ones(11)), DAG_E_LIMIT, "filter", NULL);
    heap_decref(ok(call("filter", NULL, 2, A(eleven), A(eleven)))); /* 0 drops one: ten kept */
    expect_err(call("graph", NULL, 2, IA(eleven), IA(eleven)), DAG_E_LIMIT, "graph", NULL);
    /* ten edges, but eleven nodes: the half-built graph is freed at once */
    expect_err(call("graph", NULL, 2, IA("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"), IA("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]")),
               DAG_E_LIMIT, "graph", NULL);
    assert_int_equal(live_objects(), before);
}

/* ====================================================================== */
/* Graph                                                                   */
/* ====================================================================== */

static heap_obj *edges_of(heap_obj *rec, const char *dir) { return heap_dict_get_str(rec, dir); }

static void graph_links_node_records_into_cycles(void **state)
{
    (void)state;
    heap_obj *g = ok(call("graph", NULL, 1, J("[[1, 2], [2, 3], [3, 1]]")));
    assert_int_equal(heap_dict_len(g), 3);
    heap_obj *n1 = heap_dict_get_int(g, 1), *n2 = heap_dict_get_int(g, 2), *n3 = heap_dict_get_int(g, 3);
    assert_non_null(n1);
    assert_non_null(n2);
    assert_non_null(n3);
    assert_int_equal(heap_int_value(heap_dict_get_str(n1, "id")), 1);
    assert_int_equal(heap_list_len(edges_of(n1, "out")), 1);
    assert_ptr_equal(heap_list_get(edges_of(n1, "out"), 0), n2); /* the record itself */
    assert_ptr_equal(heap_list_get(edges_of(n1, "in"), 0), n3);
    assert_ptr_equal(heap_list_get(edges_of(n3, "out"), 0), n1);

    for (int64_t start = 1; start <= 3; start++) {
        heap_incref(g);
        is_int(ok(call("graph_reach", NULL, 2, g, I(start))), 3);
    }

    /* the dict of nodes, 3 records, their 6 edge lists, the 3 key strs */
    assert_int_equal(live_objects() - baseline, 13);
    heap_decref(g);
    /* reference counting frees the dict, which nothing in the cycle holds;
     * the records hold each other and wait for the collector */
    assert_int_equal(live_objects() - baseline, 12);
    assert_true(gc_collect(2) > 0);
    assert_int_equal(live_objects(), baseline);
}

static void graph_reach_counts_what_out_edges_reach(void **state)
{
    (void)state;
    /* 1 -> 2 -> 3, 4 -> 1, 5 -> 5 */
    heap_obj *g = ok(call("graph", NULL, 2, IA("[1, 2, 4, 5]"), J("[2, 3, 1, 5]")));
    static const struct {
        int64_t start, reach;
    } cases[] = {{1, 3}, {2, 2}, {3, 1}, {4, 4}, {5, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        heap_incref(g);
        is_int(ok(call("graph_reach", NULL, 2, g, I(cases[i].start))), cases[i].reach);
    }
    heap_obj *n5 = heap_dict_get_int(g, 5);
    assert_ptr_equal(heap_list_get(edges_of(n5, "out"), 0), n5);
    heap_incref(g);
    expect_err(call("graph_reach", NULL, 2, g, I(9)), DAG_E_OP, "graph_reach", "9");
    heap_decref(g);
    gc_collect(2);

    /* float ids work when integral */
    g = ok(call("graph", NULL, 2, A("[1, 2]"), A("[2.0, 1]")));
    heap_incref(g);
    is_int(ok(call("graph_reach", NULL, 2, g, I(2))), 2);
    heap_decref(g);
    gc_collect(2);
    assert_int_equal(live_objects(), baseline);
}

static void graph_reach_walks_long_chains_without_recursion(void **state)
{
    (void)state;
    int64_t n = gc_stress() ? 500 : 200000;
    heap_obj *src = ok(call("range", NULL, 2, I(0), I(n - 1)));
    heap_obj *dst = ok(call("range", NULL, 2, I(1), I(n)));
    heap_obj *g = ok(call("graph", NULL, 2, src, dst));
    heap_incref(g);
    is_int(ok(call("graph_reach", NULL, 2, g, I(0))), n);
    heap_incref(g);
    is_int(ok(call("graph_reach", NULL, 2, g, I(n - 2))), 2);
    heap_decref(g);
    gc_collect(2);
    assert_int_equal(live_objects(), baseline);
}

static void graph_rejects_bad_edges(void **state)
{
    (void)state;
    expect_err(call("graph", NULL, 1, J("[[1]]")), DAG_E_TYPE, "graph", "edge 0");
    expect_err(call("graph", NULL, 1, J("[[1, 2], [1, \"a\"]]")), DAG_E_TYPE, "edge 1", "str");
    expect_err(call("graph", NULL, 1, A("[1, 2]")), DAG_E_TYPE, "graph", "float64 array");
    expect_err(call("graph", NULL, 2, IA("[1, 2]"), IA("[1]")), DAG_E_OP, "graph", "dst");
    expect_err(call("graph", NULL, 2, A("[1.5]"), A("[2]")), DAG_E_TYPE, "graph", "1.5");
    expect_err(call("graph_reach", NULL, 2, J("[1]"), I(1)), DAG_E_TYPE, "graph_reach", "list");
    expect_err(call("graph_reach", NULL, 2, J("{}"), S("1")), DAG_E_TYPE, "graph_reach", "str");
}

/* ====================================================================== */
/* Params and the table                                                    */
/* ====================================================================== */

/* Compiles params given as JSON text for op `op`; returns the result code
 * and leaves the message in err.  On success p must be freed. */
static int compile(const dag_op *op, const char *text, dag_params *p, char *err, size_t errlen)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    if (text)
        assert_non_null(j);
    err[0] = '\0';
    int rc = dag_params_compile(op, j, p, err, errlen);
    json_decref(j);
    return rc;
}

static void expect_compile_error(const char *opname, const char *text, const char *frag)
{
    dag_params p;
    char err[256];
    if (compile(dag_op_find(opname), text, &p, err, sizeof err) == DAG_OK) {
        dag_params_free(&p);
        fail_msg("%s %s: compiled", opname, text ? text : "(no params)");
    }
    if (!strstr(err, frag))
        fail_msg("%s %s: \"%s\" lacks \"%s\"", opname, text ? text : "(no params)", err, frag);
}

static void params_are_checked_against_the_spec(void **state)
{
    (void)state;
    dag_params p;
    char err[256];
    assert_int_equal(compile(dag_op_find("std"), "{\"ddof\": 0}", &p, err, sizeof err), DAG_OK);
    assert_non_null(dag_param_get(&p, "ddof"));
    assert_int_equal(dag_param_get(&p, "ddof")->i, 0);
    assert_null(dag_param_get(&p, "nope"));
    dag_params_free(&p);
    assert_int_equal(compile(dag_op_find("std"), NULL, &p, err, sizeof err), DAG_OK);
    assert_null(dag_param_get(&p, "ddof")); /* not given: the op's default applies */
    dag_params_free(&p);
    assert_null(dag_param_get(NULL, "ddof"));
    assert_int_equal(compile(dag_op_find("add"), "{}", &p, err, sizeof err), DAG_OK);
    dag_params_free(&p);

    expect_compile_error("std", "{\"bogus\": 1}", "bogus");
    expect_compile_error("add", "{\"x\": 1}", "takes no params");
    expect_compile_error("std", "{\"ddof\": \"1\"}", "ddof");
    expect_compile_error("std", "{\"ddof\": 1.5}", "ddof");
    expect_compile_error("field", "{\"name\": 3}", "name");
    expect_compile_error("group_sum", "{\"by\": \"a\"}", "value");
    expect_compile_error("make_record", "{\"names\": \"a\"}", "names");
    expect_compile_error("make_record", "{\"names\": [\"a\", 1]}", "names");
    expect_compile_error("std", "[1]", "object");

    assert_int_equal(compile(dag_op_find("make_record"), "{\"names\": [\"a\", \"b\"]}", &p, err, sizeof err), DAG_OK);
    const dag_param *names = dag_param_get(&p, "names");
    assert_int_equal(names->nstrs, 2);
    assert_string_equal(names->strs[1], "b");
    dag_params_free(&p);
}

/* DP_FLOAT takes an integer too; no op of the table has one, so a test op. */
static void float_params_accept_integers(void **state)
{
    (void)state;
    static const dag_param_spec spec[] = {{"scale", DP_FLOAT, true}, {"label", DP_STR, false}, {NULL, DP_INT, false}};
    const dag_op op = {.name = "scaled", .min_args = 1, .max_args = 1, .params = spec};
    dag_params p;
    char err[256];
    assert_int_equal(compile(&op, "{\"scale\": 2}", &p, err, sizeof err), DAG_OK);
    assert_true(dag_param_get(&p, "scale")->f == 2.0);
    assert_null(dag_param_get(&p, "label"));
    dag_params_free(&p);
    assert_int_equal(compile(&op, "{\"scale\": 0.25, \"label\": \"q\"}", &p, err, sizeof err), DAG_OK);
    assert_true(dag_param_get(&p, "scale")->f == 0.25);
    assert_string_equal(dag_param_get(&p, "label")->s, "q");
    dag_params_free(&p);
    assert_int_equal(compile(&op, "{\"scale\": \"2\"}", &p, err, sizeof err), DAG_ERR);
    assert_non_null(strstr(err, "scale"));
}

static void check_hooks_enforce_arity_and_values(void **state)
{
    (void)state;
    const dag_op *mr = dag_op_find("make_record");
    assert_non_null(mr->check);
    dag_params p;
    char err[256];
    assert_int_equal(compile(mr, "{\"names\": [\"a\", \"b\"]}", &p, err, sizeof err), DAG_OK);
    assert_int_equal(mr->check(2, &p, err, sizeof err), DAG_OK);
    assert_int_equal(mr->check(1, &p, err, sizeof err), DAG_ERR);
    assert_non_null(strstr(err, "2 names, 1 args"));
    assert_int_equal(mr->check(3, &p, err, sizeof err), DAG_ERR);
    dag_params_free(&p);
    assert_int_equal(compile(mr, "{\"names\": [\"a\", \"a\"]}", &p, err, sizeof err), DAG_OK);
    assert_int_equal(mr->check(2, &p, err, sizeof err), DAG_ERR);
    assert_non_null(strstr(err, "twice"));
    dag_params_free(&p);

    const dag_op *sd = dag_op_find("std");
    assert_int_equal(compile(sd, "{\"ddof\": -1}", &p, err, sizeof err), DAG_OK);
    assert_int_equal(sd->check(1, &p, err, sizeof err), DAG_ERR);
    assert_non_null(strstr(err, "ddof"));
    dag_params_free(&p);

    /* run without the check, the ops still refuse cleanly */
    dag_op_ctx ctx = {.max_elems = 100};
    heap_obj *args[1] = {I(1)}, *out = NULL;
    assert_int_equal(compile(mr, "{\"names\": [\"a\", \"b\"]}", &p, err, sizeof err), DAG_OK);
    assert_int_equal(mr->run(&ctx, args, 1, &p, &out), DAG_ERR);
    assert_string_equal(ctx.code, DAG_E_OP);
    dag_params_free(&p);
    assert_int_equal(compile(dag_op_find("field"), NULL, &p, err, sizeof err), DAG_OK); /* the check's to refuse */
    dag_params_free(&p);
    assert_int_equal(dag_op_find("field")->run(&ctx, args, 1, NULL, &out), DAG_ERR);
    assert_string_equal(ctx.code, DAG_E_OP);
    assert_null(out);
    heap_decref(args[0]);
}

/* field(records, name), the name as an argument, or with param name: one
 * of the two, checked when the DAG loads; column alike. */
static void field_and_column_take_the_name_as_an_arg_or_a_param(void **state)
{
    (void)state;
    heap_obj *r = ok(call("field", NULL, 2, J("[{\"spend\": 1.5}, {\"spend\": 2.5}]"), S("spend")));
    assert_int_equal(heap_list_len(r), 2);
    assert_true(heap_float_value(heap_list_get(r, 1)) == 2.5);
    heap_decref(r);
    expect_err(call("field", NULL, 2, J("[{\"spend\": 1.5}]"), I(3)), DAG_E_TYPE, "name", "int");

    for (int k = 0; k < 2; k++) {
        const dag_op *op = dag_op_find(k ? "column" : "field");
        dag_params p = {0};
        char err[256];
        assert_int_equal(compile(op, "{\"name\": \"spend\"}", &p, err, sizeof err), DAG_OK);
        assert_int_equal(op->check(1, &p, err, sizeof err), DAG_OK);
        assert_int_equal(op->check(2, &p, err, sizeof err), DAG_ERR);
        assert_non_null(strstr(err, "twice"));
        dag_params_free(&p);
        assert_int_equal(op->check(2, NULL, err, sizeof err), DAG_OK);
        assert_int_equal(op->check(1, NULL, err, sizeof err), DAG_ERR);
        assert_non_null(strstr(err, "needs a name"));
    }
}

static void the_table_lists_every_op_with_its_doc(void **state)
{
    (void)state;
    static const char *const names[] = {
        "add",  "sub",  "mul",  "div",   "pow",          "mod",         "neg",    "abs",         "sqrt",
        "log",  "exp",  "clip", "gt",    "lt",           "eq",          "where",  "sum",         "mean",
        "std",  "min",  "max",  "count", "rolling_mean", "rolling_sum", "cumsum", "shift",       "diff",
        "lookup", "field", "row_sum", "make_record", "column", "filter", "group_sum", "group_mean", "range",
        "fill", "graph", "graph_reach",
    };
    size_t n = sizeof names / sizeof *names;
    assert_int_equal(dag_op_count(), n);
    for (size_t i = 0; i < n; i++) {
        const dag_op *op = dag_op_find(names[i]);
        if (!op)
            fail_msg("no op %s", names[i]);
        assert_non_null(op->run);
        assert_true(op->min_args >= 0);
        assert_true(op->max_args < 0 || op->max_args >= op->min_args);
        assert_non_null(op->doc);
        /* each doc opens with the op's own signature */
        assert_int_equal(strncmp(op->doc, names[i], strlen(names[i])), 0);
        assert_int_equal(op->doc[strlen(names[i])], '(');
    }
    for (size_t i = 0; i < dag_op_count(); i++)
        assert_ptr_equal(dag_op_find(dag_op_at(i)->name), dag_op_at(i));
    assert_null(dag_op_at(dag_op_count()));
    assert_null(dag_op_find("nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(elementwise_broadcasts_a_number_both_ways),
        T(elementwise_pairs_arrays_and_lists),
        T(int_inputs_keep_ints_where_documented),
        T(mod_follows_python_signs),
        T(mod_by_zero_is_an_op_error),
        T(division_by_zero_follows_ieee),
        T(unary_math),
        T(clip_bounds_each_element),
        T(comparisons_give_flags_or_bools),
        T(where_picks_by_condition),
        T(wrong_kinds_are_type_errors),
        T(sequences_of_different_lengths_are_op_errors),
        T(sum_keeps_ints_and_adds_floats),
        T(mean_min_max_and_count),
        T(std_follows_ddof),
        T(rolling_windows_match_pandas),
        T(rolling_window_must_be_a_positive_int),
        T(cumsum_shift_and_diff),
        T(hamilton_hello_world_numbers),
        T(lookup_returns_the_values_themselves),
        T(lookup_names_a_missing_key),
        T(field_reads_one_field_of_each_record),
        T(field_and_column_take_the_name_as_an_arg_or_a_param),
        T(row_sum_sums_each_row),
        T(make_record_pairs_names_with_args),
        T(column_returns_the_column),
        T(filter_keeps_rows_where_the_mask_is_nonzero),
        T(group_sum_and_mean_by_first_appearance),
        T(range_and_fill_build_arrays),
        T(results_over_the_limit_fail_before_allocating),
        T(graph_links_node_records_into_cycles),
        T(graph_reach_counts_what_out_edges_reach),
        T(graph_reach_walks_long_chains_without_recursion),
        T(graph_rejects_bad_edges),
        T(params_are_checked_against_the_spec),
        T(float_params_accept_integers),
        T(check_hooks_enforce_arity_and_values),
        T(the_table_lists_every_op_with_its_doc),
#undef T
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
