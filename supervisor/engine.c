/* engine.c — workflows in motion. Running workflows live in a hash by
 * state-DB id; completed ones leave memory once the commit that closed
 * them is durable. A step is in exactly one place: the ready queue, a
 * backoff timer, a worker slot, or done.
 *
 * engine_turn_end() closes every loop turn: replay the workflows whose
 * steps moved, hand ready steps to idle workers, COMMIT once, and hold
 * what the turn lets out (task frames, HTTP replies, waiter wake-ups) as
 * a batch until the commit is durable: at once, or, under group commit,
 * when the sync thread says so (synced_cb). A task frame of a workflow
 * whose start is durable already goes at once (send_early). Successful
 * results wait for the app DB's sync before they are recorded. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "log.h"
#include "msg.h"
#include "pool.h"
#include "store.h"
#include "sup.h"
#include "textbuf.h"
#include "timer.h"
#include "workflow.h"
#include "xalloc.h"

struct waiter {
	struct engine *e;
	struct wf *wf; /* NULL: waits for every workflow to finish */
	struct event *timer;
	waiter_fn fn;
	void *arg;
	int fired;     /* timed out: its call waits for durability */
	int cancelled; /* unwaited after it fired: never called */
	TAILQ_ENTRY(waiter) link;
};

struct deferred {
	engine_deferred_fn fn;
	void *arg;
	struct deferred *next;
};

/* A task frame waiting for the commit. */
struct outgoing {
	int slot;
	int64_t task_id;
	json_t *msg;
};

TAILQ_HEAD(step_queue, step);
TAILQ_HEAD(wf_queue, wf);

/* A successful result waiting for the app-DB sync that covers the
 * worker's commit (group commit, store.c). */
struct result {
	struct step *st;
	json_t *value;
	long pid;
	uint64_t ticket;
	struct result *next;
};

/* What a turn lets out once its commit is durable: task frames, deferred
 * replies, closed workflows to wake and free. Held while the sync thread
 * catches up (store.c); in order. */
struct batch {
	uint64_t commit; /* the store's commit count at the end of its turn */
	struct outgoing *out;
	size_t nout;
	struct deferred *defer;
	struct wf_queue finished;
	struct batch *next;
};

struct engine {
	struct sup *sup;
	struct store *store;
	struct wf **buckets;
	size_t nbuckets;
	int nactive;
	struct step_queue ready;
	struct wf_queue runq;
	struct wf_queue finished;
	struct deferred *defer_head, **defer_tail;
	struct outgoing *out;
	size_t nout, capout;
	struct waiter_list all_waiters;
	struct batch *held, **held_tail;        /* turns waiting for durability */
	struct result *results, **results_tail; /* waiting for the app DB's sync */
	struct event *synced;                   /* the sync thread advanced */
	struct event *kick;
	struct step *dirty; /* steps whose rows the turn has yet to write */
	struct engine_stats stats;
	char fatal[512]; /* the first state-DB error; the turn fails with it */
};

/* ---- bookkeeping ------------------------------------------------------- */

static void db_failed(struct engine *e, const char *err)
{
	if (e->fatal[0] == '\0')
		snprintf(e->fatal, sizeof(e->fatal), "%s", err);
}

static void event_log(struct engine *e, struct wf *wf, int seq, int attempt, const char *kind,
                      long pid, json_t *detail)
{
	char err[512];

	if (store_event(e->store, wf->id, seq, attempt, kind, pid, detail, err, sizeof(err)) != 0)
		db_failed(e, err);
	json_decref(detail);
}

/* The same for the hot events, with detail given as JSON text made of
 * cached pieces (json_text()) instead of a json_t dumped once more. */
