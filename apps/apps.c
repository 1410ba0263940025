/* apps.c — the list of apps built in. */
#include "apps.h"

#include <stdio.h>
#include <string.h>

#include "file_app.h"

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

const struct idem_app *apps_load(const char *name, char *err, size_t errlen)
{
	static const struct idem_app *loaded;
	static char loaded_name[4096];
	const struct idem_app *app;

	if (strchr(name, '/') == NULL) {
		app = apps_find(name);
		if (app == NULL)
			snprintf(err, errlen,
			         "APP=%s: no app of that name is built in (known: %s); an app "
			         "defined by its own %s is given by its directory, e.g. "
			         "APP=./%s",
			         name, apps_names(), FILE_APP_NAME, name);
		return app;
	}
	if (loaded != NULL && strcmp(loaded_name, name) == 0)
		return loaded;
	app = file_app_load(name, apps_find, err, errlen);
	if (app != NULL) {
		loaded = app;
		snprintf(loaded_name, sizeof(loaded_name), "%s", name);
	}
	return app;
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
