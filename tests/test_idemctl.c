/* test_idemctl.c — idemctl against a real idem-supervisor: every command's
 * output and exit code, the errors a person sees (refused requests, usage
 * errors, an unreachable supervisor), and, while the workers are stopped,
 * a wait that times out and a check that reports a running workflow. The
 * tests share one supervisor and run in order. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "exitcodes.h"
#include "testutil.h"

#define RUN_TIMEOUT_MS 60000

static char *dir;
static struct tu_sup sup;
static pid_t stopped[2]; /* workers a test SIGSTOPped; resumed whatever happens */

/* What one idemctl run printed. */
struct run {
	int rc;
	char *out;
	char *err;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs "idemctl --env /dev/null --socket SOCK ARGS" through sh (args is a
 * shell fragment) and captures stdout and stderr. */
static struct run ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct run ctl(const char *fmt, ...)
{
	struct run r = {0};
	char *args = NULL, *errpath = tu_fmt("%s/idemctl.err", dir), *cmd;
	va_list ap;

	va_start(ap, fmt);
	assert_true(vasprintf(&args, fmt, ap) >= 0);
	va_end(ap);
	cmd = tu_fmt("exec '%s' --env /dev/null --socket '%s' %s 2>'%s'", tu_bin("idemctl"),
	             sup.sock, args, errpath);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	r.rc = tu_run(argv, NULL, RUN_TIMEOUT_MS, &r.out);
	r.err = tu_read_file(errpath);
	if (r.err == NULL)
		r.err = strdup("");
	free(args);
	free(errpath);
	free(cmd);
	return r;
}

/* Asserts rc, and that stdout (or stderr) holds each needle. */
static void expect(const struct run *r, int rc, const char *where, const char *needle)
{
	const char *text = strcmp(where, "err") == 0 ? r->err : r->out;

	if (r->rc != rc)
		fail_msg("exit code %d, expected %d\nstdout: %s\nstderr: %s", r->rc, rc, r->out,
		         r->err);
	if (needle != NULL && strstr(text, needle) == NULL)
		fail_msg("%s does not contain \"%s\"\nstdout: %s\nstderr: %s", where, needle,
		         r->out, r->err);
}

/* Runs and checks one command in one statement. */
static void check(int rc, const char *where, const char *needle, const char *args)
{
	struct run r = ctl("%s", args);

	expect(&r, rc, where, needle);
	run_free(&r);
}

static void resume_workers(void)
{
	for (int i = 0; i < 2; i++)
		if (stopped[i] > 0)
			kill(stopped[i], SIGCONT);
	memset(stopped, 0, sizeof(stopped));
}

static int group_setup(void **state)
{
	const char *extra[] = {"--workers=2", "--log-level=warn", NULL};

	dir = tu_tmpdir("idemctl");
	if (dir == NULL || tu_sup_start(&sup, dir, extra) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	resume_workers();
	tu_sup_free(&sup);
	tu_rmrf(dir);
	free(dir);
	return 0;
}

/* ---- the seed's order, start to finish ------------------------------------ */

static void test_start_and_wait(void **state)
{
	check(0, "out", "started A12 (namespace default)",
	      "start --order-id A12 --product-id 123456 --quantity 999");
	check(0, "out", "A12 completed", "wait A12");
	check(0, "out", "final_stock=1001", "wait A12 --timeout 5");
	check(0, "out", "123456: 1001", "stock get 123456");
}

static void test_start_is_idempotent(void **state)
{
	struct run r = ctl("start --order-id A12 --product-id 123456 --quantity 999");

	expect(&r, 0, "out", "exists A12 (status completed): same input, not started again");
	run_free(&r);
	r = ctl("start --order-id A12 --product-id 123456 --quantity 5");
	expect(&r, IDEM_EXIT_FAIL, "err",
	       "idemctl: start: input field \"quantity\" differs from the existing workflow's");
	assert_string_equal(r.out, "");
	run_free(&r);
	check(0, "out", "123456: 1001", "stock get 123456");
}

static void test_show(void **state)
{
	struct run r = ctl("show A12");

	expect(&r, 0, "out", "workflow   A12 (namespace default, type inventory)");
	expect(&r, 0, "out", "status     completed");
	expect(&r, 0, "out", "\"final_stock\":1001");
	/* The timeline: each step, when it was scheduled, a row per attempt. */
	expect(&r, 0, "out", "scheduled: order_id=A12 product_id=123456 quantity=999\n");
	expect(&r, 0, "out", "  ATTEMPT  AT ");
	expect(&r, 0, "out", " completed ");
	expect(&r, 0, "out", "stock=1\n");
	expect(&r, 0, "out", "supplier_order_id=SO-1 stock=1001");
	expect(&r, 0, "out", "workflow_completed");
	expect(&r, 0, "out", "step 0 update_inventory: completed after 1 attempt\n");
	expect(&r, 0, "out", "step 1 supplier_order: completed after 1 attempt\n");
	run_free(&r);
	check(0, "out", "status     completed", "get A12");
}

static void test_list(void **state)
{
	struct run r = ctl("list --status completed");

	expect(&r, 0, "out", "WORKFLOW");
	expect(&r, 0, "out", "\nA12 ");
	run_free(&r);
	check(0, "out", "no workflows", "list --status failed");
	check(0, "out", "\"workflow_id\":\"A12\"", "--json list --limit 1");
}

static void test_json_stats(void **state)
{
	struct run r = ctl("--json stats");
	json_error_t jerr;
	json_t *doc;

	expect(&r, 0, "out", NULL);
	doc = json_loads(r.out, 0, &jerr);
	if (doc == NULL)
		fail_msg("--json stats is not one JSON document (%s): %s", jerr.text, r.out);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(doc, "workflows"), "completed")), 1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "pool"), "slots")),
	                 2);
	json_decref(doc);
	run_free(&r);
	check(0, "out", "workflows        0 running, 1 completed, 0 failed", "stats");
}

