/* test_startup.c — what a supervisor does before it lets anything out,
 * and who else may run beside it: the sync of what the previous run left,
 * one supervisor per state DB, a state DB locked by someone else, a
 * process out of descriptors, databases that are not databases, a
 * supplier that cannot start, and the words of --help and of errors. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "apps.h"
#include "config.h"
#include "httpc.h"
#include "testutil.h"

static char *dir;

static int setup(void **state)
{
	dir = tu_tmpdir("startup");
	return dir == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	tu_rmrf(dir);
	free(dir);
	return 0;
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int wait_for_file(const char *path, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (exists(path))
			return 0;
		tu_sleep_ms(20);
	}
	return -1;
}

/* Waits until the file at path contains needle. */
static int wait_for_text(const char *path, const char *needle, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 50) {
		if (tu_count_in_file(path, needle) > 0)
			return 0;
		tu_sleep_ms(50);
	}
	return -1;
}

/* One request that gives up after timeout_ms: the status, or -1. */
static int http_quick(const char *sock, const char *method, const char *path, int timeout_ms)
{
	struct httpc_response r = {0};
	char err[512];
	int status = -1;

	if (httpc_request(sock, method, path, NULL, NULL, 0, timeout_ms, &r, err, sizeof(err)) == 0)
		status = r.status;
	httpc_response_free(&r);
	return status;
}

static const char *wf_status(json_t *doc)
{
	json_t *wf = json_object_get(doc, "workflow");

	return json_string_value(json_object_get(wf != NULL ? wf : doc, "status"));
}

static void assert_completes(const struct tu_sup *s, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s/wait?timeout=30", id);
	json_t *out = NULL;

	assert_int_equal(tu_http(s, "GET", path, NULL, &out), 200);
	assert_non_null(wf_status(out));
	assert_string_equal(wf_status(out), "completed");
	json_decref(out);
	free(path);
}

static long long orders_of(const char *order_id)
{
	char *db = tu_fmt("%s/app.db", dir);
	char *sql = tu_fmt("SELECT count(*) FROM orders WHERE order_id = '%s'", order_id);
	long long n = tu_sql_int(db, sql);

	free(db);
	free(sql);
	return n;
}

/* The pid of the first worker slot, from /v1/stats (0 when none yet). */
static pid_t worker_pid(const struct tu_sup *s)
{
	json_t *out = NULL, *slot;
	pid_t pid = 0;

	if (tu_http(s, "GET", "/v1/stats", NULL, &out) == 200) {
		slot = json_array_get(json_object_get(json_object_get(out, "pool"), "slots"), 0);
		if (slot == NULL)
			slot = json_array_get(json_object_get(out, "slots"), 0);
		pid = (pid_t)json_integer_value(json_object_get(slot, "pid"));
	}
	json_decref(out);
	return pid;
}

static int step_running(const struct tu_sup *s, const char *id)
{
	char *path = tu_fmt("/v1/workflows/%s", id);
	json_t *out = NULL, *step;
	int running = 0;

	if (tu_http(s, "GET", path, NULL, &out) == 200) {
		step = json_array_get(json_object_get(out, "steps"), 0);
		running =
		    json_is_string(json_object_get(step, "status")) &&
		    strcmp(json_string_value(json_object_get(step, "status")), "running") == 0;
	}
	json_decref(out);
	free(path);
	return running;
}

/* ---- the restart window ------------------------------------------------------ */

/* A supervisor SIGKILLed while its sync thread had not yet synced its last
 * commits leaves them in the page cache. The next one must make them
 * durable before it lets anything out: with the sync of the state DB's
 * WAL held (libidem_slow_sync.so), no worker may run the workflow that
 * was in flight, and no client may be answered about the one that had
 * completed — until that sync returns. */
