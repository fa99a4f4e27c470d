/* test_dag: loading DAG files (families, every validation error), planning
 * (pruning: the live results after each step are exactly the minimum),
 * running and the response (dag/dag.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dag/dag.h"
#include "heap/gc.h"
#include "tests/support.h"

static dag *load(const char *text, dag_errors *errs)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("test JSON does not parse: %s (line %d)", jerr.text, jerr.line);
    static const char *const states[] = {"customers"};
    dag *d = dag_load_json(doc, "t.json", states, 1, errs);
    json_decref(doc);
    return d;
}

static dag *load_ok(const char *text)
{
    dag_errors errs = {0};
    dag *d = load(text, &errs);
    if (!d) {
        dag_errors_print(&errs, stderr);
        fail_msg("DAG did not load");
    }
    dag_errors_free(&errs);
    return d;
}

/* True if some error names `node` (NULL: any) and contains `text`. */
static bool has_error(const dag_errors *e, const char *node, const char *text)
{
    for (size_t i = 0; i < e->n; i++)
        if ((!node || (e->v[i].node && strcmp(e->v[i].node, node) == 0)) && strstr(e->v[i].problem, text) &&
            strcmp(e->v[i].file, "t.json") == 0)
            return true;
    return false;
}

static json_t *req(const char *text)
{
    json_error_t jerr;
    json_t *r = json_loads(text, 0, &jerr);
    if (!r)
        fail_msg("request JSON does not parse: %s", jerr.text);
    return r;
}

/* --- loading ---------------------------------------------------------- */

static void loads_nodes_inputs_order_and_sinks(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"m\", \"description\": \"demo\","
                     " \"inputs\": {\"x\": {\"type\": \"array\"}, \"k\": {\"type\": \"int\", \"default\": 3}},"
                     " \"nodes\": {\"y\": {\"op\": \"add\", \"args\": [\"x\", \"k\"]},"
                     "             \"z\": {\"op\": \"mul\", \"args\": [\"y\", 2]},"
                     "             \"c\": {\"const\": 1.5}, \"s\": {\"state\": \"customers\"}}}");
    assert_string_equal(d->name, "m");
    assert_int_equal(d->n, 6);
    assert_int_equal(d->ninputs, 2);
    /* Sinks: non-input nodes nothing depends on. */
    assert_int_equal(d->nsinks, 3);
    uint32_t x = dag_find(d, "x"), y = dag_find(d, "y"), z = dag_find(d, "z");
    assert_int_equal(dag_find(d, "nope"), DAG_NONE);
    size_t px = 0, py = 0, pz = 0;
    for (size_t i = 0; i < d->n; i++) {
        px = d->topo[i] == x ? i : px;
        py = d->topo[i] == y ? i : py;
        pz = d->topo[i] == z ? i : pz;
    }
    assert_true(px < py && py < pz);
    assert_int_equal(d->nodes[y].nusers, 1);
    assert_int_equal(d->nodes[z].nargs, 2);
    assert_int_equal(d->nodes[z].args[1].node, DAG_NONE);
    assert_true(heap_int_value(d->nodes[z].args[1].literal) == 2);
    dag_free(d);
}

static void families_expand_names_and_args(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"f\", \"nodes\": {\"one\": {\"const\": 1.0}, \"foo_0\": {\"const\": 0.0}},"
                     " \"families\": [{\"name\": \"foo_{i}\", \"range\": [1, 100], \"op\": \"add\","
                     "                 \"args\": [\"foo_{i-1}\", \"one\"]},"
                     "                {\"name\": \"bar_{i}\", \"range\": [0, 3], \"op\": \"mul\","
                     "                 \"args\": [\"foo_{i+1}\", 2]}]}");
    assert_int_equal(d->n, 2 + 99 + 3);
    uint32_t f99 = dag_find(d, "foo_99"), b2 = dag_find(d, "bar_2");
    assert_int_not_equal(f99, DAG_NONE);
    assert_int_equal(dag_find(d, "foo_100"), DAG_NONE); /* half-open */
    assert_string_equal(d->nodes[d->nodes[f99].args[0].node].name, "foo_98");
    assert_string_equal(d->nodes[d->nodes[b2].args[0].node].name, "foo_3");
    dag_free(d);
}

