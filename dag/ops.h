/* ops: the op library DAG nodes call.  Every built-in op is one entry of
 * the table in dag/ops.c, which documents it in one place: arguments,
 * params, types, broadcasting, result.  `cowdag ops` prints that
 * documentation.  Modules add ops of their own beside the table
 * (dag/module.h; README.md, "Writing a module").
 *
 * Calling convention.  An op gets its arguments as borrowed heap values
 * (the results of upstream nodes, or literals of the DAG file) and its
 * params as compiled at load time; it returns DAG_OK with a new reference in
 * *out, or DAG_ERR with the context's error filled in (dag_op_fail).  An op
 * never keeps its arguments except through references it takes itself.
 *
 * Values.  "number": int or float.  "numeric": a number, a float64/int64
 * array, or a list of numbers (lists are read as float64).  Elementwise ops
 * broadcast a number against an array; two arrays must have equal lengths.
 * Integer inputs give integer results only where noted; everything else
 * computes in float64.
 */
#ifndef COWDAG_OPS_H
#define COWDAG_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dag/value.h"
#include "heap/heap.h"

/* Error codes an op may report (422 answers: README.md, "Serving"). */
#define DAG_E_TYPE "type_error"          /* an argument of the wrong kind */
#define DAG_E_OP "op_error"              /* the op cannot compute this (missing key, length mismatch) */
#define DAG_E_LIMIT "limit_exceeded"     /* a result would exceed ctx->max_elems */

/* dag/run.c sets every member before each op, one by one rather than by
 * zeroing the struct (msg alone is 256 bytes): a new member is set there. */
typedef struct dag_op_ctx {
    const char *code;  /* DAG_E_*, set by dag_op_fail */
    char msg[256];
    uint64_t max_elems; /* largest array/list an op may create */
    /* The run's memory budget: heap bytes above base_bytes (the heap when
     * the run began) it may hold, counting what an op is about to make;
     * 0: no budget. */
    uint64_t max_bytes;
    uint64_t base_bytes;
    /* The run's deadline (base_now_ns() time; 0: none) and the op being
     * called: what module ops read (dag/module.h); built-ins need neither,
     * the run checks the deadline between nodes. */
    uint64_t deadline_ns;
    const struct dag_op *op;
} dag_op_ctx;

/* Sets ctx's error and returns DAG_ERR: `return dag_op_fail(ctx, DAG_E_TYPE, "...", ...)`. */
int dag_op_fail(dag_op_ctx *ctx, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* --- params ------------------------------------------------------------- */

typedef enum dag_ptype { DP_INT, DP_FLOAT, DP_STR, DP_STRLIST } dag_ptype;

typedef struct dag_param_spec {
    const char *name;
    dag_ptype type;
    bool required;
} dag_param_spec;

/* A compiled param value (owned by the compiled DAG). */
typedef struct dag_param {
    const char *name; /* the name DAG files call it by (static) */
    dag_ptype type;
    bool set;
    int64_t i;
    double f;
    char *s;
    char **strs;
    size_t nstrs;
} dag_param;

typedef struct dag_params {
    dag_param *v;
    size_t n;
} dag_params;

/* The param by name, or NULL if the op has no such param or it was not
 * given (callers apply their documented default). */
const dag_param *dag_param_get(const dag_params *p, const char *name);

/* Compiles a node's "params" object against the op's spec: every required
 * param present, no unknown one, each of its type (an int is a float too).
 * DAG_ERR with err naming the param on a mismatch.  p is freed with
 * dag_params_free. */
struct dag_op;
int dag_params_compile(const struct dag_op *op, const json_t *params, dag_params *p, char *err, size_t errlen);
void dag_params_free(dag_params *p);

/* --- the table ---------------------------------------------------------- */

typedef int (*dag_op_fn)(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params,
                         heap_obj **out);

typedef struct dag_op {
    const char *name;
    int min_args;
    int max_args; /* -1: any number */
    const dag_param_spec *params; /* terminated by a {NULL} entry; NULL: none */
    /* Extra arity rule checked at load time, e.g. make_record: one arg per
     * name; NULL if none.  Returns DAG_ERR with err filled in. */
    int (*check)(size_t nargs, const dag_params *params, char *err, size_t errlen);
    dag_op_fn run;
    const char *doc; /* one paragraph: args, params, types, broadcasting, result */
} dag_op;

/* The op called name: a built-in, else one of the op set in use (the
 * modules of the generation being loaded, dag_ops_use); NULL if unknown. */
const dag_op *dag_op_find(const char *name);
/* The built-in table. */
size_t dag_op_count(void);
const dag_op *dag_op_at(size_t i);

#endif