static void event_text(struct engine *e, struct wf *wf, int seq, int attempt, const char *kind,
                       long pid, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void event_text(struct engine *e, struct wf *wf, int seq, int attempt, const char *kind,
                       long pid, const char *fmt, ...)
{
	char err[512], *detail;
	struct textbuf b = {0};
	va_list ap;

	va_start(ap, fmt);
	textbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	detail = textbuf_take(&b, NULL);
	if (store_event_text(e->store, wf->id, seq, attempt, kind, pid, detail, err, sizeof(err)) !=
	    0)
		db_failed(e, err);
	free(detail);
}

/* s as a JSON string literal (NEW), for event_text(). */
static char *quoted(const char *s)
{
	json_t *j = json_string(s);
	char *q = j != NULL ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	return q != NULL ? q : xstrdup("null"); /* s is not UTF-8 */
}

/* "ns=NS wf=ID step=N attempt=N activity=NAME": the fields of every log
 * line about an attempt. */
static const char *attempt_fields(const struct step *st, char *buf, size_t len)
{
	char ns[CONFIG_NAME_MAX * 4 + 3], wf[600], act[CONFIG_NAME_MAX * 4 + 3];

	snprintf(buf, len, "ns=%s wf=%s step=%d attempt=%d activity=%s",
	         log_quote(ns, sizeof(ns), st->wf->namespace_),
	         log_quote(wf, sizeof(wf), st->wf->workflow_id), st->seq, st->attempt,
	         log_quote(act, sizeof(act), st->activity));
	return buf;
}

/* A step's row is written once per turn, however often the turn changes
 * it (a step is typically scheduled and started in the same turn):
 * write_steps() runs before the COMMIT. */
static void step_save(struct engine *e, struct step *st)
{
	if (st->dirty)
		return;
	st->dirty = 1;
	st->dirty_next = e->dirty;
	e->dirty = st;
}

static void write_steps(struct engine *e)
{
	char err[512];
	struct step *st;

	while ((st = e->dirty) != NULL) {
		e->dirty = st->dirty_next;
		st->dirty = 0;
		st->dirty_next = NULL;
		if (store_step_save(e->store, st, err, sizeof(err)) != 0)
			db_failed(e, err);
	}
}

static size_t bucket_of(const struct engine *e, int64_t id)
{
	return (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull >> 20) & (e->nbuckets - 1);
}

static void hash_grow(struct engine *e)
{
	size_t old = e->nbuckets;
	struct wf **prev = e->buckets;

	e->nbuckets = old ? old * 2 : 1024;
	e->buckets = xcalloc(e->nbuckets, sizeof(*e->buckets));
	for (size_t i = 0; i < old; i++) {
		struct wf *wf = prev[i], *next;

		for (; wf != NULL; wf = next) {
			size_t b = bucket_of(e, wf->id);

			next = wf->hnext;
			wf->hnext = e->buckets[b];
			e->buckets[b] = wf;
		}
	}
	free(prev);
}

static void hash_add(struct engine *e, struct wf *wf)
{
	size_t b;

	if ((size_t)e->nactive + 1 > e->nbuckets)
		hash_grow(e);
	b = bucket_of(e, wf->id);
	wf->engine = e;
	wf->hnext = e->buckets[b];
	e->buckets[b] = wf;
	e->nactive++;
}

static void hash_remove(struct engine *e, struct wf *wf)
{
	struct wf **pp = &e->buckets[bucket_of(e, wf->id)];

	while (*pp != NULL && *pp != wf)
		pp = &(*pp)->hnext;
	if (*pp == wf) {
		*pp = wf->hnext;
		e->nactive--;
	}
}

struct wf *engine_find(struct engine *e, int64_t id)
{
	struct wf *wf;

	if (e->nbuckets == 0)
		return NULL;
	for (wf = e->buckets[bucket_of(e, id)]; wf != NULL; wf = wf->hnext)
		if (wf->id == id)
			return wf;
	return NULL;
}

int engine_running_count(const struct engine *e)
{
	return e->nactive;
}

const struct engine_stats *engine_stats(const struct engine *e)
{
	return &e->stats;
}

static void mark_runnable(struct engine *e, struct wf *wf)
{
	if (wf->runnable || wf->status != WF_RUNNING)
		return;
	wf->runnable = 1;
	TAILQ_INSERT_TAIL(&e->runq, wf, runq);
}

static void enqueue(struct engine *e, struct step *st)
{
	if (st->queued)
		return;
	st->queued = 1;
	st->ready_us = clock_mono_us();
	TAILQ_INSERT_TAIL(&e->ready, st, ready);
	e->stats.queue_depth++;
}

static void step_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct step *st = arg;
	int64_t left = st->next_attempt_at - clock_wall_ms();

	/* The timer runs on the monotonic clock, the checkpointed time is
	 * wall time: never start an attempt before the time it was given. */
	if (left > 0) {
		timer_in(st->timer, left);
		return;
	}
	enqueue(st->wf->engine, st);
}

/* Puts st back in line: now, or after delay_ms on its timer. */
static void schedule(struct engine *e, struct step *st, int64_t delay_ms)
{
	if (delay_ms <= 0) {
		enqueue(e, st);
		return;
	}
	if (st->timer == NULL)
		st->timer = evtimer_new(e->sup->base, step_timer_cb, st);
	timer_in(st->timer, delay_ms);
}

static void set_error(struct step *st, const char *type, const char *message)
{
	free(st->error_type);
	free(st->error_message);
	st->error_type = xstrdup(type ? type : "Error");
	st->error_message = xstrdup(message ? message : "");
}

/* Non-zero when name is in the comma list. */
static int listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, ",");

		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p += len + (p[len] == ',');
	}
	return 0;
}

/* The activity's retry policy: its own fields where set, else the config's. */
static struct retry_policy policy_of(struct engine *e, const struct idem_activity_options *o)
{
	struct retry_policy p = e->sup->retry;

	if (o->retry.initial_ms > 0)
		p.initial_ms = o->retry.initial_ms;
	if (o->retry.coefficient > 0)
		p.coefficient = o->retry.coefficient;
	if (o->retry.maximum_ms > 0)
		p.maximum_ms = o->retry.maximum_ms;
	if (o->retry.maximum_attempts > 0)
		p.maximum_attempts = o->retry.maximum_attempts;
	return p;
}

static void step_fail(struct engine *e, struct step *st, const char *why)
{
	char f[1200], type[300];

	log_info("step failed", "%s error_type=%s why=\"%s\"", attempt_fields(st, f, sizeof(f)),
	         log_quote(type, sizeof(type), st->error_type), why);
	st->status = STEP_FAILED;
	if (st->timer != NULL)
		evtimer_del(st->timer);
	if (st->deadline != NULL)
		evtimer_del(st->deadline);
	step_save(e, st);
	event_log(e, st->wf, st->seq, st->attempt, "step_failed", 0,
	          json_pack("{s:s, s:s, s:s}", "error_type", st->error_type, "message",
	                    st->error_message, "why", why));
	mark_runnable(e, st->wf);
}

