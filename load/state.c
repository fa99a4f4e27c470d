/* state.c: builds the master's state in the managed heap: the synthetic
 * customer store, and records, tables and documents loaded from CSV
 * and JSON files (contract in load/state.h; CSV rules in load/csv.h). */
#include "load/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "dag/value.h"
#include "load/config.h"
#include "load/csv.h"

heap_obj *ld_state_generate_records(uint64_t count, uint64_t seed)
{
    static const char *const field[] = {"id", "name", "segment", "spend", "tags"};
    heap_obj *key[5];
    for (int k = 0; k < 5; k++)
        key[k] = heap_str_from(field[k]);

    heap_obj *store = heap_dict_new();
    uint64_t x = seed;
    char buf[48];
    for (uint64_t i = 0; i < count; i++) {
        heap_obj *rec = heap_dict_new();
        heap_obj *id = heap_int_new((int64_t)i);
        heap_dict_set(rec, key[0], id);

        int n = snprintf(buf, sizeof buf, "customer-%llu", (unsigned long long)i);
        heap_dict_set_new(rec, key[1], heap_str_new(buf, (size_t)n));
        heap_dict_set_new(rec, key[2], heap_int_new((int64_t)(i % 16)));

        heap_obj *spend = heap_list_new(LD_SPEND_LEN);
        for (int j = 0; j < LD_SPEND_LEN; j++) {
            x = (1103515245u * x + 12345u) & 0x7fffffffu;
            heap_list_append_new(spend, heap_float_new((double)(x % 100000) / 100.0));
        }
        heap_dict_set_new(rec, key[3], spend);

        heap_obj *tags = heap_list_new(2);
        n = snprintf(buf, sizeof buf, "t%llu", (unsigned long long)(i % 7));
        heap_list_append_new(tags, heap_str_new(buf, (size_t)n));
        n = snprintf(buf, sizeof buf, "t%llu", (unsigned long long)(i % 11));
        heap_list_append_new(tags, heap_str_new(buf, (size_t)n));
        heap_dict_set_new(rec, key[4], tags);

        heap_dict_set_new(store, id, rec);
        heap_decref(id);
    }
    for (int k = 0; k < 5; k++)
        heap_decref(key[k]);
    return store;
}

/* ====================================================================== */
/* {  Loading from files                                                   */
/* ====================================================================== */


