/* csv.c: a one-pass RFC 4180 reader and the int/float/string typing of
 * columns.  The accepted syntax, positions and typing rules are described at
 * the top of load/csv.h; the state loader that uses them is load/state.c. */
#include "load/csv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ====================================================================== */
/* {  Errors and buffers                                                   */
/* ====================================================================== */

static int csv_fail(const ld_csv *p, char *err, size_t errlen, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Writes "NAME:LINE:COL: problem" into err. */
static int csv_fail(const ld_csv *p, char *err, size_t errlen, size_t line, size_t col, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return LD_CSV_ERR;
    int n = snprintf(err, errlen, "%s:%zu:%zu: ", p->name, line, col);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return LD_CSV_ERR;
}

static int out_of_memory(const ld_csv *p, char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: out of memory", p->name);
    return LD_CSV_ERR;
}

static size_t col_of(const ld_csv *p, const char *at) { return (size_t)(at - p->line_start) + 1; }

/* Makes room for one more field. */
static bool fields_reserve(ld_csv *p)
{
    if (p->nfields < p->fields_cap)
        return true;
    size_t cap = p->fields_cap ? p->fields_cap * 2 : 16;
    ld_csv_field *f = realloc(p->fields, cap * sizeof *f);
    if (!f)
        return false;
    p->fields = f;
    p->fields_cap = cap;
    return true;
}

static bool scratch_append(ld_csv *p, const char *s, size_t n)
{
    if (p->scratch_cap - p->scratch_len < n) {
        size_t cap = p->scratch_cap ? p->scratch_cap : 256;
        while (cap - p->scratch_len < n)
            cap *= 2;
        char *b = realloc(p->scratch, cap);
        if (!b)
            return false;
        p->scratch = b;
        p->scratch_cap = cap;
    }
    memcpy(p->scratch + p->scratch_len, s, n);
    p->scratch_len += n;
    return true;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Records                                                              */
/* ====================================================================== */

/* Bytes that stop the scan of an unquoted field. */
static const unsigned char stops[256] = {[','] = 1, ['\n'] = 1, ['\r'] = 1, ['"'] = 1};

static bool is_crlf(const char *s, const char *end) { return end - s >= 2 && s[0] == '\r' && s[1] == '\n'; }

/* Describes a byte for a message: 'x', or \xNN when not printable. */
static const char *show_byte(char c, char buf[8])
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x20 && u < 0x7f && u != '\'')
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "\\x%02x", u);
    return buf;
}

/* Reads one quoted field whose opening quote is at *sp; leaves *sp just
 * after the closing quote. */
static int read_quoted(ld_csv *p, const char **sp, size_t line, size_t col, char *err, size_t errlen)
{
    const char *open = *sp, *end = p->end;
    const char *q = open + 1;   /* where the search for the next quote goes on */
    const char *run = q;        /* start of the text not yet copied to scratch */
    size_t esc_start = 0;
    bool escaped = false;
    for (;;) {
        const char *quote = memchr(q, '"', (size_t)(end - q));
        if (!quote)
            return csv_fail(p, err, errlen, line, col, "unterminated quoted field");
        for (const char *nl = q; (nl = memchr(nl, '\n', (size_t)(quote - nl))) != NULL; nl++) {
            p->line++;
            p->line_start = nl + 1;
        }
        if (end - quote >= 2 && quote[1] == '"') { /* "" stands for one quote */
            if (!escaped) {
                escaped = true;
                esc_start = p->scratch_len;
            }
            if (!scratch_append(p, run, (size_t)(quote + 1 - run)))
                return out_of_memory(p, err, errlen);
            q = run = quote + 2;
            continue;
        }
        ld_csv_field *f = &p->fields[p->nfields++];
        f->line = line;
        f->col = col;
        if (escaped) {
            if (!scratch_append(p, run, (size_t)(quote - run)))
                return out_of_memory(p, err, errlen);
            f->data = NULL;
            f->len = p->scratch_len - esc_start;
            f->esc = esc_start + 1;
        } else {
            f->data = open + 1;
            f->len = (size_t)(quote - open - 1);
            f->esc = 0;
        }
        *sp = quote + 1;
        return LD_CSV_OK;
    }
}

/* Reads the record at the cursor into p->fields, whatever its width:
 * 1 if there was one, 0 at the end of the input. */
