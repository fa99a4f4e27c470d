/* server_support: the harness of the suites that run `cowdag serve`
 * (tests/test_server.c, test_master.c, test_conns.c): the server under test,
 * its processes from /proc, a tiny HTTP/1.1 client and the assertions on its
 * replies.  Failures are cmocka's: include <cmocka.h> and its prerequisites
 * (setjmp.h, stdarg.h, stddef.h, stdint.h) before this header. */
#ifndef COWDAG_TEST_SERVER_SUPPORT_H
#define COWDAG_TEST_SERVER_SUPPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FIXTURES "tests/fixtures/server"
/* Every test here waits on events it can see -- a log line, a pid, a status
 * in /stats, a reply -- never on this machine's speed.  A deadline only ends
 * a test that hangs, so it is far above what any event takes on a slow or
 * loaded machine. */
#define HANG_MS 60000
#define IO_TIMEOUT_S 30 /* per connect/send/recv: a hung server fails, never hangs */
#define MAX_PIDS 64
#define GRACEFUL_TIMEOUT_MS 60000 /* as in the fixture configs: far above any run */
#define STATS_INTERVAL_MS 1000    /* as in cowdag.json and recycle.json */
#define MAX_BODY_BYTES 131072     /* as in the fixture configs */

/* ====================================================================== */
/* {  Small helpers                                                        */
/* ====================================================================== */

/* CLOCK_MONOTONIC in ms; a sleep that EINTR does not cut short. */
uint64_t now_ms(void);
void sleep_ms(unsigned ms);

/* Replaces a file in one step (write aside, rename), so the server never
 * reads half of it. */
void write_file(const char *path, const char *text);
void copy_file(const char *from, const char *to);
/* Copies a folder of folders and regular files; removes a whole tree. */
void copy_tree(const char *from, const char *to);
void rm_tree(const char *path);

/* }====================================================================== */

/* ====================================================================== */
/* {  Processes: children of the master, from /proc                         */
/* ====================================================================== */

/* State letter and parent of a process ('\0' if it is gone). */
char proc_state(pid_t pid, pid_t *ppid);
/* The live (not zombie) children of `parent`, sorted; returns how many. */
int children_of(pid_t parent, pid_t *out, int cap);
bool pid_in(pid_t pid, const pid_t *set, int n);
/* Waits until a process has exited (gone, or a zombie not yet reaped):
 * true if it did before HANG_MS. */
bool wait_gone(pid_t pid);

/* }====================================================================== */

/* ====================================================================== */
/* {  The server under test                                                */
/* ====================================================================== */

typedef struct server {
    pid_t pid; /* the master; 0: none */
    int port;
    char log[64]; /* its stderr */
    bool reaped;
    int status; /* once reaped */
} server;

/* Its log so far (malloc'ed, never NULL); whether it holds `needle`; a
 * wait of up to timeout_ms for it to. */
char *server_log(const server *s);
bool log_has(const server *s, const char *needle);
bool wait_log(const server *s, const char *needle, unsigned timeout_ms);
/* Prints the log to stderr without its access lines but the last five. */
void dump_log(const server *s, const char *why);

/* Reaps the master if it has exited (true once it has); waits up to
 * timeout_ms for that. */
bool server_exited(server *s);
bool server_wait_exit(server *s, unsigned timeout_ms);

/* The open-files limit the next server starts with (soft and hard); 0:
 * the test's own. */
extern int server_nofile;
/* The --listen argument of the next server in place of 127.0.0.1:PORT
 * (a unix socket: "unix:PATH"); NULL: TCP.  Such a server is up once it
 * logs "listening on unix:"; its port is 0. */
extern const char *server_listen;

/* Starts `cowdag serve -c config --listen 127.0.0.1:PORT [--workers N]`
 * (port 0: any free one; workers 0: the config's) in a process group of its
 * own, stderr to a temp file; returns once it logs "listening on" (the port
 * taken from that line), fails the test if it never does. */
void server_start_at(server *s, const char *config, int workers, int port);
void server_start(server *s, const char *config, int workers);
/* SIGTERM, a bounded wait, SIGKILL to the whole group as a last resort;
 * never leaves a process behind.  COWDAG_TEST_KEEP_LOGS=1 keeps the log. */
void server_stop(server *s);

/* The master's live children (at most MAX_PIDS), sorted; a wait until
 * there are exactly n, returning the count seen last. */
int workers_of(const server *s, pid_t *out);
int wait_workers(const server *s, int n, unsigned timeout_ms, pid_t *out);

