/* test_zombie.c — zombies and overlaps: two attempts of one step running
 * at once against the same app DB, and at most one effect lands.
 *
 * In production the supervisor SIGKILLs a timed-out worker before the
 * retry (SIGKILL also ends a stopped process), so two attempts of a step
 * overlap only when a test makes them. This one makes them: two real
 * idem-worker processes (and a real idem-supplier), started and driven
 * over socketpairs frame by frame as in test_worker.c. Worker 1 gets
 * attempt 1 and is SIGSTOPped at a chosen place; worker 2 runs attempt 2
 * of the same task; worker 1 is SIGCONTed and finishes. The places:
 *
 *   sleeping     a delay plan: stopped before it touches anything.
 *   lock wait    the test holds the app DB's write lock (BEGIN IMMEDIATE
 *                on its own connection), so the attempt waits in its own
 *                BEGIN IMMEDIATE (SQLite's busy handler, which sleeps: the
 *                worker's voluntary context switches in /proc tell when it
 *                is there); stopped there. Either attempt may then commit
 *                first.
 *   inside the   a trigger on the effect's table (orders or restocks)
 *   transaction  burns CPU after the INSERT, before COMMIT; the attempt is
 *                stopped while it holds the write lock (a BEGIN IMMEDIATE
 *                probe with no busy timeout says SQLITE_BUSY). The other
 *                attempt cannot overtake it: it waits for the lock and
 *                replays, or, if the zombie stays stopped past the busy
 *                timeout (5 s), fails with a retryable DatabaseError
 *                having applied nothing.
 *   after the    supplier_order has answered and checkpointed (the
 *   supplier     heartbeat frame), and waits for the lock to credit.
 *
 * The guarded activities apply each effect once whichever attempt commits
 * first; the control runs the same overlaps with both workers --naive and
 * sees the effect applied twice (the stock is raised to 2000 first so that
 * a second order of 999 fits), which shows that these tests can fail.
 *
 * Each child only exec()s or _exit()s; the parent asserts; every wait is
 * bounded; the teardown SIGKILLs the workers (stopped or not) and the
 * supplier and removes the directory. Nothing here is random. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "frame.h"
#include "msg.h"
#include "testutil.h"

#define ERRLEN 512
#define CHANNEL_FD 3
#define READ_TIMEOUT_S 30
#define DELAY_MS 1000      /* worker 1's sleep before the effect */
#define WAIT_MS 10000      /* bound on each wait for a state */
#define LOCK_WAIT_SLEEPS 3 /* busy-handler sleeps that prove a lock wait */
#define BURN_ROWS 5000     /* the trigger's CPU burn: a 5000 x 5000 join (~1 s) */
#define CONTROL_STOCK 2000 /* naive runs: room for the order to apply twice */
#define ORDER_QUANTITY 999
#define RESTOCK_QUANTITY 1000
#define RESTOCK_KEY "default/A12/1"

static const struct name_value initial_stock[] = {{"123456", 1000}};

struct worker {
	int n;     /* 1 or 2 */
	char *log; /* its stdout and stderr */
	pid_t pid; /* -1 when none */
	int fd;    /* our end of its channel, -1 when none */
	struct frame_decoder d;
};

struct fx {
	char *dir;
	char *app_db;
	char *sup_sock;
	char *sup_db;
	char *env_file;
	char *sup_log;
	pid_t sup_pid;
	sqlite3 *lock; /* the test's own app DB connection (write lock, probes) */
	int naive;     /* the workers run --naive */
	struct worker w[2];
};

/* ---- failing with the logs ---- */

static struct fx *current; /* for the logs printed on a failure */

static void print_file(const char *title, const char *path)
{
	char *text = path != NULL ? tu_read_file(path) : NULL;

	print_error("---- %s (%s) ----\n%s", title, path != NULL ? path : "-",
	            text != NULL ? text : "(none)\n");
	free(text);
}

static void print_logs(void)
{
	if (current == NULL)
		return;
	print_file("worker 1", current->w[0].log);
	print_file("worker 2", current->w[1].log);
	print_file("supplier", current->sup_log);
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		print_logs();                                                                      \
		fail_msg(__VA_ARGS__);                                                             \
	} while (0)

/* ---- observations ---- */