/* Why the step must not run again after this failure, or NULL. */
static const char *final_reason(struct engine *e, struct step *st, int retryable, const char *type,
                                int64_t delay)
{
	const struct idem_activity_options *o = step_options(e->sup->app, st);
	struct retry_policy p = policy_of(e, o);
	int64_t s2c = e->sup->cfg.schedule_to_close_ms;

	if (st->expired)
		return "schedule_to_close timeout";
	if (!retryable)
		return "not retryable";
	if (listed(e->sup->cfg.retry_non_retryable, type) || listed(o->non_retryable, type))
		return "non-retryable error type";
	if (!retry_may_retry(&p, st->attempt))
		return "maximum attempts reached";
	if (s2c > 0 && clock_wall_ms() + delay > st->scheduled_at + s2c)
		return "the next attempt would start after the schedule_to_close timeout";
	return NULL;
}

/* An attempt of st failed: retry it under the policy, or fail the step. */
static void attempt_failed(struct engine *e, struct step *st, int retryable, const char *type,
                           const char *message)
{
	struct retry_policy p = policy_of(e, step_options(e->sup->app, st));
	int64_t delay = retry_delay_ms(&p, st->attempt);
	char f[1200], q[300];
	const char *why;

	e->stats.failed_attempts++;
	set_error(st, type, message);
	why = final_reason(e, st, retryable, type, delay);
	if (why != NULL) {
		step_fail(e, st, why);
		return;
	}
	st->status = STEP_SCHEDULED;
	st->next_attempt_at = clock_wall_ms() + delay;
	step_save(e, st);
	event_log(e, st->wf, st->seq, st->attempt, "retry_scheduled", 0,
	          json_pack("{s:I, s:I}", "delay_ms", (json_int_t)delay, "next_attempt_at",
	                    (json_int_t)st->next_attempt_at));
	e->stats.retries++;
	log_info("attempt failed; retry scheduled", "%s error_type=%s delay_ms=%lld",
	         attempt_fields(st, f, sizeof(f)), log_quote(q, sizeof(q), type), (long long)delay);
	schedule(e, st, delay);
}

static void step_completed(struct engine *e, struct step *st, json_t *result, long pid)
{
	st->status = STEP_COMPLETED;
	st->result = json_incref(result);
	e->stats.completed_steps++;
	if (log_enabled(LOG_DEBUG)) {
		char f[1200];

		log_debug("attempt completed", "%s worker_pid=%ld",
		          attempt_fields(st, f, sizeof(f)), pid);
	}
	step_save(e, st);
	event_text(e, st->wf, st->seq, st->attempt, "completed", pid, "{\"result\":%s}",
	           json_text(st->result, &st->result_text));
	mark_runnable(e, st->wf);
}

/* Records the results whose effects are now on disk. */
static void apply_durable_results(struct engine *e)
{
	uint64_t durable;

	if (e->results == NULL)
		return;
	durable = store_app_durable(e->store);
	while (e->results != NULL && e->results->ticket <= durable) {
		struct result *r = e->results;

		e->results = r->next;
		if (e->results == NULL)
			e->results_tail = &e->results;
		r->st->result_pending = 0;
		if (r->st->status == STEP_RUNNING)
			step_completed(e, r->st, r->value, r->pid);
		json_decref(r->value);
		free(r);
	}
}

/* ---- what the pool reports ---------------------------------------------------- */

/* The history event, error type and timeout counter of each loss. */
static const struct {
	const char *kind;
	const char *error_type;
	int timeout; /* TIMEOUT_*, or -1 */
} losses[POOL_NLOSSES] = {
    [POOL_LOSS_WORKER] = {"worker_lost", "WorkerLost", -1},
    [POOL_LOSS_START_TO_CLOSE] = {"timed_out", "StartToCloseTimeout", TIMEOUT_START_TO_CLOSE},
    [POOL_LOSS_HEARTBEAT] = {"timed_out", "HeartbeatTimeout", TIMEOUT_HEARTBEAT},
    [POOL_LOSS_SCHEDULE_TO_CLOSE] = {"timed_out", "ScheduleToCloseTimeout",
                                     TIMEOUT_SCHEDULE_TO_CLOSE},
    [POOL_LOSS_ASYNC_KILL] = {"worker_killed", "WorkerKilled", -1},
};

static void on_result(void *arg, void *owner, const struct msg_result *m, long pid)
{
	struct engine *e = arg;
	struct step *st = owner;
	struct result *r;

	st->slot = -1;
	/* A command activity's stderr, in the history before the outcome. */
	if (m->stderr_tail != NULL && m->stderr_tail[0] != '\0')
		event_log(e, st->wf, st->seq, st->attempt, "stderr", pid,
		          json_pack("{s:s}", "stderr", m->stderr_tail));
	if (!m->ok) {
		event_log(e, st->wf, st->seq, st->attempt, "failed", pid,
		          json_pack("{s:s, s:s, s:b}", "error_type", m->error_type, "message",
		                    m->error_message, "retryable", m->retryable));
		attempt_failed(e, st, m->retryable, m->error_type, m->error_message);
		return;
	}
	if (!store_group_commit(e->store)) {
		step_completed(e, st, m->result, pid);
		return;
	}
	/* The worker committed without syncing: record the result once a
	 * sync begun now has finished. */
	r = xcalloc(1, sizeof(*r));
	r->st = st;
	r->value = json_incref(m->result);
	r->pid = pid;
	r->ticket = store_app_sync_request(e->store);
	st->result_pending = 1;
	*e->results_tail = r;
	e->results_tail = &r->next;
}

