/* workflow.h — workflows and their steps in memory, the workflow types
 * (deterministic functions and their activities' options) and replay: a
 * workflow function re-run from the top over its recorded steps. Owns the
 * wf and step structs; the engine moves them, the store writes them. */
#ifndef IDEM_WORKFLOW_H
#define IDEM_WORKFLOW_H

#include <jansson.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"
#include "retry.h"

struct event;
struct engine;
struct waiter;

TAILQ_HEAD(waiter_list, waiter);

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

#endif