static long long sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		FAIL("%s: %s", path, sqlite3_errmsg(db));
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		FAIL("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) != SQLITE_ROW)
		FAIL("%s: no row: %s", sql, sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_close(db);
	return v;
}

static long long stock(struct fx *f)
{
	return sql_int(f->app_db, "SELECT stock FROM products WHERE product_id = '123456'");
}

static long long orders(struct fx *f)
{
	return sql_int(f->app_db, "SELECT count(*) FROM orders WHERE order_id = 'A12'");
}

static long long restocks(struct fx *f)
{
	return sql_int(f->app_db, "SELECT count(*) FROM restocks WHERE key = '" RESTOCK_KEY "'");
}

/* Orders in the supplier's ledger (any key: naive mode varies it). */
static long long ledger(struct fx *f)
{
	return sql_int(f->sup_db, "SELECT count(*) FROM supplier_orders");
}

/* Non-zero when some connection holds the app DB's write lock: a
 * BEGIN IMMEDIATE that does not wait says SQLITE_BUSY. */
static int lock_held(struct fx *f)
{
	int rc = sqlite3_exec(f->lock, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	if (rc == SQLITE_BUSY)
		return 1;
	if (rc != SQLITE_OK)
		FAIL("probing the write lock: %s", sqlite3_errmsg(f->lock));
	if (sqlite3_exec(f->lock, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		FAIL("ending the probe: %s", sqlite3_errmsg(f->lock));
	return 0;
}

static void lock_take(struct fx *f)
{
	if (sqlite3_exec(f->lock, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		FAIL("taking the write lock: %s", sqlite3_errmsg(f->lock));
}

static void lock_release(struct fx *f)
{
	if (sqlite3_exec(f->lock, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		FAIL("releasing the write lock: %s", sqlite3_errmsg(f->lock));
}

static void exec_sql(struct fx *f, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(f->lock, sql, NULL, NULL, &msg) != SQLITE_OK) {
		print_error("%s\n", sql);
		FAIL("%s", msg != NULL ? msg : sqlite3_errmsg(f->lock));
	}
}

/* Makes every INSERT into table slow: the trigger runs inside the
 * inserting transaction, after the effect, before COMMIT. */
static void install_burn(struct fx *f, const char *table)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS burn(x INTEGER);"
	         "DELETE FROM burn;"
	         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)"
	         " INSERT INTO burn SELECT x FROM c;"
	         "CREATE TRIGGER burn_%s AFTER INSERT ON %s"
	         " BEGIN SELECT sum(a.x * b.x) FROM burn AS a, burn AS b; END;",
	         BURN_ROWS, table, table);
	exec_sql(f, sql);
}

/* The control's stock: an operator's adjustment, as idemctl would make,
 * through a connection of the app's own (f->lock is a raw one). */
static void set_stock(struct fx *f, int64_t v)
{
	char err[ERRLEN] = "";
	struct appconn *db = NULL;

	if (appdb_open(f->app_db, DB_SYNC_NORMAL, NULL, 0, &db, err, sizeof(err)) != 0)
		FAIL("%s", err);
	if (appdb_stock_set(db, "123456", v, "zombie control: room for two orders", NULL, err,
	                    sizeof(err)) != 0) {
		appconn_close(db);
		FAIL("%s", err);
	}
	appconn_close(db);
}

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
	if (tu_wait_for_socket(f->sup_sock, WAIT_MS) != 0)
		FAIL("idem-supplier did not start");
}

/* The child of worker_start: the log as stdout and stderr, the channel
 * as descriptor 3 without CLOEXEC, as spawn() in supervisor/spawn.c does). */
static _Noreturn void exec_worker(const char *log_path, char *const argv[], int channel)
{
	int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

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

static json_t *read_msg(struct worker *w);

/* Starts worker n (1 or 2), --naive when the fixture says so, and checks
 * its ready frame. */
static struct worker *worker_start(struct fx *f, int n)
{
	struct worker *w = &f->w[n - 1];
	char bin[4096];
	char *const argv[] = {bin,
	                      "--channel-fd=3",
	                      "--env",
	                      f->env_file,
	                      "--database",
	                      f->app_db,
	                      "--supplier-socket",
	                      f->sup_sock,
	                      "--log-level",
	                      "info",
	                      f->naive ? "--naive" : NULL,
	                      NULL};
	struct timeval tv = {.tv_sec = READ_TIMEOUT_S};
	struct msg_ready r;
	char err[ERRLEN] = "";
	json_t *ready = NULL; /* new */
	int sv[2];

	snprintf(bin, sizeof(bin), "%s", tu_bin("idem-worker"));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	w->pid = fork();
	assert_true(w->pid >= 0);
	if (w->pid == 0)
		exec_worker(w->log, argv, sv[1]);
	close(sv[1]);
	w->fd = sv[0];
	/* A worker that hangs fails the test instead of blocking it. */
	assert_int_equal(setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	frame_decoder_init(&w->d, FRAME_DEFAULT_MAX);
	ready = read_msg(w);
	if (msg_parse_ready(ready, &r, err, sizeof(err)) != 0)
		FAIL("worker %d: the first frame is not ready: %s", w->n, err);
	assert_int_equal(r.pid, w->pid);
	json_decref(ready);
	return w;
}

/* SIGKILLs (a stopped process dies too) and reaps; bounded. */
static void worker_kill(struct worker *w)
{
	int64_t deadline = clock_mono_ms() + WAIT_MS;

	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, NULL, WNOHANG) == 0 && clock_mono_ms() < deadline)
			tu_sleep_ms(5);
	}
	w->pid = -1;
	if (w->fd >= 0) {
		close(w->fd);
		frame_decoder_free(&w->d);
	}
	w->fd = -1;
}

/* SIGSTOP, and waits until the kernel reports the worker stopped. */
static void worker_stop(struct worker *w)
{
	int64_t deadline = clock_mono_ms() + WAIT_MS;
	int st = 0;

	assert_int_equal(kill(w->pid, SIGSTOP), 0);
	for (;;) {
		pid_t r = waitpid(w->pid, &st, WUNTRACED | WNOHANG);
		if (r == w->pid && WIFSTOPPED(st))
			return;
		if (r == w->pid)
			FAIL("worker %d ended (status 0x%x) instead of stopping", w->n, st);
		if (r < 0 && errno != EINTR)
			FAIL("waitpid %d: %s", (int)w->pid, strerror(errno));
		if (clock_mono_ms() >= deadline)
			FAIL("worker %d did not stop", w->n);
		tu_sleep_ms(1);
	}
}

static void worker_cont(struct worker *w)
{
	assert_int_equal(kill(w->pid, SIGCONT), 0);
}

/* The number of times the worker has blocked (slept, waited): SQLite's
 * busy handler sleeps between its tries of a lock. */
static long voluntary_switches(const struct worker *w)
{
	char path[64], line[256];
	long v = -1;
	FILE *in;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)w->pid);
	in = fopen(path, "r");
	if (in == NULL)
		FAIL("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), in) != NULL) {
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	}
	fclose(in);
	if (v < 0)
		FAIL("%s has no voluntary_ctxt_switches", path);
	return v;
}

