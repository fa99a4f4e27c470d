/* heap_internal: what heap.c and gc.c share and nothing else sees: the
 * collector link that precedes a tracked object, and the container hooks the
 * collector calls.  Layout rationale in heap/heap.h. */
#ifndef COWDAG_HEAP_INTERNAL_H
#define COWDAG_HEAP_INTERNAL_H

#include "heap/heap.h"

/* Flag bit owned by the collector: on the permanent generation's list. */
#define HF_FROZEN (1u << 6)

/* The collector's link, stored in the 16 bytes before a container's header.
 * Outside a collection next/prev chain the object into its generation's
 * circular list (a sentinel gc_link heads each list). */
typedef struct gc_link {
    struct gc_link *next;
    struct gc_link *prev;
} gc_link;

#define GC_LINK(o) ((gc_link *)(o) - 1)
#define GC_OBJ(l) ((heap_obj *)((gc_link *)(l) + 1))

static inline bool heap__is_container(heap_type t)
{
    return t == HT_LIST || t == HT_DICT || t == HT_TABLE;
}

/* Drops every reference a container holds, leaving it empty but alive (the
 * collector breaks unreachable cycles with it). */
void heap__clear(heap_obj *o);

/* Whether o lives in memory inherited from an earlier epoch (a master). */
bool heap__inherited(const heap_obj *o);

/* The seal number of the memory o lives in (UINT32_MAX for statics). */
uint32_t heap__seal_of(const heap_obj *o);

#endif
