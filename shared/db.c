/* db.c — SQLite helpers: open with WAL, a busy timeout and foreign keys;
 * migrations by PRAGMA user_version, one transaction per step. Errors go
 * to the caller's err buffer; nothing here logs. */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

int db_fail(sqlite3 *db, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what, db != NULL ? sqlite3_errmsg(db) : "out of memory");
	return -1;
}

/* The file name of the main database, for messages. */
static const char *db_name(sqlite3 *db)
{
	const char *name = sqlite3_db_filename(db, "main");

	return name != NULL && *name != '\0' ? name : ":memory:";
}

int db_make_parent_dirs(const char *path, char *err, size_t errlen)
{
	char *dir = NULL;
	char *slash = NULL;
	int rc = 0;

	if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
		return 0;
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		goto out;
	*slash = '\0';
	for (char *p = dir + 1; rc == 0; p++) {
		char c = *p;
		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create directory %s for database %s: %s", dir,
			         path, strerror(errno));
			rc = -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
out:
	free(dir);
	return rc;
}

/* Runs a PRAGMA that returns one text row into val (may be NULL). */
static int pragma_text(sqlite3 *db, const char *sql, char *val, size_t vallen, char *err,
                       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (db_prepare(db, sql, &st, err, errlen) != 0)
		return -1;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		if (val != NULL)
			db_column_copy(st, 0, val, vallen);
		rc = 0;
	} else if (step == SQLITE_DONE) {
		if (val != NULL && vallen > 0)
			val[0] = '\0';
		rc = 0;
	} else {
		char what[128];
		snprintf(what, sizeof(what), "%s on %s", sql, db_name(db));
		db_fail(db, what, err, errlen);
	}
	sqlite3_finalize(st);
	return rc;
}

/* One try at switching to WAL. Returns SQLite's code; *mode gets the mode. */
static int wal_try(sqlite3 *db, char *mode, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			db_column_copy(st, 0, mode, len);
			/* The switch commits when the statement ends: an I/O
			 * error there must not be dropped. */
			rc = sqlite3_step(st);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* Switches to WAL. When several processes open a new database at once,
 * the switch can fail with SQLITE_BUSY without calling the busy handler:
 * retry until the busy timeout. */
static int set_wal(sqlite3 *db, const char *path, char *mode, size_t len, char *err, size_t errlen)
{
	const struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};
	int waited_ms = 0;
	int rc;

	while ((rc = wal_try(db, mode, len)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		if (waited_ms >= DB_BUSY_TIMEOUT_MS)
			break;
		nanosleep(&pause, NULL);
		waited_ms += 5;
	}
	if (rc == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "database %s: cannot switch to WAL journal: %s", path,
	         sqlite3_errmsg(db));
	return -1;
}

static int configure(sqlite3 *db, const char *path, enum db_sync sync, char *err, size_t errlen)
{
	char mode[32] = "";
	const char *sync_sql =
	    sync == DB_SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";

	if (sqlite3_busy_timeout(db, DB_BUSY_TIMEOUT_MS) != SQLITE_OK)
		return db_fail(db, path, err, errlen);
	if (set_wal(db, path, mode, sizeof(mode), err, errlen) != 0)
		return -1;
	if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
		snprintf(err, errlen,
		         "database %s: cannot switch to WAL journal (got \"%s\"); is it on a "
		         "filesystem without shared memory support?",
		         path, mode);
		return -1;
	}
	if (pragma_text(db, sync_sql, NULL, 0, err, errlen) != 0)
		return -1;
	return pragma_text(db, "PRAGMA foreign_keys=ON", NULL, 0, err, errlen);
}

int db_open(const char *path, enum db_sync sync, sqlite3 **out, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI;
	int rc = -1;

	*out = NULL;
	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "database path is empty; set it in .env or with a flag");
		return -1;
	}
	if (db_make_parent_dirs(path, err, errlen) != 0)
		return -1;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		char what[600];
		snprintf(what, sizeof(what), "cannot open database %s", path);
		db_fail(db, what, err, errlen);
		goto out;
	}
	if (configure(db, path, sync, err, errlen) != 0)
		goto out;
	*out = db;
	db = NULL;
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}

