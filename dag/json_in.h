/* json_in: request bodies parsed straight into heap values, with simdjson
 * (Debian's libsimdjson) for speed and jansson as the referee.  A thin C
 * entry point over dag/json_in.cc.
 *
 * What it accepts, and the value it gives, are exactly what
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) accepts and what
 * dag_value_from_json(DV_ANY) makes of that (dag/value.h): objects become
 * dicts with str keys (a key given twice is an error), arrays lists,
 * integers exact int64 ints (one that does not fit int64 is an error naming
 * it), other numbers floats, and true/false/null bools and None.  Strings
 * must be valid UTF-8 without NUL ("\u0000"), and nothing nests deeper
 * than jansson's JSON_PARSER_MAX_DEPTH (2048) values.
 *
 * simdjson parses every body; its document is walked into heap objects
 * with no jansson tree in between.  Only when simdjson or the walk refuses
 * the text is it parsed again by jansson, which either gives the error --
 * line, column and reason, as before -- or, should simdjson have been
 * stricter than jansson, the value.  So errors cost two parses, and a body
 * is never refused that jansson would take. */
#ifndef COWDAG_JSON_IN_H
#define COWDAG_JSON_IN_H

#include <jansson.h>
#include <stddef.h>

#include "heap/heap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values may nest this deep, counting the top one (jansson's limit). */
#define DAG_JSON_MAX_DEPTH 2048

/* Parses text[0..len) into *out (a new reference); DAG_OK (0), or DAG_ERR
 * (-1) with err filled as jansson fills it (err->line, err->column, and
 * err->text such as "duplicate object key near '\"a\"'"). */
int dag_json_parse(const char *text, size_t len, heap_obj **out, json_error_t *err);

/* The same for a request body, whose ids come in arrays of hundreds:
 * every non-empty JSON array all of whose items are integers becomes an
 * int64 array, and one all of whose items are other numbers a float64
 * array -- no object per number.  dag_value_from_value reads such a
 * "request value" by its declared type, and gives back lists wherever a
 * type takes JSON as it is (any, list, dict). */
int dag_request_parse(const char *text, size_t len, heap_obj **out, json_error_t *err);

/* The same without simdjson: jansson, then the conversion.  The reference
 * the tests and bench_dag compare against. */
int dag_json_parse_jansson(const char *text, size_t len, heap_obj **out, json_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
