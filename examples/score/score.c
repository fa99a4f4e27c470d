/* score.c: an example cowdag module -- three ops a team would write for
 * its own scoring, over the example customer store (README.md, "Writing a
 * module", walks through it).  Built by `make modules` into
 * build/examples/score/libscore.so against include/cowdag_module.h alone.
 *
 * Every op reads its arguments through borrowed accessors, so it writes
 * nothing into the state the workers inherit: in freeze + immortal mode
 * the state stays 100% shared, as with the built-in ops. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cowdag_module.h"

COWDAG_MODULE_DECLARE;

/* How often a long loop asks whether the run is past its deadline or
 * budget: a clock read every this many items costs nothing measurable. */
#define CHECK_EVERY 1024

/* A numeric sequence as doubles: a float64 array read in place, else a
 * copy in *scratch (an int64 array, a list of numbers), counted against
 * the run's budget.  COWDAG_ERR after failing the call. */
static int read_seq(cowdag_ctx *ctx, const char *what, cowdag_value *v, const double **out, size_t *n,
                    double **scratch)
{
    *scratch = NULL;
    const double *f = cowdag_array_f64(v, n);
    if (f) {
        *out = f;
        return COWDAG_OK;
    }
    const int64_t *i = cowdag_array_i64(v, n);
    if (!i && cowdag_type_of(v) != COWDAG_LIST)
        return cowdag_fail_type(ctx, "%s must be an array or a list of numbers, got %s", what, cowdag_kind(v));
    if (!i)
        *n = cowdag_len(v);
    if (cowdag_reserve(ctx, (uint64_t)*n * sizeof(double)) != COWDAG_OK)
        return COWDAG_ERR;
    double *t = malloc((*n ? *n : 1) * sizeof *t);
    if (!t)
        return cowdag_fail(ctx, "out of memory for %zu numbers", *n);
    for (size_t k = 0; k < *n; k++) {
        if (i) {
            t[k] = (double)i[k];
        } else if (cowdag_number(cowdag_list_get(v, k), &t[k]) != COWDAG_OK) {
            free(t);
            return cowdag_fail_type(ctx, "%s: item %zu must be a number, got %s", what, k,
                                    cowdag_kind(cowdag_list_get(v, k)));
        }
    }
    *out = *scratch = t;
    return COWDAG_OK;
}

/* ====================================================================== */
/* {  weighted_score(records, weights; field="spend")                      */
/* ====================================================================== */

