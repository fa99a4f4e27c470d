/* ops_internal: what the op families share and nothing outside dag/ops*.c
 * sees: error and limit helpers, and the numeric views ops read their
 * arguments through.  Calling convention and value kinds: dag/ops.h.
 *
 * The helpers are static inline: ops call them on every argument, and each
 * family's file inlines them into its ops as one file holding every op
 * would (bench/bench_dag.c, "request", measures the difference). */
#ifndef COWDAG_OPS_INTERNAL_H
#define COWDAG_OPS_INTERNAL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "dag/ops.h"

/* ====================================================================== */
/* {  Errors and limits                                                   */
/* ====================================================================== */

/* What a value is, for messages: arrays say their dtype. */
static inline const char *kind_of(const heap_obj *o)
{
    if (heap_type_of(o) == HT_ARRAY)
        return heap_array_dtype(o) == HD_I64 ? "int64 array" : "float64 array";
    return heap_type_name(heap_type_of(o));
}

static inline int type_fail(dag_op_ctx *ctx, const char *op, const char *what, const char *want, const heap_obj *got)
{
    return dag_op_fail(ctx, DAG_E_TYPE, "%s: %s must be %s, got %s", op, what, want, kind_of(got));
}

/* Every op that creates an array, list or dict asks here first, before it
 * allocates anything, so that a huge request fails instead of aborting in
 * the allocator. */
static inline int limit_check(dag_op_ctx *ctx, const char *op, uint64_t n)
{
    if (n > ctx->max_elems)
        return dag_op_fail(ctx, DAG_E_LIMIT, "%s: a result of %" PRIu64 " elements exceeds the limit of %" PRIu64,
                           op, n, ctx->max_elems);
    uint64_t live = heap_live_bytes(), held = live > ctx->base_bytes ? live - ctx->base_bytes : 0;
    if (ctx->max_bytes && held + 8 * n > ctx->max_bytes)
        return dag_op_fail(ctx, DAG_E_LIMIT,
                           "%s: a result of %" PRIu64 " elements would take the run past its budget of %" PRIu64
                           " bytes (max_run_bytes)",
                           op, n, ctx->max_bytes);
    return DAG_OK;
}

/* A new float64 / int64 array of n elements, after the limit check.  The
 * contents are undefined: the caller writes every element. */
static inline int new_f64(dag_op_ctx *ctx, const char *op, size_t n, heap_obj **arr, double **data)
{
    if (limit_check(ctx, op, n))
        return DAG_ERR;
    *arr = heap_array_new_uninit(HD_F64, n);
    *data = heap_array_f64(*arr);
    return DAG_OK;
}

static inline int new_i64(dag_op_ctx *ctx, const char *op, size_t n, heap_obj **arr, int64_t **data)
{
    if (limit_check(ctx, op, n))
        return DAG_ERR;
    *arr = heap_array_new_uninit(HD_I64, n);
    *data = heap_array_i64(*arr);
    return DAG_OK;
}

/* A required string param at run time (compile has checked it; an op run
 * without compiled params still fails cleanly). */
static inline int param_str(dag_op_ctx *ctx, const char *op, const dag_params *params, const char *name, const char **out)
{
    const dag_param *v = dag_param_get(params, name);
    if (!v || v->type != DP_STR)
        return dag_op_fail(ctx, DAG_E_OP, "%s: missing param '%s'", op, name);
    *out = v->s;
    return DAG_OK;
}

/* The name a field or column op reads: its second arg (a str), or its
 * param. */
