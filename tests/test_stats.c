/* tests/test_stats.c: cmocka tests for handlers/stats.c: the scoreboard
 * snapshot, the GET /stats JSON (shape: handlers/stats.h, SPEC.md "Metrics"),
 * and the GET /metrics text, held to the exposition format by a small
 * checker below and, when it is installed, by `promtool check metrics`. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handlers/stats.h"

/* ====================================================================== */
/* {  A small exposition-format checker                                    */
/* ====================================================================== */

/* Reads Prometheus text 0.0.4 line by line and holds it to the rules
 * GET /metrics promises: every family has one # HELP and one # TYPE, both
 * before its samples; a family's samples are contiguous and named after it
 * (histograms: _bucket, _sum, _count); label names are valid and values
 * use only the \\, \" and \n escapes; values are numbers as Prometheus
 * reads them (+Inf, -Inf, NaN spelled so); no series appears twice;
 * histogram buckets rise in le, are cumulative, end at +Inf, and the +Inf
 * bucket equals _count; the text ends with a newline.  On success the
 * samples are kept (unescaped) for the tests to look up. */

#define MAX_LABELS 8

typedef struct plabel {
    char name[64];
    char value[128]; /* unescaped */
} plabel;

typedef struct psample {
    char name[128];
    plabel l[MAX_LABELS];
    int nl;
    char raw[64]; /* the value as written */
    double v;
    int fam;
    int line;
} psample;

typedef struct pfam {
    char name[128];
    char type[16];
    bool has_help, has_type;
    int nsamples;
} pfam;

typedef struct expo {
    pfam fam[64];
    int nfam;
    psample *s;
    int ns, cap;
} expo;

static void expo_free(expo *x)
{
    free(x->s);
    memset(x, 0, sizeof *x);
}

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            int n_ = snprintf(err, errlen, "line %d: ", line); \
            snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__); \
            return false;                                  \
        }                                                  \
    } while (0)

static bool is_name_start(char c, bool colon)
{
    return isalpha((unsigned char)c) || c == '_' || (colon && c == ':');
}

static bool is_name_char(char c, bool colon)
{
    return isalnum((unsigned char)c) || c == '_' || (colon && c == ':');
}

/* Copies a metric (colon: true) or label name at *p into out; advances *p. */
static bool read_name(const char **p, char *out, size_t cap, bool colon)
{
    const char *s = *p;
    if (!is_name_start(*s, colon))
        return false;
    size_t n = 0;
    while (is_name_char(s[n], colon))
        n++;
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return true;
}

/* A sample value: a decimal number (Go's ParseFloat would take more, but
 * this is what a well-behaved exporter writes) or +Inf, -Inf, NaN. */
static bool parse_value(const char *t, double *v)
{
    if (strcmp(t, "+Inf") == 0 || strcmp(t, "-Inf") == 0 || strcmp(t, "NaN") == 0) {
        *v = strtod(t, NULL);
        return true;
    }
    const char *p = t;
    if (*p == '-' || *p == '+')
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return false;
    *v = strtod(t, NULL);
    return true;
}

static int find_family(const expo *x, const char *name)
{
    for (int i = 0; i < x->nfam; i++)
        if (strcmp(x->fam[i].name, name) == 0)
            return i;
    return -1;
}

/* Does a sample named `name` belong to family f? */
static bool in_family(const pfam *f, const char *name)
{
    size_t n = strlen(f->name);
    if (strncmp(name, f->name, n) != 0)
        return false;
    const char *suffix = name + n;
    if (!*suffix)
        return strcmp(f->type, "histogram") != 0;
    if (strcmp(f->type, "histogram") == 0)
        return strcmp(suffix, "_bucket") == 0 || strcmp(suffix, "_sum") == 0 || strcmp(suffix, "_count") == 0;
    if (strcmp(f->type, "summary") == 0)
        return strcmp(suffix, "_sum") == 0 || strcmp(suffix, "_count") == 0;
    return false;
}

static const char *label_of(const psample *s, const char *name)
{
    for (int i = 0; i < s->nl; i++)
        if (strcmp(s->l[i].name, name) == 0)
            return s->l[i].value;
    return NULL;
}

/* Same labels, le aside (le_too: le included)? */
static bool same_labels(const psample *a, const psample *b, bool le_too)
{
    int na = 0, nb = 0;
    for (int i = 0; i < a->nl; i++) {
        if (!le_too && strcmp(a->l[i].name, "le") == 0)
            continue;
        na++;
        const char *v = label_of(b, a->l[i].name);
        if (!v || strcmp(v, a->l[i].value) != 0)
            return false;
    }
    for (int i = 0; i < b->nl; i++)
        if (le_too || strcmp(b->l[i].name, "le") != 0)
            nb++;
    return na == nb;
}

/* Parses `name{labels} value` (the part after the name is at p). */
static bool parse_sample(const char *p, psample *s, int line, char *err, size_t errlen)
{
    CHECK(read_name(&p, s->name, sizeof s->name, true), "bad metric name");
    if (*p == '{') {
        p++;
        while (*p != '}') {
            CHECK(s->nl < MAX_LABELS, "too many labels");
            plabel *l = &s->l[s->nl];
            CHECK(read_name(&p, l->name, sizeof l->name, false), "bad label name at '%.10s'", p);
            CHECK(strncmp(l->name, "__", 2) != 0, "reserved label name %s", l->name);
            for (int i = 0; i < s->nl; i++)
                CHECK(strcmp(s->l[i].name, l->name) != 0, "label %s twice", l->name);
            CHECK(*p == '=', "expected = after label %s", l->name);
            p++;
            CHECK(*p == '"', "expected \" to open label %s", l->name);
            p++;
            size_t n = 0;
            for (;;) {
                CHECK(*p, "unterminated value of label %s", l->name);
                if (*p == '"')
                    break;
                char c = *p++;
                if (c == '\\') {
                    char e = *p++;
                    CHECK(e == '\\' || e == '"' || e == 'n', "bad escape \\%c in label %s", e ? e : '0', l->name);
                    c = e == 'n' ? '\n' : e;
                }
                CHECK(n + 1 < sizeof l->value, "label value too long");
                l->value[n++] = c;
            }
            l->value[n] = '\0';
            p++; /* closing quote */
            s->nl++;
            CHECK(*p == ',' || *p == '}', "expected , or } after label %s", l->name);
            if (*p == ',')
                p++;
        }
        p++;
    }
    CHECK(*p == ' ', "expected one space before the value");
    p++;
    CHECK(strchr(p, ' ') == NULL, "more than a value after the labels (timestamp?)");
    CHECK(strlen(p) < sizeof s->raw, "value too long");
    strcpy(s->raw, p);
    CHECK(parse_value(p, &s->v), "bad value '%s'", p);
    return true;
}

