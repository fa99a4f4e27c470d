/* test_modules: modules -- users' own ops in shared libraries (README.md,
 * "Writing a module").  The example module (examples/score) against values
 * computed here from the generator load/state.h writes out; its errors;
 * the run's deadline and budget inside a module's loop; the loader's
 * errors; `cowdag check`, `run` and `ops`; the server: answers, a crash, a
 * reload onto a rebuilt module, and the sharing figures.
 *
 * The modules are the build's: next to the binary COWDAG names
 * (build/examples/score/libscore.so, build/tests/modules/lib*.so). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/server_support.h"
#include "tests/support.h"

#include <dlfcn.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "dag/dag.h"
#include "heap/gc.h"
#include "load/state.h"
#include "load/world.h"

/* ====================================================================== */
/* {  Paths and configs                                                    */
/* ====================================================================== */

static char build_dir[512], repo_dir[512];

static void find_dirs(void)
{
    if (build_dir[0])
        return;
    char *copy = dup_or_die(cowdag_bin());
    char *real = realpath(dirname(copy), NULL);
    assert_non_null(real);
    snprintf(build_dir, sizeof build_dir, "%s", real);
    free(real);
    free(copy);
    assert_non_null(getcwd(repo_dir, sizeof repo_dir));
}

/* A module of the build: "examples/score/libscore.so", "tests/modules/libnoinit.so". */
static char *module_path(const char *rel)
{
    find_dirs();
    return dup_printf("%s/%s", build_dir, rel);
}

static char *score_module(void) { return module_path("examples/score/libscore.so"); }

