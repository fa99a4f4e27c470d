/* test_master: the master of `cowdag serve` under its signals: workers respawned,
 * stopped, reloaded, scaled and recycled, long runs that outlast these, and what
 * /stats says of a draining worker (harness: tests/server_support.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/server_support.h"
#include "tests/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ====================================================================== */
/* {  The master: respawn, stop, reload, scaling, recycling                 */
/* ====================================================================== */

/* A worker killed is replaced at once: the master says so as it reaps it
 * (a delay of 0, or the 100 ms back-off of a worker that died within a
 * second of its start), and the new worker serves. */
static void sigkill_of_a_worker_is_replaced_at_once(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    reply r;
    long long answer;
    pid_t before, after = 0;
    assert_int_equal(run_version(T.srv.port, &answer, &before, &r), 0);
    reply_free(&r);
    assert_int_equal(before, kids[0]);

    uint64_t t0 = now_ms();
    assert_int_equal(kill(before, SIGKILL), 0);
    char line[128];
    snprintf(line, sizeof line, "(pid %d) killed by signal 9", (int)before);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    char *log = server_log(&T.srv), *respawn = strstr(strstr(log, line), "; respawning in ");
    assert_non_null(respawn);
    unsigned long long delay = strtoull(respawn + strlen("; respawning in "), NULL, 10);
    free(log);
    assert_true(delay <= 100);
    /* dead, so it cannot take the next connection: the next answer is the
     * new worker's */
    while (after <= 0 || after == before) {
        if (run_version(T.srv.port, &answer, &after, &r) != 0)
            show_reply(&r);
        reply_free(&r);
        if (now_ms() - t0 > HANG_MS)
            fail_msg("no new worker answered within %d ms of the kill", HANG_MS);
    }
    print_message("respawned after %llu ms; a new worker answered %llu ms after the kill\n", delay,
                  (unsigned long long)(now_ms() - t0));
    assert_false(server_exited(&T.srv));
    assert_int_equal(kill(T.srv.pid, 0), 0);
    assert_int_equal(workers_of(&T.srv, kids), 1);
    assert_int_equal(kids[0], after);
    T.passed = true;
}

static void sigterm_finishes_the_inflight_run_and_exits_0(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 0);
    long_run lr = long_run_start(&T.srv, 2, long_run_mb(T.srv.port, 1000));
    long_run_wait_busy(&lr);
    uint64_t t_term = now_ms();
    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    reply r;
    memset(&r, 0, sizeof r);
    int rc = conn_read_reply(lr.fd, &r);
    uint64_t t_reply = now_ms();
    close(lr.fd);
    if (rc != 0)
        show_reply(&r);
    assert_int_equal(rc, 0);
    expect_status(&r, 200);
    assert_float_equal(json_number_value(json_object_get(json_object_get(r.json, "outputs"), "total")),
                       lr.mb * 131072.0, 1e-6);
    print_message("run took %lld us; its reply came %llu ms after SIGTERM\n", run_stat(&r, "elapsed_us"),
                  (unsigned long long)(t_reply - t_term));
    reply_free(&r);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    print_message("the master exited %llu ms after SIGTERM\n", (unsigned long long)(now_ms() - t_term));
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    /* within graceful_timeout_ms: the workers left by themselves */
    assert_false(log_has(&T.srv, "SIGKILL"));
    char last[64];
    snprintf(last, sizeof last, "cowdag[%d]: stopped\n", (int)T.srv.pid);
    assert_true(log_has(&T.srv, last));
    /* nothing of the server is left */
    uint64_t deadline = now_ms() + HANG_MS;
    while (kill(-T.srv.pid, 0) == 0 && now_ms() < deadline)
        sleep_ms(10);
    assert_int_equal(kill(-T.srv.pid, 0), -1);
    T.passed = true;
}

static const char version_dag[] = "{\n"
                                  "  \"name\": \"version\",\n"
                                  "  \"description\": \"answers a constant; the reload test edits it\",\n"
                                  "  \"nodes\": {\n"
                                  "    \"version\": { \"const\": %d },\n"
                                  "    \"answer\": { \"op\": \"add\", \"args\": [\"version\", 0] }\n"
                                  "  }\n"
                                  "}\n";

