/* check.c — the checker (check.h), the engine's part: the snapshot, the
 * rules that hold for every app (stuck, integrity), the running
 * workflows, the report and its text; and the API of idem_app.h through
 * which an app's check_rules add its own. One read-only connection:
 * the state DB is main, the app DB is attached as app, each database the
 * app names (struct idem_app_db) under its schema name. Every invariant
 * is one SQL query (GROUP BY, IN over a subquery that SQLite materializes
 * once, or an index lookup per row): no query per row from C, so 100,000
 * workflows take a fraction of a second.
 *
 * One read transaction gives one snapshot of each file, taken by its
 * first read, before any query (run()). The files are first read in the
 * order state, app, then the app's own in the order it gives them, which
 * is the order in which the programs make an effect visible (a workflow
 * start is durable before a worker runs; an order row is committed before
 * its completion is recorded; the inventory's supplier records an order
 * before the restock naming it): so a later snapshot can only hold more
 * of what an earlier one implies, and a check of a quiet system (no
 * workflow running) sees no false violation. On a busy one, what a
 * running workflow may still finish is left out by the app's rules, and
 * the snapshots are microseconds apart: too little for a workflow to
 * start, run and apply an effect between them. So a violation is one,
 * running workflows or not; but the check is final only once none runs
 * ("quiescent").
 *
 * The kinds are counted in report order: "stuck", the app's, then
 * "integrity"; a query that finds a database corrupt counts under
 * "integrity" too, whoever runs it. */
#include "check.h"

#include <errno.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "pgconn.h"
#include "pgsnap.h"
#include "state_schema.h"
#include "xalloc.h"

/* The state DB and the app DB; the app's databases come after them. */
enum { DB_STATE, DB_APP, DB_ENGINE_N };

static const struct idem_app_db engine_dbs[DB_ENGINE_N] = {
    [DB_STATE] = {"main", "state DB", "STATE_DATABASE", "state-database", NULL},
    [DB_APP] = {"app", "app DB", "DATABASE", "database", NULL},
};

struct idem_check {
	sqlite3 *db;
	const struct idem_app *app;
	const struct idem_app_db **dbs; /* owned array: state, app, the app's; ndbs */
	const char **path;              /* owned array: each one's file */
	int ndbs;
	const char **kinds; /* owned array: "stuck", the app's, "integrity"; nkinds */
	long long *count;   /* owned: per kind */
	int nkinds;
	int bad_kind;                  /* the app added a kind it does not list: c->err says */
	long long running;             /* workflows still running */
	json_t *violations;            /* owned */
	json_t *running_wf;            /* owned: the first CHECK_MAX_LISTED running workflows */
	json_t *totals;                /* owned */
	const struct idem_config *cfg; /* may be NULL */
	const char *state_db;
	int state_rw; /* the state DB is a copy the check writes (PostgreSQL) */
	int app_rw;   /* so is the app DB */
	char *err;
	size_t errlen;
};

/* The engine's kinds come first, then the app's (from K_APP); "integrity"
 * is the last. */
enum { K_STUCK, K_HISTORY, K_NONDETERMINISM, K_APP };

static int k_integrity(const struct idem_check *c)
{
	return c->nkinds - 1;
}

/* ---- violations ----------------------------------------------------------- */

/* msg as a JSON string (NEW). Ids come from the databases and a long
 * message is cut, so msg may not be UTF-8: its other bytes become '?'. */
static json_t *text(char *msg)
{
	json_t *s = json_string(msg);

	if (s != NULL)
		return s;
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(msg);
}

/* Counts one violation of kind k and lists it while fewer than
 * CHECK_MAX_LISTED of that kind are listed. workflows (a JSON array) is
 * STOLEN; NULL means none. */
