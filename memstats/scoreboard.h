/* scoreboard: per-process figures shared by the master and its workers.
 * One MAP_SHARED anonymous mapping, made by the master before it forks, so
 * every worker sees every other's entry and whichever worker answers
 * GET /stats or GET /metrics can report them all.
 *
 * Entries are not worker slots: during a reload the old and the new worker
 * of one slot run side by side, so the master gives each process an entry
 * of its own (ms_sb_claim) and frees it when the process is reaped; the
 * entry records the slot number as the label to report.
 *
 * Writers never block readers and readers never block writers: each entry
 * (and the master's part) has a sequence counter, odd while its one writer
 * is updating it.  A reader copies the entry and keeps the copy only if the
 * counter was even and unchanged around the copy (ms_sb_read_entry retries
 * otherwise), so a report never mixes two updates.
 *
 * Who writes what: a worker writes its own entry, inside the write
 * bracket -- its loop everything but the memory sample, its sampling
 * thread the sample, in a bracket of mem_seq; the master writes the master
 * part, and an entry only when no worker can be writing it (ms_sb_claim
 * before the fork, ms_sb_release after the reap, which also repairs a
 * bracket its dead writer left open) or with ms_sb_set_pid /
 * ms_sb_set_status, which are safe while the worker writes and must never
 * be replaced by a bracket of the master's own.
 *
 * Time.  Every timestamp here (at_ms, started_ms, the master's restart
 * times) is base_now_ms() of the process that wrote it: one system-wide
 * monotonic clock (base/clock.h), so a reader may subtract another
 * process's timestamp from its own now.
 */
#ifndef COWDAG_SCOREBOARD_H
#define COWDAG_SCOREBOARD_H

#include <stdbool.h>
#include <stdint.h>

#include "memstats/memstats.h"

#define MS_SB_ENTRIES 512 /* processes at once: every generation's workers */
#define MS_SB_SLOTS 256   /* worker slot numbers */
#define MS_HIST_BUCKETS 16 /* request-duration buckets, the last is +Inf */
#define MS_GC_GENS 3

/* Upper bounds (seconds) of the request-duration buckets, ascending; the
 * last bucket (+Inf) has none. */
extern const double ms_hist_bounds[MS_HIST_BUCKETS - 1];

typedef enum ms_status {
    MS_FREE = 0,  /* no process */
    MS_STARTING,  /* forked, not serving yet */
    MS_READY,     /* serving */
    MS_DRAINING,  /* stopped accepting, finishing what it has */
} ms_status;

const char *ms_status_name(ms_status s); /* "free", "starting", "ready", "draining" */

/* Why a slot's worker was replaced (cowdag_worker_restarts_total's reason
 * label): the watchdog killed it, it died, it recycled after max_requests,
 * after copying too much of the state or growing past max_rss_mib, a
 * reload retired it, or SIGTTOU did. */
typedef enum ms_restart_reason {
    MS_RESTART_TIMEOUT,
    MS_RESTART_CRASH,
    MS_RESTART_MAX_REQUESTS,
    MS_RESTART_COPIED,
    MS_RESTART_RSS,
    MS_RESTART_RELOAD,
    MS_RESTART_SCALE,
    MS_RESTART_REASONS
} ms_restart_reason;

const char *ms_restart_reason_name(ms_restart_reason r); /* "timeout", "crash", ... */

/* A memory sample: process-wide figures and the inherited state's pages. */
typedef struct ms_sample {
    ms_rollup rollup;
    ms_pages state;
    /* The state's private pages by what lives on them (a worker's; the
     * labels are the heap's page types and regions, heap/heap.h). */
    ms_copied copied;
    uint64_t copied_known; /* nonzero once a sample carries them (a word: no padding) */
    uint64_t at_ms;   /* base_now_ms() when taken (base/clock.h: one clock for every process); 0: none yet */
    uint64_t cost_us; /* how long taking it took */
} ms_sample;

typedef struct ms_gc_figures {
    uint64_t collections[MS_GC_GENS];
    uint64_t collected[MS_GC_GENS];
    uint64_t pause_ns[MS_GC_GENS]; /* total pause per generation */
    uint64_t pause_ns_max;
    uint64_t tracked;
    uint64_t frozen;
    uint64_t objects; /* heap objects alive */
} ms_gc_figures;

