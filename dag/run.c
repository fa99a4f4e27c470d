/* run.c: planning and executing one request against a compiled DAG
 * (dag/dag.h).
 *
 * Planning.  The plan is the upstream closure of the requested outputs: an
 * iterative depth-first walk along dependencies that does not go past a
 * node the request overrides.  Its post-order is the execution order (every
 * node after its dependencies).  Each planned node then gets its consumer
 * count: how many planned op nodes take it as an argument.  Nothing outside
 * the plan is looked at, so a request for one node of a 100,000-node DAG
 * costs what its own upstream costs.
 *
 * Execution.  Nodes run in plan order.  After a node runs, each of its
 * dependencies loses one consumer; one that reaches zero and is not an
 * output is released there and then, so at any moment only the results that
 * some pending node still needs are alive.  A failing op stops the run and
 * its error names the node; whatever was held is released.  A run with a
 * deadline reads the clock after each op but the last and stops there once
 * the deadline has passed (inputs, constants and state take no time).
 *
 * Per-run state (values, counts, flags) lives in one block owned by the run
 * (inside the run itself for a DAG of up to SMALL_NODES nodes, else one
 * allocation): the compiled DAG is shared with other workers and never
 * written.
 */
#include "dag/dag.h"

#include "base/alloc.h"
#include "base/clock.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { F_PLANNED = 1, F_PROVIDED = 2, F_OUTPUT = 4, F_VISITED = 8 };

/* Per node: its value, pending count, place in the order, the walk's next
 * dependency and stack slot, and flags. */
#define PLAN_CELL (sizeof(heap_obj *) + 4 * sizeof(uint32_t) + 1)
#define SMALL_NODES 32

typedef struct run {
    const dag *d;
    heap_obj **value;  /* per node: the held result */
    uint32_t *pending; /* per node: planned consumers yet to run */
    uint8_t *flags;
    uint32_t *order;   /* planned nodes, dependencies first */
    uint32_t norder;
    uint32_t *outputs;
    uint32_t noutputs;
    uint64_t base_bytes; /* heap live bytes when the run began */
    /* The plan's arrays and the walk's stack, for a DAG of up to
     * SMALL_NODES nodes: no allocation to make and free per request. */
    union {
        heap_obj *align;
        unsigned char bytes[SMALL_NODES * PLAN_CELL];
    } small;
} run;

static int failf(dag_fail *f, const char *code, const char *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int failf(dag_fail *f, const char *code, const char *node, const char *fmt, ...)
{
    va_list ap;
    f->code = code;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    snprintf(f->node, sizeof f->node, "%s", node ? node : "");
    return DAG_ERR;
}

/* ====================================================================== */
/* {  Request problems, reported together                                  */
/* ====================================================================== */

/* Problems found while planning are collected, so one answer names every
 * unknown output and missing input.  The code is that of the first kind in
 * this order: unknown_output, missing_input, type_error. */
typedef struct problems {
    char text[sizeof(((dag_fail *)0)->message)];
    size_t len;
    int count;
    int rank; /* 0 none, 1 type_error, 2 missing_input, 3 unknown_output */
    char node[sizeof(((dag_fail *)0)->node)];
} problems;

static void problem(problems *p, int rank, const char *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(problems *p, int rank, const char *node, const char *fmt, ...)
{
    if (p->len + 8 < sizeof p->text) {
        if (p->count)
            p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, "; ");
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->text + p->len, sizeof p->text - p->len, fmt, ap);
        va_end(ap);
        p->len = n < 0 ? p->len : p->len + (size_t)n;
        if (p->len >= sizeof p->text)
            p->len = sizeof p->text - 1;
    }
    if (rank > p->rank) {
        p->rank = rank;
        snprintf(p->node, sizeof p->node, "%s", node ? node : "");
    }
    p->count++;
}

