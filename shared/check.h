/* check.h — the checker: the proof that nothing was lost and nothing was
 * applied twice. It reads the state DB, the app DB and the supplier's
 * ledger (one read-only connection, the other two ATTACHed) and verifies:
 *
 *   stuck        every started workflow is completed or failed (with a reason)
 *   lost         every completed inventory workflow's order has an orders row
 *   duplicated   each order id applied once; each restock key credited once
 *   unexpected   every orders row belongs to a workflow that exists
 *   extra_supplier_orders    every supplier order has exactly one restock
 *   missing_supplier_orders  every restock's supplier order is in the ledger,
 *                            with the same product and quantity
 *   stock_mismatch  for each product: stock = initial_stock + adjustments
 *                   - quantities of distinct orders + quantities of distinct restocks
 *   integrity    PRAGMA integrity_check is "ok" on each database
 *
 * Nothing here logs or exits. */
#ifndef IDEM_CHECK_H
#define IDEM_CHECK_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define CHECK_MAX_LISTED 100 /* violations listed per kind; counts stay exact */

/* Returns a NEW report:
 *   {"ok": bool,
 *    "counts": {"stuck": N, "lost": N, "duplicated": N, "unexpected": N,
 *               "extra_supplier_orders": N, "missing_supplier_orders": N,
 *               "stock_mismatch": N, "integrity": N},
 *    "violations": [{"kind": "duplicated", "message": "order A12 applied 2
 *                    times", "workflows": ["default/A12"]}, ...],
 *    "totals": {"workflows": {"running": N, "completed": N, "failed": N},
 *               "orders": N, "restocks": N, "supplier_orders": N,
 *               "products": N}}
 * or NULL with err when a database cannot be opened or read (a missing
 * file is an error naming it). */
json_t *check_run(const char *state_db, const char *app_db, const char *supplier_db, char *err,
                  size_t errlen);

/* Writes the report for a person: one line per violation with the
 * workflows involved, then a verdict line. */
void check_print(const json_t *report, FILE *out);

#endif
