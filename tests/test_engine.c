/* test_engine.c — the engine with a fake pool and no processes: the real
 * engine, state DB (a temporary SQLite file) and replay, and a pool that
 * is a few slots in an array. The test plays the workers: it answers the
 * attempts the fake pool was given through engine_pool_callbacks, and
 * asserts what the engine recorded (history, step and workflow rows) and
 * what it sent.
 *
 * The link seam: this program is built from engine.c, store.c,
 * workflow.c and histogram.c, not from idem_supervisor_lib (which holds
 * pool.c), and defines the pool_* functions the engine calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "clock.h"
#include "config.h"
#include "engine.h"
#include "idem_app.h"
#include "log.h"
#include "pool.h"
#include "store.h"
#include "sup.h"
#include "testutil.h"
#include "timer.h"
#include "workflow.h"

#define RETRY_MS 100  /* the first retry's backoff (then x2) */
#define RUN_MS 10000  /* the longest a test waits for a timer's effect */
#define FAKE_SLOTS 4  /* at most this many slots */
#define FAKE_PID 1000 /* slot i's worker is pid FAKE_PID + i */

/* ---- the test app: "pair" calls a, then b with a's result ---------------- */

static enum idem_wf_outcome pair_run(struct idem_wf_run *run)
{
	json_t *ra = NULL, *rb = NULL;
	int rc;

	rc = idem_wf_activity(run, "a", json_pack("{s:O}", "x", json_object_get(run->input, "x")),
	                      &ra);
	if (rc <= 0)
		return rc == 0 ? IDEM_WF_SUSPEND : IDEM_WF_FAIL;
	rc = idem_wf_activity(run, "b", json_pack("{s:O}", "from_a", ra), &rb);
	if (rc <= 0)
		return rc == 0 ? IDEM_WF_SUSPEND : IDEM_WF_FAIL;
	run->result = json_pack("{s:O, s:O}", "a", ra, "b", rb);
	return IDEM_WF_DONE;
}

static int pair_prepare(const struct idem_workflow *type, json_t *input,
                        const struct idem_config *cfg, char *err, size_t errlen)
{
	(void)type;
	if (json_is_integer(json_object_get(input, "x")))
		return 0;
	snprintf(err, errlen, "input.x: give an integer");
	return -1;
}

static const struct idem_workflow test_workflows[] = {
    {.name = "pair", .run = pair_run, .prepare = pair_prepare},
    {0},
};

/* a gives up at once on Fatal; b heartbeats. Both retry under the
 * config's policy (the fixture's RETRY_MS). */
static const struct idem_activity_options test_options[] = {
    {.name = "a", .non_retryable = "Fatal"},
    {.name = "b", .heartbeats = 1},
    {0},
};

static const struct idem_app test_app = {
    .name = "enginetest",
    .summary = "two activities in a row",
    .workflows = test_workflows,
    .options = test_options,
};

/* ---- the fake pool ----------------------------------------------------------- */

struct fake_slot {
	int busy;
	int64_t task_id;
	void *owner;
};

/* What the engine sees as struct pool. Every assignment, frame and kill
 * is recorded as a JSON object, in order. */
struct pool {
	struct engine *engine; /* the callbacks' argument */
	int nslots;
	struct fake_slot slot[FAKE_SLOTS];
	int64_t last_task_id;
	json_t *assigned;   /* {slot, task_id, activity, workflow_id, step, attempt, heartbeat_ms,
	                       committed_started} */
	json_t *sent;       /* {slot, frame, committed_started, wall_ms} */
	json_t *killed;     /* {slot, loss, reason} */
	int dropped;        /* frames refused: their slot no longer ran their task */
	sqlite3 *probe;     /* NULL, or a second connection: what is committed */
	int fail_next_send; /* the next frame's channel fails */
	void (*on_send)(struct pool *p, int i); /* once, as the next frame goes */
};