/* Non-zero when a frame (or EOF) from the worker is waiting to be read. */
static int worker_spoke(struct worker *w)
{
	struct pollfd p = {.fd = w->fd, .events = POLLIN};

	return frame_decoder_pending(&w->d) > 0 || poll(&p, 1, 0) > 0;
}

/* Waits until the worker, idle since base was read, has slept several
 * times in its busy handler: it waits for the write lock. */
static void wait_lock_wait(struct worker *w, long base)
{
	int64_t deadline = clock_mono_ms() + WAIT_MS;

	while (voluntary_switches(w) < base + LOCK_WAIT_SLEEPS) {
		if (worker_spoke(w))
			FAIL("worker %d answered instead of waiting for the write lock", w->n);
		if (clock_mono_ms() >= deadline)
			FAIL("worker %d does not wait for the write lock", w->n);
		tu_sleep_ms(2);
	}
}

/* Waits until the worker holds the write lock (the only writer running),
 * stops it, and checks that it still holds it: stopped inside its
 * transaction, before COMMIT. */
static void stop_inside_transaction(struct fx *f, struct worker *w)
{
	int64_t deadline = clock_mono_ms() + WAIT_MS;

	while (!lock_held(f)) {
		if (worker_spoke(w))
			FAIL("worker %d answered before it could be stopped in its transaction",
			     w->n);
		if (clock_mono_ms() >= deadline)
			FAIL("worker %d never took the write lock", w->n);
		tu_sleep_ms(1);
	}
	worker_stop(w);
	if (!lock_held(f))
		FAIL("worker %d committed before it stopped (the trigger's burn is too short)",
		     w->n);
}

