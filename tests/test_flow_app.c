/* test_flow_app.c — a workflow written as JSON runs on the same engine as
 * one written in C: the seed's inventory workflow, as the file
 * examples/inventory-flow/idem.json defines it on the built-in
 * inventory activities, gives under the same fault seed the same history
 * (every event of every attempt, in order: its kind, step, attempt and
 * detail) and the same final state (stock, orders, restocks, the
 * supplier's ledger) as apps/inventory/workflow.c. The fault seed is
 * printed (IDEM_TEST_SEED replays it); one worker and one workflow at a
 * time keep the slots and pids out of the comparison's way. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "testutil.h"

/* Enough that fewer than 5 faults (the comparison's floor) is out of
 * reach: about 0.4 of attempts fault, and 24 orders fell short about
 * once in 450 runs. */
#define NWORKFLOWS 60

static uint64_t seed;

/* One run of NWORKFLOWS orders on app (a name or a directory) in its
 * own directory; returns that directory (malloc'd). */
static char *run_orders(const char *app)
{
	char *dir = tu_tmpdir("flowapp");
	char *app_flag = tu_fmt("--app=%s", app),
	     *seed_flag = tu_fmt("--fault-seed=%" PRIu64, seed);
	const char *extra[] = {app_flag,
	                       seed_flag,
	                       "--workers=1",
	                       "--seed-stock=P1:5,P2:1000",
	                       "--fault-kill-rate=0.25",
	                       "--fault-error-rate=0.2",
	                       "--fault-peer-rate=0.2",
	                       "--retry-initial-interval=2ms",
	                       "--retry-maximum-interval=20ms",
	                       NULL};
	struct tu_sup s = {0};

	if (tu_sup_start(&s, dir, extra) != 0)
		fail_msg("seed %" PRIu64 ": %s did not start", seed, app);
	for (int i = 0; i < NWORKFLOWS; i++) {
		char *body = tu_fmt("{\"type\":\"inventory\",\"input\":{\"order_id\":\"O%d\","
		                    "\"product_id\":\"P%d\",\"quantity\":%d}}",
		                    i, 1 + i % 2, 1 + i % 3);
		json_t *reply = NULL;
		char *path = tu_fmt("/v1/workflows/O%d/wait?timeout=30", i);

		assert_int_equal(tu_http(&s, "POST", "/v1/workflows", body, NULL), 201);
		assert_int_equal(tu_http(&s, "GET", path, NULL, &reply), 200);
		assert_false(json_is_true(json_object_get(reply, "timed_out")));
		json_decref(reply);
		free(body);
		free(path);
	}
	assert_int_equal(tu_sup_stop(&s), 0);
	tu_sup_free(&s);
	free(app_flag);
	free(seed_flag);
	return dir;
}

/* text with each dir in it written DIR (a message may name a socket
 * in the run's directory). Takes text; returns a malloc'd string. */
static char *unplace(char *text, const char *dir)
{
	size_t n = strlen(dir);
	char *out = calloc(1, strlen(text) + 1), *o = out;

	for (const char *t = text; *t != '\0';) {
		if (strncmp(t, dir, n) == 0) {
			memcpy(o, "DIR", 3);
			o += 3;
			t += n;
		} else {
			*o++ = *t++;
		}
	}
	free(text);
	return out;
}

/* The rows of sql in db, one line each, columns separated by '|'. */
static char *rows(const char *dir, const char *db, const char *sql)
{
	char *path = tu_fmt("%s/%s", dir, db);
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	size_t len = 0, cap = 4096;
	char *out = calloc(1, cap);

	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const char *v = (const char *)sqlite3_column_text(st, c);
			size_t n = strlen(v != NULL ? v : "NULL") + 2;

			while (len + n + 1 > cap)
				out = realloc(out, cap *= 2);
			len +=
			    (size_t)snprintf(out + len, cap - len, "%s%s", v != NULL ? v : "NULL",
			                     c + 1 < sqlite3_column_count(st) ? "|" : "\n");
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	free(path);
	return unplace(out, dir);
}

static void assert_same(const char *what, const char *c, const char *file)
{
	if (strcmp(c, file) == 0)
		return;
	fprintf(stderr, "seed %" PRIu64 ": %s differ\n--- C workflow:\n%s--- JSON workflow:\n%s",
	        seed, what, c, file);
	fail_msg("%s differ", what);
}

static void test_same_history_and_state(void **state)
{
	char *c_dir = run_orders("inventory");
	char *file_dir = run_orders(IDEM_SOURCE_DIR "/examples/inventory-flow");
	/* Everything but the clocks and pids: a loss's detail names the dead
	 * worker's pid, a retry's the time it is due. */
	const char *history =
	    "SELECT w.workflow_id, w.type, e.seq, e.attempt, e.kind,"
	    " CASE WHEN e.kind IN ('worker_lost', 'worker_killed', 'timed_out')"
	    "  THEN json_extract(e.detail, '$.error_type')"
	    "  WHEN e.kind = 'retry_scheduled' THEN json_remove(e.detail, '$.next_attempt_at')"
	    "  ELSE e.detail END"
	    " FROM events e JOIN workflows w ON w.id = e.wf ORDER BY e.id";
	const char *workflows =
	    "SELECT workflow_id, type, status, input, result, error FROM workflows ORDER BY id";
	const char *stock = "SELECT * FROM products ORDER BY product_id";
	const char *orders = "SELECT order_id, product_id, quantity, stock_after, workflow_id "
	                     "FROM orders ORDER BY id";
	const char *restocks = "SELECT key, product_id, quantity, supplier_order_id, stock_after "
	                       "FROM restocks ORDER BY id";
	const char *ledger = "SELECT idempotency_key, product_id, quantity FROM supplier_orders "
	                     "ORDER BY idempotency_key";
	struct {
		const char *what, *db, *sql;
	} views[] = {
	    {"histories", "state.db", history}, {"workflows", "state.db", workflows},
	    {"stocks", "app.db", stock},        {"orders", "app.db", orders},
	    {"restocks", "app.db", restocks},   {"supplier ledgers", "supplier.db", ledger},
	};
	char *faults =
	    rows(c_dir, "state.db", "SELECT count(*) FROM events WHERE kind = 'fault_injected'");

	(void)state;
	/* The comparison means something only with faults in it. */
	assert_true(atoi(faults) >= 5);
	for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		char *a = rows(c_dir, views[i].db, views[i].sql);
		char *b = rows(file_dir, views[i].db, views[i].sql);

		assert_true(strlen(a) > 0);
		assert_same(views[i].what, a, b);
		free(a);
		free(b);
	}
	free(faults);
	if (getenv("IDEM_KEEP_TMP") == NULL) {
		tu_rmrf(c_dir);
		tu_rmrf(file_dir);
	} else {
		fprintf(stderr, "kept %s and %s\n", c_dir, file_dir);
	}
	free(c_dir);
	free(file_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_history_and_state),
	};
	const char *env = getenv("IDEM_TEST_SEED");

	seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	fprintf(stderr, "test_flow_app: seed %" PRIu64 " (IDEM_TEST_SEED=%" PRIu64 " replays it)\n",
	        seed, seed);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
