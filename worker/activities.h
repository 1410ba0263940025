/* activities.h — the activities a worker runs against the app DB, one
 * attempt at a time:
 *
 *   update_inventory {"order_id":S,"product_id":S,"quantity":N}
 *     -> {"order_id","product_id","quantity","stock","replayed"}
 *     Decrements stock once per order_id: the lookup, the decrement and
 *     the orders row are one transaction.
 *   supplier_order {"product_id":S,"quantity":N,"key":"ns/workflow/step"}
 *     -> {"product_id","quantity","supplier_order_id","stock","replayed",
 *         "source"}
 *     Orders from the supplier with Idempotency-Key: key, checkpoints the
 *     supplier order id with a heartbeat, then credits stock once per key
 *     (guarded by a restocks row in one transaction). "source" says where
 *     the supplier order id came from: "supplier" (this attempt called
 *     it), "heartbeat" (an earlier attempt's checkpoint, t->heartbeat: the
 *     supplier was not called) or "restocks" (the credit was already
 *     applied: a replay, nothing was called or written).
 *
 * Both check their input with inventory_input_check (shared/
 * inventory_input.h), the check the workflow's start runs: an input it
 * refuses (InvalidInput, naming the field and its range) is one a start
 * could not have produced.
 *
 * Faults (shared/fault.h): the activities offer each crash point to
 * env->hooks, which worker/main.c uses to carry out a "kill" plan (and a
 * test to simulate a crash); a "supplier" plan reaches the supplier as
 * env->supplier_fault. The other kinds (error, delay) and the mid_reply
 * point are worker/main.c's business.
 *
 * In naive mode both run without their guards (and the supplier call
 * without a stable key, and without the heartbeat checkpoint), so a retry
 * after a commit applies twice: the control experiment the checker must
 * catch. */
#ifndef IDEM_ACTIVITIES_H
#define IDEM_ACTIVITIES_H

#include <jansson.h>
#include <sqlite3.h>

#include "fault.h"
#include "msg.h"

/* A seam for fault injection: at() is called at each crash point an
 * attempt reaches (FAULT_BEFORE_EFFECT: before the transaction or the
 * supplier call; FAULT_AFTER_EFFECT: effect written, not committed;
 * FAULT_AFTER_COMMIT: committed, result not yet built) and may kill the
 * process (or _exit, in a test). FAULT_MID_REPLY is never offered here:
 * the reply is worker/main.c's. A replay skips FAULT_AFTER_EFFECT (there
 * is no effect), a refusal stops after FAULT_BEFORE_EFFECT. When at() is
 * called no statement is left unfinalized and no heap memory is held by
 * the attempt. NULL hooks = no faults. */
struct activity_hooks {
	void (*at)(void *arg, enum fault_point p, const struct msg_task *t);
	void *arg;
};

struct activity_env {
	sqlite3 *db;                        /* the app DB, opened by the caller */
	const char *supplier_endpoint;      /* SUPPLIER_SOCKET or http://HOST:PORT */
	int supplier_timeout_ms;            /* 0 = ACTIVITY_SUPPLIER_TIMEOUT_MS */
	int naive;                          /* run without the idempotency guards */
	const struct activity_hooks *hooks; /* may be NULL */
	/* supplier_order sends it to the supplier as the Idem-Fault header
	 * ("unavailable" or "record_then_die", see worker/supplier.c);
	 * NULL = none. update_inventory ignores it. */
	const char *supplier_fault;
	/* Checkpoints progress: supplier_order calls it once the supplier
	 * has answered with an order id, before the credit, with details
	 * {"supplier_order_id":"SO-n"} (borrowed), so that the next attempt
	 * resumes from there (t->heartbeat) without calling the supplier
	 * again. Returns 0 or -1; a failure does not fail the attempt (the
	 * Idempotency-Key keeps the order single anyway). NULL = none. */
	int (*heartbeat)(void *arg, json_t *details);
	void *heartbeat_arg;
};

#define ACTIVITY_SUPPLIER_TIMEOUT_MS 5000

struct activity_outcome {
	json_t *result; /* NEW reference when ok; the caller decrefs it */
	char error_type[64];
	char error_message[512];
	int retryable;
};

/* Runs one attempt of t->activity. Returns 0 with out->result, or -1 with
 * the error fields set. Unknown activity -> non-retryable "UnknownActivity"
 * naming it. Error types: InvalidInput, UnknownProduct, InsufficientStock,
 * SupplierRejected (non-retryable); DatabaseError, SupplierUnavailable,
 * InternalError (retryable). */
int activity_run(const struct activity_env *env, const struct msg_task *t,
                 struct activity_outcome *out);

#endif
