/* test_run: runs `cowdag run` as a user would and checks what it prints: the
 * route's JSON body on stdout (exit 0), or one error JSON document on stderr
 * (exit 1) for every request error the command line can cause, under the
 * config's limits (timeout_ms from the start of the run, max_run_bytes).
 * DAGs: config/dags/marketing.json (inputs config/inputs/marketing.json),
 * tests/fixtures/server/dags/slow.json and tests/fixtures/run/dags/.
 * Binary: $COWDAG, default build/cowdag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/clock.h"
#include "tests/support.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Paths are relative to the repository root, where the tests run. */
#define MARKETING_INPUTS "config/inputs/marketing.json"
#define SLOW_DAG "tests/fixtures/server/dags/slow.json"
#define RUN_FIXTURES "tests/fixtures/run"
#define RUN_CONFIG RUN_FIXTURES "/cowdag.json"
#define CUSTOMERS_DAG RUN_FIXTURES "/dags/customers.json"

/* The usage line `cowdag run` prints for --help. */
#define USAGE_LINE "usage: cowdag run [-c FILE] DAG [--inputs JSON|@FILE] [--overrides JSON|@FILE] [--outputs A,B]"

/* How much of cowdag's output a failure message quotes. */
#define QUOTE_MAX 4000

/* The generated store of tests/fixtures/run/cowdag.json and of the config
 * test_timeout_excludes_loading writes: big enough that loading it takes
 * far longer than that config's timeout_ms. */
#define CUSTOMERS 200000
#define CUSTOMERS_SEED 42
#define LOAD_TIMEOUT_MS 50

static char workdir[] = "/tmp/cowdag-test-run-XXXXXX";
static bool have_workdir;
static char *stderr_path, *pid_path;

/* ---- small helpers ------------------------------------------------------- */


static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The absolute path of a repository file (temporary configs live in
 * workdir, so they name repository files absolutely). */
static char *abs_path(const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        fail_msg("%s: cannot resolve the path (run the test from the repository root)", path);
    return dup_or_die(real);
}

/* Writes workdir/name holding a config that loads only the DAG file `dag`
 * (a repository path), with `extra` (members, each followed by a comma)
 * first.  Returns the config's path. */
static char *temp_config(const char *name, const char *extra, const char *dag)
{
    char *real = abs_path(dag);
    json_t *s = json_string(real); /* the path, quoted as JSON */
    assert_non_null(s);
    char *quoted = json_dumps(s, JSON_ENCODE_ANY);
    assert_non_null(quoted);
    char *path = dup_printf("%s/%s", workdir, name);
    char *text = dup_printf("{ %s \"dags\": [%s] }\n", extra, quoted);
    write_text(path, text);
    free(text);
    free(quoted);
    json_decref(s);
    free(real);
    return path;
}

/* ---- running cowdag run ---------------------------------------------------- */

typedef struct {
    char *out;  /* stdout */
    char *err;  /* stderr */
    int status; /* from pclose */
    long pid;   /* cowdag's process id */
    char *cmd;  /* the command line, for messages */
} run_result;

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
    free(r->cmd);
    *r = (run_result){0};
}

/* Runs cowdag with the NULL-terminated arguments, stdout through the pipe,
 * stderr into a file of workdir.  The shell writes its pid and then execs
 * cowdag, so the pid is cowdag's and a crash shows in the status as a
 * signal. */
static run_result run_cowdag(const char *arg, ...)
{
    const char *bin = cowdag_bin();
    if (access(bin, X_OK) != 0)
        fail_msg("%s is not an executable: build it (make build/cowdag) or set COWDAG", bin);
    char *qbin = sh_quote(bin), *qerr = sh_quote(stderr_path), *qpid = sh_quote(pid_path);
    char *args = dup_or_die(""), *shown = dup_or_die("cowdag");
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a; a = va_arg(ap, const char *)) {
        char *q = sh_quote(a);
        char *more = dup_printf("%s %s", args, q), *more_shown = dup_printf("%s %s", shown, q);
        free(args);
        free(shown);
        free(q);
        args = more;
        shown = more_shown;
    }
    va_end(ap);
    char *cmd = dup_printf("echo $$ >%s && exec %s%s 2>%s", qpid, qbin, args, qerr);
    free(qbin);
    free(qerr);
    free(qpid);
    free(args);
    unlink(stderr_path);
    unlink(pid_path);

    fflush(NULL);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);
    run_result r = {.cmd = shown};
    size_t len;
    r.out = slurp_stream(p, &len);
    if (strlen(r.out) != len)
        fail_msg("%s: stdout holds a NUL byte", r.cmd);
    r.status = pclose(p);
    r.err = slurp(stderr_path, NULL);
    if (!r.err)
        fail_msg("%s: no stderr file (did the shell start?)", r.cmd);
    char *pid = slurp(pid_path, NULL);
    r.pid = pid ? strtol(pid, NULL, 10) : -1;
    free(pid);
    return r;
}

