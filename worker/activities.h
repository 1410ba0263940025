/* activities.h — the activities a worker runs against the app DB, one
 * attempt at a time:
 *
 *   update_inventory {"order_id":S,"product_id":S,"quantity":N}
 *     -> {"order_id","product_id","quantity","stock","replayed"}
 *     Decrements stock once per order_id: the lookup, the decrement and
 *     the orders row are one transaction.
 *   supplier_order {"product_id":S,"quantity":N,"key":"ns/workflow/step"}
 *     -> {"product_id","quantity","supplier_order_id","stock","replayed"}
 *     Orders from the supplier with Idempotency-Key: key, then credits
 *     stock once per key (guarded by a restocks row in one transaction).
 *
 * In naive mode both run without their guards (and the supplier call
 * without a stable key), so a retry after a commit applies twice: the
 * control experiment the checker must catch. */
#ifndef IDEM_ACTIVITIES_H
#define IDEM_ACTIVITIES_H

#include <jansson.h>
#include <sqlite3.h>

#include "msg.h"

/* Where an attempt can be made to die (DESIGN.md "Faults"). */
enum crash_point {
	CRASH_BEFORE_EFFECT, /* before the first effect (transaction or supplier call) */
	CRASH_AFTER_EFFECT,  /* effect written, transaction not yet committed */
	CRASH_AFTER_COMMIT,  /* committed, reply not yet sent */
	CRASH_MID_REPLY,     /* part of the reply frame written (worker/main.c) */
};

/* A seam for fault injection: at() is called at each crash point and may
 * kill the process (or longjmp, in a test). When it is called no statement
 * is left unfinalized and no heap memory is held by the attempt, so a
 * test may longjmp out and close the connection to simulate a crash.
 * NULL hooks = no faults. */
struct activity_hooks {
	void (*at)(void *arg, enum crash_point p, const struct msg_task *t);
	void *arg;
};

struct activity_env {
	sqlite3 *db;                        /* the app DB, opened by the caller */
	const char *supplier_endpoint;      /* SUPPLIER_SOCKET or http://HOST:PORT */
	int supplier_timeout_ms;            /* 0 = ACTIVITY_SUPPLIER_TIMEOUT_MS */
	int naive;                          /* run without the idempotency guards */
	const struct activity_hooks *hooks; /* may be NULL */
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

const char *activity_crash_point_name(enum crash_point p);

#endif
