/* module.c: op sets of loaded modules, the trampoline that calls a module
 * op, and the module API (include/cowdag_module.h) over the heap.  The
 * design is at the top of dag/module.h; README.md, "Writing a module", is
 * the module author's side.
 *
 * The API's handles are the heap's own pointers under opaque types:
 * cowdag_value is a heap_obj, cowdag_ctx a dag_op_ctx, cowdag_params a
 * dag_params; nothing is wrapped or copied on the way in or out. */
#include "dag/module.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "dag/dag.h"
#include "dag/ops_internal.h"
#include "include/cowdag_module.h"

/* ====================================================================== */
/* {  Op sets                                                             */
/* ====================================================================== */

/* A module op: the dag_op first, so the op a call gets (ctx->op) leads
 * back to it. */
typedef struct modop {
    dag_op op;
    const char *module; /* the set's copy */
    cowdag_op_fn fn;
    const void *data;
    size_t nargs;
    char **argnames;
    cowdag_type *argtypes;
    cowdag_type result;
    dag_param_spec *params; /* names owned, {NULL}-ended */
    char *name, *doc;
} modop;

struct dag_opset {
    modop **ops;
    size_t n, cap;
    char **modules; /* module names, owned */
    size_t nmodules;
};

struct cowdag_module {
    dag_opset *set;
    const char *name;
    char err[256]; /* the first registration problem */
};

static const dag_opset *in_use;

void dag_ops_use(const dag_opset *s) { in_use = s; }
const dag_opset *dag_ops_in_use(void) { return in_use; }

dag_opset *dag_opset_new(void) { return base_calloc(1, sizeof(dag_opset)); }

static void modop_free(modop *o)
{
    for (size_t k = 0; k < o->nargs; k++)
        free(o->argnames[k]);
    free(o->argnames);
    free(o->argtypes);
    for (dag_param_spec *p = o->params; p && p->name; p++)
        free((char *)p->name);
    free(o->params);
    free(o->name);
    free(o->doc);
    free(o);
}

void dag_opset_free(dag_opset *s)
{
    if (!s)
        return;
    if (in_use == s)
        in_use = NULL;
    for (size_t k = 0; k < s->n; k++)
        modop_free(s->ops[k]);
    free(s->ops);
    for (size_t k = 0; k < s->nmodules; k++)
        free(s->modules[k]);
    free(s->modules);
    free(s);
}

struct cowdag_module *dag_opset_begin(dag_opset *s, const char *module)
{
    s->modules = base_realloc(s->modules, (s->nmodules + 1) * sizeof *s->modules);
    s->modules[s->nmodules] = base_strdup(module);
    struct cowdag_module *m = base_calloc(1, sizeof *m);
    m->set = s;
    m->name = s->modules[s->nmodules++];
    return m;
}

int dag_opset_end(struct cowdag_module *m, char *err, size_t errlen)
{
    int rc = m->err[0] ? base_errf(err, errlen, "%s", m->err) : DAG_OK;
    free(m);
    return rc;
}

const dag_op *dag_opset_find(const dag_opset *s, const char *name)
{
    if (!s)
        return NULL;
    for (size_t k = 0; k < s->n; k++)
        if (strcmp(s->ops[k]->op.name, name) == 0)
            return &s->ops[k]->op;
    return NULL;
}

size_t dag_opset_count(const dag_opset *s) { return s ? s->n : 0; }

const dag_op *dag_opset_at(const dag_opset *s, size_t i) { return s && i < s->n ? &s->ops[i]->op : NULL; }

static int modop_run(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out);

const char *dag_op_module(const dag_op *op) { return op->run == modop_run ? ((const modop *)op)->module : NULL; }

/* }====================================================================== */

/* ====================================================================== */
/* {  Registration                                                        */
/* ====================================================================== */

static const char *const type_names[] = {"any",  "none",  "bool",  "int",    "float",   "str",    "list",
                                         "dict", "array", "table", "number", "numeric", "records"};

const char *cowdag_type_name(cowdag_type t)
{
    return (unsigned)t < sizeof type_names / sizeof *type_names ? type_names[t] : "?";
}

__attribute__((format(printf, 2, 3))) static int reg_fail(cowdag_module *m, const char *fmt, ...)
{
    if (!m->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->err, sizeof m->err, fmt, ap);
        va_end(ap);
    }
    return COWDAG_ERR;
}

