/* heap: cowdag's managed object heap, its allocator and reference counts.
 * The object layout and the allocator are described below; the collector
 * that finds cycles is in heap/gc.h (algorithm at the top of heap/gc.c).
 *
 * Object layout.  Every object starts with a 16-byte header holding its
 * reference count, so taking or dropping a reference writes the object's own
 * page, as in CPython.  Containers (list, dict, table) are tracked by the
 * collector and carry its link -- two list pointers -- in the 16 bytes just
 * before the header, so the collector's writes land on the object's own page
 * too.  The working count the collector uses (gc_refs) is in the header.
 *
 *     tracked:    [ gc next | gc prev ][ rc | type flags class | gc_refs ][ body ]
 *     untracked:                       [ rc | type flags class | gc_refs ][ body ]
 *                                      ^ heap_obj *
 *
 * Allocator.  Blocks up to HEAP_SMALL_MAX bytes come from size-classed pools
 * (16-byte classes) carved out of 1 MiB mmap'ed arenas; larger blocks get a
 * mapping of their own.  Arenas and large mappings are madvise'd
 * MADV_NOHUGEPAGE, so a write after fork copies one 4 KiB page.  Each arena
 * and large mapping records the fork epoch it was made in: after
 * heap_after_fork() the ones from an earlier epoch are "inherited", and the
 * worker never allocates into them again (frees of inherited blocks are
 * counted and the memory left as is, so nothing writes inherited pages but
 * reference counts and, by mode, the collector).
 *
 * Ownership.  Every function that returns an object says whether the caller
 * gets a new reference (it must heap_decref it) or a borrowed one (valid
 * while the container holds it).  Functions that take an object either borrow
 * it (they heap_incref what they keep) or, where the name ends in _new, steal
 * the caller's reference, as jansson does.
 *
 * Errors.  Allocation failure aborts with a message (heap_panic); there is no
 * NULL-returning object constructor.  Misuse of the API (a wrong type where
 * a list is required) is a bug and panics; bad user input is checked by the
 * callers before it reaches here.
 *
 * The heap is one per process, like an interpreter's: heap_init() once,
 * heap_destroy() to unmap everything (tests).
 */
#ifndef COWDAG_HEAP_H
#define COWDAG_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAP_OK 0
#define HEAP_ERR (-1)

#define HEAP_ARENA_SIZE (1u << 20) /* 1 MiB, aligned to its size */
#define HEAP_POOL_SIZE (1u << 14)  /* 16 KiB, aligned to its size */
#define HEAP_ALIGN 16u
#define HEAP_SMALL_MAX 512u /* larger blocks get their own mapping */

typedef enum heap_type {
    HT_NONE,
    HT_BOOL,
    HT_INT,
    HT_FLOAT,
    HT_STR,
    HT_LIST,
    HT_DICT,
    HT_ARRAY,
    HT_TABLE,
    HT__COUNT
} heap_type;

/* Header flag bits (heap_obj.flags).
 *   TRACKED     on one of the collector's generation lists.
 *   IMMORTAL    heap_incref/heap_decref never write the object; never freed.
 *   COLLECTING  member of the generation being collected (collector only).
 *   UNREACHABLE tentatively unreachable during move_unreachable (ditto).
 *   LARGE       lives in a mapping of its own, not in a pool.
 *   STATIC      a statically allocated singleton (none, bools, small ints). */
enum {
    HF_TRACKED = 1u << 0,
    HF_IMMORTAL = 1u << 1,
    HF_COLLECTING = 1u << 2,
    HF_UNREACHABLE = 1u << 3,
    HF_LARGE = 1u << 4,
    HF_STATIC = 1u << 5,
};

typedef struct heap_obj {
    int64_t rc;      /* reference count */
    uint8_t type;    /* heap_type */
    uint8_t flags;   /* HF_* */
    uint16_t sclass; /* size class of the block (pools only) */
    int32_t gc_refs; /* the collector's working count, meaningful mid-collection */
} heap_obj;

typedef enum heap_dtype { HD_F64, HD_I64 } heap_dtype;

/* --- lifetime ----------------------------------------------------------- */

