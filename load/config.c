/* config.c: reads the cowdag config file (JSON) into a ld_config, checking
 * every key, type and range and naming the key in each error.  The schema,
 * its defaults and the ownership of the result are in load/config.h. */
#include "load/config.h"

#include "base/alloc.h"
#include "base/err.h"
#include "dag/value.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ====================================================================== */
/* {  Paths                                                                */
/* ====================================================================== */

/* dir + "/" + rel, or rel itself when it is already absolute.  New string. */
static char *join_path(const char *dir, const char *rel)
{
    if (rel[0] == '/')
        return base_strdup(rel);
    size_t n = strlen(dir) + 1 + strlen(rel) + 1;
    char *p = base_realloc(NULL, n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  listen = "HOST:PORT"                                                 */
/* ====================================================================== */

static bool host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '-' || ch == '_';
}

/* "[v6]" must hold an IPv6 address, optionally with a "%zone". */
static bool is_ipv6(const char *h, size_t n)
{
    char buf[INET6_ADDRSTRLEN];
    const char *pct = memchr(h, '%', n);
    size_t addr = pct ? (size_t)(pct - h) : n;
    if (pct && pct + 1 == h + n)
        return false; /* empty zone */
    if (addr >= sizeof buf)
        return false;
    memcpy(buf, h, addr);
    buf[addr] = '\0';
    struct in6_addr a;
    return inet_pton(AF_INET6, buf, &a) == 1;
}

/* Parses s; returns NULL and fills *host (new string, brackets stripped)
 * and *port, or returns what is wrong and leaves both alone. */
static const char *split_listen(const char *s, char **host, int *port)
{
    const char *h, *colon;
    size_t hlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return "unclosed [ in the host";
        h = s + 1;
        hlen = (size_t)(close - h);
        if (hlen == 0)
            return "empty host";
        if (!is_ipv6(h, hlen))
            return "not an IPv6 address inside [ ]";
        if (close[1] != ':')
            return "expected :PORT after ]";
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return "missing :PORT";
        h = s;
        hlen = (size_t)(colon - s);
        if (hlen == 0)
            return "empty host";
        if (memchr(h, ':', hlen))
            return "an IPv6 host needs brackets, as in [::1]:8080";
        for (size_t i = 0; i < hlen; i++)
            if (!host_char(h[i]))
                return "bad character in host";
    }

    /* Digits only (no sign, no spaces); stop before the value can overflow. */
    const char *p = colon + 1;
    if (*p == '\0')
        return "missing port";
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return "port is not a number";
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return "port must be between 0 and 65535";
    }

    *host = base_strndup(h, hlen);
    *port = (int)v;
    return NULL;
}

/* listen = "HOST:PORT", or "unix:PATH" for a proxy on the same machine (a
 * relative path resolves against `dir`, when given).  NULL, or what is
 * wrong. */
static const char *set_listen(ld_config *c, const char *s, const char *dir)
{
    if (strncmp(s, "unix:", 5) == 0) {
        if (!s[5])
            return "empty path after unix:";
        free(c->listen_unix);
        c->listen_unix = dir ? join_path(dir, s + 5) : base_strdup(s + 5);
        return NULL;
    }
    char *host;
    int port;
    const char *why = split_listen(s, &host, &port);
    if (why)
        return why;
    free(c->listen_host);
    c->listen_host = host;
    c->listen_port = port;
    free(c->listen_unix);
    c->listen_unix = NULL;
    return NULL;
}

int ld_parse_listen(const char *s, char **host, int *port)
{
    if (!s || !host || !port)
        return LD_ERR;
    return split_listen(s, host, port) ? LD_ERR : LD_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Reading values: each reader names its key on error                   */
/* ====================================================================== */

/* KEY strings are paths such as "gc.thresholds[1]" or "state[2].csv"; this
 * is room for any of ours plus a generous unknown key (longer ones are cut). */
#define KEY_MAX 256

typedef struct loader {
    const char *name; /* the file, as messages call it */
    char *err;
    size_t errlen;
    ld_config *c; /* being built; freed by the caller on error */
} loader;

/* Writes "FILE: KEY: problem" (or "FILE: problem" without a key). */
__attribute__((format(printf, 3, 4))) static int fail(loader *ld, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ld->err && ld->errlen) {
        if (key)
            snprintf(ld->err, ld->errlen, "%s: %s: %s", ld->name, key, msg);
        else
            snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
    }
    return LD_ERR;
}

