/* inventory.h — the inventory app's parts, joined in app.c.
 *
 * Its activities, run by a worker against the app DB one attempt at a
 * time (activities.c):
 *
 *   update_inventory {"order_id":S,"product_id":S,"quantity":N}
 *     -> {"order_id","product_id","quantity","stock","replayed"}
 *     Decrements stock once per order_id: the lookup, the decrement and
 *     the orders row are one transaction.
 *   supplier_order {"product_id":S,"quantity":N,"key":"ns/workflow/step"}
 *     -> {"product_id","quantity","supplier_order_id","stock","replayed",
 *         "source"}
 *     Orders from the supplier with Idempotency-Key: key, checkpoints the
 *     supplier order id with a heartbeat, then credits stock once per key
 *     (guarded by a restocks row in one transaction). "source" says where
 *     the supplier order id came from: "supplier" (this attempt called
 *     it), "heartbeat" (an earlier attempt's checkpoint, t->heartbeat: the
 *     supplier was not called) or "restocks" (the credit was already
 *     applied: a replay, nothing was called or written).
 *
 * Both check their input with inventory_input_check (shared/
 * inventory_input.h), the check the workflow's start runs: an input it
 * refuses (InvalidInput, naming the field and its range) is one a start
 * could not have produced.
 *
 * Faults (shared/fault.h): the activities offer each crash point to
 * env->hooks, which worker/main.c uses to carry out a "kill" plan (and a
 * test to simulate a crash); a "supplier" plan reaches the supplier as
 * env->peer_fault. The other kinds (error, delay) and the mid_reply
 * point are worker/main.c's business.
 *
 * In naive mode both run without their guards (and the supplier call
 * without a stable key, and without the heartbeat checkpoint), so a retry
 * after a commit applies twice: the control experiment the checker must
 * catch. */
#ifndef IDEM_INVENTORY_H
#define IDEM_INVENTORY_H

#include "idem_app.h"

extern const struct idem_workflow inventory_workflows[];
extern const struct idem_activity_options inventory_options[];
extern const struct idem_activity inventory_activities[];
extern const struct idem_app_route inventory_routes[];
extern const struct idem_app_panel inventory_panels[];
extern const struct config_app_key inventory_keys[];
/* idemctl's: start's flags and the stock command (ctl.c). */
extern const struct idem_start_flag inventory_start_flags[];
extern const struct idem_app_command inventory_commands[];

/* open_db() of the app: appdb_open() with the products of SEED_STOCK. */
int inventory_open_db(const char *where, enum db_sync sync, const struct idem_config *fill_cfg,
                      struct appconn **out, char *err, size_t errlen);

/* The checker's rules (check.c): the kinds, the supplier's ledger, the
 * totals and the rules. */
extern const char *const inventory_check_kinds[];
extern const struct idem_app_db inventory_dbs[];
extern const struct idem_check_total_label inventory_check_total_labels[];
extern const struct idem_check_rule inventory_check_totals[];
extern const struct idem_check_rule inventory_check_rules[];

/* How long supplier_order waits for the supplier's answer. */
#define INVENTORY_SUPPLIER_TIMEOUT_MS 5000

#endif
