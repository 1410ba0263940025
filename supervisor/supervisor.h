/* supervisor.h — the types of idem-supervisor, in one place.
 *
 *   workflow.c  workflow types (the inventory workflow) and deterministic
 *               replay of a workflow function over its recorded steps
 *   store.c     the state DB: workflows, steps, events (prepared statements)
 *   pool.c      the worker slot table: spawn, ready, busy, backoff, reap,
 *               plus the supplier child
 *   engine.c    scheduling: run workflows, dispatch steps to idle workers,
 *               retries, timeouts, group commit, waiters
 *   api.c       the control API (evhttp) on a Unix socket, TCP optional
 *   metrics.c   histograms and counters, rendered for GET /metrics
 *   main.c      configuration, signals, the event loop
 *
 * One event_base; nothing blocks but SQLite. Each loop turn ends in
 * engine_turn_end(): replay workflows that can progress, assign ready
 * steps to idle workers, COMMIT once (group commit), and only once that
 * commit is durable let anything leave: task frames, HTTP replies, waiter
 * wake-ups (with SYNC=full a thread syncs behind the loop: store.c). So
 * a client never hears of a start or completion that is not durable, and
 * no worker runs an activity for a workflow whose start could still be
 * lost. */
#ifndef IDEM_SUPERVISOR_H
#define IDEM_SUPERVISOR_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "config.h"
#include "db.h"
#include "fault.h"
#include "frame.h"
#include "retry.h"

struct sup;
struct wf;
struct evbuffer;

