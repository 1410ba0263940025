/* app.c — the transfer app: money moves between the accounts of the app
 * DB, a guarded debit then a guarded credit per transfer, and the
 * checker proves that no money was created, lost or moved twice. The
 * second app, beside the inventory: it needs nothing of the engine but
 * shared/idem_app.h. */
#include "transfer.h"

const struct idem_app transfer_app = {
    .name = "transfer",
    .summary = "a transfer debits one account and credits another, each once; money is "
               "conserved",
    .workflows = transfer_workflows,
    .options = transfer_options,
    .activities = transfer_activities,
    .open_db = transfer_open_db,
    .routes = transfer_routes,
    .keys = transfer_keys,
    .start_flags = transfer_start_flags,
    .commands = transfer_commands,
    .check_kinds = transfer_check_kinds,
    .check_total_labels = transfer_check_total_labels,
    .check_totals = transfer_check_totals,
    .check_rules = transfer_check_rules,
    .panels = transfer_panels,
};
