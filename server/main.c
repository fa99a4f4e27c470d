/* main.c: the cowdag command line: one function per command, dispatched on
 * argv[1].  The commands are in README.md, one section each ("Serving",
 * "Running DAGs", "Watching sharing", "The experiment"); their flags in its
 * "Commands" table, which tests/test_readme.c compares with each --help. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "dag/dag.h"
#include "heap/gc.h"
#include "load/config.h"
#include "load/world.h"
#include "server/client.h"
#include "server/cowtest.h"
#include "server/serve.h"
#include "server/top.h"

#define COWDAG_VERSION "0.1.0"

static const char *const usage_main =
    "usage: cowdag COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  serve     run the pre-fork HTTP server\n"
    "  run       run one DAG in-process and print its result\n"
    "  check     validate the config, its state specs and DAGs\n"
    "  cowtest   the copy-on-write experiment, without a server\n"
    "  ops       list the ops DAG nodes can use, with their documentation\n"
    "  stats     a table of a running server's workers, from its GET /stats\n"
    "  top       a live view of a running server's workers, redrawn every second\n"
    "\n"
    "`cowdag COMMAND --help` describes each; `cowdag --version` prints the version.\n";

static const char *const usage_cowtest =
    "usage: cowdag cowtest --records N [--gc MODE] [--gc-thresholds T0,T1,T2] [--immortal]\n"
    "                      [--lookups K] [--collect G] [--seed S]\n"
    "\n"
    "Builds the customer store of N records, settles the collector as a master\n"
    "does, forks a child that makes K random record look-ups and then, with\n"
    "--collect, one collection of generation G (0-2), and prints one JSON line:\n"
    "how many inherited state pages the child still shares, its process memory,\n"
    "its collector statistics and timings.  Exits with the child's status.\n"
    "\n"
    "  --records N                 records in the store (required)\n"
    "  --gc MODE                   tuned | disable | freeze (default tuned)\n"
    "  --gc-thresholds T0,T1,T2    the three generations' thresholds (default 700,10,10)\n"
    "  --immortal                  with freeze: objects existing at fork are immortal\n"
    "  --lookups K                 random look-ups in the child (default 0)\n"
    "  --collect G                 collect generation G after the look-ups\n"
    "  --seed S                    generator and look-up seed (default 42)\n";

static const char *const usage_run =
    "usage: cowdag run [-c FILE] DAG [--inputs JSON|@FILE] [--overrides JSON|@FILE] [--outputs A,B]\n"
    "\n"
    "Runs DAG once in this process, with the config's state (only the entries\n"
    "the DAG uses are loaded), and prints the JSON body POST /dags/DAG/run would\n"
    "answer, under the same limits (the config's timeout_ms and max_run_bytes).\n"
    "On a request error prints the error JSON to stderr and exits 1.\n"
    "\n"
    "  -c, --config FILE           config file (default config/cowdag.json)\n"
    "  --inputs JSON|@FILE         input values: a JSON object, or @ and a file holding one\n"
    "  --overrides JSON|@FILE      node values to use instead of computing them\n"
    "  --outputs A,B               nodes to return (default: every node nothing depends on)\n";

static const char *const usage_check =
    "usage: cowdag check [-c FILE]\n"
    "\n"
    "Validates the config, loads its state entries and compiles its DAGs; prints\n"
    "a summary (listen address, workers, gc mode, each state entry and DAG).  On\n"
    "errors prints each (file, node or key, problem) and exits 1.\n"
    "\n"
    "  -c, --config FILE           config file (default config/cowdag.json)\n";

static const char *const usage_serve =
    "usage: cowdag serve [-c FILE] [--listen HOST:PORT] [--workers N] [--gc MODE]\n"
    "                    [--gc-thresholds T0,T1,T2] [--immortal]\n"
    "\n"
    "Runs the pre-fork HTTP server in the foreground: the master loads the\n"
    "config's modules, state and DAGs, settles the collector and forks the\n"
    "workers.  Flags override the file.  Signals to the master: TERM/INT stop\n"
    "gracefully, QUIT stops at once, HUP reloads config, modules, state and\n"
    "DAGs, TTIN/TTOU add or remove a worker.  A listening socket in $COWDAG_LISTEN_FD is used as is.\n"
    "\n"
    "  -c, --config FILE           config file (default config/cowdag.json)\n"
    "  --listen HOST:PORT          address to serve (port 0: any free port)\n"
    "  --workers N                 worker processes, 1 to 256\n"
    "  --gc MODE                   tuned | disable | freeze\n"
    "  --gc-thresholds T0,T1,T2    the three generations' thresholds, e.g. 700,10,10\n"
    "  --immortal                  with freeze: inherited objects are immortal\n";

#define DEFAULT_CONFIG "config/cowdag.json"

/* Parses an unsigned decimal that must fill the whole string. */
static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_thresholds(const char *s, int t[GC_GENERATIONS])
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < GC_GENERATIONS; i++, tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (!tok || parse_u64(tok, &v) || v > 1000000000u)
            return -1;
        t[i] = (int)v;
    }
    return tok ? -1 : 0;
}

