/* test_check: runs `cowdag check` as a user would, on every broken DAG file and
 * config under tests/broken (what each must print is in tests/broken/EXPECT),
 * on config/cowdag.json and on a 100,000-node DAG.  Binary: $COWDAG, default build/cowdag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Paths are relative to the repository root, where the tests run. */
#define BROKEN_DIR "tests/broken"
#define EXPECT_PATH BROKEN_DIR "/EXPECT"
#define BROKEN_DAGS BROKEN_DIR "/dags"
#define BROKEN_CONFIGS BROKEN_DIR "/configs"
#define GOOD_CONFIG "config/cowdag.json"

/* How much of cowdag's output a failure message quotes. */
#define QUOTE_MAX 4000

/* The big DAG: two constants and one family, 100,000 nodes in all. */
#define BIG_NODES 100000

/* One EXPECT line: the fixture, then the file its problems are about
 * (frag[0]) and the fragments that must be printed with it. */
typedef struct {
    char *path;
    char **frag;
    size_t nfrag;
    int line;
} check_case;

static check_case *cases;
static size_t ncases;
static char *expect_problem; /* why EXPECT could not be used, if it could not */
static char workdir[] = "/tmp/cowdag-test-check-XXXXXX";
static bool have_workdir;

/* ---- small helpers ------------------------------------------------------- */

static bool is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- EXPECT ------------------------------------------------------------------ */

static void expect_fail(int line, const char *why)
{
    if (!expect_problem)
        expect_problem = dup_printf("%s:%d: %s", EXPECT_PATH, line, why);
}

/* Fills cases from EXPECT; problems end up in expect_problem, which the
 * coverage test reports. */
static void read_expect(void)
{
    FILE *f = fopen(EXPECT_PATH, "r");
    if (!f) {
        expect_problem = dup_printf("cannot open %s (run the test from the repository root)", EXPECT_PATH);
        return;
    }
    char *text = NULL;
    size_t cap = 0;
    int lineno = 0;
    while (getline(&text, &cap, f) >= 0) {
        lineno++;
        text[strcspn(text, "\r\n")] = '\0';
        if (text[0] == '\0' || text[0] == '#')
            continue;
        check_case c = {.line = lineno};
        char *rest = text, *field;
        while ((field = strsep(&rest, "\t")) != NULL) {
            if (field[0] == '\0') {
                expect_fail(lineno, "empty field (two tabs in a row, or a trailing tab)");
                continue;
            }
            if (!c.path) {
                c.path = dup_or_die(field);
                continue;
            }
            c.frag = realloc(c.frag, (c.nfrag + 1) * sizeof *c.frag);
            if (!c.frag)
                exit(2);
            c.frag[c.nfrag++] = dup_or_die(field);
        }
        if (c.nfrag < 2)
            expect_fail(lineno, "needs PATH, FILE and at least one fragment, tab-separated");
        for (size_t k = 0; k < ncases && c.path; k++)
            if (strcmp(cases[k].path, c.path) == 0)
                expect_fail(lineno, "a second line for the same PATH");
        cases = realloc(cases, (ncases + 1) * sizeof *cases);
        if (!cases)
            exit(2);
        cases[ncases++] = c;
    }
    free(text);
    fclose(f);
    if (ncases == 0)
        expect_fail(lineno, "no cases");
}

static void free_cases(void)
{
    for (size_t i = 0; i < ncases; i++) {
        free(cases[i].path);
        for (size_t k = 0; k < cases[i].nfrag; k++)
            free(cases[i].frag[k]);
        free(cases[i].frag);
    }
    free(cases);
    free(expect_problem);
}

/* ---- running cowdag check ------------------------------------------------ */

typedef struct {
    char *out;     /* stdout and stderr, as one text */
    int status;    /* from pclose */
    char **lines;  /* out split at newlines (pointers into a copy) */
    size_t nlines;
    char *copy;
} run_result;

static void run_free(run_result *r)
{
    free(r->out);
    free(r->copy);
    free(r->lines);
    *r = (run_result){0};
}

/* Runs `cowdag check -c config`, capturing both streams.  exec makes the
 * shell become cowdag, so a crash shows in the status as a signal. */
