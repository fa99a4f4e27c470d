/* handlers: cowdag's HTTP routes, for one worker's libmicrohttpd daemon.
 * Request bodies are collected across upload calls under a hard limit,
 * parsed once, run, and answered with JSON; every error is
 * {"error": {"code", "message", "node"?}} with its status.  Routes and codes
 * are README.md's "Serving"; the table is at the top of handlers.c.
 *
 * Everything here runs on the worker's single thread, so the heap needs no
 * locks.  Nothing a request sends can take the worker down: bad input
 * becomes an error response and the worker goes on serving.
 */
#ifndef COWDAG_HANDLERS_H
#define COWDAG_HANDLERS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "load/config.h"
#include "load/world.h"

enum { H_SERVING, H_DRAINING, H_REFUSING };

/* What the routes need from their worker (owned by the worker). */
typedef struct h_server {
    const ld_config *cfg;
    const ld_world *world;
    int worker;               /* slot number */
    long pid;                 /* the worker's, for run responses (0: ask getpid) */
    /* The worker's phase: H_SERVING; H_DRAINING once it stops accepting
     * (requests are still served, each response closing its connection);
     * H_REFUSING when it is about to leave (new requests get 503). */
    volatile int *phase;
    uint64_t inflight;        /* requests begun and not completed */
    uint64_t requests;        /* answered, any status */
    uint64_t errors;          /* answered with status >= 400 */
    /* Heap bytes held by run results still being streamed to slow
     * clients: a new run's budget is what they leave of max_run_bytes. */
    uint64_t streaming_bytes;
    /* Called after each answered request with its status and duration. */
    void (*on_request)(void *arg, unsigned status, uint64_t duration_us);
    void *on_request_arg;
    /* Called as a request's header is whole (its first call) and as its
     * answer is done or abandoned (also for requests libmicrohttpd refused
     * by itself; after on_request), with the connection: the worker's
     * connection table. */
    void (*on_begin)(void *arg, struct MHD_Connection *conn, const char *method, const char *url);
    void (*on_end)(void *arg, struct MHD_Connection *conn);
    void *conn_arg;
    /* Renders GET /stats and GET /metrics bodies (malloc'ed), or NULL when
     * the worker has no scoreboard (then those routes answer 500 internal). */
    char *(*stats_json)(void *arg);
    char *(*metrics_text)(void *arg);
    void *stats_arg;
} h_server;

/* The MHD access handler: pass the h_server as its closure. */
enum MHD_Result h_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                         const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls);

/* The MHD completion callback (MHD_OPTION_NOTIFY_COMPLETED), same closure:
 * frees the request's state and accounts for it. */
void h_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe);

#endif
