/* gc.c: the generational cycle collector and its modes (heap/gc.h).
 * Read gc_collect_generation() to see how one collection runs; scheduling
 * is described in gc.h, the object layout in heap.h.
 *
 * How a collection of generation g works, phase by phase, and what each
 * phase writes (every write below lands on the object's own page, which is
 * why a collection in a forked worker copies every page holding a tracked
 * object it examines):
 *
 *   merge        generations 0..g-1 are spliced onto g's list.
 *                Writes: next/prev links of the list ends.
 *   update_refs  for every object on the list: gc_refs = rc, flag
 *                COLLECTING.  Writes: header (gc_refs, flags) of every one.
 *   subtract_refs for every object, visit its referents; a referent that is
 *                COLLECTING loses one gc_refs.  What remains in gc_refs is
 *                the number of references from outside the set (C locals,
 *                older or frozen objects): those objects are roots.
 *                Writes: gc_refs of referents inside the set.
 *   move_unreachable  walk the list: an object with gc_refs > 0 is
 *                reachable, and so is everything it refers to (a referent
 *                already moved to the tentative unreachable list is moved
 *                back to the list's tail, to be walked in turn); an object
 *                still at 0 when the walk reaches it moves to `unreachable`
 *                flagged UNREACHABLE.  One pass, no recursion.
 *                Writes: gc_refs, flags and links of moved objects.
 *   survivors    COLLECTING is cleared and the list is spliced onto the next
 *                older generation.  Writes: flags of every survivor.
 *   delete_garbage  each unreachable object is held, cleared (it drops the
 *                references it holds, which breaks the cycle), then
 *                released; reference counting frees the rest.
 *
 * Frozen objects sit on the permanent list, which no phase reads: their
 * references from young objects are seen only as "a referent that is not
 * COLLECTING", which reads its header and writes nothing.  Immortal objects
 * (gc_immortalize_all) are frozen too, and heap_incref/heap_decref skip them,
 * so in freeze + immortal mode nothing a worker does writes inherited pages.
 */
#include "heap/gc.h"

#include "base/clock.h"

#include <string.h>
#include <time.h>

#include "heap/gc_internal.h"
#include "heap/heap_internal.h"

typedef struct generation {
    gc_link head;     /* sentinel of a circular list */
    int threshold;
    uint64_t count;   /* gen 0: tracked allocations - frees; older: younger collections */
} generation;

static struct gc_state {
    gc_config config;
    bool automatic;   /* collections are scheduled by the thresholds */
    unsigned paused;  /* gc_pause() calls not yet resumed: no automatic ones */
    bool collecting;
    bool stress;
    generation gen[GC_GENERATIONS];
    gc_link permanent;
    uint64_t long_lived_total;   /* survivors of the last full collection */
    uint64_t long_lived_pending; /* objects moved to gen 2 since then */
    uint64_t ntracked;           /* on any list, permanent included */
    uint64_t nfrozen;            /* on the permanent list */
    gc_stats stats;
} G;

/* ====================================================================== */
/* {  Lists                                                                */
/* ====================================================================== */

static void list_init(gc_link *head) { head->next = head->prev = head; }
static bool list_empty(const gc_link *head) { return head->next == head; }

static void list_append(gc_link *head, gc_link *node)
{
    gc_link *last = head->prev;
    node->prev = last;
    node->next = head;
    last->next = node;
    head->prev = node;
}

static void list_unlink(gc_link *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = NULL;
}

static void list_move(gc_link *node, gc_link *to)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_append(to, node);
}

/* Appends all of `from` to `to`, leaving `from` empty. */
static void list_merge(gc_link *from, gc_link *to)
{
    if (list_empty(from))
        return;
    gc_link *last = to->prev;
    last->next = from->next;
    from->next->prev = last;
    to->prev = from->prev;
    from->prev->next = to;
    list_init(from);
}

