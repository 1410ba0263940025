/* check.c — the transfer app's rules of the checker (shared/check.h runs
 * them through idem_app.h's "the checker's rules"; "stuck" and
 * "integrity", and the snapshot, are the engine's). It verifies:
 *
 *   lost            every completed transfer has its debit and its credit
 *                   (rows of its own workflow): one per missing effect
 *   failed_with_effects  no failed transfer has a debit or a credit. Unlike
 *                   the inventory's order, a completed debit does not stand
 *                   by the history: a transfer moves money whole or not at
 *                   all, and a failed one that debited destroyed money. A
 *                   refusal (InsufficientFunds, UnknownAccount) applies
 *                   nothing and is not one
 *   duplicated      each transfer debited at most once and credited at most
 *                   once: one per transfer and side, whatever the rows
 *   credit_without_debit  every credit has its own workflow's debit
 *   unexpected      every row belongs to a transfer workflow that exists
 *                   (or was pruned: IDEM_CHECK_PRUNED), and moves what its
 *                   input says (transfer id, account, amount)
 *   balance_mismatch  for each account: balance = initial_balance - its
 *                   debits + its credits, each transfer counted once
 *   not_conserved   the sum of the balances is the sum of the initial
 *                   balances, less the debits of running transfers whose
 *                   credit is on its way (none once quiescent)
 *
 * and its totals: transfers (workflows of type transfer), debits, credits
 * (rows) and accounts.
 *
 * One fault may be seen twice, on purpose, as the inventory's stock is:
 * a duplicate (or a lost credit) is "duplicated" ("lost") and also shows in
 * the arithmetic of the balances it changed; a failed transfer that
 * debited is also money not conserved. A naive duplicate of both sides
 * cancels out in the total, so it is never "not_conserved". */
#include <stdio.h>
#include <string.h>

#include "transfer.h"

static const char LOST[] = "lost", FAILED_EFFECTS[] = "failed_with_effects",
                  DUPLICATED[] = "duplicated", NO_DEBIT[] = "credit_without_debit",
                  UNEXPECTED[] = "unexpected", BALANCE[] = "balance_mismatch",
                  CONSERVED[] = "not_conserved";

/* In report order, between the engine's "stuck" and "integrity". */
const char *const transfer_check_kinds[] = {
    LOST, FAILED_EFFECTS, DUPLICATED, NO_DEBIT, UNEXPECTED, BALANCE, CONSERVED, NULL,
};

/* As the checker's text lists them; the OK line leaves out transfers
 * (the engine counts the workflows) and accounts. */
const struct idem_check_total_label transfer_check_total_labels[] = {
    {"transfers", "transfers", 0}, {"debits", "debits", 1}, {"credits", "credits", 1},
    {"accounts", "accounts", 0},   {NULL, NULL, 0},
};

/* "a, b, c" from a JSON array of strings. */
static void join(const json_t *arr, char *buf, size_t len)
{
	size_t i, used = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(arr, i, v)
	{
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
		                 json_is_string(v) ? json_string_value(v) : "?");

		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

/* ---- the rules ------------------------------------------------------------ */

static void row_lost(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0), *tid = idem_check_col(st, 1);

	if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
		idem_check_add(c, LOST, json_pack("[s]", wf),
		               "workflow %s completed but its input has no transfer_id", wf);
		return;
	}
	if (sqlite3_column_int(st, 2) == 0)
		idem_check_add(
		    c, LOST, json_pack("[s]", wf),
		    "transfer %s (workflow %s) completed but its debit was never applied", tid, wf);
	if (sqlite3_column_int(st, 3) == 0)
		idem_check_add(
		    c, LOST, json_pack("[s]", wf),
		    "transfer %s (workflow %s) completed but its credit was never applied", tid,
		    wf);
}

/* A row belongs to its workflow: workflow_id is "namespace/workflow_id"
 * (the index on transfer_id finds the rows). */
