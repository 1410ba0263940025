/* test_check.c — the checker on databases the test writes itself: the
 * state DB through store_open(), the app DB through appdb_open() (seeded
 * 123456:1000), the supplier's ledger with its schema. Each test models
 * what a run leaves behind — the seed's clean run, a naive retry, a lost
 * effect, a stuck or still running workflow, a failed one whose effect
 * was applied, credits swapped between keys — and asserts the exact
 * counts and what the messages name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "appdb.h"
#include "apps.h"
#include "check.h"
#include "db.h"
#include "store.h"
#include "testutil.h"

/* apps/inventory/supplier.c's ledger schema (migration 1). */
static const char *const ledger_migrations[] = {
    "CREATE TABLE supplier_orders(id INTEGER PRIMARY KEY,"
    " idempotency_key TEXT NOT NULL UNIQUE, product_id TEXT NOT NULL,"
    " quantity INTEGER NOT NULL, created_at INTEGER NOT NULL);",
};

static const struct name_value initial_stock[] = {{"123456", 1000}};

struct fx {
	char *dir;
	char *state_path, *app_path, *ledger_path;
	struct store *store;
	struct appconn *app;
	sqlite3 *ledger;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];

	f->dir = tu_tmpdir("check");
	f->state_path = tu_fmt("%s/state.db", f->dir);
	f->app_path = tu_fmt("%s/app.db", f->dir);
	f->ledger_path = tu_fmt("%s/supplier.db", f->dir);
	if (store_open(f->state_path, DB_SYNC_FULL, NULL, &f->store, err, sizeof(err)) != 0 ||
	    appdb_open(f->app_path, DB_SYNC_NORMAL, initial_stock, 1, &f->app, err, sizeof(err)) !=
	        0 ||
	    db_open_migrated(f->ledger_path, DB_SYNC_NORMAL, ledger_migrations, 1, &f->ledger, err,
	                     sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static void close_all(struct fx *f)
{
	store_close(f->store);
	appconn_close(f->app);
	db_close(f->ledger);
	f->store = NULL;
	f->app = NULL;
	f->ledger = NULL;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	close_all(f);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->state_path);
	free(f->app_path);
	free(f->ledger_path);
	free(f);
	return 0;
}

/* ---- writing what a run leaves behind ---------------------------------------- */

static void sql(sqlite3 *db, const char *fmt, ...)
{
	char *errmsg = NULL, *text;
	va_list ap;

	va_start(ap, fmt);
	text = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (sqlite3_exec(db, text, NULL, NULL, &errmsg) != SQLITE_OK)
		fail_msg("%s: %s", text, errmsg);
	sqlite3_free(text);
}

/* A workflow row; result and error may be NULL. */
static void workflow(struct fx *f, const char *id, const char *status, const char *order, long qty,
                     const char *result, const char *error)
{
	sql(store_db(f->store),
	    "INSERT INTO workflows(namespace, workflow_id, type, input, status, result, error,"
	    " created_at) VALUES('default', %Q, 'inventory',"
	    " json_object('order_id', %Q, 'product_id', '123456', 'quantity', %ld,"
	    " 'reorder_threshold', 2, 'reorder_quantity', 1000), %Q, %Q, %Q, 1)",
	    id, order, qty, status, result, error);
}

/* One application of update_inventory: the row and the decrement. */
static void order(struct fx *f, const char *order_id, long qty, const char *owner)
{
	sql(appconn_sqlite(f->app),
	    "UPDATE products SET stock = stock - %ld WHERE product_id = '123456';"
	    "INSERT INTO orders(order_id, product_id, quantity, stock_after, workflow_id,"
	    " applied_at) VALUES(%Q, '123456', %ld,"
	    " (SELECT stock FROM products WHERE product_id = '123456'), %Q, 1)",
	    qty, order_id, qty, owner);
}

/* One credit of supplier_order: the row and the increment. */
static void restock(struct fx *f, const char *key, long qty, const char *so)
{
	sql(appconn_sqlite(f->app),
	    "UPDATE products SET stock = stock + %ld WHERE product_id = '123456';"
	    "INSERT INTO restocks(key, product_id, quantity, supplier_order_id, stock_after,"
	    " applied_at) VALUES(%Q, '123456', %ld, %Q,"
	    " (SELECT stock FROM products WHERE product_id = '123456'), 1)",
	    qty, key, qty, so);
}

/* An order the supplier recorded under key: SO-<id>, ids from 1. */
static void supplier(struct fx *f, const char *key, long qty)
{
	sql(f->ledger,
	    "INSERT INTO supplier_orders(idempotency_key, product_id, quantity, created_at)"
	    " VALUES(%Q, '123456', %ld, 1)",
	    key, qty);
}

/* A step of workflow id: which activity it ran and how it ended. */
static void step(struct fx *f, const char *id, int seq, const char *activity, const char *status)
{
	sql(store_db(f->store),
	    "INSERT INTO steps(wf, seq, activity, input, status, attempt, next_attempt_at)"
	    " VALUES((SELECT id FROM workflows WHERE workflow_id = %Q), %d, %Q, '{}', %Q, 1, 0)",
	    id, seq, activity, status);
}

#define A12_RESULT                                                                                 \
	"{\"stock_after_order\":1,\"restocked\":true,\"supplier_order_id\":\"SO-1\","              \
	"\"restock_quantity\":1000,\"final_stock\":1001}"

/* The seed's run: A12 takes 999 (stock 1), orders SO-1 of 1000 (1001). */
static void seed_run(struct fx *f)
{
	workflow(f, "A12", "completed", "A12", 999, A12_RESULT, NULL);
	order(f, "A12", 999, "default/A12");
	supplier(f, "default/A12/1", 1000);
	restock(f, "default/A12/1", 1000, "SO-1");
}

/* ---- reading the report -------------------------------------------------------- */

/* check_run of the inventory app on these files, the ledger as
 * SUPPLIER_DATABASE. */
static json_t *check_at(const char *state, const char *app, const char *ledger, char *err,
                        size_t errlen)
{
	static struct idem_config cfg;

	if (apps_add_config_keys(err, errlen) != 0)
		return NULL;
	config_defaults(&cfg);
	if (config_set(&cfg, "SUPPLIER_DATABASE", ledger, err, errlen) != 0)
		return NULL;
	return check_run(apps_find("inventory"), state, app, &cfg, err, errlen);
}

static json_t *run_check(struct fx *f)
{
	char err[1024] = "";
	json_t *r = check_at(f->state_path, f->app_path, f->ledger_path, err, sizeof(err));

	if (r == NULL)
		fail_msg("check_run: %s", err);
	return r;
}

static long long count(const json_t *r, const char *kind)
{
	return (long long)json_integer_value(json_object_get(json_object_get(r, "counts"), kind));
}

/* totals.workflows.running */
static long long running(const json_t *r)
{
	return (long long)json_integer_value(
	    json_object_get(json_object_get(json_object_get(r, "totals"), "workflows"), "running"));
}

/* Asserts every count, in check.h's order, and that "ok" says whether
 * all are 0 with no workflow running. */
static void expect_counts(const json_t *r, long long stuck, long long lost, long long failed,
                          long long dup, long long unexpected, long long extra, long long missing,
                          long long stock, long long integrity)
{
	const char *kinds[] = {"stuck",
	                       "lost",
	                       "failed_with_effects",
	                       "duplicated",
	                       "unexpected",
	                       "extra_supplier_orders",
	                       "missing_supplier_orders",
	                       "stock_mismatch",
	                       "integrity"};
	long long want[] = {stuck, lost, failed, dup, unexpected, extra, missing, stock, integrity};
	long long total = 0, listed = 0;

	for (size_t i = 0; i < 9; i++) {
		if (count(r, kinds[i]) != want[i]) {
			char *text = json_dumps(r, JSON_INDENT(2));
			fail_msg("%s: %lld, expected %lld\n%s", kinds[i], count(r, kinds[i]),
			         want[i], text);
		}
		total += want[i];
		listed += want[i] < CHECK_MAX_LISTED ? want[i] : CHECK_MAX_LISTED;
	}
	assert_int_equal(json_is_true(json_object_get(r, "ok")), total == 0 && running(r) == 0);
	assert_int_equal(json_array_size(json_object_get(r, "violations")), listed);
}

/* The violation of kind whose message holds needle (borrowed). */
static const json_t *find(const json_t *r, const char *kind, const char *needle)
{
	const json_t *v;
	size_t i;
	char *text;

	json_array_foreach(json_object_get(r, "violations"), i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "kind")), kind) == 0 &&
		    strstr(json_string_value(json_object_get(v, "message")), needle) != NULL)
			return v;
	}
	text = json_dumps(r, JSON_INDENT(2));
	fail_msg("no %s violation says \"%s\":\n%s", kind, needle, text);
	return NULL;
}

