/* activities.c — update_inventory and supplier_order, guarded so that a
 * retry after any crash point applies each effect once (DESIGN.md
 * "Idempotency"), and their naive twins that do not. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appdb.h"
#include "clock.h"
#include "httpc.h"
#include "inventory.h"
#include "inventory_input.h"

/* The longest text an applied effect's row gives back (a product id, a
 * key; the checked inputs are no longer: inventory_input.h). */
#define INPUT_TEXT_MAX 255
#define SUPPLIER_ORDER_ID_MAX 127
#define SUPPLIER_READY_WAIT_MS 2000 /* how long a restarting supplier is waited for */

struct order_in {
	const char *order_id;   /* borrowed from t->input */
	const char *product_id; /* borrowed from t->input */
	json_int_t quantity;
};

struct restock_in {
	const char *product_id; /* borrowed from t->input */
	const char *key;        /* borrowed from t->input */
	json_int_t quantity;
};

/* A row of orders or restocks: an effect already applied. */
struct applied {
	char product_id[INPUT_TEXT_MAX + 1];
	json_int_t quantity;
	json_int_t stock_after;
	char supplier_order_id[SUPPLIER_ORDER_ID_MAX + 1];
	char owner[2 * INPUT_TEXT_MAX + 2]; /* orders: "namespace/workflow_id" */
};

/* A refusal decided inside the transaction: nothing was written. */
static void abandon(const struct idem_activity_env *env)
{
	idem_activity_rollback(env->db);
}

/* ---- input ---- */

/* The input checked by the same function as the workflow's start
 * (inventory_input.h), so that nothing refused here was accepted there. */
static int check_input(const char *activity, const json_t *input, enum inventory_schema schema,
                       struct idem_activity_outcome *out)
{
	char err[sizeof(out->error_message) - 64];

	if (inventory_input_check(input, schema, err, sizeof(err)) == 0)
		return 0;
	return idem_activity_fail(out, "InvalidInput", 0, "%s: %s", activity, err);
}

static int parse_order(const json_t *input, struct order_in *in, struct idem_activity_outcome *out)
{
	if (check_input("update_inventory", input, INVENTORY_UPDATE, out) != 0)
		return -1;
	in->order_id = json_string_value(json_object_get(input, "order_id"));
	in->product_id = json_string_value(json_object_get(input, "product_id"));
	in->quantity = json_integer_value(json_object_get(input, "quantity"));
	return 0;
}

static int parse_restock(const json_t *input, struct restock_in *in,
                         struct idem_activity_outcome *out)
{
	if (check_input("supplier_order", input, INVENTORY_SUPPLIER_ORDER, out) != 0)
		return -1;
	in->product_id = json_string_value(json_object_get(input, "product_id"));
	in->quantity = json_integer_value(json_object_get(input, "quantity"));
	in->key = json_string_value(json_object_get(input, "key"));
	return 0;
}

/* ---- app DB ---- */

/* Looks up the first effect recorded under a key. sql selects product_id,
 * quantity, stock_after, supplier_order_id (or '') and the owning workflow
 * (or '') for ?1. Returns 1 with *a, 0 when none, -1 with err. */
static int find_applied(struct appconn *db, const char *sql, const char *key, struct applied *a,
                        char *err, size_t errlen)
{
	struct appconn_row row;
	int rc =
	    appconn_query(db, &row, "looking up an applied effect", err, errlen, sql, "s", key);

	if (rc == 1) {
		snprintf(a->product_id, sizeof(a->product_id), "%s", appconn_text(&row, 0));
		a->quantity = appconn_int(&row, 1);
		a->stock_after = appconn_int(&row, 2);
		snprintf(a->supplier_order_id, sizeof(a->supplier_order_id), "%s",
		         appconn_text(&row, 3));
		snprintf(a->owner, sizeof(a->owner), "%s", appconn_text(&row, 4));
		appconn_row_done(&row);
	}
	return rc;
}

static int find_order(struct appconn *db, const char *order_id, struct applied *a, char *err,
                      size_t errlen)
{
	return find_applied(db,
	                    "SELECT product_id, quantity, stock_after, '', workflow_id"
	                    " FROM orders WHERE order_id = ?1 ORDER BY id LIMIT 1",
	                    order_id, a, err, errlen);
}

