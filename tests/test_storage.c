/* test_storage.c — storage faults (shared/faultvfs.c). First the shim on
 * its own: the spec parser and FAULT_VFS's config errors, then scratch
 * databases whose writes, syncs, truncates and reads fail: a failed
 * transaction leaves the database as it was, integrity_check passes, and
 * the next transaction works once the fault is gone.
 *
 * Then the sweep, with the real programs: for the state DB (supervisor)
 * and the app DB (the one worker), transient and persistent, write, sync
 * and read, the Nth call fails for N = 1, 2, ... until a run makes fewer
 * than N calls (a run counts about 60 state-DB writes, 12 syncs, 12
 * reads; the worker about 12 app-DB writes, 2 syncs, 8 reads).
 * After each faulty run, a clean start must finish A12 with the seed's
 * outcome: stock 1001, one order, one restock, one supplier order, a
 * passing checker (integrity included), and nothing the faulty run
 * acknowledged lost. */
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
#include <sqlite3.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "exitcodes.h"
#include "faultvfs.h"
#include "testutil.h"

#define SWEEP_MAX_N 90            /* a cap; the most calls of a kind in a run: ~60 */
#define FAULTY_RUN_MS 5000        /* the longest a faulty run is watched */
#define PERSISTENT_ERRORS 3       /* DatabaseErrors that show a persistent fault */
#define SPEC_OFF_NTH "1000000000" /* an nth no test reaches: counted, never failed */

/* ---- the spec ------------------------------------------------------------------ */

static void parse_ok(const char *text, struct faultvfs_spec *spec)
{
	char err[512] = "";

	if (faultvfs_parse(text, spec, err, sizeof(err)) != 0)
		fail_msg("faultvfs_parse(\"%s\"): %s", text, err);
}

static void test_parse(void **state)
{
	struct faultvfs_spec s;

	parse_ok("", &s);
	assert_false(s.enabled);
	parse_ok("target=state,op=write,nth=3,mode=persistent", &s);
	assert_true(s.enabled);
	assert_string_equal(s.target, "state");
	assert_int_equal(s.ops, FAULTVFS_WRITE);
	assert_int_equal(s.nth, 3);
	assert_int_equal(s.mode, FAULTVFS_PERSISTENT);
	assert_int_equal(s.error, FAULTVFS_IOERR);
	parse_ok(" target=app , op=sync+truncate,rate=0.25,error=full,seed=7 ", &s);
	assert_string_equal(s.target, "app");
	assert_int_equal(s.ops, FAULTVFS_SYNC | FAULTVFS_TRUNCATE);
	assert_int_equal(s.nth, 0);
	assert_true(s.rate == 0.25);
	assert_int_equal(s.mode, FAULTVFS_TRANSIENT);
	assert_int_equal(s.error, FAULTVFS_FULL);
	assert_true(s.seed == 7);
	parse_ok("target=app,op=any,nth=1", &s);
	assert_int_equal(s.ops, FAULTVFS_ANY);
}