static uint64_t list_size(const gc_link *head)
{
    uint64_t n = 0;
    for (const gc_link *l = head->next; l != head; l = l->next)
        n++;
    return n;
}

#ifdef COWDAG_GC_DEBUG
/* Debug builds check each list between phases: links agree both ways, and
 * every member is tracked and carries exactly the expected phase flags. */
static void validate_list(const gc_link *head, unsigned flags)
{
    const gc_link *prev = head;
    for (const gc_link *l = head->next; l != head; l = l->next) {
        const heap_obj *o = GC_OBJ(l);
        if (l->prev != prev)
            heap_panic("gc: broken prev link at %p", (const void *)o);
        if (!(o->flags & HF_TRACKED))
            heap_panic("gc: untracked object %p on a list", (const void *)o);
        if (o->flags & HF_IMMORTAL)
            heap_panic("gc: immortal object %p on a generation list", (const void *)o);
        if ((o->flags & (HF_COLLECTING | HF_UNREACHABLE)) != flags)
            heap_panic("gc: object %p has flags %#x, expected %#x", (const void *)o, o->flags, flags);
        prev = l;
    }
    if (head->prev != prev)
        heap_panic("gc: broken list tail");
}
#else
#define validate_list(head, flags) ((void)0)
#endif

/* }====================================================================== */

/* ====================================================================== */
/* {  Tracking (called by heap.c)                                          */
/* ====================================================================== */

void gc__init(void)
{
    memset(&G, 0, sizeof G);
    for (int i = 0; i < GC_GENERATIONS; i++)
        list_init(&G.gen[i].head);
    list_init(&G.permanent);
    gc_configure(&(gc_config){.mode = GC_TUNED, .thresholds = {700, 10, 10}, .full_ratio = 0.25});
}

void gc__track(heap_obj *o)
{
    o->flags |= HF_TRACKED;
    list_append(&G.gen[0].head, GC_LINK(o));
    G.ntracked++;
}

void gc__untrack(heap_obj *o)
{
    G.ntracked--;
    if ((o->flags & HF_FROZEN) && heap__inherited(o)) {
        /* A frozen object the master gave us: unlinking it would write its
         * neighbours' links, two more inherited objects.  Its block is never
         * reused (alloc.c leaves inherited blocks in place), so the node stays
         * on the permanent list, marked dead by the flags cleared below;
         * gc_unfreeze drops such nodes. */
        G.nfrozen--;
        o->flags &= (uint8_t) ~(HF_TRACKED | HF_FROZEN);
        if (G.gen[0].count > 0)
            G.gen[0].count--;
        return;
    }
    list_unlink(GC_LINK(o));
    if (o->flags & HF_FROZEN)
        G.nfrozen--;
    o->flags &= (uint8_t) ~(HF_TRACKED | HF_FROZEN);
    if (G.gen[0].count > 0)
        G.gen[0].count--;
}

bool gc__collecting(void) { return G.collecting; }

/* One list: the kept nodes are relinked around each run of forgotten ones;
 * a node is written only if its neighbour changes. */
static uint64_t forget_in(gc_link *head, uint32_t seal, uint64_t *frozen)
{
    uint64_t dropped = 0;
    gc_link *kept = head;
    for (gc_link *l = head->next; l != head; l = l->next) {
        heap_obj *o = GC_OBJ(l);
        if (heap__seal_of(o) < seal) {
            if (o->flags & HF_TRACKED) { /* a dead frozen node was counted out already */
                dropped++;
                *frozen += (o->flags & HF_FROZEN) != 0;
            }
            continue;
        }
        if (kept->next != l) {
            kept->next = l;
            l->prev = kept;
        }
        kept = l;
    }
    if (kept->next != head) {
        kept->next = head;
        head->prev = kept;
    }
    return dropped;
}

