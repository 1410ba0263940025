/* api_stubs.c — the back end of the control API, stood in for so that
 * fuzz_api drives the real supervisor/api.c (route, split_path,
 * body_json, every handler and the reply paths) without a state DB,
 * workers. The app's own endpoints run for real, on an app DB in memory.
 *
 * Only what api.c calls is here, with the contracts of the supervisor's headers
 * and check.h (who owns each json_t, what each return code
 * means), and the engine's timing: engine_defer'd replies run at the end
 * of the loop turn (stub_turn_end, as engine_turn_end after its commit),
 * and a wait with timeout=0 times out in a later turn while any other
 * outlasts the client, which hangs up on an armed waiter (the harness
 * expires the waits that outlast even the client's EOF).
 *
 * The canned world: workflow "A12" (completed, id 1) and "R1" (running,
 * id 2) in namespace "default"; looking up "ERR" fails like a broken
 * state DB (500); product "123456" has stock 1000. engine_start runs the
 * real checks that precede the database (wf_type_find, the type's
 * prepare) and answers 200 for A12, 201 for any other id.
 *
 * When api.c starts calling a new back-end function, the fuzz build fails
 * to link: add its stand-in here. */
#include <stdlib.h>
#include <string.h>

#include "api_stubs.h"
#include "check.h"
#include "timer.h"

struct deferred {
	engine_deferred_fn fn;
	void *arg;
	struct deferred *next;
};

struct waiter {
	struct engine *e;
	struct event *timer;
	waiter_fn fn;
	void *arg;
	struct waiter *next, **prev;
};

struct engine {
	struct sup *sup;
	struct deferred *defer_head, **defer_tail;
	struct waiter *waiters;
	struct engine_stats stats;
	struct wf running; /* "R1" */
};

struct engine *stub_engine_new(struct sup *sup)
{
	struct engine *e = calloc(1, sizeof(*e));

	e->sup = sup;
	e->defer_tail = &e->defer_head;
	e->running.id = 2;
	e->running.status = WF_RUNNING;
	e->running.namespace_ = "default";
	e->running.workflow_id = "R1";
	e->running.type = "inventory";
	e->running.created_at = 1;
	return e;
}

void stub_turn_end(struct engine *e)
{
	struct deferred *d;

	while ((d = e->defer_head) != NULL) {
		e->defer_head = d->next;
		if (e->defer_head == NULL)
			e->defer_tail = &e->defer_head;
		d->fn(d->arg);
		free(d);
	}
}

void stub_engine_free(struct engine *e)
{
	stub_turn_end(e);
	while (e->waiters != NULL)
		engine_unwait(e, e->waiters);
	free(e);
}

void engine_defer(struct engine *e, engine_deferred_fn fn, void *arg)
{
	struct deferred *d = calloc(1, sizeof(*d));

	d->fn = fn;
	d->arg = arg;
	*e->defer_tail = d;
	e->defer_tail = &d->next;
}

static void waiter_unlink(struct waiter *w)
{
	*w->prev = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	event_free(w->timer);
}

static void waiter_fire(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	waiter_unlink(w);
	w->fn(w->arg, 1);
	free(w);
}

struct waiter *engine_wait(struct engine *e, struct wf *wf, int64_t timeout_ms, waiter_fn fn,
                           void *arg)
{
	struct waiter *w = calloc(1, sizeof(*w));

	w->e = e;
	w->fn = fn;
	w->arg = arg;
	w->timer = evtimer_new(e->sup->base, waiter_fire, w);
	/* timeout=0 times out in the next turn; any other never does, so the
	 * client gives up first (deterministic: no real clock). */
	if (timeout_ms == 0)
		timer_in(w->timer, 0);
	w->next = e->waiters;
	if (w->next != NULL)
		w->next->prev = &w->next;
	w->prev = &e->waiters;
	e->waiters = w;
	return w;
}

void stub_expire_waits(struct engine *e)
{
	for (struct waiter *w = e->waiters; w != NULL; w = w->next)
		timer_in(w->timer, 0);
}

void engine_unwait(struct engine *e, struct waiter *w)
{
	waiter_unlink(w);
	free(w);
}

struct wf *engine_find(struct engine *e, int64_t id)
{
	return id == e->running.id ? &e->running : NULL;
}

int engine_running_count(const struct engine *e)
{
	return 1;
}

const struct engine_stats *engine_stats(const struct engine *e)
{
	return &e->stats;
}

