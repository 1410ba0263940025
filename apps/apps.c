/* apps.c — the list of apps built in. */
#include "apps.h"

#include <string.h>

extern const struct idem_app inventory_app;

static const struct idem_app *const apps[] = {&inventory_app};

const struct idem_app *apps_find(const char *name)
{
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		if (strcmp(apps[i]->name, name) == 0)
			return apps[i];
	return NULL;
}

const char *apps_names(void)
{
	return "inventory";
}