/* Arms a timer event to fire in ms milliseconds. */
static inline void timer_in(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

/* ---- workflows and steps (workflow.c) ---------------------------------- */

enum step_status { STEP_SCHEDULED, STEP_RUNNING, STEP_COMPLETED, STEP_FAILED };
enum wf_status { WF_RUNNING, WF_COMPLETED, WF_FAILED };

struct step {
	struct wf *wf;
	int seq;
	char *activity;
	json_t *input;     /* owned */
	char *input_text;  /* owned cache of input as JSON text (json_text()) */
	char *result_text; /* owned cache of result as JSON text */
	enum step_status status;
	int attempt;             /* attempts started so far */
	json_t *result;          /* owned; when completed */
	char *error_type;        /* owned; last error */
	char *error_message;     /* owned; last error */
	json_t *heartbeat;       /* owned or NULL: latest heartbeat details */
	int64_t next_attempt_at; /* wall ms; 0 = as soon as a worker is idle */
	int64_t scheduled_at;    /* wall ms it was first scheduled (schedule_to_close) */
	/* runtime only */
	int queued;                    /* in the engine's ready queue */
	int64_t ready_us;              /* mono us it entered the ready queue (dispatch latency) */
	struct event *timer;           /* retry backoff */
	struct event *deadline;        /* schedule_to_close, when set */
	int expired;                   /* schedule_to_close passed: no more attempts */
	int saved;                     /* its row exists in the state DB */
	enum step_status saved_status; /* as that row has it (counters) */
	int saved_attempt;
	int result_pending; /* its result waits for the app DB's sync */
	int slot;           /* worker slot running it, or -1 */
	int dirty;          /* its row waits to be written before the turn's COMMIT */
	struct step *dirty_next;
	TAILQ_ENTRY(step) ready;
};

struct waiter;
TAILQ_HEAD(waiter_list, waiter);

struct wf {
	int64_t id; /* rowid in the state DB */
	char *namespace_;
	char *workflow_id;
	char *type;
	json_t *input;    /* owned */
	char *input_text; /* owned cache of input as JSON text (json_text()) */
	enum wf_status status;
	json_t *result;        /* owned; when completed */
	char *result_text;     /* owned cache of result as JSON text */
	char *error;           /* owned; when failed */
	int64_t created_at;    /* wall ms */
	int64_t closed_at;     /* wall ms; 0 while running */
	uint64_t start_commit; /* the state-DB commit that recorded its start (0: loaded) */
	struct step **steps;   /* steps[seq], each owned */
	int nsteps;
	int capsteps;
	int runnable;           /* queued for replay at the end of the turn */
	int finished_this_turn; /* closed; wake waiters, then free */
	struct waiter_list waiters;
	struct engine *engine; /* set while the engine holds it */
	struct wf *hnext;      /* engine hash chain */
	TAILQ_ENTRY(wf) runq;
};

/* A workflow function runs from the top each time and asks for its
 * activities in order through wf_activity(). */
enum wf_outcome { WF_SUSPEND, WF_DONE, WF_FAIL };

struct wf_ctx {
	struct wf *wf;
	int cursor;      /* next step seq to be asked for */
	int scheduled;   /* steps added by this run */
	json_t *result;  /* NEW ref set by the function on WF_DONE */
	char error[512]; /* set on WF_FAIL */
};

typedef enum wf_outcome (*wf_fn)(struct wf_ctx *ctx);

/* A workflow type. Rule (workflow.c, above the table of types): whatever
 * its activities would refuse as invalid input is refused at start. */
struct wf_type {
	const char *name;
	wf_fn run;
	/* Checks a start request's input (with the check its activities run)
	 * and fills defaults (config values that must not change under replay
	 * are copied into it). */
	int (*prepare)(json_t *input, const struct idem_config *cfg, char *err, size_t errlen);
	/* Checks what the workflow derives from its namespace and id (keys
	 * it hands to its activities) against their limits; NULL: nothing. */
	int (*check_ids)(const char *ns, const char *workflow_id, char *err, size_t errlen);
};

/* What the workflow code says about an activity: whether it heartbeats
 * (HEARTBEAT_TIMEOUT applies to it) and its retry policy, whose zero
 * fields take the config's defaults. */
struct activity_options {
	const char *name;
	int heartbeats;
	struct retry_policy retry;
	const char *non_retryable; /* comma list, added to RETRY_NON_RETRYABLE */
};

/* The options of activity name (a default entry for an unknown one). */
const struct activity_options *activity_options_find(const char *name);

const struct wf_type *wf_type_find(const char *name);
/* "inventory" and so on, for error messages. */
const char *wf_type_names(void);
/* The check_ids() of type for a start of (ns, workflow_id): 0, or -1 with
 * err naming the field, its limit and its length. 0 for an unknown type
 * (engine_start refuses it). */
int wf_check_ids(const char *type, const char *ns, const char *workflow_id, char *err,
                 size_t errlen);

/* Asks for activity `name` with input (STOLEN) as the next step.
 * Returns 1 with *result (BORROWED) when the step has completed; 0 when it
 * is pending (it is scheduled when new); -1 when it failed for good or the
 * code no longer matches the recorded history (ctx->error says which). */
int wf_activity(struct wf_ctx *ctx, const char *name, json_t *input, json_t **result);

/* Runs wf's function once over its recorded steps. */
enum wf_outcome wf_replay(struct wf *wf, struct wf_ctx *ctx);

struct wf *wf_new(int64_t id, const char *ns, const char *workflow_id, const char *type,
                  json_t *input);
struct step *wf_add_step(struct wf *wf, const char *activity, json_t *input);
void wf_free(struct wf *wf);
/* j as compact JSON text, dumped once into *cache (owned by the caller's
 * struct) and reused: a workflow's input and results are written to the
 * state DB several times each (rows, events). NULL for NULL. */
const char *json_text(const json_t *j, char **cache);
/* The workflow as the API shows it (NEW reference), built from memory:
 * the same object store_wf_json() reads back from its committed rows. */
json_t *wf_json(const struct wf *wf);
/* The same object as compact JSON text (malloc'd), written from the
 * texts the workflow keeps (json_text()) rather than dumped: the reply to
 * every wait carries it. */
char *wf_json_text(struct wf *wf);
const char *wf_status_name(enum wf_status s);
const char *step_status_name(enum step_status s);
int wf_status_parse(const char *name, enum wf_status *out);
int step_status_parse(const char *name, enum step_status *out);

/* ---- the state DB (store.c) --------------------------------------------- */

struct store;

/* Opens the state DB with the durability of SYNC. With group_app (the
 * app DB, whose workers then commit without syncing) and SYNC=full, the
 * commits of both return before the disk has them and a thread syncs the
 * two WALs behind them (group commit): see store.c. */
int store_open(const char *path, enum db_sync sync, sqlite3 *group_app, struct store **out,
               char *err, size_t errlen);
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

/* Writes join the turn's transaction, opened on the first write. */
int store_commit(struct store *s, char *err, size_t errlen);
int store_dirty(const struct store *s);

/* Returns 1 with *id and *status when (ns, workflow_id) exists, 0 when
 * not, -1 on error. */
int store_wf_lookup(struct store *s, const char *ns, const char *workflow_id, int64_t *id,
                    char *err, size_t errlen);
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
json_t *store_counts_json(struct store *s, char *err, size_t errlen);

/* ---- the worker pool (pool.c) ------------------------------------------- */

enum slot_state {
	SLOT_EMPTY,    /* not started yet */
	SLOT_SPAWNING, /* started, waiting for its ready frame */
	SLOT_READY,    /* idle, can take a task */
	SLOT_BUSY,     /* running one attempt */
	SLOT_STOPPING, /* channel closed, killed or asked to exit; waiting to reap */
	SLOT_BACKOFF,  /* dead; respawn timer armed */
	SLOT_FAILED,   /* gave up after a burst of deaths */
	SLOT_NSTATES
};

enum slot_event {
	SE_SPAWN,   /* fork+exec done */
	SE_READY,   /* ready frame */
	SE_ASSIGN,  /* a task was sent */
	SE_DONE,    /* its result came back */
	SE_CLOSE,   /* channel error/EOF, timeout kill, or shutdown */
	SE_EXIT,    /* reaped */
	SE_GIVE_UP, /* too many deaths in the window */
	SE_NEVENTS
};

/* The slot lifecycle as a table: the next state, or -1 when the event is
 * not valid in that state. Pure; tests drive it without processes. */
int slot_next(enum slot_state s, enum slot_event e);
const char *slot_state_name(enum slot_state s);

/* Respawn throttling, pure: at least POOL_RESPAWN_MIN_MS between two
 * spawns of a slot unless the worker had been ready for longer than that;
 * POOL_BURST_DEATHS unexpected deaths within POOL_BURST_WINDOW_MS give up
 * the slot. */
#define POOL_RESPAWN_MIN_MS 1000
#define POOL_BURST_DEATHS 5
#define POOL_BURST_WINDOW_MS 10000

struct slot_history {
	int64_t spawned_at;                /* mono ms of the last spawn */
	int64_t ready_at;                  /* mono ms it became ready, 0 = never */
	int64_t deaths[POOL_BURST_DEATHS]; /* mono ms of recent unexpected deaths */
	int ndeaths;
};

/* Records a death at now and returns the delay in ms before the respawn,
 * or -1 to give up. An expected death (the supervisor killed it, or a
 * planned crash) respawns at once and does not count toward the burst. */
int64_t slot_respawn_delay(struct slot_history *h, int64_t now, int expected);

struct slot {
	int index;
	enum slot_state state;
	pid_t pid;            /* 0 while pid_pending */
	int pid_pending;      /* asked the fork server, its reply not read yet */
	uint64_t spawn_token; /* its worker's fork request, to match the reply */
	struct bufferevent *bev;
	struct frame_decoder dec;
	struct event *timer; /* respawn or attempt timeout */
	struct slot_history hist;
	int spawns;
	int restarts;              /* spawns after the first */
	int expected_exit;         /* the supervisor caused or planned the coming exit */
	struct event *hb_timer;    /* heartbeat timeout of the running attempt */
	struct event *fault_timer; /* an async kill planned for the running attempt */
	struct fault_plan plan;    /* the running attempt's fault plan */
	char close_reason[256];    /* why the channel was closed */
	struct step *step;         /* the attempt it runs */
	int64_t task_id;
	int64_t started_at; /* mono ms the attempt was sent */
	int64_t sent_us;    /* mono us the attempt's task frame was sent (activity duration) */
	int cause;          /* enum death_cause of its coming exit, as far as known */
	struct sup *sup;
};

struct pool;

int pool_start(struct sup *sup, struct pool **out, char *err, size_t errlen);
void pool_free(struct pool *p);
/* An idle slot, or NULL. */
struct slot *pool_idle(struct pool *p);
/* Marks sl busy with st under a fresh task id, which it returns; plan is
 * the attempt's fault plan (a planned death is an expected one). */
int64_t pool_assign(struct slot *sl, struct step *st, const struct fault_plan *plan);
/* The slot at index i. */
struct slot *pool_slot(struct pool *p, int i);
/* A heartbeat arrived: the heartbeat timeout starts again. */
void pool_heartbeat_seen(struct slot *sl);
int pool_busy_count(const struct pool *p);
int pool_live_count(const struct pool *p);
/* Sends a task frame (NEW ref msg is consumed). Returns 0, or -1 when the
 * channel failed (the slot is closed and the attempt failed). */
int pool_send(struct slot *sl, json_t *msg);
/* Closes the channel of sl, SIGKILLs its worker and fails its attempt
 * with a history event of kind, an error of error_type, and reason. */
void pool_kill(struct slot *sl, const char *kind, const char *error_type, const char *reason);
/* Reaps children; called on SIGCHLD. */
void pool_reap(struct pool *p);
/* Shutdown: close every channel, SIGTERM, SIGKILL after kill_after_ms. */
void pool_stop(struct pool *p, int64_t kill_after_ms);
/* Number of children (workers and supplier) not yet reaped. */
int pool_children(const struct pool *p);
json_t *pool_json(const struct pool *p);
int pool_total_restarts(const struct pool *p);

/* ---- the engine (engine.c) ---------------------------------------------- */

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
};