/* A request that never finishes arriving holds its worker only until
 * graceful_timeout_ms: then the worker closes it and leaves by itself (exit
 * 0, its last log line), before the master's SIGKILL backstop. */
static void sigterm_with_a_stalled_client_lets_the_worker_leave_by_itself(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"graceful_timeout_ms\": 60000", "\"graceful_timeout_ms\": 1000", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /dags/version/run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{\"inputs\"",
                     T.srv.port);
    assert_int_equal(send_all(fd, head, (size_t)n), 0); /* 10 of 100 body bytes, and no more */
    wait_server_took(fd, true);                          /* the request is in flight */
    uint64_t t_term = now_ms();
    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    uint64_t took = now_ms() - t_term;
    close(fd);
    print_message("the master exited %llu ms after SIGTERM\n", (unsigned long long)took);
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    assert_true(took >= 1000); /* the worker held on for graceful_timeout_ms... */
    assert_true(log_has(&T.srv, "graceful_timeout_ms passed with 1 requests in flight"));
    assert_true(log_has(&T.srv, "worker 0 served"));
    assert_false(log_has(&T.srv, "SIGKILL")); /* ...and left before the backstop a second later */
    T.passed = true;
}

/* The nice value of a process (field 19 of /proc/PID/stat). */
static int nice_of(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    assert_non_null(p);
    int nice = 99;
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d", &nice), 1);
    return nice;
}

static void worker_priority_sets_the_workers_nice_value(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"worker_priority\": 7,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    assert_int_equal(nice_of(T.srv.pid), nice_of(getpid())); /* the master keeps its own */
    for (int i = 0; i < 2; i++) {
        uint64_t deadline = now_ms() + HANG_MS; /* each sets it as it starts */
        while (nice_of(kids[i]) != 7 && now_ms() < deadline)
            sleep_ms(10);
        assert_int_equal(nice_of(kids[i]), 7);
    }
    T.passed = true;
}

/* The master binds before it loads any state: an address in use fails at
 * once, with nothing loaded. */
