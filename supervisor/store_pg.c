/* store_pg.c — the state DB on PostgreSQL (STATE_DATABASE=postgresql://...):
 * the same tables, the same one transaction per loop turn, through libpq.
 *
 * Durability: the session runs with synchronous_commit on, so a COMMIT
 * returns once PostgreSQL has the turn on disk; the engine holds the
 * turn's replies and task frames until then, as it does on SQLite. A
 * lost connection fails the turn: its transaction never commits (no half
 * turn), and the supervisor stops; a restart resumes from the last
 * commit.
 *
 * Several supervisors, one database: each run registers in supervisors
 * and owns the running workflows it starts or adopts while its lease runs
 * (LEASE). Each turn renews the lease first, with the run's row locked
 * until the turn commits; a lapsed lease fails the turn (the fence), and
 * the others adopt the workflows of a run whose lease lapsed. One run per
 * SUPERVISOR_NAME, by a session advisory lock that PostgreSQL drops with
 * the connection (a killed supervisor's too), so a restart takes back its
 * name's workflows at once. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "pgconn.h"
#include "store_internal.h"
#include "textbuf.h"
#include "xalloc.h"

/* The seed of the hash of a supervisor's name that keys its session
 * advisory lock. */
#define PG_SUPERVISOR_LOCK "7593254938290001"
/* The lock an earlier idem held alone on the database; held shared by
 * every supervisor now. */
#define PG_ALONE_LOCK "7593254938290001"
/* The key of the transaction lock a pruning batch runs under. */
#define PG_PRUNE_LOCK "7593254938290003"
/* The key of the transaction lock migrations run under. */
#define PG_MIGRATE_LOCK "7593254938290002"

/* Each entry is one schema version; a database records the last it ran
 * in idem_schema. Append, never edit. */
static const char *const pg_migrations[] = {
    "CREATE TABLE workflows ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  namespace TEXT NOT NULL,"
    "  workflow_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  input TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  result TEXT,"
    "  error TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  closed_at BIGINT,"
    "  UNIQUE (namespace, workflow_id));"
    "CREATE INDEX workflows_status ON workflows(status, id);"
    "CREATE INDEX workflows_closed ON workflows(closed_at, id) WHERE closed_at IS NOT NULL;"
    "CREATE TABLE steps ("
    "  wf BIGINT NOT NULL REFERENCES workflows(id),"
    "  seq INTEGER NOT NULL,"
    "  activity TEXT NOT NULL,"
    "  input TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  heartbeat TEXT,"
    "  result TEXT,"
    "  error_type TEXT,"
    "  error_message TEXT,"
    "  next_attempt_at BIGINT NOT NULL,"
    "  scheduled_at BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (wf, seq));"
    "CREATE TABLE events ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  wf BIGINT NOT NULL REFERENCES workflows(id),"
    "  seq INTEGER,"
    "  attempt INTEGER,"
    "  kind TEXT NOT NULL,"
    "  ts BIGINT NOT NULL,"
    "  pid BIGINT,"
    "  detail TEXT);"
    "CREATE INDEX events_wf ON events(wf, id);"
    "CREATE TABLE counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL);"
    "CREATE TABLE pruned (namespace TEXT PRIMARY KEY,"
    "  workflows BIGINT NOT NULL,"
    "  through BIGINT NOT NULL);",
    /* 2: several supervisors. Each run of a supervisor is a row here; it
     * owns the running workflows whose owner it is while its lease runs.
     * fence counts the adoptions of a workflow. */
    "CREATE TABLE supervisors ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  pid BIGINT NOT NULL,"
    "  started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),"
    "  lease_until TIMESTAMPTZ NOT NULL,"
    "  stopped_at TIMESTAMPTZ);"
    "ALTER TABLE workflows ADD COLUMN owner BIGINT, ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX workflows_owner ON workflows(owner) WHERE status = 'running';",
    /* 3: the id search (GET /v1/workflows?prefix=) walks a range of ids
     * in byte order, whatever the database's collation: in en_US, say,
     * "order-95" sorts after "order-:", the end of prefix "order-9". */
    "CREATE INDEX workflows_id_bytes ON workflows(namespace, workflow_id COLLATE \"C\");",
    /* 4: the fault plans each run ran under (see state_schema.c's 5). */
    "CREATE TABLE fault_plans (id BIGSERIAL PRIMARY KEY,"
    "  ts BIGINT NOT NULL,"
    "  supervisor BIGINT,"
    "  action TEXT NOT NULL,"
    "  plan TEXT NOT NULL,"
    "  until BIGINT);",
};

#define WF_COLS                                                                                    \
	"id, namespace, workflow_id, type, input, status, result, error, created_at, closed_at"
#define STEP_COLS                                                                                  \
	"seq, activity, input, status, attempt, heartbeat, result, error_type, error_message, "    \
	"next_attempt_at, scheduled_at"