/* # HELP or # TYPE for `name`: opens a new family or completes the current
 * one; anything else (a second header, a header after samples, a family
 * coming back) is an error. */
static bool family_header(expo *x, int *cur, const char *name, bool help, const char *type, int line, char *err,
                          size_t errlen)
{
    const char *what = help ? "HELP" : "TYPE";
    int f = find_family(x, name);
    if (f < 0) {
        CHECK(x->nfam < (int)(sizeof x->fam / sizeof x->fam[0]), "too many families");
        f = x->nfam++;
        snprintf(x->fam[f].name, sizeof x->fam[f].name, "%s", name);
        *cur = f;
    }
    pfam *fam = &x->fam[f];
    CHECK(f == *cur, "# %s for %s after another family began (family split)", what, name);
    CHECK(fam->nsamples == 0, "# %s for %s after its samples", what, name);
    if (help) {
        CHECK(!fam->has_help, "second # HELP for %s", name);
        fam->has_help = true;
    } else {
        CHECK(!fam->has_type, "second # TYPE for %s", name);
        CHECK(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 || strcmp(type, "histogram") == 0 ||
                  strcmp(type, "summary") == 0 || strcmp(type, "untyped") == 0,
              "unknown type '%s'", type);
        snprintf(fam->type, sizeof fam->type, "%s", type);
        fam->has_type = true;
    }
    return true;
}

/* Histogram rules, for each series (labels but le) of family f. */
static bool check_histogram(const expo *x, int f, char *err, size_t errlen)
{
    const pfam *fam = &x->fam[f];
    char bucket[160], sum[160], count[160];
    snprintf(bucket, sizeof bucket, "%s_bucket", fam->name);
    snprintf(sum, sizeof sum, "%s_sum", fam->name);
    snprintf(count, sizeof count, "%s_count", fam->name);
    for (int i = 0; i < x->ns; i++) {
        const psample *head = &x->s[i];
        if (head->fam != f)
            continue;
        /* handle each series once, at its first sample */
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = x->s[j].fam == f && same_labels(&x->s[j], head, false);
        if (seen)
            continue;
        int line = head->line;
        double last_le = -INFINITY, last_count = -1;
        bool inf = false, have_sum = false, have_count = false;
        double count_v = 0;
        for (int j = i; j < x->ns; j++) {
            const psample *s = &x->s[j];
            if (s->fam != f || !same_labels(s, head, false))
                continue;
            line = s->line;
            const char *le = label_of(s, "le");
            if (strcmp(s->name, bucket) == 0) {
                CHECK(le, "bucket without le");
                CHECK(!inf, "bucket after the +Inf bucket");
                double b;
                CHECK(parse_value(le, &b), "bad le \"%s\"", le);
                CHECK(b > last_le, "le %s not above the previous bucket's", le);
                CHECK(s->v >= last_count, "buckets not cumulative at le=%s", le);
                last_le = b;
                last_count = s->v;
                inf = isinf(b) && b > 0;
            } else if (strcmp(s->name, sum) == 0) {
                CHECK(!le, "_sum with le");
                CHECK(!have_sum, "_sum twice");
                have_sum = true;
            } else if (strcmp(s->name, count) == 0) {
                CHECK(!le, "_count with le");
                CHECK(!have_count, "_count twice");
                have_count = true;
                count_v = s->v;
            }
        }
        CHECK(inf, "series of %s without a +Inf bucket", fam->name);
        CHECK(have_sum && have_count, "series of %s without _sum or _count", fam->name);
        CHECK(count_v == last_count, "_count %g is not the +Inf bucket %g", count_v, last_count);
    }
    return true;
}

/* Checks the whole text; false with a message in err on the first problem.
 * x is filled either way (free it with expo_free). */
static bool check_exposition(const char *text, expo *x, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    int line = 0, cur = -1;
    size_t len = strlen(text);
    CHECK(len > 0 && text[len - 1] == '\n', "text does not end with a newline");
    const char *p = text;
    char buf[4096];
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        line++;
        CHECK(n < sizeof buf, "line too long");
        memcpy(buf, p, n);
        buf[n] = '\0';
        p = nl + 1;
        CHECK(n > 0, "empty line");
        if (buf[0] == '#') {
            bool help = strncmp(buf, "# HELP ", 7) == 0, type = strncmp(buf, "# TYPE ", 7) == 0;
            if (!help && !type)
                continue; /* a comment */
            const char *q = buf + 7;
            char name[128];
            CHECK(read_name(&q, name, sizeof name, true), "bad name in # %s", help ? "HELP" : "TYPE");
            CHECK(*q == ' ', "no text after # %s %s", help ? "HELP" : "TYPE", name);
            if (help)
                for (const char *h = q + 1; *h; h++)
                    if (*h == '\\') {
                        CHECK(h[1] == '\\' || h[1] == 'n', "bad escape in # HELP %s", name);
                        h++;
                    }
            if (!family_header(x, &cur, name, help, q + 1, line, err, errlen))
                return false;
            continue;
        }
        if (x->ns == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 256;
            x->s = realloc(x->s, (size_t)x->cap * sizeof *x->s);
            assert_non_null(x->s);
        }
        psample *s = &x->s[x->ns];
        memset(s, 0, sizeof *s);
        s->line = line;
        if (!parse_sample(buf, s, line, err, errlen))
            return false;
        CHECK(cur >= 0, "sample %s before any # TYPE", s->name);
        pfam *f = &x->fam[cur];
        CHECK(f->has_help && f->has_type, "sample %s before its family's # HELP and # TYPE", s->name);
        CHECK(in_family(f, s->name), "sample %s is not of the current family %s (%s)", s->name, f->name, f->type);
        for (int i = 0; i < x->ns; i++)
            CHECK(strcmp(x->s[i].name, s->name) != 0 || !same_labels(&x->s[i], s, true),
                  "series %s repeated (line %d)", s->name, x->s[i].line);
        s->fam = cur;
        f->nsamples++;
        x->ns++;
    }
    for (int f = 0; f < x->nfam; f++) {
        line = 0;
        CHECK(x->fam[f].has_help && x->fam[f].has_type, "family %s lacks # HELP or # TYPE", x->fam[f].name);
        if (strcmp(x->fam[f].type, "histogram") == 0 && !check_histogram(x, f, err, errlen))
            return false;
    }
    return true;
}

/* The one sample named `name` whose labels are exactly the NULL-terminated
 * name/value pairs that follow; NULL if there is none. */