/* Asserts that the violation names exactly these workflows (NULL-ended). */
static void expect_workflows(const json_t *v, ...)
{
	const json_t *wfs = json_object_get(v, "workflows");
	const char *wf;
	size_t n = 0;
	va_list ap;

	va_start(ap, v);
	while ((wf = va_arg(ap, const char *)) != NULL) {
		assert_true(n < json_array_size(wfs));
		assert_string_equal(json_string_value(json_array_get(wfs, n)), wf);
		n++;
	}
	va_end(ap);
	assert_int_equal(json_array_size(wfs), n);
}

/* check_print's output, malloc'd. */
static char *printed(const json_t *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	check_print(apps_find("inventory"), r, out);
	fclose(out);
	return buf;
}

static void expect_printed(const json_t *r, const char *needle)
{
	char *text = printed(r);

	if (strstr(text, needle) == NULL)
		fail_msg("check_print does not say \"%s\":\n%s", needle, text);
	free(text);
}

static long long total(const json_t *r, const char *key)
{
	return (long long)json_integer_value(json_object_get(json_object_get(r, "totals"), key));
}

/* ---- the tests ------------------------------------------------------------------- */

static void test_seed_run_is_clean(void **state)
{
	struct fx *f = *state;
	json_t *r;
	int64_t stock = 0;
	char err[256];

	seed_run(f);
	assert_int_equal(appdb_stock_get(f->app, "123456", &stock, err, sizeof(err)), 1);
	assert_int_equal(stock, 1001);
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_int_equal(total(r, "orders"), 1);
	assert_int_equal(total(r, "restocks"), 1);
	assert_int_equal(total(r, "supplier_orders"), 1);
	assert_int_equal(total(r, "products"), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(
	        json_object_get(json_object_get(r, "totals"), "workflows"), "completed")),
	    1);
	assert_true(json_is_true(json_object_get(r, "quiescent")));
	assert_int_equal(json_array_size(json_object_get(r, "running_workflows")), 0);
	expect_printed(r, "check: OK — 1 workflows (1 completed, 0 failed), 1 orders, 1 restocks, "
	                  "1 supplier orders; no violation\n");
	json_decref(r);
}