static const char sql_lost[] =
    "WITH t AS (SELECT id, namespace || '/' || workflow_id AS wf,"
    "   json_extract(input, '$.transfer_id') AS tid FROM main.workflows"
    "   WHERE status = 'completed' AND type = 'transfer'),"
    " e AS (SELECT id, wf, tid,"
    "   EXISTS (SELECT 1 FROM app.debits d WHERE d.transfer_id = t.tid"
    "     AND d.workflow_id = t.wf) AS debited,"
    "   EXISTS (SELECT 1 FROM app.credits k WHERE k.transfer_id = t.tid"
    "     AND k.workflow_id = t.wf) AS credited FROM t)"
    " SELECT wf, tid, debited, credited FROM e WHERE tid IS NULL OR NOT (debited AND credited)"
    " ORDER BY id";

static void row_failed_effects(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 0);
	json_t *rows = idem_check_col_array(st, 3), *credits = idem_check_col_array(st, 4);
	char list[700];

	json_array_extend(rows, credits);
	join(rows, list, sizeof(list));
	idem_check_add(c, FAILED_EFFECTS, json_pack("[s]", wf),
	               "transfer %s (workflow %s) failed with effects applied: %s; its error: %s",
	               idem_check_col(st, 1), wf, list, idem_check_col(st, 2));
	json_decref(rows);
	json_decref(credits);
}

/* Only the failed transfers and their own rows are read. */
static const char sql_failed_effects[] =
    "WITH f AS (SELECT id, namespace || '/' || workflow_id AS wf,"
    "   json_extract(input, '$.transfer_id') AS tid, error FROM main.workflows"
    "   WHERE status = 'failed' AND type = 'transfer'),"
    " e AS (SELECT id, wf, tid, error,"
    "   (SELECT json_group_array('debit of ' || d.amount || ' from ' || d.account_id)"
    "     FROM app.debits d WHERE d.transfer_id = f.tid AND d.workflow_id = f.wf) AS da,"
    "   (SELECT json_group_array('credit of ' || k.amount || ' to ' || k.account_id)"
    "     FROM app.credits k WHERE k.transfer_id = f.tid AND k.workflow_id = f.wf) AS ca"
    "   FROM f)"
    " SELECT wf, tid, substr(coalesce(error, ''), 1, 300), da, ca FROM e"
    " WHERE json_array_length(da) + json_array_length(ca) > 0 ORDER BY id";

static void row_duplicated(struct idem_check *c, sqlite3_stmt *st)
{
	json_t *wfs = idem_check_col_array(st, 3);
	char list[512];

	join(wfs, list, sizeof(list));
	idem_check_add(c, DUPLICATED, wfs, "transfer %s %s %lld times (workflow%s %s)",
	               idem_check_col(st, 1), idem_check_col(st, 0),
	               (long long)sqlite3_column_int64(st, 2), json_array_size(wfs) == 1 ? "" : "s",
	               list);
}

/* The counts come from the indexes alone; only a duplicate's rows are read. */
static const char sql_duplicated[] =
    "SELECT 'debited', d.transfer_id, d.n, (SELECT json_group_array(DISTINCT x.workflow_id)"
    "   FROM app.debits x WHERE x.transfer_id = d.transfer_id)"
    " FROM (SELECT transfer_id, count(*) AS n FROM app.debits GROUP BY transfer_id"
    "   HAVING count(*) > 1) d"
    " UNION ALL"
    " SELECT 'credited', k.transfer_id, k.n, (SELECT json_group_array(DISTINCT x.workflow_id)"
    "   FROM app.credits x WHERE x.transfer_id = k.transfer_id)"
    " FROM (SELECT transfer_id, count(*) AS n FROM app.credits GROUP BY transfer_id"
    "   HAVING count(*) > 1) k"
    " ORDER BY 2, 1 DESC";

