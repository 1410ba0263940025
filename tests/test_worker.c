/* test_worker.c — the real idem-worker, started like idem-supervisor's
 * pool's posix_spawn does (one end of a socketpair as descriptor 3) against a
 * temporary app DB seeded 123456:1000 and a real idem-supplier, driven
 * with frames: the ready frame, a plain attempt, each fault plan carried
 * out (kills at every crash point, errors, a delay, supplier faults), the
 * heartbeat frame of supplier_order and the resume from it, bad fault
 * objects, a frame that is not JSON, and EOF. Each child only exec()s or
 * _exit()s; the parent asserts. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "appdb.h"
#include "clock.h"
#include "exitcodes.h"
#include "forkserver.h"
#include "frame.h"
#include "msg.h"
#include "testutil.h"

#define ERRLEN 512
#define CHANNEL_FD 3
#define READ_TIMEOUT_S 20

static const struct name_value initial_stock[] = {{"123456", 1000}};

struct fx {
	char *dir;
	char *app_db;
	char *sup_sock;
	char *sup_db;
	char *env_file;
	char *sup_log;
	char *worker_log;
	pid_t sup_pid;
	pid_t pid; /* the worker, -1 when none */
	int fd;    /* our end of its channel, -1 when none */
	struct frame_decoder d;
};

/* ---- processes ---- */

static void supplier_start(struct fx *f)
{
	char bin[4096];
	char *const argv[] = {bin,         "--env",
	                      f->env_file, "--supplier-socket",
	                      f->sup_sock, "--supplier-database",
	                      f->sup_db,   NULL};

	snprintf(bin, sizeof(bin), "%s", tu_bin("idem-supplier"));
	f->sup_pid = tu_spawn(argv, NULL, f->sup_log);
	assert_true(f->sup_pid > 0);
	if (tu_wait_for_socket(f->sup_sock, 10000) != 0)
		fail_msg("idem-supplier did not start; see %s", f->sup_log);
}

/* The child of worker_start: the log as stdout and stderr, the channel
 * as descriptor 3 without CLOEXEC, as spawn() in supervisor/spawn.c does). */
