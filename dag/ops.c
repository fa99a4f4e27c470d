/* ops.c: the op library -- params, the numeric views ops read arguments
 * through, the ops, and the table naming them.  Calling convention and value
 * kinds: dag/ops.h; each op's reference is its `doc` in the table at the end. */
#include "dag/ops.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

/* ====================================================================== */
/* {  Errors, limits, scratch memory                                       */
/* ====================================================================== */

int dag_op_fail(dag_op_ctx *ctx, const char *code, const char *fmt, ...)
{
    va_list ap;
    ctx->code = code;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
    return DAG_ERR;
}

/* What a value is, for messages: arrays say their dtype. */
static const char *kind_of(const heap_obj *o)
{
    if (heap_type_of(o) == HT_ARRAY)
        return heap_array_dtype(o) == HD_I64 ? "int64 array" : "float64 array";
    return heap_type_name(heap_type_of(o));
}

static int type_fail(dag_op_ctx *ctx, const char *op, const char *what, const char *want, const heap_obj *got)
{
    return dag_op_fail(ctx, DAG_E_TYPE, "%s: %s must be %s, got %s", op, what, want, kind_of(got));
}

/* Every op that creates an array, list or dict asks here first, before it
 * allocates anything, so that a huge request fails instead of aborting in
 * the allocator. */
static int limit_check(dag_op_ctx *ctx, const char *op, uint64_t n)
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

/* Scratch buffers live outside the heap (malloc) and never outlive an op.
 * Running out of memory aborts, as it does in the heap. */

/* A new float64 / int64 array of n elements, after the limit check.  The
 * contents are undefined: the caller writes every element. */
static int new_f64(dag_op_ctx *ctx, const char *op, size_t n, heap_obj **arr, double **data)
{
    if (limit_check(ctx, op, n))
        return DAG_ERR;
    *arr = heap_array_new_uninit(HD_F64, n);
    *data = heap_array_f64(*arr);
    return DAG_OK;
}

static int new_i64(dag_op_ctx *ctx, const char *op, size_t n, heap_obj **arr, int64_t **data)
{
    if (limit_check(ctx, op, n))
        return DAG_ERR;
    *arr = heap_array_new_uninit(HD_I64, n);
    *data = heap_array_i64(*arr);
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Params                                                               */
/* ====================================================================== */


static const char *ptype_name(dag_ptype t)
{
    switch (t) {
    case DP_INT:
        return "an int";
    case DP_FLOAT:
        return "a number";
    case DP_STR:
        return "a string";
    case DP_STRLIST:
        return "a list of strings";
    }
    return "?";
}

static size_t spec_count(const dag_op *op)
{
    size_t n = 0;
    if (op->params)
        while (op->params[n].name)
            n++;
    return n;
}

/* The names an op accepts, for the "unknown param" message. */
static void spec_names(const dag_op *op, char *buf, size_t len)
{
    size_t n = spec_count(op), at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < len; i++) {
        int w = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", op->params[i].name);
        if (w < 0)
            break;
        at += (size_t)w;
    }
}

/* Fills one compiled param from its JSON value; DAG_ERR if it has the
 * wrong type. */
static int param_read(const dag_param_spec *spec, const json_t *j, dag_param *v, char *err, size_t errlen)
{
    switch (spec->type) {
    case DP_INT:
        if (!json_is_integer(j))
            break;
        v->i = json_integer_value(j);
        v->f = (double)v->i;
        return DAG_OK;
    case DP_FLOAT:
        if (!json_is_number(j))
            break;
        v->f = json_number_value(j);
        return DAG_OK;
    case DP_STR:
        if (!json_is_string(j))
            break;
        v->s = base_strdup(json_string_value(j));
        return DAG_OK;
    case DP_STRLIST: {
        if (!json_is_array(j))
            break;
        size_t n = json_array_size(j);
        for (size_t k = 0; k < n; k++)
            if (!json_is_string(json_array_get(j, k)))
                return base_errf(err, errlen, "param '%s': item %zu must be a string, got %s", spec->name, k,
                            dag_json_kind(json_array_get(j, k)));
        v->strs = base_malloc(n * sizeof *v->strs);
        for (size_t k = 0; k < n; k++)
            v->strs[k] = base_strdup(json_string_value(json_array_get(j, k)));
        v->nstrs = n;
        return DAG_OK;
    }
    }
    return base_errf(err, errlen, "param '%s' must be %s, got %s", spec->name, ptype_name(spec->type), dag_json_kind(j));
}

int dag_params_compile(const dag_op *op, const json_t *params, dag_params *p, char *err, size_t errlen)
{
    *p = (dag_params){0};
    if (params && json_is_null(params))
        params = NULL;
    if (params && !json_is_object(params))
        return base_errf(err, errlen, "params must be an object, got %s", dag_json_kind(params));

    size_t nspec = spec_count(op);
    if (params) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)params, key, val) {
            size_t k = 0;
            while (k < nspec && strcmp(op->params[k].name, key) != 0)
                k++;
            if (k == nspec) {
                char names[160];
                spec_names(op, names, sizeof names);
                if (nspec)
                    return base_errf(err, errlen, "unknown param '%s' (%s takes: %s)", key, op->name, names);
                return base_errf(err, errlen, "unknown param '%s' (%s takes no params)", key, op->name);
            }
        }
    }

    if (!nspec)
        return DAG_OK;
    p->v = base_malloc(nspec * sizeof *p->v);
    p->n = nspec;
    for (size_t k = 0; k < nspec; k++)
        p->v[k] = (dag_param){.name = op->params[k].name, .type = op->params[k].type};
    for (size_t k = 0; k < nspec; k++) {
        const dag_param_spec *spec = &op->params[k];
        const json_t *j = params ? json_object_get(params, spec->name) : NULL;
        if (!j) {
            if (spec->required) {
                dag_params_free(p);
                return base_errf(err, errlen, "missing required param '%s' (%s)", spec->name, ptype_name(spec->type));
            }
            continue;
        }
        if (param_read(spec, j, &p->v[k], err, errlen) != DAG_OK) {
            dag_params_free(p);
            return DAG_ERR;
        }
        p->v[k].set = true;
    }
    return DAG_OK;
}

void dag_params_free(dag_params *p)
{
    for (size_t k = 0; k < p->n; k++) {
        free(p->v[k].s);
        for (size_t s = 0; s < p->v[k].nstrs; s++)
            free(p->v[k].strs[s]);
        free(p->v[k].strs);
    }
    free(p->v);
    *p = (dag_params){0};
}

const dag_param *dag_param_get(const dag_params *p, const char *name)
{
    if (!p)
        return NULL;
    for (size_t k = 0; k < p->n; k++)
        if (p->v[k].set && strcmp(p->v[k].name, name) == 0)
            return &p->v[k];
    return NULL;
}

/* A required string param at run time (compile has checked it; an op run
 * without compiled params still fails cleanly). */
static int param_str(dag_op_ctx *ctx, const char *op, const dag_params *params, const char *name, const char **out)
{
    const dag_param *v = dag_param_get(params, name);
    if (!v || v->type != DP_STR)
        return dag_op_fail(ctx, DAG_E_OP, "%s: missing param '%s'", op, name);
    *out = v->s;
    return DAG_OK;
}

static int name_check(size_t nargs, const dag_params *params, char *err, size_t errlen)
{
    bool param = dag_param_get(params, "name") != NULL;
    if (nargs == 2 && param)
        return base_errf(err, errlen, "the name is given twice: as a second arg and as param 'name'");
    if (nargs == 1 && !param)
        return base_errf(err, errlen, "needs a name: a second arg, or param 'name'");
    return DAG_OK;
}

/* The name a field or column op reads: its second arg (a str), or its
 * param. */
