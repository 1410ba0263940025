/* apps.c — the list of apps built in. */
#include "apps.h"

#include <string.h>

extern const struct idem_app inventory_app;
extern const struct idem_app transfer_app;

static const struct idem_app *const apps[] = {&inventory_app, &transfer_app};

const struct idem_app *apps_find(const char *name)
{
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		if (strcmp(apps[i]->name, name) == 0)
			return apps[i];
	return NULL;
}

int apps_add_config_keys(char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		if (apps[i]->keys != NULL && config_add_keys(apps[i]->keys, err, errlen) != 0)
			return -1;
	return 0;
}

const char *apps_names(void)
{
	return "inventory, transfer";
}
