/* test_conns: connections to `cowdag serve`: keep-alive clients that lose nothing
 * through reloads, scaling, recycling and stops; a request a held worker left unread;
 * the master's death; the header, keep-alive and flood defenses (tests/server_support.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/server_support.h"
#include "tests/support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ====================================================================== */
/* {  Zero loss: keep-alive clients across reload, scaling, recycling, stop */
/* ====================================================================== */

/* Keep-alive clients, each in a child process, that count every request
 * they sent and every one answered.  A request is lost when its connection
 * ends before a whole 200 came back; a connect refused is counted apart
 * (after a stop the port refuses, which loses nothing).  A response with
 * Connection: close makes the client reconnect, as HTTP clients do. */
#define KA_CLIENTS 8

typedef struct ka_shared {
    int stop;
    int going; /* clients that have had an answer */
    long sent, answered, lost, refused, reconnects;
    char failure[256]; /* the first loss */
} ka_shared;

static ka_shared *KA;
static pid_t ka_pids[KA_CLIENTS];

static void ka_lost(ka_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ka_lost(ka_shared *sh, const char *fmt, ...)
{
    if (__atomic_add_fetch(&sh->lost, 1, __ATOMIC_SEQ_CST) == 1) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(sh->failure, sizeof sh->failure, fmt, ap);
        va_end(ap);
    }
}

static _Noreturn void ka_client(int port, ka_shared *sh)
{
    char req[256];
    int len = snprintf(req, sizeof req,
                       "POST /dags/version/run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}",
                       port);
    int fd = -1;
    bool going = false;
    while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
        if (fd < 0) {
            fd = conn_open(port);
            if (fd < 0) {
                if (errno == ECONNREFUSED)
                    __atomic_add_fetch(&sh->refused, 1, __ATOMIC_SEQ_CST);
                else
                    ka_lost(sh, "connect: %s", strerror(errno));
                sleep_ms(5);
                continue;
            }
            __atomic_add_fetch(&sh->reconnects, 1, __ATOMIC_SEQ_CST);
        }
        __atomic_add_fetch(&sh->sent, 1, __ATOMIC_SEQ_CST);
        reply r;
        memset(&r, 0, sizeof r);
        if (send_all(fd, req, (size_t)len) != 0) {
            ka_lost(sh, "send: %s", strerror(errno));
        } else if (conn_read_one(fd, &r) != 0) {
            ka_lost(sh, "%s", r.err);
        } else if (r.status != 200) {
            ka_lost(sh, "status %d: %.120s", r.status, r.body);
        } else {
            __atomic_add_fetch(&sh->answered, 1, __ATOMIC_SEQ_CST);
            if (!going && (going = true))
                __atomic_add_fetch(&sh->going, 1, __ATOMIC_SEQ_CST);
            char conn[32];
            if (!reply_header(&r, "Connection", conn, sizeof conn) || strcasecmp(conn, "close") != 0) {
                reply_free(&r);
                continue; /* keep the connection */
            }
        }
        reply_free(&r);
        close(fd);
        fd = -1;
    }
    _exit(0);
}