typedef struct heap_config {
    size_t large_cache_bytes; /* freed large mappings kept for reuse (0: none) */
} heap_config;

/* Initialises the process's heap and its collector (tuned, 700/10/10).
 * NULL config takes the defaults.  Reads COWDAG_GC_STRESS from the
 * environment: when set to 1, every object allocation runs a full
 * collection first (see gc.h). */
void heap_init(const heap_config *config);

/* Unmaps every arena and mapping.  Every object becomes invalid. */
void heap_destroy(void);

/* Called in a forked child: starts a new epoch.  Arenas and large mappings
 * made before it are inherited from then on and never allocated from again;
 * the free-mapping cache is dropped; per-process statistics restart. */
void heap_after_fork(void);

/* Called in a master before it loads a new generation of state: memory
 * mapped so far takes no new blocks (frees still count, and an arena
 * emptied by them is unmapped), so the new state lands in fresh memory and
 * the old can later be told apart from it (gc_mortalize_sealed).  Returns
 * the new seal number: memory mapped from now on carries it. */
uint32_t heap_seal(void);

/* Called in a forked worker whose generation's memory carries seals from
 * `seal` on: gives up every inherited arena and large mapping of an
 * earlier seal -- the older generations' state, which the worker never
 * reads -- after taking their objects off the collector's lists, so a
 * reload does not leave each new worker holding the old state once the
 * master has freed it.  Nothing is written to the memory given up.
 * Returns the bytes unmapped. */
uint64_t heap_release_sealed_before(uint32_t seal);

/* Unmaps the cache of freed large mappings (kept for reuse by the next
 * allocations of their size): a master calls it once it has freed an old
 * generation, whose mappings would otherwise stay resident in it alone. */
void heap_trim(void);

/* --- reference counts --------------------------------------------------- */

void heap__dealloc(heap_obj *o);

static inline void heap_incref(heap_obj *o)
{
    if (!(o->flags & HF_IMMORTAL))
        o->rc++;
}

static inline void heap_decref(heap_obj *o)
{
    if (o->flags & HF_IMMORTAL)
        return;
    if (--o->rc == 0)
        heap__dealloc(o);
}

static inline void heap_xdecref(heap_obj *o)
{
    if (o)
        heap_decref(o);
}

static inline heap_type heap_type_of(const heap_obj *o) { return (heap_type)o->type; }

const char *heap_type_name(heap_type t);

/* --- scalars ------------------------------------------------------------ */

heap_obj *heap_none(void);            /* new reference (immortal singleton) */
heap_obj *heap_bool(bool v);          /* new reference (immortal singleton) */
heap_obj *heap_int_new(int64_t v);    /* new reference; -5..256 are shared immortals */
heap_obj *heap_float_new(double v);   /* new reference */
int64_t heap_int_value(const heap_obj *o);
double heap_float_value(const heap_obj *o);
bool heap_bool_value(const heap_obj *o);

/* --- str: immutable bytes, NUL-terminated, hash computed at creation ----- */

heap_obj *heap_str_new(const char *s, size_t len); /* new reference */
heap_obj *heap_str_from(const char *s);            /* new reference */
const char *heap_str_data(const heap_obj *o);      /* valid while o lives */
size_t heap_str_len(const heap_obj *o);
uint64_t heap_str_hash(const heap_obj *o);
bool heap_str_eq(const heap_obj *o, const char *s, size_t len);

/* --- list --------------------------------------------------------------- */

heap_obj *heap_list_new(size_t capacity);             /* new reference */
size_t heap_list_len(const heap_obj *l);
heap_obj *heap_list_get(const heap_obj *l, size_t i); /* borrowed */
/* The items themselves, heap_list_len of them (borrowed; valid until the
 * list changes): for loops over every item, without a call and a bounds
 * check each. */
heap_obj *const *heap_list_items(const heap_obj *l);
void heap_list_append(heap_obj *l, heap_obj *item);   /* borrows item */
void heap_list_append_new(heap_obj *l, heap_obj *item); /* steals item */
void heap_list_set_new(heap_obj *l, size_t i, heap_obj *item); /* steals item */
void heap_list_clear(heap_obj *l);
/* Reads a list of numbers into out[0 .. len) as float64, as an interpreter
 * iterating the list would: each item is referenced while it is read (a
 * write to its header, unless it is immortal).  Returns how many items were
 * numbers before the first that is not (len when all are); *all_ints says
 * whether those were all ints. */
