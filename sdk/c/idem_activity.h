/* idem_activity.h — the header-only C SDK of idem command activities: input, crash points,
 * heartbeats, results (libc only).
 *
 *   #include "idem_activity.h"
 *   int main(void) {
 *       size_t n;
 *       char *in = idem_read_input(&n);          // the input JSON object
 *       idem_point("before_effect");             // may never return
 *       ...the effect, guarded by idem_idempotency_key()...
 *       idem_point("after_effect");
 *       idem_succeed("{\"ok\":true}");           // exit 0
 *   }
 *
 * Failures: idem_fail(type, message, retryable) writes {"error":{...}}
 * and exits 75 (retried) or 65 (failed for good). Outside idem (no IDEM_*
 * variables) idem_point() and idem_heartbeat() do nothing. Every function
 * is static inline: include the header in one or many files of a program.
 * It uses POSIX: compile with -std=gnu11, or -std=c11 with
 * _POSIX_C_SOURCE 200809L defined before the first #include. */
#ifndef IDEM_ACTIVITY_H
#define IDEM_ACTIVITY_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define IDEM_EX_OK 0
#define IDEM_EX_DATAERR 65             /* a non-retryable failure */
#define IDEM_EX_TEMPFAIL 75            /* a retryable failure */
#define IDEM_MAX_HEARTBEAT (60 * 1024) /* bytes of heartbeat JSON */
#define IDEM_MAX_POINT 63              /* bytes of a crash point's name */

/* The value of an environment variable holding a descriptor or a process
 * group, or -1 when unset or not a number. */
static inline long idem_env_number(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0 || n > INT_MAX)
		return -1;
	return n;
}

/* "namespace/workflow_id/step": the same for every attempt of the step;
 * NULL outside idem. */
static inline const char *idem_idempotency_key(void)
{
	return getenv("IDEM_IDEMPOTENCY_KEY");
}

/* The JSON details of the previous attempt's last heartbeat, or NULL. */
static inline const char *idem_previous_heartbeat(void)
{
	const char *v = getenv("IDEM_HEARTBEAT");

	return v != NULL && *v != '\0' ? v : NULL;
}

/* Non-zero when idem runs the naive control variant (IDEM_NAIVE=1). */
static inline int idem_naive(void)
{
	const char *v = getenv("IDEM_NAIVE");

	return v != NULL && strcmp(v, "1") == 0;
}

/* Sends one datagram to the worker on IDEM_CONTROL_FD. Returns 0, or -1
 * (errno set; ENOTCONN when there is no worker). */
static inline int idem__send(const char *buf, size_t len)
{
	long fd = idem_env_number("IDEM_CONTROL_FD");
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		errno = ENOTCONN;
		return -1;
	}
	do
		n = send((int)fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* Writes s into buf[o, end) as a logfmt value: bare when it can be, else
 * quoted with '"', '\\' and control bytes escaped (cut to fit, still
 * quoted). Returns the new end of what buf holds (no NUL is written). */
static inline size_t idem__logfmt(char *buf, size_t o, size_t end, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	int quote = *s == '\0';

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
			quote = 1;
	if (quote) {
		if (o + 2 > end)
			return o;
		buf[o++] = '"';
		end--; /* room for the closing quote */
	}
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		char esc[4];
		size_t n = 0;

		if (!quote || (*p > 0x1f && *p != '"' && *p != '\\' && *p != 0x7f)) {
			esc[n++] = (char)*p;
		} else if (*p == '"' || *p == '\\' || *p == '\n' || *p == '\r' || *p == '\t') {
			esc[n++] = '\\';
			esc[n++] = *p == '\n'   ? 'n'
			           : *p == '\r' ? 'r'
			           : *p == '\t' ? 't'
			                        : (char)*p;
		} else {
			esc[n++] = '\\';
			esc[n++] = 'x';
			esc[n++] = hex[*p >> 4];
			esc[n++] = hex[*p & 15];
		}
		if (o + n > end)
			break;
		memcpy(buf + o, esc, n);
		o += n;
	}
	if (quote)
		buf[o++] = '"';
	return o;
}

