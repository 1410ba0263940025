/* test_faults.c — crash-safe retries, proven with the real programs:
 * each activity killed at each crash point still ends at exactly 1001 with
 * one row per effect and a passing checker; naive mode under the same
 * kill is caught by the checker; retry limits, non-retryable types and the
 * three timeouts; heartbeat resume; a fault plan that does not depend on
 * the worker count; and a supervisor SIGKILL in the middle of faults.
 * Random choices come from a seed printed at the start (IDEM_TEST_SEED). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "db.h"
#include "testutil.h"

static uint64_t seed;

static int setup(void **state)
{
	return tu_fixture_setup(state, "faults");
}

/* Starts a supervisor on a fresh directory with extra flags. */
static void start(struct tu_fixture *f, const char *const *extra)
{
	if (tu_sup_start(&f->sup, f->dir, extra) != 0)
		fail_msg("the supervisor did not start");
}

static void stop(struct tu_fixture *f)
{
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

static long long db_int(struct tu_fixture *f, const char *db, const char *sql)
{
	char *path = tu_fmt("%s/%s", f->dir, db);
	long long v = tu_sql_int(path, sql);

	free(path);
	return v;
}

static json_t *get(struct tu_fixture *f, const char *path)
{
	json_t *body = NULL;

	assert_int_equal(tu_http(&f->sup, "GET", path, NULL, &body), 200);
	return body;
}

/* Waits for a workflow; returns it (NEW ref). */
static json_t *wait_wf(struct tu_fixture *f, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s/wait?timeout=120", id);
	json_t *body = get(f, path), *wf;

	free(path);
	assert_false(json_is_true(json_object_get(body, "timed_out")));
	wf = json_incref(json_object_get(body, "workflow"));
	json_decref(body);
	return wf;
}

static void wait_all(struct tu_fixture *f)
{
	json_t *body = get(f, "/v1/wait?timeout=300");

	assert_false(json_is_true(json_object_get(body, "timed_out")));
	json_decref(body);
}

static const char *status_of(json_t *wf)
{
	return json_string_value(json_object_get(wf, "status"));
}

/* The checker's verdict; prints the report when it is not ok. */
static int check_ok(struct tu_fixture *f, json_t **report)
{
	json_t *r = get(f, "/v1/check");
	int ok = json_is_true(json_object_get(r, "ok"));

	if (!ok && report == NULL) {
		char *text = json_dumps(r, JSON_INDENT(1));
		fprintf(stderr, "check report:\n%s\n", text);
		free(text);
	}
	if (report != NULL)
		*report = r;
	else
		json_decref(r);
	return ok;
}

/* The history's events (NEW ref). */
static json_t *history(struct tu_fixture *f, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s/history", id);
	json_t *body = get(f, path), *events;

	free(path);
	events = json_incref(json_object_get(body, "events"));
	json_decref(body);
	return events;
}

/* Index of the first event at or after from with kind (and step, attempt
 * when >= 0), or -1. */
static int find_event(json_t *events, size_t from, const char *kind, int step, int attempt)
{
	for (size_t i = from; i < json_array_size(events); i++) {
		json_t *e = json_array_get(events, i);
		if (strcmp(json_string_value(json_object_get(e, "kind")), kind) != 0)
			continue;
		if (step >= 0 && json_integer_value(json_object_get(e, "step")) != step)
			continue;
		if (attempt >= 0 && json_integer_value(json_object_get(e, "attempt")) != attempt)
			continue;
		return (int)i;
	}
	return -1;
}

static const char *detail_str(json_t *events, int i, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_array_get(events, (size_t)i), "detail"), key));
}

static void assert_seed_outcome(struct tu_fixture *f)
{
	json_t *wf = wait_wf(f, "A12");

	assert_string_equal(status_of(wf), "completed");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(wf, "result"), "final_stock")),
	    1001);
	json_decref(wf);
	assert_int_equal(
	    db_int(f, "inventory.db", "SELECT stock FROM products WHERE product_id = '123456'"),
	    1001);
	assert_int_equal(db_int(f, "inventory.db", "SELECT count(*) FROM orders"), 1);
	assert_int_equal(db_int(f, "inventory.db", "SELECT count(*) FROM restocks"), 1);
	assert_int_equal(db_int(f, "supplier.db", "SELECT count(*) FROM supplier_orders"), 1);
}