static const psample *find_sample(const expo *x, const char *name, ...)
{
    psample want;
    memset(&want, 0, sizeof want);
    va_list ap;
    va_start(ap, name);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        assert_true(want.nl < MAX_LABELS);
        snprintf(want.l[want.nl].name, sizeof want.l[0].name, "%s", k);
        snprintf(want.l[want.nl].value, sizeof want.l[0].value, "%s", va_arg(ap, const char *));
        want.nl++;
    }
    va_end(ap);
    const psample *hit = NULL;
    for (int i = 0; i < x->ns; i++)
        if (strcmp(x->s[i].name, name) == 0 && same_labels(&x->s[i], &want, true)) {
            assert_null(hit);
            hit = &x->s[i];
        }
    return hit;
}

static int count_samples(const expo *x, const char *name)
{
    int n = 0;
    for (int i = 0; i < x->ns; i++)
        n += strcmp(x->s[i].name, name) == 0;
    return n;
}

/* Asserts the text passes the checker and returns what it read. */
static void parse_ok(const char *text, expo *x)
{
    char err[256] = "";
    bool ok = check_exposition(text, x, err, sizeof err);
    if (!ok)
        print_error("exposition rejected: %s\n", err);
    assert_true(ok);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Fixture: a scoreboard filled by hand                                 */
/* ====================================================================== */

#define NOW_MS 100000u

/* Entries at scattered indices, so the snapshot has to sort them. */
enum {
    IDX_CLAIMED = 1, /* slot 2, gen 2, no pid yet: starting */
    IDX_NEW = 3,     /* slot 0, gen 2: ready, sampled */
    IDX_ONE = 7,     /* slot 1, gen 2: ready, sampled, no state resident */
    IDX_OLD = 10,    /* slot 0, gen 1: draining, never sampled, no requests */
    IDX_FREED = 12,  /* free, with leftovers: skipped */
};
/* The snapshot's order: by slot, then generation. */
static const int order[] = {IDX_OLD, IDX_NEW, IDX_ONE, IDX_CLAIMED};
#define NORDER 4

/* A gc mode that needs escaping as a label value: quote, backslash, newline. */
static const char MODE[] = "fr\"e\\e\nz";

typedef struct fx {
    ms_scoreboard *sb;
    h_snapshot *snap;
} fx;

/* Every field from `base`, so no two entries (or fields) agree. */
static void fill_entry(ms_entry *e, int slot, int gen, int pid, ms_status st, uint64_t base)
{
    e->slot = slot;
    e->generation = gen;
    e->pid = pid;
    e->status = st;
    e->started_ms = 40000 + base;
    e->requests = base + 100;
    e->errors = base + 7;
    e->by_class[2] = base + 80;
    e->by_class[4] = base + 5;
    e->by_class[5] = 2;
    e->duration[0] = 3;
    e->duration[3] = 4;
    e->duration[7] = base % 97;
    e->duration[MS_HIST_BUCKETS - 1] = 2;
    e->duration_sum_us = 1234567 + base;
    for (int g = 0; g < MS_GC_GENS; g++) {
        e->gc.collections[g] = base + 10 + (uint64_t)g;
        e->gc.collected[g] = base * 10 + (uint64_t)g;
    }
    e->gc.pause_ns[0] = 1500;
    e->gc.pause_ns[1] = 2500;
    e->gc.pause_ns[2] = 999; /* total 4999 ns: 4 us, not 1 + 2 + 0 */
    e->gc.pause_ns_max = 1250000;
    e->gc.tracked = base + 11;
    e->gc.frozen = base + 12;
    e->gc.objects = base + 13;
}

static void fill_sample(ms_sample *m, uint64_t base, uint64_t at_ms)
{
    m->rollup.rss_bytes = (base + 1) * 4096;
    m->rollup.pss_bytes = (base + 2) * 4096;
    m->rollup.shared_clean_bytes = (base + 3) * 4096;
    m->rollup.shared_dirty_bytes = (base + 4) * 4096;
    m->rollup.private_clean_bytes = (base + 5) * 4096;
    m->rollup.private_dirty_bytes = (base + 6) * 4096;
    m->at_ms = at_ms;
    m->cost_us = 321;
}

static void fill_scoreboard(ms_scoreboard *sb)
{
    ms_master *m = &sb->master;
    m->pid = 4242;
    m->workers = 3;
    memcpy(m->gc_mode, MODE, sizeof MODE);
    m->thresholds[0] = 700;
    m->thresholds[1] = 10;
    m->thresholds[2] = 10;
    m->immortal = true;
    m->state_bytes = 123456789;
    m->state_pages = 30141;
    fill_sample(&m->mem, 500, NOW_MS - 1000);
    m->restarts[0] = 2; /* slot 0 is in use */
    m->restarts[5] = 1; /* slot 5 is not, but has respawned */

    fill_entry(&sb->entries[IDX_NEW], 0, 2, 2001, MS_READY, 2000);
    fill_sample(&sb->entries[IDX_NEW].mem, 2000, NOW_MS - 2500);
    sb->entries[IDX_NEW].mem.state = (ms_pages){.pages = 400, .shared_pages = 300, .private_pages = 100};

    fill_entry(&sb->entries[IDX_ONE], 1, 2, 3001, MS_READY, 3000);
    fill_sample(&sb->entries[IDX_ONE].mem, 3000, NOW_MS - 10);

    fill_entry(&sb->entries[IDX_OLD], 0, 1, 1001, MS_DRAINING, 1000);
    memset(sb->entries[IDX_OLD].by_class, 0, sizeof sb->entries[IDX_OLD].by_class);
    sb->entries[IDX_OLD].requests = 0;

    sb->entries[IDX_CLAIMED].slot = 2;
    sb->entries[IDX_CLAIMED].generation = 2;
    sb->entries[IDX_CLAIMED].status = MS_STARTING;

    fill_entry(&sb->entries[IDX_FREED], 3, 1, 9999, MS_FREE, 9000);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->sb = calloc(1, sizeof *f->sb);
    f->snap = calloc(1, sizeof *f->snap);
    if (!f->sb || !f->snap)
        return -1;
    fill_scoreboard(f->sb);
    h_snapshot_take(f->sb, f->snap);
    f->snap->now_ms = NOW_MS; /* the fixture's clock */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    free(f->snap);
    free(f->sb);
    free(f);
    return 0;
}

static const ms_entry *entry(fx *f, int idx)
{
    return &f->sb->entries[idx];
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Snapshot                                                             */
/* ====================================================================== */

static void snapshot_skips_free_entries_and_sorts_by_slot_then_generation(void **state)
{
    fx *f = *state;
    assert_int_equal(f->snap->nworkers, NORDER);
    for (int i = 0; i < NORDER; i++) {
        const ms_entry *got = &f->snap->workers[i], *want = entry(f, order[i]);
        assert_int_equal(got->slot, want->slot);
        assert_int_equal(got->generation, want->generation);
        assert_int_equal(got->pid, want->pid);
        assert_memory_equal(got, want, sizeof *got);
    }
    assert_int_equal(f->snap->master.pid, 4242);
    assert_memory_equal(&f->snap->master, &f->sb->master, sizeof f->snap->master);
}

static void snapshot_skips_an_entry_caught_mid_write(void **state)
{
    fx *f = *state;
    f->sb->entries[IDX_ONE].seq = 7; /* odd: its writer never finished */
    h_snapshot_take(f->sb, f->snap);
    assert_int_equal(f->snap->nworkers, NORDER - 1);
    for (size_t i = 0; i < f->snap->nworkers; i++)
        assert_int_not_equal(f->snap->workers[i].pid, 3001);
}

static void snapshot_reports_a_torn_master_as_zeros(void **state)
{
    fx *f = *state;
    f->sb->master.seq = 3;
    h_snapshot_take(f->sb, f->snap);
    assert_int_equal(f->snap->master.pid, 0);
    assert_int_equal(f->snap->master.restarts[0], 0);
    assert_int_equal(f->snap->nworkers, NORDER);
}

static void snapshot_is_stamped_with_the_monotonic_clock(void **state)
{
    fx *f = *state;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    h_snapshot_take(f->sb, f->snap);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t lo = (uint64_t)a.tv_sec * 1000 + (uint64_t)a.tv_nsec / 1000000;
    uint64_t hi = (uint64_t)b.tv_sec * 1000 + (uint64_t)b.tv_nsec / 1000000;
    assert_in_range(f->snap->now_ms, lo, hi);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /stats                                                          */
/* ====================================================================== */

static json_t *stats_doc(fx *f)
{
    char *text = h_stats_json(f->snap);
    assert_non_null(text);
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);
    if (!doc)
        print_error("bad JSON at %d:%d: %s\n%s\n", e.line, e.column, e.text, text);
    assert_non_null(doc);
    free(text);
    return doc;
}

static json_t *member(json_t *o, const char *key)
{
    assert_true(json_is_object(o));
    json_t *v = json_object_get(o, key);
    if (!v)
        print_error("missing \"%s\"\n", key);
    assert_non_null(v);
    return v;
}

static void assert_uint_member(json_t *o, const char *key, uint64_t want)
{
    json_t *v = member(o, key);
    if (!json_is_integer(v))
        print_error("\"%s\" is not an integer\n", key);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
}

static void assert_uint3_member(json_t *o, const char *key, const uint64_t want[3])
{
    json_t *a = member(o, key);
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_true(json_is_integer(json_array_get(a, i)));
        assert_int_equal(json_integer_value(json_array_get(a, i)), want[i]);
    }
}

static void assert_rollup_members(json_t *mem, const ms_rollup *r)
{
    assert_uint_member(mem, "rss_bytes", r->rss_bytes);
    assert_uint_member(mem, "pss_bytes", r->pss_bytes);
    assert_uint_member(mem, "shared_clean_bytes", r->shared_clean_bytes);
    assert_uint_member(mem, "shared_dirty_bytes", r->shared_dirty_bytes);
    assert_uint_member(mem, "private_clean_bytes", r->private_clean_bytes);
    assert_uint_member(mem, "private_dirty_bytes", r->private_dirty_bytes);
}

static void stats_master_has_the_spec_fields_and_values(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    assert_int_equal(json_object_size(doc), 2);
    json_t *m = member(doc, "master");
    assert_int_equal(json_object_size(m), 5); /* pid, gc, state_bytes, state_pages, memory */
    assert_uint_member(m, "pid", 4242);
    json_t *gc = member(m, "gc");
    assert_int_equal(json_object_size(gc), 3);
    assert_true(json_is_string(member(gc, "mode")));
    assert_string_equal(json_string_value(member(gc, "mode")), MODE);
    assert_uint3_member(gc, "thresholds", (const uint64_t[]){700, 10, 10});
    assert_true(json_is_true(member(gc, "immortal")));
    assert_uint_member(m, "state_bytes", 123456789);
    assert_uint_member(m, "state_pages", 30141);
    json_t *mem = member(m, "memory");
    assert_int_equal(json_object_size(mem), 6);
    assert_rollup_members(mem, &f->sb->master.mem.rollup);
    json_decref(doc);
}

static void stats_workers_have_the_spec_fields_and_values(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    json_t *ws = member(doc, "workers");
    assert_true(json_is_array(ws));
    assert_int_equal(json_array_size(ws), NORDER);
    for (int i = 0; i < NORDER; i++) {
        const ms_entry *e = entry(f, order[i]);
        json_t *w = json_array_get(ws, (size_t)i);
        assert_int_equal(json_object_size(w), 9); /* id ... sampled_ms_ago */
        assert_uint_member(w, "id", (uint64_t)e->slot);
        assert_uint_member(w, "pid", (uint64_t)e->pid);
        assert_uint_member(w, "generation", (uint64_t)e->generation);
        assert_true(json_is_string(member(w, "status")));
        assert_string_equal(json_string_value(member(w, "status")), ms_status_name(e->status));
        assert_uint_member(w, "requests", e->requests);
        assert_uint_member(w, "errors", e->errors);

        json_t *gc = member(w, "gc");
        assert_int_equal(json_object_size(gc), 7);
        assert_uint3_member(gc, "collections", e->gc.collections);
        assert_uint3_member(gc, "collected", e->gc.collected);
        uint64_t pause_ns = e->gc.pause_ns[0] + e->gc.pause_ns[1] + e->gc.pause_ns[2];
        assert_uint_member(gc, "pause_us_total", pause_ns / 1000);
        assert_uint_member(gc, "pause_us_max", e->gc.pause_ns_max / 1000);
        assert_uint_member(gc, "tracked", e->gc.tracked);
        assert_uint_member(gc, "frozen", e->gc.frozen);
        assert_uint_member(gc, "objects", e->gc.objects);

        json_t *mem = member(w, "memory");
        assert_int_equal(json_object_size(mem), 7);
        assert_rollup_members(mem, &e->mem.rollup);
        json_t *st = member(mem, "state");
        assert_int_equal(json_object_size(st), 4);
        assert_uint_member(st, "pages", e->mem.state.pages);
        assert_uint_member(st, "shared_pages", e->mem.state.shared_pages);
        assert_uint_member(st, "private_pages", e->mem.state.private_pages);
        assert_true(json_is_real(member(st, "shared_ratio")));

        json_t *ago = member(w, "sampled_ms_ago");
        if (e->mem.at_ms)
            assert_uint_member(w, "sampled_ms_ago", NOW_MS - e->mem.at_ms);
        else
            assert_true(json_is_null(ago));
    }
    json_decref(doc);
}

static void stats_ratio_and_age_follow_the_sample(void **state)
{
    fx *f = *state;
    json_t *doc = stats_doc(f);
    json_t *ws = member(doc, "workers");
    /* order: OLD (unsampled), NEW (300 of 400 shared), ONE (no pages) */
    json_t *old = json_array_get(ws, 0), *new = json_array_get(ws, 1), *one = json_array_get(ws, 2);
    assert_true(json_is_null(member(old, "sampled_ms_ago")));
    assert_int_equal(json_integer_value(member(new, "sampled_ms_ago")), 2500);
    assert_int_equal(json_integer_value(member(one, "sampled_ms_ago")), 10);
    assert_true(json_real_value(member(member(member(new, "memory"), "state"), "shared_ratio")) == 0.75);
    assert_true(json_real_value(member(member(member(one, "memory"), "state"), "shared_ratio")) == 1.0);
    assert_true(json_real_value(member(member(member(old, "memory"), "state"), "shared_ratio")) == 1.0);
    /* pause_us_total is the total in ns, then in us: 4999 ns is 4 us */
    assert_int_equal(json_integer_value(member(member(new, "gc"), "pause_us_total")), 4);
    json_decref(doc);
}

static void stats_of_an_empty_scoreboard(void **state)
{
    (void)state;
    ms_scoreboard *sb = calloc(1, sizeof *sb);
    h_snapshot *snap = calloc(1, sizeof *snap);
    assert_non_null(sb);
    assert_non_null(snap);
    h_snapshot_take(sb, snap);
    assert_int_equal(snap->nworkers, 0);
    char *text = h_stats_json(snap);
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_true(json_is_array(member(doc, "workers")));
    assert_int_equal(json_array_size(member(doc, "workers")), 0);
    assert_string_equal(json_string_value(member(member(member(doc, "master"), "gc"), "mode")), "");
    json_decref(doc);
    free(text);
    free(snap);
    free(sb);
}

/* The mode field is 16 bytes of shared memory: it may fill them without a
 * NUL, and need not be UTF-8; both renderings stay valid. */
static void stats_and_metrics_survive_an_unterminated_or_non_utf8_mode(void **state)
{
    fx *f = *state;
    memcpy(f->snap->master.gc_mode, "abcdefghijklmnop", 16);
    json_t *doc = stats_doc(f);
    assert_string_equal(json_string_value(member(member(member(doc, "master"), "gc"), "mode")),
                        "abcdefghijklmnop");
    json_decref(doc);

    memset(f->snap->master.gc_mode, 0, sizeof f->snap->master.gc_mode);
    /* a stray byte, a good 2-byte letter, then a 3-byte sign cut short */
    memcpy(f->snap->master.gc_mode, "a\xff" "b\xc3\xa9" "\xe2\x82", 7);
    doc = stats_doc(f);
    assert_string_equal(json_string_value(member(member(member(doc, "master"), "gc"), "mode")),
                        "a?b\xc3\xa9??");
    json_decref(doc);

    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    expo x;
    parse_ok(text, &x);
    const psample *s = find_sample(&x, "cowdag_master_info", "pid", "4242", "mode", "a?b\xc3\xa9??", "immortal",
                                   "true", NULL);
    assert_non_null(s);
    expo_free(&x);
    free(text);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  GET /metrics                                                         */
/* ====================================================================== */

/* Every family the text must hold (handlers/stats.c's table). */
static const char *const all_families[] = {
    "cowdag_master_info", "cowdag_master_gc_threshold", "cowdag_master_state_bytes",
    "cowdag_master_state_pages", "cowdag_master_memory_bytes", "cowdag_workers_desired", "cowdag_workers",
    "cowdag_worker_restarts_total", "cowdag_worker_info", "cowdag_worker_generation",
    "cowdag_worker_uptime_seconds", "cowdag_requests_total", "cowdag_request_errors_total",
    "cowdag_request_duration_seconds", "cowdag_worker_memory_bytes", "cowdag_worker_state_pages",
    "cowdag_worker_state_shared_ratio", "cowdag_worker_sample_age_seconds", "cowdag_gc_collections_total",
    "cowdag_gc_collected_objects_total", "cowdag_gc_pause_seconds_total", "cowdag_gc_pause_max_seconds",
    "cowdag_gc_tracked_objects", "cowdag_gc_frozen_objects", "cowdag_heap_objects",
};
#define N_FAMILIES (sizeof all_families / sizeof all_families[0])

static char *metrics(fx *f, expo *x)
{
    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    parse_ok(text, x);
    return text;
}

static const char *type_of(const expo *x, const char *family)
{
    int i = find_family(x, family);
    assert_true(i >= 0);
    return x->fam[i].type;
}

/* The value of the one sample with these labels, which must exist. */
#define VALUE(x, ...) (must(find_sample((x), __VA_ARGS__, NULL))->v)
#define RAW(x, ...) (must(find_sample((x), __VA_ARGS__, NULL))->raw)

static const psample *must(const psample *s)
{
    assert_non_null(s);
    return s;
}

static void metrics_follow_the_exposition_rules(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x); /* parse_ok has asserted the rules */
    assert_int_equal(x.nfam, N_FAMILIES);
    for (size_t i = 0; i < N_FAMILIES; i++)
        assert_true(find_family(&x, all_families[i]) >= 0);
    for (int i = 0; i < x.nfam; i++) {
        const char *n = x.fam[i].name;
        assert_int_equal(strncmp(n, "cowdag_", 7), 0);
        bool total = strlen(n) > 6 && strcmp(n + strlen(n) - 6, "_total") == 0;
        assert_true(total == (strcmp(x.fam[i].type, "counter") == 0)); /* _total iff a counter */
    }
    assert_string_equal(type_of(&x, "cowdag_request_duration_seconds"), "histogram");
    assert_string_equal(type_of(&x, "cowdag_worker_memory_bytes"), "gauge");
    assert_string_equal(type_of(&x, "cowdag_gc_pause_seconds_total"), "counter");
    /* per-worker series carry worker and pid; the entry without a pid has none */
    for (int i = 0; i < x.ns; i++) {
        const psample *s = &x.s[i];
        if (strncmp(s->name, "cowdag_master_", 14) == 0 || strncmp(s->name, "cowdag_workers", 14) == 0 ||
            strcmp(s->name, "cowdag_worker_restarts_total") == 0)
            continue;
        assert_non_null(label_of(s, "worker"));
        assert_non_null(label_of(s, "pid"));
        assert_string_not_equal(label_of(s, "pid"), "0");
    }
    assert_int_equal(text[strlen(text) - 1], '\n');
    expo_free(&x);
    free(text);
}

static void metrics_hold_the_master_and_pool_figures(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    const ms_master *m = &f->sb->master;
    assert_true(VALUE(&x, "cowdag_master_info", "pid", "4242", "mode", MODE, "immortal", "true") == 1);
    assert_true(VALUE(&x, "cowdag_master_gc_threshold", "generation", "0") == 700);
    assert_true(VALUE(&x, "cowdag_master_gc_threshold", "generation", "2") == 10);
    assert_string_equal(RAW(&x, "cowdag_master_state_bytes"), "123456789");
    assert_string_equal(RAW(&x, "cowdag_master_state_pages"), "30141");
    assert_int_equal(count_samples(&x, "cowdag_master_memory_bytes"), 6);
    assert_true(VALUE(&x, "cowdag_master_memory_bytes", "kind", "rss") == (double)m->mem.rollup.rss_bytes);
    assert_true(VALUE(&x, "cowdag_master_memory_bytes", "kind", "private_dirty") ==
                (double)m->mem.rollup.private_dirty_bytes);
    assert_true(VALUE(&x, "cowdag_workers_desired") == 3);
    assert_true(VALUE(&x, "cowdag_workers", "status", "starting") == 1);
    assert_true(VALUE(&x, "cowdag_workers", "status", "ready") == 2);
    assert_true(VALUE(&x, "cowdag_workers", "status", "draining") == 1);
    assert_int_equal(count_samples(&x, "cowdag_workers"), 3);
    /* slots in use (0, 1, 2) and slots that ever respawned (5) */
    assert_int_equal(count_samples(&x, "cowdag_worker_restarts_total"), 4);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "0") == 2);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "1") == 0);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "2") == 0);
    assert_true(VALUE(&x, "cowdag_worker_restarts_total", "worker", "5") == 1);
    expo_free(&x);
    free(text);
}

