/* test_server: `cowdag serve` answering requests: its routes, errors and HTTP
 * conformance on one shared server, /stats and the sharing figures against smaps,
 * and large responses streamed (harness: tests/server_support.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/server_support.h"
#include "tests/support.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ====================================================================== */
/* {  A server a group of tests shares                                     */
/* ====================================================================== */

static server group_srv;   /* the server a group of tests shares */
static bool group_test_ok; /* the current group test reached its end */
static pid_t group_pids[MAX_PIDS];
static int group_npids;

/* Group tests: the server is the group's; a failed test shows its log. */
static int in_group_setup(void **state)
{
    (void)state;
    group_test_ok = false;
    return 0;
}

static int in_group_teardown(void **state)
{
    (void)state;
    if (!group_test_ok)
        dump_log(&group_srv, "the test failed");
    return 0;
}

static int group_setup_default(void **state)
{
    (void)state;
    server_start(&group_srv, FIXTURES "/cowdag.json", 0);
    group_npids = wait_workers(&group_srv, 2, HANG_MS, group_pids);
    if (group_npids != 2) {
        dump_log(&group_srv, "the workers did not start");
        server_stop(&group_srv);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(&group_srv);
    return 0;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Routes                                                               */
/* ====================================================================== */

static void run_answers_outputs_and_stats(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing",
                             "{\"inputs\": {\"spend\": [10, 10, 20, 40, 40, 50], \"signups\": [1, 10, 50, 100, 200, 400]},"
                             " \"outputs\": [\"spend_mean\", \"avg_3wk_spend\"]}",
                             &r),
                     0);
    expect_status(&r, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "dag")), "marketing");
    json_t *out = json_object_get(r.json, "outputs");
    assert_int_equal(json_object_size(out), 2);
    assert_float_equal(json_number_value(json_object_get(out, "spend_mean")), 28.333333333333332, 1e-9);
    json_t *rolling = json_object_get(out, "avg_3wk_spend");
    assert_true(json_is_array(rolling));
    assert_int_equal(json_array_size(rolling), 6);
    assert_float_equal(json_number_value(json_array_get(rolling, 2)), 40.0 / 3.0, 1e-9);
    /* the plan: inputs spend and window (counted as executed), then mean and rolling_mean */
    assert_int_equal(run_stat(&r, "nodes_executed"), 4);
    assert_true(run_stat(&r, "elapsed_us") >= 0);
    assert_true(run_stat(&r, "peak_bytes") >= 0);
    long long worker = run_stat(&r, "worker");
    assert_true(worker == 0 || worker == 1);
    /* stats.pid names the worker that answered: a child of the master */
    pid_t kids[MAX_PIDS];
    int n = workers_of(&group_srv, kids);
    assert_true(pid_in((pid_t)run_stat(&r, "pid"), kids, n));
    reply_free(&r);
    group_test_ok = true;
}

static void run_accepts_a_chunked_body(void **state)
{
    (void)state;
    const char *body = "{\"inputs\": {\"ids\": [1, 2, 3]}}";
    reply r;
    assert_int_equal(http_chunked(group_srv.port, "/dags/customer_score/run", body, strlen(body), 7, &r), 0);
    expect_status(&r, 200);
    json_t *scores = json_object_get(json_object_get(r.json, "outputs"), "scores");
    assert_true(json_is_array(scores));
    assert_int_equal(json_array_size(scores), 3);
    reply_free(&r);
    group_test_ok = true;
}

static void dags_lists_every_dag(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(json_is_array(r.json));
    const char *want[] = {"big", "customer_score", "marketing", "slow", "version"};
    assert_int_equal(json_array_size(r.json), 5);
    for (size_t k = 0; k < 5; k++) {
        bool found = false;
        size_t i;
        json_t *d;
        json_array_foreach(r.json, i, d)
        {
            if (json_is_string(json_object_get(d, "name")) &&
                strcmp(json_string_value(json_object_get(d, "name")), want[k]) == 0) {
                found = true;
                assert_true(json_is_string(json_object_get(d, "description")));
                assert_true(json_is_object(json_object_get(d, "inputs")));
                assert_true(json_is_array(json_object_get(d, "outputs")));
            }
        }
        if (!found)
            print_message("GET /dags lacks %s\n", want[k]);
        assert_true(found);
    }
    reply_free(&r);
    group_test_ok = true;
}