/* The app DB is called inventory.db here, as in .env-dist. */
static char *db_flag(struct tu_fixture *f)
{
	return tu_fmt("--database=%s/inventory.db", f->dir);
}

/* ---- each activity, each crash point --------------------------------------- */

static void crash_once(void **state, const char *activity, int step, const char *point)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f), *points = tu_fmt("--fault-kill-points=%s", point);
	char *acts = tu_fmt("--fault-activities=%s", activity);
	const char *extra[] = {db,
	                       "--retry-initial-interval=20ms",
	                       "--fault-seed=1",
	                       "--fault-kill-rate=1",
	                       points,
	                       acts,
	                       "--fault-max-attempt=1",
	                       NULL};
	json_t *events;
	int i;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	assert_seed_outcome(f);
	assert_true(check_ok(f, NULL));

	/* The history shows the planned kill, the lost attempt, the retry
	 * and a second attempt that completed. */
	events = history(f, "A12");
	i = find_event(events, 0, "fault_injected", step, 1);
	assert_true(i >= 0);
	assert_string_equal(detail_str(events, i, "kind"), "kill");
	assert_string_equal(detail_str(events, i, "point"), point);
	assert_true(json_integer_value(json_object_get(json_array_get(events, (size_t)i), "pid")) >
	            0);
	i = find_event(events, (size_t)i, "worker_lost", step, 1);
	assert_true(i >= 0);
	i = find_event(events, (size_t)i, "retry_scheduled", step, 1);
	assert_true(i >= 0);
	i = find_event(events, (size_t)i, "started", step, 2);
	assert_true(i >= 0);
	assert_true(find_event(events, (size_t)i, "completed", step, 2) >= 0);
	json_decref(events);
	stop(f);
	free(db);
	free(points);
	free(acts);
}

static void test_update_before_effect(void **s)
{
	crash_once(s, "update_inventory", 0, "before_effect");
}
static void test_update_after_effect(void **s)
{
	crash_once(s, "update_inventory", 0, "after_effect");
}
static void test_update_after_commit(void **s)
{
	crash_once(s, "update_inventory", 0, "after_commit");
}
static void test_update_mid_reply(void **s)
{
	crash_once(s, "update_inventory", 0, "mid_reply");
}
static void test_supplier_before_effect(void **s)
{
	crash_once(s, "supplier_order", 1, "before_effect");
}
static void test_supplier_after_effect(void **s)
{
	crash_once(s, "supplier_order", 1, "after_effect");
}
static void test_supplier_after_commit(void **s)
{
	crash_once(s, "supplier_order", 1, "after_commit");
}
static void test_supplier_mid_reply(void **s)
{
	crash_once(s, "supplier_order", 1, "mid_reply");
}

/* ---- the control experiment ------------------------------------------------- */

/* The same kill without the guards applies the effect twice, and the
 * checker says so, naming the order or the restock key. quantity leaves
 * room for a second decrement (999 of 1000 would fail the retry with
 * InsufficientStock instead). */
static void naive_after_commit(void **state, const char *activity, long quantity, const char *kind,
                               const char *needle)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f), *acts = tu_fmt("--fault-activities=%s", activity);
	const char *extra[] = {db,
	                       "--activity-mode=naive",
	                       "--retry-initial-interval=20ms",
	                       "--fault-seed=1",
	                       "--fault-kill-rate=1",
	                       "--fault-kill-points=after_commit",
	                       acts,
	                       "--fault-max-attempt=1",
	                       NULL};
	json_t *report = NULL, *violations;
	int found = 0;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", quantity), 201);
	json_decref(wait_wf(f, "A12"));
	assert_false(check_ok(f, &report));
	assert_true(json_integer_value(json_object_get(json_object_get(report, "counts"), kind)) >=
	            1);
	violations = json_object_get(report, "violations");
	for (size_t i = 0; i < json_array_size(violations); i++) {
		const char *msg =
		    json_string_value(json_object_get(json_array_get(violations, i), "message"));
		found |= msg != NULL && strstr(msg, needle) != NULL;
	}
	if (!found) {
		char *text = json_dumps(report, JSON_INDENT(1));
		fail_msg("no violation names %s:\n%s", needle, text);
	}
	json_decref(report);
	stop(f);
	free(db);
	free(acts);
}

