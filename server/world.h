/* world: everything a master loads before it forks -- the config, the
 * state entries in the heap, the compiled DAGs -- and the one place that
 * loads it all, for `serve`, `run` and `check` alike. */
#ifndef COWDAG_WORLD_H
#define COWDAG_WORLD_H

#include <stdbool.h>
#include <stdio.h>

#include "dag/dag.h"
#include "server/config.h"

typedef struct srv_world {
    heap_obj *state; /* dict: state name -> value (owned reference) */
    dag **dags;      /* sorted by name */
    size_t ndags;
} srv_world;

typedef enum srv_state_policy {
    SRV_STATE_ALL,    /* load every state entry (serve, check) */
    SRV_STATE_NEEDED, /* only the entries `only_dag` refers to (run) */
} srv_state_policy;

/* Compiles the config's DAGs (all of them, so names are checked unique;
 * with only_dag, that one must exist), then loads state by policy, with
 * automatic collection paused meanwhile (settle afterwards).  Every
 * problem is printed to errout, one line each naming file and node or key;
 * returns SRV_ERR if there was any, with *w left empty.  A sound config
 * with no DAG called only_dag returns SRV_NO_DAG, printing nothing: for the
 * caller, that is the request's error (unknown_dag), not the config's. */
#define SRV_NO_DAG (-2)
int srv_world_load(const srv_config *cfg, const char *only_dag, srv_state_policy policy, srv_world *w,
                   FILE *errout);

/* The DAG called name, or NULL. */
const dag *srv_world_dag(const srv_world *w, const char *name);

void srv_world_free(srv_world *w);

#endif