/* A fresh folder for a test's config and DAGs. */
static char *temp_dir(void)
{
    char *d = dup_or_die("/tmp/cowdag-modules-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

/* A config in dir/cowdag.json: `modules` is JSON text (an array), `dags`
 * too; the customer store of `records` records; `extra` more top-level
 * members ("" for none, else starting with a comma).  Its path. */
static char *write_config(const char *dir, const char *modules, const char *dags, int records, const char *extra)
{
    char *path = dup_printf("%s/cowdag.json", dir);
    char *text = dup_printf("{\"listen\": \"127.0.0.1:0\", \"workers\": 2, \"access_log\": false,\n"
                            " \"graceful_timeout_ms\": 60000, \"stats_interval_ms\": 100,\n"
                            " \"modules\": %s,\n"
                            " \"state\": [{\"name\": \"customers\", \"kind\": \"records\",\n"
                            "            \"generate\": {\"count\": %d, \"seed\": 42}}],\n"
                            " \"dags\": %s%s}\n",
                            modules, records, dags, extra);
    write_file(path, text);
    free(text);
    return path;
}

/* The example's DAGs, as an absolute glob. */
static char *example_dags(void)
{
    find_dirs();
    return dup_printf("[\"%s/examples/score/dags/*.json\"]", repo_dir);
}

static void write_dag(const char *dir, const char *name, const char *text)
{
    char *sub = dup_printf("%s/dags", dir);
    mkdir(sub, 0755);
    char *path = dup_printf("%s/%s.json", sub, name);
    write_file(path, text);
    free(path);
    free(sub);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Values computed here                                                 */
/* ====================================================================== */

/* The customer store's spend, as load/state.h spells the generator out. */
static double *spend_of(int records)
{
    double *v = malloc((size_t)records * LD_SPEND_LEN * sizeof *v);
    uint64_t x = 42;
    for (int i = 0; i < records * LD_SPEND_LEN; i++) {
        x = (1103515245u * x + 12345u) & 0x7fffffffu;
        v[i] = (double)(x % 100000) / 100.0;
    }
    return v;
}

static const double default_weights[LD_SPEND_LEN] = {0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1, 1, 1};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-th percentile as numpy's default method defines it: the value at
 * fractional index q/100 * (n-1) of the sorted values, linear between. */
static double percentile_here(const double *v, size_t n, double q)
{
    double *s = malloc(n * sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double h = q / 100.0 * (double)(n - 1);
    double lo = floor(h);
    double r = lo + 1 < (double)n ? s[(size_t)lo] + (h - lo) * (s[(size_t)lo + 1] - s[(size_t)lo]) : s[(size_t)lo];
    free(s);
    return r;
}

static void assert_close(double got, double want)
{
    if (!(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want))))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  In-process: a world with modules                                     */
/* ====================================================================== */

typedef struct loaded {
    char *dir;
    ld_config cfg;
    ld_world w;
} loaded;

static void load_world(loaded *L, const char *modules, const char *dags, int records)
{
    L->dir = temp_dir();
    char *path = write_config(L->dir, modules, dags, records, "");
    char err[1024];
    if (ld_config_load(path, &L->cfg, err, sizeof err) != LD_OK)
        fail_msg("%s", err);
    free(path);
    if (ld_world_load(&L->cfg, NULL, LD_STATE_ALL, &L->w, stderr) != LD_OK)
        fail_msg("the world did not load");
    gc_settle();
}

static void unload_world(loaded *L)
{
    ld_world_free(&L->w);
    ld_config_free(&L->cfg);
    rm_tree(L->dir);
    free(L->dir);
}

/* Runs `dag` of the world on a request (JSON text); DAG_OK or DAG_ERR. */
static int run_text(loaded *L, const char *dag, const char *request, const dag_run_opts *opts, dag_result *res,
                    dag_fail *f)
{
    const struct dag *d = ld_world_dag(&L->w, dag);
    assert_non_null(d);
    json_error_t je;
    json_t *req = json_loads(request, 0, &je);
    assert_non_null(req);
    dag_run_opts o = opts ? *opts : (dag_run_opts){0};
    o.state = L->w.state;
    int rc = dag_run(d, req, &o, res, f);
    json_decref(req);
    return rc;
}

static heap_obj *output(const loaded *L, const char *dag, const dag_result *res, const char *name)
{
    const struct dag *d = ld_world_dag(&L->w, dag);
    for (size_t k = 0; k < res->noutputs; k++)
        if (strcmp(d->nodes[res->outputs[k]].name, name) == 0)
            return res->values[k];
    fail_msg("no output %s", name);
    return NULL;
}

static void example_results_are_the_values_computed_here(void **state)
{
    (void)state;
    loaded L = {0};
    char *mod = score_module(), *mods = dup_printf("[\"%s\"]", mod), *dags = example_dags();
    const int records = 3000;
    load_world(&L, mods, dags, records);
    double *spend = spend_of(records);
    static const int64_t ids[] = {0, 1, 2, 7, 14, 77, 1234, 2999, 5, 5};
    const size_t n = sizeof ids / sizeof *ids;
    dag_result res;
    dag_fail f;
    int rc = run_text(&L, "score", "{\"inputs\": {\"ids\": [0, 1, 2, 7, 14, 77, 1234, 2999, 5, 5]},"
                                   " \"outputs\": [\"scores\", \"median\", \"p90\", \"tagged_t3\"]}",
                      NULL, &res, &f);
    if (rc != DAG_OK)
        fail_msg("%s: %s", f.code, f.message);
    heap_obj *scores = output(&L, "score", &res, "scores");
    assert_int_equal(heap_type_of(scores), HT_ARRAY);
    assert_int_equal(heap_array_len(scores), n);
    double want[16];
    int64_t tagged = 0;
    for (size_t k = 0; k < n; k++) {
        double s = 0;
        for (int j = 0; j < LD_SPEND_LEN; j++)
            s += default_weights[j] * spend[ids[k] * LD_SPEND_LEN + j];
        want[k] = s;
        assert_close(heap_array_f64(scores)[k], s);
        tagged += ids[k] % 7 == 3 || ids[k] % 11 == 3;
    }
    assert_close(heap_float_value(output(&L, "score", &res, "median")), percentile_here(want, n, 50));
    assert_close(heap_float_value(output(&L, "score", &res, "p90")), percentile_here(want, n, 90));
    assert_int_equal(heap_int_value(output(&L, "score", &res, "tagged_t3")), tagged);
    dag_result_free(&res);

    /* Weights given, and percentiles of a list numpy answers for: [1, 2, 3, 4] at 90 is 3.7 (3 + 0.7). */
    rc = run_text(&L, "score", "{\"inputs\": {\"ids\": [3], \"weights\": [1,0,0,0,0,0,0,0,0,0,0,2]},"
                               " \"outputs\": [\"scores\"]}",
                  NULL, &res, &f);
    assert_int_equal(rc, DAG_OK);
    assert_close(heap_array_f64(output(&L, "score", &res, "scores"))[0],
                 spend[3 * LD_SPEND_LEN] + 2 * spend[3 * LD_SPEND_LEN + 11]);
    dag_result_free(&res);
    rc = run_text(&L, "score", "{\"overrides\": {\"scores\": [4, 1, 3, 2]}, \"outputs\": [\"p90\", \"median\"]}", NULL,
                  &res, &f);
    assert_int_equal(rc, DAG_OK);
    assert_close(heap_float_value(output(&L, "score", &res, "p90")), 3.7);
    assert_close(heap_float_value(output(&L, "score", &res, "median")), 2.5);
    dag_result_free(&res);
    free(spend);
    unload_world(&L);
    free(mod);
    free(mods);
    free(dags);
}

/* One failing request: its code, node and a piece of its message. */
static void expect_fail(loaded *L, const char *dag, const char *request, const dag_run_opts *opts, const char *code,
                        const char *node, const char *msg)
{
    dag_result res;
    dag_fail f = {0};
    uint64_t before = heap_live_bytes();
    if (run_text(L, dag, request, opts, &res, &f) == DAG_OK)
        fail_msg("%s succeeded", request);
    print_message("%s -> %s at %s: %s\n", request, f.code, f.node, f.message);
    assert_string_equal(f.code, code);
    assert_string_equal(f.node, node);
    if (!strstr(f.message, msg))
        fail_msg("message \"%s\" lacks \"%s\"", f.message, msg);
    assert_true(heap_live_bytes() <= before); /* the failed run holds nothing */
}

static void example_errors_are_422_naming_the_node(void **state)
{
    (void)state;
    loaded L = {0};
    char *mod = score_module(), *mods = dup_printf("[\"%s\"]", mod), *dags = example_dags();
    load_world(&L, mods, dags, 100);
    expect_fail(&L, "score", "{\"inputs\": {\"ids\": [1, 2], \"weights\": [1, 2, 3]}}", NULL, "op_error", "scores",
                "weighted_score: record 0: 'spend' has 12 values for 3 weights");
    expect_fail(&L, "score", "{\"overrides\": {\"records\": [{\"spend\": [1]}, {\"x\": 1}]},"
                             " \"inputs\": {\"weights\": [2]}, \"outputs\": [\"scores\"]}",
                NULL, "op_error", "scores", "record 1 has no field 'spend'");
    expect_fail(&L, "score", "{\"overrides\": {\"records\": [{\"spend\": [\"a\"]}]}, \"inputs\": {\"weights\": [2]},"
                             " \"outputs\": [\"scores\"]}",
                NULL, "type_error", "scores", "record 0: 'spend' item 0 must be a number, got str");
    expect_fail(&L, "score", "{\"overrides\": {\"records\": \"nope\"}, \"outputs\": [\"scores\"]}", NULL, "type_error",
                "scores", "weighted_score: arg 'records' must be records, got str");
    expect_fail(&L, "score", "{\"overrides\": {\"scores\": []}, \"outputs\": [\"p90\"]}", NULL, "op_error", "p90",
                "percentile: the percentile of nothing");
    expect_fail(&L, "score", "{\"overrides\": {\"records\": [{\"tags\": 3}]}, \"outputs\": [\"tagged_t3\"]}", NULL,
                "type_error", "tagged_t3", "record 0: 'tags' must be a list of str, got int");
    unload_world(&L);
    free(mod);
    free(mods);
    free(dags);
}

static const char testops_dags[] =
    "{\"name\": \"t\", \"nodes\": {\"spin\": {\"op\": \"spin\"}, \"hog\": {\"op\": \"hog\"},"
    " \"liar\": {\"op\": \"liar\"}, \"version\": {\"op\": \"version\"}, \"same\": {\"op\": \"same\", \"args\": [[1, 2]]},"
    " \"boom\": {\"op\": \"crash\"}}}";

static void a_module_loop_ends_at_the_deadline_and_the_budget(void **state)
{
    (void)state;
    loaded L = {0};
    char *t = module_path("tests/modules/libtestops.so"), *s = score_module();
    char *mods = dup_printf("[\"%s\", \"%s\"]", t, s);
    char *dir = temp_dir();
    write_dag(dir, "t", testops_dags);
    char *dags = dup_printf("[\"%s/dags/*.json\", \"%s/examples/score/dags/*.json\"]", dir, repo_dir);
    load_world(&L, mods, dags, 20000);

    /* spin never ends but through the deadline; hog never ends but through the budget */
    dag_run_opts o = {.deadline_ns = base_now_ns() + 50 * 1000000ull};
    expect_fail(&L, "t", "{\"outputs\": [\"spin\"]}", &o, "limit_exceeded", "spin",
                "spin: the run exceeded its time limit (timeout_ms)");
    o = (dag_run_opts){.max_bytes = 8u << 20};
    expect_fail(&L, "t", "{\"outputs\": [\"hog\"]}", &o, "limit_exceeded", "hog", "(max_run_bytes)");
    /* the example's loop: its first check is at its first record (the op
     * runs first here: its arguments are given, nothing runs before it) */
    expect_fail(&L, "score", "{\"overrides\": {\"records\": [1]}, \"outputs\": [\"scores\"]}", NULL, "type_error",
                "scores", "weighted_score: record 0 is int, not a record");
    static const char three[] = "{\"overrides\": {\"records\": [{\"spend\": [1]}, {\"spend\": [2]}, {\"spend\": [3]}],"
                                " \"weights\": [2]}, \"outputs\": [\"scores\"]}";
    o = (dag_run_opts){.deadline_ns = 1};
    expect_fail(&L, "score", three, &o, "limit_exceeded", "scores", "weighted_score: the run exceeded its time limit");
    /* results past the run's element limit fail before they are made */
    o = (dag_run_opts){.max_elems = 2};
    expect_fail(&L, "score", three, &o, "limit_exceeded", "scores",
                "weighted_score: a result of 3 elements exceeds the limit of 2");
    dag_result res0;
    dag_fail f0;
    assert_int_equal(run_text(&L, "score", three, NULL, &res0, &f0), DAG_OK);
    assert_close(heap_array_f64(output(&L, "score", &res0, "scores"))[2], 6.0);
    dag_result_free(&res0);
    /* a result of another type than declared; an argument returned with a reference of its own */
    expect_fail(&L, "t", "{\"outputs\": [\"liar\"]}", NULL, "op_error", "liar", "liar: returned str, declared float");
    dag_result res;
    dag_fail f;
    assert_int_equal(run_text(&L, "t", "{\"outputs\": [\"same\", \"version\"]}", NULL, &res, &f), DAG_OK);
    assert_int_equal(heap_list_len(output(&L, "t", &res, "same")), 2);
    assert_int_equal(heap_int_value(output(&L, "t", &res, "version")), 1);
    dag_result_free(&res);
    unload_world(&L);
    rm_tree(dir);
    free(dir);
    free(t);
    free(s);
    free(mods);
    free(dags);
}

/* The problems ld_world_load prints for `modules` (JSON text). */
static char *load_problems(const char *modules)
{
    char *dir = temp_dir();
    char *path = write_config(dir, modules, "[]", 10, "");
    ld_config cfg;
    char err[1024];
    char *text = NULL;
    if (ld_config_load(path, &cfg, err, sizeof err) != LD_OK) {
        text = dup_or_die(err);
    } else {
        size_t len;
        FILE *out = open_memstream(&text, &len);
        ld_world w;
        assert_int_equal(ld_world_load(&cfg, NULL, LD_STATE_ALL, &w, out), LD_ERR);
        fclose(out);
        ld_config_free(&cfg);
    }
    rm_tree(dir);
    free(dir);
    free(path);
    print_message("%s -> %s\n", modules, text);
    return text;
}

static void expect_problem(const char *mods_fmt, const char *a, const char *b, const char *want1, const char *want2)
{
    char *mods = dup_printf(mods_fmt, a, b);
    char *text = load_problems(mods);
    if (!strstr(text, want1) || (want2 && !strstr(text, want2)))
        fail_msg("\"%s\" lacks \"%s\" or \"%s\"", text, want1, want2 ? want2 : "");
    free(text);
    free(mods);
}

static void loader_errors_name_the_file_and_the_symbol(void **state)
{
    (void)state;
    char *score = score_module(), *p;
    expect_problem("[\"%s%s\"]", "/nonexistent/", "libscore.so", "modules[0]: no such file: /nonexistent/libscore.so",
                   NULL);
    p = module_path("tests/modules/libbadversion.so");
    expect_problem("[\"%s\"%s]", p, "", p, ": cowdag_module_api_version is 2, this cowdag speaks 1");
    free(p);
    p = module_path("tests/modules/libnoinit.so");
    expect_problem("[\"%s\"%s]", p, "", p, ": no symbol cowdag_module_init");
    free(p);
    p = module_path("tests/modules/libnoversion.so");
    expect_problem("[\"%s\"%s]", p, "", p, ": no symbol cowdag_module_api_version");
    free(p);
    p = module_path("tests/modules/libundefined.so");
    expect_problem("[\"%s\"%s]", p, "", p, "undefined symbol: cowdag_not_in_the_api");
    free(p);
    p = module_path("tests/modules/libtwice.so");
    expect_problem("[\"%s\"%s]", p, "", p,
                   ": cowdag_module_init: op 'again' is registered twice: libtwice.so has it already");
    free(p);
    p = module_path("tests/modules/libclash.so");
    expect_problem("[\"%s\"%s]", p, "", p,
                   ": cowdag_module_init: op 'sum' is registered twice: cowdag (a built-in op) has it already");
    free(p);
    expect_problem("[\"%s\", \"%s\"]", score, score, score,
                   ": cowdag_module_init: op 'weighted_score' is registered twice: libscore.so has it already");
    free(score);
}

static void ops_belong_to_the_generation_that_loaded_them(void **state)
{
    (void)state;
    /* without the module, its ops are unknown; a second world loads its own copy */
    char *dir = temp_dir(), *dags = example_dags();
    char *path = write_config(dir, "[]", dags, 10, "");
    ld_config cfg;
    char err[1024], *text = NULL;
    size_t len;
    assert_int_equal(ld_config_load(path, &cfg, err, sizeof err), LD_OK);
    FILE *out = open_memstream(&text, &len);
    ld_world w;
    assert_int_equal(ld_world_load(&cfg, NULL, LD_STATE_ALL, &w, out), LD_ERR);
    fclose(out);
    assert_non_null(strstr(text, "node 'scores': unknown op 'weighted_score'"));
    free(text);
    ld_config_free(&cfg);

    loaded a = {0}, b = {0};
    char *mod = score_module(), *mods = dup_printf("[\"%s\"]", mod);
    load_world(&a, mods, dags, 10);
    load_world(&b, mods, dags, 10);
    const dag_op *oa = ld_world_dag(&a.w, "score")->nodes[dag_find(ld_world_dag(&a.w, "score"), "scores")].op;
    const dag_op *ob = ld_world_dag(&b.w, "score")->nodes[dag_find(ld_world_dag(&b.w, "score"), "scores")].op;
    assert_ptr_not_equal(oa, ob); /* each generation its own op */
    assert_ptr_not_equal(a.w.modules.v[0].handle, b.w.modules.v[0].handle); /* two loads of one file */
    assert_null(dag_op_find("weighted_score")); /* outside a load, only the built-ins */
    unload_world(&a);
    unload_world(&b);
    rm_tree(dir);
    free(dir);
    free(path);
    free(dags);
    free(mod);
    free(mods);
}

static void the_header_stands_alone_and_the_binary_exports_every_call(void **state)
{
    (void)state;
    char *out;
    /* only the C standard headers, strict C11 */
    int rc = run_cmd("cc -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/cowdag_module.h", &out);
    if (rc != 0)
        fail_msg("the header does not compile alone: %s", out);
    free(out);
    size_t len;
    char *h = slurp("include/cowdag_module.h", &len);
    assert_non_null(h);
    int calls = 0;
    for (char *p = h; (p = strstr(p, "#include")); p++)
        assert_true(strncmp(p, "#include <std", 13) == 0);
    /* every function it declares resolves in this binary, linked as cowdag is */
    for (char *p = h; (p = strstr(p, "cowdag_")); p++) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (p[n] != '(' || (p > h && p[-1] != ' ' && p[-1] != '*'))
            continue;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (strcmp(name, "cowdag_module_init") == 0)
            continue;
        if (!dlsym(RTLD_DEFAULT, name))
            fail_msg("%s is declared but not exported", name);
        calls++;
    }
    print_message("%d calls exported\n", calls);
    assert_true(calls >= 40);
    assert_null(dlsym(RTLD_DEFAULT, "heap_list_new"));
    assert_null(dlsym(RTLD_DEFAULT, "dag_op_find")); /* the API's and nothing else */
    free(h);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Commands                                                             */
/* ====================================================================== */

static void check_run_and_ops_load_the_modules(void **state)
{
    (void)state;
    char *dir = temp_dir(), *mod = score_module(), *mods = dup_printf("[\"%s\"]", mod), *dags = example_dags();
    char *cfg = write_config(dir, mods, dags, 200, ""), *out, *cmd;

    cmd = dup_printf("%s check -c %s", cowdag_bin(), cfg);
    assert_int_equal(run_cmd(cmd, &out), 0);
    assert_non_null(strstr(out, "dag   score"));
    assert_non_null(strstr(out, "module libscore.so     3 ops  (")); /* as "dag   " lines are laid out */
    free(out);
    free(cmd);

    cmd = dup_printf("%s run -c %s score --inputs '{\"ids\": [3]}' --outputs scores,tagged_t3", cowdag_bin(), cfg);
    assert_int_equal(run_cmd(cmd, &out), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    double *spend = spend_of(4), want = 0;
    for (int j = 0; j < LD_SPEND_LEN; j++)
        want += default_weights[j] * spend[3 * LD_SPEND_LEN + j];
    json_t *outputs = json_object_get(doc, "outputs");
    assert_close(json_real_value(json_array_get(json_object_get(outputs, "scores"), 0)), want);
    assert_int_equal(json_integer_value(json_object_get(outputs, "tagged_t3")), 1); /* 3 % 7 == 3 */
    json_decref(doc);
    free(spend);
    free(out);
    free(cmd);

    cmd = dup_printf("%s run -c %s score --inputs '{\"ids\": [3], \"weights\": [1]}'", cowdag_bin(), cfg);
    assert_int_equal(run_cmd(cmd, &out), 1);
    assert_non_null(strstr(out, "\"op_error\""));
    assert_non_null(strstr(out, "\"node\":\"scores\""));
    free(out);
    free(cmd);

    cmd = dup_printf("%s ops -c %s", cowdag_bin(), cfg);
    assert_int_equal(run_cmd(cmd, &out), 0);
    assert_true(strncmp(out, "add (2 args)", 12) == 0);
    assert_non_null(strstr(out, "weighted_score (2 args); params: field? [module libscore.so]"));
    assert_non_null(strstr(out, "percentile (1 args); params: q [module libscore.so]"));
    assert_non_null(strstr(out, "count_tagged (1 args); params: tag, field? [module libscore.so]"));
    assert_true(strstr(out, "add (2 args)") < strstr(out, "weighted_score")); /* after the built-ins */
    free(out);
    free(cmd);
    cmd = dup_printf("%s ops", cowdag_bin());
    assert_int_equal(run_cmd(cmd, &out), 0);
    assert_null(strstr(out, "weighted_score"));
    free(out);
    free(cmd);

    /* a module that does not load fails check and ops, naming it */
    char *bad = module_path("tests/modules/libnoinit.so"), *badmods = dup_printf("[\"%s\"]", bad);
    free(cfg);
    cfg = write_config(dir, badmods, "[]", 10, "");
    cmd = dup_printf("%s check -c %s", cowdag_bin(), cfg);
    assert_int_equal(run_cmd(cmd, &out), 1);
    assert_non_null(strstr(out, "libnoinit.so: no symbol cowdag_module_init"));
    free(out);
    free(cmd);
    cmd = dup_printf("%s ops -c %s", cowdag_bin(), cfg);
    assert_int_equal(run_cmd(cmd, &out), 1);
    assert_non_null(strstr(out, "libnoinit.so: no symbol cowdag_module_init"));
    free(out);
    free(cmd);
    free(bad);
    free(badmods);
    rm_tree(dir);
    free(dir);
    free(cfg);
    free(mod);
    free(mods);
    free(dags);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The server                                                           */
/* ====================================================================== */

static char *srv_dir;

static int srv_teardown(void **state)
{
    standalone_teardown(state);
    if (srv_dir) {
        rm_tree(srv_dir);
        free(srv_dir);
        srv_dir = NULL;
    }
    return 0;
}
#define SERVER_TEST(f) cmocka_unit_test_setup_teardown(f, standalone_setup, srv_teardown)

/* A server on the example module and the test ops (`modules` path of the
 * test ops given; NULL: the build's). */
static void start_with_modules(const char *testops, const char *extra)
{
    srv_dir = temp_dir();
    char *t = testops ? dup_or_die(testops) : module_path("tests/modules/libtestops.so"), *s = score_module();
    char *mods = dup_printf("[\"%s\", \"%s\"]", t, s);
    write_dag(srv_dir, "t", testops_dags);
    char *dags = dup_printf("[\"%s/dags/*.json\", \"%s/examples/score/dags/*.json\"]", srv_dir, repo_dir);
    char *cfg = write_config(srv_dir, mods, dags, 20000, extra);
    server_start(&T.srv, cfg, 2);
    free(t);
    free(s);
    free(mods);
    free(dags);
    free(cfg);
}

static void the_server_answers_module_ops_and_their_errors(void **state)
{
    (void)state;
    start_with_modules(NULL, ", \"timeout_ms\": 300");
    reply r;
    assert_int_equal(run_dag(T.srv.port, "score", "{\"inputs\": {\"ids\": [0, 19999]}, \"outputs\": [\"scores\"]}", &r),
                     0);
    expect_status(&r, 200);
    double *spend = spend_of(20000);
    json_t *scores = json_object_get(json_object_get(r.json, "outputs"), "scores");
    for (int k = 0; k < 2; k++) {
        int id = k ? 19999 : 0;
        double want = 0;
        for (int j = 0; j < LD_SPEND_LEN; j++)
            want += default_weights[j] * spend[id * LD_SPEND_LEN + j];
        assert_close(json_real_value(json_array_get(scores, (size_t)k)), want);
    }
    free(spend);
    reply_free(&r);
    assert_int_equal(run_dag(T.srv.port, "score", "{\"inputs\": {\"ids\": [1], \"weights\": [1, 2]}}", &r), 0);
    expect_error(&r, 422, "op_error");
    assert_string_equal(error_node(&r), "scores");
    reply_free(&r);
    /* a loop that only the deadline ends: 422 within timeout_ms, the worker serving on */
    assert_int_equal(run_dag(T.srv.port, "t", "{\"outputs\": [\"spin\"]}", &r), 0);
    expect_error(&r, 422, "limit_exceeded");
    assert_string_equal(error_node(&r), "spin");
    reply_free(&r);
    assert_int_equal(run_dag(T.srv.port, "t", "{\"outputs\": [\"version\"]}", &r), 0);
    expect_status(&r, 200);
    assert_int_equal(run_output_int(&r, "version"), 1);
    reply_free(&r);
    assert_false(log_has(&T.srv, "killed by signal"));
    T.passed = true;
}

static void a_crashing_module_op_takes_one_worker_down_and_it_is_respawned(void **state)
{
    (void)state;
    start_with_modules(NULL, "");
    pid_t before[MAX_PIDS], after[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, before), 2);
    reply r;
    run_dag(T.srv.port, "t", "{\"outputs\": [\"boom\"]}", &r); /* no answer: the worker is gone */
    assert_int_not_equal(r.status, 200);
    reply_free(&r);
    uint64_t deadline = now_ms() + HANG_MS;
    int gone = -1;
    while (gone < 0 && now_ms() < deadline) {
        for (int i = 0; i < 2; i++) {
            pid_t ppid;
            char st = proc_state(before[i], &ppid);
            if (st == '\0' || st == 'Z')
                gone = i;
        }
        if (gone < 0)
            sleep_ms(5);
    }
    assert_true(gone >= 0);
    assert_true(wait_log(&T.srv, "respawning", HANG_MS));
    /* respawned: two workers again, the other one the same process */
    deadline = now_ms() + HANG_MS;
    int n;
    while ((n = workers_of(&T.srv, after)) != 2 || pid_in(before[gone], after, n)) {
        assert_true(now_ms() < deadline);
        sleep_ms(5);
    }
    assert_true(pid_in(before[1 - gone], after, 2));
    for (int q = 0; q < 4; q++) {
        assert_int_equal(run_dag(T.srv.port, "t", "{\"outputs\": [\"version\"]}", &r), 0);
        expect_status(&r, 200);
        reply_free(&r);
    }
    T.passed = true;
}

/* How many distinct loads of module `name` the process maps (each load
 * is a memfd of its own: inode after inode). */
static int loads_mapped(pid_t pid, const char *name)
{
    char path[64], line[1024], inodes[16][32];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *needle = dup_printf("cowdag-module:%s", name);
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, needle))
            continue;
        char inode[32];
        if (sscanf(line, "%*s %*s %*s %*s %31s", inode) != 1)
            continue;
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen |= strcmp(inodes[k], inode) == 0;
        if (!seen && n < 16)
            snprintf(inodes[n++], sizeof inodes[0], "%s", inode);
    }
    fclose(f);
    free(needle);
    return n;
}

static void a_reload_loads_modules_afresh_and_closes_the_old_after_its_workers(void **state)
{
    (void)state;
    char *dir = temp_dir(), *mod = dup_printf("%s/libmine.so", dir);
    char *v1 = module_path("tests/modules/libtestops.so"), *v2 = module_path("tests/modules/libtestops2.so");
    copy_file(v1, mod);
    start_with_modules(mod, "");
    pid_t old[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, old), 2);
    reply r;
    assert_int_equal(run_dag(T.srv.port, "t", "{\"outputs\": [\"version\"]}", &r), 0);
    assert_int_equal(run_output_int(&r, "version"), 1);
    reply_free(&r);
    assert_int_equal(loads_mapped(T.srv.pid, "libmine.so"), 1);

    /* the module rebuilt in place; one old worker held (stopped) so the old generation stays */
    char *tmp = dup_printf("%s/libmine.so.new", dir);
    copy_file(v2, tmp);
    assert_int_equal(rename(tmp, mod), 0);
    stop_process(old[0]);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    for (int q = 0; q < 4; q++) {
        assert_int_equal(run_dag(T.srv.port, "t", "{\"outputs\": [\"version\"]}", &r), 0);
        expect_status(&r, 200);
        assert_int_equal(run_output_int(&r, "version"), 2); /* the rebuilt code */
        reply_free(&r);
    }
    assert_int_equal(loads_mapped(T.srv.pid, "libmine.so"), 2); /* the old load waits for its worker */
    assert_false(log_has(&T.srv, "generation 1 released"));
    assert_int_equal(kill(old[0], SIGCONT), 0);
    assert_true(wait_log(&T.srv, "generation 1 released, its 2 modules closed", HANG_MS));
    assert_int_equal(loads_mapped(T.srv.pid, "libmine.so"), 1);
    assert_int_equal(loads_mapped(T.srv.pid, "libscore.so"), 1);

    /* a module that no longer loads: the reload fails, naming it, and generation 2 serves on */
    char *broken = module_path("tests/modules/libnoinit.so");
    copy_file(broken, tmp);
    assert_int_equal(rename(tmp, mod), 0);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "reload failed; generation 2 goes on serving", HANG_MS));
    assert_true(log_has(&T.srv, "libmine.so: no symbol cowdag_module_init"));
    assert_int_equal(run_dag(T.srv.port, "t", "{\"outputs\": [\"version\"]}", &r), 0);
    assert_int_equal(run_output_int(&r, "version"), 2);
    reply_free(&r);
    assert_int_equal(loads_mapped(T.srv.pid, "libmine.so"), 1);
    free(broken);
    rm_tree(dir);
    free(dir);
    free(mod);
    free(tmp);
    free(v1);
    free(v2);
    T.passed = true;
}

