/* appconn.h — a connection to an app's database (DATABASE): a SQLite
 * file, or PostgreSQL when DATABASE is a postgresql:// URL, behind one
 * small interface, so that an app's activities, seeding and endpoints
 * are written once. SQL is written once too, with ?N parameters (1..n,
 * never inside a string literal: PostgreSQL gets $N); what the two
 * dialects spell differently (the schema) is given twice.
 *
 * A write transaction (appconn_begin) is one at a time per app, across
 * every process and machine: SQLite's BEGIN IMMEDIATE, or on PostgreSQL
 * a transaction-scoped advisory lock named after the app. So an
 * activity's guard (look its key up, then apply, in one transaction)
 * reads the same on both. */
#ifndef IDEM_APPCONN_H
#define IDEM_APPCONN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct appconn;

/* Fills a database that appconn_open created, inside the transaction
 * that created it (the seed of the app's config); returns 0 or -1 with
 * err. */
typedef int (*appconn_fill_fn)(struct appconn *c, const void *arg, char *err, size_t errlen);

struct appconn_schema {
	const char *app;           /* names its PostgreSQL schema version and lock */
	const char *const *sqlite; /* migrations: [i] takes version i to i + 1 */
	int n_sqlite;
	const char *const *pg; /* the same versions on PostgreSQL; NULL: SQLite only */
	int n_pg;
};

/* Opens (creating and migrating) the app DB at where, a path or a
 * postgresql:// URL. With fill, a database this call creates is filled
 * in the same transaction. Returns 0, or -1 with err naming the database
 * (its password hidden). */
int appconn_open(const char *where, enum db_sync sync, const struct appconn_schema *schema,
                 appconn_fill_fn fill, const void *fill_arg, struct appconn **out, char *err,
                 size_t errlen);
void appconn_close(struct appconn *c);

/* The SQLite connection, or NULL on PostgreSQL. */
sqlite3 *appconn_sqlite(const struct appconn *c);
/* "app DB /path" or "app DB postgresql://user:***@host/db", for messages. */
const char *appconn_name(const struct appconn *c);

/* The app's write transaction (above). Returns 0, or -1 with err. On
 * PostgreSQL a connection found lost is made again first. */
int appconn_begin(struct appconn *c, char *err, size_t errlen);
/* Returns 0 once committed, or -1 with err (rolled back). */
int appconn_commit(struct appconn *c, char *err, size_t errlen);
/* Rolls back the open transaction, if one is open. */
void appconn_rollback(struct appconn *c);
int appconn_in_tx(const struct appconn *c);

/* One row of a query, valid until appconn_row_done. */
struct appconn_row {
	struct appconn *c;
	sqlite3_stmt *st;
	PGresult *r;
	int i; /* PostgreSQL: the row of r */
};

/* Runs sql with parameters ?1..?n from types, one letter each: 's' a
 * string (const char *), 'I' an int64_t. Returns 1 with *row (its first
 * row: give it back with appconn_row_done), 0 when there is none, -1
 * with err "what: message". On SQLite, sql must be a literal (db_stmt's
 * cache). */
int appconn_query(struct appconn *c, struct appconn_row *row, const char *what, char *err,
                  size_t errlen, const char *sql, const char *types, ...);
/* The same for a statement without rows: returns the rows it changed,
 * or -1 with err. */
int appconn_exec(struct appconn *c, const char *what, char *err, size_t errlen, const char *sql,
                 const char *types, ...);
/* Moves to the query's next row: 1, or 0 when there is none (the row is
 * given back), or -1 with err (given back too). */
int appconn_row_next(struct appconn_row *row, const char *what, char *err, size_t errlen);
/* A column of appconn_rows_json's rows: its name in the JSON, and 's'
 * (text) or 'I' (an integer). A NULL name ends the list. */
struct appconn_column {
	const char *name;
	char type;
};

/* Runs sql with ?1 = limit and returns its rows as a JSON array of
 * objects, one member per column in cols (NEW ref), or NULL with err. */
json_t *appconn_rows_json(struct appconn *c, const char *what, char *err, size_t errlen,
                          const char *sql, int64_t limit, const struct appconn_column *cols);
/* Column i of the row: text ("" when NULL) or an integer. */
const char *appconn_text(const struct appconn_row *row, int i);
int64_t appconn_int(const struct appconn_row *row, int i);
void appconn_row_done(struct appconn_row *row);

#endif