/* An empty system is clean too. */
static void test_empty_is_clean(void **state)
{
	struct fx *f = *state;
	json_t *r = run_check(f);

	expect_counts(r, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	json_decref(r);
}

/* Naive update_inventory retried after its commit: a second row and a
 * second decrement. */
static void test_duplicated_order(void **state)
{
	struct fx *f = *state;
	const json_t *v;
	json_t *r;
	char *text;

	seed_run(f);
	order(f, "A12", 999, "default/A12");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 1, 0, 0, 0, 1, 0);
	v = find(r, "duplicated", "order A12 applied 2 times (workflows default/A12)");
	expect_workflows(v, "default/A12", NULL);
	find(r, "stock_mismatch",
	     "product 123456 has 2, expected 1001 from its orders, restocks "
	     "and adjustments (difference -999)");
	text = printed(r);
	assert_non_null(
	    strstr(text, "  duplicated  order A12 applied 2 times (workflows default/A12)\n"));
	assert_non_null(strstr(text, "check: FAILED — 2 violations: 1 duplicated, 1 "
	                             "stock_mismatch\n"));
	free(text);
	json_decref(r);
}

/* Naive supplier_order retried after its commit: the supplier records a
 * second order under key/attempt-2, and the key is credited twice. */
static void test_duplicated_restock(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	supplier(f, "default/A12/1/attempt-2", 1000);
	restock(f, "default/A12/1", 1000, "SO-2");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 1, 0, 0, 0, 1, 0);
	expect_workflows(find(r, "duplicated",
	                      "restock key default/A12/1 credited 2 times (supplier orders "
	                      "SO-1, SO-2)"),
	                 "default/A12", NULL);
	find(r, "stock_mismatch", "has 2001, expected 1001");
	json_decref(r);
}

