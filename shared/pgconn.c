/* pgconn.c — see pgconn.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "pgconn.h"

int pgconn_is_url(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

void pgconn_redact(const char *url, char *out, size_t outlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &perr);
	const char *user = "", *host = "", *port = "", *db = "";
	int secret = 0;

	if (!pgconn_is_url(url)) {
		/* A file: nothing to hide. */
		PQconninfoFree(opts);
		PQfreemem(perr);
		snprintf(out, outlen, "%s", url);
		return;
	}
	PQfreemem(perr);
	if (opts == NULL) {
		/* Not parsed: nothing of it is shown, for it may hold a password. */
		snprintf(out, outlen, "%s... (not a valid connection string)",
		         strncmp(url, "postgres://", 11) == 0 ? "postgres://" : "postgresql://");
		return;
	}
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		const char *v = o->val != NULL ? o->val : "";

		if ((strcmp(o->keyword, "password") == 0 ||
		     strcmp(o->keyword, "sslpassword") == 0) &&
		    *v != '\0')
			secret = 1;
		else if (strcmp(o->keyword, "user") == 0)
			user = v;
		else if (strcmp(o->keyword, "host") == 0)
			host = v;
		else if (strcmp(o->keyword, "port") == 0)
			port = v;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = v;
	}
	if (!secret)
		snprintf(out, outlen, "%s", url);
	else if (*host == '/' || *host == '\0')
		snprintf(out, outlen, "postgresql://%s:***@/%s%s%s%s%s", user, db,
		         *host ? "?host=" : "", host, *port ? (*host ? "&port=" : "?port=") : "",
		         port);
	else
		snprintf(out, outlen, "postgresql://%s:***@%s%s%s/%s", user, host, *port ? ":" : "",
		         port, db);
	PQconninfoFree(opts);
}

int pgconn_fail(PGconn *c, const PGresult *r, const char *what, char *err, size_t errlen)
{
	const char *m = r != NULL ? PQresultErrorMessage(r) : "";
	size_t n;

	if (m == NULL || *m == '\0')
		m = c != NULL ? PQerrorMessage(c) : "out of memory";
	n = strlen(m);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	snprintf(err, errlen, "%s: %.*s", what, (int)n, m);
	return -1;
}

PGresult *pgconn_ok(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen)
{
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	pgconn_fail(c, r, what, err, errlen);
	PQclear(r);
	return NULL;
}

int pgconn_exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = pgconn_ok(c, PQexec(c, sql), what, err, errlen);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* Whether a failed connection may succeed later: the server is down or
 * starting ("the database system is starting up"), not a bad password
 * or database name. */
static int worth_retrying(PGconn *c)
{
	const char *m = PQerrorMessage(c);

	return strstr(m, "Connection refused") != NULL || strstr(m, "No such file") != NULL ||
	       strstr(m, "starting up") != NULL || strstr(m, "shutting down") != NULL ||
	       strstr(m, "recovery") != NULL;
}

PGconn *pgconn_open(const char *url, int wait_ms, char *err, size_t errlen)
{
	static const char setup[] = "SET synchronous_commit = on; SET client_encoding = 'UTF8';"
	                            " SET TimeZone = 'UTC'; SET client_min_messages = warning";
	int64_t until = clock_mono_ms() + wait_ms;
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &perr);
	PGconn *c;

	if (opts == NULL) {
		/* libpq's message may quote the password: not shown. */
		PQfreemem(perr);
		snprintf(err, errlen,
		         "not a valid PostgreSQL connection string (the form is "
		         "postgresql://[user[:password]@][host][:port][/dbname][?param=value&...], "
		         "with %%-encoding inside each part)");
		return NULL;
	}
	PQconninfoFree(opts);
	for (;;) {
		c = PQconnectdb(url);
		if (PQstatus(c) == CONNECTION_OK)
			break;
		if (!worth_retrying(c) || clock_mono_ms() >= until) {
			pgconn_fail(c, NULL, "cannot connect to PostgreSQL", err, errlen);
			PQfinish(c);
			return NULL;
		}
		PQfinish(c);
		nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
	}
	if (pgconn_exec(c, setup, "PostgreSQL session set-up", err, errlen) != 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}
