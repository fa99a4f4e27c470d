/* dag.c: loading DAG files -- parsing, family expansion, validation, the
 * topological order -- and describing compiled DAGs (dag/dag.h).
 *
 * Loading runs in phases, each adding every problem it finds to the error
 * list rather than stopping at the first: collect nodes (inputs, nodes,
 * expanded families; names and duplicates checked), index names, resolve
 * arguments (unknown dependencies, literals), check ops (arity, params),
 * check inputs (default against type) and state names, then sort (Kahn's
 * algorithm; what is left over lies on or behind a cycle, whose path a DFS
 * then reports).  All of it is iterative: a 100,000-node chain needs no
 * recursion. */
#include "dag/dag.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

/* ====================================================================== */
/* {  Small helpers                                                        */
/* ====================================================================== */

bool dag_valid_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Errors                                                               */
/* ====================================================================== */

void dag_errors_add(dag_errors *e, const char *file, const char *node, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 8;
        e->v = base_realloc(e->v, e->cap * sizeof *e->v);
    }
    e->v[e->n++] = (dag_error){base_strdup(file), node ? base_strdup(node) : NULL, base_strdup(buf)};
}

void dag_errors_print(const dag_errors *e, FILE *out)
{
    for (size_t i = 0; i < e->n; i++) {
        if (e->v[i].node)
            fprintf(out, "%s: node '%s': %s\n", e->v[i].file, e->v[i].node, e->v[i].problem);
        else
            fprintf(out, "%s: %s\n", e->v[i].file, e->v[i].problem);
    }
}

void dag_errors_free(dag_errors *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].file);
        free(e->v[i].node);
        free(e->v[i].problem);
    }
    free(e->v);
    *e = (dag_errors){0};
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Building                                                             */
/* ====================================================================== */

/* While loading, each node remembers its JSON spec, to resolve its
 * arguments once every name is known. */
typedef struct loader {
    dag *d;
    const char *file;
    dag_errors *errs;
    size_t nerr0;
    const json_t **spec;      /* per node: its "nodes" entry or family (op nodes) */
    json_t **family_args;     /* per node: expanded args of a family node (owned) */
    uint32_t cap;
} loader;

static uint32_t add_node(loader *L, const char *name, dag_kind kind, const json_t *spec)
{
    dag *d = L->d;
    if (d->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        d->nodes = base_realloc(d->nodes, L->cap * sizeof *d->nodes);
        L->spec = base_realloc(L->spec, L->cap * sizeof *L->spec);
        L->family_args = base_realloc(L->family_args, L->cap * sizeof *L->family_args);
    }
    uint32_t id = d->n++;
    d->nodes[id] = (dag_node){.name = base_strdup(name), .kind = kind};
    L->spec[id] = spec;
    L->family_args[id] = NULL;
    return id;
}

/* Builds the name index; adds a duplicate-name error for each repeat. */
static void build_index(loader *L)
{
    dag *d = L->d;
    uint32_t size = 16;
    while (size < 2 * d->n)
        size *= 2;
    d->index = base_calloc(size, sizeof(uint32_t));
    memset(d->index, 0xff, size * sizeof(uint32_t));
    d->index_mask = size - 1;
    size_t dups = 0;
    for (uint32_t id = 0; id < d->n; id++) {
        uint32_t i = (uint32_t)hash_name(d->nodes[id].name) & d->index_mask;
        bool dup = false;
        while (d->index[i] != DAG_NONE) {
            if (strcmp(d->nodes[d->index[i]].name, d->nodes[id].name) == 0) {
                dup = true;
                break;
            }
            i = (i + 1) & d->index_mask;
        }
        if (dup && ++dups <= 10) /* the first ten tell the story */
            dag_errors_add(L->errs, L->file, d->nodes[id].name, "duplicate name (also declared as %s %s)",
                           d->nodes[d->index[i]].kind == DK_INPUT || d->nodes[d->index[i]].kind == DK_OP ? "an"
                                                                                                         : "a",
                           dag_kind_name(d->nodes[d->index[i]].kind));
        else if (!dup)
            d->index[i] = id;
    }
    if (dups > 10)
        dag_errors_add(L->errs, L->file, NULL, "%zu more duplicate names", dups - 10);
}