/* One supplier order credited under two keys: duplicated, counted once. */
static void test_supplier_order_credited_twice(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	workflow(f, "B2", "completed", "B2", 1, NULL, NULL);
	order(f, "B2", 1, "default/B2");
	restock(f, "default/B2/1", 1000, "SO-1");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 1, 0, 0, 0, 0, 0);
	expect_workflows(find(r, "duplicated",
	                      "supplier order SO-1 credited under 2 restock keys (default/A12/1, "
	                      "default/B2/1)"),
	                 "default/A12", "default/B2", NULL);
	json_decref(r);
}

static void test_lost_order(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	workflow(f, "B1", "completed", "B1", 5, "{\"restocked\":false}", NULL);
	r = run_check(f);
	expect_counts(r, 0, 1, 0, 0, 0, 0, 0, 0, 0);
	expect_workflows(
	    find(r, "lost", "workflow default/B1 completed but its order B1 was never applied"),
	    "default/B1", NULL);
	json_decref(r);
}

/* A completed workflow whose order row belongs to another workflow. */
static void test_lost_order_of_other_workflow(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	workflow(f, "B1", "completed", "A12", 999, "{\"restocked\":false}", NULL);
	r = run_check(f);
	expect_counts(r, 0, 1, 0, 0, 0, 0, 0, 0, 0);
	expect_workflows(find(r, "lost",
	                      "workflow default/B1 completed but its order A12 was applied only "
	                      "for workflow default/A12"),
	                 "default/B1", "default/A12", NULL);
	json_decref(r);
}

/* The supplier recorded SO-1 and the workflow completed with it, but the
 * credit is gone: one fault, reported as lost (not also as extra). */
static void test_lost_restock(void **state)
{
	struct fx *f = *state;
	json_t *r;

	workflow(f, "A12", "completed", "A12", 999, A12_RESULT, NULL);
	order(f, "A12", 999, "default/A12");
	supplier(f, "default/A12/1", 1000);
	r = run_check(f);
	expect_counts(r, 0, 1, 0, 0, 0, 0, 0, 0, 0);
	find(r, "lost",
	     "workflow default/A12 completed with supplier order SO-1 but no restock "
	     "credits it");
	json_decref(r);
}

/* Stuck: a workflow no program will move on and that does not say why. A
 * running one is not stuck (test_running_is_not_stuck). */
static void test_stuck(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	workflow(f, "X", "failed", "X", 1, NULL, NULL);
	workflow(f, "Y", "failed", "Y", 1, NULL, "UnknownProduct: unknown product");
	workflow(f, "Z", "paused", "Z", 1, NULL, NULL);
	r = run_check(f);
	expect_counts(r, 2, 0, 0, 0, 0, 0, 0, 0, 0);
	expect_workflows(find(r, "stuck", "failed workflow default/X has no error"), "default/X",
	                 NULL);
	find(r, "stuck",
	     "workflow default/Z has status \"paused\" (expected running, completed or failed)");
	json_decref(r);
}

/* One event of workflow id's history. */
static void event(struct fx *f, const char *id, int seq, int attempt, const char *kind)
{
	sql(store_db(f->store),
	    "INSERT INTO events(wf, seq, attempt, kind, ts, pid, detail)"
	    " VALUES((SELECT id FROM workflows WHERE workflow_id = %Q), %d, %d, %Q, 1, 0, '{}')",
	    id, seq, attempt, kind);
}

/* A completed workflow with its one step, its order and these events of
 * attempt 1 of step 0 (NULL-ended). */
static void closed_run(struct fx *f, const char *id, const char *status, ...)
{
	va_list ap;
	const char *kind;
	char owner[64];

	snprintf(owner, sizeof(owner), "default/%s", id);
	workflow(f, id, status, id, 1, strcmp(status, "completed") == 0 ? "{}" : NULL,
	         strcmp(status, "failed") == 0 ? "UnknownProduct: unknown product" : NULL);
	step(f, id, 0, "update_inventory", strcmp(status, "running") == 0 ? "running" : status);
	if (strcmp(status, "completed") == 0)
		order(f, id, 1, owner);
	va_start(ap, status);
	while ((kind = va_arg(ap, const char *)) != NULL)
		event(f, id, 0, 1, kind);
	va_end(ap);
}

/* The engine's own invariants, for every app: each step of a completed
 * workflow completed once in its history, never twice; every attempt of
 * a closed workflow that started ended; no workflow failed for
 * nondeterminism. A running workflow's attempt in flight is none of it. */