static int problems_fail(const problems *p, dag_fail *f)
{
    static const char *const code[] = {"", "type_error", "missing_input", "unknown_output"};
    f->code = code[p->rank];
    snprintf(f->message, sizeof f->message, "%s", p->text);
    snprintf(f->node, sizeof f->node, "%s", p->count == 1 ? p->node : "");
    return DAG_ERR;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Planning                                                             */
/* ====================================================================== */

static void run_release(run *r)
{
    if (r->value)
        for (uint32_t i = 0; i < r->norder; i++)
            heap_xdecref(r->value[r->order[i]]);
    if ((void *)r->value != (void *)r->small.bytes)
        free(r->value);
    free(r->outputs);
    r->value = NULL;
    r->outputs = NULL;
    r->norder = r->noutputs = 0;
}

/* The walk: post-order along dependencies, not past provided nodes. */
static void plan_walk(run *r, uint32_t root, uint32_t *stack, uint32_t *next)
{
    const dag *d = r->d;
    if (r->flags[root] & F_VISITED)
        return;
    size_t top = 0;
    stack[top++] = root;
    next[root] = 0;
    r->flags[root] |= F_VISITED;
    while (top) {
        uint32_t v = stack[top - 1];
        const dag_node *n = &d->nodes[v];
        if (!(r->flags[v] & F_PROVIDED) && next[v] < n->ndeps) {
            uint32_t w = n->deps[next[v]++];
            if (!(r->flags[w] & F_VISITED)) {
                r->flags[w] |= F_VISITED;
                next[w] = 0;
                stack[top++] = w;
            }
            continue;
        }
        top--;
        r->flags[v] |= F_PLANNED;
        r->order[r->norder++] = v;
    }
}

/* The member, or NULL when absent or null; *bad says it was there but of
 * the wrong kind (reported). */
static heap_obj *member(heap_obj *req, const char *key, heap_type want, problems *p, bool *bad)
{
    heap_obj *v = req ? heap_dict_get_str(req, key) : NULL;
    *bad = false;
    if (!v || heap_type_of(v) == HT_NONE)
        return NULL;
    if (heap_type_of(v) != want && !(want == HT_LIST && heap_type_of(v) == HT_ARRAY)) { /* packed: numbers */
        problem(p, 1, NULL, "\"%s\" must be %s", key, want == HT_DICT ? "an object" : "an array of node names");
        *bad = true;
        return NULL;
    }
    return v;
}

/* The request's three members (borrowed), each NULL when absent or null;
 * *_bad says one was there but of the wrong kind (reported). */
typedef struct request {
    heap_obj *inputs, *overrides, *outputs;
    bool inputs_bad, overrides_bad, outputs_bad;
} request;

/* Reads the request's members, reporting unknown ones. */
static void plan_members(heap_obj *req, request *q, problems *p)
{
    size_t pos = 0;
    heap_obj *k;
    while (req && heap_dict_next(req, &pos, &k, NULL)) {
        const char *key = heap_str_data(k);
        if (strcmp(key, "inputs") && strcmp(key, "overrides") && strcmp(key, "outputs"))
            problem(p, 1, NULL, "unknown request member \"%s\"", key);
    }
    q->inputs = member(req, "inputs", HT_DICT, p, &q->inputs_bad);
    q->overrides = member(req, "overrides", HT_DICT, p, &q->overrides_bad);
    q->outputs = member(req, "outputs", HT_LIST, p, &q->outputs_bad);
}

/* The plan's arrays, in one block per node: values, pending counts, the
 * order, the walk's scratch (*next), flags; plus *stack and the outputs. */
static void plan_alloc(run *r, uint32_t **stack, uint32_t **next)
{
    const dag *d = r->d;
    size_t cells = d->n ? d->n : 1;
    if (cells <= SMALL_NODES) {
        memset(r->small.bytes, 0, cells * PLAN_CELL);
        r->value = (heap_obj **)r->small.bytes;
    } else {
        r->value = base_calloc(cells, PLAN_CELL);
    }
    r->pending = (uint32_t *)(r->value + cells);
    r->order = r->pending + cells;
    *next = r->order + cells;
    *stack = *next + cells;
    r->flags = (uint8_t *)(*stack + cells);
    r->outputs = base_malloc(cells * sizeof(uint32_t));
}

/* Outputs: as requested, or every sink (but none if "outputs" was there
 * and malformed: planning a guess would report the wrong things). */
static void plan_outputs(run *r, const request *q, problems *p)
{
    const dag *d = r->d;
    if (q->outputs_bad)
        return; /* reported by member() */
    if (!q->outputs) {
        for (uint32_t k = 0; k < d->nsinks; k++) {
            r->flags[d->sinks[k]] |= F_OUTPUT;
            r->outputs[r->noutputs++] = d->sinks[k];
        }
        return;
    }
    bool packed = heap_type_of(q->outputs) == HT_ARRAY; /* numbers, none a name */
    for (size_t i = 0, n = packed ? heap_array_len(q->outputs) : heap_list_len(q->outputs); i < n; i++) {
        heap_obj *v = packed ? NULL : heap_list_get(q->outputs, i);
        const char *name = v && heap_type_of(v) == HT_STR ? heap_str_data(v) : NULL;
        uint32_t id = name ? dag_find(d, name) : DAG_NONE;
        if (!name)
            problem(p, 1, NULL, "outputs[%zu] must be a node name", i);
        else if (id == DAG_NONE)
            problem(p, 3, name, "unknown output '%s'", name);
        else if (!(r->flags[id] & F_OUTPUT)) {
            r->flags[id] |= F_OUTPUT;
            r->outputs[r->noutputs++] = id;
        }
    }
}

/* Overrides: provided values, converted as the node's input type if it is
 * an input; then every "inputs" key must name an input. */
static void plan_overrides(run *r, const request *q, problems *p)
{
    const dag *d = r->d;
    char err[256];
    size_t pos = 0;
    heap_obj *k, *v;
    while (q->overrides && heap_dict_next(q->overrides, &pos, &k, &v)) {
        const char *key = heap_str_data(k);
        uint32_t id = dag_find(d, key);
        if (id == DAG_NONE) {
            problem(p, 1, key, "override '%s' names no node", key);
            continue;
        }
        dag_vtype t = d->nodes[id].kind == DK_INPUT ? d->nodes[id].type : DV_ANY;
        if (dag_value_from_value(v, t, &r->value[id], err, sizeof err) != DAG_OK) {
            problem(p, 1, key, "override '%s': %s", key, err);
            continue;
        }
        r->flags[id] |= F_PROVIDED;
    }
    pos = 0;
    while (q->inputs && heap_dict_next(q->inputs, &pos, &k, NULL)) {
        const char *key = heap_str_data(k);
        uint32_t id = dag_find(d, key);
        if (id == DAG_NONE || d->nodes[id].kind != DK_INPUT)
            problem(p, 1, key, "'%s' is not an input of DAG '%s'", key, d->name);
    }
}

/* Inputs the plan reaches: given, defaulted, or missing (not worth saying
 * when "inputs" itself was malformed: that is the problem). */
static void plan_inputs(run *r, const request *q, problems *p)
{
    const dag *d = r->d;
    char err[256];
    for (uint32_t k = 0; k < r->norder && !q->inputs_bad; k++) {
        uint32_t id = r->order[k];
        const dag_node *n = &d->nodes[id];
        if (n->kind != DK_INPUT || (r->flags[id] & F_PROVIDED))
            continue;
        heap_obj *given = q->inputs ? heap_dict_get_str(q->inputs, n->name) : NULL;
        if (!given && !n->value)
            problem(p, 2, n->name, "missing input '%s'", n->name);
        else if (given && dag_value_from_value(given, n->type, &r->value[id], err, sizeof err) != DAG_OK)
            problem(p, 1, n->name, "input '%s': %s", n->name, err);
    }
}

/* A sound plan: overrides outside it are dropped, and each node counts the
 * consumers in the plan that must run before its result can go. */
static void plan_finish(run *r, const request *q)
{
    const dag *d = r->d;
    for (uint32_t id = 0; id < d->n && q->overrides; id++)
        if ((r->flags[id] & F_PROVIDED) && !(r->flags[id] & F_PLANNED))
            heap_decref(r->value[id]), r->value[id] = NULL;
    for (uint32_t k = 0; k < r->norder; k++) {
        uint32_t id = r->order[k];
        const dag_node *n = &d->nodes[id];
        if (n->kind == DK_OP && !(r->flags[id] & F_PROVIDED))
            for (uint32_t j = 0; j < n->ndeps; j++)
                r->pending[n->deps[j]]++;
    }
}

/* Plans a request: what to compute, in which order, from which given
 * values.  Every problem of the request is collected and answered at once. */
static int plan(run *r, heap_obj *req, dag_fail *fail)
{
    problems p; /* not zeroed whole: 640 bytes of text a request */
    p.len = 0;
    p.count = p.rank = 0;
    p.text[0] = p.node[0] = '\0';
    if (req && heap_type_of(req) != HT_DICT)
        return failf(fail, "type_error", NULL, "the request must be a JSON object");
    request q;
    plan_members(req, &q, &p);
    uint32_t *stack, *next;
    plan_alloc(r, &stack, &next);
    plan_outputs(r, &q, &p);
    plan_overrides(r, &q, &p);
    for (uint32_t k = 0; k < r->noutputs; k++) /* even with problems: all of them in one answer */
        plan_walk(r, r->outputs[k], stack, next);
    plan_inputs(r, &q, &p);
    if (p.count) {
        /* Overrides and inputs converted so far are held outside the plan. */
        for (uint32_t id = 0; id < r->d->n; id++)
            heap_xdecref(r->value[id]), r->value[id] = NULL;
        run_release(r);
        return problems_fail(&p, fail);
    }
    plan_finish(r, &q);
    return DAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Execution                                                            */
/* ====================================================================== */

static void step_hook(run *r, const dag_run_opts *opts, uint32_t node)
{
    uint32_t *live = malloc((r->norder ? r->norder : 1) * sizeof(uint32_t));
    size_t n = 0;
    for (uint32_t k = 0; k < r->norder; k++)
        if (r->value[r->order[k]])
            live[n++] = r->order[k];
    opts->on_step(opts->step_arg, node, live, n);
    free(live);
}

/* Computes one planned node into r->value[id]. */
static int compute(run *r, uint32_t id, const dag_run_opts *opts, dag_fail *fail)
{
    const dag *d = r->d;
    const dag_node *n = &d->nodes[id];
    switch (n->kind) {
    case DK_INPUT:
        if (!r->value[id]) { /* not given: the default */
            heap_incref(n->value);
            r->value[id] = n->value;
        }
        return DAG_OK;
    case DK_CONST:
        heap_incref(n->value);
        r->value[id] = n->value;
        return DAG_OK;
    case DK_STATE: {
        heap_obj *s = opts && opts->state ? heap_dict_get_str(opts->state, n->state) : NULL;
        if (!s)
            return failf(fail, "op_error", n->name, "state '%s' is not loaded", n->state);
        heap_incref(s);
        r->value[id] = s;
        return DAG_OK;
    }
    case DK_OP:
        break;
    }
    heap_obj *local[16];
    heap_obj **args = n->nargs <= 16 ? local : base_malloc(n->nargs * sizeof(heap_obj *));
    for (uint32_t k = 0; k < n->nargs; k++)
        args[k] = n->args[k].node == DAG_NONE ? n->args[k].literal : r->value[n->args[k].node];
    dag_op_ctx ctx; /* member by member: a zeroed 256-byte message per op cost a memset */
    ctx.code = NULL;
    ctx.msg[0] = '\0';
    ctx.max_elems = opts && opts->max_elems ? opts->max_elems : (1u << 28);
    ctx.max_bytes = opts ? opts->max_bytes : 0;
    ctx.base_bytes = r->base_bytes;
    ctx.deadline_ns = opts ? opts->deadline_ns : 0;
    ctx.op = n->op;
    heap_obj *out = NULL;
    int rc = n->op->run(&ctx, args, n->nargs, &n->params, &out);
    if (args != local)
        free(args);
    if (rc != DAG_OK)
        return failf(fail, ctx.code ? ctx.code : "op_error", n->name, "%s",
                     ctx.msg[0] ? ctx.msg : "the op failed");
    r->value[id] = out;
    return DAG_OK;
}

int dag_run(const dag *d, const json_t *request, const dag_run_opts *opts, dag_result *res, dag_fail *fail)
{
    heap_obj *req = NULL;
    char err[8];
    if (request)
        dag_value_from_json(request, DV_ANY, &req, err, sizeof err); /* DV_ANY takes any JSON */
    int rc = dag_run_value(d, req, opts, res, fail);
    heap_xdecref(req);
    return rc;
}

int dag_run_value(const dag *d, heap_obj *request, const dag_run_opts *opts, dag_result *res, dag_fail *fail)
{
    uint64_t t0 = base_now_ns();
    uint64_t base = heap_live_bytes();
    heap_reset_peak();
    *res = (dag_result){0};
    run r; /* not zeroed whole: plan_alloc clears the part of `small` it uses */
    r.d = d;
    r.base_bytes = base;
    r.value = NULL;
    r.pending = r.order = r.outputs = NULL;
    r.flags = NULL;
    r.norder = r.noutputs = 0;
    if (plan(&r, request, fail) != DAG_OK)
        return DAG_ERR;

    uint64_t executed = 0;
    for (uint32_t k = 0; k < r.norder; k++) {
        uint32_t id = r.order[k];
        if (r.flags[id] & F_PROVIDED)
            continue;
        if (compute(&r, id, opts, fail) != DAG_OK) {
            run_release(&r);
            return DAG_ERR;
        }
        executed++;
        const dag_node *n = &d->nodes[id];
        if (n->kind == DK_OP)
            for (uint32_t j = 0; j < n->ndeps; j++) {
                uint32_t dep = n->deps[j];
                if (--r.pending[dep] == 0 && !(r.flags[dep] & F_OUTPUT)) {
                    heap_decref(r.value[dep]);
                    r.value[dep] = NULL;
                }
            }
        if (opts && opts->on_step)
            step_hook(&r, opts, id);
        /* The clock (57 ns a read on a VM's kvm-clock) only after an op, the
         * one kind of node that takes time, and not after the last node. */
        if (n->kind == DK_OP && k + 1 < r.norder && opts && opts->deadline_ns &&
            base_now_ns() > opts->deadline_ns) {
            run_release(&r);
            return failf(fail, "limit_exceeded", n->name, "the run exceeded its time limit after node '%s'",
                         n->name);
        }
    }

    res->noutputs = r.noutputs;
    res->outputs = r.outputs;
    res->values = base_malloc(r.noutputs * sizeof(heap_obj *));
    for (uint32_t k = 0; k < r.noutputs; k++) {
        res->values[k] = r.value[r.outputs[k]];
        r.value[r.outputs[k]] = NULL;
    }
    r.outputs = NULL;
    run_release(&r);
    uint64_t peak = heap_peak_bytes(), live = heap_live_bytes();
    res->nodes_executed = executed;
    res->peak_bytes = peak > base ? peak - base : 0;
    res->held_bytes = live > base ? live - base : 0;
    res->elapsed_us = (base_now_ns() - t0) / 1000;
    return DAG_OK;
}

void dag_result_free(dag_result *res)
{
    for (size_t k = 0; k < res->noutputs; k++)
        heap_xdecref(res->values[k]);
    free(res->values);
    free(res->outputs);
    *res = (dag_result){0};
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Responses                                                            */
/* ====================================================================== */

/* A response is its opening, then each output's name and value (through an
 * emitter), then the stats. */
struct dag_response {
    const dag *d;
    dag_result res;
    bool owns;      /* res is ours to free */
    int worker;
    long pid;
    size_t next;    /* the output to begin next */
    bool in_value;  /* an output's value is being written */
    bool done;
    dag_emitter em;
};

static int outputs_check(const dag *d, const dag_result *res, dag_fail *fail)
{
    char err[160];
    for (size_t k = 0; k < res->noutputs; k++) { /* before a byte is written */
        const char *name = d->nodes[res->outputs[k]].name;
        if (dag_value_check(res->values[k], err, sizeof err) != DAG_OK)
            return failf(fail, "type_error", name, "output '%s' cannot be written as JSON: %s", name, err);
    }
    return DAG_OK;
}

static void response_init(dag_response *r, const dag *d, const dag_result *res, bool owns, int worker, long pid)
{
    r->d = d;
    r->res = *res;
    r->owns = owns;
    r->worker = worker;
    r->pid = pid;
    r->next = 0;
    r->in_value = false;
    r->done = false;
}

/* Writes the next piece; false once the response is complete. */
static bool response_step(dag_response *r, dag_writer *w)
{
    if (r->done)
        return false;
    if (r->in_value) {
        r->in_value = dag_emitter_step(&r->em, w);
        return true;
    }
    const dag_result *res = &r->res;
    if (r->next == 0) {
        dag_write_cstr(w, "{\"dag\":");
        dag_write_string(w, r->d->name, strlen(r->d->name));
        dag_write_cstr(w, ",\"outputs\":{");
    }
    if (r->next < res->noutputs) {
        const char *name = r->d->nodes[res->outputs[r->next]].name;
        if (r->next)
            dag_write(w, ",", 1);
        dag_write_string(w, name, strlen(name));
        dag_write(w, ":", 1);
        dag_emitter_init(&r->em, res->values[r->next]);
        r->next++;
        r->in_value = dag_emitter_step(&r->em, w);
        return true;
    }
    dag_write_cstr(w, "},\"stats\":{\"nodes_executed\":");
    dag_write_int(w, (int64_t)res->nodes_executed);
    dag_write_cstr(w, ",\"elapsed_us\":");
    dag_write_int(w, (int64_t)res->elapsed_us);
    dag_write_cstr(w, ",\"peak_bytes\":");
    dag_write_int(w, (int64_t)res->peak_bytes);
    dag_write_cstr(w, ",\"worker\":");
    dag_write_int(w, r->worker);
    dag_write_cstr(w, ",\"pid\":");
    dag_write_int(w, r->pid);
    dag_write_cstr(w, "}}");
    r->done = true;
    return false;
}

/* A response over res (taken when `owns`), or NULL with fail filled when
 * an output cannot be written as JSON. */
static dag_response *response_open(const dag *d, const dag_result *res, bool owns, int worker, long pid,
                                   dag_fail *fail)
{
    if (outputs_check(d, res, fail) != DAG_OK)
        return NULL;
    dag_response *r = base_malloc(sizeof *r);
    response_init(r, d, res, owns, worker, pid);
    return r;
}

int dag_write_response(dag_writer *w, const dag *d, const dag_result *res, int worker, long pid, dag_fail *fail)
{
    dag_response *r = response_open(d, res, false, worker, pid, fail);
    if (!r)
        return DAG_ERR;
    while (response_step(r, w))
        ;
    free(r);
    return DAG_OK;
}

int dag_response_new(const dag *d, dag_result *res, int worker, long pid, dag_response **out, dag_fail *fail)
{
    dag_response *r = response_open(d, res, true, worker, pid, fail);
    if (!r)
        return DAG_ERR;
    *res = (dag_result){0};
    *out = r;
    return DAG_OK;
}

bool dag_response_fill(dag_response *r, dag_writer *w, size_t want)
{
    size_t goal = w->len + want;
    bool more = true;
    while (more && w->len < goal)
        more = response_step(r, w);
    return more;
}

void dag_response_free(dag_response *r)
{
    if (!r)
        return;
    if (r->owns)
        dag_result_free(&r->res);
    free(r);
}

void dag_write_error(dag_writer *w, const dag_fail *f)
{
    dag_write_cstr(w, "{\"error\":{\"code\":");
    dag_write_string(w, f->code, strlen(f->code));
    dag_write_cstr(w, ",\"message\":");
    dag_write_string(w, f->message, strlen(f->message));
    if (f->node[0]) {
        dag_write_cstr(w, ",\"node\":");
        dag_write_string(w, f->node, strlen(f->node));
    }
    dag_write_cstr(w, "}}");
}

/* }====================================================================== */
