/* ops.c: the op library's frame -- errors, params, and the table naming
 * every op.  The ops themselves live by family in dag/ops_*.c behind
 * dag/ops_internal.h.  Calling convention and value kinds: dag/ops.h; each
 * op's reference is its `doc` in the table at the end. */
#include "dag/ops.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "dag/module.h"
#include "dag/ops_internal.h"

/* ====================================================================== */
/* {  Errors and int arguments                                            */
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

int dag__arg_int(dag_op_ctx *ctx, const char *op, const char *what, const heap_obj *o, int64_t *out)
{
    if (heap_type_of(o) == HT_INT) {
        *out = heap_int_value(o);
        return DAG_OK;
    }
    if (heap_type_of(o) == HT_FLOAT && f64_to_i64(heap_float_value(o), out))
        return DAG_OK;
    return type_fail(ctx, op, what, "an int", o);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Params                                                              */
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

static int name_check(size_t nargs, const dag_params *params, char *err, size_t errlen)
{
    bool param = dag_param_get(params, "name") != NULL;
    if (nargs == 2 && param)
        return base_errf(err, errlen, "the name is given twice: as a second arg and as param 'name'");
    if (nargs == 1 && !param)
        return base_errf(err, errlen, "needs a name: a second arg, or param 'name'");
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The table                                                           */
/* ====================================================================== */

static const dag_param_spec std_params[] = {{"ddof", DP_INT, false}, {NULL, DP_INT, false}};
/* field and column take their name as README.md's DAGs write it, a second arg
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
    {"add", 2, 2, NULL, NULL, dag__op_add, "add(a, b): a + b elementwise." NUMS BCAST KEEPS_INT},
    {"sub", 2, 2, NULL, NULL, dag__op_sub, "sub(a, b): a - b elementwise." NUMS BCAST KEEPS_INT},
    {"mul", 2, 2, NULL, NULL, dag__op_mul, "mul(a, b): a * b elementwise." NUMS BCAST KEEPS_INT},
    {"div", 2, 2, NULL, NULL, dag__op_div,
     "div(a, b): a / b elementwise, always in float64 (true division); division by zero gives inf or nan as IEEE "
     "does, not an error." NUMS BCAST FLOAT_ONLY},
    {"pow", 2, 2, NULL, NULL, dag__op_pow, "pow(a, b): a raised to b elementwise (C pow)." NUMS BCAST FLOAT_ONLY},
    {"mod", 2, 2, NULL, NULL, dag__op_mod,
     "mod(a, b): a modulo b elementwise, as Python's %: the result has the sign of b. A zero anywhere in b is an "
     "op_error (ints and floats alike)." NUMS BCAST KEEPS_INT},
    {"neg", 1, 1, NULL, NULL, dag__op_neg,
     "neg(x): -x elementwise." NUMS
     " An int stays an int and an int64 array stays int64; otherwise float / float64 array."},
    {"abs", 1, 1, NULL, NULL, dag__op_abs,
     "abs(x): |x| elementwise." NUMS
     " An int stays an int and an int64 array stays int64; otherwise float / float64 array."},
    {"sqrt", 1, 1, NULL, NULL, dag__op_sqrt, "sqrt(x): square root elementwise; negative x gives nan." NUMS FLOAT_ONLY},
    {"log", 1, 1, NULL, NULL, dag__op_log,
     "log(x): natural logarithm elementwise; log(0) is -inf, negative x gives nan." NUMS FLOAT_ONLY},
    {"exp", 1, 1, NULL, NULL, dag__op_exp, "exp(x): e raised to x elementwise." NUMS FLOAT_ONLY},
    {"clip", 3, 3, NULL, NULL, dag__op_clip,
     "clip(x, lo, hi): x raised to at least lo, then lowered to at most hi, elementwise (numpy.clip: nan in x stays "
     "nan; lo > hi gives hi). x, lo and hi each may be a number or a sequence." NUMS BCAST FLOAT_ONLY},
    {"gt", 2, 2, NULL, NULL, dag__op_gt, "gt(a, b): a > b elementwise." NUMS BCAST COMPARES},
    {"lt", 2, 2, NULL, NULL, dag__op_lt, "lt(a, b): a < b elementwise." NUMS BCAST COMPARES},
    {"eq", 2, 2, NULL, NULL, dag__op_eq, "eq(a, b): a == b elementwise (nan equals nothing)." NUMS BCAST COMPARES},
    {"where", 3, 3, NULL, NULL, dag__op_where,
     "where(cond, a, b): a where cond is true, else b, elementwise. cond is a bool or numeric (nonzero, nan "
     "included, is true); a and b are numeric. All three broadcast; sequences must have equal lengths (op_error). "
     "Result: a float64 array, or a float when all three are scalars."},

    /* --- reductions --- */
    {"sum", 1, 1, NULL, NULL, dag__op_sum,
     "sum(x): the sum of a numeric sequence (a number is its own sum). An int, an int64 array or a list of ints "
     "gives an int (wrapping on overflow); anything else a float. Empty: 0. A nan anywhere gives nan."},
    {"mean", 1, 1, NULL, NULL, dag__op_mean,
     "mean(x): the arithmetic mean of a numeric sequence or number, as a float; empty gives nan; a nan anywhere "
     "gives nan."},
    {"std", 1, 1, std_params, dag__std_check, dag__op_std,
     "std(x; ddof=1): the standard deviation of a numeric sequence or number, sqrt(sum((x-mean)^2) / (n - ddof)), "
     "as a float. Param ddof (int >= 0, default 1 as in pandas). Fewer than ddof+1 elements gives nan."},
    {"min", 1, 1, NULL, NULL, dag__op_min,
     "min(x): the smallest element of a numeric sequence or number. Ints, int64 arrays and lists of ints give an "
     "int; anything else a float. Empty gives nan; over floats a nan anywhere gives nan (as numpy)."},
    {"max", 1, 1, NULL, NULL, dag__op_max,
     "max(x): the largest element of a numeric sequence or number. Ints, int64 arrays and lists of ints give an "
     "int; anything else a float. Empty gives nan; over floats a nan anywhere gives nan (as numpy)."},
    {"count", 1, 1, NULL, NULL, dag__op_count,
     "count(x): the length of an array, list or dict, the characters of a str (UTF-8), the rows of a table; an "
     "int. A number, bool or none is a type_error."},

    /* --- windows --- */
    {"rolling_mean", 2, 2, NULL, NULL, dag__op_rolling_mean,
     "rolling_mean(x, window): the mean of each trailing window of `window` elements, as pandas "
     "x.rolling(window).mean() with min_periods = window: a float64 array as long as x whose first window-1 "
     "entries are nan; a window holding a nan is nan. x is an array or a list of numbers; window an int >= 1 "
     "(an integral float is accepted), else op_error."},
    {"rolling_sum", 2, 2, NULL, NULL, dag__op_rolling_sum,
     "rolling_sum(x, window): the sum of each trailing window of `window` elements, as pandas "
     "x.rolling(window).sum(): a float64 array as long as x whose first window-1 entries are nan; a window "
     "holding a nan is nan. x is an array or a list of numbers; window an int >= 1, else op_error."},
    {"cumsum", 1, 1, NULL, NULL, dag__op_cumsum,
     "cumsum(x): running sums of an array or a list of numbers: r[i] = x[0] + ... + x[i]. An int64 array or a list "
     "of ints gives an int64 array (wrapping on overflow), anything else a float64 array; a nan carries forward."},
    {"shift", 2, 2, NULL, NULL, dag__op_shift,
     "shift(x, periods): x moved by `periods` places, as pandas shift: positive moves toward the end and fills the "
     "start with nan, negative moves toward the start and fills the end; |periods| >= len gives all nan. x is an "
     "array or a list of numbers, periods an int; a float64 array as long as x."},
    {"diff", 1, 2, NULL, NULL, dag__op_diff,
     "diff(x[, periods]): r[i] = x[i] - x[i - periods], nan where i - periods is outside x, as pandas diff. "
     "periods is an int, default 1, may be negative. x is an array or a list of numbers; a float64 array as long "
     "as x."},

    /* --- records --- */
    {"lookup", 2, 2, NULL, NULL, dag__op_lookup,
     "lookup(dict, keys): the dict's values for the keys, as a list in key order (the values themselves, shared, "
     "not copies). keys is a list of ints and strs, an int64 array, a float64 array of integral values (read as "
     "int keys), or a single int or str (a list of one). A missing key is an op_error naming it; a key of another "
     "kind a type_error."},
    {"field", 1, 2, name_params, name_check, dag__op_field,
     "field(records, name): the value of field `name` of each record, as a list. records is a list of dicts, or a "
     "dict whose values are the records (in its order). name is a str, given as a second arg ({\"value\": "
     "\"spend\"} or a node) or as param name, one or the other. A record without the field is an op_error; a "
     "record that is not a dict a type_error."},
    {"row_sum", 1, 1, NULL, NULL, dag__op_row_sum,
     "row_sum(rows): the sum of each row, as a float64 array. rows is a list whose items are arrays or lists of "
     "numbers (an empty row sums to 0.0); anything else is a type_error."},
    {"make_record", 0, -1, names_params, dag__make_record_check, dag__op_make_record,
     "make_record(args...; names): a dict {names[i]: args[i]}, holding the args themselves. Param names (list of "
     "str, required): one distinct name per arg, checked when the DAG loads."},

    /* --- tables --- */
    {"column", 1, 2, name_params, name_check, dag__op_column,
     "column(table, name): the column `name` of a table (an array or a list, shared, not copied). name is a str, "
     "given as a second arg or as param name, one or the other. A missing column is an op_error."},
    {"filter", 2, 2, NULL, NULL, dag__op_filter,
     "filter(x, mask): the entries of x where mask is nonzero (or true), in order. x is a float64/int64 array, a "
     "list or a table (every column filtered); the result is of the same kind. mask is an array or a list of "
     "numbers or bools with one entry per element (row) of x, else op_error."},
    {"group_sum", 1, 1, group_params, NULL, dag__op_group_sum,
     "group_sum(table; by, value): a dict from each distinct value of column `by` (in first-appearance order) to "
     "the sum, as a float, of column `value` over its rows. by must hold ints (an int64 array: int keys) or strs (a "
     "list: str keys); value must be numeric. Params by, value (str, required). A missing column is an op_error."},
    {"group_mean", 1, 1, group_params, NULL, dag__op_group_mean,
     "group_mean(table; by, value): as group_sum, with the mean of column `value` over each group's rows."},

    /* --- constructors --- */
    {"range", 1, 2, NULL, NULL, dag__op_range,
     "range(n) or range(start, stop): the int64 array start, start+1, ..., stop-1 (start 0 when one arg is given); "
     "empty when stop <= start. Args are ints (an integral float is accepted)."},
    {"fill", 2, 2, NULL, NULL, dag__op_fill,
     "fill(n, value): a float64 array of n copies of value. n is an int >= 0 (op_error if negative; an integral "
     "float is accepted), value a number."},

    /* --- graph --- */
    {"graph", 1, 2, NULL, NULL, dag__op_graph,
     "graph(edges) or graph(src, dst): linked node records. edges is a list of [a, b] pairs of int ids; or src and "
     "dst are numeric sequences of equal length (op_error) with integral values. The result is a dict from each "
     "node id (int, first-appearance order) to its record {\"id\": id, \"out\": [records], \"in\": [records]}, "
     "where out/in hold the neighbouring node records themselves, one entry per edge: the structure is cyclic, "
     "and once dropped it is freed by the cycle collector."},
    {"graph_reach", 2, 2, NULL, NULL, dag__op_graph_reach,
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
    return dag_opset_find(dag_ops_in_use(), name);
}

size_t dag_op_count(void) { return sizeof ops / sizeof *ops; }

const dag_op *dag_op_at(size_t i) { return i < sizeof ops / sizeof *ops ? &ops[i] : NULL; }

/* }====================================================================== */

