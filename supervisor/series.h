/* series.h — the supervisor's recent past for the dashboard: once a
 * second the loop samples its counters (engine_stats, pool_stats), and
 * GET /v1/series returns the last SERIES_LEN seconds as per-second
 * deltas: workflows closed, attempts, failures, retries, faults by kind
 * and kills by crash point, worker deaths, the ready queue and the busy
 * workers. Held in memory only: a restarted supervisor starts a new
 * series (its uptime says so). */
#ifndef IDEM_SERIES_H
#define IDEM_SERIES_H

#include <jansson.h>

#define SERIES_LEN 600 /* seconds kept */

struct sup;
struct series;

/* Starts sampling on sup's loop (the first sample at once). */
struct series *series_new(struct sup *sup);
void series_free(struct series *s);
/* The last `seconds` seconds (1..SERIES_LEN), oldest first: {"interval_s":
 * 1, "t": [unix ms, ...], "started": [...], "completed": [...], ...,
 * "faults": {"kill": [...], ...}, "kills_by_point": {...}}. NEW ref. */
json_t *series_json(const struct series *s, int seconds);

#endif