/* "parent.name", or "name" at the top level; an absurdly long key (only an
 * unknown one can be) ends in "...". */
static void key_join(char *out, const char *parent, const char *name)
{
    int n = parent[0] ? snprintf(out, KEY_MAX, "%s.%s", parent, name) : snprintf(out, KEY_MAX, "%s", name);
    if (n >= KEY_MAX)
        memcpy(out + KEY_MAX - 4, "...", 4);
}

static void key_index(char *out, const char *parent, size_t i) { snprintf(out, KEY_MAX, "%s[%zu]", parent, i); }

static int wrong_type(loader *ld, const char *key, const char *want, const json_t *v)
{
    return fail(ld, key, "expected %s, got %s", want, dag_json_kind(v));
}

/* Every key of obj must be in the NULL-ended list known. */
static int check_keys(loader *ld, const char *parent, json_t *obj, const char *const *known)
{
    const char *name;
    json_t *v;
    json_object_foreach (obj, name, v) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], name) != 0)
            k++;
        if (!known[k]) {
            char key[KEY_MAX];
            key_join(key, parent, name);
            return fail(ld, key, "unknown key");
        }
    }
    return LD_OK;
}

/* A JSON integer (not a real, not a boolean) within [lo, hi]. */
static int read_int(loader *ld, const char *key, const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!json_is_integer(v))
        return wrong_type(ld, key, "integer", v);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < lo || x > hi) {
        if (hi == INT64_MAX)
            return fail(ld, key, "must be >= %" PRId64 ", got %" PRId64, lo, x);
        return fail(ld, key, "must be between %" PRId64 " and %" PRId64 ", got %" PRId64, lo, hi, x);
    }
    *out = x;
    return LD_OK;
}

static int read_bool(loader *ld, const char *key, const json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return wrong_type(ld, key, "boolean", v);
    *out = json_is_true(v);
    return LD_OK;
}

