/* bench_dag: the DAG engine's speed figures for bench/RESULTS.md, measured
 * side by side in one run (`make bench` runs it through bench/run.sh).
 *
 *   marketing  in-process runs of Hamilton's hello world: µs per run
 *   score      customer_score with 32 random ids over 200,000 records
 *   parse      a customer_score body parsed: jansson, jansson + conversion
 *              to heap values, simdjson straight into heap values
 *   request    one customer_score request phase by phase (parse, run,
 *              response), the route's path beside the one before it, and
 *              the cost of a random cache line
 *   chain      the 1000-node chain at 96 MiB per array against a baseline
 *              doing the same reads and writes on two preallocated buffers
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "dag/dag.h"
#include "dag/json_in.h"
#include "heap/gc.h"
#include "load/state.h"

/* The process's CPU time in ns: on a machine shared with other work, a
 * batch's CPU time leaves out the time it waited for a core, which its
 * wall time counts. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static dag *load(const char *path)
{
    static const char *const states[] = {"customers"};
    dag_errors errs = {0};
    dag *d = dag_load_file(path, states, 1, &errs);
    if (!d) {
        dag_errors_print(&errs, stderr);
        exit(1);
    }
    return d;
}

/* Runs `d` on requests[i % nreq] in batches; median µs per run over the
 * batches, with and without writing the JSON response. */
static void time_runs(const dag *d, json_t **requests, size_t nreq, const dag_run_opts *opts, int batches,
                      int per_batch, double *run_us, double *with_json_us)
{
    double *a = calloc((size_t)batches, sizeof(double)), *b = calloc((size_t)batches, sizeof(double));
    dag_result res;
    dag_fail f;
    size_t k = 0;
    for (int bt = 0; bt < batches; bt++) {
        uint64_t t0 = base_now_ns();
        for (int i = 0; i < per_batch; i++, k++) {
            if (dag_run(d, requests[k % nreq], opts, &res, &f) != DAG_OK) {
                fprintf(stderr, "run failed: %s\n", f.message);
                exit(1);
            }
            dag_result_free(&res);
        }
        uint64_t t1 = base_now_ns();
        for (int i = 0; i < per_batch; i++, k++) {
            dag_run(d, requests[k % nreq], opts, &res, &f);
            dag_writer w;
            dag_writer_init_mem(&w);
            dag_write_response(&w, d, &res, 0, 1, &f);
            dag_writer_free(&w);
            dag_result_free(&res);
        }
        uint64_t t2 = base_now_ns();
        a[bt] = (double)(t1 - t0) / 1e3 / per_batch;
        b[bt] = (double)(t2 - t1) / 1e3 / per_batch;
    }
    *run_us = median(a, (size_t)batches);
    *with_json_us = median(b, (size_t)batches);
    free(a);
    free(b);
}

static void bench_marketing(void)
{
    heap_init(NULL);
    dag *d = load("config/dags/marketing.json");
    json_error_t jerr;
    json_t *inputs = json_load_file("config/inputs/marketing.json", 0, &jerr);
    json_t *req = json_pack("{s:o, s:[s,s,s]}", "inputs", inputs, "outputs", "avg_3wk_spend", "spend_per_signup",
                            "spend_zero_mean_unit_variance");
    double run_us, json_us;
    time_runs(d, &req, 1, NULL, 41, 5000, &run_us, &json_us);
    printf("| marketing (Hamilton's hello world, 3 outputs) | %.2f | %.0f | %.2f |\n", run_us, 1e6 / run_us, json_us);
    json_decref(req);
    dag_free(d);
    heap_destroy();
}

/* A fresh heap holding the state customer_score reads (200,000 customers),
 * settled as a master settles it: freeze + immortal.  The state dict is
 * borrowed: heap_destroy ends it. */
static heap_obj *score_state(void)
{
    heap_init(NULL);
    gc_configure(&(gc_config){.mode = GC_DISABLE, .thresholds = {700, 10, 10}, .full_ratio = 0.25});
    heap_obj *state = heap_dict_new();
    heap_dict_set_str_new(state, "customers", ld_state_generate_records(200000, 42));
    gc_configure(&(gc_config){.mode = GC_FREEZE, .thresholds = {700, 10, 10}, .full_ratio = 0.25, .immortal = true});
    gc_settle();
    return state;
}

