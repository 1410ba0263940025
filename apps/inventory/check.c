/* check.c — the inventory app's rules of the checker (shared/check.h
 * runs them through idem_app.h's "the checker's rules"; "stuck" and
 * "integrity", and the snapshot, are the engine's). The checker reads the
 * supplier's ledger too, attached as ledger after the app DB (the
 * supplier records an order before the restock naming it), and verifies:
 *
 *   lost         every completed inventory workflow's order has an orders row
 *   failed_with_effects  no failed workflow has an effect of a step that
 *                did not complete: its order (update_inventory not
 *                completed), or a restock or supplier order under the key
 *                of a step that did not complete. A violation, not a
 *                warning: the client is told "failed" while the effect is
 *                applied, and nothing in the workflow's history says so; a
 *                client that retries under another workflow id applies it
 *                again. An effect of a completed step (the order of a
 *                workflow that failed at supplier_order) stands by the
 *                workflow's own history and is not one. A refusal that
 *                applied nothing (InsufficientStock) is not one either
 *   duplicated   each order id applied once; each restock key credited once
 *   unexpected   every orders row belongs to a workflow that exists (or
 *                was pruned: IDEM_CHECK_PRUNED)
 *   extra_supplier_orders    every supplier order has exactly one restock
 *                (a running workflow's, whose credit may be on its way,
 *                and a failed one's unfinished step's are left out)
 *   missing_supplier_orders  every restock's supplier order is in the ledger,
 *                            with the same product and quantity, under the
 *                            restock's key (or the naive mode's
 *                            "KEY/attempt-N"): another key's order of the
 *                            same size is not this credit's
 *   stock_mismatch  for each product: stock = initial_stock + adjustments
 *                   - quantities of distinct orders + quantities of distinct restocks
 *
 * and its totals: orders, restocks, products and supplier_orders.
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
#include <stdio.h>
#include <string.h>

#include "inventory.h"

static const char LOST[] = "lost", FAILED_EFFECTS[] = "failed_with_effects",
                  DUPLICATED[] = "duplicated", UNEXPECTED[] = "unexpected",
                  EXTRA[] = "extra_supplier_orders", MISSING[] = "missing_supplier_orders",
                  STOCK[] = "stock_mismatch";

/* In report order, between the engine's "stuck" and "integrity". */
const char *const inventory_check_kinds[] = {
    LOST, FAILED_EFFECTS, DUPLICATED, UNEXPECTED, EXTRA, MISSING, STOCK, NULL,
};

static const char *supplier_database(const struct idem_config *cfg)
{
	return config_text(cfg, "SUPPLIER_DATABASE");
}

const struct idem_app_db inventory_dbs[] = {
    {"ledger", "supplier ledger", "SUPPLIER_DATABASE", "supplier-database", supplier_database},
    {NULL, NULL, NULL, NULL, NULL},
};

/* As the checker's text lists them; the OK line leaves out products. */
const struct idem_check_total_label inventory_check_total_labels[] = {
    {"orders", "orders", 1},
    {"restocks", "restocks", 1},
    {"supplier_orders", "supplier orders", 1},
    {"products", "products", 0},
    {NULL, NULL, 0},
};

/* ---- helpers -------------------------------------------------------------- */

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

/* ---- the rules ------------------------------------------------------------ */