enum { TIMEOUT_START_TO_CLOSE, TIMEOUT_HEARTBEAT, TIMEOUT_SCHEDULE_TO_CLOSE };

struct engine;

int engine_new(struct sup *sup, struct engine **out, char *err, size_t errlen);
void engine_free(struct engine *e);
/* Loads running workflows and requeues attempts that were in flight. */
int engine_recover(struct engine *e, char *err, size_t errlen);
/* Replay, dispatch, commit, then release what waited for the commit.
 * Returns 0, or -1 when the state DB failed (fatal). */
int engine_turn_end(struct engine *e, char *err, size_t errlen);
/* Waits until every commit is durable and lets out what waited for it
 * (at exit). Returns -1 when the sync failed. */
int engine_flush(struct engine *e, char *err, size_t errlen);

/* Start a workflow. Returns 201 (created), 200 (exists, same input), 409
 * (exists, other input), 400 (bad request), 503 (shutting down), with
 * *body a NEW reference to send once durable (through engine_defer) and,
 * on 200 and 201, *id the workflow's state-DB id. */
int engine_start(struct engine *e, const char *ns, const char *workflow_id, const char *type,
                 json_t *input, json_t **body, int64_t *id, char *err, size_t errlen);
/* The in-memory workflow for a running one, or NULL. */
struct wf *engine_find(struct engine *e, int64_t id);
int engine_running_count(const struct engine *e);
const struct engine_stats *engine_stats(const struct engine *e);

