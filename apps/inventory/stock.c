/* stock.c — the inventory app's endpoint of the control API:
 * GET /v1/stock/PRODUCT and PUT /v1/stock/PRODUCT {"stock": N,
 * "reason"?: S}, an operator's look at a product and adjustment of it
 * (an adjustments row, so that the checker's arithmetic still holds). */
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

const struct idem_app_route inventory_routes[] = {
    {"/v1/stock/PRODUCT", "GET", stock_get},
    {"/v1/stock/PRODUCT", "PUT", stock_put},
    {0},
};
