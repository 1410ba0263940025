/* store.c — the state DB: workflows, steps and the append-only event
 * history. Every write joins the current turn's transaction, opened by the
 * first write and committed once by engine_turn_end() (group commit).
 *
 * Group commit across turns and processes (SYNC=full without FAULT_VFS):
 * neither the state DB's COMMIT nor the workers' app-DB commits wait for
 * the disk (SQLite's synchronous=NORMAL: the WAL is written, not synced).
 * A sync thread fdatasync()s the WALs behind them, and one sync covers
 * every commit written before it began:
 *  - the app DB's WAL, for activity results: the engine applies a result
 *    to the state only once a sync begun after the result arrived (so
 *    after the worker's commit) has finished, so the state never records
 *    an effect the disk could still lose;
 *  - the state DB's WAL, for the turns: the engine holds each turn's task
 *    frames and replies until its commit is durable.
 * So the loop runs the next turns while the disk syncs the last ones. A
 * crash of a process loses nothing committed (the page cache has it); a
 * power loss loses at most commits nobody has been told of, and an effect
 * whose result was not yet recorded is found by the retry's guard. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "pgconn.h"
#include "state_schema.h"
#include "store.h"
#include "store_internal.h"
#include "sup.h"
#include "textbuf.h"
#include "xalloc.h"

#define STORE_BUSY_LOG_MS 5000 /* how often a wait for a locked state DB is logged */

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_WF_LOOKUP,
	S_WF_INSERT,
	S_WF_CLOSE,
	S_STEP_SAVE,
	S_STEP_UPDATE,
	S_EVENT,
	S_WF_GET,
	S_STEPS_OF,
	S_EVENTS_OF,
	S_RUNNING,
	S_COUNTER_SET,
	S_COUNTERS,
	S_NSTMTS
};

static const char *const stmt_sql[S_NSTMTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_WF_LOOKUP] = "SELECT id FROM workflows WHERE namespace = ?1 AND workflow_id = ?2",
    [S_WF_INSERT] = "INSERT INTO workflows (namespace, workflow_id, type, input, status, "
                    "created_at) VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
    [S_WF_CLOSE] = "UPDATE workflows SET status = ?2, result = ?3, error = ?4, "
                   "closed_at = ?5 WHERE id = ?1",
    [S_STEP_SAVE] = "INSERT OR REPLACE INTO steps (wf, seq, activity, input, status, attempt, "
                    "heartbeat, result, error_type, error_message, next_attempt_at, "
                    "scheduled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    /* The same parameters as S_STEP_SAVE; activity (?3) and input (?4)
     * never change once the step is recorded. */
    [S_STEP_UPDATE] = "UPDATE steps SET status = ?5, attempt = ?6, heartbeat = ?7, result = ?8, "
                      "error_type = ?9, error_message = ?10, next_attempt_at = ?11, "
                      "scheduled_at = ?12 WHERE wf = ?1 AND seq = ?2",
    [S_EVENT] = "INSERT INTO events (wf, seq, attempt, kind, ts, pid, detail) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_WF_GET] = "SELECT id, namespace, workflow_id, type, input, status, result, error, "
                 "created_at, closed_at FROM workflows WHERE id = ?1",
    [S_STEPS_OF] = "SELECT seq, activity, input, status, attempt, heartbeat, result, "
                   "error_type, error_message, next_attempt_at, scheduled_at FROM steps "
                   "WHERE wf = ?1 ORDER BY seq",
    [S_EVENTS_OF] = "SELECT id, seq, attempt, kind, ts, pid, detail FROM events "
                    "WHERE wf = ?1 ORDER BY id",
    [S_COUNTER_SET] = "UPDATE counters SET doc = ?1 WHERE id = 1",
    [S_COUNTERS] = "SELECT doc FROM counters WHERE id = 1",
    [S_RUNNING] = "SELECT id, namespace, workflow_id, type, input, created_at FROM workflows "
                  "WHERE status = 'running' ORDER BY id",
};

/* The sync thread and what it shares with the loop. */
struct syncer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *wal_path, *app_wal_path;
	int wal_fd, app_wal_fd;
	int pipe[2];                  /* the thread writes a byte each time it advances */
	uint64_t wanted;              /* under lock: the last commit to make durable */
	uint64_t app_wanted;          /* under lock: the last app-DB ticket to cover */
	int stop;                     /* under lock */
	int failed;                   /* under lock: errno of a failed sync, then 0 */
	const char *failed_path;      /* under lock */
	_Atomic uint64_t durable;     /* commits up to this one are on disk */
	_Atomic uint64_t app_durable; /* app-DB tickets up to this one are */
};

/* The descriptor the sync thread fdatasyncs path through, opened at
 * start-up: a descriptor opened at the first commit could meet a process
 * out of descriptors (a flood of idle connections) and stop the
 * supervisor for a failed sync. The WAL exists: the connection that
 * names it has read its database. */
static int open_for_sync(const char *path, int *fd, char *err, size_t errlen)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	snprintf(err, errlen, "state DB: cannot open %s for the sync thread: %s", path,
	         strerror(errno));
	return -1;
}

