/* heap.c: the object types, their constructors and accessors, and their
 * reference counting.  The object model is described at the top of
 * heap/heap.h; the allocator under them is heap/alloc.c, the collector
 * heap/gc.c. */
#include "heap/heap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "heap/gc.h"
#include "heap/gc_internal.h"
#include "heap/heap_internal.h"

/* ====================================================================== */
/* {  Object bodies                                                       */
/* ====================================================================== */

typedef struct ho_int {
    heap_obj h;
    int64_t v;
} ho_int;

typedef struct ho_float {
    heap_obj h;
    double v;
} ho_float;

typedef struct ho_str {
    heap_obj h;
    uint64_t hash;
    size_t len;
    char data[];
} ho_str;

typedef struct ho_list {
    heap_obj h;
    size_t len, cap;
    heap_obj **items;
} ho_list;

typedef struct dict_entry {
    uint64_t hash;
    heap_obj *key; /* NULL: deleted */
    heap_obj *value;
} dict_entry;

/* Compact dict: `index` maps hash slots to positions in `entries`, which
 * keep insertion order.  index and entries share one raw block. */
typedef struct ho_dict {
    heap_obj h;
    uint32_t used;     /* live entries */
    uint32_t nentries; /* entries written, live or deleted */
    uint32_t cap;      /* entries capacity: 2/3 of the index size */
    uint8_t log2size;  /* index size = 1 << log2size; 0: no table yet */
    uint8_t mixed;     /* some key was not an int (never reset) */
    uint16_t pad_;
    int32_t *index;
    dict_entry *entries;
} ho_dict;

#define IX_EMPTY (-1)
#define IX_DUMMY (-2)

typedef struct ho_array {
    heap_obj h;
    uint32_t dtype;
    uint32_t pad_;
    size_t len;
    void *data;
} ho_array;

typedef struct ho_table {
    heap_obj h;
    size_t nrows;
    heap_obj *names; /* list of str */
    heap_obj *cols;  /* list of columns */
} ho_table;

#define SMALL_INT_MIN (-5)
#define SMALL_INT_MAX 256

static heap_obj none_obj = {.rc = 1, .type = HT_NONE, .flags = HF_IMMORTAL | HF_STATIC};
static heap_obj true_obj = {.rc = 1, .type = HT_BOOL, .flags = HF_IMMORTAL | HF_STATIC};
static heap_obj false_obj = {.rc = 1, .type = HT_BOOL, .flags = HF_IMMORTAL | HF_STATIC};
static ho_int small_ints[SMALL_INT_MAX - SMALL_INT_MIN + 1];

/* }====================================================================== */

/* ====================================================================== */
/* {  Errors                                                              */
/* ====================================================================== */

_Noreturn void heap_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    base_vpanic("heap", fmt, ap);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Object blocks                                                       */
/* ====================================================================== */

/* Allocates an object of `size` bytes (header included) and fills in its
 * header with rc 1.  Containers get the collector link in front; they are
 * tracked by their constructor once fully built. */
static heap_obj *obj_alloc(heap_type t, size_t size)
{
    bool container = heap__is_container(t);
    gc__on_alloc(container);
    size_t n = size + (container ? sizeof(gc_link) : 0);
    char *b = heap__block_alloc(container ? KIND_GC : KIND_OBJ, n, false);
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
        heap__large_free(b);
    else
        heap__small_free(b);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Lifetime                                                            */
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
        ho_int *s = &small_ints[v - SMALL_INT_MIN];
        *s = (ho_int){.h = {.rc = 1, .type = HT_INT, .flags = HF_IMMORTAL | HF_STATIC}, .v = v};
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
    heap__alloc_release();
    free(H.dealloc_stack);
    memset(&H, 0, sizeof H);
    gc__init();
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Deallocation                                                        */
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
        ho_list *l = (ho_list *)o;
        heap_raw_free(l->items, l->cap * sizeof(heap_obj *));
        break;
    }
    case HT_DICT: {
        ho_dict *d = (ho_dict *)o;
        if (d->log2size)
            heap_raw_free(d->index, dict_block_size(d->log2size, d->cap));
        break;
    }
    case HT_ARRAY: {
        ho_array *a = (ho_array *)o;
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
/* {  Scalars and str                                                     */
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
    ho_int *o = (ho_int *)obj_alloc(HT_INT, sizeof(ho_int));
    o->v = v;
    return &o->h;
}

