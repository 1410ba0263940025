/* xalloc.h — idem's one policy for running out of memory: abort.
 *
 * idem is crash-only: what matters lives in SQLite (the state DB and the
 * app DB), every write that matters is durable before it is acted on, and
 * start-up recovers from it. So a process that cannot get memory stops
 * where it is rather than carrying on with a half-built value: a dead
 * supervisor is a crash that a restart recovers from, a dead worker is a
 * lost attempt that the supervisor retries on a new one. One policy also
 * means no unchecked pointer beside a checked one, and no error path that
 * no test ever takes.
 *
 * The rule: code in shared/, supervisor/, worker/, idemctl/ and apps/
 * allocates with xmalloc, xcalloc, xrealloc and xstrdup (never malloc,
 * calloc, realloc, strdup) and does not check their result: they never
 * return NULL. On failure they write one line to stderr with write(2) (no
 * allocation, no stdio) and abort(). Every program's main() calls
 * xalloc_install_json() first, so that jansson allocates the same way, and
 * a program that uses libevent hands it event_set_mem_functions(xmalloc,
 * xrealloc, free) before any other libevent call. Memory from all of them
 * is given back with free().
 * Not covered: SQLite allocates on its own; SQLITE_NOMEM (and a NULL from
 * sqlite3_mprintf) is a database error like any other. Code in a signal
 * handler or between fork and exec must not allocate at all.
 * docs/architecture.md, "Out of memory", says the same at more length. */
#ifndef IDEM_XALLOC_H
#define IDEM_XALLOC_H

#include <stddef.h>

/* Each returns memory for free(); a size of 0 still gets a unique
 * pointer, never NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Points jansson's allocator at xmalloc and free. Call it first in main(),
 * before any json_t is made: memory must be freed by the allocator that
 * gave it. */
void xalloc_install_json(void);

#endif