static void vadd(struct idem_check *c, int k, json_t *workflows, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vadd(struct idem_check *c, int k, json_t *workflows, const char *fmt, va_list ap)
{
	char msg[1024];

	if (workflows == NULL)
		workflows = json_array();
	if (c->count[k]++ >= CHECK_MAX_LISTED) {
		json_decref(workflows);
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_array_append_new(c->violations,
	                      json_pack("{s:s, s:o, s:o}", "kind", c->kinds[k], "message",
	                                text(msg), "workflows", workflows));
}

static void add(struct idem_check *c, int k, json_t *workflows, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(struct idem_check *c, int k, json_t *workflows, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(c, k, workflows, fmt, ap);
	va_end(ap);
}

/* The index of the app's kind, or -1 when it lists no such kind. */
static int app_kind(const struct idem_check *c, const char *kind)
{
	for (int k = K_APP; k < k_integrity(c); k++)
		if (strcmp(c->kinds[k], kind) == 0)
			return k;
	return -1;
}

void idem_check_add(struct idem_check *c, const char *kind, json_t *workflows, const char *fmt, ...)
{
	int k = app_kind(c, kind);
	va_list ap;

	if (k < 0) {
		/* A bug of the app: the check fails naming it rather than
		 * drop a violation. */
		if (!c->bad_kind)
			snprintf(c->err, c->errlen,
			         "app %s reported a violation of kind \"%s\", which its "
			         "check_kinds do not list",
			         c->app->name, kind);
		c->bad_kind = 1;
		json_decref(workflows);
		return;
	}
	va_start(ap, fmt);
	vadd(c, k, workflows, fmt, ap);
	va_end(ap);
}

void idem_check_total(struct idem_check *c, const char *name, long long value)
{
	json_object_set_new(c->totals, name, json_integer(value));
}

/* ---- running queries ------------------------------------------------------- */

const char *idem_check_col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "";
}

json_t *idem_check_col_array(sqlite3_stmt *st, int i)
{
	json_t *arr = json_loads(idem_check_col(st, i), 0, NULL);

	if (!json_is_array(arr)) {
		json_decref(arr);
		arr = json_array();
	}
	return arr;
}

/* Runs sql and calls fn for each row (struct idem_check_rule). Returns 0,
 * or -1 with c->err. */
static int check_rows(struct idem_check *c, const char *what, const char *sql, idem_check_row_fn fn)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(c->err, c->errlen, "%s: %s", what, sqlite3_errmsg(c->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(c, st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
		add(c, k_integrity(c), NULL, "%s failed: %s", what, sqlite3_errstr(rc));
		return 0;
	}
	snprintf(c->err, c->errlen, "%s: %s", what, sqlite3_errmsg(c->db));
	return -1;
}

/* Runs each of rules (NULL: none) in order; stops at the first that fails. */
static int run_rules(struct idem_check *c, const struct idem_check_rule *rules)
{
	for (; rules != NULL && rules->what != NULL; rules++)
		if (check_rows(c, rules->what, rules->sql, rules->fn) != 0)
			return -1;
	return 0;
}

/* ---- the engine's rules ------------------------------------------------------ */

static void row_totals(struct idem_check *c, sqlite3_stmt *st)
{
	c->running = sqlite3_column_int64(st, 0);
	json_object_set_new(c->totals, "workflows",
	                    json_pack("{s:I, s:I, s:I, s:I}", "running",
	                              (json_int_t)sqlite3_column_int64(st, 0), "completed",
	                              (json_int_t)sqlite3_column_int64(st, 1), "failed",
	                              (json_int_t)sqlite3_column_int64(st, 2), "pruned",
	                              (json_int_t)sqlite3_column_int64(st, 3)));
}

static const char sql_totals[] =
    "SELECT coalesce(sum(status = 'running'), 0), coalesce(sum(status = 'completed'), 0),"
    " coalesce(sum(status = 'failed'), 0),"
    " (SELECT coalesce(sum(workflows), 0) FROM pruned) FROM main.workflows";

/* RETENTION's table (the state DB's migration 4): an empty stand-in in
 * TEMP when the state DB is older, so that every rule may read "pruned"
 * (IDEM_CHECK_PRUNED in idem_app.h). */
static int pruned_table(struct idem_check *c)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db,
	                            "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND "
	                            "name = 'pruned'",
	                            -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE &&
	    sqlite3_exec(c->db,
	                 "CREATE TEMP VIEW pruned AS SELECT '' AS namespace, 0 AS workflows,"
	                 " 0 AS through WHERE 0",
	                 NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	snprintf(c->err, c->errlen, "reading the pruned workflows: %s", sqlite3_errmsg(c->db));
	return -1;
}

static void row_stuck(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0), *status = idem_check_col(st, 1);
	json_t *wfs = json_pack("[s]", wf);

	if (strcmp(status, "failed") == 0)
		add(c, K_STUCK, wfs, "failed workflow %s has no error", wf);
	else
		add(c, K_STUCK, wfs,
		    "workflow %s has status \"%s\" (expected running, completed or failed)", wf,
		    status);
}

/* Stuck is what no program will move on and what does not say why: the
 * supervisor resumes only 'running' workflows, and a failure carries its
 * reason. A running workflow is not stuck, even with no supervisor: the
 * next one resumes it. */
static const char sql_stuck[] = "SELECT namespace || '/' || workflow_id, status FROM main.workflows"
                                " WHERE status NOT IN ('running', 'completed', 'failed')"
                                " OR (status = 'failed' AND coalesce(error, '') = '')"
                                " ORDER BY id";

/* The history of every closed workflow adds up, whatever the app: no
 * step completed twice, each completed step of a completed workflow
 * completed once, and every attempt that started ended (completed,
 * failed, lost with its worker, timed out, or lost with the supervisor
 * that ran it). */
static void row_history(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0), *what = idem_check_col(st, 1);
	int seq = sqlite3_column_int(st, 2), n = sqlite3_column_int(st, 3);

	if (strcmp(what, "twice") == 0)
		add(c, K_HISTORY, json_pack("[s]", wf),
		    "step %d of %s completed %d times in its history", seq, wf, n);
	else if (strcmp(what, "never") == 0)
		add(c, K_HISTORY, json_pack("[s]", wf),
		    "step %d of completed workflow %s is %s, with no completion in its history",
		    seq, wf, idem_check_col(st, 4));
	else
		add(c, K_HISTORY, json_pack("[s]", wf),
		    "attempt %d of step %d of closed workflow %s started and never ended", n, seq,
		    wf);
}

#define OUTCOMES                                                                                   \
	"('completed', 'failed', 'worker_lost', 'timed_out', 'worker_killed', 'attempt_lost')"

static const char sql_history[] =
    "SELECT w.namespace || '/' || w.workflow_id, 'twice', e.seq, count(*), ''"
    " FROM main.events e JOIN main.workflows w ON w.id = e.wf"
    " WHERE e.kind = 'completed' GROUP BY e.wf, e.seq HAVING count(*) > 1"
    " UNION ALL "
    "SELECT w.namespace || '/' || w.workflow_id, 'never', s.seq, 0, s.status"
    " FROM main.steps s JOIN main.workflows w ON w.id = s.wf"
    " WHERE w.status = 'completed' AND NOT EXISTS (SELECT 1 FROM main.events e"
    "  WHERE e.wf = s.wf AND e.seq = s.seq AND e.kind = 'completed')"
    " UNION ALL "
    "SELECT w.namespace || '/' || w.workflow_id, 'unended', e.seq, e.attempt, ''"
    " FROM main.events e JOIN main.workflows w ON w.id = e.wf"
    " WHERE w.status IN ('completed', 'failed') AND e.kind = 'started' AND NOT EXISTS"
    "  (SELECT 1 FROM main.events o WHERE o.wf = e.wf AND o.seq = e.seq"
    "   AND o.attempt = e.attempt AND o.kind IN " OUTCOMES ")";

/* A workflow failed because its code no longer matches its history. */
static void row_nondeterminism(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0);

	add(c, K_NONDETERMINISM, json_pack("[s]", wf), "workflow %s failed: %s", wf,
	    idem_check_col(st, 1));
}