static void wait_for_log(struct worker *w, const char *frag)
{
	int64_t deadline = clock_mono_ms() + WAIT_MS;

	for (;;) {
		char *log = tu_read_file(w->log);
		int found = log != NULL && strstr(log, frag) != NULL;
		free(log);
		if (found)
			return;
		if (clock_mono_ms() >= deadline)
			FAIL("worker %d did not log \"%s\"", w->n, frag);
		tu_sleep_ms(2);
	}
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[ERRLEN] = "";
	struct appconn *db = NULL;

	assert_non_null(f);
	current = f;
	f->dir = tu_tmpdir("zombie");
	assert_non_null(f->dir);
	f->app_db = tu_fmt("%s/data/inventory.db", f->dir);
	f->sup_sock = tu_fmt("%s/supplier.sock", f->dir);
	f->sup_db = tu_fmt("%s/supplier.db", f->dir);
	f->env_file = tu_fmt("%s/test.env", f->dir);
	f->sup_log = tu_fmt("%s/supplier.log", f->dir);
	for (int i = 0; i < 2; i++) {
		f->w[i].n = i + 1;
		f->w[i].log = tu_fmt("%s/worker%d.log", f->dir, i + 1);
		f->w[i].pid = -1;
		f->w[i].fd = -1;
	}
	f->sup_pid = -1;
	*state = f;
	assert_int_equal(tu_write_file(f->env_file, "\n"), 0);
	/* Seeded and migrated; then the test's own connection, which never
	 * waits for a lock (SQLite opens its files O_CLOEXEC: nothing
	 * crosses the exec of a worker). */
	if (appdb_open(f->app_db, DB_SYNC_NORMAL, initial_stock, 1, &db, err, sizeof(err)) != 0)
		FAIL("%s", err);
	appconn_close(db);
	assert_int_equal(sqlite3_open_v2(f->app_db, &f->lock, SQLITE_OPEN_READWRITE, NULL),
	                 SQLITE_OK);
	sqlite3_busy_timeout(f->lock, 0);
	supplier_start(f);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 2; i++)
		worker_kill(&f->w[i]);
	if (f->lock != NULL) {
		if (!sqlite3_get_autocommit(f->lock))
			sqlite3_exec(f->lock, "ROLLBACK", NULL, NULL, NULL);
		db_close(f->lock);
	}
	if (f->sup_pid > 0)
		tu_stop_child(f->sup_pid, 5000);
	if (f->dir != NULL)
		tu_rmrf(f->dir);
	free(f->dir);
	free(f->app_db);
	free(f->sup_sock);
	free(f->sup_db);
	free(f->env_file);
	free(f->sup_log);
	for (int i = 0; i < 2; i++)
		free(f->w[i].log);
	free(f);
	current = NULL;
	return 0;
}

/* ---- frames ---- */

/* The next frame (new ref); fails the test on EOF, error or timeout. */
static json_t *read_msg(struct worker *w)
{
	char err[ERRLEN] = "";
	json_t *msg = NULL;
	int r = frame_read_fd(w->fd, &w->d, &msg, err, sizeof(err));

	if (r == 0)
		FAIL("worker %d closed the channel", w->n);
	if (r < 0)
		FAIL("reading from worker %d: %s", w->n, err);
	return msg;
}

/* Sends attempt `attempt` of step 0 (update_inventory) or 1
 * (supplier_order) of workflow default/A12. fault and heartbeat are
 * borrowed, may be NULL. */
static void send_task(struct worker *w, json_int_t task_id, const char *activity,
                      json_int_t attempt, json_t *fault, json_t *heartbeat)
{
	int restock = strcmp(activity, "supplier_order") == 0;
	json_t *input = restock ? json_pack("{s:s, s:I, s:s}", "product_id", "123456", "quantity",
	                                    (json_int_t)RESTOCK_QUANTITY, "key", RESTOCK_KEY)
	                        : json_pack("{s:s, s:s, s:I}", "order_id", "A12", "product_id",
	                                    "123456", "quantity", (json_int_t)ORDER_QUANTITY);
	struct msg_task t = {.task_id = task_id,
	                     .namespace_ = "default",
	                     .workflow_id = "A12",
	                     .step = restock,
	                     .attempt = attempt,
	                     .activity = activity,
	                     .input = input,
	                     .heartbeat = heartbeat,
	                     .fault = fault};
	json_t *msg = msg_task_new(&t); /* new */
	char err[ERRLEN] = "";

	assert_non_null(input);
	assert_non_null(msg);
	if (frame_write_fd(w->fd, msg, FRAME_DEFAULT_MAX, err, sizeof(err)) != 0)
		FAIL("writing to worker %d: %s", w->n, err);
	json_decref(msg);
	json_decref(input);
}