static int find_restock(struct appconn *db, const char *key, struct applied *a, char *err,
                        size_t errlen)
{
	return find_applied(db,
	                    "SELECT product_id, quantity, stock_after, supplier_order_id, ''"
	                    " FROM restocks WHERE key = ?1 ORDER BY id LIMIT 1",
	                    key, a, err, errlen);
}

static int add_stock(struct appconn *db, const char *product_id, json_int_t delta, char *err,
                     size_t errlen)
{
	return appconn_exec(db, "updating the stock", err, errlen,
	                    "UPDATE products SET stock = stock + ?2 WHERE product_id = ?1", "sI",
	                    product_id, (int64_t)delta) < 0
	           ? -1
	           : 0;
}

static int insert_order(struct appconn *db, const struct order_in *in, const char *workflow_id,
                        json_int_t stock_after, char *err, size_t errlen)
{
	return appconn_exec(db, "recording the order", err, errlen,
	                    "INSERT INTO orders(order_id, product_id, quantity, stock_after,"
	                    " workflow_id, applied_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	                    "ssIIsI", in->order_id, in->product_id, (int64_t)in->quantity,
	                    (int64_t)stock_after, workflow_id != NULL ? workflow_id : "",
	                    clock_wall_ms()) < 0
	           ? -1
	           : 0;
}

static int insert_restock(struct appconn *db, const struct restock_in *in, const char *so_id,
                          json_int_t stock_after, char *err, size_t errlen)
{
	return appconn_exec(db, "recording the restock", err, errlen,
	                    "INSERT INTO restocks(key, product_id, quantity, supplier_order_id,"
	                    " stock_after, applied_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	                    "ssIsII", in->key, in->product_id, (int64_t)in->quantity, so_id,
	                    (int64_t)stock_after, clock_wall_ms()) < 0
	           ? -1
	           : 0;
}

/* ---- results ---- */

/* result is NEW; NULL when json_pack refused a string read back from the
 * app DB that is not UTF-8. */
static int set_result(struct idem_activity_outcome *out, json_t *result)
{
	if (result == NULL)
		return idem_activity_fail(out, "InternalError", 1,
		                          "cannot build the result: a string is not UTF-8");
	out->result = result;
	return 0;
}

static int order_result(struct idem_activity_outcome *out, const char *order_id,
                        const char *product_id, json_int_t quantity, json_int_t stock, int replayed)
{
	return set_result(out, json_pack("{s:s, s:s, s:I, s:I, s:b}", "order_id", order_id,
	                                 "product_id", product_id, "quantity", quantity, "stock",
	                                 stock, "replayed", replayed));
}

/* Where supplier_order got its supplier order id ("source"). */
enum so_source { FROM_SUPPLIER, FROM_HEARTBEAT, FROM_RESTOCKS };

static const char *source_name(enum so_source s)
{
	return s == FROM_SUPPLIER ? "supplier" : s == FROM_HEARTBEAT ? "heartbeat" : "restocks";
}

static int restock_result(struct idem_activity_outcome *out, const char *product_id,
                          json_int_t quantity, const char *so_id, json_int_t stock,
                          enum so_source source)
{
	return set_result(out, json_pack("{s:s, s:I, s:s, s:I, s:b, s:s}", "product_id", product_id,
	                                 "quantity", quantity, "supplier_order_id", so_id, "stock",
	                                 stock, "replayed", source == FROM_RESTOCKS, "source",
	                                 source_name(source)));
}

/* ---- update_inventory ---- */

/* Inside the transaction: refuses an unknown product or a short stock,
 * else decrements and records the order. Returns 0 with *stock_after. */
static int apply_order(const struct idem_activity_env *env, const char *owner,
                       const struct order_in *in, json_int_t *stock_after,
                       struct idem_activity_outcome *out)
{
	char err[512];
	int64_t stock = 0;
	int found = appdb_stock_get(env->db, in->product_id, &stock, err, sizeof(err));

