/* command.h — runs one command of a file-defined app (an activity's
 * attempt, its setup, its check) and collects what it says: stdout up to
 * a limit, the end of stderr, datagrams on a control socket, and how it
 * ended. The process waits for it: the caller's own deadline (the
 * supervisor's START_TO_CLOSE_TIMEOUT for an activity, timeout_ms here
 * for the rest) is what stops one that never ends. */
#ifndef IDEM_FILE_COMMAND_H
#define IDEM_FILE_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "idem_app.h"

struct command_spec {
	const char *const *argv; /* NULL-ended; argv[0] looked up on PATH */
	const char *dir;         /* its working directory */
	const char *const *env;  /* "NAME=VALUE" set over the environment, NULL-ended */
	const char *input;       /* its stdin (NULL: empty) */
	size_t input_len;
	size_t max_stdout; /* more is cut: the pipe is closed, out_too_large set */
	/* Its own process group (killed whole at timeout_ms), or the
	 * caller's: an activity's, which a kill of the worker's group takes
	 * and which the command's crash points kill. */
	int own_group;
	int64_t timeout_ms; /* own_group only; 0: none */
	/* A SOCK_DGRAM socket given as IDEM_CONTROL_FD and a copy of stderr
	 * as IDEM_LOG_FD; each datagram goes to on_control. */
	int control;
	void (*on_control)(void *arg, const char *msg, size_t len);
	void *arg;
};

struct command_result {
	int exec_errno; /* not 0: it could not be started (ENOENT: not found) */
	int status;     /* waitpid()'s */
	int timed_out;
	char *out; /* stdout, NUL-terminated (malloc'd; free it) */
	size_t out_len;
	int out_too_large;
	char err_tail[IDEM_STDERR_TAIL + 1]; /* the end of stderr */
};

/* Runs s. Returns 0 with r filled (even when the command failed or could
 * not be found), or -1 with err when this process could not do its part
 * (pipes, fork). */
int command_run(const struct command_spec *s, struct command_result *r, char *err, size_t errlen);

/* How r's command ended, for messages, with the last line it wrote on
 * stderr when there is one: "exit 3: no such customer", "killed by
 * signal 9 (Killed)", "not found (...)". */
void command_describe(const struct command_result *r, char *buf, size_t len);

/* r's exit code when the command ran and exited on its own; -1 when it
 * could not start, was killed, or ran out of time. */
int command_exit_code(const struct command_result *r);

/* argv as one line for messages: "python3 charge.py --naive". */
void command_line(const char *const *argv, char *buf, size_t len);

#endif