static void *sync_main(void *arg)
{
	struct syncer *y = arg;

	pthread_mutex_lock(&y->lock);
	for (;;) {
		uint64_t target, app_target;
		int rc = 0, e = 0;
		const char *path = NULL;

		while (!y->stop && y->wanted == atomic_load(&y->durable) &&
		       y->app_wanted == atomic_load(&y->app_durable))
			pthread_cond_wait(&y->cond, &y->lock);
		if (y->wanted == atomic_load(&y->durable) &&
		    y->app_wanted == atomic_load(&y->app_durable))
			break;
		target = y->wanted;
		app_target = y->app_wanted;
		pthread_mutex_unlock(&y->lock);
		/* Everything up to the targets was written before they were
		 * published: these syncs cover it all. */
		if (app_target != atomic_load(&y->app_durable) && fdatasync(y->app_wal_fd) != 0)
			path = y->app_wal_path;
		if (path == NULL && target != atomic_load(&y->durable) && fdatasync(y->wal_fd) != 0)
			path = y->wal_path;
		if (path != NULL) {
			e = errno;
			rc = -1;
		}
		pthread_mutex_lock(&y->lock);
		if (rc != 0) {
			y->failed = e;
			y->failed_path = path;
			y->stop = 1;
		} else {
			atomic_store(&y->app_durable, app_target);
			atomic_store(&y->durable, target);
		}
		if (write(y->pipe[1], "", 1) < 0) {
			/* full: the loop has a wake-up pending already */
		}
		if (rc != 0)
			break;
	}
	pthread_mutex_unlock(&y->lock);
	return NULL;
}

static void syncer_free(struct syncer *y)
{
	if (y == NULL)
		return;
	pthread_mutex_lock(&y->lock);
	y->stop = 1;
	pthread_cond_signal(&y->cond);
	pthread_mutex_unlock(&y->lock);
	pthread_join(y->thread, NULL);
	pthread_mutex_destroy(&y->lock);
	pthread_cond_destroy(&y->cond);
	if (y->wal_fd >= 0)
		close(y->wal_fd);
	if (y->app_wal_fd >= 0)
		close(y->app_wal_fd);
	close(y->pipe[0]);
	close(y->pipe[1]);
	free(y->wal_path);
	free(y->app_wal_path);
	free(y);
}

