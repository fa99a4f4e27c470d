/* heap_internal: what the files of heap/ share and nothing else sees: the
 * collector link that precedes a tracked object and the container hooks the
 * collector calls (heap.c, gc.c); the allocator's structures and the one
 * heap state (alloc.c, heap.c).  Layout rationale in heap/heap.h. */
#ifndef COWDAG_HEAP_INTERNAL_H
#define COWDAG_HEAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ====================================================================== */
/* {  The allocator's structures (heap/alloc.c), shared with the objects  */
/* ====================================================================== */

/* In sanitizer builds, free blocks, unused pool space and cached mappings
 * are poisoned, so AddressSanitizer catches use-after-free inside our own
 * pools too.  The free-list link is read through freelink(). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define NCLASSES (HEAP_SMALL_MAX / HEAP_ALIGN) /* class i holds (i+1)*16 bytes */
#define POOLS_PER_ARENA (HEAP_ARENA_SIZE / HEAP_POOL_SIZE)
#define SCLASS_LARGE 0xFFFFu

/* What a pool's (or large mapping's) blocks hold: objects that start with
 * their header, containers that start with their collector link, or raw
 * storage.  Keeping them apart makes a heap walk exact. */
enum { KIND_OBJ, KIND_GC, KIND_RAW, KIND__COUNT };

/* A pool's header sits in its first bytes; blocks follow.  A pool is either
 * full (no free block: off every ring), used (on usedpools[kind][class]), or
 * empty (back on its arena's free list).  Blocks below `nextoffset` were
 * handed out at least once; free ones are chained through their first word
 * from `freeblock`. */
typedef struct pool {
    uint32_t nused;        /* blocks handed out */
    uint16_t sclass;
    uint8_t kind;          /* KIND_* */
    uint8_t pad_;
    uint32_t arena;        /* index into H.arenas */
    uint32_t nextoffset;   /* first never-used block */
    uint32_t maxnextoffset;
    uint32_t pad2_;
    void *freeblock;
    struct pool *next, *prev;
} pool;

/* The first block starts on a cache line (64 bytes): then no block of 16,
 * 32 or 64 bytes straddles two lines, and a float's header and value share
 * one.  Rounded only to the 16-byte alignment the header would take 48
 * bytes, and every other 32-byte block would span two lines; reading 32
 * random records' spend lists costs 11% less this way (bench_dag request). */
#define POOL_HDR ((sizeof(pool) + 63) & ~(size_t)63)

/* Arena descriptors live in malloc'ed memory, not in the arena, so that the
 * bookkeeping of a worker never writes an inherited arena's pages. */
typedef struct arena {
    uintptr_t base;         /* 0: slot unused */
    uint32_t epoch;         /* H.epoch when mapped */
    uint32_t seal;          /* H.seal when mapped */
    uint32_t nfreepools;    /* pools not in use (carved or not) */
    uint32_t ncarved;       /* pools carved so far, from the bottom */
    pool *freepools;        /* carved pools returned empty */
    int32_t next_usable;    /* doubly linked list of arenas with free pools */
    int32_t prev_usable;
} arena;

/* Large mappings: a 16-byte header, then the block. */
typedef struct large_node {
    uintptr_t base;
    size_t map_size;
    uint32_t epoch;
    uint32_t seal;
    uint8_t kind;
    struct large_node *prev, *next;
} large_node;

typedef struct large_hdr {
    large_node *node;
    size_t map_size;
} large_hdr;

typedef struct cached_map {
    uintptr_t base;
    size_t map_size;
} cached_map;

#define LARGE_CACHE_SLOTS 16

/* The heap's one state: the allocator's (arenas, pools, large mappings,
 * epoch and seal) and the objects' (the deallocation stack, the hash seed).
 * Defined in heap/alloc.c; heap.c and alloc.c name it H. */
struct heap_state {
    bool initialised;
    uint32_t epoch; /* forks: memory of an earlier epoch is inherited */
    uint32_t seal;  /* seals: memory of an earlier seal takes no new blocks */
    heap_config config;

    arena *arenas;
    uint32_t narenas;       /* slots in use or free */
    uint32_t arenas_cap;
    int32_t usable;         /* head of usable-arena list, -1: none */
    pool *usedpools[KIND__COUNT][NCLASSES];

    large_node *large;      /* live large mappings */
    cached_map cache[LARGE_CACHE_SLOTS];
    size_t ncache, cache_bytes;

    heap_obj **dealloc_stack;
    size_t dealloc_len, dealloc_cap;
    bool deallocating;

    heap_stats stats;
    uint64_t hash_seed;
};
extern struct heap_state heap__state;
#define H heap__state

static inline size_t class_size(unsigned sc) { return (size_t)(sc + 1) * HEAP_ALIGN; }
static inline unsigned size_class(size_t n) { return (unsigned)((n + HEAP_ALIGN - 1) / HEAP_ALIGN) - 1; }
static inline pool *pool_of(const void *p) { return (pool *)((uintptr_t)p & ~(uintptr_t)(HEAP_POOL_SIZE - 1)); }

/* A block of n bytes of the given kind (KIND_*), zeroed if asked; never
 * NULL (out of memory panics).  Counted in live_bytes. */
void *heap__block_alloc(unsigned kind, size_t n, bool zero);
/* Frees a block from a pool / from a large mapping (blocks of inherited
 * memory are left in place and counted as inherited frees). */
void heap__small_free(void *b);
void heap__large_free(void *b);
/* Unmaps everything the allocator holds (heap_destroy). */
void heap__alloc_release(void);

/* }====================================================================== */

#endif