static void parse_fails(const char *text, const char *want)
{
	struct faultvfs_spec s;
	char err[512] = "";

	assert_int_equal(faultvfs_parse(text, &s, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("faultvfs_parse(\"%s\") said \"%s\", not \"%s\"", text, err, want);
	assert_false(s.enabled);
}

static void test_parse_errors(void **state)
{
	parse_fails("target=state,op=wrtie,nth=3",
	            "FAULT_VFS: op=wrtie is not one of write, sync, truncate, read, any");
	parse_fails("target=state,op=write+fsync,nth=3", "op=fsync is not one of");
	parse_fails("target=disk,op=write,nth=1", "target=disk is not one of state, app");
	parse_fails("op=write,nth=1", "target= is missing");
	parse_fails("target=app,nth=1", "op= is missing");
	parse_fails("target=app,op=write", "nth=N or rate=R is missing");
	parse_fails("target=app,op=write,nth=1,rate=0.5", "exclude each other");
	parse_fails("target=app,op=write,nth=0", "nth=0 is not a call number");
	parse_fails("target=app,op=write,nth=3x", "nth=3x is not a call number");
	parse_fails("target=app,op=write,rate=1.5", "rate=1.5 is not a probability");
	parse_fails("target=app,op=write,rate=-1", "rate=-1 is not a probability");
	parse_fails("target=app,op=write,nth=1,mode=sometimes", "mode=sometimes is not one of");
	parse_fails("target=app,op=write,nth=1,error=eio", "error=eio is not one of ioerr, full");
	parse_fails("target=app,op=write,nth=1,seed=x", "seed=x is not a number");
	parse_fails("target=app,op=write,nth=1,when=now", "unknown part when=");
	parse_fails("target=app,op=write,nth=1,nth=2", "nth= is given twice");
	parse_fails("target=app,write,nth=1", "\"write\" is not KEY=VALUE");
}

/* FAULT_VFS is a config key like the others: a bad spec names the key,
 * the part at fault and what is allowed. */
static void test_config_key(void **state)
{
	struct idem_config *c = malloc(sizeof(*c));
	char err[2048] = "";

	config_defaults(c);
	assert_string_equal(c->fault_vfs, "");
	assert_int_equal(config_set(c, "FAULT_VFS", "target=state,op=sync,nth=2", err, sizeof(err)),
	                 0);
	assert_string_equal(c->fault_vfs, "target=state,op=sync,nth=2");
	assert_int_equal(
	    config_set(c, "FAULT_VFS", "target=state,op=wrtie,nth=3", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "config: FAULT_VFS=target=state,op=wrtie,nth=3 is not a "
	                            "storage fault spec: op=wrtie is not one of write, sync"));
	assert_non_null(strstr(err, "(allowed: \"\" (off) or target=state|app"));
	assert_string_equal(c->fault_vfs, "target=state,op=sync,nth=2");
	free(c);
}

/* ---- the shim on scratch databases ------------------------------------------------ */

struct scratch {
	char *dir;
	char *path; /* dir/s.db, the target */
	sqlite3 *db;
};

static int scratch_setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	s->dir = tu_tmpdir("storage");
	s->path = tu_fmt("%s/s.db", s->dir);
	*state = s;
	return s->dir != NULL ? 0 : -1;
}

static int scratch_teardown(void **state)
{
	struct scratch *s = *state;

	db_close(s->db);
	tu_rmrf(s->dir);
	free(s->dir);
	free(s->path);
	free(s);
	return 0;
}

/* Installs spec (role "state") for path: later calls count from 0. */
static void install(const char *spec, const char *path)
{
	struct faultvfs_spec fs;
	char err[512] = "";

	parse_ok(spec, &fs);
	if (faultvfs_install(&fs, "state", path, err, sizeof(err)) != 1)
		fail_msg("faultvfs_install(%s, %s): %s", spec, path, err);
}

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db = NULL;
	char err[512] = "";

	if (db_open(path, DB_SYNC_FULL, &db, err, sizeof(err)) != 0)
		fail_msg("db_open: %s", err);
	return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char err[512] = "";

	if (db_exec(db, sql, err, sizeof(err)) != 0)
		fail_msg("%s: %s", sql, err);
}

/* One transaction that adds row v (with a page's worth of text, so that
 * it writes several pages). Returns SQLite's extended code of the first
 * failing statement, rolled back, or SQLITE_OK. */
static int add_row(sqlite3 *db, int v)
{
	char sql[128];
	int rc;

	snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, randomblob(3000))", v);
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return SQLITE_OK;
	rc = sqlite3_extended_errcode(db);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	assert_true(sqlite3_get_autocommit(db));
	return rc;
}

static long long rows(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	long long n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL),
	                 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void integrity_ok(sqlite3 *db)
{
	char err[512] = "";

	if (db_integrity_check(db, err, sizeof(err)) != 0)
		fail_msg("%s", err);
}

/* A scratch database with a table of 5 rows, opened through the shim
 * (which counts but fails nothing yet). */
static void scratch_fill(struct scratch *s)
{
	install("target=state,op=any,nth=" SPEC_OFF_NTH, s->path);
	s->db = open_db(s->path);
	exec_ok(s->db, "CREATE TABLE t (v INTEGER PRIMARY KEY, pad BLOB)");
	for (int i = 1; i <= 5; i++)
		assert_int_equal(add_row(s->db, i), SQLITE_OK);
}

/* Closes and reopens: what is on disk, seen by a new connection. */
static void reopen(struct scratch *s)
{
	assert_int_equal(db_close(s->db), SQLITE_OK);
	s->db = open_db(s->path);
}

