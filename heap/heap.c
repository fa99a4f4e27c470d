/* heap.c: the allocator (arenas, size-classed pools, large mappings), the
 * object types and their reference counting.  The layout and the inherited-
 * memory rules are described at the top of heap/heap.h; the collector is in
 * heap/gc.c. */
#include "heap/heap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"
#include "base/err.h"
#include "heap/gc.h"
#include "heap/heap_internal.h"

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

/* ====================================================================== */
/* {  Internal structures                                                  */
/* ====================================================================== */

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

/* Object bodies. */
typedef struct h_int {
    heap_obj h;
    int64_t v;
} h_int;

typedef struct h_float {
    heap_obj h;
    double v;
} h_float;

typedef struct h_str {
    heap_obj h;
    uint64_t hash;
    size_t len;
    char data[];
} h_str;

typedef struct h_list {
    heap_obj h;
    size_t len, cap;
    heap_obj **items;
} h_list;

typedef struct dict_entry {
    uint64_t hash;
    heap_obj *key; /* NULL: deleted */
    heap_obj *value;
} dict_entry;

/* Compact dict: `index` maps hash slots to positions in `entries`, which
 * keep insertion order.  index and entries share one raw block. */
typedef struct h_dict {
    heap_obj h;
    uint32_t used;     /* live entries */
    uint32_t nentries; /* entries written, live or deleted */
    uint32_t cap;      /* entries capacity: 2/3 of the index size */
    uint8_t log2size;  /* index size = 1 << log2size; 0: no table yet */
    uint8_t mixed;     /* some key was not an int (never reset) */
    uint16_t pad_;
    int32_t *index;
    dict_entry *entries;
} h_dict;

#define IX_EMPTY (-1)
#define IX_DUMMY (-2)

typedef struct h_array {
    heap_obj h;
    uint32_t dtype;
    uint32_t pad_;
    size_t len;
    void *data;
} h_array;

typedef struct h_table {
    heap_obj h;
    size_t nrows;
    heap_obj *names; /* list of str */
    heap_obj *cols;  /* list of columns */
} h_table;

#define SMALL_INT_MIN (-5)
#define SMALL_INT_MAX 256

static struct heap_state {
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
} H;

static heap_obj none_obj = {.rc = 1, .type = HT_NONE, .flags = HF_IMMORTAL | HF_STATIC};
static heap_obj true_obj = {.rc = 1, .type = HT_BOOL, .flags = HF_IMMORTAL | HF_STATIC};
static heap_obj false_obj = {.rc = 1, .type = HT_BOOL, .flags = HF_IMMORTAL | HF_STATIC};
static h_int small_ints[SMALL_INT_MAX - SMALL_INT_MIN + 1];

/* }====================================================================== */

/* ====================================================================== */
/* {  Errors                                                               */
/* ====================================================================== */


_Noreturn void heap_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    base_vpanic("heap", fmt, ap);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Arenas and pools                                                     */
/* ====================================================================== */

/* Every mapping: no huge pages, so a write after fork copies 4 KiB, not
 * 2 MiB.  A worker's own mappings are also marked MADV_DONTFORK (workers do
 * not fork): a VMA flag the inherited state does not have, so the kernel
 * never merges the two into one VMA and /proc/PID/smaps reports the state
 * apart from the worker's own memory. */
static void madvise_new(void *base, size_t size)
{
    if (H.epoch > 0) /* first: never, even for a moment, the state's flags */
        madvise(base, size, MADV_DONTFORK);
    madvise(base, size, MADV_NOHUGEPAGE);
}

static void *map_aligned(size_t size, size_t align)
{
    size_t span = size + align;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t base = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = base - (uintptr_t)p, tail = span - head - size;
    if (head)
        munmap(p, head);
    if (tail)
        munmap((char *)base + size, tail);
    madvise_new((void *)base, size);
    return (void *)base;
}

static void usable_push(int32_t i)
{
    arena *a = &H.arenas[i];
    a->prev_usable = -1;
    a->next_usable = H.usable;
    if (H.usable >= 0)
        H.arenas[H.usable].prev_usable = i;
    H.usable = i;
}

static void usable_remove(int32_t i)
{
    arena *a = &H.arenas[i];
    if (a->prev_usable >= 0)
        H.arenas[a->prev_usable].next_usable = a->next_usable;
    else
        H.usable = a->next_usable;
    if (a->next_usable >= 0)
        H.arenas[a->next_usable].prev_usable = a->prev_usable;
    a->next_usable = a->prev_usable = -1;
}

static int32_t arena_new(void)
{
    uint32_t slot = 0;
    while (slot < H.narenas && H.arenas[slot].base)
        slot++;
    if (slot == H.narenas) {
        if (H.narenas == H.arenas_cap) {
            H.arenas_cap = H.arenas_cap ? 2 * H.arenas_cap : 16;
            H.arenas = base_realloc(H.arenas, H.arenas_cap * sizeof(arena));
        }
        H.narenas++;
    }
    void *base = map_aligned(HEAP_ARENA_SIZE, HEAP_ARENA_SIZE);
    if (!base)
        heap_panic("out of memory (arena of %u bytes)", HEAP_ARENA_SIZE);
    H.arenas[slot] = (arena){.base = (uintptr_t)base,
                             .epoch = H.epoch,
                             .seal = H.seal,
                             .nfreepools = POOLS_PER_ARENA,
                             .next_usable = -1,
                             .prev_usable = -1};
    H.stats.arenas++;
    H.stats.mapped_bytes += HEAP_ARENA_SIZE;
    usable_push((int32_t)slot);
    return (int32_t)slot;
}

static void arena_release(int32_t i)
{
    arena *a = &H.arenas[i];
    if (a->seal == H.seal)
        usable_remove(i);
    UNPOISON((void *)a->base, HEAP_ARENA_SIZE);
    munmap((void *)a->base, HEAP_ARENA_SIZE);
    a->base = 0;
    H.stats.arenas--;
    H.stats.mapped_bytes -= HEAP_ARENA_SIZE;
}