uint32_t dag_find(const dag *d, const char *name)
{
    if (!d->index)
        return DAG_NONE;
    uint32_t i = (uint32_t)hash_name(name) & d->index_mask;
    while (d->index[i] != DAG_NONE) {
        if (strcmp(d->nodes[d->index[i]].name, name) == 0)
            return d->index[i];
        i = (i + 1) & d->index_mask;
    }
    return DAG_NONE;
}

const char *dag_kind_name(dag_kind k)
{
    static const char *const names[] = {"input", "state", "const", "op"};
    return (unsigned)k < 4 ? names[k] : "?";
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Families                                                             */
/* ====================================================================== */

/* Expands "{i}", "{i+K}", "{i-K}" in a template; NULL (and *why) if the
 * template holds another kind of braces. */
static char *expand(const char *tpl, long i, const char **why)
{
    size_t cap = strlen(tpl) + 64, len = 0;
    char *out = base_calloc(cap, 1);
    for (const char *p = tpl; *p;) {
        if (*p != '{') {
            if (len + 2 > cap)
                out = base_realloc(out, cap *= 2);
            out[len++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        long off = 0;
        if (!end || p[1] != 'i') {
            *why = "a template may only hold {i}, {i+K} or {i-K}";
            free(out);
            return NULL;
        }
        const char *q = p + 2;
        if (*q == '+' || *q == '-') {
            /* Digits only (strtol would take a second sign or spaces), at
             * most 1e9, so i + off stays far from overflow. */
            char *num_end;
            errno = 0;
            off = isdigit((unsigned char)q[1]) ? strtol(q + 1, &num_end, 10) : (num_end = (char *)q, 0);
            if (num_end == q + 1 || num_end != end || errno || off > 1000000000L) {
                *why = "a template may only hold {i}, {i+K} or {i-K}";
                free(out);
                return NULL;
            }
            if (*q == '-')
                off = -off;
        } else if (q != end) {
            *why = "a template may only hold {i}, {i+K} or {i-K}";
            free(out);
            return NULL;
        }
        char num[32];
        int n = snprintf(num, sizeof num, "%ld", i + off);
        if (len + (size_t)n + 1 > cap)
            out = base_realloc(out, cap = cap * 2 + (size_t)n);
        memcpy(out + len, num, (size_t)n);
        len += (size_t)n;
        p = end + 1;
    }
    out[len] = '\0';
    return out;
}

#define FAMILY_MAX 1000000

static void load_family(loader *L, const json_t *fam, size_t k)
{
    char where[64];
    snprintf(where, sizeof where, "families[%zu]", k);
    if (!json_is_object(fam)) {
        dag_errors_add(L->errs, L->file, NULL, "%s: expected an object", where);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)fam, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "range") && strcmp(key, "op") && strcmp(key, "args") &&
            strcmp(key, "params") && strcmp(key, "description"))
            dag_errors_add(L->errs, L->file, NULL, "%s.%s: unknown key", where, key);
    }
    const char *tpl = json_string_value(json_object_get(fam, "name"));
    json_t *range = json_object_get(fam, "range");
    if (!tpl) {
        dag_errors_add(L->errs, L->file, NULL, "%s.name: expected a string template like \"foo_{i}\"", where);
        return;
    }
    if (!json_is_array(range) || json_array_size(range) != 2 || !json_is_integer(json_array_get(range, 0)) ||
        !json_is_integer(json_array_get(range, 1))) {
        dag_errors_add(L->errs, L->file, tpl, "%s.range: expected [start, stop] integers", where);
        return;
    }
    json_int_t a = json_integer_value(json_array_get(range, 0)), b = json_integer_value(json_array_get(range, 1));
    if (b < a) {
        dag_errors_add(L->errs, L->file, tpl, "%s.range: [%lld, %lld) is inverted: start must not exceed stop",
                       where, (long long)a, (long long)b);
        return;
    }
    if (a < -1000000000LL || b > 1000000000LL || b - a > FAMILY_MAX) { /* in this order: no overflow */
        dag_errors_add(L->errs, L->file, tpl, "%s.range: [%lld, %lld) holds more than %d nodes", where,
                       (long long)a, (long long)b, FAMILY_MAX);
        return;
    }
    if (b - a > 1 && !strchr(tpl, '{')) {
        dag_errors_add(L->errs, L->file, tpl, "%s.name: a family of more than one node needs {i} in its name", where);
        return;
    }
    json_t *args = json_object_get(fam, "args");
    if (args && !json_is_array(args)) {
        dag_errors_add(L->errs, L->file, tpl, "%s.args: expected an array", where);
        return;
    }
    for (json_int_t i = a; i < b; i++) {
        const char *why = NULL;
        char *name = expand(tpl, (long)i, &why);
        if (!name) {
            dag_errors_add(L->errs, L->file, tpl, "%s.name: %s", where, why);
            return;
        }
        uint32_t id = add_node(L, name, DK_OP, fam);
        free(name);
        /* Args: templates in strings, everything else as written. */
        json_t *exp = json_array();
        size_t j;
        json_t *arg;
        json_array_foreach(args, j, arg)
        {
            if (json_is_string(arg)) {
                char *s = expand(json_string_value(arg), (long)i, &why);
                if (!s) {
                    dag_errors_add(L->errs, L->file, tpl, "%s.args[%zu]: %s", where, j, why);
                    json_decref(exp);
                    exp = NULL;
                    break;
                }
                json_array_append_new(exp, json_string(s));
                free(s);
            } else {
                json_array_append(exp, arg);
            }
        }
        if (!exp) /* the same template fails for every i: say it once */
            return;
        L->family_args[id] = exp;
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Resolving and checking                                               */
/* ====================================================================== */

static void check_node_keys(loader *L, const char *name, const json_t *spec)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        if (strcmp(key, "op") && strcmp(key, "args") && strcmp(key, "params") && strcmp(key, "state") &&
            strcmp(key, "const") && strcmp(key, "description"))
            dag_errors_add(L->errs, L->file, name, "unknown key '%s'", key);
    }
}

