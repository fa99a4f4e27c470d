/* value: the boundary between JSON and heap values.  JSON comes in through
 * jansson (parsed once, converted here, then dropped: no jansson value lives
 * in the collected heap).  Values go out through a streaming writer, because
 * a result can be a 96 MiB array: building a jansson tree for it would cost
 * several times its size, while the writer holds one 64 KiB buffer. */
#ifndef COWDAG_VALUE_H
#define COWDAG_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "heap/heap.h"

#define DAG_OK 0
#define DAG_ERR (-1)

/* Declared types of DAG inputs (and what a JSON value is converted to). */
typedef enum dag_vtype {
    DV_ANY,   /* any JSON: numbers, strings, bools, null, lists, dicts */
    DV_INT,   /* a JSON integer */
    DV_FLOAT, /* a JSON number */
    DV_STR,
    DV_BOOL,
    DV_ARRAY, /* a JSON array of numbers (null: NaN) -> float64 array */
    DV_LIST,  /* a JSON array -> list */
    DV_DICT,  /* a JSON object -> dict with str keys */
    DV_IARRAY, /* a JSON array of integers -> int64 array (exact ids) */
} dag_vtype;

/* "any" "int" "float" "str" "bool" "array" "list" "dict" "int_array";
 * DAG_ERR else. */
int dag_vtype_parse(const char *s, dag_vtype *out);
const char *dag_vtype_name(dag_vtype t);

/* Converts j to a heap value of type `want`; *out gets a new reference.
 * On DAG_ERR, err says what did not fit ("expected int, got string",
 * "element 3: expected number, got string"). */
int dag_value_from_json(const json_t *j, dag_vtype want, heap_obj **out, char *err, size_t errlen);

/* The same conversion from a heap value that dag_json_parse or
 * dag_request_parse made of a JSON text (dag/json_in.h): the same results
 * and the same messages, as if v were the JSON it came from (a packed
 * array reads as the JSON array it was).  *out gets a new reference (v
 * itself when it already has the type). */
int dag_value_from_value(heap_obj *v, dag_vtype want, heap_obj **out, char *err, size_t errlen);

/* Request values (dag/json_in.h, dag_request_parse): a parsed value with
 * every non-empty list of ints packed into an int64 array and every one of
 * floats into a float64 array; and back (lists again, v itself when it
 * holds no array).  New references. */
heap_obj *dag_value_pack(heap_obj *v);
heap_obj *dag_value_unpack(heap_obj *v);

/* The JSON kind a parsed heap value came from, named as dag_json_kind
 * names it. */
const char *dag_value_kind(const heap_obj *v);

/* The name of a JSON value's type, in jansson's terms (object, array,
 * string, integer, real, boolean, null), for messages. */
const char *dag_json_kind(const json_t *j);

/* Whether a heap value has the declared type (an int is a float too). */
bool dag_value_is(const heap_obj *o, dag_vtype t);

/* --- writing JSON ------------------------------------------------------- */

/* A writer either collects into memory (flush == NULL) or hands each full
 * buffer to flush, which returns 0 on success; after a failed flush the
 * writer drops everything and dag_writer_finish reports DAG_ERR. */
typedef struct dag_writer {
    int (*flush)(void *arg, const char *buf, size_t len);
    void *arg;
    char *buf;
    size_t len, cap;
    bool failed;
} dag_writer;

void dag_writer_init_mem(dag_writer *w);
/* Memory writers: room for cap bytes up front (saves the growth steps). */
void dag_writer_reserve(dag_writer *w, size_t cap);
void dag_writer_init_sink(dag_writer *w, int (*flush)(void *, const char *, size_t), void *arg);
void dag_write(dag_writer *w, const char *s, size_t n);
void dag_write_cstr(dag_writer *w, const char *s);      /* raw text */
void dag_write_string(dag_writer *w, const char *s, size_t n); /* a JSON string, escaped */
void dag_write_double(dag_writer *w, double v);         /* shortest round-trip; non-finite: null */
void dag_write_int(dag_writer *w, int64_t v);
/* Flushes what is buffered (sink writers); returns DAG_ERR if a flush failed. */
int dag_writer_finish(dag_writer *w);
/* Memory writers: the text so far (NUL-terminated) and its ownership. */
char *dag_writer_take(dag_writer *w, size_t *len);
void dag_writer_free(dag_writer *w);

/* Writes o as JSON: arrays and lists as arrays, dicts as objects (int keys
 * written as strings), tables as {column: [...]}, non-finite floats as null.
 * DAG_ERR (and err) if the value nests deeper than DAG_EMIT_MAX_DEPTH, which
 * is what a cyclic value (a graph's nodes) does. */
#define DAG_EMIT_MAX_DEPTH 200
int dag_emit_value(dag_writer *w, heap_obj *o, char *err, size_t errlen);

/* The same output, a piece at a time, for a response that is sent while it
 * is written: each dag_emitter_step writes a bounded piece (a bracket, a
 * scalar, a key, or up to DAG_EMIT_ARRAY_RUN numbers of an array; a string
 * whole) and returns false once the value is complete.  The value must have
 * passed dag_value_check and must not change until the emitter is done; the
 * emitter holds no reference to it. */
#define DAG_EMIT_ARRAY_RUN 256
typedef struct dag_emit_frame {
    heap_obj *o;   /* a container being written */
    size_t i, n;   /* next element, element count */
    size_t pos;    /* a dict's iteration position */
} dag_emit_frame;

typedef struct dag_emitter {
    heap_obj *root; /* not yet begun; NULL once begun */
    int depth;      /* frames in use */
    dag_emit_frame stack[DAG_EMIT_MAX_DEPTH + 1];
} dag_emitter;

void dag_emitter_init(dag_emitter *e, heap_obj *o);
bool dag_emitter_step(dag_emitter *e, dag_writer *w);
/* The same verdict without writing: walks containers only (arrays and
 * scalars are leaves), so a writer can be sure before it streams. */
int dag_value_check(heap_obj *o, char *err, size_t errlen);

/* Converts a heap value to jansson, for small documents and tests: NULL on
 * the same errors as dag_emit_value. */
json_t *dag_value_to_json(heap_obj *o, char *err, size_t errlen);

#endif
