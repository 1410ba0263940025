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
	const char *auth = strstr(url, "://"), *end, *at, *colon, *pw;
	size_t n;

	snprintf(out, outlen, "%s", url);
	if (auth == NULL)
		return;
	auth += 3;
	end = auth + strcspn(auth, "/?");
	at = memchr(auth, '@', (size_t)(end - auth));
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon != NULL) {
		n = (size_t)(colon + 1 - url);
		snprintf(out, outlen, "%.*s***%s", (int)n, url, at);
	}
	/* ?password=... or &password=... in the query */
	pw = strstr(out, "password=");
	if (pw != NULL && pw > out && (pw[-1] == '?' || pw[-1] == '&')) {
		const char *stop = pw + 9 + strcspn(pw + 9, "&");
		char tail[1024];

		snprintf(tail, sizeof(tail), "%s", stop);
		n = (size_t)(pw + 9 - out);
		if (n + 3 < outlen)
			snprintf(out + n, outlen - n, "***%s", tail);
	}
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

int pgconn_exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = pgconn_fail(c, r, what, err, errlen);
	PQclear(r);
	return rc;
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
		snprintf(err, errlen, "not a valid PostgreSQL connection string: %s",
		         perr != NULL ? perr : "out of memory");
		if (perr != NULL) {
			size_t n = strlen(err);
			while (n > 0 && err[n - 1] == '\n')
				err[--n] = '\0';
		}
		PQfreemem(perr);
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