/* Resolves an op node's arguments and compiles its params. */
static void resolve_op(loader *L, uint32_t id, const json_t *spec, const json_t *args)
{
    dag *d = L->d;
    dag_node *n = &d->nodes[id];
    const char *opname = json_string_value(json_object_get(spec, "op"));
    if (!opname) {
        dag_errors_add(L->errs, L->file, n->name, "\"op\" must be a string");
        return;
    }
    n->op = dag_op_find(opname);
    if (!n->op) {
        dag_errors_add(L->errs, L->file, n->name, "unknown op '%s'", opname);
        return;
    }
    if (args && !json_is_array(args)) {
        dag_errors_add(L->errs, L->file, n->name, "\"args\" must be an array");
        return;
    }
    size_t na = json_array_size(args);
    if ((int)na < n->op->min_args || (n->op->max_args >= 0 && (int)na > n->op->max_args)) {
        if (n->op->max_args < 0)
            dag_errors_add(L->errs, L->file, n->name, "wrong arity: %s takes at least %d args, got %zu", opname,
                           n->op->min_args, na);
        else if (n->op->min_args == n->op->max_args)
            dag_errors_add(L->errs, L->file, n->name, "wrong arity: %s takes %d args, got %zu", opname,
                           n->op->min_args, na);
        else
            dag_errors_add(L->errs, L->file, n->name, "wrong arity: %s takes %d to %d args, got %zu", opname,
                           n->op->min_args, n->op->max_args, na);
    }
    char err[256];
    if (dag_params_compile(n->op, json_object_get(spec, "params"), &n->params, err, sizeof err) != DAG_OK)
        dag_errors_add(L->errs, L->file, n->name, "bad params: %s", err);
    else if (n->op->check && n->op->check(na, &n->params, err, sizeof err) != DAG_OK)
        dag_errors_add(L->errs, L->file, n->name, "bad params: %s", err);

    n->args = base_calloc(na, sizeof *n->args);
    n->deps = base_calloc(na, sizeof *n->deps);
    n->nargs = (uint32_t)na;
    for (size_t j = 0; j < na; j++) {
        const json_t *a = json_array_get(args, j);
        dag_arg *arg = &n->args[j];
        arg->node = DAG_NONE;
        if (json_is_string(a)) {
            uint32_t dep = dag_find(d, json_string_value(a));
            if (dep == DAG_NONE) {
                dag_errors_add(L->errs, L->file, n->name, "unknown dependency '%s'", json_string_value(a));
                continue;
            }
            arg->node = dep;
            bool seen = false;
            for (uint32_t k = 0; k < n->ndeps; k++)
                seen |= n->deps[k] == dep;
            if (!seen)
                n->deps[n->ndeps++] = dep;
        } else if (json_is_object(a)) {
            const json_t *lit = json_object_get(a, "value");
            if (!lit || json_object_size(a) != 1) {
                dag_errors_add(L->errs, L->file, n->name,
                               "bad params: args[%zu]: an object argument must be {\"value\": literal}", j);
                continue;
            }
            dag_value_from_json(lit, DV_ANY, &arg->literal, err, sizeof err);
        } else {
            dag_value_from_json(a, DV_ANY, &arg->literal, err, sizeof err);
        }
    }
}