static void test_restart_syncs_before_anything_leaves(void **state)
{
	const char *extra[] = {"--workers=1", "--spare-worker=0", "--sync=full", NULL};
	const char *asan = getenv("ASAN_OPTIONS");
	char *gate = tu_fmt("%s/gate", dir), *held = tu_fmt("%s/gate.held", dir);
	char *preload = tu_fmt("LD_PRELOAD=%s/libidem_slow_sync.so", IDEM_BIN_DIR);
	char *hold = tu_fmt("IDEM_TEST_HOLD_SYNC=state.db-wal:%s", gate);
	char *asan_opts =
	    tu_fmt("ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : "");
	const char *env[] = {preload, hold, asan_opts, NULL};
	struct tu_sup s = {0};
	json_t *out = NULL;
	pid_t worker;

	/* Run 1: B completes; A is in flight on a stopped worker. */
	assert_int_equal(tu_sup_start(&s, dir, extra), 0);
	assert_int_equal(tu_http(&s, "POST", "/v1/workflows?wait=30s",
	                         "{\"input\":{\"order_id\":\"B\",\"product_id\":\"123456\","
	                         "\"quantity\":1}}",
	                         &out),
	                 201);
	assert_string_equal(wf_status(out), "completed");
	json_decref(out);
	worker = worker_pid(&s);
	assert_true(worker > 0);
	assert_int_equal(kill(worker, SIGSTOP), 0);
	assert_int_equal(tu_start_order(&s, "A", "123456", 1), 201);
	for (int i = 0; i < 250 && !step_running(&s, "A"); i++)
		tu_sleep_ms(20);
	assert_true(step_running(&s, "A"));
	tu_sup_kill9(&s);
	kill(worker, SIGKILL);
	assert_int_equal(orders_of("A"), 0);

	/* Run 2, with the state WAL's sync held. */
	assert_int_equal(tu_write_file(gate, "hold\n"), 0);
	assert_int_equal(tu_sup_spawn(&s, dir, extra, env), 0);
	if (wait_for_file(held, 15000) != 0)
		fail_msg("the restarted supervisor never synced its state DB's WAL");
	tu_sleep_ms(1500);
	if (orders_of("A") != 0)
		fail_msg("a worker ran A's activity before the restarted supervisor's first sync "
		         "of the state DB returned");
	if (http_quick(s.sock, "GET", "/v1/workflows/B", 500) != -1)
		fail_msg("a client was answered about B before the restarted supervisor's first "
		         "sync of the state DB returned");
	assert_int_equal(tu_wait_exit(s.pid, 0), -1);

	/* Released: everything goes on. */
	assert_int_equal(unlink(gate), 0);
	assert_int_equal(tu_wait_for_socket(s.sock, 15000), 0);
	assert_completes(&s, "A");
	assert_completes(&s, "B");
	assert_int_equal(orders_of("A"), 1);
	assert_int_equal(orders_of("B"), 1);
	assert_int_equal(tu_sup_stop(&s), 0);
	tu_sup_free(&s);
	free(gate);
	free(held);
	free(preload);
	free(hold);
	free(asan_opts);
}

/* ---- one supervisor per state DB ----------------------------------------------- */

static void test_second_supervisor_refused(void **state)
{
	char *dir2 = tu_fmt("%s/second", dir), *app = tu_fmt("--database=%s/app.db", dir);
	char *st = tu_fmt("--state-database=%s/state.db", dir);
	char *lock = tu_fmt("%s/state.db.lock", dir), *statedb = tu_fmt("%s/state.db", dir);
	const char *extra2[] = {app, st, NULL};
	struct tu_sup a = {0}, b = {0};
	struct stat before, after;
	char *text, *want;

	assert_int_equal(mkdir(dir2, 0755), 0);
	assert_int_equal(tu_sup_start(&a, dir, NULL), 0);
	assert_int_equal(tu_start_order(&a, "A1", "123456", 1), 201);
	assert_completes(&a, "A1");
	assert_int_equal(stat(statedb, &before), 0);

	/* Same databases, another socket: refused, at once, naming the live one. */
	assert_int_equal(tu_sup_spawn(&b, dir2, extra2, NULL), 0);
	assert_int_equal(tu_wait_exit(b.pid, 5000), 2);
	b.pid = 0;
	want = tu_fmt("another idem-supervisor (pid %ld, socket=%s)", (long)a.pid, a.sock);
	if (tu_count_in_file(b.log, want) != 1)
		fail_msg("the refused supervisor's log does not say \"%s\":\n%s", want,
		         tu_read_file(b.log));
	free(want);
	assert_false(exists(b.sock));
	assert_int_equal(stat(statedb, &after), 0);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mtime, after.st_mtime);
	text = tu_read_file(lock);
	want = tu_fmt("%ld socket=%s\n", (long)a.pid, a.sock);
	assert_string_equal(text, want);
	free(text);
	free(want);

	/* The live one goes on as if nothing happened. */
	assert_int_equal(tu_start_order(&a, "A2", "123456", 1), 201);
	assert_completes(&a, "A2");
	assert_int_equal(tu_sup_stop(&a), 0);

	/* Once it is gone, the lock is free again. */
	assert_int_equal(tu_sup_start(&b, dir2, extra2), 0);
	assert_completes(&b, "A2");
	assert_int_equal(tu_sup_stop(&b), 0);
	tu_sup_free(&a);
	tu_sup_free(&b);
	free(dir2);
	free(app);
	free(st);
	free(lock);
	free(statedb);
}