static void metrics_hold_each_workers_figures(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    static const struct { int idx; const char *worker, *pid; } ws[] = {
        {IDX_OLD, "0", "1001"}, {IDX_NEW, "0", "2001"}, {IDX_ONE, "1", "3001"}};
    for (size_t i = 0; i < 3; i++) {
        const ms_entry *e = entry(f, ws[i].idx);
        const char *w = ws[i].worker, *p = ws[i].pid;
        assert_true(VALUE(&x, "cowdag_worker_info", "worker", w, "pid", p, "status", ms_status_name(e->status)) == 1);
        assert_true(VALUE(&x, "cowdag_worker_generation", "worker", w, "pid", p) == e->generation);
        assert_true(VALUE(&x, "cowdag_request_errors_total", "worker", w, "pid", p) == (double)e->errors);
        assert_true(VALUE(&x, "cowdag_requests_total", "worker", w, "pid", p, "code", "2xx") ==
                    (double)e->by_class[2]);
        assert_null(find_sample(&x, "cowdag_requests_total", "worker", w, "pid", p, "code", "3xx", NULL));
        for (int g = 0; g < MS_GC_GENS; g++) {
            const char *gen = (const char *[]){"0", "1", "2"}[g];
            assert_true(VALUE(&x, "cowdag_gc_collections_total", "worker", w, "pid", p, "generation", gen) ==
                        (double)e->gc.collections[g]);
            assert_true(VALUE(&x, "cowdag_gc_collected_objects_total", "worker", w, "pid", p, "generation", gen) ==
                        (double)e->gc.collected[g]);
            assert_true(VALUE(&x, "cowdag_gc_pause_seconds_total", "worker", w, "pid", p, "generation", gen) ==
                        (double)e->gc.pause_ns[g] / 1e9);
        }
        assert_true(VALUE(&x, "cowdag_gc_tracked_objects", "worker", w, "pid", p) == (double)e->gc.tracked);
        assert_true(VALUE(&x, "cowdag_gc_frozen_objects", "worker", w, "pid", p) == (double)e->gc.frozen);
        assert_true(VALUE(&x, "cowdag_heap_objects", "worker", w, "pid", p) == (double)e->gc.objects);
        assert_true(VALUE(&x, "cowdag_worker_uptime_seconds", "worker", w, "pid", p) ==
                    (double)(NOW_MS - e->started_ms) / 1000);
    }
    /* the old worker answered nothing: 2xx still there, at zero, alone */
    assert_true(VALUE(&x, "cowdag_requests_total", "worker", "0", "pid", "1001", "code", "2xx") == 0);
    assert_null(find_sample(&x, "cowdag_requests_total", "worker", "0", "pid", "1001", "code", "4xx", NULL));
    assert_true(VALUE(&x, "cowdag_requests_total", "worker", "0", "pid", "2001", "code", "4xx") == 2005);
    assert_true(VALUE(&x, "cowdag_requests_total", "worker", "0", "pid", "2001", "code", "5xx") == 2);
    assert_int_equal(count_samples(&x, "cowdag_worker_info"), 3);
    expo_free(&x);
    free(text);
}