static inline size_t class_size(unsigned sc) { return (size_t)(sc + 1) * HEAP_ALIGN; }
static inline unsigned size_class(size_t n) { return (unsigned)((n + HEAP_ALIGN - 1) / HEAP_ALIGN) - 1; }
static inline pool *pool_of(const void *p) { return (pool *)((uintptr_t)p & ~(uintptr_t)(HEAP_POOL_SIZE - 1)); }
static inline bool pool_full(const pool *p) { return !p->freeblock && p->nextoffset > p->maxnextoffset; }

static void ring_insert(pool **head, pool *p)
{
    if (!*head) {
        p->next = p->prev = p;
    } else {
        p->next = *head;
        p->prev = (*head)->prev;
        p->prev->next = p;
        (*head)->prev = p;
    }
    *head = p;
}

static void ring_remove(pool **head, pool *p)
{
    if (p->next == p) {
        *head = NULL;
    } else {
        p->prev->next = p->next;
        p->next->prev = p->prev;
        if (*head == p)
            *head = p->next;
    }
}

static void *freelink(void *b)
{
    UNPOISON(b, sizeof(void *));
    void *next = *(void **)b;
    POISON(b, sizeof(void *));
    return next;
}

static pool *pool_new(unsigned kind, unsigned sc)
{
    int32_t ai = H.usable >= 0 ? H.usable : arena_new();
    arena *a = &H.arenas[ai];
    pool *p;
    if (a->freepools) {
        p = a->freepools;
        a->freepools = p->next;
    } else {
        p = (pool *)(a->base + (uintptr_t)a->ncarved * HEAP_POOL_SIZE);
        a->ncarved++;
    }
    if (--a->nfreepools == 0)
        usable_remove(ai);
    size_t bs = class_size(sc);
    *p = (pool){.sclass = (uint16_t)sc,
                .kind = (uint8_t)kind,
                .arena = (uint32_t)ai,
                .nextoffset = (uint32_t)POOL_HDR,
                .maxnextoffset = (uint32_t)(HEAP_POOL_SIZE - bs)};
    POISON((char *)p + POOL_HDR, HEAP_POOL_SIZE - POOL_HDR);
    ring_insert(&H.usedpools[kind][sc], p);
    return p;
}

static void *small_alloc(unsigned kind, unsigned sc)
{
    pool *p = H.usedpools[kind][sc];
    if (!p)
        p = pool_new(kind, sc);
    void *b = p->freeblock;
    if (b) {
        p->freeblock = freelink(b);
    } else {
        b = (char *)p + p->nextoffset;
        p->nextoffset += (uint32_t)class_size(sc);
    }
    UNPOISON(b, class_size(sc));
    p->nused++;
    if (pool_full(p))
        ring_remove(&H.usedpools[kind][sc], p);
    H.stats.live_bytes += class_size(sc);
    return b;
}