static void test_write_fault_transient(void **state)
{
	struct scratch *s = *state;

	scratch_fill(s);
	install("target=state,op=write,nth=1", s->path);
	assert_int_equal(add_row(s->db, 6), SQLITE_IOERR_WRITE);
	assert_int_equal(faultvfs_injected(), 1);
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
	/* Transient: the next transaction goes through, on the same connection. */
	assert_int_equal(add_row(s->db, 7), SQLITE_OK);
	assert_int_equal(rows(s->db), 6);
	assert_int_equal(faultvfs_injected(), 1);
	reopen(s);
	assert_int_equal(rows(s->db), 6);
	integrity_ok(s->db);
}

/* Every write from the 2nd on fails: the commit's first frame is half
 * written, then nothing more gets through; the data stays as it was and
 * the database stays sound. Once the disk is back, the same connection
 * writes again. */
static void test_write_fault_persistent(void **state)
{
	struct scratch *s = *state;

	scratch_fill(s);
	install("target=state,op=write,nth=2,mode=persistent", s->path);
	for (int i = 0; i < 3; i++)
		assert_int_equal(add_row(s->db, 6 + i), SQLITE_IOERR_WRITE);
	assert_true(faultvfs_injected() >= 3);
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
	install("target=state,op=write,nth=" SPEC_OFF_NTH, s->path);
	assert_int_equal(add_row(s->db, 9), SQLITE_OK);
	assert_int_equal(rows(s->db), 6);
	reopen(s);
	assert_int_equal(rows(s->db), 6);
	integrity_ok(s->db);
}

/* A statement that hits a write fault (the cache spills inside the
 * transaction) ends the whole transaction: SQLite rolls it back, and the
 * next statement would run, and commit, on its own. Code that groups
 * writes in one transaction must stop writing after the first error. */
static void test_failed_statement_ends_transaction(void **state)
{
	struct scratch *s = *state;
	int rc = SQLITE_OK;

	scratch_fill(s);
	exec_ok(s->db, "PRAGMA cache_size=2");
	install("target=state,op=write,nth=1", s->path);
	exec_ok(s->db, "BEGIN IMMEDIATE");
	for (int i = 0; i < 50 && rc == SQLITE_OK; i++) {
		char sql[96];

		snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d, randomblob(3000))", 100 + i);
		rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	}
	assert_int_equal(sqlite3_extended_errcode(s->db), SQLITE_IOERR_WRITE);
	assert_true(sqlite3_get_autocommit(s->db));
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
}

/* A failed fsync of the WAL: the commit is reported failed and is not
 * visible, not even to a new connection after this one closed. */
static void test_sync_fault(void **state)
{
	struct scratch *s = *state;

	scratch_fill(s);
	install("target=state,op=sync,nth=1", s->path);
	assert_int_equal(add_row(s->db, 6), SQLITE_IOERR_FSYNC);
	assert_int_equal(faultvfs_injected(), 1);
	assert_int_equal(rows(s->db), 5);
	reopen(s);
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
	assert_int_equal(add_row(s->db, 7), SQLITE_OK);
	assert_int_equal(rows(s->db), 6);
}

static void test_full_disk(void **state)
{
	struct scratch *s = *state;

	scratch_fill(s);
	install("target=state,op=write,nth=1,error=full", s->path);
	assert_int_equal(add_row(s->db, 6), SQLITE_FULL);
	assert_string_equal(sqlite3_errstr(SQLITE_FULL), "database or disk is full");
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
	assert_int_equal(add_row(s->db, 7), SQLITE_OK);
	assert_int_equal(rows(s->db), 6);
}

/* A read fault while a new connection opens: db_open fails, naming the
 * database and the error; the next open works. */
static void test_read_fault(void **state)
{
	struct scratch *s = *state;
	sqlite3 *db = NULL;
	char err[512] = "";

	scratch_fill(s);
	assert_int_equal(db_close(s->db), SQLITE_OK);
	s->db = NULL;
	install("target=state,op=read,nth=1", s->path);
	assert_int_equal(db_open(s->path, DB_SYNC_FULL, &db, err, sizeof(err)), -1);
	assert_null(db);
	assert_non_null(strstr(err, s->path));
	assert_non_null(strstr(err, "disk I/O error"));
	assert_int_equal(faultvfs_injected(), 1);
	s->db = open_db(s->path);
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
}