/* }====================================================================== */

/* ====================================================================== */
/* {  A tiny HTTP/1.1 client                                               */
/* ====================================================================== */

typedef struct reply {
    int status;      /* 0: no valid reply (see err) */
    char err[160];
    char *raw;       /* the whole response */
    size_t rawlen;
    size_t headlen;  /* status line and headers, up to and with the blank line */
    char *body;      /* de-chunked, NUL-terminated */
    size_t len;
    json_t *json;    /* the body parsed, when it is JSON */
} reply;

void reply_free(reply *r);
/* Copies header `name`'s value (trimmed) into buf; false if absent. */
bool reply_header(const reply *r, const char *name, char *buf, size_t cap);

/* Connects to 127.0.0.1:port with send/receive timeouts of IO_TIMEOUT_S;
 * -1 on failure (errno kept). */
int conn_open(int port);
int send_all(int fd, const char *buf, size_t len);
/* Reads the response until the server closes, then parses it; 0, or -1
 * with r->err. */
int conn_read_reply(int fd, reply *r);
/* Reads one response on a keep-alive connection (one with Content-Length)
 * without waiting for the server to close. */
int conn_read_one(int fd, reply *r);

/* The server's end of a connection the test opened, from /proc/net/tcp:
 * its inode (0 while no worker has accepted it) and the bytes no worker
 * has read; false if it is not there. */
bool server_end(int client_fd, unsigned long *inode, unsigned long *unread);
/* Waits until a worker has accepted the connection and, if `read` is set,
 * read every byte the test sent on it. */
void wait_server_took(int client_fd, bool read);

/* One exchange on a fresh connection: sends `req` (whole), reads the
 * reply. */
int http_raw(int port, const char *req, size_t len, reply *r);
/* The request text (malloc'ed): method, path, Connection: close, and a JSON
 * body with Content-Length when body is not NULL. */
char *request_text(int port, const char *method, const char *path, const char *body, size_t *len);
int http(int port, const char *method, const char *path, const char *body, reply *r);
/* POST path with a chunked body (no Content-Length), `chunk` bytes a piece. */
int http_chunked(int port, const char *path, const char *body, size_t blen, size_t chunk, reply *r);
/* POST /dags/NAME/run. */
int run_dag(int port, const char *name, const char *body, reply *r);
/* Integer at outputs.<name> / stats.<name> of a run reply; -1 if absent. */
long long run_output_int(const reply *r, const char *name);
long long run_stat(const reply *r, const char *name);
/* POST /dags/version/run: 0 with the answer and the worker pid, or -1 (a
 * description in r->err or the status). */
int run_version(int port, long long *answer, pid_t *pid, reply *r);

/* GET /stats until every worker has a memory sample (bounded); the
 * document, parsed. */
json_t *stats_sampled(int port, int nworkers);
/* GET /stats until every worker's sample was taken after `since` (a
 * CLOCK_MONOTONIC time in ms); the document, parsed. */
json_t *stats_sampled_after(int port, int nworkers, uint64_t since);

/* }====================================================================== */

/* ====================================================================== */
/* {  Assertions on replies                                                */
/* ====================================================================== */

void show_reply(const reply *r);
void expect_status(const reply *r, int status);
/* The error document (README, "Serving: `cowdag serve`"): exactly
 * {"error": {"code": C, "message": M, "node": N?}}, with the status and
 * code wanted. */
void expect_error(const reply *r, int status, const char *code);
/* error.node of an error reply; NULL if absent. */
const char *error_node(const reply *r);

/* }====================================================================== */

/* ====================================================================== */
/* {  A server of each test's own                                          */
/* ====================================================================== */

/* A client loop in a child process, counting into shared memory. */
typedef struct loop_shared {
    int stop;
    int ok, failed;
    int saw_new;       /* answers equal to `new_answer` */
    long long new_answer;
    int limit;         /* stop after this many requests; 0: when told */
    char failure[256]; /* the first failure */
} loop_shared;

typedef struct test_ctx {
    server srv;
    char tmpdir[64]; /* a copy of the fixtures, "" if none */
    pid_t loop_pid;
    loop_shared *loop;
    bool passed; /* set by the last line of a test; else teardown shows the log */
} test_ctx;

/* The current standalone test: its server, fixtures and client loop, which
 * the teardown stops and removes (showing the server's log unless passed). */