static void bench_score(void)
{
    heap_obj *state = score_state();
    dag *d = load("config/dags/customer_score.json");
    enum { NREQ = 1024 };
    json_t *reqs[NREQ];
    uint64_t x = 7;
    for (int r = 0; r < NREQ; r++) {
        json_t *ids = json_array();
        for (int i = 0; i < 32; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            json_array_append_new(ids, json_integer((json_int_t)((x >> 33) % 200000)));
        }
        reqs[r] = json_pack("{s:{s:o}}", "inputs", "ids", ids);
    }
    dag_run_opts opts = {.state = state};
    double run_us, json_us;
    time_runs(d, reqs, NREQ, &opts, 41, 2000, &run_us, &json_us);
    printf("| customer_score, 32 random ids of 200,000 | %.2f | %.0f | %.2f |\n", run_us, 1e6 / run_us, json_us);
    for (int r = 0; r < NREQ; r++)
        json_decref(reqs[r]);
    dag_free(d);
    heap_destroy();
}

/* The request bodies wrk sends (bench/score.lua): 32 random ids of
 * 200,000, 222 bytes for the first. */
enum { NREQ = 1024, BATCHES = 41, PER_BATCH = 2000 };
static char body[NREQ][400];
static size_t blen[NREQ];

static void make_bodies(void)
{
    uint64_t x = 11;
    for (int r = 0; r < NREQ; r++) {
        int n = snprintf(body[r], sizeof body[r], "{\"inputs\":{\"ids\":[");
        for (int i = 0; i < 32; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            n += snprintf(body[r] + n, sizeof body[r] - (size_t)n, "%s%d", i ? "," : "", (int)((x >> 33) % 200000));
        }
        n += snprintf(body[r] + n, sizeof body[r] - (size_t)n, "]}}");
        blen[r] = (size_t)n;
    }
}

/* Parsing a body into heap values, four ways, alternating batch by batch:
 * jansson alone (the tree, dropped), jansson then the conversion (the
 * route before), dag_json_parse (simdjson, straight into the heap: a list
 * of 32 ints) and dag_request_parse (the same, the ids packed into one
 * int64 array: the route now). */