/* Who has the name already: "a built-in op", "module X", or NULL. */
static const char *taken_by(const dag_opset *s, const char *name, char *buf, size_t len)
{
    for (size_t k = 0; k < dag_op_count(); k++)
        if (strcmp(dag_op_at(k)->name, name) == 0)
            return "cowdag (a built-in op)";
    const dag_op *op = dag_opset_find(s, name);
    if (!op)
        return NULL;
    snprintf(buf, len, "%s", dag_op_module(op));
    return buf;
}

/* "name(a: records, b?: numeric) -> array; [module libx.so] doc" for
 * `cowdag ops`. */
static char *compose_doc(const modop *o, const char *doc)
{
    size_t cap = 256 + strlen(doc ? doc : "");
    for (size_t k = 0; k < o->nargs; k++)
        cap += strlen(o->argnames[k]) + 16;
    char *s = base_malloc(cap);
    size_t at = (size_t)snprintf(s, cap, "%s(", o->name);
    for (size_t k = 0; k < o->nargs; k++)
        at += (size_t)snprintf(s + at, cap - at, "%s%s%s: %s", k ? ", " : "", o->argnames[k],
                               (int)k >= o->op.min_args ? "?" : "", cowdag_type_name(o->argtypes[k]));
    snprintf(s + at, cap - at, ") -> %s. %s", cowdag_type_name(o->result), doc ? doc : "");
    return s;
}

int cowdag_register_op(cowdag_module *m, const cowdag_op_def *def)
{
    if (!def || !dag_valid_name(def->name))
        return reg_fail(m, "op '%s': a name must match [A-Za-z_][A-Za-z0-9_]*",
                        def && def->name ? def->name : "(null)");
    char buf[256];
    const char *who = taken_by(m->set, def->name, buf, sizeof buf);
    if (who)
        return reg_fail(m, "op '%s' is registered twice: %s has it already", def->name, who);
    if (!def->fn)
        return reg_fail(m, "op '%s': no function (fn is NULL)", def->name);
    if ((unsigned)def->result > COWDAG_RECORDS)
        return reg_fail(m, "op '%s': result type %d is not a cowdag_type", def->name, (int)def->result);
    size_t nargs = 0, nreq = 0, nparams = 0;
    for (const cowdag_arg_spec *a = def->args; a && a->name; a++, nargs++) {
        if ((unsigned)a->type > COWDAG_RECORDS)
            return reg_fail(m, "op '%s': arg '%s': type %d is not a cowdag_type", def->name, a->name, (int)a->type);
        if (!a->optional && nreq < nargs)
            return reg_fail(m, "op '%s': arg '%s' is required after an optional one", def->name, a->name);
        if (!a->optional)
            nreq++;
    }
    for (const cowdag_param_spec *p = def->params; p && p->name; p++, nparams++)
        if (!dag_valid_name(p->name) || (unsigned)p->type > COWDAG_PARAM_STRLIST)
            return reg_fail(m, "op '%s': param '%s': a bad name or type", def->name, p->name);

    modop *o = base_calloc(1, sizeof *o);
    o->module = m->name;
    o->fn = def->fn;
    o->data = def->data;
    o->result = def->result;
    o->name = base_strdup(def->name);
    o->nargs = nargs;
    o->argnames = base_calloc(nargs ? nargs : 1, sizeof *o->argnames);
    o->argtypes = base_calloc(nargs ? nargs : 1, sizeof *o->argtypes);
    for (size_t k = 0; k < nargs; k++) {
        o->argnames[k] = base_strdup(def->args[k].name);
        o->argtypes[k] = def->args[k].type;
    }
    if (nparams) {
        static const dag_ptype ptypes[] = {DP_INT, DP_FLOAT, DP_STR, DP_STRLIST};
        o->params = base_calloc(nparams + 1, sizeof *o->params);
        for (size_t k = 0; k < nparams; k++)
            o->params[k] = (dag_param_spec){.name = base_strdup(def->params[k].name),
                                            .type = ptypes[def->params[k].type],
                                            .required = def->params[k].required != 0};
    }
    o->op = (dag_op){.name = o->name,
                     .min_args = (int)nreq,
                     .max_args = (int)nargs,
                     .params = o->params,
                     .check = NULL,
                     .run = modop_run,
                     .doc = NULL};
    o->doc = compose_doc(o, def->doc);
    o->op.doc = o->doc;

    dag_opset *s = m->set;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->ops = base_realloc(s->ops, s->cap * sizeof *s->ops);
    }
    s->ops[s->n++] = o;
    return COWDAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The call                                                            */