static inline int name_of(dag_op_ctx *ctx, const char *op, heap_obj *const *args, size_t nargs, const dag_params *params,
                   const char **out)
{
    if (nargs < 2)
        return param_str(ctx, op, params, "name", out);
    if (heap_type_of(args[1]) != HT_STR)
        return type_fail(ctx, op, "name", "a str", args[1]);
    *out = heap_str_data(args[1]);
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Numeric views                                                       */
/* ====================================================================== */

/* How an op reads a "numeric" argument.  Numbers are sequences of one with
 * seq false (broadcast); arrays are read in place; a list is converted once
 * into a malloc'ed float64 buffer.  num_f64/num_ints give the float64 and
 * exact int64 views; num_free drops the scratch.  A view holds no heap
 * reference: the argument outlives the op. */
typedef struct num {
    bool seq;          /* an array or a list (else a number) */
    bool is_int;       /* an int, or an int64 array: exact int64 values */
    bool all_ints;     /* a list whose items are all ints */
    size_t n;          /* elements (1 for a number) */
    heap_obj *list;    /* the list, when it is one */
    const double *f;   /* float64 data of a float64 array or list */
    const int64_t *i;  /* data of an int64 array */
    double fs;         /* a number's value */
    int64_t is;        /* an int's value */
    double *ftmp;      /* scratch: list or int64 array read as float64 */
    int64_t *itmp;     /* scratch: list of ints read as int64 */
    double inl[16];    /* a short list's float64 copy: no scratch to allocate */
} num;

static const char NUMERIC[] = "numeric (a number, an array or a list of numbers)";
static const char SEQUENCE[] = "a sequence (an array or a list of numbers)";

static inline int num_load(dag_op_ctx *ctx, const char *op, const char *what, heap_obj *o, num *v)
{
    /* Every member but the inline buffer (zeroing it would cost as much as
     * reading a short list). */
    v->seq = v->is_int = v->all_ints = false;
    v->n = 1;
    v->list = NULL;
    v->f = NULL;
    v->i = NULL;
    v->fs = 0.0;
    v->is = 0;
    v->ftmp = NULL;
    v->itmp = NULL;
    switch (heap_type_of(o)) {
    case HT_INT:
        v->is_int = true;
        v->is = heap_int_value(o);
        v->fs = (double)v->is;
        return DAG_OK;
    case HT_FLOAT:
        v->fs = heap_float_value(o);
        return DAG_OK;
    case HT_ARRAY:
        v->seq = true;
        v->n = heap_array_len(o);
        if (heap_array_dtype(o) == HD_I64) {
            v->is_int = true;
            v->i = heap_array_i64(o);
        } else {
            v->f = heap_array_f64(o);
        }
        return DAG_OK;
    case HT_LIST: {
        /* Read as an interpreter reads the items: holding a reference to
         * each meanwhile.  That is what copies a shared page in a worker
         * (one write to the item's header); in immortal mode it writes
         * nothing.  cowdag reproduces the cost, as its modes remove it. */
        size_t n = heap_list_len(o);
        double *t = n <= sizeof v->inl / sizeof v->inl[0] ? v->inl : base_malloc(n * sizeof *t);
        bool ints;
        size_t got = heap_list_read_f64(o, t, &ints);
        if (got < n) {
            if (t != v->inl)
                free(t);
            return dag_op_fail(ctx, DAG_E_TYPE, "%s: %s: item %zu of the list must be a number, got %s", op, what,
                               got, kind_of(heap_list_get(o, got)));
        }
        v->seq = true;
        v->n = n;
        v->list = o;
        v->all_ints = ints;
        v->f = t;
        v->ftmp = t == v->inl ? NULL : t;
        return DAG_OK;
    }
    default:
        return type_fail(ctx, op, what, NUMERIC, o);
    }
}

/* The same, for arguments that must be sequences. */
static inline int seq_load(dag_op_ctx *ctx, const char *op, const char *what, heap_obj *o, num *v)
{
    if (num_load(ctx, op, what, o, v) != DAG_OK)
        return DAG_ERR;
    if (!v->seq)
        return type_fail(ctx, op, what, SEQUENCE, o);
    return DAG_OK;
}

/* float64 view: the number itself, the array's data, or a converted copy. */
static inline const double *num_f64(num *v)
{
    if (!v->seq)
        return &v->fs;
    if (v->is_int && !v->ftmp) {
        size_t n = v->n;
        const int64_t *restrict src = v->i;
        double *restrict t = base_malloc(n * sizeof *t);
        for (size_t k = 0; k < n; k++)
            t[k] = (double)src[k];
        v->f = v->ftmp = t;
    }
    return v->f;
}

/* Whether the values are exact ints: an int, an int64 array, a list of ints. */
static inline bool num_exact(const num *v) { return v->is_int || v->all_ints; }

/* int64 view, for num_exact values only. */
static inline const int64_t *num_ints(num *v)
{
    if (!v->seq)
        return &v->is;
    if (v->is_int)
        return v->i;
    if (!v->itmp) {
        int64_t *t = base_malloc(v->n * sizeof *t);
        for (size_t k = 0; k < v->n; k++)
            t[k] = heap_int_value(heap_list_get(v->list, k));
        v->itmp = t;
    }
    return v->itmp;
}

static inline void num_free(num *v)
{
    if (v->ftmp) { /* usually neither: no call per row of a row_sum */
        free(v->ftmp);
        v->ftmp = NULL;
    }
    if (v->itmp) {
        free(v->itmp);
        v->itmp = NULL;
    }
}

/* The length an elementwise op produces over operands that are sequences or
 * numbers: that of the sequences, which must agree (DAG_E_OP).  *any says
 * whether there was a sequence at all. */
static inline int common_len(dag_op_ctx *ctx, const char *op, num *const *v, size_t k, size_t *n, bool *any)
{
    *any = false;
    *n = 1;
    for (size_t j = 0; j < k; j++) {
        if (!v[j]->seq)
            continue;
        if (!*any) {
            *n = v[j]->n;
            *any = true;
        } else if (v[j]->n != *n) {
            return dag_op_fail(ctx, DAG_E_OP, "%s: lengths differ (%zu and %zu)", op, *n, v[j]->n);
        }
    }
    return DAG_OK;
}

/* A float with an integral value as an int64 (a JSON literal such as 1e6
 * arrives as a float); false for nan, infinities and what int64 cannot hold. */
static inline bool f64_to_i64(double x, int64_t *out)
{
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
        return false; /* NaN too */
    int64_t k = (int64_t)x;
    if ((double)k != x)
        return false;
    *out = k;
    return true;
}

/* An int argument (a count, a window, a period): a heap int, or a float
 * with an integral value.  DAG_ERR (a type_error) otherwise. */
int dag__arg_int(dag_op_ctx *ctx, const char *op, const char *what, const heap_obj *o, int64_t *out);

/* Magnitude of a period, clamped to n (works for INT64_MIN too). */
static inline size_t clamp_mag(int64_t p, size_t n)
{
    uint64_t m = p < 0 ? (uint64_t)0 - (uint64_t)p : (uint64_t)p;
    return m < n ? (size_t)m : n;
}

/* Sum with four accumulators: gcc vectorises it at -O2 (a single running
 * sum would pin the order of additions), and the split also loses less
 * precision than one long chain. */
static inline double sum_f64(const double *restrict v, size_t n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += v[k];
        s1 += v[k + 1];
        s2 += v[k + 2];
        s3 += v[k + 3];
    }
    for (; k < n; k++)
        s0 += v[k];
    return (s0 + s1) + (s2 + s3);
}

