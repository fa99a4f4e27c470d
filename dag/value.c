/* value.c: JSON in (jansson -> heap) and out (heap -> streaming writer);
 * see dag/value.h for why output does not go through jansson. */
#include "dag/value.h"

#include "dag/dtoa.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

/* ====================================================================== */
/* {  Types                                                                */
/* ====================================================================== */

static const char *const vtype_names[] = {"any", "int", "float", "str", "bool", "array", "list", "dict", "int_array"};

int dag_vtype_parse(const char *s, dag_vtype *out)
{
    for (size_t i = 0; i < sizeof vtype_names / sizeof *vtype_names; i++) {
        if (strcmp(s, vtype_names[i]) == 0) {
            *out = (dag_vtype)i;
            return DAG_OK;
        }
    }
    return DAG_ERR;
}

const char *dag_vtype_name(dag_vtype t)
{
    return (unsigned)t < sizeof vtype_names / sizeof *vtype_names ? vtype_names[t] : "?";
}

bool dag_value_is(const heap_obj *o, dag_vtype t)
{
    switch (t) {
    case DV_ANY:
        return true;
    case DV_INT:
        return o->type == HT_INT;
    case DV_FLOAT:
        return o->type == HT_FLOAT || o->type == HT_INT;
    case DV_STR:
        return o->type == HT_STR;
    case DV_BOOL:
        return o->type == HT_BOOL;
    case DV_ARRAY:
        return o->type == HT_ARRAY;
    case DV_LIST:
        return o->type == HT_LIST;
    case DV_DICT:
        return o->type == HT_DICT;
    case DV_IARRAY:
        return o->type == HT_ARRAY && heap_array_dtype(o) == HD_I64;
    }
    return false;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  JSON in                                                              */
/* ====================================================================== */

const char *dag_json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}


/* Generic conversion: what json.loads would give, as heap objects. */
static heap_obj *from_json_any(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        heap_obj *d = heap_dict_new();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) heap_dict_set_str_new(d, k, from_json_any(v));
        return d;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        heap_obj *l = heap_list_new(n);
        for (size_t i = 0; i < n; i++)
            heap_list_append_new(l, from_json_any(json_array_get(j, i)));
        return l;
    }
    case JSON_STRING:
        return heap_str_new(json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return heap_int_new(json_integer_value(j));
    case JSON_REAL:
        return heap_float_new(json_real_value(j));
    case JSON_TRUE:
        return heap_bool(true);
    case JSON_FALSE:
        return heap_bool(false);
    case JSON_NULL:
        break;
    }
    return heap_none();
}

int dag_value_from_json(const json_t *j, dag_vtype want, heap_obj **out, char *err, size_t errlen)
{
    *out = NULL;
    switch (want) {
    case DV_ANY:
        *out = from_json_any(j);
        return DAG_OK;
    case DV_INT:
        if (!json_is_integer(j))
            return base_errf(err, errlen, "expected int, got %s", dag_json_kind(j));
        *out = heap_int_new(json_integer_value(j));
        return DAG_OK;
    case DV_FLOAT:
        if (!json_is_number(j))
            return base_errf(err, errlen, "expected float, got %s", dag_json_kind(j));
        *out = heap_float_new(json_number_value(j));
        return DAG_OK;
    case DV_STR:
        if (!json_is_string(j))
            return base_errf(err, errlen, "expected str, got %s", dag_json_kind(j));
        *out = heap_str_new(json_string_value(j), json_string_length(j));
        return DAG_OK;
    case DV_BOOL:
        if (!json_is_boolean(j))
            return base_errf(err, errlen, "expected bool, got %s", dag_json_kind(j));
        *out = heap_bool(json_is_true(j));
        return DAG_OK;
    case DV_ARRAY: {
        if (!json_is_array(j))
            return base_errf(err, errlen, "expected array of numbers, got %s", dag_json_kind(j));
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(j, i);
            if (!json_is_number(e) && !json_is_null(e))
                return base_errf(err, errlen, "element %zu: expected number, got %s", i, dag_json_kind(e));
        }
        heap_obj *a = heap_array_new_uninit(HD_F64, n);
        double *v = heap_array_f64(a);
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(j, i);
            v[i] = json_is_null(e) ? NAN : json_number_value(e);
        }
        *out = a;
        return DAG_OK;
    }
    case DV_LIST:
        if (!json_is_array(j))
            return base_errf(err, errlen, "expected list, got %s", dag_json_kind(j));
        *out = from_json_any(j);
        return DAG_OK;
    case DV_DICT:
        if (!json_is_object(j))
            return base_errf(err, errlen, "expected dict, got %s", dag_json_kind(j));
        *out = from_json_any(j);
        return DAG_OK;
    case DV_IARRAY: {
        if (!json_is_array(j))
            return base_errf(err, errlen, "expected array of integers, got %s", dag_json_kind(j));
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(j, i);
            if (!json_is_integer(e))
                return base_errf(err, errlen, "element %zu: expected integer, got %s", i, dag_json_kind(e));
        }
        heap_obj *a = heap_array_new_uninit(HD_I64, n);
        int64_t *v = heap_array_i64(a);
        for (size_t i = 0; i < n; i++)
            v[i] = json_integer_value(json_array_get(j, i));
        *out = a;
        return DAG_OK;
    }
    }
    return base_errf(err, errlen, "unknown type");
}