int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "%s: %s", db_name(db), msg != NULL ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return -1;
}

int db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen)
{
	*out = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, out, NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "%s: preparing \"%.80s\": %s", db_name(db), sql, sqlite3_errmsg(db));
	sqlite3_finalize(*out);
	*out = NULL;
	return -1;
}

/* ---- cached statements ---------------------------------------------------- */

#define DB_CACHE_MAX 64

struct cached_stmt {
	sqlite3 *db;
	const char *sql; /* compared by address */
	sqlite3_stmt *st;
	int in_use;
};

static _Thread_local struct cached_stmt stmt_cache[DB_CACHE_MAX];
static _Thread_local int stmt_cached;

int db_stmt(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen)
{
	const char *tail = "";

	for (int i = 0; i < stmt_cached; i++) {
		struct cached_stmt *c = &stmt_cache[i];

		if (c->sql == sql && c->db == db && !c->in_use) {
			c->in_use = 1;
			*out = c->st;
			return 0;
		}
	}
	*out = NULL;
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, &tail) != SQLITE_OK ||
	    tail[strspn(tail, " \t\n;")] != '\0') {
		snprintf(err, errlen, "%s: preparing \"%.80s\": %s", db_name(db), sql,
		         *out != NULL ? "one statement only" : sqlite3_errmsg(db));
		sqlite3_finalize(*out);
		*out = NULL;
		return -1;
	}
	if (stmt_cached < DB_CACHE_MAX)
		stmt_cache[stmt_cached++] = (struct cached_stmt){db, sql, *out, 1};
	return 0;
}

void db_stmt_done(sqlite3_stmt *st)
{
	for (int i = 0; i < stmt_cached; i++) {
		if (stmt_cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			stmt_cache[i].in_use = 0;
			return;
		}
	}
	sqlite3_finalize(st);
}

int db_stmt_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(db, what, err, errlen);

	db_stmt_done(st);
	return rc;
}

int db_step_row(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		return 1;
	case SQLITE_DONE:
		return 0;
	default:
		return db_fail(db, what, err, errlen);
	}
}

void db_column_copy(sqlite3_stmt *st, int col, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, len, "%s", t != NULL ? (const char *)t : "");
}

