/* activities.c — debit and credit, guarded so that a retry after any
 * crash point applies each once per transfer (docs/apps.md
 * "Activities"), and their naive twins that do not. The two differ only
 * in their table, the sign of the change and what they refuse (struct
 * side); the transaction around them is one function, run_side(). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "transfer.h"
#include "transfer_db.h"
#include "transfer_input.h"

#define OWNER_MAX 512 /* "namespace/workflow_id" */

struct transfer_in {
	const char *transfer_id; /* borrowed from t->input, as are from and to */
	const char *from;
	const char *to;
	json_int_t amount;
};

/* A row of debits or credits: an effect already applied. */
struct applied {
	char account_id[TRANSFER_ID_MAX + 1];
	json_int_t amount;
	json_int_t balance_after;
	char owner[OWNER_MAX]; /* "namespace/workflow_id" */
};

/* One attempt's context, for the side's refusals. */
struct attempt {
	const struct idem_activity_env *env;
	const struct transfer_in *in;
	const char *owner;
	struct idem_activity_outcome *out;
};

/* What makes a debit a debit and a credit a credit. The SQL texts are
 * literals: db_stmt caches statements by address. */
struct side {
	const char *activity;
	const char *find_sql;   /* the first row of ?1: account_id, amount, balance_after, owner */
	const char *insert_sql; /* (transfer_id, account_id, amount, balance_after, owner, at) */
	int sign;               /* -1: takes the amount, +1: gives it */
	/* Inside the transaction: refuses (rolled back, out set, -1) or
	 * returns 0 with *account, the account changed, and *balance, its
	 * balance before the change. */
	int (*admit)(const struct attempt *a, const char **account, int64_t *balance);
};

/* ---- input ---- */

/* The input checked by the same function as the workflow's start
 * (transfer_input.h), so that nothing refused here was accepted there. */
static int parse_input(const char *activity, const json_t *input, struct transfer_in *in,
                       struct idem_activity_outcome *out)
{
	char err[sizeof(out->error_message) - 64];

	if (transfer_input_check(input, err, sizeof(err)) != 0)
		return idem_activity_fail(out, "InvalidInput", 0, "%s: %s", activity, err);
	in->transfer_id = json_string_value(json_object_get(input, "transfer_id"));
	in->from = json_string_value(json_object_get(input, "from"));
	in->to = json_string_value(json_object_get(input, "to"));
	in->amount = json_integer_value(json_object_get(input, "amount"));
	return 0;
}

/* ---- app DB ---- */

/* The first row of transfer_id in the side's table. Returns 1 with *a, 0
 * when none, -1 with err. */
static int find_applied(struct appconn *db, const struct side *s, const char *transfer_id,
                        struct applied *a, char *err, size_t errlen)
{
	struct appconn_row row;
	int rc = appconn_query(db, &row, "looking up an applied effect", err, errlen, s->find_sql,
	                       "s", transfer_id);

	if (rc == 1) {
		snprintf(a->account_id, sizeof(a->account_id), "%s", appconn_text(&row, 0));
		a->amount = appconn_int(&row, 1);
		a->balance_after = appconn_int(&row, 2);
		snprintf(a->owner, sizeof(a->owner), "%s", appconn_text(&row, 3));
		appconn_row_done(&row);
	}
	return rc;
}

static int add_balance(struct appconn *db, const char *account, json_int_t delta, char *err,
                       size_t errlen)
{
	return appconn_exec(db, "updating the balance", err, errlen,
	                    "UPDATE accounts SET balance = balance + ?2 WHERE account_id = ?1",
	                    "sI", account, (int64_t)delta) < 0
	           ? -1
	           : 0;
}

static int insert_row(struct appconn *db, const struct side *s, const struct transfer_in *in,
                      const char *account, const char *owner, json_int_t balance_after, char *err,
                      size_t errlen)
{
	return appconn_exec(db, "recording the effect", err, errlen, s->insert_sql, "ssIIsI",
	                    in->transfer_id, account, (int64_t)in->amount, (int64_t)balance_after,
	                    owner, clock_wall_ms()) < 0
	           ? -1
	           : 0;
}