/* The 'started' events a second connection sees (committed), or -1. */
static int probe_started(const struct pool *p)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (p->probe == NULL)
		return -1;
	if (sqlite3_prepare_v2(p->probe, "SELECT count(*) FROM events WHERE kind = 'started'", -1,
	                       &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Slot i's worker is done with its task: the slot is idle again. */
static void *fake_release(struct pool *p, int i)
{
	struct fake_slot *s = &p->slot[i];
	void *owner = s->owner;

	assert_true(s->busy);
	*s = (struct fake_slot){0};
	return owner;
}

/* Slot i's attempt ends without a result, as the pool reports it. */
static void fake_lose(struct pool *p, int i, enum pool_loss loss, const char *reason)
{
	void *owner = fake_release(p, i);

	engine_pool_callbacks.lost(p->engine, owner, loss, reason, FAKE_PID + i);
}

int pool_idle(struct pool *p)
{
	for (int i = 0; i < p->nslots; i++)
		if (!p->slot[i].busy)
			return i;
	return -1;
}

pid_t pool_pid(const struct pool *p, int i)
{
	return FAKE_PID + i;
}

int64_t pool_assign(struct pool *p, int i, const struct pool_task *task)
{
	struct fake_slot *s = &p->slot[i];

	assert_false(s->busy);
	s->busy = 1;
	s->task_id = ++p->last_task_id;
	s->owner = task->owner;
	json_array_append_new(
	    p->assigned, json_pack("{s:i, s:I, s:s, s:s, s:i, s:i, s:I, s:i}", "slot", i, "task_id",
	                           (json_int_t)s->task_id, "activity", task->activity,
	                           "workflow_id", task->workflow_id, "step", task->step, "attempt",
	                           task->attempt, "heartbeat_ms", (json_int_t)task->heartbeat_ms,
	                           "committed_started", probe_started(p)));
	return s->task_id;
}

void *pool_task_owner(const struct pool *p, int i, int64_t task_id)
{
	const struct fake_slot *s = &p->slot[i];

	return s->busy && s->task_id == task_id ? s->owner : NULL;
}

/* As pool.c: refuses (and drops) a frame whose task the slot no longer
 * runs; a failed channel reports the attempt lost. */
int pool_send(struct pool *p, int i, int64_t task_id, json_t *msg)
{
	void (*hook)(struct pool *, int) = p->on_send;

	p->on_send = NULL;
	if (hook != NULL)
		hook(p, i);
	if (pool_task_owner(p, i, task_id) == NULL) {
		json_decref(msg);
		p->dropped++;
		return -1;
	}
	if (p->fail_next_send) {
		p->fail_next_send = 0;
		json_decref(msg);
		fake_lose(p, i, POOL_LOSS_WORKER, "worker is not reading its channel");
		return -1;
	}
	json_array_append_new(p->sent, json_pack("{s:i, s:o, s:i, s:I}", "slot", i, "frame", msg,
	                                         "committed_started", probe_started(p), "wall_ms",
	                                         (json_int_t)clock_wall_ms()));
	return 0;
}

void pool_kill(struct pool *p, int i, enum pool_loss loss, const char *reason)
{
	json_array_append_new(p->killed, json_pack("{s:i, s:i, s:s}", "slot", i, "loss", (int)loss,
	                                           "reason", reason));
	if (p->slot[i].busy)
		fake_lose(p, i, loss, reason);
}

int pool_busy_count(const struct pool *p)
{
	int n = 0;

	for (int i = 0; i < p->nslots; i++)
		n += p->slot[i].busy;
	return n;
}

/* ---- the fixture: a supervisor without processes ------------------------------- */

struct fixture {
	char *dir;
	char *db_path;
	struct sup sup;
	struct pool pool;
	struct engine *engine;
	struct event *tick; /* wakes the loop while a test waits for a timer */
};

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void open_engine(struct fixture *f)
{
	char err[512] = "";

	if (store_open(f->db_path, DB_SYNC_NORMAL, NULL, &f->sup.store, err, sizeof(err)) != 0)
		fail_msg("store_open: %s", err);
	if (engine_new(&f->sup, &f->engine, err, sizeof(err)) != 0)
		fail_msg("engine_new: %s", err);
	f->sup.engine = f->engine;
	f->pool.engine = f->engine;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = tu_tmpdir("engine");
	assert_non_null(f->dir);
	f->db_path = tu_fmt("%s/state.db", f->dir);
	config_defaults(&f->sup.cfg);
	f->sup.app = &test_app;
	f->sup.base = event_base_new();
	assert_non_null(f->sup.base);
	retry_policy_default(&f->sup.retry);
	f->sup.retry.initial_ms = RETRY_MS;
	f->sup.pool = &f->pool;
	f->pool.nslots = 2;
	f->pool.assigned = json_array();
	f->pool.sent = json_array();
	f->pool.killed = json_array();
	f->tick = evtimer_new(f->sup.base, tick_cb, NULL);
	open_engine(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	engine_free(f->engine);
	store_close(f->sup.store);
	sqlite3_close(f->pool.probe);
	json_decref(f->pool.assigned);
	json_decref(f->pool.sent);
	json_decref(f->pool.killed);
	event_free(f->tick);
	event_base_free(f->sup.base);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->db_path);
	free(f);
	return 0;
}

/* The supervisor stops and starts again on the same state DB: the
 * workers die with it (the fake slots are emptied, its records kept). */
static void restart(struct fixture *f)
{
	engine_free(f->engine);
	store_close(f->sup.store);
	for (int i = 0; i < FAKE_SLOTS; i++)
		f->pool.slot[i] = (struct fake_slot){0};
	open_engine(f);
}

/* ---- driving the engine ---------------------------------------------------------- */

static void recover(struct fixture *f)
{
	char err[512] = "";

	if (engine_recover(f->engine, err, sizeof(err)) != 0)
		fail_msg("engine_recover: %s", err);
}

static void turn(struct fixture *f)
{
	char err[512] = "";

	if (engine_turn_end(f->engine, err, sizeof(err)) != 0)
		fail_msg("engine_turn_end: %s", err);
}

/* Runs the loop (timers, deferred calls) and the engine's turns until
 * array holds n entries; fails after RUN_MS. */
static void run_until(struct fixture *f, const json_t *array, size_t n)
{
	int64_t end = clock_mono_ms() + RUN_MS;

	while (json_array_size(array) < n && clock_mono_ms() < end) {
		timer_in(f->tick, 5);
		event_base_loop(f->sup.base, EVLOOP_ONCE);
		turn(f);
	}
	assert_int_equal(json_array_size(array), n);
}

/* Starts a "pair" workflow with input {"x": x}; returns its id. */
static int64_t start(struct fixture *f, const char *workflow_id, int x)
{
	json_t *input = json_pack("{s:i}", "x", x), *body = NULL;
	char err[512] = "";
	int64_t id = 0;
	enum engine_start_rc rc = engine_start(f->engine, "default", workflow_id, "pair", input,
	                                       &body, &id, err, sizeof(err));

	json_decref(input);
	json_decref(body);
	if (rc != START_CREATED)
		fail_msg("engine_start %s: %d %s", workflow_id, (int)rc, err);
	assert_true(id > 0);
	return id;
}

static json_t *J(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (j == NULL)
		fail_msg("bad JSON in the test: %s: %s", jerr.text, text);
	return j;
}

static void assert_json(const json_t *got, const char *want_text)
{
	json_t *want = J(want_text);

	if (!json_equal(got, want)) {
		char *g = got != NULL ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

		fail_msg("got %s\nwant %s", g != NULL ? g : "NULL", want_text);
	}
	json_decref(want);
}

/* The worker on slot i answers with result (JSON text). */
static void worker_ok(struct fixture *f, int i, const char *result_text)
{
	json_t *result = J(result_text);
	struct msg_result r = {.task_id = f->pool.slot[i].task_id, .ok = 1, .result = result};
	void *owner = fake_release(&f->pool, i);

	engine_pool_callbacks.result(f->engine, owner, &r, FAKE_PID + i);
	json_decref(result);
}

static void worker_fails(struct fixture *f, int i, const char *type, const char *message,
                         int retryable)
{
	struct msg_result r = {.task_id = f->pool.slot[i].task_id,
	                       .error_type = type,
	                       .error_message = message,
	                       .retryable = retryable};
	void *owner = fake_release(&f->pool, i);

	engine_pool_callbacks.result(f->engine, owner, &r, FAKE_PID + i);
}

static void worker_heartbeat(struct fixture *f, int i, const char *details_text)
{
	json_t *details = J(details_text);

	assert_true(f->pool.slot[i].busy);
	engine_pool_callbacks.heartbeat(f->engine, f->pool.slot[i].owner, details);
	json_decref(details);
}

/* ---- reading back ---------------------------------------------------------------- */

static json_int_t int_of(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		fail_msg("no integer \"%s\"", key);
	return json_integer_value(v);
}

static const char *str_of(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s == NULL)
		fail_msg("no string \"%s\"", key);
	return s;
}

static size_t nsent(const struct fixture *f)
{
	return json_array_size(f->pool.sent);
}

/* The ith frame sent, and the slot it went to (BORROWED). */
static const json_t *frame(const struct fixture *f, size_t i)
{
	return json_object_get(json_array_get(f->pool.sent, i), "frame");
}

static int frame_slot(const struct fixture *f, size_t i)
{
	return (int)int_of(json_array_get(f->pool.sent, i), "slot");
}

/* id's history as "kind[/step[/attempt]]" words, in order. */
static const char *history(struct fixture *f, int64_t id, char *buf, size_t len)
{
	char err[512] = "";
	json_t *h = store_history_json(f->sup.store, id, err, sizeof(err)), *ev;
	size_t i, used = 0;

	if (h == NULL)
		fail_msg("store_history_json: %s", err);
	buf[0] = '\0';
	json_array_foreach(h, i, ev)
	{
		json_t *step = json_object_get(ev, "step"),
		       *attempt = json_object_get(ev, "attempt");

		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " " : "",
		                         str_of(ev, "kind"));
		if (used < len && json_is_integer(step))
			used += (size_t)snprintf(buf + used, len - used, "/%lld",
			                         (long long)json_integer_value(step));
		if (used < len && json_is_integer(attempt))
			used += (size_t)snprintf(buf + used, len - used, "/%lld",
			                         (long long)json_integer_value(attempt));
		if (used >= len)
			fail_msg("history of %lld is longer than %zu bytes", (long long)id, len);
	}
	json_decref(h);
	return buf;
}

