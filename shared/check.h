/* check.h — the checker: the proof that nothing was lost and nothing was
 * applied twice. It reads the state DB, the app DB and the supplier's
 * ledger (one read-only connection, the other two ATTACHed) and verifies:
 *
 *   stuck        no workflow is in a state no program moves it out of, or
 *                failed without a reason: a status other than running,
 *                completed or failed, or 'failed' with no error. A running
 *                workflow is not stuck, even with no supervisor (the next
 *                one resumes it): it is listed as running (see below)
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
 *   unexpected   every orders row belongs to a workflow that exists
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
 *   integrity    PRAGMA integrity_check is "ok" on each database
 *
 * Workflows still running are no violation, but while any runs the check
 * is not final: the report says "quiescent": false and "ok" is false.
 * What it found is real even then (what a running workflow may still
 * finish is left out). Nothing here logs or exits. */
#ifndef IDEM_CHECK_H
#define IDEM_CHECK_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define CHECK_MAX_LISTED 100 /* violations listed per kind; counts stay exact */

/* Returns a NEW report:
 *   {"ok": bool,          no violation and no workflow running
 *    "quiescent": bool,   no workflow running
 *    "counts": {"stuck": N, "lost": N, "failed_with_effects": N,
 *               "duplicated": N, "unexpected": N,
 *               "extra_supplier_orders": N, "missing_supplier_orders": N,
 *               "stock_mismatch": N, "integrity": N},
 *    "violations": [{"kind": "duplicated", "message": "order A12 applied 2
 *                    times", "workflows": ["default/A12"]}, ...],
 *    "running_workflows": ["default/C3", ...],   the first CHECK_MAX_LISTED
 *    "totals": {"workflows": {"running": N, "completed": N, "failed": N},
 *               "orders": N, "restocks": N, "supplier_orders": N,
 *               "products": N}}
 * or NULL with err when a database cannot be opened or read (a missing
 * file is an error naming it). */
json_t *check_run(const char *state_db, const char *app_db, const char *supplier_db, char *err,
                  size_t errlen);

/* Writes the report for a person: one line per violation with the
 * workflows involved, one per running workflow, then a verdict line: OK,
 * FAILED, or NOT QUIESCENT (no violation, but workflows still running). */
void check_print(const json_t *report, FILE *out);

#endif