/* ---- what each side refuses ---- */

/* A balance that must be there: 1 with *balance, or -1 (rolled back, out
 * set) for an unknown account or a database error. */
static int existing_balance(const struct attempt *a, const char *activity, const char *account,
                            int64_t *balance)
{
	char err[512];
	int found = transfer_balance_get(a->env->db, account, balance, err, sizeof(err));

	if (found < 0)
		return idem_activity_db_error(a->env, a->out, activity, err);
	if (found == 0) {
		idem_activity_rollback(a->env->db);
		return idem_activity_fail(
		    a->out, "UnknownAccount", 0,
		    "%s: unknown account \"%s\" (transfer %s); accounts are created with "
		    "TRANSFER_ACCOUNTS when the app database is new",
		    activity, account, a->in->transfer_id);
	}
	return 1;
}

/* Both accounts must exist (a debit whose credit could not land is never
 * made), and from must hold the amount. */
static int debit_admit(const struct attempt *a, const char **account, int64_t *balance)
{
	int64_t to_balance = 0;

	if (existing_balance(a, "debit", a->in->from, balance) < 0 ||
	    existing_balance(a, "debit", a->in->to, &to_balance) < 0)
		return -1;
	if (*balance < a->in->amount) {
		idem_activity_rollback(a->env->db);
		return idem_activity_fail(
		    a->out, "InsufficientFunds", 0,
		    "insufficient funds for transfer %s: account \"%s\" has %lld, the "
		    "transfer needs %" JSON_INTEGER_FORMAT,
		    a->in->transfer_id, a->in->from, (long long)*balance, a->in->amount);
	}
	*account = a->in->from;
	return 0;
}

/* Whether workflow owner has debited transfer_id: 1, 0, or -1 with err. */
static int debited_by(struct appconn *db, const char *transfer_id, const char *owner, char *err,
                      size_t errlen)
{
	struct appconn_row row;
	int rc = appconn_query(
	    db, &row, "looking up the debit", err, errlen,
	    "SELECT 1 FROM debits WHERE transfer_id = ?1 AND workflow_id = ?2 LIMIT 1", "ss",
	    transfer_id, owner);

	if (rc == 1)
		appconn_row_done(&row);
	return rc;
}

/* The credit of a transfer follows its own workflow's debit (guarded
 * mode: naive mode runs without any lookup), and `to` must exist. */
static int credit_admit(const struct attempt *a, const char **account, int64_t *balance)
{
	char err[512];
	int debited = a->env->naive
	                  ? 1
	                  : debited_by(a->env->db, a->in->transfer_id, a->owner, err, sizeof(err));

	if (debited < 0)
		return idem_activity_db_error(a->env, a->out, "credit", err);
	if (debited == 0) {
		idem_activity_rollback(a->env->db);
		return idem_activity_fail(
		    a->out, "DebitMissing", 0,
		    "credit: transfer %s has no debit of workflow %s: a credit never goes "
		    "without its debit",
		    a->in->transfer_id, a->owner);
	}
	if (existing_balance(a, "credit", a->in->to, balance) < 0)
		return -1;
	*account = a->in->to;
	return 0;
}

static const struct side debit_side = {
    "debit",
    "SELECT account_id, amount, balance_after, workflow_id FROM debits"
    " WHERE transfer_id = ?1 ORDER BY id LIMIT 1",
    "INSERT INTO debits(transfer_id, account_id, amount, balance_after, workflow_id,"
    " applied_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    -1,
    debit_admit,
};

static const struct side credit_side = {
    "credit",
    "SELECT account_id, amount, balance_after, workflow_id FROM credits"
    " WHERE transfer_id = ?1 ORDER BY id LIMIT 1",
    "INSERT INTO credits(transfer_id, account_id, amount, balance_after, workflow_id,"
    " applied_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    1,
    credit_admit,
};