static void on_heartbeat(void *arg, void *owner, json_t *details)
{
	struct engine *e = arg;
	struct step *st = owner;

	json_decref(st->heartbeat);
	st->heartbeat = json_incref(details);
	step_save(e, st);
	event_log(e, st->wf, st->seq, st->attempt, "heartbeat", 0,
	          json_pack("{s:O}", "details", details));
}

static void on_lost(void *arg, void *owner, enum pool_loss loss, const char *reason, long pid)
{
	struct engine *e = arg;
	struct step *st = owner;

	st->slot = -1;
	event_log(
	    e, st->wf, st->seq, st->attempt, losses[loss].kind, pid,
	    json_pack("{s:s, s:s}", "error_type", losses[loss].error_type, "message", reason));
	if (losses[loss].timeout >= 0)
		e->stats.timeouts[losses[loss].timeout]++;
	e->stats.worker_deaths++;
	attempt_failed(e, st, 1, losses[loss].error_type, reason);
}

const struct pool_callbacks engine_pool_callbacks = {on_result, on_heartbeat, on_lost};

/* ---- schedule_to_close ------------------------------------------------------- */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct step *st = arg;
	struct engine *e = st->wf->engine;
	char reason[160];

	/* A result waiting for its sync came in time. */
	if (st->status == STEP_COMPLETED || st->status == STEP_FAILED || st->result_pending)
		return;
	st->expired = 1;
	snprintf(reason, sizeof(reason), "schedule_to_close timeout: not completed within %lld ms",
	         (long long)e->sup->cfg.schedule_to_close_ms);
	if (st->slot >= 0) {
		pool_kill(e->sup->pool, st->slot, POOL_LOSS_SCHEDULE_TO_CLOSE, reason);
		return;
	}
	if (st->queued) {
		TAILQ_REMOVE(&e->ready, st, ready);
		st->queued = 0;
		e->stats.queue_depth--;
	}
	e->stats.timeouts[TIMEOUT_SCHEDULE_TO_CLOSE]++;
	event_log(
	    e, st->wf, st->seq, st->attempt, "timed_out", 0,
	    json_pack("{s:s, s:s}", "error_type", "ScheduleToCloseTimeout", "message", reason));
	set_error(st, "ScheduleToCloseTimeout", reason);
	step_fail(e, st, "schedule_to_close timeout");
}

/* Arms the step's schedule_to_close deadline, counted from scheduled_at. */
static void arm_deadline(struct engine *e, struct step *st)
{
	int64_t s2c = e->sup->cfg.schedule_to_close_ms, left;

	if (s2c <= 0)
		return;
	left = st->scheduled_at + s2c - clock_wall_ms();
	if (st->deadline == NULL)
		st->deadline = evtimer_new(e->sup->base, deadline_cb, st);
	timer_in(st->deadline, left > 0 ? left : 0);
}

/* ---- replay ---------------------------------------------------------------- */

static void close_wf(struct engine *e, struct wf *wf, enum wf_status status)
{
	char err[512];

	wf->status = status;
	wf->closed_at = clock_wall_ms();
	if (store_wf_close(e->store, wf, wf->closed_at, err, sizeof(err)) != 0)
		db_failed(e, err);
	if (status == WF_COMPLETED) {
		e->stats.workflows_completed++;
		event_text(e, wf, -1, 0, "workflow_completed", 0, "{\"result\":%s}",
		           json_text(wf->result, &wf->result_text));
	} else {
		e->stats.workflows_failed++;
		event_log(e, wf, -1, 0, "workflow_failed", 0,
		          json_pack("{s:s}", "error", wf->error));
	}
	log_info(status == WF_COMPLETED ? "workflow completed" : "workflow failed", "ns=%s wf=%s",
	         wf->namespace_, wf->workflow_id);
	TAILQ_INSERT_TAIL(&e->finished, wf, runq);
}

static void replay(struct engine *e, struct wf *wf)
{
	struct wf_ctx ctx;
	enum idem_wf_outcome out = wf_replay(wf, wf_type_find(e->sup->app, wf->type), &ctx);

	for (int seq = wf->nsteps - ctx.scheduled; seq < wf->nsteps; seq++) {
		struct step *st = wf->steps[seq];
		char *activity = quoted(st->activity);

		st->scheduled_at = clock_wall_ms();
		arm_deadline(e, st);
		step_save(e, st);
		event_text(e, wf, seq, 0, "scheduled", 0, "{\"activity\":%s,\"input\":%s}",
		           activity, json_text(st->input, &st->input_text));
		free(activity);
		enqueue(e, st);
	}
	if (out == IDEM_WF_DONE) {
		wf->result = ctx.run.result;
		close_wf(e, wf, WF_COMPLETED);
	} else if (out == IDEM_WF_FAIL) {
		wf->error = xstrdup(ctx.run.error);
		close_wf(e, wf, WF_FAILED);
	}
}

/* ---- dispatch ---------------------------------------------------------------- */