static void ka_start(int port)
{
    KA = mmap(NULL, sizeof *KA, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(KA != MAP_FAILED);
    memset(KA, 0, sizeof *KA);
    fflush(NULL);
    for (int i = 0; i < KA_CLIENTS; i++) {
        ka_pids[i] = fork();
        assert_true(ka_pids[i] >= 0);
        if (ka_pids[i] == 0)
            ka_client(port, KA);
    }
    uint64_t deadline = now_ms() + HANG_MS;
    while (__atomic_load_n(&KA->going, __ATOMIC_SEQ_CST) < KA_CLIENTS) { /* every client has been answered */
        if (now_ms() > deadline)
            fail_msg("%d of %d keep-alive clients had an answer in %d ms", KA->going, KA_CLIENTS, HANG_MS);
        sleep_ms(5);
    }
}

static long ka_answered(void) { return __atomic_load_n(&KA->answered, __ATOMIC_SEQ_CST); }

/* Waits until the clients have `more` answers beyond what they had. */
static void ka_wait_more(long more)
{
    long want = ka_answered() + more;
    uint64_t deadline = now_ms() + HANG_MS;
    while (ka_answered() < want) {
        if (now_ms() > deadline)
            fail_msg("the keep-alive clients got %ld answers, not %ld, in %d ms", ka_answered(), want, HANG_MS);
        sleep_ms(5);
    }
}

/* Stops the clients (each ends its exchange first). */
static void ka_stop(void)
{
    if (!KA)
        return;
    __atomic_store_n(&KA->stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < KA_CLIENTS; i++) {
        if (ka_pids[i] <= 0)
            continue;
        uint64_t deadline = now_ms() + HANG_MS;
        int st;
        while (waitpid(ka_pids[i], &st, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(ka_pids[i], SIGKILL);
                waitpid(ka_pids[i], &st, 0);
                break;
            }
            sleep_ms(5);
        }
        ka_pids[i] = 0;
    }
}

/* Stops the clients and checks that nothing they sent went unanswered. */
static void ka_expect_no_loss(const char *what)
{
    ka_stop();
    print_message("%s: %ld sent, %ld answered, %ld lost, %ld connections, %ld connects refused%s%s\n", what, KA->sent,
                  KA->answered, KA->lost, KA->reconnects, KA->refused, KA->lost ? "; first loss: " : "",
                  KA->failure);
    assert_int_equal(KA->lost, 0);
    assert_int_equal(KA->answered, KA->sent);
    assert_true(KA->answered > 0);
}

static int ka_setup(void **state)
{
    KA = NULL;
    return standalone_setup(state);
}

static int ka_teardown(void **state)
{
    ka_stop();
    if (KA)
        munmap(KA, sizeof *KA);
    KA = NULL;
    return standalone_teardown(state);
}

static void keepalive_clients_lose_nothing_across_sighup(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    ka_start(T.srv.port);
    ka_wait_more(100);
    for (int gen = 2; gen <= 4; gen++) {
        assert_int_equal(kill(T.srv.pid, SIGHUP), 0);
        char line[64];
        snprintf(line, sizeof line, "generation %d serving", gen);
        assert_true(wait_log(&T.srv, line, HANG_MS));
        /* the old generation leaves while the clients go on */
        assert_true(wait_gone(kids[0]) && wait_gone(kids[1]));
        assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
        ka_wait_more(100);
    }
    ka_expect_no_loss("three reloads");
    T.passed = true;
}

static void keepalive_clients_lose_nothing_across_sigttin_and_sigttou(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    ka_start(T.srv.port);
    ka_wait_more(100);
    const int sig[] = {SIGTTIN, SIGTTOU, SIGTTOU, SIGTTIN, SIGTTOU};
    const int want[] = {3, 2, 1, 2, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(kill(T.srv.pid, sig[i]), 0);
        assert_int_equal(wait_workers(&T.srv, want[i], HANG_MS, kids), want[i]);
        ka_wait_more(100);
    }
    ka_expect_no_loss("workers 2 -> 3 -> 2 -> 1 -> 2 -> 1");
    T.passed = true;
}

static void keepalive_clients_lose_nothing_across_max_requests(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/recycle.json", 0); /* 1 worker, max_requests 20 */
    ka_start(T.srv.port);
    ka_wait_more(400); /* about twenty recycles */
    ka_expect_no_loss("max_requests 20");
    assert_true(log_has(&T.srv, "is recycling; starting its replacement") ||
                log_has(&T.srv, "exited normally (recycled)"));
    T.passed = true;
}

static void keepalive_clients_lose_nothing_across_sigterm(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    ka_start(T.srv.port);
    ka_wait_more(100);
    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    /* the clients go on until each has been refused: the port is closed */
    uint64_t deadline = now_ms() + HANG_MS;
    while (__atomic_load_n(&KA->refused, __ATOMIC_SEQ_CST) < KA_CLIENTS && now_ms() < deadline)
        sleep_ms(5);
    ka_expect_no_loss("SIGTERM");
    assert_true(KA->refused >= KA_CLIENTS);
    assert_false(log_has(&T.srv, "SIGKILL"));
    T.passed = true;
}

/* --- a request already sent on an idle keep-alive connection ------------- */

/* True while `sig` is pending for the process (its shared pending set). */
static bool signal_pending(pid_t pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    bool pending = false;
    unsigned long long mask;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "ShdPnd: %llx", &mask) == 1)
            pending = mask & (1ull << (sig - 1));
    if (f)
        fclose(f);
    return pending;
}

/* The worker is stopped (SIGSTOP) with a keep-alive connection idle; the
 * client sends its next request, which waits unread in the worker's
 * socket; the master tells the worker to retire (the signal waits
 * pending); the worker goes on: it must answer the request, marking the
 * answer Connection: close, and then leave. */
