/* pgsnap.c — see pgsnap.h. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pgconn.h"
#include "pgsnap.h"
#include "state_schema.h"

#define PGSNAP_BATCH "5000" /* rows per FETCH: the copy's memory stays bounded */

/* The tables the checker reads, column for column; every column is
 * copied as text, or as an integer where ints says so (by position, 'i'
 * for an integer). */
static const struct {
	const char *table, *cols, *ints;
} copied[] = {
    {"workflows",
     "id, namespace, workflow_id, type, input, status, result, error, created_at, closed_at",
     "i.......ii"},
    {"steps",
     "wf, seq, activity, input, status, attempt, heartbeat, result, error_type, "
     "error_message, next_attempt_at, scheduled_at",
     "ii...i....ii"},
    {"events", "id, wf, seq, attempt, kind, ts, pid, detail", "iiii.ii."},
    {"pruned", "namespace, workflows, through", ".ii"},
};

/* Copies table's columns cols (ints: 'i' where a column is an integer)
 * from PostgreSQL into schema.table of db, in batches. */
static int copy_table(PGconn *pg, sqlite3 *db, const char *schema, const char *table,
                      const char *cols, const char *ints, char *err, size_t errlen)
{
	char sql[2048], what[160];
	int ncols = (int)strlen(ints), rc = 0;
	sqlite3_stmt *ins = NULL;
	PGresult *r;

	snprintf(what, sizeof(what), "snapshot of %s", table);
	snprintf(sql, sizeof(sql), "DECLARE snap NO SCROLL CURSOR FOR SELECT %s FROM %s", cols,
	         table);
	if (pgconn_exec(pg, sql, what, err, errlen) != 0)
		return -1;
	{
		int n = snprintf(sql, sizeof(sql), "INSERT INTO %s.%s (%s) VALUES (", schema, table,
		                 cols);

		for (int i = 0; i < ncols; i++)
			n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s?%d", i ? ", " : "",
			              i + 1);
		snprintf(sql + n, sizeof(sql) - (size_t)n, ")");
		if (db_prepare(db, sql, &ins, err, errlen) != 0)
			return -1;
	}
	for (;;) {
		int rows;

		r = pgconn_ok(pg, PQexec(pg, "FETCH " PGSNAP_BATCH " FROM snap"), what, err,
		              errlen);
		if (r == NULL) {
			rc = -1;
			break;
		}
		rows = PQntuples(r);
		for (int row = 0; row < rows && rc == 0; row++) {
			for (int i = 0; i < ncols; i++) {
				if (PQgetisnull(r, row, i))
					sqlite3_bind_null(ins, i + 1);
				else if (ints[i] == 'i')
					sqlite3_bind_int64(
					    ins, i + 1, strtoll(PQgetvalue(r, row, i), NULL, 10));
				else
					sqlite3_bind_text(ins, i + 1, PQgetvalue(r, row, i), -1,
					                  SQLITE_STATIC);
			}
			if (sqlite3_step(ins) != SQLITE_DONE)
				rc = db_fail(db, what, err, errlen);
			sqlite3_reset(ins);
			sqlite3_clear_bindings(ins);
		}
		PQclear(r);
		if (rc != 0 || rows == 0)
			break;
	}
	sqlite3_finalize(ins);
	if (rc == 0)
		rc = pgconn_exec(pg, "CLOSE snap", what, err, errlen);
	return rc;
}

/* The columns of schema.table in db, as copy_table takes them. Returns
 * 0, or -1 with err. */
static int columns_of(sqlite3 *db, const char *schema, const char *table, char *cols,
                      size_t colslen, char *ints, size_t intslen, char *err, size_t errlen)
{
	char sql[256];
	sqlite3_stmt *st = NULL;
	size_t nc = 0, ni = 0;
	int rc;

	snprintf(sql, sizeof(sql), "PRAGMA %.64s.table_info(%.64s)", schema, table);
	if (db_prepare(db, sql, &st, err, errlen) != 0)
		return -1;
	cols[0] = ints[0] = '\0';
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && ni + 1 < intslen) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *type = (const char *)sqlite3_column_text(st, 2);

		nc += (size_t)snprintf(cols + nc, colslen > nc ? colslen - nc : 0, "%s%s",
		                       nc ? ", " : "", name != NULL ? name : "");
		ints[ni++] = type != NULL && strcmp(type, "INTEGER") == 0 ? 'i' : '.';
		ints[ni] = '\0';
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || nc >= colslen || ni == 0) {
		snprintf(err, errlen, "snapshot: cannot list the columns of %s.%s", schema, table);
		return -1;
	}
	return 0;
}

int pgsnap_fill_tables(PGconn *pg, sqlite3 *db, const char *schema, char *err, size_t errlen)
{
	char sql[256], cols[1024], ints[64];
	char tables[32][64];
	sqlite3_stmt *st = NULL;
	int n = 0, rc;

	snprintf(sql, sizeof(sql),
	         "SELECT name FROM %s.sqlite_master WHERE type = 'table' AND name NOT LIKE "
	         "'sqlite_%%' ORDER BY name",
	         schema);
	if (db_prepare(db, sql, &st, err, errlen) != 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 32)
		snprintf(tables[n++], sizeof(tables[0]), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "snapshot: cannot list the tables of %s (%d of at most 32)",
		         schema, n);
		return -1;
	}
	for (int t = 0; t < n; t++)
		if (columns_of(db, schema, tables[t], cols, sizeof(cols), ints, sizeof(ints), err,
		               errlen) != 0 ||
		    copy_table(pg, db, schema, tables[t], cols, ints, err, errlen) != 0)
			return -1;
	return 0;
}

PGconn *pgsnap_connect(const char *url, char *err, size_t errlen)
{
	return pgconn_open(url, 0, err, errlen);
}

int pgsnap_take(PGconn *pg, char *err, size_t errlen)
{
	/* REPEATABLE READ takes its snapshot at the first query. */
	return pgconn_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1",
	                   "taking a snapshot", err, errlen);
}

PGconn *pgsnap_begin(const char *url, char *err, size_t errlen)
{
	PGconn *pg = pgsnap_connect(url, err, errlen);

	if (pg != NULL && pgsnap_take(pg, err, errlen) != 0) {
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

int pgsnap_fill(PGconn *pg, sqlite3 *db, char *err, size_t errlen)
{
	for (size_t t = 0; t < sizeof(copied) / sizeof(copied[0]); t++)
		if (copy_table(pg, db, "main", copied[t].table, copied[t].cols, copied[t].ints, err,
		               errlen) != 0)
			return -1;
	return 0;
}

void pgsnap_end(PGconn *pg)
{
	PQfinish(pg);
}

int pgsnap_copy(const char *url, const char *path, char *err, size_t errlen)
{
	PGconn *pg = pgsnap_begin(url, err, errlen);
	sqlite3 *db = NULL;
	int rc = -1;

	if (pg == NULL)
		return -1;
	if (db_open_migrated(path, DB_SYNC_NORMAL, state_schema_sqlite, state_schema_sqlite_n, &db,
	                     err, errlen) != 0)
		goto out;
	if (db_exec(db, "BEGIN", err, errlen) != 0 || pgsnap_fill(pg, db, err, errlen) != 0 ||
	    db_exec(db, "COMMIT", err, errlen) != 0)
		goto out;
	rc = 0;
out:
	pgsnap_end(pg);
	db_close(db);
	return rc;
}
