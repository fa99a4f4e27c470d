/* alloc.c: the heap's allocator -- arenas carved into size-classed pools,
 * large blocks in mappings of their own, the epochs and seals that keep
 * inherited memory untouched, and the regions and figures the memory
 * observers read.  The layout and the inherited-memory rules are described
 * at the top of heap/heap.h; the structures are in heap/heap_internal.h. */
#include "heap/heap_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"
#include "heap/gc.h"
#include "heap/gc_internal.h"

struct heap_state heap__state;

/* ====================================================================== */
/* {  Arenas and pools                                                    */
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

void heap__small_free(void *b)
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
/* {  Large mappings                                                      */
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

/* Takes a live mapping's node off the list and frees it (the mapping
 * itself is the caller's to unmap or cache). */
static void large_forget(large_node *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        H.large = node->next;
    if (node->next)
        node->next->prev = node->prev;
    H.stats.large_maps--;
    H.stats.live_bytes -= node->map_size;
    free(node);
}

void heap__large_free(void *b)
{
    large_hdr *h = (large_hdr *)b - 1;
    large_node *node = h->node;
    size_t ms = node->map_size;
    uintptr_t base = node->base;
    bool inherited = node->epoch != H.epoch;
    large_forget(node);
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
/* {  Blocks, and raw storage                                             */
/* ====================================================================== */

void *heap__block_alloc(unsigned kind, size_t n, bool zero)
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
        heap__small_free(b);
    else
        heap__large_free(b);
}

void *heap_raw_alloc(size_t size) { return heap__block_alloc(KIND_RAW, size, false); }

