/* test_integration.c — the real programs, forked in a temporary directory:
 * the seed scenario, repeated starts, many workflows over many products
 * with exact stock arithmetic, a supervisor SIGKILL at a random moment,
 * a worker SIGKILL, and a clean SIGTERM. Random choices come from a seed
 * printed at the start (IDEM_TEST_SEED replays one). */
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

#include "testutil.h"

#define NPRODUCTS 20
#define PRODUCT_STOCK 100

static uint64_t seed;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int setup(void **state)
{
	return tu_fixture_setup(state, "integration");
}

static void start_sup(struct tu_fixture *f, const char *const *extra)
{
	assert_int_equal(tu_sup_start(&f->sup, f->dir, extra), 0);
}

static char *path_in(struct tu_fixture *f, const char *name)
{
	return tu_fmt("%s/%s", f->dir, name);
}

static long long app_int(struct tu_fixture *f, const char *sql)
{
	char *db = path_in(f, "app.db");
	long long v = tu_sql_int(db, sql);

	free(db);
	return v;
}

static long long stock_of(struct tu_fixture *f, const char *product)
{
	json_t *body = NULL;
	char *path = tu_fmt("/v1/stock/%s", product);
	int status = tu_http(&f->sup, "GET", path, NULL, &body);
	long long v;

	free(path);
	assert_int_equal(status, 200);
	v = json_integer_value(json_object_get(body, "stock"));
	json_decref(body);
	return v;
}

/* Waits for one workflow and returns its JSON (NEW ref). */
static json_t *wait_wf(struct tu_fixture *f, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s/wait?timeout=60", id);
	json_t *body = NULL, *wf;
	int status = tu_http(&f->sup, "GET", path, NULL, &body);

	free(path);
	assert_int_equal(status, 200);
	assert_false(json_is_true(json_object_get(body, "timed_out")));
	wf = json_incref(json_object_get(body, "workflow"));
	json_decref(body);
	return wf;
}

static void wait_all(struct tu_fixture *f)
{
	json_t *body = NULL;
	int status = tu_http(&f->sup, "GET", "/v1/wait?timeout=120", NULL, &body);

	assert_int_equal(status, 200);
	assert_false(json_is_true(json_object_get(body, "timed_out")));
	assert_int_equal(json_integer_value(json_object_get(body, "running")), 0);
	json_decref(body);
}

static json_int_t result_int(json_t *wf, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(wf, "result"), key));
}

/* No order id and no restock key was applied twice; every supplier order
 * has its restock. */
static void assert_exactly_once(struct tu_fixture *f)
{
	char *sup_db = path_in(f, "supplier.db");

	assert_int_equal(app_int(f, "SELECT count(*) FROM (SELECT order_id FROM orders "
	                            "GROUP BY order_id HAVING count(*) > 1)"),
	                 0);
	assert_int_equal(app_int(f, "SELECT count(*) FROM (SELECT key FROM restocks "
	                            "GROUP BY key HAVING count(*) > 1)"),
	                 0);
	assert_int_equal(tu_sql_int(sup_db, "SELECT count(*) FROM supplier_orders"),
	                 app_int(f, "SELECT count(*) FROM restocks"));
	free(sup_db);
}