static int weighted_score(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                          cowdag_value **out)
{
    (void)nargs;
    const char *field = cowdag_param_str(params, "field", "spend");
    const double *w;
    double *wtmp;
    size_t nw;
    if (read_seq(ctx, "weights", args[1], &w, &nw, &wtmp) != COWDAG_OK)
        return COWDAG_ERR;
    double *r;
    cowdag_value *res = cowdag_array_f64_new(ctx, cowdag_len(args[0]), &r);
    if (!res) {
        free(wtmp);
        return COWDAG_ERR;
    }
    size_t pos = 0, k = 0;
    int rc = COWDAG_OK;
    for (cowdag_value *rec; rc == COWDAG_OK && (rec = cowdag_records_next(args[0], &pos)); k++) {
        if (k % CHECK_EVERY == 0 && cowdag_check(ctx) != COWDAG_OK) {
            rc = COWDAG_ERR;
            break;
        }
        if (cowdag_type_of(rec) != COWDAG_DICT) {
            rc = cowdag_fail_type(ctx, "record %zu is %s, not a record", k, cowdag_kind(rec));
            break;
        }
        cowdag_value *vals = cowdag_dict_get_str(rec, field);
        if (!vals) {
            rc = cowdag_fail(ctx, "record %zu has no field '%s'", k, field);
            break;
        }
        size_t nv;
        const double *a = cowdag_array_f64(vals, &nv);
        if (!a && cowdag_type_of(vals) != COWDAG_LIST) {
            rc = cowdag_fail_type(ctx, "record %zu: '%s' must be a list of numbers, got %s", k, field,
                                  cowdag_kind(vals));
            break;
        }
        if (!a)
            nv = cowdag_len(vals);
        if (nv != nw) {
            rc = cowdag_fail(ctx, "record %zu: '%s' has %zu values for %zu weights", k, field, nv, nw);
            break;
        }
        double s = 0.0;
        for (size_t j = 0; j < nv; j++) {
            double x;
            if (a) {
                x = a[j];
            } else if (cowdag_number(cowdag_list_get(vals, j), &x) != COWDAG_OK) {
                rc = cowdag_fail_type(ctx, "record %zu: '%s' item %zu must be a number, got %s", k, field, j,
                                      cowdag_kind(cowdag_list_get(vals, j)));
                break;
            }
            s += w[j] * x;
        }
        r[k] = s;
    }
    free(wtmp);
    if (rc != COWDAG_OK) {
        cowdag_unref(res);
        return COWDAG_ERR;
    }
    *out = res;
    return COWDAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  percentile(x; q)                                                     */
/* ====================================================================== */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int percentile(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                      cowdag_value **out)
{
    (void)nargs;
    double q = cowdag_param_float(params, "q", NAN);
    if (!(q >= 0.0 && q <= 100.0))
        return cowdag_fail(ctx, "q must be between 0 and 100, got %g", q);
    const double *x;
    double *xtmp;
    size_t n;
    if (read_seq(ctx, "x", args[0], &x, &n, &xtmp) != COWDAG_OK)
        return COWDAG_ERR;
    if (n == 0) {
        free(xtmp);
        return cowdag_fail(ctx, "the percentile of nothing (x is empty)");
    }
    /* Sorted in a copy of our own (an array argument is read in place and
     * must not change). */
    double *s = xtmp;
    if (!s) {
        if (cowdag_reserve(ctx, (uint64_t)n * sizeof(double)) != COWDAG_OK)
            return COWDAG_ERR;
        s = malloc(n * sizeof *s);
        if (!s)
            return cowdag_fail(ctx, "out of memory for %zu numbers", n);
        memcpy(s, x, n * sizeof *s);
    }
    double result;
    size_t k = 0;
    while (k < n && !isnan(s[k]))
        k++;
    if (k < n) {
        result = NAN; /* as numpy: a nan anywhere gives nan */
    } else {
        qsort(s, n, sizeof *s, cmp_double);
        double rank = q / 100.0 * (double)(n - 1);
        size_t lo = (size_t)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
        result = s[lo] + (s[hi] - s[lo]) * (rank - (double)lo);
    }
    free(s);
    *out = cowdag_float_new(result);
    return COWDAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  count_tagged(records; tag, field="tags")                             */
/* ====================================================================== */

static int count_tagged(cowdag_ctx *ctx, cowdag_value *const *args, size_t nargs, const cowdag_params *params,
                        cowdag_value **out)
{
    (void)nargs;
    const char *tag = cowdag_param_str(params, "tag", NULL);
    const char *field = cowdag_param_str(params, "field", "tags");
    size_t taglen = strlen(tag), pos = 0, k = 0;
    int64_t count = 0;
    for (cowdag_value *rec; (rec = cowdag_records_next(args[0], &pos)); k++) {
        if (k % CHECK_EVERY == 0 && cowdag_check(ctx) != COWDAG_OK)
            return COWDAG_ERR;
        cowdag_value *tags = cowdag_dict_get_str(rec, field);
        if (!tags)
            return cowdag_fail(ctx, "record %zu has no field '%s'", k, field);
        if (cowdag_type_of(tags) != COWDAG_LIST)
            return cowdag_fail_type(ctx, "record %zu: '%s' must be a list of str, got %s", k, field,
                                    cowdag_kind(tags));
        for (size_t j = 0; j < cowdag_len(tags); j++) {
            size_t len;
            const char *t = cowdag_str(cowdag_list_get(tags, j), &len);
            if (t && len == taglen && memcmp(t, tag, len) == 0) {
                count++;
                break;
            }
        }
    }
    *out = cowdag_int_new(count);
    return COWDAG_OK;
}

/* }====================================================================== */

static const cowdag_arg_spec weighted_args[] = {
    {"records", COWDAG_RECORDS, 0}, {"weights", COWDAG_NUMERIC, 0}, {NULL, COWDAG_ANY, 0}};
static const cowdag_param_spec weighted_params[] = {{"field", COWDAG_PARAM_STR, 0}, {NULL, COWDAG_PARAM_INT, 0}};
static const cowdag_arg_spec percentile_args[] = {{"x", COWDAG_NUMERIC, 0}, {NULL, COWDAG_ANY, 0}};
static const cowdag_param_spec percentile_params[] = {{"q", COWDAG_PARAM_FLOAT, 1}, {NULL, COWDAG_PARAM_INT, 0}};
static const cowdag_arg_spec tagged_args[] = {{"records", COWDAG_RECORDS, 0}, {NULL, COWDAG_ANY, 0}};
static const cowdag_param_spec tagged_params[] = {
    {"tag", COWDAG_PARAM_STR, 1}, {"field", COWDAG_PARAM_STR, 0}, {NULL, COWDAG_PARAM_INT, 0}};

static const cowdag_op_def defs[] = {
    {"weighted_score", weighted_args, weighted_params, COWDAG_ARRAY,
     "For each record (a list of records, or a dict whose values are records), the sum of weights[j] * "
     "record[field][j], as a float64 array in record order. weights is an array or a list of numbers, as long "
     "as every record's field (param field, default \"spend\": a list of numbers). A record without the field "
     "or of another length is an op_error naming it.",
     weighted_score, NULL},
    {"percentile", percentile_args, percentile_params, COWDAG_FLOAT,
     "The q-th percentile (param q, 0 to 100) of an array or a list of numbers, interpolating linearly between "
     "the two nearest ranks as numpy.percentile does by default; a nan anywhere gives nan; empty is an op_error.",
     percentile, NULL},
    {"count_tagged", tagged_args, tagged_params, COWDAG_INT,
     "How many records carry `tag` (param) in their list of str `field` (param, default \"tags\"), as an int.",
     count_tagged, NULL},
};

int cowdag_module_init(cowdag_module *m)
{
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        if (cowdag_register_op(m, &defs[i]) != COWDAG_OK)
            return COWDAG_ERR;
    return COWDAG_OK;
}