static int fail(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "cowdag %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see `cowdag %s --help`)\n", cmd);
    return 2;
}

static int cmd_cowtest(int argc, char **argv)
{
    enum { O_RECORDS = 1, O_GC, O_THRESH, O_IMMORTAL, O_LOOKUPS, O_COLLECT, O_SEED, O_HELP, O_VERSION };
    static const struct option opts[] = {
        {"records", required_argument, NULL, O_RECORDS}, {"gc", required_argument, NULL, O_GC},
        {"gc-thresholds", required_argument, NULL, O_THRESH}, {"immortal", no_argument, NULL, O_IMMORTAL},
        {"lookups", required_argument, NULL, O_LOOKUPS}, {"collect", required_argument, NULL, O_COLLECT},
        {"seed", required_argument, NULL, O_SEED}, {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION}, {NULL, 0, NULL, 0}};
    srv_cow_options o = {.seed = 42, .collect = -1, .gc = gc_default_config()};
    bool have_records = false;
    char err[128];
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_RECORDS:
            if (parse_u64(optarg, &o.records) || o.records > 100000000u)
                return fail("cowtest", "--records wants a count up to 100000000, not '%s'", optarg);
            have_records = true;
            break;
        case O_GC:
            if (ld_gc_mode_arg(optarg, &o.gc.mode, err, sizeof err) != LD_OK)
                return fail("cowtest", "%s", err);
            break;
        case O_THRESH:
            if (parse_thresholds(optarg, o.gc.thresholds))
                return fail("cowtest", "--gc-thresholds wants three integers like 700,10,10, not '%s'", optarg);
            break;
        case O_IMMORTAL:
            o.gc.immortal = true;
            break;
        case O_LOOKUPS:
            if (parse_u64(optarg, &o.lookups))
                return fail("cowtest", "--lookups wants a count, not '%s'", optarg);
            break;
        case O_COLLECT:
            if (parse_u64(optarg, &v) || v >= GC_GENERATIONS)
                return fail("cowtest", "--collect wants a generation 0, 1 or 2, not '%s'", optarg);
            o.collect = (int)v;
            break;
        case O_SEED:
            if (parse_u64(optarg, &o.seed))
                return fail("cowtest", "--seed wants an unsigned integer, not '%s'", optarg);
            break;
        case O_HELP:
            fputs(usage_cowtest, stdout);
            return 0;
        case O_VERSION:
            puts("cowdag " COWDAG_VERSION);
            return 0;
        default:
            return fail("cowtest", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail("cowtest", "unexpected argument '%s'", argv[optind]);
    if (!have_records)
        return fail("cowtest", "%s", "--records is required");
    const char *why;
    if (gc_config_check(&o.gc, &why))
        return fail("cowtest", "%s", why);
    return srv_cowtest(&o, stdout);
}

/* --help / --version / -c handling shared by run and check: returns -1 to
 * go on, or the exit code. */
static int common_option(int c, const char *usage, const char **config)
{
    switch (c) {
    case 'c':
        *config = optarg;
        return -1;
    case 'h':
        fputs(usage, stdout);
        return 0;
    case 'V':
        puts("cowdag " COWDAG_VERSION);
        return 0;
    default:
        return -2;
    }
}

static int load_config(const char *cmd, const char *path, ld_config *cfg)
{
    char err[1024];
    if (ld_config_load(path, cfg, err, sizeof err) != LD_OK) {
        fprintf(stderr, "cowdag %s: %s\n", cmd, err);
        return 1;
    }
    return 0;
}

/* A JSON argument: inline text, or @FILE. */
static json_t *json_arg(const char *arg, json_error_t *jerr)
{
    if (arg[0] == '@')
        return json_load_file(arg + 1, JSON_REJECT_DUPLICATES, jerr);
    return json_loads(arg, JSON_REJECT_DUPLICATES, jerr);
}

static int write_stdout(void *arg, const char *buf, size_t len)
{
    (void)arg;
    return fwrite(buf, 1, len, stdout) == len ? 0 : -1;
}

static int print_error_json(const dag_fail *f)
{
    dag_writer w;
    dag_writer_init_mem(&w);
    dag_write_error(&w, f);
    fprintf(stderr, "%s\n", w.buf);
    dag_writer_free(&w);
    return 1;
}

/* What `cowdag run` was asked. */
typedef struct run_cli {
    const char *config, *dag, *inputs, *overrides, *outputs;
} run_cli;

/* Reads run's flags into *o; returns -1 to go on, or the exit code. */
static int run_args(int argc, char **argv, run_cli *o)
{
    enum { O_INPUTS = 1, O_OVERRIDES, O_OUTPUTS };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"inputs", required_argument, NULL, O_INPUTS},
                                         {"overrides", required_argument, NULL, O_OVERRIDES},
                                         {"outputs", required_argument, NULL, O_OUTPUTS},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    *o = (run_cli){.config = DEFAULT_CONFIG};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == O_INPUTS)
            o->inputs = optarg;
        else if (c == O_OVERRIDES)
            o->overrides = optarg;
        else if (c == O_OUTPUTS)
            o->outputs = optarg;
        else {
            int rc = common_option(c, usage_run, &o->config);
            if (rc == -2)
                return fail("run", "unknown or incomplete option '%s'", argv[optind - 1]);
            if (rc >= 0)
                return rc;
        }
    }
    if (optind + 1 != argc)
        return fail("run", "%s", optind < argc ? "one DAG name, please" : "which DAG? (cowdag run DAG)");
    o->dag = argv[optind];
    return -1;
}

