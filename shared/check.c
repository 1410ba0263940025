/* check.c — the checker (check.h). One read-only connection: the state DB
 * is main, the app DB is attached as app, the supplier's ledger as ledger.
 * Every invariant is one SQL query (GROUP BY, IN over a subquery that
 * SQLite materializes once, or an index lookup per row): no query per row
 * from C, so 100,000 workflows take a fraction of a second.
 *
 * One read transaction gives one snapshot of each file, taken by its
 * first read, before any query (run()). The files are first read in the
 * order state, app, ledger, which is the order in which the programs make
 * an effect visible (a workflow start is durable before a worker runs; an
 * order row is committed before its completion is recorded; the supplier
 * records an order before the restock naming it): so a later snapshot can
 * only hold more of what an earlier one implies, and a check of a quiet
 * system (no workflow running) sees no false violation. On a busy one,
 * what a running workflow may still finish (a supplier order not yet
 * credited) is left out, and the three snapshots are microseconds apart:
 * too little for a workflow to start, run and apply an effect between
 * them. So a violation is one, running workflows or not; but the check is
 * final only once none runs ("quiescent").
 *
 * Which kind one fault is counted under, so that it is counted once:
 *   - an order or a restock key applied twice is "duplicated" (one per
 *     order id or key, whatever the number of rows); a supplier order
 *     credited under two different keys is "duplicated" too (one per
 *     supplier order); the rows of one key are not counted again there,
 *     nor as "missing" for the key the ledger does not record;
 *   - a supplier order no restock names is "extra", unless a completed
 *     workflow's result names it (that workflow's restock was lost: the
 *     fault is reported once, under "lost"), or a failed workflow's
 *     unfinished step placed it (reported once, under
 *     "failed_with_effects", one per workflow with all its rows);
 *   - a restock naming a supplier order the ledger lacks (or records with
 *     another product or quantity, or under another key) is "missing",
 *     once per distinct restock content (duplicated rows of one key are
 *     one);
 *   - the stock is a separate observation: a duplicate also shows as a
 *     stock_mismatch of its product, on purpose. */
#include "check.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"

enum kind {
	K_STUCK,
	K_LOST,
	K_FAILED_EFFECTS,
	K_DUPLICATED,
	K_UNEXPECTED,
	K_EXTRA,
	K_MISSING,
	K_STOCK,
	K_INTEGRITY,
	K_N
};

static const char *const kind_names[K_N] = {
    [K_STUCK] = "stuck",
    [K_LOST] = "lost",
    [K_FAILED_EFFECTS] = "failed_with_effects",
    [K_DUPLICATED] = "duplicated",
    [K_UNEXPECTED] = "unexpected",
    [K_EXTRA] = "extra_supplier_orders",
    [K_MISSING] = "missing_supplier_orders",
    [K_STOCK] = "stock_mismatch",
    [K_INTEGRITY] = "integrity",
};

/* The three databases: schema name, what a person calls it, config key
 * and its flag. */
enum { DB_STATE, DB_APP, DB_LEDGER, DB_N };

static const struct {
	const char *schema;
	const char *name;
	const char *key;
	const char *flag;
} dbs[DB_N] = {
    [DB_STATE] = {"main", "state DB", "STATE_DATABASE", "state-database"},
    [DB_APP] = {"app", "app DB", "DATABASE", "database"},
    [DB_LEDGER] = {"ledger", "supplier ledger", "SUPPLIER_DATABASE", "supplier-database"},
};

struct chk {
	sqlite3 *db;
	const char *path[DB_N];
	long long count[K_N];
	long long running;  /* workflows still running */
	json_t *violations; /* owned */
	json_t *running_wf; /* owned: the first CHECK_MAX_LISTED running workflows */
	json_t *totals;     /* owned */
	char *err;
	size_t errlen;
};

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

