/* keys.c — the inventory app's configuration keys: the reorder rule and
 * the products a new app DB starts with (SEED_STOCK, parsed here). */
#include <stdint.h>

#include "appdb.h"
#include "inventory.h"

_Static_assert(INVENTORY_PRODUCT_ID_MAX <= NAMELIST_NAME_MAX, "a product id fits a name_value");

static const struct namelist_spec seed_stock = {
    .shape = "PRODUCT:STOCK",
    .example = "123456:1000",
    .name_word = "product id",
    .value_word = "stock",
    .item = "product",
    .items = "products",
    .name_max = INVENTORY_PRODUCT_ID_MAX,
    .value_max = INT64_C(1000000000000),
    .max = INVENTORY_STOCK_ENTRIES_MAX,
};

int inventory_stock_parse(const char *text, struct name_value *entries, size_t *n, char *msg,
                          size_t len)
{
	return namelist_parse(text, &seed_stock, entries, n, msg, len);
}

static int stock_check(const char *value, char *msg, size_t len)
{
	static struct name_value entries[INVENTORY_STOCK_ENTRIES_MAX];
	size_t n;

	return inventory_stock_parse(value, entries, &n, msg, len);
}

const struct config_app_key inventory_keys[] = {
    {"SUPPLIER_DATABASE", "run/supplier.db", "a file path", "the supplier's ledger",
     CONFIG_APP_PATH, 0, 0, NULL, 0, 0},
    {"SUPPLIER_SOCKET", "run/supplier.sock",
     "a Unix socket path of at most 107 bytes, or http://HOST:PORT",
     "the supplier service's HTTP socket (http://HOST:PORT: a supplier on another host, "
     "which the supervisor does not start)",
     CONFIG_APP_SOCKET, 0, 0, NULL, 0, 0},
    {"REORDER_THRESHOLD", "2", "0..1000000000",
     "order from the supplier when stock falls below this", CONFIG_APP_INT, 0, 1000000000, NULL, 0,
     0},
    {"REORDER_QUANTITY", "1000", "1..1000000000", "units ordered from the supplier", CONFIG_APP_INT,
     1, 1000000000, NULL, 0, 0},
    {"SEED_STOCK", "123456:1000", "PRODUCT:STOCK,... (stock 0..1000000000000, \"\" = none)",
     "products created with this stock when the app database is new", CONFIG_APP_TEXT, 0, 0,
     stock_check, 1, 1},
    {0},
};