static void assert_history(struct fixture *f, int64_t id, const char *want)
{
	char buf[2048];

	assert_string_equal(history(f, id, buf, sizeof(buf)), want);
}

/* The nth (from 0) event of kind in id's history (NEW reference). */
static json_t *event_of(struct fixture *f, int64_t id, const char *kind, int nth)
{
	char err[512] = "";
	json_t *h = store_history_json(f->sup.store, id, err, sizeof(err)), *ev, *found = NULL;
	size_t i;

	if (h == NULL)
		fail_msg("store_history_json: %s", err);
	json_array_foreach(h, i, ev)
	{
		if (strcmp(str_of(ev, "kind"), kind) == 0 && nth-- == 0) {
			found = json_incref(ev);
			break;
		}
	}
	json_decref(h);
	if (found == NULL)
		fail_msg("no %s event in the history of %lld", kind, (long long)id);
	return found;
}

static void assert_event_detail(struct fixture *f, int64_t id, const char *kind, int nth,
                                const char *want)
{
	json_t *ev = event_of(f, id, kind, nth);

	assert_json(json_object_get(ev, "detail"), want);
	json_decref(ev);
}

/* The workflow's committed row with its steps (NEW reference). */
static json_t *wf_row(struct fixture *f, int64_t id)
{
	char err[512] = "";
	json_t *wf = store_wf_json(f->sup.store, id, err, sizeof(err));

	if (wf == NULL)
		fail_msg("store_wf_json: %s", err);
	return wf;
}