/* Writes on fd the line idem-point writes on idem's log before a planned
 * kill (logfmt: ts, level, role, pid, msg, point, wf, step, attempt,
 * activity, command_pid). */
static inline void idem__kill_line(int fd, const char *point)
{
	static const char *const fields[][2] = {{" wf=", "IDEM_WORKFLOW_ID"},
	                                        {" step=", "IDEM_STEP"},
	                                        {" attempt=", "IDEM_ATTEMPT"},
	                                        {" activity=", "IDEM_ACTIVITY"}};
	char line[2048], ts[40] = "";
	struct timespec now;
	struct tm tm;
	size_t o, i;
	int n;

	if (clock_gettime(CLOCK_REALTIME, &now) == 0 && gmtime_r(&now.tv_sec, &tm) != NULL) {
		size_t t = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + t, sizeof(ts) - t, ".%03ldZ", now.tv_nsec / 1000000L);
	}
	n = snprintf(line, 256,
	             "ts=%s level=info role=worker pid=%ld msg=\"injected fault: kill\" point=%s",
	             ts, (long)getpid(), point);
	o = n < 0 ? 0 : n < 256 ? (size_t)n : 255;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) { /* at most 256 + 4 * 400 bytes */
		const char *v = getenv(fields[i][1]);

		memcpy(line + o, fields[i][0], strlen(fields[i][0]));
		o += strlen(fields[i][0]);
		o = idem__logfmt(line, o, o + 384, v != NULL ? v : i == 0 ? "" : "?");
	}
	n = snprintf(line + o, sizeof(line) - o, " command_pid=%ld\n", (long)getpid());
	o += n > 0 ? (size_t)n : 0;
	if (write(fd, line, o < sizeof(line) ? o : sizeof(line) - 1) < 0) {
		/* nothing to do: the kill matters, not the line */
	}
}

/* A crash point. When this attempt must die here (IDEM_KILL_AT == name),
 * writes one line to IDEM_LOG_FD and SIGKILLs the process group IDEM_PGID:
 * it never returns (the line is the one idem-point writes). Otherwise
 * tells the worker "point NAME" and returns 0
 * (-1 when there is no worker to tell, or -1 with EINVAL for a name that
 * is not 1..63 of a-z 0-9 _). */
static inline int idem_point(const char *name)
{
	char buf[6 + IDEM_MAX_POINT + 1];
	const char *kill_at = getenv("IDEM_KILL_AT");
	size_t len = name != NULL ? strlen(name) : 0;
	size_t i;

	if (len == 0 || len > IDEM_MAX_POINT) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_')) {
			errno = EINVAL;
			return -1;
		}
	if (kill_at != NULL && strcmp(kill_at, name) == 0) {
		long log_fd = idem_env_number("IDEM_LOG_FD");
		long pgid = idem_env_number("IDEM_PGID");

		if (log_fd >= 0)
			idem__kill_line((int)log_fd, name);
		if (pgid > 1)
			kill((pid_t)-pgid, SIGKILL);
		kill(getpid(), SIGKILL); /* not in that group, or no group given */
		_exit(128 + SIGKILL);
	}
	memcpy(buf, "point ", 6);
	memcpy(buf + 6, name, len);
	return idem__send(buf, 6 + len);
}

/* Checkpoints progress: json_text (a JSON value, at most 60 KiB; line
 * breaks are sent as spaces) reaches the next attempt as
 * idem_previous_heartbeat(). Returns 0, or -1 (EINVAL: empty or too
 * large; ENOTCONN: outside idem). */
static inline int idem_heartbeat(const char *json_text)
{
	size_t len = json_text != NULL ? strlen(json_text) : 0;
	char *buf;
	size_t i;
	int r;

	if (len == 0 || len > IDEM_MAX_HEARTBEAT) {
		errno = EINVAL;
		return -1;
	}
	buf = malloc(10 + len);
	if (buf == NULL)
		return -1;
	memcpy(buf, "heartbeat ", 10);
	for (i = 0; i < len; i++)
		buf[10 + i] = json_text[i] == '\n' || json_text[i] == '\r' ? ' ' : json_text[i];
	r = idem__send(buf, 10 + len);
	free(buf);
	return r;
}