static void test_stock_set(void **state)
{
	check(0, "out", "123456: 1001 -> 50 (operator)", "stock set 123456 50");
	check(0, "out", "123456: 50\n", "stock get 123456");
	check(0, "out", "123456: 50 -> 60 (recount)", "stock set 123456 60 --reason recount");
	check(IDEM_EXIT_FAIL, "err", "idemctl: unknown product \"nope\"", "stock get nope");
	check(IDEM_EXIT_USAGE, "err", "idemctl: stock set: N -1 is not a whole number >= 0",
	      "stock set 123456 -1");
	check(IDEM_EXIT_USAGE, "err", "idemctl: stock set: N 12x is not a whole number >= 0",
	      "stock set 123456 12x");
	check(IDEM_EXIT_USAGE, "err",
	      "idemctl: stock set: N 1000000000001 is too large (at most 1000000000000)",
	      "stock set 123456 1000000000001");
	check(0, "out", "123456: 60\n", "stock get 123456"); /* none of them wrote */
}

/* ---- the checker ------------------------------------------------------------- */

/* "--database DIR/app.db ..." for check --offline: the test's files. */
static char *db_flags(const char *app)
{
	return tu_fmt("--database '%s' --state-database '%s/state.db' "
	              "--supplier-database '%s/supplier.db'",
	              app, dir, dir);
}