static const json_t *step_of(const json_t *wf, size_t seq)
{
	const json_t *st = json_array_get(json_object_get(wf, "steps"), seq);

	if (st == NULL)
		fail_msg("no step %zu", seq);
	return st;
}

/* Completes a pair workflow whose step a runs on slot i: a, then b (on
 * the same slot, idle again by then). */
static void finish_pair(struct fixture *f, int i, const char *ra, const char *rb)
{
	size_t n = nsent(f);

	worker_ok(f, i, ra);
	turn(f);
	assert_int_equal(nsent(f), n + 1);
	assert_string_equal(str_of(frame(f, n), "activity"), "b");
	worker_ok(f, frame_slot(f, n), rb);
	turn(f);
}

/* ---- the cases ------------------------------------------------------------------ */

/* What test_runs_to_completion's workflow left in the state DB. */
static void assert_w1_recorded(struct fixture *f, int64_t id)
{
	json_t *wf = wf_row(f, id), *ev;

	assert_string_equal(str_of(wf, "status"), "completed");
	assert_json(json_object_get(wf, "result"), "{\"a\":{\"ya\":8}, \"b\":{\"yb\":9}}");
	assert_string_equal(str_of(step_of(wf, 0), "status"), "completed");
	assert_int_equal(int_of(step_of(wf, 0), "attempts"), 1);
	assert_json(json_object_get(step_of(wf, 1), "result"), "{\"yb\":9}");
	json_decref(wf);

	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 completed/0/1 scheduled/1 "
	               "started/1/1 completed/1/1 workflow_completed");
	assert_event_detail(f, id, "workflow_started", 0,
	                    "{\"type\":\"pair\", \"input\":{\"x\":7}}");
	assert_event_detail(f, id, "scheduled", 1,
	                    "{\"activity\":\"b\", \"input\":{\"from_a\":{\"ya\":8}}}");
	assert_event_detail(f, id, "started", 0, "{\"slot\":0}");
	assert_event_detail(f, id, "completed", 0, "{\"result\":{\"ya\":8}}");
	assert_event_detail(f, id, "workflow_completed", 0,
	                    "{\"result\":{\"a\":{\"ya\":8}, \"b\":{\"yb\":9}}}");
	ev = event_of(f, id, "completed", 1);
	assert_int_equal(int_of(ev, "pid"), FAKE_PID);
	json_decref(ev);
}

/* Start -> a's frame to an idle slot once the turn has committed -> its
 * result -> b -> completed, with the result and the history in order. */