static void an_address_in_use_fails_before_the_state_loads(void **state)
{
    (void)state;
    int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(taken >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(taken, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(taken, (struct sockaddr *)&sa, &len), 0);
    char *cmd = dup_printf("%s serve -c %s --listen 127.0.0.1:%d", cowdag_bin(), FIXTURES "/cowdag.json",
                           ntohs(sa.sin_port)),
         *out;
    int rc = run_cmd(cmd, &out);
    free(cmd);
    close(taken);
    print_message("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "Address already in use"));
    assert_null(strstr(out, "loaded")); /* no "generation 1 loaded: ..." */
    free(out);
    T.passed = true;
}

/* A worker busy with a long run still has fresh memory samples: its
 * sampling thread writes them to the scoreboard without waiting for the
 * worker's loop.  While the run goes on, /stats is read every quarter
 * interval; each time the busy worker's sample is younger than in the
 * copy before, a new sample arrived.  A sample published only between
 * requests would only age during the run, so two arrivals prove the
 * point on a machine of any speed (how old a sample may get on a machine
 * loaded past its cores is the scheduler's, not the server's).  The run is
 * sized to last four intervals or more, and again, longer, if fewer than
 * two samples arrived before it ended; the figures seen are printed. */
static void a_busy_worker_keeps_its_memory_sample_fresh(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    json_t *doc = stats_sampled(T.srv.port, 2); /* both have a first sample */
    json_decref(doc);
    int arrived = 0;
    for (unsigned ms = 4 * STATS_INTERVAL_MS; arrived < 2 && ms <= 8 * STATS_INTERVAL_MS; ms *= 2) {
        long_run lr = long_run_start(&T.srv, 2, long_run_mb(T.srv.port, ms));
        pid_t busy = long_run_wait_busy(&lr);
        uint64_t t0 = now_ms();
        long long prev = -1, oldest = -1;
        arrived = 0;
        while (!long_run_answered(&lr)) {
            reply r;
            assert_int_equal(http(T.srv.port, "GET", "/stats", NULL, &r), 0);
            expect_status(&r, 200);
            bool running = !long_run_answered(&lr);
            size_t i;
            json_t *w;
            json_array_foreach(json_object_get(r.json, "workers"), i, w)
            {
                json_t *ago = json_object_get(w, "sampled_ms_ago");
                assert_true(json_is_integer(ago));
                if (!running || json_integer_value(json_object_get(w, "pid")) != busy)
                    continue;
                long long age = json_integer_value(ago);
                arrived += prev >= 0 && age < prev;
                prev = age;
                oldest = age > oldest ? age : oldest;
            }
            reply_free(&r);
            sleep_ms(STATS_INTERVAL_MS / 4);
        }
        print_message("a %llu ms run: %d samples of the busy worker arrived during it, the oldest copy %lld ms old\n",
                      (unsigned long long)(now_ms() - t0), arrived, oldest);
        expect_long_run_ok(&lr);
        close(lr.fd);
    }
    assert_true(arrived >= 2);
    T.passed = true;
}

/* A worker told to retire reports "draining" at once, even while a long
 * run keeps it from reading its own signal; it finishes the run.  The run
 * is sized to outlast a reload; if the reload took longer still, the next
 * generation's worker is tried with a run twice as long. */
static void a_busy_retiring_worker_reports_draining(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    bool judged = false;
    for (int gen = 2, ms = 2000; !judged && gen <= 5; gen++, ms *= 2) {
        long_run lr = long_run_start(&T.srv, 1, long_run_mb(T.srv.port, (unsigned)ms));
        pid_t old = long_run_wait_busy(&lr);
        assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
        char serving[64];
        snprintf(serving, sizeof serving, "generation %d serving", gen);
        assert_true(wait_log(&T.srv, serving, HANG_MS));
        reply r;
        assert_int_equal(http(T.srv.port, "GET", "/stats", NULL, &r), 0); /* the new worker answers */
        expect_status(&r, 200);
        judged = !long_run_answered(&lr); /* the old worker was still running when /stats was read */
        const char *status = NULL;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(r.json, "workers"), i, w)
        if (json_integer_value(json_object_get(w, "pid")) == old)
            status = json_string_value(json_object_get(w, "status"));
        print_message("generation %d: the run of %d MiB was %s when /stats said the old worker was %s\n", gen,
                      lr.mb, judged ? "going on" : "over", status ? status : "gone");
        if (judged) {
            assert_non_null(status);
            assert_string_equal(status, "draining");
        }
        reply_free(&r);
        expect_long_run_ok(&lr); /* and it finishes its run */
        close(lr.fd);
    }
    assert_true(judged);
    T.passed = true;
}

static void sighup_reloads_a_changed_dag_without_failing_a_request(void **state)
{
    (void)state;
    copy_fixtures(&T);
    char config[256], dagfile[256], text[1024];
    tmp_path(&T, "cowdag.json", config, sizeof config);
    tmp_path(&T, "dags/version.json", dagfile, sizeof dagfile);
    server_start(&T.srv, config, 0);
    pid_t old[MAX_PIDS], now[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, old), 2);
    reply r;
    long long answer;
    pid_t pid;
    assert_int_equal(run_version(T.srv.port, &answer, &pid, &r), 0);
    reply_free(&r);
    assert_int_equal(answer, 1);

    loop_start(&T, 2, 0);
    loop_wait_answers(&T, 1); /* the loop is going */
    snprintf(text, sizeof text, version_dag, 2);
    write_file(dagfile, text);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);

    /* our own requests too, until the new value shows */
    int own_failed = 0;
    uint64_t deadline = now_ms() + HANG_MS;
    answer = 1;
    while (answer != 2 && now_ms() < deadline) {
        if (run_version(T.srv.port, &answer, &pid, &r) != 0) {
            own_failed++;
            show_reply(&r);
        }
        reply_free(&r);
    }
    assert_int_equal(answer, 2);
    assert_false(pid_in(pid, old, 2));
    /* the old generation retires; keep the loop going until it has gone */
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    deadline = now_ms() + HANG_MS;
    while ((kill(old[0], 0) == 0 || kill(old[1], 0) == 0) && now_ms() < deadline)
        sleep_ms(10);
    loop_wait_answers(&T, __atomic_load_n(&T.loop->ok, __ATOMIC_SEQ_CST) + 10); /* the new ones answer */
    loop_stop(&T);
    print_message("client loop: %d ok, %d failed, %d saw the new value%s%s\n", T.loop->ok, T.loop->failed,
                  T.loop->saw_new, T.loop->failed ? "; first failure: " : "", T.loop->failure);
    assert_int_equal(own_failed, 0);
    assert_int_equal(T.loop->failed, 0);
    assert_true(T.loop->ok > 0);
    assert_true(T.loop->saw_new > 0);
    /* a new generation: new pids only */
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, now), 2);
    assert_false(pid_in(now[0], old, 2));
    assert_false(pid_in(now[1], old, 2));
    assert_true(log_has(&T.srv, "generation 2 loaded"));
    T.passed = true;
}

