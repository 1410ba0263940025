/* test_retention.c — RETENTION: closed workflows past their namespace's
 * retention leave the state DB with their steps and events; the app's
 * rows stay; the counters, /v1/stats and the checker follow; a namespace
 * of RETENTION_NAMESPACES keeps its own. Judged by the API and the rows. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "clock.h"
#include "testutil.h"

static int setup(void **state)
{
	return tu_fixture_setup(state, "retention");
}

static void start(struct tu_fixture *f)
{
	const char *extra[] = {"--retention=1s", "--retention-namespaces=keep=0",
	                       "--seed-stock=P:1000", NULL};

	if (tu_sup_start(&f->sup, f->dir, extra) != 0)
		fail_msg("the supervisor did not start");
}

static void order(struct tu_fixture *f, const char *ns, const char *id, int want)
{
	char *body = tu_fmt("{\"namespace\": \"%s\", \"workflow_id\": \"%s\", \"input\": "
	                    "{\"order_id\": \"%s\", \"product_id\": \"P\", \"quantity\": 1}}",
	                    ns, id, id);

	assert_int_equal(tu_http(&f->sup, "POST", "/v1/workflows?wait=30s", body, NULL), want);
	free(body);
}

static long long stat_of(struct tu_fixture *f, const char *group, const char *key)
{
	json_t *body = NULL, *v;
	long long n;

	assert_int_equal(tu_http(&f->sup, "GET", "/v1/stats", NULL, &body), 200);
	v = json_object_get(body, group);
	n = key != NULL ? json_integer_value(json_object_get(v, key)) : json_integer_value(v);
	json_decref(body);
	return n;
}

static long long rows(struct tu_fixture *f, const char *db, const char *sql)
{
	char *path = tu_fmt("%s/%s", f->dir, db);
	long long n = tu_sql_int(path, sql);

	free(path);
	return n;
}

static json_t *check(struct tu_fixture *f)
{
	json_t *r = NULL;

	assert_int_equal(tu_http(&f->sup, "GET", "/v1/check", NULL, &r), 200);
	return r;
}

static long long check_count(json_t *r, const char *kind)
{
	return json_integer_value(json_object_get(json_object_get(r, "counts"), kind));
}

static void test_closed_workflows_leave_after_their_retention(void **state)
{
	struct tu_fixture *f = *state;
	char *app_db;
	json_t *r;
	sqlite3 *db;

	start(f);
	for (int i = 0; i < 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "O%d", i);
		order(f, "default", id, 201);
	}
	order(f, "keep", "K1", 201);
	/* a slow run may already have pruned the first */
	assert_int_equal(stat_of(f, "workflows", "completed") + stat_of(f, "pruned", NULL), 6);
	for (int ms = 0; stat_of(f, "pruned", NULL) < 5 && ms < 15000; ms += 100)
		tu_sleep_ms(100);
	assert_int_equal(stat_of(f, "pruned", NULL), 5);
	assert_int_equal(stat_of(f, "workflows", "completed"), 1);

	/* default's are gone with their steps and events; keep's stays */
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/workflows/O0", NULL, NULL), 404);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/workflows/K1?namespace=keep", NULL, NULL),
	                 200);
	assert_int_equal(rows(f, "state.db", "SELECT count(*) FROM workflows"), 1);
	assert_int_equal(rows(f, "state.db", "SELECT count(*) FROM steps"), 1);
	assert_int_equal(rows(f, "state.db",
	                      "SELECT count(*) FROM events WHERE wf NOT IN (SELECT id FROM "
	                      "workflows)"),
	                 0);
	assert_int_equal(
	    rows(f, "state.db", "SELECT workflows FROM pruned WHERE namespace = 'default'"), 5);
	/* the app's rows stay */
	assert_int_equal(rows(f, "app.db", "SELECT count(*) FROM orders"), 6);
	assert_int_equal(rows(f, "app.db", "SELECT stock FROM products WHERE product_id = 'P'"),
	                 994);

	/* the checker excuses the orders of pruned workflows, and says so */
	r = check(f);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(check_count(r, "unexpected"), 0);
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(json_object_get(r, "totals"), "workflows"), "pruned")),
	                 5);
	json_decref(r);

	/* ... but not an order applied after the last pruned workflow closed */
	app_db = tu_fmt("%s/app.db", f->dir);
	assert_int_equal(sqlite3_open(app_db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	{
		char *sql =
		    tu_fmt("INSERT INTO orders (order_id, product_id, quantity, stock_after, "
		           "workflow_id, applied_at) VALUES ('GHOST', 'P', 1, 993, "
		           "'default/GHOST', %lld)",
		           (long long)clock_wall_ms() + 3600000);

		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		free(sql);
	}
	sqlite3_close(db);
	free(app_db);
	r = check(f);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(check_count(r, "unexpected"), 1);
	json_decref(r);

	/* a pruned id may be started again: it is a new workflow */
	order(f, "default", "O0", 201);
	assert_int_equal(tu_sup_stop(&f->sup), 0);

	/* the counts survive a restart */
	start(f);
	assert_true(stat_of(f, "pruned", NULL) >= 5);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_closed_workflows_leave_after_their_retention,
	                                    setup, tu_fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
