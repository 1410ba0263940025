/* spawn_program.h — how the supervisor starts a program (spawn.c): posix_spawn,
 * with the descriptors it is given and no other of the supervisor's. */
#ifndef IDEM_SPAWN_PROGRAM_H
#define IDEM_SPAWN_PROGRAM_H

#include <sys/types.h>

/* Starts path with argv and the environment: dups[i][0] as descriptor
 * dups[i][1], in order; stdin from /dev/null when null_stdin; every
 * descriptor above the highest of 2 and the dups[i][1] closed (they are
 * CLOEXEC, but until the exec the child would hold the API's listening
 * socket, which outlives a supervisor killed then and passes for a live
 * one); SIGPIPE back to default, no signal blocked. Returns the pid, or
 * -1 with errno (an exec failure included). */
pid_t spawn_program(const char *path, char *const argv[], const int (*dups)[2], int ndups,
                    int null_stdin);

#endif