/* PRAGMA wal_checkpoint(TRUNCATE) truncates the WAL: that call fails. */
static void test_truncate_fault(void **state)
{
	struct scratch *s = *state;

	scratch_fill(s);
	install("target=state,op=truncate,nth=1", s->path);
	assert_int_not_equal(
	    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_extended_errcode(s->db), SQLITE_IOERR_TRUNCATE);
	assert_int_equal(faultvfs_injected(), 1);
	assert_int_equal(rows(s->db), 5);
	integrity_ok(s->db);
	assert_int_equal(
	    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
	    SQLITE_OK);
	reopen(s);
	assert_int_equal(rows(s->db), 5);
}

/* Only the target's files count: another database, even one whose name
 * starts with the target's, passes through untouched. A spec for another
 * role installs nothing. */
static void test_other_files_pass_through(void **state)
{
	struct scratch *s = *state;
	char *other = tu_fmt("%s2", s->path);
	struct faultvfs_spec fs;
	char err[256];

	install("target=state,op=any,nth=1,mode=persistent", s->path);
	s->db = open_db(other);
	exec_ok(s->db, "CREATE TABLE t (v INTEGER PRIMARY KEY, pad BLOB)");
	for (int i = 1; i <= 5; i++)
		assert_int_equal(add_row(s->db, i), SQLITE_OK);
	assert_int_equal(db_close(s->db), SQLITE_OK);
	s->db = NULL;
	assert_int_equal(faultvfs_calls(), 0);
	assert_int_equal(faultvfs_injected(), 0);
	parse_ok("target=app,op=write,nth=1", &fs);
	assert_int_equal(faultvfs_install(&fs, "state", other, err, sizeof(err)), 0);
	free(other);
}

/* Which of 40 transactions fail under rate=0.05 and a seed, as a string. */
static void rate_pattern(struct scratch *s, const char *name, const char *seed, char *out)
{
	char *spec = tu_fmt("target=state,op=write,rate=0.05,seed=%s", seed);

	free(s->path);
	s->path = tu_fmt("%s/%s", s->dir, name);
	db_close(s->db);
	scratch_fill(s);
	install(spec, s->path);
	for (int i = 0; i < 40; i++)
		out[i] = add_row(s->db, 100 + i) == SQLITE_OK ? '.' : 'F';
	out[40] = '\0';
	integrity_ok(s->db);
	free(spec);
}

/* rate=R fails calls by a hash of (seed, call number): the same seed
 * fails the same calls, another seed others. */
