/* textbuf.c — see textbuf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textbuf.h"
#include "xalloc.h"

/* Room for n more bytes and the terminating NUL. */
static void reserve(struct textbuf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->len + n + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	p = b->heap ? xrealloc(b->p, cap) : xmalloc(cap);
	if (!b->heap && b->len > 0)
		memcpy(p, b->p, b->len);
	b->p = p;
	b->cap = cap;
	b->heap = 1;
}

void textbuf_put(struct textbuf *b, const char *s, size_t n)
{
	reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void textbuf_puts(struct textbuf *b, const char *s)
{
	textbuf_put(b, s, strlen(s));
}

void textbuf_putc(struct textbuf *b, char c)
{
	textbuf_put(b, &c, 1);
}

void textbuf_put_int(struct textbuf *b, int64_t v)
{
	char digits[24], *d = digits + sizeof(digits);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		*--d = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--d = '-';
	textbuf_put(b, d, (size_t)(digits + sizeof(digits) - d));
}

void textbuf_put_json_str(struct textbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *c, *run;

	if (s == NULL) {
		textbuf_put(b, "null", 4);
		return;
	}
	textbuf_putc(b, '"');
	for (c = run = (const unsigned char *)s;; c++) {
		char esc[6] = {'\\', 0};
		size_t n = 2;

		if (*c >= 0x20 && *c != '"' && *c != '\\' && *c != 0x7f)
			continue;
		textbuf_put(b, (const char *)run, (size_t)(c - run));
		if (*c == '\0')
			break;
		run = c + 1;
		if (*c == '"' || *c == '\\')
			esc[1] = (char)*c;
		else if (*c == '\n')
			esc[1] = 'n';
		else if (*c == '\r')
			esc[1] = 'r';
		else if (*c == '\t')
			esc[1] = 't';
		else {
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*c >> 4];
			esc[5] = hex[*c & 15];
			n = 6;
		}
		textbuf_put(b, esc, n);
	}
	textbuf_putc(b, '"');
}

void textbuf_vprintf(struct textbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n <= 0)
		return;
	reserve(b, (size_t)n);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void textbuf_printf(struct textbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	textbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *textbuf_take(struct textbuf *b, size_t *len)
{
	char *p = b->heap ? b->p : xmalloc(b->len + 1);

	if (!b->heap) {
		if (b->len > 0)
			memcpy(p, b->p, b->len);
		p[b->len] = '\0';
	}
	if (len != NULL)
		*len = b->len;
	*b = (struct textbuf){0};
	return p;
}

void textbuf_free(struct textbuf *b)
{
	if (b->heap)
		free(b->p);
	*b = (struct textbuf){0};
}

int textbuf_utf8_prefix(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return (int)n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return (int)n;
}