static json_t *delay_plan(void)
{
	json_t *j = json_pack("{s:s, s:I}", "kind", "delay", "ms", (json_int_t)DELAY_MS);

	assert_non_null(j);
	return j;
}

static json_int_t int_of(const json_t *doc, const char *name)
{
	const json_t *v = json_object_get(doc, name);

	if (!json_is_integer(v))
		FAIL("no integer \"%s\"", name);
	return json_integer_value(v);
}

static const char *str_of(const json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));

	if (v == NULL)
		FAIL("no string \"%s\"", name);
	return v;
}

static int replayed_of(const json_t *doc)
{
	const json_t *v = json_object_get(doc, "replayed");

	if (!json_is_boolean(v))
		FAIL("no boolean \"replayed\"");
	return json_is_true(v);
}

/* Reads a result frame for task_id; *r borrows from the returned message
 * (new ref). */
static json_t *read_result(struct worker *w, json_int_t task_id, struct msg_result *r)
{
	char err[ERRLEN] = "";
	json_t *msg = read_msg(w);

	if (msg_parse_result(msg, r, err, sizeof(err)) != 0)
		FAIL("worker %d: not a result: %s", w->n, err);
	assert_int_equal(r->task_id, task_id);
	return msg;
}

/* The result of an update_inventory attempt: ok, with replayed and the
 * stock after the order. */
static void expect_order(struct worker *w, json_int_t task_id, int replayed, json_int_t stock_after)
{
	struct msg_result r;
	json_t *msg = read_result(w, task_id, &r);

	if (!r.ok)
		FAIL("worker %d, task %lld failed: %s: %s", w->n, (long long)task_id, r.error_type,
		     r.error_message);
	if (replayed_of(r.result) != replayed)
		FAIL("worker %d, task %lld: replayed is %s, expected %s", w->n, (long long)task_id,
		     replayed ? "false" : "true", replayed ? "true" : "false");
	assert_int_equal(int_of(r.result, "stock"), stock_after);
	assert_int_equal(int_of(r.result, "quantity"), ORDER_QUANTITY);
	assert_string_equal(str_of(r.result, "order_id"), "A12");
	json_decref(msg);
}

/* The result of a supplier_order attempt: ok, with its source, supplier
 * order id and the stock after the credit. */
static void expect_restock(struct worker *w, json_int_t task_id, const char *source,
                           const char *so_id, json_int_t stock_after)
{
	struct msg_result r;
	json_t *msg = read_result(w, task_id, &r);

	if (!r.ok)
		FAIL("worker %d, task %lld failed: %s: %s", w->n, (long long)task_id, r.error_type,
		     r.error_message);
	assert_string_equal(str_of(r.result, "source"), source);
	assert_int_equal(replayed_of(r.result), strcmp(source, "restocks") == 0);
	assert_string_equal(str_of(r.result, "supplier_order_id"), so_id);
	assert_int_equal(int_of(r.result, "stock"), stock_after);
	assert_int_equal(int_of(r.result, "quantity"), RESTOCK_QUANTITY);
	json_decref(msg);
}

/* A heartbeat frame of task_id checkpointing so_id; returns its details
 * (new ref). */
static json_t *expect_heartbeat(struct worker *w, json_int_t task_id, const char *so_id)
{
	struct msg_heartbeat hb;
	char err[ERRLEN] = "";
	json_t *msg = read_msg(w);
	json_t *details = NULL;

	if (msg_parse_heartbeat(msg, &hb, err, sizeof(err)) != 0)
		FAIL("worker %d: expected a heartbeat: %s", w->n, err);
	assert_int_equal(hb.task_id, task_id);
	assert_string_equal(str_of(hb.details, "supplier_order_id"), so_id);
	details = json_incref(hb.details);
	json_decref(msg);
	return details;
}

/* ---- update_inventory ---- */

/* Both workers started; the stock the scenario starts from. */
static long long start_pair(struct fx *f, struct worker **w1, struct worker **w2)
{
	if (f->naive)
		set_stock(f, CONTROL_STOCK);
	*w1 = worker_start(f, 1);
	*w2 = worker_start(f, 2);
	return stock(f);
}

/* The end of every update_inventory overlap: one order (two in naive
 * mode) and the stock decremented as many times. */