/* Reads a whole file into a malloc'ed, NUL-terminated buffer. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    *text = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return base_errf(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1; /* +1: reaching the end takes no second read buffer */
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return base_errf(err, errlen, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                close(fd);
                return base_errf(err, errlen, "%s: out of memory", path);
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return base_errf(err, errlen, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return LD_OK;
}

/* The heap value of a cell in a column of type t (the column was typed by
 * ld_csv_scan_types, so the text fits the type). */
static heap_obj *cell_value(ld_csv_type t, const ld_csv_field *f)
{
    int64_t i = 0;
    double d = NAN;
    switch (t) {
    case LD_CSV_INT:
        ld_csv_parse_int(f->data, f->len, &i);
        return heap_int_new(i);
    case LD_CSV_FLOAT:
        if (f->len)
            ld_csv_parse_float(f->data, f->len, &d);
        return heap_float_new(d);
    case LD_CSV_STR:
        break;
    }
    return heap_str_new(f->data, f->len);
}

/* table + csv: one int64 array, float64 array or list of str per column. */
static int build_table(ld_csv *p, const ld_csv_type *types, size_t nrows, heap_obj **out, char *err, size_t errlen)
{
    size_t ncols = p->ncols;
    heap_obj **cols = calloc(ncols, sizeof *cols);
    void **data = calloc(ncols, sizeof *data);
    if (!cols || !data) {
        free(cols);
        free(data);
        return base_errf(err, errlen, "%s: out of memory", p->name);
    }
    for (size_t c = 0; c < ncols; c++) {
        switch (types[c]) {
        case LD_CSV_INT:
            cols[c] = heap_array_new_uninit(HD_I64, nrows);
            data[c] = heap_array_i64(cols[c]);
            break;
        case LD_CSV_FLOAT:
            cols[c] = heap_array_new_uninit(HD_F64, nrows);
            data[c] = heap_array_f64(cols[c]);
            break;
        case LD_CSV_STR:
            cols[c] = heap_list_new(nrows);
            break;
        }
    }

    const ld_csv_field *f;
    size_t n, row = 0;
    int rc;
    while ((rc = ld_csv_next(p, &f, &n, err, errlen)) == 1 && row < nrows) {
        for (size_t c = 0; c < ncols; c++) {
            switch (types[c]) {
            case LD_CSV_INT:
                ld_csv_parse_int(f[c].data, f[c].len, &((int64_t *)data[c])[row]);
                break;
            case LD_CSV_FLOAT: {
                double *v = &((double *)data[c])[row];
                *v = NAN;
                if (f[c].len)
                    ld_csv_parse_float(f[c].data, f[c].len, v);
                break;
            }
            case LD_CSV_STR:
                heap_list_append_new(cols[c], heap_str_new(f[c].data, f[c].len));
                break;
            }
        }
        row++;
    }
    if (rc == 1 || (rc == 0 && row != nrows)) /* the input changed under us: cannot happen */
        rc = base_errf(err, errlen, "%s: rows changed between passes", p->name);

    heap_obj *table = NULL;
    if (rc == 0) {
        table = heap_table_new(nrows);
        for (size_t c = 0; c < ncols; c++) {
            heap_obj *name = heap_str_new(p->header[c].data, p->header[c].len);
            heap_table_add_column(table, name, cols[c]);
            heap_decref(name);
        }
    }
    for (size_t c = 0; c < ncols; c++)
        heap_decref(cols[c]);
    free(cols);
    free(data);
    *out = table;
    return table ? LD_OK : LD_ERR;
}

/* records + csv + key: {key: {name: value, ...}}, one shared str per name. */
static int build_records(ld_csv *p, const ld_csv_type *types, size_t kcol, heap_obj **out, char *err, size_t errlen)
{
    size_t ncols = p->ncols;
    heap_obj **names = malloc(ncols * sizeof *names);
    if (!names)
        return base_errf(err, errlen, "%s: out of memory", p->name);
    for (size_t c = 0; c < ncols; c++)
        names[c] = heap_str_new(p->header[c].data, p->header[c].len);

    heap_obj *store = heap_dict_new();
    const ld_csv_field *f;
    size_t n;
    int rc;
    while ((rc = ld_csv_next(p, &f, &n, err, errlen)) == 1) {
        const ld_csv_field *kf = &f[kcol];
        heap_obj *key = cell_value(types[kcol], kf);
        if (heap_dict_get(store, key)) {
            heap_decref(key);
            rc = base_errf(err, errlen, "%s:%zu:%zu: duplicate key '%.*s'", p->name, kf->line, kf->col,
                      (int)(kf->len > 80 ? 80 : kf->len), kf->data);
            break;
        }
        heap_obj *rec = heap_dict_new();
        for (size_t c = 0; c < ncols; c++) {
            if (c == kcol)
                heap_dict_set(rec, names[c], key);
            else
                heap_dict_set_new(rec, names[c], cell_value(types[c], &f[c]));
        }
        heap_dict_set_new(store, key, rec);
        heap_decref(key);
    }
    for (size_t c = 0; c < ncols; c++)
        heap_decref(names[c]);
    free(names);
    if (rc != 0) {
        heap_decref(store);
        return LD_ERR;
    }
    *out = store;
    return LD_OK;
}

static int load_csv(const ld_state_spec *spec, bool table, heap_obj **out, char *err, size_t errlen)
{
    const char *path = spec->csv;
    char *text;
    size_t len;
    if (read_file(path, &text, &len, err, errlen) != LD_OK)
        return LD_ERR;
    ld_csv p;
    if (ld_csv_open(&p, path, text, len, err, errlen) != LD_CSV_OK) {
        free(text);
        return LD_ERR;
    }

    int rc = LD_ERR;
    size_t kcol = 0, nrows = 0;
    ld_csv_type *types = NULL;
    if (!table) {
        while (kcol < p.ncols && strcmp(p.header[kcol].data, spec->key) != 0)
            kcol++;
        if (kcol == p.ncols) {
            base_errf(err, errlen, "%s: key column '%s' not found", path, spec->key);
            goto done;
        }
    }
    if (!(types = malloc(p.ncols * sizeof *types))) {
        base_errf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (ld_csv_scan_types(&p, types, &nrows, err, errlen) != LD_CSV_OK)
        goto done;
    if (table) {
        rc = build_table(&p, types, nrows, out, err, errlen);
    } else if (types[kcol] == LD_CSV_FLOAT) {
        base_errf(err, errlen, "%s: key column '%s' is float (keys must be int or string; an empty cell makes an int column float)",
             path, spec->key);
    } else {
        rc = build_records(&p, types, kcol, out, err, errlen);
    }
done:
    free(types);
    ld_csv_free(&p);
    free(text);
    return rc;
}

static int load_json(const char *path, heap_obj **out, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (read_file(path, &text, &len, err, errlen) != LD_OK)
        return LD_ERR;
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &je);
    free(text);
    if (!doc) {
        if (je.line > 0)
            return base_errf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return base_errf(err, errlen, "%s: %s", path, je.text);
    }
    char why[256];
    int rc = dag_value_from_json(doc, DV_ANY, out, why, sizeof why);
    json_decref(doc);
    if (rc != DAG_OK)
        return base_errf(err, errlen, "%s: %s", path, why);
    return LD_OK;
}

int ld_state_load(const ld_state_spec *spec, heap_obj **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    const char *name = spec->name ? spec->name : "state";
    switch (spec->kind) {
    case LD_STATE_RECORDS:
        if (spec->generate) {
            *out = ld_state_generate_records(spec->count, spec->seed);
            return LD_OK;
        }
        if (spec->csv && spec->key)
            return load_csv(spec, false, out, err, errlen);
        return base_errf(err, errlen, "%s: records need generate, or csv and key", name);
    case LD_STATE_TABLE:
        if (spec->csv)
            return load_csv(spec, true, out, err, errlen);
        return base_errf(err, errlen, "%s: a table needs csv", name);
    case LD_STATE_JSON:
        if (spec->file)
            return load_json(spec->file, out, err, errlen);
        return base_errf(err, errlen, "%s: json needs file", name);
    }
    return base_errf(err, errlen, "%s: unknown state kind %d", name, (int)spec->kind);
}

/* }====================================================================== */