/* --outputs A,B as a JSON list; NULL with f filled (bad_json) if a name is
 * not UTF-8, which no node is called. */
static json_t *outputs_list(const char *outputs, dag_fail *f)
{
    json_t *list = json_array();
    char *copy = base_strdup(outputs), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        json_t *name = json_string(tok);
        if (!name) {
            f->code = "bad_json";
            snprintf(f->message, sizeof f->message, "--outputs: a name is not valid UTF-8");
            json_decref(list);
            list = NULL;
            break;
        }
        json_array_append_new(list, name);
    }
    free(copy);
    return list;
}

/* The request, as the HTTP route would receive it: {"inputs", "overrides",
 * "outputs"} from the flags.  A new reference, or NULL with f filled. */
static json_t *run_request(const run_cli *o, dag_fail *f)
{
    json_t *req = json_object();
    const char *what[] = {"inputs", "overrides"};
    const char *text[] = {o->inputs, o->overrides};
    for (int i = 0; i < 2; i++) {
        if (!text[i])
            continue;
        json_error_t jerr;
        json_t *v = json_arg(text[i], &jerr);
        if (!v) {
            f->code = "bad_json";
            if (jerr.line > 0)
                snprintf(f->message, sizeof f->message, "--%s: %s (line %d, column %d)", what[i], jerr.text,
                         jerr.line, jerr.column);
            else /* not a parse error: the file could not be read */
                snprintf(f->message, sizeof f->message, "--%s: %s", what[i], jerr.text);
            json_decref(req);
            return NULL;
        }
        json_object_set_new(req, what[i], v);
    }
    if (o->outputs) {
        json_t *list = outputs_list(o->outputs, f);
        if (!list) {
            json_decref(req);
            return NULL;
        }
        json_object_set_new(req, "outputs", list);
    }
    return req;
}

/* Streams the route's response body to stdout (a 96 MiB array costs a
 * 64 KiB buffer, not its text); the exit code. */
static int run_print(const dag *d, const dag_result *res)
{
    dag_fail f = {0};
    dag_writer out;
    int rc = 0;
    dag_writer_init_sink(&out, write_stdout, NULL);
    if (dag_write_response(&out, d, res, 0, (long)getpid(), &f) != DAG_OK) {
        rc = print_error_json(&f); /* nothing was written */
    } else {
        dag_write(&out, "\n", 1);
        if (dag_writer_finish(&out) != DAG_OK || fflush(stdout) != 0) {
            perror("cowdag run: stdout");
            rc = 1;
        }
    }
    dag_writer_free(&out);
    return rc;
}

