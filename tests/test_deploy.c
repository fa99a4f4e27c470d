/* test_deploy: the files for running cowdag in production (deploy/; README,
 * "Running it in production") checked by the tools that will read them:
 * promtool on the Prometheus config, alerts and their unit tests, nginx on
 * the front config and in front of a real server, and Debian's Prometheus
 * scraping a real server (harness: tests/server_support.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/server_support.h"
#include "tests/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROM_DIR "deploy/prometheus"
#define NGINX_CONF "deploy/nginx/cowdag.conf"
/* What the shipped nginx file names, and a test rewrites. */
#define NGINX_LISTEN "listen 80;"
#define NGINX_UPSTREAM_A "127.0.0.1:8081"
#define NGINX_UPSTREAM_B "127.0.0.1:8082"
#define NGINX_ACCESS_LOG "/var/log/nginx/cowdag.access.log"

/* ====================================================================== */
/* {  Tools and commands                                                   */
/* ====================================================================== */

/* The full path of a program on PATH or in /usr/sbin (where Debian puts
 * nginx, and which a user's PATH may lack), in buf; NULL if none. */
static const char *find_tool(const char *prog, char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    char *dirs = dup_printf("%s:/usr/sbin:/usr/bin", path ? path : ""), *save = NULL;
    const char *found = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, cap, "%s/%s", *d ? d : ".", prog);
        if (access(buf, X_OK) == 0)
            found = buf;
    }
    free(dirs);
    return found;
}

/* The tool's path, or the test is skipped with the reason printed: `make
 * test` installs these packages (the Makefile's DEBS), so a skip means a
 * machine where they could not be. */
static const char *tool_or_skip(const char *prog, char *buf, size_t cap)
{
    const char *p = find_tool(prog, buf, cap);
    if (!p) {
        print_message("%s is not installed (Debian package %s; `make deps` installs it): skipped\n", prog,
                      strcmp(prog, "promtool") == 0 ? "prometheus" : prog);
        skip();
    }
    return p;
}

/* Runs the command and fails the test, showing its output, unless it
 * exits 0 and prints `needle`. */
static void expect_cmd_ok(const char *cmdline, const char *needle)
{
    char *out;
    int rc = run_cmd(cmdline, &out);
    if (rc != 0 || !strstr(out, needle))
        print_message("$ %s\n%s(exit %d; wanted \"%s\")\n", cmdline, out, rc, needle);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, needle));
    free(out);
}

/* A text with every `from` (which must be there) replaced by `to`
 * (malloc'ed). */
static char *replaced(const char *text, const char *from, const char *to)
{
    assert_non_null(strstr(text, from));
    size_t flen = strlen(from), tlen = strlen(to), n = 0;
    for (const char *p = strstr(text, from); p; p = strstr(p + flen, from))
        n++;
    char *out = malloc(strlen(text) + n * tlen + 1), *w = out;
    assert_non_null(out);
    const char *p = text;
    for (const char *at; (at = strstr(p, from)); p = at + flen) {
        memcpy(w, p, (size_t)(at - p));
        w += at - p;
        memcpy(w, to, tlen);
        w += tlen;
    }
    strcpy(w, p);
    return out;
}

/* A port on 127.0.0.1 that was free a moment ago (the kernel's pick). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  A helper process of a test: nginx or Prometheus                       */
/* ====================================================================== */

typedef struct helper {
    pid_t pid; /* 0: none */
    char log[512];
} helper;

static helper H;       /* the current test's nginx or Prometheus */
static char work[64];  /* the current test's temp folder, "" if none */

/* Starts argv[0] in a process group of its own, stdout and stderr to
 * `log`. */
static void helper_start(helper *h, char *const argv[], const char *log)
{
    snprintf(h->log, sizeof h->log, "%s", log);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644), devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    h->pid = pid;
}

/* True once it has exited (then reaped). */
static bool helper_exited(helper *h)
{
    int st;
    if (h->pid && waitpid(h->pid, &st, WNOHANG) == h->pid)
        h->pid = 0;
    return h->pid == 0;
}

static void helper_dump(const helper *h, const char *why)
{
    char *text = slurp(h->log, NULL);
    fprintf(stderr, "---- %s, %s ----\n%s---- end of %s ----\n", h->log, why, text ? text : "", h->log);
    free(text);
}

/* SIGTERM (both nginx and Prometheus stop on it), a bounded wait, then
 * SIGKILL to its whole group; never leaves a process behind. */
static void helper_stop(helper *h)
{
    if (!h->pid)
        return;
    kill(h->pid, SIGTERM);
    uint64_t deadline = now_ms() + HANG_MS;
    while (!helper_exited(h) && now_ms() < deadline)
        sleep_ms(10);
    pid_t group = h->pid;
    if (group) {
        fprintf(stderr, "test_deploy: %s ignored SIGTERM for %d ms; SIGKILL\n", h->log, HANG_MS);
        kill(-group, SIGKILL);
        waitpid(group, NULL, 0);
        h->pid = 0;
    }
}

