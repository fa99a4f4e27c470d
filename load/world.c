/* world.c: loads the config's DAGs and state into a ld_world
 * (load/world.h). */
#include "load/world.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "heap/gc.h"
#include "load/state.h"

static int by_name(const void *a, const void *b)
{
    return strcmp((*(dag *const *)a)->name, (*(dag *const *)b)->name);
}

const dag *ld_world_dag(const ld_world *w, const char *name)
{
    size_t lo = 0, hi = w->ndags;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(w->dags[mid]->name, name);
        if (c == 0)
            return w->dags[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool dag_uses_state(const dag *d, const char *state)
{
    for (uint32_t i = 0; i < d->n; i++)
        if (d->nodes[i].kind == DK_STATE && strcmp(d->nodes[i].state, state) == 0)
            return true;
    return false;
}

int ld_world_load(const ld_config *cfg, const char *only_dag, ld_state_policy policy, ld_world *w,
                   FILE *errout)
{
    *w = (ld_world){0};
    const char **names = base_calloc(cfg->nstate, sizeof *names);
    w->dags = base_calloc(cfg->ndags, sizeof *w->dags);
    for (size_t i = 0; i < cfg->nstate; i++)
        names[i] = cfg->state[i].name;

    dag_errors errs = {0};
    /* The modules first: DAGs name their ops, and their code must be in
     * the master before anything is forked. */
    if (ld_modules_load(cfg, &w->modules, &errs) != LD_OK) {
        free(names);
        dag_errors_print(&errs, errout);
        fprintf(errout, "%zu problem%s found\n", errs.n, errs.n == 1 ? "" : "s");
        dag_errors_free(&errs);
        ld_world_free(w);
        return LD_ERR;
    }
    const dag_opset *before = dag_ops_in_use();
    dag_ops_use(w->modules.ops);
    for (size_t i = 0; i < cfg->ndags; i++) {
        dag *d = dag_load_file(cfg->dags[i], names, cfg->nstate, &errs);
        if (d)
            w->dags[w->ndags++] = d;
    }
    dag_ops_use(before);
    free(names);
    qsort(w->dags, w->ndags, sizeof *w->dags, by_name);
    for (size_t i = 1; i < w->ndags; i++)
        if (strcmp(w->dags[i]->name, w->dags[i - 1]->name) == 0)
            dag_errors_add(&errs, w->dags[i]->file, NULL, "DAG name '%s' is also used by %s", w->dags[i]->name,
                           w->dags[i - 1]->file);
    const dag *only = only_dag ? ld_world_dag(w, only_dag) : NULL;
    if (only_dag && !only && errs.n == 0) {
        ld_world_free(w);
        return LD_NO_DAG;
    }

    /* Loading makes no garbage worth collecting: automatic collection is
     * off meanwhile (a full pass every few thousand objects would dominate
     * the load), and the caller settles once afterwards. */
    gc_pause();
    w->state = heap_dict_new();
    for (size_t i = 0; i < cfg->nstate; i++) { /* every entry, to report every problem */
        const ld_state_spec *s = &cfg->state[i];
        if (policy == LD_STATE_NEEDED && (!only || !dag_uses_state(only, s->name)))
            continue;
        heap_obj *value;
        char err[512];
        if (ld_state_load(s, &value, err, sizeof err) != LD_OK) {
            dag_errors_add(&errs, cfg->path ? cfg->path : "config", NULL, "state[%zu] '%s': %s", i, s->name, err);
            continue;
        }
        heap_dict_set_str_new(w->state, s->name, value);
    }
    gc_resume();
    if (errs.n) {
        dag_errors_print(&errs, errout);
        fprintf(errout, "%zu problem%s found\n", errs.n, errs.n == 1 ? "" : "s");
        dag_errors_free(&errs);
        ld_world_free(w);
        return LD_ERR;
    }
    return LD_OK;
}

int ld_world_run(const ld_world *w, const ld_config *cfg, const dag *d, heap_obj *req, uint64_t start_ns,
                 uint64_t held, dag_result *res, dag_fail *f)
{
    uint64_t budget = cfg->max_run_bytes;
    if (held >= budget) {
        *f = (dag_fail){.code = "limit_exceeded"};
        snprintf(f->message, sizeof f->message,
                 "responses this worker is still sending hold %" PRIu64
                 " bytes, all of max_run_bytes (%" PRIu64 "); retry when they are read",
                 held, budget);
        return DAG_ERR;
    }
    dag_run_opts opts = {.state = w->state,
                         .max_bytes = budget - held,
                         .deadline_ns = cfg->timeout_ms ? start_ns + (uint64_t)cfg->timeout_ms * 1000000u : 0};
    return dag_run_value(d, req, &opts, res, f);
}

void ld_world_free(ld_world *w)
{
    for (size_t i = 0; i < w->ndags; i++)
        dag_free(w->dags[i]);
    free(w->dags);
    heap_xdecref(w->state);
    ld_modules_free(&w->modules);
    *w = (ld_world){0};
}