static _Noreturn void exec_worker(struct fx *f, char *const argv[], int channel)
{
	int log = open(f->worker_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
		_exit(126);
	if (channel == CHANNEL_FD)
		fcntl(CHANNEL_FD, F_SETFD, 0);
	else if (dup2(channel, CHANNEL_FD) < 0)
		_exit(126);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	_exit(127);
}

static json_t *read_msg(struct fx *f);

/* Starts a worker and checks its ready frame. */
static void worker_start(struct fx *f)
{
	char bin[4096];
	char *const argv[] = {
	    bin,       "--channel-fd=3",    "--env",     f->env_file,   "--database",
	    f->app_db, "--supplier-socket", f->sup_sock, "--log-level", "info",
	    NULL};
	struct timeval tv = {.tv_sec = READ_TIMEOUT_S};
	struct msg_ready r;
	char err[ERRLEN] = "";
	json_t *ready = NULL; /* new */
	int sv[2];

	snprintf(bin, sizeof(bin), "%s", tu_bin("idem-worker"));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0)
		exec_worker(f, argv, sv[1]);
	close(sv[1]);
	f->fd = sv[0];
	/* A worker that hangs fails the test instead of blocking it. */
	assert_int_equal(setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	frame_decoder_init(&f->d, FRAME_DEFAULT_MAX);
	ready = read_msg(f);
	if (msg_parse_ready(ready, &r, err, sizeof(err)) != 0)
		fail_msg("the first frame is not ready: %s", err);
	assert_int_equal(r.pid, f->pid);
	json_decref(ready);
}

/* Waits for the worker to end; returns its wait status. */
static int worker_wait(struct fx *f)
{
	int64_t deadline = clock_mono_ms() + 10000;
	int st = 0;

	for (;;) {
		pid_t r = waitpid(f->pid, &st, WNOHANG);
		if (r == f->pid)
			break;
		if (r < 0 && errno != EINTR)
			fail_msg("waitpid %d: %s", (int)f->pid, strerror(errno));
		if (clock_mono_ms() >= deadline)
			fail_msg("the worker %d did not exit; see %s", (int)f->pid, f->worker_log);
		tu_sleep_ms(10);
	}
	f->pid = -1;
	close(f->fd);
	f->fd = -1;
	frame_decoder_free(&f->d);
	return st;
}

static void assert_killed(struct fx *f)
{
	int st = worker_wait(f);

	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("the worker was not killed by SIGKILL (status 0x%x); see %s", st,
		         f->worker_log);
}

static void assert_exited(struct fx *f, int code)
{
	int st = worker_wait(f);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != code)
		fail_msg("the worker did not exit %d (status 0x%x); see %s", code, st,
		         f->worker_log);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[ERRLEN] = "";
	struct appconn *db = NULL;

	assert_non_null(f);
	f->dir = tu_tmpdir("worker");
	assert_non_null(f->dir);
	f->app_db = tu_fmt("%s/data/inventory.db", f->dir);
	f->sup_sock = tu_fmt("%s/supplier.sock", f->dir);
	f->sup_db = tu_fmt("%s/supplier.db", f->dir);
	f->env_file = tu_fmt("%s/test.env", f->dir);
	f->sup_log = tu_fmt("%s/supplier.log", f->dir);
	f->worker_log = tu_fmt("%s/worker.log", f->dir);
	f->pid = -1;
	f->fd = -1;
	assert_int_equal(tu_write_file(f->env_file, "\n"), 0);
	/* Seeded, then closed: no connection crosses the forks. */
	if (appdb_open(f->app_db, DB_SYNC_NORMAL, initial_stock, 1, &db, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	appconn_close(db);
	supplier_start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		worker_wait(f);
	}
	if (f->sup_pid > 0)
		tu_stop_child(f->sup_pid, 5000);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->app_db);
	free(f->sup_sock);
	free(f->sup_db);
	free(f->env_file);
	free(f->sup_log);
	free(f->worker_log);
	free(f);
	return 0;
}

/* ---- frames ---- */

/* The next frame (new ref); fails the test on EOF or error. */
static json_t *read_msg(struct fx *f)
{
	char err[ERRLEN] = "";
	json_t *msg = NULL;
	int r = frame_read_fd(f->fd, &f->d, &msg, err, sizeof(err));

	if (r == 0)
		fail_msg("the worker closed the channel; see %s", f->worker_log);
	if (r < 0)
		fail_msg("reading from the worker: %s; see %s", err, f->worker_log);
	return msg;
}

/* The channel ends without another frame. */
static void assert_no_reply(struct fx *f)
{
	char err[ERRLEN] = "";
	json_t *msg = NULL;
	int r = frame_read_fd(f->fd, &f->d, &msg, err, sizeof(err));

	if (r != 0)
		fail_msg("expected EOF, got %s", r > 0 ? "a frame" : err);
}

/* Sends a task of workflow ns/A12 (fault and heartbeat borrowed, may be
 * NULL). */