static void outgoing_push(struct engine *e, int sl, int64_t task_id, json_t *msg)
{
	if (e->nout == e->capout) {
		e->capout = e->capout ? e->capout * 2 : 16;
		e->out = xrealloc(e->out, e->capout * sizeof(*e->out));
	}
	e->out[e->nout++] = (struct outgoing){sl, task_id, msg};
}

/* Plans the attempt's fault and records it in the history. */
static void plan_fault(struct engine *e, struct step *st, long pid, struct fault_plan *plan)
{
	char text[96];
	json_t *detail;

	const struct idem_activity_options *o = step_options(e->sup->app, st);

	fault_plan_for(&e->sup->faults, st->wf->namespace_, st->wf->workflow_id, st->seq,
	               st->attempt, st->activity, o->peer, o->points, plan);
	if (plan->kind == FAULT_NONE)
		return;
	e->stats.faults[plan->kind]++;
	if (plan->kind == FAULT_KILL && plan->point < FAULT_NPOINTS)
		e->stats.kills_at[plan->point]++;
	fault_plan_describe(plan, text, sizeof(text));
	detail = fault_plan_json(plan);
	if (detail == NULL)
		detail = json_pack("{s:s, s:I}", "kind", fault_kind_name(plan->kind), "ms",
		                   (json_int_t)plan->ms);
	json_object_set_new(detail, "description", json_string(text));
	event_log(e, st->wf, st->seq, st->attempt, "fault_injected", pid, detail);
}

/* The heartbeat timeout of st's attempts: 0 unless its activity
 * heartbeats. */
static int64_t heartbeat_ms(const struct engine *e, const struct step *st)
{
	return step_options(e->sup->app, st)->heartbeats ? e->sup->cfg.heartbeat_timeout_ms : 0;
}

static void assign(struct engine *e, int sl, struct step *st)
{
	struct msg_task t = {0};
	struct pool_task task = {.owner = st};
	long pid = (long)pool_pid(e->sup->pool, sl);
	int64_t task_id;

	st->attempt++;
	st->status = STEP_RUNNING;
	e->stats.attempts++;
	step_save(e, st);
	/* The fault plan in force (faultctl.h): with the seed, what replays
	 * this attempt's fault. */
	if (e->sup->fault_plan_id > 0)
		event_text(e, st->wf, st->seq, st->attempt, "started", pid,
		           "{\"slot\":%d,\"fault_plan\":%" PRId64 "}", sl, e->sup->fault_plan_id);
	else
		event_text(e, st->wf, st->seq, st->attempt, "started", pid, "{\"slot\":%d}", sl);
	plan_fault(e, st, pid, &task.plan);
	if (log_enabled(LOG_DEBUG)) {
		char f[1200];

		log_debug("attempt started", "%s slot=%d worker_pid=%ld fault=%s",
		          attempt_fields(st, f, sizeof(f)), sl, pid,
		          task.plan.kind == FAULT_NONE ? "none" : fault_kind_name(task.plan.kind));
	}
	task.activity = st->activity;
	task.workflow_id = st->wf->workflow_id;
	task.step = st->seq;
	task.attempt = st->attempt;
	task.heartbeat_ms = heartbeat_ms(e, st);
	task.start_to_close_ms = step_options(e->sup->app, st)->start_to_close_ms;
	task_id = pool_assign(e->sup->pool, sl, &task);
	st->slot = sl;
	t.task_id = task_id;
	t.namespace_ = st->wf->namespace_;
	t.workflow_id = st->wf->workflow_id;
	t.step = st->seq;
	t.attempt = st->attempt;
	t.activity = st->activity;
	t.input = st->input;
	t.heartbeat = st->heartbeat;
	t.fault = fault_plan_json(&task.plan);
	outgoing_push(e, sl, task_id, msg_task_new(&t));
	json_decref(t.fault);
}

static void dispatch(struct engine *e)
{
	int sl;

	while (!e->sup->stopping && !TAILQ_EMPTY(&e->ready) &&
	       (sl = pool_idle(e->sup->pool)) >= 0) {
		struct step *st = TAILQ_FIRST(&e->ready);

		TAILQ_REMOVE(&e->ready, st, ready);
		st->queued = 0;
		e->stats.queue_depth--;
		assign(e, sl, st);
	}
}

/* ---- after the commit ------------------------------------------------------- */

static void send_outgoing(struct engine *e, struct outgoing *out, size_t nout)
{
	int64_t now = nout > 0 ? clock_mono_us() : 0;

	for (size_t i = 0; i < nout; i++) {
		struct outgoing *o = &out[i];

		struct step *st = pool_task_owner(e->sup->pool, o->slot, o->task_id);

		/* The worker may have died since the assignment: its attempt
		 * has been failed already, and the frame has nowhere to go. */
		if (st != NULL)
			histogram_observe(&e->stats.dispatch, histogram_seconds(st->ready_us, now));
		pool_send(e->sup->pool, o->slot, o->task_id, o->msg);
	}
}

static void run_deferred(struct deferred *d)
{
	while (d != NULL) {
		struct deferred *next = d->next;

		d->fn(d->arg);
		free(d);
		d = next;
	}
}

static void wake(struct waiter_list *list, int timed_out)
{
	struct waiter *w;

	while ((w = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, w, link);
		if (w->timer != NULL)
			event_free(w->timer);
		w->fn(w->arg, timed_out);
		free(w);
	}
}