static const struct {
	const char *name, *sql;
} pg_stmts[] = {
    {"wf_lookup", "SELECT id FROM workflows WHERE namespace = $1 AND workflow_id = $2"},
    {"wf_insert", "INSERT INTO workflows (namespace, workflow_id, type, input, status, "
                  "created_at, owner) VALUES ($1, $2, $3, $4, 'running', $5, $6) "
                  "ON CONFLICT (namespace, workflow_id) DO NOTHING RETURNING id"},
    {"wf_close", "UPDATE workflows SET status = $2, result = $3, error = $4, closed_at = $5 "
                 "WHERE id = $1 AND owner = $6"},
    {"step_save",
     "INSERT INTO steps (wf, seq, activity, input, status, attempt, heartbeat, result, "
     "error_type, error_message, next_attempt_at, scheduled_at) VALUES ($1, $2, $3, $4, $5, "
     "$6, $7, $8, $9, $10, $11, $12) ON CONFLICT (wf, seq) DO UPDATE SET status = $5, "
     "attempt = $6, heartbeat = $7, result = $8, error_type = $9, error_message = $10, "
     "next_attempt_at = $11, scheduled_at = $12"},
    /* The same parameters; activity ($3) and input ($4) never change
     * once the step is recorded, and are not sent again. */
    {"step_update", "UPDATE steps SET status = $3, attempt = $4, heartbeat = $5, result = $6, "
                    "error_type = $7, error_message = $8, next_attempt_at = $9, scheduled_at = $10 "
                    "WHERE wf = $1 AND seq = $2"},
    {"event", "INSERT INTO events (wf, seq, attempt, kind, ts, pid, detail) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7)"},
    {"wf_running", "SELECT 1 FROM workflows WHERE id = $1 AND status = 'running'"},
    {"wf_get", "SELECT " WF_COLS ", owner, fence, (SELECT name FROM supervisors "
               "WHERE supervisors.id = owner) FROM workflows WHERE id = $1"},
    {"steps_of", "SELECT " STEP_COLS " FROM steps WHERE wf = $1 ORDER BY seq"},
    {"events_of", "SELECT id, seq, attempt, kind, ts, pid, detail FROM events "
                  "WHERE wf = $1 ORDER BY id"},
    {"running", "SELECT id, namespace, workflow_id, type, input, created_at FROM workflows "
                "WHERE status = 'running' AND owner = $1 ORDER BY id"},
    {"owned", "SELECT id, namespace, workflow_id, type, input, created_at FROM workflows "
              "WHERE id = ANY($1::bigint[]) AND status = 'running' AND owner = $2 ORDER BY id"},
    /* Marks stopped the runs whose lease lapsed and the earlier runs of
     * this supervisor's name (dead: this run holds the name's lock). A
     * run in a turn holds its row: SKIP LOCKED passes it by rather than
     * wait, and its turn commits whole before anyone adopts. */
    {"lapsed", "UPDATE supervisors SET stopped_at = clock_timestamp() "
               "WHERE id IN (SELECT id FROM supervisors WHERE id <> $1 AND stopped_at IS NULL "
               "  AND (lease_until < clock_timestamp() OR name = $2) "
               "  FOR UPDATE SKIP LOCKED) RETURNING id"},
    /* A statement of its own, so that its snapshot is taken once the
     * lapsed runs' rows are locked (and their last turns committed). It
     * also takes what a stopped run still owns (none should) and what
     * no run owns (a state DB from before migration 2). */
    {"adopt", "UPDATE workflows SET owner = $1, fence = fence + 1 WHERE status = 'running' "
              "AND (owner IS NULL OR owner IN (SELECT id FROM supervisors "
              "  WHERE stopped_at IS NOT NULL)) RETURNING id"},
    {"counters_add",
     "INSERT INTO counters (name, n) SELECT * FROM unnest($1::text[], $2::bigint[]) "
     "ORDER BY 1 ON CONFLICT (name) DO UPDATE SET n = counters.n + excluded.n"},
};

struct pgstore {
	PGconn *conn;
	int64_t me;       /* this run's row in supervisors; 0 before store_join() */
	int64_t lease_ms; /* LEASE */
	char name[1100];  /* SUPERVISOR_NAME, or HOST:DIR/SOCKET (main.c) */
};

/* Up to 12 parameters as text; numbers are formatted into num. */
struct params {
	const char *v[12];
	char num[12][24];
	int n;
};

static void p_text(struct params *p, int i, const char *text)
{
	p->v[i] = text;
	if (i >= p->n)
		p->n = i + 1;
}

static void p_int(struct params *p, int i, int64_t v)
{
	snprintf(p->num[i], sizeof(p->num[i]), "%" PRId64, v);
	p_text(p, i, p->num[i]);
}

/* Runs prepared statement name; returns its result (the caller clears
 * it), or NULL with err. */
static PGresult *run(struct store *s, const char *name, const struct params *p, const char *what,
                     char *err, size_t errlen)
{
	return pgconn_ok(
	    s->pg->conn,
	    PQexecPrepared(s->pg->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0), what,
	    err, errlen);
}

static int run_done(struct store *s, const char *name, const struct params *p, const char *what,
                    char *err, size_t errlen)
{
	PGresult *r = run(s, name, p, what, err, errlen);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* Runs parameterized SQL that is not prepared (rare statements). */
static PGresult *run_sql(struct store *s, const char *sql, const struct params *p, const char *what,
                         char *err, size_t errlen)
{
	return pgconn_ok(
	    s->pg->conn,
	    PQexecParams(s->pg->conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0),
	    what, err, errlen);
}

static int64_t get_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *get_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static char *get_strdup(const PGresult *r, int row, int col)
{
	const char *t = get_text(r, row, col);

	return t ? xstrdup(t) : NULL;
}

/* A JSON text column as a NEW reference, NULL when NULL. */
static json_t *get_json(const PGresult *r, int row, int col)
{
	const char *t = get_text(r, row, col);

	return t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
}

/* The API's views of a column: an integer, a string, or JSON; null when
 * NULL. */
static json_t *v_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null() : json_integer(get_int(r, row, col));
}

static json_t *v_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static json_t *v_json(const PGresult *r, int row, int col)
{
	json_t *j = get_json(r, row, col);

	return j ? j : json_null();
}

/* ---- opening -------------------------------------------------------------- */

