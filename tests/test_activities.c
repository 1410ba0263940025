/* test_activities.c — the two activities in-process against a temporary
 * app DB (seeded 123456:1000) and a real idem-supplier child: the seed
 * scenario, replays, crashes at every crash point (a forked attempt that
 * dies there, then a retry), the naive control experiment, refusals,
 * supplier failures and planned supplier faults (Idem-Fault), the
 * heartbeat checkpoint and the resume from it ("source"), and appdb
 * itself. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "activities.h"
#include "apps.h"
#include "appdb.h"
#include "exitcodes.h"
#include "httpc.h"
#include "testutil.h"

#define ERRLEN 512
#define CRASH_EXIT 77

static const struct name_value initial_stock[] = {{"123456", 1000}};

struct fx {
	char *dir;
	char *app_db;
	char *sup_sock;
	char *sup_db;
	char *env_file;
	char *log;
	char *bin;
	pid_t sup_pid;
	struct appconn *db;
	struct idem_activity_env env;
};

/* ---- fixture ---- */

static void open_app_db(struct fx *f)
{
	char err[ERRLEN] = "";

	if (appdb_open(f->app_db, DB_SYNC_NORMAL, initial_stock, 1, &f->db, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	f->env.app = apps_find("inventory");
	f->env.db = f->db;
}

static void supplier_start(struct fx *f)
{
	char *const argv[] = {f->bin,      "--env",
	                      f->env_file, "--supplier-socket",
	                      f->sup_sock, "--supplier-database",
	                      f->sup_db,   NULL};

	f->sup_pid = tu_spawn(argv, NULL, f->log);
	assert_true(f->sup_pid > 0);
	if (tu_wait_for_socket(f->sup_sock, 10000) != 0)
		fail_msg("idem-supplier did not start; see %s", f->log);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = tu_tmpdir("activities");
	assert_non_null(f->dir);
	f->app_db = tu_fmt("%s/data/inventory.db", f->dir);
	f->sup_sock = tu_fmt("%s/supplier.sock", f->dir);
	f->sup_db = tu_fmt("%s/supplier.db", f->dir);
	f->env_file = tu_fmt("%s/test.env", f->dir);
	f->log = tu_fmt("%s/supplier.log", f->dir);
	f->bin = strdup(tu_bin("idem-supplier"));
	assert_int_equal(tu_write_file(f->env_file, "\n"), 0);
	f->env.peer = f->sup_sock;
	f->env.peer_timeout_ms = 5000;
	open_app_db(f);
	supplier_start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->sup_pid > 0)
		tu_stop_child(f->sup_pid, 5000);
	appconn_close(f->db);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->app_db);
	free(f->sup_sock);
	free(f->sup_db);
	free(f->env_file);
	free(f->log);
	free(f->bin);
	free(f);
	return 0;
}

/* ---- tasks ---- */

/* A task borrowing input (the caller keeps its reference). */
static struct msg_task task(const char *activity, json_t *input, int attempt)
{
	struct msg_task t = {.task_id = attempt,
	                     .namespace_ = "ns",
	                     .workflow_id = "A12",
	                     .step = activity[0] == 's' ? 1 : 0,
	                     .attempt = attempt,
	                     .activity = activity,
	                     .input = input};
	return t;
}

static json_t *order_input(const char *order_id, const char *product, json_int_t quantity)
{
	return json_pack("{s:s, s:s, s:I}", "order_id", order_id, "product_id", product, "quantity",
	                 quantity);
}

static json_t *restock_input(const char *product, json_int_t quantity, const char *key)
{
	return json_pack("{s:s, s:I, s:s}", "product_id", product, "quantity", quantity, "key",
	                 key);
}

/* Runs one attempt that must succeed; returns the result (new ref). */
static json_t *run_ok(const struct idem_activity_env *env, const struct msg_task *t)
{
	struct idem_activity_outcome o;

	if (activity_run(env, t, &o) != 0)
		fail_msg("%s failed: %s: %s", t->activity, o.error_type, o.error_message);
	assert_non_null(o.result);
	return o.result;
}

/* Runs one attempt that must fail with type; returns the outcome. */
static struct idem_activity_outcome run_fail(const struct idem_activity_env *env,
                                             const struct msg_task *t, const char *type,
                                             int retryable)
{
	struct idem_activity_outcome o;

	if (activity_run(env, t, &o) == 0)
		fail_msg("%s succeeded, expected %s", t->activity, type);
	assert_null(o.result);
	assert_string_equal(o.error_type, type);
	assert_int_equal(o.retryable, retryable);
	return o;
}

/* ---- observations ---- */

static long long query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static long long stock_of(struct fx *f, const char *product)
{
	char err[ERRLEN] = "";
	int64_t stock = -1;

	assert_int_equal(appdb_stock_get(f->db, product, &stock, err, sizeof(err)), 1);
	return stock;
}

static long long orders_rows(struct fx *f)
{
	return query_int(appconn_sqlite(f->db), "SELECT count(*) FROM orders");
}

static long long restocks_rows(struct fx *f)
{
	return query_int(appconn_sqlite(f->db), "SELECT count(*) FROM restocks");
}