size_t heap_list_read_f64(const heap_obj *l, double *out, bool *all_ints);
/* Prefetch hints for a pass over many lists: their item arrays, or the
 * headers of their items (after the arrays are in cache). */
void heap_list_prefetch_items(const heap_obj *l);
void heap_list_prefetch_elems(const heap_obj *l);

/* --- dict: insertion-ordered, keys are str or int ----------------------- */

heap_obj *heap_dict_new(void); /* new reference */
size_t heap_dict_len(const heap_obj *d);
/* Borrow key and value (both are incref'ed when stored). */
void heap_dict_set(heap_obj *d, heap_obj *key, heap_obj *value);
/* Steal value; borrow key. */
void heap_dict_set_new(heap_obj *d, heap_obj *key, heap_obj *value);
/* Steals value; the key is a new str made from s. */
void heap_dict_set_str_new(heap_obj *d, const char *key, heap_obj *value);
heap_obj *heap_dict_get(const heap_obj *d, const heap_obj *key);    /* borrowed, NULL if absent */
heap_obj *heap_dict_get_str(const heap_obj *d, const char *key);    /* borrowed, NULL if absent */
heap_obj *heap_dict_get_int(const heap_obj *d, int64_t key);        /* borrowed, NULL if absent */
bool heap_dict_del(heap_obj *d, const heap_obj *key);               /* true if it was there */
/* Batched look-ups, for ops that fetch many records: the probes are
 * independent, so each pass prefetches what the next one reads (index
 * slots, then entries, then the values' headers) for every key before
 * reading any, and the cache misses overlap instead of queueing.
 * out[j] gets a borrowed value, or NULL if absent. */
void heap_dict_get_int_many(const heap_obj *d, const int64_t *keys, size_t n, heap_obj **out);
/* The same key in many dicts (dicts[j] must be dicts). */
void heap_dicts_get_str_many(heap_obj *const *dicts, size_t n, const char *key, heap_obj **out);
/* Iteration in insertion order: start with *pos = 0; borrowed key/value. */
bool heap_dict_next(const heap_obj *d, size_t *pos, heap_obj **key, heap_obj **value);
void heap_dict_clear(heap_obj *d);

/* --- array: contiguous float64 or int64 --------------------------------- */

heap_obj *heap_array_new(heap_dtype dtype, size_t len); /* new reference, zeroed */
/* New reference, contents undefined: for results that write every element
 * (a reused large buffer then costs neither page faults nor a memset). */
heap_obj *heap_array_new_uninit(heap_dtype dtype, size_t len);
heap_dtype heap_array_dtype(const heap_obj *a);
size_t heap_array_len(const heap_obj *a);
double *heap_array_f64(heap_obj *a);   /* NULL unless HD_F64 */
int64_t *heap_array_i64(heap_obj *a);  /* NULL unless HD_I64 */

/* --- table: named columns of equal length (arrays or lists of str) ------ */

heap_obj *heap_table_new(size_t nrows); /* new reference */
size_t heap_table_nrows(const heap_obj *t);
size_t heap_table_ncols(const heap_obj *t);
/* Borrows name and column; the column's length must equal nrows. */
void heap_table_add_column(heap_obj *t, heap_obj *name, heap_obj *column);
heap_obj *heap_table_column(const heap_obj *t, const char *name); /* borrowed or NULL */
heap_obj *heap_table_column_at(const heap_obj *t, size_t i);      /* borrowed */
heap_obj *heap_table_name_at(const heap_obj *t, size_t i);        /* borrowed */

/* --- traversal ---------------------------------------------------------- */

/* Calls visit(child, arg) for each object o refers to directly (every type;
 * scalars have none).  Stops and returns the first nonzero visit result. */
typedef int (*heap_visit_fn)(heap_obj *child, void *arg);
int heap_traverse(heap_obj *o, heap_visit_fn visit, void *arg);

/* Walks every live object of the heap (pools and large mappings), in
 * address order within an arena.  The callback must not allocate or free. */
