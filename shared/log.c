/* log.c — logfmt lines on stderr, one write(2) per line so that the lines
 * of several processes sharing stderr do not interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

#define LOG_LINE_STACK 2048

static char log_role[32] = "idem";
static enum log_level log_min = LOG_INFO;

/* A line being built: starts in a stack buffer, moves to the heap when it
 * outgrows it. */
struct line {
	char *p;
	size_t len;
	size_t cap;
	int heap;
	int oom;
};

void log_init(const char *role, enum log_level min)
{
	snprintf(log_role, sizeof(log_role), "%s", role != NULL ? role : "idem");
	log_min = min;
}

int log_enabled(enum log_level l)
{
	return l >= log_min;
}

static const char *level_name(enum log_level l)
{
	switch (l) {
	case LOG_DEBUG:
		return "debug";
	case LOG_INFO:
		return "info";
	case LOG_WARN:
		return "warn";
	case LOG_ERROR:
		return "error";
	}
	return "info";
}

static int line_reserve(struct line *b, size_t more)
{
	size_t cap = b->cap;
	char *p = NULL;

	if (b->oom)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = b->heap ? realloc(b->p, cap) : malloc(cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	if (!b->heap)
		memcpy(p, b->p, b->len);
	b->p = p;
	b->cap = cap;
	b->heap = 1;
	return 0;
}

static void line_putc(struct line *b, char c)
{
	if (line_reserve(b, 1) != 0)
		return;
	b->p[b->len++] = c;
}

static void line_puts(struct line *b, const char *s)
{
	size_t n = strlen(s);

	if (line_reserve(b, n) != 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void line_vprintf(struct line *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n <= 0 || line_reserve(b, (size_t)n) != 0)
		return;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

static void line_printf(struct line *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_printf(struct line *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line_vprintf(b, fmt, ap);
	va_end(ap);
}

static int needs_quotes(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
			return 1;
	}
	return 0;
}

/* Appends s as a logfmt value: bare when it can be, else quoted with ",
 * \ and control characters escaped. */
static void line_put_value(struct line *b, const char *s)
{
	if (!needs_quotes(s)) {
		line_puts(b, s);
		return;
	}
	line_putc(b, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			line_putc(b, '\\');
			line_putc(b, (char)c);
		} else if (c == '\n') {
			line_puts(b, "\\n");
		} else if (c == '\r') {
			line_puts(b, "\\r");
		} else if (c == '\t') {
			line_puts(b, "\\t");
		} else if (c < ' ' || c == 0x7f) {
			line_printf(b, "\\x%02x", c);
		} else {
			line_putc(b, (char)c);
		}
	}
	line_putc(b, '"');
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void log_at(enum log_level l, const char *msg, const char *kvfmt, ...)
{
	char stack[LOG_LINE_STACK];
	struct line b = {.p = stack, .cap = sizeof(stack)};
	char ts[32];
	int saved = errno;
	va_list ap;

	if (!log_enabled(l))
		return;
	clock_format_wall(clock_wall_ms(), ts, sizeof(ts));
	line_printf(&b, "ts=%s level=%s role=%s pid=%ld msg=", ts, level_name(l), log_role,
	            (long)getpid());
	line_put_value(&b, msg != NULL ? msg : "");
	if (kvfmt != NULL && *kvfmt != '\0') {
		line_putc(&b, ' ');
		va_start(ap, kvfmt);
		line_vprintf(&b, kvfmt, ap);
		va_end(ap);
	}
	line_putc(&b, '\n');
	if (b.oom) {
		/* Still say what fitted, and that the rest was lost. */
		static const char lost[] = " (log line truncated: out of memory)\n";
		write_all(STDERR_FILENO, b.p, b.len);
		write_all(STDERR_FILENO, lost, sizeof(lost) - 1);
	} else {
		write_all(STDERR_FILENO, b.p, b.len);
	}
	if (b.heap)
		free(b.p);
	errno = saved;
}
