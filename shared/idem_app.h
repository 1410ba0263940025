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

#include "appconn.h"
#include "config.h"
#include "db.h"
#include "fault.h"
#include "msg.h"
#include "retry.h"

struct idem_app;
struct idem_workflow;
struct idem_activity_options;

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
	const struct idem_workflow *type; /* whose function runs (its data) */
	int next_step;                    /* the step number the next activity call gets */
	json_t *result;                   /* NEW reference, set by the function before DONE */
	char error[512];
	/* the engine's */
	int (*call)(struct idem_wf_run *run, const char *activity, json_t *input,
	            const struct idem_activity_options *options, json_t **result);
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
	return run->call(run, activity, input, NULL, result);
}

/* The same, for a step with options of its own (its retry policy, its
 * timeout) instead of its activity's: options (BORROWED) must live as
 * long as the workflow type, and a replay must give the same. */
static inline int idem_wf_activity_with(struct idem_wf_run *run, const char *activity,
                                        const struct idem_activity_options *options, json_t *input,
                                        json_t **result)
{
	return run->call(run, activity, input, options, result);
}

struct idem_workflow {
	const char *name;
	enum idem_wf_outcome (*run)(struct idem_wf_run *run);
	/* Checks a start's input (with the check its activities run) and
	 * fills defaults from cfg, so that a replay sees them unchanged.
	 * Returns 0, or -1 with err naming the field and what to give. */
	int (*prepare)(const struct idem_workflow *type, json_t *input,
	               const struct idem_config *cfg, char *err, size_t errlen);
	/* Checks what the workflow derives from its namespace and id; NULL:
	 * nothing to check. */
	int (*check_ids)(const char *ns, const char *workflow_id, char *err, size_t errlen);
	/* The input field a start's workflow_id defaults to; NULL: none. */
	const char *id_field;
	const void *data; /* the type's own, for its functions (run->type) */
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
	/* The crash points its own code names (NULL-ended; NULL: the standard
	 * before_effect, after_effect, after_commit through env->hooks): a
	 * kill planned at one reaches the attempt as env->kill_at. */
	const char *const *points;
	int64_t start_to_close_ms; /* 0: START_TO_CLOSE_TIMEOUT */
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
	struct appconn *db;         /* the app DB, opened by the worker */
	const char *peer;       /* the app's outside service: a Unix socket or http://HOST:PORT */
	int peer_timeout_ms;    /* 0: the activity's own default */
	const char *peer_fault; /* the attempt's planned peer fault (fault.h), or NULL */
	/* The crash point at which the plan kills this attempt, or NULL: for
	 * an activity whose code runs elsewhere (a command), which cannot be
	 * offered the points through hooks. Killing the worker's process
	 * group there is the kill. */
	const char *kill_at;
	int naive;                               /* run without the idempotency guards */
	const struct idem_activity_hooks *hooks; /* may be NULL */
	/* Checkpoints progress: details (BORROWED) reach the next attempt
	 * as t->heartbeat. Returns 0 or -1; NULL = none. */
	int (*heartbeat)(void *arg, json_t *details);
	void *heartbeat_arg;
};

#define IDEM_STDERR_TAIL 4096 /* bytes of a command's stderr kept in the history */

struct idem_activity_outcome {
	json_t *result; /* NEW reference when ok; the caller decrefs it */
	char error_type[64];
	char error_message[512];
	int retryable;
	/* An activity that runs a command: the end of what it wrote on
	 * stderr (the history's "stderr" event), or "". */
	char stderr_tail[IDEM_STDERR_TAIL + 1];
};

/* An activity: returns 0 with out->result, or -1 with the error fields
 * set (its input refused: InvalidInput, non-retryable). */
struct idem_activity {
	const char *name;
	int (*run)(const struct idem_activity_env *env, const struct msg_task *t,
	           struct idem_activity_outcome *out);
};

/* What every activity's code needs (shared/activity.c). */

/* Sets out's error type, message and retryable; returns -1, so that an
 * activity can `return idem_activity_fail(...)`. */