static run_result run_check(const char *config)
{
    const char *bin = cowdag_bin();
    if (access(bin, X_OK) != 0)
        fail_msg("%s is not an executable: build it (make build/cowdag) or set COWDAG", bin);
    char *qbin = sh_quote(bin), *qcfg = sh_quote(config);
    char *cmd = dup_printf("exec %s check -c %s 2>&1", qbin, qcfg);
    free(qbin);
    free(qcfg);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);

    run_result r = {0};
    r.out = slurp_stream(p, NULL);
    r.status = pclose(p);

    r.copy = dup_or_die(r.out);
    size_t lcap = 16;
    r.lines = malloc(lcap * sizeof *r.lines);
    assert_non_null(r.lines);
    char *rest = r.copy, *line;
    while ((line = strsep(&rest, "\n")) != NULL) {
        if (line[0] == '\0' && rest == NULL)
            break; /* after the last newline */
        if (r.nlines == lcap) {
            r.lines = realloc(r.lines, (lcap *= 2) * sizeof *r.lines);
            assert_non_null(r.lines);
        }
        r.lines[r.nlines++] = line;
    }
    return r;
}

/* Fails unless check exited normally (no signal) with `want`. */
static void assert_exit(const char *what, const run_result *r, int want)
{
    if (WIFSIGNALED(r->status))
        fail_msg("%s: cowdag check was killed by signal %d (%s); output:\n%.*s", what, WTERMSIG(r->status),
                 strsignal(WTERMSIG(r->status)), QUOTE_MAX, r->out);
    if (!WIFEXITED(r->status))
        fail_msg("%s: cowdag check did not exit normally (wait status %#x)", what, (unsigned)r->status);
    if (WEXITSTATUS(r->status) != want)
        fail_msg("%s: cowdag check exited with %d, expected %d; output:\n%.*s", what, WEXITSTATUS(r->status), want,
                 QUOTE_MAX, r->out);
}

/* ---- one broken fixture ---------------------------------------------------- */

static bool is_dag_fixture(const char *path)
{
    return strncmp(path, BROKEN_DAGS "/", strlen(BROKEN_DAGS "/")) == 0;
}

/* Writes a config into workdir that loads only the DAG file at `dag_path`
 * (by absolute path) and declares the state "customers", 10 records. */
static char *config_for_dag(const char *dag_path)
{
    char real[PATH_MAX];
    if (!realpath(dag_path, real))
        fail_msg("%s: cannot resolve the path", dag_path);
    const char *base = strrchr(dag_path, '/') ? strrchr(dag_path, '/') + 1 : dag_path;
    char *cfg = dup_printf("%s/%s.config.json", workdir, base);
    json_t *doc = json_pack("{s:[{s:s, s:s, s:{s:i}}], s:[s]}", "state", "name", "customers", "kind", "records",
                            "generate", "count", 10, "dags", real);
    assert_non_null(doc);
    assert_int_equal(json_dump_file(doc, cfg, JSON_INDENT(2)), 0);
    json_decref(doc);
    return cfg;
}

/* The first line holding `file` and one of the ||-separated alternatives of
 * `frag`; -1 if none.  *node gets the node the matching alternative names
 * (node 'X'), or NULL; free it. */
static long find_line(const run_result *r, const char *file, const char *frag, char **node)
{
    *node = NULL;
    char *alts = dup_or_die(frag), *rest = alts;
    long found = -1;
    while (found < 0 && rest) {
        char *alt = rest, *bars = strstr(rest, "||");
        if (bars) {
            *bars = '\0';
            rest = bars + 2;
        } else {
            rest = NULL;
        }
        for (size_t i = 0; i < r->nlines; i++) {
            if (strstr(r->lines[i], file) && strstr(r->lines[i], alt)) {
                found = (long)i;
                const char *n = strstr(alt, "node '");
                if (n) {
                    n += strlen("node '");
                    *node = strndup(n, strcspn(n, "'"));
                }
                break;
            }
        }
    }
    free(alts);
    return found;
}