int store_wf_lookup(struct store *s, const char *ns, const char *workflow_id, int64_t *id,
                    char *err, size_t errlen)
{
	if (strcmp(workflow_id, "ERR") == 0) {
		snprintf(err, errlen, "state DB: disk I/O error (stub)");
		return -1;
	}
	if (strcmp(ns, "default") != 0)
		return 0;
	*id = strcmp(workflow_id, "A12") == 0 ? 1 : strcmp(workflow_id, "R1") == 0 ? 2 : 0;
	return *id != 0;
}

int store_shared(const struct store *s)
{
	(void)s;
	return 0;
}

int store_wf_running(struct store *s, int64_t id, char *err, size_t errlen)
{
	(void)s;
	(void)id;
	(void)err;
	(void)errlen;
	return 0;
}

int64_t store_run_id(const struct store *s)
{
	(void)s;
	return 0;
}

const char *store_run_name(const struct store *s)
{
	(void)s;
	return "";
}

json_t *store_wf_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:i}, s:[]}", "namespace", "default",
	                 "workflow_id", id == 1 ? "A12" : "R1", "status",
	                 id == 1 ? "completed" : "running", "input", "order_id",
	                 id == 1 ? "A12" : "R1", "product_id", "123456", "quantity", 999, "steps");
}

json_t *store_history_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	return json_pack("[{s:s}]", "event", "workflow_started");
}

json_t *store_list_json(struct store *s, const char *ns, const char *status, int limit,
                        int64_t after, char *err, size_t errlen)
{
	return json_pack("{s:[], s:n}", "workflows", "next_after");
}

json_t *store_search_json(struct store *s, const char *ns, const char *prefix, const char *after,
                          int limit, char *err, size_t errlen)
{
	return json_pack("{s:[], s:n}", "workflows", "next_after_id");
}

int store_fault_plan(struct store *s, int64_t ts, const char *action, const char *plan,
                     int64_t until_ms, int64_t *id, char *err, size_t errlen)
{
	static int64_t last;

	*id = ++last;
	return 0;
}

json_t *store_fault_plans_json(struct store *s, int limit, char *err, size_t errlen)
{
	return json_array();
}

json_t *store_counts_json(struct store *s, char *err, size_t errlen)
{
	return json_pack("{s:{s:i, s:i, s:i}}", "workflows", "running", 1, "completed", 1, "failed",
	                 0);
}

/* The checks engine_start makes before it touches the state DB. */
enum engine_start_rc engine_start(struct engine *e, const char *ns, const char *workflow_id,
                                  const char *type, json_t *input, json_t **body, int64_t *idp,
                                  char *err, size_t errlen)
{
	const struct idem_workflow *t = wf_type_find(e->sup->app, type);
	int64_t id = 0;

	*body = NULL;
	*idp = 0;
	if (t == NULL) {
		wf_type_unknown(e->sup->app, type, err, errlen);
		return START_INVALID;
	}
	if (t->check_ids != NULL && t->check_ids(ns, workflow_id, err, errlen) != 0)
		return START_INVALID;
	if (t->prepare(t, input, &e->sup->cfg, err, errlen) != 0)
		return START_INVALID;
	if (store_wf_lookup(NULL, ns, workflow_id, &id, err, errlen) < 0)
		return START_FAILED;
	*body = json_pack("{s:b, s:{s:s, s:s, s:O}}", "created", id == 0, "workflow", "namespace",
	                  ns, "workflow_id", workflow_id, "input", input);
	/* A new workflow is "R1" as far as a wait is concerned: running,
	 * and closed only by a timeout. */
	*idp = id == 0 ? e->running.id : id;
	return id == 0 ? START_CREATED : START_EXISTS;
}

json_t *pool_json(const struct pool *p)
{
	return json_object();
}

int pool_total_restarts(const struct pool *p)
{
	return 0;
}

int pool_busy_count(const struct pool *p)
{
	return 0;
}

const struct pool_stats *pool_stats(const struct pool *p)
{
	static const struct pool_stats none;

	return &none;
}

const char *death_cause_name(enum death_cause c)
{
	return "unexpected";
}

/* The checker's API for the app's rules (idem_app.h), which the app's
 * sources built in here name: stood in for, so that the real check.c is
 * not linked. Never called: only the checker (idemctl) runs the rules. */
void idem_check_add(struct idem_check *c, const char *kind, json_t *workflows, const char *fmt, ...)
{
	json_decref(workflows);
}

void idem_check_total(struct idem_check *c, const char *name, long long value)
{
}

const char *idem_check_col(sqlite3_stmt *st, int i)
{
	return "";
}

json_t *idem_check_col_array(sqlite3_stmt *st, int i)
{
	return json_array();
}