static void sigttin_adds_a_worker_and_sigttou_removes_one(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS], more[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    assert_int_equal(kill(T.srv.pid, SIGTTIN), 0);
    assert_int_equal(wait_workers(&T.srv, 3, HANG_MS, more), 3);
    assert_true(pid_in(kids[0], more, 3) && pid_in(kids[1], more, 3));
    assert_true(log_has(&T.srv, "SIGTTIN: 3 workers"));
    assert_int_equal(kill(T.srv.pid, SIGTTOU), 0);
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    assert_true(log_has(&T.srv, "SIGTTOU: 2 workers"));
    assert_int_equal(kill(T.srv.pid, SIGTTOU), 0);
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    /* the last worker stays */
    assert_int_equal(kill(T.srv.pid, SIGTTOU), 0);
    assert_true(wait_log(&T.srv, "SIGTTOU: 1 worker, the least; it stays", HANG_MS));
    assert_int_equal(workers_of(&T.srv, kids), 1);
    reply r;
    long long answer;
    pid_t pid;
    assert_int_equal(run_version(T.srv.port, &answer, &pid, &r), 0);
    assert_int_equal(pid, kids[0]);
    reply_free(&r);
    assert_false(server_exited(&T.srv));
    T.passed = true;
}

static void max_requests_recycles_the_worker(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 */
    pid_t seen[MAX_PIDS];
    int nseen = 0, failed = 0;
    for (int i = 0; i < 60; i++) {
        reply r;
        long long answer;
        pid_t pid;
        if (run_version(T.srv.port, &answer, &pid, &r) != 0) {
            failed++;
            print_message("request %d failed: ", i);
            show_reply(&r);
        } else if (!pid_in(pid, seen, nseen) && nseen < MAX_PIDS) {
            seen[nseen++] = pid;
        }
        reply_free(&r);
    }
    print_message("60 requests: %d pids answered, %d failed\n", nseen, failed);
    assert_int_equal(failed, 0);
    assert_true(nseen >= 2);
    /* the master either refills the slot as the worker starts draining, or
     * (when the drain is quicker than the master's look) once it exits */
    assert_true(log_has(&T.srv, "is recycling; starting its replacement") ||
                log_has(&T.srv, "exited normally (recycled)"));
    T.passed = true;
}

/* A client that sends half a request and stalls must not stop a recycling
 * worker's slot from serving: the master refills the slot as the worker
 * starts draining, and the drain itself ends at graceful_timeout_ms. */
static void a_stalled_client_does_not_stop_a_recycling_slot(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 */
    int stalled = conn_open(T.srv.port);
    assert_true(stalled >= 0);
    const char *half = "POST /dags/version/run HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp";
    assert_int_equal(send_all(stalled, half, strlen(half)), 0);
    int failed = 0;
    uint64_t t0 = now_ms(), slowest = 0;
    for (int i = 0; i < 60; i++) { /* three recycles' worth */
        reply r;
        long long answer;
        pid_t pid;
        uint64_t t = now_ms();
        if (run_version(T.srv.port, &answer, &pid, &r) != 0)
            failed++;
        reply_free(&r);
        slowest = now_ms() - t > slowest ? now_ms() - t : slowest;
    }
    print_message("60 requests beside a stalled one: %d failed, slowest %llu ms, %llu ms in all\n", failed,
                  (unsigned long long)slowest, (unsigned long long)(now_ms() - t0));
    close(stalled);
    assert_int_equal(failed, 0);
    /* a slot that waited for the drained worker to leave would answer after
     * graceful_timeout_ms */
    assert_true(slowest < GRACEFUL_TIMEOUT_MS / 2);
    T.passed = true;
}