/* Orders in the supplier's ledger, via GET /orders. */
static size_t ledger_orders(struct fx *f)
{
	struct httpc_response r;
	char err[ERRLEN] = "";
	json_t *doc = NULL;
	size_t n;

	if (httpc_request(f->sup_sock, "GET", "/orders", NULL, NULL, 0, 5000, &r, err,
	                  sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(r.status, 200);
	doc = json_loads(r.body, 0, NULL);
	n = json_array_size(json_object_get(doc, "orders"));
	json_decref(doc);
	httpc_response_free(&r);
	return n;
}

/* appdb.h's invariant, for every product. */
static void assert_invariant(struct fx *f)
{
	assert_int_equal(
	    query_int(appconn_sqlite(f->db),
	              "SELECT count(*) FROM products p WHERE p.stock != p.initial_stock"
	              " + (SELECT coalesce(sum(new_stock - old_stock), 0) FROM adjustments a"
	              "    WHERE a.product_id = p.product_id)"
	              " - (SELECT coalesce(sum(quantity), 0) FROM orders o"
	              "    WHERE o.product_id = p.product_id)"
	              " + (SELECT coalesce(sum(quantity), 0) FROM restocks r"
	              "    WHERE r.product_id = p.product_id)"),
	    0);
}

static json_int_t int_of(const json_t *doc, const char *name)
{
	const json_t *v = json_object_get(doc, name);

	if (!json_is_integer(v))
		fail_msg("no integer \"%s\" in the result", name);
	return json_integer_value(v);
}

static const char *str_of(const json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));

	if (v == NULL)
		fail_msg("no string \"%s\" in the result", name);
	return v;
}

static int replayed(const json_t *doc)
{
	const json_t *v = json_object_get(doc, "replayed");

	assert_true(json_is_boolean(v));
	return json_is_true(v);
}