static void retiring_with_a_request_unread(int signal_to_master)
{
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 1, HANG_MS, kids), 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    char req[256];
    int len = snprintf(req, sizeof req,
                       "POST /dags/version/run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}",
                       T.srv.port);
    reply r;
    assert_int_equal(send_all(fd, req, (size_t)len), 0);
    assert_int_equal(conn_read_one(fd, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);

    stop_process(kids[0]);
    assert_int_equal(send_all(fd, req, (size_t)len), 0); /* unread: the worker is stopped */
    assert_int_equal(kill(T.srv.pid, signal_to_master), 0);
    uint64_t deadline = now_ms() + HANG_MS;
    /* the master has told it: SIGTERM to retire, SIGINT to stop */
    while (!signal_pending(kids[0], SIGTERM) && !signal_pending(kids[0], SIGINT)) {
        if (now_ms() > deadline)
            fail_msg("the master did not signal its worker within %d ms", HANG_MS);
        sleep_ms(5);
    }
    assert_int_equal(kill(kids[0], SIGCONT), 0);
    int rc = conn_read_one(fd, &r);
    if (rc != 0)
        show_reply(&r);
    assert_int_equal(rc, 0);
    expect_status(&r, 200);
    char conn[32] = "";
    assert_true(reply_header(&r, "Connection", conn, sizeof conn));
    assert_string_equal(conn, "close");
    reply_free(&r);
    char byte;
    assert_int_equal(recv(fd, &byte, 1, 0), 0); /* and then it closes */
    close(fd);
    assert_true(wait_gone(kids[0]));
}

static void a_reload_answers_a_request_sent_on_an_idle_keepalive_connection(void **state)
{
    (void)state;
    retiring_with_a_request_unread(SIGHUP);
    assert_true(wait_log(&T.srv, "generation 2 serving", HANG_MS));
    T.passed = true;
}

static void a_stop_answers_a_request_sent_on_an_idle_keepalive_connection(void **state)
{
    (void)state;
    retiring_with_a_request_unread(SIGTERM);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_true(WIFEXITED(T.srv.status));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    T.passed = true;
}

/* --- the master's death --------------------------------------------------- */

static void workers_leave_when_the_master_is_killed(void **state)
{
    (void)state;
    server_start(&T.srv, FIXTURES "/cowdag.json", 2);
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    int port = T.srv.port;
    uint64_t t0 = now_ms();
    assert_int_equal(kill(T.srv.pid, SIGKILL), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_true(wait_gone(kids[0]) && wait_gone(kids[1]));
    uint64_t took = now_ms() - t0;
    print_message("both workers gone %llu ms after the master's SIGKILL\n", (unsigned long long)took);
    assert_true(took <= 2000);
    /* the port is free for a new master at once */
    server next;
    server_start_at(&next, FIXTURES "/cowdag.json", 1, port);
    assert_int_equal(next.port, port);
    server_stop(&next);
    T.passed = true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Connection defense                                                   */
/* ====================================================================== */

/* Waits for the server to close the connection, reading (and returning
 * how many bytes of) whatever it sends; *took gets the ms from t0. */
static size_t wait_closed(int fd, uint64_t t0, uint64_t *took)
{
    size_t got = 0;
    uint64_t deadline = now_ms() + HANG_MS;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
                break;
            if (n > 0)
                got += (size_t)n;
        }
        if (now_ms() > deadline)
            fail_msg("the server kept the connection open for %d ms", HANG_MS);
    }
    *took = now_ms() - t0;
    return got;
}

/* A header dripped a byte at a time must still arrive whole within
 * header_timeout_ms: the server closes the connection then, though every
 * byte came well within any idle timeout. */
static void a_header_must_arrive_within_header_timeout_ms(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"header_timeout_ms\": 1000,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    uint64_t t0 = now_ms();
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t sent = 0;
    bool closed = false;
    while (!closed && now_ms() - t0 < HANG_MS) { /* a byte every 50 ms */
        char c = sent < strlen(head) ? head[sent] : 'a';
        if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
            break;
        sent++;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        closed = poll(&p, 1, 50) == 1;
    }
    uint64_t took;
    size_t answer = wait_closed(fd, t0, &took);
    close(fd);
    print_message("closed after %llu ms and %zu bytes dripped; %zu bytes of answer\n", (unsigned long long)took, sent,
                  answer);
    assert_true(took >= 1000);
    assert_int_equal(answer, 0);
    T.passed = true;
}