/* Memory, state and sample age only for the workers that have a sample. */
static void metrics_report_memory_only_once_sampled(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    const ms_entry *new = entry(f, IDX_NEW), *one = entry(f, IDX_ONE);
    assert_int_equal(count_samples(&x, "cowdag_worker_memory_bytes"), 12);
    assert_int_equal(count_samples(&x, "cowdag_worker_state_pages"), 4);
    assert_int_equal(count_samples(&x, "cowdag_worker_state_shared_ratio"), 2);
    assert_int_equal(count_samples(&x, "cowdag_worker_sample_age_seconds"), 2);
    assert_null(find_sample(&x, "cowdag_worker_sample_age_seconds", "worker", "0", "pid", "1001", NULL));
    static const char *const kinds[] = {"rss", "pss", "shared_clean", "shared_dirty", "private_clean",
                                        "private_dirty"};
    const ms_rollup *nr = &new->mem.rollup;
    const uint64_t r[6] = {nr->rss_bytes, nr->pss_bytes, nr->shared_clean_bytes, nr->shared_dirty_bytes,
                           nr->private_clean_bytes, nr->private_dirty_bytes};
    for (int k = 0; k < 6; k++)
        assert_true(VALUE(&x, "cowdag_worker_memory_bytes", "worker", "0", "pid", "2001", "kind", kinds[k]) ==
                    (double)r[k]);
    assert_true(VALUE(&x, "cowdag_worker_memory_bytes", "worker", "1", "pid", "3001", "kind", "pss") ==
                (double)one->mem.rollup.pss_bytes);
    assert_true(VALUE(&x, "cowdag_worker_state_pages", "worker", "0", "pid", "2001", "sharing", "shared") == 300);
    assert_true(VALUE(&x, "cowdag_worker_state_pages", "worker", "0", "pid", "2001", "sharing", "private") == 100);
    assert_string_equal(RAW(&x, "cowdag_worker_state_shared_ratio", "worker", "0", "pid", "2001"), "0.75");
    assert_string_equal(RAW(&x, "cowdag_worker_state_shared_ratio", "worker", "1", "pid", "3001"), "1");
    assert_string_equal(RAW(&x, "cowdag_worker_sample_age_seconds", "worker", "0", "pid", "2001"), "2.5");
    assert_string_equal(RAW(&x, "cowdag_worker_sample_age_seconds", "worker", "1", "pid", "3001"), "0.01");
    expo_free(&x);
    free(text);
}

