/* gc_internal: the collector's hooks into the object heap -- what heap.c
 * calls when an object is allocated, built or freed.  Nothing outside
 * heap/ sees them; the collector's design is at the top of heap/gc.c. */
#ifndef COWDAG_GC_INTERNAL_H
#define COWDAG_GC_INTERNAL_H

#include <stdbool.h>

#include "heap/heap.h"

void gc__init(void);             /* forget every list and count (heap_init, heap_destroy) */
void gc__on_alloc(bool tracked); /* before an object allocation: may collect */
void gc__track(heap_obj *o);     /* link a fully built container */
void gc__untrack(heap_obj *o);   /* unlink (on free) */
bool gc__collecting(void);       /* a collection is running */

/* Takes every object whose memory carries a seal before `seal` off the
 * collector's lists, without writing to one: each run of them is cut out
 * by relinking its two kept neighbours (so a worker forgets an older
 * generation's objects before that memory is unmapped).  Returns how many
 * tracked objects it dropped. */
uint64_t gc__forget_sealed_before(uint32_t seal);

#endif