uint64_t gc__forget_sealed_before(uint32_t seal)
{
    uint64_t dropped = 0, frozen = 0;
    for (int i = 0; i < GC_GENERATIONS; i++)
        dropped += forget_in(&G.gen[i].head, seal, &frozen);
    dropped += forget_in(&G.permanent, seal, &frozen);
    G.ntracked -= dropped;
    G.nfrozen -= frozen;
    return dropped;
}

/* }====================================================================== */

/* ====================================================================== */
/* {  The collection phases                                                */
/* ====================================================================== */

static uint64_t update_refs(gc_link *young)
{
    uint64_t n = 0;
    for (gc_link *l = young->next; l != young; l = l->next) {
        heap_obj *o = GC_OBJ(l);
        if (o->rc > INT32_MAX)
            heap_panic("gc: reference count %lld does not fit gc_refs", (long long)o->rc);
        o->gc_refs = (int32_t)o->rc;
        o->flags |= HF_COLLECTING;
        n++;
    }
    return n;
}

static int visit_decref(heap_obj *child, void *arg)
{
    (void)arg;
    if (child->flags & HF_COLLECTING)
        child->gc_refs--;
    return 0;
}

static void subtract_refs(gc_link *young)
{
    for (gc_link *l = young->next; l != young; l = l->next)
        heap_traverse(GC_OBJ(l), visit_decref, NULL);
}

static int visit_reachable(heap_obj *child, void *young)
{
    if (!(child->flags & HF_COLLECTING))
        return 0;
    if (child->flags & HF_UNREACHABLE) {
        /* Reached after all: back to the list's tail, walked in turn. */
        child->flags &= (uint8_t)~HF_UNREACHABLE;
        child->gc_refs = 1;
        list_move(GC_LINK(child), young);
    } else if (child->gc_refs == 0) {
        child->gc_refs = 1;
    }
    return 0;
}

static void move_unreachable(gc_link *young, gc_link *unreachable)
{
    gc_link *l = young->next;
    while (l != young) {
        heap_obj *o = GC_OBJ(l);
        if (o->gc_refs > 0) {
            heap_traverse(o, visit_reachable, young);
            l = l->next;
        } else {
            gc_link *next = l->next;
            o->flags |= HF_UNREACHABLE;
            list_move(l, unreachable);
            l = next;
        }
    }
}

static void clear_phase_flags(gc_link *list)
{
    for (gc_link *l = list->next; l != list; l = l->next)
        GC_OBJ(l)->flags &= (uint8_t) ~(HF_COLLECTING | HF_UNREACHABLE);
}

/* Breaks every unreachable cycle: hold the object, make it drop what it
 * holds, release it.  An object that is still first on the list after its
 * clear survived (something outside still points at it); it moves to `old`. */
static void delete_garbage(gc_link *unreachable, gc_link *old)
{
    while (!list_empty(unreachable)) {
        gc_link *l = unreachable->next;
        heap_obj *o = GC_OBJ(l);
        heap_incref(o);
        heap__clear(o);
        if (unreachable->next == l)
            list_move(l, old);
        heap_decref(o);
    }
}

