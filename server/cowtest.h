/* cowtest: the copy-on-write experiment without a server.  Builds the
 * customer store, settles the collector as a master does, forks one child
 * that looks records up and collects, and reports how many inherited pages
 * the child still shares.  The command is documented in README.md. */
#ifndef COWDAG_COWTEST_H
#define COWDAG_COWTEST_H

#include <stdint.h>
#include <stdio.h>

#include "heap/gc.h"

typedef struct srv_cow_options {
    uint64_t records;
    uint64_t lookups;
    uint64_t seed;
    int collect;        /* generation to collect after the look-ups, -1: none */
    gc_config gc;
} srv_cow_options;

/* Runs the experiment; the child prints one JSON line to `out`.  Returns
 * the child's exit status (0 on success), or 1 if it could not run. */
int srv_cowtest(const srv_cow_options *opt, FILE *out);

/* K random look-ups over a store of n records made by
 * ld_state_generate_records, taking and dropping references as an
 * interpreter does: hold the record, its spend list and each float while
 * reading them, build a small result dict and drop it.  Returns a checksum
 * of what was computed, so the work cannot be optimised away. */
double srv_cow_lookups(heap_obj *store, uint64_t n, uint64_t k, uint64_t seed);

#endif