static void load_input(loader *L, const char *name, const json_t *spec)
{
    uint32_t id = add_node(L, name, DK_INPUT, spec);
    dag_node *n = &L->d->nodes[id];
    if (!dag_valid_name(name))
        dag_errors_add(L->errs, L->file, name, "input name must match [A-Za-z_][A-Za-z0-9_]*");
    if (!json_is_object(spec)) {
        dag_errors_add(L->errs, L->file, name, "an input is declared as {\"type\": T, \"default\"?: V}");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        if (strcmp(key, "type") && strcmp(key, "default") && strcmp(key, "description"))
            dag_errors_add(L->errs, L->file, name, "unknown key '%s'", key);
    }
    const char *type = json_string_value(json_object_get(spec, "type"));
    n->type = DV_ANY;
    if (type && dag_vtype_parse(type, &n->type) != DAG_OK)
        dag_errors_add(L->errs, L->file, name,
                       "unknown type '%s' (any, int, float, str, bool, array, list, dict)", type);
    else if (!type && json_object_get(spec, "type"))
        dag_errors_add(L->errs, L->file, name, "\"type\" must be a string");
    const json_t *def = json_object_get(spec, "default");
    if (def) {
        char err[256];
        if (dag_value_from_json(def, n->type, &n->value, err, sizeof err) != DAG_OK)
            dag_errors_add(L->errs, L->file, name, "default does not match type %s: %s", dag_vtype_name(n->type),
                           err);
    }
    const char *desc = json_string_value(json_object_get(spec, "description"));
    if (desc)
        n->description = base_strdup(desc);
}