int db_run(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (db_stmt(db, sql, &st, err, errlen) != 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		snprintf(err, errlen, "%s: %s", db_name(db), sqlite3_errmsg(db));
	db_stmt_done(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

int db_close(sqlite3 *db)
{
	int kept = 0;

	for (int i = 0; i < stmt_cached; i++) {
		if (stmt_cache[i].db == db)
			sqlite3_finalize(stmt_cache[i].st);
		else
			stmt_cache[kept++] = stmt_cache[i];
	}
	stmt_cached = kept;
	return sqlite3_close(db);
}

static int user_version(sqlite3 *db, int *version, char *err, size_t errlen)
{
	char text[32];

	if (pragma_text(db, "PRAGMA user_version", text, sizeof(text), err, errlen) != 0)
		return -1;
	*version = atoi(text);
	return 0;
}

static int newer_error(sqlite3 *db, int found, int n, char *err, size_t errlen)
{
	snprintf(err, errlen,
	         "database %s has schema version %d and was written by a newer idem (this one "
	         "knows up to %d); use a newer idem or another database",
	         db_name(db), found, n);
	return -1;
}

/* Applies migrations[v] to the version found inside the transaction, so
 * that two processes migrating at once do it only once. Sets *done when
 * the schema is already at n. */
static int migrate_step(sqlite3 *db, const char *const *migrations, int n,
                        db_on_create_fn on_create, void *arg, int *done, char *err, size_t errlen)
{
	char sql[64];
	int v = 0;

	if (db_exec(db, "BEGIN IMMEDIATE", err, errlen) != 0)
		return -1;
	if (user_version(db, &v, err, errlen) != 0)
		goto fail;
	if (v >= n) {
		*done = 1;
		if (v > n) {
			newer_error(db, v, n, err, errlen);
			goto fail;
		}
		return db_exec(db, "COMMIT", err, errlen);
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
	if (db_exec(db, migrations[v], err, errlen) != 0) {
		snprintf(err, errlen, "migrating %s to schema version %d: %s", db_name(db), v + 1,
		         sqlite3_errmsg(db));
		goto fail;
	}
	if (v == 0 && on_create != NULL && on_create(db, arg, err, errlen) != 0)
		goto fail;
	if (db_exec(db, sql, err, errlen) != 0 || db_exec(db, "COMMIT", err, errlen) != 0) {
		snprintf(err, errlen, "migrating %s to schema version %d: %s", db_name(db), v + 1,
		         sqlite3_errmsg(db));
		goto fail;
	}
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int db_migrate(sqlite3 *db, const char *const *migrations, int n, int *from, char *err,
               size_t errlen)
{
	return db_migrate_new(db, migrations, n, from, NULL, NULL, err, errlen);
}

int db_migrate_new(sqlite3 *db, const char *const *migrations, int n, int *from,
                   db_on_create_fn on_create, void *arg, char *err, size_t errlen)
{
	int v = 0;
	int done = 0;

	if (user_version(db, &v, err, errlen) != 0)
		return -1;
	if (from != NULL)
		*from = v;
	if (v > n)
		return newer_error(db, v, n, err, errlen);
	if (v == n)
		return 0;
	while (!done) {
		if (migrate_step(db, migrations, n, on_create, arg, &done, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int db_open_migrated(const char *path, enum db_sync sync, const char *const *migrations, int n,
                     sqlite3 **out, char *err, size_t errlen)
{
	if (db_open(path, sync, out, err, errlen) != 0)
		return -1;
	if (db_migrate(*out, migrations, n, NULL, err, errlen) != 0) {
		db_close(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int db_integrity_check(sqlite3 *db, char *err, size_t errlen)
{
	char text[512];

	if (pragma_text(db, "PRAGMA integrity_check", text, sizeof(text), err, errlen) != 0)
		return -1;
	if (strcmp(text, "ok") == 0)
		return 0;
	snprintf(err, errlen, "integrity check of %s failed: %s", db_name(db), text);
	return -1;
}

/* fsync (fdatasync when only the data matters) of the file at path;
 * a missing file is no error when may_miss. */
static int sync_path(const char *path, int dir, int may_miss, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	int rc;

	if (fd < 0) {
		if (may_miss && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot open %s to sync it: %s", path, strerror(errno));
		return -1;
	}
	rc = dir ? fsync(fd) : fdatasync(fd);
	if (rc != 0)
		snprintf(err, errlen, "cannot sync %s: %s", path, strerror(errno));
	close(fd);
	return rc;
}

int db_sync_files(sqlite3 *db, char *err, size_t errlen)
{
	const char *path = sqlite3_db_filename(db, "main");
	const char *wal;
	char *copy;
	int rc;

	if (path == NULL || *path == '\0')
		return 0; /* in memory */
	wal = sqlite3_filename_wal(path);
	if (sync_path(path, 0, 0, err, errlen) != 0 ||
	    (wal != NULL && sync_path(wal, 0, 1, err, errlen) != 0))
		return -1;
	copy = xstrdup(path);
	rc = sync_path(dirname(copy), 1, 0, err, errlen);
	free(copy);
	return rc;
}

int db_probe(const char *path, char *err, size_t errlen)
{
	static const char magic[16] = "SQLite format 3";
	char head[16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 && errno == ENOENT)
		return 0; /* made by its program when it first opens it */
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	/* The header, not a connection: the file's own program may hold its
	 * locks (a supplier still stopping), and a look must not wait. */
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n == 0 || (n == (ssize_t)sizeof(head) && memcmp(head, magic, sizeof(head)) == 0))
		return 0;
	snprintf(err, errlen,
	         "%s is not an SQLite database (file is not a database: its header "
	         "is not \"SQLite format 3\")",
	         path);
	return -1;
}