static void test_check(void **state)
{
	char *app = tu_fmt("%s/app.db", dir), *none = tu_fmt("%s/none.db", dir);
	char *flags = db_flags(app), *missing = db_flags(none);
	char *args = tu_fmt("check --offline %s", flags);
	struct run r;
	json_t *doc;

	check(0, "out",
	      "check: OK — 1 workflows (1 completed, 0 failed), 1 orders, 1 restocks, "
	      "1 supplier orders; no violation\n",
	      args);
	free(args);
	args = tu_fmt("--json check --offline %s", flags);
	r = ctl("%s", args);
	expect(&r, 0, "out", NULL);
	doc = json_loads(r.out, 0, NULL);
	assert_true(json_is_true(json_object_get(doc, "ok")));
	json_decref(doc);
	run_free(&r);
	free(args);
	/* A missing database is named, with its key, and not created. */
	args = tu_fmt("check --offline %s", missing);
	r = ctl("%s", args);
	expect(&r, IDEM_EXIT_USAGE, "err", none);
	expect(&r, IDEM_EXIT_USAGE, "err", "is DATABASE, or its flag --database");
	assert_int_equal(access(none, F_OK), -1);
	run_free(&r);
	check(IDEM_EXIT_USAGE, "err", "check: unknown option \"--bogus\"", "check --bogus");
	/* Through the supervisor: GET /v1/check. */
	check(0, "out", "check: OK — 1 workflows (1 completed, 0 failed)", "check");
	free(args);
	free(flags);
	free(missing);
	free(none);
	free(app);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_refused(void **state)
{
	struct run r = ctl("wait NOPE");

	expect(&r, IDEM_EXIT_FAIL, "err", "unknown workflow \"NOPE\"");
	assert_string_equal(r.out, "");
	run_free(&r);
	check(IDEM_EXIT_FAIL, "err", "unknown workflow", "show NOPE");
}

static void test_usage_errors(void **state)
{
	check(IDEM_EXIT_USAGE, "err",
	      "idemctl: unknown command \"strat\" (commands: start, show, get, list, wait, stats, "
	      "top, stock, check, panel, faults)",
	      "strat");
	check(IDEM_EXIT_USAGE, "err", "idemctl: panel: which panel? idemctl panel N", "panel");
	check(IDEM_EXIT_USAGE, "err", "idemctl: panel: N x is not", "panel x");
	/* The inventory's panels are its own endpoints, no command to run. */
	check(
	    IDEM_EXIT_USAGE, "err",
	    "idemctl: panel: the app inventory has no panel 0 made by a command (it has 2 panels)",
	    "panel 0 --offline");
	check(IDEM_EXIT_USAGE, "err", "idemctl: start: --quantity abc is not a positive integer",
	      "start --order-id X --product-id 123456 --quantity abc");
	check(IDEM_EXIT_USAGE, "err", "--order-id ID is required",
	      "start --product-id 123456 --quantity 1");
	check(IDEM_EXIT_USAGE, "err", "unknown option \"--bogus\"", "start --bogus");
	check(IDEM_EXIT_USAGE, "err", "a workflow ID (or --all) is required", "wait");
	check(IDEM_EXIT_USAGE, "err", "--status done is not a workflow status",
	      "list --status done");
	check(IDEM_EXIT_USAGE, "err", "no command given", "");
	check(IDEM_EXIT_OK, "out", "Exit codes:", "--help");
	check(IDEM_EXIT_OK, "out", "6  check: not quiescent", "--help");
	/* Nothing was started by any of them. */
	check(0, "out", "no workflows", "list --status running");
}

static void test_unreachable(void **state)
{
	char *args = tu_fmt("--socket '%s/none.sock' stats", dir);
	char *path = tu_fmt("%s/none.sock", dir);
	struct run r = ctl("%s", args);

	expect(&r, IDEM_EXIT_USAGE, "err", path);
	expect(&r, IDEM_EXIT_USAGE, "err", "start idem-supervisor, or check SOCKET");
	assert_string_equal(r.out, "");
	run_free(&r);
	free(args);
	free(path);
}

static void test_unknown_product_fails(void **state)
{
	struct run r;

	check(0, "out", "started B7", "start --order-id B7 --product-id 999999 --quantity 1");
	r = ctl("wait B7");
	expect(&r, IDEM_EXIT_FAIL, "out", "B7 failed");
	expect(&r, IDEM_EXIT_FAIL, "out", "UnknownProduct");
	run_free(&r);
	r = ctl("show B7");
	expect(&r, 0, "out", "unknown product \"999999\"");
	expect(&r, 0, "out", "step 0 update_inventory: failed after 1 attempt");
	run_free(&r);
	/* --all waits for none to be running; a failed workflow does not count. */
	check(0, "out", "no workflow running (1 completed, 1 failed)", "wait --all");
}

/* ---- namespaces ---------------------------------------------------------------- */

static void test_namespace(void **state)
{
	/* The order id differs: orders are keyed by order_id alone (see the
	 * report), the workflow id is what a namespace scopes. */
	check(0, "out", "started A12 (namespace other)",
	      "start --workflow-id A12 --order-id N1 --product-id 123456 --quantity 1 "
	      "--namespace other");
	check(0, "out", "A12 completed", "wait A12 --namespace other");
	check(0, "out", "\"order_id\":\"N1\"", "show A12 --namespace other");
	check(0, "out", "\"quantity\":999,", "show A12");
	check(0, "out", "other ", "list --namespace other --status completed");
	check(IDEM_EXIT_FAIL, "err", "in namespace \"other\"", "get B7 --namespace other");
}

/* ---- a wait that times out -------------------------------------------------------- */

/* The workers, from --json stats (a slot shows pid 0 while its worker is
 * forked: ask again until both have one). */
static void worker_pids(pid_t pids[2])
{
	for (int tries = 0;; tries++) {
		struct run r = ctl("--json stats");
		json_t *doc = json_loads(r.out, 0, NULL);
		json_t *slots = json_object_get(json_object_get(doc, "pool"), "slots");

		assert_int_equal(json_array_size(slots), 2);
		for (size_t i = 0; i < 2; i++)
			pids[i] = (pid_t)json_integer_value(
			    json_object_get(json_array_get(slots, i), "pid"));
		json_decref(doc);
		run_free(&r);
		if ((pids[0] > 0 && pids[1] > 0) || tries == 250)
			break;
		tu_sleep_ms(20);
	}
	assert_true(pids[0] > 0 && pids[1] > 0);
}

/* C1 runs (its worker is stopped): check reports it as running, not as a
 * violation, and exits 6 (not quiescent), also after --wait times out. */
static void check_while_running(void)
{
	struct run r = ctl("check");
	json_t *doc;

	expect(&r, IDEM_EXIT_NOT_QUIESCENT, "out",
	       "  running  workflow default/C1 is still running\n");
	expect(&r, IDEM_EXIT_NOT_QUIESCENT, "out",
	       "check: NOT QUIESCENT — 1 workflow still running (of 4), no violation so far");
	assert_null(strstr(r.out, "stuck  "));
	run_free(&r);
	r = ctl("check --wait 300ms");
	expect(&r, IDEM_EXIT_NOT_QUIESCENT, "err",
	       "idemctl: check: timed out after 300ms with 1 workflow still running; checking "
	       "anyway");
	expect(&r, IDEM_EXIT_NOT_QUIESCENT, "out",
	       "check: NOT QUIESCENT — 1 workflow still running");
	run_free(&r);
	r = ctl("--json check");
	expect(&r, IDEM_EXIT_NOT_QUIESCENT, "out", NULL);
	doc = json_loads(r.out, 0, NULL);
	assert_true(json_is_false(json_object_get(doc, "ok")));
	assert_true(json_is_false(json_object_get(doc, "quiescent")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(doc, "counts"), "stuck")), 0);
	json_decref(doc);
	run_free(&r);
	check(IDEM_EXIT_USAGE, "err", "check: --wait needs the supervisor",
	      "check --offline --wait 1");
	check(IDEM_EXIT_USAGE, "err", "check: --wait soon is not a duration", "check --wait soon");
}