static void test_rate_is_deterministic(void **state)
{
	struct scratch *s = *state;
	char a[41], b[41], c[41];

	rate_pattern(s, "a.db", "42", a);
	rate_pattern(s, "b.db", "42", b);
	rate_pattern(s, "c.db", "43", c);
	fprintf(stderr, "rate=0.05: seed 42 %s, seed 43 %s\n", a, c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_non_null(strchr(a, 'F'));
	assert_non_null(strchr(a, '.'));
}

/* ---- the sweep -------------------------------------------------------------------- */

struct combo {
	const char *target; /* state | app */
	const char *op;     /* write | sync */
	const char *mode;   /* transient | persistent */
};

/* What one faulty run did, from the outside and from its logs. */
struct run {
	long n;
	int exit_code;  /* -1 while running */
	int acked;      /* the start of A12 was answered 201 */
	int completed;  /* A12 was seen completed */
	int db_errors;  /* DatabaseError attempts in the history */
	long injected;  /* faults, summed over the processes' exit lines */
	int shims_on;   /* processes that installed the shim */
	int shims_done; /* of those, how many logged their count at exit */
};

/* The totals of one combination's sweep. */
struct tally {
	int runs, faulty, sup_exit1, sup_exit4, completed_anyway, acked;
	long first_clean;
};

static int sweep_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Starts idem-supervisor on dir (as tu_sup_start does), logging to log,
 * with the fault spec or none. Returns 0 once its socket answers, or -1
 * when it exited first, with its exit code in *exit_code. */
static int sup_spawn(struct tu_sup *s, const char *dir, const char *log, const char *fault,
                     int *exit_code)
{
	char *argv[16];
	int n = 0;
	int64_t deadline = clock_mono_ms() + 10000;

	free(s->sock);
	free(s->log);
	s->dir = (char *)dir;
	s->sock = tu_fmt("%s/idem.sock", dir);
	s->log = tu_fmt("%s/%s", dir, log);
	argv[n++] = (char *)tu_bin("idem-supervisor");
	argv[n++] = "--env=/dev/null";
	argv[n++] = tu_fmt("--socket=%s", s->sock);
	argv[n++] = tu_fmt("--database=%s/app.db", dir);
	argv[n++] = tu_fmt("--state-database=%s/state.db", dir);
	argv[n++] = tu_fmt("--supplier-database=%s/supplier.db", dir);
	argv[n++] = tu_fmt("--supplier-socket=%s/supplier.sock", dir);
	argv[n++] = tu_fmt("--fault-vfs=%s", fault != NULL ? fault : "");
	argv[n++] = "--workers=1";
	argv[n++] = "--retry-initial-interval=10ms";
	argv[n++] = "--retry-maximum-interval=100ms";
	argv[n] = NULL;
	s->pid = tu_spawn(argv, NULL, s->log);
	for (int i = 2; i < 8; i++)
		free(argv[i]);
	assert_true(s->pid > 0);
	while (clock_mono_ms() < deadline) {
		*exit_code = tu_wait_exit(s->pid, 0);
		if (*exit_code >= 0) {
			s->pid = 0;
			return -1;
		}
		if (tu_wait_for_socket(s->sock, 20) == 0)
			return 0;
	}
	fail_msg("idem-supervisor did not start within 10 s (log %s)", s->log);
	return -1;
}

static void dump_log(const char *path)
{
	char *text = tu_read_file(path);

	fprintf(stderr, "---- %s ----\n%s\n", path, text != NULL ? text : "(none)");
	free(text);
}

/* The number of "failed" events of A12 with error type DatabaseError. */
static int db_error_count(const struct tu_sup *s)
{
	json_t *body = NULL, *events;
	int n = 0;

	if (tu_http(s, "GET", "/v1/workflows/A12/history", NULL, &body) != 200) {
		json_decref(body);
		return 0;
	}
	events = json_object_get(body, "events");
	for (size_t i = 0; i < json_array_size(events); i++) {
		json_t *e = json_array_get(events, i);
		const char *type =
		    json_string_value(json_object_get(json_object_get(e, "detail"), "error_type"));

		n += strcmp(json_string_value(json_object_get(e, "kind")), "failed") == 0 &&
		     type != NULL && strcmp(type, "DatabaseError") == 0;
	}
	json_decref(body);
	return n;
}

static int wf_completed(const struct tu_sup *s)
{
	json_t *wf = NULL;
	int done = tu_http(s, "GET", "/v1/workflows/A12", NULL, &wf) == 200 &&
	           strcmp(json_string_value(json_object_get(wf, "status")), "completed") == 0;

	json_decref(wf);
	return done;
}

/* Watches a faulty run until A12 completes, the supervisor exits, or a
 * persistent fault has failed a few attempts in a row. */
static void watch(struct tu_sup *s, const struct combo *c, struct run *r)
{
	int64_t deadline = clock_mono_ms() + FAULTY_RUN_MS;
	int persistent = strcmp(c->mode, "persistent") == 0;

	while (clock_mono_ms() < deadline) {
		r->exit_code = tu_wait_exit(s->pid, 0);
		if (r->exit_code >= 0) {
			s->pid = 0;
			return;
		}
		if (wf_completed(s)) {
			r->completed = 1;
			break;
		}
		r->db_errors = db_error_count(s);
		if (persistent && r->db_errors >= PERSISTENT_ERRORS)
			break;
		tu_sleep_ms(10);
	}
	r->db_errors = db_error_count(s);
	r->exit_code = tu_sup_stop(s);
}

/* Sums what the processes with the shim logged. */
static void read_counts(const char *log, struct run *r)
{
	char *text = tu_read_file(log);
	const char *done = "msg=\"storage faults injected (FAULT_VFS)\"";

	assert_non_null(text);
	for (const char *p = text; (p = strstr(p, "msg=\"storage fault injection on")); p++)
		r->shims_on++;
	for (const char *p = text; (p = strstr(p, done)) != NULL; p++) {
		const char *v = strstr(p, "injected=");

		r->shims_done++;
		r->injected += v != NULL ? strtol(v + 9, NULL, 10) : 1;
	}
	free(text);
}

/* The faulty run ended the way a fault may end it: a clean stop, a
 * state-DB failure that names SQLite's error, or a start-up that could
 * not open the state DB. */
static void check_faulty_exit(const struct combo *c, const struct run *r, const char *log)
{
	char *text = tu_read_file(log);
	int ok = 0;

	assert_non_null(text);
	if (r->exit_code == IDEM_EXIT_OK)
		ok = 1;
	else if (r->exit_code == IDEM_EXIT_FAIL && strcmp(c->target, "state") == 0)
		ok = strstr(text, "state DB failed; stopping (a restart resumes from the last "
		                  "commit)") != NULL &&
		     strstr(text, "disk I/O error") != NULL;
	else if (r->exit_code == IDEM_EXIT_DB && strcmp(c->target, "state") == 0)
		ok = strstr(text, "cannot start") != NULL && strstr(text, "disk I/O error") != NULL;
	free(text);
	if (!ok) {
		dump_log(log);
		fail_msg("%s/%s/%s N=%ld: the faulty run ended with exit %d", c->target, c->op,
		         c->mode, r->n, r->exit_code);
	}
}

static long long app_int(const char *dir, const char *db, const char *sql)
{
	char *path = tu_fmt("%s/%s", dir, db);
	long long v = tu_sql_int(path, sql);

	free(path);
	return v;
}

/* A clean start finishes A12 with the seed's outcome, and keeps what the
 * faulty run acknowledged. */
static void recover_and_check(const char *dir, const struct combo *c, const struct run *r)
{
	struct tu_sup s = {0};
	json_t *body = NULL, *wf;
	int status, exit_code = -1;

	if (sup_spawn(&s, dir, "clean.log", NULL, &exit_code) != 0) {
		dump_log(s.log);
		fail_msg("%s/%s/%s N=%ld: the clean start failed (exit %d)", c->target, c->op,
		         c->mode, r->n, exit_code);
	}
	status = tu_http(&s, "GET", "/v1/workflows/A12", NULL, NULL);
	if (r->acked && status != 200)
		fail_msg("%s/%s/%s N=%ld: the faulty run acknowledged A12, the restart lost it "
		         "(GET status %d)",
		         c->target, c->op, c->mode, r->n, status);
	if (status != 200) {
		status = tu_start_order(&s, "A12", "123456", 999);
		assert_true(status == 201 || status == 200);
	}
	assert_int_equal(tu_http(&s, "GET", "/v1/workflows/A12/wait?timeout=20", NULL, &body), 200);
	wf = json_object_get(body, "workflow");
	if (strcmp(json_string_value(json_object_get(wf, "status")), "completed") != 0) {
		dump_log(s.log);
		fail_msg("%s/%s/%s N=%ld: A12 did not complete after the restart", c->target, c->op,
		         c->mode, r->n);
	}
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(wf, "result"), "final_stock")),
	    1001);
	json_decref(body);
	assert_int_equal(
	    app_int(dir, "app.db", "SELECT stock FROM products WHERE product_id = '123456'"), 1001);
	assert_int_equal(app_int(dir, "app.db", "SELECT count(*) FROM orders"), 1);
	assert_int_equal(app_int(dir, "app.db", "SELECT count(*) FROM restocks"), 1);
	assert_int_equal(app_int(dir, "supplier.db", "SELECT count(*) FROM supplier_orders"), 1);
	assert_int_equal(tu_http(&s, "GET", "/v1/check", NULL, &body), 200);
	if (!json_is_true(json_object_get(body, "ok"))) {
		char *text = json_dumps(body, JSON_INDENT(1));
		fail_msg("%s/%s/%s N=%ld: check failed:\n%s", c->target, c->op, c->mode, r->n,
		         text);
	}
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(body, "counts"), "integrity")), 0);
	json_decref(body);
	assert_int_equal(tu_sup_stop(&s), 0);
	tu_sup_free(&s);
}