static void test_naive_update_is_caught(void **s)
{
	naive_after_commit(s, "update_inventory", 5, "duplicated", "A12");
}

static void test_naive_supplier_is_caught(void **s)
{
	naive_after_commit(s, "supplier_order", 999, "duplicated", "default/A12/1");
}

/* ---- retry limits ------------------------------------------------------------- */

static void test_maximum_attempts_fail_with_last_error(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db,
	                       "--retry-initial-interval=10ms",
	                       "--retry-maximum-attempts=3",
	                       "--fault-seed=1",
	                       "--fault-error-rate=1",
	                       NULL};
	json_t *wf, *report = NULL, *counts;
	const char *err;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	wf = wait_wf(f, "A12");
	assert_string_equal(status_of(wf), "failed");
	err = json_string_value(json_object_get(wf, "error"));
	assert_non_null(strstr(err, "update_inventory"));
	assert_non_null(strstr(err, "after 3 attempts"));
	assert_non_null(strstr(err, "InjectedError"));
	json_decref(wf);
	/* Failed, not stuck. Attempt 2 applied the order before its
	 * injected error, attempt 3 failed before the effect: the order
	 * stands, once, while the workflow says it failed, and the checker
	 * reports exactly that. */
	assert_false(check_ok(f, &report));
	counts = json_object_get(report, "counts");
	assert_int_equal(json_integer_value(json_object_get(counts, "failed_with_effects")), 1);
	assert_int_equal(json_integer_value(json_object_get(counts, "duplicated")), 0);
	assert_int_equal(json_integer_value(json_object_get(counts, "stuck")), 0);
	json_decref(report);
	stop(f);
	free(db);
}

static void test_non_retryable_type_fails_at_once(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db,
	                       "--retry-initial-interval=10ms",
	                       "--retry-non-retryable=InjectedError",
	                       "--fault-seed=1",
	                       "--fault-error-rate=1",
	                       NULL};
	json_t *wf, *steps;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	wf = wait_wf(f, "A12");
	assert_string_equal(status_of(wf), "failed");
	assert_non_null(strstr(json_string_value(json_object_get(wf, "error")), "after 1 attempt"));
	steps = json_object_get(wf, "steps");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(steps, 0), "attempts")),
	                 1);
	json_decref(wf);
	stop(f);
	free(db);
}

/* ---- timeouts ------------------------------------------------------------------ */

static int timed_out_with(json_t *events, int step, const char *type)
{
	for (int i = 0; (i = find_event(events, (size_t)i, "timed_out", step, -1)) >= 0; i++)
		if (strcmp(detail_str(events, i, "error_type"), type) == 0)
			return 1;
	return 0;
}

static void test_start_to_close_kills_and_retries(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db, "--retry-initial-interval=10ms",
	                       /* room for the clean attempt 2 on a loaded machine */
	                       "--start-to-close-timeout=600ms", "--fault-seed=1",
	                       "--fault-delay-rate=1", "--fault-max-attempt=1", NULL};
	json_t *events, *stats;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	assert_seed_outcome(f);
	events = history(f, "A12");
	assert_true(timed_out_with(events, 0, "StartToCloseTimeout"));
	assert_true(timed_out_with(events, 1, "StartToCloseTimeout"));
	assert_true(find_event(events, 0, "completed", 0, 2) >= 0);
	json_decref(events);
	stats = get(f, "/v1/stats");
	assert_int_equal(json_integer_value(
	                     json_object_get(json_object_get(stats, "timeouts"), "start_to_close")),
	                 2);
	json_decref(stats);
	assert_true(check_ok(f, NULL));
	stop(f);
	free(db);
}

static void test_heartbeat_timeout(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db,
	                       "--retry-initial-interval=10ms",
	                       "--start-to-close-timeout=30s",
	                       "--heartbeat-timeout=200ms",
	                       "--fault-seed=1",
	                       "--fault-delay-rate=1",
	                       "--fault-activities=supplier_order",
	                       "--fault-max-attempt=1",
	                       NULL};
	json_t *events;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	assert_seed_outcome(f);
	events = history(f, "A12");
	assert_true(timed_out_with(events, 1, "HeartbeatTimeout"));
	assert_false(timed_out_with(events, 1, "StartToCloseTimeout"));
	/* update_inventory does not heartbeat: no heartbeat timeout for it. */
	assert_false(timed_out_with(events, 0, "HeartbeatTimeout"));
	json_decref(events);
	stop(f);
	free(db);
}

