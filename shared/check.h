/* check.h — the checker: the proof that nothing was lost and nothing was
 * applied twice. It reads the state DB, the app DB and the databases the
 * app names (one read-only connection, the others ATTACHed) in one
 * snapshot, and verifies what holds for every app, here:
 *
 *   stuck        no workflow is in a state no program moves it out of, or
 *                failed without a reason: a status other than running,
 *                completed or failed, or 'failed' with no error. A running
 *                workflow is not stuck, even with no supervisor (the next
 *                one resumes it): it is listed as running (see below)
 *   history      the history of each closed workflow adds up: no step
 *                completed twice, each completed step of a completed
 *                workflow completed once, every attempt that started
 *                ended (completed, failed, lost, timed out, or lost with
 *                the supervisor that ran it)
 *   nondeterminism  no workflow failed because its code no longer
 *                matches its recorded history
 *   integrity    PRAGMA integrity_check is "ok" on each database
 *
 * and the app's own rules (struct idem_app's check, through the API of
 * idem_app.h's "the checker's rules"), counted under the app's kinds
 * between those two. The inventory app's (apps/inventory/check.c) are
 * lost, failed_with_effects, duplicated, unexpected,
 * extra_supplier_orders, missing_supplier_orders and stock_mismatch.
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

#include "config.h"
#include "idem_app.h"

#define CHECK_MAX_LISTED 100 /* violations listed per kind; counts stay exact */

/* Checks app's databases: the state DB, the app DB and each of app->dbs
 * at its path in cfg. Returns a NEW report (the inventory app's kinds
 * and totals shown):
 *   {"ok": bool,          no violation and no workflow running
 *    "quiescent": bool,   no workflow running
 *    "counts": {"stuck": N, "history": N, "nondeterminism": N,
 *               "lost": N, "failed_with_effects": N,
 *               "duplicated": N, "unexpected": N,
 *               "extra_supplier_orders": N, "missing_supplier_orders": N,
 *               "stock_mismatch": N, "integrity": N},
 *    "violations": [{"kind": "duplicated", "message": "order A12 applied 2
 *                    times", "workflows": ["default/A12"]}, ...],
 *    "running_workflows": ["default/C3", ...],   the first CHECK_MAX_LISTED
 *    "totals": {"workflows": {"running": N, "completed": N, "failed": N},
 *               "orders": N, "restocks": N, "products": N,
 *               "supplier_orders": N},
 *    "app": "inventory"}                          whose rules ran
 * counts: the engine's kinds, the app's check_kinds in order, "integrity"; totals:
 * "workflows", then the app's in the order its check sets them. Or NULL
 * with err when a database cannot be opened or read (a missing file is
 * an error naming it). */
json_t *check_run(const struct idem_app *app, const char *state_db, const char *app_db,
                  const struct idem_config *cfg, char *err, size_t errlen);

/* Writes the report for a person: one line per violation with the
 * workflows involved, one per running workflow, then a verdict line: OK,
 * FAILED, or NOT QUIESCENT (no violation, but workflows still running).
 * The totals are worded as app's check_totals say; app NULL (a report
 * of an app this program does not know): by their keys. */
void check_print(const struct idem_app *app, const json_t *report, FILE *out);

#endif
