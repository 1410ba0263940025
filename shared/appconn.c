/* appconn.c — see appconn.h. */
#include "appconn.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "xalloc.h"

#define APPCONN_PARAMS_MAX 16
/* Serializes the apps' migrations on PostgreSQL (pg_advisory_xact_lock):
 * the state store's key plus 2. */
#define APPCONN_MIGRATE_LOCK "7593254938290003"
#define APPCONN_IDLE_TX "10s"

struct appconn {
	sqlite3 *lite;
	PGconn *pg;
	char *url;       /* PostgreSQL: for a reconnection */
	char lock[32];   /* PostgreSQL: the app's advisory lock key */
	char name[1100]; /* appconn_name() */
	appconn_fill_fn fill;
	const void *fill_arg;
	int in_tx; /* PostgreSQL: between appconn_begin and its commit or rollback */
};

/* ---- SQLite ---- */

static int lite_fill(sqlite3 *db, void *arg, char *err, size_t errlen)
{
	struct appconn *c = arg;

	(void)db;
	return c->fill(c, c->fill_arg, err, errlen);
}

static int lite_open(struct appconn *c, const char *path, enum db_sync sync,
                     const struct appconn_schema *s, char *err, size_t errlen)
{
	if (db_open(path, sync, &c->lite, err, errlen) != 0)
		return -1;
	return db_migrate_new(c->lite, s->sqlite, s->n_sqlite, NULL, c->fill ? lite_fill : NULL, c,
	                      err, errlen);
}

/* ---- PostgreSQL ---- */

/* The schema version of the app, under the migrations' lock: the
 * transaction stays open. Returns 0 with *v, or -1. READ COMMITTED
 * whatever the server's default: what is read after the lock must be
 * what the previous holder committed. */