/* Whether the ledger row l was recorded under the supplier key k.key:
 * the same key, or the key with the naive mode's "/attempt-N"
 * (activities.c). Each form lets the ledger's unique index find
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

static void row_lost_order(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0), *order = idem_check_col(st, 1);
	json_t *owners = idem_check_col_array(st, 2), *wfs = json_pack("[s]", wf);
	char list[512];

	if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
		idem_check_add(c, LOST, wfs, "workflow %s completed but its input has no order_id",
		               wf);
	} else if (json_array_size(owners) == 0) {
		idem_check_add(c, LOST, wfs,
		               "workflow %s completed but its order %s was never applied", wf,
		               order);
	} else {
		join(owners, list, sizeof(list));
		json_array_extend(wfs, owners);
		idem_check_add(
		    c, LOST, wfs,
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

static void row_lost_restock(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0);

	idem_check_add(c, LOST, json_pack("[s]", wf),
	               "workflow %s completed with supplier order %s but no restock credits it", wf,
	               idem_check_col(st, 1));
}

static const char sql_lost_restock[] =
    "SELECT namespace || '/' || workflow_id, json_extract(result, '$.supplier_order_id')"
    " FROM main.workflows"
    " WHERE status = 'completed' AND type = 'inventory'"
    " AND json_extract(result, '$.restocked') = 1"
    " AND coalesce(json_extract(result, '$.supplier_order_id'), '') NOT IN"
    "   (SELECT supplier_order_id FROM app.restocks)"
    " ORDER BY id";

static void row_failed_effects(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0);
	json_t *rows = idem_check_col_array(st, 2), *more = idem_check_col_array(st, 3),
	       *ledger = idem_check_col_array(st, 4);
	char list[700];

	json_array_extend(rows, more);
	json_array_extend(rows, ledger);
	join_with(rows, "; ", list, sizeof(list));
	idem_check_add(c, FAILED_EFFECTS, json_pack("[s]", wf),
	               "workflow %s failed with effects applied: %s; its error: %s", wf, list,
	               idem_check_col(st, 1));
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

static void row_dup_order(struct idem_check *c, sqlite3_stmt *st)
{
	json_t *wfs = idem_check_col_array(st, 2);
	char list[512];

	join(wfs, list, sizeof(list));
	idem_check_add(c, DUPLICATED, wfs, "order %s applied %lld times (workflows %s)",
	               idem_check_col(st, 0), (long long)sqlite3_column_int64(st, 1), list);
}

/* The count comes from the index alone; only a duplicate's rows are read. */
static const char sql_dup_order[] =
    "SELECT d.order_id, d.n, (SELECT json_group_array(DISTINCT o.workflow_id)"
    "   FROM app.orders o WHERE o.order_id = d.order_id)"
    " FROM (SELECT order_id, count(*) AS n FROM app.orders GROUP BY order_id"
    "   HAVING count(*) > 1) d ORDER BY d.order_id";

static void row_dup_key(struct idem_check *c, sqlite3_stmt *st)
{
	const char *key = idem_check_col(st, 0);
	json_t *sos = idem_check_col_array(st, 2);
	char list[512];

	join(sos, list, sizeof(list));
	idem_check_add(c, DUPLICATED, key_workflows(key),
	               "restock key %s credited %lld times (supplier order%s %s)", key,
	               (long long)sqlite3_column_int64(st, 1), json_array_size(sos) == 1 ? "" : "s",
	               list);
	json_decref(sos);
}

static const char sql_dup_key[] =
    "SELECT d.key, d.n, (SELECT json_group_array(DISTINCT r.supplier_order_id)"
    "   FROM app.restocks r WHERE r.key = d.key)"
    " FROM (SELECT key, count(*) AS n FROM app.restocks GROUP BY key HAVING count(*) > 1) d"
    " ORDER BY d.key";

static void row_dup_credit(struct idem_check *c, sqlite3_stmt *st)
{
	json_t *keys = idem_check_col_array(st, 2), *wfs = json_array(), *k;
	char list[512], wf[1024];
	size_t i;

	json_array_foreach(keys, i, k)
	{
		key_workflow(json_string_value(k), wf, sizeof(wf));
		if (wf[0] != '\0')
			json_array_append_new(wfs, json_string(wf));
	}
	join(keys, list, sizeof(list));
	idem_check_add(c, DUPLICATED, wfs,
	               "supplier order %s credited under %lld restock keys (%s)",
	               idem_check_col(st, 0), (long long)sqlite3_column_int64(st, 1), list);
	json_decref(keys);
}

static const char sql_dup_credit[] =
    "SELECT supplier_order_id, count(DISTINCT key), json_group_array(DISTINCT key)"
    " FROM app.restocks GROUP BY supplier_order_id HAVING count(DISTINCT key) > 1"
    " ORDER BY supplier_order_id";

static void row_unexpected_order(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 1);
	long long n = sqlite3_column_int64(st, 2);
	char times[48] = "";

	if (n > 1)
		snprintf(times, sizeof(times), " (%lld times)", n);
	idem_check_add(c, UNEXPECTED, json_pack("[s]", wf),
	               "order %s was applied for workflow %s, which does not exist%s",
	               idem_check_col(st, 0), wf, times);
}