static int syncer_new(struct store *s, sqlite3 *app, char *err, size_t errlen)
{
	struct syncer *y = xcalloc(1, sizeof(*y));
	const char *wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
	const char *app_wal = sqlite3_filename_wal(sqlite3_db_filename(app, "main"));

	y->wal_fd = y->app_wal_fd = -1;
	if (wal == NULL || app_wal == NULL) {
		snprintf(err, errlen, "state DB: SQLite names no WAL file to sync");
		goto fail;
	}
	y->wal_path = xstrdup(wal);
	y->app_wal_path = xstrdup(app_wal);
	if (open_for_sync(y->wal_path, &y->wal_fd, err, errlen) != 0 ||
	    open_for_sync(y->app_wal_path, &y->app_wal_fd, err, errlen) != 0)
		goto fail;
	if (pipe2(y->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		snprintf(err, errlen, "state DB: cannot make the sync thread's pipe: %s",
		         strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&y->lock, NULL);
	pthread_cond_init(&y->cond, NULL);
	if (pthread_create(&y->thread, NULL, sync_main, y) != 0) {
		snprintf(err, errlen, "state DB: cannot start the sync thread");
		pthread_mutex_destroy(&y->lock);
		pthread_cond_destroy(&y->cond);
		close(y->pipe[0]);
		close(y->pipe[1]);
		goto fail;
	}
	s->sync = y;
	return 0;
fail:
	if (y->wal_fd >= 0)
		close(y->wal_fd);
	if (y->app_wal_fd >= 0)
		close(y->app_wal_fd);
	free(y->wal_path);
	free(y->app_wal_path);
	free(y);
	return -1;
}

int store_sync_fd(const struct store *s)
{
	return s->sync != NULL ? s->sync->pipe[0] : -1;
}

uint64_t store_committed(const struct store *s)
{
	return s->committed;
}

uint64_t store_durable(struct store *s, char *err, size_t errlen)
{
	struct syncer *y = s->sync;
	int failed;

	if (y == NULL)
		return s->committed;
	pthread_mutex_lock(&y->lock);
	failed = y->failed;
	pthread_mutex_unlock(&y->lock);
	if (failed != 0) {
		snprintf(err, errlen, "fdatasync of %s failed: %s", y->failed_path,
		         strerror(failed));
		return UINT64_MAX;
	}
	return atomic_load(&y->durable);
}

void store_sync_drain(struct store *s)
{
	char c[64];

	if (s->sync != NULL)
		while (read(s->sync->pipe[0], c, sizeof(c)) > 0)
			;
}

int store_group_commit(const struct store *s)
{
	return s->sync != NULL;
}

uint64_t store_app_sync_request(struct store *s)
{
	struct syncer *y = s->sync;
	uint64_t ticket;

	pthread_mutex_lock(&y->lock);
	ticket = ++y->app_wanted;
	pthread_cond_signal(&y->cond);
	pthread_mutex_unlock(&y->lock);
	return ticket;
}

uint64_t store_app_durable(const struct store *s)
{
	return atomic_load(&s->sync->app_durable);
}

void store_sync_request(struct store *s)
{
	struct syncer *y = s->sync;

	if (y == NULL)
		return;
	pthread_mutex_lock(&y->lock);
	if (y->wanted < s->committed) {
		y->wanted = s->committed;
		pthread_cond_signal(&y->cond);
	}
	pthread_mutex_unlock(&y->lock);
}

int store_sync_wait(struct store *s, char *err, size_t errlen)
{
	struct syncer *y = s->sync;
	uint64_t app;

	if (y == NULL)
		return 0;
	app = store_app_sync_request(s);
	store_sync_request(s);
	for (;;) {
		uint64_t d = store_durable(s, err, errlen);
		struct pollfd p = {.fd = y->pipe[0], .events = POLLIN};

		if (d == UINT64_MAX)
			return -1;
		if (d >= s->committed && store_app_durable(s) >= app)
			return 0;
		poll(&p, 1, 100);
		store_sync_drain(s);
	}
}

/* ---- counters ------------------------------------------------------------ */

static json_t *column_json(sqlite3_stmt *st, int i);

struct counter *store_counter(struct store *s, const char *name)
{
	for (size_t i = 0; i < s->ncounters; i++)
		if (strcmp(s->counters[i].name, name) == 0)
			return &s->counters[i];
	if (s->ncounters == s->capcounters) {
		size_t cap = s->capcounters ? s->capcounters * 2 : 32;
		s->counters = xrealloc(s->counters, cap * sizeof(*s->counters));
		s->capcounters = cap;
	}
	s->counters[s->ncounters] = (struct counter){.value = 0, .written = 0};
	snprintf(s->counters[s->ncounters].name, sizeof(s->counters[0].name), "%s", name);
	return &s->counters[s->ncounters++];
}

/* Counter "group.key", found without formatting its name (this runs for
 * every row the engine writes); created when missing. */
static struct counter *counter_of(struct store *s, const char *group, const char *key)
{
	size_t glen = strlen(group);
	char name[64];

	for (size_t i = 0; i < s->ncounters; i++) {
		const char *n = s->counters[i].name;

		if (strncmp(n, group, glen) == 0 && n[glen] == '.' &&
		    strcmp(n + glen + 1, key) == 0)
			return &s->counters[i];
	}
	snprintf(name, sizeof(name), "%s.%s", group, key);
	return store_counter(s, name);
}

void store_count(struct store *s, const char *group, const char *key, int64_t delta)
{
	struct counter *c;

	if (delta == 0)
		return;
	c = counter_of(s, group, key);
	c->value += delta;
	s->counters_dirty = 1;
}

static int counters_load(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt[S_COUNTERS];
	int rc = sqlite3_step(st);
	json_t *doc = rc == SQLITE_ROW ? column_json(st, 0) : NULL, *v;
	const char *name;

	sqlite3_reset(st);
	if (rc != SQLITE_ROW || !json_is_object(doc)) {
		json_decref(doc);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return db_fail(s->db, "state DB: read counters", err, errlen);
		snprintf(err, errlen, "state DB: the counters row is missing or not a JSON object");
		return -1;
	}
	json_object_foreach(doc, name, v)
	{
		store_counter(s, name)->value = json_integer_value(v);
	}
	json_decref(doc);
	return 0;
}

/* The counters row as JSON text; the names are the store's own
 * ("group.key" of statuses and event kinds: no character to escape). */
static int counters_write(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt[S_COUNTER_SET];
	struct textbuf b = {0};
	char *doc;
	size_t len;
	int rc;

	if (!s->counters_dirty)
		return 0;
	textbuf_putc(&b, '{');
	for (size_t i = 0; i < s->ncounters; i++) {
		textbuf_puts(&b, i > 0 ? ",\"" : "\"");
		textbuf_puts(&b, s->counters[i].name);
		textbuf_puts(&b, "\":");
		textbuf_put_int(&b, s->counters[i].value);
	}
	textbuf_putc(&b, '}');
	doc = textbuf_take(&b, &len);
	sqlite3_bind_text(st, 1, doc, (int)len, free);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, "state DB: write counters", err, errlen);
	s->counters_dirty = 0;
	return 0;
}

/* SQLITE_BUSY on the state DB: no other supervisor can hold it (the lock
 * file beside it keeps them out), so it is a person's sqlite3 shell, a
 * backup or a stopped process in a write transaction. Failing the turn
 * would stop the supervisor; instead the loop waits for the lock, however
 * long, and says every few seconds what it waits for. Nothing is lost
 * meanwhile: what arrives waits in the sockets. */
static int store_busy(void *arg, int tries)
{
	struct store *s = arg;
	const struct timespec pause = {0, (tries < 10 ? 1 : 10) * 1000000L};
	int64_t now = clock_mono_ms();

	if (tries == 0)
		s->busy_logged = now;
	else if (now - s->busy_logged >= STORE_BUSY_LOG_MS) {
		log_warn("the state DB is locked by another process; waiting for it (a sqlite3 "
		         "shell or a backup in a write transaction?)",
		         "db=%s", sqlite3_db_filename(s->db, "main"));
		s->busy_logged = now;
	}
	nanosleep(&pause, NULL);
	return 1;
}

int store_open(const char *path, enum db_sync sync, sqlite3 *group_app, struct store **out,
               char *err, size_t errlen)
{
	struct store *s = xcalloc(1, sizeof(*s));
	int n = state_schema_sqlite_n;
	int sync_thread = group_app != NULL && sync == DB_SYNC_FULL;

	if (pgconn_is_url(path)) {
		/* PostgreSQL's COMMIT returns once durable (synchronous_commit
		 * on): no sync thread, and SYNC is the app DB's alone. */
		int rc = pgstore_open(s, path, err, errlen);

		if (rc != 0) {
			store_close(s);
			return rc;
		}
		*out = s;
		return 0;
	}
	s->stmt = xcalloc(S_NSTMTS, sizeof(*s->stmt));
	if (db_open_migrated(path, sync_thread ? DB_SYNC_NORMAL : sync, state_schema_sqlite, n,
	                     &s->db, err, errlen) != 0)
		goto fail;
	sqlite3_busy_handler(s->db, store_busy, s);
	for (int i = 0; i < S_NSTMTS; i++)
		if (db_prepare(s->db, stmt_sql[i], &s->stmt[i], err, errlen) != 0)
			goto fail;
	if (counters_load(s, err, errlen) != 0)
		goto fail;
	if (sync_thread && syncer_new(s, group_app, err, errlen) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	syncer_free(s->sync);
	free(s->counters);
	if (s->pg != NULL) {
		pgstore_close(s);
		free(s);
		return;
	}
	if (s->in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (int i = 0; s->stmt != NULL && i < S_NSTMTS; i++)
		sqlite3_finalize(s->stmt[i]);
	free(s->stmt);
	db_close(s->db);
	free(s);
}

int store_broken(const struct store *s, char *err, size_t errlen)
{
	if (s->pg == NULL || !pgstore_lost(s))
		return 0;
	snprintf(err, errlen, "state DB: the connection to PostgreSQL was lost");
	return 1;
}

int store_wf_running(struct store *s, int64_t id, char *err, size_t errlen)
{
	return s->pg != NULL ? pgstore_wf_running(s, id, err, errlen) : 0;
}

int store_shared(const struct store *s)
{
	return s->pg != NULL;
}

int store_join(struct store *s, const char *name, int64_t lease_ms, char *err, size_t errlen)
{
	return s->pg != NULL ? pgstore_join(s, name, lease_ms, err, errlen) : 0;
}

int store_adopt(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg, char *err,
                size_t errlen)
{
	return s->pg != NULL ? pgstore_adopt(s, fn, arg, err, errlen) : 0;
}

int store_renew(struct store *s, char *err, size_t errlen)
{
	return s->pg != NULL ? store_write(s, err, errlen) : 0;
}

int64_t store_run_id(const struct store *s)
{
	return s->pg != NULL ? pgstore_me(s) : 0;
}

const char *store_run_name(const struct store *s)
{
	return s->pg != NULL ? pgstore_name(s) : "";
}

sqlite3 *store_db(struct store *s)
{
	return s->db;
}

int store_dirty(const struct store *s)
{
	return s->in_tx;
}

/* Runs a statement that returns no rows, then resets it. */
static int step_done(struct store *s, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, what, err, errlen);
	return 0;
}

int store_write(struct store *s, char *err, size_t errlen)
{
	if (s->pg != NULL) {
		if (s->in_tx && pgstore_tx_failed(s)) {
			snprintf(
			    err, errlen,
			    "state DB: this turn's transaction was aborted by an earlier error");
			return -1;
		}
		if (s->in_tx)
			return 0;
		if (pgstore_begin(s, err, errlen) != 0)
			return -1;
		s->in_tx = 1;
		return 0;
	}
	/* An I/O error or a full disk inside a statement rolls the whole
	 * transaction back: no later write of this turn may then commit on
	 * its own. */
	if (s->in_tx && sqlite3_get_autocommit(s->db)) {
		snprintf(err, errlen,
		         "state DB: this turn's transaction was rolled back by an "
		         "earlier error");
		return -1;
	}
	if (s->in_tx)
		return 0;
	if (step_done(s, s->stmt[S_BEGIN], "state DB: BEGIN", err, errlen) != 0)
		return -1;
	s->in_tx = 1;
	return 0;
}

int store_commit(struct store *s, char *err, size_t errlen)
{
	if (!s->in_tx)
		return 0;
	if (s->pg != NULL) {
		s->in_tx = 0;
		if (pgstore_commit(s, err, errlen) != 0)
			return -1;
		s->committed++;
		return 0;
	}
	if (counters_write(s, err, errlen) != 0) {
		s->in_tx = 0;
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	s->in_tx = 0;
	if (step_done(s, s->stmt[S_COMMIT], "state DB: COMMIT", err, errlen) != 0) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	s->committed++;
	return 0;
}

/* Binds JSON as text (NULL stays NULL). */
static void bind_json(sqlite3_stmt *st, int i, const json_t *j)
{
	char *text;

	if (j == NULL) {
		sqlite3_bind_null(st, i);
		return;
	}
	text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	sqlite3_bind_text(st, i, text, -1, free);
}

/* Binds text that outlives the statement's step (NULL stays NULL). */
static void bind_static(sqlite3_stmt *st, int i, const char *text)
{
	if (text == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static void bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (text == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
}

/* A column holding JSON text, as a NEW reference (NULL when NULL). */
static json_t *column_json(sqlite3_stmt *st, int i)
{
	const char *text = (const char *)sqlite3_column_text(st, i);

	return text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
}

static char *column_strdup(sqlite3_stmt *st, int i)
{
	const char *text = (const char *)sqlite3_column_text(st, i);

	return text ? xstrdup(text) : NULL;
}

int store_wf_lookup(struct store *s, const char *ns, const char *workflow_id, int64_t *id,
                    char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (s->pg != NULL)
		return pgstore_wf_lookup(s, ns, workflow_id, id, err, errlen);
	st = s->stmt[S_WF_LOOKUP];
	bind_text(st, 1, ns);
	bind_text(st, 2, workflow_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(s->db, "state DB: look up workflow", err, errlen);
}

int store_wf_insert(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen)
{
	sqlite3_stmt *st;

	if (store_write(s, err, errlen) != 0)
		return -1;
	if (s->pg != NULL) {
		int rc = pgstore_wf_insert(s, wf, now, err, errlen);

		if (rc != 0)
			return rc;
		store_count(s, "workflows", "running", 1);
		wf->created_at = now;
		return 0;
	}
	st = s->stmt[S_WF_INSERT];
	bind_text(st, 1, wf->namespace_);
	bind_text(st, 2, wf->workflow_id);
	bind_text(st, 3, wf->type);
	bind_static(st, 4, json_text(wf->input, &wf->input_text));
	sqlite3_bind_int64(st, 5, now);
	if (step_done(s, st, "state DB: insert workflow", err, errlen) != 0)
		return -1;
	store_count(s, "workflows", "running", 1);
	wf->id = sqlite3_last_insert_rowid(s->db);
	wf->created_at = now;
	return 0;
}

int store_wf_close(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt != NULL ? s->stmt[S_WF_CLOSE] : NULL;

	if (store_write(s, err, errlen) != 0)
		return -1;
	if (s->pg != NULL) {
		if (pgstore_wf_close(s, wf, now, err, errlen) != 0)
			return -1;
		goto counted;
	}
	sqlite3_bind_int64(st, 1, wf->id);
	bind_text(st, 2, wf_status_name(wf->status));
	bind_static(st, 3, json_text(wf->result, &wf->result_text));
	bind_text(st, 4, wf->error);
	sqlite3_bind_int64(st, 5, now);
	if (step_done(s, st, "state DB: close workflow", err, errlen) != 0)
		return -1;
counted:
	store_count(s, "workflows", "running", -1);
	store_count(s, "workflows", wf_status_name(wf->status), 1);
	return 0;
}

/* Binds a step's row to st (S_STEP_SAVE or S_STEP_UPDATE) and runs it. */
static int step_write(struct store *s, sqlite3_stmt *st, struct step *stp, char *err, size_t errlen)
{
	sqlite3_bind_int64(st, 1, stp->wf->id);
	sqlite3_bind_int(st, 2, stp->seq);
	bind_static(st, 3, stp->activity);
	bind_static(st, 4, json_text(stp->input, &stp->input_text));
	bind_static(st, 5, step_status_name(stp->status));
	sqlite3_bind_int(st, 6, stp->attempt);
	bind_json(st, 7, stp->heartbeat);
	bind_static(st, 8, json_text(stp->result, &stp->result_text));
	bind_text(st, 9, stp->error_type);
	bind_text(st, 10, stp->error_message);
	sqlite3_bind_int64(st, 11, stp->next_attempt_at);
	sqlite3_bind_int64(st, 12, stp->scheduled_at);
	return step_done(s, st, "state DB: save step", err, errlen);
}

/* A recorded step changes in place (cheaper than REPLACE's delete and
 * insert of the whole row, input included); should its row be missing, it
 * is written whole. */
int store_step_save(struct store *s, struct step *stp, char *err, size_t errlen)
{
	int updated = 0;

	if (store_write(s, err, errlen) != 0)
		return -1;
	if (s->pg != NULL) {
		if (pgstore_step_write(s, stp, err, errlen) != 0)
			return -1;
		updated = 1;
	}
	if (stp->saved && !updated) {
		if (step_write(s, s->stmt[S_STEP_UPDATE], stp, err, errlen) != 0)
			return -1;
		updated = sqlite3_changes(s->db) == 1;
	}
	if (!updated && step_write(s, s->stmt[S_STEP_SAVE], stp, err, errlen) != 0)
		return -1;
	if (stp->saved)
		store_count(s, "steps", step_status_name(stp->saved_status), -1);
	store_count(s, "steps", step_status_name(stp->status), 1);
	store_count(s, "attempts", "total", stp->attempt - (stp->saved ? stp->saved_attempt : 0));
	stp->saved = 1;
	stp->saved_status = stp->status;
	stp->saved_attempt = stp->attempt;
	return 0;
}

int store_event(struct store *s, int64_t wf_id, int seq, int attempt, const char *kind, long pid,
                json_t *detail, char *err, size_t errlen)
{
	char *text = detail != NULL ? json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	int rc = store_event_text(s, wf_id, seq, attempt, kind, pid, text, err, errlen);

	free(text);
	return rc;
}

int store_event_text(struct store *s, int64_t wf_id, int seq, int attempt, const char *kind,
                     long pid, const char *detail, char *err, size_t errlen)
{
	sqlite3_stmt *st;

	if (store_write(s, err, errlen) != 0)
		return -1;
	if (s->pg != NULL) {
		if (pgstore_event_text(s, wf_id, seq, attempt, kind, pid, detail, err, errlen) != 0)
			return -1;
		store_count(s, "events", kind, 1);
		return 0;
	}
	st = s->stmt[S_EVENT];
	sqlite3_bind_int64(st, 1, wf_id);
	if (seq >= 0)
		sqlite3_bind_int(st, 2, seq);
	if (attempt > 0)
		sqlite3_bind_int(st, 3, attempt);
	bind_text(st, 4, kind);
	sqlite3_bind_int64(st, 5, clock_wall_ms());
	if (pid > 0)
		sqlite3_bind_int64(st, 6, pid);
	bind_static(st, 7, detail);
	if (step_done(s, st, "state DB: append event", err, errlen) != 0)
		return -1;
	store_count(s, "events", kind, 1);
	return 0;
}

/* ---- loading -------------------------------------------------------------- */

static int load_steps(struct store *s, struct wf *wf, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt[S_STEPS_OF];
	int rc;

	sqlite3_bind_int64(st, 1, wf->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct step *stp =
		    wf_add_step(wf, (const char *)sqlite3_column_text(st, 1), column_json(st, 2));
		const char *status = (const char *)sqlite3_column_text(st, 3);
		int seq = sqlite3_column_int(st, 0);

		if (stp->seq != seq || step_status_parse(status, &stp->status) != 0) {
			snprintf(err, errlen,
			         "state DB: workflow %lld has a bad step row (seq %d, status %s)",
			         (long long)wf->id, seq, status);
			sqlite3_reset(st);
			return -1;
		}
		stp->attempt = sqlite3_column_int(st, 4);
		stp->heartbeat = column_json(st, 5);
		stp->result = column_json(st, 6);
		stp->error_type = column_strdup(st, 7);
		stp->error_message = column_strdup(st, 8);
		stp->next_attempt_at = sqlite3_column_int64(st, 9);
		stp->scheduled_at = sqlite3_column_int64(st, 10);
		stp->saved = 1;
		stp->saved_status = stp->status;
		stp->saved_attempt = stp->attempt;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, "state DB: load steps", err, errlen);
	return 0;
}

int store_load_running(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg, char *err,
                       size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (s->pg != NULL)
		return pgstore_load_running(s, fn, arg, err, errlen);
	st = s->stmt[S_RUNNING];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *input = column_json(st, 4);
		struct wf *wf =
		    wf_new(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
		           (const char *)sqlite3_column_text(st, 2),
		           (const char *)sqlite3_column_text(st, 3), input);

		json_decref(input);
		wf->created_at = sqlite3_column_int64(st, 5);
		if (load_steps(s, wf, err, errlen) != 0) {
			wf_free(wf);
			sqlite3_reset(st);
			return -1;
		}
		fn(arg, wf);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, "state DB: load running workflows", err, errlen);
	return 0;
}

/* ---- API views ------------------------------------------------------------ */

static json_t *column_value(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_NULL:
		return json_null();
	default:
		return json_string((const char *)sqlite3_column_text(st, i));
	}
}

static json_t *column_json_or_null(sqlite3_stmt *st, int i)
{
	json_t *j = column_json(st, i);

	return j ? j : json_null();
}

static json_t *steps_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt[S_STEPS_OF];
	json_t *arr = json_array();
	int rc;

	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(
		    arr, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "seq",
		                   column_value(st, 0), "activity", column_value(st, 1), "input",
		                   column_json_or_null(st, 2), "status", column_value(st, 3),
		                   "attempts", column_value(st, 4), "heartbeat",
		                   column_json_or_null(st, 5), "result", column_json_or_null(st, 6),
		                   "error_type", column_value(st, 7), "error_message",
		                   column_value(st, 8), "next_attempt_at", column_value(st, 9),
		                   "scheduled_at", column_value(st, 10)));
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		db_fail(s->db, "state DB: read steps", err, errlen);
		return NULL;
	}
	return arr;
}

/* The workflow row at the statement's current row, as an object. */
static json_t *wf_row_json(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "namespace",
	                 column_value(st, 1), "workflow_id", column_value(st, 2), "type",
	                 column_value(st, 3), "input", column_json_or_null(st, 4), "status",
	                 column_value(st, 5), "result", column_json_or_null(st, 6), "error",
	                 column_value(st, 7), "created_at", column_value(st, 8), "closed_at",
	                 column_value(st, 9));
}