static void small_free(void *b)
{
    pool *p = pool_of(b);
    arena *a = &H.arenas[p->arena];
    H.stats.live_bytes -= class_size(p->sclass);
    if (a->epoch != H.epoch) {
        /* Inherited: leave the block and its pool untouched. */
        H.stats.inherited_frees++;
        return;
    }
    bool was_full = pool_full(p);
    *(void **)b = p->freeblock;
    p->freeblock = b;
    POISON(b, class_size(p->sclass));
    if (a->seal != H.seal) {
        /* Sealed: the block is free, but no ring or list takes the pool or
         * the arena again; an arena emptied this way is unmapped. */
        if (--p->nused == 0) {
            p->next = a->freepools;
            a->freepools = p;
            if (++a->nfreepools == POOLS_PER_ARENA)
                arena_release((int32_t)p->arena);
        }
        return;
    }
    if (--p->nused > 0) {
        if (was_full)
            ring_insert(&H.usedpools[p->kind][p->sclass], p);
        return;
    }
    /* The pool is empty: hand it back to its arena. */
    if (!was_full)
        ring_remove(&H.usedpools[p->kind][p->sclass], p);
    int32_t ai = (int32_t)p->arena;
    p->next = a->freepools;
    a->freepools = p;
    if (a->nfreepools++ == 0)
        usable_push(ai);
    /* Keep one empty arena mapped so a loop that allocates and frees one
     * object at a pool's edge does not map and unmap every time. */
    if (a->nfreepools == POOLS_PER_ARENA && (a->next_usable >= 0 || a->prev_usable >= 0))
        arena_release(ai);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Large mappings                                                       */
/* ====================================================================== */

static size_t large_map_size(size_t n)
{
    return (n + sizeof(large_hdr) + 4095) & ~(size_t)4095;
}

/* Returns the block (after the header); *fresh says the pages are zero. */
static void *large_alloc(unsigned kind, size_t n, bool *fresh)
{
    size_t ms = large_map_size(n);
    void *base = NULL;
    *fresh = false;
    for (size_t i = 0; i < H.ncache; i++) {
        if (H.cache[i].map_size == ms) {
            base = (void *)H.cache[i].base;
            UNPOISON(base, ms);
            H.cache[i] = H.cache[--H.ncache];
            H.cache_bytes -= ms;
            break;
        }
    }
    if (!base) {
        base = mmap(NULL, ms, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED)
            heap_panic("out of memory (mapping of %zu bytes)", ms);
        madvise_new(base, ms);
        H.stats.mapped_bytes += ms;
        *fresh = true;
    }
    large_node *node = base_realloc(NULL, sizeof *node);
    *node = (large_node){.base = (uintptr_t)base, .map_size = ms, .epoch = H.epoch, .seal = H.seal, .kind = (uint8_t)kind};
    node->next = H.large;
    if (H.large)
        H.large->prev = node;
    H.large = node;
    large_hdr *h = base;
    h->node = node;
    h->map_size = ms;
    H.stats.large_maps++;
    H.stats.live_bytes += ms;
    return h + 1;
}

static void large_unmap(uintptr_t base, size_t ms)
{
    UNPOISON((void *)base, ms);
    munmap((void *)base, ms);
    H.stats.mapped_bytes -= ms;
}

static void large_free(void *b)
{
    large_hdr *h = (large_hdr *)b - 1;
    large_node *node = h->node;
    size_t ms = node->map_size;
    uintptr_t base = node->base;
    bool inherited = node->epoch != H.epoch;
    if (node->prev)
        node->prev->next = node->next;
    else
        H.large = node->next;
    if (node->next)
        node->next->prev = node->prev;
    free(node);
    H.stats.large_maps--;
    H.stats.live_bytes -= ms;
    if (inherited) {
        /* Our view of a mapping the master still has: drop it. */
        H.stats.inherited_frees++;
        large_unmap(base, ms);
        return;
    }
    if (ms <= H.config.large_cache_bytes) {
        while (H.ncache && (H.ncache == LARGE_CACHE_SLOTS || H.cache_bytes + ms > H.config.large_cache_bytes)) {
            cached_map old = H.cache[0];
            H.cache[0] = H.cache[--H.ncache];
            H.cache_bytes -= old.map_size;
            large_unmap(old.base, old.map_size);
        }
        POISON((void *)base, ms);
        H.cache[H.ncache++] = (cached_map){base, ms};
        H.cache_bytes += ms;
        return;
    }
    large_unmap(base, ms);
}

static void cache_drop(void)
{
    for (size_t i = 0; i < H.ncache; i++)
        large_unmap(H.cache[i].base, H.cache[i].map_size);
    H.ncache = 0;
    H.cache_bytes = 0;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Block allocation, raw and object                                     */
/* ====================================================================== */

static void *block_alloc(unsigned kind, size_t n, bool zero)
{
    void *b;
    if (n <= HEAP_SMALL_MAX) {
        b = small_alloc(kind, size_class(n ? n : 1));
        if (zero)
            memset(b, 0, n);
    } else {
        bool fresh;
        b = large_alloc(kind, n, &fresh);
        if (zero && !fresh)
            memset(b, 0, n);
    }
    if (H.stats.live_bytes > H.stats.peak_bytes)
        H.stats.peak_bytes = H.stats.live_bytes;
    return b;
}

static void block_free(void *b, size_t n)
{
    if (n <= HEAP_SMALL_MAX)
        small_free(b);
    else
        large_free(b);
}

void *heap_raw_alloc(size_t size) { return block_alloc(KIND_RAW, size, false); }

void heap_raw_free(void *p, size_t size)
{
    if (p)
        block_free(p, size);
}

/* Allocates an object of `size` bytes (header included) and fills in its
 * header with rc 1.  Containers get the collector link in front; they are
 * tracked by their constructor once fully built. */
static heap_obj *obj_alloc(heap_type t, size_t size)
{
    bool container = heap__is_container(t);
    gc__on_alloc(container);
    size_t n = size + (container ? sizeof(gc_link) : 0);
    char *b = block_alloc(container ? KIND_GC : KIND_OBJ, n, false);
    heap_obj *o = (heap_obj *)(b + (container ? sizeof(gc_link) : 0));
    *o = (heap_obj){.rc = 1, .type = (uint8_t)t};
    if (n <= HEAP_SMALL_MAX)
        o->sclass = (uint16_t)size_class(n);
    else {
        o->sclass = SCLASS_LARGE;
        o->flags |= HF_LARGE;
    }
    if (container) {
        GC_LINK(o)->next = GC_LINK(o)->prev = NULL;
    }
    H.stats.objects++;
    H.stats.objects_by_type[t]++;
    return o;
}

static void obj_free(heap_obj *o)
{
    bool container = heap__is_container(o->type);
    void *b = container ? (void *)GC_LINK(o) : (void *)o;
    H.stats.objects--;
    H.stats.objects_by_type[o->type]--;
    if (o->flags & HF_LARGE)
        large_free(b);
    else
        small_free(b);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Lifetime                                                             */
/* ====================================================================== */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

void heap_init(const heap_config *config)
{
    if (H.initialised)
        heap_destroy();
    memset(&H, 0, sizeof H);
    H.initialised = true;
    H.usable = -1;
    H.config.large_cache_bytes = 256u << 20;
    if (config)
        H.config = *config;
    H.hash_seed = 0x9e3779b97f4a7c15ULL;
    for (int64_t v = SMALL_INT_MIN; v <= SMALL_INT_MAX; v++) {
        h_int *s = &small_ints[v - SMALL_INT_MIN];
        *s = (h_int){.h = {.rc = 1, .type = HT_INT, .flags = HF_IMMORTAL | HF_STATIC}, .v = v};
    }
    gc__init();
    const char *stress = getenv("COWDAG_GC_STRESS");
    if (stress && strcmp(stress, "1") == 0)
        gc_set_stress(true);
}

void heap_destroy(void)
{
    if (!H.initialised)
        return;
    for (uint32_t i = 0; i < H.narenas; i++)
        if (H.arenas[i].base) {
            UNPOISON((void *)H.arenas[i].base, HEAP_ARENA_SIZE);
            munmap((void *)H.arenas[i].base, HEAP_ARENA_SIZE);
        }
    free(H.arenas);
    for (large_node *n = H.large, *next; n; n = next) {
        next = n->next;
        munmap((void *)n->base, n->map_size);
        free(n);
    }
    cache_drop();
    free(H.dealloc_stack);
    memset(&H, 0, sizeof H);
    gc__init();
}

uint32_t heap_seal(void)
{
    H.seal++;
    memset(H.usedpools, 0, sizeof H.usedpools);
    H.usable = -1;
    for (uint32_t i = 0; i < H.narenas; i++)
        H.arenas[i].next_usable = H.arenas[i].prev_usable = -1;
    cache_drop();
    return H.seal;
}

uint32_t heap__seal_of(const heap_obj *o)
{
    if (o->flags & HF_STATIC)
        return UINT32_MAX;
    const void *b = heap__is_container(o->type) ? (const void *)GC_LINK(o) : (const void *)o;
    if (o->flags & HF_LARGE)
        return ((const large_hdr *)b - 1)->node->seal;
    return H.arenas[pool_of(b)->arena].seal;
}

void heap_after_fork(void)
{
    H.epoch++;
    /* No pool or arena of the earlier epoch takes a new block. */
    memset(H.usedpools, 0, sizeof H.usedpools);
    H.usable = -1;
    for (uint32_t i = 0; i < H.narenas; i++)
        H.arenas[i].next_usable = H.arenas[i].prev_usable = -1;
    cache_drop();
    H.stats.peak_bytes = H.stats.live_bytes;
    H.stats.inherited_frees = 0;
    gc_reset_stats();
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Deallocation                                                         */
/* ====================================================================== */

static void dealloc_push(heap_obj *o)
{
    if (H.dealloc_len == H.dealloc_cap) {
        H.dealloc_cap = H.dealloc_cap ? 2 * H.dealloc_cap : 256;
        H.dealloc_stack = base_realloc(H.dealloc_stack, H.dealloc_cap * sizeof(heap_obj *));
    }
    H.dealloc_stack[H.dealloc_len++] = o;
}

static void release_children_push(heap_obj *child)
{
    if (!child || (child->flags & HF_IMMORTAL))
        return;
    if (--child->rc == 0)
        dealloc_push(child);
}

static int release_visit(heap_obj *child, void *arg)
{
    (void)arg;
    release_children_push(child);
    return 0;
}

static size_t dict_block_size(uint32_t log2size, uint32_t cap)
{
    return ((size_t)sizeof(int32_t) << log2size) + (size_t)cap * sizeof(dict_entry);
}

/* Frees one object whose count reached zero, after queueing the children
 * whose count it takes to zero. */
static void dealloc_one(heap_obj *o)
{
    if (o->flags & HF_TRACKED)
        gc__untrack(o);
    heap_traverse(o, release_visit, NULL);
    switch ((heap_type)o->type) {
    case HT_LIST: {
        h_list *l = (h_list *)o;
        heap_raw_free(l->items, l->cap * sizeof(heap_obj *));
        break;
    }
    case HT_DICT: {
        h_dict *d = (h_dict *)o;
        if (d->log2size)
            heap_raw_free(d->index, dict_block_size(d->log2size, d->cap));
        break;
    }
    case HT_ARRAY: {
        h_array *a = (h_array *)o;
        heap_raw_free(a->data, a->len * 8);
        break;
    }
    default:
        break;
    }
    obj_free(o);
}

/* Deallocation is iterative: children whose count drops to zero go on an
 * explicit stack, so freeing a list nested a million deep uses no C stack. */
void heap__dealloc(heap_obj *o)
{
    if (o->flags & HF_STATIC)
        heap_panic("reference count of a static object reached zero");
    if (H.deallocating) {
        dealloc_push(o); /* the running loop below frees it */
        return;
    }
    H.deallocating = true;
    dealloc_one(o);
    while (H.dealloc_len)
        dealloc_one(H.dealloc_stack[--H.dealloc_len]);
    H.deallocating = false;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Scalars and str                                                      */
/* ====================================================================== */

const char *heap_type_name(heap_type t)
{
    static const char *const names[HT__COUNT] = {"none", "bool", "int", "float", "str",
                                                 "list", "dict", "array", "table"};
    return (unsigned)t < HT__COUNT ? names[t] : "?";
}

#define EXPECT(o, t)                                                                    \
    do {                                                                                \
        if ((o)->type != (t))                                                           \
            heap_panic("%s: expected %s, got %s", __func__, heap_type_name(t),          \
                       heap_type_name((heap_type)(o)->type));                           \
    } while (0)

heap_obj *heap_none(void) { return &none_obj; }
heap_obj *heap_bool(bool v) { return v ? &true_obj : &false_obj; }
bool heap_bool_value(const heap_obj *o)
{
    EXPECT(o, HT_BOOL);
    return o == &true_obj;
}

heap_obj *heap_int_new(int64_t v)
{
    if (v >= SMALL_INT_MIN && v <= SMALL_INT_MAX)
        return &small_ints[v - SMALL_INT_MIN].h;
    h_int *o = (h_int *)obj_alloc(HT_INT, sizeof(h_int));
    o->v = v;
    return &o->h;
}

int64_t heap_int_value(const heap_obj *o)
{
    EXPECT(o, HT_INT);
    return ((const h_int *)o)->v;
}

heap_obj *heap_float_new(double v)
{
    h_float *o = (h_float *)obj_alloc(HT_FLOAT, sizeof(h_float));
    o->v = v;
    return &o->h;
}

double heap_float_value(const heap_obj *o)
{
    EXPECT(o, HT_FLOAT);
    return ((const h_float *)o)->v;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ H.hash_seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h);
}

static uint64_t hash_int(int64_t v) { return mix64((uint64_t)v ^ H.hash_seed); }

heap_obj *heap_str_new(const char *s, size_t len)
{
    h_str *o = (h_str *)obj_alloc(HT_STR, sizeof(h_str) + len + 1);
    o->len = len;
    if (len)
        memcpy(o->data, s, len);
    o->data[len] = '\0';
    o->hash = hash_bytes(s, len);
    return &o->h;
}

heap_obj *heap_str_from(const char *s) { return heap_str_new(s, strlen(s)); }

const char *heap_str_data(const heap_obj *o)
{
    EXPECT(o, HT_STR);
    return ((const h_str *)o)->data;
}

size_t heap_str_len(const heap_obj *o)
{
    EXPECT(o, HT_STR);
    return ((const h_str *)o)->len;
}

uint64_t heap_str_hash(const heap_obj *o)
{
    EXPECT(o, HT_STR);
    return ((const h_str *)o)->hash;
}

bool heap_str_eq(const heap_obj *o, const char *s, size_t len)
{
    const h_str *x = (const h_str *)o;
    return o->type == HT_STR && x->len == len && memcmp(x->data, s, len) == 0;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  list                                                                 */
/* ====================================================================== */

heap_obj *heap_list_new(size_t capacity)
{
    h_list *l = (h_list *)obj_alloc(HT_LIST, sizeof(h_list));
    l->len = 0;
    l->cap = capacity;
    l->items = capacity ? heap_raw_alloc(capacity * sizeof(heap_obj *)) : NULL;
    gc__track(&l->h);
    return &l->h;
}

size_t heap_list_len(const heap_obj *l)
{
    EXPECT(l, HT_LIST);
    return ((const h_list *)l)->len;
}

heap_obj *heap_list_get(const heap_obj *l, size_t i)
{
    EXPECT(l, HT_LIST);
    const h_list *x = (const h_list *)l;
    if (i >= x->len)
        heap_panic("list index %zu out of range (%zu)", i, x->len);
    return x->items[i];
}

void heap_list_append_new(heap_obj *l, heap_obj *item)
{
    EXPECT(l, HT_LIST);
    h_list *x = (h_list *)l;
    if (x->len == x->cap) {
        size_t ncap = x->cap < 4 ? 4 : x->cap + x->cap / 2;
        heap_obj **items = heap_raw_alloc(ncap * sizeof(heap_obj *));
        if (x->len)
            memcpy(items, x->items, x->len * sizeof(heap_obj *));
        heap_raw_free(x->items, x->cap * sizeof(heap_obj *));
        x->items = items;
        x->cap = ncap;
    }
    x->items[x->len++] = item;
}

void heap_list_append(heap_obj *l, heap_obj *item)
{
    heap_incref(item);
    heap_list_append_new(l, item);
}

void heap_list_set_new(heap_obj *l, size_t i, heap_obj *item)
{
    EXPECT(l, HT_LIST);
    h_list *x = (h_list *)l;
    if (i >= x->len)
        heap_panic("list index %zu out of range (%zu)", i, x->len);
    heap_obj *old = x->items[i];
    x->items[i] = item;
    heap_decref(old);
}

size_t heap_list_read_f64(const heap_obj *l, double *out, bool *all_ints)
{
    EXPECT(l, HT_LIST);
    const h_list *x = (const h_list *)l;
    bool ints = true;
    size_t k = 0;
    for (; k < x->len; k++) {
        heap_obj *e = x->items[k];
        heap_incref(e);
        if (e->type == HT_FLOAT) {
            out[k] = ((const h_float *)e)->v;
            ints = false;
        } else if (e->type == HT_INT) {
            out[k] = (double)((const h_int *)e)->v;
        } else {
            heap_decref(e);
            break;
        }
        heap_decref(e);
    }
    *all_ints = ints;
    return k;
}

void heap_list_prefetch_items(const heap_obj *l)
{
    const h_list *x = (const h_list *)l;
    if (l->type == HT_LIST && x->len)
        __builtin_prefetch(x->items);
}

void heap_list_prefetch_elems(const heap_obj *l)
{
    const h_list *x = (const h_list *)l;
    if (l->type != HT_LIST)
        return;
    for (size_t i = 0; i < x->len; i++)
        __builtin_prefetch(x->items[i]);
}

void heap_list_clear(heap_obj *l)
{
    EXPECT(l, HT_LIST);
    h_list *x = (h_list *)l;
    size_t n = x->len, cap = x->cap;
    heap_obj **items = x->items;
    /* Empty the list before dropping items, so code run by a dealloc sees
     * a consistent list. */
    x->len = 0;
    x->cap = 0;
    x->items = NULL;
    for (size_t i = 0; i < n; i++)
        heap_decref(items[i]);
    heap_raw_free(items, cap * sizeof(heap_obj *));
}

/* }====================================================================== */

/* ====================================================================== */
/* {  dict                                                                 */
/* ====================================================================== */

static uint64_t key_hash(const heap_obj *k)
{
    switch (k->type) {
    case HT_STR:
        return ((const h_str *)k)->hash;
    case HT_INT:
        return hash_int(((const h_int *)k)->v);
    default:
        heap_panic("dict keys are str or int, not %s", heap_type_name((heap_type)k->type));
    }
}

/* Key comparison against a probe: a heap key, or a C string / int64. */
typedef struct probe {
    uint64_t hash;
    const heap_obj *obj;
    const char *s;
    size_t len;
    int64_t i;
    uint8_t type;
} probe;

static bool key_matches(const heap_obj *k, const probe *p)
{
    if (k == p->obj)
        return true;
    if (k->type != p->type)
        return false;
    if (p->type == HT_INT)
        return ((const h_int *)k)->v == p->i;
    const h_str *s = (const h_str *)k;
    return s->len == p->len && memcmp(s->data, p->s, p->len) == 0;
}

static probe probe_of(const heap_obj *k)
{
    probe p = {.hash = key_hash(k), .obj = k, .type = k->type};
    if (k->type == HT_INT)
        p.i = ((const h_int *)k)->v;
    else {
        p.s = ((const h_str *)k)->data;
        p.len = ((const h_str *)k)->len;
    }
    return p;
}

/* Returns the index slot holding the key, or -1.  *free_slot (if given)
 * gets the first empty slot met (where an insertion goes). */
static int64_t dict_find(const h_dict *d, const probe *p, size_t *free_slot)
{
    if (!d->log2size) {
        if (free_slot)
            *free_slot = 0;
        return -1;
    }
    size_t mask = ((size_t)1 << d->log2size) - 1;
    size_t i = p->hash & mask;
    uint64_t perturb = p->hash;
    for (;;) {
        int32_t ix = d->index[i];
        if (ix == IX_EMPTY) {
            if (free_slot)
                *free_slot = i;
            return -1;
        }
        if (ix >= 0) {
            const dict_entry *e = &d->entries[ix];
            /* hash_int is a bijection, so among int keys an equal hash is an
             * equal key: no need to read the key object (a cache miss). */
            if (e->hash == p->hash && ((p->type == HT_INT && !d->mixed) || key_matches(e->key, p)))
                return (int64_t)i;
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
}

/* Rebuilds the table with room for at least `need` live entries, dropping
 * deleted ones. */
static void dict_resize(h_dict *d, uint32_t need)
{
    uint32_t log2 = 3;
    while (((1u << log2) * 2) / 3 < need)
        log2++;
    uint32_t cap = ((1u << log2) * 2) / 3;
    size_t bytes = dict_block_size(log2, cap);
    int32_t *index = heap_raw_alloc(bytes);
    dict_entry *entries = (dict_entry *)(index + ((size_t)1 << log2));
    memset(index, 0xff, sizeof(int32_t) << log2); /* IX_EMPTY */
    size_t mask = ((size_t)1 << log2) - 1;
    uint32_t n = 0;
    for (uint32_t j = 0; j < d->nentries; j++) {
        dict_entry *e = &d->entries[j];
        if (!e->key)
            continue;
        entries[n] = *e;
        size_t i = e->hash & mask;
        uint64_t perturb = e->hash;
        while (index[i] != IX_EMPTY) {
            perturb >>= 5;
            i = (i * 5 + perturb + 1) & mask;
        }
        index[i] = (int32_t)n++;
    }
    if (d->log2size)
        heap_raw_free(d->index, dict_block_size(d->log2size, d->cap));
    d->index = index;
    d->entries = entries;
    d->log2size = (uint8_t)log2;
    d->cap = cap;
    d->nentries = n;
}

heap_obj *heap_dict_new(void)
{
    h_dict *d = (h_dict *)obj_alloc(HT_DICT, sizeof(h_dict));
    d->used = d->nentries = d->cap = d->log2size = d->mixed = 0;
    d->index = NULL;
    d->entries = NULL;
    gc__track(&d->h);
    return &d->h;
}

size_t heap_dict_len(const heap_obj *d)
{
    EXPECT(d, HT_DICT);
    return ((const h_dict *)d)->used;
}

void heap_dict_set_new(heap_obj *dobj, heap_obj *key, heap_obj *value)
{
    EXPECT(dobj, HT_DICT);
    h_dict *d = (h_dict *)dobj;
    probe p = probe_of(key);
    size_t slot;
    int64_t at = dict_find(d, &p, &slot);
    if (at >= 0) {
        dict_entry *e = &d->entries[d->index[at]];
        heap_obj *old = e->value;
        e->value = value;
        heap_decref(old);
        return;
    }
    if (d->nentries == d->cap) {
        dict_resize(d, d->used + 1 > d->used * 2 ? d->used + 1 : d->used * 2);
        dict_find(d, &p, &slot);
    }
    heap_incref(key);
    if (key->type != HT_INT)
        d->mixed = 1;
    d->entries[d->nentries] = (dict_entry){.hash = p.hash, .key = key, .value = value};
    d->index[slot] = (int32_t)d->nentries++;
    d->used++;
}

void heap_dict_set(heap_obj *d, heap_obj *key, heap_obj *value)
{
    heap_incref(value);
    heap_dict_set_new(d, key, value);
}

void heap_dict_set_str_new(heap_obj *d, const char *key, heap_obj *value)
{
    heap_obj *k = heap_str_from(key);
    heap_dict_set_new(d, k, value);
    heap_decref(k);
}

static heap_obj *dict_lookup(const heap_obj *dobj, const probe *p)
{
    EXPECT(dobj, HT_DICT);
    const h_dict *d = (const h_dict *)dobj;
    int64_t at = dict_find(d, p, NULL);
    return at >= 0 ? d->entries[d->index[at]].value : NULL;
}

heap_obj *heap_dict_get(const heap_obj *d, const heap_obj *key)
{
    probe p = probe_of(key);
    return dict_lookup(d, &p);
}

heap_obj *heap_dict_get_str(const heap_obj *d, const char *key)
{
    size_t len = strlen(key);
    probe p = {.hash = hash_bytes(key, len), .s = key, .len = len, .type = HT_STR};
    return dict_lookup(d, &p);
}

heap_obj *heap_dict_get_int(const heap_obj *d, int64_t key)
{
    probe p = {.hash = hash_int(key), .i = key, .type = HT_INT};
    return dict_lookup(d, &p);
}

#define BATCH 64

void heap_dict_get_int_many(const heap_obj *dobj, const int64_t *keys, size_t n, heap_obj **out)
{
    EXPECT(dobj, HT_DICT);
    const h_dict *d = (const h_dict *)dobj;
    if (!d->log2size) {
        for (size_t j = 0; j < n; j++)
            out[j] = NULL;
        return;
    }
    size_t mask = ((size_t)1 << d->log2size) - 1;
    for (size_t base = 0; base < n; base += BATCH) {
        size_t m = n - base < BATCH ? n - base : BATCH;
        probe p[BATCH];
        for (size_t j = 0; j < m; j++) { /* pass 1: the first index slot */
            p[j] = (probe){.hash = hash_int(keys[base + j]), .i = keys[base + j], .type = HT_INT};
            __builtin_prefetch(&d->index[p[j].hash & mask]);
        }
        for (size_t j = 0; j < m; j++) { /* pass 2: its entry */
            int32_t ix = d->index[p[j].hash & mask];
            if (ix >= 0)
                __builtin_prefetch(&d->entries[ix]);
        }
        for (size_t j = 0; j < m; j++) { /* pass 3: the probe, and the value's header */
            heap_obj *v = dict_lookup(dobj, &p[j]);
            if (v)
                __builtin_prefetch(v);
            out[base + j] = v;
        }
    }
}

void heap_dicts_get_str_many(heap_obj *const *dicts, size_t n, const char *key, heap_obj **out)
{
    size_t len = strlen(key);
    probe p = {.hash = hash_bytes(key, len), .s = key, .len = len, .type = HT_STR};
    for (size_t base = 0; base < n; base += BATCH) {
        size_t m = n - base < BATCH ? n - base : BATCH;
        heap_obj *const *ds = dicts + base;
        for (size_t j = 0; j < m; j++) { /* pass 1: the index slot */
            const h_dict *d = (const h_dict *)ds[j];
            EXPECT(ds[j], HT_DICT);
            if (d->log2size)
                __builtin_prefetch(&d->index[p.hash & (((size_t)1 << d->log2size) - 1)]);
        }
        for (size_t j = 0; j < m; j++) { /* pass 2: its entry */
            const h_dict *d = (const h_dict *)ds[j];
            if (d->log2size) {
                int32_t ix = d->index[p.hash & (((size_t)1 << d->log2size) - 1)];
                if (ix >= 0)
                    __builtin_prefetch(&d->entries[ix]);
            }
        }
        for (size_t j = 0; j < m; j++) { /* pass 3: the probe, and the value's header */
            heap_obj *v = dict_lookup(ds[j], &p);
            if (v)
                __builtin_prefetch(v);
            out[base + j] = v;
        }
    }
}

bool heap_dict_del(heap_obj *dobj, const heap_obj *key)
{
    EXPECT(dobj, HT_DICT);
    h_dict *d = (h_dict *)dobj;
    probe p = probe_of(key);
    int64_t at = dict_find(d, &p, NULL);
    if (at < 0)
        return false;
    dict_entry *e = &d->entries[d->index[at]];
    heap_obj *k = e->key, *v = e->value;
    e->key = e->value = NULL;
    d->index[at] = IX_DUMMY;
    d->used--;
    heap_decref(k);
    heap_decref(v);
    return true;
}

bool heap_dict_next(const heap_obj *dobj, size_t *pos, heap_obj **key, heap_obj **value)
{
    EXPECT(dobj, HT_DICT);
    const h_dict *d = (const h_dict *)dobj;
    while (*pos < d->nentries) {
        const dict_entry *e = &d->entries[(*pos)++];
        if (e->key) {
            if (key)
                *key = e->key;
            if (value)
                *value = e->value;
            return true;
        }
    }
    return false;
}

void heap_dict_clear(heap_obj *dobj)
{
    EXPECT(dobj, HT_DICT);
    h_dict *d = (h_dict *)dobj;
    if (!d->log2size)
        return;
    int32_t *index = d->index;
    dict_entry *entries = d->entries;
    uint32_t n = d->nentries, log2 = d->log2size, cap = d->cap;
    d->used = d->nentries = d->cap = d->log2size = 0;
    d->mixed = 0;
    d->index = NULL;
    d->entries = NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (entries[i].key) {
            heap_decref(entries[i].key);
            heap_decref(entries[i].value);
        }
    }
    heap_raw_free(index, dict_block_size(log2, cap));
}

/* }====================================================================== */

/* ====================================================================== */
/* {  array and table                                                      */
/* ====================================================================== */

static heap_obj *array_new(heap_dtype dtype, size_t len, bool zero)
{
    if (len > SIZE_MAX / 16)
        heap_panic("array of %zu elements", len);
    h_array *a = (h_array *)obj_alloc(HT_ARRAY, sizeof(h_array));
    a->dtype = dtype;
    a->len = len;
    a->data = len ? block_alloc(KIND_RAW, len * 8, zero) : NULL;
    return &a->h;
}

heap_obj *heap_array_new(heap_dtype dtype, size_t len) { return array_new(dtype, len, true); }
heap_obj *heap_array_new_uninit(heap_dtype dtype, size_t len) { return array_new(dtype, len, false); }

heap_dtype heap_array_dtype(const heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    return (heap_dtype)((const h_array *)a)->dtype;
}

size_t heap_array_len(const heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    return ((const h_array *)a)->len;
}

double *heap_array_f64(heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    h_array *x = (h_array *)a;
    return x->dtype == HD_F64 ? x->data : NULL;
}

int64_t *heap_array_i64(heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    h_array *x = (h_array *)a;
    return x->dtype == HD_I64 ? x->data : NULL;
}

heap_obj *heap_table_new(size_t nrows)
{
    /* The two lists first: the table is tracked only once complete. */
    heap_obj *names = heap_list_new(0);
    heap_obj *cols = heap_list_new(0);
    h_table *t = (h_table *)obj_alloc(HT_TABLE, sizeof(h_table));
    t->nrows = nrows;
    t->names = names;
    t->cols = cols;
    gc__track(&t->h);
    return &t->h;
}

size_t heap_table_nrows(const heap_obj *t)
{
    EXPECT(t, HT_TABLE);
    return ((const h_table *)t)->nrows;
}

size_t heap_table_ncols(const heap_obj *t)
{
    EXPECT(t, HT_TABLE);
    const h_table *x = (const h_table *)t;
    return x->names ? heap_list_len(x->names) : 0;
}

static size_t column_len(const heap_obj *c)
{
    switch (c->type) {
    case HT_ARRAY:
        return heap_array_len(c);
    case HT_LIST:
        return heap_list_len(c);
    default:
        heap_panic("a table column is an array or a list, not %s", heap_type_name((heap_type)c->type));
    }
}

void heap_table_add_column(heap_obj *t, heap_obj *name, heap_obj *column)
{
    EXPECT(t, HT_TABLE);
    EXPECT(name, HT_STR);
    h_table *x = (h_table *)t;
    if (!x->names)
        heap_panic("table was cleared");
    if (column_len(column) != x->nrows)
        heap_panic("column length %zu, table has %zu rows", column_len(column), x->nrows);
    heap_list_append(x->names, name);
    heap_list_append(x->cols, column);
}

heap_obj *heap_table_column(const heap_obj *t, const char *name)
{
    size_t n = heap_table_ncols(t), len = strlen(name);
    const h_table *x = (const h_table *)t;
    for (size_t i = 0; i < n; i++)
        if (heap_str_eq(heap_list_get(x->names, i), name, len))
            return heap_list_get(x->cols, i);
    return NULL;
}

heap_obj *heap_table_column_at(const heap_obj *t, size_t i)
{
    EXPECT(t, HT_TABLE);
    return heap_list_get(((const h_table *)t)->cols, i);
}

heap_obj *heap_table_name_at(const heap_obj *t, size_t i)
{
    EXPECT(t, HT_TABLE);
    return heap_list_get(((const h_table *)t)->names, i);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Traversal, clearing and walking                                      */
/* ====================================================================== */

int heap_traverse(heap_obj *o, heap_visit_fn visit, void *arg)
{
    int r;
    switch ((heap_type)o->type) {
    case HT_LIST: {
        h_list *l = (h_list *)o;
        for (size_t i = 0; i < l->len; i++)
            if ((r = visit(l->items[i], arg)))
                return r;
        return 0;
    }
    case HT_DICT: {
        h_dict *d = (h_dict *)o;
        for (uint32_t i = 0; i < d->nentries; i++) {
            dict_entry *e = &d->entries[i];
            if (!e->key)
                continue;
            if ((r = visit(e->key, arg)) || (r = visit(e->value, arg)))
                return r;
        }
        return 0;
    }
    case HT_TABLE: {
        h_table *t = (h_table *)o;
        if (t->names && (r = visit(t->names, arg)))
            return r;
        if (t->cols && (r = visit(t->cols, arg)))
            return r;
        return 0;
    }
    default:
        return 0;
    }
}

bool heap__inherited(const heap_obj *o)
{
    const void *b = heap__is_container(o->type) ? (const void *)GC_LINK(o) : (const void *)o;
    if (o->flags & HF_LARGE)
        return ((const large_hdr *)b - 1)->node->epoch != H.epoch;
    return H.arenas[pool_of(b)->arena].epoch != H.epoch;
}

void heap__clear(heap_obj *o)
{
    switch ((heap_type)o->type) {
    case HT_LIST:
        heap_list_clear(o);
        break;
    case HT_DICT:
        heap_dict_clear(o);
        break;
    case HT_TABLE: {
        h_table *t = (h_table *)o;
        heap_obj *names = t->names, *cols = t->cols;
        t->names = t->cols = NULL;
        heap_xdecref(names);
        heap_xdecref(cols);
        break;
    }
    default:
        break;
    }
}

/* Visits the live objects of one pool: blocks below nextoffset that are
 * not on the free list and whose count is not zero (a block freed in an
 * inherited pool keeps its place with rc 0). */
static void walk_pool(pool *p, heap_walk_fn fn, void *arg)
{
    size_t bs = class_size(p->sclass);
    size_t nblocks = (p->nextoffset - POOL_HDR) / bs;
    uint8_t isfree[HEAP_POOL_SIZE / HEAP_ALIGN / 8] = {0};
    for (char *f = p->freeblock; f; f = freelink(f)) {
        size_t i = (size_t)(f - ((char *)p + POOL_HDR)) / bs;
        isfree[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    for (size_t i = 0; i < nblocks; i++) {
        if (isfree[i / 8] & (1u << (i % 8)))
            continue;
        char *b = (char *)p + POOL_HDR + i * bs;
        heap_obj *o = (heap_obj *)(b + (p->kind == KIND_GC ? sizeof(gc_link) : 0));
        if (o->rc != 0)
            fn(o, arg);
    }
}

void heap_walk(heap_walk_fn fn, void *arg)
{
    for (uint32_t ai = 0; ai < H.narenas; ai++) {
        arena *a = &H.arenas[ai];
        if (!a->base)
            continue;
        for (uint32_t pi = 0; pi < a->ncarved; pi++) {
            pool *p = (pool *)(a->base + (uintptr_t)pi * HEAP_POOL_SIZE);
            if (p->nused && p->kind != KIND_RAW)
                walk_pool(p, fn, arg);
        }
    }
    for (large_node *n = H.large; n; n = n->next) {
        if (n->kind == KIND_RAW)
            continue;
        char *b = (char *)(n->base + sizeof(large_hdr));
        heap_obj *o = (heap_obj *)(b + (n->kind == KIND_GC ? sizeof(gc_link) : 0));
        if (o->rc != 0)
            fn(o, arg);
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Regions and figures                                                  */
/* ====================================================================== */

static size_t regions(heap_region *out, size_t max, bool inherited_only)
{
    size_t n = 0;
    for (uint32_t ai = 0; ai < H.narenas; ai++) {
        arena *a = &H.arenas[ai];
        if (!a->base || (inherited_only && a->epoch == H.epoch))
            continue;
        if (n < max)
            out[n] = (heap_region){a->base, a->base + HEAP_ARENA_SIZE};
        n++;
    }
    for (large_node *l = H.large; l; l = l->next) {
        if (inherited_only && l->epoch == H.epoch)
            continue;
        if (n < max)
            out[n] = (heap_region){l->base, l->base + l->map_size};
        n++;
    }
    return n;
}

size_t heap_inherited_regions(heap_region *out, size_t max) { return regions(out, max, true); }
size_t heap_all_regions(heap_region *out, size_t max) { return regions(out, max, false); }

void heap_get_stats(heap_stats *out)
{
    *out = H.stats;
    out->epoch = H.epoch;
    out->inherited_arenas = 0;
    out->inherited_large_maps = 0;
    for (uint32_t ai = 0; ai < H.narenas; ai++)
        if (H.arenas[ai].base && H.arenas[ai].epoch != H.epoch)
            out->inherited_arenas++;
    for (large_node *l = H.large; l; l = l->next)
        if (l->epoch != H.epoch)
            out->inherited_large_maps++;
}

void heap_reset_peak(void) { H.stats.peak_bytes = H.stats.live_bytes; }
uint64_t heap_live_bytes(void) { return H.stats.live_bytes; }
uint64_t heap_peak_bytes(void) { return H.stats.peak_bytes; }

/* }====================================================================== */
