/* pgsnap.h — a consistent copy of a PostgreSQL state DB (or an app DB)
 * into a SQLite file of the same tables (state_schema.h), for the checker: its rules
 * are SQL over the state and app DBs together, which it runs on SQLite.
 * The copy reads one REPEATABLE READ snapshot through its own
 * connection, so a supervisor that keeps running changes nothing of it. */
#ifndef IDEM_PGSNAP_H
#define IDEM_PGSNAP_H

#include <stddef.h>

#include <libpq-fe.h>
#include <sqlite3.h>

/* Writes the state at url into a new SQLite file at path (an empty or
 * missing file). Returns 0, or -1 with err. */
int pgsnap_copy(const char *url, const char *path, char *err, size_t errlen);

/* The same in steps, for a reader that must take other snapshots right
 * after PostgreSQL's (the checker's app DBs): pgsnap_begin() connects and
 * takes the snapshot; pgsnap_fill() copies it into db's main schema,
 * whose tables state_schema.h made (within db's open transaction, if
 * any); pgsnap_end() closes. */
PGconn *pgsnap_begin(const char *url, char *err, size_t errlen);
/* pgsnap_begin() in its two steps, for a reader that takes several
 * snapshots back to back: the connection first, the snapshot later. */
PGconn *pgsnap_connect(const char *url, char *err, size_t errlen);
int pgsnap_take(PGconn *pg, char *err, size_t errlen);
int pgsnap_fill(PGconn *pg, sqlite3 *db, char *err, size_t errlen);
/* For an app DB on PostgreSQL: copies every table of db's schema (made
 * by the app's SQLite migrations) from the snapshot of pg, the columns
 * by name. Returns 0, or -1 with err. */
int pgsnap_fill_tables(PGconn *pg, sqlite3 *db, const char *schema, char *err, size_t errlen);
void pgsnap_end(PGconn *pg);

#endif
