/* dag: DAG files compiled into graphs, planned per request, executed with
 * every intermediate released as soon as its last consumer has run.
 * The file format and request semantics are README.md's "Running DAGs";
 * the planning rules are at the top of dag/run.c.
 *
 * A compiled DAG is built once, in the master, and then only read: workers
 * inherit it, so nothing about a run is ever written into it (per-run state
 * lives in the run's own arrays).  Its constants, input defaults and literal
 * arguments are heap objects made at load time, frozen and shared like the
 * rest of the state.
 */
#ifndef COWDAG_DAG_H
#define COWDAG_DAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dag/ops.h"
#include "dag/value.h"
#include "heap/heap.h"

#define DAG_NONE UINT32_MAX

typedef enum dag_kind { DK_INPUT, DK_STATE, DK_CONST, DK_OP } dag_kind;

/* An op argument: another node, or a literal written in the DAG file. */
typedef struct dag_arg {
    uint32_t node;     /* DAG_NONE for a literal */
    heap_obj *literal; /* owned reference, literals only */
} dag_arg;

typedef struct dag_node {
    char *name;
    dag_kind kind;
    const dag_op *op;  /* DK_OP */
    dag_params params; /* DK_OP */
    dag_arg *args;     /* DK_OP */
    uint32_t nargs;
    uint32_t *deps;    /* distinct nodes among args, in argument order */
    uint32_t ndeps;
    uint32_t *users;   /* nodes that depend on this one */
    uint32_t nusers;
    dag_vtype type;    /* DK_INPUT */
    heap_obj *value;   /* DK_CONST: the constant; DK_INPUT: the default or NULL */
    char *state;       /* DK_STATE: name of the state entry */
    char *description;
} dag_node;

typedef struct dag {
    char *name;
    char *description;
    char *file;
    dag_node *nodes;
    uint32_t n;
    uint32_t *topo;   /* every node, dependencies first */
    uint32_t *inputs; /* input nodes, in declaration order */
    uint32_t ninputs;
    uint32_t *sinks;  /* the default outputs: non-input nodes nothing depends on */
    uint32_t nsinks;
    uint32_t *index;  /* name -> node id, open addressing */
    uint32_t index_mask;
} dag;

/* --- load-time errors ---------------------------------------------------- */

/* Every problem found in a file, each naming the file and (when there is
 * one) the node or key, so a user fixes them all in one pass. */
typedef struct dag_error {
    char *file;
    char *node; /* may be NULL */
    char *problem;
} dag_error;

typedef struct dag_errors {
    dag_error *v;
    size_t n, cap;
} dag_errors;

void dag_errors_add(dag_errors *e, const char *file, const char *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "FILE: node 'X': problem", one line per error. */
void dag_errors_print(const dag_errors *e, FILE *out);
void dag_errors_free(dag_errors *e);

/* --- loading --------------------------------------------------------------- */

/* Compiles a DAG file.  state_names lists the config's state entries (state
 * nodes must name one).  Returns NULL after adding every problem to errs. */
dag *dag_load_file(const char *path, const char *const *state_names, size_t nstate, dag_errors *errs);
/* The same from a parsed document; `file` names it in messages. */
dag *dag_load_json(const json_t *doc, const char *file, const char *const *state_names, size_t nstate,
                   dag_errors *errs);
void dag_free(dag *d);

/* Node id by name, DAG_NONE if there is none. */
uint32_t dag_find(const dag *d, const char *name);
const char *dag_kind_name(dag_kind k);

/* Whether s is a name DAG files may use for a node, an input, a param or
 * an op: a letter or '_', then letters, digits and '_'. */
bool dag_valid_name(const char *s);

/* --- running ---------------------------------------------------------------- */

/* What went wrong with a request or a run: the error body of README.md,
 * "Serving". */
typedef struct dag_fail {
    const char *code; /* "bad_json", "unknown_output", "missing_input", "type_error", "op_error", "limit_exceeded" */
    char message[512];
    char node[128];   /* empty when no single node is to blame */
} dag_fail;

typedef struct dag_run_opts {
    heap_obj *state;       /* dict: state name -> value (borrowed) */
    uint64_t deadline_ns;  /* base_now_ns() time to give up at; 0: none */
    uint64_t max_elems;    /* largest result an op may make; 0: 1 << 28 */
    uint64_t max_bytes;    /* heap bytes the run may hold; 0: no budget */
    /* Test hook: called after each node runs with the nodes whose results
     * are held at that moment. */
    void (*on_step)(void *arg, uint32_t node, const uint32_t *live, size_t nlive);
    void *step_arg;
} dag_run_opts;

typedef struct dag_result {
    uint32_t *outputs; /* requested order */
    heap_obj **values; /* new references, parallel to outputs */
    size_t noutputs;
    uint64_t nodes_executed;
    uint64_t elapsed_us;
    uint64_t peak_bytes; /* heap bytes above the run's start, at most */
    uint64_t held_bytes; /* heap bytes above the run's start once it ended: what the outputs hold */
} dag_result;

/* Runs a request {"inputs": {...}, "overrides": {...}, "outputs": [...]}
 * (every member optional; NULL means {}).  DAG_OK fills res; DAG_ERR fills
 * fail, and then nothing is held. */
int dag_run(const dag *d, const json_t *request, const dag_run_opts *opts, dag_result *res, dag_fail *fail);
/* The same request as a heap value (borrowed), as dag_json_parse makes it
 * from a body (dag/json_in.h): the route's way, with no jansson tree. */
int dag_run_value(const dag *d, heap_obj *request, const dag_run_opts *opts, dag_result *res, dag_fail *fail);
void dag_result_free(dag_result *res);

/* Writes the run response (README.md, "Serving"):
 * {"dag", "outputs": {name: value}, "stats": {nodes_executed, elapsed_us,
 * peak_bytes, worker, pid}}.  DAG_ERR (fail: type_error naming the output)
 * if an output cannot be written as JSON (a cyclic value); that is known
 * before anything is written, so w can stream to its destination. */
int dag_write_response(dag_writer *w, const dag *d, const dag_result *res, int worker, long pid,
                       dag_fail *fail);

/* The same response written a piece at a time into a memory writer, for a
 * server that sends a large one while it writes it (memory: one piece, not
 * the whole text).
 * dag_response_new checks the outputs as dag_write_response does (DAG_ERR
 * and fail, *res untouched); on DAG_OK it takes *res (zeroing the caller's
 * copy), and dag_response_free releases it.  dag_response_fill appends at
 * least `want` bytes to w (fewer at the end, more by at most one piece: a
 * run of numbers, a string) and returns false once the response is complete.
 * The DAG must outlive the response. */
typedef struct dag_response dag_response;
int dag_response_new(const dag *d, dag_result *res, int worker, long pid, dag_response **out, dag_fail *fail);
bool dag_response_fill(dag_response *r, dag_writer *w, size_t want);
void dag_response_free(dag_response *r);
/* Writes {"error": {"code", "message", "node"?}}. */
void dag_write_error(dag_writer *w, const dag_fail *fail);

/* --- description ------------------------------------------------------------- */

/* {"name", "description", "inputs": {name: {"type", "default"?}},
 *  "outputs": [sink names]} -- what GET /dags lists. */
json_t *dag_summary_json(const dag *d);
/* The summary plus "nodes": [{"name", "kind", "op"?, "deps": [...], ...}]. */
json_t *dag_detail_json(const dag *d);
/* Graphviz DOT text (malloc'ed). */
char *dag_dot(const dag *d);

#endif
