/* testutil.h — helpers for idem's tests: temporary directories, the built
 * programs, child processes. A test that forks asserts in the parent only. */
#ifndef IDEM_TESTUTIL_H
#define IDEM_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

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
/* SIGTERM, then SIGKILL when pid has not exited within timeout_ms; reaps
 * it. Returns its exit code as tu_wait_exit does. */
int tu_stop_child(pid_t pid, int timeout_ms);
/* Runs argv to completion (timeout_ms), capturing stdout into *out
 * (malloc'd, NUL-terminated, may be NULL). Returns the exit code like
 * tu_wait_exit, or -1 on timeout (the child is killed). */
int tu_run(char *const argv[], const char *const *extra_env, int timeout_ms, char **out);
/* Waits until path exists and, when it is a socket, accepts a connection. */
int tu_wait_for_socket(const char *path, int timeout_ms);
/* Reads a whole file; malloc'd, NUL-terminated; NULL when missing. */
char *tu_read_file(const char *path);
/* How many times needle occurs in the file at path (0 when unreadable). */
int tu_count_in_file(const char *path, const char *needle);
/* Writes text to path (truncating). Returns 0 or -1. */
int tu_write_file(const char *path, const char *text);
void tu_sleep_ms(int ms);

/* A supervisor under test, with every file in its own directory. */
struct tu_sup {
	char *dir;  /* owned by the caller (tu_tmpdir) */
	char *sock; /* dir/idem.sock */
	char *log;  /* dir/supervisor.log */
	pid_t pid;
};

/* Starts idem-supervisor with its databases and sockets under dir, the
 * given extra arguments (NULL-terminated list or NULL), and waits for its
 * socket. Returns 0, or -1 after printing its log on stderr. */
int tu_sup_start(struct tu_sup *s, const char *dir, const char *const *extra);
/* The same without waiting for the socket, with extra_env (NULL or a
 * NULL-terminated list of "KEY=VALUE") for the supervisor only. */
int tu_sup_spawn(struct tu_sup *s, const char *dir, const char *const *extra,
                 const char *const *extra_env);
/* SIGTERM and wait; returns the exit code (-1 on timeout). */
int tu_sup_stop(struct tu_sup *s);
/* SIGKILL and reap. */
void tu_sup_kill9(struct tu_sup *s);
void tu_sup_free(struct tu_sup *s);

/* A test's directory and the supervisor it runs there, for cmocka's
 * setup and teardown: setup makes dir (tu_tmpdir(tag)); teardown kills
 * what is left of the supervisor and removes dir, or keeps it and names
 * it on stderr when IDEM_KEEP_TMP is set. */
struct tu_fixture {
	char *dir;
	struct tu_sup sup;
};
int tu_fixture_setup(void **state, const char *tag);
int tu_fixture_teardown(void **state);
/* One request to the control API: returns the HTTP status (-1 when the
 * exchange failed) and the body as JSON in *out (NEW ref, NULL when not
 * JSON; out may be NULL). */
int tu_http(const struct tu_sup *s, const char *method, const char *path, const char *body,
            json_t **out);
/* Starts an inventory workflow; returns the HTTP status. */
int tu_start_order(const struct tu_sup *s, const char *order_id, const char *product,
                   long quantity);
/* Opens dir/app.db read-only-ish and returns one integer from sql (or
 * LLONG_MIN on error). */
long long tu_sql_int(const char *db_path, const char *sql);

#endif