static void every_error_is_reported_at_once_naming_file_and_node(void **state)
{
    (void)state;
    dag_errors e = {0};
    dag *d = load("{\"name\": \"bad\", \"colour\": 1,"
                  " \"inputs\": {\"x\": {\"type\": \"int\", \"default\": \"three\"},"
                  "             \"y\": {\"type\": \"tensor\"}},"
                  " \"nodes\": {"
                  "   \"a\": {\"op\": \"frobnicate\", \"args\": [\"x\"]},"
                  "   \"b\": {\"op\": \"add\", \"args\": [\"x\", \"ghost\"]},"
                  "   \"c\": {\"op\": \"neg\", \"args\": [\"x\", \"x\"]},"
                  "   \"d\": {\"op\": \"std\", \"args\": [\"x\"], \"params\": {\"bogus\": 1}},"
                  "   \"x\": {\"const\": 1},"
                  "   \"e\": {\"state\": \"suppliers\"},"
                  "   \"9lives\": {\"const\": 1},"
                  "   \"f\": {\"op\": \"add\", \"args\": [\"x\", 1], \"const\": 2},"
                  "   \"g\": {\"op\": \"neg\", \"args\": [\"x\"], \"extra\": true}},"
                  " \"families\": [{\"name\": \"h_{j}\", \"range\": [0, 2], \"op\": \"neg\", \"args\": [\"x\"]},"
                  "                {\"name\": \"k_{i}\", \"range\": [3, 1], \"op\": \"neg\", \"args\": [\"x\"]}]}",
                  &e);
    assert_null(d);
    assert_true(has_error(&e, NULL, "unknown key 'colour'"));
    assert_true(has_error(&e, "x", "default does not match type int"));
    assert_true(has_error(&e, "y", "unknown type 'tensor'"));
    assert_true(has_error(&e, "a", "unknown op 'frobnicate'"));
    assert_true(has_error(&e, "b", "unknown dependency 'ghost'"));
    assert_true(has_error(&e, "c", "wrong arity"));
    assert_true(has_error(&e, "d", "bad params"));
    assert_true(has_error(&e, "x", "duplicate name"));
    assert_true(has_error(&e, "e", "unknown state 'suppliers'"));
    assert_true(has_error(&e, "9lives", "must match"));
    assert_true(has_error(&e, "f", "exactly one of"));
    assert_true(has_error(&e, "g", "unknown key 'extra'"));
    assert_true(has_error(&e, "h_{j}", "template"));
    assert_true(has_error(&e, "k_{i}", "range"));
    assert_true(e.n >= 14);
    dag_errors_free(&e);
}

static void cycles_are_reported_with_their_path(void **state)
{
    (void)state;
    dag_errors e = {0};
    dag *d = load("{\"name\": \"cyc\", \"nodes\": {"
                  " \"a\": {\"op\": \"neg\", \"args\": [\"c\"]},"
                  " \"b\": {\"op\": \"neg\", \"args\": [\"a\"]},"
                  " \"c\": {\"op\": \"neg\", \"args\": [\"b\"]},"
                  " \"s\": {\"op\": \"add\", \"args\": [\"s\", 1]},"
                  " \"ok\": {\"const\": 1}, \"after\": {\"op\": \"neg\", \"args\": [\"a\"]}}}",
                  &e);
    assert_null(d);
    assert_int_equal(e.n, 2);
    assert_true(has_error(&e, NULL, "cycle: a -> c -> b -> a") || has_error(&e, NULL, "cycle: c -> b -> a -> c") ||
                has_error(&e, NULL, "cycle: b -> a -> c -> b"));
    assert_true(has_error(&e, "s", "cycle: s -> s"));
    dag_errors_free(&e);
}

static void a_long_chain_loads_without_recursion(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"long\", \"nodes\": {\"n_0\": {\"const\": 0}},"
                     " \"families\": [{\"name\": \"n_{i}\", \"range\": [1, 100000], \"op\": \"add\","
                     "                 \"args\": [\"n_{i-1}\", 1]}]}");
    assert_int_equal(d->n, 100000);
    assert_int_equal(d->nsinks, 1);
    assert_string_equal(d->nodes[d->sinks[0]].name, "n_99999");
    dag_result res;
    dag_fail f;
    json_t *r = req("{\"outputs\": [\"n_99999\"]}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    assert_true(heap_int_value(res.values[0]) == 99999);
    assert_int_equal(res.nodes_executed, 100000);
    dag_result_free(&res);
    json_decref(r);
    dag_free(d);
}

