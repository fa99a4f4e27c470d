/* ops_graph.c: the constructors (range, fill) and the graph ops that build
 * and walk rings of linked records.  Each op's reference is its `doc` in
 * the table in dag/ops.c. */
#include "dag/ops_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

/* ====================================================================== */
/* {  Constructors                                                        */
/* ====================================================================== */

int dag__op_range(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)params;
    int64_t start = 0, stop;
    if (nargs > 1) {
        if (dag__arg_int(ctx, "range", "start", args[0], &start) != DAG_OK ||
            dag__arg_int(ctx, "range", "stop", args[1], &stop) != DAG_OK)
            return DAG_ERR;
    } else if (dag__arg_int(ctx, "range", "n", args[0], &stop) != DAG_OK) {
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

int dag__op_fill(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    (void)nargs;
    (void)params;
    int64_t n;
    if (dag__arg_int(ctx, "fill", "n", args[0], &n) != DAG_OK)
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
/* {  Graph                                                               */
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
            if (dag__arg_int(ctx, "graph", what, heap_list_get(pair, 0), &e->src[k]) != DAG_OK ||
                dag__arg_int(ctx, "graph", what, heap_list_get(pair, 1), &e->dst[k]) != DAG_OK) {
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

int dag__op_graph(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
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
int dag__op_graph_reach(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                          heap_obj **out)
{
    (void)nargs;
    (void)params;
    heap_obj *g = args[0];
    int64_t start;
    if (heap_type_of(g) != HT_DICT)
        return type_fail(ctx, "graph_reach", "graph", "a dict of node records", g);
    if (dag__arg_int(ctx, "graph_reach", "start", args[1], &start) != DAG_OK)
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