/* A process holding the state DB's write lock (a sqlite3 shell in a
 * transaction) longer than SQLite's busy timeout: the supervisor waits
 * for it and says so; it never stops over it. */
static void test_busy_state_db_waits(void **state)
{
	char *statedb = tu_fmt("%s/state.db", dir), *locked = tu_fmt("%s/locked", dir);
	struct tu_sup s = {0};
	pid_t holder;

	assert_int_equal(tu_sup_start(&s, dir, NULL), 0);
	holder = fork();
	assert_true(holder >= 0);
	if (holder == 0) {
		sqlite3 *db = NULL;

		if (sqlite3_open(statedb, &db) != SQLITE_OK ||
		    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
		    tu_write_file(locked, "1") != 0)
			_exit(1);
		tu_sleep_ms(7000); /* past DB_BUSY_TIMEOUT_MS */
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db);
		_exit(0);
	}
	assert_int_equal(wait_for_file(locked, 5000), 0);
	assert_int_equal(tu_start_order(&s, "L1", "123456", 1), 201);
	assert_int_equal(tu_wait_exit(holder, 10000), 0);
	assert_int_equal(tu_wait_exit(s.pid, 0), -1);
	assert_true(tu_count_in_file(s.log, "the state DB is locked by another process") >= 1);
	assert_completes(&s, "L1");
	assert_int_equal(orders_of("L1"), 1);
	assert_int_equal(tu_sup_stop(&s), 0);
	tu_sup_free(&s);
	free(statedb);
	free(locked);
}

/* ---- descriptors ------------------------------------------------------------------ */

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads an HTTP reply's status from fd within timeout_ms, or -1. */
static int read_status(int fd, int timeout_ms)
{
	char buf[4096];
	size_t used = 0;
	int status = -1;

	for (int waited = 0; waited < timeout_ms && used < sizeof(buf) - 1; waited += 10) {
		ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);

		if (n > 0)
			used += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			break;
		buf[used] = '\0';
		if (sscanf(buf, "HTTP/1.1 %d", &status) == 1 && strstr(buf, "\r\n\r\n") != NULL)
			return status;
		tu_sleep_ms(10);
	}
	return -1;
}

/* A supervisor with few descriptors, every one of them taken by idle
 * connections before its first start: the start still commits and
 * syncs (the sync thread's descriptors were opened at start-up), and the
 * supervisor refuses connections instead of stopping. */
