/* log.c — logfmt or JSON lines on stderr, one write(2) per line so that
 * the lines of several processes sharing stderr do not interleave. A JSON
 * line is the logfmt fields re-read: the key=value text a caller's format
 * yields is parsed back into members (no jansson: the line is built in
 * one buffer, like a logfmt one). */
#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "textbuf.h"

#define LOG_LINE_STACK 2048

static char log_role[32] = "idem";
static enum log_level log_min = LOG_INFO;
static enum log_format log_fmt = LOG_FORMAT_LOGFMT;

void log_init(const char *role, enum log_level min)
{
	snprintf(log_role, sizeof(log_role), "%s", role != NULL ? role : "idem");
	log_min = min;
}

void log_set_level(enum log_level min)
{
	log_min = min;
}

void log_set_format(enum log_format f)
{
	log_fmt = f;
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

/* The logfmt form of byte c inside quotes into out (>= 5 bytes, not
 * NUL-terminated); returns its length. */
static size_t escape_char(unsigned char c, char *out)
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"':
	case '\\':
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	case '\n':
		memcpy(out, "\\n", 2);
		return 2;
	case '\r':
		memcpy(out, "\\r", 2);
		return 2;
	case '\t':
		memcpy(out, "\\t", 2);
		return 2;
	}
	if (c < ' ' || c == 0x7f) {
		memcpy(out, "\\x", 2);
		out[2] = hex[c >> 4];
		out[3] = hex[c & 15];
		return 4;
	}
	out[0] = (char)c;
	return 1;
}

/* Appends s as a logfmt value: bare when it can be, else quoted with ",
 * \ and control characters escaped. */
static void line_put_value(struct textbuf *b, const char *s)
{
	char esc[8];

	if (!needs_quotes(s)) {
		textbuf_puts(b, s);
		return;
	}
	textbuf_putc(b, '"');
	for (; *s != '\0'; s++) {
		size_t n = escape_char((unsigned char)*s, esc);

		textbuf_put(b, esc, n);
	}
	textbuf_putc(b, '"');
}

const char *log_quote(char *buf, size_t len, const char *s)
{
	size_t o = 0;
	char esc[8];

	if (len == 0)
		return buf;
	if (s == NULL)
		s = "";
	if (!needs_quotes(s) || len < 3) {
		snprintf(buf, len, "%s", len < 3 ? "" : s);
		return buf;
	}
	buf[o++] = '"';
	for (; *s != '\0'; s++) {
		size_t n = escape_char((unsigned char)*s, esc);

		if (o + n + 2 > len)
			break;
		memcpy(buf + o, esc, n);
		o += n;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* ---- JSON -------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] < 0xc2 || p[0] > 0xf4 || len > n)
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* Appends the n bytes at s as a JSON string; NUL and bytes that are not
 * UTF-8 become U+FFFD, so the line parses in any reader. */
static void json_put_string(struct textbuf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	textbuf_putc(b, '"');
	while (p < end) {
		size_t len;

		if (*p == '"' || *p == '\\') {
			textbuf_putc(b, '\\');
			textbuf_putc(b, (char)*p++);
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			textbuf_puts(b, *p == '\n' ? "\\n" : *p == '\r' ? "\\r" : "\\t");
			p++;
		} else if (*p == 0) {
			textbuf_puts(b, "\\ufffd");
			p++;
		} else if (*p < ' ') {
			textbuf_printf(b, "\\u%04x", *p++);
		} else if (*p < 0x80) {
			textbuf_putc(b, (char)*p++);
		} else if ((len = utf8_len(p, (size_t)(end - p))) > 0) {
			for (size_t i = 0; i < len; i++)
				textbuf_putc(b, (char)*p++);
		} else {
			textbuf_puts(b, "\\ufffd");
			p++;
		}
	}
	textbuf_putc(b, '"');
}

