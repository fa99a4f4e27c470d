/* exposition: a checker of the Prometheus text format 0.0.4 for the tests
 * of GET /metrics (tests/test_stats.c; its own tests in
 * tests/test_exposition.c).  Failures are cmocka's: include <cmocka.h> and its
 * prerequisites (setjmp.h, stdarg.h, stddef.h, stdint.h) before this header. */
#ifndef COWDAG_TEST_EXPOSITION_H
#define COWDAG_TEST_EXPOSITION_H

#include <stdbool.h>
#include <stddef.h>

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

/* Checks the whole text; false with a message in err on the first problem.
 * x is filled either way (free it with expo_free). */
bool check_exposition(const char *text, expo *x, char *err, size_t errlen);
void expo_free(expo *x);
/* Asserts the text passes the checker and returns what it read. */
void parse_ok(const char *text, expo *x);

/* The index of family `name`; -1 if there is none. */
int find_family(const expo *x, const char *name);
/* The one sample named `name` whose labels are exactly the NULL-terminated
 * name/value pairs that follow; NULL if there is none. */
const psample *find_sample(const expo *x, const char *name, ...);
/* Asserts a sample was found; returns it. */
const psample *must(const psample *s);
/* The value of a sample's label `name`; NULL if it has none. */
const char *label_of(const psample *s, const char *name);
/* How many samples are named `name`. */
int count_samples(const expo *x, const char *name);

#endif
