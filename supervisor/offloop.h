/* offloop.h — work whose cost grows with the history, run off the loop.
 *
 * The checker reads every workflow, order and event: a second at 100,000
 * workflows, ten at a million. Run in the loop, it would hold every start,
 * result and timer that long. offloop_spawn() starts a program (the
 * checker is `idemctl check --offline --json`, which opens its own
 * read-only connections: a snapshot of what is committed) and reads the
 * JSON document it prints like any other descriptor; done follows. Not a
 * fork without an exec: SQLite's per-process lock tables and open files
 * must not cross a fork. The child gets stdout and stderr as pipes and no
 * other descriptor (the state DB's lock, the API's socket), runs at nice
 * 10 so that it takes the CPU the loop and the workers leave, and its
 * exit is reaped by the pool's SIGCHLD handler like any child's. */
#ifndef IDEM_OFFLOOP_H
#define IDEM_OFFLOOP_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct offloop;

/* Called in the loop once: the document the program printed (STOLEN), or
 * NULL with err (the last line it wrote to stderr, or why there is none). */
typedef void (*offloop_done)(json_t *doc, const char *err, void *arg);

/* Starts path with argv (environ as is); done(…, arg) follows unless
 * offloop_cancel() comes first. NULL with err when it cannot be started. */
struct offloop *offloop_spawn(struct event_base *base, const char *path, char *const argv[],
                              offloop_done done, void *arg, char *err, size_t errlen);

/* The child's pid (for the log). */
pid_t offloop_pid(const struct offloop *o);

/* Kills the child (SIGKILL) and frees o; done is not called. */
void offloop_cancel(struct offloop *o);

#endif
