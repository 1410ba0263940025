/* command.c — one command of a file-defined app, run and listened to
 * (command.h). fork + exec, not posix_spawn: the child sets its death
 * signal, its group and its descriptors, all async-signal-safe, and
 * reports a failed exec through a close-on-exec pipe. The environment
 * is built before the fork, so the child allocates nothing. */
#include "command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "xalloc.h"

extern char **environ;

#define CONTROL_MAX 65536 /* the largest datagram read */

/* The environment: every variable not named in set, then set. NULL-ended,
 * malloc'd array of borrowed or malloc'd strings (owned marks which). */
struct envp {
	char **v;
	int n;
	char *owned[4]; /* the two descriptor variables */
	int nowned;
};

static int named_in(const char *var, const char *const *set)
{
	const char *eq = strchr(var, '=');
	size_t n = eq != NULL ? (size_t)(eq - var) : strlen(var);

	for (; set != NULL && *set != NULL; set++)
		if (strncmp(*set, var, n) == 0 && (*set)[n] == '=')
			return 1;
	return 0;
}

static void envp_build(struct envp *e, const char *const *set, int control_fd, int log_fd)
{
	int n = 0, m = 0;

	while (environ[n] != NULL)
		n++;
	while (set != NULL && set[m] != NULL)
		m++;
	e->v = xcalloc((size_t)(n + m + 3), sizeof(*e->v));
	e->n = 0;
	e->nowned = 0;
	for (int i = 0; i < n; i++)
		if (!named_in(environ[i], set) &&
		    strncmp(environ[i], "IDEM_CONTROL_FD=", 16) != 0 &&
		    strncmp(environ[i], "IDEM_LOG_FD=", 12) != 0)
			e->v[e->n++] = environ[i];
	for (int i = 0; i < m; i++)
		e->v[e->n++] = (char *)set[i];
	if (control_fd >= 0) {
		char buf[64];

		snprintf(buf, sizeof(buf), "IDEM_CONTROL_FD=%d", control_fd);
		e->v[e->n++] = e->owned[e->nowned++] = xstrdup(buf);
		snprintf(buf, sizeof(buf), "IDEM_LOG_FD=%d", log_fd);
		e->v[e->n++] = e->owned[e->nowned++] = xstrdup(buf);
	}
	e->v[e->n] = NULL;
}

static void envp_free(struct envp *e)
{
	for (int i = 0; i < e->nowned; i++)
		free(e->owned[i]);
	free(e->v);
}