json_t *store_wf_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	json_t *wf = NULL, *steps;
	int rc;

	if (s->pg != NULL)
		return pgstore_wf_json(s, id, err, errlen);
	st = s->stmt[S_WF_GET];
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		wf = wf_row_json(st);
	sqlite3_reset(st);
	if (wf == NULL) {
		if (rc == SQLITE_DONE)
			snprintf(err, errlen, "no workflow with id %lld", (long long)id);
		else
			db_fail(s->db, "state DB: read workflow", err, errlen);
		return NULL;
	}
	steps = steps_json(s, id, err, errlen);
	if (steps == NULL) {
		json_decref(wf);
		return NULL;
	}
	json_object_set_new(wf, "steps", steps);
	return wf;
}

json_t *store_history_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	json_t *arr;
	int rc;

	if (s->pg != NULL)
		return pgstore_history_json(s, id, err, errlen);
	st = s->stmt[S_EVENTS_OF];
	arr = json_array();
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(
		    arr, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", column_value(st, 0),
		                   "step", column_value(st, 1), "attempt", column_value(st, 2),
		                   "kind", column_value(st, 3), "ts", column_value(st, 4), "pid",
		                   column_value(st, 5), "detail", column_json_or_null(st, 6)));
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		db_fail(s->db, "state DB: read history", err, errlen);
		return NULL;
	}
	return arr;
}

