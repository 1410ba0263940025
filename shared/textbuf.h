/* textbuf.h — a growable text buffer for building JSON documents and the
 * like on hot paths, where stdio memory streams and printf cost more than
 * the text they write. Appends never fail: out of memory sets a flag that
 * textbuf_take() reports, so callers check once at the end. */
#ifndef IDEM_TEXTBUF_H
#define IDEM_TEXTBUF_H

#include <stddef.h>
#include <stdint.h>

struct textbuf {
	char *p;
	size_t len, cap;
	int oom;
};

void textbuf_put(struct textbuf *b, const char *s, size_t n);
void textbuf_puts(struct textbuf *b, const char *s);
void textbuf_putc(struct textbuf *b, char c);
void textbuf_put_int(struct textbuf *b, int64_t v);
/* s as a JSON string literal ("null" for NULL). */
void textbuf_put_json_str(struct textbuf *b, const char *s);
/* The text (NUL-terminated, NEW, *len its length when len is not NULL)
 * and an empty buffer; NULL when an append ran out of memory. */
char *textbuf_take(struct textbuf *b, size_t *len);

#endif
