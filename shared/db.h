/* db.h — SQLite helpers shared by every process. Each process opens its
 * own connections (never across fork): WAL, a busy timeout, foreign keys,
 * and a schema versioned by PRAGMA user_version. */
#ifndef IDEM_DB_H
#define IDEM_DB_H

#include <sqlite3.h>
#include <stddef.h>

#define DB_BUSY_TIMEOUT_MS 5000

enum db_sync { DB_SYNC_FULL, DB_SYNC_NORMAL };

/* Opens (creating it and its parent directory when missing) the database
 * at path with WAL and the busy timeout. Returns 0, or -1 with err naming
 * the path and SQLite's message. */
int db_open(const char *path, enum db_sync sync, sqlite3 **out, char *err, size_t errlen);

/* Brings the schema to version n: migrations[i] takes user_version i to
 * i + 1, each in one transaction together with the version bump. *from
 * (may be NULL) receives the version found. A database newer than n is
 * an error ("was written by a newer idem"). */
int db_migrate(sqlite3 *db, const char *const *migrations, int n, int *from, char *err,
               size_t errlen);

/* db_migrate(), calling on_create (when not NULL) inside the transaction
 * of the first migration, after it, when that one creates the schema:
 * what fills a new database lands with its creation or not at all. */
typedef int (*db_on_create_fn)(sqlite3 *db, void *arg, char *err, size_t errlen);
int db_migrate_new(sqlite3 *db, const char *const *migrations, int n, int *from,
                   db_on_create_fn on_create, void *arg, char *err, size_t errlen);

/* db_open() then db_migrate(): *out is the migrated database, or NULL
 * (and -1 with err) when either step failed. */
int db_open_migrated(const char *path, enum db_sync sync, const char *const *migrations, int n,
                     sqlite3 **out, char *err, size_t errlen);

/* Runs SQL without results. Returns 0, or -1 with err. */
int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

/* Prepares sql. Returns 0, or -1 with err. */
int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen);

/* A statement of db for sql, from a per-thread cache of prepared
 * statements: sql must be a string that lives as long as the process (a
 * literal), for it is looked up by address. Hot paths (the activities)
 * use this rather than preparing the same text again for every task,
 * which cost half of a worker's instructions. sql is one statement. A
 * statement already in use is prepared again (and cached too while there
 * is room). Give it back with db_stmt_done (reset, bindings cleared; one
 * the full cache could not keep is finalized), and close a connection
 * that used any with db_close. Returns 0, or -1 with err as db_prepare. */
int db_stmt(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen);
void db_stmt_done(sqlite3_stmt *st);
/* Runs st (from db_stmt, bound) to its end and gives it back with
 * db_stmt_done. Returns 0, or -1 with err naming what and SQLite's
 * message (db_fail) when it did not finish. */
int db_stmt_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err, size_t errlen);
/* Steps st once: 1 when it gave a row (read its columns, then give st
 * back), 0 when it had none, -1 with err as db_fail (what and SQLite's
 * message). */
int db_step_row(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err, size_t errlen);
/* Column col of st's row as text into dst[len], cut to fit; "" when NULL. */
void db_column_copy(sqlite3_stmt *st, int col, char *dst, size_t len);
/* db_exec of a statement from the cache (BEGIN IMMEDIATE, COMMIT). */
int db_run(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* Finalizes this thread's cached statements of db, then sqlite3_close. */
int db_close(sqlite3 *db);

/* Writes "what: <sqlite message>" into err and returns -1. */
int db_fail(sqlite3 *db, const char *what, char *err, size_t errlen);

/* mkdir -p of the directory part of path (nothing for a bare name,
 * ":memory:" or a "file:" URI). Returns 0, or -1 with err. */
int db_make_parent_dirs(const char *path, char *err, size_t errlen);

/* Makes what is in the page cache of db's files durable: fdatasync of
 * the database and its WAL (when there is one), fsync of their
 * directory. For commits another process wrote and did not sync (a
 * supervisor that died before its sync thread caught up). Returns 0, or
 * -1 with err naming the file. */
int db_sync_files(sqlite3 *db, char *err, size_t errlen);

/* Whether the file at path, when it exists and is not empty, starts
 * with SQLite's header: 0 (or missing, or empty), -1 with err naming the
 * path. Takes no lock and writes nothing. */
int db_probe(const char *path, char *err, size_t errlen);

/* Runs PRAGMA integrity_check. Returns 0 when "ok", else -1 with the
 * first problem in err. */
int db_integrity_check(sqlite3 *db, char *err, size_t errlen);

#endif