int idem_activity_fail(struct idem_activity_outcome *out, const char *type, int retryable,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Offers fault point p of task t to env's hooks, when there are any. */
void idem_activity_at(const struct idem_activity_env *env, enum fault_point p,
                      const struct msg_task *t);
/* Rolls back db's open transaction, if one is open. */
void idem_activity_rollback(struct appconn *db);
/* A failed app DB step: rolls back and fails retryable (SQLITE_BUSY is
 * the usual cause) with DatabaseError "ACTIVITY: app DB: ERR". */
int idem_activity_db_error(const struct idem_activity_env *env, struct idem_activity_outcome *out,
                           const char *activity, const char *err);

/* ---- the app's side of idemctl ---------------------------------------------- */

/* A flag of `idemctl start` that fills one field of the start's input:
 * "--order-id ID" sets the string "order_id"; an integer flag takes a
 * whole number in lo..hi ("start: --quantity abc is not a positive
 * integer"). A start without --input needs every required flag
 * ("start: --order-id ID is required"); with --input, a flag given
 * overrides the field. --help shows them in the list's order. */
struct idem_start_flag {
	const char *flag;  /* "--order-id" */
	const char *field; /* "order_id" */
	const char *meta;  /* its value in --help and messages: "ID", "N" */
	int integer;       /* an integer in lo..hi, else a string */
	long long lo, hi;
	int required;
};

/* What idemctl lends an app's command: every function returns an exit
 * code (shared/exitcodes.h) after its message, or 0 to go on. */
struct idem_ctl {
	int json; /* --json: print the API's document as-is, for machines */
	/* One request to the supervisor (body BORROWED, may be NULL):
	 * returns 0 with *status and *reply (NEW; an answer that is not
	 * JSON becomes {"error"} with a status >= 300), or the exit code
	 * after saying why the supervisor could not be reached. */
	int (*request)(const struct idem_ctl *c, const char *method, const char *path,
	               const json_t *body, int *status, json_t **reply);
	/* The supervisor refused (status >= 300): says why (with --json,
	 * prints reply too) and returns the exit code. */
	int (*refused)(const struct idem_ctl *c, int status, const json_t *reply);
	/* Prints doc as one compact JSON document on stdout. */
	void (*print_json)(const json_t *doc);
	/* Percent-encodes one path segment into out (len bytes, truncated). */
	void (*escape)(const char *s, char *out, size_t len);
	/* Prints "idemctl: ..." on stderr and returns code. */
	int (*fail)(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
	/* A whole number in [min, max] into *out. Returns 0, or 2 after
	 * "CMD: WHAT TEXT is not a whole number >= 0" (or "a positive
	 * integer" when min > 0) or "... is too large (at most MAX)". */
	int (*parse_number)(const char *cmd, const char *what, const char *text, long long min,
	                    long long max, long long *out);
	void *ctl; /* idemctl's own state: not the app's to read */
};

/* A command of idemctl that the app adds ("idemctl stock get 123456"):
 * run() gets the arguments after its name and returns the exit code
 * (2: a usage error, named as "NAME: ..."). usage is its lines of --help,
 * each "  NAME ...\n", the last one's description at column 19. A name
 * of idemctl's own commands is never the app's. */
struct idem_app_command {
	const char *name;
	const char *usage;
	int (*run)(const struct idem_ctl *c, int argc, char **argv);
};

/* ---- the checker's rules ---------------------------------------------------- */

/* The checker (shared/check.h) proves that nothing was lost and nothing
 * was applied twice. It checks what holds for every app (no workflow
 * stuck, each history adding up, no nondeterminism, every database's
 * integrity); the app's check_rules add its
 * own. All run on one read-only connection, in one snapshot of every
 * file: the state DB is main, the app DB is attached as app and each of
 * the app's dbs under its schema name. A rule is one SQL query (no query
 * per row from C: it must stay fast over 100,000 workflows) whose row
 * callback reports what it finds with idem_check_add(). The order: the
 * engine counts the workflows, the app's check_totals count its own
 * (idem_check_total), the engine finds the stuck ones, the app's
 * check_rules run, the engine checks each file's integrity. A rule may
 * read the state DB's main.workflows
 * (id, namespace, workflow_id, type, status, input, result, error) and
 * main.steps (wf, seq, activity, status).
 *
 * With RETENTION, closed workflows leave the state DB; the app's rows
 * stay. pruned (namespace, workflows, through) says per namespace how
 * many left and the latest closed_at among them (wall-clock ms): a rule
 * that reports an app's row whose workflow does not exist excuses it when
 * the row was applied by then (IDEM_CHECK_PRUNED). Such a row is not
 * checked any more: the checker vouches for the history it still has. */
struct idem_check; /* one run of the checker: the engine's */

/* SQL: true when the row whose workflow is named by the text WF
 * ("namespace/workflow_id...") was applied at AT (wall-clock ms) no later
 * than the last pruned workflow of that namespace closed. */
#define IDEM_CHECK_PRUNED(WF, AT)                                                                  \
	"EXISTS (SELECT 1 FROM pruned p WHERE substr(" WF ", 1, length(p.namespace) + 1) ="        \
	" p.namespace || '/' AND " AT " <= p.through)"

/* A database the app's rules read, ATTACHed read-only after the app DB,
 * in the order of the list (whose end has a NULL schema). Its snapshot is
 * taken in that order: the order in which the programs make an effect
 * visible, so that a later snapshot only holds more of what an earlier
 * one implies. */
struct idem_app_db {
	const char *schema; /* attached under this name: "ledger" */
	const char *name;   /* what a person calls it: "supplier ledger" */
	const char *key;    /* its config key: "SUPPLIER_DATABASE" */
	const char *flag;   /* that key's flag, without "--": "supplier-database" */
	const char *(*path)(const struct idem_config *cfg); /* its path in cfg */
};

/* One of the app's totals as the checker's text words it ("3 supplier
 * orders"), in the order the text lists them; the end has a NULL name. */
struct idem_check_total_label {
	const char *name;  /* its key in the report's "totals" */
	const char *label; /* "supplier orders" */
	int verdict;       /* also in the verdict line of a check that holds */
};

typedef void (*idem_check_row_fn)(struct idem_check *c, sqlite3_stmt *st);

/* A rule, or a count of the totals: the checker runs sql and calls fn
 * for each row; what names the query in messages. A database found
 * corrupt while reading is an integrity violation, and the check goes
 * on; a query that fails otherwise fails the check with its error. A
 * list of rules ends with a NULL what. */
struct idem_check_rule {
	const char *what; /* "finding lost orders" */
	const char *sql;
	idem_check_row_fn fn;
};

/* Counts one violation of kind (one of the app's check_kinds) and lists
 * it while fewer than the checker's limit (CHECK_MAX_LISTED) of that
 * kind are listed. workflows, a JSON array of "namespace/workflow_id", is
 * STOLEN; NULL means none. A kind the app does not list fails the check,
 * naming it. */
void idem_check_add(struct idem_check *c, const char *kind, json_t *workflows, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets the report's totals.name; the totals keep the order in which they
 * are first set, after the engine's "workflows". */
void idem_check_total(struct idem_check *c, const char *name, long long value);

/* Column i of a row as text, "" when NULL (BORROWED: valid until the
 * next row). */
const char *idem_check_col(sqlite3_stmt *st, int i);

/* Column i holding a JSON array (json_group_array), as a NEW array; an
 * empty one when it is not an array. */
json_t *idem_check_col_array(sqlite3_stmt *st, int i);

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
	int (*handle)(struct appconn *db, const char *arg, const json_t *body, json_t **reply,
	              char *err, size_t errlen);
};

/* A panel of the app's on the dashboard: one of its GET routes without
 * a placeholder, whose JSON the page shows under title, refreshed while
 * the overview is open. An array of objects is drawn as a table (the
 * first object's keys are the columns), an object as its keys and
 * values. */
struct idem_app_panel {
	const char *title;
	const char *path;  /* "/v1/stock" */
	const char *about; /* one line under the title */
	/* Or, for an app whose data only its own programs read (an idem.json
	 * app's command): path NULL, and run makes panel `index`'s document
	 * into *out (NEW ref), or returns -1 with err. It may take seconds,
	 * so the supervisor calls it off its loop, through `idemctl panel
	 * INDEX --offline`, at GET /v1/panels/INDEX. */
	int (*run)(int index, const struct idem_config *cfg, json_t **out, char *err,
	           size_t errlen);
};

/* ---- the app's helper process ------------------------------------------------ */

/* A process the supervisor runs for the app beside the workers (the
 * inventory's supplier): started with the pool, given the app's keys it
 * names as flags (plus --env=/dev/null, --max-body and the log flags),
 * respawned when it dies (at once after a planned death, exit
 * IDEM_EXIT_FAULT), given up after a burst of unexpected deaths like a
 * worker slot. */
struct idem_helper {
	const char *name;        /* in logs: "supplier" */
	const char *program;     /* beside idem-supervisor: "idem-supplier" */
	const char *const *keys; /* the app's keys it is given, NULL-ended */
	const char *socket_key;  /* the Unix socket it serves, waited for at start-up */
	/* Or a command of the app's own (program NULL): argv (NULL-ended,
	 * argv[0] looked up on PATH) run in dir with the supervisor's
	 * environment and no flags, serving the socket at socket_path. */
	const char *const *command;
	const char *dir;
	const char *socket_path;
};

/* ---- the app ------------------------------------------------------------ */

/* The lists end with an entry whose name (path) is NULL. */
struct idem_app {
	const char *name;
	const char *summary; /* one line, for --help and errors */
	const struct idem_workflow *workflows;
	const struct idem_activity_options *options;
	const struct idem_activity *activities;
	/* Opens (creating and migrating) the app DB at where, a path or a
	 * postgresql:// URL (appconn.h). With fill_cfg (the supervisor's;
	 * NULL in a worker) a database that this call creates is filled from
	 * it in the same transaction. */
	int (*open_db)(const char *where, enum db_sync sync, const struct idem_config *fill_cfg,
	               struct appconn **out, char *err, size_t errlen);
	const struct idem_app_route *routes;
	const struct config_app_key *keys; /* its configuration keys (config.h) */
	/* idemctl's: start's flags (ending with a NULL flag) and the app's
	 * commands (ending with a NULL name); NULL: none. */
	const struct idem_start_flag *start_flags;
	const struct idem_app_command *commands;
	/* The checker's rules (below): the app's kinds of violation in
	 * report order, NULL-ended (the engine's "stuck" comes first and
	 * "integrity" last); the databases they read besides the state and
	 * app DBs; its totals as a person reads them; check_totals, which
	 * count them (idem_check_total) before any rule runs; and
	 * check_rules, the invariants. All NULL: the engine's rules only. */
	const char *const *check_kinds;
	const struct idem_app_db *dbs;
	const struct idem_check_total_label *check_total_labels;
	const struct idem_check_rule *check_totals;
	const struct idem_check_rule *check_rules;
	/* Its helper process (NULL: none), and the key whose value is its
	 * activities' outside service, their env->peer (NULL: none). Every
	 * key of the app reaches the workers as a flag. */
	const struct idem_helper *helper;
	const char *peer_key;
	/* A check of the app's own that is no SQL rule (a command, say), run
	 * after check_rules with cfg and the state DB's path: it reports with
	 * idem_check_add() like a rule. Returns 0, or -1 with err when it
	 * could not run at all (the check then fails with err). NULL: none. */
	int (*check_extra)(struct idem_check *c, const struct idem_config *cfg,
	                   const char *state_db, char *err, size_t errlen);
	/* Its panels on the dashboard, ending with a NULL title; NULL: none
	 * (the dashboard still shows every workflow's input and result). */
	const struct idem_app_panel *panels;
};

#endif