static void dag_detail_lists_nodes(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags/customer_score", NULL, &r), 0);
    expect_status(&r, 200);
    json_t *nodes = json_object_get(r.json, "nodes");
    assert_true(json_is_array(nodes));
    assert_int_equal(json_array_size(nodes), 9); /* 8 nodes + the input */
    bool saw_lookup = false;
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        assert_true(json_is_string(json_object_get(n, "kind")));
        assert_true(json_is_array(json_object_get(n, "deps")));
        if (strcmp(json_string_value(json_object_get(n, "name")), "records") == 0) {
            saw_lookup = true;
            assert_string_equal(json_string_value(json_object_get(n, "kind")), "op");
            assert_string_equal(json_string_value(json_object_get(n, "op")), "lookup");
            assert_int_equal(json_array_size(json_object_get(n, "deps")), 2);
        }
    }
    assert_true(saw_lookup);
    reply_free(&r);
    group_test_ok = true;
}

static void dag_dot_is_a_digraph(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags/marketing/dot", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(strncmp(r.body, "digraph ", 8) == 0);
    assert_non_null(strstr(r.body, "\"spend_mean\" -> \"spend_zero_mean\";"));
    assert_true(r.len > 0 && r.body[r.len - 2] == '}');
    reply_free(&r);
    group_test_ok = true;
}

static void healthz_says_ok(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/healthz", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(strncmp(r.body, "ok", 2) == 0);
    reply_free(&r);
    group_test_ok = true;
}

static void gc_collect_is_forbidden_without_admin(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
    expect_error(&r, 403, "forbidden");
    reply_free(&r);
    group_test_ok = true;
}

/* /stats once every worker's sample attributes its copies to types (from
 * a worker's second sample on: the first is taken before the page map). */
static json_t *stats_with_types(int port, int nworkers)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        json_t *doc = stats_sampled(port, nworkers);
        size_t i, typed = 0;
        json_t *w;
        json_array_foreach(json_object_get(doc, "workers"), i, w) typed +=
            json_object_get(json_object_get(json_object_get(w, "memory"), "state"), "copied_by_type") != NULL;
        if ((int)typed >= nworkers || now_ms() > deadline)
            return doc;
        json_decref(doc);
        sleep_ms(50);
    }
}

static void stats_and_metrics_describe_every_worker(void **state)
{
    (void)state;
    json_t *doc = stats_with_types(group_srv.port, 2);
    json_t *m = json_object_get(doc, "master");
    assert_int_equal(json_integer_value(json_object_get(m, "pid")), group_srv.pid);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "gc"), "mode")), "freeze");
    assert_true(json_integer_value(json_object_get(m, "state_bytes")) > 0);
    json_t *ws = json_object_get(doc, "workers");
    assert_int_equal(json_array_size(ws), 2);
    pid_t pids[MAX_PIDS];
    int n = workers_of(&group_srv, pids);
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w)
    {
        assert_true(pid_in((pid_t)json_integer_value(json_object_get(w, "pid")), pids, n));
        assert_string_equal(json_string_value(json_object_get(w, "status")), "ready");
        json_t *st = json_object_get(json_object_get(w, "memory"), "state");
        assert_true(json_integer_value(json_object_get(st, "pages")) > 0);
        assert_true(json_is_real(json_object_get(st, "shared_ratio")));
        /* the copied pages by type add up to the private pages */
        json_int_t only = 0;
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(st, "copied_by_type"), k, v) only +=
            json_integer_value(json_object_get(v, "only"));
        assert_int_equal(json_object_size(json_object_get(st, "copied_by_type")), 8);
        assert_int_equal(only + json_integer_value(json_object_get(st, "copied_mixed_pages")) +
                             json_integer_value(json_object_get(st, "copied_empty_pages")),
                         json_integer_value(json_object_get(st, "private_pages")));
        assert_true(json_is_integer(json_object_get(w, "sampled_ms_ago")));
        /* one interval, and one more for taking the sample on a loaded machine */
        assert_true(json_integer_value(json_object_get(w, "sampled_ms_ago")) <= STATS_INTERVAL_MS * 2);
    }
    json_decref(doc);
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/metrics", NULL, &r), 0);
    expect_status(&r, 200);
    char type[128] = "";
    reply_header(&r, "Content-Type", type, sizeof type);
    assert_non_null(strstr(type, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE cowdag_request_duration_seconds histogram"));
    assert_non_null(strstr(r.body, "cowdag_worker_state_pages{worker=\"0\""));
    reply_free(&r);
    group_test_ok = true;
}

/* `cowdag stats`: one row per worker in the table; --json is the document. */
static void cowdag_stats_prints_a_row_per_worker(void **state)
{
    (void)state;
    json_decref(stats_sampled(group_srv.port, 2));
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "%s stats --url http://127.0.0.1:%d 2>&1", cowdag_bin(), group_srv.port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int rows = 0;
    bool header = false, master = false;
    while (fgets(line, sizeof line, p)) {
        header |= strncmp(line, "slot", 4) == 0 && strstr(line, "shared") != NULL;
        master |= strncmp(line, "master pid", 10) == 0;
        rows += strstr(line, " ready ") != NULL;
    }
    assert_int_equal(pclose(p), 0);
    assert_true(header && master);
    assert_int_equal(rows, 2);
    snprintf(cmd, sizeof cmd, "%s stats --json --url http://127.0.0.1:%d", cowdag_bin(), group_srv.port);
    p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t jerr;
    json_t *doc = json_loadf(p, 0, &jerr);
    assert_int_equal(pclose(p), 0);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "workers")), 2);
    json_decref(doc);
    /* nobody there: a message and exit 1 */
    snprintf(cmd, sizeof cmd, "%s stats --url http://127.0.0.1:1 >/dev/null 2>&1", cowdag_bin());
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    group_test_ok = true;
}