static void add(struct chk *c, enum kind k, json_t *workflows, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Counts one violation of kind k and lists it while fewer than
 * CHECK_MAX_LISTED of that kind are listed. workflows (a JSON array) is
 * STOLEN; NULL means none. */
static void add(struct chk *c, enum kind k, json_t *workflows, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (workflows == NULL)
		workflows = json_array();
	if (c->count[k]++ >= CHECK_MAX_LISTED) {
		json_decref(workflows);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(c->violations,
	                      json_pack("{s:s, s:o, s:o}", "kind", kind_names[k], "message",
	                                text(msg), "workflows", workflows));
}

/* "a, b, c" from a JSON array of strings, with sep between them. */
static void join_with(const json_t *arr, const char *sep, char *buf, size_t len)
{
	size_t i, used = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(arr, i, v)
	{
		int n = snprintf(buf + used, len - used, "%s%s", i ? sep : "",
		                 json_is_string(v) ? json_string_value(v) : "?");

		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

static void join(const json_t *arr, char *buf, size_t len)
{
	join_with(arr, ", ", buf, len);
}

/* The workflow "namespace/workflow_id" of a supplier key
 * "namespace/workflow_id/step" (or of the naive "KEY/attempt-N"): the key
 * without its trailing "/attempt-N" and "/step". Empty when it has none. */
static void key_workflow(const char *key, char *buf, size_t len)
{
	const char *att = strstr(key, "/attempt-");
	size_t n = strlen(key);

	if (att != NULL && att[9] != '\0' && strspn(att + 9, "0123456789") == strlen(att + 9))
		n = (size_t)(att - key);
	if (n == 0 || key[n - 1] < '0' || key[n - 1] > '9') {
		buf[0] = '\0';
		return;
	}
	while (n > 0 && key[n - 1] >= '0' && key[n - 1] <= '9')
		n--;
	if (n < 2 || key[n - 1] != '/') {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, len, "%.*s", (int)(n - 1), key);
}

/* A one-element array with the workflow of key, or an empty one. NEW. */
static json_t *key_workflows(const char *key)
{
	char wf[1024];
	json_t *arr = json_array();

	key_workflow(key, wf, sizeof(wf));
	if (wf[0] != '\0')
		json_array_append_new(arr, json_string(wf));
	return arr;
}

/* ---- running queries ------------------------------------------------------- */

static const char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "";
}

/* A column holding a JSON array (json_group_array), as a NEW array. */
static json_t *col_array(sqlite3_stmt *st, int i)
{
	json_t *arr = json_loads(col(st, i), 0, NULL);

	if (!json_is_array(arr)) {
		json_decref(arr);
		arr = json_array();
	}
	return arr;
}

typedef void (*row_fn)(struct chk *c, sqlite3_stmt *st);

/* Runs sql and calls fn for each row. A database found corrupt while
 * reading is an integrity violation, and the check goes on; any other
 * error stops it. Returns 0, or -1 with c->err. */
static int each_row(struct chk *c, const char *what, const char *sql, row_fn fn)
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
		add(c, K_INTEGRITY, NULL, "%s failed: %s", what, sqlite3_errstr(rc));
		return 0;
	}
	snprintf(c->err, c->errlen, "%s: %s", what, sqlite3_errmsg(c->db));
	return -1;
}

/* ---- the invariants ------------------------------------------------------- */

/* Whether the ledger row l was recorded under the supplier key k.key:
 * the same key, or the key with the naive mode's "/attempt-N"
 * (worker/activities.c). Each form lets the ledger's unique index find
 * the rows of a key. */
#define LEDGER_KEY_IS_K                                                                            \
	"(l.idempotency_key = k.key OR (l.idempotency_key > k.key || '/attempt-'"                  \
	" AND l.idempotency_key < k.key || '/attempt.'"                                            \
	" AND rtrim(substr(l.idempotency_key, length(k.key) + 10), '0123456789') = ''))"

/* The supplier key "namespace/workflow_id/seq" of every step whose
 * supplier order is accounted for elsewhere: any step of a running
 * workflow (its credit may be on its way) and each unfinished step of a
 * failed one (failed_with_effects reports it). */
#define OPEN_STEP_KEYS                                                                             \
	"SELECT ow.namespace || '/' || ow.workflow_id || '/' || os.seq AS key"                     \
	" FROM main.workflows ow JOIN main.steps os ON os.wf = ow.id"                              \
	" WHERE ow.status = 'running' OR (ow.status = 'failed' AND os.status <> 'completed')"

static void row_stuck(struct chk *c, sqlite3_stmt *st)
{
	const char *wf = col(st, 0), *status = col(st, 1);
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

/* Listed, not counted: totals.workflows.running has the number. */
static void row_running(struct chk *c, sqlite3_stmt *st)
{
	char wf[1024];

	snprintf(wf, sizeof(wf), "%s", col(st, 0));
	if (json_array_size(c->running_wf) < CHECK_MAX_LISTED)
		json_array_append_new(c->running_wf, text(wf));
}

static const char sql_running[] = "SELECT namespace || '/' || workflow_id FROM main.workflows"
                                  " WHERE status = 'running' ORDER BY id";

static void row_lost_order(struct chk *c, sqlite3_stmt *st)
{
	const char *wf = col(st, 0), *order = col(st, 1);
	json_t *owners = col_array(st, 2), *wfs = json_pack("[s]", wf);
	char list[512];

	if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
		add(c, K_LOST, wfs, "workflow %s completed but its input has no order_id", wf);
	} else if (json_array_size(owners) == 0) {
		add(c, K_LOST, wfs, "workflow %s completed but its order %s was never applied", wf,
		    order);
	} else {
		join(owners, list, sizeof(list));
		json_array_extend(wfs, owners);
		add(c, K_LOST, wfs,
		    "workflow %s completed but its order %s was applied only for workflow %s", wf,
		    order, list);
	}
	json_decref(owners);
}

/* An order row belongs to its workflow: orders.workflow_id is
 * "namespace/workflow_id" (the index on order_id finds the rows). */
static const char sql_lost_order[] =
    "SELECT w.namespace || '/' || w.workflow_id, json_extract(w.input, '$.order_id'),"
    " (SELECT json_group_array(DISTINCT o.workflow_id) FROM app.orders o"
    "   WHERE o.order_id = json_extract(w.input, '$.order_id'))"
    " FROM main.workflows w"
    " WHERE w.status = 'completed' AND w.type = 'inventory'"
    " AND NOT EXISTS (SELECT 1 FROM app.orders o"
    "   WHERE o.order_id = json_extract(w.input, '$.order_id')"
    "   AND o.workflow_id = w.namespace || '/' || w.workflow_id)"
    " ORDER BY w.id";

static void row_lost_restock(struct chk *c, sqlite3_stmt *st)
{
	const char *wf = col(st, 0);

	add(c, K_LOST, json_pack("[s]", wf),
	    "workflow %s completed with supplier order %s but no restock credits it", wf,
	    col(st, 1));
}

static const char sql_lost_restock[] =
    "SELECT namespace || '/' || workflow_id, json_extract(result, '$.supplier_order_id')"
    " FROM main.workflows"
    " WHERE status = 'completed' AND type = 'inventory'"
    " AND json_extract(result, '$.restocked') = 1"
    " AND coalesce(json_extract(result, '$.supplier_order_id'), '') NOT IN"
    "   (SELECT supplier_order_id FROM app.restocks)"
    " ORDER BY id";

static void row_failed_effects(struct chk *c, sqlite3_stmt *st)
{
	const char *wf = col(st, 0);
	json_t *rows = col_array(st, 2), *more = col_array(st, 3), *ledger = col_array(st, 4);
	char list[700];

	json_array_extend(rows, more);
	json_array_extend(rows, ledger);
	join_with(rows, "; ", list, sizeof(list));
	add(c, K_FAILED_EFFECTS, json_pack("[s]", wf),
	    "workflow %s failed with effects applied: %s; its error: %s", wf, list, col(st, 1));
	json_decref(rows);
	json_decref(more);
	json_decref(ledger);
}

/* The effects of a failed workflow's unfinished steps: its order when its
 * update_inventory step did not complete, the restocks and supplier
 * orders under the key of a step that did not. An effect of a completed
 * step stands by the workflow's own history (a failure at step 1 leaves
 * step 0's order applied, as "show" says) and is not listed. Only the
 * failed workflows and their effects are read. */
static const char sql_failed_effects[] =
    "WITH f AS (SELECT id, namespace || '/' || workflow_id AS wf,"
    "   json_extract(input, '$.order_id') AS order_id, error FROM main.workflows"
    "   WHERE status = 'failed'),"
    " k AS (SELECT f.id, f.wf || '/' || s.seq AS key FROM f JOIN main.steps s ON s.wf = f.id"
    "   WHERE s.status <> 'completed'),"
    " o AS (SELECT f.id, json_group_array(DISTINCT 'order ' || o.order_id) AS a"
    "   FROM f JOIN app.orders o ON o.order_id = f.order_id AND o.workflow_id = f.wf"
    "   WHERE NOT EXISTS (SELECT 1 FROM main.steps s WHERE s.wf = f.id"
    "     AND s.activity = 'update_inventory' AND s.status = 'completed')"
    "   GROUP BY f.id),"
    " r AS (SELECT k.id, json_group_array(DISTINCT 'restock ' || r.key"
    "     || ' of supplier order ' || r.supplier_order_id) AS a"
    "   FROM k JOIN app.restocks r ON r.key = k.key GROUP BY k.id),"
    " l AS (SELECT k.id, json_group_array('supplier order SO-' || l.id || ' (key '"
    "     || l.idempotency_key || ')') AS a"
    "   FROM k JOIN ledger.supplier_orders l ON " LEDGER_KEY_IS_K " GROUP BY k.id)"
    " SELECT f.wf, substr(coalesce(f.error, ''), 1, 300), o.a, r.a, l.a FROM f"
    " LEFT JOIN o ON o.id = f.id LEFT JOIN r ON r.id = f.id LEFT JOIN l ON l.id = f.id"
    " WHERE coalesce(o.a, r.a, l.a) IS NOT NULL ORDER BY f.id";

static void row_dup_order(struct chk *c, sqlite3_stmt *st)
{
	json_t *wfs = col_array(st, 2);
	char list[512];

	join(wfs, list, sizeof(list));
	add(c, K_DUPLICATED, wfs, "order %s applied %lld times (workflows %s)", col(st, 0),
	    (long long)sqlite3_column_int64(st, 1), list);
}

/* The count comes from the index alone; only a duplicate's rows are read. */
static const char sql_dup_order[] =
    "SELECT d.order_id, d.n, (SELECT json_group_array(DISTINCT o.workflow_id)"
    "   FROM app.orders o WHERE o.order_id = d.order_id)"
    " FROM (SELECT order_id, count(*) AS n FROM app.orders GROUP BY order_id"
    "   HAVING count(*) > 1) d ORDER BY d.order_id";

static void row_dup_key(struct chk *c, sqlite3_stmt *st)
{
	const char *key = col(st, 0);
	json_t *sos = col_array(st, 2);
	char list[512];

	join(sos, list, sizeof(list));
	add(c, K_DUPLICATED, key_workflows(key),
	    "restock key %s credited %lld times (supplier order%s %s)", key,
	    (long long)sqlite3_column_int64(st, 1), json_array_size(sos) == 1 ? "" : "s", list);
	json_decref(sos);
}

static const char sql_dup_key[] =
    "SELECT d.key, d.n, (SELECT json_group_array(DISTINCT r.supplier_order_id)"
    "   FROM app.restocks r WHERE r.key = d.key)"
    " FROM (SELECT key, count(*) AS n FROM app.restocks GROUP BY key HAVING count(*) > 1) d"
    " ORDER BY d.key";

static void row_dup_credit(struct chk *c, sqlite3_stmt *st)
{
	json_t *keys = col_array(st, 2), *wfs = json_array(), *k;
	char list[512], wf[1024];
	size_t i;

	json_array_foreach(keys, i, k)
	{
		key_workflow(json_string_value(k), wf, sizeof(wf));
		if (wf[0] != '\0')
			json_array_append_new(wfs, json_string(wf));
	}
	join(keys, list, sizeof(list));
	add(c, K_DUPLICATED, wfs, "supplier order %s credited under %lld restock keys (%s)",
	    col(st, 0), (long long)sqlite3_column_int64(st, 1), list);
	json_decref(keys);
}

static const char sql_dup_credit[] =
    "SELECT supplier_order_id, count(DISTINCT key), json_group_array(DISTINCT key)"
    " FROM app.restocks GROUP BY supplier_order_id HAVING count(DISTINCT key) > 1"
    " ORDER BY supplier_order_id";

static void row_unexpected_order(struct chk *c, sqlite3_stmt *st)
{
	const char *wf = col(st, 1);
	long long n = sqlite3_column_int64(st, 2);
	char times[48] = "";

	if (n > 1)
		snprintf(times, sizeof(times), " (%lld times)", n);
	add(c, K_UNEXPECTED, json_pack("[s]", wf),
	    "order %s was applied for workflow %s, which does not exist%s", col(st, 0), wf, times);
}

static const char sql_unexpected_order[] =
    "SELECT order_id, workflow_id, count(*) FROM app.orders"
    " WHERE workflow_id NOT IN (SELECT namespace || '/' || workflow_id FROM main.workflows)"
    " GROUP BY order_id, workflow_id ORDER BY order_id, workflow_id";

static void row_unexpected_restock(struct chk *c, sqlite3_stmt *st)
{
	const char *key = col(st, 0);
	char wf[1024];

	key_workflow(key, wf, sizeof(wf));
	add(c, K_UNEXPECTED, key_workflows(key),
	    "restock %s was credited for workflow %s, which does not exist", key,
	    wf[0] ? wf : "(none: the key is not namespace/workflow_id/step)");
}

/* rtrim(key, digits) is "namespace/workflow_id/" for a key
 * "namespace/workflow_id/step". */
static const char sql_unexpected_restock[] =
    "SELECT key FROM app.restocks"
    " WHERE rtrim(key, '0123456789') NOT IN"
    "   (SELECT namespace || '/' || workflow_id || '/' FROM main.workflows)"
    " GROUP BY key ORDER BY key";

static void row_extra(struct chk *c, sqlite3_stmt *st)
{
	const char *key = col(st, 1);

	add(c, K_EXTRA, key_workflows(key),
	    "supplier order SO-%lld (key %s) has no restock: %lld units of product %s ordered, "
	    "never credited",
	    (long long)sqlite3_column_int64(st, 0), key, (long long)sqlite3_column_int64(st, 3),
	    col(st, 2));
}

/* The supplier order id is "SO-" || id. Left out: orders a completed
 * workflow's result names (row_lost_restock reports those), and orders of
 * a running workflow or of a failed one's unfinished step (see
 * OPEN_STEP_KEYS). */
static const char sql_extra[] =
    "SELECT s.id, s.idempotency_key, s.product_id, s.quantity FROM ledger.supplier_orders s"
    " WHERE 'SO-' || s.id NOT IN (SELECT supplier_order_id FROM app.restocks)"
    " AND 'SO-' || s.id NOT IN (SELECT json_extract(result, '$.supplier_order_id')"
    "   FROM main.workflows WHERE status = 'completed'"
    "   AND json_extract(result, '$.supplier_order_id') IS NOT NULL)"
    " AND s.id NOT IN (SELECT l.id FROM (" OPEN_STEP_KEYS ") k"
    "   JOIN ledger.supplier_orders l ON " LEDGER_KEY_IS_K ")"
    " ORDER BY s.id";

static void row_missing(struct chk *c, sqlite3_stmt *st)
{
	const char *key = col(st, 0), *so = col(st, 1), *product = col(st, 2), *lkey = col(st, 6);
	long long qty = sqlite3_column_int64(st, 3);
	json_t *wfs = key_workflows(key), *other = key_workflows(lkey);

	if (sqlite3_column_type(st, 4) == SQLITE_NULL)
		add(c, K_MISSING, wfs,
		    "restock %s names supplier order %s, which the supplier never recorded", key,
		    so);
	else if (strcmp(product, col(st, 4)) != 0 || qty != sqlite3_column_int64(st, 5))
		add(c, K_MISSING, wfs,
		    "restock %s credited %lld units of product %s for supplier order %s, which the "
		    "supplier recorded as %lld units of product %s",
		    key, qty, product, so, (long long)sqlite3_column_int64(st, 5), col(st, 4));
	else {
		json_array_extend(wfs, other);
		add(c, K_MISSING, wfs,
		    "restock %s credits supplier order %s, which the supplier recorded under key "
		    "%s: that key's order, not this one's",
		    key, so, lkey);
	}
	json_decref(other);
}

/* The ledger row l of restock k, by its primary key: "SO-<id>" parsed
 * back, and checked to print the same (so "SO-01" or "X" find nothing).
 * It must hold the restock's product and quantity, under the restock's
 * key: another key's order of the same size is not this credit's. A
 * supplier order credited under several keys is "duplicated"
 * (sql_dup_credit), and its keys are not counted again here. */
static const char sql_missing[] =
    "SELECT DISTINCT k.key, k.supplier_order_id, k.product_id, k.quantity,"
    " l.product_id, l.quantity, l.idempotency_key"
    " FROM app.restocks k LEFT JOIN ledger.supplier_orders l"
    "   ON l.id = CAST(substr(k.supplier_order_id, 4) AS INTEGER)"
    "   AND 'SO-' || l.id = k.supplier_order_id"
    " WHERE l.id IS NULL OR l.product_id IS NOT k.product_id OR l.quantity IS NOT k.quantity"
    " OR (NOT " LEDGER_KEY_IS_K " AND k.supplier_order_id NOT IN (SELECT supplier_order_id"
    "   FROM app.restocks GROUP BY supplier_order_id HAVING count(DISTINCT key) > 1))"
    " ORDER BY k.supplier_order_id, k.key";

static void row_stock(struct chk *c, sqlite3_stmt *st)
{
	long long have = sqlite3_column_int64(st, 1), want = sqlite3_column_int64(st, 2);

	add(c, K_STOCK, NULL,
	    "product %s has %lld, expected %lld from its orders, restocks and adjustments "
	    "(difference %+lld)",
	    col(st, 0), have, want, have - want);
}

/* Each order id and each restock key counts once, with the row first
 * applied (SQLite takes the bare columns from the min(id) row). */
static const char sql_stock[] =
    "WITH o AS (SELECT product_id, sum(quantity) AS q FROM"
    "   (SELECT product_id, quantity, min(id) FROM app.orders GROUP BY order_id)"
    "   GROUP BY product_id),"
    " r AS (SELECT product_id, sum(quantity) AS q FROM"
    "   (SELECT product_id, quantity, min(id) FROM app.restocks GROUP BY key)"
    "   GROUP BY product_id),"
    " a AS (SELECT product_id, sum(new_stock - old_stock) AS d FROM app.adjustments"
    "   GROUP BY product_id)"
    " SELECT p.product_id, p.stock,"
    "   p.initial_stock + coalesce(a.d, 0) - coalesce(o.q, 0) + coalesce(r.q, 0) AS expected"
    " FROM app.products p LEFT JOIN o USING (product_id) LEFT JOIN r USING (product_id)"
    " LEFT JOIN a USING (product_id)"
    " WHERE p.stock <> expected ORDER BY p.product_id";

static const struct {
	const char *what;
	const char *sql;
	row_fn fn;
} queries[] = {
    {"finding stuck workflows", sql_stuck, row_stuck},
    {"listing running workflows", sql_running, row_running},
    {"finding lost orders", sql_lost_order, row_lost_order},
    {"finding lost restocks", sql_lost_restock, row_lost_restock},
    {"finding failed workflows with effects", sql_failed_effects, row_failed_effects},
    {"finding duplicated orders", sql_dup_order, row_dup_order},
    {"finding duplicated restocks", sql_dup_key, row_dup_key},
    {"finding supplier orders credited twice", sql_dup_credit, row_dup_credit},
    {"finding orders of unknown workflows", sql_unexpected_order, row_unexpected_order},
    {"finding restocks of unknown workflows", sql_unexpected_restock, row_unexpected_restock},
    {"finding supplier orders without a restock", sql_extra, row_extra},
    {"finding restocks without a supplier order", sql_missing, row_missing},
    {"comparing stocks", sql_stock, row_stock},
};

/* ---- totals and integrity --------------------------------------------------- */

static void row_totals_state(struct chk *c, sqlite3_stmt *st)
{
	c->running = sqlite3_column_int64(st, 0);
	json_object_set_new(c->totals, "workflows",
	                    json_pack("{s:I, s:I, s:I}", "running",
	                              (json_int_t)sqlite3_column_int64(st, 0), "completed",
	                              (json_int_t)sqlite3_column_int64(st, 1), "failed",
	                              (json_int_t)sqlite3_column_int64(st, 2)));
}

static void row_totals_app(struct chk *c, sqlite3_stmt *st)
{
	json_object_set_new(c->totals, "orders", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(c->totals, "restocks", json_integer(sqlite3_column_int64(st, 1)));
	json_object_set_new(c->totals, "products", json_integer(sqlite3_column_int64(st, 2)));
}

static void row_totals_ledger(struct chk *c, sqlite3_stmt *st)
{
	json_object_set_new(c->totals, "supplier_orders",
	                    json_integer(sqlite3_column_int64(st, 0)));
}

/* The totals of each file, in the order state, app, ledger, once run()
 * has taken the three snapshots. */
static const struct {
	const char *what;
	const char *sql;
	row_fn fn;
} first_reads[DB_N] = {
    {"counting workflows",
     "SELECT coalesce(sum(status = 'running'), 0), coalesce(sum(status = 'completed'), 0),"
     " coalesce(sum(status = 'failed'), 0) FROM main.workflows",
     row_totals_state},
    {"counting orders",
     "SELECT (SELECT count(*) FROM app.orders), (SELECT count(*) FROM app.restocks),"
     " (SELECT count(*) FROM app.products)",
     row_totals_app},
    {"counting supplier orders", "SELECT count(*) FROM ledger.supplier_orders", row_totals_ledger},
};

/* The first read of database i: its schema version, which also tells a
 * file that is not idem's. Returns 0, or -1 with c->err. */
static int schema_check(struct chk *c, int i)
{
	char sql[64];
	sqlite3_stmt *st = NULL;
	int rc, version = 0;

	snprintf(sql, sizeof(sql), "PRAGMA %s.user_version", dbs[i].schema);
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW) {
		snprintf(c->err, c->errlen, "%s %s (%s) cannot be read: %s", dbs[i].name,
		         c->path[i], dbs[i].key, sqlite3_errmsg(c->db));
		return -1;
	}
	if (version == 0) {
		snprintf(c->err, c->errlen,
		         "%s %s (%s) has no idem schema (user_version 0): is %s the right "
		         "file?",
		         dbs[i].name, c->path[i], dbs[i].key, dbs[i].key);
		return -1;
	}
	return 0;
}

/* PRAGMA integrity_check of each file: one violation per file that is
 * not "ok", with its first problems. */
static int integrity(struct chk *c, int i)
{
	char sql[64], first[600] = "";
	sqlite3_stmt *st = NULL;
	long long problems = 0;
	int rc;

	snprintf(sql, sizeof(sql), "PRAGMA %s.integrity_check(%d)", dbs[i].schema,
	         CHECK_MAX_LISTED);
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(c->err, c->errlen, "%s: %s", sql, sqlite3_errmsg(c->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = col(st, 0);

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
		add(c, K_INTEGRITY, NULL, "%s %s: integrity_check: %s", dbs[i].name, c->path[i],
		    first);
	else if (problems > 1)
		add(c, K_INTEGRITY, NULL, "%s %s: integrity_check: %s (and %lld more problems)",
		    dbs[i].name, c->path[i], first, problems - 1);
	return 0;
}

/* ---- opening -------------------------------------------------------------------- */

/* "file:PATH?mode=ro" with the characters a URI gives a meaning escaped.
 * malloc'd. */
static char *ro_uri(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	char *uri = malloc(strlen(path) * 3 + 16), *o = uri;

	if (uri == NULL)
		return NULL;
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

/* Opens the state DB read-only and attaches the other two. A missing file
 * is an error: nothing here creates one. */
static int open_all(struct chk *c)
{
	char *uri = NULL;
	int rc;

	for (int i = 0; i < DB_N; i++) {
		if (c->path[i] == NULL || c->path[i][0] == '\0') {
			snprintf(c->err, c->errlen, "no %s given (set %s)", dbs[i].name,
			         dbs[i].key);
			return -1;
		}
		if (access(c->path[i], F_OK) != 0) {
			snprintf(c->err, c->errlen,
			         "%s %s does not exist (is %s, or its flag --%s, right?)",
			         dbs[i].name, c->path[i], dbs[i].key, dbs[i].flag);
			return -1;
		}
	}
	for (int i = 0; i < DB_N; i++) {
		sqlite3_stmt *st = NULL;

		if ((uri = ro_uri(c->path[i])) == NULL) {
			snprintf(c->err, c->errlen, "out of memory");
			return -1;
		}
		if (i == DB_STATE) {
			rc = sqlite3_open_v2(uri, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
			                     NULL);
			if (rc == SQLITE_OK)
				rc = sqlite3_busy_timeout(c->db, DB_BUSY_TIMEOUT_MS);
		} else {
			char sql[64];

			snprintf(sql, sizeof(sql), "ATTACH ?1 AS %s", dbs[i].schema);
			rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
				rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
			}
		}
		if (rc != SQLITE_OK)
			snprintf(c->err, c->errlen, "cannot open %s %s (%s): %s", dbs[i].name,
			         c->path[i], dbs[i].key,
			         c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_finalize(st);
		free(uri);
		if (rc != SQLITE_OK)
			return -1;
	}
	return 0;
}

/* ---- the report ------------------------------------------------------------------- */

/* Each file's snapshot is taken by its first read, its schema version:
 * the three back to back, before any query that takes time, so that no
 * workflow can start, run and apply an effect between them (see the top
 * of the file). */
static int run(struct chk *c)
{
	for (int i = 0; i < DB_N; i++)
		if (schema_check(c, i) != 0)
			return -1;
	for (int i = 0; i < DB_N; i++)
		if (each_row(c, first_reads[i].what, first_reads[i].sql, first_reads[i].fn) != 0)
			return -1;
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
		if (each_row(c, queries[i].what, queries[i].sql, queries[i].fn) != 0)
			return -1;
	for (int i = 0; i < DB_N; i++)
		if (integrity(c, i) != 0)
			return -1;
	return 0;
}

/* The report (NEW) from what run() found. */
static json_t *report_of(const struct chk *c)
{
	json_t *counts = json_object();
	long long total = 0;

	for (int k = 0; k < K_N; k++) {
		json_object_set_new(counts, kind_names[k], json_integer(c->count[k]));
		total += c->count[k];
	}
	return json_pack("{s:b, s:b, s:o, s:O, s:O, s:O}", "ok", total == 0 && c->running == 0,
	                 "quiescent", c->running == 0, "counts", counts, "violations",
	                 c->violations, "running_workflows", c->running_wf, "totals", c->totals);
}

json_t *check_run(const char *state_db, const char *app_db, const char *supplier_db, char *err,
                  size_t errlen)
{
	struct chk c = {.path = {state_db, app_db, supplier_db}, .err = err, .errlen = errlen};
	json_t *report = NULL;
	int rc = -1;

	c.violations = json_array();
	c.running_wf = json_array();
	c.totals = json_object();
	if (open_all(&c) != 0)
		goto out;
	if (db_exec(c.db, "BEGIN", err, errlen) != 0)
		goto out;
	rc = run(&c);
	sqlite3_exec(c.db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	if (rc == 0)
		report = report_of(&c);
out:
	json_decref(c.violations);
	json_decref(c.running_wf);
	json_decref(c.totals);
	db_close(c.db);
	return report;
}

/* ---- printing ------------------------------------------------------------------------ */

static long long count_of(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* The violation lines; counts in listed[] those of each kind. */
static void print_violations(const json_t *report, long long listed[K_N], FILE *out)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(report, "violations"), i, v)
	{
		const char *kind = json_string_value(json_object_get(v, "kind"));
		const char *msg = json_string_value(json_object_get(v, "message"));

		fprintf(out, "  %s  %s\n", kind ? kind : "?", msg ? msg : "?");
		for (int k = 0; k < K_N; k++)
			if (kind != NULL && strcmp(kind, kind_names[k]) == 0)
				listed[k]++;
	}
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
static long long print_not_listed(const json_t *counts, const long long listed[K_N], FILE *out)
{
	long long total = 0;

	for (int k = 0; k < K_N; k++) {
		long long n = count_of(counts, kind_names[k]);

		if (n > listed[k])
			fprintf(out, "  %s  ... and %lld more not listed\n", kind_names[k],
			        n - listed[k]);
		total += n;
	}
	return total;
}

static void print_failed(const json_t *counts, const json_t *totals, long long total, FILE *out)
{
	const json_t *wfs = json_object_get(totals, "workflows");
	long long running = count_of(wfs, "running");
	const char *sep = "";

	fprintf(out, "counts:");
	for (int k = 0; k < K_N; k++)
		fprintf(out, "%s %s %lld", k ? "," : "", kind_names[k],
		        count_of(counts, kind_names[k]));
	fprintf(out,
	        "\ntotals: %lld workflows (%lld running, %lld completed, %lld failed), %lld "
	        "orders, %lld restocks, %lld supplier orders, %lld products\n",
	        running + count_of(wfs, "completed") + count_of(wfs, "failed"), running,
	        count_of(wfs, "completed"), count_of(wfs, "failed"), count_of(totals, "orders"),
	        count_of(totals, "restocks"), count_of(totals, "supplier_orders"),
	        count_of(totals, "products"));
	fprintf(out, "check: FAILED — %lld violation%s:", total, total == 1 ? "" : "s");
	for (int k = 0; k < K_N; k++) {
		long long n = count_of(counts, kind_names[k]);

		if (n == 0)
			continue;
		fprintf(out, "%s %lld %s", sep, n, kind_names[k]);
		sep = ",";
	}
	if (running > 0)
		fprintf(out, "; %lld workflow%s still running", running, running == 1 ? "" : "s");
	fprintf(out, "\n");
}

void check_print(const json_t *report, FILE *out)
{
	const json_t *counts = json_object_get(report, "counts");
	const json_t *totals = json_object_get(report, "totals");
	const json_t *wfs = json_object_get(totals, "workflows");
	long long listed[K_N] = {0}, total, running = count_of(wfs, "running");
	long long all = running + count_of(wfs, "completed") + count_of(wfs, "failed");

	if (!json_is_object(counts)) {
		fprintf(out, "check: no report\n");
		return;
	}
	print_violations(report, listed, out);
	print_running(report, running, out);
	total = print_not_listed(counts, listed, out);
	if (total > 0 || (running == 0 && !json_is_true(json_object_get(report, "ok"))))
		print_failed(counts, totals, total, out);
	else if (running > 0)
		fprintf(out,
		        "check: NOT QUIESCENT — %lld workflow%s still running (of %lld), no "
		        "violation so far; check again once none runs (idemctl check --wait "
		        "SECONDS)\n",
		        running, running == 1 ? "" : "s", all);
	else
		fprintf(out,
		        "check: OK — %lld workflows (%lld completed, %lld failed), %lld orders, "
		        "%lld restocks, %lld supplier orders; no violation\n",
		        all, count_of(wfs, "completed"), count_of(wfs, "failed"),
		        count_of(totals, "orders"), count_of(totals, "restocks"),
		        count_of(totals, "supplier_orders"));
}
