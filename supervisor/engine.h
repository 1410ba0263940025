/* engine.h — workflows in motion: replay, dispatch of ready steps to idle
 * workers, retries and timeouts, group commit and what waits for it
 * (task frames, replies, waiter wake-ups). Owns the running workflows. */
#ifndef IDEM_ENGINE_H
#define IDEM_ENGINE_H

#include <jansson.h>
#include <stdint.h>

#include "fault.h"
#include "histogram.h"
#include "pool.h"
#include "workflow.h"

struct sup;
struct step;

struct engine_stats {
	int64_t attempts;
	int64_t completed_steps;
	int64_t failed_attempts;
	int64_t retries;
	int64_t commits;
	int64_t workflows_started;
	int64_t workflows_completed;
	int64_t workflows_failed;
	int64_t faults[FAULT_NKINDS];    /* planned, by kind */
	int64_t kills_at[FAULT_NPOINTS]; /* planned kills, by crash point */
	int64_t timeouts[3];             /* start_to_close, heartbeat, schedule_to_close */
	int64_t worker_deaths;           /* attempts lost to a dead or killed worker */
	int64_t queue_depth;             /* now: ready steps waiting for an idle worker */
	struct histogram dispatch;       /* a step ready -> its task frame sent */
	struct histogram commit;         /* store_commit() wall time */
};

enum { TIMEOUT_START_TO_CLOSE, TIMEOUT_HEARTBEAT, TIMEOUT_SCHEDULE_TO_CLOSE };

struct engine;

int engine_new(struct sup *sup, struct engine **out, char *err, size_t errlen);
void engine_free(struct engine *e);
/* Loads running workflows and requeues attempts that were in flight. */
int engine_recover(struct engine *e, char *err, size_t errlen);
/* Several supervisors (store_shared()): renews this one's lease and
 * takes over, as engine_recover() does at start-up, the running
 * workflows of supervisors whose lease lapsed (while stopping: only
 * renews). A state-DB error, a lapsed lease among them, fails the turn. */
void engine_adopt_lapsed(struct engine *e);
/* Replay, dispatch, commit, then release what waited for the commit.
 * Returns 0, or -1 when the state DB failed (fatal). */
int engine_turn_end(struct engine *e, char *err, size_t errlen);
/* Waits until every commit is durable and lets out what waited for it
 * (at exit). Returns -1 when the sync failed. */
int engine_flush(struct engine *e, char *err, size_t errlen);

/* What a start came to (api.c says it in HTTP: 201, 200, 409, 400, 503,
 * 500). */
enum engine_start_rc {
	START_CREATED,  /* a new workflow */
	START_EXISTS,   /* that id exists with the same input: nothing started */
	START_CONFLICT, /* that id exists with another input */
	START_INVALID,  /* an unknown type, a bad input or bad ids: nothing created */
	START_STOPPING, /* the supervisor is shutting down */
	START_FAILED,   /* the state DB failed */
};

/* Start a workflow, with *body a NEW reference to send once durable
 * (through engine_defer; NULL when err says why) and, on START_CREATED and
 * START_EXISTS, *id the workflow's state-DB id. */
enum engine_start_rc engine_start(struct engine *e, const char *ns, const char *workflow_id,
                                  const char *type, json_t *input, json_t **body, int64_t *id,
                                  char *err, size_t errlen);
/* The in-memory workflow for a running one, or NULL. */
struct wf *engine_find(struct engine *e, int64_t id);
int engine_running_count(const struct engine *e);
const struct engine_stats *engine_stats(const struct engine *e);

/* What the pool reports on the attempts the engine gives it: pool_start
 * takes these with the engine as their argument. */
extern const struct pool_callbacks engine_pool_callbacks;

/* Replies and wake-ups that leave only after the next commit. */
typedef void (*engine_deferred_fn)(void *arg);
void engine_defer(struct engine *e, engine_deferred_fn fn, void *arg);

/* Long-poll waiters: fn(arg, wf_json_or_NULL) is called once, after the
 * commit that closed the workflow, or on timeout (NULL), or never when
 * cancelled by engine_unwait. */
typedef void (*waiter_fn)(void *arg, int timed_out);
struct waiter *engine_wait(struct engine *e, struct wf *wf, int64_t timeout_ms, waiter_fn fn,
                           void *arg);
void engine_unwait(struct engine *e, struct waiter *w);

#endif