static int migrate(struct store *s, char *err, size_t errlen)
{
	PGconn *c = s->pg->conn;
	int n = (int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])), version;
	PGresult *r;

	if (pgconn_exec(c,
	                "BEGIN; SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ");"
	                " CREATE TABLE IF NOT EXISTS idem_schema (version INTEGER NOT NULL)",
	                "state DB: migrate", err, errlen) != 0)
		goto fail;
	r = pgconn_ok(c, PQexec(c, "SELECT coalesce(max(version), 0) FROM idem_schema"),
	              "state DB: read the schema version", err, errlen);
	if (r == NULL)
		goto fail;
	version = (int)get_int(r, 0, 0);
	PQclear(r);
	if (version > n) {
		snprintf(err, errlen,
		         "state DB: its schema is version %d, newer than this idem-supervisor "
		         "knows (%d); run the idem that wrote it, or a newer one",
		         version, n);
		goto fail;
	}
	for (int i = version; i < n; i++) {
		char sql[96], what[64];

		snprintf(what, sizeof(what), "state DB: migration %d", i + 1);
		snprintf(sql, sizeof(sql), "INSERT INTO idem_schema VALUES (%d)", i + 1);
		if (pgconn_exec(c, pg_migrations[i], what, err, errlen) != 0 ||
		    pgconn_exec(c, sql, what, err, errlen) != 0)
			goto fail;
	}
	return pgconn_exec(c, "COMMIT", "state DB: migrate", err, errlen);
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	return -1;
}

int pgstore_counters(struct store *s, struct counter **out, size_t *n, char *err, size_t errlen)
{
	PGresult *r = run_sql(s, "SELECT name, n FROM counters", NULL, "state DB: read counters",
	                      err, errlen);

	if (r == NULL)
		return -1;
	*n = (size_t)PQntuples(r);
	*out = xcalloc(*n ? *n : 1, sizeof(**out));
	for (size_t i = 0; i < *n; i++) {
		snprintf((*out)[i].name, sizeof((*out)[i].name), "%s", PQgetvalue(r, (int)i, 0));
		(*out)[i].value = get_int(r, (int)i, 1);
	}
	PQclear(r);
	return 0;
}