static void test_seed_scenario(void **state)
{
	struct tu_fixture *f = *state;
	json_t *wf, *body = NULL;

	start_sup(f, NULL);
	assert_int_equal(stock_of(f, "123456"), 1000);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 201);
	wf = wait_wf(f, "A12");
	assert_string_equal(json_string_value(json_object_get(wf, "status")), "completed");
	assert_int_equal(result_int(wf, "stock_after_order"), 1);
	assert_true(json_is_true(json_object_get(json_object_get(wf, "result"), "restocked")));
	assert_int_equal(result_int(wf, "final_stock"), 1001);
	json_decref(wf);
	assert_int_equal(stock_of(f, "123456"), 1001);

	/* The history names each activity's scheduled/started/completed. */
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/workflows/A12/history", NULL, &body), 200);
	json_t *events = json_object_get(body, "events");
	/* supplier_order checkpoints the supplier order id in a heartbeat. */
	const char *expect[] = {"workflow_started", "scheduled", "started",
	                        "completed",        "scheduled", "started",
	                        "heartbeat",        "completed", "workflow_completed"};
	assert_int_equal(json_array_size(events), 9);
	for (size_t i = 0; i < 9; i++)
		assert_string_equal(
		    json_string_value(json_object_get(json_array_get(events, i), "kind")),
		    expect[i]);
	assert_true(json_integer_value(json_object_get(json_array_get(events, 2), "pid")) > 0);
	json_decref(body);

	/* A second start of A12 returns the existing workflow, runs nothing. */
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 200);
	wf = wait_wf(f, "A12");
	assert_int_equal(result_int(wf, "final_stock"), 1001);
	json_decref(wf);
	assert_int_equal(stock_of(f, "123456"), 1001);
	assert_int_equal(app_int(f, "SELECT count(*) FROM orders"), 1);
	assert_int_equal(app_int(f, "SELECT count(*) FROM restocks"), 1);
	assert_exactly_once(f);

	/* And after a restart too: the state is durable, and a changed
	 * REORDER_THRESHOLD neither conflicts with nor changes the workflow
	 * (the client never sent it). */
	assert_int_equal(tu_sup_stop(&f->sup), 0);
	const char *changed[] = {"--reorder-threshold=5", NULL};
	start_sup(f, changed);
	assert_int_equal(tu_start_order(&f->sup, "A12", "123456", 999), 200);
	assert_int_equal(stock_of(f, "123456"), 1001);
	assert_int_equal(app_int(f, "SELECT count(*) FROM orders"), 1);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

/* SEED_STOCK=P0:100,...,P19:100 */
static char *seed_stock_flag(void)
{
	char buf[NPRODUCTS * 16] = "--seed-stock=";

	for (int i = 0; i < NPRODUCTS; i++) {
		size_t n = strlen(buf);
		snprintf(buf + n, sizeof(buf) - n, "%sP%d:%d", i ? "," : "", i, PRODUCT_STOCK);
	}
	return strdup(buf);
}

struct plan {
	int n;
	int product[512];
	int quantity[512];
	int acked[512];
};

static void make_plan(struct plan *p, int n, uint64_t *rng)
{
	p->n = n;
	for (int i = 0; i < n; i++) {
		p->product[i] = (int)(rng_next(rng) % NPRODUCTS);
		p->quantity[i] = 1 + (int)(rng_next(rng) % 40);
		p->acked[i] = 0;
	}
}

static void submit_range(struct tu_fixture *f, struct plan *p, const char *prefix, int from, int to)
{
	for (int i = from; i < to; i++) {
		char id[64], product[16];
		int status;

		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		snprintf(product, sizeof(product), "P%d", p->product[i]);
		status = tu_start_order(&f->sup, id, product, p->quantity[i]);
		p->acked[i] = status == 201 || status == 200;
	}
}

static void submit(struct tu_fixture *f, struct plan *p, const char *prefix)
{
	submit_range(f, p, prefix, 0, p->n);
}

/* Every acknowledged workflow closed, and for every product
 *   stock = initial - sum(quantity of completed orders) + 1000 * restocks,
 * with the app DB's rows agreeing with the workflows' results. */
static void check_arithmetic(struct tu_fixture *f, struct plan *p, const char *prefix)
{
	long long expect[NPRODUCTS];
	int completed = 0, restocked = 0;

	for (int i = 0; i < NPRODUCTS; i++)
		expect[i] = PRODUCT_STOCK;
	for (int i = 0; i < p->n; i++) {
		char id[64];
		json_t *wf;
		const char *status;

		if (!p->acked[i])
			continue;
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		wf = wait_wf(f, id);
		status = json_string_value(json_object_get(wf, "status"));
		if (strcmp(status, "failed") == 0) {
			/* Only a legitimate refusal may fail a workflow. */
			const char *err = json_string_value(json_object_get(wf, "error"));
			assert_non_null(strstr(err, "InsufficientStock"));
		} else {
			assert_string_equal(status, "completed");
			completed++;
			expect[p->product[i]] -= p->quantity[i];
			if (json_is_true(
			        json_object_get(json_object_get(wf, "result"), "restocked"))) {
				expect[p->product[i]] += 1000;
				restocked++;
			}
		}
		json_decref(wf);
	}
	for (int i = 0; i < NPRODUCTS; i++) {
		char product[16];
		snprintf(product, sizeof(product), "P%d", i);
		if (stock_of(f, product) != expect[i])
			fprintf(stderr, "seed %llu: product %s stock %lld, expected %lld\n",
			        (unsigned long long)seed, product, stock_of(f, product), expect[i]);
		assert_int_equal(stock_of(f, product), expect[i]);
	}
	assert_int_equal(app_int(f, "SELECT count(*) FROM orders"), completed);
	assert_int_equal(app_int(f, "SELECT count(*) FROM restocks"), restocked);
	assert_true(restocked > 0); /* the mix must exercise the supplier */
	assert_exactly_once(f);
}