static void test_runs_to_completion(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	const json_t *a;
	int64_t id;

	assert_int_equal(sqlite3_open_v2(f->db_path, &f->pool.probe, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	id = start(f, "w1", 7);
	/* Nothing goes before the turn ends. */
	assert_int_equal(json_array_size(f->pool.assigned), 0);
	assert_int_equal(engine_running_count(f->engine), 1);
	turn(f);

	/* Assigned inside the turn's transaction, sent after its COMMIT. */
	a = json_array_get(f->pool.assigned, 0);
	assert_json(a, "{\"slot\":0, \"task_id\":1, \"activity\":\"a\", \"workflow_id\":\"w1\","
	               " \"step\":0, \"attempt\":1, \"heartbeat_ms\":0, \"committed_started\":0}");
	assert_int_equal(nsent(f), 1);
	assert_int_equal(frame_slot(f, 0), 0);
	assert_int_equal(int_of(json_array_get(f->pool.sent, 0), "committed_started"), 1);
	assert_json(frame(f, 0), "{\"type\":\"task\", \"task_id\":1, \"namespace\":\"default\","
	                         " \"workflow_id\":\"w1\", \"step\":0, \"attempt\":1,"
	                         " \"activity\":\"a\", \"input\":{\"x\":7}}");

	worker_ok(f, 0, "{\"ya\":8}");
	turn(f);
	assert_int_equal(nsent(f), 2);
	assert_int_equal(int_of(json_array_get(f->pool.assigned, 1), "committed_started"), 1);
	assert_int_equal(int_of(json_array_get(f->pool.sent, 1), "committed_started"), 2);
	assert_json(frame(f, 1), "{\"type\":\"task\", \"task_id\":2, \"namespace\":\"default\","
	                         " \"workflow_id\":\"w1\", \"step\":1, \"attempt\":1,"
	                         " \"activity\":\"b\", \"input\":{\"from_a\":{\"ya\":8}}}");

	worker_ok(f, 0, "{\"yb\":9}");
	turn(f);
	assert_int_equal(nsent(f), 2);
	assert_int_equal(engine_running_count(f->engine), 0);
	assert_null(engine_find(f->engine, id));

	assert_w1_recorded(f, id);

	/* One COMMIT a turn. */
	assert_int_equal(s->commits, 3);
	assert_int_equal(s->attempts, 2);
	assert_int_equal(s->completed_steps, 2);
	assert_int_equal(s->workflows_started, 1);
	assert_int_equal(s->workflows_completed, 1);
	assert_int_equal(s->failed_attempts, 0);
	assert_int_equal(s->dispatch.count, 2);
	assert_int_equal(s->queue_depth, 0);
}

/* A retryable error: the step waits RETRY_MS, then attempt 2 goes. */
static void test_retry_after_backoff(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	int64_t id = start(f, "w1", 1), wall_before, next_at;
	json_t *ev, *wf;

	turn(f);
	assert_int_equal(nsent(f), 1);
	wall_before = clock_wall_ms();
	worker_fails(f, 0, "Busy", "try later", 1);
	turn(f);

	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 failed/0/1 retry_scheduled/0/1");
	assert_event_detail(f, id, "failed", 0,
	                    "{\"error_type\":\"Busy\", \"message\":\"try later\","
	                    " \"retryable\":true}");
	ev = event_of(f, id, "retry_scheduled", 0);
	assert_int_equal(int_of(json_object_get(ev, "detail"), "delay_ms"), RETRY_MS);
	next_at = int_of(json_object_get(ev, "detail"), "next_attempt_at");
	assert_true(next_at >= wall_before + RETRY_MS);
	json_decref(ev);
	wf = wf_row(f, id);
	assert_string_equal(str_of(step_of(wf, 0), "status"), "scheduled");
	assert_int_equal(int_of(step_of(wf, 0), "attempts"), 1);
	assert_string_equal(str_of(step_of(wf, 0), "error_type"), "Busy");
	assert_string_equal(str_of(step_of(wf, 0), "error_message"), "try later");
	json_decref(wf);
	assert_int_equal(pool_idle(&f->pool), 0); /* an idle slot, yet nothing goes */
	assert_int_equal(nsent(f), 1);

	run_until(f, f->pool.sent, 2);
	/* Not before the checkpointed time, on the clock it was written in
	 * (two clocks each truncated to the millisecond can disagree by one). */
	assert_true(int_of(json_array_get(f->pool.sent, 1), "wall_ms") >= next_at);
	assert_json(frame(f, 1), "{\"type\":\"task\", \"task_id\":2, \"namespace\":\"default\","
	                         " \"workflow_id\":\"w1\", \"step\":0, \"attempt\":2,"
	                         " \"activity\":\"a\", \"input\":{\"x\":1}}");

	finish_pair(f, 0, "{\"ya\":2}", "{\"yb\":3}");
	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 failed/0/1 retry_scheduled/0/1 "
	               "started/0/2 completed/0/2 scheduled/1 started/1/1 completed/1/1 "
	               "workflow_completed");
	assert_int_equal(s->attempts, 3);
	assert_int_equal(s->failed_attempts, 1);
	assert_int_equal(s->retries, 1);
	assert_int_equal(s->workflows_completed, 1);
}

/* An error type the activity lists as non-retryable, and an error the
 * worker marks not retryable: each fails its workflow with that error. */
static void test_non_retryable_fails_workflow(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	int64_t w1 = start(f, "w1", 1), w2 = start(f, "w2", 2);
	json_t *wf;

	turn(f);
	assert_int_equal(nsent(f), 2);
	assert_string_equal(str_of(frame(f, 0), "workflow_id"), "w1");
	worker_fails(f, 0, "Fatal", "no such thing", 1);
	worker_fails(f, 1, "Other", "broken", 0);
	turn(f);

	assert_int_equal(nsent(f), 2); /* no b, no retry */
	assert_int_equal(engine_running_count(f->engine), 0);
	assert_history(f, w1,
	               "workflow_started scheduled/0 started/0/1 failed/0/1 step_failed/0/1 "
	               "workflow_failed");
	assert_event_detail(f, w1, "step_failed", 0,
	                    "{\"error_type\":\"Fatal\", \"message\":\"no such thing\","
	                    " \"why\":\"non-retryable error type\"}");
	assert_event_detail(f, w2, "step_failed", 0,
	                    "{\"error_type\":\"Other\", \"message\":\"broken\","
	                    " \"why\":\"not retryable\"}");
	wf = wf_row(f, w1);
	assert_string_equal(str_of(wf, "status"), "failed");
	assert_string_equal(str_of(wf, "error"),
	                    "activity a (step 0) failed after 1 attempt: Fatal: no such thing");
	assert_true(json_is_null(json_object_get(wf, "result")));
	assert_string_equal(str_of(step_of(wf, 0), "status"), "failed");
	assert_int_equal(json_array_size(json_object_get(wf, "steps")), 1);
	json_decref(wf);
	wf = wf_row(f, w2);
	assert_string_equal(str_of(wf, "error"),
	                    "activity a (step 0) failed after 1 attempt: Other: broken");
	json_decref(wf);
	assert_event_detail(f, w2, "workflow_failed", 0,
	                    "{\"error\":\"activity a (step 0) failed after 1 attempt: Other: "
	                    "broken\"}");
	assert_int_equal(s->workflows_failed, 2);
	assert_int_equal(s->failed_attempts, 2);
	assert_int_equal(s->retries, 0);
}

/* A dead worker is a failed attempt that is retried; a start_to_close
 * kill is one too, and counts as a timeout. */
static void test_losses_retry(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	int64_t id = start(f, "w1", 1);
	json_t *ev, *wf;

	turn(f);
	fake_lose(&f->pool, 0, POOL_LOSS_WORKER, "worker exited with status 1");
	turn(f);
	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 worker_lost/0/1 "
	               "retry_scheduled/0/1");
	ev = event_of(f, id, "worker_lost", 0);
	assert_json(json_object_get(ev, "detail"),
	            "{\"error_type\":\"WorkerLost\", \"message\":\"worker exited with status 1\"}");
	assert_int_equal(int_of(ev, "pid"), FAKE_PID);
	json_decref(ev);
	assert_int_equal(s->failed_attempts, 1);
	assert_int_equal(s->worker_deaths, 1);
	assert_int_equal(s->timeouts[TIMEOUT_START_TO_CLOSE], 0);

	run_until(f, f->pool.sent, 2);
	assert_int_equal(int_of(frame(f, 1), "attempt"), 2);
	fake_lose(&f->pool, 0, POOL_LOSS_START_TO_CLOSE, "no result within 30000 ms");
	turn(f);
	assert_event_detail(f, id, "timed_out", 0,
	                    "{\"error_type\":\"StartToCloseTimeout\","
	                    " \"message\":\"no result within 30000 ms\"}");
	ev = event_of(f, id, "retry_scheduled", 1);
	assert_int_equal(int_of(json_object_get(ev, "detail"), "delay_ms"), 2 * RETRY_MS);
	json_decref(ev);
	assert_int_equal(s->timeouts[TIMEOUT_START_TO_CLOSE], 1);
	assert_int_equal(s->timeouts[TIMEOUT_HEARTBEAT], 0);
	assert_int_equal(s->timeouts[TIMEOUT_SCHEDULE_TO_CLOSE], 0);
	assert_int_equal(s->worker_deaths, 2);
	assert_int_equal(s->failed_attempts, 2);

	run_until(f, f->pool.sent, 3);
	assert_int_equal(int_of(frame(f, 2), "attempt"), 3);
	wf = wf_row(f, id);
	assert_string_equal(str_of(step_of(wf, 0), "status"), "running");
	assert_int_equal(int_of(step_of(wf, 0), "attempts"), 3);
	assert_string_equal(str_of(step_of(wf, 0), "error_type"), "StartToCloseTimeout");
	json_decref(wf);
	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 worker_lost/0/1 "
	               "retry_scheduled/0/1 started/0/2 timed_out/0/2 retry_scheduled/0/2 "
	               "started/0/3");
}