static void test_wait_timeout(void **state)
{
	pid_t pids[2];
	struct run r;

	worker_pids(pids);
	for (int i = 0; i < 2; i++) {
		stopped[i] = pids[i];
		assert_int_equal(kill(pids[i], SIGSTOP), 0);
	}
	check(0, "out", "started C1", "start --order-id C1 --product-id 123456 --quantity 1");
	r = ctl("wait C1 --timeout 300ms");
	expect(&r, IDEM_EXIT_TIMEOUT, "err", "idemctl: timed out after 300ms: C1 is still running");
	assert_string_equal(r.out, "");
	run_free(&r);
	check(IDEM_EXIT_TIMEOUT, "err", "timed out after 200ms: 1 workflow is still running",
	      "wait --all --timeout 0.2");
	check(0, "out", "step 0 update_inventory: running (attempt 1)", "show C1");
	check(0, "out", "C1 step 0 update_inventory attempt 1", "stats");
	check_while_running();
	/* start --wait times out as wait does, after saying it started. */
	r = ctl("start --order-id C2 --product-id 123456 --quantity 1 --wait 300ms");
	expect(&r, IDEM_EXIT_TIMEOUT, "err", "timed out after 300ms: C2 is still running");
	expect(&r, IDEM_EXIT_TIMEOUT, "out", "started C2 (namespace default)");
	run_free(&r);
	resume_workers();
	/* --wait waits until none runs, then checks: the whole run adds up. */
	check(0, "out", "check: OK — 5 workflows (4 completed, 1 failed)", "check --wait 30");
	check(0, "out", "C1 completed", "wait C1");
	check(0, "out", "C2 completed", "wait C2");
	check(0, "out", "123456: 57\n", "stock get 123456");
}