/* --- pruning ---------------------------------------------------------- */

/* Records the live set after each step as "step:live,live|". */
typedef struct trace {
    const dag *d;
    char text[1024];
} trace;

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_step(void *arg, uint32_t node, const uint32_t *live, size_t nlive)
{
    trace *t = arg;
    const char *names[64];
    for (size_t i = 0; i < nlive; i++)
        names[i] = t->d->nodes[live[i]].name;
    qsort(names, nlive, sizeof *names, cmp_names);
    size_t len = strlen(t->text);
    len += (size_t)snprintf(t->text + len, sizeof t->text - len, "%s:", t->d->nodes[node].name);
    for (size_t i = 0; i < nlive; i++)
        len += (size_t)snprintf(t->text + len, sizeof t->text - len, "%s%s", i ? "," : "", names[i]);
    snprintf(t->text + len, sizeof t->text - len, "|");
}

static const char *trace_run(const dag *d, const char *request, trace *t)
{
    t->d = d;
    t->text[0] = '\0';
    dag_run_opts opts = {.on_step = on_step, .step_arg = t};
    dag_result res;
    dag_fail f;
    json_t *r = req(request);
    if (dag_run(d, r, &opts, &res, &f) != DAG_OK)
        fail_msg("run failed: %s: %s", f.code, f.message);
    json_decref(r);
    dag_result_free(&res);
    return t->text;
}

/* a -> b, a -> c, (b, c) -> d, and x off to the side of a. */
static const char *const diamond =
    "{\"name\": \"diamond\", \"nodes\": {"
    " \"a\": {\"op\": \"fill\", \"args\": [4, 1.0]},"
    " \"b\": {\"op\": \"mul\", \"args\": [\"a\", 2]},"
    " \"c\": {\"op\": \"add\", \"args\": [\"a\", 1]},"
    " \"d\": {\"op\": \"sub\", \"args\": [\"b\", \"c\"]},"
    " \"x\": {\"op\": \"neg\", \"args\": [\"a\"]},"
    " \"e\": {\"op\": \"neg\", \"args\": [\"d\"]}}}";

static void diamond_holds_only_what_pending_nodes_need(void **state)
{
    (void)state;
    dag *d = load_ok(diamond);
    trace t;
    /* The walk visits deps in argument order: a, b, c, then d.  a goes once
     * c (its last planned consumer) has run; b and c once d has. */
    assert_string_equal(trace_run(d, "{\"outputs\": [\"d\"]}", &t), "a:a|b:a,b|c:b,c|d:d|");
    dag_free(d);
}

static void off_path_consumers_keep_nothing_alive(void **state)
{
    (void)state;
    dag *d = load_ok(diamond);
    trace t;
    /* x also consumes a, but is not planned: a goes right after b. */
    assert_string_equal(trace_run(d, "{\"outputs\": [\"b\"]}", &t), "a:a|b:b|");
    dag_free(d);
}

static void outputs_that_feed_outputs_are_kept(void **state)
{
    (void)state;
    dag *d = load_ok(diamond);
    trace t;
    assert_string_equal(trace_run(d, "{\"outputs\": [\"e\", \"d\"]}", &t), "a:a|b:a,b|c:b,c|d:d|e:d,e|");
    dag_free(d);
}

