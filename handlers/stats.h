/* stats: the bodies of GET /stats (JSON, README.md "Watching sharing") and
 * GET /metrics (Prometheus text exposition 0.0.4), rendered from one consistent
 * snapshot of the scoreboard (memstats/scoreboard.h).  The names, labels
 * and units of every metric are listed at the top of handlers/stats.c. */
#ifndef COWDAG_STATS_H
#define COWDAG_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "memstats/scoreboard.h"

/* The processes to report, copied out of the scoreboard. */
typedef struct h_snapshot {
    ms_master master;
    ms_entry workers[MS_SB_ENTRIES]; /* entries in use, by slot then generation */
    size_t nworkers;
    uint64_t now_ms; /* base_now_ms() when taken (base/clock.h) */
} h_snapshot;

/* Copies every entry in use (status other than MS_FREE). */
void h_snapshot_take(const ms_scoreboard *sb, h_snapshot *out);

/* The GET /stats document (malloc'ed, NUL-terminated):
 * {"master": {"pid", "gc": {"mode", "thresholds", "immortal"}, "state_bytes",
 *             "state_pages", "memory": {...as a worker's, without state}},
 *  "workers": [{"id" (slot), "pid", "generation", "status", "requests",
 *               "errors", "gc": {"collections": [3], "collected": [3],
 *               "pause_us_total", "pause_us_max", "tracked", "frozen",
 *               "objects"}, "memory": {"rss_bytes", "pss_bytes",
 *               "shared_clean_bytes", "shared_dirty_bytes",
 *               "private_clean_bytes", "private_dirty_bytes", "state":
 *               {"pages", "shared_pages", "private_pages", "shared_ratio",
 *                "copied_by_type", "copied_by_region", "copied_mixed_pages",
 *                "copied_empty_pages"}},
 *               "sampled_ms_ago"}]}
 * shared_ratio is 1.0 when there are no pages; sampled_ms_ago is null
 * before the first sample. */
char *h_stats_json(const h_snapshot *s);

/* Sets a state object's copied pages by what lives on them (README.md,
 * "Which object types were copied"):
 *   "copied_by_type": {TYPE: {"pages": n, "only": n}, ...} for every type a
 *       state page can hold (int, float, str, list, dict, array, table,
 *       storage): the copied pages holding it, and those holding it alone;
 *   "copied_by_region": {"pool_BYTES": n, ..., "large": n}: by the pool's
 *       block size (classes with copies only) or a large mapping;
 *   "copied_mixed_pages", "copied_empty_pages": copied pages holding
 *       several types, or none (free blocks only).
 * sum(only) + mixed + empty and sum(copied_by_region) both equal the
 * state's private_pages.  0, or -1 when out of memory. */
int h_copied_into(json_t *state, const ms_copied *c);

/* The GET /metrics text (malloc'ed). */
char *h_metrics_text(const h_snapshot *s);

#endif