json_t *store_list_json(struct store *s, const char *ns, const char *status, int limit,
                        int64_t after, char *err, size_t errlen)
{
	/* One statement per filter, so that a status filter walks the
	 * (status, id) index: "?3 IS NULL OR status = ?3" cannot, and a
	 * status no row has read the whole table (29 ms at 100,000). */
	static const char *const sql[2][2] = {
	    {"SELECT id, namespace, workflow_id, type, input, status, result, error, "
	     "created_at, closed_at FROM workflows WHERE id > ?1 ORDER BY id LIMIT ?4",
	     "SELECT id, namespace, workflow_id, type, input, status, result, error, "
	     "created_at, closed_at FROM workflows WHERE id > ?1 AND namespace = ?2 "
	     "ORDER BY id LIMIT ?4"},
	    {"SELECT id, namespace, workflow_id, type, input, status, result, error, "
	     "created_at, closed_at FROM workflows INDEXED BY workflows_status "
	     "WHERE status = ?3 AND id > ?1 ORDER BY id LIMIT ?4",
	     "SELECT id, namespace, workflow_id, type, input, status, result, error, "
	     "created_at, closed_at FROM workflows INDEXED BY workflows_status "
	     "WHERE status = ?3 AND id > ?1 AND namespace = ?2 ORDER BY id LIMIT ?4"},
	};
	sqlite3_stmt *st = NULL;
	json_t *arr = NULL;
	int64_t last = after;
	int rc;

	if (s->pg != NULL)
		return pgstore_list_json(s, ns, status, limit, after, err, errlen);
	if (db_prepare(s->db, sql[status != NULL][ns != NULL], &st, err, errlen) != 0)
		return NULL;
	sqlite3_bind_int64(st, 1, after);
	bind_text(st, 2, ns);
	bind_text(st, 3, status);
	sqlite3_bind_int(st, 4, limit);
	arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		last = sqlite3_column_int64(st, 0);
		json_array_append_new(arr, wf_row_json(st));
	}
	if (rc != SQLITE_DONE) {
		db_fail(s->db, "state DB: list workflows", err, errlen);
		json_decref(arr);
		sqlite3_finalize(st);
		return NULL;
	}
	sqlite3_finalize(st);
	return json_pack("{s:o, s:I}", "workflows", arr, "next_after", (json_int_t)last);
}

