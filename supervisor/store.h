/* store.h — the state DB: workflows, steps, the append-only event history
 * and the counters row, one transaction per loop turn (group commit), and
 * the sync thread that makes commits durable behind the loop. Owns the
 * state DB connection; nothing else writes it. */
#ifndef IDEM_STORE_H
#define IDEM_STORE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "workflow.h"

struct idem_config;

struct store;

/* Opens the state DB with the durability of SYNC. With group_app (the
 * app DB, whose workers then commit without syncing) and SYNC=full, the
 * commits of both return before the disk has them and a thread syncs the
 * two WALs behind them (group commit): see store.c. */
int store_open(const char *path, enum db_sync sync, sqlite3 *group_app, struct store **out,
               char *err, size_t errlen);
/* store_open()'s return when another supervisor holds the database (on
 * PostgreSQL; on SQLite the lock file beside it keeps a second one out
 * before). */
#define STORE_HELD (-2)
/* Whether group commit is on. */
int store_group_commit(const struct store *s);
/* Group commit: a ticket whose sync covers every app-DB commit made so
 * far, and the last ticket covered. */
uint64_t store_app_sync_request(struct store *s);
uint64_t store_app_durable(const struct store *s);
/* Commits so far, and how many of them are known to be on disk (all of
 * them without a sync thread); UINT64_MAX with err when a sync failed. */
uint64_t store_committed(const struct store *s);
uint64_t store_durable(struct store *s, char *err, size_t errlen);
/* Asks the sync thread to make every commit so far durable; readable
 * store_sync_fd() says it advanced (or failed). -1 without a thread. */
void store_sync_request(struct store *s);
int store_sync_fd(const struct store *s);
/* Empties store_sync_fd(): only its reader does, so that no advance of
 * the sync thread goes unnoticed. */
void store_sync_drain(struct store *s);
/* Blocks until every commit so far is durable. */
int store_sync_wait(struct store *s, char *err, size_t errlen);
void store_close(struct store *s);
sqlite3 *store_db(struct store *s);

/* Several supervisors on one state DB (PostgreSQL; on SQLite these do
 * nothing and store_shared() is 0). store_join() registers this run
 * under name with its lease, before store_load_running(), which then
 * adopts the running workflows of runs whose lease lapsed and of this
 * name's earlier runs, and loads those this run owns. Returns 0,
 * STORE_HELD when a live run has the name, or -1. */
int store_shared(const struct store *s);
int store_join(struct store *s, const char *name, int64_t lease_ms, char *err, size_t errlen);
/* Adopts, in this turn's transaction, the running workflows of runs
 * whose lease lapsed; calls fn for each (fn owns the wf). Returns how
 * many, or -1. */
int store_adopt(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg, char *err,
                size_t errlen);
/* Renews the lease in this turn's transaction (which it opens). */
int store_renew(struct store *s, char *err, size_t errlen);
/* This run's id among the supervisors (0 on SQLite), and its name. */
int64_t store_run_id(const struct store *s);
const char *store_run_name(const struct store *s);

/* Whether the store can no longer be used: the connection to PostgreSQL
 * was lost (seen by any statement, a read too). A new connection would
 * not do: this turn's transaction is gone with the old one. */
int store_broken(const struct store *s, char *err, size_t errlen);

/* Writes join the turn's transaction, opened on the first write. */
int store_commit(struct store *s, char *err, size_t errlen);
int store_dirty(const struct store *s);

/* Whether workflow id runs (1), does not (0), or -1; on PostgreSQL only
 * (another supervisor's), 0 on SQLite. */
int store_wf_running(struct store *s, int64_t id, char *err, size_t errlen);

/* Returns 1 with *id and *status when (ns, workflow_id) exists, 0 when
 * not, -1 on error. */
int store_wf_lookup(struct store *s, const char *ns, const char *workflow_id, int64_t *id,
                    char *err, size_t errlen);
/* Returns 0, -1 with err, or 1 when (namespace, workflow_id) was taken
 * meanwhile by another supervisor sharing the state DB (nothing
 * written). */
int store_wf_insert(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen);
int store_wf_close(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen);
int store_step_save(struct store *s, struct step *st, char *err, size_t errlen);
/* detail is BORROWED and may be NULL. */
int store_event(struct store *s, int64_t wf_id, int seq, int attempt, const char *kind, long pid,
                json_t *detail, char *err, size_t errlen);
/* The same with detail as JSON text (NULL: none). */
int store_event_text(struct store *s, int64_t wf_id, int seq, int attempt, const char *kind,
                     long pid, const char *detail, char *err, size_t errlen);

/* Loads every running workflow with its steps; calls fn for each (fn owns
 * the wf). */
int store_load_running(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg, char *err,
                       size_t errlen);

/* API views: each returns a NEW reference, or NULL with err (a missing
 * workflow is reported by returning NULL with *missing set). */
json_t *store_wf_json(struct store *s, int64_t id, char *err, size_t errlen);
json_t *store_history_json(struct store *s, int64_t id, char *err, size_t errlen);
json_t *store_list_json(struct store *s, const char *ns, const char *status, int limit,
                        int64_t after, char *err, size_t errlen);
/* The workflows of namespace ns whose id starts with prefix, in id
 * order, after the id after (NULL: from the first): {"workflows": [...],
 * "next_after_id": the last id or null}. Walks the (namespace,
 * workflow_id) index, so a page costs the same at any size. */
json_t *store_search_json(struct store *s, const char *ns, const char *prefix, const char *after,
                          int limit, char *err, size_t errlen);
json_t *store_counts_json(struct store *s, char *err, size_t errlen);

/* Records, in this turn's transaction, a fault plan this run now runs
 * at ts (wall ms) under (action: "start", "set", "off", "reset", "expired", "reload"),
 * as JSON text, until until_ms (wall clock; 0: no end); *id is its row. */
int store_fault_plan(struct store *s, int64_t ts, const char *action, const char *plan,
                     int64_t until_ms, int64_t *id, char *err, size_t errlen);
/* The latest limit fault plans, newest first: [{"id", "ts", "supervisor"
 * (its name on PostgreSQL, else null), "action", "plan", "until"}]. */
json_t *store_fault_plans_json(struct store *s, int limit, char *err, size_t errlen);

/* Where the pruner's pass over closed workflows (oldest first) stands;
 * {INT64_MIN, 0} starts a pass. */
struct store_prune_cursor {
	int64_t closed_at, id;
};

/* RETENTION: looks at the next scan closed workflows from cur on and
 * deletes, in this turn's transaction, those past their namespace's
 * retention (config_retention) with their steps and events; the counters
 * and the pruned table follow. Returns the rows looked at (fewer than
 * scan: the pass is over and cur starts again) with *pruned, or -1. */
int store_prune(struct store *s, int64_t now_ms, const struct idem_config *cfg,
                struct store_prune_cursor *cur, int scan, int *pruned, char *err, size_t errlen);

#endif