static void release_finished(struct engine *e, struct wf_queue *finished)
{
	struct wf *wf;

	/* No step row may wait on a workflow about to be freed. */
	write_steps(e);
	while ((wf = TAILQ_FIRST(finished)) != NULL) {
		TAILQ_REMOVE(finished, wf, runq);
		wake(&wf->waiters, 0);
		hash_remove(e, wf);
		wf_free(wf);
	}
	if (e->nactive == 0)
		wake(&e->all_waiters, 0);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Nothing to do: returning to the loop runs engine_turn_end(). */
}

/* Task frames need not wait for their turn's commit to be durable once
 * their workflow's start is: a power loss that takes back the attempt's
 * "started" record leaves the step to run again under the same attempt
 * number, and the activity's guard finds its effect. (A process crash
 * loses nothing committed.) So the workers get their next task while the
 * disk syncs; the rest of the turn waits as before. */
static void send_early(struct engine *e)
{
	char err[512];
	uint64_t durable;
	size_t kept = 0;

	if (e->nout == 0 || !store_group_commit(e->store))
		return;
	durable = store_durable(e->store, err, sizeof(err));
	if (durable == UINT64_MAX)
		return; /* the turn fails on it below */
	for (size_t i = 0; i < e->nout; i++) {
		struct outgoing *o = &e->out[i];
		struct step *st = pool_task_owner(e->sup->pool, o->slot, o->task_id);

		if (st != NULL && st->wf->start_commit <= durable)
			send_outgoing(e, o, 1);
		else
			e->out[kept++] = *o;
	}
	e->nout = kept;
}

/* Takes what this turn lets out into a batch. */
static struct batch *batch_take(struct engine *e)
{
	struct batch *b = xcalloc(1, sizeof(*b));

	b->commit = store_committed(e->store);
	b->out = e->out;
	b->nout = e->nout;
	e->out = NULL;
	e->nout = e->capout = 0;
	b->defer = e->defer_head;
	e->defer_head = NULL;
	e->defer_tail = &e->defer_head;
	TAILQ_INIT(&b->finished);
	TAILQ_CONCAT(&b->finished, &e->finished, runq);
	return b;
}

static void batch_release(struct engine *e, struct batch *b)
{
	send_outgoing(e, b->out, b->nout);
	free(b->out);
	run_deferred(b->defer);
	release_finished(e, &b->finished);
	free(b);
}

/* Lets out the held turns whose commits are now durable. */
static int release_durable(struct engine *e, char *err, size_t errlen)
{
	uint64_t durable = store_durable(e->store, err, errlen);

	if (durable == UINT64_MAX)
		return -1;
	while (e->held != NULL && e->held->commit <= durable) {
		struct batch *b = e->held;

		e->held = b->next;
		if (e->held == NULL)
			e->held_tail = &e->held;
		batch_release(e, b);
	}
	return 0;
}

static void synced_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	char err[512];

	store_sync_drain(e->store);
	if (release_durable(e, err, sizeof(err)) != 0)
		db_failed(e, err);
	apply_durable_results(e);
	/* The turn's end commits what the releases wrote, or fails. */
	event_active(e->kick, 0, 0);
}

int engine_flush(struct engine *e, char *err, size_t errlen)
{
	do {
		if (store_sync_wait(e->store, err, errlen) != 0)
			return -1;
		apply_durable_results(e);
		if (engine_turn_end(e, err, errlen) != 0)
			return -1;
	} while (e->held != NULL || e->results != NULL);
	return 0;
}

int engine_turn_end(struct engine *e, char *err, size_t errlen)
{
	struct wf *wf;
	struct batch *b;

	apply_durable_results(e);
	while ((wf = TAILQ_FIRST(&e->runq)) != NULL) {
		TAILQ_REMOVE(&e->runq, wf, runq);
		wf->runnable = 0;
		replay(e, wf);
	}
	dispatch(e);
	write_steps(e);
	if (e->fatal[0] == '\0' && store_broken(e->store, err, errlen))
		db_failed(e, err);
	if (e->fatal[0] != '\0') {
		snprintf(err, errlen, "%s", e->fatal);
		return -1;
	}
	if (store_dirty(e->store)) {
		int64_t t0 = clock_mono_us();

		if (store_commit(e->store, err, errlen) != 0)
			return -1;
		histogram_observe(&e->stats.commit, histogram_seconds(t0, clock_mono_us()));
		e->stats.commits++;
		store_sync_request(e->store);
	}
	send_early(e);
	if (e->nout > 0 || e->defer_head != NULL || !TAILQ_EMPTY(&e->finished)) {
		b = batch_take(e);
		*e->held_tail = b;
		e->held_tail = &b->next;
	}
	if (release_durable(e, err, errlen) != 0)
		return -1;
	/* Sending can fail an attempt and deferred work can start workflows:
	 * come back at once rather than sleep on a dirty turn. */
	if (!TAILQ_EMPTY(&e->runq) || store_dirty(e->store) ||
	    (!TAILQ_EMPTY(&e->ready) && !e->sup->stopping && pool_idle(e->sup->pool) >= 0))
		event_active(e->kick, 0, 0);
	return 0;
}

void engine_defer(struct engine *e, engine_deferred_fn fn, void *arg)
{
	struct deferred *d = xcalloc(1, sizeof(*d));

	d->fn = fn;
	d->arg = arg;
	*e->defer_tail = d;
	e->defer_tail = &d->next;
	event_active(e->kick, 0, 0);
}