static int read_record(ld_csv *p, char *err, size_t errlen)
{
    const char *s = p->p, *end = p->end;
    p->nfields = 0;
    p->scratch_len = 0;
    if (s == end)
        return 0;
    /* A blank last line ends the input without being a record. */
    if ((*s == '\n' && end - s == 1) || (is_crlf(s, end) && end - s == 2)) {
        p->p = end;
        p->line++;
        p->line_start = end;
        return 0;
    }
    p->record_line = p->line;
    bool escaped = false;
    for (;;) {
        if (!fields_reserve(p))
            return out_of_memory(p, err, errlen);
        size_t line = p->line, col = col_of(p, s);
        if (s < end && *s == '"') {
            if (read_quoted(p, &s, line, col, err, errlen) != LD_CSV_OK)
                return LD_CSV_ERR;
            escaped |= p->fields[p->nfields - 1].esc != 0;
            if (s < end && *s != ',' && *s != '\n' && !is_crlf(s, end)) {
                char b[8];
                return csv_fail(p, err, errlen, p->line, col_of(p, s), "unexpected %s after a closing quote",
                                show_byte(*s, b));
            }
        } else {
            const char *start = s;
            for (;;) {
                while (s < end && !stops[(unsigned char)*s])
                    s++;
                if (s == end || *s == ',' || *s == '\n' || is_crlf(s, end))
                    break;
                if (*s == '"')
                    return csv_fail(p, err, errlen, line, col_of(p, s), "quote inside an unquoted field");
                s++; /* a CR on its own is data */
            }
            ld_csv_field *f = &p->fields[p->nfields++];
            f->data = start;
            f->len = (size_t)(s - start);
            f->line = line;
            f->col = col;
            f->esc = 0;
        }
        if (s == end)
            break;
        if (*s == ',') {
            s++;
            continue;
        }
        s += *s == '\r' ? 2 : 1;
        p->line++;
        p->line_start = s;
        break;
    }
    p->p = s;
    if (escaped) /* scratch has stopped moving: point the fields at it */
        for (size_t i = 0; i < p->nfields; i++)
            if (p->fields[i].esc)
                p->fields[i].data = p->scratch + p->fields[i].esc - 1;
    return 1;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The reader                                                           */
/* ====================================================================== */

void ld_csv_free(ld_csv *p)
{
    free(p->fields);
    free(p->scratch);
    free(p->header);
    free(p->names);
    *p = (ld_csv){0};
}

/* Checks the header just read and keeps a copy of its names. */
static int take_header(ld_csv *p, char *err, size_t errlen)
{
    size_t n = p->nfields, total = 0;
    for (size_t i = 0; i < n; i++) {
        const ld_csv_field *f = &p->fields[i];
        if (f->len == 0)
            return csv_fail(p, err, errlen, f->line, f->col, "empty name in the header (column %zu)", i + 1);
        for (size_t j = 0; j < i; j++) {
            const ld_csv_field *g = &p->fields[j];
            if (g->len == f->len && memcmp(g->data, f->data, f->len) == 0)
                return csv_fail(p, err, errlen, f->line, f->col, "duplicate name '%.*s' in the header (columns %zu and %zu)",
                                (int)(f->len > 80 ? 80 : f->len), f->data, j + 1, i + 1);
        }
        total += f->len + 1;
    }
    p->names = malloc(total);
    p->header = malloc(n * sizeof *p->header);
    if (!p->names || !p->header)
        return out_of_memory(p, err, errlen);
    char *w = p->names;
    for (size_t i = 0; i < n; i++) {
        p->header[i] = p->fields[i];
        p->header[i].data = w;
        p->header[i].esc = 0;
        memcpy(w, p->fields[i].data, p->fields[i].len);
        w[p->fields[i].len] = '\0';
        w += p->fields[i].len + 1;
    }
    p->ncols = n;
    return LD_CSV_OK;
}

int ld_csv_open(ld_csv *p, const char *name, const char *buf, size_t len, char *err, size_t errlen)
{
    *p = (ld_csv){0};
    p->name = name;
    p->buf = buf;
    p->end = buf + len;
    p->body = buf;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        p->body += 3;
    p->p = p->line_start = p->body;
    p->line = 1;

    int rc;
    if (p->body == p->end)
        rc = csv_fail(p, err, errlen, 1, 1, "empty input: expected a header");
    else if (*p->body == '\n' || is_crlf(p->body, p->end))
        rc = csv_fail(p, err, errlen, 1, 1, "missing header: the first line is blank");
    else if ((rc = read_record(p, err, errlen)) == 1)
        rc = take_header(p, err, errlen);
    if (rc != LD_CSV_OK) {
        ld_csv_free(p);
        return LD_CSV_ERR;
    }
    p->first = p->p;
    p->first_line_start = p->line_start;
    p->first_line = p->line;
    return LD_CSV_OK;
}

void ld_csv_rewind(ld_csv *p)
{
    p->p = p->first;
    p->line_start = p->first_line_start;
    p->line = p->first_line;
    p->records = 0;
    p->nfields = 0;
}

int ld_csv_next(ld_csv *p, const ld_csv_field **fields, size_t *n, char *err, size_t errlen)
{
    int rc = read_record(p, err, errlen);
    if (rc != 1)
        return rc;
    if (p->nfields != p->ncols)
        return csv_fail(p, err, errlen, p->record_line, 1, "record has %zu field%s, the header has %zu", p->nfields,
                        p->nfields == 1 ? "" : "s", p->ncols);
    p->records++;
    *fields = p->fields;
    *n = p->nfields;
    return 1;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Types                                                                */
/* ====================================================================== */

const char *ld_csv_type_name(ld_csv_type t)
{
    switch (t) {
    case LD_CSV_INT:
        return "int";
    case LD_CSV_FLOAT:
        return "float";
    case LD_CSV_STR:
        return "string";
    }
    return "?";
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool ld_csv_parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == len)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (out)
        *out = !neg ? (int64_t)v : v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
    return true;
}

/* [+-] (digits [. digits] | . digits) [(e|E) [+-] digits], and nothing else. */
static bool float_syntax(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < len && is_digit(s[i]); i++)
        digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && is_digit(s[i]); i++)
            digits++;
    if (digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp_digits = 0;
        for (; i < len && is_digit(s[i]); i++)
            exp_digits++;
        if (exp_digits == 0)
            return false;
    }
    return i == len;
}