static const char sql_nondeterminism[] =
    "SELECT namespace || '/' || workflow_id, error FROM main.workflows"
    " WHERE status = 'failed' AND error LIKE 'nondeterminism%' ORDER BY id";

/* Listed, not counted: totals.workflows.running has the number. */
static void row_running(struct idem_check *c, sqlite3_stmt *st)
{
	char wf[1024];

	snprintf(wf, sizeof(wf), "%s", idem_check_col(st, 0));
	if (json_array_size(c->running_wf) < CHECK_MAX_LISTED)
		json_array_append_new(c->running_wf, text(wf));
}

static const char sql_running[] = "SELECT namespace || '/' || workflow_id FROM main.workflows"
                                  " WHERE status = 'running' ORDER BY id";

/* The first read of database i: its schema version, which also tells a
 * file that is not idem's. Returns 0, or -1 with c->err. */
static int schema_check(struct idem_check *c, int i)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int rc, version = 0;

	snprintf(sql, sizeof(sql), "PRAGMA %s.user_version", c->dbs[i]->schema);
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW) {
		snprintf(c->err, c->errlen, "%s %s (%s) cannot be read: %s", c->dbs[i]->name,
		         c->path[i], c->dbs[i]->key, sqlite3_errmsg(c->db));
		return -1;
	}
	if (version == 0) {
		snprintf(c->err, c->errlen,
		         "%s %s (%s) has no idem schema (user_version 0): is %s the right "
		         "file?",
		         c->dbs[i]->name, c->path[i], c->dbs[i]->key, c->dbs[i]->key);
		return -1;
	}
	return 0;
}