typedef struct ms_entry {
    _Alignas(64) uint64_t seq; /* even: stable; odd: being written; entries
                                * start on their own cache line */
    /* identity, written by the master */
    int32_t slot;
    int32_t generation;
    int32_t pid;
    int32_t status;        /* ms_status */
    uint64_t started_ms;   /* base_now_ms() (base/clock.h) */
    /* written by the worker */
    uint64_t requests;
    uint64_t errors;            /* status >= 400 */
    uint64_t by_class[6];       /* [2] = 2xx ... [5] = 5xx */
    uint64_t duration[MS_HIST_BUCKETS]; /* per bucket, not cumulative */
    uint64_t duration_sum_us;
    ms_gc_figures gc;
    char serving[64];          /* "METHOD PATH" of the request under way; "" between requests */
    uint64_t serving_since_ms; /* when it began; 0 between requests */
    /* written by the worker's loop with an atomic store on every turn, outside
     * any bracket: the watchdog reads it with an atomic load */
    uint64_t beat_ms;
    /* written by the worker's sampling thread, under a counter of its own
     * on its own cache line: a sample lands while the worker's loop is
     * busy with a long run, and the two writers never share a bracket */
    _Alignas(64) uint64_t mem_seq;
    ms_sample mem;
} ms_entry;

typedef struct ms_master {
    uint64_t seq;
    int32_t pid;
    int32_t workers; /* wanted */
    char gc_mode[16];
    int32_t thresholds[MS_GC_GENS];
    bool immortal;
    uint64_t state_bytes; /* heap bytes the master holds (the state) */
    uint64_t state_pages; /* resident pages of the heap's regions */
    ms_sample mem;
    uint64_t restarts[MS_SB_SLOTS][MS_RESTART_REASONS]; /* replacements per slot, by reason */
} ms_master;

typedef struct ms_scoreboard {
    ms_master master;
    ms_entry entries[MS_SB_ENTRIES];
    /* Connections each slot's worker holds, for spreading accepts: written
     * with atomic stores by the worker (and MS_SLOT_UNAVAILABLE by a worker
     * that stops accepting, or by the master while the slot has no worker),
     * read with atomic loads by the others. */
    uint32_t conns[MS_SB_SLOTS];
} ms_scoreboard;

#define MS_SLOT_UNAVAILABLE UINT32_MAX

void ms_sb_set_conns(ms_scoreboard *sb, int slot, uint32_t n);
/* Whether a worker holding `mine` connections in `slot` should accept the
 * next one: when no other of the first `nslots` slots holds fewer. */
bool ms_sb_should_accept(const ms_scoreboard *sb, int slot, int nslots, uint32_t mine);

/* Maps a zeroed scoreboard shared with future children; NULL on failure. */
ms_scoreboard *ms_sb_create(void);
void ms_sb_destroy(ms_scoreboard *sb);

/* Master: takes a free entry for a process about to be forked (status
 * STARTING, its slot and generation; pid set after the fork with
 * ms_sb_set_pid); returns its index or -1 if all are taken.  The entry's
 * worker-written figures start at zero. */
int ms_sb_claim(ms_scoreboard *sb, int slot, int generation);
void ms_sb_set_pid(ms_scoreboard *sb, int index, int pid);
void ms_sb_set_status(ms_scoreboard *sb, int index, ms_status status);
void ms_sb_release(ms_scoreboard *sb, int index); /* back to MS_FREE */
/* The index of the claimed entry whose pid is `pid`, or -1. */
int ms_sb_find_pid(const ms_scoreboard *sb, int pid);
/* One entry's status, read alone (no copy of the entry). */
ms_status ms_sb_status(const ms_scoreboard *sb, int index);

/* Writers bracket every update of an entry (or of the master part) with
 * these: begin makes the counter odd, end makes it even again. */
void ms_sb_write_begin(uint64_t *seq);
void ms_sb_write_end(uint64_t *seq);

/* A consistent copy of entry i (or of the master part); retries while a
 * writer is at work (bounded: gives up, zeroes *out and returns false after
 * many tries; callers skip that entry this time). */
bool ms_sb_read_entry(const ms_scoreboard *sb, int i, ms_entry *out);
bool ms_sb_read_master(const ms_scoreboard *sb, ms_master *out);

/* The bucket of a duration. */
int ms_hist_bucket(double seconds);

#endif
