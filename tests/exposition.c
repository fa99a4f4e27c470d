/* exposition.c: a checker of the Prometheus text format 0.0.4
 * (tests/exposition.h), held to the rules GET /metrics promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/exposition.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void expo_free(expo *x)
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

int find_family(const expo *x, const char *name)
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

const char *label_of(const psample *s, const char *name)
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
bool check_exposition(const char *text, expo *x, char *err, size_t errlen)
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
const psample *find_sample(const expo *x, const char *name, ...)
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

int count_samples(const expo *x, const char *name)
{
    int n = 0;
    for (int i = 0; i < x->ns; i++)
        n += strcmp(x->s[i].name, name) == 0;
    return n;
}

/* Asserts the text passes the checker and returns what it read. */
void parse_ok(const char *text, expo *x)
{
    char err[256] = "";
    bool ok = check_exposition(text, x, err, sizeof err);
    if (!ok)
        print_error("exposition rejected: %s\n", err);
    assert_true(ok);
}

const psample *must(const psample *s)
{
    assert_non_null(s);
    return s;
}
