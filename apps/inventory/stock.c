/* stock.c — the inventory app's endpoints of the control API:
 * GET /v1/stock/PRODUCT and PUT /v1/stock/PRODUCT {"stock": N,
 * "reason"?: S}, an operator's look at a product and adjustment of it
 * (an adjustments row, so that the checker's arithmetic still holds);
 * GET /v1/stock, every product, and GET /v1/orders/latest, the last
 * orders and restocks applied: the dashboard's panels. */
#include <stdio.h>
#include <string.h>

#include "appdb.h"
#include "ids.h"
#include "inventory.h"
#include "log.h"

/* Product ids in a path: printable, no '/', bounded (ids.h's rule for
 * what travels in a path). */
static int product_ok(const char *p, char *err, size_t errlen)
{
	int ok = ids_workflow_id_ok(p, INVENTORY_PRODUCT_ID_MAX);

	if (!ok)
		snprintf(err, errlen, "bad product id \"%s\" (1..%d characters, no spaces or '/')",
		         p, INVENTORY_PRODUCT_ID_MAX);
	return ok;
}

static int stock_get(struct appconn *db, const char *product, const json_t *body, json_t **reply,
                     char *err, size_t errlen)
{
	int64_t now = 0;
	int rc;

	if (!product_ok(product, err, errlen))
		return 400;
	rc = appdb_stock_get(db, product, &now, err, errlen);
	if (rc < 0)
		return 500;
	if (rc == 0) {
		snprintf(err, errlen, "unknown product \"%s\" (set it with idemctl stock set %s N)",
		         product, product);
		return 404;
	}
	*reply = json_pack("{s:s, s:I}", "product_id", product, "stock", (json_int_t)now);
	return 200;
}

static int stock_put(struct appconn *db, const char *product, const json_t *body, json_t **reply,
                     char *err, size_t errlen)
{
	const char *reason = "operator";
	json_int_t stock = 0;
	int64_t old = 0;
	json_error_t jerr;
	char why[300];

	if (!product_ok(product, err, errlen))
		return 400;
	if (json_unpack_ex((json_t *)body, &jerr, JSON_STRICT, "{s:I, s?s}", "stock", &stock,
	                   "reason", &reason) != 0 ||
	    stock < 0) {
		snprintf(err, errlen,
		         "bad stock request: %s (expected {\"stock\": integer >= 0, "
		         "\"reason\"?: string})",
		         stock < 0 ? "stock is negative" : jerr.text);
		return 400;
	}
	snprintf(why, sizeof(why), "operator: %s", reason);
	if (appdb_stock_set(db, product, stock, why, &old, err, errlen) != 0)
		return 500;
	log_info("stock set by an operator", "product=%s old=%lld new=%lld", product,
	         (long long)old, (long long)stock);
	*reply = json_pack("{s:s, s:I, s:I}", "product_id", product, "old_stock", (json_int_t)old,
	                   "stock", stock);
	return 200;
}

#define LIST_MAX 1000 /* products listed */
#define LATEST 20     /* orders and restocks shown */

static int stock_list(struct appconn *db, const char *unused, const json_t *body, json_t **reply,
                      char *err, size_t errlen)
{
	static const struct appconn_column cols[] = {
	    {"product_id", 's'}, {"stock", 'I'}, {"initial_stock", 'I'}, {0}};

	*reply = appconn_rows_json(db, "app DB: list products", err, errlen,
	                           "SELECT product_id, stock, initial_stock FROM products "
	                           "ORDER BY product_id LIMIT ?1",
	                           LIST_MAX, cols);
	return *reply != NULL ? 200 : 500;
}

/* The last LATEST orders and restocks, newest first, as one list (a
 * restock applied in the same millisecond as its order comes first: it
 * came after it). */
static int orders_latest(struct appconn *db, const char *unused, const json_t *body, json_t **reply,
                         char *err, size_t errlen)
{
	static const struct appconn_column cols[] = {{"kind", 's'},
	                                             {"key", 's'},
	                                             {"product_id", 's'},
	                                             {"quantity", 'I'},
	                                             {"stock_after", 'I'},
	                                             {"applied_at", 'I'},
	                                             {0}};

	*reply = appconn_rows_json(
	    db, "app DB: latest orders", err, errlen,
	    "SELECT kind, ref, product_id, quantity, stock_after, applied_at FROM ("
	    " SELECT * FROM (SELECT 'order' AS kind, order_id AS ref, product_id, quantity,"
	    "  stock_after, applied_at, id FROM orders ORDER BY id DESC LIMIT ?1) AS o"
	    " UNION ALL"
	    " SELECT * FROM (SELECT 'restock' AS kind, key AS ref, product_id, quantity,"
	    "  stock_after, applied_at, id FROM restocks ORDER BY id DESC LIMIT ?1) AS r"
	    ") AS latest ORDER BY applied_at DESC, kind DESC, id DESC LIMIT ?1",
	    LATEST, cols);
	return *reply != NULL ? 200 : 500;
}

const struct idem_app_panel inventory_panels[] = {
    {.title = "Stock",
     .path = "/v1/stock",
     .about = "every product's stock now, and what it started with"},
    {.title = "Latest orders and restocks",
     .path = "/v1/orders/latest",
     .about = "the last effects applied to the app DB, newest first"},
    {0},
};

const struct idem_app_route inventory_routes[] = {
    {"/v1/stock", "GET", stock_list},
    {"/v1/orders/latest", "GET", orders_latest},
    {"/v1/stock/PRODUCT", "GET", stock_get},
    {"/v1/stock/PRODUCT", "PUT", stock_put},
    {0},
};