/* Fails unless cowdag exited normally (no signal) with `want`. */
static void assert_exit(const run_result *r, int want)
{
    if (WIFSIGNALED(r->status))
        fail_msg("%s: cowdag was killed by signal %d (%s); stderr:\n%.*s", r->cmd, WTERMSIG(r->status),
                 strsignal(WTERMSIG(r->status)), QUOTE_MAX, r->err);
    if (!WIFEXITED(r->status))
        fail_msg("%s: cowdag did not exit normally (wait status %#x)", r->cmd, (unsigned)r->status);
    if (WEXITSTATUS(r->status) != want)
        fail_msg("%s: cowdag exited with %d, expected %d; stdout:\n%.*s\nstderr:\n%.*s", r->cmd, WEXITSTATUS(r->status),
                 want, QUOTE_MAX, r->out, QUOTE_MAX, r->err);
}

static json_int_t int_member(const run_result *r, const json_t *obj, const char *where, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("%s: %s.%s is missing or not an integer; stdout:\n%.*s", r->cmd, where, key, QUOTE_MAX, r->out);
    return json_integer_value(v);
}

/* A successful run: exit 0, nothing on stderr, and stdout one JSON document
 * {"dag": dag_name, "outputs": {...}, "stats": {nodes_executed, elapsed_us,
 * peak_bytes, worker, pid}} with nothing else in it, the pid cowdag's own.
 * Returns the document; *outputs gets its outputs (borrowed). */
