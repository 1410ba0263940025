/* idem_app.h — the one header of idem an app includes, and what an app
 * gives idem. An app (apps/<name>/) is a workflow-and-activities package
 * the engine runs without knowing it: its workflow types (deterministic
 * functions the supervisor replays) and their activities' options. The
 * engine, the pool, the API and the worker name none of an app's
 * activities, tables, keys or fields: they find them here.
 *
 * The rule for a workflow type: a start is refused (400, nothing
 * created) with whatever its activities would refuse as invalid input,
 * so that an accepted start can fail only for what the world says, never
 * for what the client sent. prepare() checks the input with the very
 * function the activities call, not a copy of their rules; check_ids()
 * checks what the workflow derives from its namespace and id (keys it
 * hands its activities) against their limits. */
#ifndef IDEM_APP_H
#define IDEM_APP_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>

#include "config.h"
#include "db.h"
#include "fault.h"
#include "msg.h"
#include "retry.h"

struct idem_app;

/* ---- workflows ---------------------------------------------------------- */

enum idem_wf_outcome {
	IDEM_WF_SUSPEND, /* waiting for an activity: run again when it moves */
	IDEM_WF_DONE,    /* completed with run->result */
	IDEM_WF_FAIL,    /* failed with run->error */
};

/* One run of a workflow function, from the top, over its recorded steps.
 * A workflow decides only from input and the results the activities hand
 * back: no clock, no randomness, no config read (prepare() copies into
 * the input whatever config value a replay must see the same). */
struct idem_wf_run {
	const json_t *input; /* BORROWED: the start's input, as prepare() left it */
	const char *namespace_;
	const char *workflow_id;
	int next_step;  /* the step number the next activity call gets */
	json_t *result; /* NEW reference, set by the function before DONE */
	char error[512];
	/* the engine's */
	int (*call)(struct idem_wf_run *run, const char *activity, json_t *input, json_t **result);
	void *engine;
};

/* Asks for activity `activity` with input (STOLEN) as the next step.
 * Returns 1 with *result (BORROWED) when that step completed; 0 while it
 * is pending (the function returns IDEM_WF_SUSPEND); -1 when it failed
 * for good or the history no longer matches the code (run->error says
 * which: the function returns IDEM_WF_FAIL). */
static inline int idem_wf_activity(struct idem_wf_run *run, const char *activity, json_t *input,
                                   json_t **result)
{
	return run->call(run, activity, input, result);
}

struct idem_workflow {
	const char *name;
	enum idem_wf_outcome (*run)(struct idem_wf_run *run);
	/* Checks a start's input (with the check its activities run) and
	 * fills defaults from cfg, so that a replay sees them unchanged.
	 * Returns 0, or -1 with err naming the field and what to give. */
	int (*prepare)(json_t *input, const struct idem_config *cfg, char *err, size_t errlen);
	/* Checks what the workflow derives from its namespace and id; NULL:
	 * nothing to check. */
	int (*check_ids)(const char *ns, const char *workflow_id, char *err, size_t errlen);
	/* The input field a start's workflow_id defaults to; NULL: none. */
	const char *id_field;
};

/* What the workflow code says about an activity: whether it heartbeats
 * (HEARTBEAT_TIMEOUT applies to it) and its retry policy, whose zero
 * fields take the config's defaults; non_retryable is a comma list of
 * error types, added to RETRY_NON_RETRYABLE. */
struct idem_activity_options {
	const char *name;
	int heartbeats;
	struct retry_policy retry;
	const char *non_retryable;
	int peer; /* it calls the app's outside service (its peer): peer faults apply */
};

/* ---- activities ----------------------------------------------------------- */

/* A seam for fault injection: at() is called at each crash point an
 * attempt reaches (FAULT_BEFORE_EFFECT: before its transaction or its
 * call out; FAULT_AFTER_EFFECT: the effect written, not committed;
 * FAULT_AFTER_COMMIT: committed, the result not yet built) and may kill
 * the process. FAULT_MID_REPLY is the worker's, never offered here. A
 * replay skips FAULT_AFTER_EFFECT (there is no effect), a refusal stops
 * after FAULT_BEFORE_EFFECT. When at() is called no statement is left
 * unfinalized and no heap memory is held by the attempt. */
struct idem_activity_hooks {
	void (*at)(void *arg, enum fault_point p, const struct msg_task *t);
	void *arg;
};

/* What one attempt runs with. */
struct idem_activity_env {
	const struct idem_app *app; /* whose activity it is (activity_run) */
	sqlite3 *db;                /* the app DB, opened by the worker */
	const char *peer;       /* the app's outside service: a Unix socket or http://HOST:PORT */
	int peer_timeout_ms;    /* 0: the activity's own default */
	const char *peer_fault; /* the attempt's planned peer fault (fault.h), or NULL */
	int naive;              /* run without the idempotency guards */
	const struct idem_activity_hooks *hooks; /* may be NULL */
	/* Checkpoints progress: details (BORROWED) reach the next attempt
	 * as t->heartbeat. Returns 0 or -1; NULL = none. */
	int (*heartbeat)(void *arg, json_t *details);
	void *heartbeat_arg;
};

struct idem_activity_outcome {
	json_t *result; /* NEW reference when ok; the caller decrefs it */
	char error_type[64];
	char error_message[512];
	int retryable;
};

/* An activity: returns 0 with out->result, or -1 with the error fields
 * set (its input refused: InvalidInput, non-retryable). */
struct idem_activity {
	const char *name;
	int (*run)(const struct idem_activity_env *env, const struct msg_task *t,
	           struct idem_activity_outcome *out);
};

/* ---- the app ------------------------------------------------------------ */

/* ---- the app's own endpoints ------------------------------------------------ */

/* An endpoint of the control API that the app serves: path is
 * "/v1/<segment>/<ARG>" with its argument in capitals
 * ("/v1/stock/PRODUCT"), method "GET", "PUT" or "POST". handle() runs in
 * the supervisor's loop on its connection to the app DB, with the
 * request's JSON object as body (NULL for GET), and returns an HTTP
 * status: with *reply (NEW) as the body when it is under 400, else with
 * err saying why (the API answers {"error", "status"}). */
struct idem_app_route {
	const char *path;
	const char *method;
	int (*handle)(sqlite3 *db, const char *arg, const json_t *body, json_t **reply, char *err,
	              size_t errlen);
};

/* The lists end with an entry whose name (path) is NULL. */
struct idem_app {
	const char *name;
	const char *summary; /* one line, for --help and errors */
	const struct idem_workflow *workflows;
	const struct idem_activity_options *options;
	const struct idem_activity *activities;
	/* Opens (creating and migrating) the app DB at path. With seed_cfg
	 * (the supervisor's; NULL in a worker) a database that this call
	 * creates is filled from it in the same transaction. */
	int (*open_db)(const char *path, enum db_sync sync, const struct idem_config *seed_cfg,
	               sqlite3 **out, char *err, size_t errlen);
	const struct idem_app_route *routes;
	const struct config_app_key *keys; /* its configuration keys (config.h) */
};

#endif
