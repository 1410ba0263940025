/* workflow.c — the inventory workflow (the seed's): update_inventory,
 * then supplier_order when the stock fell below the reorder threshold,
 * and its activities' options. Deterministic: it decides from its input
 * and the activities' results only. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "inventory.h"
#include "inventory_input.h"

/* supplier_order is step 1, after update_inventory: its key is
 * "namespace/workflow_id/1". */
#define INVENTORY_SUPPLIER_STEP 1

/* Checks the input with the activities' own check (inventory_input.h)
 * and records the reorder parameters in it, so that a later change of
 * REORDER_* in the config cannot change what a replay decides. */
static int inventory_prepare(const struct idem_workflow *type, json_t *input,
                             const struct idem_config *cfg, char *err, size_t errlen)
{
	(void)type;
	if (inventory_input_check(input, INVENTORY_START, err, errlen) != 0)
		return -1;
	if (json_object_get(input, "reorder_threshold") == NULL)
		json_object_set_new(input, "reorder_threshold",
		                    json_integer(config_int(cfg, "REORDER_THRESHOLD")));
	if (json_object_get(input, "reorder_quantity") == NULL)
		json_object_set_new(input, "reorder_quantity",
		                    json_integer(config_int(cfg, "REORDER_QUANTITY")));
	return 0;
}

/* The supplier order key must fit the supplier's Idempotency-Key limit,
 * which supplier_order checks (inventory_input.h). */
static int inventory_check_ids(const char *ns, const char *workflow_id, char *err, size_t errlen)
{
	char key[512];
	int len =
	    inventory_supplier_key(key, sizeof(key), ns, workflow_id, INVENTORY_SUPPLIER_STEP);
	int room = INVENTORY_KEY_MAX - (len - (int)strlen(workflow_id));

	if (len <= INVENTORY_KEY_MAX)
		return 0;
	if (room < 1) {
		snprintf(err, errlen,
		         "namespace is %zu bytes, too long for the supplier order key "
		         "namespace/workflow_id/%d (at most %d bytes): give a namespace of at most "
		         "%d bytes",
		         strlen(ns), INVENTORY_SUPPLIER_STEP, INVENTORY_KEY_MAX,
		         INVENTORY_KEY_MAX - 4);
		return -1;
	}
	snprintf(err, errlen,
	         "workflow_id is %zu bytes, over the %d that namespace \"%s\" (%zu bytes) leaves: "
	         "the supplier order key namespace/workflow_id/%d must fit the supplier's "
	         "%d-byte Idempotency-Key; give a shorter workflow_id or namespace",
	         strlen(workflow_id), room, ns, strlen(ns), INVENTORY_SUPPLIER_STEP,
	         INVENTORY_KEY_MAX);
	return -1;
}

static json_int_t int_field(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* update_inventory, then supplier_order when the stock fell below the
 * threshold. The supplier key is namespace/workflow_id/step: one supplier
 * order per workflow, whatever happens to the attempts (it fits the
 * supplier's limit: inventory_check_ids refused longer ids at start). */
static enum idem_wf_outcome inventory_run(struct idem_wf_run *run)
{
	const json_t *in = run->input;
	json_t *r1 = NULL, *r2 = NULL;
	json_int_t stock, threshold = int_field(in, "reorder_threshold");
	char key[512];
	int rc;

	rc = idem_wf_activity(run, "update_inventory",
	                      json_pack("{s:O, s:O, s:O}", "order_id",
	                                json_object_get(in, "order_id"), "product_id",
	                                json_object_get(in, "product_id"), "quantity",
	                                json_object_get(in, "quantity")),
	                      &r1);
	if (rc <= 0)
		return rc == 0 ? IDEM_WF_SUSPEND : IDEM_WF_FAIL;
	stock = int_field(r1, "stock");
	if (stock >= threshold) {
		run->result = json_pack("{s:I, s:b, s:I}", "stock_after_order", stock, "restocked",
		                        0, "final_stock", stock);
		return IDEM_WF_DONE;
	}
	assert(run->next_step == INVENTORY_SUPPLIER_STEP);
	inventory_supplier_key(key, sizeof(key), run->namespace_, run->workflow_id, run->next_step);
	rc = idem_wf_activity(run, "supplier_order",
	                      json_pack("{s:O, s:O, s:s}", "product_id",
	                                json_object_get(in, "product_id"), "quantity",
	                                json_object_get(in, "reorder_quantity"), "key", key),
	                      &r2);
	if (rc <= 0)
		return rc == 0 ? IDEM_WF_SUSPEND : IDEM_WF_FAIL;
	run->result = json_pack(
	    "{s:I, s:b, s:O, s:O, s:I}", "stock_after_order", stock, "restocked", 1,
	    "supplier_order_id", json_object_get(r2, "supplier_order_id"), "restock_quantity",
	    json_object_get(r2, "quantity"), "final_stock", int_field(r2, "stock"));
	return IDEM_WF_DONE;
}

const struct idem_workflow inventory_workflows[] = {
    {.name = "inventory",
     .run = inventory_run,
     .prepare = inventory_prepare,
     .check_ids = inventory_check_ids,
     .id_field = "order_id"},
    {0},
};

/* supplier_order heartbeats the supplier order id once the supplier has
 * answered, so HEARTBEAT_TIMEOUT applies to it; a rejection by the
 * supplier or an unknown product will not heal by retrying. The retry
 * policies take the config's defaults (zero fields). */
const struct idem_activity_options inventory_options[] = {
    {.name = "update_inventory", .non_retryable = "InvalidInput,UnknownProduct,InsufficientStock"},
    {.name = "supplier_order",
     .heartbeats = 1,
     .non_retryable = "InvalidInput,UnknownProduct,SupplierRejected",
     .peer = 1},
    {0},
};
