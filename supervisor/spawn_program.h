/* spawn_program.h — how the supervisor starts a program (spawn.c): posix_spawn,
 * with the descriptors it is given and no other of the supervisor's. */
#ifndef IDEM_SPAWN_PROGRAM_H
#define IDEM_SPAWN_PROGRAM_H

#include <sys/types.h>

struct idem_app;
struct idem_config;

#define SPAWN_KEYS_MAX 16 /* an app's keys a child is given as flags */

/* Starts path with argv and the environment (and env_add, "NAME=VALUE",
 * unless NULL, in the child's alone): dups[i][0] as descriptor
 * dups[i][1], in order; stdin from /dev/null when null_stdin; every
 * descriptor above the highest of 2 and the dups[i][1] closed (they are
 * CLOEXEC, but until the exec the child would hold the API's listening
 * socket, which outlives a supervisor killed then and passes for a live
 * one); SIGPIPE back to default, no signal blocked. Returns the pid, or
 * -1 with errno (an exec failure included). */
pid_t spawn_program(const char *path, char *const argv[], const int (*dups)[2], int ndups,
                    int null_stdin, const char *env_add);

/* Every key of app as "--flag=VALUE", whole, from argv[n] on (at most
 * SPAWN_KEYS_MAX), so that a child reads the supervisor's values; each
 * text is also put in owned[0..], for the caller to free. Returns the new
 * count. */
int spawn_app_flags(const struct idem_config *c, const struct idem_app *app, char **argv, int n,
                    char **owned);

#endif