/* A connection a worker has accepted is its to answer, even when the
 * request bytes come a moment after the connect (a slow client, a request
 * split over packets): the worker must not retire with it unanswered.  The
 * client here sends only once a worker has accepted the connection, which
 * makes the race that concurrent clients hit now and then (an empty reply)
 * happen every time. */
static int open_idle_connection(int port)
{
    int fd = conn_open(port);
    assert_true(fd >= 0);
    wait_server_took(fd, false);
    return fd;
}

static void send_version_and_expect_200(int fd, int port)
{
    size_t len;
    char *req = request_text(port, "POST", "/dags/version/run", "{}", &len);
    int sent = send_all(fd, req, len);
    free(req);
    reply r;
    memset(&r, 0, sizeof r);
    int rc = conn_read_reply(fd, &r);
    close(fd);
    if (rc != 0 || sent != 0)
        print_message("the early connection got no answer (send %s): %s\n", sent ? strerror(errno) : "ok",
                      r.err);
    assert_int_equal(rc, 0);
    expect_status(&r, 200);
    reply_free(&r);
}

static void recycling_worker_answers_the_connection_it_accepted(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 (+0..2 jitter) */
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    int early = open_idle_connection(T.srv.port);
    /* A child sends 25 requests, one after the other: the worker drains
     * after its 20th to 22nd.  Once 22 are answered, or 20 and the answers
     * have stopped coming for 100 ms, it is draining (or gone): then the
     * early connection sends its request. */
    loop_start(&T, -1, 25);
    int last = -1;
    uint64_t since = now_ms(), deadline = now_ms() + HANG_MS;
    for (;;) {
        int ok = __atomic_load_n(&T.loop->ok, __ATOMIC_SEQ_CST) + __atomic_load_n(&T.loop->failed, __ATOMIC_SEQ_CST);
        if (ok != last) {
            last = ok;
            since = now_ms();
        }
        if (ok >= 22 || (ok >= 20 && now_ms() - since >= 100) || now_ms() > deadline)
            break;
        sleep_ms(2);
    }
    print_message("the early connection sends after %d other answers\n", last);
    send_version_and_expect_200(early, T.srv.port);
    loop_stop_when_done(&T, HANG_MS);
    print_message("the other requests: %d ok, %d failed%s%s\n", T.loop->ok, T.loop->failed,
                  T.loop->failed ? "; first failure: " : "", T.loop->failure);
    assert_int_equal(T.loop->failed, 0);
    assert_int_equal(T.loop->ok, 25);
    /* the master either refills the slot as the worker starts draining, or
     * (when the drain is quicker than the master's look) once it exits */
    assert_true(log_has(&T.srv, "is recycling; starting its replacement") ||
                log_has(&T.srv, "exited normally (recycled)"));
    T.passed = true;
}

static void reload_answers_a_connection_the_old_worker_accepted(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 0);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    int early = open_idle_connection(T.srv.port);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    sleep_ms(300); /* time for an old worker to retire if it thinks it is idle */
    send_version_and_expect_200(early, T.srv.port);
    T.passed = true;
}

/* Shared kB, from /proc/PID/smaps, of the mappings that overlap any of
 * the ranges. */
static unsigned long long shared_kb_overlapping(pid_t pid, const span *ranges, int n)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long long shared = 0, kb;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi;
        char key[64];
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = false;
            for (int i = 0; i < n && !in; i++)
                in = lo < ranges[i].end && hi > ranges[i].start;
        } else if (in && sscanf(line, "%63[^:]: %llu kB", key, &kb) == 2 &&
                   (strcmp(key, "Shared_Clean") == 0 || strcmp(key, "Shared_Dirty") == 0)) {
            shared += kb;
        }
    }
    fclose(f);
    return shared;
}

/* A reload's new worker gives up the old state as it starts.  The old
 * generation is kept alive meanwhile (its worker held with SIGSTOP, so the
 * master keeps the old state too): the old worker shares its state's pages
 * with the master, the new worker shares not one page in those ranges. */
