/* db.c — the inventory app's database (appdb.h): schema, seeding on creation, and
 * the operator's stock reads and adjustments. Times are wall-clock ms. */
#include "appdb.h"
#include "inventory.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"

/* Migration 1, in each dialect. */
static const char *const schema_sqlite[] = {
    "CREATE TABLE products(product_id TEXT PRIMARY KEY, stock INTEGER NOT NULL,"
    " initial_stock INTEGER NOT NULL);"
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, order_id TEXT NOT NULL,"
    " product_id TEXT NOT NULL, quantity INTEGER NOT NULL, stock_after INTEGER NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at INTEGER NOT NULL);"
    "CREATE INDEX orders_order_id ON orders(order_id);"
    "CREATE TABLE restocks(id INTEGER PRIMARY KEY, key TEXT NOT NULL,"
    " product_id TEXT NOT NULL, quantity INTEGER NOT NULL, supplier_order_id TEXT NOT NULL,"
    " stock_after INTEGER NOT NULL, applied_at INTEGER NOT NULL);"
    "CREATE INDEX restocks_key ON restocks(key);"
    "CREATE TABLE adjustments(id INTEGER PRIMARY KEY, product_id TEXT NOT NULL,"
    " old_stock INTEGER NOT NULL, new_stock INTEGER NOT NULL, reason TEXT NOT NULL,"
    " at INTEGER NOT NULL);",
};

static const char *const schema_pg[] = {
    "CREATE TABLE products(product_id TEXT PRIMARY KEY, stock BIGINT NOT NULL,"
    " initial_stock BIGINT NOT NULL);"
    "CREATE TABLE orders(id BIGSERIAL PRIMARY KEY, order_id TEXT NOT NULL,"
    " product_id TEXT NOT NULL, quantity BIGINT NOT NULL, stock_after BIGINT NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at BIGINT NOT NULL);"
    "CREATE INDEX orders_order_id ON orders(order_id);"
    "CREATE TABLE restocks(id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL,"
    " product_id TEXT NOT NULL, quantity BIGINT NOT NULL, supplier_order_id TEXT NOT NULL,"
    " stock_after BIGINT NOT NULL, applied_at BIGINT NOT NULL);"
    "CREATE INDEX restocks_key ON restocks(key);"
    "CREATE TABLE adjustments(id BIGSERIAL PRIMARY KEY, product_id TEXT NOT NULL,"
    " old_stock BIGINT NOT NULL, new_stock BIGINT NOT NULL, reason TEXT NOT NULL,"
    " at BIGINT NOT NULL);",
};

static const struct appconn_schema inventory_schema = {
    "inventory", schema_sqlite, 1, schema_pg, 1,
};

struct seed {
	const struct name_value *v;
	size_t n;
};

/* The products of SEED_STOCK, in the transaction that creates the
 * schema; a product listed twice takes its last stock. */
static int fill_stock(struct appconn *c, const void *arg, char *err, size_t errlen)
{
	const struct seed *seed = arg;

	for (size_t i = 0; i < seed->n; i++)
		if (appconn_exec(
		        c, "seeding the stock", err, errlen,
		        "INSERT INTO products(product_id, stock, initial_stock)"
		        " VALUES(?1, ?2, ?2) ON CONFLICT(product_id) DO UPDATE"
		        " SET stock = excluded.stock, initial_stock = excluded.initial_stock",
		        "sI", seed->v[i].name, (int64_t)seed->v[i].value) < 0)
			return -1;
	return 0;
}

int appdb_open(const char *where, enum db_sync sync, const struct name_value *entries,
               size_t nentries, struct appconn **out, char *err, size_t errlen)
{
	struct seed seed = {entries, entries != NULL ? nentries : 0};

	return appconn_open(where, sync, &inventory_schema, fill_stock, &seed, out, err, errlen);
}

int appdb_stock_get(struct appconn *db, const char *product_id, int64_t *stock, char *err,
                    size_t errlen)
{
	struct appconn_row row;
	int rc = appconn_query(db, &row, "reading the stock", err, errlen,
	                       "SELECT stock FROM products WHERE product_id = ?1", "s", product_id);

	if (rc == 1) {
		*stock = appconn_int(&row, 0);
		appconn_row_done(&row);
	}
	return rc;
}

int appdb_stock_set(struct appconn *db, const char *product_id, int64_t stock, const char *reason,
                    int64_t *old, char *err, size_t errlen)
{
	int64_t prev = 0;
	int found;

	if (product_id == NULL || *product_id == '\0') {
		snprintf(err, errlen, "stock set: the product id is empty");
		return -1;
	}
	if (appconn_begin(db, err, errlen) != 0)
		return -1;
	found = appdb_stock_get(db, product_id, &prev, err, errlen);
	if (found < 0)
		goto fail;
	if (found == 0)
		prev = 0;
	if (appconn_exec(db, "setting the stock", err, errlen,
	                 found ? "UPDATE products SET stock = ?2 WHERE product_id = ?1"
	                       : "INSERT INTO products(product_id, stock, initial_stock)"
	                         " VALUES(?1, ?2, 0)",
	                 "sI", product_id, stock) < 0 ||
	    appconn_exec(db, "recording the adjustment", err, errlen,
	                 "INSERT INTO adjustments(product_id, old_stock, new_stock, reason, at)"
	                 " VALUES(?1, ?2, ?3, ?4, ?5)",
	                 "sIIsI", product_id, prev, stock, reason != NULL ? reason : "manual",
	                 clock_wall_ms()) < 0 ||
	    appconn_commit(db, err, errlen) != 0)
		goto fail;
	if (old != NULL)
		*old = prev;
	return 0;
fail:
	appconn_rollback(db);
	return -1;
}

int inventory_open_db(const char *where, enum db_sync sync, const struct idem_config *fill_cfg,
                      struct appconn **out, char *err, size_t errlen)
{
	static struct name_value entries[INVENTORY_STOCK_ENTRIES_MAX];
	size_t n = 0;
	char msg[512];

	if (fill_cfg != NULL && inventory_stock_parse(config_text(fill_cfg, "SEED_STOCK"), entries,
	                                              &n, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "SEED_STOCK %s", msg);
		return -1;
	}
	return appdb_open(where, sync, entries, n, out, err, errlen);
}