static void module_ops_keep_freeze_immortal_state_shared(void **state)
{
    (void)state;
    start_with_modules(NULL, ", \"admin\": true, \"gc\": {\"mode\": \"freeze\", \"immortal\": true}");
    pid_t pids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, pids), 2);
    run_dag_random_ids(T.srv.port, "score", 2000);
    double worst = check_against_smaps(&T.srv);
    print_message("the worst worker's private share of the state: %.4f%%\n", 100 * worst);
    assert_true(worst <= 0.01);
    T.passed = true;
}

/* }====================================================================== */

int main(void)
{
    find_dirs();
    const struct CMUnitTest in_process[] = {
        cmocka_unit_test(the_header_stands_alone_and_the_binary_exports_every_call),
        cmocka_unit_test_setup_teardown(example_results_are_the_values_computed_here, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(example_errors_are_422_naming_the_node, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(a_module_loop_ends_at_the_deadline_and_the_budget, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(loader_errors_name_the_file_and_the_symbol, setup_heap, teardown_heap),
        cmocka_unit_test_setup_teardown(ops_belong_to_the_generation_that_loaded_them, setup_heap, teardown_heap),
    };
    const struct CMUnitTest commands[] = {
        cmocka_unit_test(check_run_and_ops_load_the_modules),
    };
    const struct CMUnitTest server_tests[] = {
        SERVER_TEST(the_server_answers_module_ops_and_their_errors),
        SERVER_TEST(a_crashing_module_op_takes_one_worker_down_and_it_is_respawned),
        SERVER_TEST(a_reload_loads_modules_afresh_and_closes_the_old_after_its_workers),
        SERVER_TEST(module_ops_keep_freeze_immortal_state_shared),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("modules in process", in_process, NULL, NULL);
    failed += cmocka_run_group_tests_name("modules through the commands", commands, NULL, NULL);
    failed += cmocka_run_group_tests_name("modules in the server", server_tests, NULL, NULL);
    return failed ? 1 : 0;
}