/* cowdag run: flags, the request, the world (only the state the DAG uses),
 * one run under the route's limits, the response. */
static int cmd_run(int argc, char **argv)
{
    run_cli o;
    int rc = run_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    dag_fail f = {0};
    json_t *req = run_request(&o, &f);
    if (!req)
        return print_error_json(&f);
    ld_config cfg;
    if (load_config("run", o.config, &cfg)) {
        json_decref(req);
        return 1;
    }
    heap_init(NULL);
    gc_configure(&cfg.gc);
    ld_world w;
    int loaded = ld_world_load(&cfg, o.dag, LD_STATE_NEEDED, &w, stderr);
    if (loaded != LD_OK) {
        json_decref(req);
        ld_config_free(&cfg);
        if (loaded != LD_NO_DAG)
            return 1;
        f.code = "unknown_dag"; /* as the route answers */
        snprintf(f.message, sizeof f.message, "no DAG named '%.200s'", o.dag);
        return print_error_json(&f);
    }
    gc_settle(); /* as a master does before serving */
    const dag *d = ld_world_dag(&w, o.dag);
    /* The route's limits; timeout_ms from the start of the run (loading the
     * state is not part of it). */
    dag_result res;
    heap_obj *hreq;
    char err[8];
    dag_value_from_json(req, DV_ANY, &hreq, err, sizeof err); /* DV_ANY takes any JSON */
    json_decref(req);
    if (ld_world_run(&w, &cfg, d, hreq, base_now_ns(), 0, &res, &f) != DAG_OK) {
        rc = print_error_json(&f);
    } else {
        rc = run_print(d, &res);
        dag_result_free(&res);
    }
    heap_decref(hreq);
    ld_world_free(&w);
    ld_config_free(&cfg);
    return rc;
}

static const char *const kind_names[] = {"records", "table", "json"};

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config = DEFAULT_CONFIG;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        int rc = common_option(c, usage_check, &config);
        if (rc == -2)
            return fail("check", "unknown or incomplete option '%s'", argv[optind - 1]);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc)
        return fail("check", "unexpected argument '%s'", argv[optind]);
    ld_config cfg;
    if (load_config("check", config, &cfg))
        return 1;
    heap_init(NULL);
    ld_world w;
    if (ld_world_load(&cfg, NULL, LD_STATE_ALL, &w, stderr) != LD_OK) {
        ld_config_free(&cfg);
        return 1;
    }
    printf("config %s: ok (listen %s:%d, %d workers, gc %s%s)\n", cfg.path, cfg.listen_host, cfg.listen_port,
           cfg.workers, gc_mode_name(cfg.gc.mode), cfg.gc.immortal ? " + immortal" : "");
    for (size_t i = 0; i < cfg.nstate; i++) {
        heap_obj *v = heap_dict_get_str(w.state, cfg.state[i].name);
        size_t n = heap_type_of(v) == HT_TABLE ? heap_table_nrows(v)
                   : heap_type_of(v) == HT_DICT ? heap_dict_len(v)
                   : heap_type_of(v) == HT_LIST ? heap_list_len(v)
                                                : 1;
        printf("state %-16s %-8s %zu %s\n", cfg.state[i].name, kind_names[cfg.state[i].kind], n,
               heap_type_of(v) == HT_TABLE ? "rows" : "entries");
    }
    for (size_t i = 0; i < w.modules.n; i++) {
        char *copy = base_strdup(w.modules.v[i].file);
        const char *name = basename(copy);
        size_t nops = 0;
        for (size_t k = 0; k < dag_opset_count(w.modules.ops); k++)
            nops += strcmp(dag_op_module(dag_opset_at(w.modules.ops, k)), name) == 0;
        printf("module %-15s %zu ops  (%s)\n", name, nops, w.modules.v[i].file);
        free(copy);
    }
    for (size_t i = 0; i < w.ndags; i++) {
        const dag *d = w.dags[i];
        printf("dag   %-16s %u nodes, %u inputs, %u outputs  (%s)\n", d->name, d->n, d->ninputs, d->nsinks, d->file);
    }
    heap_stats hs;
    heap_get_stats(&hs);
    printf("ok: %zu state entries (%.1f MiB in the heap), %zu DAGs\n", cfg.nstate, (double)hs.live_bytes / 1048576.0,
           w.ndags);
    ld_world_free(&w);
    ld_config_free(&cfg);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    enum { O_LISTEN = 1, O_WORKERS, O_GC, O_THRESH, O_IMMORTAL };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, O_LISTEN},
                                         {"workers", required_argument, NULL, O_WORKERS},
                                         {"gc", required_argument, NULL, O_GC},
                                         {"gc-thresholds", required_argument, NULL, O_THRESH},
                                         {"immortal", no_argument, NULL, O_IMMORTAL},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config = DEFAULT_CONFIG;
    ld_overrides ov = {.workers = -1};
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            ov.listen = optarg;
            break;
        case O_WORKERS:
            if (parse_u64(optarg, &v) || v < 1 || v > LD_MAX_WORKERS)
                return fail("serve", "--workers wants 1 to 256, not '%s'", optarg);
            ov.workers = (int)v;
            break;
        case O_GC:
            ov.gc_mode = optarg;
            break;
        case O_THRESH:
            if (parse_thresholds(optarg, ov.thresholds))
                return fail("serve", "--gc-thresholds wants three integers like 700,10,10, not '%s'", optarg);
            ov.thresholds_set = true;
            break;
        case O_IMMORTAL:
            ov.immortal = true;
            break;
        default: {
            int rc = common_option(c, usage_serve, &config);
            if (rc == -2)
                return fail("serve", "unknown or incomplete option '%s'", argv[optind - 1]);
            if (rc >= 0)
                return rc;
        }
        }
    }
    if (optind < argc)
        return fail("serve", "unexpected argument '%s'", argv[optind]);
    /* The file, then the flags over it: what the master serves (and what a
     * SIGHUP reads and applies again). */
    ld_config cfg;
    if (load_config("serve", config, &cfg))
        return 1;
    char err[512];
    if (ld_config_override(&cfg, &ov, err, sizeof err) != LD_OK) {
        ld_config_free(&cfg);
        return fail("serve", "%s", err);
    }
    return srv_serve(&cfg);
}