static void a_new_generation_worker_holds_none_of_the_old_state(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/admin.json", 1);
    pid_t old[MAX_PIDS], now[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, old), 1);
    static span ranges[4096];
    int n = state_ranges(T.srv.port, ranges, 4096); /* answered by the only worker */
    assert_true(n > 0 && n < 4096);
    unsigned long long before = shared_kb_overlapping(old[0], ranges, n);
    assert_true(before > 0);
    stop_process(old[0]); /* the old generation cannot leave */
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS)); /* the new worker is ready */
    int k = workers_of(&T.srv, now);
    pid_t fresh = 0;
    for (int i = 0; i < k; i++)
        if (now[i] != old[0])
            fresh = now[i];
    assert_true(fresh > 0);
    unsigned long long after = shared_kb_overlapping(fresh, ranges, n);
    print_message("the old state's ranges: %llu kB shared by the old worker, %llu kB by the new one\n", before, after);
    assert_int_equal(after, 0);
    assert_true(log_has(&T.srv, "worker 0: gave up"));
    assert_int_equal(kill(old[0], SIGCONT), 0);
    assert_true(wait_gone(old[0]));
    assert_true(wait_log(&T.srv, "generation 1 released", HANG_MS));
    T.passed = true;
}

/* The slot-0 worker's replacements for `reason`, from GET /stats. */
static long long restarts_of_slot0(int port, const char *reason)
{
    reply r;
    assert_int_equal(http(port, "GET", "/stats", NULL, &r), 0);
    expect_status(&r, 200);
    long long n = -1;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(r.json, "workers"), i, w)
    if (json_integer_value(json_object_get(w, "id")) == 0)
        n = json_integer_value(json_object_get(json_object_get(w, "restarts"), reason));
    reply_free(&r);
    return n;
}

/* Waits for an answer from a worker other than `gone`; its pid. */
static pid_t answer_from_another(int port, pid_t gone)
{
    uint64_t deadline = now_ms() + HANG_MS;
    pid_t pid = 0;
    while (pid <= 0 || pid == gone) {
        reply r;
        long long answer;
        if (run_version(port, &answer, &pid, &r) != 0)
            pid = 0;
        reply_free(&r);
        if (now_ms() > deadline)
            fail_msg("no other worker answered within %d ms", HANG_MS);
    }
    return pid;
}

/* The watchdog: a stopped worker no longer comes back to its loop; past
 * worker_timeout_ms (and not before) the master kills it, saying it was
 * idle, counts a restart for "timeout" and starts another. */
static void a_worker_that_stops_coming_back_to_its_loop_is_killed_and_replaced(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"worker_timeout_ms\": 2000,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    assert_true(answer_from_another(T.srv.port, 0) == kids[0]); /* serving, so beating */
    uint64_t t0 = now_ms();
    stop_process(kids[0]);
    char line[128];
    snprintf(line, sizeof line, "worker 0 (pid %d) has not come back to its loop for ", (int)kids[0]);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    uint64_t took = now_ms() - t0;
    print_message("killed %llu ms after SIGSTOP\n", (unsigned long long)took);
    assert_true(took + 100 >= 2000); /* its last beat came up to a turn (50 ms) before the stop */
    char *log = server_log(&T.srv);
    assert_non_null(strstr(strstr(log, line), "ms (idle): SIGKILL"));
    free(log);
    answer_from_another(T.srv.port, kids[0]);
    assert_int_equal(restarts_of_slot0(T.srv.port, "timeout"), 1);
    assert_int_equal(restarts_of_slot0(T.srv.port, "crash"), 0);
    reply r;
    assert_int_equal(http(T.srv.port, "GET", "/metrics", NULL, &r), 0);
    assert_non_null(strstr(r.body, "cowdag_worker_restarts_total{worker=\"0\",reason=\"timeout\"} 1\n"));
    reply_free(&r);
    T.passed = true;
}

/* Recycling on copied memory: a full collection in tuned mode copies the
 * tracked objects' pages, past max_copied_ratio 0.1; the master retires
 * that worker (it leaves by itself) and a fresh one serves. */