void store_search_bounds(const char *prefix, const char *after, const char **lo, int *lo_after,
                         char *hi, size_t hilen)
{
	size_t n = strlen(prefix);

	/* Ids are printable ASCII (ids.h), so the last byte + 1 is the
	 * first id past every one that starts with prefix. */
	snprintf(hi, hilen, "%s", prefix);
	if (n > 0 && n < hilen)
		hi[n - 1] = (char)(hi[n - 1] + 1);
	*lo_after = after != NULL && strcmp(after, prefix) >= 0;
	*lo = *lo_after ? after : prefix;
}

json_t *store_search_json(struct store *s, const char *ns, const char *prefix, const char *after,
                          int limit, char *err, size_t errlen)
{
	/* One bound each side, so that the index range is exactly the page. */
	static const char *const sql[2] = {
	    "SELECT id, namespace, workflow_id, type, input, status, result, error, created_at, "
	    "closed_at FROM workflows WHERE namespace = ?1 AND workflow_id >= ?2 AND "
	    "workflow_id < ?3 ORDER BY namespace, workflow_id LIMIT ?4",
	    "SELECT id, namespace, workflow_id, type, input, status, result, error, created_at, "
	    "closed_at FROM workflows WHERE namespace = ?1 AND workflow_id > ?2 AND "
	    "workflow_id < ?3 ORDER BY namespace, workflow_id LIMIT ?4",
	};
	char hi[512];
	const char *lo;
	int lo_after, rc;
	sqlite3_stmt *st = NULL;
	json_t *arr, *last = json_null();

	if (s->pg != NULL)
		return pgstore_search_json(s, ns, prefix, after, limit, err, errlen);
	store_search_bounds(prefix, after, &lo, &lo_after, hi, sizeof(hi));
	if (db_prepare(s->db, sql[lo_after], &st, err, errlen) != 0)
		return NULL;
	bind_text(st, 1, ns);
	bind_text(st, 2, lo);
	bind_text(st, 3, hi);
	sqlite3_bind_int(st, 4, limit);
	arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = wf_row_json(st);

		json_decref(last);
		last = json_incref(json_object_get(row, "workflow_id"));
		json_array_append_new(arr, row);
	}
	if (rc != SQLITE_DONE) {
		db_fail(s->db, "state DB: search workflows", err, errlen);
		json_decref(arr);
		json_decref(last);
		sqlite3_finalize(st);
		return NULL;
	}
	sqlite3_finalize(st);
	if (json_array_size(arr) < (size_t)limit) {
		json_decref(last);
		last = json_null();
	}
	return json_pack("{s:o, s:o}", "workflows", arr, "next_after_id", last);
}