const char *dag_value_kind(const heap_obj *v)
{
    switch (heap_type_of(v)) {
    case HT_DICT:
        return "object";
    case HT_LIST:
    case HT_ARRAY: /* a packed JSON array */
        return "array";
    case HT_STR:
        return "string";
    case HT_INT:
        return "integer";
    case HT_FLOAT:
        return "real";
    case HT_BOOL:
        return "boolean";
    case HT_NONE:
        return "null";
    default:
        return heap_type_name(heap_type_of(v));
    }
}

static int same(heap_obj *v, heap_obj **out)
{
    heap_incref(v);
    *out = v;
    return DAG_OK;
}

/* A list of numbers (null: NaN) into a float64 array, of ints into an
 * int64 array; the first item that does not fit is named. */
static int list_to_array(heap_obj *l, heap_dtype dt, heap_obj **out, char *err, size_t errlen)
{
    size_t n = heap_list_len(l);
    for (size_t i = 0; i < n; i++) {
        heap_type t = heap_type_of(heap_list_get(l, i));
        if (dt == HD_I64 ? t != HT_INT : t != HT_INT && t != HT_FLOAT && t != HT_NONE)
            return base_errf(err, errlen, "element %zu: expected %s, got %s", i, dt == HD_I64 ? "integer" : "number",
                             dag_value_kind(heap_list_get(l, i)));
    }
    heap_obj *a = heap_array_new_uninit(dt, n);
    if (dt == HD_I64) {
        int64_t *v = heap_array_i64(a);
        for (size_t i = 0; i < n; i++)
            v[i] = heap_int_value(heap_list_get(l, i));
    } else {
        double *v = heap_array_f64(a);
        for (size_t i = 0; i < n; i++) {
            heap_obj *e = heap_list_get(l, i);
            heap_type t = heap_type_of(e);
            v[i] = t == HT_NONE ? NAN : t == HT_INT ? (double)heap_int_value(e) : heap_float_value(e);
        }
    }
    *out = a;
    return DAG_OK;
}

/* --- request values: arrays of numbers packed ------------------------------ */

/* Whether o holds a packed array anywhere (o is a parsed value: lists,
 * dicts, scalars and packed arrays only). */
static bool holds_array(heap_obj *o)
{
    switch (heap_type_of(o)) {
    case HT_ARRAY:
        return true;
    case HT_LIST:
        for (size_t i = 0, n = heap_list_len(o); i < n; i++)
            if (holds_array(heap_list_get(o, i)))
                return true;
        return false;
    case HT_DICT: {
        size_t pos = 0;
        heap_obj *v;
        while (heap_dict_next(o, &pos, NULL, &v))
            if (holds_array(v))
                return true;
        return false;
    }
    default:
        return false;
    }
}

/* Whether o holds a list that packing would turn into an array. */
static bool packable(heap_obj *l)
{
    size_t n = heap_list_len(l);
    if (n == 0)
        return false;
    heap_type t = heap_type_of(heap_list_get(l, 0));
    if (t != HT_INT && t != HT_FLOAT)
        return false;
    for (size_t i = 1; i < n; i++)
        if (heap_type_of(heap_list_get(l, i)) != t)
            return false;
    return true;
}

