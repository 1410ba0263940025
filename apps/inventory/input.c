/* input.c — the inventory inputs' one check (inventory_input.h).
 * A schema is a list of fields; a field has a kind and a range, and a
 * field that two schemas share is one entry, so its range is the same in
 * both. */
#include "inventory_input.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"
#include "textbuf.h"

#define NAME_SHOWN_MAX 64 /* bytes of an unknown field's name put in a message */

enum field_kind { FIELD_TEXT, FIELD_INT };

struct field {
	const char *name;
	enum field_kind kind;
	json_int_t min, max; /* a text's length in bytes, an integer's value */
	int required;
};

static const struct field order_id = {"order_id", FIELD_TEXT, 1, INVENTORY_ORDER_ID_MAX, 1};
static const struct field product_id = {"product_id", FIELD_TEXT, 1, INVENTORY_PRODUCT_ID_MAX, 1};
/* An order's quantity, and a supplier order's: the start's
 * reorder_quantity becomes supplier_order's quantity, so the two ranges
 * are the same. */
static const struct field quantity = {"quantity", FIELD_INT, 1, INVENTORY_QUANTITY_MAX, 1};
static const struct field threshold = {"reorder_threshold", FIELD_INT, 0, INVENTORY_QUANTITY_MAX,
                                       0};
static const struct field reorder = {"reorder_quantity", FIELD_INT, 1, INVENTORY_QUANTITY_MAX, 0};
static const struct field key = {"key", FIELD_TEXT, 1, INVENTORY_KEY_MAX, 1};

static const struct field *const start_fields[] = {&order_id,  &product_id, &quantity,
                                                   &threshold, &reorder,    NULL};
static const struct field *const update_fields[] = {&order_id, &product_id, &quantity, NULL};
static const struct field *const supplier_fields[] = {&product_id, &quantity, &key, NULL};

static const struct field *const *schema_fields(enum inventory_schema s)
{
	switch (s) {
	case INVENTORY_START:
		return start_fields;
	case INVENTORY_UPDATE:
		return update_fields;
	default:
		return supplier_fields;
	}
}

static int failf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int failf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* What to give for f: "a string of 1..128 bytes", "an integer 0..1000000000". */
static void wanted(const struct field *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT,
	         f->kind == FIELD_TEXT ? "a string of" : "an integer", f->min, f->max);
	if (f->kind == FIELD_TEXT)
		snprintf(buf + strlen(buf), len - strlen(buf), " bytes");
}

static int check_field(const struct field *f, const json_t *v, char *err, size_t errlen)
{
	int text = f->kind == FIELD_TEXT;
	char want[64];
	json_int_t n;

	wanted(f, want, sizeof(want));
	if (v == NULL)
		return failf(err, errlen, "input.%s is missing: give %s", f->name, want);
	if (text ? !json_is_string(v) : !json_is_integer(v))
		return failf(err, errlen, "input.%s is %s: give %s", f->name, msg_json_kind(v),
		             want);
	n = text ? (json_int_t)strlen(json_string_value(v)) : json_integer_value(v);
	if (n >= f->min && n <= f->max)
		return 0;
	if (text)
		return failf(err, errlen,
		             "input.%s is %" JSON_INTEGER_FORMAT " bytes long: give %s", f->name, n,
		             want);
	return failf(err, errlen, "input.%s=%" JSON_INTEGER_FORMAT " is out of range: give %s",
	             f->name, n, want);
}

static const struct field *find_field(const struct field *const *fields, const char *name)
{
	for (; *fields != NULL; fields++)
		if (strcmp((*fields)->name, name) == 0)
			return *fields;
	return NULL;
}

/* The first member of input that fields do not name. */
static int check_known(const json_t *input, const struct field *const *fields, char *err,
                       size_t errlen)
{
	const char *name;
	json_t *v;
	char known[256] = "";

	json_object_foreach((json_t *)input, name, v)
	{
		if (find_field(fields, name) != NULL)
			continue;
		for (const struct field *const *f = fields; *f != NULL; f++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
			         f == fields ? "" : ", ", (*f)->name);
		return failf(err, errlen, "input.%.*s%s is not a known field: the fields are %s",
		             textbuf_utf8_prefix(name, NAME_SHOWN_MAX), name,
		             strlen(name) > NAME_SHOWN_MAX ? "..." : "", known);
	}
	return 0;
}

int inventory_input_check(const json_t *input, enum inventory_schema schema, char *err,
                          size_t errlen)
{
	const struct field *const *fields = schema_fields(schema);

	if (!json_is_object(input))
		return failf(err, errlen, "input is %s: give a JSON object",
		             input != NULL ? msg_json_kind(input) : "missing");
	if (check_known(input, fields, err, errlen) != 0)
		return -1;
	for (; *fields != NULL; fields++) {
		const json_t *v = json_object_get(input, (*fields)->name);

		if ((v != NULL || (*fields)->required) && check_field(*fields, v, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int inventory_supplier_key(char *buf, size_t len, const char *ns, const char *workflow_id, int step)
{
	return snprintf(buf, len, "%s/%s/%d", ns, workflow_id, step);
}
