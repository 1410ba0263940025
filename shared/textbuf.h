/* textbuf.h — a growable text buffer, for JSON documents built on hot
 * paths and for log lines. It may start in a caller's buffer (a stack
 * array: {.p = buf, .cap = sizeof(buf)}) and moves to the heap when it
 * outgrows it; {0} starts on the heap. The text stays NUL-terminated.
 * Appends never fail: out of memory aborts (xalloc.h). */
#ifndef IDEM_TEXTBUF_H
#define IDEM_TEXTBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct textbuf {
	char *p;
	size_t len, cap;
	int heap; /* p is malloc'd (else the caller's buffer, or NULL) */
};

void textbuf_put(struct textbuf *b, const char *s, size_t n);
void textbuf_puts(struct textbuf *b, const char *s);
void textbuf_putc(struct textbuf *b, char c);
void textbuf_put_int(struct textbuf *b, int64_t v);
void textbuf_printf(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void textbuf_vprintf(struct textbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* s as a JSON string literal ("null" for NULL). */
void textbuf_put_json_str(struct textbuf *b, const char *s);
/* The text (NUL-terminated, NEW, *len its length when len is not NULL)
 * and an empty buffer. */
char *textbuf_take(struct textbuf *b, size_t *len);
/* Frees what the buffer allocated (not the caller's buffer). */
void textbuf_free(struct textbuf *b);

/* The length of the longest prefix of s of at most max bytes that does
 * not cut a UTF-8 character: how much of a caller's text a message may
 * quote and stay valid JSON text. */
int textbuf_utf8_prefix(const char *s, size_t max);

#endif
