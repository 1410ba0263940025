/* testutil.h — helpers for idem's tests: temporary directories, the built
 * programs, child processes. A test that forks asserts in the parent only. */
#ifndef IDEM_TESTUTIL_H
#define IDEM_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates a new directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_tmpdir(const char *tag);
/* Removes a directory tree. */
void tu_rmrf(const char *dir);
/* malloc'd printf. */
char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The path of a built program ("idem-supervisor"); static storage, valid
 * until the next call with another name. */
const char *tu_bin(const char *name);

/* fork + exec argv[0] (a path) with argv; stdout and stderr go to log_path
 * (appended) when it is not NULL. extra_env is NULL or a NULL-terminated
 * list of "KEY=VALUE" set in the child only. Returns the pid. */
pid_t tu_spawn(char *const argv[], const char *const *extra_env, const char *log_path);
/* Waits up to timeout_ms for pid. Returns its exit code, 128 + signal when
 * it was killed, or -1 when it is still running. */
int tu_wait_exit(pid_t pid, int timeout_ms);
/* Runs argv to completion (timeout_ms), capturing stdout into *out
 * (malloc'd, NUL-terminated, may be NULL). Returns the exit code like
 * tu_wait_exit, or -1 on timeout (the child is killed). */
int tu_run(char *const argv[], const char *const *extra_env, int timeout_ms, char **out);
/* Waits until path exists and, when it is a socket, accepts a connection. */
int tu_wait_for_socket(const char *path, int timeout_ms);
/* Reads a whole file; malloc'd, NUL-terminated; NULL when missing. */
char *tu_read_file(const char *path);
/* Writes text to path (truncating). Returns 0 or -1. */
int tu_write_file(const char *path, const char *text);
void tu_sleep_ms(int ms);

#endif