static void bench_parse(void)
{
    heap_init(NULL);
    make_bodies();
    double ph[4][BATCHES], cpu[4][BATCHES];
    for (int bt = 0; bt < BATCHES; bt++) {
        for (int way = 0; way < 4; way++) {
            uint64_t c0 = cpu_ns(), t0 = base_now_ns();
            for (int i = 0; i < PER_BATCH; i++) {
                size_t r = (size_t)(bt * PER_BATCH + i) % NREQ;
                json_error_t jerr;
                heap_obj *o = NULL;
                int rc = 0;
                if (way == 0) {
                    json_t *j = json_loadb(body[r], blen[r], JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
                    rc = j ? 0 : -1;
                    json_decref(j);
                } else if (way == 1) {
                    rc = dag_json_parse_jansson(body[r], blen[r], &o, &jerr);
                } else if (way == 2) {
                    rc = dag_json_parse(body[r], blen[r], &o, &jerr);
                } else {
                    rc = dag_request_parse(body[r], blen[r], &o, &jerr);
                }
                if (rc != 0) {
                    fprintf(stderr, "parse failed\n");
                    exit(1);
                }
                heap_xdecref(o);
            }
            ph[way][bt] = (double)(base_now_ns() - t0) / 1e3 / PER_BATCH;
            cpu[way][bt] = (double)(cpu_ns() - c0) / 1e3 / PER_BATCH;
        }
    }
    printf("| %zu-byte body | jansson tree | jansson + conversion to heap values | simdjson into heap values | "
           "simdjson into a request value (ids packed) |\n",
           blen[0]);
    printf("|---|---|---|---|---|\n| µs | %.3f | %.3f | %.3f | %.3f |\n", median(ph[0], BATCHES),
           median(ph[1], BATCHES), median(ph[2], BATCHES), median(ph[3], BATCHES));
    printf("| µs of CPU | %.3f | %.3f | %.3f | %.3f |\n", median(cpu[0], BATCHES), median(cpu[1], BATCHES),
           median(cpu[2], BATCHES), median(cpu[3], BATCHES));
    heap_destroy();
}

/* One request, phase by phase; `fast` is the route's path (dag_json_parse
 * and dag_run_value), else the one before it (jansson and dag_run). */
static void one_request(const dag *d, const dag_run_opts *opts, size_t r, bool fast, uint64_t t[4])
{
    uint64_t t0 = base_now_ns();
    json_error_t jerr;
    json_t *jreq = NULL;
    heap_obj *hreq = NULL;
    int rc = fast ? dag_request_parse(body[r], blen[r], &hreq, &jerr)
                  : (jreq = json_loadb(body[r], blen[r], JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr)) ? 0 : -1;
    uint64_t t1 = base_now_ns();
    dag_result res;
    dag_fail f;
    if (rc != 0 || (fast ? dag_run_value(d, hreq, opts, &res, &f) : dag_run(d, jreq, opts, &res, &f)) != DAG_OK) {
        fprintf(stderr, "request failed\n");
        exit(1);
    }
    json_decref(jreq);
    heap_xdecref(hreq);
    uint64_t t2 = base_now_ns();
    dag_writer w;
    dag_writer_init_mem(&w);
    dag_writer_reserve(&w, 4096);
    dag_write_response(&w, d, &res, 0, 1, &f);
    dag_writer_free(&w);
    dag_result_free(&res);
    uint64_t t3 = base_now_ns();
    t[0] += t1 - t0, t[1] += t2 - t1, t[2] += t3 - t2, t[3] += t3 - t0;
}

/* What one customer_score request costs in user space, in-process, phase
 * by phase: parsing the body wrk sends, the run, the response -- the three
 * things the bare libmicrohttpd server of bench/load.sh does not do -- by
 * the route's path and by the one before it (jansson), alternating batch
 * by batch.  Then the cost of one random cache line read in a 256 MiB
 * region with 64 reads in flight (the best case for memory-bound
 * look-ups): a run reads about 14 lines per record, 450 for 32 records. */
static void bench_request(void)
{
    heap_obj *state = score_state();
    dag *d = load("config/dags/customer_score.json");
    make_bodies();
    dag_run_opts opts = {.state = state};
    double ph[2][4][BATCHES], cpu[2][BATCHES];
    for (int bt = 0; bt < BATCHES; bt++) {
        for (int way = 0; way < 2; way++) {
            uint64_t t[4] = {0}, c0 = cpu_ns();
            for (int i = 0; i < PER_BATCH; i++)
                one_request(d, &opts, (size_t)(bt * PER_BATCH + i) % NREQ, way == 1, t);
            for (int k = 0; k < 4; k++)
                ph[way][k][bt] = (double)t[k] / 1e3 / PER_BATCH;
            cpu[way][bt] = (double)(cpu_ns() - c0) / 1e3 / PER_BATCH;
        }
    }
    printf("| path (%zu-byte body) | parse | run | response | total | total, CPU time |\n|---|---|---|---|---|---|\n",
           blen[0]);
    static const char *const names[] = {"jansson tree, dag_run", "dag_request_parse, dag_run_value (the route now)"};
    for (int way = 0; way < 2; way++)
        printf("| %s | %.2f µs | %.2f µs | %.2f µs | %.2f µs | %.2f µs |\n", names[way], median(ph[way][0], BATCHES),
               median(ph[way][1], BATCHES), median(ph[way][2], BATCHES), median(ph[way][3], BATCHES),
               median(cpu[way], BATCHES));
    printf("\n");
    dag_free(d);
    heap_destroy();

    /* One random line: 64 independent reads at a time over 256 MiB. */
    uint64_t x = 11;
    size_t size = (size_t)256 << 20;
    unsigned char *m = malloc(size);
    memset(m, 1, size);
    double per[BATCHES];
    unsigned sink = 0;
    for (int bt = 0; bt < BATCHES; bt++) {
        uint64_t t0 = base_now_ns();
        for (int it = 0; it < 2000; it++) {
            size_t at[64];
            for (int k = 0; k < 64; k++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                at[k] = (size_t)(x >> 20) % size;
            }
            for (int k = 0; k < 64; k++)
                sink += m[at[k]];
        }
        per[bt] = (double)(base_now_ns() - t0) / (2000.0 * 64);
    }
    printf("A random cache line read from 256 MiB, 64 in flight: %.1f ns (median of %d batches)%s\n", median(per, BATCHES),
           BATCHES, sink ? "" : " ");
    free(m);
}

/* The baseline: fill x, then 999 times y = x * 1.01 and swap -- the same
 * reads and writes as the chain, on two buffers allocated and faulted in
 * beforehand. */
static double baseline_ms(size_t n)
{
    double *x = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double));
    memset(x, 0, n * sizeof(double));
    memset(y, 0, n * sizeof(double));
    uint64_t t0 = base_now_ns();
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0;
    for (int k = 1; k < 1000; k++) {
        double *restrict src = x, *restrict dst = y;
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] * 1.01;
        y = x;
        x = dst;
    }
    double ms = (double)(base_now_ns() - t0) / 1e6;
    if (x[n - 1] < 20000) /* 1.01^999: keeps the loop */
        fprintf(stderr, "baseline went wrong\n");
    free(x);
    free(y);
    return ms;
}

