/* config: the cowdag configuration file (JSON), its defaults and checks.
 * The schema is README.md's "The config file"; every error names the key.
 * Relative paths resolve against the config file's folder. */
#ifndef COWDAG_CONFIG_H
#define COWDAG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heap/gc.h"

#define LD_OK 0
#define LD_ERR (-1)

/* The most workers a config (or --workers) may ask for. */
#define LD_MAX_WORKERS 256

typedef enum ld_state_kind { LD_STATE_RECORDS, LD_STATE_TABLE, LD_STATE_JSON } ld_state_kind;

/* One entry of "state".  Exactly one source:
 *   records + generate {count, seed}   the synthetic customer store
 *   records + csv + key                rows keyed by the key column
 *   table + csv                        typed columns
 *   json + file                        any JSON document */
typedef struct ld_state_spec {
    char *name;
    ld_state_kind kind;
    bool generate;
    uint64_t count, seed; /* generate */
    char *csv;            /* absolute path, or NULL */
    char *key;            /* records + csv */
    char *file;           /* json: absolute path */
} ld_state_spec;

/* Flags of `cowdag serve` that override the file (NULL / -1 / false: unset).
 * The strings are the caller's; a config keeps copies (ld_config.flags). */
typedef struct ld_overrides {
    const char *listen;
    int workers;
    const char *gc_mode;
    int thresholds[3];
    bool thresholds_set;
    bool immortal;
} ld_overrides;

typedef struct ld_config {
    char *path; /* the file it was loaded from, NULL for defaults */
    char *dir;  /* its folder: relative paths resolve against it */
    char *listen_host;
    int listen_port;
    char *listen_unix; /* "unix:PATH": the socket's path (resolved against the config's folder); NULL: TCP */
    int workers;
    uint64_t max_requests;   /* 0: never recycle */
    uint64_t max_body_bytes;
    uint64_t max_run_bytes;  /* heap bytes a run may hold, less what responses being sent hold */
    int timeout_ms;
    int graceful_timeout_ms;
    int header_timeout_ms;    /* a request's header arrives whole within this, however it drips */
    int worker_timeout_ms;    /* a worker whose loop has not come back for this long is killed; 0: never */
    uint64_t max_copied_mib;  /* recycle a worker that copied this much of the state; 0: never */
    double max_copied_ratio;  /* ... or this share of it; 0: never */
    uint64_t max_rss_mib;     /* ... or whose RSS grew past this; 0: never */
    int keepalive_timeout_ms; /* an idle keep-alive connection is closed after this */
    int stats_interval_ms;
    bool admin;
    bool access_log;
    bool dashboard; /* GET /dashboard on */
    int worker_priority;     /* the workers' nice value, as nginx's worker_priority */
    gc_config gc;
    ld_state_spec *state;
    size_t nstate;
    char **dags; /* absolute paths of the DAG files the globs matched, sorted */
    size_t ndags;
    char **modules; /* absolute paths of the module files, in the file's order */
    size_t nmodules;
    /* The flags applied over the file, kept so that a reload applies them
     * again (ld_config_reload); the strings are owned copies. */
    ld_overrides flags;
} ld_config;

/* The defaults (README.md, "The config file"): 127.0.0.1:8080, 2 workers, max_requests 0,
 * max_body_bytes 1048576, max_run_bytes 1073741824, timeout_ms 30000, graceful_timeout_ms 10000,
 * header_timeout_ms 10000, keepalive_timeout_ms 5000, stats_interval_ms 1000, admin false, access_log true, worker_priority 0, gc tuned 700/10/10
 * full_ratio 0.25, no state, no DAGs, no modules. */
void ld_config_defaults(ld_config *c);

/* The name of the i-th key a config file may hold, into buf: the top
 * level's keys, then "gc.mode" ..., "state[].name" ..., and
 * "state[].generate.count" ...; false past the last.  README.md's config
 * reference lists the same keys (tests/test_readme.c compares them). */
bool ld_config_key(size_t i, char *buf, size_t len);

/* Loads and checks a config file.  On LD_ERR, err holds
 * "FILE: KEY: problem" (or "FILE:LINE:COL: ..." for malformed JSON) and *c
 * is left empty (no need to free). */
int ld_config_load(const char *path, ld_config *c, char *err, size_t errlen);

/* The same from text; `path` names it in messages and its folder is the
 * base of relative paths. */
int ld_config_parse(const char *text, size_t len, const char *path, ld_config *c, char *err, size_t errlen);

/* Applies the flags to a loaded config, checks the result (immortal needs
 * freeze, say) and keeps a copy of them in c->flags; LD_ERR with err
 * naming the flag ("--workers wants 1 to 256"), c then maybe half changed
 * (free it, do not serve it). */
int ld_config_override(ld_config *c, const ld_overrides *ov, char *err, size_t errlen);

/* Parses a --gc argument (serve's, cowtest's) into *out; LD_ERR with err
 * saying what --gc wants.  Mode names themselves are gc's (gc_mode_parse). */
int ld_gc_mode_arg(const char *arg, gc_mode *out, char *err, size_t errlen);

/* Loads old's file again and applies the flags old was given: what a
 * reload serves.  The same result convention as ld_config_load. */
int ld_config_reload(const ld_config *old, ld_config *c, char *err, size_t errlen);

/* Parses "HOST:PORT" (HOST may be [v6]); LD_ERR if malformed. */
int ld_parse_listen(const char *s, char **host, int *port);

void ld_config_free(ld_config *c);

#endif
