/* keys.c — the transfer app's configuration key: the accounts a new app
 * DB starts with (TRANSFER_ACCOUNTS, parsed here), each
 * "ACCOUNT:BALANCE", comma-separated. */
#include <stdint.h>

#include "transfer.h"
#include "transfer_db.h"

_Static_assert(TRANSFER_ID_MAX <= NAMELIST_NAME_MAX, "an account id fits a name_value");

static const struct namelist_spec transfer_accounts = {
    .shape = "ACCOUNT:BALANCE",
    .example = "A:1000",
    .name_word = "account id",
    .value_word = "balance",
    .item = "account",
    .items = "accounts",
    .name_max = TRANSFER_ID_MAX,
    .value_max = TRANSFER_BALANCE_MAX,
    .max = TRANSFER_ACCOUNTS_MAX,
};

int transfer_accounts_parse(const char *text, struct name_value *accounts, size_t *n, char *msg,
                            size_t len)
{
	return namelist_parse(text, &transfer_accounts, accounts, n, msg, len);
}

static int accounts_check(const char *value, char *msg, size_t len)
{
	static struct name_value accounts[TRANSFER_ACCOUNTS_MAX];
	size_t n;

	return transfer_accounts_parse(value, accounts, &n, msg, len);
}

const struct config_app_key transfer_keys[] = {
    {"TRANSFER_ACCOUNTS", "A:1000,B:1000,C:1000",
     "ACCOUNT:BALANCE,... (balance 0..1000000000000, \"\" = none)",
     "accounts created with these balances when the transfer app's database is new",
     CONFIG_APP_TEXT, 0, 0, accounts_check, 1, 1},
    {0},
};