static const char *const usage_stats =
    "usage: cowdag stats [--url URL] [--json]\n"
    "\n"
    "Fetches GET /stats from a running server and prints the master's pid, gc\n"
    "mode and state size, then one line per worker: slot, pid, gen (the\n"
    "generation of workers it belongs to: 1, then one more per HUP reload),\n"
    "status (starting, ready, draining), requests, errors (answers of 400 or\n"
    "more), RSS and PSS in MiB, shared (the share of the inherited state's pages\n"
    "still shared with the master), copied MiB (those this worker has copied)\n"
    "and collections (per collector generation, 0/1/2).  Memory figures are at\n"
    "most stats_interval_ms old.\n"
    "\n"
    "  --url URL                   the server (default http://127.0.0.1:8080)\n"
    "  --json                      print the /stats document as served\n";

static double mib(json_t *o, const char *k) { return (double)json_integer_value(json_object_get(o, k)) / 1048576.0; }

static int cmd_stats(int argc, char **argv)
{
    enum { O_URL = 1, O_JSON };
    static const struct option opts[] = {{"url", required_argument, NULL, O_URL},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *url = "http://127.0.0.1:8080", *unused = NULL;
    bool raw = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_URL)
            url = optarg;
        else if (c == O_JSON)
            raw = true;
        else {
            int rc = common_option(c == 'c' ? '?' : c, usage_stats, &unused);
            if (rc == -2)
                return fail("stats", "unknown or incomplete option '%s'", argv[optind - 1]);
            if (rc >= 0)
                return rc;
        }
    }
    if (optind < argc)
        return fail("stats", "unexpected argument '%s'", argv[optind]);
    char err[512], *body;
    int status;
    if (srv_http_get(url, "/stats", &status, &body, err, sizeof err) != SRV_OK) {
        fprintf(stderr, "cowdag stats: %s\n", err);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "cowdag stats: %s answered %d: %s\n", url, status, body);
        free(body);
        return 1;
    }
    if (raw) {
        printf("%s\n", body);
        free(body);
        return 0;
    }
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);
    free(body);
    if (!doc) {
        fprintf(stderr, "cowdag stats: the server's /stats is not JSON: %s\n", jerr.text);
        return 1;
    }
    json_t *m = json_object_get(doc, "master"), *mgc = json_object_get(m, "gc");
    printf("master pid %lld, gc %s%s, state %.1f MiB in %lld pages\n",
           (long long)json_integer_value(json_object_get(m, "pid")),
           json_string_value(json_object_get(mgc, "mode")) ? json_string_value(json_object_get(mgc, "mode")) : "?",
           json_is_true(json_object_get(mgc, "immortal")) ? " + immortal" : "", mib(m, "state_bytes"),
           (long long)json_integer_value(json_object_get(m, "state_pages")));
    printf("%-4s %-8s %-4s %-9s %10s %8s %9s %9s %8s %11s %s\n", "slot", "pid", "gen", "status", "requests",
           "errors", "RSS MiB", "PSS MiB", "shared", "copied MiB", "collections");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        json_t *mem = json_object_get(w, "memory"), *st = json_object_get(mem, "state"),
               *coll = json_object_get(json_object_get(w, "gc"), "collections");
        printf("%-4lld %-8lld %-4lld %-9s %10lld %8lld %9.1f %9.1f %7.1f%% %11.1f %lld/%lld/%lld\n",
               (long long)json_integer_value(json_object_get(w, "id")),
               (long long)json_integer_value(json_object_get(w, "pid")),
               (long long)json_integer_value(json_object_get(w, "generation")),
               json_string_value(json_object_get(w, "status")) ? json_string_value(json_object_get(w, "status")) : "?",
               (long long)json_integer_value(json_object_get(w, "requests")),
               (long long)json_integer_value(json_object_get(w, "errors")), mib(mem, "rss_bytes"),
               mib(mem, "pss_bytes"), 100.0 * json_number_value(json_object_get(st, "shared_ratio")),
               (double)json_integer_value(json_object_get(st, "private_pages")) * 4096.0 / 1048576.0,
               (long long)json_integer_value(json_array_get(coll, 0)),
               (long long)json_integer_value(json_array_get(coll, 1)),
               (long long)json_integer_value(json_array_get(coll, 2)));
    }
    json_decref(doc);
    return 0;
}