static int counters_load(struct store *s, char *err, size_t errlen)
{
	struct counter *all = NULL;
	size_t n = 0;

	if (pgstore_counters(s, &all, &n, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct counter *c = store_counter(s, all[i].name);

		c->value = c->written = all[i].value;
	}
	free(all);
	return 0;
}

int pgstore_open(struct store *s, const char *url, char *err, size_t errlen)
{
	s->pg = xcalloc(1, sizeof(*s->pg));
	s->pg->conn = pgconn_open(url, PGCONN_WAIT_MS, err, errlen);
	if (s->pg->conn == NULL)
		return -1;
	if (migrate(s, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(pg_stmts) / sizeof(pg_stmts[0]); i++) {
		PGresult *r = pgconn_ok(
		    s->pg->conn, PQprepare(s->pg->conn, pg_stmts[i].name, pg_stmts[i].sql, 0, NULL),
		    "state DB: prepare", err, errlen);

		if (r == NULL)
			return -1;
		PQclear(r);
	}
	return counters_load(s, err, errlen);
}

void pgstore_close(struct store *s)
{
	if (s->pg == NULL)
		return;
	if (s->pg->conn != NULL) {
		if (s->in_tx)
			PQclear(PQexec(s->pg->conn, "ROLLBACK"));
		PQfinish(s->pg->conn);
	}
	free(s->pg);
	s->pg = NULL;
}

/* ---- the turn's transaction ------------------------------------------------ */

/* Every turn's transaction begins by renewing this run's lease, which
 * must not have lapsed: the fence. The row stays locked until the turn
 * commits, so no other supervisor adopts a workflow in the middle of a
 * turn that writes it; once the lease has lapsed, or another supervisor
 * marked this run stopped, no turn of it writes anything. */
int pgstore_begin(struct store *s, char *err, size_t errlen)
{
	char sql[320];
	PGresult *r;
	int renewed;

	if (s->pg->me == 0)
		return pgconn_exec(s->pg->conn, "BEGIN", "state DB: BEGIN", err, errlen);
	snprintf(sql, sizeof(sql),
	         "BEGIN; UPDATE supervisors SET lease_until = clock_timestamp() + interval "
	         "'%" PRId64 " milliseconds' WHERE id = %" PRId64
	         " AND stopped_at IS NULL AND lease_until > clock_timestamp()",
	         s->pg->lease_ms, s->pg->me);
	r = pgconn_ok(s->pg->conn, PQexec(s->pg->conn, sql), "state DB: BEGIN", err, errlen);
	if (r == NULL) {
		PQclear(PQexec(s->pg->conn, "ROLLBACK"));
		return -1;
	}
	renewed = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!renewed) {
		PQclear(PQexec(s->pg->conn, "ROLLBACK"));
		snprintf(err, errlen,
		         "state DB: this supervisor's lease (LEASE=%" PRId64
		         " ms) lapsed before it could renew it; other supervisors may have adopted "
		         "its workflows, so it writes nothing more",
		         s->pg->lease_ms);
		return -1;
	}
	return 0;
}

int pgstore_lost(const struct store *s)
{
	return PQstatus(s->pg->conn) != CONNECTION_OK;
}

int pgstore_tx_failed(const struct store *s)
{
	return PQtransactionStatus(s->pg->conn) == PQTRANS_INERROR;
}

/* The changed counters as two array literals, names and deltas. */
static int counters_write(struct store *s, char *err, size_t errlen)
{
	struct textbuf names = {0}, deltas = {0};
	struct params p = {0};
	int n = 0, rc = 0;

	textbuf_putc(&names, '{');
	textbuf_putc(&deltas, '{');
	for (size_t i = 0; i < s->ncounters; i++) {
		const struct counter *c = &s->counters[i];

		if (c->value == c->written)
			continue;
		if (n++ > 0) {
			textbuf_putc(&names, ',');
			textbuf_putc(&deltas, ',');
		}
		/* The names are the store's own: statuses and event kinds,
		 * nothing to escape inside the quotes. */
		textbuf_putc(&names, '"');
		textbuf_puts(&names, c->name);
		textbuf_putc(&names, '"');
		textbuf_put_int(&deltas, c->value - c->written);
	}
	textbuf_putc(&names, '}');
	textbuf_putc(&deltas, '}');
	if (n > 0) {
		char *nt = textbuf_take(&names, NULL), *dt = textbuf_take(&deltas, NULL);

		p_text(&p, 0, nt);
		p_text(&p, 1, dt);
		rc = run_done(s, "counters_add", &p, "state DB: write counters", err, errlen);
		free(nt);
		free(dt);
	} else {
		free(textbuf_take(&names, NULL));
		free(textbuf_take(&deltas, NULL));
	}
	return rc;
}

int pgstore_commit(struct store *s, char *err, size_t errlen)
{
	char sql[224] = "COMMIT";
	PGresult *r;
	int ok;

	if (counters_write(s, err, errlen) != 0) {
		PQclear(PQexec(s->pg->conn, "ROLLBACK"));
		return -1;
	}
	/* The lease runs from the end of the turn, not its start: a turn
	 * longer than the lease (a big recovery, a slow disk) would else
	 * commit one already lapsed. The row is this turn's since its BEGIN:
	 * nobody adopted meanwhile. Sent with the COMMIT: one round trip. */
	if (s->pg->me != 0)
		snprintf(
		    sql, sizeof(sql),
		    "UPDATE supervisors SET lease_until = clock_timestamp() + interval '%" PRId64
		    " milliseconds' WHERE id = %" PRId64 "; COMMIT",
		    s->pg->lease_ms, s->pg->me);
	r = PQexec(s->pg->conn, sql);
	/* A transaction that had failed answers COMMIT with "ROLLBACK". */
	ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	if (!ok) {
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			snprintf(err, errlen, "state DB: COMMIT: the transaction was rolled back");
		else
			pgconn_fail(s->pg->conn, r, "state DB: COMMIT", err, errlen);
	}
	PQclear(r);
	if (!ok)
		return -1;
	for (size_t i = 0; i < s->ncounters; i++)
		s->counters[i].written = s->counters[i].value;
	s->counters_dirty = 0;
	return 0;
}

/* ---- writes ----------------------------------------------------------------- */

/* A write that found the workflow owned by another supervisor. */
static int fenced(struct store *s, int64_t id, char *err, size_t errlen)
{
	snprintf(err, errlen,
	         "state DB: workflow %lld is no longer this supervisor's (run %" PRId64
	         "): another supervisor adopted it",
	         (long long)id, s->pg->me);
	return -1;
}

int pgstore_wf_lookup(struct store *s, const char *ns, const char *workflow_id, int64_t *id,
                      char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	int found;

	p_text(&p, 0, ns);
	p_text(&p, 1, workflow_id);
	r = run(s, "wf_lookup", &p, "state DB: look up workflow", err, errlen);
	if (r == NULL)
		return -1;
	found = PQntuples(r) > 0;
	if (found)
		*id = get_int(r, 0, 0);
	PQclear(r);
	return found;
}

int pgstore_wf_insert(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	int taken;

	p_text(&p, 0, wf->namespace_);
	p_text(&p, 1, wf->workflow_id);
	p_text(&p, 2, wf->type);
	p_text(&p, 3, json_text(wf->input, &wf->input_text));
	p_int(&p, 4, now);
	p_int(&p, 5, s->pg->me);
	r = run(s, "wf_insert", &p, "state DB: insert workflow", err, errlen);
	if (r == NULL)
		return -1;
	taken = PQntuples(r) == 0; /* another supervisor's start came first */
	if (!taken)
		wf->id = get_int(r, 0, 0);
	PQclear(r);
	return taken;
}

int pgstore_wf_close(struct store *s, struct wf *wf, int64_t now, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	int owned;

	p_int(&p, 0, wf->id);
	p_text(&p, 1, wf_status_name(wf->status));
	p_text(&p, 2, json_text(wf->result, &wf->result_text));
	p_text(&p, 3, wf->error);
	p_int(&p, 4, now);
	p_int(&p, 5, s->pg->me);
	r = run(s, "wf_close", &p, "state DB: close workflow", err, errlen);
	if (r == NULL)
		return -1;
	owned = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!owned)
		return fenced(s, wf->id, err, errlen);
	return 0;
}

/* Writes the step's row: whole (step_save), or its changing columns
 * (step_update); *rows says how many rows it wrote. */
