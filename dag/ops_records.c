/* ops_records.c: the ops over records (dicts of fields, keyed stores) and
 * tables (typed columns): lookup, field, row_sum, make_record, column,
 * filter, group_sum/mean.  Each op's reference is its `doc` in dag/ops.c. */
#include "dag/ops_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

/* ====================================================================== */
/* {  Records                                                             */
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

int dag__op_lookup(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_field(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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
    heap_obj **vals = NULL, *vals_small[64];
    if (!is_dict) { /* a list of dicts: one batched look-up of the field */
        heap_obj *const *ds = heap_list_items(recs);
        bool all_dicts = true;
        for (size_t j = 0; j < n && all_dicts; j++)
            all_dicts = heap_type_of(ds[j]) == HT_DICT;
        if (all_dicts) {
            vals = n <= 64 ? vals_small : base_malloc(n * sizeof *vals);
            heap_dicts_get_str_many(ds, n, name, vals);
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

int dag__op_row_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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
    heap_obj *const *row_at = heap_list_items(rows);
    for (size_t j = 0; j < n; j++)
        heap_list_prefetch_items(row_at[j]);
    for (size_t j = 0; j < n; j++)
        heap_list_prefetch_elems(row_at[j]);
    for (size_t j = 0; j < n; j++) {
        heap_obj *row = row_at[j];
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

int dag__make_record_check(size_t nargs, const dag_params *params, char *err, size_t errlen)
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

int dag__op_make_record(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
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
/* {  Tables                                                              */
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

int dag__op_column(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_filter(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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

int dag__op_group_sum(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                        heap_obj **out)
{
    (void)nargs;
    return group(ctx, "group_sum", false, args, params, out);
}

int dag__op_group_mean(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                         heap_obj **out)
{
    (void)nargs;
    return group(ctx, "group_mean", true, args, params, out);
}

/* }====================================================================== */