/* PRAGMA integrity_check of each file: one violation per file that is
 * not "ok", with its first problems. */
static int integrity(struct idem_check *c, int i)
{
	char sql[128], first[600] = "";
	sqlite3_stmt *st = NULL;
	long long problems = 0;
	int rc;

	snprintf(sql, sizeof(sql), "PRAGMA %s.integrity_check(%d)", c->dbs[i]->schema,
	         CHECK_MAX_LISTED);
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(c->err, c->errlen, "%s: %s", sql, sqlite3_errmsg(c->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = idem_check_col(st, 0);

		if (strcmp(line, "ok") == 0)
			continue;
		if (problems++ == 0)
			snprintf(first, sizeof(first), "%s", line);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		problems++;
		snprintf(first, sizeof(first), "%s", sqlite3_errstr(rc));
	}
	if (problems == 1)
		add(c, k_integrity(c), NULL, "%s %s: integrity_check: %s", c->dbs[i]->name,
		    c->path[i], first);
	else if (problems > 1)
		add(c, k_integrity(c), NULL, "%s %s: integrity_check: %s (and %lld more problems)",
		    c->dbs[i]->name, c->path[i], first, problems - 1);
	return 0;
}

/* ---- opening -------------------------------------------------------------------- */

/* "file:PATH?mode=ro" with the characters a URI gives a meaning escaped.
 * malloc'd. */
static char *ro_uri(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	char *uri = xmalloc(strlen(path) * 3 + 16), *o = uri;

	o += sprintf(o, "file:");
	while (path[0] == '/' && path[1] == '/') /* "file://" would name a host */
		path++;
	for (; *path; path++) {
		unsigned char ch = (unsigned char)*path;

		if (ch == '%' || ch == '?' || ch == '#' || ch < 0x20 || ch == 0x7f) {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		} else {
			*o++ = (char)ch;
		}
	}
	strcpy(o, "?mode=ro");
	return uri;
}

/* Opens database i: the state DB read-only, the others ATTACHed to it.
 * Returns 0, or -1 with c->err. */
static int open_one(struct idem_check *c, int i)
{
	sqlite3_stmt *st = NULL;
	char *uri = ro_uri(c->path[i]);
	int rc;

	if (i == DB_STATE) {
		/* A copy of a PostgreSQL state DB is written in the check's
		 * own transaction. */
		rc = c->state_rw ? sqlite3_open_v2(c->path[i], &c->db, SQLITE_OPEN_READWRITE, NULL)
		                 /* mode=ro keeps the file read-only; the connection's
		                  * flags are those of what is attached: a copy of a
		                  * PostgreSQL app DB is written. */
		                 : sqlite3_open_v2(
		                       uri, &c->db,
		                       (c->app_rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
		                           SQLITE_OPEN_URI,
		                       NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_busy_timeout(c->db, DB_BUSY_TIMEOUT_MS);
	} else {
		char sql[128];

		snprintf(sql, sizeof(sql), "ATTACH ?1 AS %s", c->dbs[i]->schema);
		rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, i == DB_APP && c->app_rw ? c->path[i] : uri, -1,
			                  SQLITE_STATIC);
			rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		}
	}
	if (rc != SQLITE_OK)
		snprintf(c->err, c->errlen, "cannot open %s %s (%s): %s", c->dbs[i]->name,
		         c->path[i], c->dbs[i]->key,
		         c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	sqlite3_finalize(st);
	free(uri);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Opens the state DB read-only and attaches the others. A missing file
 * is an error: nothing here creates one. */
static int open_all(struct idem_check *c)
{
	for (int i = 0; i < c->ndbs; i++) {
		const struct idem_app_db *d = c->dbs[i];

		if (c->path[i] == NULL || c->path[i][0] == '\0') {
			snprintf(c->err, c->errlen, "no %s given (set %s)", d->name, d->key);
			return -1;
		}
		if (access(c->path[i], F_OK) != 0) {
			snprintf(c->err, c->errlen,
			         "%s %s does not exist (is %s, or its flag --%s, right?)", d->name,
			         c->path[i], d->key, d->flag);
			return -1;
		}
	}
	for (int i = 0; i < c->ndbs; i++)
		if (open_one(c, i) != 0)
			return -1;
	return 0;
}

/* ---- the report ------------------------------------------------------------------- */

/* Each file's snapshot is taken by its first read, its schema version:
 * all back to back, before any query that takes time, so that no
 * workflow can start, run and apply an effect between them (see the top
 * of the file). Then the totals (the engine's, the app's), the rules
 * (the engine's, the app's) and the integrity of each file. */
static int run(struct idem_check *c)
{
	const struct idem_app *app = c->app;

	for (int i = 0; i < c->ndbs; i++)
		if (schema_check(c, i) != 0)
			return -1;
	if (pruned_table(c) != 0 ||
	    check_rows(c, "counting workflows", sql_totals, row_totals) != 0 ||
	    run_rules(c, app->check_totals) != 0 ||
	    check_rows(c, "finding stuck workflows", sql_stuck, row_stuck) != 0 ||
	    check_rows(c, "listing running workflows", sql_running, row_running) != 0 ||
	    check_rows(c, "reading the histories", sql_history, row_history) != 0 ||
	    check_rows(c, "finding nondeterminism", sql_nondeterminism, row_nondeterminism) != 0 ||
	    run_rules(c, app->check_rules) != 0 || c->bad_kind)
		return -1;
	/* The app's own check reads the files itself: only once nothing
	 * runs, so that it sees what the snapshot saw. */
	if (app->check_extra != NULL && c->running == 0 &&
	    (app->check_extra(c, c->cfg, c->state_db, c->err, c->errlen) != 0 || c->bad_kind))
		return -1;
	for (int i = 0; i < c->ndbs; i++)
		if (integrity(c, i) != 0)
			return -1;
	return 0;
}

/* The report (NEW) from what run() found. */
static json_t *report_of(const struct idem_check *c)
{
	json_t *counts = json_object();
	long long total = 0;

	for (int k = 0; k < c->nkinds; k++) {
		json_object_set_new(counts, c->kinds[k], json_integer(c->count[k]));
		total += c->count[k];
	}
	return json_pack("{s:b, s:b, s:o, s:O, s:O, s:O, s:s}", "ok", total == 0 && c->running == 0,
	                 "quiescent", c->running == 0, "counts", counts, "violations",
	                 c->violations, "running_workflows", c->running_wf, "totals", c->totals,
	                 "app", c->app->name);
}

/* Fills c's lists from app: its databases with their paths, its kinds
 * between the engine's. */
static void setup(struct idem_check *c, const char *state_db, const char *app_db,
                  const struct idem_config *cfg)
{
	const struct idem_app *app = c->app;
	int napp_dbs = 0, napp_kinds = 0;

	while (app->dbs != NULL && app->dbs[napp_dbs].schema != NULL)
		napp_dbs++;
	while (app->check_kinds != NULL && app->check_kinds[napp_kinds] != NULL)
		napp_kinds++;
	c->ndbs = DB_ENGINE_N + napp_dbs;
	c->nkinds = K_APP + napp_kinds + 1;
	c->dbs = xcalloc((size_t)c->ndbs, sizeof(*c->dbs));
	c->path = xcalloc((size_t)c->ndbs, sizeof(*c->path));
	c->kinds = xcalloc((size_t)c->nkinds, sizeof(*c->kinds));
	c->count = xcalloc((size_t)c->nkinds, sizeof(*c->count));
	c->violations = json_array();
	c->running_wf = json_array();
	c->totals = json_object();
	c->dbs[DB_STATE] = &engine_dbs[DB_STATE];
	c->path[DB_STATE] = state_db;
	c->dbs[DB_APP] = &engine_dbs[DB_APP];
	c->path[DB_APP] = app_db;
	for (int i = 0; i < napp_dbs; i++) {
		c->dbs[DB_ENGINE_N + i] = &app->dbs[i];
		c->path[DB_ENGINE_N + i] = cfg != NULL ? app->dbs[i].path(cfg) : NULL;
	}
	c->kinds[K_STUCK] = "stuck";
	c->kinds[K_HISTORY] = "history";
	c->kinds[K_NONDETERMINISM] = "nondeterminism";
	for (int k = 0; k < napp_kinds; k++)
		c->kinds[K_APP + k] = app->check_kinds[k];
	c->kinds[k_integrity(c)] = "integrity";
}

static void remove_snapshot(const char *path)
{
	char side[4200];

	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* A new file under TMPDIR named in path, for a copy of a PostgreSQL
 * database: with the state DB's tables, or with app's (app not NULL). */
static int snapshot_file(const struct idem_app *app, char *path, size_t pathlen, char *err,
                         size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	int fd, rc;

	snprintf(path, pathlen, "%s/idem-check-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create the snapshot file %s: %s", path,
		         strerror(errno));
		path[0] = '\0';
		return -1;
	}
	close(fd);
	if (app != NULL) {
		struct appconn *conn = NULL;

		rc = app->open_db(path, DB_SYNC_NORMAL, NULL, &conn, err, errlen);
		appconn_close(conn);
	} else {
		sqlite3 *db = NULL;

		rc = db_open_migrated(path, DB_SYNC_NORMAL, state_schema_sqlite,
		                      state_schema_sqlite_n, &db, err, errlen);
		db_close(db);
	}
	if (rc != 0) {
		remove_snapshot(path);
		path[0] = '\0';
		return -1;
	}
	return 0;
}

/* Copies of PostgreSQL (pg: the state's snapshot, pg_app: the app's, each
 * may be NULL): the SQLite files' first reads at once, right after those
 * snapshots, then the copies. The sides are as far apart as on SQLite,
 * where they are taken one after the other too, not the length of a
 * copy. */
static int snapshot_pg(struct idem_check *c, PGconn *pg, PGconn *pg_app)
{
	char sql[160];

	for (int i = 1; i < c->ndbs; i++) {
		if (i == DB_APP && c->app_rw)
			continue;
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.sqlite_master",
		         c->dbs[i]->schema);
		if (db_exec(c->db, sql, c->err, c->errlen) != 0)
			return -1;
	}
	if (pg != NULL && pgsnap_fill(pg, c->db, c->err, c->errlen) != 0)
		return -1;
	if (pg_app != NULL && pgsnap_fill_tables(pg_app, c->db, "app", c->err, c->errlen) != 0)
		return -1;
	return 0;
}

/* err = "KEY=URL (password hidden): inner". Returns -1. */
static int url_fail(const char *key, const char *url, const char *inner, char *err, size_t errlen)
{
	char shown[1024];

	pgconn_redact(url, shown, sizeof(shown));
	snprintf(err, errlen, "%s=%.400s: %.500s", key, shown, inner);
	return -1;
}

json_t *check_run(const struct idem_app *app, const char *state_db, const char *app_db,
                  const struct idem_config *cfg, char *err, size_t errlen)
{
	struct idem_check c = {
	    .app = app, .cfg = cfg, .state_db = state_db, .err = err, .errlen = errlen};
	json_t *report = NULL;
	PGconn *pg = NULL, *pg_app = NULL;
	const char *app_url = NULL, *state_url = NULL;
	char snap[4096] = "", app_snap[4096] = "", inner[1024];
	int rc = -1;

	assert(app != NULL);
	/* PostgreSQL: the rules run on a copy in SQLite. Everything slow
	 * (connections, files) comes first; the snapshots then follow one
	 * another at once, state first. */
	if (state_db != NULL && pgconn_is_url(state_db)) {
		pg = pgsnap_connect(state_db, inner, sizeof(inner));
		if (pg == NULL ||
		    snapshot_file(NULL, snap, sizeof(snap), inner, sizeof(inner)) != 0) {
			url_fail("STATE_DATABASE", state_db, inner, err, errlen);
			goto out;
		}
		state_url = state_db;
		state_db = c.state_db = snap;
		c.state_rw = 1;
	}
	if (app_db != NULL && pgconn_is_url(app_db)) {
		pg_app = pgsnap_connect(app_db, inner, sizeof(inner));
		if (pg_app == NULL ||
		    snapshot_file(app, app_snap, sizeof(app_snap), inner, sizeof(inner)) != 0) {
			url_fail("DATABASE", app_db, inner, err, errlen);
			goto out;
		}
		app_url = app_db;
		app_db = app_snap;
		c.app_rw = 1;
	}
	setup(&c, state_db, app_db, cfg);
	if (open_all(&c) != 0)
		goto out;
	if (db_exec(c.db, "BEGIN", err, errlen) != 0)
		goto out;
	if (pg != NULL && pgsnap_take(pg, inner, sizeof(inner)) != 0) {
		url_fail("STATE_DATABASE", state_url, inner, err, errlen);
		goto out;
	}
	if (pg == NULL && pg_app != NULL && schema_check(&c, DB_STATE) != 0)
		goto out; /* the state's snapshot: its first read */
	if (pg_app != NULL && pgsnap_take(pg_app, inner, sizeof(inner)) != 0) {
		url_fail("DATABASE", app_url, inner, err, errlen);
		goto out;
	}
	if ((pg != NULL || pg_app != NULL) && snapshot_pg(&c, pg, pg_app) != 0)
		goto out;
	rc = run(&c);
	sqlite3_exec(c.db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	if (rc == 0)
		report = report_of(&c);
out:
	json_decref(c.violations);
	json_decref(c.running_wf);
	json_decref(c.totals);
	free(c.dbs);
	free(c.path);
	free(c.kinds);
	free(c.count);
	db_close(c.db);
	if (pg != NULL)
		pgsnap_end(pg);
	if (pg_app != NULL)
		pgsnap_end(pg_app);
	if (snap[0] != '\0')
		remove_snapshot(snap);
	if (app_snap[0] != '\0')
		remove_snapshot(app_snap);
	return report;
}

/* ---- printing ------------------------------------------------------------------------ */

static long long count_of(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* The violation lines. */
static void print_violations(const json_t *report, FILE *out)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(report, "violations"), i, v)
	{
		const char *kind = json_string_value(json_object_get(v, "kind"));
		const char *msg = json_string_value(json_object_get(v, "message"));

		fprintf(out, "  %s  %s\n", kind ? kind : "?", msg ? msg : "?");
	}
}

/* How many violations of kind the report lists. */
static long long listed_of(const json_t *report, const char *kind)
{
	const json_t *v;
	long long n = 0;
	size_t i;

	json_array_foreach(json_object_get(report, "violations"), i, v)
	{
		const char *k = json_string_value(json_object_get(v, "kind"));

		if (k != NULL && strcmp(k, kind) == 0)
			n++;
	}
	return n;
}

/* The running workflows, listed like violations but not counted as any. */
static void print_running(const json_t *report, long long running, FILE *out)
{
	const json_t *wfs = json_object_get(report, "running_workflows"), *v;
	size_t i;

	json_array_foreach(wfs, i, v)
	{
		fprintf(out, "  running  workflow %s is still running\n", json_string_value(v));
	}
	if (json_is_array(wfs) && running > (long long)json_array_size(wfs))
		fprintf(out, "  running  ... and %lld more not listed\n",
		        running - (long long)json_array_size(wfs));
}

/* "... and N more" for each kind with more than it lists; returns the
 * number of violations. */
static long long print_not_listed(const json_t *report, json_t *counts, FILE *out)
{
	const char *kind;
	json_t *v;
	long long total = 0;

	json_object_foreach(counts, kind, v)
	{
		long long n = count_of(counts, kind), listed = listed_of(report, kind);

		if (n > listed)
			fprintf(out, "  %s  ... and %lld more not listed\n", kind, n - listed);
		total += n;
	}
	return total;
}

/* ", N label" for each of the app's totals (only those of the verdict
 * line when verdict); with no app, each total but "workflows" by its key,
 * '_' read as ' '. */
static void print_totals(const struct idem_app *app, json_t *totals, int verdict, FILE *out)
{
	const char *key;
	json_t *v;

	if (app != NULL) {
		for (const struct idem_check_total_label *t = app->check_total_labels;
		     t != NULL && t->name != NULL; t++)
			if (!verdict || t->verdict)
				fprintf(out, ", %lld %s", count_of(totals, t->name), t->label);
		return;
	}
	json_object_foreach(totals, key, v)
	{
		char label[128];

		if (strcmp(key, "workflows") == 0)
			continue;
		snprintf(label, sizeof(label), "%s", key);
		for (char *p = label; *p; p++)
			if (*p == '_')
				*p = ' ';
		fprintf(out, ", %lld %s", count_of(totals, key), label);
	}
}

static void print_failed(const struct idem_app *app, json_t *counts, json_t *totals,
                         long long total, FILE *out)
{
	const json_t *wfs = json_object_get(totals, "workflows");
	long long running = count_of(wfs, "running");
	const char *sep = "", *kind;
	json_t *v;

	fprintf(out, "counts:");
	json_object_foreach(counts, kind, v)
	{
		fprintf(out, "%s %s %lld", sep, kind, count_of(counts, kind));
		sep = ",";
	}
	fprintf(out, "\ntotals: %lld workflows (%lld running, %lld completed, %lld failed)",
	        running + count_of(wfs, "completed") + count_of(wfs, "failed"), running,
	        count_of(wfs, "completed"), count_of(wfs, "failed"));
	print_totals(app, totals, 0, out);
	fprintf(out, "\ncheck: FAILED — %lld violation%s:", total, total == 1 ? "" : "s");
	sep = "";
	json_object_foreach(counts, kind, v)
	{
		long long n = count_of(counts, kind);

		if (n == 0)
			continue;
		fprintf(out, "%s %lld %s", sep, n, kind);
		sep = ",";
	}
	if (running > 0)
		fprintf(out, "; %lld workflow%s still running", running, running == 1 ? "" : "s");
	fprintf(out, "\n");
}

void check_print(const struct idem_app *app, const json_t *report, FILE *out)
{
	json_t *counts = json_object_get(report, "counts");
	json_t *totals = json_object_get(report, "totals");
	const json_t *wfs = json_object_get(totals, "workflows");
	long long total, running = count_of(wfs, "running");
	long long all = running + count_of(wfs, "completed") + count_of(wfs, "failed");

	if (!json_is_object(counts)) {
		fprintf(out, "check: no report\n");
		return;
	}
	print_violations(report, out);
	print_running(report, running, out);
	total = print_not_listed(report, counts, out);
	if (total > 0 || (running == 0 && !json_is_true(json_object_get(report, "ok"))))
		print_failed(app, counts, totals, total, out);
	else if (running > 0)
		fprintf(out,
		        "check: NOT QUIESCENT — %lld workflow%s still running (of %lld), no "
		        "violation so far; check again once none runs (idemctl check --wait "
		        "SECONDS)\n",
		        running, running == 1 ? "" : "s", all);
	else {
		fprintf(out, "check: OK — %lld workflows (%lld completed, %lld failed", all,
		        count_of(wfs, "completed"), count_of(wfs, "failed"));
		if (count_of(wfs, "pruned") > 0) /* (RETENTION) */
			fprintf(out, "; %lld more pruned", count_of(wfs, "pruned"));
		fputc(')', out);
		print_totals(app, totals, 1, out);
		fprintf(out, "; no violation\n");
	}
}
