/* app.c — the inventory app: the Temporal idempotence demo that idem
 * re-creates (product 123456, order A12 of 999 units, a restock of 1000
 * from the supplier, final stock 1001). */
#include "inventory.h"

static const char *const supplier_keys[] = {"SUPPLIER_DATABASE", "SUPPLIER_SOCKET", NULL};

/* The stand-in for the outside supplier API (supplier.c). */
static const struct idem_helper supplier = {.name = "supplier",
                                            .program = "idem-supplier",
                                            .keys = supplier_keys,
                                            .socket_key = "SUPPLIER_SOCKET"};

const struct idem_app inventory_app = {
    .name = "inventory",
    .summary = "orders decrement a product's stock; a stock below the reorder threshold "
               "orders a restock from the supplier",
    .workflows = inventory_workflows,
    .options = inventory_options,
    .activities = inventory_activities,
    .open_db = inventory_open_db,
    .routes = inventory_routes,
    .keys = inventory_keys,
    .start_flags = inventory_start_flags,
    .commands = inventory_commands,
    .check_kinds = inventory_check_kinds,
    .dbs = inventory_dbs,
    .check_total_labels = inventory_check_total_labels,
    .check_totals = inventory_check_totals,
    .check_rules = inventory_check_rules,
    .helper = &supplier,
    .peer_key = "SUPPLIER_SOCKET",
    .panels = inventory_panels,
};