/* One N: the faulty run, then the clean one. Returns 1 when the faulty
 * run completed A12 without a fault: every later N would too. */
static int sweep_n(const struct combo *c, long n, struct tally *t)
{
	char *dir = tu_tmpdir("storage");
	char *fault = tu_fmt("target=%s,op=%s,nth=%ld,mode=%s", c->target, c->op, n, c->mode);
	char *log = tu_fmt("%s/faulty.log", dir);
	struct tu_sup s = {0};
	struct run r = {.n = n, .exit_code = -1};
	int clean;

	assert_non_null(dir);
	if (sup_spawn(&s, dir, "faulty.log", fault, &r.exit_code) == 0) {
		r.acked = tu_start_order(&s, "A12", "123456", 999) == 201;
		watch(&s, c, &r);
	}
	read_counts(log, &r);
	check_faulty_exit(c, &r, log);
	recover_and_check(dir, c, &r);
	clean = r.completed && r.injected == 0 && r.shims_on > 0 && r.shims_on == r.shims_done &&
	        r.exit_code == 0;
	t->runs++;
	t->faulty += r.injected > 0;
	t->sup_exit1 += r.exit_code == IDEM_EXIT_FAIL;
	t->sup_exit4 += r.exit_code == IDEM_EXIT_DB;
	t->completed_anyway += r.completed && r.injected > 0;
	t->acked += r.acked;
	tu_sup_free(&s);
	tu_rmrf(dir);
	free(dir);
	free(fault);
	free(log);
	return clean;
}

