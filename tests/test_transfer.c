/* test_transfer.c — the second app, apps/transfer/, run by the real
 * programs: a start refused for what its activities would refuse, and
 * the refusals of the world (InsufficientFunds, UnknownAccount,
 * TransferConflict) applying nothing; 60 transfers under kills and
 * injected errors each debited and credited once, with the money
 * conserved and a passing checker; the naive control experiment caught
 * with its exact counts; and a supervisor SIGKILL amid faults.
 * Random choices come from a seed printed at the start (IDEM_TEST_SEED).
 * The supervisor gets only --app=transfer: its workers must learn their
 * app from it (they did not, at first: every transfer failed with
 * UnknownActivity "debit"). */
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

#define NACCOUNTS 4
#define INITIAL 500 /* each account's balance in the faulted runs */

static uint64_t seed;

static int setup(void **state)
{
	return tu_fixture_setup(state, "transfer");
}

/* Starts (or restarts, on the same directory) a transfer supervisor with
 * extra flags. */
static void start(struct tu_fixture *f, const char *const *extra)
{
	const char *argv[32] = {"--app=transfer"};
	int n = 1;

	for (; extra[n - 1] != NULL && n < 31; n++)
		argv[n] = extra[n - 1];
	argv[n] = NULL;
	if (tu_sup_start(&f->sup, f->dir, argv) != 0)
		fail_msg("the supervisor did not start");
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

static void wait_all(struct tu_fixture *f)
{
	json_t *body = get(f, "/v1/wait?timeout=60");

	assert_false(json_is_true(json_object_get(body, "timed_out")));
	json_decref(body);
}

/* The checker's report (NEW); printed when it is not ok and should be. */
static json_t *check(struct tu_fixture *f, int want_ok)
{
	json_t *r = get(f, "/v1/check");

	if (json_is_true(json_object_get(r, "ok")) != want_ok) {
		char *text = json_dumps(r, JSON_INDENT(1));
		fprintf(stderr, "seed %llu: check report:\n%s\n", (unsigned long long)seed, text);
		free(text);
	}
	return r;
}

static long long count_of(json_t *report, const char *kind)
{
	return json_integer_value(json_object_get(json_object_get(report, "counts"), kind));
}

/* Every violation the report counts, of any kind. */
static long long violations(json_t *report)
{
	const char *kind;
	json_t *v;
	long long n = 0;

	json_object_foreach(json_object_get(report, "counts"), kind, v)
	{
		n += json_integer_value(v);
	}
	return n;
}

static long long total_of(json_t *report, const char *name)
{
	return json_integer_value(json_object_get(json_object_get(report, "totals"), name));
}

/* POSTs a transfer start; returns the status. A start that got no answer
 * (a supervisor being restarted) is asked again: a start is idempotent. */
static int start_transfer(struct tu_fixture *f, const char *id, const char *from, const char *to,
                          long amount)
{
	char *body = tu_fmt("{\"type\":\"transfer\",\"input\":{\"transfer_id\":\"%s\",\"from\":"
	                    "\"%s\",\"to\":\"%s\",\"amount\":%ld}}",
	                    id, from, to, amount);
	int status = -1;

	for (int k = 0;
	     k < 3 && (status = tu_http(&f->sup, "POST", "/v1/workflows", body, NULL)) < 0; k++)
		tu_sleep_ms(50);
	free(body);
	return status;
}

/* The workflow (NEW) of id. */
static json_t *workflow(struct tu_fixture *f, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s", id);
	json_t *wf = get(f, path);

	free(path);
	return wf;
}

static uint64_t next_rand(uint64_t *rng)
{
	*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
	return *rng >> 33;
}

/* Starts n seeded transfers T0..T(n-1) among accounts A.. (NACCOUNTS of
 * them) of 1..300 each; at start number cut (-1: never) SIGKILLs the
 * supervisor and starts it again with the same flags. */
static void start_transfers(struct tu_fixture *f, const char *const *extra, uint64_t rng, int n,
                            int cut)
{
	for (int i = 0; i < n; i++) {
		char id[16], from[2] = "A", to[2] = "A";
		int a = (int)(next_rand(&rng) % NACCOUNTS);

		if (i == cut) {
			fprintf(stderr, "seed %llu: SIGKILL of the supervisor at start %d of %d\n",
			        (unsigned long long)seed, cut, n);
			tu_sup_kill9(&f->sup);
			start(f, extra);
		}
		from[0] = (char)('A' + a);
		to[0] =
		    (char)('A' + (a + 1 + (int)(next_rand(&rng) % (NACCOUNTS - 1))) % NACCOUNTS);
		snprintf(id, sizeof(id), "T%d", i);
		assert_int_equal(start_transfer(f, id, from, to, 1 + (long)(next_rand(&rng) % 300)),
		                 201);
	}
}

/* What every faulted run ends with: all n closed, completed or refused
 * for want of funds at the debit; one debit and one credit per completed
 * transfer and none for a failed one; the money where it started; and a
 * checker that agrees. */
static void assert_sound(struct tu_fixture *f, int n)
{
	long long completed, failed;
	json_t *r;

	assert_int_equal(db_int(f, "state.db", "SELECT count(*) FROM workflows"), n);
	completed =
	    db_int(f, "state.db", "SELECT count(*) FROM workflows WHERE status = 'completed'");
	failed = db_int(f, "state.db",
	                "SELECT count(*) FROM workflows WHERE status = 'failed' AND error LIKE"
	                " 'activity debit (step 0) failed after % attempt%: InsufficientFunds: %'");
	fprintf(stderr, "seed %llu: %lld completed, %lld refused for funds, %lld failed attempts\n",
	        (unsigned long long)seed, completed, failed,
	        db_int(f, "state.db", "SELECT count(*) FROM events WHERE kind = 'failed'"));
	assert_int_equal(completed + failed, n);
	assert_int_equal(db_int(f, "app.db", "SELECT count(*) FROM debits"), completed);
	assert_int_equal(db_int(f, "app.db", "SELECT count(*) FROM credits"), completed);
	assert_int_equal(db_int(f, "app.db", "SELECT count(DISTINCT transfer_id) FROM credits"),
	                 completed);
	assert_int_equal(db_int(f, "app.db", "SELECT sum(balance) FROM accounts"),
	                 NACCOUNTS * INITIAL);
	assert_true(db_int(f, "app.db", "SELECT min(balance) FROM accounts") >= 0);
	r = check(f, 1);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(total_of(r, "debits"), completed);
	assert_int_equal(total_of(r, "credits"), completed);
	assert_int_equal(total_of(r, "transfers"), n);
	assert_int_equal(total_of(r, "accounts"), NACCOUNTS);
	json_decref(r);
}

/* ---- refusals -------------------------------------------------------------------- */

static void assert_failed_with(struct tu_fixture *f, const char *id, const char *type)
{
	json_t *wf = workflow(f, id);
	const char *error = json_string_value(json_object_get(wf, "error"));

	assert_string_equal(json_string_value(json_object_get(wf, "status")), "failed");
	assert_non_null(error);
	assert_non_null(strstr(error, type));
	json_decref(wf);
}

/* A start is refused (400, nothing created) for what the activities would
 * refuse as input; what the accounts refuse fails the debit at once and
 * applies nothing. */
static void test_refusals(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--transfer-accounts=A:100,B:0", NULL};
	json_t *out = NULL, *r;

	start(f, extra);
	assert_int_equal(start_transfer(f, "R1", "A", "A", 1), 400);
	assert_int_equal(start_transfer(f, "R1", "A", "B", 0), 400);
	assert_int_equal(start_transfer(f, "R1", "A", "B b", 1), 400);
	assert_int_equal(
	    tu_http(&f->sup, "POST", "/v1/workflows",
	            "{\"type\":\"transfer\",\"input\":{\"transfer_id\":\"R1\",\"from\":"
	            "\"A\",\"to\":\"B\",\"amount\":1,\"memo\":\"x\"}}",
	            &out),
	    400);
	assert_non_null(strstr(json_string_value(json_object_get(out, "error")), "input.memo"));
	json_decref(out);
	assert_int_equal(db_int(f, "state.db", "SELECT count(*) FROM workflows"), 0);

	assert_int_equal(start_transfer(f, "R2", "A", "B", 101), 201); /* A has 100 */
	assert_int_equal(start_transfer(f, "R3", "A", "Z", 1), 201);   /* no account Z */
	assert_int_equal(start_transfer(f, "R4", "A", "B", 100), 201);
	wait_all(f);
	/* R4 again under another workflow id: the transfer is R4's. */
	assert_int_equal(
	    tu_http(&f->sup, "POST", "/v1/workflows",
	            "{\"type\":\"transfer\",\"workflow_id\":\"R4b\",\"input\":{"
	            "\"transfer_id\":\"R4\",\"from\":\"B\",\"to\":\"A\",\"amount\":1}}",
	            NULL),
	    201);
	wait_all(f);
	assert_failed_with(f, "R2", ": InsufficientFunds: ");
	assert_failed_with(f, "R3", ": UnknownAccount: ");
	assert_failed_with(f, "R4b", ": TransferConflict: ");
	assert_int_equal(db_int(f, "app.db", "SELECT count(*) FROM debits"), 1);
	assert_int_equal(db_int(f, "app.db", "SELECT count(*) FROM credits"), 1);
	assert_int_equal(db_int(f, "app.db", "SELECT balance FROM accounts WHERE account_id = 'B'"),
	                 100);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/balance/A", NULL, &out), 200);
	assert_int_equal(json_integer_value(json_object_get(out, "balance")), 0);
	json_decref(out);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/balance/Z", NULL, NULL), 404);
	r = check(f, 1);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

/* ---- faults ------------------------------------------------------------------------- */

static void test_faulted_transfers(void **state)
{
	struct tu_fixture *f = *state;
	char *seedflag = tu_fmt("--fault-seed=%llu", (unsigned long long)seed);
	const char *extra[] = {"--transfer-accounts=A:500,B:500,C:500,D:500",
	                       seedflag,
	                       "--workers=3",
	                       "--retry-initial-interval=10ms",
	                       "--fault-kill-rate=0.3",
	                       "--fault-error-rate=0.2",
	                       NULL};

	json_t *r;

	start(f, extra);
	start_transfers(f, extra, seed, 60, -1);
	/* A check while transfers run finds nothing wrong: a debit whose
	 * credit is on its way is money in flight, not lost. */
	r = check(f, 0);
	fprintf(stderr, "seed %llu: a check amid the run saw %lld transfers running\n",
	        (unsigned long long)seed,
	        (long long)json_integer_value(json_object_get(
	            json_object_get(json_object_get(r, "totals"), "workflows"), "running")));
	assert_int_equal(violations(r), 0);
	json_decref(r);
	wait_all(f);
	assert_sound(f, 60);
	/* The faults happened: attempts were killed or failed and retried. */
	assert_true(db_int(f, "state.db", "SELECT count(*) FROM events WHERE kind = 'failed'") > 0);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
	free(seedflag);
}

/* Naive mode, each activity's first attempt killed after its commit: the
 * retry applies again, so each of the 5 transfers is debited twice and
 * credited twice — 10 duplicates. The balances of A and B no longer add
 * up from their transfers (each counted once), while the doubled debits
 * and credits cancel out in the total. */
static void test_naive_is_caught(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--transfer-accounts=A:1000,B:1000",
	                       "--activity-mode=naive",
	                       "--fault-seed=1",
	                       "--fault-kill-rate=1",
	                       "--fault-kill-points=after_commit",
	                       "--fault-max-attempt=1",
	                       "--retry-initial-interval=10ms",
	                       NULL};
	json_t *r;

	start(f, extra);
	for (int i = 0; i < 5; i++) {
		char id[8];

		snprintf(id, sizeof(id), "N%d", i);
		assert_int_equal(start_transfer(f, id, "A", "B", 10), 201);
	}
	wait_all(f);
	assert_int_equal(
	    db_int(f, "state.db", "SELECT count(*) FROM workflows WHERE status = 'completed'"), 5);
	assert_int_equal(db_int(f, "app.db", "SELECT count(*) FROM debits"), 10);
	assert_int_equal(db_int(f, "app.db", "SELECT count(*) FROM credits"), 10);
	assert_int_equal(db_int(f, "app.db", "SELECT balance FROM accounts WHERE account_id = 'A'"),
	                 900);
	r = check(f, 0);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_true(json_is_true(json_object_get(r, "quiescent")));
	assert_int_equal(count_of(r, "duplicated"), 10);
	assert_int_equal(count_of(r, "balance_mismatch"), 2);
	assert_int_equal(count_of(r, "not_conserved"), 0);
	assert_int_equal(count_of(r, "lost"), 0);
	assert_int_equal(count_of(r, "failed_with_effects"), 0);
	assert_int_equal(count_of(r, "credit_without_debit"), 0);
	assert_int_equal(count_of(r, "unexpected"), 0);
	assert_int_equal(count_of(r, "stuck"), 0);
	json_decref(r);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

/* The supervisor SIGKILLed at a seeded start, amid kills, errors and
 * asynchronous kills, and started again on the same files: every
 * transfer still ends once, and the checker holds. */
static void test_supervisor_sigkill_amid_faults(void **state)
{
	struct tu_fixture *f = *state;
	char *seedflag = tu_fmt("--fault-seed=%llu", (unsigned long long)seed);
	const char *extra[] = {"--transfer-accounts=A:500,B:500,C:500,D:500",
	                       seedflag,
	                       "--workers=3",
	                       "--retry-initial-interval=10ms",
	                       "--retry-maximum-interval=100ms",
	                       "--fault-kill-rate=0.3",
	                       "--fault-error-rate=0.2",
	                       "--fault-async-kill-rate=0.05",
	                       "--fault-async-kill-max-delay=5ms",
	                       NULL};
	uint64_t rng = seed ^ 0x9e3779b97f4a7c15ull;
	int cut = 10 + (int)(next_rand(&rng) % 40);

	start(f, extra);
	start_transfers(f, extra, rng, 60, cut);
	wait_all(f);
	assert_sound(f, 60);
	assert_int_equal(tu_sup_stop(&f->sup), 0);
	free(seedflag);
}

int main(void)
{
	const char *env = getenv("IDEM_TEST_SEED");
#define T(t) cmocka_unit_test_setup_teardown(t, setup, tu_fixture_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_refusals),
	    T(test_faulted_transfers),
	    T(test_naive_is_caught),
	    T(test_supervisor_sigkill_amid_faults),
	};

	seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	fprintf(stderr, "test_transfer: seed %llu (replay with IDEM_TEST_SEED=%llu)\n",
	        (unsigned long long)seed, (unsigned long long)seed);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
