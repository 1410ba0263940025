/* input.c — the transfer input's one check (transfer_input.h): a list of
 * fields, each an id or an amount, then the rule between two of them
 * (from != to). */
#include "ids.h"
#include "transfer_input.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "msg.h"
#include "textbuf.h"

#define NAME_SHOWN_MAX 64 /* bytes of an unknown field's name put in a message */

enum field_kind { FIELD_ID, FIELD_AMOUNT };

struct field {
	const char *name;
	enum field_kind kind;
};

static const struct field fields[] = {
    {"transfer_id", FIELD_ID},
    {"from", FIELD_ID},
    {"to", FIELD_ID},
    {"amount", FIELD_AMOUNT},
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

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

/* What to give for a field of kind k. */
static const char *wanted(enum field_kind k)
{
	_Static_assert(TRANSFER_ID_MAX == 64 && TRANSFER_AMOUNT_MAX == 1000000000,
	               "the messages say 64 and 1000000000");
	return k == FIELD_ID ? "a string of 1..64 characters of A-Z a-z 0-9 _ . -"
	                     : "an integer 1..1000000000";
}

static int check_id(const char *name, const json_t *v, char *err, size_t errlen)
{
	const char *s = json_string_value(v);

	if (!json_is_string(v))
		return failf(err, errlen, "input.%s is %s: give %s", name, msg_json_kind(v),
		             wanted(FIELD_ID));
	/* An embedded NUL would hide the rest of the id from every check. */
	if (strlen(s) != json_string_length(v) || !ids_name_ok(s, TRANSFER_ID_MAX))
		return failf(err, errlen, "input.%s=\"%.*s%s\" is not a valid id: give %s", name,
		             textbuf_utf8_prefix(s, NAME_SHOWN_MAX), s,
		             strlen(s) > NAME_SHOWN_MAX ? "..." : "", wanted(FIELD_ID));
	return 0;
}

static int check_amount(const char *name, const json_t *v, char *err, size_t errlen)
{
	json_int_t n = json_integer_value(v);

	if (!json_is_integer(v))
		return failf(err, errlen, "input.%s is %s: give %s", name, msg_json_kind(v),
		             wanted(FIELD_AMOUNT));
	if (n < 1 || n > TRANSFER_AMOUNT_MAX)
		return failf(err, errlen,
		             "input.%s=%" JSON_INTEGER_FORMAT " is out of range: give %s", name, n,
		             wanted(FIELD_AMOUNT));
	return 0;
}

static int known(const char *name)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].name, name) == 0)
			return 1;
	return 0;
}

/* The first member of input that is not one of the fields. */
static int check_known(const json_t *input, char *err, size_t errlen)
{
	const char *name;
	json_t *v;

	json_object_foreach((json_t *)input, name, v)
	{
		if (!known(name))
			return failf(
			    err, errlen,
			    "input.%.*s%s is not a known field: the fields are transfer_id, "
			    "from, to, amount",
			    textbuf_utf8_prefix(name, NAME_SHOWN_MAX), name,
			    strlen(name) > NAME_SHOWN_MAX ? "..." : "");
	}
	return 0;
}

int transfer_input_check(const json_t *input, char *err, size_t errlen)
{
	const char *from, *to;

	if (!json_is_object(input))
		return failf(err, errlen, "input is %s: give a JSON object",
		             input != NULL ? msg_json_kind(input) : "missing");
	if (check_known(input, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < NFIELDS; i++) {
		const json_t *v = json_object_get(input, fields[i].name);

		if (v == NULL)
			return failf(err, errlen, "input.%s is missing: give %s", fields[i].name,
			             wanted(fields[i].kind));
		if ((fields[i].kind == FIELD_ID ? check_id : check_amount)(fields[i].name, v, err,
		                                                           errlen) != 0)
			return -1;
	}
	from = json_string_value(json_object_get(input, "from"));
	to = json_string_value(json_object_get(input, "to"));
	if (strcmp(from, to) == 0)
		return failf(err, errlen,
		             "input.from and input.to are both \"%s\": give two different accounts",
		             from);
	return 0;
}