static void overrides_stop_the_plan(void **state)
{
    (void)state;
    dag *d = load_ok(diamond);
    trace t;
    /* b given: a is needed only by c. */
    assert_string_equal(trace_run(d, "{\"outputs\": [\"d\"], \"overrides\": {\"b\": [5, 5, 5, 5]}}", &t),
                        "a:a,b|c:b,c|d:d|");
    /* both given: nothing upstream runs. */
    dag_result res;
    dag_fail f;
    json_t *r = req("{\"outputs\": [\"d\"], \"overrides\": {\"b\": 5, \"c\": 2}}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    assert_int_equal(res.nodes_executed, 1);
    assert_true(heap_int_value(res.values[0]) == 3);
    dag_result_free(&res);
    json_decref(r);
    dag_free(d);
}

static void a_chain_holds_at_most_two_arrays(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"chain\", \"inputs\": {\"n\": {\"type\": \"int\", \"default\": 100000}},"
                     " \"nodes\": {\"foo_0\": {\"op\": \"fill\", \"args\": [\"n\", 1.0]}},"
                     " \"families\": [{\"name\": \"foo_{i}\", \"range\": [1, 50], \"op\": \"mul\","
                     "                 \"args\": [\"foo_{i-1}\", 1.01]}]}");
    dag_result res;
    dag_fail f;
    json_t *r = req("{}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    assert_int_equal(res.noutputs, 1);
    double v = heap_array_f64(res.values[0])[99999];
    assert_true(v > 1.62834 && v < 1.62836); /* 1.01^49 = 1.6283483 */
    /* Two 800 kB arrays at a time, plus their headers. */
    assert_true(res.peak_bytes >= 2 * 800000);
    assert_true(res.peak_bytes <= 2 * 800000 + 3 * 4096);
    dag_result_free(&res);
    json_decref(r);
    dag_free(d);
}

/* --- request errors ------------------------------------------------------ */

static const char *const with_inputs =
    "{\"name\": \"w\", \"inputs\": {\"x\": {\"type\": \"array\"}, \"k\": {\"type\": \"int\"},"
    " \"m\": {\"type\": \"float\", \"default\": 2}},"
    " \"nodes\": {\"y\": {\"op\": \"mul\", \"args\": [\"x\", \"m\"]}, \"z\": {\"op\": \"add\", \"args\": [\"y\", \"k\"]},"
    " \"big\": {\"op\": \"fill\", \"args\": [\"k\", 0.0]}, \"q\": {\"op\": \"div\", \"args\": [\"x\", \"y\"]}}}";

static dag_fail run_fail(const dag *d, const char *request, const dag_run_opts *opts)
{
    dag_result res;
    dag_fail f = {0};
    json_t *r = req(request);
    assert_int_equal(dag_run(d, r, opts, &res, &f), DAG_ERR);
    json_decref(r);
    return f;
}

static void unknown_outputs_and_missing_inputs_come_together(void **state)
{
    (void)state;
    dag *d = load_ok(with_inputs);
    dag_fail f = run_fail(d, "{\"outputs\": [\"zz\", \"z\", \"ww\"]}", NULL);
    assert_string_equal(f.code, "unknown_output");
    assert_non_null(strstr(f.message, "zz"));
    assert_non_null(strstr(f.message, "ww"));
    f = run_fail(d, "{\"outputs\": [\"z\"]}", NULL);
    assert_string_equal(f.code, "missing_input");
    assert_non_null(strstr(f.message, "'x'"));
    assert_non_null(strstr(f.message, "'k'"));
    assert_null(strstr(f.message, "'m'")); /* has a default */
    /* Unknown outputs do not hide the inputs the known ones miss. */
    f = run_fail(d, "{\"outputs\": [\"zz\", \"y\"]}", NULL);
    assert_string_equal(f.code, "unknown_output");
    assert_non_null(strstr(f.message, "missing input 'x'"));
    dag_free(d);
}

static void wrong_types_are_type_errors_naming_the_input(void **state)
{
    (void)state;
    dag *d = load_ok(with_inputs);
    dag_fail f = run_fail(d, "{\"inputs\": {\"x\": [1, \"2\"], \"k\": 1}, \"outputs\": [\"z\"]}", NULL);
    assert_string_equal(f.code, "type_error");
    assert_string_equal(f.node, "x");
    f = run_fail(d, "{\"inputs\": {\"x\": [1], \"k\": 1.5}}", NULL);
    assert_string_equal(f.code, "type_error");
    f = run_fail(d, "[1, 2]", NULL);
    assert_string_equal(f.code, "type_error");
    f = run_fail(d, "{\"outputs\": \"z\"}", NULL);
    assert_string_equal(f.code, "type_error");
    f = run_fail(d, "{\"inputs\": {\"nope\": 1, \"x\": [1]}, \"outputs\": [\"y\"]}", NULL);
    assert_string_equal(f.code, "type_error");
    assert_non_null(strstr(f.message, "'nope' is not an input"));
    dag_free(d);
}

static void op_failures_name_their_node_and_release_everything(void **state)
{
    (void)state;
    dag *d = load_ok(with_inputs);
    heap_stats before, after;
    heap_get_stats(&before);
    dag_fail f = run_fail(d, "{\"inputs\": {\"x\": [1, 2], \"k\": \"s\"}, \"outputs\": [\"z\"]}", NULL);
    assert_string_equal(f.code, "type_error"); /* k declared int */
    f = run_fail(d, "{\"inputs\": {\"x\": [1, 2], \"k\": 1}, \"overrides\": {\"y\": [1, 2, 3]}, \"outputs\": [\"q\"]}",
                 NULL);
    assert_string_equal(f.code, "op_error");
    assert_string_equal(f.node, "q");
    dag_run_opts small = {.max_elems = 1000};
    f = run_fail(d, "{\"inputs\": {\"x\": [1], \"k\": 1000000}, \"outputs\": [\"big\"]}", &small);
    assert_string_equal(f.code, "limit_exceeded");
    assert_string_equal(f.node, "big");
    heap_get_stats(&after);
    assert_int_equal(after.objects, before.objects);
    dag_free(d);
}

/* Each result is within max_elems, but two of them at once are not within
 * the run's budget: limit_exceeded, never an abort in the allocator. */
static void the_run_budget_bounds_what_a_run_holds_at_once(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"two\", \"inputs\": {\"n\": {\"type\": \"int\"}},"
                     " \"nodes\": {\"a\": {\"op\": \"fill\", \"args\": [\"n\", 1.0]},"
                     "             \"b\": {\"op\": \"mul\", \"args\": [\"a\", 2]}}}");
    dag_run_opts budget = {.max_bytes = 12 << 20}; /* 12 MiB */
    dag_fail f = run_fail(d, "{\"inputs\": {\"n\": 1000000}, \"outputs\": [\"b\"]}", &budget); /* 2 x 8 MB */
    assert_string_equal(f.code, "limit_exceeded");
    assert_string_equal(f.node, "b");
    assert_non_null(strstr(f.message, "max_run_bytes"));
    dag_result res;
    json_t *r = req("{\"inputs\": {\"n\": 500000}, \"outputs\": [\"b\"]}"); /* 2 x 4 MB fit */
    assert_int_equal(dag_run(d, r, &budget, &res, &f), DAG_OK);
    dag_result_free(&res);
    json_decref(r);
    dag_free(d);
}