/* Worker callbacks from pool.c. result is BORROWED. */
void engine_on_result(struct engine *e, struct step *st, int ok, json_t *result,
                      const char *error_type, const char *error_message, int retryable, long pid);
void engine_on_heartbeat(struct engine *e, struct step *st, json_t *details);
/* The attempt on that worker ended without a result: kind is the history
 * event ("worker_lost", "worker_killed", "timed_out"), error_type the
 * attempt's error ("WorkerLost", "StartToCloseTimeout", ...), reason says
 * what happened. */
void engine_on_lost(struct engine *e, struct step *st, const char *kind, const char *error_type,
                    const char *reason, long pid);

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

/* ---- the control API (api.c) -------------------------------------------- */

struct api;

int api_start(struct sup *sup, struct api **out, char *err, size_t errlen);
void api_free(struct api *a);

/* ---- metrics (metrics.c) ------------------------------------------------ */

/* Fixed-bucket histograms in seconds (Prometheus' le buckets, 0.5 ms to
 * 10 s, then +Inf) and counters. Observing costs a few comparisons and
 * no allocation; metrics_write() renders them, with the engine's and the
 * pool's counters, as Prometheus text. */
#define METRICS_NBUCKETS 14  /* finite upper bounds; +Inf is the count */
#define METRICS_ACTIVITIES 8 /* activity labels; the last one is "other" */
#define METRICS_NAME_MAX 64