/* ====================================================================== */

static cowdag_type type_of(const heap_obj *o)
{
    switch (heap_type_of(o)) {
    case HT_NONE:
        return COWDAG_NONE;
    case HT_BOOL:
        return COWDAG_BOOL;
    case HT_INT:
        return COWDAG_INT;
    case HT_FLOAT:
        return COWDAG_FLOAT;
    case HT_STR:
        return COWDAG_STR;
    case HT_LIST:
        return COWDAG_LIST;
    case HT_DICT:
        return COWDAG_DICT;
    case HT_ARRAY:
        return COWDAG_ARRAY;
    case HT_TABLE:
        return COWDAG_TABLE;
    default:
        heap_panic("module: an object of type %d", (int)heap_type_of(o));
    }
}

static bool fits(cowdag_type want, const heap_obj *o)
{
    cowdag_type t = type_of(o);
    switch (want) {
    case COWDAG_ANY:
        return true;
    case COWDAG_NUMBER:
        return t == COWDAG_INT || t == COWDAG_FLOAT;
    case COWDAG_NUMERIC:
        return t == COWDAG_INT || t == COWDAG_FLOAT || t == COWDAG_ARRAY || t == COWDAG_LIST;
    case COWDAG_RECORDS:
        return t == COWDAG_LIST || t == COWDAG_DICT;
    default:
        return t == want;
    }
}

/* Every module op's run: declared arg types in, the module's function, the
 * declared result type out. */
static int modop_run(dag_op_ctx *ctx, heap_obj *const *args, size_t nargs, const dag_params *params, heap_obj **out)
{
    const modop *o = (const modop *)ctx->op;
    for (size_t k = 0; k < nargs && k < o->nargs; k++)
        if (!fits(o->argtypes[k], args[k]))
            return dag_op_fail(ctx, DAG_E_TYPE, "%s: arg '%s' must be %s, got %s", o->name, o->argnames[k],
                               cowdag_type_name(o->argtypes[k]), kind_of(args[k]));
    cowdag_value *res = NULL;
    ctx->code = NULL;
    int rc = o->fn((cowdag_ctx *)ctx, (cowdag_value *const *)args, nargs, (const cowdag_params *)params, &res);
    if (rc != COWDAG_OK) {
        if (res) /* the contract says it holds nothing; be lenient */
            heap_decref((heap_obj *)res);
        if (!ctx->code)
            return dag_op_fail(ctx, DAG_E_OP, "%s: failed (and said nothing)", o->name);
        return DAG_ERR;
    }
    if (!res)
        return dag_op_fail(ctx, DAG_E_OP, "%s: returned no value", o->name);
    if (!fits(o->result, (heap_obj *)res)) {
        const char *got = kind_of((heap_obj *)res);
        heap_decref((heap_obj *)res);
        return dag_op_fail(ctx, DAG_E_OP, "%s: returned %s, declared %s", o->name, got, cowdag_type_name(o->result));
    }
    *out = (heap_obj *)res;
    return DAG_OK;
}

#define H(v) ((heap_obj *)(v))
#define CH(v) ((const heap_obj *)(v))
#define V(o) ((cowdag_value *)(o))
#define CTX(c) ((dag_op_ctx *)(c))

const void *cowdag_op_data(const cowdag_ctx *ctx) { return ((const modop *)((const dag_op_ctx *)ctx)->op)->data; }

static int vfail(cowdag_ctx *ctx, const char *code, const char *fmt, va_list ap)
{
    dag_op_ctx *c = CTX(ctx);
    int at = snprintf(c->msg, sizeof c->msg, "%s: ", c->op ? c->op->name : "op");
    if (at < 0 || (size_t)at >= sizeof c->msg)
        at = 0;
    vsnprintf(c->msg + at, sizeof c->msg - (size_t)at, fmt, ap);
    c->code = code;
    return COWDAG_ERR;
}

int cowdag_fail(cowdag_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, DAG_E_OP, fmt, ap);
    va_end(ap);
    return COWDAG_ERR;
}

int cowdag_fail_type(cowdag_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, DAG_E_TYPE, fmt, ap);
    va_end(ap);
    return COWDAG_ERR;
}

static uint64_t held_bytes(const dag_op_ctx *c)
{
    uint64_t live = heap_live_bytes();
    return live > c->base_bytes ? live - c->base_bytes : 0;
}