static void hostile_family_templates_and_ranges_are_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"name\": \"t\", \"nodes\": {\"c\": {\"const\": 1}}, \"families\": [{\"name\": \"a{i+-5}\","
        " \"range\": [0, 2], \"op\": \"neg\", \"args\": [\"c\"]}]}",
        "{\"name\": \"t\", \"nodes\": {\"c\": {\"const\": 1}}, \"families\": [{\"name\": \"a{i--9223372036854775808}\","
        " \"range\": [0, 2], \"op\": \"neg\", \"args\": [\"c\"]}]}",
        "{\"name\": \"t\", \"nodes\": {\"c\": {\"const\": 1}}, \"families\": [{\"name\": \"a{i}\","
        " \"range\": [-9223372036854775808, 9223372036854775807], \"op\": \"neg\", \"args\": [\"c\"]}]}",
        "{\"name\": \"t\", \"nodes\": {\"c\": {\"const\": 1}}, \"families\": [{\"name\": \"same\","
        " \"range\": [0, 1000000], \"op\": \"neg\", \"args\": [\"c\"]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dag_errors e = {0};
        assert_null(load(bad[i], &e));
        assert_true(e.n >= 1 && e.n <= 11);
        dag_errors_free(&e);
    }
}

static void a_passed_deadline_stops_the_run(void **state)
{
    (void)state;
    dag *d = load_ok(diamond);
    dag_run_opts late = {.deadline_ns = 1}; /* long past */
    dag_fail f = run_fail(d, "{\"outputs\": [\"d\"]}", &late);
    assert_string_equal(f.code, "limit_exceeded");
    dag_free(d);
}

