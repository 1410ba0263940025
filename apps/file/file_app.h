/* file_app.h — an app defined by a file, not compiled into idem: APP is
 * a directory holding idem.json (or the path of such a file). Its
 * activities are commands in any language (command.h), its workflows are
 * JSON (flow.h), its check is a command or SQL. The format is in
 * docs/own-activities.md; load() checks all of it at start-up and names
 * the file, the JSON path and the fix of the first mistake.
 *
 * A process loads one such app, for its whole life (the supervisor, a
 * worker, idemctl): the app and what it holds are never freed. */
#ifndef IDEM_FILE_APP_H
#define IDEM_FILE_APP_H

#include <stddef.h>

#include "idem_app.h"

/* The name of the file in an app's directory. */
#define FILE_APP_NAME "idem.json"

/* Loads the app at path (a directory, or its idem.json). base_find finds
 * a built-in app by name, for an app file that names a "base" whose
 * activities, databases and checks it reuses. Returns the app, or NULL
 * with err. */
const struct idem_app *file_app_load(const char *path,
                                     const struct idem_app *(*base_find)(const char *name),
                                     char *err, size_t errlen);

#endif