static json_t *expect_success(const run_result *r, const char *dag_name, json_t **outputs)
{
    assert_exit(r, 0);
    if (r->err[0])
        fail_msg("%s: a successful run wrote to stderr:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    json_error_t jerr;
    json_t *doc = json_loads(r->out, 0, &jerr);
    if (!doc)
        fail_msg("%s: stdout is not one JSON document (%s, line %d column %d):\n%.*s", r->cmd, jerr.text, jerr.line,
                 jerr.column, QUOTE_MAX, r->out);
    if (!json_is_object(doc) || json_object_size(doc) != 3)
        fail_msg("%s: stdout must be an object of exactly dag, outputs and stats:\n%.*s", r->cmd, QUOTE_MAX, r->out);
    const char *name = json_string_value(json_object_get(doc, "dag"));
    if (!name || strcmp(name, dag_name) != 0)
        fail_msg("%s: \"dag\" must be \"%s\":\n%.*s", r->cmd, dag_name, QUOTE_MAX, r->out);
    *outputs = json_object_get(doc, "outputs");
    if (!json_is_object(*outputs))
        fail_msg("%s: \"outputs\" must be an object:\n%.*s", r->cmd, QUOTE_MAX, r->out);
    json_t *stats = json_object_get(doc, "stats");
    if (!json_is_object(stats) || json_object_size(stats) != 5)
        fail_msg("%s: \"stats\" must be an object of exactly five members:\n%.*s", r->cmd, QUOTE_MAX, r->out);
    if (int_member(r, stats, "stats", "nodes_executed") < 0 || int_member(r, stats, "stats", "elapsed_us") < 0 ||
        int_member(r, stats, "stats", "peak_bytes") < 0 || int_member(r, stats, "stats", "worker") < 0)
        fail_msg("%s: a stats counter is negative:\n%.*s", r->cmd, QUOTE_MAX, r->out);
    json_int_t pid = int_member(r, stats, "stats", "pid");
    if (r->pid <= 0 || pid != r->pid)
        fail_msg("%s: stats.pid is %lld, but cowdag ran as pid %ld", r->cmd, (long long)pid, r->pid);
    return doc;
}

static json_int_t nodes_executed(const run_result *r, const json_t *doc)
{
    return int_member(r, json_object_get(doc, "stats"), "stats", "nodes_executed");
}

/* A request error: exit 1, nothing on stdout, and stderr exactly one JSON
 * document {"error": {"code": code, "message": M, "node"?: N}}.  node: NULL
 * not checked, "" must be absent, else its value.  Returns the message. */
static char *expect_error_result(const run_result *r, const char *code, const char *node)
{
    assert_exit(r, 1);
    if (r->out[0])
        fail_msg("%s: a failed run wrote to stdout:\n%.*s", r->cmd, QUOTE_MAX, r->out);
    json_error_t jerr;
    json_t *doc = json_loads(r->err, 0, &jerr);
    if (!doc)
        fail_msg("%s: stderr is not one JSON document (%s):\n%.*s", r->cmd, jerr.text, QUOTE_MAX, r->err);
    json_t *e = json_object_get(doc, "error");
    if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_object(e))
        fail_msg("%s: stderr must be {\"error\": {...}} and nothing else:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    const char *got = json_string_value(json_object_get(e, "code"));
    if (!got || strcmp(got, code) != 0)
        fail_msg("%s: error.code must be \"%s\":\n%.*s", r->cmd, code, QUOTE_MAX, r->err);
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!msg || !msg[0])
        fail_msg("%s: error.message must be a non-empty string:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    json_t *n = json_object_get(e, "node");
    if (json_object_size(e) != (n ? 3u : 2u))
        fail_msg("%s: error may hold only code, message and node:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    if (n && !json_is_string(n))
        fail_msg("%s: error.node must be a string:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    if (node && !node[0] && n)
        fail_msg("%s: error.node was not expected:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    if (node && node[0] && (!n || strcmp(json_string_value(n), node) != 0))
        fail_msg("%s: error.node must be \"%s\":\n%.*s", r->cmd, node, QUOTE_MAX, r->err);
    char *m = dup_or_die(msg);
    json_decref(doc);
    return m;
}

static void expect_error(const run_result *r, const char *code, const char *node)
{
    free(expect_error_result(r, code, node));
}

/* The raw text of the value of top-level member `key` in a JSON object text
 * (found by parsing, not by layout); *len gets its length. */
static const char *raw_member(const run_result *r, const char *key, size_t *len)
{
    char *pat = dup_printf("\"%s\"", key);
    const char *p = strstr(r->out, pat);
    if (!p)
        fail_msg("%s: no \"%s\" in stdout:\n%.*s", r->cmd, key, QUOTE_MAX, r->out);
    p += strlen(pat);
    free(pat);
    p += strspn(p, " \t\r\n");
    if (*p != ':')
        fail_msg("%s: \"%s\" is not followed by a colon", r->cmd, key);
    p++;
    p += strspn(p, " \t\r\n");
    json_error_t jerr;
    json_t *v = json_loads(p, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("%s: the value of \"%s\" does not parse: %s", r->cmd, key, jerr.text);
    json_decref(v);
    *len = (size_t)jerr.position;
    return p;
}

/* ---- the marketing inputs ------------------------------------------------- */

/* config/inputs/marketing.json, parsed. */
static json_t *marketing_inputs(void)
{
    json_error_t jerr;
    json_t *in = json_load_file(MARKETING_INPUTS, 0, &jerr);
    if (!in)
        fail_msg("%s: %s (run the test from the repository root)", MARKETING_INPUTS, jerr.text);
    json_t *spend = json_object_get(in, "spend");
    if (!json_is_array(spend) || json_array_size(spend) < 4)
        fail_msg("%s: \"spend\" must be an array of at least 4 numbers", MARKETING_INPUTS);
    for (size_t i = 0; i < json_array_size(spend); i++)
        if (!json_is_number(json_array_get(spend, i)))
            fail_msg("%s: spend[%zu] is not a number", MARKETING_INPUTS, i);
    return in;
}

static double spend_at(const json_t *in, size_t i)
{
    return json_number_value(json_array_get(json_object_get(in, "spend"), i));
}

static size_t spend_len(const json_t *in) { return json_array_size(json_object_get(in, "spend")); }

static double spend_mean(const json_t *in)
{
    double s = 0;
    for (size_t i = 0; i < spend_len(in); i++)
        s += spend_at(in, i);
    return s / (double)spend_len(in);
}

/* pandas' std (ddof 1), as the std op computes it. */
static double spend_std(const json_t *in)
{
    double m = spend_mean(in), s = 0;
    for (size_t i = 0; i < spend_len(in); i++)
        s += (spend_at(in, i) - m) * (spend_at(in, i) - m);
    return sqrt(s / (double)(spend_len(in) - 1));
}

static bool close_to(double got, double want) { return fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)); }

/* Fails unless `arr` is a JSON array of `n` numbers close to want[i]
 * (NAN in want: null). */
static void expect_floats(const run_result *r, const char *what, const json_t *arr, const double *want, size_t n)
{
    if (!json_is_array(arr) || json_array_size(arr) != n)
        fail_msg("%s: %s must be an array of %zu entries:\n%.*s", r->cmd, what, n, QUOTE_MAX, r->out);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (isnan(want[i]) ? !json_is_null(v) : !json_is_number(v) || !close_to(json_number_value(v), want[i]))
            fail_msg("%s: %s[%zu] must be %g:\n%.*s", r->cmd, what, i, want[i], QUOTE_MAX, r->out);
    }
}

/* ---- 1. marketing with @FILE inputs ---------------------------------------- */

static void test_marketing_file_inputs(void **state)
{
    (void)state;
    json_t *in = marketing_inputs();
    /* No -c: the default config, config/cowdag.json. */
    run_result r =
        run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--outputs", "spend_mean,avg_3wk_spend", NULL);
    json_t *outputs, *doc = expect_success(&r, "marketing", &outputs);
    if (json_object_size(outputs) != 2)
        fail_msg("%s: exactly the two requested outputs expected:\n%.*s", r.cmd, QUOTE_MAX, r.out);

    /* The mean of the file's spend, to the last bit. */
    json_t *mean = json_object_get(outputs, "spend_mean");
    if (!json_is_number(mean) || json_number_value(mean) != spend_mean(in))
        fail_msg("%s: spend_mean must be %.17g:\n%.*s", r.cmd, spend_mean(in), QUOTE_MAX, r.out);

    /* rolling_mean(spend, 3): nan (null) until the window is full. */
    size_t n = spend_len(in);
    double *want = calloc(n, sizeof *want);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++)
        want[i] = i < 2 ? NAN : (spend_at(in, i - 2) + spend_at(in, i - 1) + spend_at(in, i)) / 3.0;
    expect_floats(&r, "avg_3wk_spend", json_object_get(outputs, "avg_3wk_spend"), want, n);
    free(want);

    /* The plan: the two op nodes, and at most their inputs spend and window. */
    json_int_t ne = nodes_executed(&r, doc);
    if (ne < 2 || ne > 4)
        fail_msg("%s: nodes_executed is %lld; the plan has 2 op nodes and 2 inputs", r.cmd, (long long)ne);
    /* Two float64 arrays of six were held. */
    if (int_member(&r, json_object_get(doc, "stats"), "stats", "peak_bytes") < (json_int_t)(n * sizeof(double)))
        fail_msg("%s: peak_bytes is below the %zu bytes of one output array:\n%.*s", r.cmd, n * sizeof(double),
                 QUOTE_MAX, r.out);
    json_decref(doc);
    json_decref(in);
    run_free(&r);
}

/* Without --outputs: every node nothing depends on. */
static void test_marketing_default_outputs(void **state)
{
    (void)state;
    run_result r = run_cowdag("run", "-c", "config/cowdag.json", "marketing", "--inputs", "@" MARKETING_INPUTS, NULL);
    json_t *outputs, *doc = expect_success(&r, "marketing", &outputs);
    static const char *const sinks[] = {"avg_3wk_spend", "spend_per_signup", "spend_zero_mean_unit_variance"};
    if (json_object_size(outputs) != sizeof sinks / sizeof *sinks)
        fail_msg("%s: the outputs must be the DAG's 3 sinks:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    for (size_t i = 0; i < sizeof sinks / sizeof *sinks; i++)
        if (!json_is_array(json_object_get(outputs, sinks[i])))
            fail_msg("%s: sink %s missing from the outputs:\n%.*s", r.cmd, sinks[i], QUOTE_MAX, r.out);
    /* All nine nodes (six ops, three inputs) are upstream of the sinks. */
    if (nodes_executed(&r, doc) != 9)
        fail_msg("%s: nodes_executed must be 9:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    json_decref(doc);
    run_free(&r);
}

/* ---- 2. the same inputs inline --------------------------------------------- */

static void test_inline_inputs_same_outputs(void **state)
{
    (void)state;
    char *text = slurp(MARKETING_INPUTS, NULL);
    assert_non_null(text);
    json_t *in = marketing_inputs();
    char *compact = json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS); /* other layout, other key order */
    assert_non_null(compact);
    const char *outs = "spend_mean,avg_3wk_spend,spend_zero_mean_unit_variance";

    run_result f = run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--outputs", outs, NULL);
    run_result t = run_cowdag("run", "marketing", "--inputs", text, "--outputs", outs, NULL);
    run_result c = run_cowdag("run", "marketing", "--outputs", outs, "--inputs", compact, NULL);
    json_t *fo, *to, *co;
    json_t *fd = expect_success(&f, "marketing", &fo), *td = expect_success(&t, "marketing", &to),
           *cd = expect_success(&c, "marketing", &co);
    size_t flen, tlen, clen;
    const char *fraw = raw_member(&f, "outputs", &flen), *traw = raw_member(&t, "outputs", &tlen),
               *craw = raw_member(&c, "outputs", &clen);
    if (flen != tlen || memcmp(fraw, traw, flen) != 0)
        fail_msg("the outputs differ between --inputs @FILE and the file's text inline:\n%.*s\n%.*s", (int)flen, fraw,
                 (int)tlen, traw);
    if (flen != clen || memcmp(fraw, craw, flen) != 0)
        fail_msg("the outputs differ between --inputs @FILE and %s inline:\n%.*s\n%.*s", compact, (int)flen, fraw,
                 (int)clen, craw);
    assert_true(json_equal(fo, to));
    assert_int_equal(json_object_size(fo), 3);
    json_decref(fd);
    json_decref(td);
    json_decref(cd);
    run_free(&f);
    run_free(&t);
    run_free(&c);
    free(compact);
    json_decref(in);
    free(text);
}

/* ---- 3. request errors ------------------------------------------------------- */

static void test_bad_json(void **state)
{
    (void)state;
    run_result r = run_cowdag("run", "marketing", "--inputs", "{\"spend\": [1, 2", NULL);
    expect_error(&r, "bad_json", "");
    run_free(&r);

    r = run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--overrides", "{spend_mean: 1}", NULL);
    char *msg = expect_error_result(&r, "bad_json", "");
    if (!strstr(msg, "--overrides"))
        fail_msg("%s: the message should name --overrides: %s", r.cmd, msg);
    free(msg);
    run_free(&r);

    /* @FILE holding no JSON, and an @FILE that does not exist. */
    char *bad = dup_printf("%s/bad-inputs.json", workdir);
    write_text(bad, "{ \"spend\": [10, 20], \"signups\": [1, 2] ,, }\n");
    char *at = dup_printf("@%s", bad);
    r = run_cowdag("run", "marketing", "--inputs", at, NULL);
    expect_error(&r, "bad_json", "");
    run_free(&r);
    free(at);
    at = dup_printf("@%s/no-such-file.json", workdir);
    r = run_cowdag("run", "marketing", "--inputs", at, NULL);
    expect_error(&r, "bad_json", "");
    run_free(&r);
    free(at);
    free(bad);

    /* A duplicate key is rejected, as the HTTP route rejects it. */
    r = run_cowdag("run", "marketing", "--inputs", "{\"spend\": [1, 2], \"signups\": [1, 2], \"spend\": [3, 4]}", NULL);
    expect_error(&r, "bad_json", "");
    run_free(&r);
}

/* An unknown DAG is the request's error, as over HTTP: the route's error
 * JSON {"error": {"code": "unknown_dag", "message": "no DAG named 'X'"}} on
 * stderr, exit 1. */
static void test_unknown_dag(void **state)
{
    (void)state;
    run_result r = run_cowdag("run", "no_such_dag", "--inputs", "@" MARKETING_INPUTS, NULL);
    expect_error(&r, "unknown_dag", NULL);
    if (!strstr(r.err, "no DAG named 'no_such_dag'"))
        fail_msg("%s: stderr must say \"no DAG named 'no_such_dag'\":\n%.*s", r.cmd, QUOTE_MAX, r.err);
    run_free(&r);
}

static void test_unknown_output(void **state)
{
    (void)state;
    run_result r =
        run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--outputs", "spend_mean,no_such_node", NULL);
    expect_error(&r, "unknown_output", "no_such_node");
    run_free(&r);
}

static void test_missing_input(void **state)
{
    (void)state;
    /* spend_per_signup needs both arrays; signups is not given. */
    run_result r =
        run_cowdag("run", "marketing", "--inputs", "{\"spend\": [1, 2, 3]}", "--outputs", "spend_per_signup", NULL);
    expect_error(&r, "missing_input", "signups");
    run_free(&r);
    /* An input outside the plan is not needed. */
    r = run_cowdag("run", "marketing", "--inputs", "{\"spend\": [1, 2, 3]}", "--outputs", "spend_mean", NULL);
    json_t *outputs, *doc = expect_success(&r, "marketing", &outputs);
    if (json_number_value(json_object_get(outputs, "spend_mean")) != 2.0)
        fail_msg("%s: spend_mean must be 2:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    json_decref(doc);
    run_free(&r);
}

static void test_type_error(void **state)
{
    (void)state;
    run_result r = run_cowdag("run", "marketing", "--inputs", "{\"spend\": \"ten\", \"signups\": [1, 2]}", NULL);
    expect_error(&r, "type_error", "spend");
    run_free(&r);
    r = run_cowdag("run", "marketing", "--inputs", "{\"spend\": [1, 2, 3], \"signups\": [1, 2, 3], \"window\": 2.5}",
                   "--outputs", "avg_3wk_spend", NULL);
    expect_error(&r, "type_error", "window");
    run_free(&r);
}

static void test_op_error(void **state)
{
    (void)state;
    /* rolling_mean wants window >= 1. */
    run_result r =
        run_cowdag("run", "marketing", "--inputs", "{\"spend\": [1, 2, 3], \"signups\": [1, 2, 3], \"window\": 0}",
                   "--outputs", "avg_3wk_spend", NULL);
    expect_error(&r, "op_error", "avg_3wk_spend");
    run_free(&r);
}

/* slow.json fills an array of size_mb MiB and multiplies it down 1000
 * nodes: with 8 MiB, a few hundred ms without limits; with timeout_ms 1 it
 * must stop early with limit_exceeded, naming the node it stopped after. */
static void test_limit_timeout(void **state)
{
    (void)state;
    char *cfg = temp_config("timeout.json", "\"timeout_ms\": 1,", SLOW_DAG);
    run_result r = run_cowdag("run", "-c", cfg, "slow", "--inputs", "{\"size_mb\": 8}", NULL);
    char *msg = expect_error_result(&r, "limit_exceeded", NULL);
    free(msg);
    json_t *doc = json_loads(r.err, 0, NULL);
    const char *node = json_string_value(json_object_get(json_object_get(doc, "error"), "node"));
    /* Any node but the last may be the one: on a loaded machine the
     * millisecond can be gone before the first (the input) has run. */
    if (!node || (strcmp(node, "size_mb") != 0 && strcmp(node, "n") != 0 && strncmp(node, "step_", 5) != 0))
        fail_msg("%s: error.node must name the node the run stopped after:\n%.*s", r.cmd, QUOTE_MAX, r.err);
    json_decref(doc);
    run_free(&r);

    /* A limit a run fits in: size_mb 0 is 1004 cheap nodes, well within a
     * minute on any machine (within 1 ms, as it often is, proves nothing). */
    free(cfg);
    cfg = temp_config("timeout-fits.json", "\"timeout_ms\": 60000,", SLOW_DAG);
    r = run_cowdag("run", "-c", cfg, "slow", "--inputs", "{\"size_mb\": 0}", NULL);
    json_t *outputs;
    doc = expect_success(&r, "slow", &outputs);
    if (!json_is_number(json_object_get(outputs, "total")) || json_number_value(json_object_get(outputs, "total")) != 0)
        fail_msg("%s: total must be 0:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    json_decref(doc);
    run_free(&r);
    free(cfg);
}

/* max_run_bytes: 1 MiB (the least allowed); 2 MiB arrays cannot be made. */
static void test_limit_run_bytes(void **state)
{
    (void)state;
    char *cfg = temp_config("run-bytes.json", "\"max_run_bytes\": 1048576,", SLOW_DAG);
    run_result r = run_cowdag("run", "-c", cfg, "slow", "--inputs", "{\"size_mb\": 2}", NULL);
    expect_error(&r, "limit_exceeded", "step_0");
    run_free(&r);
    free(cfg);
}

/* ---- timeout_ms counts from the start of the run ---------------------------- */

/* The customer store's generator (load/state.h; README, "The config
 * file"): customer i's spend, summed. */
static double customer_total(uint64_t id)
{
    uint64_t x = CUSTOMERS_SEED;
    double total = 0;
    for (uint64_t i = 0; i <= id; i++) {
        total = 0;
        for (int k = 0; k < 12; k++) {
            x = (1103515245u * x + 12345u) & 0x7fffffffu;
            total += (double)(x % 100000) / 100.0;
        }
    }
    return total;
}

static double now_ms(void) { return (double)base_now_ns() / 1e6; }

/* Loading CUSTOMERS records takes far longer than LOAD_TIMEOUT_MS; the run
 * itself takes microseconds, and must succeed. */
static void test_timeout_excludes_loading(void **state)
{
    (void)state;
    char *extra = dup_printf("\"timeout_ms\": %d, \"state\": [{\"name\": \"customers\", \"kind\": \"records\", "
                             "\"generate\": {\"count\": %d, \"seed\": %d}}],",
                             LOAD_TIMEOUT_MS, CUSTOMERS, CUSTOMERS_SEED);
    char *cfg = temp_config("loading.json", extra, CUSTOMERS_DAG);
    free(extra);
    double t0 = now_ms();
    run_result r = run_cowdag("run", "-c", cfg, "customers", "--inputs", "{\"ids\": [0, 1, 199999]}", "--outputs",
                              "n,totals", NULL);
    double wall = now_ms() - t0;
    json_t *outputs, *doc = expect_success(&r, "customers", &outputs);
    if (json_integer_value(json_object_get(outputs, "n")) != CUSTOMERS)
        fail_msg("%s: n must be %d:\n%.*s", r.cmd, CUSTOMERS, QUOTE_MAX, r.out);
    double want[] = {customer_total(0), customer_total(1), customer_total(199999)};
    expect_floats(&r, "totals", json_object_get(outputs, "totals"), want, 3);
    json_int_t us = int_member(&r, json_object_get(doc, "stats"), "stats", "elapsed_us");
    if (us > (json_int_t)LOAD_TIMEOUT_MS * 1000)
        fail_msg("%s: elapsed_us %lld is past the timeout, yet the run succeeded", r.cmd, (long long)us);
    json_decref(doc);
    run_free(&r);
    free(cfg);
    if (wall < 2.0 * LOAD_TIMEOUT_MS)
        skip(); /* loading was too quick to show anything; the values above were still checked */
}

/* ---- 4. --overrides stops the plan ------------------------------------------ */

static void test_overrides(void **state)
{
    (void)state;
    json_t *in = marketing_inputs();
    size_t n = spend_len(in);
    double *want = calloc(n, sizeof *want);
    assert_non_null(want);

    /* An overridden output needs nothing upstream: no inputs, no node run. */
    run_result r =
        run_cowdag("run", "marketing", "--overrides", "{\"spend_mean\": 5}", "--outputs", "spend_mean", NULL);
    json_t *outputs, *doc = expect_success(&r, "marketing", &outputs);
    if (json_number_value(json_object_get(outputs, "spend_mean")) != 5 || nodes_executed(&r, doc) != 0)
        fail_msg("%s: spend_mean must be the override, 5, with no node executed:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    json_decref(doc);
    run_free(&r);

    /* spend_zero_mean = spend - spend_mean: computed, then overridden. */
    r = run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--outputs", "spend_zero_mean", NULL);
    doc = expect_success(&r, "marketing", &outputs);
    for (size_t i = 0; i < n; i++)
        want[i] = spend_at(in, i) - spend_mean(in);
    expect_floats(&r, "spend_zero_mean", json_object_get(outputs, "spend_zero_mean"), want, n);
    json_int_t computed = nodes_executed(&r, doc);
    json_decref(doc);
    run_free(&r);

    r = run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--overrides", "{\"spend_mean\": 0}",
                   "--outputs", "spend_zero_mean", NULL);
    doc = expect_success(&r, "marketing", &outputs);
    for (size_t i = 0; i < n; i++)
        want[i] = spend_at(in, i);
    expect_floats(&r, "spend_zero_mean", json_object_get(outputs, "spend_zero_mean"), want, n);
    if (nodes_executed(&r, doc) != computed - 1)
        fail_msg("%s: overriding spend_mean must spare exactly that node: %lld executed, %lld without the override",
                 r.cmd, (long long)nodes_executed(&r, doc), (long long)computed);
    json_decref(doc);
    run_free(&r);

    /* From @FILE: overriding spend_zero_mean cuts spend_mean out of the plan
     * of spend_zero_mean_unit_variance = spend_zero_mean / std(spend). */
    r = run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--outputs", "spend_zero_mean_unit_variance",
                   NULL);
    doc = expect_success(&r, "marketing", &outputs);
    computed = nodes_executed(&r, doc);
    json_decref(doc);
    run_free(&r);

    json_t *ov = json_object(), *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_real((double)(i + 1)));
        want[i] = (double)(i + 1) / spend_std(in);
    }
    json_object_set_new(ov, "spend_zero_mean", arr);
    char *ov_path = dup_printf("%s/overrides.json", workdir);
    assert_int_equal(json_dump_file(ov, ov_path, 0), 0);
    json_decref(ov);
    char *at = dup_printf("@%s", ov_path);
    r = run_cowdag("run", "marketing", "--inputs", "@" MARKETING_INPUTS, "--overrides", at, "--outputs",
                   "spend_zero_mean_unit_variance", NULL);
    doc = expect_success(&r, "marketing", &outputs);
    expect_floats(&r, "spend_zero_mean_unit_variance", json_object_get(outputs, "spend_zero_mean_unit_variance"), want,
                  n);
    /* spend_zero_mean and spend_mean are not run: spend, std, the ratio. */
    if (nodes_executed(&r, doc) != computed - 2)
        fail_msg("%s: overriding spend_zero_mean must spare it and spend_mean: %lld executed, %lld without", r.cmd,
                 (long long)nodes_executed(&r, doc), (long long)computed);
    json_decref(doc);
    run_free(&r);
    free(at);
    free(ov_path);
    free(want);
    json_decref(in);
}

/* ---- 5. non-finite floats print as null ------------------------------------ */

static void test_nonfinite_null(void **state)
{
    (void)state;
    run_result r = run_cowdag("run", "-c", RUN_CONFIG, "nonfinite", "--inputs", "{\"xs\": [0, 2, -3]}", "--outputs",
                              "nan,inf,ninf,half,ratios,record", NULL);
    /* jansson accepts no NaN or Infinity tokens: parsing is the first check. */
    json_t *outputs, *doc = expect_success(&r, "nonfinite", &outputs);
    static const char *const nulls[] = {"nan", "inf", "ninf"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        if (!json_is_null(json_object_get(outputs, nulls[i])))
            fail_msg("%s: %s must be null:\n%.*s", r.cmd, nulls[i], QUOTE_MAX, r.out);
    if (!json_is_number(json_object_get(outputs, "half")) || json_number_value(json_object_get(outputs, "half")) != 0.5)
        fail_msg("%s: half must be 0.5:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    const double ratios[] = {NAN, 1.0, 1.0};
    expect_floats(&r, "ratios", json_object_get(outputs, "ratios"), ratios, 3);
    /* Inside a record too. */
    json_t *rec = json_object_get(outputs, "record");
    if (!json_is_object(rec) || json_object_size(rec) != 3 || !json_is_null(json_object_get(rec, "nan")) ||
        json_number_value(json_object_get(rec, "half")) != 0.5)
        fail_msg("%s: record must be {nan: null, half: 0.5, ratios: [...]}:\n%.*s", r.cmd, QUOTE_MAX, r.out);
    expect_floats(&r, "record.ratios", json_object_get(rec, "ratios"), ratios, 3);
    json_decref(doc);
    run_free(&r);
}

/* ---- 6. --help, --version, usage and config errors -------------------------- */

static void expect_usage(const run_result *r)
{
    assert_exit(r, 0);
    if (r->err[0])
        fail_msg("%s: --help wrote to stderr:\n%.*s", r->cmd, QUOTE_MAX, r->err);
    size_t line = strcspn(r->out, "\n");
    if (line != strlen(USAGE_LINE) || strncmp(r->out, USAGE_LINE, line) != 0 || r->out[line] != '\n')
        fail_msg("%s: stdout must start with the line\n%s\nbut is:\n%.*s", r->cmd, USAGE_LINE, QUOTE_MAX, r->out);
    static const char *const flags[] = {"--config",  "--inputs",   "--overrides",
                                        "--outputs", "timeout_ms", "max_run_bytes"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (!strstr(r->out + line, flags[i]))
            fail_msg("%s: the usage does not describe %s:\n%.*s", r->cmd, flags[i], QUOTE_MAX, r->out);
}

static void test_help(void **state)
{
    (void)state;
    run_result r = run_cowdag("run", "--help", NULL);
    expect_usage(&r);
    char *first = dup_or_die(r.out);
    run_free(&r);
    r = run_cowdag("run", "-h", NULL);
    expect_usage(&r);
    assert_string_equal(r.out, first);
    run_free(&r);
    /* Help needs no config and no DAG: nothing is loaded. */
    r = run_cowdag("run", "-c", "/nonexistent/cowdag.json", "no_such_dag", "--help", NULL);
    expect_usage(&r);
    assert_string_equal(r.out, first);
    run_free(&r);
    free(first);

    r = run_cowdag("run", "--version", NULL);
    assert_exit(&r, 0);
    if (strncmp(r.out, "cowdag ", 7) != 0 || r.err[0])
        fail_msg("%s: stdout must be \"cowdag VERSION\":\n%.*s", r.cmd, QUOTE_MAX, r.out);
    run_free(&r);
}

/* Not request errors: no JSON.  Usage errors exit 2 (as every cowdag
 * command does), a config that cannot be loaded exits 1. */
static void test_usage_and_config_errors(void **state)
{
    (void)state;
    static const char *const argvs[][4] = {
        {"run", NULL},                                /* no DAG */
        {"run", "marketing", "chain", NULL},          /* two */
        {"run", "--no-such-flag", "marketing", NULL}, /* unknown option */
        {"run", "marketing", "--inputs", NULL},       /* option without its value */
    };
    for (size_t i = 0; i < sizeof argvs / sizeof *argvs; i++) {
        run_result r = run_cowdag(argvs[i][0], argvs[i][1], argvs[i][2], argvs[i][3], NULL);
        assert_exit(&r, 2);
        if (r.out[0] || !strstr(r.err, "cowdag run"))
            fail_msg("%s: nothing on stdout and a message naming `cowdag run` on stderr expected; stderr:\n%.*s", r.cmd,
                     QUOTE_MAX, r.err);
        run_free(&r);
    }
    run_result r = run_cowdag("run", "-c", "/nonexistent/cowdag.json", "marketing", NULL);
    assert_exit(&r, 1);
    if (r.out[0] || !strstr(r.err, "/nonexistent/cowdag.json"))
        fail_msg("%s: nothing on stdout and the config named on stderr expected; stderr:\n%.*s", r.cmd, QUOTE_MAX,
                 r.err);
    run_free(&r);
}

/* ---- the group ------------------------------------------------------------- */

/* workdir holds only flat files this suite wrote. */
static int make_workdir(void **state)
{
    (void)state; /* left alone: a group state would replace each case's */
    if (!mkdtemp(workdir)) {
        perror("test_run: mkdtemp");
        return -1;
    }
    have_workdir = true;
    stderr_path = dup_printf("%s/stderr", workdir);
    pid_path = dup_printf("%s/pid", workdir);
    return 0;
}

static int remove_workdir(void **state)
{
    (void)state;
    free(stderr_path);
    free(pid_path);
    if (!have_workdir)
        return 0;
    return remove_flat_dir(workdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marketing_file_inputs),
        cmocka_unit_test(test_marketing_default_outputs),
        cmocka_unit_test(test_inline_inputs_same_outputs),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_unknown_dag),
        cmocka_unit_test(test_unknown_output),
        cmocka_unit_test(test_missing_input),
        cmocka_unit_test(test_type_error),
        cmocka_unit_test(test_op_error),
        cmocka_unit_test(test_limit_timeout),
        cmocka_unit_test(test_limit_run_bytes),
        cmocka_unit_test(test_timeout_excludes_loading),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_nonfinite_null),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_and_config_errors),
    };
    return cmocka_run_group_tests_name("run", tests, make_workdir, remove_workdir);
}
