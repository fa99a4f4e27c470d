/* dashboard: the page GET /dashboard serves (README, "Watching sharing"):
 * one self-contained HTML document -- no external script, font or style --
 * that polls /stats and /metrics every second and draws, per worker, the
 * copied MiB of the inherited state over the last minutes, the shared
 * share, req/s, p99 and collection pauses, and copied pages by type when
 * the server reports them. */
#ifndef COWDAG_HANDLERS_DASHBOARD_H
#define COWDAG_HANDLERS_DASHBOARD_H

#include <stddef.h>

extern const char h_dashboard_html[];
extern const size_t h_dashboard_len;

#endif
