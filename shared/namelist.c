/* namelist.c — see namelist.h. */
#include "namelist.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ids.h"

static const char *trim_span(const char *p, const char **end)
{
	while (p < *end && isspace((unsigned char)*p))
		p++;
	while (*end > p && isspace((unsigned char)(*end)[-1]))
		(*end)--;
	return p;
}

static int listed(const struct name_value *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return 1;
	return 0;
}

/* How much of an entry a message repeats. */
static int show_len(int len)
{
	return len > 80 ? 80 : len;
}

/* Parses entry number idx, the text [p, end), into *out. */
static int entry_parse(const struct namelist_spec *spec, int idx, const char *p, const char *end,
                       struct name_value *out, char *msg, size_t len)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	int n = (int)(end - p), namelen = colon ? (int)(colon - p) : 0;
	int numlen = colon ? (int)(end - colon - 1) : 0;
	char num[32];

	if (colon == NULL) {
		snprintf(msg, len, "entry %d \"%.*s\" is not %s (example: %s)", idx, show_len(n), p,
		         spec->shape, spec->example);
		return -1;
	}
	snprintf(out->name, sizeof(out->name), "%.*s", namelen, p);
	if (namelen > spec->name_max || !ids_name_ok(out->name, (size_t)spec->name_max)) {
		snprintf(msg, len,
		         "entry %d has a bad %s \"%.*s\" (allowed: 1..%d characters of "
		         "A-Z a-z 0-9 _ . -)",
		         idx, spec->name_word, show_len(namelen), p, spec->name_max);
		return -1;
	}
	snprintf(num, sizeof(num), "%.*s", numlen, colon + 1);
	if (numlen >= (int)sizeof(num) || config_parse_int(num, &out->value) != 0 ||
	    out->value < 0 || out->value > spec->value_max) {
		snprintf(msg, len,
		         "entry %d \"%.*s\" has a bad %s \"%.*s\" (allowed: 0..%" PRId64 ")", idx,
		         show_len(n), p, spec->value_word, show_len(numlen), colon + 1,
		         spec->value_max);
		return -1;
	}
	return 0;
}

int namelist_parse(const char *text, const struct namelist_spec *spec, struct name_value *out,
                   size_t *n, char *msg, size_t len)
{
	const char *p = text, *next, *start, *end;

	*n = 0;
	if (*p == '\0')
		return 0;
	for (;; p = next + 1) {
		next = p + strcspn(p, ",");
		end = next;
		start = trim_span(p, &end);
		if (*n == spec->max) {
			snprintf(msg, len, "has more than %zu %s", spec->max, spec->items);
			return -1;
		}
		if (entry_parse(spec, (int)*n + 1, start, end, &out[*n], msg, len) < 0)
			return -1;
		if (listed(out, *n, out[*n].name)) {
			snprintf(msg, len, "entry %d repeats %s \"%s\"", (int)*n + 1, spec->item,
			         out[*n].name);
			return -1;
		}
		(*n)++;
		if (*next == '\0')
			return 0;
	}
}