/* Reads all of stdin: the input JSON object, NUL-terminated, malloc'd
 * (free it). *len (may be NULL) gets its length. NULL on a read error or
 * out of memory. */
static inline char *idem_read_input(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	if (len != NULL)
		*len = 0;
	if (buf == NULL)
		return NULL;
	for (;;) {
		ssize_t r;

		if (cap - n < 2) {
			char *more = cap > ((size_t)-1) / 2 ? NULL : realloc(buf, cap * 2);
			if (more == NULL) {
				free(buf);
				return NULL;
			}
			buf = more;
			cap *= 2;
		}
		r = read(STDIN_FILENO, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

/* Writes s as a JSON string literal, quotes included: '"', '\\' and
 * control bytes escaped, a byte that is not part of valid UTF-8 written
 * as U+FFFD. NULL is written as null. Returns 0, or EOF on a write error. */
static inline int idem_fputs_json(const char *s, FILE *f)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return fputs("null", f) < 0 ? EOF : 0;
	if (putc('"', f) == EOF)
		return EOF;
	while (*p != '\0') {
		unsigned c = *p;
		size_t n = 0, i;
		unsigned long cp;

		if (c == '"' || c == '\\') {
			if (putc('\\', f) == EOF || putc((int)c, f) == EOF)
				return EOF;
			p++;
			continue;
		}
		if (c < 0x20) {
			const char *e = c == '\n'   ? "\\n"
			                : c == '\r' ? "\\r"
			                : c == '\t' ? "\\t"
			                : c == '\b' ? "\\b"
			                : c == '\f' ? "\\f"
			                            : NULL;
			if ((e != NULL ? fputs(e, f) : fprintf(f, "\\u%04x", c)) < 0)
				return EOF;
			p++;
			continue;
		}
		if (c < 0x80) {
			if (putc((int)c, f) == EOF)
				return EOF;
			p++;
			continue;
		}
		/* a UTF-8 sequence: copied when valid (RFC 3629), else U+FFFD */
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			cp = 0;
		}
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				break;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (n == 0 || i <= n || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			if (fputs("\\ufffd", f) < 0)
				return EOF;
			p++;
			continue;
		}
		if (fwrite(p, 1, n + 1, f) != n + 1)
			return EOF;
		p += n + 1;
	}
	return putc('"', f) == EOF ? EOF : 0;
}

/* Writes json_text (a JSON object; NULL or "" means {}) as the attempt's
 * result and exits 0; exits 75 when stdout cannot take it. */
static inline _Noreturn void idem_succeed(const char *json_text)
{
	if (json_text == NULL || *json_text == '\0')
		json_text = "{}";
	if (fputs(json_text, stdout) < 0 || putchar('\n') == EOF || fflush(stdout) != 0)
		_exit(IDEM_EX_TEMPFAIL);
	exit(IDEM_EX_OK);
}

/* Fails the attempt: writes {"error":{"type":T,"message":M}} (both
 * escaped) and exits 75 when retryable (retried under the retry policy),
 * else 65 (failed for good). */
static inline _Noreturn void idem_fail(const char *type, const char *message, int retryable)
{
	int code = retryable ? IDEM_EX_TEMPFAIL : IDEM_EX_DATAERR;

	if (type == NULL || *type == '\0')
		type = "ActivityError";
	if (fputs("{\"error\":{\"type\":", stdout) < 0 || idem_fputs_json(type, stdout) != 0 ||
	    fputs(",\"message\":", stdout) < 0 ||
	    idem_fputs_json(message != NULL ? message : "", stdout) != 0 ||
	    fputs("}}\n", stdout) < 0 || fflush(stdout) != 0)
		_exit(code);
	exit(code);
}

#endif
