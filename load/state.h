/* state: building the master's read-mostly state in the managed heap.
 * The synthetic customer store follows the generator written out below
 * exactly, so other implementations can rebuild the same records. */
#ifndef COWDAG_STATE_H
#define COWDAG_STATE_H

#include <stdint.h>

#include "heap/heap.h"

/* The customer store: a dict from int id (0..count-1) to a record dict
 * {"id", "name", "segment", "spend", "tags"}, where spend is a list of 12
 * floats drawn from x = (1103515245*x + 12345) & 0x7fffffff (x starts at
 * seed; value = (x % 100000) / 100.0), name is "customer-<i>", segment
 * i % 16, and tags ["t<i%7>", "t<i%11>"].  The five key strings are shared
 * by every record.  Returns a new reference. */
heap_obj *ld_state_generate_records(uint64_t count, uint64_t seed);

#define LD_SPEND_LEN 12

struct ld_state_spec;

/* Loads one entry of the config's "state" into the heap; *out gets a new
 * reference.  records+generate: the store above; records+csv+key: a dict
 * from the key column's (typed) value to a row record dict; table+csv: a
 * table of typed columns (int64 array, float64 array, or list of str);
 * json+file: the document as heap values.  On LD_ERR err says
 * "FILE:LINE:COL: problem" for malformed CSV or JSON, "FILE: problem"
 * otherwise, and *out is NULL. */
int ld_state_load(const struct ld_state_spec *spec, heap_obj **out, char *err, size_t errlen);

#endif
