/* transfer_db.h — the transfer app's database (DATABASE, SQLite or
 * PostgreSQL: appconn.h): what its activities change. Opened by the workers (activities), the
 * supervisor (seeding and the balance endpoint, balance.c) and the checker.
 *
 * Schema (version 1; BIGINT and BIGSERIAL on PostgreSQL):
 *   accounts(account_id TEXT PRIMARY KEY, balance INTEGER NOT NULL,
 *            initial_balance INTEGER NOT NULL)
 *   debits(id INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL,
 *          account_id TEXT NOT NULL, amount INTEGER NOT NULL,
 *          balance_after INTEGER NOT NULL, workflow_id TEXT NOT NULL, -- "ns/id"
 *          applied_at INTEGER NOT NULL)            -- index on transfer_id
 *   credits(the same columns)                     -- index on transfer_id
 *
 * debits and credits are logs of effects: ONE ROW PER APPLICATION. The
 * guarded activities look the transfer id up inside the same transaction
 * and add at most one row per transfer; naive mode adds one per attempt,
 * and the checker counts rows per transfer to find duplicates. So there
 * is no UNIQUE constraint on transfer_id: it would hide exactly what the
 * checker must see. Invariants (check.c), each transfer counted once:
 *   balance = initial_balance - its debits + its credits   (every account)
 *   sum(balance) = sum(initial_balance)        (no transfer half done)
 */
#ifndef IDEM_TRANSFER_DB_H
#define IDEM_TRANSFER_DB_H

#include <stddef.h>
#include <stdint.h>

#include "appconn.h"
#include "namelist.h"
#include "transfer_input.h"

#define TRANSFER_ACCOUNTS_MAX 1024                  /* accounts TRANSFER_ACCOUNTS may list */
#define TRANSFER_BALANCE_MAX INT64_C(1000000000000) /* an account's starting balance */

/* Parses TRANSFER_ACCOUNTS ("ACCOUNT:BALANCE,...", "" = none; namelist.h)
 * into accounts[0..TRANSFER_ACCOUNTS_MAX), each an account id and its
 * balance, *n the count. Returns 0, or -1 with msg naming the entry and
 * what is wrong. */
int transfer_accounts_parse(const char *text, struct name_value *accounts, size_t *n, char *msg,
                            size_t len);

/* Opens and migrates the app DB. When the schema is created by this call,
 * accounts[0..n) are inserted in the same transaction (TRANSFER_ACCOUNTS
 * applies on first creation only). accounts may be NULL. */
int transfer_db_open(const char *where, enum db_sync sync, const struct name_value *accounts,
                     size_t n, struct appconn **out, char *err, size_t errlen);

/* Returns 1 with *balance when the account exists, 0 when it does not,
 * -1 on error (err set). */
int transfer_balance_get(struct appconn *db, const char *account_id, int64_t *balance, char *err,
                         size_t errlen);

#endif