static void an_idle_keepalive_connection_closes_after_keepalive_timeout_ms(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"keepalive_timeout_ms\": 500,", cfg, sizeof cfg);
    server_start(&T.srv, cfg, 1);
    int fd = conn_open(T.srv.port);
    assert_true(fd >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    /* Timed from before the request: the server's idle time starts when it
     * has answered, which may be before the test has read the answer. */
    uint64_t t0 = now_ms(), took;
    assert_int_equal(send_all(fd, req, strlen(req)), 0);
    reply r;
    assert_int_equal(conn_read_one(fd, &r), 0);
    expect_status(&r, 200);
    reply_free(&r);
    assert_int_equal(wait_closed(fd, t0, &took), 0);
    close(fd);
    print_message("an idle keep-alive connection closed after %llu ms\n", (unsigned long long)took);
    assert_true(took >= 500);
    T.passed = true;
}

/* With 256 open files a worker takes fewer connections than the test
 * opens; idle keep-alive connections and headers that never end fill every
 * worker, and requests are still answered: the longest-idle connections
 * make room, the dripping ones end at header_timeout_ms. */
#define FLOOD_NOFILE 256
#define FLOOD_EACH 300
static void a_flood_of_idle_and_unfinished_connections_locks_nobody_out(void **state)
{
    (void)state;
    char cfg[512];
    edited_fixture_config("\"admin\": false,", "\"admin\": false, \"header_timeout_ms\": 2000,", cfg, sizeof cfg);
    server_nofile = FLOOD_NOFILE;
    server_start(&T.srv, cfg, 2);
    server_nofile = 0;
    pid_t kids[MAX_PIDS];
    assert_int_equal(wait_workers(&T.srv, 2, HANG_MS, kids), 2);
    char line[128];
    snprintf(line, sizeof line, "open files %d", FLOOD_NOFILE);
    assert_true(wait_log(&T.srv, line, HANG_MS));
    static int idle[FLOOD_EACH], drip[FLOOD_EACH];
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int nidle = 0, ndrip = 0;
    for (int i = 0; i < FLOOD_EACH; i++) { /* kept open, idle after one answer */
        int fd = conn_open(T.srv.port);
        assert_true(fd >= 0);
        reply r;
        if (send_all(fd, req, strlen(req)) == 0 && conn_read_one(fd, &r) == 0 && r.status == 200)
            idle[nidle++] = fd;
        else
            close(fd);
        reply_free(&r);
    }
    for (int i = 0; i < FLOOD_EACH; i++) { /* a header begun and never ended */
        int fd = conn_open(T.srv.port);
        assert_true(fd >= 0);
        assert_int_equal(send_all(fd, "GET /healthz HTTP/1.1\r\nHost", 27), 0);
        drip[ndrip++] = fd;
    }
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        reply r;
        if (http(T.srv.port, "GET", "/healthz", NULL, &r) == 0 && r.status == 200)
            ok++;
        else
            show_reply(&r);
        reply_free(&r);
    }
    print_message("%d idle and %d unfinished connections opened; %d of 20 requests answered\n", nidle, ndrip, ok);
    assert_int_equal(nidle, FLOOD_EACH);
    assert_int_equal(ok, 20);
    for (int i = 0; i < nidle; i++)
        close(idle[i]);
    for (int i = 0; i < ndrip; i++)
        close(drip[i]);
    T.passed = true;
}

/* }====================================================================== */

#define KEEPALIVE(f) cmocka_unit_test_setup_teardown(f, ka_setup, ka_teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='keepalive*' runs the tests so named */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest conns[] = {
        STANDALONE(a_reload_answers_a_request_sent_on_an_idle_keepalive_connection),
        STANDALONE(a_stop_answers_a_request_sent_on_an_idle_keepalive_connection),
        STANDALONE(workers_leave_when_the_master_is_killed),
        STANDALONE(a_header_must_arrive_within_header_timeout_ms),
        STANDALONE(an_idle_keepalive_connection_closes_after_keepalive_timeout_ms),
        STANDALONE(a_flood_of_idle_and_unfinished_connections_locks_nobody_out),
    };
    const struct CMUnitTest zero_loss[] = {
        KEEPALIVE(keepalive_clients_lose_nothing_across_sighup),
        KEEPALIVE(keepalive_clients_lose_nothing_across_sigttin_and_sigttou),
        KEEPALIVE(keepalive_clients_lose_nothing_across_max_requests),
        KEEPALIVE(keepalive_clients_lose_nothing_across_sigterm),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("server connections", conns, NULL, NULL);
    failed += cmocka_run_group_tests_name("server zero loss", zero_loss, NULL, NULL);
    return failed ? 1 : 0;
}
