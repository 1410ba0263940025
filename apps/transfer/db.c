/* db.c — the transfer app's database (transfer_db.h): schema, the
 * accounts of TRANSFER_ACCOUNTS on creation, and a balance's read. */
#include "transfer_db.h"
#include "transfer.h"

#include <stdio.h>

/* Migration 1. The account inserts are appended to it so that they
 * happen in the same transaction that creates the schema, and only then. */
static const char transfer_schema_v1[] =
    "CREATE TABLE accounts(account_id TEXT PRIMARY KEY, balance INTEGER NOT NULL,"
    " initial_balance INTEGER NOT NULL);"
    "CREATE TABLE debits(id INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, amount INTEGER NOT NULL, balance_after INTEGER NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at INTEGER NOT NULL);"
    "CREATE INDEX debits_transfer_id ON debits(transfer_id);"
    "CREATE TABLE credits(id INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, amount INTEGER NOT NULL, balance_after INTEGER NOT NULL,"
    " workflow_id TEXT NOT NULL, applied_at INTEGER NOT NULL);"
    "CREATE INDEX credits_transfer_id ON credits(transfer_id);";

/* Returns migration 1 plus the account inserts (sqlite3_malloc'd, the
 * caller sqlite3_free()s it), or NULL when out of memory. */
static char *schema_with_accounts(const struct name_value *accounts, size_t n)
{
	sqlite3_str *s = sqlite3_str_new(NULL);

	sqlite3_str_appendall(s, transfer_schema_v1);
	for (size_t i = 0; accounts != NULL && i < n; i++)
		sqlite3_str_appendf(s,
		                    "INSERT INTO accounts(account_id, balance, initial_balance)"
		                    " VALUES(%Q, %lld, %lld);",
		                    accounts[i].name, (long long)accounts[i].value,
		                    (long long)accounts[i].value);
	return sqlite3_str_finish(s);
}

int transfer_db_open(const char *path, enum db_sync sync, const struct name_value *accounts,
                     size_t n, sqlite3 **out, char *err, size_t errlen)
{
	char *v1 = schema_with_accounts(accounts, n);
	int rc;

	*out = NULL;
	if (v1 == NULL) {
		snprintf(err, errlen, "app database %s: out of memory building the schema", path);
		return -1;
	}
	rc = db_open_migrated(path, sync, (const char *const[]){v1}, 1, out, err, errlen);
	sqlite3_free(v1);
	return rc;
}

int transfer_balance_get(sqlite3 *db, const char *account_id, int64_t *balance, char *err,
                         size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (db_stmt(db, "SELECT balance FROM accounts WHERE account_id = ?", &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, account_id, -1, SQLITE_STATIC);
	rc = db_step_row(db, st, "reading the balance", err, errlen);
	if (rc == 1)
		*balance = sqlite3_column_int64(st, 0);
	db_stmt_done(st);
	return rc;
}

int transfer_open_db(const char *path, enum db_sync sync, const struct idem_config *seed_cfg,
                     sqlite3 **out, char *err, size_t errlen)
{
	static struct name_value accounts[TRANSFER_ACCOUNTS_MAX];
	size_t n = 0;
	char msg[512];

	if (seed_cfg != NULL && transfer_accounts_parse(config_text(seed_cfg, "TRANSFER_ACCOUNTS"),
	                                                accounts, &n, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "TRANSFER_ACCOUNTS %s", msg);
		return -1;
	}
	return transfer_db_open(path, sync, accounts, n, out, err, errlen);
}