/* ---- waiters ------------------------------------------------------------------ */

static struct waiter_list *waiter_list_of(struct engine *e, struct wf *wf)
{
	return wf != NULL ? &wf->waiters : &e->all_waiters;
}

static void waiter_fire(void *arg)
{
	struct waiter *w = arg;

	if (!w->cancelled)
		w->fn(w->arg, 1);
	free(w);
}

/* A timeout answers with what is durable: its call waits for the turn's
 * commit like any reply. */
static void waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	TAILQ_REMOVE(waiter_list_of(w->e, w->wf), w, link);
	event_free(w->timer);
	w->timer = NULL;
	w->fired = 1;
	engine_defer(w->e, waiter_fire, w);
}

struct waiter *engine_wait(struct engine *e, struct wf *wf, int64_t timeout_ms, waiter_fn fn,
                           void *arg)
{
	struct waiter *w = xcalloc(1, sizeof(*w));

	w->e = e;
	w->wf = wf;
	w->fn = fn;
	w->arg = arg;
	w->timer = evtimer_new(e->sup->base, waiter_timeout_cb, w);
	timer_in(w->timer, timeout_ms);
	TAILQ_INSERT_TAIL(waiter_list_of(e, wf), w, link);
	return w;
}

void engine_unwait(struct engine *e, struct waiter *w)
{
	if (w->fired) {
		w->cancelled = 1; /* waiter_fire frees it */
		return;
	}
	TAILQ_REMOVE(waiter_list_of(e, w->wf), w, link);
	event_free(w->timer);
	free(w);
}

/* ---- starting workflows -------------------------------------------------------- */

/* The fields of want that have, in have, another value (JSON text). */
static int input_conflicts(const json_t *want, const json_t *have, char *buf, size_t len)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)want, key, v)
	{
		if (!json_equal(v, json_object_get(have, key))) {
			snprintf(buf, len,
			         "input field \"%s\" differs from the existing workflow's", key);
			return 1;
		}
	}
	return 0;
}

static enum engine_start_rc start_existing(struct engine *e, int64_t id, json_t *input,
                                           json_t **body, char *err, size_t errlen)
{
	struct wf *running = engine_find(e, id);
	json_t *wf = running != NULL ? wf_json(running) : store_wf_json(e->store, id, err, errlen);
	char why[256];

	if (wf == NULL)
		return START_FAILED;
	if (input_conflicts(input, json_object_get(wf, "input"), why, sizeof(why))) {
		*body = json_pack("{s:s, s:o}", "error", why, "workflow", wf);
		snprintf(err, errlen, "%s", why);
		return START_CONFLICT;
	}
	*body = json_pack("{s:b, s:o}", "created", 0, "workflow", wf);
	return START_EXISTS;
}

/* Whether (ns, workflow_id) exists: START_EXISTS or START_CONFLICT (with
 * *id and *body), START_FAILED, or START_CREATED when it is new. */
static enum engine_start_rc start_lookup(struct engine *e, const char *ns, const char *workflow_id,
                                         json_t *asked, json_t **body, int64_t *id, char *err,
                                         size_t errlen)
{
	int found = store_wf_lookup(e->store, ns, workflow_id, id, err, errlen);

	if (found < 0)
		return START_FAILED;
	return found ? start_existing(e, *id, asked, body, err, errlen) : START_CREATED;
}

enum engine_start_rc engine_start(struct engine *e, const char *ns, const char *workflow_id,
                                  const char *type, json_t *input, json_t **body, int64_t *id,
                                  char *err, size_t errlen)
{
	const struct idem_workflow *t = wf_type_find(e->sup->app, type);
	struct wf *wf = NULL;
	json_t *asked;
	char *quoted_type;
	enum engine_start_rc rc;

	*body = NULL;
	*id = 0;
	if (e->sup->stopping) {
		snprintf(err, errlen,
		         "idem-supervisor is shutting down; start the workflow again "
		         "once it is back");
		return START_STOPPING;
	}
	if (t == NULL) {
		wf_type_unknown(e->sup->app, type, err, errlen);
		return START_INVALID;
	}
	if (t->check_ids != NULL && t->check_ids(ns, workflow_id, err, errlen) != 0)
		return START_INVALID;
	/* The conflict check compares what the client sent, not the defaults
	 * that prepare() adds from the current config. */
	asked = json_deep_copy(input);
	rc = t->prepare(t, input, &e->sup->cfg, err, errlen) != 0
	         ? START_INVALID
	         : start_lookup(e, ns, workflow_id, asked, body, id, err, errlen);
	if (rc == START_CREATED) {
		int inserted;

		wf = wf_new(0, ns, workflow_id, type, input);
		inserted = store_wf_insert(e->store, wf, clock_wall_ms(), err, errlen);
		if (inserted != 0) {
			wf_free(wf);
			wf = NULL;
		}
		/* Another supervisor sharing the state DB started it meanwhile:
		 * answered as any start of an existing workflow. */
		if (inserted > 0)
			rc = start_lookup(e, ns, workflow_id, asked, body, id, err, errlen);
		else if (inserted < 0)
			rc = START_FAILED;
		if (inserted > 0 && rc == START_CREATED) {
			snprintf(err, errlen, "workflow %s was started elsewhere and is gone",
			         workflow_id);
			rc = START_FAILED;
		}
	}
	json_decref(asked);
	if (wf == NULL) {
		if (rc != START_EXISTS)
			*id = 0;
		return rc;
	}
	quoted_type = quoted(type);
	event_text(e, wf, -1, 0, "workflow_started", 0, "{\"type\":%s,\"input\":%s}", quoted_type,
	           json_text(wf->input, &wf->input_text));
	free(quoted_type);
	hash_add(e, wf);
	mark_runnable(e, wf);
	wf->start_commit = store_committed(e->store) + 1; /* this turn's */
	*id = wf->id;
	e->stats.workflows_started++;
	log_info("workflow started", "ns=%s wf=%s type=%s", ns, workflow_id, type);
	*body = json_pack("{s:b, s:o}", "created", 1, "workflow", wf_json(wf));
	return START_CREATED;
}