/* int64 arithmetic wraps on overflow, as numpy's does (and without the
 * undefined behaviour of signed overflow in C). */
static inline int64_t wrap_add(int64_t x, int64_t y) { return (int64_t)((uint64_t)x + (uint64_t)y); }
static inline int64_t wrap_sub(int64_t x, int64_t y) { return (int64_t)((uint64_t)x - (uint64_t)y); }
static inline int64_t wrap_mul(int64_t x, int64_t y) { return (int64_t)((uint64_t)x * (uint64_t)y); }
static inline int64_t wrap_neg(int64_t x) { return (int64_t)((uint64_t)0 - (uint64_t)x); }

/* The element count of an array, list, dict or table (its rows); false for
 * anything else. */
static inline bool collection_len(const heap_obj *x, size_t *n)
{
    switch (heap_type_of(x)) {
    case HT_ARRAY:
        *n = heap_array_len(x);
        return true;
    case HT_LIST:
        *n = heap_list_len(x);
        return true;
    case HT_DICT:
        *n = heap_dict_len(x);
        return true;
    case HT_TABLE:
        *n = heap_table_nrows(x);
        return true;
    default:
        return false;
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The ops, by family (the table in dag/ops.c names them)              */
/* ====================================================================== */

/* dag/ops_math.c: elementwise, reductions, windows */
int dag__op_abs(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_add(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_clip(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_count(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_cumsum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_diff(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_div(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_eq(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_exp(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_gt(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_log(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_lt(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_max(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_min(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_mod(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_mul(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_neg(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_pow(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_rolling_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_rolling_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_shift(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_sqrt(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_std(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_sub(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_where(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__std_check(size_t nargs, const dag_params *params, char *err, size_t errlen);

/* dag/ops_records.c: records and tables */
int dag__op_column(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_field(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_filter(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_group_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_group_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_lookup(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_make_record(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_row_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__make_record_check(size_t nargs, const dag_params *params, char *err, size_t errlen);

/* dag/ops_graph.c: constructors and graph */
int dag__op_fill(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_graph(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_graph_reach(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);
int dag__op_range(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);

/* }====================================================================== */

#endif