/* ---- the transaction ---- */

static int set_result(struct idem_activity_outcome *out, const char *transfer_id,
                      const char *account, json_int_t amount, json_int_t balance, int replayed)
{
	out->result =
	    json_pack("{s:s, s:s, s:I, s:I, s:b}", "transfer_id", transfer_id, "account_id",
	              account, "amount", amount, "balance", balance, "replayed", replayed);
	if (out->result == NULL) /* an account id read back from the app DB is not UTF-8 */
		return idem_activity_fail(out, "InternalError", 1,
		                          "cannot build the result: a string is not UTF-8");
	return 0;
}

/* Inside the transaction: the side's refusals, then the balance change
 * and the row. Returns 0 with a->out untouched and *balance_after. */
static int apply(const struct side *s, const struct attempt *a, const char **account,
                 json_int_t *balance_after)
{
	int64_t balance = 0;
	char err[512];

	if (s->admit(a, account, &balance) != 0)
		return -1;
	*balance_after = balance + s->sign * a->in->amount;
	if (add_balance(a->env->db, *account, s->sign * a->in->amount, err, sizeof(err)) != 0 ||
	    insert_row(a->env->db, s, a->in, *account, a->owner, *balance_after, err,
	               sizeof(err)) != 0)
		return idem_activity_db_error(a->env, a->out, s->activity, err);
	return 0;
}

/* One transaction: the transfer's row if it exists (a replay), else the
 * change and its row. Naive mode skips the lookup. */
static int run_side(const struct side *s, const struct idem_activity_env *env,
                    const struct msg_task *t, struct idem_activity_outcome *out)
{
	struct transfer_in in = {0};
	struct applied prev = {0};
	char err[512], owner[OWNER_MAX];
	struct attempt a = {env, &in, owner, out};
	const char *account = NULL;
	json_int_t balance_after = 0;
	int found = 0;

	if (parse_input(s->activity, t->input, &in, out) != 0)
		return -1;
	snprintf(owner, sizeof(owner), "%s/%s", t->namespace_, t->workflow_id);
	idem_activity_at(env, FAULT_BEFORE_EFFECT, t);
	if (appconn_begin(env->db, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, s->activity, err);
	if (!env->naive) {
		found = find_applied(env->db, s, in.transfer_id, &prev, err, sizeof(err));
		if (found < 0)
			return idem_activity_db_error(env, out, s->activity, err);
	}
	if (found && strcmp(prev.owner, owner) != 0) {
		idem_activity_rollback(env->db);
		return idem_activity_fail(
		    out, "TransferConflict", 0,
		    "%s: transfer %s was already applied by workflow %s; give this transfer "
		    "another transfer_id",
		    s->activity, in.transfer_id, prev.owner);
	}
	if (!found && apply(s, &a, &account, &balance_after) != 0)
		return -1;
	if (!found)
		idem_activity_at(env, FAULT_AFTER_EFFECT, t);
	if (appconn_commit(env->db, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, s->activity, err);
	idem_activity_at(env, FAULT_AFTER_COMMIT, t);
	if (found)
		return set_result(out, in.transfer_id, prev.account_id, prev.amount,
		                  prev.balance_after, 1);
	return set_result(out, in.transfer_id, account, in.amount, balance_after, 0);
}

static int debit(const struct idem_activity_env *env, const struct msg_task *t,
                 struct idem_activity_outcome *out)
{
	return run_side(&debit_side, env, t, out);
}

static int credit(const struct idem_activity_env *env, const struct msg_task *t,
                  struct idem_activity_outcome *out)
{
	return run_side(&credit_side, env, t, out);
}

const struct idem_activity transfer_activities[] = {
    {"debit", debit},
    {"credit", credit},
    {0},
};