/* stdin: a memory file holding the input, read from its start. */
static int input_fd(const struct command_spec *s)
{
	int fd = memfd_create("idem-input", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < s->input_len) {
		ssize_t w = write(fd, s->input + done, s->input_len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void child_fd(int from, int to)
{
	if (from == to)
		fcntl(to, F_SETFD, 0);
	else
		dup2(from, to);
}

/* In the child: only async-signal-safe calls, then exec. */
static _Noreturn void child(const struct command_spec *s, char **envp, int in, int out, int errw,
                            int ctl, int log_fd, int report)
{
	int e;

	if (s->own_group)
		setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_DFL);
	child_fd(in, 0);
	child_fd(out, 1);
	child_fd(errw, 2);
	if (ctl >= 0) {
		fcntl(ctl, F_SETFD, 0);
		fcntl(log_fd, F_SETFD, 0);
	}
	if (s->dir != NULL && chdir(s->dir) != 0) {
		e = errno;
		(void)!write(report, &e, sizeof(e));
		_exit(127);
	}
	execvpe(s->argv[0], (char *const *)s->argv, envp);
	e = errno;
	(void)!write(report, &e, sizeof(e));
	_exit(127);
}

/* What the parent listens to. */
struct io {
	int out, err, ctl, pidfd;
	pid_t pid;
	int reaped; /* without a pidfd: waitpid() has taken its status */
	struct command_result *r;
	size_t cap;
	char tail[2 * IDEM_STDERR_TAIL];
	size_t tail_len;
};

static void keep_out(struct io *io, const struct command_spec *s, const char *buf, size_t n)
{
	struct command_result *r = io->r;

	if (r->out_len + n > s->max_stdout) {
		r->out_too_large = 1;
		close(io->out); /* the command's next write meets EPIPE */
		io->out = -1;
		return;
	}
	if (r->out_len + n + 1 > io->cap) {
		io->cap = (r->out_len + n + 1) * 2;
		r->out = xrealloc(r->out, io->cap);
	}
	memcpy(r->out + r->out_len, buf, n);
	r->out_len += n;
	r->out[r->out_len] = '\0';
}

static void keep_err(struct io *io, const char *buf, size_t n)
{
	if (n >= IDEM_STDERR_TAIL) {
		buf += n - IDEM_STDERR_TAIL;
		n = IDEM_STDERR_TAIL;
	}
	if (io->tail_len + n > sizeof(io->tail)) {
		size_t drop = io->tail_len + n - IDEM_STDERR_TAIL;

		drop = drop < io->tail_len ? drop : io->tail_len;
		memmove(io->tail, io->tail + drop, io->tail_len - drop);
		io->tail_len -= drop;
	}
	memcpy(io->tail + io->tail_len, buf, n);
	io->tail_len += n;
}

/* Reads what fd holds now. Returns 0 at EOF (fd closed), 1 otherwise. */
static int drain(struct io *io, const struct command_spec *s, int *fd)
{
	char buf[16384];

	for (;;) {
		ssize_t n = read(*fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1; /* EAGAIN */
		if (n == 0) {
			close(*fd);
			*fd = -1;
			return 0;
		}
		if (fd == &io->out)
			keep_out(io, s, buf, (size_t)n);
		else
			keep_err(io, buf, (size_t)n);
		if (*fd < 0)
			return 0;
	}
}

static void drain_control(struct io *io, const struct command_spec *s)
{
	static char buf[CONTROL_MAX + 1];

	for (;;) {
		ssize_t n = recv(io->ctl, buf, CONTROL_MAX, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		buf[n] = '\0';
		if (s->on_control != NULL)
			s->on_control(s->arg, buf, (size_t)n);
	}
}

static int reap(struct io *io)
{
	io->reaped = waitpid(io->pid, &io->r->status, WNOHANG) == io->pid;
	return io->reaped;
}

/* Listens until the command has exited and its pipes are read (or, once
 * it has exited, whatever of them a process it left behind holds open
 * is given up). Returns 1 when the deadline passed. */
static int listen_to(struct io *io, const struct command_spec *s, int64_t deadline)
{
	int exited = 0;

	while (io->out >= 0 || io->err >= 0 || !exited) {
		struct pollfd p[4];
		int n = 0, wait = -1;

		p[n++] = (struct pollfd){.fd = io->out, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = io->err, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = io->ctl, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = exited ? -1 : io->pidfd, .events = POLLIN};
		if (deadline > 0) {
			int64_t left = deadline - clock_mono_ms();
			if (left <= 0)
				return 1;
			wait = (int)(left < 1000 ? left : 1000);
		}
		if (io->pidfd < 0 && (wait < 0 || wait > 20))
			wait = 20; /* no pidfd: look for its exit every 20 ms */
		if (exited)
			wait = 0; /* drain what is there, then stop */
		if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR)
			return 0;
		if (io->ctl >= 0)
			drain_control(io, s);
		if (io->out >= 0)
			drain(io, s, &io->out);
		if (io->err >= 0)
			drain(io, s, &io->err);
		if (exited)
			break;
		if (io->pidfd >= 0 ? p[3].revents != 0 : reap(io))
			exited = 1;
	}
	return 0;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_if(int fd)
{
	if (fd >= 0)
		close(fd);
}

int command_run(const struct command_spec *s, struct command_result *r, char *err, size_t errlen)
{
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1}, ctl[2] = {-1, -1};
	int in = -1, log_fd = -1, rc = -1;
	struct io io = {.out = -1, .err = -1, .ctl = -1, .pidfd = -1, .r = r};
	struct envp envp = {0};
	pid_t pid;
	ssize_t got;

	memset(r, 0, sizeof(*r));
	if ((in = input_fd(s)) < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
	    pipe2(rep, O_CLOEXEC) != 0 ||
	    (s->control && (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, ctl) != 0 ||
	                    (log_fd = fcntl(2, F_DUPFD_CLOEXEC, 3)) < 0))) {
		snprintf(err, errlen, "cannot set up the command's descriptors: %s",
		         strerror(errno));
		goto out;
	}
	envp_build(&envp, s->env, ctl[1], log_fd);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot fork the command: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(s, envp.v, in, out[1], errp[1], ctl[1], log_fd, rep[1]);
	close(out[1]);
	close(errp[1]);
	close(rep[1]);
	out[1] = errp[1] = rep[1] = -1;
	close_if(ctl[1]);
	ctl[1] = -1;
	while ((got = read(rep[0], &r->exec_errno, sizeof(r->exec_errno))) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof(r->exec_errno))
		r->exec_errno = 0;
	io.out = out[0];
	io.err = errp[0];
	io.ctl = ctl[0];
	out[0] = errp[0] = ctl[0] = -1;
	io.pid = pid;
	io.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	set_nonblock(io.out);
	set_nonblock(io.err);
	r->timed_out = listen_to(&io, s, s->timeout_ms > 0 ? clock_mono_ms() + s->timeout_ms : 0);
	if (r->timed_out && !io.reaped)
		kill(s->own_group ? -pid : pid, SIGKILL);
	while (!io.reaped && waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
		;
	memcpy(r->err_tail,
	       io.tail + (io.tail_len > IDEM_STDERR_TAIL ? io.tail_len - IDEM_STDERR_TAIL : 0),
	       io.tail_len > IDEM_STDERR_TAIL ? IDEM_STDERR_TAIL : io.tail_len);
	r->err_tail[io.tail_len > IDEM_STDERR_TAIL ? IDEM_STDERR_TAIL : io.tail_len] = '\0';
	if (r->out == NULL)
		r->out = xstrdup("");
	rc = 0;
out:
	envp_free(&envp);
	close_if(io.out);
	close_if(io.err);
	close_if(io.ctl);
	close_if(io.pidfd);
	close_if(in);
	close_if(log_fd);
	for (int i = 0; i < 2; i++) {
		close_if(out[i]);
		close_if(errp[i]);
		close_if(rep[i]);
		close_if(ctl[i]);
	}
	return rc;
}

/* The last non-empty line of text, at most len - 1 bytes of it. */
static void last_line(const char *text, char *buf, size_t len)
{
	const char *end = text + strlen(text), *start;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(buf, len, "%.*s", (int)(end - start), start);
}

void command_describe(const struct command_result *r, char *buf, size_t len)
{
	char how[256], line[300];

	if (r->exec_errno == ENOENT)
		snprintf(how, sizeof(how),
		         "not found (not on PATH, or no such file in the app's directory)");
	else if (r->exec_errno != 0)
		snprintf(how, sizeof(how), "cannot be started: %s", strerror(r->exec_errno));
	else if (r->timed_out)
		snprintf(how, sizeof(how), "killed after its time ran out");
	else if (WIFEXITED(r->status))
		snprintf(how, sizeof(how), "exit %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(r->status),
		         strsignal(WTERMSIG(r->status)));
	else
		snprintf(how, sizeof(how), "ended with status %d", r->status);
	last_line(r->err_tail, line, sizeof(line));
	snprintf(buf, len, "%s%s%s", how, line[0] != '\0' ? ": " : "", line);
}

int command_exit_code(const struct command_result *r)
{
	if (r->exec_errno != 0 || r->timed_out || !WIFEXITED(r->status))
		return -1;
	return WEXITSTATUS(r->status);
}

void command_line(const char *const *argv, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; argv[i] != NULL && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? " " : "", argv[i]);
}
