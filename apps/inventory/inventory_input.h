/* inventory_input.h — the inputs of the inventory workflow and of its two
 * activities, checked by one function: by the workflow type's prepare()
 * when a start is asked (supervisor/workflow.c) and by update_inventory
 * and supplier_order before they touch anything (activities.c).
 * So whatever an activity would refuse as InvalidInput is refused at
 * start, and the two sides cannot drift apart. Never logs.
 *
 *   start             order_id, product_id, quantity, reorder_threshold?,
 *                     reorder_quantity?
 *   update_inventory  order_id, product_id, quantity
 *   supplier_order    product_id, quantity (the start's reorder_quantity),
 *                     key ("namespace/workflow_id/step", inventory_supplier_key)
 *
 * Every field is required but the two reorder_*; no other field is
 * allowed. */
#ifndef IDEM_INVENTORY_INPUT_H
#define IDEM_INVENTORY_INPUT_H

#include <jansson.h>
#include <stddef.h>

#define INVENTORY_ORDER_ID_MAX 128        /* bytes */
#define INVENTORY_PRODUCT_ID_MAX 64       /* bytes: CONFIG_PRODUCT_ID_MAX */
#define INVENTORY_QUANTITY_MAX 1000000000 /* REORDER_QUANTITY's bound */
/* The supplier's limit on an Idempotency-Key (supplier.c KEY_MAX):
 * the supplier order key must fit in it. */
#define INVENTORY_KEY_MAX 255

enum inventory_schema {
	INVENTORY_START,          /* the workflow's input, as a client sends it */
	INVENTORY_UPDATE,         /* update_inventory's */
	INVENTORY_SUPPLIER_ORDER, /* supplier_order's */
};

/* Checks input against schema: a JSON object with no unknown field and
 * every required one, each of its type and in its range. Returns 0, or -1
 * with err naming the field, what is wrong and what to give
 * ("input.reorder_quantity=0 is out of range: give an integer
 * 1..1000000000"). */
int inventory_input_check(const json_t *input, enum inventory_schema schema, char *err,
                          size_t errlen);

/* Writes the supplier order key of step `step` of workflow (ns,
 * workflow_id) into buf and returns its length, which is more than
 * INVENTORY_KEY_MAX when the ids are too long for it (and len or more when
 * it did not fit in buf). */
int inventory_supplier_key(char *buf, size_t len, const char *ns, const char *workflow_id,
                           int step);

#endif