static double chain_ms(const dag *d, int size_mb, uint64_t *peak)
{
    json_t *req = json_pack("{s:{s:i}, s:[s]}", "inputs", "size_mb", size_mb, "outputs", "foo_999");
    dag_result res;
    dag_fail f;
    uint64_t t0 = base_now_ns();
    if (dag_run(d, req, NULL, &res, &f) != DAG_OK) {
        fprintf(stderr, "chain failed: %s\n", f.message);
        exit(1);
    }
    double ms = (double)(base_now_ns() - t0) / 1e6;
    *peak = res.peak_bytes;
    dag_result_free(&res);
    json_decref(req);
    return ms;
}

static void bench_chain(int size_mb, int reps)
{
    heap_init(NULL);
    dag *d = load("config/dags/chain.json");
    size_t n = (size_t)size_mb * 131072;
    double c[9], b[9];
    uint64_t peak = 0;
    for (int r = 0; r < reps; r++) { /* interleaved */
        c[r] = chain_ms(d, size_mb, &peak);
        b[r] = baseline_ms(n);
    }
    double cm = median(c, (size_t)reps), bm = median(b, (size_t)reps);
    printf("| chain, %d MiB arrays, foo_999 | %.0f | %.0f | %.2fx | %.1f MiB |\n", size_mb, cm, bm, cm / bm,
           (double)peak / 1048576.0);
    dag_free(d);
    heap_destroy();
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || strcmp(only, "marketing") == 0 || strcmp(only, "score") == 0) {
        printf("## In-process DAG runs (median of 41 batches)\n\n");
        printf("| DAG | µs per run | runs per second | µs per run with the JSON response |\n|---|---|---|---|\n");
        if (!only || strcmp(only, "marketing") == 0)
            bench_marketing();
        if (!only || strcmp(only, "score") == 0)
            bench_score();
        printf("\n");
    }
    if (!only || strcmp(only, "parse") == 0) {
        printf("## Parsing a customer_score request body (median of 41 batches, alternating)\n\n");
        bench_parse();
        printf("\n");
    }
    if (!only || strcmp(only, "request") == 0) {
        printf("## One customer_score request in user space, in-process (median of 41 batches)\n\n");
        bench_request();
        printf("\n");
    }
    if (!only || strcmp(only, "chain") == 0) {
        int mb = argc > 2 ? atoi(argv[2]) : 96;
        printf("## chain against a preallocated two-buffer baseline (median of 3, interleaved)\n\n");
        printf("| run | chain ms | baseline ms | chain ÷ baseline | peak heap |\n|---|---|---|---|---|\n");
        bench_chain(mb, 3);
        printf("\n");
    }
    return 0;
}
