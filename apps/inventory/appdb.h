/* appdb.h — the inventory app's database (DATABASE, SQLite or
 * PostgreSQL: appconn.h): what its activities change. Opened by the workers (activities), the
 * supervisor (seeding and the operator's stock endpoint, stock.c) and the checker.
 *
 * Schema (version 1; BIGINT and BIGSERIAL on PostgreSQL):
 *   products(product_id TEXT PRIMARY KEY, stock INTEGER NOT NULL,
 *            initial_stock INTEGER NOT NULL)
 *   orders(id INTEGER PRIMARY KEY, order_id TEXT NOT NULL,
 *          product_id TEXT NOT NULL, quantity INTEGER NOT NULL,
 *          stock_after INTEGER NOT NULL, workflow_id TEXT NOT NULL, -- "ns/id"
 *          applied_at INTEGER NOT NULL)            -- index on order_id
 *   restocks(id INTEGER PRIMARY KEY, key TEXT NOT NULL,
 *            product_id TEXT NOT NULL, quantity INTEGER NOT NULL,
 *            supplier_order_id TEXT NOT NULL, stock_after INTEGER NOT NULL,
 *            applied_at INTEGER NOT NULL)            -- index on key
 *   adjustments(id INTEGER PRIMARY KEY, product_id TEXT NOT NULL,
 *               old_stock INTEGER NOT NULL, new_stock INTEGER NOT NULL,
 *               reason TEXT NOT NULL, at INTEGER NOT NULL)
 *
 * orders and restocks are logs of effects: ONE ROW PER APPLICATION. The
 * guarded activities look the key up inside the same transaction and add
 * at most one row per key; naive mode adds one per attempt, and the
 * checker counts rows per key to find duplicates. So there is no UNIQUE
 * constraint on order_id or key: it would hide exactly what the checker
 * must see. Invariant for every product:
 *   stock = initial_stock + sum(new - old of adjustments)
 *           - sum(orders.quantity) + sum(restocks.quantity)
 */
#ifndef IDEM_APPDB_H
#define IDEM_APPDB_H

#include <stddef.h>
#include <stdint.h>

#include "appconn.h"
#include "config.h"
#include "inventory_input.h"
#include "namelist.h"

#define INVENTORY_STOCK_ENTRIES_MAX 1024 /* products SEED_STOCK may list */

/* Parses SEED_STOCK ("PRODUCT:STOCK,...", "" = none; namelist.h) into
 * entries[0..INVENTORY_STOCK_ENTRIES_MAX), each a product id and its stock,
 * *n the count. Returns 0, or -1 with msg naming the entry and what is
 * wrong. */
int inventory_stock_parse(const char *text, struct name_value *entries, size_t *n, char *msg,
                          size_t len);

/* Opens and migrates the app DB. When the schema is created by this call,
 * the products of entries[0..nentries) are inserted in the same transaction
 * (SEED_STOCK applies on first creation only). entries may be NULL. */
int appdb_open(const char *where, enum db_sync sync, const struct name_value *entries,
               size_t nentries, struct appconn **out, char *err, size_t errlen);

/* Returns 1 with *stock when the product exists, 0 when it does not,
 * -1 on error (err set). */
int appdb_stock_get(struct appconn *db, const char *product_id, int64_t *stock, char *err,
                    size_t errlen);

/* An operator's adjustment outside workflows: sets the stock (creating the
 * product with initial_stock 0 when missing) and records an adjustments
 * row with reason, in one transaction. *old (may be NULL) receives the
 * previous stock, or 0 for a new product. Returns 0, or -1 with err. */
int appdb_stock_set(struct appconn *db, const char *product_id, int64_t stock, const char *reason,
                    int64_t *old, char *err, size_t errlen);

#endif