void heap_raw_free(void *p, size_t size)
{
    if (p)
        block_free(p, size);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Epochs and seals                                                    */
/* ====================================================================== */

/* No pool or arena made so far takes a new block: every ring and list
 * that offers them is emptied, and cached mappings are unmapped. */
static void close_existing(void)
{
    memset(H.usedpools, 0, sizeof H.usedpools);
    H.usable = -1;
    for (uint32_t i = 0; i < H.narenas; i++)
        H.arenas[i].next_usable = H.arenas[i].prev_usable = -1;
    cache_drop();
}

uint32_t heap_seal(void)
{
    H.seal++;
    close_existing();
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
    close_existing(); /* no pool or arena of the earlier epoch takes a new block */
    H.stats.peak_bytes = H.stats.live_bytes;
    H.stats.inherited_frees = 0;
    gc_reset_stats();
}

/* Live bytes of an arena, from its pool headers (reads only). */
static uint64_t arena_live_bytes(const arena *a)
{
    uint64_t bytes = 0;
    for (uint32_t pi = 0; pi < a->ncarved; pi++) {
        const pool *p = (const pool *)(a->base + (uintptr_t)pi * HEAP_POOL_SIZE);
        if (p->nused)
            bytes += (uint64_t)p->nused * class_size(p->sclass);
    }
    return bytes;
}

void heap_trim(void) { cache_drop(); }

static void walk_pool(pool *p, heap_walk_fn fn, void *arg);

/* An object given up with its memory leaves the live counts (read only). */
static void uncount(heap_obj *o, void *arg)
{
    (void)arg;
    H.stats.objects--;
    H.stats.objects_by_type[o->type]--;
}

/* The object of a large mapping, or NULL for raw memory. */
static heap_obj *large_obj(const large_node *n)
{
    if (n->kind == KIND_RAW)
        return NULL;
    char *b = (char *)(n->base + sizeof(large_hdr));
    return (heap_obj *)(b + (n->kind == KIND_GC ? sizeof(gc_link) : 0));
}

uint64_t heap_release_sealed_before(uint32_t seal)
{
    gc__forget_sealed_before(seal); /* first: it reads the objects */
    uint64_t unmapped = 0;
    for (uint32_t i = 0; i < H.narenas; i++) {
        arena *a = &H.arenas[i];
        if (!a->base || a->seal >= seal || a->epoch == H.epoch)
            continue;
        uint64_t live = arena_live_bytes(a);
        H.stats.live_bytes -= live < H.stats.live_bytes ? live : H.stats.live_bytes;
        for (uint32_t pi = 0; pi < a->ncarved; pi++) { /* the objects counted alive go too */
            pool *p = (pool *)(a->base + (uintptr_t)pi * HEAP_POOL_SIZE);
            if (p->nused && p->kind != KIND_RAW)
                walk_pool(p, uncount, NULL);
        }
        arena_release((int32_t)i);
        unmapped += HEAP_ARENA_SIZE;
    }
    for (large_node *n = H.large, *next; n; n = next) {
        next = n->next;
        if (n->seal >= seal || n->epoch == H.epoch)
            continue;
        heap_obj *o = large_obj(n);
        if (o && o->rc != 0)
            uncount(o, NULL);
        uintptr_t base = n->base;
        size_t ms = n->map_size;
        large_forget(n);
        large_unmap(base, ms);
        unmapped += ms;
    }
    if (H.stats.peak_bytes > H.stats.live_bytes)
        H.stats.peak_bytes = H.stats.live_bytes;
    return unmapped;
}

bool heap__inherited(const heap_obj *o)
{
    const void *b = heap__is_container(o->type) ? (const void *)GC_LINK(o) : (const void *)o;
    if (o->flags & HF_LARGE)
        return ((const large_hdr *)b - 1)->node->epoch != H.epoch;
    return H.arenas[pool_of(b)->arena].epoch != H.epoch;
}

void heap__alloc_release(void)
{
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
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Walking the live objects                                            */
/* ====================================================================== */

/* Visits the live objects of one pool: blocks below nextoffset that are
 * not on the free list and whose count is not zero (a block freed in an
 * inherited pool keeps its place with rc 0). */
/* The blocks of a pool handed out at least once (those below nextoffset),
 * with a bit set in isfree for each on the free list. */
typedef uint8_t free_map[HEAP_POOL_SIZE / HEAP_ALIGN / 8];

static size_t pool_free_map(const pool *p, free_map isfree)
{
    size_t bs = class_size(p->sclass);
    memset(isfree, 0, sizeof(free_map));
    for (char *f = p->freeblock; f; f = freelink(f)) {
        size_t i = (size_t)(f - ((const char *)p + POOL_HDR)) / bs;
        isfree[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    return (p->nextoffset - POOL_HDR) / bs;
}

static void walk_pool(pool *p, heap_walk_fn fn, void *arg)
{
    size_t bs = class_size(p->sclass);
    free_map isfree;
    size_t nblocks = pool_free_map(p, isfree);
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
        heap_obj *o = large_obj(n);
        if (o && o->rc != 0)
            fn(o, arg);
    }
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Regions and figures                                                 */
/* ====================================================================== */

/* The page-type bit of a block's contents; reads the type byte only, the
 * one field of a live header no one writes after the object is made. */
static uint16_t block_type_bit(const char *b, unsigned kind)
{
    if (kind == KIND_RAW)
        return HEAP_PAGE_STORAGE;
    const heap_obj *o = (const heap_obj *)(b + (kind == KIND_GC ? sizeof(gc_link) : 0));
    uint8_t t = __atomic_load_n(&o->type, __ATOMIC_RELAXED);
    return t < HT__COUNT ? (uint16_t)(1u << t) : 0;
}

static size_t regions(heap_region *out, size_t max, bool inherited_only)
{
    size_t n = 0;
    for (uint32_t ai = 0; ai < H.narenas; ai++) {
        arena *a = &H.arenas[ai];
        if (!a->base || (inherited_only && a->epoch == H.epoch))
            continue;
        if (n < max)
            out[n] = (heap_region){.start = a->base, .end = a->base + HEAP_ARENA_SIZE, .pools = a->ncarved};
        n++;
    }
    for (large_node *l = H.large; l; l = l->next) {
        if (inherited_only && l->epoch == H.epoch)
            continue;
        if (n < max)
            out[n] = (heap_region){.start = l->base,
                                   .end = l->base + l->map_size,
                                   .large = true,
                                   .large_types = block_type_bit((char *)(l->base + sizeof(large_hdr)), l->kind)};
        n++;
    }
    return n;
}

/* One pool's pages: every block handed out and not on the free list marks
 * the pages it lies on with its type. */
_Static_assert(HEAP_POOL_SIZE % HEAP_PAGE_SIZE == 0 && NCLASSES < HEAP_REGION_NONE, "page info");

static void pool_pages(const pool *p, heap_page_info *out)
{
    enum { PAGES = HEAP_POOL_SIZE / HEAP_PAGE_SIZE };
    for (int i = 0; i < PAGES; i++)
        out[i] = (heap_page_info){.region = (uint8_t)p->sclass};
    if (p->nused == 0)
        return;
    size_t bs = class_size(p->sclass);
    free_map isfree;
    size_t nblocks = pool_free_map(p, isfree);
    for (size_t i = 0; i < nblocks; i++) {
        if (isfree[i / 8] & (1u << (i % 8)))
            continue;
        size_t off = POOL_HDR + i * bs;
        uint16_t bit = block_type_bit((const char *)p + off, p->kind);
        out[off / HEAP_PAGE_SIZE].types |= bit;
        out[(off + bs - 1) / HEAP_PAGE_SIZE].types |= bit;
    }
}

void heap_region_pages(const heap_region *r, heap_page_info *out)
{
    size_t npages = (r->end - r->start) / HEAP_PAGE_SIZE;
    if (r->large) {
        for (size_t i = 0; i < npages; i++)
            out[i] = (heap_page_info){.types = r->large_types, .region = HEAP_REGION_LARGE};
        return;
    }
    for (size_t i = 0; i < npages; i++)
        out[i] = (heap_page_info){.region = HEAP_REGION_NONE};
    for (uint32_t pi = 0; pi < r->pools && (pi + 1) * (size_t)HEAP_POOL_SIZE <= r->end - r->start; pi++)
        pool_pages((const pool *)(r->start + (uintptr_t)pi * HEAP_POOL_SIZE),
                   out + (size_t)pi * (HEAP_POOL_SIZE / HEAP_PAGE_SIZE));
}

const char *heap_page_type_name(unsigned b)
{
    return b == HT__COUNT ? "storage" : heap_type_name((heap_type)b);
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