/* --- the sharing figures, checked against /proc/PID/smaps --------------- */

static double least_private_share(const server *srv)
{
    json_t *doc = stats_sampled(srv->port, 2);
    double least = 1;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        json_t *st = json_object_get(json_object_get(w, "memory"), "state");
        double share = (double)json_integer_value(json_object_get(st, "private_pages")) /
                       (double)json_integer_value(json_object_get(st, "pages"));
        least = share < least ? share : least;
    }
    json_decref(doc);
    return least;
}

static void tuned_full_collection_copies_the_tracked_pages_of_every_worker(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/tuned.json", 2);
    pid_t pids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, pids), 2);
    /* A full collection in each worker: ask until both have answered. */
    pid_t done[2] = {0, 0};
    uint64_t deadline = now_ms() + HANG_MS;
    while (!(done[0] && done[1]) && now_ms() < deadline) {
        reply r;
        assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
        expect_status(&r, 200);
        pid_t p = (pid_t)json_integer_value(json_object_get(r.json, "pid"));
        if (p != done[0] && p != done[1])
            done[done[0] ? 1 : 0] = p;
        reply_free(&r);
    }
    assert_true(done[0] && done[1]);
    check_against_smaps(&T.srv);
    assert_true(least_private_share(&T.srv) >= 0.15);
    T.passed = true;
}

static void freeze_immortal_keeps_the_state_shared_through_10000_requests(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/sharing.json", 2);
    pid_t pids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, pids), 2);
    run_dag_random_ids(T.srv.port, "customer_score", 10000);
    double worst = check_against_smaps(&T.srv);
    assert_true(worst <= 0.01);
    T.passed = true;
}

static void gc_collect_answers_when_admin(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/admin.json", 1);
    reply r;
    assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
    expect_status(&r, 200);
    assert_true(json_is_integer(json_object_get(r.json, "collected")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "generation")), 2);
    reply_free(&r);
    /* a generation that does not exist is refused */
    assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=7", NULL, &r), 0);
    expect_error(&r, 422, "type_error");
    reply_free(&r);
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Errors: each from a real malformed request, on one server            */
/* ====================================================================== */

static void bad_json_is_400(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing", "{\"inputs\": {", &r), 0);
    expect_error(&r, 400, "bad_json");
    reply_free(&r);
    group_test_ok = true;
}

static void deep_nesting_is_400_and_the_worker_survives(void **state)
{
    (void)state;
    size_t n = 100000;
    assert_true(n < MAX_BODY_BYTES);
    char *body = malloc(n + 1);
    memset(body, '[', n);
    body[n] = '\0';
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing", body, &r), 0);
    free(body);
    expect_error(&r, 400, "bad_json");
    reply_free(&r);
    pid_t now[MAX_PIDS];
    int k = workers_of(&group_srv, now);
    assert_int_equal(k, group_npids);
    assert_memory_equal(now, group_pids, sizeof(pid_t) * (size_t)k);
    assert_false(log_has(&group_srv, "killed by signal"));
    assert_int_equal(http(group_srv.port, "GET", "/healthz", NULL, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    group_test_ok = true;
}

static void wrong_types_are_422_type_error(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"marketing", "{\"inputs\": {\"spend\": \"abc\", \"signups\": [1, 2]}}"},                 /* array input: a string */
        {"marketing", "{\"inputs\": {\"spend\": [1, 2], \"signups\": [1, 2], \"window\": 1.5}}"}, /* int input: a float */
        {"version", "[1, 2, 3]"},                                                                 /* request: not an object */
        {"version", "{\"inputs\": [1]}"},                                                         /* inputs: not an object */
        {"version", "{\"outputs\": \"answer\"}"},                                                 /* outputs: not an array */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        reply r;
        assert_int_equal(run_dag(group_srv.port, cases[i][0], cases[i][1], &r), 0);
        expect_error(&r, 422, "type_error");
        reply_free(&r);
    }
    group_test_ok = true;
}

