/* xalloc.c — see xalloc.h. */
#include "xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The last words of a process that ran out of memory: built in a stack
 * buffer and written with write(2), since malloc just failed and stdio may
 * need it. */
static _Noreturn void oom(size_t n)
{
	static const char head[] = "idem: out of memory allocating ";
	static const char tail[] =
	    " bytes; aborting (idem is crash-only: restart recovers from the durable state)\n";
	char line[sizeof(head) + 20 + sizeof(tail)], digits[20], *d = digits + sizeof(digits);
	size_t len = sizeof(head) - 1;

	memcpy(line, head, len);
	do {
		*--d = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	memcpy(line + len, d, (size_t)(digits + sizeof(digits) - d));
	len += (size_t)(digits + sizeof(digits) - d);
	memcpy(line + len, tail, sizeof(tail) - 1);
	len += sizeof(tail) - 1;
	for (const char *p = line; len > 0;) {
		ssize_t w = write(STDERR_FILENO, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* nowhere to say it: abort all the same */
		p += w;
		len -= (size_t)w;
	}
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = nmemb != 0 && size != 0 ? calloc(nmemb, size) : calloc(1, 1);

	if (p == NULL) /* the product may overflow: say the most it can */
		oom(size != 0 && nmemb > SIZE_MAX / size ? SIZE_MAX : nmemb * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	/* realloc(p, 0) may free p and return NULL: ask for 1 instead. */
	void *q = realloc(p, n != 0 ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

void xalloc_install_json(void)
{
	json_set_alloc_funcs(xmalloc, free);
}