static int name_of(dag_op_ctx *ctx, const char *op, heap_obj *const *args, size_t nargs, const dag_params *params,
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
/* {  Numeric views                                                        */
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

static int num_load(dag_op_ctx *ctx, const char *op, const char *what, heap_obj *o, num *v)
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
static int seq_load(dag_op_ctx *ctx, const char *op, const char *what, heap_obj *o, num *v)
{
    if (num_load(ctx, op, what, o, v) != DAG_OK)
        return DAG_ERR;
    if (!v->seq)
        return type_fail(ctx, op, what, SEQUENCE, o);
    return DAG_OK;
}

/* float64 view: the number itself, the array's data, or a converted copy. */
static const double *num_f64(num *v)
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
static bool num_exact(const num *v) { return v->is_int || v->all_ints; }

/* int64 view, for num_exact values only. */
static const int64_t *num_ints(num *v)
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

static void num_free(num *v)
{
    free(v->ftmp);
    free(v->itmp);
    v->ftmp = NULL;
    v->itmp = NULL;
}

/* The length an elementwise op produces over operands that are sequences or
 * numbers: that of the sequences, which must agree (DAG_E_OP).  *any says
 * whether there was a sequence at all. */
static int common_len(dag_op_ctx *ctx, const char *op, num *const *v, size_t k, size_t *n, bool *any)
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

/* An int argument (a count, a window, a period): a heap int, or a float
 * with an integral value, since a JSON literal such as 1e6 arrives as one. */
static bool f64_to_i64(double x, int64_t *out)
{
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
        return false; /* NaN too */
    int64_t k = (int64_t)x;
    if ((double)k != x)
        return false;
    *out = k;
    return true;
}

static int arg_int(dag_op_ctx *ctx, const char *op, const char *what, const heap_obj *o, int64_t *out)
{
    if (heap_type_of(o) == HT_INT) {
        *out = heap_int_value(o);
        return DAG_OK;
    }
    if (heap_type_of(o) == HT_FLOAT && f64_to_i64(heap_float_value(o), out))
        return DAG_OK;
    return type_fail(ctx, op, what, "an int", o);
}

/* Magnitude of a period, clamped to n (works for INT64_MIN too). */
static size_t clamp_mag(int64_t p, size_t n)
{
    uint64_t m = p < 0 ? (uint64_t)0 - (uint64_t)p : (uint64_t)p;
    return m < n ? (size_t)m : n;
}

/* Sum with four accumulators: gcc vectorises it at -O2 (a single running
 * sum would pin the order of additions), and the split also loses less
 * precision than one long chain. */
static double sum_f64(const double *restrict v, size_t n)
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

/* }====================================================================== */

/* ====================================================================== */
/* {  Elementwise                                                          */
/* ====================================================================== */

/* r[i] = EXPR for i < n, with x bound to a[i] (or a[0] when a is a number)
 * and y likewise to b.  One plain loop per shape, so each vectorises. */
#define BCAST2(T, n, r, a, aseq, b, bseq, EXPR)                                                                       \
    do {                                                                                                              \
        if ((aseq) && (bseq)) {                                                                                       \
            for (size_t i_ = 0; i_ < (n); i_++) {                                                                     \
                const T x = (a)[i_], y = (b)[i_];                                                                     \
                (r)[i_] = (EXPR);                                                                                     \
            }                                                                                                         \
        } else if (aseq) {                                                                                            \
            const T y = (b)[0];                                                                                       \
            for (size_t i_ = 0; i_ < (n); i_++) {                                                                     \
                const T x = (a)[i_];                                                                                  \
                (r)[i_] = (EXPR);                                                                                     \
            }                                                                                                         \
        } else if (bseq) {                                                                                            \
            const T x = (a)[0];                                                                                       \
            for (size_t i_ = 0; i_ < (n); i_++) {                                                                     \
                const T y = (b)[i_];                                                                                  \
                (r)[i_] = (EXPR);                                                                                     \
            }                                                                                                         \
        } else {                                                                                                      \
            const T x = (a)[0], y = (b)[0];                                                                           \
            for (size_t i_ = 0; i_ < (n); i_++)                                                                       \
                (r)[i_] = (EXPR);                                                                                     \
        }                                                                                                             \
    } while (0)

typedef enum binop { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MOD, B_GT, B_LT, B_EQ } binop;

static const char *const binop_names[] = {"add", "sub", "mul", "div", "pow", "mod", "gt", "lt", "eq"};

static bool binop_keeps_int(binop bo) { return bo == B_ADD || bo == B_SUB || bo == B_MUL || bo == B_MOD; }
static bool binop_compares(binop bo) { return bo == B_GT || bo == B_LT || bo == B_EQ; }

/* Python's modulo: the result takes the divisor's sign.  y != 0 (checked
 * before); y == -1 is special-cased because INT64_MIN % -1 traps. */
static inline int64_t imod(int64_t x, int64_t y)
{
    if (y == -1)
        return 0;
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0)))
        r += y;
    return r;
}

static inline double fmod_py(double x, double y)
{
    double r = fmod(x, y);
    if (r != 0.0) {
        if ((r < 0.0) != (y < 0.0))
            r += y;
    } else {
        r = copysign(0.0, y);
    }
    return r;
}

static void f64_binary(binop bo, size_t n, const double *restrict a, bool as, const double *restrict b, bool bs,
                       double *restrict r)
{
    switch (bo) {
    case B_ADD:
        BCAST2(double, n, r, a, as, b, bs, x + y);
        break;
    case B_SUB:
        BCAST2(double, n, r, a, as, b, bs, x - y);
        break;
    case B_MUL:
        BCAST2(double, n, r, a, as, b, bs, x * y);
        break;
    case B_DIV:
        BCAST2(double, n, r, a, as, b, bs, x / y);
        break;
    case B_POW:
        BCAST2(double, n, r, a, as, b, bs, pow(x, y));
        break;
    case B_MOD:
        BCAST2(double, n, r, a, as, b, bs, fmod_py(x, y));
        break;
    case B_GT:
        BCAST2(double, n, r, a, as, b, bs, x > y ? 1.0 : 0.0);
        break;
    case B_LT:
        BCAST2(double, n, r, a, as, b, bs, x < y ? 1.0 : 0.0);
        break;
    case B_EQ:
        BCAST2(double, n, r, a, as, b, bs, x == y ? 1.0 : 0.0);
        break;
    }
}

/* int64 operands: arithmetic into int64, comparisons (exact) into flags. */
static void i64_binary(binop bo, size_t n, const int64_t *restrict a, bool as, const int64_t *restrict b, bool bs,
                       int64_t *restrict r)
{
    switch (bo) {
    case B_ADD:
        BCAST2(int64_t, n, r, a, as, b, bs, wrap_add(x, y));
        break;
    case B_SUB:
        BCAST2(int64_t, n, r, a, as, b, bs, wrap_sub(x, y));
        break;
    case B_MUL:
        BCAST2(int64_t, n, r, a, as, b, bs, wrap_mul(x, y));
        break;
    case B_MOD:
        BCAST2(int64_t, n, r, a, as, b, bs, imod(x, y));
        break;
    default:
        heap_panic("i64_binary: %s does not keep ints", binop_names[bo]);
    }
}

static void i64_compare(binop bo, size_t n, const int64_t *restrict a, bool as, const int64_t *restrict b, bool bs,
                        double *restrict r)
{
    switch (bo) {
    case B_GT:
        BCAST2(int64_t, n, r, a, as, b, bs, x > y ? 1.0 : 0.0);
        break;
    case B_LT:
        BCAST2(int64_t, n, r, a, as, b, bs, x < y ? 1.0 : 0.0);
        break;
    case B_EQ:
        BCAST2(int64_t, n, r, a, as, b, bs, x == y ? 1.0 : 0.0);
        break;
    default:
        heap_panic("i64_compare: %s is not a comparison", binop_names[bo]);
    }
}

static bool has_zero(num *v)
{
    if (v->is_int) {
        const int64_t *restrict p = num_ints(v);
        bool z = false;
        for (size_t k = 0; k < v->n; k++)
            z |= p[k] == 0;
        return z;
    }
    const double *restrict p = num_f64(v);
    bool z = false;
    for (size_t k = 0; k < v->n; k++)
        z |= p[k] == 0.0;
    return z;
}

/* Two numbers: an int, a float or a bool. */
static heap_obj *binary_scalar(binop bo, num *a, num *b)
{
    bool ints = a->is_int && b->is_int;
    if (binop_compares(bo)) {
        bool r;
        if (ints)
            r = bo == B_GT ? a->is > b->is : bo == B_LT ? a->is < b->is : a->is == b->is;
        else
            r = bo == B_GT ? a->fs > b->fs : bo == B_LT ? a->fs < b->fs : a->fs == b->fs;
        return heap_bool(r);
    }
    if (ints && binop_keeps_int(bo)) {
        int64_t r;
        i64_binary(bo, 1, &a->is, false, &b->is, false, &r);
        return heap_int_new(r);
    }
    double r;
    f64_binary(bo, 1, &a->fs, false, &b->fs, false, &r);
    return heap_float_new(r);
}

static int binary(dag_op_ctx *ctx, binop bo, heap_obj *const *args, heap_obj **out)
{
    const char *op = binop_names[bo];
    num a, b;
    if (num_load(ctx, op, "argument 1", args[0], &a) != DAG_OK)
        return DAG_ERR;
    if (num_load(ctx, op, "argument 2", args[1], &b) != DAG_OK) {
        num_free(&a);
        return DAG_ERR;
    }
    num *both[2] = {&a, &b};
    size_t n;
    bool any;
    int rc = common_len(ctx, op, both, 2, &n, &any);
    if (rc == DAG_OK && bo == B_MOD && has_zero(&b))
        rc = dag_op_fail(ctx, DAG_E_OP, "%s: modulo by zero", op);
    if (rc == DAG_OK && !any) {
        *out = binary_scalar(bo, &a, &b);
    } else if (rc == DAG_OK) {
        bool ints = a.is_int && b.is_int;
        if (ints && binop_keeps_int(bo)) {
            int64_t *r;
            if ((rc = new_i64(ctx, op, n, out, &r)) == DAG_OK)
                i64_binary(bo, n, num_ints(&a), a.seq, num_ints(&b), b.seq, r);
        } else {
            double *r;
            if ((rc = new_f64(ctx, op, n, out, &r)) == DAG_OK) {
                if (ints && binop_compares(bo)) /* ints compare exactly */
                    i64_compare(bo, n, num_ints(&a), a.seq, num_ints(&b), b.seq, r);
                else
                    f64_binary(bo, n, num_f64(&a), a.seq, num_f64(&b), b.seq, r);
            }
        }
    }
    num_free(&a);
    num_free(&b);
    return rc;
}

#define BINARY_OP(name, bo)                                                                                           \
    static int op_##name(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,           \
                         heap_obj **out)                                                                              \
    {                                                                                                                 \
        (void)nargs;                                                                                                  \
        (void)params;                                                                                                 \
        return binary(ctx, bo, args, out);                                                                            \
    }
BINARY_OP(add, B_ADD)
BINARY_OP(sub, B_SUB)
BINARY_OP(mul, B_MUL)
BINARY_OP(div, B_DIV)
BINARY_OP(pow, B_POW)
BINARY_OP(mod, B_MOD)
BINARY_OP(gt, B_GT)
BINARY_OP(lt, B_LT)
BINARY_OP(eq, B_EQ)
#undef BINARY_OP

typedef enum unop { U_NEG, U_ABS, U_SQRT, U_LOG, U_EXP } unop;

static const char *const unop_names[] = {"neg", "abs", "sqrt", "log", "exp"};

static inline int64_t iabs_wrap(int64_t x) { return x < 0 ? wrap_neg(x) : x; }