static void test_broken(void **state)
{
    const check_case *c = *state;
    if (!is_regular_file(c->path))
        fail_msg("%s (EXPECT line %d): no such file", c->path, c->line);
    char *config = is_dag_fixture(c->path) ? config_for_dag(c->path) : dup_or_die(c->path);
    run_result r = run_check(config);
    free(config);
    assert_exit(c->path, &r, 1);

    const char *file = c->frag[0];
    long *line = calloc(c->nfrag, sizeof *line);
    char **node = calloc(c->nfrag, sizeof *node);
    assert_non_null(line);
    assert_non_null(node);
    for (size_t k = 1; k < c->nfrag; k++) {
        line[k] = find_line(&r, file, c->frag[k], &node[k]);
        if (line[k] < 0)
            fail_msg("%s: no line of the output holds both \"%s\" and \"%s\"; output:\n%.*s", c->path, file,
                     c->frag[k], QUOTE_MAX, r.out);
    }
    /* A line reports one problem, about one node at most. */
    for (size_t a = 1; a < c->nfrag; a++)
        for (size_t b = a + 1; b < c->nfrag; b++)
            if (node[a] && node[b] && strcmp(node[a], node[b]) != 0 && line[a] == line[b])
                fail_msg("%s: nodes '%s' and '%s' are reported on one line: %s", c->path, node[a], node[b],
                         r.lines[line[a]]);
    for (size_t k = 0; k < c->nfrag; k++)
        free(node[k]);
    free(node);
    free(line);
    run_free(&r);
}

/* ---- every fixture has its EXPECT line ----------------------------------- */

static bool listed(const char *path)
{
    for (size_t i = 0; i < ncases; i++)
        if (strcmp(cases[i].path, path) == 0)
            return true;
    return false;
}

static void test_every_fixture_listed(void **state)
{
    (void)state;
    if (expect_problem)
        fail_msg("%s", expect_problem);
    static const char *const dirs[] = {BROKEN_DAGS, BROKEN_CONFIGS};
    char *missing = dup_or_die("");
    for (size_t d = 0; d < sizeof dirs / sizeof *dirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir)
            fail_msg("cannot open %s (run the test from the repository root)", dirs[d]);
        size_t files = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            char *path = dup_printf("%s/%s", dirs[d], e->d_name);
            if (is_regular_file(path)) {
                files++;
                if (!listed(path)) {
                    char *more = dup_printf("%s\n  %s", missing, path);
                    free(missing);
                    missing = more;
                }
            }
            free(path);
        }
        closedir(dir);
        if (files == 0)
            fail_msg("%s holds no fixtures", dirs[d]);
    }
    if (missing[0])
        fail_msg("fixtures without a line in %s:%s", EXPECT_PATH, missing);
    free(missing);
}

/* ---- configs that must pass ------------------------------------------------ */

/* The node count of DAG `name` from check's summary ("dag   NAME  N nodes,
 * ..."), or -1 if no such line. */
static long summary_nodes(const run_result *r, const char *name)
{
    for (size_t i = 0; i < r->nlines; i++) {
        char word[256];
        long n;
        int got = sscanf(r->lines[i], "dag %255s %ld nodes", word, &n);
        if (got >= 1 && strcmp(word, name) == 0)
            return got == 2 ? n : 0;
    }
    return -1;
}

static void test_example_config(void **state)
{
    (void)state;
    static const char *const names[] = {"chain", "channels", "customer_score", "graph", "marketing"};
    run_result r = run_check(GOOD_CONFIG);
    assert_exit(GOOD_CONFIG, &r, 0);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (summary_nodes(&r, names[i]) < 0)
            fail_msg("%s: the summary does not list DAG '%s'; output:\n%.*s", GOOD_CONFIG, names[i], QUOTE_MAX,
                     r.out);
    run_free(&r);
}

/* A chain step_0 -> step_1 -> ... made by one family, plus its two
 * constants: BIG_NODES nodes.  The config names the DAG relative to its own
 * folder. */