bool ld_csv_parse_float(const char *s, size_t len, double *out)
{
    if (!float_syntax(s, len))
        return false;
    if (!out)
        return true;
    /* strtod wants a terminated string: the field is not one. */
    char small[64], *copy = len < sizeof small ? small : malloc(len + 1);
    if (!copy)
        return false;
    memcpy(copy, s, len);
    copy[len] = '\0';
    char *stop;
    double v = strtod(copy, &stop);
    bool whole = stop == copy + len;
    if (copy != small)
        free(copy);
    if (whole)
        *out = v;
    return whole;
}

typedef struct col_seen {
    bool maybe_int, maybe_float, any_empty;
} col_seen;

int ld_csv_scan_types(ld_csv *p, ld_csv_type *types, size_t *nrows, char *err, size_t errlen)
{
    size_t ncols = p->ncols;
    col_seen *seen = malloc(ncols * sizeof *seen);
    if (!seen)
        return out_of_memory(p, err, errlen);
    for (size_t c = 0; c < ncols; c++)
        seen[c] = (col_seen){true, true, false};

    const ld_csv_field *f;
    size_t n;
    int rc;
    while ((rc = ld_csv_next(p, &f, &n, err, errlen)) == 1) {
        for (size_t c = 0; c < ncols; c++) {
            col_seen *k = &seen[c];
            if (f[c].len == 0) {
                k->any_empty = true;
                continue;
            }
            if (k->maybe_int && !ld_csv_parse_int(f[c].data, f[c].len, NULL))
                k->maybe_int = false;
            if (!k->maybe_int && k->maybe_float && !float_syntax(f[c].data, f[c].len))
                k->maybe_float = false;
        }
    }
    if (rc == LD_CSV_OK) {
        *nrows = (size_t)p->records;
        for (size_t c = 0; c < ncols; c++)
            types[c] = seen[c].maybe_int && !seen[c].any_empty ? LD_CSV_INT
                       : seen[c].maybe_int || seen[c].maybe_float ? LD_CSV_FLOAT
                                                                  : LD_CSV_STR;
        ld_csv_rewind(p);
    }
    free(seen);
    return rc;
}

/* }====================================================================== */
