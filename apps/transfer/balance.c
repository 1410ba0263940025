/* balance.c — the transfer app's endpoints of the control API:
 * GET /v1/balance/ACCOUNT, an operator's look at an account, and GET
 * /v1/balance, every account (the dashboard's panel). There is no
 * way to set one: money enters only through TRANSFER_ACCOUNTS, so that
 * the checker's sums need no adjustments. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "transfer.h"
#include "transfer_db.h"

static int balance_get(struct appconn *db, const char *account, const json_t *body, json_t **reply,
                       char *err, size_t errlen)
{
	int64_t balance = 0;
	int rc;

	(void)body;
	if (!ids_name_ok(account, TRANSFER_ID_MAX)) {
		snprintf(err, errlen,
		         "bad account id \"%.80s\" (1..%d characters of A-Z a-z 0-9 _ . -)",
		         account, TRANSFER_ID_MAX);
		return 400;
	}
	rc = transfer_balance_get(db, account, &balance, err, errlen);
	if (rc < 0)
		return 500;
	if (rc == 0) {
		snprintf(err, errlen,
		         "unknown account \"%s\" (accounts are created with TRANSFER_ACCOUNTS when "
		         "the app database is new)",
		         account);
		return 404;
	}
	*reply = json_pack("{s:s, s:I}", "account_id", account, "balance", (json_int_t)balance);
	return 200;
}

#define LIST_MAX 1000 /* accounts listed */

static int balance_list(struct appconn *db, const char *unused, const json_t *body, json_t **reply,
                        char *err, size_t errlen)
{
	static const struct appconn_column cols[] = {
	    {"account_id", 's'}, {"balance", 'I'}, {"initial_balance", 'I'}, {0}};

	*reply = appconn_rows_json(db, "app DB: list accounts", err, errlen,
	                           "SELECT account_id, balance, initial_balance FROM accounts "
	                           "ORDER BY account_id LIMIT ?1",
	                           LIST_MAX, cols);
	return *reply != NULL ? 200 : 500;
}

const struct idem_app_panel transfer_panels[] = {
    {.title = "Accounts",
     .path = "/v1/balance",
     .about = "every account's balance now, and what it started with"},
    {0},
};

const struct idem_app_route transfer_routes[] = {
    {"/v1/balance", "GET", balance_list},
    {"/v1/balance/ACCOUNT", "GET", balance_get},
    {0},
};