/* How Prometheus's Go code spells these bounds (strconv 'g', shortest). */
static const struct { double v; const char *text; } go_spelling[] = {
    {0.0001, "0.0001"}, {0.00025, "0.00025"}, {0.0005, "0.0005"}, {0.001, "0.001"}, {0.0025, "0.0025"},
    {0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"}, {0.05, "0.05"}, {0.1, "0.1"}, {0.25, "0.25"},
    {0.5, "0.5"}, {1, "1"}, {2.5, "2.5"}, {5, "5"}, {10, "10"}, {1e-05, "1e-05"}, {60, "60"},
};

static void metrics_histogram_is_cumulative_with_prometheus_le(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x); /* the checker: cumulative, +Inf == _count */
    const ms_entry *e = entry(f, IDX_NEW);
    uint64_t cum = 0;
    int k = 0;
    for (int i = 0; i < x.ns; i++) {
        const psample *s = &x.s[i];
        if (strcmp(s->name, "cowdag_request_duration_seconds_bucket") != 0 ||
            strcmp(label_of(s, "pid"), "2001") != 0)
            continue;
        assert_true(k < MS_HIST_BUCKETS);
        cum += e->duration[k];
        assert_true(s->v == (double)cum);
        const char *le = label_of(s, "le");
        if (k == MS_HIST_BUCKETS - 1) {
            assert_string_equal(le, "+Inf");
        } else {
            assert_true(strtod(le, NULL) == ms_hist_bounds[k]); /* reads back exactly */
            assert_null(strstr(le, "00000"));                    /* and is short */
            for (size_t j = 0; j < sizeof go_spelling / sizeof go_spelling[0]; j++)
                if (go_spelling[j].v == ms_hist_bounds[k])
                    assert_string_equal(le, go_spelling[j].text);
        }
        k++;
    }
    assert_int_equal(k, MS_HIST_BUCKETS);
    assert_true(VALUE(&x, "cowdag_request_duration_seconds_count", "worker", "0", "pid", "2001") == (double)cum);
    assert_string_equal(RAW(&x, "cowdag_request_duration_seconds_sum", "worker", "0", "pid", "2001"), "1.236567");
    assert_int_equal(count_samples(&x, "cowdag_request_duration_seconds_bucket"), 3 * MS_HIST_BUCKETS);
    expo_free(&x);
    free(text);
}

