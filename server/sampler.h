/* sampler: fills scoreboard figures for this process -- a memory sample
 * (smaps_rollup, and pagemap over the heap regions that count as state) and
 * the collector's figures -- into caller-owned copies, so that the write
 * bracket of the scoreboard covers only a copy, never the /proc reads. */
#ifndef COWDAG_SAMPLER_H
#define COWDAG_SAMPLER_H

#include "heap/heap.h"
#include "memstats/scoreboard.h"

/* A worker's state is what it inherited from the master. */
void srv_sample_worker(ms_sample *mem, ms_gc_figures *gc);

/* The collector's and heap's figures alone (cheap: counters). */
void srv_gc_figures(ms_gc_figures *gc);

/* --- the worker's sampling thread ---------------------------------------
 * Reading /proc for 1 GiB of state takes the kernel tens of milliseconds
 * (it walks every page), too long to stall a request for.  So a worker
 * samples on a thread of its own, which reads only /proc and the list of
 * inherited regions taken when it started -- never the heap, which stays
 * single-threaded -- and writes each sample into the worker's scoreboard
 * entry itself, under the entry's memory counter (memstats/scoreboard.h):
 * a sample is at most an interval old even while the loop is busy with a
 * long run. */
typedef struct srv_sampler srv_sampler;

/* Starts the thread: a sample into e every interval_ms, the first at once. */
srv_sampler *srv_sampler_start(int interval_ms, ms_entry *e);
/* How many samples the thread has written so far. */
uint64_t srv_sampler_count(const srv_sampler *s);

/* --- copied pages by what lives on them ---------------------------------
 * A map of the inherited state: every page's types and region, read from
 * the heap's own layout once (heap_region_pages), so that each sample
 * attributes the private pages the pagemap shows without walking objects. */
typedef struct srv_state_map srv_state_map;

/* A map of the given inherited regions, not yet labelled (copies the
 * region list only); NULL when out of memory. */
srv_state_map *srv_state_map_new(const heap_region *regions, size_t n);
/* Labels every page from the heap's layout.  Reads only inherited memory:
 * safe on a thread beside the heap's.  MS_OK, or MS_ERR when out of memory
 * (the map stays unlabelled). */
int srv_state_map_label(srv_state_map *m);
void srv_state_map_free(srv_state_map *m);
/* One pagemap pass over the map's pages: their sharing into *pages and,
 * once the map is labelled, the private ones by type and region into
 * *copied (*labelled says which).  MS_OK or MS_ERR. */
int srv_state_map_sample(const srv_state_map *m, ms_pages *pages, ms_copied *copied, bool *labelled);

/* The same for this process's inherited state now, on the heap's thread
 * (cowdag cowtest). */
int srv_state_copied(ms_pages *pages, ms_copied *copied);

/* The master's state is its whole heap; *state_bytes gets the heap's live
 * bytes and *state_pages its resident pages. */
void srv_sample_master(ms_sample *mem, uint64_t *state_bytes, uint64_t *state_pages);

#endif