static void test_history_adds_up(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	closed_run(f, "H0", "completed", "started", "completed", NULL); /* clean */
	closed_run(f, "H1", "completed", "started", "completed", "completed", NULL);
	closed_run(f, "H2", "completed", "started", "worker_lost", NULL);
	closed_run(f, "H3", "failed", "started", NULL);
	closed_run(f, "H4", "running", "started", NULL);                /* in flight: fine */
	closed_run(f, "H5", "failed", "started", "attempt_lost", NULL); /* clean */
	workflow(f, "H6", "failed", "H6", 1, NULL,
	         "nondeterminism: step 0 was recorded as supplier_order but the workflow code "
	         "now calls update_inventory");
	r = run_check(f);
	assert_int_equal(count(r, "history"), 3);
	assert_int_equal(count(r, "nondeterminism"), 1);
	assert_int_equal(count(r, "stuck") + count(r, "lost") + count(r, "duplicated") +
	                     count(r, "failed_with_effects") + count(r, "stock_mismatch"),
	                 0);
	expect_workflows(find(r, "history", "step 0 of default/H1 completed 2 times"), "default/H1",
	                 NULL);
	find(r, "history",
	     "step 0 of completed workflow default/H2 is completed, with no completion in its "
	     "history");
	find(r, "history",
	     "attempt 1 of step 0 of closed workflow default/H3 started and never "
	     "ended");
	expect_workflows(find(r, "nondeterminism",
	                      "workflow default/H6 failed: nondeterminism: "
	                      "step 0 was recorded as supplier_order"),
	                 "default/H6", NULL);
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
}

/* A workflow still running is reported as running, not as a violation:
 * the check is not final ("ok" false, "quiescent" false) until none runs.
 * C3's supplier order has no restock yet: its credit is on the way, so
 * it is not an extra supplier order either. */
static void test_running_is_not_stuck(void **state)
{
	struct fx *f = *state;
	json_t *r, *wfs;
	char *text;

	seed_run(f);
	workflow(f, "C3", "running", "C3", 1, NULL, NULL);
	step(f, "C3", 0, "update_inventory", "completed");
	step(f, "C3", 1, "supplier_order", "running");
	order(f, "C3", 1, "default/C3");
	supplier(f, "default/C3/1", 1000);
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_true(json_is_false(json_object_get(r, "quiescent")));
	assert_int_equal(running(r), 1);
	wfs = json_object_get(r, "running_workflows");
	assert_int_equal(json_array_size(wfs), 1);
	assert_string_equal(json_string_value(json_array_get(wfs, 0)), "default/C3");
	text = printed(r);
	assert_non_null(strstr(text, "  running  workflow default/C3 is still running\n"));
	assert_non_null(strstr(text, "check: NOT QUIESCENT — 1 workflow still running (of 2), "
	                             "no violation so far"));
	assert_null(strstr(text, "stuck  "));
	free(text);
	json_decref(r);
}

/* Running workflows are listed up to CHECK_MAX_LISTED, then counted. */
static void test_many_running(void **state)
{
	struct fx *f = *state;
	json_t *r;
	char *text;

	sql(store_db(f->store),
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)"
	    " INSERT INTO workflows(namespace, workflow_id, type, input, status, created_at)"
	    " SELECT 'default', 'R' || i, 'inventory', '{}', 'running', 1 FROM n");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_int_equal(json_array_size(json_object_get(r, "running_workflows")),
	                 CHECK_MAX_LISTED);
	text = printed(r);
	assert_non_null(strstr(text, "  running  workflow default/R100 is still running\n"));
	assert_null(strstr(text, "default/R101 "));
	assert_non_null(strstr(text, "  running  ... and 150 more not listed\n"));
	assert_non_null(
	    strstr(text, "check: NOT QUIESCENT — 250 workflows still running (of 250)"));
	free(text);
	json_decref(r);
}

/* A failed workflow whose failing step applied its effect: the client is
 * told "failed" while its order went through. E1 failed on its last
 * attempt after an earlier one applied the order (an error after the
 * effect); N1 is the naive retry refused with InsufficientStock after its
 * first attempt committed. The clean failures are not reported: I1
 * refused with InsufficientStock (nothing applied), K1 refused because
 * its order id belongs to A12, and P1 failed at step 1 after step 0
 * completed (its order stands by its own history). */
