/* ctl.c — the inventory app's side of idemctl: the flags of `idemctl
 * start` (--order-id ID --product-id ID --quantity N fill the workflow's
 * input) and the `stock` command, which reads and sets a product's stock
 * through the app's endpoints (stock.c): stock get PRODUCT and stock set
 * PRODUCT N [--reason TEXT]. Messages and exit codes are idemctl's
 * (shared/exitcodes.h): 2 a usage error, 1 the supervisor refused. */
#include <stdio.h>
#include <string.h>

#include "exitcodes.h"
#include "inventory.h"
#include "inventory_input.h"

#define STOCK_PATH_MAX 1024
#define STOCK_MAX 1000000000000LL /* what stock set accepts */
#define STOCK_ARGS_MAX 3          /* "set PRODUCT N" */

const struct idem_start_flag inventory_start_flags[] = {
    {"--order-id", "order_id", "ID", 0, 0, 0, 1},
    {"--product-id", "product_id", "ID", 0, 0, 0, 1},
    {"--quantity", "quantity", "N", 1, 1, INVENTORY_QUANTITY_MAX, 1},
    {0},
};

static const char *str_field(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : def;
}

static long long int_field(const json_t *o, const char *key, long long def)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

/* "/v1/stock/PRODUCT", the product percent-encoded. */
static void stock_path(const struct idem_ctl *c, const char *product, char *buf, size_t len)
{
	char esc[STOCK_PATH_MAX / 2];

	c->escape(product, esc, sizeof(esc));
	snprintf(buf, len, "/v1/stock/%s", esc);
}

static int stock_get(const struct idem_ctl *c, const char *product)
{
	char path[STOCK_PATH_MAX];
	json_t *doc = NULL;
	int rc, status = 0;

	stock_path(c, product, path, sizeof(path));
	rc = c->request(c, "GET", path, NULL, &status, &doc);
	if (rc == 0 && status >= 300)
		rc = c->refused(c, status, doc);
	else if (rc == 0 && c->json)
		c->print_json(doc);
	else if (rc == 0)
		printf("%s: %lld\n", str_field(doc, "product_id", product),
		       int_field(doc, "stock", 0));
	json_decref(doc);
	return rc;
}

static int stock_set(const struct idem_ctl *c, const char *product, const char *n,
                     const char *reason)
{
	char path[STOCK_PATH_MAX];
	json_t *body, *doc = NULL;
	long long stock = 0;
	int rc, status = 0;

	if ((rc = c->parse_number("stock set", "N", n, 0, STOCK_MAX, &stock)) != 0)
		return rc;
	stock_path(c, product, path, sizeof(path));
	body = json_pack("{s:I}", "stock", (json_int_t)stock);
	if (reason != NULL)
		json_object_set_new(body, "reason", json_string(reason));
	rc = c->request(c, "PUT", path, body, &status, &doc);
	json_decref(body);
	if (rc == 0 && status >= 300)
		rc = c->refused(c, status, doc);
	else if (rc == 0 && c->json)
		c->print_json(doc);
	else if (rc == 0)
		printf("%s: %lld -> %lld (%s)\n", str_field(doc, "product_id", product),
		       int_field(doc, "old_stock", 0), int_field(doc, "stock", stock),
		       reason ? reason : "operator");
	json_decref(doc);
	return rc;
}

/* stock's arguments, read as idemctl reads a command's: "--reason TEXT"
 * or "--reason=TEXT" anywhere, and up to three words. Returns 0 or 2. */
static int stock_args(const struct idem_ctl *c, int argc, char **argv, const char **reason,
                      const char **pos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);

		if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
			if (*npos == STOCK_ARGS_MAX)
				return c->fail(IDEM_EXIT_USAGE, "stock: unexpected argument \"%s\"",
				               arg);
			pos[(*npos)++] = arg;
		} else if (nlen != strlen("--reason") || strncmp(arg, "--reason", nlen) != 0) {
			return c->fail(IDEM_EXIT_USAGE,
			               "stock: unknown option \"%.*s\" (see --help)", (int)nlen,
			               arg);
		} else if (eq != NULL) {
			*reason = eq + 1;
		} else if (i + 1 < argc) {
			*reason = argv[++i];
		} else {
			return c->fail(IDEM_EXIT_USAGE, "stock: --reason needs a value");
		}
	}
	return 0;
}

static int stock_run(const struct idem_ctl *c, int argc, char **argv)
{
	const char *reason = NULL, *pos[STOCK_ARGS_MAX];
	int npos, rc;

	if ((rc = stock_args(c, argc, argv, &reason, pos, &npos)) != 0)
		return rc;
	if (npos > 0 && strcmp(pos[0], "get") == 0 && npos == 2 && reason == NULL)
		return stock_get(c, pos[1]);
	if (npos > 0 && strcmp(pos[0], "set") == 0 && npos == 3)
		return stock_set(c, pos[1], pos[2], reason);
	if (npos > 0 && strcmp(pos[0], "get") == 0)
		return c->fail(IDEM_EXIT_USAGE, "stock get: give one PRODUCT (stock get PRODUCT)");
	if (npos > 0 && strcmp(pos[0], "set") == 0)
		return c->fail(IDEM_EXIT_USAGE,
		               "stock set: give PRODUCT and N (stock set PRODUCT N "
		               "[--reason TEXT])");
	if (npos > 0)
		return c->fail(IDEM_EXIT_USAGE,
		               "stock: unknown subcommand \"%s\" (use: stock get "
		               "PRODUCT, stock set PRODUCT N [--reason TEXT])",
		               pos[0]);
	return c->fail(IDEM_EXIT_USAGE, "stock: a subcommand (stock get PRODUCT, stock set "
	                                "PRODUCT N) is required (see idemctl --help)");
}

const struct idem_app_command inventory_commands[] = {
    {"stock",
     "  stock get PRODUCT\n"
     "  stock set PRODUCT N [--reason TEXT]\n"
     "                   read or set a product's stock in the app DB\n",
     stock_run},
    {0},
};