extern test_ctx T;
int standalone_setup(void **state);
int standalone_teardown(void **state);
#define STANDALONE(f) cmocka_unit_test_setup_teardown(f, standalone_setup, standalone_teardown)

/* Copies the fixtures to a fresh temp folder (so a test may edit them);
 * the path of a file in it. */
void copy_fixtures(test_ctx *c);
void tmp_path(const test_ctx *c, const char *rel, char *out, size_t cap);
/* Copies the fixtures to T's folder and writes into its cowdag.json the
 * text `to` in place of `from` (which must be there); *cfg gets its path. */
void edited_fixture_config(const char *from, const char *to, char *cfg, size_t cap);
/* The same for the fixture config `name` (tuned.json, ...). */
void edited_fixture(const char *name, const char *from, const char *to, char *cfg, size_t cap);

/* A child that sends POST /dags/version/run on a new connection each time
 * until told to stop (or `limit` requests), counting successes, failures
 * and answers equal to new_answer; stopping it; waiting for one with a
 * limit to finish; waiting for `n` answers, good or bad. */
void loop_start(test_ctx *c, long long new_answer, int limit);
void loop_stop(test_ctx *c);
void loop_stop_when_done(test_ctx *c, unsigned timeout_ms);
void loop_wait_answers(test_ctx *c, int n);

/* }====================================================================== */

/* ====================================================================== */
/* {  Long runs, sized on this machine                                     */
/* ====================================================================== */

/* A long run in flight: the connection its answer will come on, and what
 * the workers' main threads had spent before it was sent. */
typedef struct long_run {
    int fd;
    int mb;
    int nworkers;
    pid_t workers[MAX_PIDS];
    long cpu_before[MAX_PIDS];
} long_run;

/* CPU time of a process's main thread (the one that serves requests; the
 * sampling thread is another), in ms; -1 if it is gone. */
long main_thread_cpu_ms(pid_t pid);

/* The size_mb that makes the slow DAG run at least `ms` on this machine as
 * it is now (timed, not assumed; runs last up to twice what is asked). */
int long_run_mb(int port, unsigned ms);
/* Sends a run of the slow DAG of `mb` MiB on a new connection to a server
 * with `nworkers` workers; its answer is still to come. */
long_run long_run_start(const server *s, int nworkers, int mb);
/* Waits until a worker's main thread has spent 50 ms of CPU on the run;
 * that worker's pid. */
pid_t long_run_wait_busy(const long_run *lr);
/* True once the run's answer has begun to arrive. */
bool long_run_answered(const long_run *lr);
/* Reads the answer (waiting up to HANG_MS): 200 and the sum the DAG
 * computes. */
void expect_long_run_ok(const long_run *lr);

/* }====================================================================== */

/* ====================================================================== */
/* {  The state's ranges, and smaps over them                               */
/* ====================================================================== */

typedef struct span {
    unsigned long long start, end;
} span;

/* The regions of the answering worker's inherited state, as GET
 * /admin/regions lists them (admin configs); how many. */
int state_regions(int port, span *out, int cap);
/* The same, sorted, and touching ones joined (the kernel shows two
 * regions mapped side by side with the same flags as one mapping). */
int state_ranges(int port, span *out, int cap);
/* Reads /proc/PID/smaps on its own (no cowdag code): for the mappings that
 * lie inside the ranges, resident, private and shared kB.  Fails if a
 * mapping straddles a range's edge. */
void smaps_state(pid_t pid, const span *ranges, int n, unsigned long long *rss_kb, unsigned long long *private_kb,
                 unsigned long long *shared_kb);

/* Every worker's served state figures equal smaps' over the same ranges
 * (read once the server is idle and has sampled again; an admin config, 2
 * workers); the worst private share is returned. */
double check_against_smaps(const server *srv);

/* n requests of DAG `name`, each {"inputs": {"ids": [32 ids]}} with ids
 * drawn from 0..19999 by a fixed generator, every answer a 200. */
void run_dag_random_ids(int port, const char *name, int n);

/* }====================================================================== */

/* Runs a shell command line (bounded by coreutils' timeout, so a hung tool
 * fails the test rather than hanging it; the timeout covers the line's
 * first command) with stderr joined to stdout; its exit status (128 + the
 * signal if one ended it), its output in *out (malloc'ed). */
int run_cmd(const char *cmdline, char **out);

/* SIGSTOP, then waits until the process is stopped ('T' in /proc): the
 * signal is delivered when the process next runs, not when kill returns. */
void stop_process(pid_t pid);

#endif