static void metrics_spell_floats_as_prometheus_does(void **state)
{
    fx *f = *state;
    f->snap->now_ms = 2000000000; /* uptime of the slot-1 worker: 1999957 s */
    expo x;
    char *text = metrics(f, &x);
    assert_string_equal(RAW(&x, "cowdag_gc_pause_seconds_total", "worker", "0", "pid", "2001", "generation", "0"),
                        "1.5e-06");
    assert_string_equal(RAW(&x, "cowdag_gc_pause_seconds_total", "worker", "0", "pid", "2001", "generation", "2"),
                        "9.99e-07");
    assert_string_equal(RAW(&x, "cowdag_gc_pause_max_seconds", "worker", "0", "pid", "2001"), "0.00125");
    assert_string_equal(RAW(&x, "cowdag_worker_uptime_seconds", "worker", "1", "pid", "3001"), "1.999957e+06");
    assert_string_equal(RAW(&x, "cowdag_worker_uptime_seconds", "worker", "0", "pid", "2001"), "1.999958e+06");
    assert_string_equal(RAW(&x, "cowdag_request_errors_total", "worker", "0", "pid", "2001"), "2007");
    expo_free(&x);
    free(text);

    /* a large integer counter stays an integer, not 1.8e+19 */

    f->snap->workers[1].errors = UINT64_MAX;
    text = metrics(f, &x);
    assert_string_equal(RAW(&x, "cowdag_request_errors_total", "worker", "0", "pid", "2001"),
                        "18446744073709551615");
    expo_free(&x);
    free(text);
}

static void metrics_escape_label_values(void **state)
{
    fx *f = *state;
    expo x;
    char *text = metrics(f, &x);
    /* as written: quote, backslash and newline escaped */
    assert_non_null(strstr(text, "mode=\"fr\\\"e\\\\e\\nz\""));
    /* as read back: the mode itself */
    const psample *s = must(find_sample(&x, "cowdag_master_info", "pid", "4242", "mode", MODE, "immortal", "true",
                                        NULL));
    assert_string_equal(label_of(s, "mode"), MODE);
    /* a plain value is written as it is */
    assert_non_null(strstr(text, "cowdag_worker_info{worker=\"0\",pid=\"2001\",status=\"ready\"} 1\n"));
    expo_free(&x);
    free(text);
}

static void metrics_of_an_empty_scoreboard(void **state)
{
    (void)state;
    ms_scoreboard *sb = calloc(1, sizeof *sb);
    h_snapshot *snap = calloc(1, sizeof *snap);
    assert_non_null(sb);
    assert_non_null(snap);
    h_snapshot_take(sb, snap);
    char *text = h_metrics_text(snap);
    assert_non_null(text);
    expo x;
    parse_ok(text, &x);
    assert_int_equal(x.nfam, N_FAMILIES); /* every family declared, even without samples */
    assert_int_equal(count_samples(&x, "cowdag_worker_info"), 0);
    assert_int_equal(count_samples(&x, "cowdag_master_memory_bytes"), 0); /* master never sampled */
    assert_int_equal(count_samples(&x, "cowdag_worker_restarts_total"), 0);
    assert_true(VALUE(&x, "cowdag_workers", "status", "ready") == 0);
    expo_free(&x);
    free(text);
    free(snap);
    free(sb);
}

/* Hundreds of workers: the text outgrows any first buffer, and each
 * family's samples still come together. */