static int step_write(struct store *s, struct step *stp, int whole, int *rows, char *err,
                      size_t errlen)
{
	struct params p = {0};
	char *heartbeat =
	    stp->heartbeat ? json_dumps(stp->heartbeat, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	PGresult *r;
	int i = 2;

	p_int(&p, 0, stp->wf->id);
	p_int(&p, 1, stp->seq);
	if (whole) {
		p_text(&p, i++, stp->activity);
		p_text(&p, i++, json_text(stp->input, &stp->input_text));
	}
	p_text(&p, i++, step_status_name(stp->status));
	p_int(&p, i++, stp->attempt);
	p_text(&p, i++, heartbeat);
	p_text(&p, i++, json_text(stp->result, &stp->result_text));
	p_text(&p, i++, stp->error_type);
	p_text(&p, i++, stp->error_message);
	p_int(&p, i++, stp->next_attempt_at);
	p_int(&p, i, stp->scheduled_at);
	r = run(s, whole ? "step_save" : "step_update", &p, "state DB: save step", err, errlen);
	free(heartbeat);
	if (r == NULL)
		return -1;
	*rows = atoi(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

/* A recorded step changes in place; should its row be missing, it is
 * written whole (as on SQLite). */
int pgstore_step_write(struct store *s, struct step *stp, char *err, size_t errlen)
{
	int rows = 0;

	if (stp->saved && step_write(s, stp, 0, &rows, err, errlen) != 0)
		return -1;
	if (rows == 0 && step_write(s, stp, 1, &rows, err, errlen) != 0)
		return -1;
	return 0;
}

int pgstore_event_text(struct store *s, int64_t wf_id, int seq, int attempt, const char *kind,
                       long pid, const char *detail, char *err, size_t errlen)
{
	struct params p = {0};

	p_int(&p, 0, wf_id);
	if (seq >= 0)
		p_int(&p, 1, seq);
	else
		p_text(&p, 1, NULL);
	if (attempt > 0)
		p_int(&p, 2, attempt);
	else
		p_text(&p, 2, NULL);
	p_text(&p, 3, kind);
	p_int(&p, 4, clock_wall_ms());
	if (pid > 0)
		p_int(&p, 5, pid);
	else
		p_text(&p, 5, NULL);
	p_text(&p, 6, detail);
	return run_done(s, "event", &p, "state DB: append event", err, errlen);
}

/* ---- loading ---------------------------------------------------------------- */

static int load_steps(struct store *s, struct wf *wf, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;

	p_int(&p, 0, wf->id);
	r = run(s, "steps_of", &p, "state DB: load steps", err, errlen);
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct step *stp = wf_add_step(wf, PQgetvalue(r, i, 1), get_json(r, i, 2));
		const char *status = PQgetvalue(r, i, 3);
		int seq = (int)get_int(r, i, 0);

		if (stp->seq != seq || step_status_parse(status, &stp->status) != 0) {
			snprintf(err, errlen,
			         "state DB: workflow %lld has a bad step row (seq %d, status %s)",
			         (long long)wf->id, seq, status);
			PQclear(r);
			return -1;
		}
		stp->attempt = (int)get_int(r, i, 4);
		stp->heartbeat = get_json(r, i, 5);
		stp->result = get_json(r, i, 6);
		stp->error_type = get_strdup(r, i, 7);
		stp->error_message = get_strdup(r, i, 8);
		stp->next_attempt_at = get_int(r, i, 9);
		stp->scheduled_at = get_int(r, i, 10);
		stp->saved = 1;
		stp->saved_status = stp->status;
		stp->saved_attempt = stp->attempt;
	}
	PQclear(r);
	return 0;
}

/* Loads the workflows of r (id, namespace, workflow_id, type, input,
 * created_at) with their steps; fn owns each. */
static int load_rows(struct store *s, PGresult *r, void (*fn)(void *arg, struct wf *wf), void *arg,
                     char *err, size_t errlen)
{
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *input = get_json(r, i, 4);
		struct wf *wf = wf_new(get_int(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
		                       PQgetvalue(r, i, 3), input);

		json_decref(input);
		wf->created_at = get_int(r, i, 5);
		if (load_steps(s, wf, err, errlen) != 0) {
			wf_free(wf);
			return -1;
		}
		fn(arg, wf);
	}
	return 0;
}

/* Adopts, in this turn's transaction, what adopt finds; returns how
 * many workflows, with their ids as a bigint[] literal in *ids (NEW). */
static int adopt(struct store *s, char **ids, char *err, size_t errlen)
{
	struct params p = {0};
	struct textbuf b = {0};
	PGresult *r;
	int n;

	if (store_write(s, err, errlen) != 0)
		return -1;
	p_int(&p, 0, s->pg->me);
	p_text(&p, 1, s->pg->name);
	r = run(s, "lapsed", &p, "state DB: find lapsed supervisors", err, errlen);
	if (r == NULL)
		return -1;
	PQclear(r);
	p.n = 1;
	r = run(s, "adopt", &p, "state DB: adopt workflows", err, errlen);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	textbuf_putc(&b, '{');
	for (int i = 0; i < n; i++) {
		if (i > 0)
			textbuf_putc(&b, ',');
		textbuf_puts(&b, PQgetvalue(r, i, 0));
	}
	textbuf_putc(&b, '}');
	PQclear(r);
	*ids = textbuf_take(&b, NULL);
	return n;
}

int pgstore_load_running(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg,
                         char *err, size_t errlen)
{
	struct params p = {0};
	char *ids = NULL;
	PGresult *r;
	int rc;

	if (s->pg->me == 0) {
		snprintf(err, errlen, "state DB: store_join() was not called");
		return -1;
	}
	if (adopt(s, &ids, err, errlen) < 0)
		return -1;
	free(ids);
	p_int(&p, 0, s->pg->me);
	r = run(s, "running", &p, "state DB: load running workflows", err, errlen);
	if (r == NULL)
		return -1;
	rc = load_rows(s, r, fn, arg, err, errlen);
	PQclear(r);
	return rc;
}

int pgstore_adopt(struct store *s, void (*fn)(void *arg, struct wf *wf), void *arg, char *err,
                  size_t errlen)
{
	struct params p = {0};
	char *ids = NULL;
	PGresult *r;
	int n = adopt(s, &ids, err, errlen);

	if (n <= 0) {
		free(ids);
		return n;
	}
	p_text(&p, 0, ids);
	p_int(&p, 1, s->pg->me);
	r = run(s, "owned", &p, "state DB: load adopted workflows", err, errlen);
	free(ids);
	if (r == NULL)
		return -1;
	if (load_rows(s, r, fn, arg, err, errlen) != 0)
		n = -1;
	PQclear(r);
	return n;
}

/* The name's lock: one run per name (a restart takes back its name's
 * workflows at once, so no two runs may have it). */
int pgstore_join(struct store *s, const char *name, int64_t lease_ms, char *err, size_t errlen)
{
	struct params p = {0};
	char pid[24];
	PGresult *r;
	int held;

	snprintf(s->pg->name, sizeof(s->pg->name), "%s", name);
	s->pg->lease_ms = lease_ms;
	/* The first idem on PostgreSQL ran one supervisor per database
	 * under this key, exclusively, and knows nothing of leases: the two
	 * kinds must not run together. */
	r = run_sql(s, "SELECT pg_try_advisory_lock_shared(" PG_ALONE_LOCK ")", NULL,
	            "state DB: take the shared lock", err, errlen);
	if (r == NULL)
		return -1;
	held = strcmp(PQgetvalue(r, 0, 0), "t") != 0;
	PQclear(r);
	if (held) {
		snprintf(err, errlen,
		         "an idem-supervisor of an earlier version, which runs alone, runs on this "
		         "PostgreSQL database (advisory lock %s); stop it first",
		         PG_ALONE_LOCK);
		return STORE_HELD;
	}
	p_text(&p, 0, name);
	r = run_sql(s, "SELECT pg_try_advisory_lock(hashtextextended($1, " PG_SUPERVISOR_LOCK "))",
	            &p, "state DB: take the supervisor name's lock", err, errlen);
	if (r == NULL)
		return -1;
	held = strcmp(PQgetvalue(r, 0, 0), "t") != 0;
	PQclear(r);
	if (held) {
		snprintf(err, errlen,
		         "another idem-supervisor named \"%s\" runs on this PostgreSQL database; "
		         "stop it first, or give this one another SUPERVISOR_NAME",
		         name);
		return STORE_HELD;
	}
	/* A supervisor whose turn hangs open (stopped, or cut off) would
	 * keep its row locked and its workflows from adoption: the server
	 * ends such a session after a lease. */
	{
		char sql[128];

		snprintf(sql, sizeof(sql), "SET idle_in_transaction_session_timeout = %" PRId64,
		         lease_ms);
		if (pgconn_exec(s->pg->conn, sql, "state DB: session set-up", err, errlen) != 0)
			return -1;
	}
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	p = (struct params){0};
	p_text(&p, 0, name);
	p_text(&p, 1, pid);
	p_int(&p, 2, lease_ms);
	r = run_sql(s,
	            "INSERT INTO supervisors (name, pid, lease_until) VALUES ($1, $2::bigint, "
	            "clock_timestamp() + $3::bigint * interval '1 millisecond') RETURNING id",
	            &p, "state DB: register this supervisor", err, errlen);
	if (r == NULL)
		return -1;
	s->pg->me = get_int(r, 0, 0);
	PQclear(r);
	return 0;
}

int pgstore_wf_running(struct store *s, int64_t id, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	int running;

	p_int(&p, 0, id);
	r = run(s, "wf_running", &p, "state DB: read workflow", err, errlen);
	if (r == NULL)
		return -1;
	running = PQntuples(r) > 0;
	PQclear(r);
	return running;
}

int64_t pgstore_me(const struct store *s)
{
	return s->pg->me;
}

const char *pgstore_name(const struct store *s)
{
	return s->pg->name;
}

/* ---- API views ---------------------------------------------------------------- */

static json_t *wf_row_json(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "namespace",
	                 v_str(r, i, 1), "workflow_id", v_str(r, i, 2), "type", v_str(r, i, 3),
	                 "input", v_json(r, i, 4), "status", v_str(r, i, 5), "result",
	                 v_json(r, i, 6), "error", v_str(r, i, 7), "created_at", v_int(r, i, 8),
	                 "closed_at", v_int(r, i, 9));
}

json_t *pgstore_wf_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	json_t *wf, *steps;

	p_int(&p, 0, id);
	r = run(s, "wf_get", &p, "state DB: read workflow", err, errlen);
	if (r == NULL)
		return NULL;
	if (PQntuples(r) == 0) {
		snprintf(err, errlen, "no workflow with id %lld", (long long)id);
		PQclear(r);
		return NULL;
	}
	wf = wf_row_json(r, 0);
	if (!PQgetisnull(r, 0, 10))
		json_object_set_new(wf, "owner",
		                    json_pack("{s:o, s:o, s:o}", "run", v_int(r, 0, 10),
		                              "supervisor", v_str(r, 0, 12), "adoptions",
		                              v_int(r, 0, 11)));
	PQclear(r);
	r = run(s, "steps_of", &p, "state DB: read steps", err, errlen);
	if (r == NULL) {
		json_decref(wf);
		return NULL;
	}
	steps = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(
		    steps,
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "seq",
		              v_int(r, i, 0), "activity", v_str(r, i, 1), "input", v_json(r, i, 2),
		              "status", v_str(r, i, 3), "attempts", v_int(r, i, 4), "heartbeat",
		              v_json(r, i, 5), "result", v_json(r, i, 6), "error_type",
		              v_str(r, i, 7), "error_message", v_str(r, i, 8), "next_attempt_at",
		              v_int(r, i, 9), "scheduled_at", v_int(r, i, 10)));
	PQclear(r);
	json_object_set_new(wf, "steps", steps);
	return wf;
}