static void load_plain_node(loader *L, const char *name, const json_t *spec, const char *const *state_names,
                            size_t nstate)
{
    if (!json_is_object(spec)) {
        uint32_t id = add_node(L, name, DK_CONST, NULL);
        L->d->nodes[id].value = heap_none();
        dag_errors_add(L->errs, L->file, name, "a node is an object with one of \"op\", \"state\", \"const\"");
        return;
    }
    int kinds = !!json_object_get(spec, "op") + !!json_object_get(spec, "state") + !!json_object_get(spec, "const");
    check_node_keys(L, name, spec);
    dag_kind kind = json_object_get(spec, "op") ? DK_OP : json_object_get(spec, "state") ? DK_STATE : DK_CONST;
    uint32_t id = add_node(L, name, kind, spec);
    dag_node *n = &L->d->nodes[id];
    const char *desc = json_string_value(json_object_get(spec, "description"));
    if (desc)
        n->description = base_strdup(desc);
    if (kinds != 1) {
        dag_errors_add(L->errs, L->file, name, "a node has exactly one of \"op\", \"state\", \"const\"");
        n->kind = DK_CONST;
        n->value = heap_none();
        return;
    }
    if (kind == DK_STATE) {
        const char *s = json_string_value(json_object_get(spec, "state"));
        n->state = base_strdup(s);
        bool known = false;
        for (size_t i = 0; s && i < nstate; i++)
            known |= strcmp(state_names[i], s) == 0;
        if (!s)
            dag_errors_add(L->errs, L->file, name, "\"state\" must name a state entry");
        else if (!known) {
            char list[256] = "";
            size_t len = 0;
            for (size_t i = 0; i < nstate && len < sizeof list - 1; i++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", state_names[i]);
            dag_errors_add(L->errs, L->file, name, "unknown state '%s' (the config declares: %s)", s,
                           nstate ? list : "none");
        }
    } else if (kind == DK_CONST) {
        char err[64];
        dag_value_from_json(json_object_get(spec, "const"), DV_ANY, &n->value, err, sizeof err);
    } else {
        const json_t *params = json_object_get(spec, "params");
        if (params && !json_is_object(params))
            dag_errors_add(L->errs, L->file, name, "bad params: \"params\" must be an object");
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Order and cycles                                                     */
/* ====================================================================== */

static void build_users(dag *d)
{
    for (uint32_t id = 0; id < d->n; id++)
        for (uint32_t k = 0; k < d->nodes[id].ndeps; k++)
            d->nodes[d->nodes[id].deps[k]].nusers++;
    for (uint32_t id = 0; id < d->n; id++) {
        d->nodes[id].users = base_calloc(d->nodes[id].nusers, sizeof(uint32_t));
        d->nodes[id].nusers = 0;
    }
    for (uint32_t id = 0; id < d->n; id++)
        for (uint32_t k = 0; k < d->nodes[id].ndeps; k++) {
            dag_node *dep = &d->nodes[d->nodes[id].deps[k]];
            dep->users[dep->nusers++] = id;
        }
}

/* Reports cycles among the nodes Kahn's algorithm could not order: a DFS
 * along dependencies, with an explicit stack; meeting a node that is on
 * the stack closes a cycle, reported as its path.  At most 10 reported. */
static void report_cycles(loader *L, const uint8_t *sorted)
{
    dag *d = L->d;
    uint8_t *color = base_calloc(d->n, 1); /* 0 new, 1 on stack, 2 done */
    uint32_t *stack = base_calloc(d->n, sizeof(uint32_t)), *next = base_calloc(d->n, sizeof(uint32_t));
    int reported = 0;
    for (uint32_t root = 0; root < d->n && reported < 10; root++) {
        if (sorted[root] || color[root])
            continue;
        size_t top = 0;
        stack[top++] = root;
        color[root] = 1;
        next[root] = 0;
        while (top && reported < 10) {
            uint32_t v = stack[top - 1];
            if (next[v] == d->nodes[v].ndeps) {
                color[v] = 2;
                top--;
                continue;
            }
            uint32_t w = d->nodes[v].deps[next[v]++];
            if (sorted[w] || color[w] == 2)
                continue;
            if (color[w] == 0) {
                color[w] = 1;
                next[w] = 0;
                stack[top++] = w;
                continue;
            }
            /* w is on the stack: the cycle is w ... v -> w. */
            size_t from = top;
            while (stack[from - 1] != w)
                from--;
            size_t len = 0, cap = 256;
            char *path = base_calloc(cap, 1);
            for (size_t k = from - 1; k <= top; k++) {
                const char *nm = d->nodes[k < top ? stack[k] : w].name;
                size_t need = strlen(nm) + 5;
                if (len + need >= cap)
                    path = base_realloc(path, cap = 2 * cap + need);
                len += (size_t)snprintf(path + len, cap - len, "%s%s", k == from - 1 ? "" : " -> ", nm);
            }
            dag_errors_add(L->errs, L->file, d->nodes[w].name, "cycle: %s", path);
            free(path);
            reported++;
        }
    }
    free(color);
    free(stack);
    free(next);
}

/* Kahn's algorithm over dependencies; false (with cycles reported) if some
 * nodes cannot be ordered. */
static bool sort_topo(loader *L)
{
    dag *d = L->d;
    uint32_t *pending = base_calloc(d->n, sizeof(uint32_t));
    uint8_t *sorted = base_calloc(d->n, 1);
    d->topo = base_calloc(d->n, sizeof(uint32_t));
    uint32_t head = 0, tail = 0;
    for (uint32_t id = 0; id < d->n; id++) {
        pending[id] = d->nodes[id].ndeps;
        if (!pending[id])
            d->topo[tail++] = id;
    }
    while (head < tail) {
        uint32_t v = d->topo[head++];
        sorted[v] = 1;
        for (uint32_t k = 0; k < d->nodes[v].nusers; k++) {
            uint32_t u = d->nodes[v].users[k];
            if (--pending[u] == 0)
                d->topo[tail++] = u;
        }
    }
    bool ok = tail == d->n;
    if (!ok)
        report_cycles(L, sorted);
    free(pending);
    free(sorted);
    return ok;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Loading                                                              */
/* ====================================================================== */

dag *dag_load_json(const json_t *doc, const char *file, const char *const *state_names, size_t nstate,
                   dag_errors *errs)
{
    loader L = {.d = base_calloc(1, sizeof(dag)), .file = file, .errs = errs, .nerr0 = errs->n};
    dag *d = L.d;
    d->file = base_strdup(file);
    if (!json_is_object(doc)) {
        dag_errors_add(errs, file, NULL, "a DAG file holds a JSON object");
        dag_free(d);
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "description") && strcmp(key, "inputs") && strcmp(key, "nodes") &&
            strcmp(key, "families"))
            dag_errors_add(errs, file, NULL, "unknown key '%s'", key);
    }
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!dag_valid_name(name))
        dag_errors_add(errs, file, NULL, "\"name\" must be a string matching [A-Za-z_][A-Za-z0-9_]*");
    d->name = base_strdup(name);
    d->description = base_strdup(json_string_value(json_object_get(doc, "description")));

    /* Phase 1: collect nodes. */
    const json_t *inputs = json_object_get(doc, "inputs"), *nodes = json_object_get(doc, "nodes"),
                 *families = json_object_get(doc, "families");
    if (inputs && !json_is_object(inputs))
        dag_errors_add(errs, file, NULL, "\"inputs\" must be an object");
    else
        json_object_foreach((json_t *)inputs, key, v) load_input(&L, key, v);
    if (nodes && !json_is_object(nodes))
        dag_errors_add(errs, file, NULL, "\"nodes\" must be an object");
    else
        json_object_foreach((json_t *)nodes, key, v)
        {
            if (!dag_valid_name(key))
                dag_errors_add(errs, file, key, "node name must match [A-Za-z_][A-Za-z0-9_]*");
            load_plain_node(&L, key, v, state_names, nstate);
        }
    if (families && !json_is_array(families))
        dag_errors_add(errs, file, NULL, "\"families\" must be an array");
    else {
        size_t k;
        json_array_foreach(families, k, v) load_family(&L, v, k);
    }
    for (uint32_t id = 0; id < d->n; id++)
        if (L.family_args[id] && !dag_valid_name(d->nodes[id].name))
            dag_errors_add(errs, file, d->nodes[id].name, "node name must match [A-Za-z_][A-Za-z0-9_]*");

    /* Phase 2: names, arguments, ops. */
    build_index(&L);
    d->inputs = base_calloc(d->n, sizeof(uint32_t));
    for (uint32_t id = 0; id < d->n; id++) {
        dag_node *n = &d->nodes[id];
        if (n->kind == DK_INPUT)
            d->inputs[d->ninputs++] = id;
        if (n->kind != DK_OP)
            continue;
        const json_t *args = L.family_args[id] ? L.family_args[id] : json_object_get(L.spec[id], "args");
        resolve_op(&L, id, L.spec[id], args);
    }

    /* Phase 3: order. */
    build_users(d);
    sort_topo(&L); /* cycles are reported alongside every other problem */
    d->sinks = base_calloc(d->n, sizeof(uint32_t));
    for (uint32_t id = 0; id < d->n; id++)
        if (d->nodes[id].kind != DK_INPUT && d->nodes[id].nusers == 0)
            d->sinks[d->nsinks++] = id;

    for (uint32_t id = 0; id < d->n; id++)
        json_decref(L.family_args[id]);
    free(L.family_args);
    free(L.spec);
    if (errs->n != L.nerr0) {
        dag_free(d);
        return NULL;
    }
    return d;
}

dag *dag_load_file(const char *path, const char *const *state_names, size_t nstate, dag_errors *errs)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        if (jerr.line > 0)
            dag_errors_add(errs, path, NULL, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
        else
            dag_errors_add(errs, path, NULL, "%s", jerr.text);
        return NULL;
    }
    dag *d = dag_load_json(doc, path, state_names, nstate, errs);
    json_decref(doc);
    return d;
}