static void test_many_workflows(void **state)
{
	struct tu_fixture *f = *state;
	char *stock = seed_stock_flag();
	/* Reorder below 30: with the default (2) a product restocks only when
	 * an order leaves it at 0 or 1, which some seeds never do. */
	const char *extra[] = {stock, "--workers=3", "--reorder-threshold=30", NULL};
	struct plan p;
	uint64_t rng = seed;

	make_plan(&p, 200, &rng);
	start_sup(f, extra);
	submit(f, &p, "M");
	wait_all(f);
	check_arithmetic(f, &p, "M");
	assert_int_equal(tu_sup_stop(&f->sup), 0);
	free(stock);
}

static void test_supervisor_sigkill(void **state)
{
	struct tu_fixture *f = *state;
	char *stock = seed_stock_flag();
	/* Reorder below 30, as test_many_workflows does: the restock must happen. */
	const char *extra[] = {stock, "--workers=2", "--retry-initial-interval=50ms",
	                       "--reorder-threshold=30", NULL};
	struct plan p;
	uint64_t rng = seed ^ 0x5eed;
	int delay_ms, cut;

	make_plan(&p, 200, &rng);
	cut = 20 + (int)(rng_next(&rng) % 160);
	delay_ms = (int)(rng_next(&rng) % 20);
	start_sup(f, extra);
	submit_range(f, &p, "K", 0, cut);
	fprintf(stderr, "seed %llu: SIGKILL of the supervisor %d ms after start %d of %d\n",
	        (unsigned long long)seed, delay_ms, cut, p.n);
	tu_sleep_ms(delay_ms);
	tu_sup_kill9(&f->sup);
	for (int i = 0; i < cut; i++)
		assert_true(p.acked[i]);
	char *state_db = path_in(f, "state.db");
	fprintf(stderr, "running at the kill: %lld workflows\n",
	        tu_sql_int(state_db, "SELECT count(*) FROM workflows WHERE status = 'running'"));
	free(state_db);
	/* Every acknowledged start survived; starting all again is harmless. */
	start_sup(f, extra);
	submit(f, &p, "K");
	wait_all(f);
	check_arithmetic(f, &p, "K");
	assert_int_equal(tu_sup_stop(&f->sup), 0);
	free(stock);
}

static json_int_t slot_pid(json_t *stats, int slot)
{
	json_t *slots = json_object_get(json_object_get(stats, "pool"), "slots");

	return json_integer_value(json_object_get(json_array_get(slots, (size_t)slot), "pid"));
}

/* An order of 5 completes, leaving final_stock. */
static void order_completes(struct tu_fixture *f, const char *id, long final_stock)
{
	json_t *wf;

	assert_int_equal(tu_start_order(&f->sup, id, "123456", 5), 201);
	wf = wait_wf(f, id);
	assert_string_equal(json_string_value(json_object_get(wf, "status")), "completed");
	assert_int_equal(result_int(wf, "final_stock"), final_stock);
	json_decref(wf);
}