static void unknown_dag_is_404(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "no_such_dag", "{}", &r), 0);
    expect_error(&r, 404, "unknown_dag");
    reply_free(&r);
    assert_int_equal(http(group_srv.port, "GET", "/dags/no_such_dag", NULL, &r), 0);
    expect_error(&r, 404, "unknown_dag");
    reply_free(&r);
    group_test_ok = true;
}

static void unknown_route_is_404_not_found(void **state)
{
    (void)state;
    const char *paths[] = {"/nope", "/dags/marketing/nope", "/admin"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        reply r;
        assert_int_equal(http(group_srv.port, "GET", paths[i], NULL, &r), 0);
        expect_error(&r, 404, "not_found");
        reply_free(&r);
    }
    group_test_ok = true;
}

static void unknown_output_is_422(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "version", "{\"outputs\": [\"answer\", \"no_such_node\"]}", &r), 0);
    expect_error(&r, 422, "unknown_output");
    assert_string_equal(error_node(&r), "no_such_node");
    reply_free(&r);
    group_test_ok = true;
}

static void missing_input_is_422(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "marketing", "{\"inputs\": {\"spend\": [1, 2]}}", &r), 0);
    expect_error(&r, 422, "missing_input");
    assert_string_equal(error_node(&r), "signups");
    reply_free(&r);
    group_test_ok = true;
}

static void op_error_is_422_naming_the_node(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(run_dag(group_srv.port, "customer_score", "{\"inputs\": {\"ids\": [1, 99999]}}", &r), 0);
    expect_error(&r, 422, "op_error");
    assert_non_null(error_node(&r));
    assert_string_equal(error_node(&r), "records");
    reply_free(&r);
    group_test_ok = true;
}

static void limit_is_422_limit_exceeded(void **state)
{
    (void)state;
    reply r;
    /* fill(size_mb * 131072) with 4096 MiB: 2^29 elements, over the 2^28 limit */
    assert_int_equal(run_dag(group_srv.port, "slow", "{\"inputs\": {\"size_mb\": 4096}}", &r), 0);
    expect_error(&r, 422, "limit_exceeded");
    assert_string_equal(error_node(&r), "step_0");
    reply_free(&r);
    group_test_ok = true;
}

static void body_too_large_by_content_length_is_413(void **state)
{
    (void)state;
    size_t n = MAX_BODY_BYTES + 60000;
    char *body = malloc(n + 1);
    memset(body, ' ', n);
    body[n] = '\0';
    reply r;
    assert_int_equal(run_dag(group_srv.port, "version", body, &r), 0);
    free(body);
    expect_error(&r, 413, "body_too_large");
    reply_free(&r);
    group_test_ok = true;
}

static void chunked_body_too_large_is_413(void **state)
{
    (void)state;
    size_t n = MAX_BODY_BYTES + 60000;
    char *body = malloc(n);
    memset(body, ' ', n);
    reply r;
    assert_int_equal(http_chunked(group_srv.port, "/dags/version/run", body, n, 4096, &r), 0);
    free(body);
    expect_error(&r, 413, "body_too_large");
    reply_free(&r);
    group_test_ok = true;
}

/* 405 with an Allow header holding `allow`; on a mismatch says what came
 * and returns false (no assertion, so one test can list every case). */
static bool is_405_allowing(const char *method, const char *path, const char *allow)
{
    reply r;
    bool good = false;
    char value[64] = "";
    if (http(group_srv.port, method, path, strcmp(method, "POST") == 0 ? "{}" : NULL, &r) != 0) {
        print_message("%s %s: no reply: %s\n", method, path, r.err);
    } else if (r.status != 405) {
        print_message("%s %s: status %d, wanted 405\n", method, path, r.status);
    } else if (!reply_header(&r, "Allow", value, sizeof value)) {
        print_message("%s %s: 405 without an Allow header\n", method, path);
    } else if (!strstr(value, allow)) {
        print_message("%s %s: 405 with Allow: %s, wanted %s\n", method, path, value, allow);
    } else {
        good = true;
    }
    reply_free(&r);
    return good;
}

static void wrong_method_is_405_with_allow(void **state)
{
    (void)state;
    reply r;
    assert_int_equal(http(group_srv.port, "GET", "/dags/marketing/run", NULL, &r), 0);
    expect_error(&r, 405, "method_not_allowed");
    reply_free(&r);
    assert_true(is_405_allowing("GET", "/dags/marketing/run", "POST"));
    assert_true(is_405_allowing("POST", "/dags/marketing", "GET"));
    assert_true(is_405_allowing("POST", "/dags/marketing/dot", "GET"));
    assert_true(is_405_allowing("POST", "/healthz", "GET"));
    assert_true(is_405_allowing("POST", "/dags", "GET"));
    assert_true(is_405_allowing("GET", "/admin/gc/collect", "POST"));
    group_test_ok = true;
}