static const char sql_unexpected_order[] =
    "SELECT order_id, workflow_id, count(*) FROM app.orders"
    " WHERE workflow_id NOT IN (SELECT namespace || '/' || workflow_id FROM main.workflows)"
    " AND NOT " IDEM_CHECK_PRUNED(
        "workflow_id",
        "applied_at") " GROUP BY order_id, workflow_id ORDER BY order_id, workflow_id";

static void row_unexpected_restock(struct idem_check *c, sqlite3_stmt *st)
{
	const char *key = idem_check_col(st, 0);
	char wf[1024];

	key_workflow(key, wf, sizeof(wf));
	idem_check_add(c, UNEXPECTED, key_workflows(key),
	               "restock %s was credited for workflow %s, which does not exist", key,
	               wf[0] ? wf : "(none: the key is not namespace/workflow_id/step)");
}

/* rtrim(key, digits) is "namespace/workflow_id/" for a key
 * "namespace/workflow_id/step". */
static const char sql_unexpected_restock[] =
    "SELECT key FROM app.restocks"
    " WHERE rtrim(key, '0123456789') NOT IN"
    "   (SELECT namespace || '/' || workflow_id || '/' FROM main.workflows)"
    " AND NOT " IDEM_CHECK_PRUNED("key", "applied_at") " GROUP BY key ORDER BY key";

static void row_extra(struct idem_check *c, sqlite3_stmt *st)
{
	const char *key = idem_check_col(st, 1);

	idem_check_add(
	    c, EXTRA, key_workflows(key),
	    "supplier order SO-%lld (key %s) has no restock: %lld units of product %s ordered, "
	    "never credited",
	    (long long)sqlite3_column_int64(st, 0), key, (long long)sqlite3_column_int64(st, 3),
	    idem_check_col(st, 2));
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

static void row_missing(struct idem_check *c, sqlite3_stmt *st)
{
	const char *key = idem_check_col(st, 0), *so = idem_check_col(st, 1),
	           *product = idem_check_col(st, 2), *lkey = idem_check_col(st, 6);
	long long qty = sqlite3_column_int64(st, 3);
	json_t *wfs = key_workflows(key), *other = key_workflows(lkey);

	if (sqlite3_column_type(st, 4) == SQLITE_NULL)
		idem_check_add(
		    c, MISSING, wfs,
		    "restock %s names supplier order %s, which the supplier never recorded", key,
		    so);
	else if (strcmp(product, idem_check_col(st, 4)) != 0 || qty != sqlite3_column_int64(st, 5))
		idem_check_add(
		    c, MISSING, wfs,
		    "restock %s credited %lld units of product %s for supplier order %s, which the "
		    "supplier recorded as %lld units of product %s",
		    key, qty, product, so, (long long)sqlite3_column_int64(st, 5),
		    idem_check_col(st, 4));
	else {
		json_array_extend(wfs, other);
		idem_check_add(
		    c, MISSING, wfs,
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

static void row_stock(struct idem_check *c, sqlite3_stmt *st)
{
	long long have = sqlite3_column_int64(st, 1), want = sqlite3_column_int64(st, 2);

	idem_check_add(
	    c, STOCK, NULL,
	    "product %s has %lld, expected %lld from its orders, restocks and adjustments "
	    "(difference %+lld)",
	    idem_check_col(st, 0), have, want, have - want);
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

const struct idem_check_rule inventory_check_rules[] = {
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
    {NULL, NULL, NULL},
};

/* ---- the totals --------------------------------------------------------------- */

static void row_totals_app(struct idem_check *c, sqlite3_stmt *st)
{
	idem_check_total(c, "orders", sqlite3_column_int64(st, 0));
	idem_check_total(c, "restocks", sqlite3_column_int64(st, 1));
	idem_check_total(c, "products", sqlite3_column_int64(st, 2));
}

static void row_totals_ledger(struct idem_check *c, sqlite3_stmt *st)
{
	idem_check_total(c, "supplier_orders", sqlite3_column_int64(st, 0));
}

/* The app DB's, then the ledger's. */
const struct idem_check_rule inventory_check_totals[] = {
    {"counting orders",
     "SELECT (SELECT count(*) FROM app.orders), (SELECT count(*) FROM"
     " app.restocks), (SELECT count(*) FROM app.products)",
     row_totals_app},
    {"counting supplier orders", "SELECT count(*) FROM ledger.supplier_orders", row_totals_ledger},
    {NULL, NULL, NULL},
};