/* A copy of o, lists packed into arrays (pack) or arrays into lists: the
 * one walk for both ways. */
static heap_obj *rebuild(heap_obj *o, bool pack)
{
    heap_type t = heap_type_of(o);
    if (pack && t == HT_LIST && packable(o)) {
        size_t n = heap_list_len(o);
        bool ints = heap_type_of(heap_list_get(o, 0)) == HT_INT;
        heap_obj *a = heap_array_new_uninit(ints ? HD_I64 : HD_F64, n);
        for (size_t i = 0; i < n; i++)
            if (ints)
                heap_array_i64(a)[i] = heap_int_value(heap_list_get(o, i));
            else
                heap_array_f64(a)[i] = heap_float_value(heap_list_get(o, i));
        return a;
    }
    if (!pack && t == HT_ARRAY) {
        size_t n = heap_array_len(o);
        heap_obj *l = heap_list_new(n);
        for (size_t i = 0; i < n; i++)
            heap_list_append_new(l, heap_array_dtype(o) == HD_I64 ? heap_int_new(heap_array_i64(o)[i])
                                                                  : heap_float_new(heap_array_f64(o)[i]));
        return l;
    }
    if (t == HT_LIST) {
        size_t n = heap_list_len(o);
        heap_obj *l = heap_list_new(n);
        for (size_t i = 0; i < n; i++)
            heap_list_append_new(l, rebuild(heap_list_get(o, i), pack));
        return l;
    }
    if (t == HT_DICT) {
        heap_obj *d = heap_dict_new();
        size_t pos = 0;
        heap_obj *k, *v;
        while (heap_dict_next(o, &pos, &k, &v))
            heap_dict_set_new(d, k, rebuild(v, pack));
        return d;
    }
    heap_incref(o);
    return o;
}

heap_obj *dag_value_pack(heap_obj *o)
{
    return rebuild(o, true);
}

heap_obj *dag_value_unpack(heap_obj *o)
{
    if (!holds_array(o)) {
        heap_incref(o);
        return o;
    }
    return rebuild(o, false);
}

/* A packed array as the other dtype's array, or itself. */
static heap_obj *array_as(heap_obj *a, heap_dtype dt)
{
    if (heap_array_dtype(a) == dt) {
        heap_incref(a);
        return a;
    }
    size_t n = heap_array_len(a);
    heap_obj *b = heap_array_new_uninit(dt, n);
    for (size_t i = 0; i < n; i++) /* only int64 to float64: the other way is refused */
        heap_array_f64(b)[i] = (double)heap_array_i64(a)[i];
    return b;
}