/* Without the spare: the slot starts a new worker itself. */
static void test_idle_worker_sigkill(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", "--spare-worker=0", NULL};
	json_t *stats = NULL;
	json_int_t pid, pid2 = 0;

	start_sup(f, extra);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/stats", NULL, &stats), 200);
	for (int i = 0; i < 100 && (pid = slot_pid(stats, 0)) <= 0; i++) {
		json_decref(stats);
		tu_sleep_ms(20);
		tu_http(&f->sup, "GET", "/v1/stats", NULL, &stats);
	}
	assert_true(json_is_null(json_object_get(json_object_get(stats, "pool"), "spare")));
	json_decref(stats);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	/* Respawned within the throttle (1 s after its spawn at most). */
	for (int i = 0; i < 150; i++) {
		tu_sleep_ms(20);
		assert_int_equal(tu_http(&f->sup, "GET", "/v1/stats", NULL, &stats), 200);
		pid2 = slot_pid(stats, 0);
		const char *st = json_string_value(json_object_get(
		    json_array_get(json_object_get(json_object_get(stats, "pool"), "slots"), 0),
		    "state"));
		int ready = st && strcmp(st, "ready") == 0;
		int restarts = (int)json_integer_value(json_object_get(stats, "worker_restarts"));
		json_decref(stats);
		if (ready && pid2 != pid) {
			assert_int_equal(restarts, 1);
			break;
		}
	}
	assert_true(pid2 > 0 && pid2 != pid);
	/* And work continues on the new worker. */
	order_completes(f, "W1", 995);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

static const char *pool_state(json_t *stats, int slot)
{
	json_t *pool = json_object_get(stats, "pool");
	json_t *sl = slot < 0 ? json_object_get(pool, "spare")
	                      : json_array_get(json_object_get(pool, "slots"), (size_t)slot);

	return json_string_value(json_object_get(sl, "state"));
}

static json_int_t spare_pid(json_t *stats)
{
	return json_integer_value(
	    json_object_get(json_object_get(json_object_get(stats, "pool"), "spare"), "pid"));
}

static json_int_t spare_pid(json_t *stats);

/* The spare's pid now. */
static json_int_t spare_pid_now(struct tu_fixture *f)
{
	json_t *stats = NULL;
	json_int_t pid;

	assert_int_equal(tu_http(&f->sup, "GET", "/v1/stats", NULL, &stats), 200);
	pid = spare_pid(stats);
	json_decref(stats);
	return pid;
}

/* Polls /v1/stats until slot 0 and the spare are both ready; *stats is
 * that snapshot (NEW). */
static void wait_ready_with_spare(struct tu_fixture *f, json_t **stats)
{
	for (int i = 0; i < 250; i++) {
		const char *a, *b;

		assert_int_equal(tu_http(&f->sup, "GET", "/v1/stats", NULL, stats), 200);
		a = pool_state(*stats, 0);
		b = pool_state(*stats, -1);
		if (a && b && strcmp(a, "ready") == 0 && strcmp(b, "ready") == 0)
			return;
		json_decref(*stats);
		tu_sleep_ms(20);
	}
	fail_msg("slot 0 and the spare did not both become ready");
}

/* With SPARE_WORKER=1 (the default) a slot whose worker dies takes the
 * spare's worker, already started and ready, and a new spare starts. */
static void test_spare_takes_over(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", NULL};
	json_t *stats = NULL;
	json_int_t pid, spare, spare2;

	start_sup(f, extra);
	wait_ready_with_spare(f, &stats);
	pid = slot_pid(stats, 0);
	spare = spare_pid(stats);
	json_decref(stats);
	assert_true(pid > 0 && spare > 0 && spare != pid);
	/* Past its first second: a younger worker's death is throttled (a
	 * crash loop), and the slot waits rather than take the spare. */
	tu_sleep_ms(1200);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	for (int i = 0; i < 250; i++) {
		tu_sleep_ms(20);
		wait_ready_with_spare(f, &stats);
		if (slot_pid(stats, 0) != pid)
			break;
		json_decref(stats);
		stats = NULL;
	}
	assert_non_null(stats);
	/* The slot runs the former spare; a new spare took its place. */
	assert_int_equal(slot_pid(stats, 0), spare);
	spare2 = spare_pid(stats);
	assert_true(spare2 > 0 && spare2 != spare && spare2 != pid);
	assert_int_equal(json_integer_value(json_object_get(stats, "worker_restarts")), 1);
	json_decref(stats);
	order_completes(f, "S1", 995);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
	/* Nothing left behind: the spare stopped with the rest. */
	assert_int_equal(kill((pid_t)spare2, 0), -1);
}

static json_int_t pool_int(json_t *stats, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(stats, "pool"), key));
}

/* The parent pid of pid, from /proc. */
static long parent_of(json_int_t pid)
{
	char *path = tu_fmt("/proc/%lld/stat", (long long)pid), *text = tu_read_file(path);
	const char *p = text != NULL ? strrchr(text, ')') : NULL;
	long ppid = -1;

	if (p == NULL || sscanf(p + 2, "%*c %ld", &ppid) != 1)
		ppid = -1;
	free(text);
	free(path);
	return ppid;
}

/* Workers come from the fork server, yet are the supervisor's children
 * (forked with CLONE_PARENT): it reaps them and knows how they died. When
 * the fork server dies, workers are started with posix_spawn again. */