/* One collection of generation g: the recipe. */
static uint64_t gc_collect_generation(int g)
{
    uint64_t t0 = base_now_ns();
    G.collecting = true;

    /* Counts: this collection is one more for the next generation. */
    if (g + 1 < GC_GENERATIONS)
        G.gen[g + 1].count++;
    for (int i = 0; i <= g; i++)
        G.gen[i].count = 0;

    for (int i = 0; i < g; i++)
        list_merge(&G.gen[i].head, &G.gen[g].head);
    gc_link *young = &G.gen[g].head;
    gc_link *old = g + 1 < GC_GENERATIONS ? &G.gen[g + 1].head : young;
    validate_list(young, 0);

    uint64_t examined = update_refs(young);
    subtract_refs(young);
    validate_list(young, HF_COLLECTING);

    gc_link unreachable;
    list_init(&unreachable);
    move_unreachable(young, &unreachable);
    validate_list(young, HF_COLLECTING);
    validate_list(&unreachable, HF_COLLECTING | HF_UNREACHABLE);

    clear_phase_flags(young);
    clear_phase_flags(&unreachable);
    uint64_t ngarbage = list_size(&unreachable);
    uint64_t survivors = examined - ngarbage;
    if (young != old)
        list_merge(young, old);
    if (g == GC_GENERATIONS - 2)
        G.long_lived_pending += survivors;
    else if (g == GC_GENERATIONS - 1) {
        G.long_lived_pending = 0;
        G.long_lived_total = survivors;
    }

    delete_garbage(&unreachable, old);
    validate_list(old, 0);

    G.collecting = false;
    uint64_t dt = base_now_ns() - t0;
    G.stats.collections[g]++;
    G.stats.collected[g] += ngarbage;
    G.stats.examined += examined;
    G.stats.pause_ns_total += dt;
    G.stats.pause_ns[g] += dt;
    if (dt > G.stats.pause_ns_max)
        G.stats.pause_ns_max = dt;
    return ngarbage;
}

/* Collects the oldest generation whose count exceeds its threshold. */
static void collect_scheduled(void)
{
    for (int g = GC_GENERATIONS - 1; g >= 0; g--) {
        if (G.gen[g].count <= (uint64_t)G.gen[g].threshold)
            continue;
        if (g == GC_GENERATIONS - 1 && G.config.full_ratio > 0 &&
            (double)G.long_lived_pending <= G.config.full_ratio * (double)G.long_lived_total)
            continue; /* not enough new long-lived objects to pay for a full pass */
        gc_collect_generation(g);
        return;
    }
}

void gc__on_alloc(bool tracked)
{
    if (G.collecting)
        return;
    if (G.stress)
        gc_collect_generation(GC_GENERATIONS - 1);
    if (!tracked)
        return;
    G.gen[0].count++;
    if (G.automatic && G.gen[0].threshold > 0 && G.gen[0].count > (uint64_t)G.gen[0].threshold)
        collect_scheduled();
}

/* }====================================================================== */

/* ====================================================================== */
/* {  Modes and API                                                        */
/* ====================================================================== */

gc_config gc_default_config(void)
{
    return (gc_config){.mode = GC_TUNED, .thresholds = {700, 10, 10}, .full_ratio = 0.25};
}

static const char *const mode_names[] = {"tuned", "disable", "freeze"};

int gc_mode_parse(const char *s, gc_mode *out)
{
    for (int m = GC_TUNED; m <= GC_FREEZE; m++) {
        if (strcmp(s, mode_names[m]) == 0) {
            *out = (gc_mode)m;
            return HEAP_OK;
        }
    }
    return HEAP_ERR;
}

const char *gc_mode_name(gc_mode m)
{
    return (unsigned)m <= GC_FREEZE ? mode_names[m] : "?";
}

int gc_config_check(const gc_config *c, const char **why)
{
    if ((unsigned)c->mode > GC_FREEZE)
        *why = "gc.mode must be tuned, disable or freeze";
    else if (c->thresholds[0] < 0 || c->thresholds[1] < 0 || c->thresholds[2] < 0)
        *why = "gc.thresholds must be three integers >= 0";
    else if (!(c->full_ratio >= 0 && c->full_ratio <= 1))
        *why = "gc.full_ratio must be between 0 and 1";
    else if (c->immortal && c->mode != GC_FREEZE)
        *why = "gc.immortal needs gc.mode freeze";
    else
        return HEAP_OK;
    return HEAP_ERR;
}

void gc_configure(const gc_config *c)
{
    G.config = *c;
    for (int i = 0; i < GC_GENERATIONS; i++)
        G.gen[i].threshold = c->thresholds[i];
    G.automatic = !G.paused && c->mode != GC_DISABLE;
}

void gc_pause(void)
{
    G.paused++;
    G.automatic = false;
}

