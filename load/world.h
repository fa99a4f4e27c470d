/* world: everything a master loads before it forks -- the config's
 * modules, the state entries in the heap, the compiled DAGs -- and the one place that
 * loads it all, for `serve`, `run` and `check` alike. */
#ifndef COWDAG_WORLD_H
#define COWDAG_WORLD_H

#include <stdbool.h>
#include <stdio.h>

#include "dag/dag.h"
#include "load/config.h"
#include "load/modules.h"

typedef struct ld_world {
    heap_obj *state; /* dict: state name -> value (owned reference) */
    dag **dags;      /* sorted by name */
    size_t ndags;
    ld_modules modules; /* the ops the DAGs may call beside the built-ins */
} ld_world;

typedef enum ld_state_policy {
    LD_STATE_ALL,    /* load every state entry (serve, check) */
    LD_STATE_NEEDED, /* only the entries `only_dag` refers to (run) */
} ld_state_policy;

/* Loads the config's modules (load/modules.h), then compiles the config's
 * DAGs against the built-in ops and theirs (all of them, so names are checked unique;
 * with only_dag, that one must exist), then loads state by policy, with
 * automatic collection paused meanwhile (settle afterwards).  Every
 * problem is printed to errout, one line each naming file and node or key;
 * returns LD_ERR if there was any, with *w left empty.  A sound config
 * with no DAG called only_dag returns LD_NO_DAG, printing nothing: for the
 * caller, that is the request's error (unknown_dag), not the config's. */
#define LD_NO_DAG (-2)
int ld_world_load(const ld_config *cfg, const char *only_dag, ld_state_policy policy, ld_world *w,
                   FILE *errout);

/* Runs one request (a heap value, borrowed; NULL: {}) of d, a DAG of w, under cfg's limits, as
 * POST /dags/NAME/run and `cowdag run` both do: timeout_ms counts from
 * start_ns (base_now_ns(), when the request arrived), and the run's heap
 * budget is max_run_bytes less `held`, the bytes earlier results still
 * hold (responses still being sent).  DAG_OK fills res (the caller frees
 * it); DAG_ERR fills f -- limit_exceeded at once when `held` leaves no
 * budget. */
int ld_world_run(const ld_world *w, const ld_config *cfg, const dag *d, heap_obj *req, uint64_t start_ns,
                 uint64_t held, dag_result *res, dag_fail *f);

/* The DAG called name, or NULL. */
const dag *ld_world_dag(const ld_world *w, const char *name);

/* Frees the DAGs, the state, then closes the modules: a master calls it
 * only once no worker of the generation is left. */
void ld_world_free(ld_world *w);

#endif