int dag_value_from_value(heap_obj *v, dag_vtype want, heap_obj **out, char *err, size_t errlen)
{
    *out = NULL;
    heap_type t = heap_type_of(v);
    bool seq = t == HT_LIST || t == HT_ARRAY;
    switch (want) {
    case DV_ANY:
        *out = dag_value_unpack(v);
        return DAG_OK;
    case DV_INT:
        if (t != HT_INT)
            return base_errf(err, errlen, "expected int, got %s", dag_value_kind(v));
        return same(v, out);
    case DV_FLOAT:
        if (t == HT_FLOAT)
            return same(v, out);
        if (t != HT_INT)
            return base_errf(err, errlen, "expected float, got %s", dag_value_kind(v));
        *out = heap_float_new((double)heap_int_value(v));
        return DAG_OK;
    case DV_STR:
        if (t != HT_STR)
            return base_errf(err, errlen, "expected str, got %s", dag_value_kind(v));
        return same(v, out);
    case DV_BOOL:
        if (t != HT_BOOL)
            return base_errf(err, errlen, "expected bool, got %s", dag_value_kind(v));
        return same(v, out);
    case DV_ARRAY:
        if (!seq)
            return base_errf(err, errlen, "expected array of numbers, got %s", dag_value_kind(v));
        if (t == HT_ARRAY)
            return *out = array_as(v, HD_F64), DAG_OK;
        return list_to_array(v, HD_F64, out, err, errlen);
    case DV_IARRAY:
        if (!seq)
            return base_errf(err, errlen, "expected array of integers, got %s", dag_value_kind(v));
        if (t == HT_ARRAY && heap_array_dtype(v) == HD_F64)
            return base_errf(err, errlen, "element 0: expected integer, got real");
        if (t == HT_ARRAY)
            return same(v, out);
        return list_to_array(v, HD_I64, out, err, errlen);
    case DV_LIST:
        if (!seq)
            return base_errf(err, errlen, "expected list, got %s", dag_value_kind(v));
        *out = dag_value_unpack(v);
        return DAG_OK;
    case DV_DICT:
        if (t != HT_DICT)
            return base_errf(err, errlen, "expected dict, got %s", dag_value_kind(v));
        *out = dag_value_unpack(v);
        return DAG_OK;
    }
    return base_errf(err, errlen, "unknown type");
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The writer                                                           */
/* ====================================================================== */

#define SINK_BUF 65536

void dag_writer_init_mem(dag_writer *w)
{
    *w = (dag_writer){0};
}

void dag_writer_reserve(dag_writer *w, size_t cap)
{
    if (!w->flush && cap > w->cap) {
        w->buf = base_realloc(w->buf, cap);
        w->cap = cap;
    }
}

void dag_writer_init_sink(dag_writer *w, int (*flush)(void *, const char *, size_t), void *arg)
{
    *w = (dag_writer){.flush = flush, .arg = arg};
    w->buf = base_malloc(SINK_BUF);
    w->cap = SINK_BUF;
}

static void sink_flush(dag_writer *w)
{
    if (w->len && !w->failed && w->flush(w->arg, w->buf, w->len) != 0)
        w->failed = true;
    w->len = 0;
}

/* A memory writer's end, with room for n more bytes and the NUL after
 * them: numbers are formatted straight into it. */
static char *mem_room(dag_writer *w, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (w->len + n + 1 > cap)
            cap *= 2;
        w->buf = base_realloc(w->buf, cap);
        w->cap = cap;
    }
    return w->buf + w->len;
}

