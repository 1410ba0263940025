/* cmd_stock.c — stock get and stock set: a product's stock in the app DB,
 * through the supervisor; see cmd.h. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "http.h"

static int stock_get(struct ctl *c, const char *product)
{
	char path[CTL_PATH_MAX], esc[CTL_PATH_MAX / 2];
	json_t *doc = NULL;
	int rc;

	http_escape(product, esc, sizeof(esc));
	snprintf(path, sizeof(path), "/v1/stock/%s", esc);
	if ((rc = http_get(c, path, 0, &doc)) != 0)
		return rc;
	if (c->json)
		http_print_json(doc);
	else
		printf("%s: %lld\n", ctl_str(doc, "product_id", product), ctl_int(doc, "stock", 0));
	json_decref(doc);
	return 0;
}

static int stock_set(struct ctl *c, const char *product, const char *n, const char *reason)
{
	char path[CTL_PATH_MAX], esc[CTL_PATH_MAX / 2];
	json_t *body, *doc = NULL;
	long long stock;
	int rc, status = 0;

	if ((rc = ctl_parse_number("stock set", "N", n, 0, 1000000000000LL, &stock)) != 0)
		return rc;
	http_escape(product, esc, sizeof(esc));
	snprintf(path, sizeof(path), "/v1/stock/%s", esc);
	body = json_pack("{s:I}", "stock", (json_int_t)stock);
	if (reason != NULL)
		json_object_set_new(body, "reason", json_string(reason));
	rc = http_request(c, "PUT", path, body, 0, &status, &doc);
	json_decref(body);
	if (rc == 0 && status >= 300)
		rc = http_refused(c, status, doc);
	else if (rc == 0 && c->json)
		http_print_json(doc);
	else if (rc == 0)
		printf("%s: %lld -> %lld (%s)\n", ctl_str(doc, "product_id", product),
		       ctl_int(doc, "old_stock", 0), ctl_int(doc, "stock", stock),
		       reason ? reason : "operator");
	json_decref(doc);
	return rc;
}

int cmd_stock(struct ctl *c, int argc, char **argv)
{
	const char *reason = NULL, *pos[3];
	const struct opt opts[] = {{"--reason", &reason, NULL}, {NULL, NULL, NULL}};
	int npos, rc;

	if ((rc = ctl_parse_args("stock", argc, argv, opts, pos, 3, &npos)) != 0)
		return rc;
	if (npos > 0 && strcmp(pos[0], "get") == 0 && npos == 2 && reason == NULL)
		return stock_get(c, pos[1]);
	if (npos > 0 && strcmp(pos[0], "set") == 0 && npos == 3)
		return stock_set(c, pos[1], pos[2], reason);
	if (npos > 0 && strcmp(pos[0], "get") == 0)
		return ctl_fail(IDEM_EXIT_USAGE, "stock get: give one PRODUCT (stock get PRODUCT)");
	if (npos > 0 && strcmp(pos[0], "set") == 0)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "stock set: give PRODUCT and N (stock set PRODUCT N "
		                "[--reason TEXT])");
	if (npos > 0)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "stock: unknown subcommand \"%s\" (use: stock get "
		                "PRODUCT, stock set PRODUCT N [--reason TEXT])",
		                pos[0]);
	return ctl_need("stock", NULL, "a subcommand (stock get PRODUCT, stock set PRODUCT N)");
}