static const char *const usage_ops =
    "usage: cowdag ops [-c FILE]\n"
    "\n"
    "Lists every op a DAG node can use: its name, how many args it takes, its\n"
    "params (? marks an optional one) and what it computes.  With -c, the ops\n"
    "of the config's modules follow the built-ins, each marked with its module.\n"
    "\n"
    "  -c, --config FILE   also load this config's modules\n";

static void print_op(const dag_op *op)
{
    if (op->max_args < 0)
        printf("%s (%d or more args)", op->name, op->min_args);
    else if (op->min_args == op->max_args)
        printf("%s (%d args)", op->name, op->min_args);
    else
        printf("%s (%d-%d args)", op->name, op->min_args, op->max_args);
    for (const dag_param_spec *p = op->params; p && p->name; p++)
        printf("%s %s%s", p == op->params ? "; params:" : ",", p->name, p->required ? "" : "?");
    if (dag_op_module(op))
        printf(" [module %s]", dag_op_module(op));
    printf("\n    %s\n\n", op->doc);
}

static int cmd_ops(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        int rc = common_option(c, usage_ops, &config);
        if (rc == -2)
            return fail("ops", "unknown or incomplete option '%s'", argv[optind - 1]);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc)
        return fail("ops", "no arguments, please (got '%s')", argv[optind]);
    ld_config cfg = {0};
    ld_modules mods = {0};
    if (config) {
        if (load_config("ops", config, &cfg))
            return 1;
        heap_init(NULL);
        dag_errors errs = {0};
        if (ld_modules_load(&cfg, &mods, &errs) != LD_OK) {
            dag_errors_print(&errs, stderr);
            dag_errors_free(&errs);
            ld_config_free(&cfg);
            return 1;
        }
    }
    for (size_t i = 0; i < dag_op_count(); i++)
        print_op(dag_op_at(i));
    for (size_t i = 0; i < dag_opset_count(mods.ops); i++)
        print_op(dag_opset_at(mods.ops, i));
    if (config) {
        ld_modules_free(&mods);
        ld_config_free(&cfg);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        puts("cowdag " COWDAG_VERSION);
        return 0;
    }
    if (strcmp(cmd, "cowtest") == 0)
        return cmd_cowtest(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "ops") == 0)
        return cmd_ops(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "top") == 0)
        return srv_top(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "cowdag: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