static void send_task(struct fx *f, json_int_t task_id, const char *activity, json_t *input,
                      json_int_t attempt, json_t *fault, json_t *heartbeat)
{
	struct msg_task t = {.task_id = task_id,
	                     .namespace_ = "ns",
	                     .workflow_id = "A12",
	                     .step = activity[0] == 's' ? 1 : 0,
	                     .attempt = attempt,
	                     .activity = activity,
	                     .input = input,
	                     .heartbeat = heartbeat,
	                     .fault = fault};
	json_t *msg = msg_task_new(&t); /* new */
	char err[ERRLEN] = "";

	assert_non_null(msg);
	if (frame_write_fd(f->fd, msg, FRAME_DEFAULT_MAX, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	json_decref(msg);
}

/* Reads a result frame for task_id; *r borrows from the returned message
 * (new ref). */
static json_t *read_result(struct fx *f, json_int_t task_id, struct msg_result *r)
{
	char err[ERRLEN] = "";
	json_t *msg = read_msg(f);

	if (msg_parse_result(msg, r, err, sizeof(err)) != 0)
		fail_msg("not a result: %s", err);
	assert_int_equal(r->task_id, task_id);
	return msg;
}

/* A result that must be ok: returns the message (new ref), *result
 * borrowed from it. */
static json_t *expect_ok(struct fx *f, json_int_t task_id, json_t **result)
{
	struct msg_result r;
	json_t *msg = read_result(f, task_id, &r);

	if (!r.ok)
		fail_msg("task %lld failed: %s: %s", (long long)task_id, r.error_type,
		         r.error_message);
	*result = r.result;
	return msg;
}

/* A result that must be the error type; message must contain frag. */
static void expect_error(struct fx *f, json_int_t task_id, const char *type, int retryable,
                         const char *frag)
{
	struct msg_result r;
	json_t *msg = read_result(f, task_id, &r);

	if (r.ok)
		fail_msg("task %lld succeeded, expected %s", (long long)task_id, type);
	assert_string_equal(r.error_type, type);
	assert_int_equal(r.retryable, retryable);
	if (strstr(r.error_message, frag) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", r.error_message, frag);
	json_decref(msg);
}

static json_t *fault(const char *kind, const char *key, const char *value)
{
	json_t *j = json_pack("{s:s, s:s}", "kind", kind, key, value);

	assert_non_null(j);
	return j;
}

static json_t *order_input(void)
{
	return json_pack("{s:s, s:s, s:I}", "order_id", "A12", "product_id", "123456", "quantity",
	                 (json_int_t)999);
}

static json_t *restock_input(const char *key)
{
	return json_pack("{s:s, s:I, s:s}", "product_id", "123456", "quantity", (json_int_t)1000,
	                 "key", key);
}

/* ---- observations ---- */

static long long sql_int(struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_open(f->app_db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_close(db);
	return v;
}

static long long stock(struct fx *f)
{
	return sql_int(f, "SELECT stock FROM products WHERE product_id = '123456'");
}

static long long orders(struct fx *f)
{
	return sql_int(f, "SELECT count(*) FROM orders");
}

static void assert_log_contains(struct fx *f, const char *frag)
{
	char *log = tu_read_file(f->worker_log);

	if (log == NULL || strstr(log, frag) == NULL)
		fail_msg("the worker log does not contain \"%s\":\n%s", frag, log ? log : "");
	free(log);
}

static json_int_t int_of(const json_t *doc, const char *name)
{
	const json_t *v = json_object_get(doc, name);

	if (!json_is_integer(v))
		fail_msg("no integer \"%s\"", name);
	return json_integer_value(v);
}

static const char *str_of(const json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));

	if (v == NULL)
		fail_msg("no string \"%s\"", name);
	return v;
}

/* ---- tests ---- */

static void test_ready_then_result(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input();
	json_t *msg = NULL, *result = NULL;

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, NULL, NULL);
	msg = expect_ok(f, 1, &result);
	assert_int_equal(int_of(result, "stock"), 1);
	assert_true(json_is_false(json_object_get(result, "replayed")));
	assert_int_equal(stock(f), 1);
	assert_int_equal(orders(f), 1);
	json_decref(msg);
	json_decref(in);
}

/* A kill before the commit: no reply, SIGKILL, nothing applied. */
static void check_kill_before_commit(struct fx *f, const char *point)
{
	json_t *in = order_input();
	json_t *plan = fault("kill", "point", point);
	char line[128];

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, plan, NULL);
	assert_no_reply(f);
	assert_killed(f);
	assert_int_equal(stock(f), 1000);
	assert_int_equal(orders(f), 0);
	snprintf(line, sizeof(line), "msg=\"injected fault: kill\" point=%s task_id=1 wf=A12",
	         point);
	assert_log_contains(f, line);
	assert_log_contains(f, "step=0 attempt=1");
	json_decref(plan);
	json_decref(in);
}

static void test_kill_before_effect(void **state)
{
	check_kill_before_commit(*state, "before_effect");
}

static void test_kill_after_effect(void **state)
{
	check_kill_before_commit(*state, "after_effect");
}

/* Committed, then killed: a new worker replays it, and a kill planned
 * at after_effect never happens on a replay (no effect to apply). */