static void assert_contains(const char *text, const char *frag)
{
	if (strstr(text, frag) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", text, frag);
}

/* ---- the seed scenario and replays ---- */

static void test_seed_scenario(void **state)
{
	struct fx *f = *state;
	json_t *in1 = order_input("A12", "123456", 999);
	json_t *in2 = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t1 = task("update_inventory", in1, 1);
	struct msg_task t2 = task("supplier_order", in2, 1);
	json_t *r1 = run_ok(&f->env, &t1);
	json_t *r2 = NULL;

	assert_string_equal(str_of(r1, "order_id"), "A12");
	assert_string_equal(str_of(r1, "product_id"), "123456");
	assert_int_equal(int_of(r1, "quantity"), 999);
	assert_int_equal(int_of(r1, "stock"), 1);
	assert_false(replayed(r1));
	r2 = run_ok(&f->env, &t2);
	assert_string_equal(str_of(r2, "product_id"), "123456");
	assert_int_equal(int_of(r2, "quantity"), 1000);
	assert_string_equal(str_of(r2, "supplier_order_id"), "SO-1");
	assert_int_equal(int_of(r2, "stock"), 1001);
	assert_false(replayed(r2));
	assert_int_equal(stock_of(f, "123456"), 1001);
	assert_int_equal(query_int(appconn_sqlite(f->db),
	                           "SELECT count(*) FROM orders WHERE workflow_id = 'ns/A12'"),
	                 1);
	assert_invariant(f);
	json_decref(r1);
	json_decref(r2);
	json_decref(in1);
	json_decref(in2);
}

static void test_update_inventory_replays(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input("A12", "123456", 999);
	struct msg_task t1 = task("update_inventory", in, 1);
	struct msg_task t2 = task("update_inventory", in, 2);
	json_t *r1 = run_ok(&f->env, &t1);
	json_t *r2 = run_ok(&f->env, &t2);

	assert_true(replayed(r2));
	assert_int_equal(int_of(r2, "stock"), 1);
	assert_int_equal(int_of(r2, "quantity"), 999);
	assert_string_equal(str_of(r2, "product_id"), "123456");
	assert_int_equal(stock_of(f, "123456"), 1);
	assert_int_equal(orders_rows(f), 1);
	/* The stored result, not today's stock: later changes do not leak in. */
	assert_int_equal(
	    appdb_stock_set(f->db, "123456", 40, "test", NULL, (char[ERRLEN]){0}, ERRLEN), 0);
	json_decref(r2);
	r2 = run_ok(&f->env, &t2);
	assert_int_equal(int_of(r2, "stock"), 1);
	assert_invariant(f);
	json_decref(r1);
	json_decref(r2);
	json_decref(in);
}

/* An order id belongs to one workflow: another workflow (or the same id
 * in another namespace) presenting it is refused, not handed the first
 * one's result, which would make it restock again for the same sale. */
static void test_order_of_another_workflow_conflicts(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input("A12", "123456", 999);
	struct msg_task t1 = task("update_inventory", in, 1);
	struct msg_task t2 = task("update_inventory", in, 1);
	struct msg_task t3 = task("update_inventory", in, 1);
	struct idem_activity_outcome o;
	json_t *r1 = run_ok(&f->env, &t1);

	t2.workflow_id = "W2";
	o = run_fail(&f->env, &t2, "OrderConflict", 0);
	assert_contains(o.error_message, "ns/A12");
	t3.namespace_ = "other";
	o = run_fail(&f->env, &t3, "OrderConflict", 0);
	assert_int_equal(stock_of(f, "123456"), 1);
	assert_int_equal(orders_rows(f), 1);
	assert_invariant(f);
	json_decref(r1);
	json_decref(in);
}

static void test_supplier_order_replays(void **state)
{
	struct fx *f = *state;
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t1 = task("supplier_order", in, 1);
	struct msg_task t2 = task("supplier_order", in, 2);
	json_t *r1 = run_ok(&f->env, &t1);
	json_t *r2 = run_ok(&f->env, &t2);

	assert_false(replayed(r1));
	assert_string_equal(str_of(r1, "source"), "supplier");
	assert_true(replayed(r2));
	assert_string_equal(str_of(r2, "source"), "restocks");
	assert_string_equal(str_of(r2, "supplier_order_id"), str_of(r1, "supplier_order_id"));
	assert_int_equal(int_of(r2, "stock"), 2000);
	assert_int_equal(stock_of(f, "123456"), 2000);
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(ledger_orders(f), 1);
	assert_invariant(f);
	json_decref(r1);
	json_decref(r2);
	json_decref(in);
}

/* ---- hooks ---- */

struct trace {
	enum fault_point points[8];
	int n;
	int lost_reply; /* set at after_commit: the reply will be lost */
};

static void record(void *arg, enum fault_point p, const struct msg_task *t)
{
	struct trace *tr = arg;

	(void)t;
	if (tr->n < 8)
		tr->points[tr->n++] = p;
	if (p == FAULT_AFTER_COMMIT)
		tr->lost_reply = 1;
}

static void assert_trace(const struct trace *tr, const enum fault_point *want, int n)
{
	assert_int_equal(tr->n, n);
	for (int i = 0; i < n; i++) {
		if (tr->points[i] != want[i])
			fail_msg("crash point %d is %s, expected %s", i,
			         fault_point_name(tr->points[i]), fault_point_name(want[i]));
	}
}

static void test_hooks_in_order(void **state)
{
	struct fx *f = *state;
	static const enum fault_point all[] = {FAULT_BEFORE_EFFECT, FAULT_AFTER_EFFECT,
	                                       FAULT_AFTER_COMMIT};
	static const enum fault_point replay[] = {FAULT_BEFORE_EFFECT, FAULT_AFTER_COMMIT};
	struct trace tr = {0};
	struct idem_activity_hooks hooks = {.at = record, .arg = &tr};
	struct idem_activity_env env = f->env;
	json_t *in1 = order_input("A12", "123456", 999);
	json_t *in2 = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t1 = task("update_inventory", in1, 1);
	struct msg_task t2 = task("supplier_order", in2, 1);

	env.hooks = &hooks;
	json_decref(run_ok(&env, &t1));
	assert_trace(&tr, all, 3);
	tr.n = 0;
	json_decref(run_ok(&env, &t1));
	assert_trace(&tr, replay, 2);
	tr.n = 0;
	json_decref(run_ok(&env, &t2));
	assert_trace(&tr, all, 3);
	/* A refusal stops before any effect: only before_effect. */
	tr.n = 0;
	json_t *bad = order_input("B1", "123456", 5000);
	struct msg_task t3 = task("update_inventory", bad, 1);
	run_fail(&env, &t3, "InsufficientStock", 0);
	assert_trace(&tr, all, 1);
	json_decref(bad);
	json_decref(in1);
	json_decref(in2);
}

/* The reply of the first attempt is lost after its commit; the retry
 * must not apply the effect again. */
static void test_lost_reply_is_replayed(void **state)
{
	struct fx *f = *state;
	struct trace tr = {0};
	struct idem_activity_hooks hooks = {.at = record, .arg = &tr};
	struct idem_activity_env env = f->env;
	json_t *in1 = order_input("A12", "123456", 999);
	json_t *in2 = restock_input("123456", 1000, "ns/A12/1");
	json_t *r = NULL;

	env.hooks = &hooks;
	for (int attempt = 1; attempt <= 3; attempt++) {
		struct msg_task t = task("update_inventory", in1, attempt);
		tr.lost_reply = 0;
		r = run_ok(&env, &t);
		assert_int_equal(tr.lost_reply, 1);
		assert_int_equal(int_of(r, "stock"), 1);
		assert_int_equal(replayed(r), attempt > 1);
		json_decref(r);
	}
	for (int attempt = 1; attempt <= 3; attempt++) {
		struct msg_task t = task("supplier_order", in2, attempt);
		r = run_ok(&env, &t);
		assert_int_equal(int_of(r, "stock"), 1001);
		json_decref(r);
	}
	assert_int_equal(stock_of(f, "123456"), 1001);
	assert_int_equal(orders_rows(f), 1);
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(ledger_orders(f), 1);
	assert_invariant(f);
	json_decref(in1);
	json_decref(in2);
}

/* ---- crashes: a forked attempt dies at a crash point ---- */

static void die_at(void *arg, enum fault_point p, const struct msg_task *t)
{
	(void)t;
	if (p == *(const enum fault_point *)arg)
		_exit(CRASH_EXIT);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The child's heartbeat callback: the details as one line on a pipe. */
static int heartbeat_to_pipe(void *arg, json_t *details)
{
	int fd = *(const int *)arg;
	char *text = json_dumps(details, JSON_COMPACT);
	int rc = -1;

	if (text != NULL && write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0)
		rc = 0;
	free(text);
	return rc;
}

/* The last heartbeat the child sent (NEW ref), or NULL when none. */
static json_t *read_heartbeats(int fd)
{
	char buf[4096];
	size_t len = 0;
	ssize_t n;
	char *last = NULL;

	while (len + 1 < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	if (len == 0)
		return NULL;
	buf[len - 1] = '\0'; /* the last newline */
	last = strrchr(buf, '\n');
	return json_loads(last != NULL ? last + 1 : buf, 0, NULL);
}

/* Runs t in a child with its own connection that _exit()s at point.
 * Returns the child's exit code; *heartbeat (when not NULL) gets the last
 * heartbeat details the attempt sent (NEW ref, NULL when none). */
static int crash_attempt(struct fx *f, const struct msg_task *t, enum fault_point point,
                         json_t **heartbeat)
{
	int hb[2];
	pid_t pid;
	int rc;

	assert_int_equal(pipe(hb), 0);
	/* No SQLite connection crosses the fork: close ours, reopen after. */
	appconn_close(f->db);
	f->db = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[ERRLEN];
		struct idem_activity_outcome o;
		struct idem_activity_hooks hooks = {.at = die_at, .arg = &point};
		struct idem_activity_env env = f->env;
		struct appconn *db = NULL;
		close(hb[0]);
		if (appdb_open(f->app_db, DB_SYNC_NORMAL, NULL, 0, &db, err, sizeof(err)) != 0)
			_exit(2);
		env.db = db;
		env.hooks = &hooks;
		env.heartbeat = heartbeat_to_pipe;
		env.heartbeat_arg = &hb[1];
		activity_run(&env, t, &o);
		_exit(3); /* the crash point was not reached */
	}
	close(hb[1]);
	rc = tu_wait_exit(pid, 30000);
	if (heartbeat != NULL)
		*heartbeat = read_heartbeats(hb[0]);
	close(hb[0]);
	open_app_db(f);
	return rc;
}

static void check_update_crash(struct fx *f, enum fault_point point)
{
	json_t *in = order_input("A12", "123456", 999);
	struct msg_task t1 = task("update_inventory", in, 1);
	struct msg_task t2 = task("update_inventory", in, 2);
	int committed = point == FAULT_AFTER_COMMIT;
	json_t *r = NULL;

	assert_int_equal(crash_attempt(f, &t1, point, NULL), CRASH_EXIT);
	/* All or nothing. */
	assert_int_equal(orders_rows(f), committed);
	assert_int_equal(stock_of(f, "123456"), committed ? 1 : 1000);
	r = run_ok(&f->env, &t2);
	assert_int_equal(replayed(r), committed);
	assert_int_equal(int_of(r, "stock"), 1);
	assert_int_equal(orders_rows(f), 1);
	assert_int_equal(stock_of(f, "123456"), 1);
	assert_invariant(f);
	json_decref(r);
	json_decref(in);
}

static void test_update_crash_before_effect(void **state)
{
	check_update_crash(*state, FAULT_BEFORE_EFFECT);
}

static void test_update_crash_after_effect(void **state)
{
	check_update_crash(*state, FAULT_AFTER_EFFECT);
}

static void test_update_crash_after_commit(void **state)
{
	check_update_crash(*state, FAULT_AFTER_COMMIT);
}

static void check_supplier_crash(struct fx *f, enum fault_point point)
{
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t1 = task("supplier_order", in, 1);
	struct msg_task t2 = task("supplier_order", in, 2);
	int ordered = point != FAULT_BEFORE_EFFECT;
	int credited = point == FAULT_AFTER_COMMIT;
	json_t *r = NULL;

	assert_int_equal(crash_attempt(f, &t1, point, NULL), CRASH_EXIT);
	assert_int_equal(ledger_orders(f), ordered);
	assert_int_equal(restocks_rows(f), credited);
	assert_int_equal(stock_of(f, "123456"), credited ? 2000 : 1000);
	r = run_ok(&f->env, &t2);
	assert_int_equal(replayed(r), credited);
	assert_string_equal(str_of(r, "supplier_order_id"), "SO-1");
	assert_int_equal(int_of(r, "stock"), 2000);
	assert_int_equal(ledger_orders(f), 1);
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(stock_of(f, "123456"), 2000);
	assert_invariant(f);
	json_decref(r);
	json_decref(in);
}

static void test_supplier_crash_before_effect(void **state)
{
	check_supplier_crash(*state, FAULT_BEFORE_EFFECT);
}

static void test_supplier_crash_after_effect(void **state)
{
	check_supplier_crash(*state, FAULT_AFTER_EFFECT);
}

static void test_supplier_crash_after_commit(void **state)
{
	check_supplier_crash(*state, FAULT_AFTER_COMMIT);
}

/* ---- naive mode: the control experiment ---- */

static void test_naive_applies_twice(void **state)
{
	struct fx *f = *state;
	struct idem_activity_env env = f->env;
	json_t *in1 = order_input("A12", "123456", 10);
	json_t *in2 = restock_input("123456", 1000, "ns/A12/1");
	json_t *r = NULL;

	env.naive = 1;
	for (int attempt = 1; attempt <= 2; attempt++) {
		struct msg_task t = task("update_inventory", in1, attempt);
		r = run_ok(&env, &t);
		assert_false(replayed(r));
		json_decref(r);
	}
	assert_int_equal(orders_rows(f), 2);
	assert_int_equal(stock_of(f, "123456"), 980);
	for (int attempt = 1; attempt <= 2; attempt++) {
		struct msg_task t = task("supplier_order", in2, attempt);
		r = run_ok(&env, &t);
		assert_false(replayed(r));
		json_decref(r);
	}
	assert_int_equal(restocks_rows(f), 2);
	assert_int_equal(query_int(appconn_sqlite(f->db),
	                           "SELECT count(*) FROM restocks WHERE key = 'ns/A12/1'"),
	                 2);
	assert_int_equal(ledger_orders(f), 2);
	assert_int_equal(stock_of(f, "123456"), 2980);
	/* The books still balance: the duplicates are visible, not hidden. */
	assert_invariant(f);
	json_decref(in1);
	json_decref(in2);
}

/* ---- refusals ---- */

static void test_unknown_product(void **state)
{
	struct fx *f = *state;
	json_t *in1 = order_input("A12", "999", 1);
	json_t *in2 = restock_input("999", 1000, "ns/A12/1");
	struct msg_task t1 = task("update_inventory", in1, 1);
	struct msg_task t2 = task("supplier_order", in2, 1);
	struct idem_activity_outcome o = run_fail(&f->env, &t1, "UnknownProduct", 0);

	assert_string_equal(o.error_message,
	                    "unknown product \"999\" (order A12); add it with SEED_STOCK or "
	                    "idemctl stock set");
	o = run_fail(&f->env, &t2, "UnknownProduct", 0);
	assert_contains(o.error_message, "unknown product \"999\"");
	assert_contains(o.error_message, "ns/A12/1");
	assert_int_equal(ledger_orders(f), 0);
	assert_int_equal(orders_rows(f), 0);
	assert_int_equal(restocks_rows(f), 0);
	json_decref(in1);
	json_decref(in2);
}

static void test_invalid_input(void **state)
{
	struct fx *f = *state;
	json_t *zero = order_input("A12", "123456", 0);
	json_t *no_order = json_pack("{s:s, s:I}", "product_id", "123456", "quantity", 1);
	json_t *bad_type = json_pack("{s:s, s:s, s:s}", "order_id", "A12", "product_id", "123456",
	                             "quantity", "1");
	json_t *no_key = json_pack("{s:s, s:I}", "product_id", "123456", "quantity", 1);
	json_t *empty_key = restock_input("123456", 1, "");
	struct msg_task t;
	struct idem_activity_outcome o;

	t = task("update_inventory", zero, 1);
	o = run_fail(&f->env, &t, "InvalidInput", 0);
	assert_contains(o.error_message, "input.quantity=0 is out of range");
	assert_contains(o.error_message, "1..1000000000");
	t = task("update_inventory", no_order, 1);
	o = run_fail(&f->env, &t, "InvalidInput", 0);
	assert_contains(o.error_message, "input.order_id is missing");
	t = task("update_inventory", bad_type, 1);
	o = run_fail(&f->env, &t, "InvalidInput", 0);
	assert_contains(o.error_message, "input.quantity is a string");
	assert_contains(o.error_message, "give an integer");
	t = task("supplier_order", no_key, 1);
	o = run_fail(&f->env, &t, "InvalidInput", 0);
	assert_contains(o.error_message, "input.key is missing");
	t = task("supplier_order", empty_key, 1);
	o = run_fail(&f->env, &t, "InvalidInput", 0);
	assert_contains(o.error_message, "input.key is 0 bytes long: give a string of 1..");
	t = task("ship_it", zero, 1);
	o = run_fail(&f->env, &t, "UnknownActivity", 0);
	assert_contains(o.error_message, "\"ship_it\"");
	assert_int_equal(stock_of(f, "123456"), 1000);
	assert_int_equal(ledger_orders(f), 0);
	json_decref(zero);
	json_decref(no_order);
	json_decref(bad_type);
	json_decref(no_key);
	json_decref(empty_key);
}

/* What a start refuses, the activities refuse too, with the same words
 * (one check: apps/inventory/input.c): a quantity over 1e9 that the
 * stock could cover, a field the workflow never sends, a product id over
 * 64 bytes, a key over the supplier's 255. Nothing is applied, nothing is
 * ordered. */
static void test_input_checked_like_a_start(void **state)
{
	struct fx *f = *state;
	char *long_product = tu_fmt("%065d", 1), *long_key = tu_fmt("ns/%0253d", 1);
	char err[ERRLEN] = "";
	int64_t old = 0;
	struct {
		const char *activity;
		json_t *input;
		const char *needle;
	} cases[] = {
	    {"update_inventory", order_input("Q1", "123456", 1000000001),
	     "update_inventory: input.quantity=1000000001 is out of range: give an integer "
	     "1..1000000000"},
	    {"update_inventory",
	     json_pack("{s:s, s:s, s:i, s:s}", "order_id", "Q2", "product_id", "123456", "quantity",
	               1, "colour", "red"),
	     "input.colour is not a known field: the fields are order_id, product_id, quantity"},
	    {"update_inventory", order_input("Q3", long_product, 1),
	     "input.product_id is 65 bytes long: give a string of 1..64 bytes"},
	    {"supplier_order", restock_input("123456", 1000000001, "ns/Q4/1"),
	     "supplier_order: input.quantity=1000000001 is out of range"},
	    {"supplier_order", restock_input("123456", 5, long_key),
	     "input.key is 256 bytes long: give a string of 1..255 bytes"},
	};
	struct msg_task t;
	struct idem_activity_outcome o;

	/* The stock could cover every order: only the check refuses them. */
	assert_int_equal(
	    appdb_stock_set(f->db, "123456", 2000000000, "test", &old, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = task(cases[i].activity, cases[i].input, 1);
		o = run_fail(&f->env, &t, "InvalidInput", 0);
		assert_contains(o.error_message, cases[i].needle);
		json_decref(cases[i].input);
	}
	assert_int_equal(stock_of(f, "123456"), 2000000000);
	assert_int_equal(orders_rows(f), 0);
	assert_int_equal(restocks_rows(f), 0);
	assert_int_equal(ledger_orders(f), 0);
	free(long_product);
	free(long_key);
}

static void test_insufficient_stock(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input("A13", "123456", 1001);
	struct msg_task t = task("update_inventory", in, 1);
	struct idem_activity_outcome o = run_fail(&f->env, &t, "InsufficientStock", 0);

	assert_contains(o.error_message, "A13");
	assert_contains(o.error_message, "\"123456\"");
	assert_contains(o.error_message, "has 1000");
	assert_contains(o.error_message, "needs 1001");
	assert_int_equal(stock_of(f, "123456"), 1000);
	assert_int_equal(orders_rows(f), 0);
	json_decref(in);
}

/* ---- the supplier failing ---- */

static void test_supplier_down(void **state)
{
	struct fx *f = *state;
	struct idem_activity_env env = f->env;
	char *missing = tu_fmt("%s/no-supplier.sock", f->dir);
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t = task("supplier_order", in, 1);
	struct idem_activity_outcome o;

	env.peer = missing;
	o = run_fail(&env, &t, "SupplierUnavailable", 1);
	assert_contains(o.error_message, "cannot connect to");
	assert_contains(o.error_message, missing);
	assert_int_equal(restocks_rows(f), 0);
	assert_int_equal(stock_of(f, "123456"), 1000);
	/* The supplier back: the retry goes through, once. */
	json_decref(run_ok(&f->env, &t));
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(stock_of(f, "123456"), 2000);
	free(missing);
	json_decref(in);
}

static void test_supplier_rejects(void **state)
{
	struct fx *f = *state;
	const char *const headers[] = {"Idempotency-Key: ns/A12/1", NULL};
	const char *body = "{\"product_id\":\"123456\",\"quantity\":5}";
	struct httpc_response r;
	char err[ERRLEN] = "";
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t = task("supplier_order", in, 1);
	struct idem_activity_outcome o;

	/* Someone else used the key for another order: HTTP 422. */
	assert_int_equal(httpc_request(f->sup_sock, "POST", "/orders", headers, body, strlen(body),
	                               5000, &r, err, sizeof(err)),
	                 0);
	assert_int_equal(r.status, 201);
	httpc_response_free(&r);
	o = run_fail(&f->env, &t, "SupplierRejected", 0);
	assert_contains(o.error_message, "HTTP 422");
	assert_contains(o.error_message, "was used with a different request");
	assert_int_equal(restocks_rows(f), 0);
	assert_int_equal(stock_of(f, "123456"), 1000);
	json_decref(in);
}

static void test_heartbeat_resumes_without_calling(void **state)
{
	struct fx *f = *state;
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	json_t *hb = json_pack("{s:s}", "supplier_order_id", "SO-77");
	struct msg_task t = task("supplier_order", in, 2);
	json_t *r = NULL;

	t.heartbeat = hb;
	r = run_ok(&f->env, &t);
	assert_string_equal(str_of(r, "supplier_order_id"), "SO-77");
	assert_string_equal(str_of(r, "source"), "heartbeat");
	assert_false(replayed(r));
	assert_int_equal(int_of(r, "stock"), 2000);
	assert_int_equal(ledger_orders(f), 0);
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(
	    query_int(appconn_sqlite(f->db),
	              "SELECT count(*) FROM restocks WHERE supplier_order_id = 'SO-77'"),
	    1);
	assert_invariant(f);
	json_decref(r);
	json_decref(hb);
	json_decref(in);
}

/* ---- heartbeats and supplier faults ---- */

/* What the heartbeat callback saw, in-process. */
struct beats {
	struct fx *f;
	int calls;
	char so_id[64];
	long long restocks_then; /* restocks rows when it was called */
	long long stock_then;
};

static int count_beat(void *arg, json_t *details)
{
	struct beats *b = arg;
	const char *id = json_string_value(json_object_get(details, "supplier_order_id"));

	b->calls++;
	snprintf(b->so_id, sizeof(b->so_id), "%s", id != NULL ? id : "(none)");
	b->restocks_then = restocks_rows(b->f);
	b->stock_then = stock_of(b->f, "123456");
	return 0;
}

/* The supplier's answer is checkpointed once, before the credit; a replay,
 * a resume from that checkpoint and naive mode send none. */
static void test_heartbeat_before_credit(void **state)
{
	struct fx *f = *state;
	struct beats b = {.f = f};
	struct idem_activity_env env = f->env;
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	json_t *hb = json_pack("{s:s}", "supplier_order_id", "SO-1");
	json_t *naive_in = restock_input("123456", 5, "ns/N1/1");
	struct msg_task t1 = task("supplier_order", in, 1);
	struct msg_task t2 = task("supplier_order", in, 2);
	struct msg_task t3 = task("supplier_order", naive_in, 1);
	json_t *r = NULL;

	env.heartbeat = count_beat;
	env.heartbeat_arg = &b;
	r = run_ok(&env, &t1);
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.so_id, "SO-1");
	assert_int_equal(b.restocks_then, 0);
	assert_int_equal(b.stock_then, 1000);
	assert_string_equal(str_of(r, "supplier_order_id"), "SO-1");
	assert_string_equal(str_of(r, "source"), "supplier");
	json_decref(r);
	r = run_ok(&env, &t2); /* replay */
	assert_string_equal(str_of(r, "source"), "restocks");
	json_decref(r);
	t2.heartbeat = hb; /* still a replay: the restocks row wins */
	r = run_ok(&env, &t2);
	assert_string_equal(str_of(r, "source"), "restocks");
	json_decref(r);
	env.naive = 1;
	r = run_ok(&env, &t3);
	assert_string_equal(str_of(r, "source"), "supplier");
	json_decref(r);
	assert_int_equal(b.calls, 1);
	assert_int_equal(ledger_orders(f), 2);
	json_decref(naive_in);
	json_decref(hb);
	json_decref(in);
}

/* An attempt dies after ordering (credit rolled back); the retry carries
 * its heartbeat and credits once without calling the supplier, which is
 * down to prove it. */
static void test_crash_after_effect_resumes_from_heartbeat(void **state)
{
	struct fx *f = *state;
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t1 = task("supplier_order", in, 1);
	struct msg_task t2 = task("supplier_order", in, 2);
	json_t *hb = NULL, *r = NULL;
	int code;

	assert_int_equal(crash_attempt(f, &t1, FAULT_AFTER_EFFECT, &hb), CRASH_EXIT);
	assert_non_null(hb);
	assert_string_equal(str_of(hb, "supplier_order_id"), "SO-1");
	assert_int_equal(ledger_orders(f), 1);
	assert_int_equal(restocks_rows(f), 0);
	assert_int_equal(stock_of(f, "123456"), 1000);
	kill(f->sup_pid, SIGTERM);
	code = tu_wait_exit(f->sup_pid, 5000);
	f->sup_pid = -1;
	assert_int_equal(code, 0);
	t2.heartbeat = hb;
	r = run_ok(&f->env, &t2);
	assert_string_equal(str_of(r, "source"), "heartbeat");
	assert_string_equal(str_of(r, "supplier_order_id"), "SO-1");
	assert_false(replayed(r));
	assert_int_equal(int_of(r, "stock"), 2000);
	supplier_start(f);
	assert_int_equal(ledger_orders(f), 1);
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(stock_of(f, "123456"), 2000);
	assert_invariant(f);
	json_decref(r);
	json_decref(hb);
	json_decref(in);
}

static void test_supplier_fault_unavailable(void **state)
{
	struct fx *f = *state;
	struct beats b = {.f = f};
	struct idem_activity_env env = f->env;
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	json_t *order = order_input("A12", "123456", 999);
	struct msg_task t1 = task("supplier_order", in, 1);
	struct msg_task t2 = task("supplier_order", in, 2);
	struct msg_task t3 = task("update_inventory", order, 1);
	struct idem_activity_outcome o;
	json_t *r = NULL;

	env.peer_fault = "unavailable";
	env.heartbeat = count_beat;
	env.heartbeat_arg = &b;
	o = run_fail(&env, &t1, "SupplierUnavailable", 1);
	assert_contains(o.error_message, "HTTP 503");
	assert_contains(o.error_message, "supplier unavailable (injected fault)");
	assert_int_equal(b.calls, 0);
	assert_int_equal(ledger_orders(f), 0);
	assert_int_equal(restocks_rows(f), 0);
	assert_int_equal(stock_of(f, "123456"), 1000);
	/* update_inventory ignores a supplier fault. */
	json_decref(run_ok(&env, &t3));
	assert_int_equal(stock_of(f, "123456"), 1);
	r = run_ok(&f->env, &t2);
	assert_string_equal(str_of(r, "source"), "supplier");
	assert_string_equal(str_of(r, "supplier_order_id"), "SO-1");
	assert_int_equal(ledger_orders(f), 1);
	assert_int_equal(stock_of(f, "123456"), 1001);
	json_decref(r);
	json_decref(order);
	json_decref(in);
}

/* The supplier records the order and dies before answering: the attempt
 * cannot know; the retry with the same key gets the same order, once. */
static void test_supplier_fault_record_then_die(void **state)
{
	struct fx *f = *state;
	struct beats b = {.f = f};
	struct idem_activity_env env = f->env;
	json_t *in = restock_input("123456", 1000, "ns/A12/1");
	struct msg_task t1 = task("supplier_order", in, 1);
	struct msg_task t2 = task("supplier_order", in, 2);
	json_t *r = NULL;
	int code;

	env.peer_fault = "record_then_die";
	env.heartbeat = count_beat;
	env.heartbeat_arg = &b;
	run_fail(&env, &t1, "SupplierUnavailable", 1);
	code = tu_wait_exit(f->sup_pid, 5000);
	f->sup_pid = -1;
	assert_int_equal(code, IDEM_EXIT_FAULT);
	assert_int_equal(b.calls, 0);
	assert_int_equal(restocks_rows(f), 0);
	assert_int_equal(stock_of(f, "123456"), 1000);
	supplier_start(f);
	assert_int_equal(ledger_orders(f), 1);
	r = run_ok(&f->env, &t2);
	assert_string_equal(str_of(r, "source"), "supplier");
	assert_string_equal(str_of(r, "supplier_order_id"), "SO-1");
	assert_false(replayed(r));
	assert_int_equal(ledger_orders(f), 1);
	assert_int_equal(restocks_rows(f), 1);
	assert_int_equal(stock_of(f, "123456"), 2000);
	assert_invariant(f);
	json_decref(r);
	json_decref(in);
}

static void test_busy_database_is_retryable(void **state)
{
	struct fx *f = *state;
	sqlite3 *other = NULL;
	char err[ERRLEN] = "";
	json_t *in = order_input("A12", "123456", 1);
	struct msg_task t = task("update_inventory", in, 1);
	struct idem_activity_outcome o;

	assert_int_equal(db_open(f->app_db, DB_SYNC_NORMAL, &other, err, sizeof(err)), 0);
	assert_int_equal(db_exec(other, "BEGIN IMMEDIATE", err, sizeof(err)), 0);
	sqlite3_busy_timeout(appconn_sqlite(f->db), 50);
	o = run_fail(&f->env, &t, "DatabaseError", 1);
	assert_contains(o.error_message, "locked");
	assert_int_equal(db_exec(other, "ROLLBACK", err, sizeof(err)), 0);
	db_close(other);
	json_decref(run_ok(&f->env, &t));
	assert_int_equal(stock_of(f, "123456"), 999);
	json_decref(in);
}

/* ---- appdb ---- */

static void test_stock_set_and_get(void **state)
{
	struct fx *f = *state;
	char err[ERRLEN] = "";
	int64_t old = -1, stock = -1;

	assert_int_equal(appdb_stock_set(f->db, "123456", 50, "recount", &old, err, sizeof(err)),
	                 0);
	assert_int_equal(old, 1000);
	assert_int_equal(appdb_stock_get(f->db, "123456", &stock, err, sizeof(err)), 1);
	assert_int_equal(stock, 50);
	assert_int_equal(query_int(appconn_sqlite(f->db),
	                           "SELECT count(*) FROM adjustments WHERE product_id ="
	                           " '123456' AND old_stock = 1000 AND new_stock = 50"
	                           " AND reason = 'recount'"),
	                 1);
	assert_int_equal(appdb_stock_set(f->db, "777", 5, "new product", &old, err, sizeof(err)),
	                 0);
	assert_int_equal(old, 0);
	assert_int_equal(appdb_stock_get(f->db, "777", &stock, err, sizeof(err)), 1);
	assert_int_equal(stock, 5);
	assert_int_equal(query_int(appconn_sqlite(f->db),
	                           "SELECT initial_stock FROM products WHERE product_id = '777'"),
	                 0);
	assert_int_equal(appdb_stock_get(f->db, "nope", &stock, err, sizeof(err)), 0);
	assert_invariant(f);
}

static void test_reopen_does_not_reseed(void **state)
{
	struct fx *f = *state;
	static const struct name_value other[] = {{"123456", 1000}, {"555", 10}};
	char err[ERRLEN] = "";
	int64_t stock = -1;

	assert_int_equal(appdb_stock_set(f->db, "123456", 7, "test", NULL, err, sizeof(err)), 0);
	appconn_close(f->db);
	f->db = NULL;
	assert_int_equal(appdb_open(f->app_db, DB_SYNC_FULL, other, 2, &f->db, err, sizeof(err)),
	                 0);
	f->env.app = apps_find("inventory");
	f->env.db = f->db;
	assert_int_equal(appdb_stock_get(f->db, "123456", &stock, err, sizeof(err)), 1);
	assert_int_equal(stock, 7);
	assert_int_equal(appdb_stock_get(f->db, "555", &stock, err, sizeof(err)), 0);
	assert_int_equal(query_int(appconn_sqlite(f->db), "PRAGMA user_version"), 1);
	assert_int_equal(query_int(appconn_sqlite(f->db),
	                           "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
	                           " AND name IN ('orders_order_id', 'restocks_key')"),
	                 2);
	assert_int_equal(db_integrity_check(appconn_sqlite(f->db), err, sizeof(err)), 0);
}

/* Workers and the supervisor may open a new app DB at the same moment:
 * the schema is created and seeded exactly once. */
static void test_concurrent_first_open_seeds_once(void **state)
{
	struct fx *f = *state;
	char *path = tu_fmt("%s/fresh/app.db", f->dir); /* not f->db's file */
	char err[ERRLEN] = "";
	struct appconn *db = NULL;
	pid_t pids[8];

	for (int i = 0; i < 8; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			int rc =
			    appdb_open(path, DB_SYNC_FULL, initial_stock, 1, &db, err, sizeof(err));
			if (rc != 0)
				fprintf(stderr, "child %d: %s\n", i, err);
			appconn_close(db);
			_exit(rc == 0 ? 0 : 1);
		}
	}
	for (int i = 0; i < 8; i++)
		assert_int_equal(tu_wait_exit(pids[i], 30000), 0);
	assert_int_equal(appdb_open(path, DB_SYNC_FULL, NULL, 0, &db, err, sizeof(err)), 0);
	assert_int_equal(query_int(appconn_sqlite(db), "SELECT count(*) FROM products"), 1);
	assert_int_equal(
	    query_int(appconn_sqlite(db), "SELECT stock FROM products WHERE product_id = '123456'"),
	    1000);
	appconn_close(db);
	free(path);
}

static void test_newer_schema_is_refused(void **state)
{
	struct fx *f = *state;
	char err[ERRLEN] = "";
	struct appconn *db = NULL;

	assert_int_equal(
	    db_exec(appconn_sqlite(f->db), "PRAGMA user_version = 9", err, sizeof(err)), 0);
	assert_int_equal(
	    appdb_open(f->app_db, DB_SYNC_FULL, initial_stock, 1, &db, err, sizeof(err)), -1);
	assert_null(db);
	assert_contains(err, "newer idem");
	assert_contains(err, f->app_db);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_seed_scenario),
	    T(test_update_inventory_replays),
	    T(test_order_of_another_workflow_conflicts),
	    T(test_supplier_order_replays),
	    T(test_hooks_in_order),
	    T(test_lost_reply_is_replayed),
	    T(test_update_crash_before_effect),
	    T(test_update_crash_after_effect),
	    T(test_update_crash_after_commit),
	    T(test_supplier_crash_before_effect),
	    T(test_supplier_crash_after_effect),
	    T(test_supplier_crash_after_commit),
	    T(test_naive_applies_twice),
	    T(test_unknown_product),
	    T(test_invalid_input),
	    T(test_input_checked_like_a_start),
	    T(test_insufficient_stock),
	    T(test_supplier_down),
	    T(test_supplier_rejects),
	    T(test_heartbeat_resumes_without_calling),
	    T(test_heartbeat_before_credit),
	    T(test_crash_after_effect_resumes_from_heartbeat),
	    T(test_supplier_fault_unavailable),
	    T(test_supplier_fault_record_then_die),
	    T(test_busy_database_is_retryable),
	    T(test_stock_set_and_get),
	    T(test_reopen_does_not_reseed),
	    T(test_concurrent_first_open_seeds_once),
	    T(test_newer_schema_is_refused),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