/* ---- life cycle ---------------------------------------------------------------- */

int engine_new(struct sup *sup, struct engine **out, char *err, size_t errlen)
{
	struct engine *e = xcalloc(1, sizeof(*e));

	e->sup = sup;
	e->store = sup->store;
	TAILQ_INIT(&e->ready);
	TAILQ_INIT(&e->runq);
	TAILQ_INIT(&e->finished);
	TAILQ_INIT(&e->all_waiters);
	e->defer_tail = &e->defer_head;
	e->held_tail = &e->held;
	e->results_tail = &e->results;
	e->kick = event_new(sup->base, -1, 0, kick_cb, e);
	if (store_sync_fd(e->store) >= 0) {
		e->synced = event_new(sup->base, store_sync_fd(e->store), EV_READ | EV_PERSIST,
		                      synced_cb, e);
		event_add(e->synced, NULL);
	}
	hash_grow(e);
	*out = e;
	return 0;
}

/* Frees deferred calls that will not run (a fired waiter with them). */
static void deferred_free(struct deferred *d)
{
	while (d != NULL) {
		struct deferred *next = d->next;

		if (d->fn == waiter_fire)
			free(d->arg);
		free(d);
		d = next;
	}
}

void engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	while (e->held != NULL) {
		struct batch *b = e->held;

		e->held = b->next;
		for (size_t i = 0; i < b->nout; i++)
			json_decref(b->out[i].msg);
		free(b->out);
		deferred_free(b->defer);
		free(b); /* its closed workflows are in the hash: freed below */
	}
	while (e->results != NULL) {
		struct result *r = e->results;

		e->results = r->next;
		json_decref(r->value);
		free(r);
	}
	for (size_t i = 0; i < e->nout; i++)
		json_decref(e->out[i].msg);
	free(e->out);
	deferred_free(e->defer_head);
	if (e->synced != NULL)
		event_free(e->synced);
	for (size_t b = 0; b < e->nbuckets; b++) {
		struct wf *wf = e->buckets[b], *next;

		for (; wf != NULL; wf = next) {
			struct waiter *w;

			next = wf->hnext;
			while ((w = TAILQ_FIRST(&wf->waiters)) != NULL)
				engine_unwait(e, w);
			wf_free(wf);
		}
	}
	while (!TAILQ_EMPTY(&e->all_waiters))
		engine_unwait(e, TAILQ_FIRST(&e->all_waiters));
	free(e->buckets);
	event_free(e->kick);
	free(e);
}

/* Takes a running workflow loaded from the state DB: attempts that were in
 * flight when the last supervisor died count as failed and run again at
 * once (the failure was not the activity's); backoffs keep their time. */
static void adopt(void *arg, struct wf *wf)
{
	struct engine *e = arg;
	int64_t now = clock_wall_ms();

	hash_add(e, wf);
	for (int i = 0; i < wf->nsteps; i++) {
		struct step *st = wf->steps[i];

		if (st->status == STEP_RUNNING) {
			event_log(e, wf, st->seq, st->attempt, "attempt_lost", 0,
			          json_pack("{s:s}", "reason",
			                    "the supervisor stopped while the "
			                    "attempt was in flight"));
			e->stats.failed_attempts++;
			st->status = STEP_SCHEDULED;
			st->next_attempt_at = 0;
			step_save(e, st);
		}
		if (st->status == STEP_SCHEDULED) {
			schedule(e, st, st->next_attempt_at - now);
			arm_deadline(e, st);
		}
	}
	mark_runnable(e, wf);
}

void engine_adopt_lapsed(struct engine *e)
{
	char err[512];
	int n;

	if (e->fatal[0] != '\0')
		return;
	if (e->sup->stopping) { /* no new work: only keep the lease */
		if (store_renew(e->store, err, sizeof(err)) != 0)
			db_failed(e, err);
		return;
	}
	n = store_adopt(e->store, adopt, e, err, sizeof(err));
	if (n < 0)
		db_failed(e, err);
	else if (n > 0)
		log_info("adopted the running workflows of a supervisor whose lease lapsed",
		         "count=%d", n);
}

int engine_recover(struct engine *e, char *err, size_t errlen)
{
	if (store_load_running(e->store, adopt, e, err, errlen) != 0)
		return -1;
	if (e->fatal[0] != '\0') {
		snprintf(err, errlen, "%s", e->fatal);
		return -1;
	}
	log_info("recovered running workflows", "count=%d", e->nactive);
	return 0;
}