void dag_write(dag_writer *w, const char *s, size_t n)
{
    if (w->flush) {
        while (n) {
            if (w->len == w->cap)
                sink_flush(w);
            size_t k = w->cap - w->len < n ? w->cap - w->len : n;
            memcpy(w->buf + w->len, s, k);
            w->len += k;
            s += k;
            n -= k;
        }
        return;
    }
    memcpy(mem_room(w, n), s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void dag_write_cstr(dag_writer *w, const char *s) { dag_write(w, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

/* Escapes quotes, backslashes and control characters; invalid UTF-8 bytes
 * become U+FFFD, so the output is always valid JSON. */
void dag_write_string(dag_writer *w, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    dag_write(w, "\"", 1);
    size_t run = 0; /* bytes copied verbatim, pending */
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t seq = c >= 0x20 && c != '"' && c != '\\' ? utf8_seq(s + i, n - i) : 0;
        if (seq) {
            i += seq;
            run += seq;
            continue;
        }
        dag_write(w, (const char *)s + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"':
            dag_write(w, "\\\"", 2);
            break;
        case '\\':
            dag_write(w, "\\\\", 2);
            break;
        case '\n':
            dag_write(w, "\\n", 2);
            break;
        case '\t':
            dag_write(w, "\\t", 2);
            break;
        case '\r':
            dag_write(w, "\\r", 2);
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                dag_write(w, esc, 6);
            } else {
                dag_write(w, "\\ufffd", 6);
            }
        }
        i++;
    }
    dag_write(w, (const char *)s + n - run, run);
    dag_write(w, "\"", 1);
}

/* As Python's repr (dag/dtoa.h): 0.4, 1.0, 1e+16; non-finite as null. */
void dag_write_double(dag_writer *w, double v)
{
    if (!isfinite(v)) {
        dag_write(w, "null", 4);
        return;
    }
    if (!w->flush) { /* in place: dag_dtoa writes the NUL */
        w->len += (size_t)dag_dtoa(v, mem_room(w, DAG_DTOA_BUF));
        return;
    }
    char buf[DAG_DTOA_BUF];
    int n = dag_dtoa(v, buf);
    dag_write(w, buf, (size_t)n);
}

void dag_write_int(dag_writer *w, int64_t v)
{
    if (!w->flush) {
        w->len += (size_t)dag_itoa(v, mem_room(w, DAG_ITOA_BUF));
        return;
    }
    char buf[DAG_ITOA_BUF];
    int n = dag_itoa(v, buf);
    dag_write(w, buf, (size_t)n);
}

int dag_writer_finish(dag_writer *w)
{
    if (w->flush)
        sink_flush(w);
    return w->failed ? DAG_ERR : DAG_OK;
}

char *dag_writer_take(dag_writer *w, size_t *len)
{
    if (!w->buf)
        dag_write(w, "", 0);
    char *b = w->buf;
    if (len)
        *len = w->len;
    *w = (dag_writer){0};
    return b;
}

void dag_writer_free(dag_writer *w)
{
    free(w->buf);
    *w = (dag_writer){0};
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Values out                                                           */
/* ====================================================================== */

/* The emitter is an explicit stack of the containers being written, so
 * that a 96 MiB array or a deep document can be written a piece at a time
 * (dag/value.h).  Scalars are written where they stand; a container writes
 * its opening bracket and pushes a frame, and each later step writes its
 * next element (or closes it). */

static void write_scalar(dag_writer *w, heap_obj *o)
{
    switch (heap_type_of(o)) {
    case HT_NONE:
        dag_write(w, "null", 4);
        return;
    case HT_BOOL:
        dag_write_cstr(w, heap_bool_value(o) ? "true" : "false");
        return;
    case HT_INT:
        dag_write_int(w, heap_int_value(o));
        return;
    case HT_FLOAT:
        dag_write_double(w, heap_float_value(o));
        return;
    case HT_STR:
        dag_write_string(w, heap_str_data(o), heap_str_len(o));
        return;
    default:
        heap_panic("emit: object of unknown type %d", (int)heap_type_of(o));
    }
}

static bool is_container(const heap_obj *o)
{
    heap_type t = heap_type_of(o);
    return t == HT_ARRAY || t == HT_LIST || t == HT_DICT || t == HT_TABLE;
}

/* Writes o: a scalar whole, a container's opening bracket and a frame. */
static void begin_value(dag_emitter *e, dag_writer *w, heap_obj *o)
{
    if (!is_container(o)) {
        write_scalar(w, o);
        return;
    }
    if (e->depth > DAG_EMIT_MAX_DEPTH) /* dag_value_check said it would not */
        heap_panic("emit: a value deeper than %d levels passed its check", DAG_EMIT_MAX_DEPTH);
    heap_type t = heap_type_of(o);
    size_t n = t == HT_ARRAY  ? heap_array_len(o)
               : t == HT_LIST ? heap_list_len(o)
               : t == HT_DICT ? heap_dict_len(o)
                              : heap_table_ncols(o);
    e->stack[e->depth++] = (dag_emit_frame){.o = o, .n = n};
    dag_write(w, t == HT_ARRAY || t == HT_LIST ? "[" : "{", 1);
}

static void write_key(dag_writer *w, heap_obj *k)
{
    if (heap_type_of(k) == HT_STR) {
        dag_write_string(w, heap_str_data(k), heap_str_len(k));
    } else {
        char buf[DAG_ITOA_BUF];
        int n = dag_itoa(heap_int_value(k), buf);
        dag_write_string(w, buf, (size_t)n);
    }
    dag_write(w, ":", 1);
}

void dag_emitter_init(dag_emitter *e, heap_obj *o)
{
    e->root = o;
    e->depth = 0;
}

bool dag_emitter_step(dag_emitter *e, dag_writer *w)
{
    if (e->root) {
        heap_obj *o = e->root;
        e->root = NULL;
        begin_value(e, w, o);
        return e->depth > 0;
    }
    if (e->depth == 0)
        return false;
    dag_emit_frame *f = &e->stack[e->depth - 1];
    heap_obj *o = f->o;
    heap_type t = heap_type_of(o);
    if (f->i == f->n) {
        dag_write(w, t == HT_ARRAY || t == HT_LIST ? "]" : "}", 1);
        e->depth--;
        return e->depth > 0;
    }
    if (t == HT_ARRAY) { /* a run of numbers at a time */
        size_t end = f->n - f->i < DAG_EMIT_ARRAY_RUN ? f->n : f->i + DAG_EMIT_ARRAY_RUN;
        if (heap_array_dtype(o) == HD_F64 && !w->flush) { /* room for the run, then in place */
            const double *v = heap_array_f64(o);
            char *p = mem_room(w, (end - f->i) * (DAG_DTOA_BUF + 1)), *start = p;
            for (size_t i = f->i; i < end; i++) {
                if (i)
                    *p++ = ',';
                if (isfinite(v[i]))
                    p += dag_dtoa(v[i], p);
                else
                    memcpy(p, "null", 4), p += 4;
            }
            w->len += (size_t)(p - start);
            *p = '\0';
        } else if (heap_array_dtype(o) == HD_F64) {
            const double *v = heap_array_f64(o);
            for (size_t i = f->i; i < end; i++) {
                if (i)
                    dag_write(w, ",", 1);
                dag_write_double(w, v[i]);
            }
        } else {
            const int64_t *v = heap_array_i64(o);
            for (size_t i = f->i; i < end; i++) {
                if (i)
                    dag_write(w, ",", 1);
                dag_write_int(w, v[i]);
            }
        }
        f->i = end;
        return true;
    }
    if (f->i)
        dag_write(w, ",", 1);
    f->i++;
    heap_obj *item;
    if (t == HT_LIST) {
        item = heap_list_get(o, f->i - 1);
    } else if (t == HT_DICT) {
        heap_obj *k;
        if (!heap_dict_next(o, &f->pos, &k, &item))
            heap_panic("emit: a dict changed while it was written");
        write_key(w, k);
    } else {
        heap_obj *name = heap_table_name_at(o, f->i - 1);
        dag_write_string(w, heap_str_data(name), heap_str_len(name));
        dag_write(w, ":", 1);
        item = heap_table_column_at(o, f->i - 1);
    }
    begin_value(e, w, item); /* may push: f is not used after this */
    return true;
}

int dag_emit_value(dag_writer *w, heap_obj *o, char *err, size_t errlen)
{
    if (dag_value_check(o, err, errlen) != DAG_OK)
        return DAG_ERR;
    dag_emitter *e = base_malloc(sizeof *e);
    dag_emitter_init(e, o);
    while (dag_emitter_step(e, w))
        ;
    free(e);
    return DAG_OK;
}

static int check(heap_obj *o, int depth, char *err, size_t errlen)
{
    if (depth > DAG_EMIT_MAX_DEPTH)
        return base_errf(err, errlen, "value nests deeper than %d levels (is it cyclic?)", DAG_EMIT_MAX_DEPTH);
    switch (heap_type_of(o)) {
    case HT_LIST:
        for (size_t i = 0, n = heap_list_len(o); i < n; i++)
            if (check(heap_list_get(o, i), depth + 1, err, errlen))
                return DAG_ERR;
        return DAG_OK;
    case HT_DICT: {
        size_t pos = 0;
        heap_obj *v;
        while (heap_dict_next(o, &pos, NULL, &v))
            if (check(v, depth + 1, err, errlen))
                return DAG_ERR;
        return DAG_OK;
    }
    case HT_TABLE:
        for (size_t i = 0, n = heap_table_ncols(o); i < n; i++)
            if (check(heap_table_column_at(o, i), depth + 1, err, errlen))
                return DAG_ERR;
        return DAG_OK;
    default:
        return DAG_OK;
    }
}

int dag_value_check(heap_obj *o, char *err, size_t errlen)
{
    return check(o, 0, err, errlen);
}

json_t *dag_value_to_json(heap_obj *o, char *err, size_t errlen)
{
    dag_writer w;
    dag_writer_init_mem(&w);
    if (dag_emit_value(&w, o, err, errlen)) {
        dag_writer_free(&w);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(w.buf, w.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    dag_writer_free(&w);
    if (!j)
        base_errf(err, errlen, "internal: emitted JSON does not parse: %s", jerr.text);
    return j;
}

/* }====================================================================== */
