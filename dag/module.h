/* module: the ops of loaded modules.  An op set holds what the modules of
 * one generation registered, beside the built-in table of dag/ops.c; this
 * file also implements include/cowdag_module.h, the API modules call, over
 * the heap.  Opening the shared libraries is load/modules.c's; how to write
 * a module: README.md, "Writing a module".
 *
 * A module op is a dag_op like the built-ins, whose run is one trampoline:
 * it checks the args against the declared types, calls the module's
 * function with the heap values as opaque handles, and checks the result
 * against the declared type, so a module's mistake becomes a 422 naming
 * the node rather than a bad value downstream. */
#ifndef COWDAG_MODULE_INTERNAL_H
#define COWDAG_MODULE_INTERNAL_H

#include <stddef.h>

#include "dag/ops.h"

struct cowdag_module;
typedef struct dag_opset dag_opset;

dag_opset *dag_opset_new(void);
/* Frees the set and its ops: every DAG compiled against it must be gone. */
void dag_opset_free(dag_opset *s);

/* Registration of one module's ops into s: the handle its init gets.
 * `module` names the module in `cowdag ops` and in messages. */
struct cowdag_module *dag_opset_begin(dag_opset *s, const char *module);
/* Ends it (the handle is freed): DAG_OK, or DAG_ERR with err holding the
 * first op the module could not register and why. */
int dag_opset_end(struct cowdag_module *m, char *err, size_t errlen);

const dag_op *dag_opset_find(const dag_opset *s, const char *name); /* NULL if absent or s is NULL */
size_t dag_opset_count(const dag_opset *s);
const dag_op *dag_opset_at(const dag_opset *s, size_t i);

/* The module an op came from, NULL for a built-in. */
const char *dag_op_module(const dag_op *op);

/* The op set dag_op_find looks in after the built-ins, while a generation's
 * DAGs compile (load/world.c sets it around that); NULL: none. */
void dag_ops_use(const dag_opset *s);
const dag_opset *dag_ops_in_use(void);

#endif