static int deploy_setup(void **state)
{
    memset(&H, 0, sizeof H);
    snprintf(work, sizeof work, "/tmp/cowdag-test-deploy-XXXXXX");
    if (!mkdtemp(work))
        return -1;
    chmod(work, 0755); /* nginx's workers run as another user when the test is root */
    return standalone_setup(state);
}

static int deploy_teardown(void **state)
{
    if (!T.passed && H.log[0])
        helper_dump(&H, "the test failed");
    helper_stop(&H);
    rm_tree(work);
    work[0] = '\0';
    return standalone_teardown(state);
}

#define DEPLOY_TEST(f) cmocka_unit_test_setup_teardown(f, deploy_setup, deploy_teardown)

/* }====================================================================== */

/* ====================================================================== */
/* {  Prometheus: the files, by promtool                                    */
/* ====================================================================== */

static void promtool_accepts_the_scrape_config(void **state)
{
    (void)state;
    char tool[4096];
    const char *promtool = tool_or_skip("promtool", tool, sizeof tool);
    /* also loads the rule files the config names */
    char *cmd = dup_printf("%s check config " PROM_DIR "/prometheus.yml", promtool);
    expect_cmd_ok(cmd, "is valid prometheus config file syntax");
    free(cmd);
    T.passed = true;
}

static void promtool_accepts_the_alert_rules(void **state)
{
    (void)state;
    char tool[4096];
    const char *promtool = tool_or_skip("promtool", tool, sizeof tool);
    char *cmd = dup_printf("%s check rules " PROM_DIR "/cowdag-rules.yml", promtool);
    expect_cmd_ok(cmd, "SUCCESS: 5 rules found");
    free(cmd);
    T.passed = true;
}

/* Each alert fires on the series that should fire it, and not before its
 * `for` or on the series that should not. */
static void each_alert_fires_on_its_unit_test(void **state)
{
    (void)state;
    char tool[4096];
    const char *promtool = tool_or_skip("promtool", tool, sizeof tool);
    char *cmd = dup_printf("%s test rules " PROM_DIR "/cowdag-rules.test.yml", promtool);
    expect_cmd_ok(cmd, "SUCCESS");
    free(cmd);
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Prometheus: scraping a real server                                   */
/* ====================================================================== */

/* GET path from Prometheus's HTTP API: its `data` (a new reference), or
 * NULL while it does not answer with status "success". */
static json_t *prom_get(int port, const char *path)
{
    reply r;
    json_t *data = NULL;
    if (http(port, "GET", path, NULL, &r) == 0 && r.status == 200 &&
        strcmp(json_string_value(json_object_get(r.json, "status")) ?: "", "success") == 0)
        data = json_incref(json_object_get(r.json, "data"));
    reply_free(&r);
    return data;
}

/* How many of the pids have a series in the query's result, each carrying
 * the scrape's job label. */
static int pids_with_series(json_t *data, const pid_t *pids, int n)
{
    int have = 0;
    for (int i = 0; i < n; i++) {
        char pid[16];
        snprintf(pid, sizeof pid, "%d", (int)pids[i]);
        size_t k;
        json_t *series;
        bool found = false;
        json_array_foreach(json_object_get(data, "result"), k, series)
        {
            json_t *m = json_object_get(series, "metric");
            found |= strcmp(json_string_value(json_object_get(m, "pid")) ?: "", pid) == 0 &&
                     strcmp(json_string_value(json_object_get(m, "job")) ?: "", "cowdag") == 0;
        }
        have += found;
    }
    return have;
}

/* Starts Prometheus scraping 127.0.0.1:target every second, with the
 * shipped alert rules; its API port.  A port taken between the pick and
 * the bind is picked again. */
static int prometheus_start(const char *prometheus, int target)
{
    char cfg[256], rules[4096], data[256], log[256], cwd[2048];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(rules, sizeof rules, "%s/" PROM_DIR "/cowdag-rules.yml", cwd);
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", work);
    snprintf(data, sizeof data, "%s/data", work);
    snprintf(log, sizeof log, "%s/prometheus.log", work);
    char *yml = dup_printf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                           "rule_files:\n  - %s\n"
                           "scrape_configs:\n  - job_name: cowdag\n    static_configs:\n"
                           "      - targets: ['127.0.0.1:%d']\n",
                           rules, target);
    write_file(cfg, yml);
    free(yml);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        char a_cfg[300], a_data[300], a_listen[64];
        snprintf(a_cfg, sizeof a_cfg, "--config.file=%s", cfg);
        snprintf(a_data, sizeof a_data, "--storage.tsdb.path=%s", data);
        snprintf(a_listen, sizeof a_listen, "--web.listen-address=127.0.0.1:%d", port);
        char *argv[] = {(char *)prometheus, a_cfg, a_data, a_listen, NULL};
        helper_start(&H, argv, log);
        /* ready: its own readiness route answers, or it has exited */
        uint64_t deadline = now_ms() + HANG_MS;
        for (;;) {
            reply r;
            bool ready = http(port, "GET", "/-/ready", NULL, &r) == 0 && r.status == 200;
            reply_free(&r);
            if (ready)
                return port;
            if (helper_exited(&H))
                break;
            if (now_ms() > deadline) {
                helper_dump(&H, "not ready");
                fail_msg("prometheus was not ready within %d ms", HANG_MS);
            }
            sleep_ms(50);
        }
        char *text = slurp(log, NULL);
        bool taken = text && strstr(text, "address already in use");
        free(text);
        if (!taken) {
            helper_dump(&H, "it exited");
            fail_msg("prometheus exited at start");
        }
    }
    fail_msg("prometheus found no free port in 5 attempts");
    return -1;
}