static void test_fork_server(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", NULL};
	json_t *stats = NULL;
	json_int_t fs, pid, pid2 = 0;

	start_sup(f, extra);
	wait_ready_with_spare(f, &stats);
	fs = pool_int(stats, "fork_server_pid");
	pid = slot_pid(stats, 0);
	json_decref(stats);
	assert_true(fs > 0 && pid > 0);
	assert_int_equal(parent_of(fs), f->sup.pid);
	assert_int_equal(parent_of(pid), f->sup.pid);
	assert_int_equal(parent_of(spare_pid_now(f)), f->sup.pid);
	order_completes(f, "F1", 995);

	assert_int_equal(kill((pid_t)fs, SIGKILL), 0);
	for (int i = 0; i < 250 && tu_count_in_file(f->sup.log, "fork server off") == 0; i++)
		tu_sleep_ms(20);
	assert_int_equal(tu_count_in_file(f->sup.log, "fork server off"), 1);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/stats", NULL, &stats), 200);
	assert_int_equal(pool_int(stats, "fork_server_pid"), 0);
	json_decref(stats);
	/* A worker killed now is replaced, and the new spare is spawned. */
	tu_sleep_ms(1200);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	for (int i = 0; i < 250 && (pid2 == 0 || pid2 == pid); i++) {
		tu_sleep_ms(20);
		wait_ready_with_spare(f, &stats);
		pid2 = slot_pid(stats, 0);
		json_decref(stats);
	}
	assert_true(pid2 > 0 && pid2 != pid);
	assert_true(tu_count_in_file(f->sup.log, "killed by signal 9") >= 1);
	order_completes(f, "F2", 990);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

/* SIGTERM waits for the attempt in flight (a stopped worker holds it),
 * refuses new starts with 503 meanwhile, and exits 0. */
static void test_sigterm_drains(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", "--shutdown-grace=20s", NULL};
	json_t *stats = NULL, *body = NULL;
	json_int_t pid = 0;
	int rc;

	start_sup(f, extra);
	for (int i = 0; i < 100 && pid <= 0; i++) {
		tu_http(&f->sup, "GET", "/v1/stats", NULL, &stats);
		const char *st = json_string_value(json_object_get(
		    json_array_get(json_object_get(json_object_get(stats, "pool"), "slots"), 0),
		    "state"));
		if (st && strcmp(st, "ready") == 0)
			pid = slot_pid(stats, 0);
		json_decref(stats);
		tu_sleep_ms(20);
	}
	assert_true(pid > 0);
	kill((pid_t)pid, SIGSTOP);
	assert_int_equal(tu_start_order(&f->sup, "T1", "123456", 10), 201);
	tu_sleep_ms(100);
	kill(f->sup.pid, SIGTERM);
	tu_sleep_ms(200);
	assert_int_equal(tu_wait_exit(f->sup.pid, 0), -1); /* still draining */
	assert_int_equal(tu_start_order(&f->sup, "T2", "123456", 1), 503);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/workflows/T1", NULL, &body), 200);
	assert_string_equal(json_string_value(json_object_get(body, "status")), "running");
	json_decref(body);
	kill((pid_t)pid, SIGCONT);
	rc = tu_wait_exit(f->sup.pid, 20000);
	f->sup.pid = 0;
	assert_int_equal(rc, 0);
	assert_int_equal(app_int(f, "SELECT stock FROM products WHERE product_id = '123456'"), 990);
	char *state_db = path_in(f, "state.db");
	assert_int_equal(tu_sql_int(state_db, "SELECT count(*) FROM workflows WHERE "
	                                      "workflow_id = 'T1' AND status = 'completed'"),
	                 1);
	assert_int_equal(tu_sql_int(state_db, "SELECT count(*) FROM workflows WHERE "
	                                      "workflow_id = 'T2'"),
	                 0);
	free(state_db);
}

int main(void)
{
	const char *env = getenv("IDEM_TEST_SEED");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_seed_scenario, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_many_workflows, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_supervisor_sigkill, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_idle_worker_sigkill, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_spare_takes_over, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_fork_server, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_sigterm_drains, setup, tu_fixture_teardown),
	};

	seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	fprintf(stderr, "test_integration: seed %llu (replay with IDEM_TEST_SEED=%llu)\n",
	        (unsigned long long)seed, (unsigned long long)seed);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