static void f64_unary(unop uo, size_t n, const double *restrict v, double *restrict r)
{
    switch (uo) {
    case U_NEG:
        for (size_t k = 0; k < n; k++)
            r[k] = -v[k];
        break;
    case U_ABS:
        for (size_t k = 0; k < n; k++)
            r[k] = fabs(v[k]);
        break;
    case U_SQRT:
        for (size_t k = 0; k < n; k++)
            r[k] = sqrt(v[k]);
        break;
    case U_LOG:
        for (size_t k = 0; k < n; k++)
            r[k] = log(v[k]);
        break;
    case U_EXP:
        for (size_t k = 0; k < n; k++)
            r[k] = exp(v[k]);
        break;
    }
}

static void i64_unary(unop uo, size_t n, const int64_t *restrict v, int64_t *restrict r)
{
    if (uo == U_NEG) {
        for (size_t k = 0; k < n; k++)
            r[k] = wrap_neg(v[k]);
    } else {
        for (size_t k = 0; k < n; k++)
            r[k] = iabs_wrap(v[k]);
    }
}

static int unary(dag_op_ctx *ctx, unop uo, heap_obj *const *args, heap_obj **out)
{
    const char *op = unop_names[uo];
    num x;
    if (num_load(ctx, op, "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    bool ints = x.is_int && (uo == U_NEG || uo == U_ABS);
    int rc = DAG_OK;
    if (!x.seq) {
        if (ints) {
            *out = heap_int_new(uo == U_NEG ? wrap_neg(x.is) : iabs_wrap(x.is));
        } else {
            double r;
            f64_unary(uo, 1, &x.fs, &r);
            *out = heap_float_new(r);
        }
    } else if (ints) {
        int64_t *r;
        if ((rc = new_i64(ctx, op, x.n, out, &r)) == DAG_OK)
            i64_unary(uo, x.n, num_ints(&x), r);
    } else {
        double *r;
        if ((rc = new_f64(ctx, op, x.n, out, &r)) == DAG_OK)
            f64_unary(uo, x.n, num_f64(&x), r);
    }
    num_free(&x);
    return rc;
}

#define UNARY_OP(name, uo)                                                                                            \
    static int op_##name(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,           \
                         heap_obj **out)                                                                              \
    {                                                                                                                 \
        (void)nargs;                                                                                                  \
        (void)params;                                                                                                 \
        return unary(ctx, uo, args, out);                                                                             \
    }
UNARY_OP(neg, U_NEG)
UNARY_OP(abs, U_ABS)
UNARY_OP(sqrt, U_SQRT)
UNARY_OP(log, U_LOG)
UNARY_OP(exp, U_EXP)
#undef UNARY_OP

/* r = v, broadcasting a number. */
static void put_f64(size_t n, const double *restrict v, bool seq, double *restrict r)
{
    if (seq) {
        for (size_t k = 0; k < n; k++)
            r[k] = v[k];
    } else {
        const double x = v[0];
        for (size_t k = 0; k < n; k++)
            r[k] = x;
    }
}

/* Releases the views of op_clip and op_where. */
static void nums_free(num *v, size_t k)
{
    for (size_t j = 0; j < k; j++)
        num_free(&v[j]);
}

static int load_nums(dag_op_ctx *ctx, const char *op, const char *const *what, heap_obj *const *args, num *v,
                     size_t k)
{
    for (size_t j = 0; j < k; j++) {
        if (num_load(ctx, op, what[j], args[j], &v[j]) != DAG_OK) {
            nums_free(v, j);
            return DAG_ERR;
        }
    }
    return DAG_OK;
}

static int op_clip(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    static const char *const what[] = {"x", "lo", "hi"};
    num v[3];
    if (load_nums(ctx, "clip", what, args, v, 3) != DAG_OK)
        return DAG_ERR;
    num *all[3] = {&v[0], &v[1], &v[2]};
    size_t n;
    bool any;
    int rc = common_len(ctx, "clip", all, 3, &n, &any);
    if (rc == DAG_OK && !any) {
        double x = v[0].fs;
        x = x < v[1].fs ? v[1].fs : x;
        x = x > v[2].fs ? v[2].fs : x;
        *out = heap_float_new(x);
    } else if (rc == DAG_OK) {
        double *restrict r;
        if ((rc = new_f64(ctx, "clip", n, out, (double **)&r)) == DAG_OK) {
            /* Three passes (copy, raise to lo, lower to hi), each a loop
             * of one shape; NaN in x stays NaN, and lo > hi gives hi, as
             * numpy.clip does. */
            put_f64(n, num_f64(&v[0]), v[0].seq, r);
            const double *restrict lo = num_f64(&v[1]);
            const double *restrict hi = num_f64(&v[2]);
            if (v[1].seq) {
                for (size_t k = 0; k < n; k++)
                    r[k] = r[k] < lo[k] ? lo[k] : r[k];
            } else {
                const double l = lo[0];
                for (size_t k = 0; k < n; k++)
                    r[k] = r[k] < l ? l : r[k];
            }
            if (v[2].seq) {
                for (size_t k = 0; k < n; k++)
                    r[k] = r[k] > hi[k] ? hi[k] : r[k];
            } else {
                const double h = hi[0];
                for (size_t k = 0; k < n; k++)
                    r[k] = r[k] > h ? h : r[k];
            }
        }
    }
    nums_free(v, 3);
    return rc;
}

/* r[i] = c[i] != 0 ? a : b, in the four shapes of a and b.  Both sides are
 * loaded unconditionally so that the choice is a select, not a branch. */
static void where_f64(size_t n, const double *restrict c, const double *restrict a, bool as,
                      const double *restrict b, bool bs, double *restrict r)
{
    if (as && bs) {
        for (size_t k = 0; k < n; k++) {
            const double x = a[k], y = b[k];
            r[k] = c[k] != 0.0 ? x : y;
        }
    } else if (as) {
        const double y = b[0];
        for (size_t k = 0; k < n; k++) {
            const double x = a[k];
            r[k] = c[k] != 0.0 ? x : y;
        }
    } else if (bs) {
        const double x = a[0];
        for (size_t k = 0; k < n; k++) {
            const double y = b[k];
            r[k] = c[k] != 0.0 ? x : y;
        }
    } else {
        const double x = a[0], y = b[0];
        for (size_t k = 0; k < n; k++)
            r[k] = c[k] != 0.0 ? x : y;
    }
}

static int op_where(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    static const char *const what[] = {"cond", "a", "b"};
    num v[3];
    if (heap_type_of(args[0]) == HT_BOOL) {
        v[0] = (num){.n = 1, .fs = heap_bool_value(args[0]) ? 1.0 : 0.0};
        if (load_nums(ctx, "where", what + 1, args + 1, v + 1, 2) != DAG_OK)
            return DAG_ERR;
    } else if (load_nums(ctx, "where", what, args, v, 3) != DAG_OK) {
        return DAG_ERR;
    }
    num *all[3] = {&v[0], &v[1], &v[2]};
    size_t n;
    bool any;
    int rc = common_len(ctx, "where", all, 3, &n, &any);
    if (rc == DAG_OK && !any) {
        *out = heap_float_new(v[0].fs != 0.0 ? v[1].fs : v[2].fs);
    } else if (rc == DAG_OK) {
        double *r;
        if ((rc = new_f64(ctx, "where", n, out, &r)) == DAG_OK) {
            if (!v[0].seq) {
                num *pick = v[0].fs != 0.0 ? &v[1] : &v[2];
                put_f64(n, num_f64(pick), pick->seq, r);
            } else {
                where_f64(n, num_f64(&v[0]), num_f64(&v[1]), v[1].seq, num_f64(&v[2]), v[2].seq, r);
            }
        }
    }
    nums_free(v, 3);
    return rc;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Reductions                                                           */
/* ====================================================================== */

static int op_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    num x;
    if (num_load(ctx, "sum", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    if (num_exact(&x)) {
        const int64_t *restrict v = num_ints(&x);
        uint64_t s = 0; /* wraps, as int64 arithmetic does everywhere */
        for (size_t k = 0; k < x.n; k++)
            s += (uint64_t)v[k];
        *out = heap_int_new((int64_t)s);
    } else {
        *out = heap_float_new(sum_f64(num_f64(&x), x.n));
    }
    num_free(&x);
    return DAG_OK;
}

static int op_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    num x;
    if (num_load(ctx, "mean", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    *out = heap_float_new(x.n ? sum_f64(num_f64(&x), x.n) / (double)x.n : NAN);
    num_free(&x);
    return DAG_OK;
}

/* Sample standard deviation, two passes (mean, then squared deviations),
 * divided by n - ddof. */
static double std_f64(const double *restrict v, size_t n, int64_t ddof)
{
    if (ddof < 0 || (uint64_t)ddof >= (uint64_t)n)
        return NAN;
    const double m = sum_f64(v, n) / (double)n;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const double d0 = v[k] - m, d1 = v[k + 1] - m, d2 = v[k + 2] - m, d3 = v[k + 3] - m;
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; k < n; k++) {
        const double d = v[k] - m;
        s0 += d * d;
    }
    return sqrt(((s0 + s1) + (s2 + s3)) / (double)(n - (size_t)ddof));
}

static int std_check(size_t nargs, const dag_params *params, char *err, size_t errlen)
{
    (void)nargs;
    const dag_param *d = dag_param_get(params, "ddof");
    if (d && d->i < 0)
        return base_errf(err, errlen, "param 'ddof' must be >= 0, got %" PRId64, d->i);
    return DAG_OK;
}

static int op_std(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    const dag_param *d = dag_param_get(params, "ddof");
    int64_t ddof = d ? d->i : 1;
    if (ddof < 0)
        return dag_op_fail(ctx, DAG_E_OP, "std: ddof must be >= 0, got %" PRId64, ddof);
    num x;
    if (num_load(ctx, "std", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    *out = heap_float_new(std_f64(num_f64(&x), x.n, ddof));
    num_free(&x);
    return DAG_OK;
}

/* min (want_max false) or max.  Exact ints stay ints; over floats a NaN
 * anywhere makes the result NaN, as numpy's min/max do. */
static int extreme(dag_op_ctx *ctx, const char *op, bool want_max, heap_obj *arg, heap_obj **out)
{
    num x;
    if (num_load(ctx, op, "x", arg, &x) != DAG_OK)
        return DAG_ERR;
    size_t n = x.n;
    if (n == 0) {
        *out = heap_float_new(NAN);
    } else if (num_exact(&x)) {
        const int64_t *restrict v = num_ints(&x);
        int64_t m = v[0];
        if (want_max) {
            for (size_t k = 1; k < n; k++)
                m = v[k] > m ? v[k] : m;
        } else {
            for (size_t k = 1; k < n; k++)
                m = v[k] < m ? v[k] : m;
        }
        *out = heap_int_new(m);
    } else {
        const double *restrict v = num_f64(&x);
        double m = v[0];
        bool nan = false;
        if (want_max) {
            for (size_t k = 0; k < n; k++) {
                m = v[k] > m ? v[k] : m;
                nan |= v[k] != v[k];
            }
        } else {
            for (size_t k = 0; k < n; k++) {
                m = v[k] < m ? v[k] : m;
                nan |= v[k] != v[k];
            }
        }
        *out = heap_float_new(nan ? NAN : m);
    }
    num_free(&x);
    return DAG_OK;
}

static int op_min(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    return extreme(ctx, "min", false, args[0], out);
}

static int op_max(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    return extreme(ctx, "max", true, args[0], out);
}

/* Characters of UTF-8 text: bytes that do not continue a sequence. */
static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t k = 0; k < n; k++)
        c += ((unsigned char)s[k] & 0xC0) != 0x80;
    return c;
}

/* The element count of an array, list, dict or table (its rows); false for
 * anything else. */
static bool collection_len(const heap_obj *x, size_t *n)
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

static int op_count(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    heap_obj *x = args[0];
    size_t n;
    if (heap_type_of(x) == HT_STR)
        n = utf8_len(heap_str_data(x), heap_str_len(x));
    else if (!collection_len(x, &n))
        return type_fail(ctx, "count", "x", "an array, list, dict, str or table", x);
    *out = heap_int_new((int64_t)n);
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Windows                                                              */
/* ====================================================================== */

/* A trailing window's sum.  Finite values go into a running sum with
 * Neumaier compensation, so adding and removing values does not drift;
 * NaN and infinities are counted instead, so a NaN spoils only the windows
 * that hold it (a plain running sum would carry it forever). */
typedef struct window {
    double sum, comp;
    int64_t nan, pinf, ninf;
} window;

/* Adds x to the window (d = 1) or removes it (d = -1). */
static inline void window_move(window *w, double x, int d)
{
    if (isnan(x)) {
        w->nan += d;
    } else if (isinf(x)) {
        if (x > 0)
            w->pinf += d;
        else
            w->ninf += d;
    } else {
        const double y = d > 0 ? x : -x;
        const double t = w->sum + y;
        if (fabs(w->sum) >= fabs(y))
            w->comp += (w->sum - t) + y;
        else
            w->comp += (y - t) + w->sum;
        w->sum = t;
    }
}

static inline double window_sum(const window *w)
{
    if (w->nan || (w->pinf && w->ninf))
        return NAN;
    if (w->pinf)
        return INFINITY;
    if (w->ninf)
        return -INFINITY;
    return w->sum + w->comp;
}

/* r[i] = (sum of v[i-w+1..i]) / div, NaN for i < w-1; div is 1 for sums and
 * the window for means. */
static void rolling_f64(const double *restrict v, size_t n, uint64_t w, double div, double *restrict r)
{
    window win = {0};
    for (size_t k = 0; k < n; k++) {
        window_move(&win, v[k], 1);
        if (k >= w)
            window_move(&win, v[k - w], -1);
        r[k] = k + 1 < w ? NAN : window_sum(&win) / div;
    }
}

static int rolling(dag_op_ctx *ctx, const char *op, bool mean, heap_obj *const *args, heap_obj **out)
{
    num x;
    int64_t w;
    if (seq_load(ctx, op, "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    int rc = arg_int(ctx, op, "window", args[1], &w);
    if (rc == DAG_OK && w < 1)
        rc = dag_op_fail(ctx, DAG_E_OP, "%s: window must be >= 1, got %" PRId64, op, w);
    double *r;
    if (rc == DAG_OK && (rc = new_f64(ctx, op, x.n, out, &r)) == DAG_OK)
        rolling_f64(num_f64(&x), x.n, (uint64_t)w, mean ? (double)w : 1.0, r);
    num_free(&x);
    return rc;
}

static int op_rolling_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                           heap_obj **out)
{
    (void)nargs;
    (void)params;
    return rolling(ctx, "rolling_mean", true, args, out);
}

static int op_rolling_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                          heap_obj **out)
{
    (void)nargs;
    (void)params;
    return rolling(ctx, "rolling_sum", false, args, out);
}

static int op_cumsum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    num x;
    if (seq_load(ctx, "cumsum", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    size_t n = x.n;
    int rc;
    if (num_exact(&x)) {
        int64_t *restrict r;
        if ((rc = new_i64(ctx, "cumsum", n, out, (int64_t **)&r)) == DAG_OK) {
            const int64_t *restrict v = num_ints(&x);
            int64_t s = 0;
            for (size_t k = 0; k < n; k++)
                r[k] = s = wrap_add(s, v[k]);
        }
    } else {
        double *restrict r;
        if ((rc = new_f64(ctx, "cumsum", n, out, (double **)&r)) == DAG_OK) {
            const double *restrict v = num_f64(&x);
            double s = 0.0;
            for (size_t k = 0; k < n; k++)
                r[k] = s += v[k];
        }
    }
    num_free(&x);
    return rc;
}

static int op_shift(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    num x;
    int64_t p;
    if (seq_load(ctx, "shift", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    int rc = arg_int(ctx, "shift", "periods", args[1], &p);
    double *restrict r;
    if (rc == DAG_OK && (rc = new_f64(ctx, "shift", x.n, out, (double **)&r)) == DAG_OK) {
        const double *restrict v = num_f64(&x);
        size_t n = x.n, m = clamp_mag(p, n);
        if (p >= 0) {
            for (size_t k = 0; k < m; k++)
                r[k] = NAN;
            for (size_t k = m; k < n; k++)
                r[k] = v[k - m];
        } else {
            for (size_t k = 0; k < n - m; k++)
                r[k] = v[k + m];
            for (size_t k = n - m; k < n; k++)
                r[k] = NAN;
        }
    }
    num_free(&x);
    return rc;
}

static int op_diff(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)params;
    num x;
    int64_t p = 1;
    if (seq_load(ctx, "diff", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    int rc = nargs > 1 ? arg_int(ctx, "diff", "periods", args[1], &p) : DAG_OK;
    double *restrict r;
    if (rc == DAG_OK && (rc = new_f64(ctx, "diff", x.n, out, (double **)&r)) == DAG_OK) {
        const double *restrict v = num_f64(&x);
        size_t n = x.n, m = clamp_mag(p, n);
        if (p >= 0) {
            for (size_t k = 0; k < m; k++)
                r[k] = NAN;
            for (size_t k = m; k < n; k++)
                r[k] = v[k] - v[k - m];
        } else {
            for (size_t k = 0; k < n - m; k++)
                r[k] = v[k] - v[k + m];
            for (size_t k = n - m; k < n; k++)
                r[k] = NAN;
        }
    }
    num_free(&x);
    return rc;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Records                                                              */
/* ====================================================================== */

/* Keys for lookup, read one at a time: key_at gives either a heap key
 * (borrowed: a str or int item of a list, or the single key) or an int. */
typedef struct keys {
    heap_obj *single;   /* one int or str key */
    heap_obj *list;     /* a list of ints and strs */
    const int64_t *i64; /* an int64 array */
    const double *f64;  /* a float64 array of integral values */
    size_t n;
} keys;

static int keys_load(dag_op_ctx *ctx, heap_obj *o, keys *k)
{
    *k = (keys){0};
    switch (heap_type_of(o)) {
    case HT_INT:
    case HT_STR:
        k->single = o;
        k->n = 1;
        return DAG_OK;
    case HT_LIST:
        k->list = o;
        k->n = heap_list_len(o);
        for (size_t j = 0; j < k->n; j++) {
            heap_type t = heap_type_of(heap_list_get(o, j));
            if (t != HT_INT && t != HT_STR)
                return dag_op_fail(ctx, DAG_E_TYPE, "lookup: key %zu of the list must be an int or a str, got %s", j,
                                   kind_of(heap_list_get(o, j)));
        }
        return DAG_OK;
    case HT_ARRAY:
        k->n = heap_array_len(o);
        if (heap_array_dtype(o) == HD_I64) {
            k->i64 = heap_array_i64(o);
        } else {
            k->f64 = heap_array_f64(o);
            for (size_t j = 0; j < k->n; j++) {
                int64_t unused;
                if (!f64_to_i64(k->f64[j], &unused))
                    return dag_op_fail(ctx, DAG_E_TYPE, "lookup: key %zu of the float64 array is %g, not an integer",
                                       j, k->f64[j]);
            }
        }
        return DAG_OK;
    default:
        return type_fail(ctx, "lookup", "keys", "an int, a str, a list of them, or an array", o);
    }
}

/* The value under key j (borrowed, NULL if absent); *ikey / *skey say
 * which key it was, for the message. */
static heap_obj *keys_get(const keys *k, const heap_obj *dict, size_t j, int64_t *ikey, const heap_obj **skey)
{
    *skey = NULL;
    if (k->single || k->list) {
        const heap_obj *key = k->single ? k->single : heap_list_get(k->list, j);
        if (heap_type_of(key) == HT_INT)
            *ikey = heap_int_value(key);
        else
            *skey = key;
        return heap_dict_get(dict, key);
    }
    if (k->i64)
        *ikey = k->i64[j];
    else
        f64_to_i64(k->f64[j], ikey); /* checked by keys_load */
    return heap_dict_get_int(dict, *ikey);
}

static int op_lookup(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    heap_obj *dict = args[0];
    if (heap_type_of(dict) != HT_DICT)
        return type_fail(ctx, "lookup", "argument 1", "a dict", dict);
    keys k;
    if (keys_load(ctx, args[1], &k) != DAG_OK || limit_check(ctx, "lookup", k.n) != DAG_OK)
        return DAG_ERR;
    if (k.i64 || k.f64) { /* int keys from an array: one batched look-up */
        int64_t ik_small[64];
        heap_obj *vals_small[64];
        int64_t *ik = k.n <= 64 ? ik_small : base_malloc(k.n * sizeof *ik);
        heap_obj **vals = k.n <= 64 ? vals_small : base_malloc(k.n * sizeof *vals);
        for (size_t j = 0; j < k.n; j++)
            if (k.i64)
                ik[j] = k.i64[j];
            else
                f64_to_i64(k.f64[j], &ik[j]); /* checked by keys_load */
        heap_dict_get_int_many(dict, ik, k.n, vals);
        heap_obj *res = heap_list_new(k.n);
        for (size_t j = 0; j < k.n; j++) {
            if (!vals[j]) {
                int64_t missing = ik[j];
                heap_decref(res);
                if (ik != ik_small) {
                    free(ik);
                    free(vals);
                }
                return dag_op_fail(ctx, DAG_E_OP, "lookup: no key %" PRId64, missing);
            }
            heap_list_append(res, vals[j]);
        }
        if (ik != ik_small) {
            free(ik);
            free(vals);
        }
        *out = res;
        return DAG_OK;
    }
    heap_obj *res = heap_list_new(k.n);
    for (size_t j = 0; j < k.n; j++) {
        int64_t ikey = 0;
        const heap_obj *skey;
        heap_obj *v = keys_get(&k, dict, j, &ikey, &skey);
        if (!v) {
            heap_decref(res);
            if (skey)
                return dag_op_fail(ctx, DAG_E_OP, "lookup: no key \"%.64s\"", heap_str_data(skey));
            return dag_op_fail(ctx, DAG_E_OP, "lookup: no key %" PRId64, ikey);
        }
        heap_list_append(res, v);
    }
    *out = res;
    return DAG_OK;
}

static int op_field(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    const char *name = NULL;
    if (name_of(ctx, "field", args, nargs, params, &name) != DAG_OK)
        return DAG_ERR;
    heap_obj *recs = args[0];
    bool is_dict = heap_type_of(recs) == HT_DICT;
    if (!is_dict && heap_type_of(recs) != HT_LIST)
        return type_fail(ctx, "field", "records", "a list of dicts or a dict of them", recs);
    size_t n = is_dict ? heap_dict_len(recs) : heap_list_len(recs);
    if (limit_check(ctx, "field", n) != DAG_OK)
        return DAG_ERR;
    heap_obj **vals = NULL, *ds_small[64], *vals_small[64];
    if (!is_dict) { /* a list of dicts: one batched look-up of the field */
        bool all_dicts = true;
        for (size_t j = 0; j < n && all_dicts; j++)
            all_dicts = heap_type_of(heap_list_get(recs, j)) == HT_DICT;
        if (all_dicts) {
            heap_obj **ds = n <= 64 ? ds_small : base_malloc(n * sizeof *ds);
            vals = n <= 64 ? vals_small : base_malloc(n * sizeof *vals);
            for (size_t j = 0; j < n; j++)
                ds[j] = heap_list_get(recs, j);
            heap_dicts_get_str_many(ds, n, name, vals);
            if (ds != ds_small)
                free(ds);
        }
    }
    heap_obj *res = heap_list_new(n);
    size_t pos = 0;
    for (size_t j = 0; j < n; j++) {
        heap_obj *rec;
        if (is_dict)
            heap_dict_next(recs, &pos, NULL, &rec);
        else
            rec = heap_list_get(recs, j);
        heap_obj *v = vals ? vals[j] : heap_type_of(rec) == HT_DICT ? heap_dict_get_str(rec, name) : NULL;
        if (!v) {
            heap_decref(res);
            if (vals != vals_small)
                free(vals);
            if (heap_type_of(rec) != HT_DICT)
                return dag_op_fail(ctx, DAG_E_TYPE, "field: record %zu must be a dict, got %s", j, kind_of(rec));
            return dag_op_fail(ctx, DAG_E_OP, "field: record %zu has no field \"%.64s\"", j, name);
        }
        heap_list_append(res, v);
    }
    if (vals != vals_small)
        free(vals);
    *out = res;
    return DAG_OK;
}

static int op_row_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    heap_obj *rows = args[0];
    if (heap_type_of(rows) != HT_LIST)
        return type_fail(ctx, "row_sum", "rows", "a list of numeric sequences", rows);
    size_t n = heap_list_len(rows);
    heap_obj *res;
    double *r;
    if (new_f64(ctx, "row_sum", n, &res, &r) != DAG_OK)
        return DAG_ERR;
    /* Rows are independent: bring every row's items, then every item, into
     * cache before summing, so the misses overlap. */
    for (size_t j = 0; j < n; j++)
        heap_list_prefetch_items(heap_list_get(rows, j));
    for (size_t j = 0; j < n; j++)
        heap_list_prefetch_elems(heap_list_get(rows, j));
    for (size_t j = 0; j < n; j++) {
        heap_obj *row = heap_list_get(rows, j);
        num v;
        if (seq_load(ctx, "row_sum", "a row", row, &v) != DAG_OK) {
            char what[32]; /* the label only on failure: it costs a printf */
            snprintf(what, sizeof what, "row %zu", j);
            seq_load(ctx, "row_sum", what, row, &v);
            heap_decref(res);
            return DAG_ERR;
        }
        r[j] = sum_f64(num_f64(&v), v.n);
        num_free(&v);
    }
    *out = res;
    return DAG_OK;
}

static int make_record_check(size_t nargs, const dag_params *params, char *err, size_t errlen)
{
    const dag_param *names = dag_param_get(params, "names");
    if (!names)
        return base_errf(err, errlen, "make_record needs param 'names'");
    if (names->nstrs != nargs)
        return base_errf(err, errlen, "make_record takes one arg per name: %zu names, %zu args", names->nstrs, nargs);
    for (size_t a = 0; a < names->nstrs; a++)
        for (size_t b = a + 1; b < names->nstrs; b++)
            if (strcmp(names->strs[a], names->strs[b]) == 0)
                return base_errf(err, errlen, "make_record: name \"%.64s\" appears twice in 'names'", names->strs[a]);
    return DAG_OK;
}

static int op_make_record(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                          heap_obj **out)
{
    const dag_param *names = dag_param_get(params, "names");
    if (!names || names->nstrs != nargs)
        return dag_op_fail(ctx, DAG_E_OP, "make_record: needs one name per arg (%zu args)", nargs);
    if (limit_check(ctx, "make_record", nargs) != DAG_OK)
        return DAG_ERR;
    heap_obj *rec = heap_dict_new();
    for (size_t j = 0; j < nargs; j++) {
        heap_incref(args[j]);
        heap_dict_set_str_new(rec, names->strs[j], args[j]);
    }
    *out = rec;
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Tables                                                               */
/* ====================================================================== */

static int table_arg(dag_op_ctx *ctx, const char *op, heap_obj *t)
{
    if (heap_type_of(t) != HT_TABLE)
        return type_fail(ctx, op, "argument 1", "a table", t);
    return DAG_OK;
}

static int table_column(dag_op_ctx *ctx, const char *op, heap_obj *t, const char *name, heap_obj **col)
{
    *col = heap_table_column(t, name);
    if (!*col)
        return dag_op_fail(ctx, DAG_E_OP, "%s: the table has no column \"%.64s\"", op, name);
    return DAG_OK;
}

static int op_column(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    const char *name = NULL;
    heap_obj *col;
    if (name_of(ctx, "column", args, nargs, params, &name) != DAG_OK || table_arg(ctx, "column", args[0]) != DAG_OK ||
        table_column(ctx, "column", args[0], name, &col) != DAG_OK)
        return DAG_ERR;
    heap_incref(col);
    *out = col;
    return DAG_OK;
}

/* A filter mask read as float64: an array, or a list of numbers or bools. */
static int mask_load(dag_op_ctx *ctx, heap_obj *o, num *m)
{
    if (heap_type_of(o) != HT_LIST) {
        if (heap_type_of(o) != HT_ARRAY)
            return type_fail(ctx, "filter", "mask", "an array or a list of numbers or bools", o);
        return num_load(ctx, "filter", "mask", o, m);
    }
    size_t n = heap_list_len(o);
    double *t = base_malloc(n * sizeof *t);
    for (size_t k = 0; k < n; k++) {
        heap_obj *e = heap_list_get(o, k);
        switch (heap_type_of(e)) {
        case HT_BOOL:
            t[k] = heap_bool_value(e) ? 1.0 : 0.0;
            break;
        case HT_INT:
            t[k] = (double)heap_int_value(e);
            break;
        case HT_FLOAT:
            t[k] = heap_float_value(e);
            break;
        default:
            free(t);
            return dag_op_fail(ctx, DAG_E_TYPE, "filter: item %zu of the mask must be a number or a bool, got %s", k,
                               kind_of(e));
        }
    }
    *m = (num){.seq = true, .n = n, .f = t, .ftmp = t};
    return DAG_OK;
}

/* The kept part of an array or list column (new reference); `kept` is the
 * number of nonzero mask entries. */
static heap_obj *filter_column(heap_obj *col, const double *restrict m, size_t n, size_t kept)
{
    if (heap_type_of(col) == HT_LIST) {
        heap_obj *res = heap_list_new(kept);
        for (size_t k = 0; k < n; k++)
            if (m[k] != 0.0)
                heap_list_append(res, heap_list_get(col, k));
        return res;
    }
    size_t j = 0;
    if (heap_array_dtype(col) == HD_I64) {
        heap_obj *res = heap_array_new_uninit(HD_I64, kept);
        const int64_t *restrict v = heap_array_i64(col);
        int64_t *restrict r = heap_array_i64(res);
        for (size_t k = 0; k < n; k++)
            if (m[k] != 0.0)
                r[j++] = v[k];
        return res;
    }
    heap_obj *res = heap_array_new_uninit(HD_F64, kept);
    const double *restrict v = heap_array_f64(col);
    double *restrict r = heap_array_f64(res);
    for (size_t k = 0; k < n; k++)
        if (m[k] != 0.0)
            r[j++] = v[k];
    return res;
}

static int op_filter(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    heap_obj *x = args[0];
    size_t n;
    if (heap_type_of(x) == HT_DICT || !collection_len(x, &n))
        return type_fail(ctx, "filter", "x", "an array, a list or a table", x);
    num m;
    if (mask_load(ctx, args[1], &m) != DAG_OK)
        return DAG_ERR;
    int rc = DAG_OK;
    if (m.n != n)
        rc = dag_op_fail(ctx, DAG_E_OP, "filter: the mask has %zu entries for %zu rows", m.n, n);
    const double *restrict mv = num_f64(&m);
    size_t kept = 0;
    for (size_t k = 0; rc == DAG_OK && k < n; k++)
        kept += mv[k] != 0.0;
    if (rc == DAG_OK && (rc = limit_check(ctx, "filter", kept)) == DAG_OK) {
        if (heap_type_of(x) != HT_TABLE) {
            *out = filter_column(x, mv, n, kept);
        } else {
            heap_obj *t = heap_table_new(kept);
            for (size_t c = 0; c < heap_table_ncols(x); c++) {
                heap_obj *col = filter_column(heap_table_column_at(x, c), mv, n, kept);
                heap_table_add_column(t, heap_table_name_at(x, c), col);
                heap_decref(col);
            }
            *out = t;
        }
    }
    num_free(&m);
    return rc;
}

/* Group accumulators: per group, in first-appearance order, the running
 * sum and row count; `index` maps each key to its group number. */
typedef struct groups {
    heap_obj *index; /* dict: key -> int group number */
    double *sum;
    size_t *count;
    size_t n, cap;
} groups;

/* The group number of a key (borrowed heap key, or NULL with ikey), adding
 * a group if the key is new.  DAG_ERR past the element limit. */
static int group_of(dag_op_ctx *ctx, const char *op, groups *g, heap_obj *key, int64_t ikey, size_t *out)
{
    heap_obj *slot = key ? heap_dict_get(g->index, key) : heap_dict_get_int(g->index, ikey);
    if (slot) {
        *out = (size_t)heap_int_value(slot);
        return DAG_OK;
    }
    if (limit_check(ctx, op, (uint64_t)g->n + 1) != DAG_OK)
        return DAG_ERR;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->sum = base_realloc(g->sum, g->cap * sizeof *g->sum);
        g->count = base_realloc(g->count, g->cap * sizeof *g->count);
    }
    size_t k = g->n++;
    g->sum[k] = 0.0;
    g->count[k] = 0;
    heap_obj *kobj = key ? key : heap_int_new(ikey);
    heap_dict_set_new(g->index, kobj, heap_int_new((int64_t)k));
    if (!key)
        heap_decref(kobj);
    *out = k;
    return DAG_OK;
}

static int group(dag_op_ctx *ctx, const char *op, bool mean, heap_obj *const *args, const dag_params *params,
                 heap_obj **out)
{
    const char *by = NULL, *value = NULL;
    heap_obj *t = args[0], *bycol, *valcol;
    if (param_str(ctx, op, params, "by", &by) != DAG_OK || param_str(ctx, op, params, "value", &value) != DAG_OK ||
        table_arg(ctx, op, t) != DAG_OK || table_column(ctx, op, t, by, &bycol) != DAG_OK ||
        table_column(ctx, op, t, value, &valcol) != DAG_OK)
        return DAG_ERR;
    /* int keys from an int64 array (test the dtype: an empty array has no
     * data pointer), the list's own items otherwise */
    bool int_keys = heap_type_of(bycol) == HT_ARRAY;
    if (int_keys && heap_array_dtype(bycol) != HD_I64)
        return dag_op_fail(ctx, DAG_E_TYPE, "%s: the 'by' column must hold ints or strs, got float64 array", op);
    const int64_t *ikeys = int_keys ? heap_array_i64(bycol) : NULL;
    num v;
    if (num_load(ctx, op, "the 'value' column", valcol, &v) != DAG_OK)
        return DAG_ERR;
    const double *restrict x = num_f64(&v);
    size_t n = heap_table_nrows(t);
    groups g = {.index = heap_dict_new()};
    int rc = DAG_OK;
    for (size_t k = 0; k < n && rc == DAG_OK; k++) {
        heap_obj *key = NULL;
        if (!int_keys) {
            key = heap_list_get(bycol, k);
            if (heap_type_of(key) != HT_STR && heap_type_of(key) != HT_INT) {
                rc = dag_op_fail(ctx, DAG_E_TYPE, "%s: row %zu of the 'by' column must be a str or an int, got %s",
                                 op, k, kind_of(key));
                break;
            }
        }
        size_t gi;
        if ((rc = group_of(ctx, op, &g, key, int_keys ? ikeys[k] : 0, &gi)) == DAG_OK) {
            g.sum[gi] += x[k];
            g.count[gi]++;
        }
    }
    if (rc == DAG_OK) {
        heap_obj *res = heap_dict_new();
        heap_obj *key, *slot;
        size_t pos = 0;
        while (heap_dict_next(g.index, &pos, &key, &slot)) {
            size_t k = (size_t)heap_int_value(slot);
            heap_dict_set_new(res, key, heap_float_new(mean ? g.sum[k] / (double)g.count[k] : g.sum[k]));
        }
        *out = res;
    }
    heap_decref(g.index);
    free(g.sum);
    free(g.count);
    num_free(&v);
    return rc;
}

static int op_group_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                        heap_obj **out)
{
    (void)nargs;
    return group(ctx, "group_sum", false, args, params, out);
}

static int op_group_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                         heap_obj **out)
{
    (void)nargs;
    return group(ctx, "group_mean", true, args, params, out);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Constructors                                                         */
/* ====================================================================== */

static int op_range(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)params;
    int64_t start = 0, stop;
    if (nargs > 1) {
        if (arg_int(ctx, "range", "start", args[0], &start) != DAG_OK ||
            arg_int(ctx, "range", "stop", args[1], &stop) != DAG_OK)
            return DAG_ERR;
    } else if (arg_int(ctx, "range", "n", args[0], &stop) != DAG_OK) {
        return DAG_ERR;
    }
    uint64_t n = stop > start ? (uint64_t)stop - (uint64_t)start : 0;
    int64_t *restrict r;
    if (new_i64(ctx, "range", (size_t)n, out, (int64_t **)&r) != DAG_OK)
        return DAG_ERR;
    for (size_t k = 0; k < n; k++)
        r[k] = wrap_add(start, (int64_t)k);
    return DAG_OK;
}

static void fill_f64(double *restrict r, size_t n, double x)
{
    for (size_t k = 0; k < n; k++)
        r[k] = x;
}

static int op_fill(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    int64_t n;
    if (arg_int(ctx, "fill", "n", args[0], &n) != DAG_OK)
        return DAG_ERR;
    if (n < 0)
        return dag_op_fail(ctx, DAG_E_OP, "fill: n must be >= 0, got %" PRId64, n);
    heap_type vt = heap_type_of(args[1]);
    if (vt != HT_INT && vt != HT_FLOAT)
        return type_fail(ctx, "fill", "value", "a number", args[1]);
    const double x = vt == HT_INT ? (double)heap_int_value(args[1]) : heap_float_value(args[1]);
    double *r;
    if (new_f64(ctx, "fill", (size_t)n, out, &r) != DAG_OK)
        return DAG_ERR;
    fill_f64(r, (size_t)n, x);
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Graph                                                                */
/* ====================================================================== */

/* An edge list read into two malloc'ed id arrays (freed by the caller). */
typedef struct edges {
    int64_t *src, *dst;
    size_t n;
} edges;

static void edges_free(edges *e)
{
    free(e->src);
    free(e->dst);
}

/* An id from a sequence view: exact ints as they are, floats if integral. */
static int ids_from(dag_op_ctx *ctx, const char *what, num *v, int64_t *out)
{
    if (num_exact(v)) {
        const int64_t *restrict p = num_ints(v);
        for (size_t k = 0; k < v->n; k++)
            out[k] = p[k];
        return DAG_OK;
    }
    const double *p = num_f64(v);
    for (size_t k = 0; k < v->n; k++)
        if (!f64_to_i64(p[k], &out[k]))
            return dag_op_fail(ctx, DAG_E_TYPE, "graph: %s[%zu] is %g, not an integer id", what, k, p[k]);
    return DAG_OK;
}

static int edges_load(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, edges *e)
{
    *e = (edges){0};
    if (nargs == 1) {
        heap_obj *l = args[0];
        if (heap_type_of(l) != HT_LIST)
            return type_fail(ctx, "graph", "edges", "a list of [src, dst] pairs", l);
        e->n = heap_list_len(l);
        if (limit_check(ctx, "graph", e->n) != DAG_OK)
            return DAG_ERR;
        e->src = base_malloc(e->n * sizeof *e->src);
        e->dst = base_malloc(e->n * sizeof *e->dst);
        for (size_t k = 0; k < e->n; k++) {
            heap_obj *pair = heap_list_get(l, k);
            if (heap_type_of(pair) != HT_LIST || heap_list_len(pair) != 2) {
                edges_free(e);
                return dag_op_fail(ctx, DAG_E_TYPE, "graph: edge %zu must be a [src, dst] pair, got %s", k,
                                   kind_of(pair));
            }
            char what[48];
            snprintf(what, sizeof what, "the ids of edge %zu", k);
            if (arg_int(ctx, "graph", what, heap_list_get(pair, 0), &e->src[k]) != DAG_OK ||
                arg_int(ctx, "graph", what, heap_list_get(pair, 1), &e->dst[k]) != DAG_OK) {
                edges_free(e);
                return DAG_ERR;
            }
        }
        return DAG_OK;
    }
    num s, d;
    if (seq_load(ctx, "graph", "src", args[0], &s) != DAG_OK)
        return DAG_ERR;
    if (seq_load(ctx, "graph", "dst", args[1], &d) != DAG_OK) {
        num_free(&s);
        return DAG_ERR;
    }
    int rc = DAG_OK;
    if (s.n != d.n)
        rc = dag_op_fail(ctx, DAG_E_OP, "graph: src has %zu ids, dst %zu", s.n, d.n);
    else
        rc = limit_check(ctx, "graph", s.n);
    if (rc == DAG_OK) {
        e->n = s.n;
        e->src = base_malloc(e->n * sizeof *e->src);
        e->dst = base_malloc(e->n * sizeof *e->dst);
        if ((rc = ids_from(ctx, "src", &s, e->src)) == DAG_OK)
            rc = ids_from(ctx, "dst", &d, e->dst);
        if (rc != DAG_OK)
            edges_free(e);
    }
    num_free(&s);
    num_free(&d);
    return rc;
}

/* The keys every node record shares (one str each, as interned names). */
typedef struct gkeys {
    heap_obj *id, *out, *in;
} gkeys;

/* The record of node `id` in `nodes` (borrowed), made if new:
 * {"id": id, "out": [], "in": []}.  DAG_ERR past the element limit. */
static int graph_node(dag_op_ctx *ctx, heap_obj *nodes, const gkeys *k, int64_t id, heap_obj **rec)
{
    *rec = heap_dict_get_int(nodes, id);
    if (*rec)
        return DAG_OK;
    if (limit_check(ctx, "graph", (uint64_t)heap_dict_len(nodes) + 1) != DAG_OK)
        return DAG_ERR;
    heap_obj *idobj = heap_int_new(id);
    heap_obj *r = heap_dict_new();
    heap_dict_set(r, k->id, idobj);
    heap_dict_set_new(r, k->out, heap_list_new(0));
    heap_dict_set_new(r, k->in, heap_list_new(0));
    heap_dict_set_new(nodes, idobj, r); /* nodes owns the record now */
    heap_decref(idobj);
    *rec = r;
    return DAG_OK;
}

/* Empties every record's edge lists, which breaks the cycles, so that a
 * graph abandoned half-built is freed by reference counting at once. */
static void graph_unlink(heap_obj *nodes, const gkeys *k)
{
    heap_obj *rec;
    size_t pos = 0;
    while (heap_dict_next(nodes, &pos, NULL, &rec)) {
        heap_list_clear(heap_dict_get(rec, k->out));
        heap_list_clear(heap_dict_get(rec, k->in));
    }
}

static int op_graph(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)params;
    edges e;
    if (edges_load(ctx, args, nargs, &e) != DAG_OK)
        return DAG_ERR;
    gkeys k = {heap_str_from("id"), heap_str_from("out"), heap_str_from("in")};
    heap_obj *nodes = heap_dict_new();
    int rc = DAG_OK;
    for (size_t j = 0; j < e.n && rc == DAG_OK; j++) {
        heap_obj *a, *b;
        if ((rc = graph_node(ctx, nodes, &k, e.src[j], &a)) != DAG_OK ||
            (rc = graph_node(ctx, nodes, &k, e.dst[j], &b)) != DAG_OK)
            break;
        heap_list_append(heap_dict_get(a, k.out), b);
        heap_list_append(heap_dict_get(b, k.in), a);
    }
    if (rc == DAG_OK) {
        *out = nodes;
    } else {
        graph_unlink(nodes, &k);
        heap_decref(nodes);
    }
    heap_decref(k.id);
    heap_decref(k.out);
    heap_decref(k.in);
    edges_free(&e);
    return rc;
}

/* A set of object addresses: open addressing, linear probing, at most half
 * full. */
typedef struct ptrset {
    const void **slot;
    size_t cap, len;
} ptrset;

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    x *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(x ^ (x >> 29));
}

static void ptrset_put(const void **slot, size_t cap, const void *p)
{
    size_t i = ptr_hash(p) & (cap - 1);
    while (slot[i])
        i = (i + 1) & (cap - 1);
    slot[i] = p;
}

/* Adds p; true if it was not there yet. */
static bool ptrset_add(ptrset *s, const void *p)
{
    if (2 * (s->len + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        const void **slot = base_malloc(cap * sizeof *slot);
        memset(slot, 0, cap * sizeof *slot);
        for (size_t k = 0; k < s->cap; k++)
            if (s->slot[k])
                ptrset_put(slot, cap, s->slot[k]);
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t i = ptr_hash(p) & (s->cap - 1);
    while (s->slot[i]) {
        if (s->slot[i] == p)
            return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = p;
    s->len++;
    return true;
}

/* Depth-first walk with an explicit stack: each node is pushed once (when
 * first seen), so the stack never holds more than the node count, and a
 * long chain costs no C stack. */
static int op_graph_reach(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                          heap_obj **out)
{
    (void)nargs;
    (void)params;
    heap_obj *g = args[0];
    int64_t start;
    if (heap_type_of(g) != HT_DICT)
        return type_fail(ctx, "graph_reach", "graph", "a dict of node records", g);
    if (arg_int(ctx, "graph_reach", "start", args[1], &start) != DAG_OK)
        return DAG_ERR;
    heap_obj *first = heap_dict_get_int(g, start);
    if (!first)
        return dag_op_fail(ctx, DAG_E_OP, "graph_reach: no node %" PRId64, start);
    if (heap_type_of(first) != HT_DICT)
        return type_fail(ctx, "graph_reach", "a node record", "a dict", first);

    ptrset seen = {0};
    size_t cap = 64, sp = 0;
    heap_obj **stack = base_malloc(cap * sizeof *stack);
    ptrset_add(&seen, first);
    stack[sp++] = first;
    int64_t reached = 0;
    int rc = DAG_OK;
    while (sp && rc == DAG_OK) {
        heap_obj *rec = stack[--sp];
        reached++;
        heap_obj *outs = heap_dict_get_str(rec, "out");
        if (!outs || heap_type_of(outs) != HT_LIST) {
            rc = dag_op_fail(ctx, DAG_E_TYPE, "graph_reach: a node record needs an \"out\" list, got %s",
                             outs ? kind_of(outs) : "none");
            break;
        }
        for (size_t j = 0; j < heap_list_len(outs); j++) {
            heap_obj *next = heap_list_get(outs, j);
            if (heap_type_of(next) != HT_DICT) {
                rc = type_fail(ctx, "graph_reach", "an \"out\" item", "a node record (dict)", next);
                break;
            }
            if (!ptrset_add(&seen, next))
                continue;
            if (sp == cap) {
                cap *= 2;
                stack = base_realloc(stack, cap * sizeof *stack);
            }
            stack[sp++] = next;
        }
    }
    free(stack);
    free(seen.slot);
    if (rc == DAG_OK)
        *out = heap_int_new(reached);
    return rc;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The table                                                            */
/* ====================================================================== */

static const dag_param_spec std_params[] = {{"ddof", DP_INT, false}, {NULL, DP_INT, false}};
/* field and column take their name as the spec writes it, a second arg
 * (field(records, name)), or as param name: one of the two (name_check). */
static const dag_param_spec name_params[] = {{"name", DP_STR, false}, {NULL, DP_INT, false}};
static const dag_param_spec names_params[] = {{"names", DP_STRLIST, true}, {NULL, DP_INT, false}};
static const dag_param_spec group_params[] = {{"by", DP_STR, true}, {"value", DP_STR, true}, {NULL, DP_INT, false}};

/* Shared sentences of the docs. */
#define BCAST " A number broadcasts against a sequence; two sequences must have equal lengths (op_error)."
#define NUMS                                                                                                          \
    " Args are numeric: a number, a float64/int64 array or a list of numbers (lists read as float64); a bool or "  \
    "anything else is a type_error."
#define KEEPS_INT                                                                                                     \
    " Two ints give an int; an int64 array with an int or an int64 array gives an int64 array (wrapping on "        \
    "overflow); anything else gives a float, or a float64 array when a sequence is involved."
#define FLOAT_ONLY " The result is a float for numbers, a float64 array when a sequence is involved."
#define COMPARES                                                                                                      \
    " Two numbers give a bool; otherwise a float64 array of 1.0 (true) / 0.0 (false). Ints are compared exactly."

static const dag_op ops[] = {
    /* --- elementwise --- */
    {"add", 2, 2, NULL, NULL, op_add, "add(a, b): a + b elementwise." NUMS BCAST KEEPS_INT},
    {"sub", 2, 2, NULL, NULL, op_sub, "sub(a, b): a - b elementwise." NUMS BCAST KEEPS_INT},
    {"mul", 2, 2, NULL, NULL, op_mul, "mul(a, b): a * b elementwise." NUMS BCAST KEEPS_INT},
    {"div", 2, 2, NULL, NULL, op_div,
     "div(a, b): a / b elementwise, always in float64 (true division); division by zero gives inf or nan as IEEE "
     "does, not an error." NUMS BCAST FLOAT_ONLY},
    {"pow", 2, 2, NULL, NULL, op_pow, "pow(a, b): a raised to b elementwise (C pow)." NUMS BCAST FLOAT_ONLY},
    {"mod", 2, 2, NULL, NULL, op_mod,
     "mod(a, b): a modulo b elementwise, as Python's %: the result has the sign of b. A zero anywhere in b is an "
     "op_error (ints and floats alike)." NUMS BCAST KEEPS_INT},
    {"neg", 1, 1, NULL, NULL, op_neg,
     "neg(x): -x elementwise." NUMS
     " An int stays an int and an int64 array stays int64; otherwise float / float64 array."},
    {"abs", 1, 1, NULL, NULL, op_abs,
     "abs(x): |x| elementwise." NUMS
     " An int stays an int and an int64 array stays int64; otherwise float / float64 array."},
    {"sqrt", 1, 1, NULL, NULL, op_sqrt, "sqrt(x): square root elementwise; negative x gives nan." NUMS FLOAT_ONLY},
    {"log", 1, 1, NULL, NULL, op_log,
     "log(x): natural logarithm elementwise; log(0) is -inf, negative x gives nan." NUMS FLOAT_ONLY},
    {"exp", 1, 1, NULL, NULL, op_exp, "exp(x): e raised to x elementwise." NUMS FLOAT_ONLY},
    {"clip", 3, 3, NULL, NULL, op_clip,
     "clip(x, lo, hi): x raised to at least lo, then lowered to at most hi, elementwise (numpy.clip: nan in x stays "
     "nan; lo > hi gives hi). x, lo and hi each may be a number or a sequence." NUMS BCAST FLOAT_ONLY},
    {"gt", 2, 2, NULL, NULL, op_gt, "gt(a, b): a > b elementwise." NUMS BCAST COMPARES},
    {"lt", 2, 2, NULL, NULL, op_lt, "lt(a, b): a < b elementwise." NUMS BCAST COMPARES},
    {"eq", 2, 2, NULL, NULL, op_eq, "eq(a, b): a == b elementwise (nan equals nothing)." NUMS BCAST COMPARES},
    {"where", 3, 3, NULL, NULL, op_where,
     "where(cond, a, b): a where cond is true, else b, elementwise. cond is a bool or numeric (nonzero, nan "
     "included, is true); a and b are numeric. All three broadcast; sequences must have equal lengths (op_error). "
     "Result: a float64 array, or a float when all three are scalars."},

    /* --- reductions --- */
    {"sum", 1, 1, NULL, NULL, op_sum,
     "sum(x): the sum of a numeric sequence (a number is its own sum). An int, an int64 array or a list of ints "
     "gives an int (wrapping on overflow); anything else a float. Empty: 0. A nan anywhere gives nan."},
    {"mean", 1, 1, NULL, NULL, op_mean,
     "mean(x): the arithmetic mean of a numeric sequence or number, as a float; empty gives nan; a nan anywhere "
     "gives nan."},
    {"std", 1, 1, std_params, std_check, op_std,
     "std(x; ddof=1): the standard deviation of a numeric sequence or number, sqrt(sum((x-mean)^2) / (n - ddof)), "
     "as a float. Param ddof (int >= 0, default 1 as in pandas). Fewer than ddof+1 elements gives nan."},
    {"min", 1, 1, NULL, NULL, op_min,
     "min(x): the smallest element of a numeric sequence or number. Ints, int64 arrays and lists of ints give an "
     "int; anything else a float. Empty gives nan; over floats a nan anywhere gives nan (as numpy)."},
    {"max", 1, 1, NULL, NULL, op_max,
     "max(x): the largest element of a numeric sequence or number. Ints, int64 arrays and lists of ints give an "
     "int; anything else a float. Empty gives nan; over floats a nan anywhere gives nan (as numpy)."},
    {"count", 1, 1, NULL, NULL, op_count,
     "count(x): the length of an array, list or dict, the characters of a str (UTF-8), the rows of a table; an "
     "int. A number, bool or none is a type_error."},

    /* --- windows --- */
    {"rolling_mean", 2, 2, NULL, NULL, op_rolling_mean,
     "rolling_mean(x, window): the mean of each trailing window of `window` elements, as pandas "
     "x.rolling(window).mean() with min_periods = window: a float64 array as long as x whose first window-1 "
     "entries are nan; a window holding a nan is nan. x is an array or a list of numbers; window an int >= 1 "
     "(an integral float is accepted), else op_error."},
    {"rolling_sum", 2, 2, NULL, NULL, op_rolling_sum,
     "rolling_sum(x, window): the sum of each trailing window of `window` elements, as pandas "
     "x.rolling(window).sum(): a float64 array as long as x whose first window-1 entries are nan; a window "
     "holding a nan is nan. x is an array or a list of numbers; window an int >= 1, else op_error."},
    {"cumsum", 1, 1, NULL, NULL, op_cumsum,
     "cumsum(x): running sums of an array or a list of numbers: r[i] = x[0] + ... + x[i]. An int64 array or a list "
     "of ints gives an int64 array (wrapping on overflow), anything else a float64 array; a nan carries forward."},
    {"shift", 2, 2, NULL, NULL, op_shift,
     "shift(x, periods): x moved by `periods` places, as pandas shift: positive moves toward the end and fills the "
     "start with nan, negative moves toward the start and fills the end; |periods| >= len gives all nan. x is an "
     "array or a list of numbers, periods an int; a float64 array as long as x."},
    {"diff", 1, 2, NULL, NULL, op_diff,
     "diff(x[, periods]): r[i] = x[i] - x[i - periods], nan where i - periods is outside x, as pandas diff. "
     "periods is an int, default 1, may be negative. x is an array or a list of numbers; a float64 array as long "
     "as x."},

    /* --- records --- */
    {"lookup", 2, 2, NULL, NULL, op_lookup,
     "lookup(dict, keys): the dict's values for the keys, as a list in key order (the values themselves, shared, "
     "not copies). keys is a list of ints and strs, an int64 array, a float64 array of integral values (read as "
     "int keys), or a single int or str (a list of one). A missing key is an op_error naming it; a key of another "
     "kind a type_error."},
    {"field", 1, 2, name_params, name_check, op_field,
     "field(records, name): the value of field `name` of each record, as a list. records is a list of dicts, or a "
     "dict whose values are the records (in its order). name is a str, given as a second arg ({\"value\": "
     "\"spend\"} or a node) or as param name, one or the other. A record without the field is an op_error; a "
     "record that is not a dict a type_error."},
    {"row_sum", 1, 1, NULL, NULL, op_row_sum,
     "row_sum(rows): the sum of each row, as a float64 array. rows is a list whose items are arrays or lists of "
     "numbers (an empty row sums to 0.0); anything else is a type_error."},
    {"make_record", 0, -1, names_params, make_record_check, op_make_record,
     "make_record(args...; names): a dict {names[i]: args[i]}, holding the args themselves. Param names (list of "
     "str, required): one distinct name per arg, checked when the DAG loads."},

    /* --- tables --- */
    {"column", 1, 2, name_params, name_check, op_column,
     "column(table, name): the column `name` of a table (an array or a list, shared, not copied). name is a str, "
     "given as a second arg or as param name, one or the other. A missing column is an op_error."},
    {"filter", 2, 2, NULL, NULL, op_filter,
     "filter(x, mask): the entries of x where mask is nonzero (or true), in order. x is a float64/int64 array, a "
     "list or a table (every column filtered); the result is of the same kind. mask is an array or a list of "
     "numbers or bools with one entry per element (row) of x, else op_error."},
    {"group_sum", 1, 1, group_params, NULL, op_group_sum,
     "group_sum(table; by, value): a dict from each distinct value of column `by` (in first-appearance order) to "
     "the sum, as a float, of column `value` over its rows. by must hold ints (an int64 array: int keys) or strs (a "
     "list: str keys); value must be numeric. Params by, value (str, required). A missing column is an op_error."},
    {"group_mean", 1, 1, group_params, NULL, op_group_mean,
     "group_mean(table; by, value): as group_sum, with the mean of column `value` over each group's rows."},

    /* --- constructors --- */
    {"range", 1, 2, NULL, NULL, op_range,
     "range(n) or range(start, stop): the int64 array start, start+1, ..., stop-1 (start 0 when one arg is given); "
     "empty when stop <= start. Args are ints (an integral float is accepted)."},
    {"fill", 2, 2, NULL, NULL, op_fill,
     "fill(n, value): a float64 array of n copies of value. n is an int >= 0 (op_error if negative; an integral "
     "float is accepted), value a number."},

    /* --- graph --- */
    {"graph", 1, 2, NULL, NULL, op_graph,
     "graph(edges) or graph(src, dst): linked node records. edges is a list of [a, b] pairs of int ids; or src and "
     "dst are numeric sequences of equal length (op_error) with integral values. The result is a dict from each "
     "node id (int, first-appearance order) to its record {\"id\": id, \"out\": [records], \"in\": [records]}, "
     "where out/in hold the neighbouring node records themselves, one entry per edge: the structure is cyclic, "
     "and once dropped it is freed by the cycle collector."},
    {"graph_reach", 2, 2, NULL, NULL, op_graph_reach,
     "graph_reach(graph, start): how many nodes are reachable from node `start` following \"out\" (start "
     "included), as an int; graph is what the graph op builds, start an int id. An unknown start is an op_error. "
     "Walks iteratively with a visited set, so long chains and cycles are fine."},
};

#undef BCAST
#undef NUMS
#undef KEEPS_INT
#undef FLOAT_ONLY
#undef COMPARES

const dag_op *dag_op_find(const char *name)
{
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        if (strcmp(ops[k].name, name) == 0)
            return &ops[k];
    return NULL;
}

size_t dag_op_count(void) { return sizeof ops / sizeof *ops; }

const dag_op *dag_op_at(size_t i) { return i < sizeof ops / sizeof *ops ? &ops[i] : NULL; }

/* }====================================================================== */