/* One slot for two workflows: the second's step waits in the queue and
 * goes, in order, when the slot is idle again. */
static void test_waits_for_an_idle_slot(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	int64_t w2;
	json_t *wf;

	f->pool.nslots = 1;
	start(f, "w1", 1);
	w2 = start(f, "w2", 2);
	turn(f);
	assert_int_equal(nsent(f), 1);
	assert_string_equal(str_of(frame(f, 0), "workflow_id"), "w1");
	assert_int_equal(s->queue_depth, 1);
	turn(f);
	assert_int_equal(nsent(f), 1);
	wf = wf_row(f, w2);
	assert_string_equal(str_of(step_of(wf, 0), "status"), "scheduled");
	assert_int_equal(int_of(step_of(wf, 0), "attempts"), 0);
	json_decref(wf);

	/* w1's a is done: w2's a was first in line, before w1's b. */
	worker_ok(f, 0, "{\"ya\":1}");
	turn(f);
	assert_int_equal(nsent(f), 2);
	assert_string_equal(str_of(frame(f, 1), "workflow_id"), "w2");
	assert_string_equal(str_of(frame(f, 1), "activity"), "a");
	assert_int_equal(s->queue_depth, 1);

	worker_ok(f, 0, "{\"ya\":2}");
	turn(f);
	assert_int_equal(nsent(f), 3);
	assert_string_equal(str_of(frame(f, 2), "workflow_id"), "w1");
	assert_string_equal(str_of(frame(f, 2), "activity"), "b");
	assert_int_equal(s->queue_depth, 1);

	worker_ok(f, 0, "{\"yb\":1}");
	turn(f);
	assert_int_equal(nsent(f), 4);
	assert_string_equal(str_of(frame(f, 3), "workflow_id"), "w2");
	assert_int_equal(s->queue_depth, 0);
	worker_ok(f, 0, "{\"yb\":2}");
	turn(f);
	assert_int_equal(engine_running_count(f->engine), 0);
	assert_int_equal(s->workflows_completed, 2);
	for (size_t i = 0; i < nsent(f); i++)
		assert_int_equal(frame_slot(f, i), 0);
	assert_history(f, w2,
	               "workflow_started scheduled/0 started/0/1 completed/0/1 scheduled/1 "
	               "started/1/1 completed/1/1 workflow_completed");
}

/* Kills slot 1's worker while another frame is being sent. */
static void kill_slot1(struct pool *p, int i)
{
	assert_int_equal(i, 0);
	fake_lose(p, 1, POOL_LOSS_WORKER, "worker exited on signal 9");
}

/* A task whose worker died after the assignment, before its frame left:
 * the frame is not sent (pool_task_owner() says NULL and pool_send()
 * refuses it), the loss is a failed attempt, and the retry goes. */