int64_t heap_int_value(const heap_obj *o)
{
    EXPECT(o, HT_INT);
    return ((const ho_int *)o)->v;
}

heap_obj *heap_float_new(double v)
{
    ho_float *o = (ho_float *)obj_alloc(HT_FLOAT, sizeof(ho_float));
    o->v = v;
    return &o->h;
}

double heap_float_value(const heap_obj *o)
{
    EXPECT(o, HT_FLOAT);
    return ((const ho_float *)o)->v;
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
    ho_str *o = (ho_str *)obj_alloc(HT_STR, sizeof(ho_str) + len + 1);
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
    return ((const ho_str *)o)->data;
}

size_t heap_str_len(const heap_obj *o)
{
    EXPECT(o, HT_STR);
    return ((const ho_str *)o)->len;
}

uint64_t heap_str_hash(const heap_obj *o)
{
    EXPECT(o, HT_STR);
    return ((const ho_str *)o)->hash;
}

bool heap_str_eq(const heap_obj *o, const char *s, size_t len)
{
    const ho_str *x = (const ho_str *)o;
    return o->type == HT_STR && x->len == len && memcmp(x->data, s, len) == 0;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  list                                                                */
/* ====================================================================== */

heap_obj *heap_list_new(size_t capacity)
{
    ho_list *l = (ho_list *)obj_alloc(HT_LIST, sizeof(ho_list));
    l->len = 0;
    l->cap = capacity;
    l->items = capacity ? heap_raw_alloc(capacity * sizeof(heap_obj *)) : NULL;
    gc__track(&l->h);
    return &l->h;
}

size_t heap_list_len(const heap_obj *l)
{
    EXPECT(l, HT_LIST);
    return ((const ho_list *)l)->len;
}

heap_obj *heap_list_get(const heap_obj *l, size_t i)
{
    EXPECT(l, HT_LIST);
    const ho_list *x = (const ho_list *)l;
    if (i >= x->len)
        heap_panic("list index %zu out of range (%zu)", i, x->len);
    return x->items[i];
}

heap_obj *const *heap_list_items(const heap_obj *l)
{
    EXPECT(l, HT_LIST);
    return ((const ho_list *)l)->items;
}

void heap_list_append_new(heap_obj *l, heap_obj *item)
{
    EXPECT(l, HT_LIST);
    ho_list *x = (ho_list *)l;
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
    ho_list *x = (ho_list *)l;
    if (i >= x->len)
        heap_panic("list index %zu out of range (%zu)", i, x->len);
    heap_obj *old = x->items[i];
    x->items[i] = item;
    heap_decref(old);
}

size_t heap_list_read_f64(const heap_obj *l, double *out, bool *all_ints)
{
    EXPECT(l, HT_LIST);
    const ho_list *x = (const ho_list *)l;
    bool ints = true;
    size_t k = 0;
    for (; k < x->len; k++) {
        heap_obj *e = x->items[k];
        heap_incref(e);
        if (e->type == HT_FLOAT) {
            out[k] = ((const ho_float *)e)->v;
            ints = false;
        } else if (e->type == HT_INT) {
            out[k] = (double)((const ho_int *)e)->v;
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
    const ho_list *x = (const ho_list *)l;
    if (l->type == HT_LIST && x->len) { /* both ends: 12 items span two lines */
        __builtin_prefetch(x->items);
        __builtin_prefetch(&x->items[x->len - 1]);
    }
}

void heap_list_prefetch_elems(const heap_obj *l)
{
    const ho_list *x = (const ho_list *)l;
    if (l->type != HT_LIST)
        return;
    for (size_t i = 0; i < x->len; i++)
        __builtin_prefetch(x->items[i]);
}

void heap_list_clear(heap_obj *l)
{
    EXPECT(l, HT_LIST);
    ho_list *x = (ho_list *)l;
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
/* {  dict                                                                */
/* ====================================================================== */

static uint64_t key_hash(const heap_obj *k)
{
    switch (k->type) {
    case HT_STR:
        return ((const ho_str *)k)->hash;
    case HT_INT:
        return hash_int(((const ho_int *)k)->v);
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
        return ((const ho_int *)k)->v == p->i;
    const ho_str *s = (const ho_str *)k;
    return s->len == p->len && memcmp(s->data, p->s, p->len) == 0;
}

static probe probe_of(const heap_obj *k)
{
    probe p = {.hash = key_hash(k), .obj = k, .type = k->type};
    if (k->type == HT_INT)
        p.i = ((const ho_int *)k)->v;
    else {
        p.s = ((const ho_str *)k)->data;
        p.len = ((const ho_str *)k)->len;
    }
    return p;
}

/* Returns the index slot holding the key, or -1.  *free_slot (if given)
 * gets the first empty slot met (where an insertion goes). */
static int64_t dict_find(const ho_dict *d, const probe *p, size_t *free_slot)
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
static void dict_resize(ho_dict *d, uint32_t need)
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
    ho_dict *d = (ho_dict *)obj_alloc(HT_DICT, sizeof(ho_dict));
    d->used = d->nentries = d->cap = d->log2size = d->mixed = 0;
    d->index = NULL;
    d->entries = NULL;
    gc__track(&d->h);
    return &d->h;
}

size_t heap_dict_len(const heap_obj *d)
{
    EXPECT(d, HT_DICT);
    return ((const ho_dict *)d)->used;
}

void heap_dict_set_new(heap_obj *dobj, heap_obj *key, heap_obj *value)
{
    EXPECT(dobj, HT_DICT);
    ho_dict *d = (ho_dict *)dobj;
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
    const ho_dict *d = (const ho_dict *)dobj;
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
/* Up to this many bytes of index and entries, a batched str look-up
 * prefetches the table whole (three lines for a record of five fields)
 * rather than its index slot, then the entry that slot names: one line
 * more, one round trip to memory fewer. */
#define SMALL_TABLE 256

void heap_dict_get_int_many(const heap_obj *dobj, const int64_t *keys, size_t n, heap_obj **out)
{
    EXPECT(dobj, HT_DICT);
    const ho_dict *d = (const ho_dict *)dobj;
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
            if (ix >= 0) { /* a 24-byte entry: its hash and value may lie on two lines */
                __builtin_prefetch(&d->entries[ix].hash);
                __builtin_prefetch(&d->entries[ix].value);
            }
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
        for (size_t j = 0; j < m; j++) { /* pass 1: the index slot, or a small table whole */
            const ho_dict *d = (const ho_dict *)ds[j];
            EXPECT(ds[j], HT_DICT);
            if (!d->log2size)
                continue;
            const char *from = (const char *)d->index, *to = (const char *)(d->entries + d->nentries);
            if (to - from <= SMALL_TABLE) { /* a record's few fields: the entry too, a level sooner */
                for (const char *a = from; a < to; a += 64)
                    __builtin_prefetch(a);
                __builtin_prefetch(to - 1);
            } else {
                __builtin_prefetch(&d->index[p.hash & (((size_t)1 << d->log2size) - 1)]);
            }
        }
        for (size_t j = 0; j < m; j++) { /* pass 2: its entry */
            const ho_dict *d = (const ho_dict *)ds[j];
            if (d->log2size) {
                int32_t ix = d->index[p.hash & (((size_t)1 << d->log2size) - 1)];
                if (ix >= 0)
                    __builtin_prefetch(&d->entries[ix]);
            }
        }
        for (size_t j = 0; j < m; j++) { /* pass 3: the probe, and the value's header */
            const ho_dict *d = (const ho_dict *)ds[j];
            int64_t at = dict_find(d, &p, NULL);
            heap_obj *v = NULL;
            if (at >= 0) {
                const dict_entry *e = &d->entries[d->index[at]];
                v = e->value;
                __builtin_prefetch(v);
                p.obj = e->key; /* records built alike share their key objects: the next compare is by address */
            }
            out[base + j] = v;
        }
    }
}

bool heap_dict_del(heap_obj *dobj, const heap_obj *key)
{
    EXPECT(dobj, HT_DICT);
    ho_dict *d = (ho_dict *)dobj;
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
    const ho_dict *d = (const ho_dict *)dobj;
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
    ho_dict *d = (ho_dict *)dobj;
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
/* {  array and table                                                     */
/* ====================================================================== */

static heap_obj *array_new(heap_dtype dtype, size_t len, bool zero)
{
    if (len > SIZE_MAX / 16)
        heap_panic("array of %zu elements", len);
    ho_array *a = (ho_array *)obj_alloc(HT_ARRAY, sizeof(ho_array));
    a->dtype = dtype;
    a->len = len;
    a->data = len ? heap__block_alloc(KIND_RAW, len * 8, zero) : NULL;
    return &a->h;
}

heap_obj *heap_array_new(heap_dtype dtype, size_t len) { return array_new(dtype, len, true); }
heap_obj *heap_array_new_uninit(heap_dtype dtype, size_t len) { return array_new(dtype, len, false); }

heap_dtype heap_array_dtype(const heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    return (heap_dtype)((const ho_array *)a)->dtype;
}

size_t heap_array_len(const heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    return ((const ho_array *)a)->len;
}

double *heap_array_f64(heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    ho_array *x = (ho_array *)a;
    return x->dtype == HD_F64 ? x->data : NULL;
}

int64_t *heap_array_i64(heap_obj *a)
{
    EXPECT(a, HT_ARRAY);
    ho_array *x = (ho_array *)a;
    return x->dtype == HD_I64 ? x->data : NULL;
}

heap_obj *heap_table_new(size_t nrows)
{
    /* The two lists first: the table is tracked only once complete. */
    heap_obj *names = heap_list_new(0);
    heap_obj *cols = heap_list_new(0);
    ho_table *t = (ho_table *)obj_alloc(HT_TABLE, sizeof(ho_table));
    t->nrows = nrows;
    t->names = names;
    t->cols = cols;
    gc__track(&t->h);
    return &t->h;
}

size_t heap_table_nrows(const heap_obj *t)
{
    EXPECT(t, HT_TABLE);
    return ((const ho_table *)t)->nrows;
}

size_t heap_table_ncols(const heap_obj *t)
{
    EXPECT(t, HT_TABLE);
    const ho_table *x = (const ho_table *)t;
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
    ho_table *x = (ho_table *)t;
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
    const ho_table *x = (const ho_table *)t;
    for (size_t i = 0; i < n; i++)
        if (heap_str_eq(heap_list_get(x->names, i), name, len))
            return heap_list_get(x->cols, i);
    return NULL;
}

heap_obj *heap_table_column_at(const heap_obj *t, size_t i)
{
    EXPECT(t, HT_TABLE);
    return heap_list_get(((const ho_table *)t)->cols, i);
}

heap_obj *heap_table_name_at(const heap_obj *t, size_t i)
{
    EXPECT(t, HT_TABLE);
    return heap_list_get(((const ho_table *)t)->names, i);
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Traversal, clearing and walking                                     */
/* ====================================================================== */

int heap_traverse(heap_obj *o, heap_visit_fn visit, void *arg)
{
    int r;
    switch ((heap_type)o->type) {
    case HT_LIST: {
        ho_list *l = (ho_list *)o;
        for (size_t i = 0; i < l->len; i++)
            if ((r = visit(l->items[i], arg)))
                return r;
        return 0;
    }
    case HT_DICT: {
        ho_dict *d = (ho_dict *)o;
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
        ho_table *t = (ho_table *)o;
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
        ho_table *t = (ho_table *)o;
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

/* }====================================================================== */