static void sweep(const char *target, const char *op, const char *mode)
{
	const struct combo c = {target, op, mode};
	struct tally t = {0};
	int64_t start = clock_mono_ms();
	/* IDEM_STORAGE_STRIDE=K: every Kth N only (ctest sets 2, and 12 under
	 * the sanitizers, whose build is there for memory errors and runs each
	 * supervisor several times slower; scripts/nightly runs the whole
	 * sweep); N = 1 is always tried. */
	const char *stride_env = getenv("IDEM_STORAGE_STRIDE");
	long stride = stride_env != NULL && atol(stride_env) > 0 ? atol(stride_env) : 1;

	for (long n = 1; n <= SWEEP_MAX_N && t.first_clean == 0; n += stride)
		if (sweep_n(&c, n, &t))
			t.first_clean = n;
	fprintf(stderr,
	        "storage sweep target=%s op=%s mode=%s: %d runs in %lld ms; faults in %d; "
	        "supervisor exits: %d state DB failed, %d could not start; A12 completed despite "
	        "a fault in %d; start acknowledged in %d; %s %ld\n",
	        target, op, mode, t.runs, (long long)(clock_mono_ms() - start), t.faulty,
	        t.sup_exit1, t.sup_exit4, t.completed_anyway, t.acked,
	        t.first_clean ? "first run without a fault at N ="
	                      : "no run without a fault up to N =",
	        t.first_clean ? t.first_clean : (long)SWEEP_MAX_N);
	/* N = 1 always hits something: the sweep tests what it claims to. */
	assert_true(t.faulty > 0);
}

static void test_sweep_state_write_transient(void **state)
{
	sweep("state", "write", "transient");
}
static void test_sweep_state_write_persistent(void **state)
{
	sweep("state", "write", "persistent");
}
static void test_sweep_state_sync_transient(void **state)
{
	sweep("state", "sync", "transient");
}
static void test_sweep_state_sync_persistent(void **state)
{
	sweep("state", "sync", "persistent");
}
static void test_sweep_app_write_transient(void **state)
{
	sweep("app", "write", "transient");
}
static void test_sweep_app_write_persistent(void **state)
{
	sweep("app", "write", "persistent");
}
static void test_sweep_app_sync_transient(void **state)
{
	sweep("app", "sync", "transient");
}
static void test_sweep_app_sync_persistent(void **state)
{
	sweep("app", "sync", "persistent");
}
/* Reads are not in the sweep, but cheap: after start-up the
 * supervisor reads the state DB from its cache, and a worker that cannot
 * read the app DB at open exits IDEM_EXIT_DB and is respawned. */
static void test_sweep_state_read_transient(void **state)
{
	sweep("state", "read", "transient");
}
static void test_sweep_state_read_persistent(void **state)
{
	sweep("state", "read", "persistent");
}
static void test_sweep_app_read_transient(void **state)
{
	sweep("app", "read", "transient");
}
static void test_sweep_app_read_persistent(void **state)
{
	sweep("app", "read", "persistent");
}