int cowdag_reserve(cowdag_ctx *ctx, uint64_t bytes)
{
    dag_op_ctx *c = CTX(ctx);
    uint64_t held = held_bytes(c);
    if (c->max_bytes && (held > c->max_bytes || bytes > c->max_bytes - held))
        return dag_op_fail(c, DAG_E_LIMIT,
                           "%s: %" PRIu64 " bytes more would take the run past its budget of %" PRIu64
                           " bytes (max_run_bytes)",
                           c->op->name, bytes, c->max_bytes);
    return COWDAG_OK;
}

int cowdag_check(cowdag_ctx *ctx)
{
    dag_op_ctx *c = CTX(ctx);
    if (c->deadline_ns && base_now_ns() > c->deadline_ns)
        return dag_op_fail(c, DAG_E_LIMIT, "%s: the run exceeded its time limit (timeout_ms)", c->op->name);
    if (c->max_bytes && held_bytes(c) > c->max_bytes)
        return dag_op_fail(c, DAG_E_LIMIT,
                           "%s: the run holds %" PRIu64 " bytes, past its budget of %" PRIu64
                           " bytes (max_run_bytes)",
                           c->op->name, held_bytes(c), c->max_bytes);
    return COWDAG_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Reading values                                                      */
/* ====================================================================== */

cowdag_type cowdag_type_of(const cowdag_value *v) { return type_of(CH(v)); }

const char *cowdag_kind(const cowdag_value *v) { return kind_of(CH(v)); }

int64_t cowdag_int(const cowdag_value *v) { return heap_type_of(CH(v)) == HT_INT ? heap_int_value(CH(v)) : 0; }

double cowdag_float(const cowdag_value *v) { return heap_type_of(CH(v)) == HT_FLOAT ? heap_float_value(CH(v)) : 0.0; }

int cowdag_bool(const cowdag_value *v) { return heap_type_of(CH(v)) == HT_BOOL && heap_bool_value(CH(v)); }

int cowdag_number(const cowdag_value *v, double *out)
{
    switch (heap_type_of(CH(v))) {
    case HT_INT:
        *out = (double)heap_int_value(CH(v));
        return COWDAG_OK;
    case HT_FLOAT:
        *out = heap_float_value(CH(v));
        return COWDAG_OK;
    default:
        return COWDAG_ERR;
    }
}

const char *cowdag_str(const cowdag_value *v, size_t *len)
{
    if (heap_type_of(CH(v)) != HT_STR)
        return NULL;
    if (len)
        *len = heap_str_len(CH(v));
    return heap_str_data(CH(v));
}

size_t cowdag_len(const cowdag_value *v)
{
    size_t n;
    if (heap_type_of(CH(v)) == HT_STR)
        return heap_str_len(CH(v));
    return collection_len(CH(v), &n) ? n : 0;
}

cowdag_value *cowdag_list_get(const cowdag_value *list, size_t i)
{
    if (heap_type_of(CH(list)) != HT_LIST || i >= heap_list_len(CH(list)))
        return NULL;
    return V(heap_list_get(CH(list), i));
}

cowdag_value *cowdag_dict_get_str(const cowdag_value *d, const char *key)
{
    return heap_type_of(CH(d)) == HT_DICT ? V(heap_dict_get_str(CH(d), key)) : NULL;
}

cowdag_value *cowdag_dict_get_int(const cowdag_value *d, int64_t key)
{
    return heap_type_of(CH(d)) == HT_DICT ? V(heap_dict_get_int(CH(d), key)) : NULL;
}

int cowdag_dict_next(const cowdag_value *d, size_t *pos, cowdag_value **key, cowdag_value **value)
{
    if (heap_type_of(CH(d)) != HT_DICT)
        return 0;
    return heap_dict_next(CH(d), pos, (heap_obj **)key, (heap_obj **)value);
}

cowdag_value *cowdag_records_next(const cowdag_value *records, size_t *pos)
{
    switch (heap_type_of(CH(records))) {
    case HT_LIST:
        return *pos < heap_list_len(CH(records)) ? V(heap_list_get(CH(records), (*pos)++)) : NULL;
    case HT_DICT: {
        heap_obj *value;
        return heap_dict_next(CH(records), pos, NULL, &value) ? V(value) : NULL;
    }
    default:
        return NULL;
    }
}

const double *cowdag_array_f64(const cowdag_value *v, size_t *len)
{
    if (heap_type_of(CH(v)) != HT_ARRAY || heap_array_dtype(CH(v)) != HD_F64)
        return NULL;
    if (len)
        *len = heap_array_len(CH(v));
    return heap_array_f64(H(v));
}

const int64_t *cowdag_array_i64(const cowdag_value *v, size_t *len)
{
    if (heap_type_of(CH(v)) != HT_ARRAY || heap_array_dtype(CH(v)) != HD_I64)
        return NULL;
    if (len)
        *len = heap_array_len(CH(v));
    return heap_array_i64(H(v));
}

cowdag_value *cowdag_table_column(const cowdag_value *t, const char *name)
{
    return heap_type_of(CH(t)) == HT_TABLE ? V(heap_table_column(CH(t), name)) : NULL;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Params                                                              */
/* ====================================================================== */

#define P(p) ((const dag_params *)(p))

int64_t cowdag_param_int(const cowdag_params *p, const char *name, int64_t dflt)
{
    const dag_param *v = dag_param_get(P(p), name);
    return v && v->type == DP_INT ? v->i : dflt;
}

double cowdag_param_float(const cowdag_params *p, const char *name, double dflt)
{
    const dag_param *v = dag_param_get(P(p), name);
    return v && (v->type == DP_FLOAT || v->type == DP_INT) ? v->f : dflt;
}

const char *cowdag_param_str(const cowdag_params *p, const char *name, const char *dflt)
{
    const dag_param *v = dag_param_get(P(p), name);
    return v && v->type == DP_STR ? v->s : dflt;
}

size_t cowdag_param_strlist(const cowdag_params *p, const char *name, const char *const **out)
{
    const dag_param *v = dag_param_get(P(p), name);
    if (!v || v->type != DP_STRLIST) {
        *out = NULL;
        return 0;
    }
    *out = (const char *const *)v->strs;
    return v->nstrs;
}

int cowdag_param_is_set(const cowdag_params *p, const char *name) { return dag_param_get(P(p), name) != NULL; }

/* }====================================================================== */

/* ====================================================================== */
/* {  Building results                                                    */
/* ====================================================================== */

cowdag_value *cowdag_none_new(void) { return V(heap_none()); }
cowdag_value *cowdag_bool_new(int b) { return V(heap_bool(b != 0)); }
cowdag_value *cowdag_int_new(int64_t v) { return V(heap_int_new(v)); }
cowdag_value *cowdag_float_new(double v) { return V(heap_float_new(v)); }
cowdag_value *cowdag_str_new(const char *s, size_t len) { return V(heap_str_new(s, len)); }

cowdag_value *cowdag_list_new(cowdag_ctx *ctx, size_t capacity)
{
    dag_op_ctx *c = CTX(ctx);
    return limit_check(c, c->op->name, capacity) == DAG_OK ? V(heap_list_new(capacity)) : NULL;
}

cowdag_value *cowdag_dict_new(cowdag_ctx *ctx)
{
    dag_op_ctx *c = CTX(ctx);
    return limit_check(c, c->op->name, 0) == DAG_OK ? V(heap_dict_new()) : NULL;
}

cowdag_value *cowdag_array_f64_new(cowdag_ctx *ctx, size_t n, double **data)
{
    dag_op_ctx *c = CTX(ctx);
    heap_obj *a;
    return new_f64(c, c->op->name, n, &a, data) == DAG_OK ? V(a) : NULL;
}

cowdag_value *cowdag_array_i64_new(cowdag_ctx *ctx, size_t n, int64_t **data)
{
    dag_op_ctx *c = CTX(ctx);
    heap_obj *a;
    return new_i64(c, c->op->name, n, &a, data) == DAG_OK ? V(a) : NULL;
}

void cowdag_list_append_new(cowdag_value *list, cowdag_value *item) { heap_list_append_new(H(list), H(item)); }
void cowdag_list_append(cowdag_value *list, cowdag_value *item) { heap_list_append(H(list), H(item)); }
void cowdag_dict_set_str_new(cowdag_value *d, const char *key, cowdag_value *value)
{
    heap_dict_set_str_new(H(d), key, H(value));
}
void cowdag_dict_set_str(cowdag_value *d, const char *key, cowdag_value *value)
{
    heap_incref(H(value));
    heap_dict_set_str_new(H(d), key, H(value));
}

cowdag_value *cowdag_ref(cowdag_value *v)
{
    heap_incref(H(v));
    return v;
}

void cowdag_unref(cowdag_value *v) { heap_xdecref(H(v)); }

/* }====================================================================== */