static int pg_version(struct appconn *c, const char *app, int *v, char *err, size_t errlen)
{
	const char *params[1] = {app};
	PGresult *r;

	if (pgconn_exec(c->pg,
	                "BEGIN ISOLATION LEVEL READ COMMITTED;"
	                " SELECT pg_advisory_xact_lock(" APPCONN_MIGRATE_LOCK ");"
	                " CREATE TABLE IF NOT EXISTS idem_app_schema(app TEXT PRIMARY KEY,"
	                " version INTEGER NOT NULL)",
	                "reading the schema version", err, errlen) != 0)
		return -1;
	c->in_tx = 1;
	r = PQexecParams(c->pg, "SELECT version FROM idem_app_schema WHERE app = $1", 1, NULL,
	                 params, NULL, NULL, 0);
	if (pgconn_ok(c->pg, r, "reading the schema version", err, errlen) == NULL)
		return -1;
	*v = PQntuples(r) > 0 ? atoi(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	return 0;
}

/* Whether the app's tables are at version n already: then nothing is
 * locked or written (every worker opens the app DB, and a role without
 * CREATE may run them). */
static int pg_current(struct appconn *c, const char *app, int n)
{
	const char *params[1] = {app};
	PGresult *r = PQexecParams(c->pg, "SELECT version FROM idem_app_schema WHERE app = $1", 1,
	                           NULL, params, NULL, NULL, 0);
	int current = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
	              atoi(PQgetvalue(r, 0, 0)) == n;

	PQclear(r);
	return current;
}

static int pg_migrate(struct appconn *c, const struct appconn_schema *s, char *err, size_t errlen)
{
	char n[16];
	const char *params[2] = {s->app, n};
	PGresult *r;
	int v = 0;

	if (pg_current(c, s->app, s->n_pg))
		return 0;
	if (pg_version(c, s->app, &v, err, errlen) != 0)
		goto fail;
	if (v > s->n_pg) {
		snprintf(err, errlen,
		         "the app %s's tables have schema version %d and were written by a newer "
		         "idem (this one knows up to %d); use a newer idem or another database",
		         s->app, v, s->n_pg);
		goto fail;
	}
	for (int i = v; i < s->n_pg; i++) {
		char what[64];

		snprintf(what, sizeof(what), "migrating to schema version %d", i + 1);
		if (pgconn_exec(c->pg, s->pg[i], what, err, errlen) != 0)
			goto fail;
		/* after the first migration, as on SQLite (db_migrate_new) */
		if (i == 0 && c->fill != NULL && c->fill(c, c->fill_arg, err, errlen) != 0)
			goto fail;
	}
	snprintf(n, sizeof(n), "%d", s->n_pg);
	r = PQexecParams(c->pg,
	                 "INSERT INTO idem_app_schema(app, version) VALUES($1, $2)"
	                 " ON CONFLICT (app) DO UPDATE SET version = excluded.version",
	                 2, NULL, params, NULL, NULL, 0);
	if (pgconn_ok(c->pg, r, "writing the schema version", err, errlen) == NULL)
		goto fail;
	PQclear(r);
	return appconn_commit(c, err, errlen);
fail:
	appconn_rollback(c);
	return -1;
}

/* Connects and learns the app's lock key. */
static int pg_connect(struct appconn *c, const char *app, int wait_ms, char *err, size_t errlen)
{
	char lockname[128];
	const char *params[1] = {lockname};
	PGresult *r;

	c->pg = pgconn_open(c->url, wait_ms, err, errlen);
	if (c->pg == NULL)
		return -1;
	/* A process cut off inside a transaction holds the app's lock until
	 * the server ends its session: not for longer than this. And a wait
	 * for the lock is bounded like SQLite's busy timeout (DB_BUSY_TIMEOUT_MS):
	 * the supervisor's endpoints wait on its loop. */
	if (pgconn_exec(c->pg,
	                "SET idle_in_transaction_session_timeout = '" APPCONN_IDLE_TX "';"
	                " SET lock_timeout = '5s'",
	                "PostgreSQL session set-up", err, errlen) != 0) {
		PQfinish(c->pg);
		c->pg = NULL;
		return -1;
	}
	if (c->lock[0] != '\0')
		return 0;
	snprintf(lockname, sizeof(lockname), "idem app %s", app);
	r = PQexecParams(c->pg, "SELECT hashtextextended($1, 0)", 1, NULL, params, NULL, NULL, 0);
	if (pgconn_ok(c->pg, r, "naming the app's lock", err, errlen) == NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
		return -1;
	}
	snprintf(c->lock, sizeof(c->lock), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* sql with ?N as $N (malloc'd). */
static char *pg_sql(const char *sql)
{
	char *out = xstrdup(sql);

	for (char *p = out; *p; p++)
		if (*p == '?' && p[1] >= '1' && p[1] <= '9')
			*p = '$';
	return out;
}

/* A connection found lost (or never made again) outside a transaction is
 * made again; inside one, the transaction is gone with it: an error.
 * Returns 0, or -1 with err. */
static int pg_usable(struct appconn *c, char *err, size_t errlen)
{
	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	if (c->in_tx) {
		snprintf(err, errlen, "the connection to PostgreSQL was lost inside a transaction");
		return -1;
	}
	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	return pg_connect(c, NULL, 0, err, errlen);
}

/* Runs sql with the parameters of types/ap. Returns the result (OK), or
 * NULL with err. Outside a transaction, a connection that turns out lost
 * is made again and the statement run once more. */
static PGresult *pg_run(struct appconn *c, const char *what, char *err, size_t errlen,
                        const char *sql, const char *types, va_list ap)
{
	char ints[APPCONN_PARAMS_MAX][24];
	const char *values[APPCONN_PARAMS_MAX];
	int n = (int)strlen(types);
	char *text;
	PGresult *r;

	if (n > APPCONN_PARAMS_MAX) {
		snprintf(err, errlen, "%s: %d parameters, over the %d appconn takes", what, n,
		         APPCONN_PARAMS_MAX);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		if (types[i] == 'I') {
			snprintf(ints[i], sizeof(ints[i]), "%" PRId64, va_arg(ap, int64_t));
			values[i] = ints[i];
		} else {
			values[i] = va_arg(ap, const char *);
		}
	}
	if (pg_usable(c, err, errlen) != 0)
		return NULL;
	text = pg_sql(sql);
	r = PQexecParams(c->pg, text, n, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQstatus(c->pg) != CONNECTION_OK && !c->in_tx) {
		PQclear(r);
		r = NULL;
		if (pg_usable(c, err, errlen) == 0)
			r = PQexecParams(c->pg, text, n, NULL, values, NULL, NULL, 0);
	}
	free(text);
	if (r == NULL && c->pg == NULL)
		return NULL; /* err says why the connection could not be made */
	return pgconn_ok(c->pg, r, what, err, errlen);
}

/* ---- SQLite statements ---- */

static sqlite3_stmt *lite_bind(struct appconn *c, const char *sql, const char *types, va_list ap,
                               char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (db_stmt(c->lite, sql, &st, err, errlen) != 0)
		return NULL;
	for (int i = 0; types[i] != '\0'; i++) {
		if (types[i] == 'I')
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		else
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
	}
	return st;
}

/* ---- the interface ---- */

int appconn_open(const char *where, enum db_sync sync, const struct appconn_schema *schema,
                 appconn_fill_fn fill, const void *fill_arg, struct appconn **out, char *err,
                 size_t errlen)
{
	struct appconn *c = xcalloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	c->fill = fill;
	c->fill_arg = fill_arg;
	if (pgconn_is_url(where)) {
		char shown[1024];

		pgconn_redact(where, shown, sizeof(shown));
		snprintf(c->name, sizeof(c->name), "app DB %s", shown);
		if (schema->pg == NULL) {
			snprintf(err, errlen,
			         "the app %s keeps its data in SQLite only: give DATABASE a file "
			         "path",
			         schema->app);
			appconn_close(c);
			return -1;
		}
		c->url = xstrdup(where);
		rc = pg_connect(c, schema->app, PGCONN_WAIT_MS, err, errlen);
		if (rc == 0)
			rc = pg_migrate(c, schema, err, errlen);
	} else {
		snprintf(c->name, sizeof(c->name), "app DB %s", where);
		rc = lite_open(c, where, sync, schema, err, errlen);
	}
	if (rc != 0) {
		appconn_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

void appconn_close(struct appconn *c)
{
	if (c == NULL)
		return;
	if (c->lite != NULL)
		db_close(c->lite);
	if (c->pg != NULL)
		PQfinish(c->pg);
	free(c->url);
	free(c);
}

sqlite3 *appconn_sqlite(const struct appconn *c)
{
	return c->lite;
}

const char *appconn_name(const struct appconn *c)
{
	return c->name;
}

int appconn_begin(struct appconn *c, char *err, size_t errlen)
{
	char sql[160];

	if (c->lite != NULL)
		return db_run(c->lite, "BEGIN IMMEDIATE", err, errlen);
	c->in_tx = 0;
	if (pg_usable(c, err, errlen) != 0)
		return -1;
	/* READ COMMITTED whatever the server's default: each statement after
	 * the lock sees what the lock's previous holder committed. */
	snprintf(sql, sizeof(sql),
	         "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(%s)", c->lock);
	c->in_tx = 1;
	if (pgconn_exec(c->pg, sql, "BEGIN", err, errlen) != 0) {
		appconn_rollback(c);
		return -1;
	}
	return 0;
}

int appconn_commit(struct appconn *c, char *err, size_t errlen)
{
	PGresult *r;

	if (c->lite != NULL)
		return db_run(c->lite, "COMMIT", err, errlen);
	c->in_tx = 0;
	if (c->pg == NULL) {
		snprintf(err, errlen, "COMMIT: no connection to PostgreSQL");
		return -1;
	}
	r = PQexec(c->pg, "COMMIT");
	if (pgconn_ok(c->pg, r, "COMMIT", err, errlen) == NULL)
		return -1;
	/* A transaction that failed earlier answers COMMIT with ROLLBACK. */
	if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		snprintf(err, errlen, "COMMIT: the transaction was rolled back");
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

void appconn_rollback(struct appconn *c)
{
	if (c->lite != NULL) {
		if (!sqlite3_get_autocommit(c->lite))
			sqlite3_exec(c->lite, "ROLLBACK", NULL, NULL, NULL);
		return;
	}
	c->in_tx = 0;
	if (c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE &&
	    PQtransactionStatus(c->pg) != PQTRANS_UNKNOWN)
		PQclear(PQexec(c->pg, "ROLLBACK"));
}

int appconn_in_tx(const struct appconn *c)
{
	if (c->lite != NULL)
		return !sqlite3_get_autocommit(c->lite);
	if (c->pg == NULL)
		return 0;
	return PQtransactionStatus(c->pg) == PQTRANS_INTRANS ||
	       PQtransactionStatus(c->pg) == PQTRANS_INERROR;
}

int appconn_query(struct appconn *c, struct appconn_row *row, const char *what, char *err,
                  size_t errlen, const char *sql, const char *types, ...)
{
	va_list ap;
	int rc;

	*row = (struct appconn_row){.c = c};
	va_start(ap, types);
	if (c->lite != NULL) {
		row->st = lite_bind(c, sql, types, ap, err, errlen);
		rc = row->st == NULL ? -1 : db_step_row(c->lite, row->st, what, err, errlen);
	} else {
		row->r = pg_run(c, what, err, errlen, sql, types, ap);
		rc = row->r == NULL ? -1 : PQntuples(row->r) > 0;
	}
	va_end(ap);
	if (rc != 1)
		appconn_row_done(row);
	return rc;
}

int appconn_exec(struct appconn *c, const char *what, char *err, size_t errlen, const char *sql,
                 const char *types, ...)
{
	va_list ap;
	int rc = -1;

	va_start(ap, types);
	if (c->lite != NULL) {
		sqlite3_stmt *st = lite_bind(c, sql, types, ap, err, errlen);

		if (st != NULL && db_stmt_step_done(c->lite, st, what, err, errlen) == 0)
			rc = sqlite3_changes(c->lite);
	} else {
		PGresult *r = pg_run(c, what, err, errlen, sql, types, ap);

		if (r != NULL) {
			rc = atoi(PQcmdTuples(r));
			PQclear(r);
		}
	}
	va_end(ap);
	return rc;
}

int appconn_row_next(struct appconn_row *row, const char *what, char *err, size_t errlen)
{
	int rc;

	if (row->st != NULL)
		rc = db_step_row(row->c->lite, row->st, what, err, errlen);
	else
		rc = row->r != NULL && ++row->i < PQntuples(row->r);
	if (rc != 1)
		appconn_row_done(row);
	return rc;
}

json_t *appconn_rows_json(struct appconn *c, const char *what, char *err, size_t errlen,
                          const char *sql, int64_t limit, const struct appconn_column *cols)
{
	struct appconn_row row;
	json_t *arr = json_array();
	int rc = appconn_query(c, &row, what, err, errlen, sql, "I", limit);

	for (; rc == 1; rc = appconn_row_next(&row, what, err, errlen)) {
		json_t *o = json_object();

		for (int i = 0; cols[i].name != NULL; i++)
			json_object_set_new(o, cols[i].name,
			                    cols[i].type == 's'
			                        ? json_string(appconn_text(&row, i))
			                        : json_integer((json_int_t)appconn_int(&row, i)));
		json_array_append_new(arr, o);
	}
	if (rc < 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

const char *appconn_text(const struct appconn_row *row, int i)
{
	if (row->st != NULL) {
		const unsigned char *t = sqlite3_column_text(row->st, i);

		return t != NULL ? (const char *)t : "";
	}
	return PQgetvalue(row->r, row->i, i);
}

int64_t appconn_int(const struct appconn_row *row, int i)
{
	if (row->st != NULL)
		return sqlite3_column_int64(row->st, i);
	return strtoll(PQgetvalue(row->r, row->i, i), NULL, 10);
}

void appconn_row_done(struct appconn_row *row)
{
	if (row->st != NULL)
		db_stmt_done(row->st);
	if (row->r != NULL)
		PQclear(row->r);
	row->st = NULL;
	row->r = NULL;
}