/* ---- fault plans ---------------------------------------------------------------- */

int store_fault_plan(struct store *s, int64_t ts, const char *action, const char *plan,
                     int64_t until_ms, int64_t *id, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (store_write(s, err, errlen) != 0)
		return -1;
	if (s->pg != NULL)
		return pgstore_fault_plan(s, ts, action, plan, until_ms, id, err, errlen);
	if (db_prepare(s->db,
	               "INSERT INTO fault_plans (ts, action, plan, until) VALUES (?1, ?2, ?3, ?4)",
	               &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_int64(st, 1, ts);
	bind_text(st, 2, action);
	bind_text(st, 3, plan);
	if (until_ms > 0)
		sqlite3_bind_int64(st, 4, until_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, "state DB: record the fault plan", err, errlen);
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

json_t *store_fault_plans_json(struct store *s, int limit, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	json_t *arr;
	int rc;

	if (s->pg != NULL)
		return pgstore_fault_plans_json(s, limit, err, errlen);
	if (db_prepare(s->db,
	               "SELECT id, ts, action, plan, until FROM fault_plans ORDER BY id DESC "
	               "LIMIT ?1",
	               &st, err, errlen) != 0)
		return NULL;
	sqlite3_bind_int(st, 1, limit);
	arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *plan = column_json(st, 3);

		json_array_append_new(
		    arr, json_pack("{s:I, s:I, s:n, s:s, s:o, s:o}", "id",
		                   (json_int_t)sqlite3_column_int64(st, 0), "ts",
		                   (json_int_t)sqlite3_column_int64(st, 1), "supervisor", "action",
		                   (const char *)sqlite3_column_text(st, 2), "plan",
		                   plan != NULL ? plan : json_null(), "until",
		                   sqlite3_column_type(st, 4) == SQLITE_NULL
		                       ? json_null()
		                       : json_integer(sqlite3_column_int64(st, 4))));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		db_fail(s->db, "state DB: read the fault plans", err, errlen);
		return NULL;
	}
	return arr;
}

/* ---- retention ---------------------------------------------------------------- */

/* Runs sql with ?1 = ids (a JSON array), calling row for each result row. */
static int each_row(struct store *s, const char *sql, const char *ids,
                    void (*row)(struct store *s, sqlite3_stmt *st), const char *what, char *err,
                    size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(s->db, sql, &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, ids, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (row != NULL)
			row(s, st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, what, err, errlen);
	return 0;
}

static void uncount_steps(struct store *s, sqlite3_stmt *st)
{
	store_count(s, "steps", (const char *)sqlite3_column_text(st, 0),
	            -sqlite3_column_int64(st, 1));
	store_count(s, "attempts", "total", -sqlite3_column_int64(st, 2));
}

static void uncount_events(struct store *s, sqlite3_stmt *st)
{
	store_count(s, "events", (const char *)sqlite3_column_text(st, 0),
	            -sqlite3_column_int64(st, 1));
}

static void uncount_workflows(struct store *s, sqlite3_stmt *st)
{
	store_count(s, "workflows", (const char *)sqlite3_column_text(st, 0),
	            -sqlite3_column_int64(st, 1));
	store_count(s, "pruned", "workflows", sqlite3_column_int64(st, 1));
}

/* Deletes the workflows whose ids are in the JSON array ids, with their
 * steps and events, in this turn's transaction; the counters follow. */
static int prune_ids(struct store *s, const char *ids, char *err, size_t errlen)
{
#define IDS "(SELECT value FROM json_each(?1))"
	static const struct {
		const char *sql;
		void (*row)(struct store *s, sqlite3_stmt *st);
	} steps[] = {
	    {"SELECT status, count(*), coalesce(sum(attempt), 0) FROM steps WHERE wf IN " IDS
	     " GROUP BY status",
	     uncount_steps},
	    {"SELECT kind, count(*) FROM events WHERE wf IN " IDS " GROUP BY kind", uncount_events},
	    {"SELECT status, count(*) FROM workflows WHERE id IN " IDS " GROUP BY status",
	     uncount_workflows},
	    {"INSERT INTO pruned (namespace, workflows, through)"
	     " SELECT namespace, count(*), max(closed_at) FROM workflows WHERE id IN " IDS
	     " GROUP BY namespace"
	     " ON CONFLICT (namespace) DO UPDATE SET workflows = workflows + excluded.workflows,"
	     " through = max(through, excluded.through)",
	     NULL},
	    {"DELETE FROM events WHERE wf IN " IDS, NULL},
	    {"DELETE FROM steps WHERE wf IN " IDS, NULL},
	    {"DELETE FROM workflows WHERE id IN " IDS, NULL},
	};
#undef IDS

	struct counter *saved;
	size_t nsaved;

	if (store_write(s, err, errlen) != 0)
		return -1;
	/* All of the batch or none of it: a statement that fails alone (a
	 * full disk) must not leave the events gone and the rows there, nor
	 * counters that count what was not deleted. */
	if (sqlite3_exec(s->db, "SAVEPOINT prune", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s->db, "state DB: prune", err, errlen);
	nsaved = s->ncounters;
	saved = xmalloc((nsaved ? nsaved : 1) * sizeof(*saved));
	memcpy(saved, s->counters, nsaved * sizeof(*saved));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (each_row(s, steps[i].sql, ids, steps[i].row, "state DB: prune", err, errlen) !=
		    0) {
			sqlite3_exec(s->db, "ROLLBACK TO prune; RELEASE prune", NULL, NULL, NULL);
			memcpy(s->counters, saved, nsaved * sizeof(*saved));
			s->ncounters = nsaved;
			free(saved);
			return -1;
		}
	free(saved);
	if (sqlite3_exec(s->db, "RELEASE prune", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s->db, "state DB: prune", err, errlen);
	return 0;
}

int store_prune(struct store *s, int64_t now_ms, const struct idem_config *cfg,
                struct store_prune_cursor *cur, int scan, int *pruned, char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT id, namespace, closed_at FROM workflows INDEXED BY workflows_closed"
	    " WHERE closed_at IS NOT NULL AND closed_at < ?1"
	    " AND (closed_at > ?2 OR (closed_at = ?2 AND id > ?3))"
	    " ORDER BY closed_at, id LIMIT ?4";
	int64_t least = config_retention_min(cfg);
	struct textbuf ids = {0};
	sqlite3_stmt *st = NULL;
	int rc, seen = 0, n = 0;
	char *text;

	*pruned = 0;
	if (least == 0)
		return 0;
	if (s->pg != NULL)
		return pgstore_prune(s, now_ms, cfg, cur, scan, pruned, err, errlen);
	if (db_prepare(s->db, sql, &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms - least);
	sqlite3_bind_int64(st, 2, cur->closed_at);
	sqlite3_bind_int64(st, 3, cur->id);
	sqlite3_bind_int(st, 4, scan);
	textbuf_putc(&ids, '[');
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), closed = sqlite3_column_int64(st, 2);
		int64_t keep = config_retention(cfg, (const char *)sqlite3_column_text(st, 1));

		seen++;
		cur->id = id;
		cur->closed_at = closed;
		if (keep == 0 || closed >= now_ms - keep)
			continue; /* its namespace keeps it (longer) */
		if (n++ > 0)
			textbuf_putc(&ids, ',');
		textbuf_put_int(&ids, id);
	}
	sqlite3_finalize(st);
	textbuf_putc(&ids, ']');
	text = textbuf_take(&ids, NULL);
	if (rc != SQLITE_DONE) {
		free(text);
		return db_fail(s->db, "state DB: find workflows past their retention", err, errlen);
	}
	if (seen < scan) /* the end: the next pass starts from the oldest */
		*cur = (struct store_prune_cursor){.closed_at = INT64_MIN};
	rc = n > 0 ? prune_ids(s, text, err, errlen) : 0;
	free(text);
	*pruned = n;
	return rc == 0 ? seen : -1;
}

/* Several supervisors: the counts of all of them, which their turns add
 * to the database's rows (this one's memory has only its own). */
static json_t *counts_json(const struct counter *counters, size_t n);

json_t *store_counts_json(struct store *s, char *err, size_t errlen)
{
	struct counter *all;
	size_t n;
	json_t *out;

	if (s->pg == NULL)
		return counts_json(s->counters, s->ncounters);
	if (pgstore_counters(s, &all, &n, err, errlen) != 0)
		return NULL;
	out = counts_json(all, n);
	free(all);
	return out;
}

static json_t *counts_json(const struct counter *counters, size_t n)
{
	json_t *out =
	    json_pack("{s:{s:i, s:i, s:i}, s:{}, s:{}, s:I}", "workflows", "running", 0,
	              "completed", 0, "failed", 0, "steps", "events", "attempts", (json_int_t)0);

	for (size_t i = 0; i < n; i++) {
		const struct counter *c = &counters[i];
		const char *dot = strchr(c->name, '.');
		char group[64];

		if (dot == NULL)
			continue;
		snprintf(group, sizeof(group), "%.*s", (int)(dot - c->name), c->name);
		if (strcmp(group, "attempts") == 0)
			json_object_set_new(out, "attempts", json_integer(c->value));
		else if (strcmp(group, "pruned") == 0)
			json_object_set_new(out, "pruned", json_integer(c->value));
		else if (json_object_get(out, group) != NULL &&
		         (c->value != 0 || strcmp(group, "workflows") == 0))
			json_object_set_new(json_object_get(out, group), dot + 1,
			                    json_integer(c->value));
	}
	return out;
}
