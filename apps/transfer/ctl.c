/* ctl.c — the transfer app's side of idemctl: the flags of `idemctl
 * start` (--transfer-id ID --from ACCOUNT --to ACCOUNT --amount N fill
 * the workflow's input) and the `balance` command, which reads an
 * account's balance through the app's endpoint (balance.c). Messages and
 * exit codes are idemctl's (shared/exitcodes.h): 2 a usage error, 1 the
 * supervisor refused. */
#include <stdio.h>
#include <string.h>

#include "exitcodes.h"
#include "transfer.h"
#include "transfer_input.h"

#define BALANCE_PATH_MAX 512

const struct idem_start_flag transfer_start_flags[] = {
    {"--transfer-id", "transfer_id", "ID", 0, 0, 0, 1},
    {"--from", "from", "ACCOUNT", 0, 0, 0, 1},
    {"--to", "to", "ACCOUNT", 0, 0, 0, 1},
    {"--amount", "amount", "N", 1, 1, TRANSFER_AMOUNT_MAX, 1},
    {0},
};

/* balance ACCOUNT: "A: 1000", or the API's document with --json. */
static int balance_run(const struct idem_ctl *c, int argc, char **argv)
{
	char esc[BALANCE_PATH_MAX / 2], path[BALANCE_PATH_MAX];
	json_t *doc = NULL;
	int rc, status = 0;

	if (argc != 1 || strncmp(argv[0], "--", 2) == 0)
		return c->fail(IDEM_EXIT_USAGE, "balance: give one ACCOUNT (balance ACCOUNT)");
	c->escape(argv[0], esc, sizeof(esc));
	snprintf(path, sizeof(path), "/v1/balance/%s", esc);
	rc = c->request(c, "GET", path, NULL, &status, &doc);
	if (rc == 0 && status >= 300)
		rc = c->refused(c, status, doc);
	else if (rc == 0 && c->json)
		c->print_json(doc);
	else if (rc == 0)
		printf("%s: %lld\n", argv[0],
		       (long long)json_integer_value(json_object_get(doc, "balance")));
	json_decref(doc);
	return rc;
}

const struct idem_app_command transfer_commands[] = {
    {"balance", "  balance ACCOUNT  read an account's balance in the app DB\n", balance_run},
    {0},
};
