/* db.c — the transfer app's database (transfer_db.h): schema in both
 * dialects, the accounts of TRANSFER_ACCOUNTS on creation, and a
 * balance's read. */
#include "transfer_db.h"
#include "transfer.h"

#include <stdio.h>

/* Migration 1, in each dialect. */
static const char *const schema_sqlite[] = {
    "CREATE TABLE accounts(account_id TEXT PRIMARY KEY, balance INTEGER NOT NULL,"
    " initial_balance INTEGER NOT NULL);"
    "CREATE TABLE debits(id INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, amount INTEGER NOT NULL, balance_after INTEGER NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at INTEGER NOT NULL);"
    "CREATE INDEX debits_transfer_id ON debits(transfer_id);"
    "CREATE TABLE credits(id INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, amount INTEGER NOT NULL, balance_after INTEGER NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at INTEGER NOT NULL);"
    "CREATE INDEX credits_transfer_id ON credits(transfer_id);",
};

static const char *const schema_pg[] = {
    "CREATE TABLE accounts(account_id TEXT PRIMARY KEY, balance BIGINT NOT NULL,"
    " initial_balance BIGINT NOT NULL);"
    "CREATE TABLE debits(id BIGSERIAL PRIMARY KEY, transfer_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, amount BIGINT NOT NULL, balance_after BIGINT NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at BIGINT NOT NULL);"
    "CREATE INDEX debits_transfer_id ON debits(transfer_id);"
    "CREATE TABLE credits(id BIGSERIAL PRIMARY KEY, transfer_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, amount BIGINT NOT NULL, balance_after BIGINT NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at BIGINT NOT NULL);"
    "CREATE INDEX credits_transfer_id ON credits(transfer_id);",
};

static const struct appconn_schema transfer_schema = {
    "transfer", schema_sqlite, 1, schema_pg, 1,
};

struct accounts {
	const struct name_value *v;
	size_t n;
};

/* The accounts of TRANSFER_ACCOUNTS, in the transaction that creates the
 * schema (they apply on first creation only). */
static int fill_accounts(struct appconn *c, const void *arg, char *err, size_t errlen)
{
	const struct accounts *a = arg;

	for (size_t i = 0; i < a->n; i++)
		if (appconn_exec(c, "creating the accounts", err, errlen,
		                 "INSERT INTO accounts(account_id, balance, initial_balance)"
		                 " VALUES(?1, ?2, ?2)",
		                 "sI", a->v[i].name, (int64_t)a->v[i].value) < 0)
			return -1;
	return 0;
}

int transfer_db_open(const char *where, enum db_sync sync, const struct name_value *accounts,
                     size_t n, struct appconn **out, char *err, size_t errlen)
{
	struct accounts a = {accounts, accounts != NULL ? n : 0};

	return appconn_open(where, sync, &transfer_schema, fill_accounts, &a, out, err, errlen);
}

int transfer_balance_get(struct appconn *db, const char *account_id, int64_t *balance, char *err,
                         size_t errlen)
{
	struct appconn_row row;
	int rc =
	    appconn_query(db, &row, "reading the balance", err, errlen,
	                  "SELECT balance FROM accounts WHERE account_id = ?1", "s", account_id);

	if (rc == 1) {
		*balance = appconn_int(&row, 0);
		appconn_row_done(&row);
	}
	return rc;
}

int transfer_open_db(const char *where, enum db_sync sync, const struct idem_config *seed_cfg,
                     struct appconn **out, char *err, size_t errlen)
{
	static struct name_value accounts[TRANSFER_ACCOUNTS_MAX];
	size_t n = 0;
	char msg[512];

	if (seed_cfg != NULL && transfer_accounts_parse(config_text(seed_cfg, "TRANSFER_ACCOUNTS"),
	                                                accounts, &n, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "TRANSFER_ACCOUNTS %s", msg);
		return -1;
	}
	return transfer_db_open(where, sync, accounts, n, out, err, errlen);
}