/* start --wait: one request that starts the workflow and answers when it
 * closes, with wait's output and exit codes. */
static void test_start_wait(void **state)
{
	struct run r = ctl("start --order-id W1 --product-id 123456 --quantity 1 --wait 30");

	expect(&r, 0, "out", "started W1 (namespace default)");
	expect(&r, 0, "out", "W1 completed");
	run_free(&r);
	r = ctl("start --order-id W1 --product-id 123456 --quantity 1 --wait 30");
	expect(&r, 0, "out", "exists W1 (namespace default)");
	expect(&r, 0, "out", "W1 completed");
	run_free(&r);
	r = ctl("start --order-id W2 --product-id 999999 --quantity 1 --wait 30");
	expect(&r, IDEM_EXIT_FAIL, "out", "W2 failed");
	expect(&r, IDEM_EXIT_FAIL, "out", "UnknownProduct");
	run_free(&r);
	check(IDEM_EXIT_USAGE, "err", "start: --wait soon is not a duration",
	      "start --order-id W3 --product-id 123456 --quantity 1 --wait soon");
}

/* ---- top ------------------------------------------------------------------------------ */

static int occurrences(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_top(void **state)
{
	struct run r = ctl("top --count 2 --interval 0.2");
	pid_t pids[2];

	worker_pids(pids);
	/* The PID column is as wide as the widest pid: match the words. */
	expect(&r, 0, "out", "SLOT  PID");
	expect(&r, 0, "out", "STATE  RESTARTS");
	/* Two snapshots (stdout is not a terminal: no screen clearing), each
	 * with both slots, the totals and the rates. */
	assert_null(strstr(r.out, "\033["));
	assert_int_equal(occurrences(r.out, "idem top  "), 2);
	assert_int_equal(occurrences(r.out, "\nSLOT  PID"), 2);
	assert_int_equal(occurrences(r.out, "\nworkflows  0 running, "), 2);
	assert_int_equal(occurrences(r.out, "(since start)\n"), 1);
	assert_int_equal(occurrences(r.out, "(last "), 1);
	for (int i = 0; i < 2; i++) {
		char *row = tu_fmt("\n%d     %ld ", i, (long)pids[i]);

		assert_int_equal(occurrences(r.out, row), 2);
		free(row);
	}
	run_free(&r);
	r = ctl("stats --watch --count 1 --interval 0.1");
	expect(&r, 0, "out", "spawns");
	assert_int_equal(occurrences(r.out, "idem top  "), 1);
	run_free(&r);
	check(IDEM_EXIT_USAGE, "err", "top: --interval 0 is not a duration", "top --interval 0");
	check(IDEM_EXIT_USAGE, "err", "top: --count x is not a positive integer", "top --count x");
	check(IDEM_EXIT_USAGE, "err", "--interval and --count go with --watch", "stats --count 2");
}

static void test_stop(void **state)
{
	char *app = tu_fmt("%s/app.db", dir), *flags = db_flags(app);
	char *args = tu_fmt("check --offline %s", flags);

	assert_int_equal(tu_sup_stop(&sup), 0);
	check(IDEM_EXIT_USAGE, "err", sup.sock, "stats");
	check(IDEM_EXIT_USAGE, "err", sup.sock, "check");
	/* Everything above, adjustments and the failed B7 and W2 included,
	 * adds up. */
	check(0, "out",
	      "check: OK — 7 workflows (5 completed, 2 failed), 5 orders, 1 restocks, "
	      "1 supplier orders; no violation\n",
	      args);
	free(args);
	free(flags);
	free(app);
}

/* ---- the generic start: --type and --input ------------------------------------ */

/* test_stop stopped the supervisor: these run on another, started on the
 * same databases. */
static void test_start_input(void **state)
{
	const char *extra[] = {"--workers=2", "--log-level=warn", NULL};
	struct run r;

	assert_int_equal(tu_sup_start(&sup, dir, extra), 0);
	check(0, "out", "started G1 (namespace default)\n",
	      "start --type inventory --input "
	      "'{\"order_id\":\"G1\",\"product_id\":\"123456\",\"quantity\":1}'");
	check(0, "out", "G1 completed", "wait G1");
	/* The same input again: the same workflow, whichever form gave it. */
	check(0, "out", "exists G1 (status completed): same input, not started again",
	      "start --order-id G1 --product-id 123456 --quantity 1");
	r = ctl("--json get G1");
	expect(&r, 0, "out",
	       "\"input\":{\"order_id\":\"G1\",\"product_id\":\"123456\",\"quantity\":1,");
	run_free(&r);
}

static void test_start_input_bad_json(void **state)
{
	struct run r = ctl("start --input '{\"order_id\":\"G2\",'");

	expect(&r, IDEM_EXIT_USAGE, "err", "idemctl: start: --input is not JSON: ");
	expect(&r, IDEM_EXIT_USAGE, "err", "(line 1, column 17)");
	assert_string_equal(r.out, "");
	run_free(&r);
	check(IDEM_EXIT_USAGE, "err", "start: --input [1] is not a JSON object",
	      "start --input '[1]'");
	/* Nothing was started. */
	check(IDEM_EXIT_FAIL, "err", "unknown workflow \"G2\"", "get G2");
}

static void test_start_unknown_type(void **state)
{
	struct run r = ctl("start --type nope --input "
	                   "'{\"order_id\":\"G3\",\"product_id\":\"123456\",\"quantity\":1}'");

	expect(&r, IDEM_EXIT_FAIL, "err",
	       "idemctl: unknown workflow type \"nope\" (known: inventory)\n");
	assert_string_equal(r.out, "");
	run_free(&r);
	check(IDEM_EXIT_FAIL, "err", "unknown workflow \"G3\"", "get G3");
}

/* A flag overrides --input's field: the workflow and its activity get it. */
static void test_start_input_override(void **state)
{
	struct run r;

	check(0, "out", "started G4 (namespace default)",
	      "start --input '{\"order_id\":\"G4\",\"product_id\":\"123456\",\"quantity\":1}' "
	      "--quantity 2");
	check(0, "out", "G4 completed", "wait G4");
	r = ctl("show G4");
	expect(&r, 0, "out", "scheduled: order_id=G4 product_id=123456 quantity=2\n");
	run_free(&r);
	/* Without --input every flag is still required. */
	check(IDEM_EXIT_USAGE, "err", "start: --quantity N is required",
	      "start --order-id G5 --product-id 123456");
	assert_int_equal(tu_sup_stop(&sup), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_start_and_wait),
	    cmocka_unit_test(test_start_is_idempotent),
	    cmocka_unit_test(test_show),
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_json_stats),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_stock_set),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_unknown_product_fails),
	    cmocka_unit_test(test_namespace),
	    cmocka_unit_test(test_wait_timeout),
	    cmocka_unit_test(test_top),
	    cmocka_unit_test(test_start_wait),
	    cmocka_unit_test(test_stop),
	    cmocka_unit_test(test_start_input),
	    cmocka_unit_test(test_start_input_bad_json),
	    cmocka_unit_test(test_start_unknown_type),
	    cmocka_unit_test(test_start_input_override),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
