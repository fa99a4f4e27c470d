/* bare_server: the throughput ceiling for bench/load.sh -- a pre-fork
 * libmicrohttpd server with cowdag's socket design (the master listens,
 * each worker accepts and hands connections to a daemon without a listen
 * socket of its own) that answers every request with a fixed body (after
 * reading and dropping its body, if it has one).  With "parse", it first
 * parses the body with jansson, as cowdag does: the ceiling for a server
 * that must read JSON requests.
 * usage: bare_server PORT WORKERS [parse] */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char body[] = "{\"ok\":true}";
static bool parse; /* "parse": the body is collected and parsed with jansson first */

typedef struct upload {
    size_t len;
    char buf[8192];
} upload;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **req)
{
    (void)cls, (void)url, (void)method, (void)version;
    if (!*req) {
        *req = parse ? calloc(1, sizeof(upload)) : (void *)c;
        return *req ? MHD_YES : MHD_NO;
    }
    if (*size) { /* a request body: kept (parse) or dropped; the answer comes after it */
        if (parse) {
            upload *u = *req;
            size_t n = *size < sizeof u->buf - u->len ? *size : sizeof u->buf - u->len;
            memcpy(u->buf + u->len, data, n);
            u->len += n;
        }
        *size = 0;
        return MHD_YES;
    }
    if (parse) {
        upload *u = *req;
        json_t *doc = json_loadb(u->buf, u->len, JSON_REJECT_DUPLICATES, NULL);
        json_decref(doc);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static void completed(void *cls, struct MHD_Connection *c, void **req, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    if (parse)
        free(*req);
    *req = NULL;
}

static void serve(int lfd)
{
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, answer, NULL,
                                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    int epfd = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
    for (;;) {
        struct pollfd fds[2] = {{.fd = epfd, .events = POLLIN}, {.fd = lfd, .events = POLLIN}};
        MHD_UNSIGNED_LONG_LONG ms = 1000;
        MHD_get_timeout(d, &ms);
        poll(fds, 2, ms > 1000 ? 1000 : (int)ms);
        if (fds[1].revents & POLLIN) {
            struct sockaddr_storage a;
            socklen_t len = sizeof a;
            int c = accept4(lfd, (struct sockaddr *)&a, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0)
                MHD_add_connection(d, c, (struct sockaddr *)&a, len);
        }
        MHD_run(d);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "parse") != 0)) {
        fprintf(stderr, "usage: bare_server PORT WORKERS [parse]\n");
        return 2;
    }
    parse = argc == 4;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1024)) {
        perror("bare_server: listen");
        return 1;
    }
    for (int i = 0; i < atoi(argv[2]); i++)
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* the workers go with the server */
            serve(lfd);
        }
    signal(SIGTERM, SIG_DFL);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return 0;
}