static void assert_orders_applied(struct fx *f, long long s0)
{
	int times = f->naive ? 2 : 1;

	assert_int_equal(orders(f), times);
	assert_int_equal(stock(f), s0 - (long long)times * ORDER_QUANTITY);
}

/* Worker 1 sleeps in its delay plan; stopped there, it has touched
 * nothing. Worker 2 runs attempt 2 to completion; worker 1, continued,
 * wakes and replays. */
static void order_zombie_sleeping(struct fx *f)
{
	struct worker *w1, *w2;
	json_t *plan = delay_plan();
	long long s0 = start_pair(f, &w1, &w2);

	send_task(w1, 1, "update_inventory", 1, plan, NULL);
	wait_for_log(w1, "msg=\"injected fault: delay\" ms=1000 task_id=1");
	worker_stop(w1);
	assert_false(lock_held(f));
	assert_int_equal(orders(f), 0);
	send_task(w2, 2, "update_inventory", 2, NULL, NULL);
	expect_order(w2, 2, 0, s0 - ORDER_QUANTITY);
	assert_false(worker_spoke(w1));
	worker_cont(w1);
	if (f->naive)
		expect_order(w1, 1, 0, s0 - 2 * ORDER_QUANTITY);
	else
		expect_order(w1, 1, 1, s0 - ORDER_QUANTITY);
	assert_orders_applied(f, s0);
	json_decref(plan);
}

/* Worker 1 waits for the write lock the test holds and is stopped there.
 * zombie_first: worker 2 is stopped in the same wait, worker 1 is
 * continued and commits first, then worker 2 is continued; else the lock
 * is released and worker 2 commits while worker 1 is still stopped. */
static void order_zombie_waiting_for_lock(struct fx *f, int zombie_first)
{
	struct worker *w1, *w2;
	long long s0 = start_pair(f, &w1, &w2);
	long base;

	lock_take(f);
	base = voluntary_switches(w1);
	send_task(w1, 1, "update_inventory", 1, NULL, NULL);
	wait_lock_wait(w1, base);
	worker_stop(w1);
	if (zombie_first) {
		base = voluntary_switches(w2);
		send_task(w2, 2, "update_inventory", 2, NULL, NULL);
		wait_lock_wait(w2, base);
		worker_stop(w2);
		worker_cont(w1);
		lock_release(f);
		expect_order(w1, 1, 0, s0 - ORDER_QUANTITY);
		assert_false(worker_spoke(w2));
		worker_cont(w2);
		expect_order(w2, 2, !f->naive, s0 - (f->naive ? 2 : 1) * ORDER_QUANTITY);
	} else {
		lock_release(f);
		send_task(w2, 2, "update_inventory", 2, NULL, NULL);
		expect_order(w2, 2, 0, s0 - ORDER_QUANTITY);
		assert_false(worker_spoke(w1));
		worker_cont(w1);
		expect_order(w1, 1, !f->naive, s0 - (f->naive ? 2 : 1) * ORDER_QUANTITY);
	}
	assert_orders_applied(f, s0);
}

/* Worker 1 is stopped inside its transaction (decremented and recorded,
 * not committed): worker 2's attempt waits for the lock (stopped there
 * too), worker 1 is continued and commits, worker 2 is continued and
 * replays. */
static void order_zombie_inside_transaction(struct fx *f)
{
	struct worker *w1, *w2;
	long long s0;
	long base;

	install_burn(f, "orders");
	s0 = start_pair(f, &w1, &w2);
	send_task(w1, 1, "update_inventory", 1, NULL, NULL);
	stop_inside_transaction(f, w1);
	assert_int_equal(orders(f), 0); /* not committed: invisible */
	assert_int_equal(stock(f), s0);
	base = voluntary_switches(w2);
	send_task(w2, 2, "update_inventory", 2, NULL, NULL);
	wait_lock_wait(w2, base);
	worker_stop(w2);
	worker_cont(w1);
	expect_order(w1, 1, 0, s0 - ORDER_QUANTITY);
	assert_false(worker_spoke(w2));
	worker_cont(w2);
	expect_order(w2, 2, !f->naive, s0 - (f->naive ? 2 : 1) * ORDER_QUANTITY);
	assert_orders_applied(f, s0);
}

/* ---- supplier_order ---- */

/* Order A12 applied by worker 2 (stock 1 guarded; 1 also in naive mode,
 * whose stock is not raised here): the supplier_order step follows. */
