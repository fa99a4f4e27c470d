/* gc: the cycle collector of cowdag's heap, and its switchable modes.
 * The algorithm, phase by phase, and which fields each phase writes, is at
 * the top of heap/gc.c.
 *
 * Reference counting frees acyclic garbage at once (heap.h); this collector
 * finds the cycles.  Tracked objects (lists, dicts, tables) live on one of
 * three generation lists, or on the permanent list after gc_freeze(), which
 * no collection ever reads or writes.
 *
 * Scheduling, as CPython does it:
 *   - every allocation of a tracked object adds one to generation 0's count
 *     (every free of one takes one away); when the count exceeds
 *     thresholds[0], a collection runs before the allocation;
 *   - a collection of generation g adds one to generation g+1's count and
 *     zeroes the counts of 0..g; the oldest generation whose count exceeds its
 *     threshold is the one collected;
 *   - generation 2 is collected only when, besides its threshold, the objects
 *     that reached it since the last full collection exceed full_ratio of
 *     those that survived it (0 turns the rule off).
 *   - thresholds[0] == 0 turns automatic collection off.
 */
#ifndef COWDAG_GC_H
#define COWDAG_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "heap/heap.h"

#define GC_GENERATIONS 3

typedef enum gc_mode {
    GC_TUNED,   /* automatic collection with the thresholds */
    GC_DISABLE, /* no automatic collection; explicit ones still run */
    GC_FREEZE,  /* settle: collect, then freeze what exists; collect the rest */
} gc_mode;

typedef struct gc_config {
    gc_mode mode;
    int thresholds[GC_GENERATIONS];
    double full_ratio; /* default 0.25 */
    bool immortal;     /* freeze only: what exists at settle time is immortal */
} gc_config;

typedef struct gc_stats {
    uint64_t collections[GC_GENERATIONS]; /* collections of each generation */
    uint64_t collected[GC_GENERATIONS];   /* objects freed by them */
    uint64_t examined;                    /* objects examined, all collections */
    uint64_t pause_ns_total;
    uint64_t pause_ns[GC_GENERATIONS];    /* total pause per generation */
    uint64_t pause_ns_max;
    uint64_t tracked;                     /* on generation lists (not frozen) */
    uint64_t frozen;                      /* on the permanent list */
    uint64_t immortal;                    /* objects made immortal by settle */
    uint64_t gen_count[GC_GENERATIONS];   /* the scheduling counts, now */
} gc_stats;

/* The defaults: tuned, 700/10/10, full_ratio 0.25, not immortal. */
gc_config gc_default_config(void);

/* Parses "tuned" | "disable" | "freeze"; HEAP_ERR on anything else. */
int gc_mode_parse(const char *s, gc_mode *out);
const char *gc_mode_name(gc_mode m);

/* Checks a config (thresholds >= 0, full_ratio in [0, 1], immortal only
 * with freeze); on error returns HEAP_ERR and points *why at a message. */
int gc_config_check(const gc_config *c, const char **why);

/* Applies a config now: mode and thresholds for automatic collection. */
void gc_configure(const gc_config *c);
const gc_config *gc_get_config(void);

/* Automatic collection off until the matching gc_resume(), whatever the
 * mode: for loading, which makes no garbage worth a collection (a full pass
 * every few thousand objects would dominate it).  Pairs nest; explicit
 * collections (gc_collect, gc_settle) still run.  The mode and thresholds
 * are untouched, so gc_get_config() still tells what will apply after. */
void gc_pause(void);
void gc_resume(void);

/* What a master does before forking: one full collection; then, by mode,
 * leaves automatic collection on (tuned), off (disable), or freezes every
 * tracked object (freeze) and, with immortal, makes every object that
 * exists immortal.  Afterwards the collector runs in the mode's way. */
void gc_settle(void);

/* Collects generation g (0..2) and everything younger; returns the number
 * of objects freed.  Runs in every mode.  Ignored (returns 0) if a
 * collection is already running. */
uint64_t gc_collect(int generation);

/* Moves every tracked object to the permanent generation; unfreeze moves
 * them back to the oldest one, except immortal objects, which stay. */
void gc_freeze(void);
void gc_unfreeze(void);

/* Freezes, then makes every live object immortal (heap walk); returns how
 * many it marked.  Immortal objects are never collected nor freed. */
uint64_t gc_immortalize_all(void);

/* The reverse, for state a master has retired: every object in memory
 * whose seal number is in [from, before) (see heap_seal) stops being
 * immortal and frozen, so dropping the last reference frees it again.
 * Sound because a master never takes or drops references to settled state:
 * their counts are still exact.  Call only once no worker shares that
 * memory any more.  Returns how many objects changed. */
uint64_t gc_mortalize_sealed(uint32_t from, uint32_t before);

void gc_get_stats(gc_stats *out);
/* Zeroes the counters (collections, collected, pauses, examined): a forked
 * worker starts its own. */
void gc_reset_stats(void);

/* Stress mode: a full collection before every object allocation. */
void gc_set_stress(bool on);
bool gc_stress(void);

#endif