static void test_failed_with_effects(void **state)
{
	struct fx *f = *state;
	const json_t *v;
	json_t *r;
	char *text;

	seed_run(f);
	workflow(f, "E1", "failed", "E1", 5, NULL,
	         "activity update_inventory (step 0) failed after 3 attempts: InjectedError: "
	         "injected error before the effect (fault plan)");
	step(f, "E1", 0, "update_inventory", "failed");
	order(f, "E1", 5, "default/E1");
	workflow(f, "N1", "failed", "N1", 1, NULL,
	         "activity update_inventory (step 0) failed after 2 attempts: InsufficientStock: "
	         "insufficient stock");
	step(f, "N1", 0, "update_inventory", "failed");
	order(f, "N1", 1, "default/N1");
	workflow(f, "I1", "failed", "I1", 5000, NULL,
	         "activity update_inventory (step 0) failed after 1 attempt: InsufficientStock: "
	         "insufficient stock");
	step(f, "I1", 0, "update_inventory", "failed");
	workflow(f, "K1", "failed", "A12", 999, NULL,
	         "activity update_inventory (step 0) failed after 1 attempt: OrderConflict: "
	         "order A12 was already applied by workflow default/A12");
	step(f, "K1", 0, "update_inventory", "failed");
	workflow(f, "P1", "failed", "P1", 2, NULL,
	         "activity supplier_order (step 1) failed after 1 attempt: SupplierRejected: no");
	step(f, "P1", 0, "update_inventory", "completed");
	step(f, "P1", 1, "supplier_order", "failed");
	order(f, "P1", 2, "default/P1");
	r = run_check(f);
	expect_counts(r, 0, 0, 2, 0, 0, 0, 0, 0, 0);
	v = find(r, "failed_with_effects",
	         "workflow default/E1 failed with effects applied: order E1; its error: activity "
	         "update_inventory (step 0) failed after 3 attempts: InjectedError");
	expect_workflows(v, "default/E1", NULL);
	expect_workflows(find(r, "failed_with_effects",
	                      "workflow default/N1 failed with effects applied: order N1;"),
	                 "default/N1", NULL);
	text = printed(r);
	assert_non_null(strstr(text, "  failed_with_effects  workflow default/E1 failed with "
	                             "effects applied: order E1;"));
	assert_non_null(strstr(text, "check: FAILED — 2 violations: 2 failed_with_effects\n"));
	free(text);
	json_decref(r);
}

/* The supplier_order step failed after the supplier recorded its order:
 * S1 even credited it (an error after the effect), S2's naive attempt 2
 * recorded one that nothing credits. Each is reported once, as
 * failed_with_effects naming the rows, not also as an extra supplier
 * order; their orders stand (step 0 completed). */
static void test_failed_with_supplier_effects(void **state)
{
	struct fx *f = *state;
	const json_t *v;
	json_t *r;

	workflow(f, "S1", "failed", "S1", 999, NULL,
	         "activity supplier_order (step 1) failed after 3 attempts: InjectedError: x");
	step(f, "S1", 0, "update_inventory", "completed");
	step(f, "S1", 1, "supplier_order", "failed");
	order(f, "S1", 999, "default/S1");
	supplier(f, "default/S1/1", 1000);
	restock(f, "default/S1/1", 1000, "SO-1");
	workflow(
	    f, "S2", "failed", "S2", 1, NULL,
	    "activity supplier_order (step 1) failed after 2 attempts: SupplierUnavailable: x");
	step(f, "S2", 0, "update_inventory", "completed");
	step(f, "S2", 1, "supplier_order", "failed");
	order(f, "S2", 1, "default/S2");
	supplier(f, "default/S2/1/attempt-2", 1000);
	r = run_check(f);
	expect_counts(r, 0, 0, 2, 0, 0, 0, 0, 0, 0);
	v = find(r, "failed_with_effects",
	         "workflow default/S1 failed with effects applied: restock default/S1/1 of "
	         "supplier order SO-1; supplier order SO-1 (key default/S1/1); its error: "
	         "activity supplier_order (step 1)");
	expect_workflows(v, "default/S1", NULL);
	find(r, "failed_with_effects",
	     "workflow default/S2 failed with effects applied: supplier order SO-2 (key "
	     "default/S2/1/attempt-2); its error:");
	json_decref(r);
}

/* Credits swapped between two workflows' supplier orders of the same
 * size: each restock names a supplier order the supplier recorded under
 * the other key. Products and quantities agree; the keys do not. */