static void row_no_debit(struct idem_check *c, sqlite3_stmt *st)
{
	const char *wf = idem_check_col(st, 1);

	idem_check_add(c, NO_DEBIT, json_pack("[s]", wf),
	               "transfer %s (workflow %s) credited %lld to account %s without its debit",
	               idem_check_col(st, 0), wf, (long long)sqlite3_column_int64(st, 2),
	               idem_check_col(st, 3));
}

static const char sql_no_debit[] =
    "SELECT k.transfer_id, k.workflow_id, sum(k.amount), k.account_id FROM app.credits k"
    " WHERE NOT EXISTS (SELECT 1 FROM app.debits d WHERE d.transfer_id = k.transfer_id"
    "   AND d.workflow_id = k.workflow_id)"
    " GROUP BY k.transfer_id, k.workflow_id ORDER BY 1, 2";

static void row_unexpected(struct idem_check *c, sqlite3_stmt *st)
{
	const char *side = idem_check_col(st, 0), *tid = idem_check_col(st, 1),
	           *wf = idem_check_col(st, 2), *account = idem_check_col(st, 3);
	long long amount = sqlite3_column_int64(st, 4), n = sqlite3_column_int64(st, 5);
	char times[48] = "";

	if (n > 1)
		snprintf(times, sizeof(times), " (%lld times)", n);
	if (sqlite3_column_int(st, 6))
		idem_check_add(c, UNEXPECTED, json_pack("[s]", wf),
		               "%s of transfer %s (%lld, account %s) was applied for workflow %s, "
		               "which is no transfer workflow that exists%s",
		               side, tid, amount, account, wf, times);
	else
		idem_check_add(c, UNEXPECTED, json_pack("[s]", wf),
		               "%s of transfer %s for workflow %s moved %lld on account %s%s, but "
		               "its input says transfer %s, %lld on account %s",
		               side, tid, wf, amount, account, times, idem_check_col(st, 7),
		               (long long)sqlite3_column_int64(st, 9), idem_check_col(st, 8));
}

/* The rows of each (transfer, workflow, account, amount) once, beside
 * what their workflow's input asks of that side; the workflow is found
 * by its unique (namespace, workflow_id), neither of which holds a '/'. */
static const char sql_unexpected[] =
    "WITH x AS (SELECT 'debit' AS side, transfer_id, workflow_id, account_id, amount,"
    "   count(*) AS n, max(applied_at) AS at FROM app.debits"
    "   GROUP BY transfer_id, workflow_id, account_id, amount"
    "   UNION ALL SELECT 'credit', transfer_id, workflow_id, account_id, amount, count(*),"
    "   max(applied_at) FROM app.credits GROUP BY transfer_id, workflow_id, account_id, amount),"
    " y AS (SELECT x.*, w.id IS NULL AS missing,"
    "   json_extract(w.input, '$.transfer_id') AS want_tid,"
    "   json_extract(w.input, CASE x.side WHEN 'debit' THEN '$.from' ELSE '$.to' END)"
    "     AS want_account,"
    "   json_extract(w.input, '$.amount') AS want_amount"
    "   FROM x LEFT JOIN main.workflows w"
    "   ON w.namespace = substr(x.workflow_id, 1, instr(x.workflow_id, '/') - 1)"
    "   AND w.workflow_id = substr(x.workflow_id, instr(x.workflow_id, '/') + 1)"
    "   AND w.type = 'transfer')"
    " SELECT side, transfer_id, workflow_id, account_id, amount, n, missing, want_tid,"
    "   want_account, want_amount FROM y"
    " WHERE (missing AND NOT " IDEM_CHECK_PRUNED(
        "workflow_id", "at") ")"
                             "   OR (NOT missing AND (transfer_id IS NOT want_tid OR account_id IS "
                             "NOT want_account"
                             "   OR amount IS NOT want_amount))"
                             " ORDER BY workflow_id, side DESC, transfer_id";

