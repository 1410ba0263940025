/* pgsnap.h — a consistent copy of a PostgreSQL state DB into a SQLite
 * file of the same tables (state_schema.h), for the checker: its rules
 * are SQL over the state and app DBs together, which it runs on SQLite.
 * The copy reads one REPEATABLE READ snapshot through its own
 * connection, so a supervisor that keeps running changes nothing of it. */
#ifndef IDEM_PGSNAP_H
#define IDEM_PGSNAP_H

#include <stddef.h>

/* Writes the state at url into a new SQLite file at path (which must not
 * exist). Returns 0, or -1 with err. */
int pgsnap_copy(const char *url, const char *path, char *err, size_t errlen);

#endif