static void metrics_of_many_workers_keep_families_contiguous(void **state)
{
    fx *f = *state;
    memset(f->sb, 0, sizeof *f->sb);
    fill_scoreboard(f->sb);
    for (int i = 20; i < 320; i++) {
        int slot = i % MS_SB_SLOTS;
        fill_entry(&f->sb->entries[i], slot, 3 + i / MS_SB_SLOTS, 50000 + i, MS_READY, (uint64_t)i);
        fill_sample(&f->sb->entries[i].mem, (uint64_t)i, 1);
    }
    h_snapshot_take(f->sb, f->snap);
    assert_int_equal(f->snap->nworkers, NORDER + 300);
    expo x;
    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    assert_true(strlen(text) > 1000000);
    parse_ok(text, &x);
    assert_int_equal(count_samples(&x, "cowdag_worker_info"), 303);
    assert_int_equal(count_samples(&x, "cowdag_worker_restarts_total"), MS_SB_SLOTS);
    assert_int_equal(count_samples(&x, "cowdag_request_duration_seconds_count"), 303);
    /* sorted: the first worker_info sample is slot 0's oldest generation */
    const psample *first = NULL;
    for (int i = 0; i < x.ns && !first; i++)
        if (strcmp(x.s[i].name, "cowdag_worker_info") == 0)
            first = &x.s[i];
    assert_string_equal(label_of(must(first), "pid"), "1001");
    expo_free(&x);
    free(text);
}

/* promtool, where it is installed, is the last word on the format. */
static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char *dirs = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", *d ? d : ".", prog);
        found = access(full, X_OK) == 0;
    }
    free(dirs);
    return found;
}

static void promtool_accepts(const char *text)
{
    char in[] = "/tmp/test_stats_metrics_XXXXXX", out[] = "/tmp/test_stats_promtool_XXXXXX";
    int fd = mkstemp(in), fo = mkstemp(out);
    assert_true(fd >= 0 && fo >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    close(fo);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s 2>&1", in, out);
    int st = system(cmd);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        char buf[4096] = "";
        FILE *fp = fopen(out, "r");
        if (fp) {
            size_t n = fread(buf, 1, sizeof buf - 1, fp);
            buf[n] = '\0';
            fclose(fp);
        }
        print_error("promtool check metrics failed (status %d):\n%s\n", st, buf);
    }
    unlink(in);
    unlink(out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void metrics_pass_promtool(void **state)
{
    fx *f = *state;
    if (!on_path("promtool")) {
        print_message("promtool not on PATH (Debian: apt-get install prometheus); skipped\n");
        skip();
    }
    char *text = h_metrics_text(f->snap);
    assert_non_null(text);
    promtool_accepts(text);
    free(text);

    ms_scoreboard *sb = calloc(1, sizeof *sb);
    assert_non_null(sb);
    h_snapshot_take(sb, f->snap);
    text = h_metrics_text(f->snap);
    assert_non_null(text);
    promtool_accepts(text);
    free(text);
    free(sb);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The checker itself                                                   */
/* ====================================================================== */

static void checker_accepts_a_well_formed_text(void **state)
{
    (void)state;
    expo x;
    parse_ok("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n"
             "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
             "h_sum 0.3\nh_count 2\n",
             &x);
    assert_string_equal(label_of(must(find_sample(&x, "a_total", "x", "q\"\\\n", NULL)), "x"), "q\"\\\n");
    expo_free(&x);
}

/* Each broken text must be caught: the checker can fail. */
static void checker_rejects_each_broken_rule(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* HELP twice */
        "# HELP a A.\n# HELP a A.\n# TYPE a gauge\na 1\n",
        /* TYPE twice */
        "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",
        /* header after samples */
        "# HELP a A.\n# TYPE a gauge\na 1\n# TYPE a gauge\n",
        /* family split by another */
        "# HELP a A.\n# TYPE a gauge\na{k=\"1\"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{k=\"2\"} 1\n",
        /* sample of another family under this one */
        "# HELP a A.\n# TYPE a gauge\nb 1\n",
        /* sample before any header */
        "a 1\n",
        /* histogram suffix on a gauge */
        "# HELP a A.\n# TYPE a gauge\na_bucket{le=\"1\"} 1\n",
        /* bad escape, unterminated value, bad label name */
        "# HELP a A.\n# TYPE a gauge\na{k=\"\\t\"} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{k=\"x} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{1k=\"x\"} 1\n",
        /* values Prometheus would not spell so */
        "# HELP a A.\n# TYPE a gauge\na inf\n",
        "# HELP a A.\n# TYPE a gauge\na 0x10\n",
        "# HELP a A.\n# TYPE a gauge\na \n",
        /* same series twice */
        "# HELP a A.\n# TYPE a gauge\na{k=\"1\"} 1\na{k=\"1\"} 2\n",
        /* buckets not cumulative; not ascending; no +Inf; +Inf != count; no sum */
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
        /* no final newline; an empty line; a missing HELP */
        "# HELP a A.\n# TYPE a gauge\na 1",
        "# HELP a A.\n# TYPE a gauge\n\na 1\n",
        "# TYPE a gauge\na 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expo x;
        char err[256] = "";
        bool ok = check_exposition(bad[i], &x, err, sizeof err);
        if (ok)
            print_error("checker accepted broken text #%zu:\n%s\n", i, bad[i]);
        assert_false(ok);
        expo_free(&x);
    }
}

/* }====================================================================== */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(snapshot_skips_free_entries_and_sorts_by_slot_then_generation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(snapshot_skips_an_entry_caught_mid_write, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_reports_a_torn_master_as_zeros, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_is_stamped_with_the_monotonic_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_master_has_the_spec_fields_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_workers_have_the_spec_fields_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_ratio_and_age_follow_the_sample, setup, teardown),
        cmocka_unit_test(stats_of_an_empty_scoreboard),
        cmocka_unit_test_setup_teardown(stats_and_metrics_survive_an_unterminated_or_non_utf8_mode, setup,
                                        teardown),
        cmocka_unit_test(checker_accepts_a_well_formed_text),
        cmocka_unit_test(checker_rejects_each_broken_rule),
        cmocka_unit_test_setup_teardown(metrics_follow_the_exposition_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_hold_the_master_and_pool_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_hold_each_workers_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_report_memory_only_once_sampled, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_histogram_is_cumulative_with_prometheus_le, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_spell_floats_as_prometheus_does, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_escape_label_values, setup, teardown),
        cmocka_unit_test(metrics_of_an_empty_scoreboard),
        cmocka_unit_test_setup_teardown(metrics_of_many_workers_keep_families_contiguous, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_pass_promtool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