static void row_balance(struct idem_check *c, sqlite3_stmt *st)
{
	long long have = sqlite3_column_int64(st, 1), want = sqlite3_column_int64(st, 2);

	idem_check_add(c, BALANCE, NULL,
	               "account %s has %lld, expected %lld from its initial balance, debits and "
	               "credits (difference %+lld)",
	               idem_check_col(st, 0), have, want, have - want);
}

/* Each transfer counts once per side, with the row first applied
 * (SQLite takes the bare columns from the min(id) row). */
static const char sql_balance[] =
    "WITH d AS (SELECT account_id, sum(amount) AS s FROM"
    "   (SELECT account_id, amount, min(id) FROM app.debits GROUP BY transfer_id)"
    "   GROUP BY account_id),"
    " k AS (SELECT account_id, sum(amount) AS s FROM"
    "   (SELECT account_id, amount, min(id) FROM app.credits GROUP BY transfer_id)"
    "   GROUP BY account_id)"
    " SELECT a.account_id, a.balance,"
    "   a.initial_balance - coalesce(d.s, 0) + coalesce(k.s, 0) AS expected"
    " FROM app.accounts a LEFT JOIN d USING (account_id) LEFT JOIN k USING (account_id)"
    " WHERE a.balance <> expected ORDER BY a.account_id";

static void row_conserved(struct idem_check *c, sqlite3_stmt *st)
{
	long long have = sqlite3_column_int64(st, 0), initial = sqlite3_column_int64(st, 1),
	          flight = sqlite3_column_int64(st, 2);

	idem_check_add(c, CONSERVED, NULL,
	               "the accounts hold %lld in all, expected %lld: their initial %lld less "
	               "%lld in flight (difference %+lld)",
	               have, initial - flight, initial, flight, have - (initial - flight));
}

/* In flight: the first debit of each transfer without a credit whose
 * workflow is running. */
static const char sql_conserved[] =
    "SELECT have, initial, flight FROM (SELECT"
    " (SELECT coalesce(sum(balance), 0) FROM app.accounts) AS have,"
    " (SELECT coalesce(sum(initial_balance), 0) FROM app.accounts) AS initial,"
    " (SELECT coalesce(sum(d.amount), 0) FROM"
    "   (SELECT transfer_id, workflow_id, amount, min(id) FROM app.debits"
    "     GROUP BY transfer_id) d"
    "   WHERE NOT EXISTS (SELECT 1 FROM app.credits k WHERE k.transfer_id = d.transfer_id)"
    "   AND d.workflow_id IN (SELECT namespace || '/' || workflow_id FROM main.workflows"
    "     WHERE status = 'running')) AS flight)"
    " WHERE have <> initial - flight";

const struct idem_check_rule transfer_check_rules[] = {
    {"finding lost debits and credits", sql_lost, row_lost},
    {"finding failed transfers with effects", sql_failed_effects, row_failed_effects},
    {"finding duplicated debits and credits", sql_duplicated, row_duplicated},
    {"finding credits without a debit", sql_no_debit, row_no_debit},
    {"finding debits and credits of no transfer", sql_unexpected, row_unexpected},
    {"comparing balances", sql_balance, row_balance},
    {"adding up the money", sql_conserved, row_conserved},
    {NULL, NULL, NULL},
};

/* ---- the totals --------------------------------------------------------------- */

static void row_totals(struct idem_check *c, sqlite3_stmt *st)
{
	idem_check_total(c, "transfers", sqlite3_column_int64(st, 0));
	idem_check_total(c, "debits", sqlite3_column_int64(st, 1));
	idem_check_total(c, "credits", sqlite3_column_int64(st, 2));
	idem_check_total(c, "accounts", sqlite3_column_int64(st, 3));
}

const struct idem_check_rule transfer_check_totals[] = {
    {"counting transfers",
     "SELECT (SELECT count(*) FROM main.workflows WHERE type = 'transfer'),"
     " (SELECT count(*) FROM app.debits), (SELECT count(*) FROM"
     " app.credits), (SELECT count(*) FROM app.accounts)",
     row_totals},
    {NULL, NULL, NULL},
};