typedef void (*heap_walk_fn)(heap_obj *o, void *arg);
void heap_walk(heap_walk_fn fn, void *arg);

/* --- raw blocks (container storage, array data) ------------------------- */

/* Sized allocation: the caller passes the same size back to free.  Raw
 * blocks hold no objects' headers and are never walked. */
void *heap_raw_alloc(size_t size);
void heap_raw_free(void *p, size_t size);

/* --- inherited regions and figures -------------------------------------- */

typedef struct heap_region {
    uintptr_t start, end; /* [start, end) */
    /* For heap_region_pages: an arena's pools carved so far (the memory
     * past them was never used), or a large mapping's page types. */
    bool large;
    uint32_t pools;
    uint16_t large_types;
} heap_region;

/* Fills up to max regions (arenas and large mappings) inherited from an
 * earlier epoch; returns how many exist (may exceed max). */
size_t heap_inherited_regions(heap_region *out, size_t max);

/* Same, for every region of the current heap (used by a master to know what
 * its children will inherit). */
size_t heap_all_regions(heap_region *out, size_t max);

/* What lives on each page of an inherited region, for the observers that
 * attribute copied pages to it (README.md, "Which object types were
 * copied").  A page's `types` has bit t set when a live block of heap_type
 * t lies on it, whole or in part, and HEAP_PAGE_STORAGE when raw storage
 * does (list items, dict tables, array data, which hold no header); its
 * `region` is the size class of the pool it is part of (blocks of
 * (region + 1) * HEAP_ALIGN bytes), HEAP_REGION_LARGE for a large mapping,
 * or HEAP_REGION_NONE for an arena's pool never carved.  Pools of objects,
 * of containers and of storage are apart, and a pool is four whole pages:
 * a page never holds storage beside objects. */
#define HEAP_PAGE_SIZE 4096u
#define HEAP_PAGE_STORAGE (1u << HT__COUNT)
#define HEAP_PAGE_NTYPES (HT__COUNT + 1) /* bits a page's types may have */
#define HEAP_CLASSES (HEAP_SMALL_MAX / HEAP_ALIGN)
#define HEAP_REGION_LARGE HEAP_CLASSES
#define HEAP_REGION_NONE 0xFFu
typedef struct heap_page_info {
    uint16_t types;
    uint8_t region;
} heap_page_info;
/* Fills out[i] for page i of r, a region heap_inherited_regions gave:
 * (r->end - r->start) / HEAP_PAGE_SIZE entries.  It reads only the
 * region's own memory -- pool headers, free lists and the type byte of each
 * block's header -- and writes nothing to it, so another thread may call it
 * while the heap is in use: nothing is ever allocated in inherited memory,
 * a block freed there is left in place, and an inherited arena stays mapped
 * (a large mapping, which a worker may unmap, is described by r alone). */
void heap_region_pages(const heap_region *r, heap_page_info *out);
/* The name of page-type bit b: heap_type_name for an object type,
 * "storage" for HEAP_PAGE_STORAGE. */
const char *heap_page_type_name(unsigned b);
typedef struct heap_stats {
    uint64_t objects;          /* live objects (statics excluded) */
    uint64_t objects_by_type[HT__COUNT];
    uint64_t live_bytes;       /* bytes in live blocks, objects and raw */
    uint64_t peak_bytes;       /* high-water mark of live_bytes since reset */
    uint64_t arenas;           /* arenas mapped */
    uint64_t inherited_arenas; /* of which inherited */
    uint64_t large_maps;       /* large mappings live */
    uint64_t inherited_large_maps;
    uint64_t mapped_bytes;     /* arenas + large mappings + cache */
    uint64_t inherited_frees;  /* blocks freed in inherited memory (left in place) */
    uint32_t epoch;            /* forks since heap_init in this line of processes */
} heap_stats;

void heap_get_stats(heap_stats *out);
uint64_t heap_live_bytes(void); /* heap_stats.live_bytes, cheaply */
uint64_t heap_peak_bytes(void); /* heap_stats.peak_bytes, cheaply */
void heap_reset_peak(void);

/* Aborts with a message; used for allocation failure and broken invariants. */
_Noreturn void heap_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