/* A non-empty string; *out is borrowed from v. */
static int read_string(loader *ld, const char *key, const json_t *v, const char **out)
{
    if (!json_is_string(v))
        return wrong_type(ld, key, "string", v);
    if (json_string_length(v) == 0)
        return fail(ld, key, "must not be empty");
    *out = json_string_value(v);
    return LD_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Sections of the file                                                 */
/* ====================================================================== */

static const char *const top_keys[] = {
    "listen",           "workers",           "max_requests",     "max_body_bytes", "max_run_bytes",
    "timeout_ms",       "graceful_timeout_ms", "header_timeout_ms", "keepalive_timeout_ms", "worker_timeout_ms",
    "max_copied_mib",   "max_copied_ratio",  "max_rss_mib",      "stats_interval_ms", "admin",
    "access_log",       "dashboard",         "worker_priority",  "gc",             "state",
    "dags",             "modules",           NULL,
};
static const char *const gc_keys[] = {"mode", "thresholds", "immortal", "full_ratio", NULL};
static const char *const state_keys[] = {"name", "kind", "generate", "csv", "key", "file", NULL};
static const char *const generate_keys[] = {"count", "seed", NULL};

/* Every list above with the path its keys take in messages and in README's
 * config reference (ld_config_key). */
static const struct {
    const char *prefix;
    const char *const *keys;
} key_sections[] = {
    {"", top_keys}, {"gc.", gc_keys}, {"state[].", state_keys}, {"state[].generate.", generate_keys},
};

static int read_listen(loader *ld, const json_t *v)
{
    const char *s, *why;
    if (read_string(ld, "listen", v, &s))
        return LD_ERR;
    if ((why = set_listen(ld->c, s, ld->c->dir)) != NULL)
        return fail(ld, "listen", "%s in \"%s\" (expected HOST:PORT or unix:PATH)", why, s);
    return LD_OK;
}

/* The scalar settings of the top level. */
static int read_scalars(loader *ld, json_t *root)
{
    ld_config *c = ld->c;
    const struct {
        const char *key;
        int64_t lo, hi;
        int *as_int; /* exactly one of these two is set */
        uint64_t *as_u64;
    } ints[] = {
        {"workers", 1, LD_MAX_WORKERS, &c->workers, NULL},
        {"max_requests", 0, INT64_MAX, NULL, &c->max_requests},
        {"max_body_bytes", 1, 1073741824, NULL, &c->max_body_bytes},
        {"max_run_bytes", 1048576, INT64_MAX, NULL, &c->max_run_bytes},
        {"timeout_ms", 1, 3600000, &c->timeout_ms, NULL},
        {"graceful_timeout_ms", 0, 3600000, &c->graceful_timeout_ms, NULL},
        {"header_timeout_ms", 100, 3600000, &c->header_timeout_ms, NULL},
        {"keepalive_timeout_ms", 0, 3600000, &c->keepalive_timeout_ms, NULL},
        {"worker_timeout_ms", 0, 3600000, &c->worker_timeout_ms, NULL},
        {"max_copied_mib", 0, 1048576, NULL, &c->max_copied_mib},
        {"max_rss_mib", 0, 1048576, NULL, &c->max_rss_mib},
        {"stats_interval_ms", 10, 3600000, &c->stats_interval_ms, NULL},
        {"worker_priority", -20, 19, &c->worker_priority, NULL},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        json_t *v = json_object_get(root, ints[k].key);
        int64_t x;
        if (!v)
            continue;
        if (read_int(ld, ints[k].key, v, ints[k].lo, ints[k].hi, &x))
            return LD_ERR;
        if (ints[k].as_int)
            *ints[k].as_int = (int)x;
        else
            *ints[k].as_u64 = (uint64_t)x;
    }

    json_t *v;
    if ((v = json_object_get(root, "admin")) && read_bool(ld, "admin", v, &c->admin))
        return LD_ERR;
    if ((v = json_object_get(root, "access_log")) && read_bool(ld, "access_log", v, &c->access_log))
        return LD_ERR;
    if ((v = json_object_get(root, "dashboard")) && read_bool(ld, "dashboard", v, &c->dashboard))
        return LD_ERR;
    if ((v = json_object_get(root, "max_copied_ratio"))) {
        if (!json_is_number(v))
            return wrong_type(ld, "max_copied_ratio", "number", v);
        double r = json_number_value(v);
        if (!(r >= 0 && r <= 1))
            return fail(ld, "max_copied_ratio", "must be between 0 and 1, got %g", r);
        c->max_copied_ratio = r;
    }
    return LD_OK;
}

static int read_gc(loader *ld, json_t *obj)
{
    gc_config *gc = &ld->c->gc;
    json_t *v;

    if (!json_is_object(obj))
        return wrong_type(ld, "gc", "object", obj);
    if (check_keys(ld, "gc", obj, gc_keys))
        return LD_ERR;

    if ((v = json_object_get(obj, "mode"))) {
        const char *s;
        if (read_string(ld, "gc.mode", v, &s))
            return LD_ERR;
        if (gc_mode_parse(s, &gc->mode) != HEAP_OK)
            return fail(ld, "gc.mode", "unknown mode \"%s\" (tuned, disable or freeze)", s);
    }
    if ((v = json_object_get(obj, "thresholds"))) {
        if (!json_is_array(v))
            return wrong_type(ld, "gc.thresholds", "array", v);
        if (json_array_size(v) != GC_GENERATIONS)
            return fail(ld, "gc.thresholds", "expected %d integers, got %zu", GC_GENERATIONS, json_array_size(v));
        for (size_t i = 0; i < GC_GENERATIONS; i++) {
            char key[KEY_MAX];
            int64_t x;
            key_index(key, "gc.thresholds", i);
            if (read_int(ld, key, json_array_get(v, i), 0, INT_MAX, &x))
                return LD_ERR;
            gc->thresholds[i] = (int)x;
        }
    }
    if ((v = json_object_get(obj, "immortal")) && read_bool(ld, "gc.immortal", v, &gc->immortal))
        return LD_ERR;
    if ((v = json_object_get(obj, "full_ratio"))) {
        if (!json_is_number(v))
            return wrong_type(ld, "gc.full_ratio", "number", v);
        double r = json_number_value(v);
        if (!(r >= 0 && r <= 1))
            return fail(ld, "gc.full_ratio", "must be between 0 and 1, got %g", r);
        gc->full_ratio = r;
    }

    /* What only holds between keys (immortal needs freeze) is gc's to say. */
    const char *why;
    if (gc_config_check(gc, &why) != HEAP_OK)
        return fail(ld, "gc", "%s", why);
    return LD_OK;
}

static bool valid_name(const char *s)
{
    if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
        return false;
    for (s++; *s; s++)
        if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static int read_generate(loader *ld, const char *at, json_t *obj, ld_state_spec *s)
{
    char key[KEY_MAX], sub[KEY_MAX];
    json_t *v;
    int64_t x;

    key_join(key, at, "generate");
    if (!json_is_object(obj))
        return wrong_type(ld, key, "object", obj);
    if (check_keys(ld, key, obj, generate_keys))
        return LD_ERR;

    key_join(sub, key, "count");
    if (!(v = json_object_get(obj, "count")))
        return fail(ld, sub, "required");
    if (read_int(ld, sub, v, 0, 100000000, &x))
        return LD_ERR;
    s->count = (uint64_t)x;

    s->seed = 42;
    key_join(sub, key, "seed");
    if ((v = json_object_get(obj, "seed"))) {
        if (read_int(ld, sub, v, 0, INT64_MAX, &x))
            return LD_ERR;
        s->seed = (uint64_t)x;
    }
    s->generate = true;
    return LD_OK;
}

/* Which sources each kind takes; the error names the key that is wrong, or
 * the entry when one is missing. */
static int check_sources(loader *ld, const char *at, ld_state_kind kind, bool gen, bool csv, bool key, bool file)
{
    char k[KEY_MAX];
    const char *bad = NULL, *why = NULL;

    switch (kind) {
    case LD_STATE_RECORDS:
        if (file)
            bad = "file", why = "only json takes a file";
        else if (gen && csv)
            bad = "csv", why = "records takes generate or csv, not both";
        else if (!gen && !csv)
            return fail(ld, at, "records needs generate or csv");
        else if (gen && key)
            bad = "key", why = "only records + csv take a key";
        else if (csv && !key)
            bad = "key", why = "required with csv";
        break;
    case LD_STATE_TABLE:
        if (gen)
            bad = "generate", why = "only records take generate";
        else if (key)
            bad = "key", why = "only records + csv take a key";
        else if (file)
            bad = "file", why = "only json takes a file";
        else if (!csv)
            return fail(ld, at, "table needs csv");
        break;
    case LD_STATE_JSON:
        if (gen)
            bad = "generate", why = "only records take generate";
        else if (csv)
            bad = "csv", why = "json takes a file, not csv";
        else if (key)
            bad = "key", why = "only records + csv take a key";
        else if (!file)
            return fail(ld, at, "json needs file");
        break;
    }
    if (!bad)
        return LD_OK;
    key_join(k, at, bad);
    return fail(ld, k, "%s", why);
}

/* state[i]: reads into s, which the caller zeroed; s->name is set first so
 * later entries can check theirs against it. */
static int read_state_entry(loader *ld, size_t i, json_t *e, ld_state_spec *s)
{
    char at[KEY_MAX], key[KEY_MAX];
    const char *name, *kind, *csv = NULL, *col = NULL, *file = NULL;
    json_t *v;

    key_index(at, "state", i);
    if (!json_is_object(e))
        return wrong_type(ld, at, "object", e);
    if (check_keys(ld, at, e, state_keys))
        return LD_ERR;

    key_join(key, at, "name");
    if (!(v = json_object_get(e, "name")))
        return fail(ld, key, "required");
    if (read_string(ld, key, v, &name))
        return LD_ERR;
    if (!valid_name(name))
        return fail(ld, key, "\"%s\" is not a name ([A-Za-z_][A-Za-z0-9_]*)", name);
    for (size_t j = 0; j < i; j++)
        if (strcmp(ld->c->state[j].name, name) == 0)
            return fail(ld, key, "duplicate name \"%s\" (also state[%zu])", name, j);
    s->name = base_strdup(name);

    key_join(key, at, "kind");
    if (!(v = json_object_get(e, "kind")))
        return fail(ld, key, "required");
    if (read_string(ld, key, v, &kind))
        return LD_ERR;
    if (strcmp(kind, "records") == 0)
        s->kind = LD_STATE_RECORDS;
    else if (strcmp(kind, "table") == 0)
        s->kind = LD_STATE_TABLE;
    else if (strcmp(kind, "json") == 0)
        s->kind = LD_STATE_JSON;
    else
        return fail(ld, key, "unknown kind \"%s\" (records, table or json)", kind);

    if ((v = json_object_get(e, "generate")) && read_generate(ld, at, v, s))
        return LD_ERR;
    key_join(key, at, "csv");
    if ((v = json_object_get(e, "csv")) && read_string(ld, key, v, &csv))
        return LD_ERR;
    key_join(key, at, "key");
    if ((v = json_object_get(e, "key")) && read_string(ld, key, v, &col))
        return LD_ERR;
    key_join(key, at, "file");
    if ((v = json_object_get(e, "file")) && read_string(ld, key, v, &file))
        return LD_ERR;

    if (check_sources(ld, at, s->kind, s->generate, csv != NULL, col != NULL, file != NULL))
        return LD_ERR;

    /* The files need not exist yet: the state loader says so when it runs. */
    if (csv)
        s->csv = join_path(ld->c->dir, csv);
    if (col)
        s->key = base_strdup(col);
    if (file)
        s->file = join_path(ld->c->dir, file);
    return LD_OK;
}

static int read_state(loader *ld, json_t *arr)
{
    ld_config *c = ld->c;
    if (!json_is_array(arr))
        return wrong_type(ld, "state", "array", arr);
    size_t n = json_array_size(arr);
    if (n == 0)
        return LD_OK;
    /* Zeroed and counted up front, so ld_config_free can take a half-read
     * array. */
    c->state = base_realloc(NULL, n * sizeof *c->state);
    memset(c->state, 0, n * sizeof *c->state);
    c->nstate = n;
    for (size_t i = 0; i < n; i++)
        if (read_state_entry(ld, i, json_array_get(arr, i), &c->state[i]))
            return LD_ERR;
    return LD_OK;
}

/* --- dags --------------------------------------------------------------- */

static bool has_glob_magic(const char *s) { return strpbrk(s, "*?[") != NULL; }

/* The absolute pattern for glob(3): the folder's own metacharacters (and
 * backslashes) escaped, so only the user's pattern is a pattern.  New string. */
static char *glob_pattern(const char *dir, const char *pat)
{
    if (pat[0] == '/')
        return base_strdup(pat);
    size_t n = 2 * strlen(dir) + 1 + strlen(pat) + 1, o = 0;
    char *out = base_realloc(NULL, n);
    for (const char *p = dir; *p; p++) {
        if (strchr("*?[\\", *p))
            out[o++] = '\\';
        out[o++] = *p;
    }
    snprintf(out + o, n - o, "/%s", pat);
    return out;
}

/* Appends a copy of path to c->dags, resolved (realpath), so that two
 * patterns reaching one file by different spellings keep only one. */
static void push_dag(ld_config *c, size_t *cap, const char *path)
{
    char *real = realpath(path, NULL);
    if (c->ndags == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        c->dags = base_realloc(c->dags, *cap * sizeof *c->dags);
    }
    c->dags[c->ndags++] = real ? real : base_strdup(path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int read_dag_pattern(loader *ld, const char *key, const char *pat, size_t *cap)
{
    ld_config *c = ld->c;

    /* A plain name says "this file": missing is an error, unlike a glob
     * that matches nothing. */
    if (!has_glob_magic(pat)) {
        char *path = join_path(c->dir, pat);
        struct stat st;
        int rc = LD_OK;
        if (stat(path, &st) != 0)
            rc = errno == ENOENT ? fail(ld, key, "no such file: %s", path)
                                 : fail(ld, key, "cannot read %s: %s", path, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = fail(ld, key, "is a folder, not a DAG file: %s", path);
        else
            push_dag(c, cap, path);
        free(path);
        return rc;
    }

    /* Wildcards in the file name only: a folder wildcard would have glob(3)
     * read every folder it can reach (a star in each of eight folders from
     * the root walks the whole file system before the server starts). */
    const char *slash = strrchr(pat, '/');
    if (slash) {
        char *folders = strndup(pat, (size_t)(slash - pat));
        bool magic = folders && has_glob_magic(folders);
        free(folders);
        if (magic)
            return fail(ld, key, "\"%s\": a glob's wildcards go in the file name only, as in \"dags/*.json\"", pat);
    }
    char *full = glob_pattern(c->dir, pat);
    glob_t g;
    int rc = glob(full, GLOB_MARK, NULL, &g);
    if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *m = g.gl_pathv[i];
            if (m[strlen(m) - 1] != '/') /* GLOB_MARK: a folder */
                push_dag(c, cap, m);
        }
    }
    globfree(&g);
    free(full);
    if (rc == 0 || rc == GLOB_NOMATCH)
        return LD_OK;
    return fail(ld, key, "cannot expand \"%s\"%s", pat, rc == GLOB_NOSPACE ? ": out of memory" : "");
}

static int read_dags(loader *ld, json_t *arr)
{
    ld_config *c = ld->c;
    size_t cap = 0;

    if (!json_is_array(arr))
        return wrong_type(ld, "dags", "array", arr);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char key[KEY_MAX];
        const char *pat;
        key_index(key, "dags", i);
        if (read_string(ld, key, json_array_get(arr, i), &pat) || read_dag_pattern(ld, key, pat, &cap))
            return LD_ERR;
    }

    /* Sorted, each file once. */
    if (c->ndags)
        qsort(c->dags, c->ndags, sizeof *c->dags, cmp_str);
    size_t kept = 0;
    for (size_t i = 0; i < c->ndags; i++) {
        if (kept && strcmp(c->dags[kept - 1], c->dags[i]) == 0)
            free(c->dags[i]);
        else
            c->dags[kept++] = c->dags[i];
    }
    c->ndags = kept;
    return LD_OK;
}

/* --- modules -------------------------------------------------------------- */

/* Each entry a module file (README.md, "Writing a module"), resolved
 * against the config's folder; it must exist now, and load/modules.c opens
 * it when the world loads. */
static int read_modules(loader *ld, json_t *arr)
{
    ld_config *c = ld->c;
    if (!json_is_array(arr))
        return wrong_type(ld, "modules", "array", arr);
    size_t n = json_array_size(arr);
    c->modules = base_calloc(n ? n : 1, sizeof *c->modules);
    for (size_t i = 0; i < n; i++) {
        char key[KEY_MAX];
        const char *rel;
        key_index(key, "modules", i);
        if (read_string(ld, key, json_array_get(arr, i), &rel))
            return LD_ERR;
        char *path = join_path(c->dir, rel);
        struct stat st;
        int rc = LD_OK;
        if (stat(path, &st) != 0)
            rc = errno == ENOENT ? fail(ld, key, "no such file: %s", path)
                                 : fail(ld, key, "cannot read %s: %s", path, strerror(errno));
        else if (!S_ISREG(st.st_mode))
            rc = fail(ld, key, "not a regular file (a module is a shared library): %s", path);
        if (rc != LD_OK) {
            free(path);
            return rc;
        }
        char *real = realpath(path, NULL);
        c->modules[c->nmodules++] = real ? real : path;
        if (real)
            free(path);
    }
    return LD_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Loading: parse, then read each section over the defaults             */
/* ====================================================================== */

/* Sets c->path and c->dir (the folder of path, resolved; the working
 * folder when there is no path). */
static int set_location(loader *ld, const char *path)
{
    char *copy = base_strdup(path ? path : "config");
    const char *folder = dirname(copy);
    char *dir = realpath(folder, NULL);
    if (!dir) {
        int rc = fail(ld, NULL, "cannot resolve the folder %s: %s", folder, strerror(errno));
        free(copy);
        return rc;
    }
    free(copy);
    ld->c->path = path ? base_strdup(path) : NULL;
    ld->c->dir = dir;
    return LD_OK;
}

/* Reads the sections in a fixed order; unknown keys are reported first. */
static int read_root(loader *ld, json_t *root)
{
    json_t *v;
    if (!json_is_object(root))
        return fail(ld, "top level", "expected object, got %s", dag_json_kind(root));
    if (check_keys(ld, "", root, top_keys))
        return LD_ERR;
    if ((v = json_object_get(root, "listen")) && read_listen(ld, v))
        return LD_ERR;
    if (read_scalars(ld, root))
        return LD_ERR;
    if ((v = json_object_get(root, "gc")) && read_gc(ld, v))
        return LD_ERR;
    if ((v = json_object_get(root, "state")) && read_state(ld, v))
        return LD_ERR;
    if ((v = json_object_get(root, "dags")) && read_dags(ld, v))
        return LD_ERR;
    if ((v = json_object_get(root, "modules")) && read_modules(ld, v))
        return LD_ERR;
    return LD_OK;
}

/* Turns the parsed document (taken; NULL if jansson failed, with je saying
 * why) into *out, or leaves *out zeroed. */
static int load_document(json_t *root, const json_error_t *je, const char *path, ld_config *out, char *err,
                         size_t errlen)
{
    ld_config c;
    loader ld = {.name = path ? path : "<config>", .err = err, .errlen = errlen, .c = &c};
    int rc;

    memset(out, 0, sizeof *out);
    if (!root) {
        if (je->line <= 0) /* not about a place in the text (out of memory, say) */
            return fail(&ld, NULL, "%s", je->text);
        if (err && errlen)
            snprintf(err, errlen, "%s:%d:%d: %s", ld.name, je->line, je->column, je->text);
        return LD_ERR;
    }

    ld_config_defaults(&c);
    rc = set_location(&ld, path);
    if (rc == LD_OK)
        rc = read_root(&ld, root);
    json_decref(root);
    if (rc != LD_OK) {
        ld_config_free(&c);
        return LD_ERR;
    }
    *out = c;
    return LD_OK;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  API                                                                  */
/* ====================================================================== */

/* JSON_DECODE_ANY lets a top level that is not an object parse, so that it
 * gets the same "expected object" message as any other wrong type. */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

void ld_config_defaults(ld_config *c)
{
    memset(c, 0, sizeof *c);
    c->listen_host = base_strdup("127.0.0.1");
    c->listen_port = 8080;
    c->workers = 2;
    c->max_requests = 0;
    c->max_body_bytes = 1048576;
    c->max_run_bytes = 1073741824;
    c->timeout_ms = 30000;
    c->graceful_timeout_ms = 10000;
    c->header_timeout_ms = 10000;
    c->keepalive_timeout_ms = 5000;
    c->worker_timeout_ms = 30000;
    c->stats_interval_ms = 1000;
    c->admin = false;
    c->access_log = true;
    c->dashboard = true;
    c->worker_priority = 0;
    c->gc = gc_default_config();
    c->flags = (ld_overrides){.workers = -1}; /* no flags */
}

/* The file is opened here rather than by json_load_file so that a failed
 * open is told from errno, not from jansson's text (which repeats the path
 * and cuts it at 160 characters). */
bool ld_config_key(size_t i, char *buf, size_t len)
{
    for (size_t s = 0; s < sizeof key_sections / sizeof key_sections[0]; s++) {
        for (const char *const *k = key_sections[s].keys; *k; k++, i--) {
            if (i == 0) {
                snprintf(buf, len, "%s%s", key_sections[s].prefix, *k);
                return true;
            }
        }
    }
    return false;
}

int ld_config_load(const char *path, ld_config *c, char *err, size_t errlen)
{
    loader ld = {.name = path ? path : "<config>", .err = err, .errlen = errlen};
    json_error_t je;
    struct stat st;

    memset(c, 0, sizeof *c);
    if (!path)
        return fail(&ld, NULL, "no file named");
    FILE *fp = fopen(path, "r");
    if (!fp)
        return fail(&ld, NULL, "cannot open: %s", strerror(errno));
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        return fail(&ld, NULL, "is a folder, not a config file");
    }
    json_t *root = json_loadf(fp, LOAD_FLAGS, &je);
    fclose(fp);
    return load_document(root, &je, path, c, err, errlen);
}

int ld_config_parse(const char *text, size_t len, const char *path, ld_config *c, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text ? text : "", text ? len : 0, LOAD_FLAGS, &je);
    return load_document(root, &je, path, c, err, errlen);
}

void ld_config_free(ld_config *c)
{
    free(c->path);
    free(c->dir);
    free(c->listen_host);
    free(c->listen_unix);
    for (size_t i = 0; i < c->nstate; i++) {
        free(c->state[i].name);
        free(c->state[i].csv);
        free(c->state[i].key);
        free(c->state[i].file);
    }
    free(c->state);
    for (size_t i = 0; i < c->ndags; i++)
        free(c->dags[i]);
    free(c->dags);
    for (size_t i = 0; i < c->nmodules; i++)
        free(c->modules[i]);
    free(c->modules);
    free((char *)c->flags.listen);
    free((char *)c->flags.gc_mode);
    memset(c, 0, sizeof *c);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Flags over the file                                                  */
/* ====================================================================== */

int ld_gc_mode_arg(const char *arg, gc_mode *out, char *err, size_t errlen)
{
    if (gc_mode_parse(arg, out) != HEAP_OK)
        return base_errf(err, errlen, "--gc wants tuned, disable or freeze, not '%s'", arg);
    return LD_OK;
}

static int gc_override(gc_config *gc, const ld_overrides *ov, char *err, size_t errlen)
{
    if (ov->gc_mode && ld_gc_mode_arg(ov->gc_mode, &gc->mode, err, errlen) != LD_OK)
        return LD_ERR;
    if (ov->thresholds_set)
        memcpy(gc->thresholds, ov->thresholds, sizeof gc->thresholds);
    if (ov->immortal)
        gc->immortal = true;
    if (ov->gc_mode && gc->mode != GC_FREEZE && !ov->immortal)
        gc->immortal = false; /* --gc tuned over a freeze+immortal file */
    const char *why;
    if (gc_config_check(gc, &why) != HEAP_OK)
        return base_errf(err, errlen, "%s", why);
    return LD_OK;
}

int ld_config_override(ld_config *c, const ld_overrides *ov, char *err, size_t errlen)
{
    if (ov->listen && set_listen(c, ov->listen, NULL))
        return base_errf(err, errlen, "--listen wants HOST:PORT or unix:PATH, not '%s'", ov->listen);
    if (ov->workers >= 0) {
        if (ov->workers < 1 || ov->workers > LD_MAX_WORKERS)
            return base_errf(err, errlen, "--workers wants 1 to %d", LD_MAX_WORKERS);
        c->workers = ov->workers;
    }
    if (gc_override(&c->gc, ov, err, errlen) != LD_OK)
        return LD_ERR;
    if (&c->flags != ov) {
        free((char *)c->flags.listen);
        free((char *)c->flags.gc_mode);
        c->flags = *ov;
        c->flags.listen = ov->listen ? base_strdup(ov->listen) : NULL;
        c->flags.gc_mode = ov->gc_mode ? base_strdup(ov->gc_mode) : NULL;
    }
    return LD_OK;
}

int ld_config_reload(const ld_config *old, ld_config *c, char *err, size_t errlen)
{
    if (ld_config_load(old->path, c, err, errlen) != LD_OK)
        return LD_ERR;
    if (ld_config_override(c, &old->flags, err, errlen) != LD_OK) {
        ld_config_free(c);
        return LD_ERR;
    }
    return LD_OK;
}

/* }====================================================================== */