static void test_big_family(void **state)
{
    (void)state;
    char *dag_path = dup_printf("%s/big.json", workdir);
    FILE *f = fopen(dag_path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\n  \"name\": \"big\",\n  \"description\": \"a %d-node chain from one family\",\n"
            "  \"nodes\": { \"one\": {\"const\": 1.0}, \"step_0\": {\"const\": 0.0} },\n"
            "  \"families\": [\n"
            "    { \"name\": \"step_{i}\", \"range\": [1, %d], \"op\": \"add\", \"args\": [\"step_{i-1}\", \"one\"] }\n"
            "  ]\n}\n",
            BIG_NODES, BIG_NODES - 1);
    assert_int_equal(fclose(f), 0);
    char *cfg = dup_printf("%s/big.config.json", workdir);
    f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("{ \"dags\": [\"big.json\"] }\n", f);
    assert_int_equal(fclose(f), 0);

    run_result r = run_check(cfg);
    assert_exit("100000-node DAG", &r, 0);
    long n = summary_nodes(&r, "big");
    if (n != BIG_NODES)
        fail_msg("100000-node DAG: expected \"dag big %d nodes\" in the summary; output:\n%.*s", BIG_NODES,
                 QUOTE_MAX, r.out);
    run_free(&r);
    free(cfg);
    free(dag_path);
}

/* ---- the group ------------------------------------------------------------- */

/* workdir holds only flat files this suite wrote. */
static int make_workdir(void **state)
{
    (void)state; /* left alone: a group state would replace each case's */
    if (!mkdtemp(workdir)) {
        perror("test_check: mkdtemp");
        return -1;
    }
    have_workdir = true;
    return 0;
}

static int remove_workdir(void **state)
{
    (void)state;
    if (!have_workdir)
        return 0;
    return remove_flat_dir(workdir);
}

/* ---- every command's --help and --version ---------------------------------- */

/* Runs `cowdag ARGS` (stderr discarded); stdout and the wait status. */
static char *run_quiet(const char *args, int *status)
{
    char *qbin = sh_quote(cowdag_bin());
    char *cmd = dup_printf("exec %s %s 2>/dev/null", qbin, args);
    free(qbin);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0)
        len += got;
    out[len] = '\0';
    *status = pclose(p);
    return out;
}

/* Every command answers --help and --version. */
static void test_every_command_has_help_and_version(void **state)
{
    (void)state;
    static const char *const commands[] = {"serve", "run", "check", "cowtest", "ops", "stats"};
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        char *args = dup_printf("%s --help", commands[i]), *want = dup_printf("usage: cowdag %s", commands[i]);
        int status;
        char *out = run_quiet(args, &status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strncmp(out, want, strlen(want)) != 0)
            fail_msg("cowdag %s: expected exit 0 and \"%s...\" on stdout; got status %#x and:\n%.*s", args, want,
                     (unsigned)status, QUOTE_MAX, out);
        free(out);
        free(args);
        free(want);
        args = dup_printf("%s --version", commands[i]);
        out = run_quiet(args, &status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strncmp(out, "cowdag ", 7) != 0 || !strchr(out, '\n') ||
            strchr(out, '\n')[1] != '\0')
            fail_msg("cowdag %s: expected exit 0 and one line \"cowdag VERSION\"; got status %#x and:\n%.*s", args,
                     (unsigned)status, QUOTE_MAX, out);
        free(out);
        free(args);
    }
}

int main(void)
{
    read_expect();
    size_t n = 0;
    struct CMUnitTest *tests = calloc(ncases + 4, sizeof *tests);
    if (!tests)
        return 2;
    tests[n++] = (struct CMUnitTest){"EXPECT lists every fixture", test_every_fixture_listed, NULL, NULL, NULL};
    for (size_t i = 0; i < ncases; i++)
        if (cases[i].path && cases[i].nfrag >= 2)
            tests[n++] = (struct CMUnitTest){cases[i].path, test_broken, NULL, NULL, &cases[i]};
    tests[n++] = (struct CMUnitTest){GOOD_CONFIG " passes", test_example_config, NULL, NULL, NULL};
    tests[n++] = (struct CMUnitTest){"100000-node family passes", test_big_family, NULL, NULL, NULL};
    tests[n++] = (struct CMUnitTest){"every command has --help and --version", test_every_command_has_help_and_version,
                                     NULL, NULL, NULL};
    int rc = _cmocka_run_group_tests("check", tests, n, make_workdir, remove_workdir);
    free(tests);
    free_cases();
    return rc;
}