static void test_schedule_to_close_fails_workflow(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db,
	                       "--retry-initial-interval=10ms",
	                       "--start-to-close-timeout=30s",
	                       "--schedule-to-close-timeout=300ms",
	                       "--fault-seed=1",
	                       "--fault-delay-rate=1",
	                       NULL};
	json_t *wf, *events;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	wf = wait_wf(f, "A12");
	assert_string_equal(status_of(wf), "failed");
	assert_non_null(
	    strstr(json_string_value(json_object_get(wf, "error")), "ScheduleToCloseTimeout"));
	json_decref(wf);
	events = history(f, "A12");
	assert_true(timed_out_with(events, 0, "ScheduleToCloseTimeout"));
	json_decref(events);
	/* The delayed attempt never reached its effect. */
	assert_int_equal(db_int(f, "inventory.db", "SELECT count(*) FROM orders"), 0);
	assert_true(check_ok(f, NULL));
	stop(f);
	free(db);
}

/* ---- the retry schedule survives a restart ------------------------------------- */

static json_int_t event_int(json_t *events, int i, const char *key)
{
	return json_integer_value(json_object_get(json_array_get(events, (size_t)i), key));
}

/* A retry due in 1.5 s is checkpointed: a supervisor killed meanwhile and
 * started again runs it at its time, not at once and not later than
 * needed. */
static void test_retry_schedule_survives_restart(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db,
	                       "--retry-initial-interval=1500ms",
	                       "--fault-seed=1",
	                       "--fault-error-rate=1",
	                       "--fault-activities=update_inventory",
	                       "--fault-max-attempt=1",
	                       NULL};
	json_t *events, *detail;
	json_int_t due;
	int i, j;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	for (int k = 0; k < 100 && db_int(f, "state.db",
	                                  "SELECT count(*) FROM events WHERE "
	                                  "kind = 'retry_scheduled'") == 0;
	     k++)
		tu_sleep_ms(20);
	tu_sup_kill9(&f->sup);
	start(f, extra);
	assert_seed_outcome(f);
	events = history(f, "A12");
	i = find_event(events, 0, "retry_scheduled", 0, 1);
	assert_true(i >= 0);
	detail = json_object_get(json_array_get(events, (size_t)i), "detail");
	due = json_integer_value(json_object_get(detail, "next_attempt_at"));
	j = find_event(events, (size_t)i, "started", 0, 2);
	assert_true(j >= 0);
	assert_true(event_int(events, j, "ts") >= due);
	json_decref(events);
	stop(f);
	free(db);
}

/* ---- heartbeat resume ------------------------------------------------------------ */

/* A kill after the supplier answered (inside the credit transaction):
 * the next attempt takes the supplier order id from the checkpointed
 * heartbeat and does not call the supplier again. */
static void test_heartbeat_resume(void **state)
{
	struct tu_fixture *f = *state;
	char *db = db_flag(f);
	const char *extra[] = {db,
	                       "--retry-initial-interval=10ms",
	                       "--fault-seed=1",
	                       "--fault-kill-rate=1",
	                       "--fault-kill-points=after_effect",
	                       "--fault-activities=supplier_order",
	                       "--fault-max-attempt=1",
	                       NULL};
	json_t *wf, *events, *step1;
	int i;

	start(f, extra);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	assert_seed_outcome(f);
	events = history(f, "A12");
	i = find_event(events, 0, "heartbeat", 1, 1);
	assert_true(i >= 0);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(json_array_get(events, (size_t)i), "detail"),
	                        "details"),
	        "supplier_order_id")),
	    "SO-1");
	json_decref(events);
	wf = wait_wf(f, "A12");
	step1 = json_array_get(json_object_get(wf, "steps"), 1);
	assert_int_equal(json_integer_value(json_object_get(step1, "attempts")), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(step1, "result"), "source")),
	    "heartbeat");
	json_decref(wf);
	assert_true(check_ok(f, NULL));
	stop(f);
	free(db);
}

/* ---- determinism ------------------------------------------------------------------- */

#define DET_WORKFLOWS 24