static void test_kill_after_commit(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input();
	json_t *plan = fault("kill", "point", "after_commit");
	json_t *later = fault("kill", "point", "after_effect");
	json_t *msg = NULL, *result = NULL;

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, plan, NULL);
	assert_no_reply(f);
	assert_killed(f);
	assert_int_equal(stock(f), 1);
	assert_int_equal(orders(f), 1);
	assert_log_contains(f, "point=after_commit");
	worker_start(f);
	send_task(f, 2, "update_inventory", in, 2, NULL, NULL);
	msg = expect_ok(f, 2, &result);
	assert_true(json_is_true(json_object_get(result, "replayed")));
	assert_int_equal(int_of(result, "stock"), 1);
	json_decref(msg);
	send_task(f, 3, "update_inventory", in, 3, later, NULL);
	msg = expect_ok(f, 3, &result);
	assert_true(json_is_true(json_object_get(result, "replayed")));
	json_decref(msg);
	assert_int_equal(stock(f), 1);
	assert_int_equal(orders(f), 1);
	json_decref(later);
	json_decref(plan);
	json_decref(in);
}

static void test_kill_mid_reply(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input();
	json_t *plan = fault("kill", "point", "mid_reply");
	json_t *msg = NULL;
	char err[ERRLEN] = "";

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, plan, NULL);
	assert_int_equal(frame_read_fd(f->fd, &f->d, &msg, err, sizeof(err)), -1);
	assert_null(msg);
	if (strstr(err, "inside a frame") == NULL)
		fail_msg("expected a partial frame, got: %s", err);
	assert_killed(f);
	assert_int_equal(stock(f), 1);
	assert_int_equal(orders(f), 1);
	assert_log_contains(f, "point=mid_reply bytes_written=");
	json_decref(plan);
	json_decref(in);
}

static void test_error_before_and_after_effect(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input();
	json_t *before = fault("error", "when", "before_effect");
	json_t *after = fault("error", "when", "after_effect");
	json_t *msg = NULL, *result = NULL;

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, before, NULL);
	expect_error(f, 1, "InjectedError", 1, "injected error before the effect (fault plan)");
	assert_int_equal(stock(f), 1000);
	assert_int_equal(orders(f), 0);
	send_task(f, 2, "update_inventory", in, 2, after, NULL);
	expect_error(f, 2, "InjectedError", 1,
	             "injected error after the effect (fault plan): the retry must not apply it "
	             "again");
	assert_int_equal(stock(f), 1);
	assert_int_equal(orders(f), 1);
	/* The retry after an error after the effect replays it. */
	send_task(f, 3, "update_inventory", in, 3, NULL, NULL);
	msg = expect_ok(f, 3, &result);
	assert_true(json_is_true(json_object_get(result, "replayed")));
	assert_int_equal(stock(f), 1);
	assert_log_contains(f, "msg=\"injected fault: error\" when=after_effect");
	json_decref(msg);
	json_decref(after);
	json_decref(before);
	json_decref(in);
}

/* An error planned after the effect of an attempt that fails on its own:
 * the activity's own error is the answer. */
static void test_error_after_a_refusal(void **state)
{
	struct fx *f = *state;
	json_t *in = json_pack("{s:s, s:s, s:I}", "order_id", "A13", "product_id", "123456",
	                       "quantity", (json_int_t)5000);
	json_t *after = fault("error", "when", "after_effect");

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, after, NULL);
	expect_error(f, 1, "InsufficientStock", 0, "needs 5000");
	assert_int_equal(stock(f), 1000);
	json_decref(after);
	json_decref(in);
}

static void test_delay(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input();
	json_t *plan = json_pack("{s:s, s:I}", "kind", "delay", "ms", (json_int_t)200);
	json_t *msg = NULL, *result = NULL;
	int64_t start;

	worker_start(f);
	start = clock_mono_ms();
	send_task(f, 1, "update_inventory", in, 1, plan, NULL);
	msg = expect_ok(f, 1, &result);
	assert_true(clock_mono_ms() - start >= 200);
	assert_int_equal(int_of(result, "stock"), 1);
	assert_log_contains(f, "msg=\"injected fault: delay\" ms=200");
	json_decref(msg);
	json_decref(plan);
	json_decref(in);
}

