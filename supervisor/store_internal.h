/* store_internal.h — what store.c shares with its PostgreSQL back end
 * (store_pg.c): the store itself and its counters. Nothing else includes
 * it; the engine sees only store.h. */
#ifndef IDEM_STORE_INTERNAL_H
#define IDEM_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "store.h"

/* One of the counts GET /v1/stats shows ("workflows.running", ...), held
 * in memory and written with a COMMIT that changed one: the whole row on
 * SQLite, the change since the last write (value - written) on
 * PostgreSQL. */
struct counter {
	char name[64];
	int64_t value;
	int64_t written;
};

struct pgstore;
struct syncer;

struct store {
	sqlite3 *db;         /* NULL on PostgreSQL */
	struct pgstore *pg;  /* NULL on SQLite */
	sqlite3_stmt **stmt; /* SQLite's prepared statements */
	int in_tx;
	struct counter *counters;
	size_t ncounters, capcounters;
	int counters_dirty;
	uint64_t committed;  /* commits so far */
	struct syncer *sync; /* NULL: each COMMIT syncs (or SYNC=normal) */
	int64_t busy_logged; /* mono ms of the last "locked" warning */
};

/* Counter name, created (at 0) when missing. */
struct counter *store_counter(struct store *s, const char *name);
/* Adds delta to counter "group.key"; written with the turn's COMMIT. */
void store_count(struct store *s, const char *group, const char *key, int64_t delta);

/* Opens the turn's transaction unless it is open (the first write of a
 * turn). */
int store_write(struct store *s, char *err, size_t errlen);

/* The PostgreSQL back end: the same contracts as the store_* functions
 * of store.h that call them (pgstore_open() may return STORE_HELD). */
int pgstore_open(struct store *s, const char *url, char *err, size_t errlen);
void pgstore_close(struct store *s);
int pgstore_begin(struct store *s, char *err, size_t errlen);
/* Whether the connection was lost. */
int pgstore_lost(const struct store *s);
/* Whether an error aborted the open transaction. */
int pgstore_tx_failed(const struct store *s);
int pgstore_commit(struct store *s, char *err, size_t errlen);
int pgstore_wf_lookup(struct store *s, const char *ns, const char *workflow_id, int64_t *id,
                      char *err, size_t errlen);
int pgstore_wf_insert(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen);
int pgstore_wf_close(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen);
/* Saves the step's row: updated in place when stp->saved, else written
 * whole. */
int pgstore_step_write(struct store *s, struct step *stp, char *err, size_t errlen);
int pgstore_event_text(struct store *s, int64_t wf_id, int seq, int attempt, const char *kind,
                       long pid, const char *detail, char *err, size_t errlen);
int pgstore_load_running(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg,
                         char *err, size_t errlen);
int pgstore_join(struct store *s, const char *name, int64_t lease_ms, char *err, size_t errlen);
int pgstore_adopt(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg, char *err,
                  size_t errlen);
int64_t pgstore_me(const struct store *s);
int pgstore_wf_running(struct store *s, int64_t id, char *err, size_t errlen);
const char *pgstore_name(const struct store *s);
/* The counters' rows (every supervisor's turns add to them), NEW array. */
int pgstore_counters(struct store *s, struct counter **out, size_t *n, char *err, size_t errlen);
json_t *pgstore_wf_json(struct store *s, int64_t id, char *err, size_t errlen);
json_t *pgstore_history_json(struct store *s, int64_t id, char *err, size_t errlen);
json_t *pgstore_list_json(struct store *s, const char *ns, const char *status, int limit,
                          int64_t after, char *err, size_t errlen);
json_t *pgstore_search_json(struct store *s, const char *ns, const char *prefix, const char *after,
                            int limit, char *err, size_t errlen);
/* The bounds of store_search_json's range: *lo (inclusive unless
 * *lo_after) to hi (exclusive, prefix with its last byte raised). */
void store_search_bounds(const char *prefix, const char *after, const char **lo, int *lo_after,
                         char *hi, size_t hilen);
int pgstore_fault_plan(struct store *s, int64_t ts, const char *action, const char *plan,
                       int64_t until_ms, int64_t *id, char *err, size_t errlen);
json_t *pgstore_fault_plans_json(struct store *s, int limit, char *err, size_t errlen);
int pgstore_prune(struct store *s, int64_t now_ms, const struct idem_config *cfg,
                  struct store_prune_cursor *cur, int scan, int *pruned, char *err, size_t errlen);

#endif