/* Debian's Prometheus scrapes a running server's /metrics and holds a
 * cowdag_worker_state_pages series for every worker: one /metrics answer,
 * from whichever worker, reports them all.  Waits on the answer (a scrape
 * a second, a memory sample a second), with a deadline that only ends a
 * hung test. */
static void prometheus_holds_every_workers_state_pages(void **state)
{
    (void)state;
    char tool[4096];
    const char *prometheus = tool_or_skip("prometheus", tool, sizeof tool);
    enum { NWORKERS = 3 };
    server_start(&T.srv, FIXTURES "/cowdag.json", NWORKERS);
    pid_t pids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, NWORKERS, HANG_MS, pids), NWORKERS);

    int port = prometheus_start(prometheus, T.srv.port);
    uint64_t deadline = now_ms() + 2 * HANG_MS;
    int have = 0;
    for (;;) {
        json_t *data = prom_get(port, "/api/v1/query?query=cowdag_worker_state_pages");
        have = data ? pids_with_series(data, pids, NWORKERS) : 0;
        json_decref(data);
        if (have == NWORKERS)
            break;
        if (helper_exited(&H)) {
            helper_dump(&H, "it exited");
            fail_msg("prometheus exited");
        }
        if (now_ms() > deadline)
            fail_msg("after %d ms Prometheus had the state pages of %d of %d workers", 2 * HANG_MS, have,
                     NWORKERS);
        sleep_ms(100);
    }

    /* and it loaded the shipped alerts */
    json_t *rules = prom_get(port, "/api/v1/rules");
    assert_non_null(rules);
    json_t *group = json_array_get(json_object_get(rules, "groups"), 0);
    assert_string_equal(json_string_value(json_object_get(group, "name")), "cowdag");
    assert_int_equal(json_array_size(json_object_get(group, "rules")), 5);
    json_decref(rules);
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  nginx                                                                 */
/* ====================================================================== */

/* Writes into `work` a main nginx config that includes the shipped file
 * (copied with its listen address, upstream servers and access log
 * rewritten) and keeps every path nginx writes inside `work`; its path in
 * main. */
static void nginx_config(int listen_port, const char *upstream_a, const char *upstream_b, char *main, size_t cap)
{
    char *text = slurp(NGINX_CONF, NULL);
    assert_non_null(text);
    char listen[64], access[256];
    snprintf(listen, sizeof listen, "listen 127.0.0.1:%d;", listen_port);
    snprintf(access, sizeof access, "%s/access.log", work);
    char *t1 = replaced(text, NGINX_LISTEN, listen);
    char *t2 = replaced(t1, NGINX_UPSTREAM_A, upstream_a);
    char *t3 = replaced(t2, NGINX_UPSTREAM_B, upstream_b);
    char *t4 = replaced(t3, NGINX_ACCESS_LOG, access);
    char inc[256];
    snprintf(inc, sizeof inc, "%s/cowdag.conf", work);
    write_file(inc, t4);
    free(text);
    free(t1);
    free(t2);
    free(t3);
    free(t4);

    char *conf = dup_printf("worker_processes 1;\npid %1$s/nginx.pid;\nerror_log %1$s/error.log warn;\n"
                            "events { worker_connections 64; }\n"
                            "http {\n"
                            "    client_body_temp_path %1$s/body;\n    proxy_temp_path %1$s/proxy;\n"
                            "    fastcgi_temp_path %1$s/fastcgi;\n    uwsgi_temp_path %1$s/uwsgi;\n"
                            "    scgi_temp_path %1$s/scgi;\n"
                            "    include %2$s;\n}\n",
                            work, inc);
    snprintf(main, cap, "%s/nginx.conf", work);
    write_file(main, conf);
    free(conf);
}