/* supplier_order checkpoints the supplier order id in a heartbeat frame
 * before its result. */
static void test_heartbeat_frame_before_result(void **state)
{
	struct fx *f = *state;
	json_t *in = restock_input("ns/A12/1");
	json_t *msg = NULL, *result = NULL;
	struct msg_heartbeat hb;
	char err[ERRLEN] = "";

	worker_start(f);
	send_task(f, 4, "supplier_order", in, 1, NULL, NULL);
	msg = read_msg(f);
	if (msg_parse_heartbeat(msg, &hb, err, sizeof(err)) != 0)
		fail_msg("the first frame is not a heartbeat: %s", err);
	assert_int_equal(hb.task_id, 4);
	assert_string_equal(str_of(hb.details, "supplier_order_id"), "SO-1");
	json_decref(msg);
	msg = expect_ok(f, 4, &result);
	assert_string_equal(str_of(result, "supplier_order_id"), "SO-1");
	assert_string_equal(str_of(result, "source"), "supplier");
	assert_int_equal(stock(f), 2000);
	json_decref(msg);
	json_decref(in);
}

/* Killed after ordering: the heartbeat sent before the kill is what the
 * next attempt resumes from, without calling the supplier (stopped here
 * to prove it). */
static void test_resume_from_heartbeat_after_kill(void **state)
{
	struct fx *f = *state;
	json_t *in = restock_input("ns/A12/1");
	json_t *plan = fault("kill", "point", "after_effect");
	json_t *beat = NULL, *msg = NULL, *result = NULL;
	struct msg_heartbeat hb;
	char err[ERRLEN] = "";

	worker_start(f);
	send_task(f, 1, "supplier_order", in, 1, plan, NULL);
	beat = read_msg(f);
	assert_int_equal(msg_parse_heartbeat(beat, &hb, err, sizeof(err)), 0);
	assert_no_reply(f);
	assert_killed(f);
	assert_int_equal(stock(f), 1000);
	kill(f->sup_pid, SIGTERM);
	assert_int_equal(tu_wait_exit(f->sup_pid, 5000), 0);
	f->sup_pid = -1;
	worker_start(f);
	send_task(f, 2, "supplier_order", in, 2, NULL, hb.details);
	msg = expect_ok(f, 2, &result);
	assert_string_equal(str_of(result, "source"), "heartbeat");
	assert_string_equal(str_of(result, "supplier_order_id"), "SO-1");
	assert_int_equal(stock(f), 2000);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM restocks"), 1);
	json_decref(msg);
	json_decref(beat);
	json_decref(plan);
	json_decref(in);
}

/* The plan reaches the supplier as Idem-Fault; no heartbeat frame comes
 * before the error (nothing was ordered). */
static void test_supplier_fault_through_worker(void **state)
{
	struct fx *f = *state;
	json_t *in = restock_input("ns/A12/1");
	json_t *plan = fault("peer", "mode", "unavailable");

	worker_start(f);
	send_task(f, 1, "supplier_order", in, 1, plan, NULL);
	expect_error(f, 1, "SupplierUnavailable", 1, "supplier unavailable (injected fault)");
	assert_int_equal(stock(f), 1000);
	assert_log_contains(f, "msg=\"injected fault: peer\" mode=unavailable");
	json_decref(plan);
	json_decref(in);
}

/* A fault object the worker cannot read: a non-retryable BadFault naming
 * the problem, and the worker carries on. */