void gc_resume(void)
{
    if (G.paused == 0)
        heap_panic("gc_resume without gc_pause");
    if (--G.paused == 0)
        G.automatic = G.config.mode != GC_DISABLE;
}

const gc_config *gc_get_config(void) { return &G.config; }

uint64_t gc_collect(int generation)
{
    if (G.collecting)
        return 0;
    if (generation < 0)
        generation = 0;
    if (generation >= GC_GENERATIONS)
        generation = GC_GENERATIONS - 1;
    return gc_collect_generation(generation);
}

void gc_freeze(void)
{
    for (int i = 0; i < GC_GENERATIONS; i++) {
        gc_link *head = &G.gen[i].head;
        for (gc_link *l = head->next; l != head; l = l->next) {
            GC_OBJ(l)->flags |= HF_FROZEN;
            G.nfrozen++;
        }
        list_merge(head, &G.permanent);
        G.gen[i].count = 0;
    }
}

/* Moves frozen objects back to the oldest generation -- all but the
 * immortal ones: an immortal object's count no longer counts references, so
 * a collection would take it for garbage.  They stay frozen for good. */
void gc_unfreeze(void)
{
    gc_link *l = G.permanent.next;
    while (l != &G.permanent) {
        gc_link *next = l->next;
        heap_obj *o = GC_OBJ(l);
        if (!(o->flags & HF_TRACKED)) {
            list_unlink(l); /* a dead inherited node left in place */
        } else if (!(o->flags & HF_IMMORTAL)) {
            o->flags &= (uint8_t)~HF_FROZEN;
            G.nfrozen--;
            list_move(l, &G.gen[GC_GENERATIONS - 1].head);
        }
        l = next;
    }
}

static void immortalize(heap_obj *o, void *count)
{
    if (!(o->flags & HF_IMMORTAL)) {
        o->flags |= HF_IMMORTAL;
        ++*(uint64_t *)count;
    }
}

uint64_t gc_immortalize_all(void)
{
    gc_freeze(); /* immortal containers must never be collected: freeze them */
    uint64_t n = 0;
    heap_walk(immortalize, &n);
    G.stats.immortal += n;
    return n;
}

typedef struct mortal_walk {
    uint32_t from, before;
    uint64_t count;
} mortal_walk;

static void mortalize(heap_obj *o, void *arg)
{
    mortal_walk *w = arg;
    uint32_t seal = heap__seal_of(o);
    if (seal < w->from || seal >= w->before || !(o->flags & (HF_IMMORTAL | HF_FROZEN)))
        return;
    o->flags &= (uint8_t)~HF_IMMORTAL;
    if (o->flags & HF_FROZEN) {
        o->flags &= (uint8_t)~HF_FROZEN;
        G.nfrozen--;
        list_move(GC_LINK(o), &G.gen[GC_GENERATIONS - 1].head);
    }
    w->count++;
}

uint64_t gc_mortalize_sealed(uint32_t from, uint32_t before)
{
    mortal_walk w = {from, before, 0};
    heap_walk(mortalize, &w);
    return w.count;
}

void gc_settle(void)
{
    gc_collect(GC_GENERATIONS - 1);
    if (G.config.mode == GC_FREEZE) {
        gc_freeze();
        if (G.config.immortal)
            gc_immortalize_all();
    }
    G.automatic = !G.paused && G.config.mode != GC_DISABLE;
}

void gc_get_stats(gc_stats *out)
{
    *out = G.stats;
    out->tracked = G.ntracked - G.nfrozen;
    out->frozen = G.nfrozen;
    for (int i = 0; i < GC_GENERATIONS; i++)
        out->gen_count[i] = G.gen[i].count;
}

void gc_reset_stats(void)
{
    uint64_t immortal = G.stats.immortal;
    memset(&G.stats, 0, sizeof G.stats);
    G.stats.immortal = immortal;
}

void gc_set_stress(bool on) { G.stress = on; }
bool gc_stress(void) { return G.stress; }

/* }====================================================================== */