/* `nginx -t`: the shipped file is valid nginx 1.22 configuration. */
static void nginx_accepts_the_front_config(void **state)
{
    (void)state;
    char tool[4096], conf[256];
    const char *nginx = tool_or_skip("nginx", tool, sizeof tool);
    nginx_config(free_port(), NGINX_UPSTREAM_A, NGINX_UPSTREAM_B, conf, sizeof conf);
    char *cmd = dup_printf("%s -t -p %s/ -e %s/error.log -c %s", nginx, work, work, conf);
    expect_cmd_ok(cmd, "test is successful");
    free(cmd);
    T.passed = true;
}

/* nginx with the shipped config in front of two instances, the first of
 * which refuses connections (a port bound but not listening: a master that
 * is gone): a request sent to it is retried on the live one, which answers
 * every POST run 200; the routes that belong to one instance are refused
 * at the front. */
static void nginx_retries_a_refused_run_on_the_live_instance(void **state)
{
    (void)state;
    char tool[4096], conf[256];
    const char *nginx = tool_or_skip("nginx", tool, sizeof tool);
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);

    int dead = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(dead >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(dead, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(dead, (struct sockaddr *)&a, &alen), 0);
    char live_addr[32], dead_addr[32];
    snprintf(live_addr, sizeof live_addr, "127.0.0.1:%d", T.srv.port);
    snprintf(dead_addr, sizeof dead_addr, "127.0.0.1:%d", ntohs(a.sin_port));

    int port = 0;
    for (int attempt = 0; attempt < 5 && !port; attempt++) {
        int p = free_port();
        nginx_config(p, dead_addr, live_addr, conf, sizeof conf);
        char prefix[128], err[128], log[128];
        snprintf(prefix, sizeof prefix, "%s/", work);
        snprintf(err, sizeof err, "%s/error.log", work);
        snprintf(log, sizeof log, "%s/nginx.out", work);
        char *argv[] = {(char *)nginx, "-p", prefix, "-e", err, "-c", conf, "-g", "daemon off;", NULL};
        helper_start(&H, argv, log);
        uint64_t deadline = now_ms() + HANG_MS;
        for (;;) {
            reply r;
            bool up = http(p, "GET", "/healthz", NULL, &r) == 0 && r.status == 200;
            reply_free(&r);
            if (up) {
                port = p;
                break;
            }
            if (helper_exited(&H)) {
                char *text = slurp(err, NULL);
                bool taken = text && strstr(text, "Address already in use");
                free(text);
                if (!taken) {
                    helper_dump(&H, "it exited");
                    fail_msg("nginx exited at start (error log %s)", err);
                }
                break;
            }
            if (now_ms() > deadline)
                fail_msg("nginx did not answer /healthz within %d ms", HANG_MS);
            sleep_ms(20);
        }
    }
    assert_true(port > 0);

    /* nginx's first request (the /healthz above) went to the first server,
     * the dead one, and was retried; the dead one is then left out for
     * fail_timeout, and tried again after it */
    enum { RUNS = 20 };
    for (int i = 0; i < RUNS; i++) {
        reply r;
        assert_int_equal(run_dag(port, "version", "{}", &r), 0);
        expect_status(&r, 200);
        assert_int_equal(run_output_int(&r, "answer"), 1);
        reply_free(&r);
    }
    reply r;
    assert_int_equal(http(port, "GET", "/metrics", NULL, &r), 0);
    expect_status(&r, 403);
    reply_free(&r);
    close(dead);

    /* the access log names the instances each request went to: one was
     * refused by the dead instance and retried on the live one */
    char log[256];
    snprintf(log, sizeof log, "%s/access.log", work);
    char *text = slurp(log, NULL);
    assert_non_null(text);
    char *retried = dup_printf("upstream=\"%s, %s\"", dead_addr, live_addr);
    if (!strstr(text, retried))
        print_message("no request retried (%s) in nginx's access log:\n%s", retried, text);
    assert_non_null(strstr(text, retried));
    free(retried);
    free(text);
    T.passed = true;
}

/* }====================================================================== */

int main(void)
{
    const struct CMUnitTest tests[] = {
        DEPLOY_TEST(promtool_accepts_the_scrape_config),
        DEPLOY_TEST(promtool_accepts_the_alert_rules),
        DEPLOY_TEST(each_alert_fires_on_its_unit_test),
        DEPLOY_TEST(prometheus_holds_every_workers_state_pages),
        DEPLOY_TEST(nginx_accepts_the_front_config),
        DEPLOY_TEST(nginx_retries_a_refused_run_on_the_live_instance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