static void test_fd_shortage_before_first_start(void **state)
{
	static const char body[] =
	    "{\"input\":{\"order_id\":\"F1\",\"product_id\":\"123456\",\"quantity\":1}}";
	char *sock = tu_fmt("%s/idem.sock", dir), *log = tu_fmt("%s/supervisor.log", dir);
	char *a[] = {tu_fmt("--socket=%s", sock), tu_fmt("--database=%s/app.db", dir),
	             tu_fmt("--state-database=%s/state.db", dir),
	             tu_fmt("--supplier-database=%s/supplier.db", dir),
	             tu_fmt("--supplier-socket=%s/supplier.sock", dir)};
	char *argv[] = {
	    "/bin/sh",
	    "-c",
	    "ulimit -n 64 && exec \"$0\" --env=/dev/null --workers=1 --sync=full \"$@\"",
	    (char *)tu_bin("idem-supervisor"),
	    a[0],
	    a[1],
	    a[2],
	    a[3],
	    a[4],
	    NULL};
	int conns[200], nconns = 0, status;
	struct tu_sup s = {0};
	char *req;
	pid_t pid;

	pid = tu_spawn(argv, NULL, log);
	assert_true(pid > 0);
	assert_int_equal(tu_wait_for_socket(sock, 10000), 0);
	while (nconns < 200 && (conns[nconns] = connect_unix(sock)) >= 0)
		nconns++;
	assert_true(nconns > 64);
	if (wait_for_text(log, "out of file descriptors", 10000) != 0)
		fail_msg("the supervisor never ran out of descriptors:\n%s", tu_read_file(log));

	/* The first connection was accepted before the shortage. */
	req = tu_fmt("POST /v1/workflows HTTP/1.1\r\nHost: idem\r\nContent-Type: "
	             "application/json\r\nContent-Length: %zu\r\n\r\n%s",
	             strlen(body), body);
	assert_int_equal(write(conns[0], req, strlen(req)), (ssize_t)strlen(req));
	status = read_status(conns[0], 20000);
	for (int i = 0; i < nconns; i++)
		close(conns[i]);
	if (status != 201)
		fail_msg("the start on an open connection got %d (201 expected):\n%s", status,
		         tu_read_file(log));
	assert_int_equal(tu_wait_exit(pid, 0), -1);
	assert_int_equal(tu_count_in_file(log, "state DB failed"), 0);
	s.sock = sock;
	assert_int_equal(tu_wait_for_socket(sock, 10000), 0);
	assert_completes(&s, "F1");
	assert_int_equal(tu_stop_child(pid, 10000), 0);
	free(req);
	for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++)
		free(a[i]);
	free(sock);
	free(log);
}

/* ---- databases and the supplier ----------------------------------------------------- */

static void write_garbage(const char *path)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (int i = 0; i < 400; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
}

/* A file that is not SQLite under each database key: the supervisor
 * refuses to start (exit 4), naming the key. */
static void check_not_a_database(const char *file, const char *key)
{
	char *path = tu_fmt("%s/%s", dir, file), *want = tu_fmt("%s=%s: ", key, path);
	struct tu_sup s = {0};

	write_garbage(path);
	assert_int_equal(tu_sup_spawn(&s, dir, NULL, NULL), 0);
	assert_int_equal(tu_wait_exit(s.pid, 10000), 4);
	s.pid = 0;
	if (tu_count_in_file(s.log, want) != 1)
		fail_msg("the log does not name %s:\n%s", want, tu_read_file(s.log));
	assert_true(tu_count_in_file(s.log, "file is not a database") >= 1);
	tu_sup_free(&s);
	unlink(path);
	free(path);
	free(want);
}

static void test_databases_that_are_not_sqlite(void **state)
{
	check_not_a_database("supplier.db", "SUPPLIER_DATABASE");
	check_not_a_database("state.db", "STATE_DATABASE");
	check_not_a_database("app.db", "DATABASE");
}

