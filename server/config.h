/* config: the cowdag configuration file (JSON), its defaults and checks.
 * The schema is the spec's "Config" section; every error names the key.
 * Relative paths resolve against the config file's folder. */
#ifndef COWDAG_CONFIG_H
#define COWDAG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heap/gc.h"

#define SRV_OK 0
#define SRV_ERR (-1)

typedef enum srv_state_kind { SRV_STATE_RECORDS, SRV_STATE_TABLE, SRV_STATE_JSON } srv_state_kind;

/* One entry of "state".  Exactly one source:
 *   records + generate {count, seed}   the synthetic customer store
 *   records + csv + key                rows keyed by the key column
 *   table + csv                        typed columns
 *   json + file                        any JSON document */
typedef struct srv_state_spec {
    char *name;
    srv_state_kind kind;
    bool generate;
    uint64_t count, seed; /* generate */
    char *csv;            /* absolute path, or NULL */
    char *key;            /* records + csv */
    char *file;           /* json: absolute path */
} srv_state_spec;

typedef struct srv_config {
    char *path; /* the file it was loaded from, NULL for defaults */
    char *dir;  /* its folder: relative paths resolve against it */
    char *listen_host;
    int listen_port;
    int workers;
    uint64_t max_requests;   /* 0: never recycle */
    uint64_t max_body_bytes;
    uint64_t max_run_bytes;  /* heap bytes a run may hold, less what responses being sent hold (an extension) */
    int timeout_ms;
    int graceful_timeout_ms;
    int header_timeout_ms;    /* a request's header arrives whole within this, however it drips */
    int keepalive_timeout_ms; /* an idle keep-alive connection is closed after this */
    int stats_interval_ms;
    bool admin;
    bool access_log;
    int worker_priority;     /* the workers' nice value, as nginx's worker_priority (an extension) */
    gc_config gc;
    srv_state_spec *state;
    size_t nstate;
    char **dags; /* absolute paths of the DAG files the globs matched, sorted */
    size_t ndags;
} srv_config;

/* The spec's defaults: 127.0.0.1:8080, 2 workers, max_requests 0,
 * max_body_bytes 1048576, max_run_bytes 1073741824, timeout_ms 30000, graceful_timeout_ms 10000,
 * header_timeout_ms 10000, keepalive_timeout_ms 5000, stats_interval_ms 1000, admin false, access_log true, worker_priority 0, gc tuned 700/10/10
 * full_ratio 0.25, no state, no DAGs. */
void srv_config_defaults(srv_config *c);

/* Loads and checks a config file.  On SRV_ERR, err holds
 * "FILE: KEY: problem" (or "FILE:LINE:COL: ..." for malformed JSON) and *c
 * is left empty (no need to free). */
int srv_config_load(const char *path, srv_config *c, char *err, size_t errlen);

/* The same from text; `path` names it in messages and its folder is the
 * base of relative paths. */
int srv_config_parse(const char *text, size_t len, const char *path, srv_config *c, char *err, size_t errlen);

/* Parses "HOST:PORT" (HOST may be [v6]); SRV_ERR if malformed. */
int srv_parse_listen(const char *s, char **host, int *port);

void srv_config_free(srv_config *c);

#endif