static void test_restock_key_differs(void **state)
{
	struct fx *f = *state;
	const json_t *v;
	json_t *r;

	workflow(f, "A", "completed", "A", 500,
	         "{\"restocked\":true,\"supplier_order_id\":\"SO-2\"}", NULL);
	workflow(f, "B", "completed", "B", 499,
	         "{\"restocked\":true,\"supplier_order_id\":\"SO-1\"}", NULL);
	order(f, "A", 500, "default/A");
	order(f, "B", 499, "default/B");
	supplier(f, "default/A/1", 1000);
	supplier(f, "default/B/1", 1000);
	restock(f, "default/A/1", 1000, "SO-2");
	restock(f, "default/B/1", 1000, "SO-1");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 2, 0, 0);
	v = find(r, "missing_supplier_orders",
	         "restock default/A/1 credits supplier order SO-2, which the supplier recorded "
	         "under key default/B/1");
	expect_workflows(v, "default/A", "default/B", NULL);
	find(r, "missing_supplier_orders",
	     "restock default/B/1 credits supplier order SO-1, which the supplier recorded under "
	     "key default/A/1");
	json_decref(r);
}

/* Naive supplier_order: attempt 1 ordered SO-1 and died before its
 * credit; attempt 2 ordered SO-2 under key/attempt-2 and credited it. */
static void test_extra_supplier_order(void **state)
{
	struct fx *f = *state;
	const json_t *v;
	json_t *r;

	workflow(f, "A12", "completed", "A12", 999,
	         "{\"restocked\":true,\"supplier_order_id\":\"SO-2\"}", NULL);
	order(f, "A12", 999, "default/A12");
	supplier(f, "default/A12/1/attempt-1", 1000);
	supplier(f, "default/A12/1/attempt-2", 1000);
	restock(f, "default/A12/1", 1000, "SO-2");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 1, 0, 0, 0);
	v = find(r, "extra_supplier_orders",
	         "supplier order SO-1 (key default/A12/1/attempt-1) has no restock");
	expect_workflows(v, "default/A12", NULL);
	json_decref(r);

	/* One more, no workflow names it: SO-3. */
	supplier(f, "default/A12/1/attempt-3", 1000);
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 2, 0, 0, 0);
	find(r, "extra_supplier_orders", "supplier order SO-3 (key default/A12/1/attempt-3)");
	expect_printed(r, "  extra_supplier_orders  supplier order SO-3 ");
	json_decref(r);
}

static void test_missing_supplier_order(void **state)
{
	struct fx *f = *state;
	json_t *r;

	workflow(f, "A12", "completed", "A12", 999,
	         "{\"restocked\":true,\"supplier_order_id\":\"SO-99\"}", NULL);
	order(f, "A12", 999, "default/A12");
	restock(f, "default/A12/1", 1000, "SO-99");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 1, 0, 0);
	expect_workflows(find(r, "missing_supplier_orders",
	                      "restock default/A12/1 names supplier order SO-99, which the "
	                      "supplier never recorded"),
	                 "default/A12", NULL);
	json_decref(r);
}

static void test_supplier_order_differs(void **state)
{
	struct fx *f = *state;
	json_t *r;

	workflow(f, "A12", "completed", "A12", 999, A12_RESULT, NULL);
	order(f, "A12", 999, "default/A12");
	supplier(f, "default/A12/1", 500);
	restock(f, "default/A12/1", 1000, "SO-1");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 1, 0, 0);
	find(r, "missing_supplier_orders",
	     "restock default/A12/1 credited 1000 units of product 123456 for supplier order SO-1, "
	     "which the supplier recorded as 500 units of product 123456");
	json_decref(r);
}

