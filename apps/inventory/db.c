/* db.c — the inventory app's database (appdb.h): schema, seeding on creation, and
 * the operator's stock reads and adjustments. Times are wall-clock ms. */
#include "appdb.h"
#include "inventory.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"

/* Migration 1. Seed inserts are appended to it so that they happen in the
 * same transaction that creates the schema, and only then. */
static const char appdb_schema_v1[] =
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
    " at INTEGER NOT NULL);";

/* Returns migration 1 plus the initial products' inserts (sqlite3_malloc'd, the caller
 * sqlite3_free()s it), or NULL when out of memory. A product listed twice
 * takes its last stock. */
static char *schema_with_stock(const struct name_value *entries, size_t nentries)
{
	sqlite3_str *s = sqlite3_str_new(NULL);

	sqlite3_str_appendall(s, appdb_schema_v1);
	for (size_t i = 0; entries != NULL && i < nentries; i++) {
		sqlite3_str_appendf(s,
		                    "INSERT INTO products(product_id, stock, initial_stock)"
		                    " VALUES(%Q, %lld, %lld) ON CONFLICT(product_id) DO UPDATE"
		                    " SET stock = excluded.stock,"
		                    " initial_stock = excluded.initial_stock;",
		                    entries[i].name, (long long)entries[i].value,
		                    (long long)entries[i].value);
	}
	return sqlite3_str_finish(s);
}

int appdb_open(const char *path, enum db_sync sync, const struct name_value *entries,
               size_t nentries, sqlite3 **out, char *err, size_t errlen)
{
	char *v1 = schema_with_stock(entries, nentries);
	int rc;

	*out = NULL;
	if (v1 == NULL) {
		snprintf(err, errlen, "app database %s: out of memory building the schema", path);
		return -1;
	}
	rc = db_open_migrated(path, sync, (const char *const[]){v1}, 1, out, err, errlen);
	sqlite3_free(v1);
	return rc;
}

int appdb_stock_get(sqlite3 *db, const char *product_id, int64_t *stock, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (db_stmt(db, "SELECT stock FROM products WHERE product_id = ?", &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, product_id, -1, SQLITE_STATIC);
	rc = db_step_row(db, st, "reading the stock", err, errlen);
	if (rc == 1)
		*stock = sqlite3_column_int64(st, 0);
	db_stmt_done(st);
	return rc;
}

/* Runs one bound statement to completion. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
	if (sqlite3_step(st) == SQLITE_DONE)
		return 0;
	return db_fail(db, what, err, errlen);
}

static int upsert_product(sqlite3 *db, const char *product_id, int64_t stock, int exists, char *err,
                          size_t errlen)
{
	static const char insert_sql[] =
	    "INSERT INTO products(product_id, stock, initial_stock) VALUES(?1, ?2, 0)";
	static const char update_sql[] = "UPDATE products SET stock = ?2 WHERE product_id = ?1";
	sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(db, exists ? update_sql : insert_sql, &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, product_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, stock);
	rc = step_done(db, st, "setting the stock", err, errlen);
	sqlite3_finalize(st);
	return rc;
}

static int insert_adjustment(sqlite3 *db, const char *product_id, int64_t old, int64_t stock,
                             const char *reason, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(db,
	               "INSERT INTO adjustments(product_id, old_stock, new_stock, reason, at)"
	               " VALUES(?, ?, ?, ?, ?)",
	               &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, product_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, old);
	sqlite3_bind_int64(st, 3, stock);
	sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, clock_wall_ms());
	rc = step_done(db, st, "recording the adjustment", err, errlen);
	sqlite3_finalize(st);
	return rc;
}

int appdb_stock_set(sqlite3 *db, const char *product_id, int64_t stock, const char *reason,
                    int64_t *old, char *err, size_t errlen)
{
	int64_t prev = 0;
	int found;

	if (product_id == NULL || *product_id == '\0') {
		snprintf(err, errlen, "stock set: the product id is empty");
		return -1;
	}
	if (db_exec(db, "BEGIN IMMEDIATE", err, errlen) != 0)
		return -1;
	found = appdb_stock_get(db, product_id, &prev, err, errlen);
	if (found < 0)
		goto fail;
	if (found == 0)
		prev = 0;
	if (upsert_product(db, product_id, stock, found, err, errlen) != 0 ||
	    insert_adjustment(db, product_id, prev, stock, reason != NULL ? reason : "manual", err,
	                      errlen) != 0 ||
	    db_exec(db, "COMMIT", err, errlen) != 0)
		goto fail;
	if (old != NULL)
		*old = prev;
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int inventory_open_db(const char *path, enum db_sync sync, const struct idem_config *fill_cfg,
                      sqlite3 **out, char *err, size_t errlen)
{
	static struct name_value entries[INVENTORY_STOCK_ENTRIES_MAX];
	size_t n = 0;
	char msg[512];

	if (fill_cfg != NULL && inventory_stock_parse(config_text(fill_cfg, "SEED_STOCK"), entries,
	                                              &n, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "SEED_STOCK %s", msg);
		return -1;
	}
	return appdb_open(path, sync, entries, n, out, err, errlen);
}