struct histogram {
	uint64_t buckets[METRICS_NBUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	double sum; /* seconds */
};

/* Why a worker died, as far as the supervisor knows when it reaps it. */
enum death_cause {
	DEATH_UNEXPECTED,   /* nothing planned it: a crash, an outside kill, an exit */
	DEATH_PLANNED_KILL, /* a planned fault: a kill at a crash point, an async kill */
	DEATH_TIMEOUT,      /* killed for start_to_close, heartbeat or schedule_to_close */
	DEATH_CHANNEL,      /* its channel was closed: garbage on it, a frame not sent */
	DEATH_SHUTDOWN,     /* stopped with the supervisor */
	DEATH_NCAUSES
};

struct metrics {
	struct histogram dispatch;                     /* a step ready -> its task frame sent */
	struct histogram commit;                       /* store_commit() wall time */
	struct histogram activity[METRICS_ACTIVITIES]; /* task sent -> result, by activity */
	char activity_name[METRICS_ACTIVITIES][METRICS_NAME_MAX];
	int nactivities;
	int64_t spawns;                /* workers forked */
	int64_t deaths[DEATH_NCAUSES]; /* workers reaped, by cause */
	int64_t api_request_timeouts;  /* API requests not in within API_REQUEST_TIMEOUT */
};

const char *death_cause_name(enum death_cause c);
void metrics_observe(struct histogram *h, double seconds);
/* Seconds between two clock_mono_us() readings. */
static inline double metrics_seconds(int64_t from_us, int64_t to_us)
{
	return (double)(to_us - from_us) / 1e6;
}
/* The histogram of activity name; a new name claims a label. */
struct histogram *metrics_activity(struct metrics *m, const char *name);
/* Appends the Prometheus text of every metric to buf. Returns 0, or -1
 * with err when the state DB could not be read. */
int metrics_write(struct sup *sup, struct evbuffer *buf, char *err, size_t errlen);

/* ---- the supervisor (main.c) -------------------------------------------- */

struct sup {
	struct idem_config cfg;
	char bindir[512];   /* where idem-worker and idem-supplier live */
	char env_path[512]; /* the .env it read, passed on to children */
	struct event_base *base;
	struct store *store;
	sqlite3 *appdb; /* for seeding and the operator's stock API */
	struct pool *pool;
	struct engine *engine;
	struct api *api;
	struct retry_policy retry;
	struct fault_config faults;
	int stopping; /* SIGTERM/SIGINT seen: no new work */
	int64_t started_mono;
	struct metrics metrics;
};

#endif