void dag_free(dag *d)
{
    if (!d)
        return;
    for (uint32_t id = 0; id < d->n; id++) {
        dag_node *n = &d->nodes[id];
        free(n->name);
        free(n->state);
        free(n->description);
        dag_params_free(&n->params);
        for (uint32_t k = 0; k < n->nargs; k++)
            heap_xdecref(n->args[k].literal);
        free(n->args);
        free(n->deps);
        free(n->users);
        heap_xdecref(n->value);
    }
    free(d->nodes);
    free(d->topo);
    free(d->inputs);
    free(d->sinks);
    free(d->index);
    free(d->name);
    free(d->description);
    free(d->file);
    free(d);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Description                                                          */
/* ====================================================================== */

json_t *dag_summary_json(const dag *d)
{
    json_t *inputs = json_object(), *outputs = json_array();
    for (uint32_t k = 0; k < d->ninputs; k++) {
        const dag_node *n = &d->nodes[d->inputs[k]];
        json_t *in = json_pack("{s:s}", "type", dag_vtype_name(n->type));
        if (n->value) {
            char err[128];
            json_t *def = dag_value_to_json(n->value, err, sizeof err);
            if (def)
                json_object_set_new(in, "default", def);
        }
        json_object_set_new(inputs, n->name, in);
    }
    for (uint32_t k = 0; k < d->nsinks; k++)
        json_array_append_new(outputs, json_string(d->nodes[d->sinks[k]].name));
    return json_pack("{s:s, s:s, s:o, s:o}", "name", d->name, "description", d->description, "inputs", inputs,
                     "outputs", outputs);
}

json_t *dag_detail_json(const dag *d)
{
    json_t *doc = dag_summary_json(d), *nodes = json_array();
    for (uint32_t k = 0; k < d->n; k++) {
        const dag_node *n = &d->nodes[d->topo[k]];
        json_t *deps = json_array();
        for (uint32_t j = 0; j < n->ndeps; j++)
            json_array_append_new(deps, json_string(d->nodes[n->deps[j]].name));
        json_t *node = json_pack("{s:s, s:s, s:o}", "name", n->name, "kind", dag_kind_name(n->kind), "deps", deps);
        if (n->kind == DK_OP)
            json_object_set_new(node, "op", json_string(n->op->name));
        if (n->kind == DK_STATE)
            json_object_set_new(node, "state", json_string(n->state));
        if (n->kind == DK_INPUT)
            json_object_set_new(node, "type", json_string(dag_vtype_name(n->type)));
        if (n->description)
            json_object_set_new(node, "description", json_string(n->description));
        json_array_append_new(nodes, node);
    }
    json_object_set_new(doc, "nodes", nodes);
    return doc;
}

char *dag_dot(const dag *d)
{
    dag_writer w;
    dag_writer_init_mem(&w);
    dag_write_cstr(&w, "digraph ");
    dag_write_string(&w, d->name, strlen(d->name));
    dag_write_cstr(&w, " {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    static const char *const shape[] = {"box", "cylinder", "note", "ellipse"};
    for (uint32_t k = 0; k < d->n; k++) {
        const dag_node *n = &d->nodes[d->topo[k]];
        char label[200];
        snprintf(label, sizeof label, "%s\n%s", n->name,
                 n->kind == DK_OP ? n->op->name : n->kind == DK_STATE ? n->state : dag_kind_name(n->kind));
        dag_write_cstr(&w, "  ");
        dag_write_string(&w, n->name, strlen(n->name));
        dag_write_cstr(&w, " [shape=");
        dag_write_cstr(&w, shape[n->kind]);
        dag_write_cstr(&w, ", label=");
        dag_write_string(&w, label, strlen(label));
        dag_write_cstr(&w, "];\n");
    }
    for (uint32_t k = 0; k < d->n; k++) {
        const dag_node *n = &d->nodes[d->topo[k]];
        for (uint32_t j = 0; j < n->ndeps; j++) {
            dag_write_cstr(&w, "  ");
            const char *from = d->nodes[n->deps[j]].name;
            dag_write_string(&w, from, strlen(from));
            dag_write_cstr(&w, " -> ");
            dag_write_string(&w, n->name, strlen(n->name));
            dag_write_cstr(&w, ";\n");
        }
    }
    dag_write_cstr(&w, "}\n");
    return dag_writer_take(&w, NULL);
}

/* }====================================================================== */