	if (found < 0)
		return idem_activity_db_error(env, out, "update_inventory", err);
	if (found == 0) {
		abandon(env);
		return idem_activity_fail(
		    out, "UnknownProduct", 0,
		    "unknown product \"%s\" (order %s); add it with SEED_STOCK or idemctl "
		    "stock set",
		    in->product_id, in->order_id);
	}
	if (in->quantity > stock) {
		abandon(env);
		return idem_activity_fail(
		    out, "InsufficientStock", 0,
		    "insufficient stock for order %s: product \"%s\" has %lld, the order "
		    "needs %" JSON_INTEGER_FORMAT,
		    in->order_id, in->product_id, (long long)stock, in->quantity);
	}
	*stock_after = stock - in->quantity;
	if (add_stock(env->db, in->product_id, -in->quantity, err, sizeof(err)) != 0 ||
	    insert_order(env->db, in, owner, *stock_after, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, "update_inventory", err);
	return 0;
}

/* One transaction: the order's row if it exists (replay), else the
 * decrement and the row. Naive mode skips the lookup. */
static int update_inventory(const struct idem_activity_env *env, const struct msg_task *t,
                            struct idem_activity_outcome *out)
{
	struct order_in in = {0};
	struct applied prev = {0};
	json_int_t stock_after = 0;
	char err[512], owner[sizeof(prev.owner)];
	int found = 0;

