/* ops_math.c: the numeric ops -- elementwise arithmetic and comparisons
 * (broadcasting a number against a sequence), reductions, and the windowed
 * ops.  Each op's reference is its `doc` in the table in dag/ops.c. */
#include "dag/ops_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

/* ====================================================================== */
/* {  Elementwise                                                         */
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
    int dag__op_##name(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,           \
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
    int dag__op_##name(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,           \
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

/* Releases the views of dag__op_clip and dag__op_where. */
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

int dag__op_clip(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_where(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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
/* {  Reductions                                                          */
/* ====================================================================== */

int dag__op_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__std_check(size_t nargs, const dag_params *params, char *err, size_t errlen)
{
    (void)nargs;
    const dag_param *d = dag_param_get(params, "ddof");
    if (d && d->i < 0)
        return base_errf(err, errlen, "param 'ddof' must be >= 0, got %" PRId64, d->i);
    return DAG_OK;
}

int dag__op_std(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_min(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    return extreme(ctx, "min", false, args[0], out);
}

int dag__op_max(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_count(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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
/* {  Windows                                                             */
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
    int rc = dag__arg_int(ctx, op, "window", args[1], &w);
    if (rc == DAG_OK && w < 1)
        rc = dag_op_fail(ctx, DAG_E_OP, "%s: window must be >= 1, got %" PRId64, op, w);
    double *r;
    if (rc == DAG_OK && (rc = new_f64(ctx, op, x.n, out, &r)) == DAG_OK)
        rolling_f64(num_f64(&x), x.n, (uint64_t)w, mean ? (double)w : 1.0, r);
    num_free(&x);
    return rc;
}

int dag__op_rolling_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                           heap_obj **out)
{
    (void)nargs;
    (void)params;
    return rolling(ctx, "rolling_mean", true, args, out);
}

int dag__op_rolling_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                          heap_obj **out)
{
    (void)nargs;
    (void)params;
    return rolling(ctx, "rolling_sum", false, args, out);
}

int dag__op_cumsum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_shift(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    num x;
    int64_t p;
    if (seq_load(ctx, "shift", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    int rc = dag__arg_int(ctx, "shift", "periods", args[1], &p);
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

int dag__op_diff(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)params;
    num x;
    int64_t p = 1;
    if (seq_load(ctx, "diff", "x", args[0], &x) != DAG_OK)
        return DAG_ERR;
    int rc = nargs > 1 ? dag__arg_int(ctx, "diff", "periods", args[1], &p) : DAG_OK;
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
