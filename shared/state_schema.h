/* state_schema.h — the state DB's tables on SQLite, one entry per schema
 * version: the store migrates a state DB with them (supervisor/store.c),
 * and a snapshot of a PostgreSQL state DB is written in them for the
 * checker (pgsnap.c). Append, never edit. */
#ifndef IDEM_STATE_SCHEMA_H
#define IDEM_STATE_SCHEMA_H

extern const char *const state_schema_sqlite[];
extern const int state_schema_sqlite_n;

#endif
