/* pgconn.h — PostgreSQL connections for the state DB: telling a
 * connection string from a file path, connecting (with a bounded wait for
 * a server that is still starting), and the connection string with its
 * password hidden, for logs and errors. */
#ifndef IDEM_PGCONN_H
#define IDEM_PGCONN_H

#include <libpq-fe.h>
#include <stddef.h>

/* How long a connection at start-up waits for a server that refuses or
 * is starting before it gives up. */
#define PGCONN_WAIT_MS 10000

/* Whether STATE_DATABASE names PostgreSQL: a postgresql:// or postgres://
 * URI. "postgresql://" alone takes everything from the PG* environment. */
int pgconn_is_url(const char *s);

/* Copies url to out with the password, if any, replaced by "***". */
void pgconn_redact(const char *url, char *out, size_t outlen);

/* Connects, retrying for up to wait_ms while the server refuses
 * connections or is starting (0: once). Sets synchronous_commit on, UTF8
 * and UTC. Returns the connection, or NULL with err naming the server. */
PGconn *pgconn_open(const char *url, int wait_ms, char *err, size_t errlen);

/* r when it succeeded (PGRES_COMMAND_OK or PGRES_TUPLES_OK); else NULL,
 * with err "what: message" and r cleared. */
PGresult *pgconn_ok(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen);

/* Runs sql with no parameters; 0, or -1 with err "what: message". */
int pgconn_exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen);

/* The error of a failed result (or the connection's), trimmed of its
 * newline, as "what: message". Returns -1. */
int pgconn_fail(PGconn *c, const PGresult *r, const char *what, char *err, size_t errlen);

#endif