json_t *pgstore_history_json(struct store *s, int64_t id, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	json_t *arr;

	p_int(&p, 0, id);
	r = run(s, "events_of", &p, "state DB: read history", err, errlen);
	if (r == NULL)
		return NULL;
	arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
		                                     v_int(r, i, 0), "step", v_int(r, i, 1),
		                                     "attempt", v_int(r, i, 2), "kind",
		                                     v_str(r, i, 3), "ts", v_int(r, i, 4), "pid",
		                                     v_int(r, i, 5), "detail", v_json(r, i, 6)));
	PQclear(r);
	return arr;
}

json_t *pgstore_list_json(struct store *s, const char *ns, const char *status, int limit,
                          int64_t after, char *err, size_t errlen)
{
	/* One statement per filter, each walking an index: (status, id) or
	 * the primary key. Parameters: after, then the filters, then the
	 * limit. */
	static const char *const sql[2][2] = {
	    {"SELECT " WF_COLS " FROM workflows WHERE id > $1 ORDER BY id LIMIT $2",
	     "SELECT " WF_COLS " FROM workflows WHERE id > $1 AND namespace = $2 "
	     "ORDER BY id LIMIT $3"},
	    {"SELECT " WF_COLS " FROM workflows WHERE id > $1 AND status = $2 ORDER BY id "
	     "LIMIT $3",
	     "SELECT " WF_COLS " FROM workflows WHERE id > $1 AND namespace = $2 AND status = $3 "
	     "ORDER BY id LIMIT $4"},
	};
	struct params p = {0};
	int64_t last = after;
	PGresult *r;
	json_t *arr;
	int i = 1;

	p_int(&p, 0, after);
	if (ns != NULL)
		p_text(&p, i++, ns);
	if (status != NULL)
		p_text(&p, i++, status);
	p_int(&p, i, limit);
	r = run_sql(s, sql[status != NULL][ns != NULL], &p, "state DB: list workflows", err,
	            errlen);
	if (r == NULL)
		return NULL;
	arr = json_array();
	for (int row = 0; row < PQntuples(r); row++) {
		last = get_int(r, row, 0);
		json_array_append_new(arr, wf_row_json(r, row));
	}
	PQclear(r);
	return json_pack("{s:o, s:I}", "workflows", arr, "next_after", (json_int_t)last);
}