/* The rows of sql, one line each, columns joined by '|' (malloc'd). */
static char *rows_text(const char *db_path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *out = strdup(""), *next;

	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const char *v = (const char *)sqlite3_column_text(st, c);
			next = tu_fmt("%s%s%s", out, c ? "|" : "", v ? v : "");
			free(out);
			out = next;
		}
		next = tu_fmt("%s\n", out);
		free(out);
		out = next;
	}
	sqlite3_finalize(st);
	db_close(db);
	return out;
}

/* Every workflow its own product (stock 3, order 2: always a restock),
 * so no decision depends on the order in which workflows run. Returns
 * the sorted list of fault events as text (malloc'd). */
static char *fault_list(struct tu_fixture *f, const char *workers)
{
	char stock[DET_WORKFLOWS * 12 + 32] = "--seed-stock=";
	char *db = db_flag(f), *seedflag = tu_fmt("--fault-seed=%llu", (unsigned long long)seed);
	const char *extra[] = {db,
	                       stock,
	                       workers,
	                       seedflag,
	                       "--retry-initial-interval=5ms",
	                       "--fault-kill-rate=0.25",
	                       "--fault-error-rate=0.25",
	                       "--fault-peer-rate=0.3",
	                       NULL};
	char *path, *list = NULL;
	json_t *stats;
	long long planned = 0;

	for (int i = 0; i < DET_WORKFLOWS; i++) {
		size_t n = strlen(stock);
		snprintf(stock + n, sizeof(stock) - n, "%sD%d:3", i ? "," : "", i);
	}
	start(f, extra);
	for (int i = 0; i < DET_WORKFLOWS; i++) {
		char id[16], product[16];
		snprintf(id, sizeof(id), "D%d", i);
		snprintf(product, sizeof(product), "D%d", i);
		assert_int_equal(tu_start_order(&f->sup, id, product, 2), 201);
	}
	wait_all(f);
	assert_true(check_ok(f, NULL));
	stats = get(f, "/v1/stats");
	json_t *kinds = json_object_get(json_object_get(stats, "faults"), "by_kind");
	const char *k;
	json_t *v;
	json_object_foreach(kinds, k, v) planned += json_integer_value(v);
	json_decref(stats);
	stop(f);
	path = tu_fmt("%s/state.db", f->dir);
	/* Every planned fault is in the history. */
	assert_int_equal(
	    tu_sql_int(path, "SELECT count(*) FROM events WHERE kind = 'fault_injected'"), planned);
	list = rows_text(path, "SELECT w.workflow_id, e.seq, e.attempt, e.detail FROM events e "
	                       "JOIN workflows w ON w.id = e.wf WHERE e.kind = 'fault_injected' "
	                       "ORDER BY w.workflow_id, e.seq, e.attempt");
	free(path);
	free(db);
	free(seedflag);
	return list;
}

/* The decision recorded for "wf|step|attempt|" in list, or NULL. */
static const char *decision_of(const char *list, const char *key)
{
	for (const char *p = list; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, strlen(key)) == 0)
			return p + strlen(key);
	return NULL;
}

static int line_len(const char *p)
{
	return (int)strcspn(p, "\n");
}

/* Every (workflow, step, attempt) that both runs reached got the same
 * decision. (Which attempts a run reaches can differ: with several
 * workers, a supplier killed by plan also fails another worker's request
 * in flight, an unplanned failure that adds an attempt.) */
static void test_same_seed_same_faults_any_worker_count(void **state)
{
	struct tu_fixture *f = *state;
	char *one, *three;
	int common = 0, total = 0;

	one = fault_list(f, "--workers=1");
	tu_rmrf(f->dir);
	free(f->dir);
	f->dir = tu_tmpdir("faults");
	three = fault_list(f, "--workers=3");
	for (const char *p = one; *p; p += line_len(p) + (p[line_len(p)] == '\n')) {
		char key[64];
		const char *bar = p;
		const char *mine, *theirs;

		for (int k = 0; k < 3; k++)
			bar = strchr(bar, '|') + 1;
		snprintf(key, sizeof(key), "%.*s", (int)(bar - p), p);
		mine = p + strlen(key);
		theirs = decision_of(three, key);
		total++;
		if (theirs == NULL)
			continue;
		common++;
		if (line_len(mine) != line_len(theirs) ||
		    strncmp(mine, theirs, (size_t)line_len(mine)))
			fail_msg("seed %llu: %s planned %.*s with 1 worker, %.*s with 3",
			         (unsigned long long)seed, key, line_len(mine), mine,
			         line_len(theirs), theirs);
	}
	fprintf(stderr, "seed %llu: %d planned faults, %d reached in both runs, all identical\n",
	        (unsigned long long)seed, total, common);
	assert_true(total > 0);
	assert_true(common * 2 >= total);
	free(one);
	free(three);
}