	if (parse_order(t->input, &in, out) != 0)
		return -1;
	idem_activity_at(env, FAULT_BEFORE_EFFECT, t);
	if (appconn_begin(env->db, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, "update_inventory", err);
	snprintf(owner, sizeof(owner), "%s/%s", t->namespace_, t->workflow_id);
	if (!env->naive) {
		found = find_order(env->db, in.order_id, &prev, err, sizeof(err));
		if (found < 0)
			return idem_activity_db_error(env, out, "update_inventory", err);
	}
	if (found && strcmp(prev.owner, owner) != 0) {
		/* One order, one workflow: replaying another workflow's result
		 * would let it restock a second time for the same sale. */
		abandon(env);
		return idem_activity_fail(
		    out, "OrderConflict", 0,
		    "order %s was already applied by workflow %s; give this order "
		    "another order_id",
		    in.order_id, prev.owner);
	}
	if (found == 0 && apply_order(env, owner, &in, &stock_after, out) != 0)
		return -1;
	if (found == 0)
		idem_activity_at(env, FAULT_AFTER_EFFECT, t);
	if (appconn_commit(env->db, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, "update_inventory", err);
	idem_activity_at(env, FAULT_AFTER_COMMIT, t);
	if (found)
		return order_result(out, in.order_id, prev.product_id, prev.quantity,
		                    prev.stock_after, 1);
	return order_result(out, in.order_id, in.product_id, in.quantity, stock_after, 0);
}

/* ---- supplier_order ---- */

/* The supplier's "error" member, or the start of its body. */
static void supplier_error_text(const struct httpc_response *r, char *buf, size_t len)
{
	json_t *doc = json_loadb(r->body, r->body_len, 0, NULL); /* new */
	const char *msg = json_string_value(json_object_get(doc, "error"));

	if (msg != NULL)
		snprintf(buf, len, "%s", msg);
	else
		snprintf(buf, len, "%.200s", r->body_len > 0 ? r->body : "(empty body)");
	json_decref(doc);
}

/* Classifies the supplier's answer; on 200/201 copies supplier_order_id. */
static int supplier_answer(const struct idem_activity_env *env, const struct httpc_response *r,
                           char *so_id, size_t so_len, struct idem_activity_outcome *out)
{
	char text[300];
	json_t *doc = NULL; /* new */
	const char *id = NULL;
	int rc = -1;

	if (r->status != 200 && r->status != 201) {
		supplier_error_text(r, text, sizeof(text));
		if (r->status >= 400 && r->status < 500)
			return idem_activity_fail(
			    out, "SupplierRejected", 0,
			    "supplier_order: the supplier at %s rejected the order (HTTP %d): "
			    "%s",
			    env->peer, r->status, text);
		return idem_activity_fail(out, "SupplierUnavailable", 1,
		                          "supplier_order: the supplier at %s answered HTTP %d: %s",
		                          env->peer, r->status, text);
	}
	doc = json_loadb(r->body, r->body_len, 0, NULL);
	id = json_string_value(json_object_get(doc, "supplier_order_id"));
	if (id == NULL || *id == '\0' || strlen(id) >= so_len) {
		idem_activity_fail(
		    out, "SupplierUnavailable", 1,
		    "supplier_order: the supplier at %s answered HTTP %d without a usable "
		    "supplier_order_id: %.200s",
		    env->peer, r->status, r->body);
		goto out;
	}
	snprintf(so_id, so_len, "%s", id);
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* POSTs the order with its Idempotency-Key (naive mode: a fresh key per
 * attempt, so the supplier cannot recognize a retry) and, when a fault
 * plan says so, an Idem-Fault header. */
static int supplier_call(const struct idem_activity_env *env, const struct msg_task *t,
                         const struct restock_in *in, char *so_id, size_t so_len,
                         struct idem_activity_outcome *out)
{
	char header[INVENTORY_KEY_MAX + 64], fault[96];
	const char *headers[] = {header, NULL, NULL};
	char err[512];
	json_t *req = NULL; /* new */
	char *body = NULL;
	struct httpc_response resp = {0};
	int timeout =
	    env->peer_timeout_ms > 0 ? env->peer_timeout_ms : INVENTORY_SUPPLIER_TIMEOUT_MS;
	int rc = -1;

	if (env->naive)
		snprintf(header, sizeof(header),
		         "Idempotency-Key: %s/attempt-%" JSON_INTEGER_FORMAT, in->key, t->attempt);
	else
		snprintf(header, sizeof(header), "Idempotency-Key: %s", in->key);
	if (env->peer_fault != NULL) {
		snprintf(fault, sizeof(fault), "Idem-Fault: %s", env->peer_fault);
		headers[1] = fault;
	}
	/* product_id is the input's (checked): json_pack cannot refuse it. */
	req = json_pack("{s:s, s:I}", "product_id", in->product_id, "quantity", in->quantity);
	body = json_dumps(req, JSON_COMPACT);
	/* A supplier that is restarting (its own crash, or an injected one)
	 * is back within milliseconds: wait for it rather than fail the
	 * attempt, which would also shift every later attempt number. */
	httpc_wait_ready(env->peer,
	                 timeout < SUPPLIER_READY_WAIT_MS ? timeout : SUPPLIER_READY_WAIT_MS);
	if (httpc_request(env->peer, "POST", "/orders", headers, body, strlen(body), timeout, &resp,
	                  err, sizeof(err)) != 0) {
		idem_activity_fail(out, "SupplierUnavailable", 1, "supplier_order: %s", err);
		goto out;
	}
	rc = supplier_answer(env, &resp, so_id, so_len, out);
out:
	httpc_response_free(&resp);
	free(body);
	json_decref(req);
	return rc;
}

/* The supplier order id checkpointed by an earlier attempt's heartbeat. */
static int heartbeat_order_id(const struct msg_task *t, char *so_id, size_t so_len)
{
	const char *id = json_string_value(json_object_get(t->heartbeat, "supplier_order_id"));

	if (!json_is_object(t->heartbeat) || id == NULL || *id == '\0' || strlen(id) >= so_len)
		return 0;
	snprintf(so_id, so_len, "%s", id);
	return 1;
}

/* Inside the credit transaction: adds the quantity and records the
 * restock. Returns 0 with *stock_after. */
static int apply_restock(const struct idem_activity_env *env, const struct restock_in *in,
                         const char *so_id, json_int_t *stock_after,
                         struct idem_activity_outcome *out)
{
	char err[512];
	int64_t stock = 0;
	int found = appdb_stock_get(env->db, in->product_id, &stock, err, sizeof(err));

	if (found < 0)
		return idem_activity_db_error(env, out, "supplier_order", err);
	if (found == 0) {
		abandon(env);
		return idem_activity_fail(
		    out, "UnknownProduct", 0,
		    "unknown product \"%s\" (supplier order %s); add it with SEED_STOCK or "
		    "idemctl stock set",
		    in->product_id, in->key);
	}
	*stock_after = stock + in->quantity;
	if (add_stock(env->db, in->product_id, in->quantity, err, sizeof(err)) != 0 ||
	    insert_restock(env->db, in, so_id, *stock_after, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, "supplier_order", err);
	return 0;
}

/* One transaction: the key's restock if another attempt got there first,
 * else the credit and its row. */
static int credit(const struct idem_activity_env *env, const struct msg_task *t,
                  const struct restock_in *in, const char *so_id, enum so_source source,
                  struct idem_activity_outcome *out)
{
	struct applied prev = {0};
	json_int_t stock_after = 0;
	char err[512];
	int found = 0;

	if (appconn_begin(env->db, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, "supplier_order", err);
	if (!env->naive) {
		found = find_restock(env->db, in->key, &prev, err, sizeof(err));
		if (found < 0)
			return idem_activity_db_error(env, out, "supplier_order", err);
	}
	if (found == 0 && apply_restock(env, in, so_id, &stock_after, out) != 0)
		return -1;
	if (found == 0)
		idem_activity_at(env, FAULT_AFTER_EFFECT, t);
	if (appconn_commit(env->db, err, sizeof(err)) != 0)
		return idem_activity_db_error(env, out, "supplier_order", err);
	idem_activity_at(env, FAULT_AFTER_COMMIT, t);
	if (found)
		return restock_result(out, prev.product_id, prev.quantity, prev.supplier_order_id,
		                      prev.stock_after, FROM_RESTOCKS);
	return restock_result(out, in->product_id, in->quantity, so_id, stock_after, source);
}

/* Refuses an unknown product before anything is ordered. */
static int check_product(const struct idem_activity_env *env, const struct restock_in *in,
                         struct idem_activity_outcome *out)
{
	char err[512];
	int64_t stock = 0;
	int found = appdb_stock_get(env->db, in->product_id, &stock, err, sizeof(err));

	if (found < 0)
		return idem_activity_db_error(env, out, "supplier_order", err);
	if (found == 0)
		return idem_activity_fail(
		    out, "UnknownProduct", 0,
		    "unknown product \"%s\" (supplier order %s); add it with SEED_STOCK or "
		    "idemctl stock set",
		    in->product_id, in->key);
	return 0;
}

/* Checkpoints the supplier order id before the credit, so that an attempt
 * that dies from here on is resumed without calling the supplier again.
 * Best effort: the Idempotency-Key keeps the order single without it. */
static void checkpoint(const struct idem_activity_env *env, const char *so_id)
{
	json_t *details = NULL; /* new */

	if (env->heartbeat == NULL || env->naive)
		return;
	details = json_pack("{s:s}", "supplier_order_id", so_id);
	if (details != NULL)
		env->heartbeat(env->heartbeat_arg, details);
	json_decref(details);
}

/* The supplier order id: from an earlier attempt's heartbeat, else from
 * the supplier (then checkpointed). */
static int order_from_supplier(const struct idem_activity_env *env, const struct msg_task *t,
                               const struct restock_in *in, char *so_id, size_t so_len,
                               enum so_source *source, struct idem_activity_outcome *out)
{
	if (heartbeat_order_id(t, so_id, so_len)) {
		*source = FROM_HEARTBEAT;
		return 0;
	}
	if (supplier_call(env, t, in, so_id, so_len, out) != 0)
		return -1;
	*source = FROM_SUPPLIER;
	checkpoint(env, so_id);
	return 0;
}

static int supplier_order(const struct idem_activity_env *env, const struct msg_task *t,
                          struct idem_activity_outcome *out)
{
	struct restock_in in = {0};
	struct applied prev = {0};
	char so_id[SUPPLIER_ORDER_ID_MAX + 1];
	char err[512];
	enum so_source source = FROM_SUPPLIER;

	if (parse_restock(t->input, &in, out) != 0)
		return -1;
	/* Like update_inventory: a replay passes before_effect and
	 * after_commit too, so a planned kill there happens either way. */
	idem_activity_at(env, FAULT_BEFORE_EFFECT, t);
	if (!env->naive) {
		int found = find_restock(env->db, in.key, &prev, err, sizeof(err));
		if (found < 0)
			return idem_activity_db_error(env, out, "supplier_order", err);
		if (found) {
			idem_activity_at(env, FAULT_AFTER_COMMIT, t);
			return restock_result(out, prev.product_id, prev.quantity,
			                      prev.supplier_order_id, prev.stock_after,
			                      FROM_RESTOCKS);
		}
	}
	if (check_product(env, &in, out) != 0)
		return -1;
	if (order_from_supplier(env, t, &in, so_id, sizeof(so_id), &source, out) != 0)
		return -1;
	return credit(env, t, &in, so_id, source, out);
}

/* ---- the table ---- */

const struct idem_activity inventory_activities[] = {
    {"update_inventory", update_inventory},
    {"supplier_order", supplier_order},
    {0},
};