/* An operator's adjustment changes the stock and says by how much. */
static void test_adjustment_keeps_stock_invariant(void **state)
{
	struct fx *f = *state;
	char err[256];
	json_t *r;

	seed_run(f);
	assert_int_equal(appdb_stock_set(f->app, "123456", 500, "recount", NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(appdb_stock_set(f->app, "777", 12, NULL, NULL, err, sizeof(err)), 0);
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	assert_int_equal(total(r, "products"), 2);
	json_decref(r);

	/* A change behind the checker's back is not an adjustment. */
	sql(appconn_sqlite(f->app), "UPDATE products SET stock = 13 WHERE product_id = '777'");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 0, 0, 0, 1, 0);
	find(r, "stock_mismatch",
	     "product 777 has 13, expected 12 from its orders, restocks and "
	     "adjustments (difference +1)");
	json_decref(r);
}

static void test_unexpected(void **state)
{
	struct fx *f = *state;
	json_t *r;

	seed_run(f);
	order(f, "Q1", 3, "default/Q1");
	supplier(f, "default/Q1/1", 1000);
	restock(f, "default/Q1/1", 1000, "SO-2");
	r = run_check(f);
	expect_counts(r, 0, 0, 0, 0, 2, 0, 0, 0, 0);
	expect_workflows(find(r, "unexpected",
	                      "order Q1 was applied for workflow default/Q1, which does not "
	                      "exist"),
	                 "default/Q1", NULL);
	find(r, "unexpected",
	     "restock default/Q1/1 was credited for workflow default/Q1, which "
	     "does not exist");
	json_decref(r);
}

/* Counts stay exact past the listed violations. */
static void test_many_violations(void **state)
{
	struct fx *f = *state;
	json_t *r;
	char *text;

	sql(store_db(f->store),
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)"
	    " INSERT INTO workflows(namespace, workflow_id, type, input, status, created_at)"
	    " SELECT 'default', 'R' || i, 'inventory', '{}', 'failed', 1 FROM n");
	r = run_check(f);
	expect_counts(r, 250, 0, 0, 0, 0, 0, 0, 0, 0);
	text = printed(r);
	assert_non_null(strstr(text, "  stuck  failed workflow default/R1 has no error\n"));
	assert_non_null(strstr(text, "  stuck  failed workflow default/R100 has no error\n"));
	assert_null(strstr(text, "default/R101 "));
	assert_non_null(strstr(text, "  stuck  ... and 150 more not listed\n"));
	assert_non_null(strstr(text, "check: FAILED — 250 violations: 250 stuck\n"));
	free(text);
	json_decref(r);
}

/* A missing file is an error that names it and its key; none is created. */
static void test_missing_database(void **state)
{
	struct fx *f = *state;
	char err[1024], *none = tu_fmt("%s/none.db", f->dir);
	struct stat st;

	assert_null(check_at(f->state_path, f->app_path, none, err, sizeof(err)));
	assert_non_null(strstr(err, none));
	assert_non_null(strstr(err, "SUPPLIER_DATABASE"));
	assert_null(check_at(none, f->app_path, f->ledger_path, err, sizeof(err)));
	assert_non_null(strstr(err, "STATE_DATABASE"));
	assert_null(check_at(f->state_path, none, f->ledger_path, err, sizeof(err)));
	assert_non_null(strstr(err, "is DATABASE, or its flag --database"));
	assert_int_equal(stat(none, &st), -1);
	free(none);
}

/* An empty file is not an idem database. */
static void test_not_an_idem_database(void **state)
{
	struct fx *f = *state;
	char err[1024], *empty = tu_fmt("%s/empty.db", f->dir);

	assert_int_equal(tu_write_file(empty, ""), 0);
	assert_null(check_at(f->state_path, empty, f->ledger_path, err, sizeof(err)));
	assert_non_null(strstr(err, empty));
	assert_non_null(strstr(err, "has no idem schema"));
	free(empty);
}

/* A page of the app DB overwritten: integrity_check says so. */
static void test_corrupt_app_db(void **state)
{
	struct fx *f = *state;
	char junk[4096];
	FILE *fp;
	json_t *r;

	seed_run(f);
	close_all(f); /* checkpoints: the whole app DB is in app.db */
	memset(junk, 0xA5, sizeof(junk));
	fp = fopen(f->app_path, "r+b");
	assert_non_null(fp);
	/* Page 3: the first table after products (orders). */
	assert_int_equal(fseek(fp, 2 * 4096, SEEK_SET), 0);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	fclose(fp);
	r = run_check(f);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_true(count(r, "integrity") >= 1);
	find(r, "integrity", "app DB");
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_seed_run_is_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_is_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicated_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicated_restock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_supplier_order_credited_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_order_of_other_workflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_restock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stuck, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_adds_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_running_is_not_stuck, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_with_effects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_with_supplier_effects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restock_key_differs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_extra_supplier_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_supplier_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_supplier_order_differs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_adjustment_keeps_stock_invariant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unexpected, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_violations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_an_idem_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_app_db, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