/* ---- group commit ------------------------------------------------------------ */

/* With SYNC=full and no FAULT_VFS the supervisor's COMMIT does not sync
 * and a thread fdatasyncs the WALs behind it (supervisor/store.c). With
 * every fdatasync made 200 ms slow (libidem_slow_sync.so preloaded), what
 * must wait for a sync shows as time: a start's reply waits for the sync
 * of the commit that recorded it; a start that waits for its workflow
 * sees at least three syncs in a row (the start's, before the task may
 * leave; the app DB's, before the result may count; the one of the commit
 * that recorded it, before the reply). Letting anything out early makes
 * these shorter. */
static void test_group_commit_waits_for_syncs(void **state)
{
	const char *extra[] = {"--workers=1", "--sync=full", NULL};
	const char *asan = getenv("ASAN_OPTIONS");
	char *d = tu_tmpdir("groupsync"), *pre = tu_fmt("%s/libidem_slow_sync.so", IDEM_BIN_DIR);
	char *asan_opts = tu_fmt("%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : "");
	char *saved_asan = asan ? strdup(asan) : NULL;
	struct tu_sup s = {0};
	json_t *out = NULL;
	int64_t t0, ms;
	int rc;

	assert_non_null(d);
	setenv("LD_PRELOAD", pre, 1);
	setenv("IDEM_TEST_SYNC_DELAY_MS", "200", 1);
	setenv("ASAN_OPTIONS", asan_opts, 1);
	rc = tu_sup_start(&s, d, extra);
	unsetenv("LD_PRELOAD");
	unsetenv("IDEM_TEST_SYNC_DELAY_MS");
	if (saved_asan != NULL)
		setenv("ASAN_OPTIONS", saved_asan, 1);
	else
		unsetenv("ASAN_OPTIONS");
	assert_int_equal(rc, 0);

	t0 = clock_mono_ms();
	assert_int_equal(tu_start_order(&s, "G1", "123456", 1), 201);
	ms = clock_mono_ms() - t0;
	if (ms < 190)
		fail_msg("a start was answered %lld ms after it was sent: before its sync",
		         (long long)ms);
	assert_int_equal(tu_http(&s, "GET", "/v1/workflows/G1/wait?timeout=30", NULL, &out), 200);
	json_decref(out);

	t0 = clock_mono_ms();
	assert_int_equal(tu_http(&s, "POST", "/v1/workflows?wait=30s",
	                         "{\"input\":{\"order_id\":\"G2\",\"product_id\":\"123456\","
	                         "\"quantity\":1}}",
	                         &out),
	                 201);
	ms = clock_mono_ms() - t0;
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(out, "workflow"), "status")),
	    "completed");
	json_decref(out);
	if (ms < 3 * 190)
		fail_msg("a start-and-wait was answered after %lld ms: fewer than three syncs",
		         (long long)ms);
	assert_int_equal(tu_sup_stop(&s), 0);
	tu_sup_free(&s);
	tu_rmrf(d);
	free(d);
	free(pre);
	free(asan_opts);
	free(saved_asan);
}

int main(void)
{
#define S(t) cmocka_unit_test_setup_teardown(t, scratch_setup, scratch_teardown)
#define W(t) cmocka_unit_test_setup(t, sweep_setup)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_config_key),
	    cmocka_unit_test(test_group_commit_waits_for_syncs),
	    S(test_write_fault_transient),
	    S(test_write_fault_persistent),
	    S(test_failed_statement_ends_transaction),
	    S(test_sync_fault),
	    S(test_full_disk),
	    S(test_read_fault),
	    S(test_truncate_fault),
	    S(test_other_files_pass_through),
	    S(test_rate_is_deterministic),
	    W(test_sweep_state_write_transient),
	    W(test_sweep_state_write_persistent),
	    W(test_sweep_state_sync_transient),
	    W(test_sweep_state_sync_persistent),
	    W(test_sweep_app_write_transient),
	    W(test_sweep_app_write_persistent),
	    W(test_sweep_app_sync_transient),
	    W(test_sweep_app_sync_persistent),
	    W(test_sweep_state_read_transient),
	    W(test_sweep_state_read_persistent),
	    W(test_sweep_app_read_transient),
	    W(test_sweep_app_read_persistent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