static void test_bad_fault(void **state)
{
	struct fx *f = *state;
	json_t *in = order_input();
	json_t *unknown = json_pack("{s:s}", "kind", "explode");
	json_t *no_point = json_pack("{s:s}", "kind", "kill");
	json_t *negative = json_pack("{s:s, s:I}", "kind", "delay", "ms", (json_int_t)-5);
	json_t *msg = NULL, *result = NULL;

	worker_start(f);
	send_task(f, 1, "update_inventory", in, 1, unknown, NULL);
	expect_error(f, 1, "BadFault", 0, "unknown kind \"explode\"");
	send_task(f, 2, "update_inventory", in, 1, no_point, NULL);
	expect_error(f, 2, "BadFault", 0, "kill needs \"point\"");
	send_task(f, 3, "update_inventory", in, 1, negative, NULL);
	expect_error(f, 3, "BadFault", 0, "delay needs \"ms\" >= 0 (got -5)");
	assert_int_equal(stock(f), 1000);
	send_task(f, 4, "update_inventory", in, 1, NULL, NULL);
	msg = expect_ok(f, 4, &result);
	assert_int_equal(int_of(result, "stock"), 1);
	json_decref(msg);
	json_decref(negative);
	json_decref(no_point);
	json_decref(unknown);
	json_decref(in);
}

static void test_not_json_exits_1(void **state)
{
	struct fx *f = *state;
	static const char frame[] = "\0\0\0\5hello";

	worker_start(f);
	assert_int_equal(write(f->fd, frame, sizeof(frame) - 1), (ssize_t)(sizeof(frame) - 1));
	assert_exited(f, IDEM_EXIT_FAIL);
	assert_log_contains(f, "cannot read from the channel");
}

static void test_eof_exits_0(void **state)
{
	struct fx *f = *state;

	worker_start(f);
	shutdown(f->fd, SHUT_WR);
	assert_exited(f, IDEM_EXIT_OK);
}

/* Starts idem-worker --fork-server as the supervisor does (a SEQPACKET
 * channel) with IDEM_SUPERVISOR_PID=sup; returns what it says first (0:
 * nothing, its channel closed) into buf, and its pid in *pid. */
static ssize_t fork_server_first_words(struct fx *f, long sup, char *buf, size_t len, pid_t *pid)
{
	char bin[4096], env[48];
	char *const argv[] = {bin, "--channel-fd=3", "--fork-server", "--env", f->env_file, NULL};
	struct timeval tv = {.tv_sec = READ_TIMEOUT_S};
	int sv[2];
	ssize_t n;

	snprintf(bin, sizeof(bin), "%s", tu_bin("idem-worker"));
	snprintf(env, sizeof(env), "%ld", sup);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		setenv("IDEM_SUPERVISOR_PID", env, 1);
		exec_worker(f, argv, sv[1]);
	}
	close(sv[1]);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	n = recv(sv[0], buf, len, 0);
	close(sv[0]);
	return n;
}

/* A fork server (or worker) whose supervisor died before it could ask to
 * die with it (PR_SET_PDEATHSIG) leaves at once: its parent is not the
 * supervisor named in IDEM_SUPERVISOR_PID. Stopped, such an orphan would
 * wait on its channel for ever. Named rightly, it says hello. */
static void test_orphan_fork_server_leaves(void **state)
{
	struct fx *f = *state;
	char buf[64] = "";
	pid_t pid;
	int st;

	assert_int_equal(fork_server_first_words(f, 1, buf, sizeof(buf), &pid), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), IDEM_EXIT_OK);

	assert_int_equal(fork_server_first_words(f, (long)getpid(), buf, sizeof(buf), &pid),
	                 (ssize_t)sizeof(FORK_SERVER_HELLO));
	assert_string_equal(buf, FORK_SERVER_HELLO);
	assert_int_equal(waitpid(pid, &st, 0), pid); /* its channel closed: it leaves */
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), IDEM_EXIT_OK);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_ready_then_result),
	    T(test_kill_before_effect),
	    T(test_kill_after_effect),
	    T(test_kill_after_commit),
	    T(test_kill_mid_reply),
	    T(test_error_before_and_after_effect),
	    T(test_error_after_a_refusal),
	    T(test_delay),
	    T(test_heartbeat_frame_before_result),
	    T(test_resume_from_heartbeat_after_kill),
	    T(test_supplier_fault_through_worker),
	    T(test_bad_fault),
	    T(test_not_json_exits_1),
	    T(test_eof_exits_0),
	    T(test_orphan_fork_server_leaves),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