/* Methods other than GET and POST: every route refuses them, and Allow
 * names what the route takes, not the opposite of the method refused. */
static void other_methods_are_405_with_the_routes_allow(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"DELETE", "/healthz", "GET"},           {"PATCH", "/dags", "GET"},
        {"DELETE", "/dags/marketing", "GET"},    {"PUT", "/dags/marketing/dot", "GET"},
        {"PUT", "/admin/gc/collect", "POST"},    {"DELETE", "/dags/marketing/run", "POST"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        bad += !is_405_allowing(cases[i][0], cases[i][1], cases[i][2]);
    assert_int_equal(bad, 0);
    group_test_ok = true;
}

/* --- HTTP-level faults the server decides ------------------------------- */

static void http11_without_host_is_400_bad_request(void **state)
{
    (void)state;
    reply r;
    const char *req = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_int_equal(http_raw(group_srv.port, req, strlen(req), &r), 0);
    expect_error(&r, 400, "bad_request");
    reply_free(&r);
    req = "GET /healthz HTTP/1.0\r\n\r\n"; /* HTTP/1.0 needs none */
    assert_int_equal(http_raw(group_srv.port, req, strlen(req), &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    group_test_ok = true;
}

/* Two lengths, or a length and chunked coding, leave the body's end in
 * doubt: a proxy in front may have read the message otherwise. */
static void conflicting_body_lengths_are_400_bad_request(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        char req[512];
        int len = snprintf(req, sizeof req,
                           "POST /dags/version/run HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\n%s\r\n{}",
                           heads[i]);
        reply r;
        assert_int_equal(http_raw(group_srv.port, req, (size_t)len, &r), 0);
        expect_error(&r, 400, "bad_request");
        reply_free(&r);
    }
    /* the same length twice says one thing */
    const char *same = "POST /dags/version/run HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
    reply r;
    assert_int_equal(http_raw(group_srv.port, same, strlen(same), &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    group_test_ok = true;
}

/* A body that is JSON but not an object is one fault, whatever it is. */
static void a_body_that_is_not_an_object_is_422_type_error(void **state)
{
    (void)state;
    static const char *const bodies[] = {"[1, 2]", "3", "\"inputs\"", "null", "true"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        reply r;
        assert_int_equal(run_dag(group_srv.port, "version", bodies[i], &r), 0);
        expect_error(&r, 422, "type_error");
        reply_free(&r);
    }
    group_test_ok = true;
}



/* Peak resident memory of a process (VmHWM), in KiB; -1 if unreadable. */
static long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static const char big_request[] = "{\"inputs\": {\"n\": 2000000}, \"outputs\": [\"thirds\"]}";

/* Results still being streamed to clients that stopped reading count
 * against max_run_bytes: with 40 MiB, two stalled 16 MB responses leave too
 * little for a third run, which is refused, until they are gone. */
static void stalled_streams_count_against_max_run_bytes(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"max_run_bytes\": 41943040,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    size_t len;
    char *req = request_text(T.srv.port, "POST", "/dags/big/run", big_request, &len);
    int stalled[2];
    for (int k = 0; k < 2; k++) { /* each reads the start of its answer, then stops */
        stalled[k] = conn_open(T.srv.port);
        assert_true(stalled[k] >= 0);
        assert_int_equal(send_all(stalled[k], req, len), 0);
        char buf[4096];
        assert_true(recv(stalled[k], buf, sizeof buf, 0) > 0);
    }
    free(req);
    reply r;
    assert_int_equal(run_dag(T.srv.port, "big", big_request, &r), 0);
    expect_error(&r, 422, "limit_exceeded");
    print_message("%s\n", json_string_value(json_object_get(json_object_get(r.json, "error"), "message")));
    reply_free(&r);
    assert_int_equal(run_dag(T.srv.port, "version", "{}", &r), 0); /* small runs go on */
    expect_status(&r, 200);
    reply_free(&r);
    for (int k = 0; k < 2; k++)
        close(stalled[k]);
    uint64_t deadline = now_ms() + HANG_MS;
    int status = 0;
    while (status != 200 && now_ms() < deadline) { /* once the worker sees them gone */
        assert_int_equal(run_dag(T.srv.port, "big", "{\"inputs\": {\"n\": 2000000}, \"outputs\": [\"thirds\"]}", &r), 0);
        status = r.status;
        reply_free(&r);
        if (status != 200)
            sleep_ms(50);
    }
    assert_int_equal(status, 200);
    T.passed = true;
}

/* On a server of its own, so that the worker's peak is measured from a
 * start no earlier test has raised. */
static void a_large_response_is_streamed_in_bounded_memory(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    reply r;
    assert_int_equal(http(T.srv.port, "GET", "/healthz", NULL, &r), 0); /* the worker is serving */
    expect_status(&r, 200);
    reply_free(&r);
    long before = vm_hwm_kb(kids[0]);
    assert_int_equal(run_dag(T.srv.port, "big", big_request, &r), 0);
    expect_status(&r, 200);
    char value[32];
    assert_false(reply_header(&r, "Content-Length", value, sizeof value)); /* sent as it was written */
    json_t *thirds = json_object_get(json_object_get(r.json, "outputs"), "thirds");
    assert_int_equal(json_array_size(thirds), 2000000);
    assert_true(json_real_value(json_array_get(thirds, 0)) == 1.0 / 3.0);
    assert_true(json_real_value(json_array_get(thirds, 1999999)) == 1.0 / 3.0);
    assert_true(r.len > 2000000 * 19 - 1 && r.len < 2000000 * 19 + 256); /* 18 digits and a comma each */
    assert_int_equal(run_stat(&r, "pid"), kids[0]);
    /* The worker's peak grew by the run's 16 MB array and one piece of
     * text -- not by the 38 MB of text, which was never whole. */
    long grew = vm_hwm_kb(kids[0]) - before;
    print_message("worker %d: peak grew by %ld KiB for a %zu-byte response\n", (int)kids[0], grew, r.len);
    assert_true(grew > 15 * 1024 && grew < 32 * 1024);
    reply_free(&r);

    /* An HTTP/1.0 client has no chunked encoding: the body ends where the
     * connection does. */
    const char *body = "{\"inputs\": {\"n\": 100000}}";
    char req[512];
    int len = snprintf(req, sizeof req,
                       "POST /dags/big/run HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       strlen(body), body);
    assert_int_equal(http_raw(T.srv.port, req, (size_t)len, &r), 0);
    expect_status(&r, 200);
    assert_false(reply_header(&r, "Content-Length", value, sizeof value));
    assert_false(reply_header(&r, "Transfer-Encoding", value, sizeof value));
    assert_int_equal(json_array_size(json_object_get(json_object_get(r.json, "outputs"), "thirds")), 100000);
    reply_free(&r);
    T.passed = true;
}

static void an_abandoned_stream_leaves_the_worker_serving(void **state)
{
    (void)state;
    size_t len;
    char *req = request_text(group_srv.port, "POST", "/dags/big/run", big_request, &len);
    for (int k = 0; k < 4; k++) { /* enough to reach both workers */
        int fd = conn_open(group_srv.port);
        assert_true(fd >= 0);
        assert_int_equal(send_all(fd, req, len), 0);
        char buf[16384];
        size_t got = 0;
        while (got < 100000) { /* a little of the text, then gone */
            ssize_t m = recv(fd, buf, sizeof buf, 0);
            assert_true(m > 0);
            got += (size_t)m;
        }
        close(fd);
    }
    free(req);
    reply r;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(http(group_srv.port, "GET", "/healthz", NULL, &r), 0);
        expect_status(&r, 200);
        reply_free(&r);
    }
    assert_true(log_has(&group_srv, "(aborted)"));
    group_test_ok = true; /* the worker pids are checked by the test that follows */
}

/* Last of the group: none of the bad requests above took a worker down. */
static void bad_requests_leave_every_worker_alive(void **state)
{
    (void)state;
    pid_t now[MAX_PIDS];
    int k = workers_of(&group_srv, now);
    assert_int_equal(k, group_npids);
    assert_memory_equal(now, group_pids, sizeof(pid_t) * (size_t)k);
    assert_false(log_has(&group_srv, "killed by signal"));
    assert_false(log_has(&group_srv, "respawning"));
    reply r;
    long long answer;
    pid_t pid;
    assert_int_equal(run_version(group_srv.port, &answer, &pid, &r), 0);
    assert_int_equal(answer, 1);
    assert_true(pid_in(pid, group_pids, group_npids));
    reply_free(&r);
    group_test_ok = true;
}

/* }====================================================================== */

#define IN_GROUP(f) cmocka_unit_test_setup_teardown(f, in_group_setup, in_group_teardown)

/* --- cowdag top, in a terminal tmux keeps --------------------------------- */

/* The pane's text, as tmux shows it now (malloc'ed). */
static char *pane(const char *session)
{
    char *cmd = dup_printf("tmux capture-pane -p -t %s", session), *text;
    run_cmd(cmd, &text);
    free(cmd);
    return text;
}

/* Waits until the pane holds every needle; fails with the pane if not. */
static void pane_wait(const char *session, const char *const *needles, int n)
{
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        char *text = pane(session);
        int found = 0;
        for (int i = 0; i < n; i++)
            found += strstr(text, needles[i]) != NULL;
        if (found == n) {
            free(text);
            return;
        }
        if (now_ms() > deadline)
            fail_msg("the pane never showed all of what was expected; it shows:\n%s", text);
        free(text);
        sleep_ms(50);
    }
}

/* --- the dashboard, in a real browser ------------------------------------- */

/* Chromium, headless, on a page of the server: its DOM once the page's
 * script has run a few seconds of (virtual) time, or with `shot`, a
 * screenshot written there.  The output, its messages among it
 * (malloc'ed). */
static char *chromium(int port, const char *shot)
{
    char *cmd = shot ? dup_printf("chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
                                  "--window-size=1200,800 --virtual-time-budget=4000 --screenshot=%s "
                                  "http://127.0.0.1:%d/dashboard",
                                  shot, port)
                     : dup_printf("chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=4000 "
                                  "--dump-dom http://127.0.0.1:%d/dashboard",
                                  port),
         *out;
    run_cmd(cmd, &out);
    free(cmd);
    return out;
}

/* GET /dashboard is one self-contained page (nothing fetched from
 * elsewhere); Chromium draws it, and its table holds every worker's pid and
 * the shared share /stats gives; "dashboard": false turns the route off. */
static void the_dashboard_draws_every_worker_in_a_browser(void **state)
{
    (void)state;
    if (access("/usr/bin/chromium", X_OK) != 0) /* Debian's chromium, which the Makefile installs */
        fail_msg("/usr/bin/chromium is missing");
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    reply r;
    assert_int_equal(http(T.srv.port, "GET", "/dashboard", NULL, &r), 0);
    expect_status(&r, 200);
    char type[64] = "";
    assert_true(reply_header(&r, "Content-Type", type, sizeof type));
    assert_non_null(strstr(type, "text/html"));
    static const char *const outside[] = {"http://", "https://", "<script src", "<link", "@import", "url("};
    for (size_t k = 0; k < sizeof outside / sizeof *outside; k++)
        if (strstr(r.body, outside[k]))
            fail_msg("the page refers to something outside itself: \"%s\"", outside[k]);
    reply_free(&r);

    /* what the page must show: each worker's row, with its shared share */
    json_t *doc = stats_sampled(T.srv.port, 2);
    char rows[2][64], figures[2][64];
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        if (i >= 2)
            break;
        long long pid = json_integer_value(json_object_get(w, "pid"));
        double shared =
            json_number_value(json_object_get(json_object_get(json_object_get(w, "memory"), "state"), "shared_ratio"));
        assert_true(pid > 0);
        snprintf(rows[i], sizeof rows[i], "<tr id=\"w-%lld\"><td>", pid);
        snprintf(figures[i], sizeof figures[i], "<td class=\"shared\">%.1f%%</td>", 100 * shared);
    }
    assert_int_equal(json_array_size(json_object_get(doc, "workers")), 2);
    json_decref(doc);
    /* A browser that has not drawn at all (a first start that set up its
     * profile, say) is tried again, twice at most: that is the browser's. */
    char *dom = NULL;
    for (int attempt = 0; attempt < 3; attempt++) {
        free(dom);
        dom = chromium(T.srv.port, NULL);
        if (strstr(dom, "<tr id=\"w-"))
            break;
    }
    for (int k = 0; k < 2; k++) {
        const char *at = strstr(dom, rows[k]);
        if (!at)
            fail_msg("the drawn page has no row %s:\n%.2000s", rows[k], dom);
        const char *end = strstr(at, "</tr>");
        assert_non_null(end);
        char *line = strndup(at, (size_t)(end - at));
        if (!strstr(line, figures[k]))
            fail_msg("the row does not show %s: %s", figures[k], line);
        free(line);
    }
    free(dom);
    char shot[256];
    copy_fixtures(&T);
    tmp_path(&T, "dashboard.png", shot, sizeof shot);
    free(chromium(T.srv.port, shot));
    size_t len = 0;
    char *png = slurp(shot, &len);
    assert_non_null(png);
    assert_true(len > 10000 && memcmp(png, "\x89PNG", 4) == 0);
    free(png);
    server_stop(&T.srv);

    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"dashboard\": false,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    assert_int_equal(http(T.srv.port, "GET", "/dashboard", NULL, &r), 0);
    expect_error(&r, 404, "not_found");
    reply_free(&r);
    T.passed = true;
}

static char top_session[64]; /* the tmux session a test made, killed at its teardown */

static int top_teardown(void **state)
{
    if (top_session[0]) {
        char *cmd = dup_printf("tmux kill-session -t %s 2>/dev/null", top_session);
        (void)!system(cmd);
        free(cmd);
        top_session[0] = '\0';
    }
    return standalone_teardown(state);
}

/* `cowdag top` shows every worker's pid and the shared share /stats gives,
 * sorts on a key, says so when the server goes away, and quits on q. */
static void cowdag_top_shows_every_worker(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    json_t *doc = stats_sampled(T.srv.port, 2);
    char want[2][64];
    const char *needles[4];
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "workers"), i, w)
    {
        if (i >= 2)
            break;
        double shared = json_number_value(json_object_get(json_object_get(json_object_get(w, "memory"), "state"),
                                                          "shared_ratio"));
        snprintf(want[i], sizeof want[i], "%lld", (long long)json_integer_value(json_object_get(w, "pid")));
        needles[i] = want[i];
        assert_true(shared == 1.0); /* freeze + immortal, nothing served: the figure the pane must show */
    }
    json_decref(doc);
    needles[2] = "100.0%";
    needles[3] = "total PSS";
    char *session = top_session;
    snprintf(top_session, sizeof top_session, "cowdag-top-%d", (int)getpid());
    char *cmd = dup_printf("tmux new-session -d -s %s -x 160 -y 30 '%s top --url http://127.0.0.1:%d --interval 0.2'",
                           session, cowdag_bin(), T.srv.port);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    pane_wait(session, needles, 4);
    cmd = dup_printf("tmux send-keys -t %s s", session);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    const char *sorted[] = {"sorted by shared"};
    pane_wait(session, sorted, 1);
    server_stop(&T.srv);
    const char *gone[] = {"cannot read http://127.0.0.1:"};
    pane_wait(session, gone, 1);
    cmd = dup_printf("tmux send-keys -t %s q", session);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    cmd = dup_printf("tmux has-session -t %s 2>/dev/null", session);
    uint64_t deadline = now_ms() + HANG_MS;
    int rc;
    while ((rc = system(cmd)) == 0 && now_ms() < deadline) /* the session ends with top */
        sleep_ms(50);
    free(cmd);
    assert_true(rc != 0);
    T.passed = true;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='*_is_4*' runs the tests so named */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest routes[] = {
        IN_GROUP(run_answers_outputs_and_stats),
        IN_GROUP(run_accepts_a_chunked_body),
        IN_GROUP(dags_lists_every_dag),
        IN_GROUP(dag_detail_lists_nodes),
        IN_GROUP(dag_dot_is_a_digraph),
        IN_GROUP(healthz_says_ok),
        IN_GROUP(gc_collect_is_forbidden_without_admin),
        IN_GROUP(stats_and_metrics_describe_every_worker),
        IN_GROUP(cowdag_stats_prints_a_row_per_worker),
    };
    const struct CMUnitTest errors[] = {
        IN_GROUP(bad_json_is_400),
        IN_GROUP(deep_nesting_is_400_and_the_worker_survives),
        IN_GROUP(wrong_types_are_422_type_error),
        IN_GROUP(unknown_dag_is_404),
        IN_GROUP(unknown_route_is_404_not_found),
        IN_GROUP(unknown_output_is_422),
        IN_GROUP(missing_input_is_422),
        IN_GROUP(op_error_is_422_naming_the_node),
        IN_GROUP(limit_is_422_limit_exceeded),
        IN_GROUP(body_too_large_by_content_length_is_413),
        IN_GROUP(chunked_body_too_large_is_413),
        IN_GROUP(wrong_method_is_405_with_allow),
        IN_GROUP(other_methods_are_405_with_the_routes_allow),
        IN_GROUP(an_abandoned_stream_leaves_the_worker_serving),
        IN_GROUP(http11_without_host_is_400_bad_request),
        IN_GROUP(conflicting_body_lengths_are_400_bad_request),
        IN_GROUP(a_body_that_is_not_an_object_is_422_type_error),
        IN_GROUP(bad_requests_leave_every_worker_alive),
    };
    const struct CMUnitTest own_server[] = {
        STANDALONE(gc_collect_answers_when_admin),
        STANDALONE(a_large_response_is_streamed_in_bounded_memory),
        cmocka_unit_test_setup_teardown(cowdag_top_shows_every_worker, standalone_setup, top_teardown),
        STANDALONE(the_dashboard_draws_every_worker_in_a_browser),
        STANDALONE(stalled_streams_count_against_max_run_bytes),
        STANDALONE(tuned_full_collection_copies_the_tracked_pages_of_every_worker),
        STANDALONE(freeze_immortal_keeps_the_state_shared_through_10000_requests),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("server routes", routes, group_setup_default, group_teardown);
    failed += cmocka_run_group_tests_name("server errors", errors, group_setup_default, group_teardown);
    failed += cmocka_run_group_tests_name("server streams and sharing", own_server, NULL, NULL);
    return failed ? 1 : 0;
}
