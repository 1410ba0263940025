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
#include "idem_app.h"
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
	/* the options its workflow called it with (a step's own retry or
	 * timeout), or NULL: its activity's (step_options()) */
	const struct idem_activity_options *options;
	int dirty; /* its row waits to be written before the turn's COMMIT */
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

/* One replay of a workflow: what its function sees (run, first: the
 * app's idem_wf_activity() finds the rest from it) and what the engine
 * reads after. */
struct wf_ctx {
	struct idem_wf_run run;
	struct wf *wf;
	int scheduled; /* steps added by this run */
};

/* The app's workflow type called name, or NULL. */
const struct idem_workflow *wf_type_find(const struct idem_app *app, const char *name);
/* Writes "unknown workflow type \"name\" (known: ...)" into err. */
void wf_type_unknown(const struct idem_app *app, const char *name, char *err, size_t errlen);
/* The options of activity name (a default entry for an unknown one). */
const struct idem_activity_options *activity_options_find(const struct idem_app *app,
                                                          const char *name);
/* The options st runs under: its workflow's for that step, else its
 * activity's. */
const struct idem_activity_options *step_options(const struct idem_app *app, const struct step *st);

/* Runs wf's function (type, NULL when the app has none of that name)
 * once over its recorded steps; ctx->run.result or ctx->run.error say
 * how it ended. */
enum idem_wf_outcome wf_replay(struct wf *wf, const struct idem_workflow *type, struct wf_ctx *ctx);

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