static const char *skip_digits(const char *p, const char *end)
{
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

/* Is [s, s+n) a JSON number that a JSON reader takes back without
 * overflow (an integer within int64, a finite real)? */
static int is_json_number(const char *s, size_t n)
{
	const char *p = s, *end = s + n, *q;
	char buf[64];
	int real = 0;

	if (p < end && *p == '-')
		p++;
	if (p == end || *p < '0' || *p > '9' ||
	    (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
		return 0;
	p = skip_digits(p, end);
	if (p < end && *p == '.') {
		q = skip_digits(p + 1, end);
		if (q == p + 1)
			return 0;
		p = q;
		real = 1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		q = skip_digits(p, end);
		if (q == p)
			return 0;
		p = q;
		real = 1;
	}
	if (p != end || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	if (real)
		return isfinite(strtod(buf, NULL));
	(void)strtoll(buf, NULL, 10);
	return errno != ERANGE;
}

static int is_fixed_key(const char *k, size_t n)
{
	static const char *const fixed[] = {"ts", "level", "role", "pid", "msg"};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strlen(fixed[i]) == n && memcmp(fixed[i], k, n) == 0)
			return 1;
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the quoted logfmt value at *p (past its opening quote) into v,
 * undoing the escapes of line_put_value; a quote ends it only when a
 * space or the end follows (a caller's unescaped quote stays inside). */
static const char *read_quoted(const char *p, struct textbuf *v)
{
	while (*p != '\0' && !(*p == '"' && (p[1] == ' ' || p[1] == '\0'))) {
		if (*p == '\\' && p[1] != '\0') {
			char c = p[1];
			int hi, lo;

			p += 2;
			if (c == 'n' || c == 'r' || c == 't') {
				textbuf_putc(v, c == 'n' ? '\n' : c == 'r' ? '\r' : '\t');
			} else if (c == 'x' && (hi = hex_value(p[0])) >= 0 &&
			           (lo = hex_value(p[1])) >= 0) {
				textbuf_putc(v, (char)(hi << 4 | lo));
				p += 2;
			} else if (c == '"' || c == '\\') {
				textbuf_putc(v, c);
			} else {
				textbuf_putc(v, '\\');
				textbuf_putc(v, c);
			}
			continue;
		}
		textbuf_putc(v, *p++);
	}
	return *p == '"' ? p + 1 : p;
}

/* Appends ,"key":value for every key=value pair of the logfmt text kv. */
static void json_put_fields(struct textbuf *b, const char *kv)
{
	char stack[512];
	const char *p = kv;

	while (*p != '\0') {
		struct textbuf v = {.p = stack, .cap = sizeof(stack)};
		const char *k, *val;
		size_t klen, vlen;
		int quoted = 0;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		k = p;
		while (*p != '\0' && *p != '=' && *p != ' ')
			p++;
		klen = (size_t)(p - k);
		textbuf_putc(b, ',');
		if (klen == 0 || is_fixed_key(k, klen)) {
			/* "=x" or a clash with a fixed field: "_" + key */
			char name[8] = "_";

			memcpy(name + 1, k, klen); /* a fixed key is at most 5 bytes */
			json_put_string(b, name, klen + 1);
		} else {
			json_put_string(b, k, klen);
		}
		textbuf_putc(b, ':');
		if (*p != '=') { /* a bare word: a flag */
			textbuf_puts(b, "true");
			continue;
		}
		p++;
		if (*p == '"') {
			p = read_quoted(p + 1, &v);
			val = v.p;
			vlen = v.len;
			quoted = 1;
		} else {
			val = p;
			while (*p != '\0' && *p != ' ')
				p++;
			vlen = (size_t)(p - val);
		}
		if (!quoted &&
		    (is_json_number(val, vlen) || (vlen == 4 && memcmp(val, "true", 4) == 0) ||
		     (vlen == 5 && memcmp(val, "false", 5) == 0))) {
			textbuf_put(b, val, vlen);
		} else {
			json_put_string(b, val, vlen);
		}
		textbuf_free(&v);
	}
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

/* {"ts":...,"msg":...} plus the fields of the logfmt text kv. */
static void build_json(struct textbuf *b, const char *ts, enum log_level l, const char *msg,
                       const char *kv)
{
	textbuf_puts(b, "{\"ts\":");
	json_put_string(b, ts, strlen(ts));
	textbuf_printf(b, ",\"level\":\"%s\",\"role\":", level_name(l));
	json_put_string(b, log_role, strlen(log_role));
	textbuf_printf(b, ",\"pid\":%ld,\"msg\":", (long)getpid());
	json_put_string(b, msg, strlen(msg));
	json_put_fields(b, kv);
	textbuf_putc(b, '}');
}

void log_at(enum log_level l, const char *msg, const char *kvfmt, ...)
{
	char stack[LOG_LINE_STACK], kvstack[LOG_LINE_STACK];
	struct textbuf b = {.p = stack, .cap = sizeof(stack)};
	struct textbuf kv = {.p = kvstack, .cap = sizeof(kvstack)};
	char ts[32];
	int saved = errno;
	va_list ap;

	if (!log_enabled(l))
		return;
	clock_format_wall(clock_wall_ms(), ts, sizeof(ts));
	if (msg == NULL)
		msg = "";
	if (log_fmt == LOG_FORMAT_JSON) {
		kv.p[0] = '\0';
		if (kvfmt != NULL && *kvfmt != '\0') {
			va_start(ap, kvfmt);
			textbuf_vprintf(&kv, kvfmt, ap);
			va_end(ap);
			kv.p[kv.len] = '\0';
		}
		build_json(&b, ts, l, msg, kv.p);
		textbuf_free(&kv);
	} else {
		textbuf_printf(&b, "ts=%s level=%s role=%s pid=%ld msg=", ts, level_name(l),
		               log_role, (long)getpid());
		line_put_value(&b, msg);
		if (kvfmt != NULL && *kvfmt != '\0') {
			textbuf_putc(&b, ' ');
			va_start(ap, kvfmt);
			textbuf_vprintf(&b, kvfmt, ap);
			va_end(ap);
		}
	}
	textbuf_putc(&b, '\n');
	write_all(STDERR_FILENO, b.p, b.len);
	textbuf_free(&b);
	errno = saved;
}