static void a_worker_that_copied_too_much_of_the_state_is_recycled(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture("tuned.json", "\"admin\": true,", "\"admin\": true, \"max_copied_ratio\": 0.1,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    reply r;
    assert_int_equal(http(T.srv.port, "POST", "/admin/gc/collect?generation=2", NULL, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    char line[128];
    snprintf(line, sizeof line, "worker 0 (pid %d) copied ", (int)kids[0]);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    assert_true(log_has(&T.srv, "past max_copied_ratio 0.1; recycling it"));
    assert_true(wait_gone(kids[0]));
    answer_from_another(T.srv.port, kids[0]);
    assert_int_equal(restarts_of_slot0(T.srv.port, "copied"), 1);
    T.passed = true;
}

/* max_rss_mib: a worker past it is recycled the same way. */
static void a_worker_past_max_rss_mib_is_recycled(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"max_rss_mib\": 1,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    char line[128];
    snprintf(line, sizeof line, "worker 0 (pid %d) RSS ", (int)kids[0]);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    assert_true(log_has(&T.srv, "past max_rss_mib 1; recycling it"));
    assert_true(wait_gone(kids[0]));
    assert_true(restarts_of_slot0(T.srv.port, "rss") >= 1);
    T.passed = true;
}

static void broken_config_on_sighup_keeps_the_old_generation(void **state)
{
    (void)state;
    copy_fixtures(&T);
    char config[256], good_config[256];
    tmp_path(&T, "cowdag.json", config, sizeof config);
    snprintf(good_config, sizeof good_config, "%s", FIXTURES "/cowdag.json");
    server_start(&T.srv, config, 0);
    pid_t old[MAX_PIDS], now[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, old), 2);
    write_file(config, "{ \"workers\": 2, \"listen\": \n");
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "reload failed", HANG_MS));
    assert_true(log_has(&T.srv, "generation 1 goes on serving"));
    for (int i = 0; i < 10; i++) {
        reply r;
        long long answer;
        pid_t pid;
        assert_int_equal(run_version(T.srv.port, &answer, &pid, &r), 0);
        assert_int_equal(answer, 1);
        assert_true(pid_in(pid, old, 2));
        reply_free(&r);
    }
    assert_int_equal(workers_of(&T.srv, now), 2);
    assert_memory_equal(now, old, 2 * sizeof(pid_t));
    assert_false(server_exited(&T.srv));
    /* once the file is mended, the next reload goes through */
    char *text = slurp(good_config, NULL);
    assert_non_null(text);
    write_file(config, text);
    free(text);
    assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, now), 2);
    assert_false(pid_in(now[0], old, 2) || pid_in(now[1], old, 2));
    T.passed = true;
}

/* }====================================================================== */

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='sig*' runs the tests so named */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest master[] = {
        STANDALONE(sigkill_of_a_worker_is_replaced_at_once),
        STANDALONE(sigterm_finishes_the_inflight_run_and_exits_0),
        STANDALONE(sigterm_with_a_stalled_client_lets_the_worker_leave_by_itself),
        STANDALONE(worker_priority_sets_the_workers_nice_value),
        STANDALONE(an_address_in_use_fails_before_the_state_loads),
        STANDALONE(a_busy_worker_keeps_its_memory_sample_fresh),
        STANDALONE(a_busy_retiring_worker_reports_draining),
        STANDALONE(sighup_reloads_a_changed_dag_without_failing_a_request),
        STANDALONE(sigttin_adds_a_worker_and_sigttou_removes_one),
        STANDALONE(max_requests_recycles_the_worker),
        STANDALONE(broken_config_on_sighup_keeps_the_old_generation),
        STANDALONE(a_new_generation_worker_holds_none_of_the_old_state),
        STANDALONE(a_worker_that_stops_coming_back_to_its_loop_is_killed_and_replaced),
        STANDALONE(a_worker_that_copied_too_much_of_the_state_is_recycled),
        STANDALONE(a_worker_past_max_rss_mib_is_recycled),
        STANDALONE(recycling_worker_answers_the_connection_it_accepted),
        STANDALONE(a_stalled_client_does_not_stop_a_recycling_slot),
        STANDALONE(reload_answers_a_connection_the_old_worker_accepted),
    };
    return cmocka_run_group_tests_name("server master", master, NULL, NULL) ? 1 : 0;
}