/* --- responses ------------------------------------------------------------- */

static void response_has_outputs_and_stats_with_nan_as_null(void **state)
{
    (void)state;
    dag *d = load_ok(with_inputs);
    dag_result res;
    dag_fail f;
    json_t *r = req("{\"inputs\": {\"x\": [1, 0], \"k\": 1}, \"outputs\": [\"q\", \"z\"]}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    dag_writer w;
    dag_writer_init_mem(&w);
    assert_int_equal(dag_write_response(&w, d, &res, 3, 1234, &f), DAG_OK);
    json_error_t jerr;
    json_t *doc = json_loads(w.buf, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "dag")), "w");
    json_t *q = json_object_get(json_object_get(doc, "outputs"), "q");
    assert_true(json_real_value(json_array_get(q, 0)) == 0.5);
    assert_true(json_is_null(json_array_get(q, 1))); /* 0/0 */
    json_t *z = json_object_get(json_object_get(doc, "outputs"), "z");
    assert_true(json_real_value(json_array_get(z, 0)) == 3.0);
    json_t *stats = json_object_get(doc, "stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "nodes_executed")), 6);
    assert_int_equal(json_integer_value(json_object_get(stats, "worker")), 3);
    assert_int_equal(json_integer_value(json_object_get(stats, "pid")), 1234);
    assert_true(json_integer_value(json_object_get(stats, "peak_bytes")) > 0);
    json_decref(doc);
    dag_writer_free(&w);
    dag_result_free(&res);
    json_decref(r);
    dag_free(d);
}

static void a_cyclic_output_is_a_type_error(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"g\", \"nodes\": {\"g\": {\"op\": \"graph\", \"args\": [[[0, 1], [1, 0]]]}}}");
    dag_result res;
    dag_fail f;
    json_t *r = req("{}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    dag_writer w;
    dag_writer_init_mem(&w);
    assert_int_equal(dag_write_response(&w, d, &res, 0, 1, &f), DAG_ERR);
    assert_string_equal(f.code, "type_error");
    assert_string_equal(f.node, "g");
    dag_writer_free(&w);
    dag_result_free(&res);
    json_decref(r);
    gc_collect(2); /* the graph's cycles */
    dag_free(d);
    heap_stats s;
    heap_get_stats(&s);
    assert_int_equal(s.objects, 0);
}

/* peak_bytes is the most the run held; held_bytes what its outputs hold
 * once it has ended (what a server keeps while it sends them). */
static void held_bytes_count_the_outputs_not_the_intermediates(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"h\", \"inputs\": {\"n\": {\"type\": \"int\"}},"
                     " \"nodes\": {\"big\": {\"op\": \"fill\", \"args\": [\"n\", 1.0]},"
                     " \"total\": {\"op\": \"sum\", \"args\": [\"big\"]}}}");
    json_t *r = req("{\"inputs\": {\"n\": 100000}, \"outputs\": [\"total\"]}");
    dag_result res;
    dag_fail f;
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    assert_true(res.peak_bytes >= 800000); /* the array */
    assert_true(res.held_bytes < 256);     /* one float */
    dag_result_free(&res);
    json_decref(r);
    r = req("{\"inputs\": {\"n\": 100000}, \"outputs\": [\"big\"]}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    assert_true(res.held_bytes >= 800000 && res.held_bytes <= res.peak_bytes);
    dag_result_free(&res);
    json_decref(r);
    dag_free(d);
}

