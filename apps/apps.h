/* apps.h — the apps built into idem's programs (apps/apps.c lists them).
 * Adding an app: its folder apps/<name>/ with an idem_app, one line in
 * apps.c and one in apps/CMakeLists.txt; nothing in the engine. */
#ifndef IDEM_APPS_H
#define IDEM_APPS_H

#include <stddef.h>

#include "idem_app.h"

/* The app called name, or NULL. */
const struct idem_app *apps_find(const char *name);
/* The app APP names: a built-in app's name, or a path with a '/' (a
 * directory holding idem.json, or the file: apps/file/file_app.h),
 * loaded once. Returns NULL with err naming APP and the fix. */
const struct idem_app *apps_load(const char *name, char *err, size_t errlen);
/* "inventory, transfer": the names, for messages. */
const char *apps_names(void);
/* Adds every app's configuration keys to the config (config_add_keys):
 * a program calls it before it loads its config, whichever APP it runs,
 * so that a .env written for any app reads. Returns 0, or -1 with err. */
int apps_add_config_keys(char *err, size_t errlen);

#endif
