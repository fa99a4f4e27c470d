/* test_listen: where `cowdag serve` listens and how it tells systemd.  A
 * unix socket (mode, a stale file replaced, one in use refused, the file
 * gone with the master); socket activation through Debian's
 * systemd-socket-activate with the sd_notify messages read from a socket
 * of the test's own; the unit files in deploy/ through systemd-analyze. */
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
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void expect_healthz(int fd)
{
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send_all(fd, req, strlen(req)), 0);
    reply r;
    memset(&r, 0, sizeof r);
    assert_int_equal(conn_read_reply(fd, &r), 0);
    expect_status(&r, 200);
    assert_int_equal(strncmp(r.body, "ok", 2), 0);
    reply_free(&r);
    close(fd);
}

/* --- a unix socket ---------------------------------------------------------- */

static void a_unix_socket_serves_and_goes_with_the_master(void **state)
{
    (void)state;
    copy_fixtures(&T);
    char path[256], listen[300];
    tmp_path(&T, "cow.sock", path, sizeof path);
    /* a socket file left by a server that was killed: nobody listens */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof sa), 0);
    close(stale);

    snprintf(listen, sizeof listen, "unix:%s", path);
    server_listen = listen;
    server_start(&T.srv, FIXTURES "/cowdag.json", 1);
    server_listen = NULL;
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    expect_healthz(unix_connect(path));

    /* a second server on the same path is refused */
    char *cmd = dup_printf("%s serve -c %s --listen %s", cowdag_bin(), FIXTURES "/cowdag.json", listen), *out;
    assert_int_equal(run_cmd(cmd, &out), 1);
    free(cmd);
    assert_non_null(strstr(out, "Address already in use"));
    free(out);
    expect_healthz(unix_connect(path)); /* and the first goes on */

    assert_int_equal(kill(T.srv.pid, SIGTERM), 0);
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    assert_int_equal(stat(path, &st), -1); /* the file went with it */
    T.passed = true;
}

/* --- systemd: socket activation and sd_notify -------------------------------- */

#define ACTIVATE "/usr/bin/systemd-socket-activate"

typedef struct notify {
    int fd;
    char all[8192]; /* every message so far, one a line */
    size_t len;
} notify;

static void notify_open(notify *n, const char *path)
{
    memset(n, 0, sizeof *n);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_true(n->fd >= 0);
    assert_int_equal(bind(n->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* Reads messages until one holds `want` (after what was read before);
 * fails the test at the deadline. */
static void notify_wait(notify *n, const char *want)
{
    size_t from = n->len;
    uint64_t deadline = now_ms() + HANG_MS;
    while (!strstr(n->all + from, want)) {
        struct pollfd p = {.fd = n->fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            char msg[1024];
            ssize_t k = recv(n->fd, msg, sizeof msg - 1, 0);
            if (k > 0 && n->len + (size_t)k + 2 < sizeof n->all) {
                memcpy(n->all + n->len, msg, (size_t)k);
                n->len += (size_t)k;
                n->all[n->len++] = '\n';
                n->all[n->len] = '\0';
            }
        }
        if (now_ms() > deadline)
            fail_msg("no sd_notify message \"%s\" in %d ms; got:\n%s", want, HANG_MS, n->all);
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* systemd-socket-activate listens, then, at the first connection, execs
 * cowdag with the socket as fd 3 (LISTEN_FDS, LISTEN_PID): cowdag serves
 * on it, the first connection included, says READY=1 once
 * both workers serve (with a STATUS line saying so), RELOADING=1 and
 * READY=1 around a reload, and STOPPING=1. */
static void systemd_socket_activation_and_notify(void **state)
{
    (void)state;
    if (access(ACTIVATE, X_OK) != 0) /* Debian's systemd package, which the Makefile installs */
        fail_msg("%s is missing", ACTIVATE);
    copy_fixtures(&T);
    char sock[256];
    tmp_path(&T, "notify.sock", sock, sizeof sock);
    notify n;
    notify_open(&n, sock);
    int port = free_port();
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    snprintf(T.srv.log, sizeof T.srv.log, "/tmp/cowdag-test-server-XXXXXX");
    int logfd = mkstemp(T.srv.log);
    assert_true(logfd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        dup2(logfd, 2);
        setenv("NOTIFY_SOCKET", sock, 1);
        execl(ACTIVATE, ACTIVATE, "-l", where, "-E", "NOTIFY_SOCKET", cowdag_bin(), "serve", "-c",
              FIXTURES "/cowdag.json", "--workers", "2", (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    close(logfd);
    T.srv.pid = pid; /* systemd-socket-activate becomes cowdag: one pid */
    T.srv.port = port;

    /* it execs cowdag on the first connection, which waits in the queue */
    int first;
    uint64_t deadline = now_ms() + HANG_MS;
    while ((first = conn_open(port)) < 0 && now_ms() < deadline) /* once it listens */
        sleep_ms(10);
    expect_healthz(first);
    notify_wait(&n, "STATUS=2 of 2 workers serving");
    notify_wait(&n, "READY=1");
    assert_true(log_has(&T.srv, "listening on http://127.0.0.1:"));

    assert_int_equal(kill(pid, SIGHUP), 0);
    notify_wait(&n, "RELOADING=1");
    notify_wait(&n, "READY=1");
    assert_true(log_has(&T.srv, "generation 2 serving"));
    expect_healthz(conn_open(port));

    assert_int_equal(kill(pid, SIGTERM), 0);
    notify_wait(&n, "STOPPING=1");
    assert_true(server_wait_exit(&T.srv, HANG_MS));
    assert_int_equal(WEXITSTATUS(T.srv.status), 0);
    print_message("sd_notify messages:\n%s", n.all);
    close(n.fd);
    T.passed = true;
}

/* The unit files in deploy/ pass systemd-analyze verify, with ExecStart
 * pointing at the binary built here and the user running the test. */
static void the_unit_files_pass_systemd_analyze_verify(void **state)
{
    (void)state;
    if (access("/usr/bin/systemd-analyze", X_OK) != 0)
        fail_msg("/usr/bin/systemd-analyze is missing");
    copy_fixtures(&T);
    char dir[256], bin[512];
    tmp_path(&T, "", dir, sizeof dir);
    assert_non_null(realpath(cowdag_bin(), bin));
    const struct passwd *pw = getpwuid(getuid());
    assert_non_null(pw);
    char *cmd = dup_printf("sed 's|/usr/local/bin/cowdag|%s|; s|=cowdag$|=%s|' deploy/cowdag.service > %s/cowdag.service"
                           " && cp deploy/cowdag.socket %s/ && cd %s && systemd-analyze verify cowdag.socket"
                           " cowdag.service",
                           bin, pw->pw_name, dir, dir, dir),
         *out;
    int rc = run_cmd(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("systemd-analyze verify failed:\n%s", out);
    free(out);
    T.passed = true;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        STANDALONE(a_unix_socket_serves_and_goes_with_the_master),
        STANDALONE(systemd_socket_activation_and_notify),
        STANDALONE(the_unit_files_pass_systemd_analyze_verify),
    };
    return cmocka_run_group_tests_name("listen", tests, NULL, NULL);
}