static void a_response_in_pieces_is_the_whole_response(void **state)
{
    (void)state;
    dag *d = load_ok(with_inputs);
    json_t *r = req("{\"inputs\": {\"x\": [1, 0, 2.5, 3, 4, 5, 6, 7, 8, 9], \"k\": 1}, \"outputs\": [\"q\", \"z\"]}");
    dag_result res;
    dag_fail f;
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    dag_writer whole;
    dag_writer_init_mem(&whole);
    assert_int_equal(dag_write_response(&whole, d, &res, 2, 99, &f), DAG_OK);

    dag_response *out;
    assert_int_equal(dag_response_new(d, &res, 2, 99, &out, &f), DAG_OK);
    assert_int_equal(res.noutputs, 0); /* taken */
    dag_writer w;
    dag_writer_init_mem(&w);
    size_t fills = 0;
    bool more;
    do { /* 5 bytes wanted each time: at least that, unless it is the end */
        size_t before = w.len;
        more = dag_response_fill(out, &w, 5);
        fills++;
        assert_true(w.len - before >= 5 || !more);
    } while (more);
    assert_string_equal(w.buf, whole.buf);
    assert_true(fills > 3); /* the opening, each array, the stats */
    assert_false(dag_response_fill(out, &w, 5)); /* done stays done */
    dag_response_free(out);                     /* releases the result */
    dag_writer_free(&w);
    dag_writer_free(&whole);
    json_decref(r);
    dag_free(d);
    heap_stats s;
    heap_get_stats(&s);
    assert_int_equal(s.objects, 0);
}

static void a_cyclic_output_is_refused_before_a_response_starts(void **state)
{
    (void)state;
    dag *d = load_ok("{\"name\": \"g\", \"nodes\": {\"g\": {\"op\": \"graph\", \"args\": [[[0, 1], [1, 0]]]}}}");
    dag_result res;
    dag_fail f;
    json_t *r = req("{}");
    assert_int_equal(dag_run(d, r, NULL, &res, &f), DAG_OK);
    dag_response *out = NULL;
    assert_int_equal(dag_response_new(d, &res, 0, 1, &out, &f), DAG_ERR);
    assert_null(out);
    assert_string_equal(f.code, "type_error");
    assert_int_equal(res.noutputs, 1); /* still the caller's */
    dag_result_free(&res);
    json_decref(r);
    gc_collect(2);
    dag_free(d);
}

static void description_lists_inputs_outputs_and_nodes(void **state)
{
    (void)state;
    dag *d = load_ok(with_inputs);
    json_t *sum = dag_summary_json(d);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(sum, "inputs"), "x"), "type")),
                        "array");
    assert_true(json_real_value(json_object_get(json_object_get(json_object_get(sum, "inputs"), "m"), "default")) == 2.0 ||
                json_integer_value(json_object_get(json_object_get(json_object_get(sum, "inputs"), "m"), "default")) == 2);
    assert_int_equal(json_array_size(json_object_get(sum, "outputs")), 3); /* z, big, q */
    json_t *det = dag_detail_json(d);
    assert_int_equal(json_array_size(json_object_get(det, "nodes")), 7);
    char *dot = dag_dot(d);
    assert_non_null(strstr(dot, "\"y\" -> \"z\";"));
    assert_non_null(strstr(dot, "digraph \"w\""));
    free(dot);
    json_decref(sum);
    json_decref(det);
    dag_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_heap, teardown_heap)
        T(loads_nodes_inputs_order_and_sinks),
        T(families_expand_names_and_args),
        T(every_error_is_reported_at_once_naming_file_and_node),
        T(cycles_are_reported_with_their_path),
        T(a_long_chain_loads_without_recursion),
        T(diamond_holds_only_what_pending_nodes_need),
        T(off_path_consumers_keep_nothing_alive),
        T(outputs_that_feed_outputs_are_kept),
        T(overrides_stop_the_plan),
        T(a_chain_holds_at_most_two_arrays),
        T(unknown_outputs_and_missing_inputs_come_together),
        T(wrong_types_are_type_errors_naming_the_input),
        T(op_failures_name_their_node_and_release_everything),
        T(the_run_budget_bounds_what_a_run_holds_at_once),
        T(hostile_family_templates_and_ranges_are_errors),
        T(a_passed_deadline_stops_the_run),
        T(response_has_outputs_and_stats_with_nan_as_null),
        T(a_cyclic_output_is_a_type_error),
        T(held_bytes_count_the_outputs_not_the_intermediates),
        T(a_response_in_pieces_is_the_whole_response),
        T(a_cyclic_output_is_refused_before_a_response_starts),
        T(description_lists_inputs_outputs_and_nodes),
#undef T
    };
    return cmocka_run_group_tests_name("dag", tests, NULL, NULL);
}