json_t *pgstore_search_json(struct store *s, const char *ns, const char *prefix, const char *after,
                            int limit, char *err, size_t errlen)
{
	/* In byte order, as on SQLite, on the workflows_id_bytes index: in
	 * another collation the range would not hold every id that starts
	 * with the prefix. */
#define ID_BYTES "workflow_id COLLATE \"C\""
	static const char *const sql[2] = {
	    "SELECT " WF_COLS " FROM workflows WHERE namespace = $1 AND " ID_BYTES
	    " >= $2 AND " ID_BYTES " < $3 ORDER BY namespace, " ID_BYTES " LIMIT $4",
	    "SELECT " WF_COLS " FROM workflows WHERE namespace = $1 AND " ID_BYTES
	    " > $2 AND " ID_BYTES " < $3 ORDER BY namespace, " ID_BYTES " LIMIT $4",
	};
#undef ID_BYTES
	struct params p = {0};
	char hi[512];
	const char *lo;
	int lo_after;
	PGresult *r;
	json_t *arr, *last = json_null();

	store_search_bounds(prefix, after, &lo, &lo_after, hi, sizeof(hi));
	p_text(&p, 0, ns);
	p_text(&p, 1, lo);
	p_text(&p, 2, hi);
	p_int(&p, 3, limit);
	r = run_sql(s, sql[lo_after], &p, "state DB: search workflows", err, errlen);
	if (r == NULL)
		return NULL;
	arr = json_array();
	for (int row = 0; row < PQntuples(r); row++)
		json_array_append_new(arr, wf_row_json(r, row));
	if (PQntuples(r) == limit)
		last = json_string(PQgetvalue(r, limit - 1, 2));
	PQclear(r);
	return json_pack("{s:o, s:o}", "workflows", arr, "next_after_id", last);
}

/* ---- fault plans ------------------------------------------------------------------ */

int pgstore_fault_plan(struct store *s, int64_t ts, const char *action, const char *plan,
                       int64_t until_ms, int64_t *id, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;

	p_int(&p, 0, ts);
	if (s->pg->me > 0)
		p_int(&p, 1, s->pg->me);
	else
		p_text(&p, 1, NULL);
	p_text(&p, 2, action);
	p_text(&p, 3, plan);
	if (until_ms > 0)
		p_int(&p, 4, until_ms);
	else
		p_text(&p, 4, NULL);
	r = run_sql(s,
	            "INSERT INTO fault_plans (ts, supervisor, action, plan, until) "
	            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
	            &p, "state DB: record the fault plan", err, errlen);
	if (r == NULL)
		return -1;
	*id = get_int(r, 0, 0);
	PQclear(r);
	return 0;
}

json_t *pgstore_fault_plans_json(struct store *s, int limit, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *r;
	json_t *arr;

	p_int(&p, 0, limit);
	r = run_sql(s,
	            "SELECT f.id, f.ts, v.name, f.action, f.plan, f.until FROM fault_plans f "
	            "LEFT JOIN supervisors v ON v.id = f.supervisor ORDER BY f.id DESC LIMIT $1",
	            &p, "state DB: read the fault plans", err, errlen);
	if (r == NULL)
		return NULL;
	arr = json_array();
	for (int row = 0; row < PQntuples(r); row++)
		json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id",
		                                     v_int(r, row, 0), "ts", v_int(r, row, 1),
		                                     "supervisor", v_str(r, row, 2), "action",
		                                     v_str(r, row, 3), "plan", v_json(r, row, 4),
		                                     "until", v_int(r, row, 5)));
	PQclear(r);
	return arr;
}

/* ---- retention -------------------------------------------------------------------- */