static void start_pair_after_order(struct fx *f, struct worker **w1, struct worker **w2)
{
	*w1 = worker_start(f, 1);
	*w2 = worker_start(f, 2);
	send_task(*w2, 100, "update_inventory", 1, NULL, NULL);
	expect_order(*w2, 100, 0, 1);
	assert_int_equal(stock(f), 1);
}

/* One supplier order, one credit, stock 1001 (naive: two, two, 2001). */
static void assert_restocks_applied(struct fx *f)
{
	int times = f->naive ? 2 : 1;

	assert_int_equal(ledger(f), times);
	assert_int_equal(restocks(f), times);
	assert_int_equal(stock(f), 1 + (long long)times * RESTOCK_QUANTITY);
}

/* Worker 1 sleeps before calling the supplier and is stopped; worker 2
 * orders SO-1 and credits; worker 1, continued, finds the restocks row
 * and replays without calling the supplier (no heartbeat frame). */
static void restock_zombie_sleeping(struct fx *f)
{
	struct worker *w1, *w2;
	json_t *plan = delay_plan();
	json_t *beat = NULL;

	start_pair_after_order(f, &w1, &w2);
	send_task(w1, 1, "supplier_order", 1, plan, NULL);
	wait_for_log(w1, "msg=\"injected fault: delay\" ms=1000 task_id=1");
	worker_stop(w1);
	assert_int_equal(ledger(f), 0);
	assert_int_equal(restocks(f), 0);
	send_task(w2, 2, "supplier_order", 2, NULL, NULL);
	if (!f->naive)
		beat = expect_heartbeat(w2, 2, "SO-1");
	expect_restock(w2, 2, "supplier", "SO-1", 1001);
	assert_false(worker_spoke(w1));
	worker_cont(w1);
	if (f->naive)
		expect_restock(w1, 1, "supplier", "SO-2", 2001);
	else
		expect_restock(w1, 1, "restocks", "SO-1", 1001);
	assert_restocks_applied(f);
	json_decref(beat);
	json_decref(plan);
}

/* Worker 1 has ordered SO-1 and checkpointed it (its heartbeat frame),
 * then waits for the write lock the test holds to credit, and is stopped
 * there. Worker 2 resumes from that heartbeat (as the supervisor hands it
 * over) and credits; worker 1, continued, finds the credit in its own
 * transaction and replays. */
static void restock_zombie_after_supplier_answered(struct fx *f)
{
	struct worker *w1, *w2;
	json_t *beat = NULL;
	long base;

	start_pair_after_order(f, &w1, &w2);
	lock_take(f);
	send_task(w1, 1, "supplier_order", 1, NULL, NULL);
	beat = expect_heartbeat(w1, 1, "SO-1");
	base = voluntary_switches(w1);
	wait_lock_wait(w1, base);
	worker_stop(w1);
	lock_release(f);
	assert_int_equal(ledger(f), 1);
	assert_int_equal(restocks(f), 0);
	send_task(w2, 2, "supplier_order", 2, NULL, beat);
	expect_restock(w2, 2, "heartbeat", "SO-1", 1001);
	assert_false(worker_spoke(w1));
	worker_cont(w1);
	expect_restock(w1, 1, "restocks", "SO-1", 1001);
	assert_restocks_applied(f);
	json_decref(beat);
}

/* Worker 1 is stopped inside its credit transaction. Worker 2 has no
 * heartbeat to resume from (as if it were lost): it asks the supplier
 * again with the same key (the ledger replays SO-1), then waits for the
 * lock and is stopped there; worker 1 is continued and credits; worker 2
 * is continued and replays the credit. */
static void restock_zombie_inside_credit(struct fx *f)
{
	struct worker *w1, *w2;
	json_t *beat1 = NULL, *beat2 = NULL;
	long base;

	install_burn(f, "restocks");
	start_pair_after_order(f, &w1, &w2);
	send_task(w1, 1, "supplier_order", 1, NULL, NULL);
	beat1 = expect_heartbeat(w1, 1, "SO-1");
	stop_inside_transaction(f, w1);
	assert_int_equal(restocks(f), 0);
	assert_int_equal(stock(f), 1);
	send_task(w2, 2, "supplier_order", 2, NULL, NULL);
	beat2 = expect_heartbeat(w2, 2, "SO-1");
	base = voluntary_switches(w2);
	wait_lock_wait(w2, base);
	worker_stop(w2);
	worker_cont(w1);
	expect_restock(w1, 1, "supplier", "SO-1", 1001);
	assert_false(worker_spoke(w2));
	worker_cont(w2);
	expect_restock(w2, 2, "restocks", "SO-1", 1001);
	assert_restocks_applied(f);
	json_decref(beat2);
	json_decref(beat1);
}