/* A supplier that exits at every start (its ledger written by a newer
 * idem) is respawned a few times, then given up with an error that says
 * what to fix; the supervisor goes on. */
static void test_supplier_crash_loop_gives_up(void **state)
{
	char *ledger = tu_fmt("%s/supplier.db", dir);
	struct tu_sup s = {0};
	sqlite3 *db = NULL;
	int spawned;

	assert_int_equal(sqlite3_open(ledger, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(tu_sup_start(&s, dir, NULL), 0);
	if (wait_for_text(s.log, "the supplier gave up", 30000) != 0)
		fail_msg("the supplier was never given up:\n%s", tu_read_file(s.log));
	spawned = tu_count_in_file(s.log, "supplier spawned");
	assert_int_equal(spawned, 5);
	tu_sleep_ms(2500);
	assert_int_equal(tu_count_in_file(s.log, "supplier spawned"), spawned);
	assert_int_equal(tu_wait_exit(s.pid, 0), -1);
	assert_int_equal(tu_sup_stop(&s), 0);
	tu_sup_free(&s);
	free(ledger);
}

/* ---- words ------------------------------------------------------------------------------ */

/* Every flag --help prints is one the supervisor accepts. */
static void test_help_lists_accepted_flags(void **state)
{
	char *argv[] = {(char *)tu_bin("idem-supervisor"), "--help", NULL};
	char *out = NULL, *line, *save = NULL, err0[256];
	size_t nkeys, seen = 0;
	const struct config_key *keys;

	assert_int_equal(apps_add_config_keys(err0, sizeof(err0)), 0);
	keys = config_keys(&nkeys);

	assert_int_equal(tu_run(argv, NULL, 10000, &out), 0);
	assert_non_null(out);
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		struct idem_config c;
		char flag[128], arg[700], err[1024];
		char *args[] = {"idem-supervisor", arg, NULL};
		int i = 1;

		if (strncmp(line, "  --", 4) != 0 || seen >= nkeys)
			continue;
		assert_int_equal(sscanf(line + 2, "%127s", flag), 1);
		snprintf(arg, sizeof(arg), "%s=%s", flag, keys[seen].def);
		config_defaults(&c);
		if (config_flag(&c, 2, args, &i, err, sizeof(err)) != 1)
			fail_msg("--help lists %s, which the supervisor does not accept", flag);
		seen++;
	}
	assert_int_equal(seen, nkeys);
	free(out);
}

/* A .env line with terminal control bytes is quoted with them escaped. */
static void test_env_control_bytes_escaped(void **state)
{
	char *env = tu_fmt("%s/bad.env", dir), *log = tu_fmt("%s/out.log", dir);
	char *envflag = tu_fmt("--env=%s", env);
	char *argv[] = {(char *)tu_bin("idem-supervisor"), envflag, NULL};
	char *text;
	pid_t pid;

	assert_int_equal(tu_write_file(env, "WORKERS=\x1b[2J\x1b[31mred\x07\n"), 0);
	pid = tu_spawn(argv, NULL, log);
	assert_int_equal(tu_wait_exit(pid, 10000), 2);
	text = tu_read_file(log);
	assert_non_null(text);
	assert_null(strchr(text, 0x1b));
	assert_null(strchr(text, 0x07));
	assert_non_null(strstr(text, "\\x1b[2J"));
	assert_non_null(strstr(text, "WORKERS"));
	free(text);
	free(env);
	free(log);
	free(envflag);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_restart_syncs_before_anything_leaves),
	    T(test_second_supervisor_refused),
	    T(test_busy_state_db_waits),
	    T(test_fd_shortage_before_first_start),
	    T(test_databases_that_are_not_sqlite),
	    T(test_supplier_crash_loop_gives_up),
	    T(test_help_lists_accepted_flags),
	    T(test_env_control_bytes_escaped),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