static void test_owner_lost_before_send(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	int64_t w2;

	start(f, "w1", 1);
	w2 = start(f, "w2", 2);
	f->pool.on_send = kill_slot1;
	turn(f);
	assert_int_equal(json_array_size(f->pool.assigned), 2);
	assert_int_equal(nsent(f), 1);
	assert_string_equal(str_of(frame(f, 0), "workflow_id"), "w1");
	assert_int_equal(f->pool.dropped, 1);
	assert_int_equal(s->dispatch.count, 1); /* only the frame that left */

	turn(f);
	assert_history(f, w2,
	               "workflow_started scheduled/0 started/0/1 worker_lost/0/1 "
	               "retry_scheduled/0/1");
	run_until(f, f->pool.sent, 2);
	assert_int_equal(frame_slot(f, 1), 1);
	assert_string_equal(str_of(frame(f, 1), "workflow_id"), "w2");
	assert_int_equal(int_of(frame(f, 1), "attempt"), 2);
	assert_int_equal(f->pool.dropped, 1);
}

/* pool_send() finds the channel broken and reports the attempt lost from
 * inside the send: the engine retries it. */
static void test_send_fails(void **state)
{
	struct fixture *f = *state;
	const struct engine_stats *s = engine_stats(f->engine);
	int64_t id = start(f, "w1", 1);

	f->pool.fail_next_send = 1;
	turn(f);
	assert_int_equal(nsent(f), 0);
	assert_int_equal(pool_busy_count(&f->pool), 0);
	turn(f);
	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 worker_lost/0/1 "
	               "retry_scheduled/0/1");
	assert_int_equal(s->worker_deaths, 1);
	run_until(f, f->pool.sent, 1);
	assert_int_equal(int_of(frame(f, 0), "attempt"), 2);
}

/* A start of an existing (namespace, workflow_id): 200 with the same
 * input, 409 with another, whether it runs or has closed; bad starts are
 * 400 and create nothing. */
static void test_start_existing(void **state)
{
	struct fixture *f = *state;
	json_t *same = J("{\"x\":1}"), *other = J("{\"x\":2}"), *bad = J("{\"y\":1}"), *body = NULL;
	char err[512] = "";
	int64_t id, again = -1;

	assert_int_equal(
	    engine_start(f->engine, "default", "w1", "nope", same, &body, &again, err, sizeof(err)),
	    START_INVALID);
	assert_string_equal(err, "unknown workflow type \"nope\" (known: pair)");
	assert_null(body);
	assert_int_equal(
	    engine_start(f->engine, "default", "w1", "pair", bad, &body, &again, err, sizeof(err)),
	    START_INVALID);
	assert_string_equal(err, "input.x: give an integer");
	assert_int_equal(again, 0);

	id = start(f, "w1", 1);
	for (int closed = 0; closed <= 1; closed++) {
		assert_int_equal(engine_start(f->engine, "default", "w1", "pair", same, &body,
		                              &again, err, sizeof(err)),
		                 START_EXISTS);
		assert_int_equal(again, id);
		assert_true(json_is_false(json_object_get(body, "created")));
		assert_string_equal(str_of(json_object_get(body, "workflow"), "status"),
		                    closed ? "completed" : "running");
		json_decref(body);
		body = NULL;
		assert_int_equal(engine_start(f->engine, "default", "w1", "pair", other, &body,
		                              &again, err, sizeof(err)),
		                 START_CONFLICT);
		assert_string_equal(err, "input field \"x\" differs from the existing workflow's");
		assert_null(json_object_get(body, "status")); /* the HTTP status is api.c's */
		assert_string_equal(str_of(body, "error"), err);
		assert_int_equal(again, 0);
		json_decref(body);
		body = NULL;
		if (!closed) {
			turn(f);
			finish_pair(f, 0, "{\"ya\":1}", "{\"yb\":1}");
			assert_null(engine_find(f->engine, id));
		}
	}
	assert_int_equal(engine_stats(f->engine)->workflows_started, 1);
	assert_int_equal(json_array_size(f->pool.assigned), 2);
	json_decref(same);
	json_decref(other);
	json_decref(bad);
}

/* A supervisor stops with w1's step running and w2's in backoff. The next
 * one records w1's attempt as lost and runs it again at once, and keeps
 * w2's backoff. */
