/* keys.c — the inventory app's configuration keys: the reorder rule and
 * the products a new app DB starts with (SEED_STOCK, parsed here). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "appdb.h"
#include "ids.h"
#include "inventory.h"

#define SEED_STOCK_MAX INT64_C(1000000000000)

static const char *trim_span(const char *p, const char **end)
{
	while (p < *end && isspace((unsigned char)*p))
		p++;
	while (*end > p && isspace((unsigned char)(*end)[-1]))
		(*end)--;
	return p;
}

static int stock_has(const struct stock_entry *entries, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(entries[i].product_id, id) == 0)
			return 1;
	return 0;
}

/* How much of an entry a message repeats. */
static int show_len(int len)
{
	return len > 80 ? 80 : len;
}

/* Parses entry number idx, the text [p, end), into *out. */
static int stock_entry_parse(int idx, const char *p, const char *end, struct stock_entry *out,
                             char *msg, size_t len)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	int n = (int)(end - p), idlen = colon ? (int)(colon - p) : 0;
	int stocklen = colon ? (int)(end - colon - 1) : 0;
	char stock[32];

	if (colon == NULL) {
		snprintf(msg, len, "entry %d \"%.*s\" is not PRODUCT:STOCK (example: 123456:1000)",
		         idx, show_len(n), p);
		return -1;
	}
	snprintf(out->product_id, sizeof(out->product_id), "%.*s", idlen, p);
	if (idlen > INVENTORY_PRODUCT_ID_MAX ||
	    !ids_name_ok(out->product_id, INVENTORY_PRODUCT_ID_MAX)) {
		snprintf(msg, len,
		         "entry %d has a bad product id \"%.*s\" (allowed: 1..%d characters of "
		         "A-Z a-z 0-9 _ . -)",
		         idx, show_len(idlen), p, INVENTORY_PRODUCT_ID_MAX);
		return -1;
	}
	snprintf(stock, sizeof(stock), "%.*s", stocklen, colon + 1);
	if (stocklen >= (int)sizeof(stock) || config_parse_int(stock, &out->stock) != 0 ||
	    out->stock < 0 || out->stock > SEED_STOCK_MAX) {
		snprintf(msg, len,
		         "entry %d \"%.*s\" has a bad stock \"%.*s\" (allowed: 0..%" PRId64 ")",
		         idx, show_len(n), p, show_len(stocklen), colon + 1, SEED_STOCK_MAX);
		return -1;
	}
	return 0;
}

int inventory_stock_parse(const char *text, struct stock_entry *entries, size_t *n, char *msg,
                          size_t len)
{
	const char *p = text, *next, *start, *end;

	*n = 0;
	if (*p == '\0')
		return 0;
	for (;; p = next + 1) {
		next = p + strcspn(p, ",");
		end = next;
		start = trim_span(p, &end);
		if (*n == INVENTORY_STOCK_ENTRIES_MAX) {
			snprintf(msg, len, "has more than %d products",
			         INVENTORY_STOCK_ENTRIES_MAX);
			return -1;
		}
		if (stock_entry_parse((int)*n + 1, start, end, &entries[*n], msg, len) < 0)
			return -1;
		if (stock_has(entries, *n, entries[*n].product_id)) {
			snprintf(msg, len, "entry %d repeats product \"%s\"", (int)*n + 1,
			         entries[*n].product_id);
			return -1;
		}
		(*n)++;
		if (*next == '\0')
			return 0;
	}
}

static int stock_check(const char *value, char *msg, size_t len)
{
	static struct stock_entry entries[INVENTORY_STOCK_ENTRIES_MAX];
	size_t n;

	return inventory_stock_parse(value, entries, &n, msg, len);
}

const struct config_app_key inventory_keys[] = {
    {"SUPPLIER_DATABASE", "run/supplier.db", "a file path", "the supplier's ledger",
     CONFIG_APP_PATH, 0, 0, NULL, 0, 0},
    {"SUPPLIER_SOCKET", "run/supplier.sock", "a Unix socket path of at most 107 bytes",
     "the supplier service's HTTP socket", CONFIG_APP_SOCKET, 0, 0, NULL, 0, 0},
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