/* Runs one of the pruning statements over ids (a bigint[] literal),
 * uncounting what its rows report. */
static int prune_step(struct store *s, int i, const char *ids, char *err, size_t errlen)
{
#define IDS " = ANY($1::bigint[])"
	static const char *const sql[] = {
	    "SELECT status, count(*), coalesce(sum(attempt), 0) FROM steps WHERE wf" IDS
	    " GROUP BY status",
	    "SELECT kind, count(*) FROM events WHERE wf" IDS " GROUP BY kind",
	    "SELECT status, count(*) FROM workflows WHERE id" IDS " GROUP BY status",
	    "INSERT INTO pruned (namespace, workflows, through)"
	    " SELECT namespace, count(*), max(closed_at) FROM workflows WHERE id" IDS
	    " GROUP BY namespace"
	    " ON CONFLICT (namespace) DO UPDATE SET workflows = pruned.workflows +"
	    " excluded.workflows, through = greatest(pruned.through, excluded.through)",
	    "DELETE FROM events WHERE wf" IDS,
	    "DELETE FROM steps WHERE wf" IDS,
	    "DELETE FROM workflows WHERE id" IDS,
	};
#undef IDS
	struct params p = {0};
	PGresult *r;

	if (i >= (int)(sizeof(sql) / sizeof(sql[0])))
		return 1;
	p_text(&p, 0, ids);
	r = run_sql(s, sql[i], &p, "state DB: prune", err, errlen);
	if (r == NULL)
		return -1;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *name = PQgetvalue(r, row, 0);
		int64_t n = get_int(r, row, 1);

		if (i == 0) {
			store_count(s, "steps", name, -n);
			store_count(s, "attempts", "total", -get_int(r, row, 2));
		} else if (i == 1) {
			store_count(s, "events", name, -n);
		} else if (i == 2) {
			store_count(s, "workflows", name, -n);
			store_count(s, "pruned", "workflows", n);
		}
	}
	PQclear(r);
	return 0;
}

/* Deletes the workflows ids with their steps and events, all or none;
 * 1 when another supervisor is pruning (nothing done). */
static int prune_ids(struct store *s, const char *ids, char *err, size_t errlen)
{
	struct counter *saved;
	size_t nsaved = s->ncounters;
	PGresult *r;
	int rc = 0, mine;

	if (store_write(s, err, errlen) != 0)
		return -1;
	/* One supervisor prunes at a time: two deleting the same batch would
	 * both take it off the counters. The others skip their batch. */
	r = run_sql(s, "SELECT pg_try_advisory_xact_lock(" PG_PRUNE_LOCK ")", NULL,
	            "state DB: prune", err, errlen);
	if (r == NULL)
		return -1;
	mine = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!mine)
		return 1;
	if (pgconn_exec(s->pg->conn, "SAVEPOINT prune", "state DB: prune", err, errlen) != 0)
		return -1;
	saved = xmalloc((nsaved ? nsaved : 1) * sizeof(*saved));
	memcpy(saved, s->counters, nsaved * sizeof(*saved));
	for (int i = 0; rc == 0; i++)
		rc = prune_step(s, i, ids, err, errlen);
	if (rc < 0) {
		char ignored[128];

		pgconn_exec(s->pg->conn, "ROLLBACK TO SAVEPOINT prune; RELEASE SAVEPOINT prune",
		            "state DB: prune", ignored, sizeof(ignored));
		memcpy(s->counters, saved, nsaved * sizeof(*saved));
		s->ncounters = nsaved;
	}
	free(saved);
	if (rc < 0)
		return -1;
	return pgconn_exec(s->pg->conn, "RELEASE SAVEPOINT prune", "state DB: prune", err, errlen);
}

int pgstore_prune(struct store *s, int64_t now_ms, const struct idem_config *cfg,
                  struct store_prune_cursor *cur, int scan, int *pruned, char *err, size_t errlen)
{
	static const char sql[] = "SELECT id, namespace, closed_at FROM workflows"
	                          " WHERE closed_at IS NOT NULL AND closed_at < $1"
	                          " AND (closed_at > $2 OR (closed_at = $2 AND id > $3))"
	                          " ORDER BY closed_at, id LIMIT $4";
	int64_t least = config_retention_min(cfg);
	struct textbuf ids = {0};
	struct params p = {0};
	int seen, n = 0, rc;
	PGresult *r;
	char *text;

	p_int(&p, 0, now_ms - least);
	p_int(&p, 1, cur->closed_at);
	p_int(&p, 2, cur->id);
	p_int(&p, 3, scan);
	r = run_sql(s, sql, &p, "state DB: find workflows past their retention", err, errlen);
	if (r == NULL)
		return -1;
	seen = PQntuples(r);
	textbuf_putc(&ids, '{');
	for (int i = 0; i < seen; i++) {
		int64_t id = get_int(r, i, 0), closed = get_int(r, i, 2);
		int64_t keep = config_retention(cfg, PQgetvalue(r, i, 1));

		cur->id = id;
		cur->closed_at = closed;
		if (keep == 0 || closed >= now_ms - keep)
			continue; /* its namespace keeps it (longer) */
		if (n++ > 0)
			textbuf_putc(&ids, ',');
		textbuf_put_int(&ids, id);
	}
	PQclear(r);
	textbuf_putc(&ids, '}');
	text = textbuf_take(&ids, NULL);
	if (seen < scan)
		*cur = (struct store_prune_cursor){.closed_at = INT64_MIN};
	rc = n > 0 ? prune_ids(s, text, err, errlen) : 0;
	free(text);
	*pruned = rc == 0 ? n : 0;
	return rc >= 0 ? seen : -1;
}
