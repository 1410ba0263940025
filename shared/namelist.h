/* namelist.h — "NAME:N,..." lists: how an app's config key names the rows
 * a new app database starts with (SEED_STOCK, TRANSFER_ACCOUNTS). Each
 * entry is a name (ids.h's name rule) and a value in 0..spec->value_max;
 * blanks around an entry are ignored, "" is the empty list, a name may
 * appear once. Nothing here logs. */
#ifndef IDEM_NAMELIST_H
#define IDEM_NAMELIST_H

#include <stddef.h>
#include <stdint.h>

#define NAMELIST_NAME_MAX 64 /* bytes: the longest name any spec may allow */

struct name_value {
	char name[NAMELIST_NAME_MAX + 1];
	int64_t value;
};

/* The words a list's messages use, and its bounds. */
struct namelist_spec {
	const char *shape;      /* "PRODUCT:STOCK" */
	const char *example;    /* "123456:1000" */
	const char *name_word;  /* "product id" */
	const char *value_word; /* "stock" */
	const char *item;       /* "product" */
	const char *items;      /* "products" */
	int name_max;           /* <= NAMELIST_NAME_MAX */
	int64_t value_max;
	size_t max; /* entries */
};

/* Parses text into out[0..spec->max), *n the count. Returns 0, or -1 with
 * msg naming the entry and what is wrong. */
int namelist_parse(const char *text, const struct namelist_spec *spec, struct name_value *out,
                   size_t *n, char *msg, size_t len);

#endif