/* ---- supervisor SIGKILL amid faults ------------------------------------------------- */

static void test_supervisor_sigkill_amid_faults(void **state)
{
	struct tu_fixture *f = *state;
	char stock[256] = "--seed-stock=";
	char *db = db_flag(f), *seedflag = tu_fmt("--fault-seed=%llu", (unsigned long long)seed);
	const char *extra[] = {db,
	                       stock,
	                       seedflag,
	                       "--workers=3",
	                       "--retry-initial-interval=5ms",
	                       "--retry-maximum-interval=50ms",
	                       "--fault-kill-rate=0.15",
	                       "--fault-error-rate=0.1",
	                       "--fault-async-kill-rate=0.05",
	                       "--fault-async-kill-max-delay=5ms",
	                       "--fault-peer-rate=0.1",
	                       NULL};
	uint64_t rng = seed;
	int n = 120, cut, status = 0;

	for (int i = 0; i < 10; i++) {
		size_t len = strlen(stock);
		snprintf(stock + len, sizeof(stock) - len, "%sS%d:40", i ? "," : "", i);
	}
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	cut = 20 + (int)((rng >> 33) % 80);
	start(f, extra);
	for (int i = 0; i < n; i++) {
		char id[16], product[16];

		if (i == cut) {
			fprintf(stderr, "seed %llu: SIGKILL of the supervisor at start %d of %d\n",
			        (unsigned long long)seed, cut, n);
			tu_sup_kill9(&f->sup);
			start(f, extra);
		}
		snprintf(id, sizeof(id), "F%d", i);
		snprintf(product, sizeof(product), "S%d", i % 10);
		/* A client retries a start that got no answer (the start is
		 * idempotent): right after the restart one was seen reset. */
		for (int k = 0;
		     k < 3 && (status = tu_start_order(&f->sup, id, product, 1 + i % 7)) < 0; k++)
			tu_sleep_ms(50);
		assert_int_equal(status / 100, 2);
	}
	wait_all(f);
	/* All closed; the only failures are orders the stock could not serve. */
	assert_int_equal(db_int(f, "state.db", "SELECT count(*) FROM workflows"), n);
	assert_int_equal(db_int(f, "state.db",
	                        "SELECT count(*) FROM workflows WHERE status = "
	                        "'failed' AND error NOT LIKE '%InsufficientStock%'"),
	                 0);
	assert_true(db_int(f, "inventory.db", "SELECT count(*) FROM restocks") > 0);
	assert_true(check_ok(f, NULL));
	stop(f);
	free(db);
	free(seedflag);
}

int main(void)
{
	const char *env = getenv("IDEM_TEST_SEED");
#define T(t) cmocka_unit_test_setup_teardown(t, setup, tu_fixture_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_update_before_effect),
	    T(test_update_after_effect),
	    T(test_update_after_commit),
	    T(test_update_mid_reply),
	    T(test_supplier_before_effect),
	    T(test_supplier_after_effect),
	    T(test_supplier_after_commit),
	    T(test_supplier_mid_reply),
	    T(test_naive_update_is_caught),
	    T(test_naive_supplier_is_caught),
	    T(test_maximum_attempts_fail_with_last_error),
	    T(test_non_retryable_type_fails_at_once),
	    T(test_start_to_close_kills_and_retries),
	    T(test_heartbeat_timeout),
	    T(test_schedule_to_close_fails_workflow),
	    T(test_heartbeat_resume),
	    T(test_retry_schedule_survives_restart),
	    T(test_same_seed_same_faults_any_worker_count),
	    T(test_supervisor_sigkill_amid_faults),
	};

	seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	fprintf(stderr, "test_faults: seed %llu (replay with IDEM_TEST_SEED=%llu)\n",
	        (unsigned long long)seed, (unsigned long long)seed);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