/* ---- tests ---- */

static void test_order_zombie_sleeping(void **state)
{
	order_zombie_sleeping(*state);
}

static void test_order_zombie_waiting_for_lock_commits_last(void **state)
{
	order_zombie_waiting_for_lock(*state, 0);
}

static void test_order_zombie_waiting_for_lock_commits_first(void **state)
{
	order_zombie_waiting_for_lock(*state, 1);
}

static void test_order_zombie_inside_transaction(void **state)
{
	order_zombie_inside_transaction(*state);
}

/* The zombie stays stopped inside its transaction: the retry cannot
 * overtake it; after the busy timeout it fails with a retryable
 * DatabaseError, having applied nothing. The zombie, continued, commits;
 * attempt 3 replays. */
static void test_order_retry_times_out_behind_zombie_transaction(void **state)
{
	struct fx *f = *state;
	struct worker *w1, *w2;
	struct msg_result r;
	json_t *msg = NULL;
	long long s0;
	int64_t start;

	install_burn(f, "orders");
	s0 = start_pair(f, &w1, &w2);
	send_task(w1, 1, "update_inventory", 1, NULL, NULL);
	stop_inside_transaction(f, w1);
	start = clock_mono_ms();
	send_task(w2, 2, "update_inventory", 2, NULL, NULL);
	msg = read_result(w2, 2, &r);
	if (r.ok)
		FAIL("attempt 2 succeeded while attempt 1 held its transaction open");
	assert_string_equal(r.error_type, "DatabaseError");
	assert_true(r.retryable);
	if (strstr(r.error_message, "locked") == NULL)
		FAIL("unexpected DatabaseError: %s", r.error_message);
	/* It waited for the lock (the busy timeout) before giving up. */
	assert_true(clock_mono_ms() - start >= DB_BUSY_TIMEOUT_MS / 2);
	json_decref(msg);
	assert_true(lock_held(f));
	assert_int_equal(orders(f), 0);
	assert_int_equal(stock(f), s0);
	worker_cont(w1);
	expect_order(w1, 1, 0, s0 - ORDER_QUANTITY);
	send_task(w2, 3, "update_inventory", 3, NULL, NULL);
	expect_order(w2, 3, 1, s0 - ORDER_QUANTITY);
	assert_orders_applied(f, s0);
}

static void test_restock_zombie_sleeping(void **state)
{
	restock_zombie_sleeping(*state);
}

static void test_restock_zombie_after_supplier_answered(void **state)
{
	restock_zombie_after_supplier_answered(*state);
}

static void test_restock_zombie_inside_credit(void **state)
{
	restock_zombie_inside_credit(*state);
}

/* The control: the same overlaps with both workers --naive apply twice. */

static void naive(void **state)
{
	((struct fx *)*state)->naive = 1;
}

static void test_naive_order_zombie_sleeping(void **state)
{
	naive(state);
	order_zombie_sleeping(*state);
}

static void test_naive_order_zombie_waiting_for_lock_commits_last(void **state)
{
	naive(state);
	order_zombie_waiting_for_lock(*state, 0);
}

static void test_naive_order_zombie_waiting_for_lock_commits_first(void **state)
{
	naive(state);
	order_zombie_waiting_for_lock(*state, 1);
}

static void test_naive_order_zombie_inside_transaction(void **state)
{
	naive(state);
	order_zombie_inside_transaction(*state);
}

static void test_naive_restock_zombie_sleeping(void **state)
{
	naive(state);
	restock_zombie_sleeping(*state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_order_zombie_sleeping),
	    T(test_order_zombie_waiting_for_lock_commits_last),
	    T(test_order_zombie_waiting_for_lock_commits_first),
	    T(test_order_zombie_inside_transaction),
	    T(test_order_retry_times_out_behind_zombie_transaction),
	    T(test_restock_zombie_sleeping),
	    T(test_restock_zombie_after_supplier_answered),
	    T(test_restock_zombie_inside_credit),
	    T(test_naive_order_zombie_sleeping),
	    T(test_naive_order_zombie_waiting_for_lock_commits_last),
	    T(test_naive_order_zombie_waiting_for_lock_commits_first),
	    T(test_naive_order_zombie_inside_transaction),
	    T(test_naive_restock_zombie_sleeping),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