static void test_recovery(void **state)
{
	struct fixture *f = *state;
	int64_t w1 = start(f, "w1", 3), w2 = start(f, "w2", 4), next_at;
	json_t *ev, *wf;

	turn(f);
	worker_fails(f, 1, "Busy", "later", 1);
	turn(f);
	ev = event_of(f, w2, "retry_scheduled", 0);
	next_at = int_of(json_object_get(ev, "detail"), "next_attempt_at");
	json_decref(ev);
	wf = wf_row(f, w1);
	assert_string_equal(str_of(step_of(wf, 0), "status"), "running");
	json_decref(wf);

	restart(f);
	recover(f);
	assert_int_equal(engine_running_count(f->engine), 2);
	assert_int_equal(engine_stats(f->engine)->failed_attempts, 1);
	turn(f);
	assert_int_equal(nsent(f), 3);
	assert_json(frame(f, 2), "{\"type\":\"task\", \"task_id\":3, \"namespace\":\"default\","
	                         " \"workflow_id\":\"w1\", \"step\":0, \"attempt\":2,"
	                         " \"activity\":\"a\", \"input\":{\"x\":3}}");
	assert_history(f, w1,
	               "workflow_started scheduled/0 started/0/1 attempt_lost/0/1 started/0/2");
	assert_event_detail(f, w1, "attempt_lost", 0,
	                    "{\"reason\":\"the supervisor stopped while the attempt was in "
	                    "flight\"}");

	run_until(f, f->pool.sent, 4);
	assert_string_equal(str_of(frame(f, 3), "workflow_id"), "w2");
	assert_int_equal(int_of(frame(f, 3), "attempt"), 2);
	assert_true(int_of(json_array_get(f->pool.sent, 3), "wall_ms") >= next_at);
	assert_history(f, w2,
	               "workflow_started scheduled/0 started/0/1 failed/0/1 retry_scheduled/0/1 "
	               "started/0/2");

	finish_pair(f, frame_slot(f, 2), "{\"ya\":4}", "{\"yb\":5}");
	wf = wf_row(f, w1);
	assert_string_equal(str_of(wf, "status"), "completed");
	assert_json(json_object_get(wf, "result"), "{\"a\":{\"ya\":4}, \"b\":{\"yb\":5}}");
	json_decref(wf);
}

/* SCHEDULE_TO_CLOSE_TIMEOUT passes while an attempt runs: the engine has
 * the pool kill it, and the step and the workflow fail. */
static void test_schedule_to_close_kills(void **state)
{
	struct fixture *f = *state;
	const json_t *killed;
	int64_t id;
	json_t *wf;

	f->sup.cfg.schedule_to_close_ms = 200;
	id = start(f, "w1", 1);
	turn(f);
	assert_int_equal(nsent(f), 1);
	run_until(f, f->pool.killed, 1);
	killed = json_array_get(f->pool.killed, 0);
	assert_int_equal(int_of(killed, "slot"), 0);
	assert_int_equal(int_of(killed, "loss"), POOL_LOSS_SCHEDULE_TO_CLOSE);
	assert_string_equal(str_of(killed, "reason"),
	                    "schedule_to_close timeout: not completed within 200 ms");
	turn(f);
	assert_history(f, id,
	               "workflow_started scheduled/0 started/0/1 timed_out/0/1 step_failed/0/1 "
	               "workflow_failed");
	assert_event_detail(f, id, "step_failed", 0,
	                    "{\"error_type\":\"ScheduleToCloseTimeout\","
	                    " \"message\":\"schedule_to_close timeout: not completed within 200 "
	                    "ms\", \"why\":\"schedule_to_close timeout\"}");
	assert_int_equal(engine_stats(f->engine)->timeouts[TIMEOUT_SCHEDULE_TO_CLOSE], 1);
	wf = wf_row(f, id);
	assert_string_equal(str_of(wf, "status"), "failed");
	json_decref(wf);
	assert_int_equal(nsent(f), 1);
}

/* b heartbeats: its attempts get HEARTBEAT_TIMEOUT, its details are
 * recorded, a heartbeat timeout is retried and the retry's frame carries
 * the last details. */
static void test_heartbeat_carried_to_retry(void **state)
{
	struct fixture *f = *state;
	int64_t id;
	json_t *wf;

	f->sup.cfg.heartbeat_timeout_ms = 5000;
	id = start(f, "w1", 1);
	turn(f);
	worker_ok(f, 0, "{\"ya\":1}");
	turn(f);
	assert_int_equal(int_of(json_array_get(f->pool.assigned, 0), "heartbeat_ms"), 0);
	assert_int_equal(int_of(json_array_get(f->pool.assigned, 1), "heartbeat_ms"), 5000);
	assert_null(json_object_get(frame(f, 1), "heartbeat"));

	worker_heartbeat(f, 0, "{\"order\":\"S1\"}");
	fake_lose(&f->pool, 0, POOL_LOSS_HEARTBEAT, "no heartbeat within 5000 ms");
	turn(f);
	assert_event_detail(f, id, "heartbeat", 0, "{\"details\":{\"order\":\"S1\"}}");
	assert_event_detail(f, id, "timed_out", 0,
	                    "{\"error_type\":\"HeartbeatTimeout\","
	                    " \"message\":\"no heartbeat within 5000 ms\"}");
	assert_int_equal(engine_stats(f->engine)->timeouts[TIMEOUT_HEARTBEAT], 1);

	run_until(f, f->pool.sent, 3);
	assert_int_equal(int_of(frame(f, 2), "attempt"), 2);
	assert_json(json_object_get(frame(f, 2), "heartbeat"), "{\"order\":\"S1\"}");
	wf = wf_row(f, id);
	assert_json(json_object_get(step_of(wf, 1), "heartbeat"), "{\"order\":\"S1\"}");
	json_decref(wf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_runs_to_completion, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_after_backoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_retryable_fails_workflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_losses_retry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_waits_for_an_idle_slot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_lost_before_send, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_existing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schedule_to_close_kills, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_heartbeat_carried_to_retry, setup, teardown),
	};

	log_init("test_engine", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
