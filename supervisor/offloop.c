/* offloop.c — a program run beside the loop, its stdout read by the loop
 * as one JSON document (offloop.h). stdout and stderr are two pipes; done
 * is called once both reach EOF. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "offloop.h"
#include "spawn_program.h"
#include "xalloc.h"

#define OFFLOOP_MAX_OUTPUT (64u << 20) /* a report is kilobytes; this is a runaway */
#define OFFLOOP_ERR_TAIL 4096          /* stderr kept: its last bytes */
#define OFFLOOP_NICE 10                /* its priority: below the loop's */

struct stream {
	struct offloop *o;
	int fd; /* -1 at EOF */
	struct event *ev;
	char *buf;
	size_t len, cap, limit;
	int cut; /* more came than limit */
};

struct offloop {
	pid_t pid;
	int pidfd;  /* -1 when the kernel has none (before 5.3): never killed */
	int killed; /* SIGKILL sent */
	struct stream out, err;
	offloop_done done;
	void *arg;
};

static void stream_close(struct stream *s)
{
	if (s->ev != NULL)
		event_free(s->ev);
	s->ev = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void offloop_free(struct offloop *o)
{
	if (o->pidfd >= 0)
		close(o->pidfd);
	stream_close(&o->out);
	stream_close(&o->err);
	free(o->out.buf);
	free(o->err.buf);
	free(o);
}

/* The last non-empty line of what the program wrote to stderr, in buf. */
static const char *last_line(struct stream *s, char *buf, size_t len)
{
	size_t end = s->len, start;

	while (end > 0 && (s->buf[end - 1] == '\n' || s->buf[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && s->buf[start - 1] != '\n')
		start--;
	if (end == start)
		return NULL;
	snprintf(buf, len, "%.*s", (int)(end - start), s->buf + start);
	return buf;
}

/* Both pipes at EOF: the program is done; its stdout says how. */
static void finish(struct offloop *o)
{
	json_error_t jerr;
	json_t *doc = NULL;
	char line[1024];
	const char *err = NULL;
	offloop_done done = o->done;
	void *arg = o->arg;

	if (o->out.cut)
		err = "its output passed 64 MiB; it was killed";
	else if (o->out.len > 0)
		doc = json_loadb(o->out.buf, o->out.len, 0, &jerr);
	if (doc == NULL && err == NULL)
		err = last_line(&o->err, line, sizeof(line));
	if (doc == NULL && err == NULL)
		err = "it ended without an answer (killed, or out of memory)";
	offloop_free(o);
	done(doc, doc != NULL ? NULL : err, arg);
}

/* Kills the child once, through its pidfd: the pool reaps with
 * waitpid(-1), so by now its pid may have been reaped and given to
 * another process (ESRCH through the pidfd instead). */
static void offloop_kill(struct offloop *o)
{
	if (o->killed)
		return;
	o->killed = 1;
	if (o->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, o->pidfd, SIGKILL, NULL, 0);
}

/* Appends n bytes to s: stdout whole up to its limit (past it, a
 * runaway: killed), stderr as its last limit bytes. */
static void stream_add(struct offloop *o, struct stream *s, const char *data, size_t n)
{
	if (s == &o->out) {
		if (s->len + n > s->limit) {
			s->cut = 1;
			offloop_kill(o);
			return;
		}
		if (s->len + n > s->cap) {
			s->cap = s->cap * 2 > s->len + n ? s->cap * 2 : s->len + n;
			s->buf = xrealloc(s->buf, s->cap);
		}
		memcpy(s->buf + s->len, data, n);
		s->len += n;
		return;
	}
	if (s->cap < s->limit) { /* the tail's whole room, once */
		s->cap = s->limit;
		s->buf = xrealloc(s->buf, s->cap);
	}
	if (n >= s->limit) { /* only its tail stays */
		memcpy(s->buf, data + n - s->limit, s->limit);
		s->len = s->limit;
		return;
	}
	if (s->len + n > s->limit) { /* make room: drop the oldest bytes */
		size_t drop = s->len + n - s->limit;

		memmove(s->buf, s->buf + drop, s->len - drop);
		s->len -= drop;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
}

static void readable_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	struct offloop *o = s->o;
	char chunk[65536];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	(void)what;
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		if (!s->cut)
			stream_add(o, s, chunk, (size_t)n);
		return;
	}
	stream_close(s);
	if (o->out.fd < 0 && o->err.fd < 0)
		finish(o);
}

static int stream_open(struct event_base *base, struct offloop *o, struct stream *s, int fd,
                       size_t limit)
{
	s->o = o;
	s->fd = fd;
	s->limit = limit;
	evutil_make_socket_nonblocking(fd);
	s->ev = event_new(base, fd, EV_READ | EV_PERSIST, readable_cb, s);
	return s->ev != NULL && event_add(s->ev, NULL) == 0 ? 0 : -1;
}

struct offloop *offloop_spawn(struct event_base *base, const char *path, char *const argv[],
                              offloop_done done, void *arg, char *err, size_t errlen)
{
	struct offloop *o;
	int out[2], errp[2], rc;

	if (pipe2(out, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
		return NULL;
	}
	if (pipe2(errp, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
		close(out[0]);
		close(out[1]);
		return NULL;
	}
	o = xcalloc(1, sizeof(*o));
	o->out.fd = o->err.fd = o->pidfd = -1;
	o->done = done;
	o->arg = arg;
	o->pid = spawn_program(path, argv, (const int[][2]){{out[1], 1}, {errp[1], 2}}, 2, 1, NULL);
	rc = errno;
	close(out[1]);
	close(errp[1]);
	if (o->pid < 0) {
		snprintf(err, errlen, "cannot run %s: %s", path, strerror(rc));
		close(out[0]);
		close(errp[0]);
		free(o);
		return NULL;
	}
	/* Not reaped yet: the loop has not run since the spawn. */
	o->pidfd = (int)syscall(SYS_pidfd_open, o->pid, 0);
	if (o->pidfd >= 0)
		(void)fcntl(o->pidfd, F_SETFD, FD_CLOEXEC);
	/* It yields the CPU to the loop (and the workers) when they want it;
	 * it may have run a few instructions at the loop's priority by now. */
	(void)setpriority(PRIO_PROCESS, (id_t)o->pid, OFFLOOP_NICE);
	if (stream_open(base, o, &o->out, out[0], OFFLOOP_MAX_OUTPUT) != 0 ||
	    stream_open(base, o, &o->err, errp[0], OFFLOOP_ERR_TAIL) != 0) {
		if (o->out.fd < 0)
			close(out[0]);
		if (o->err.fd < 0)
			close(errp[0]);
		offloop_cancel(o);
		snprintf(err, errlen, "cannot watch its output");
		return NULL;
	}
	return o;
}

pid_t offloop_pid(const struct offloop *o)
{
	return o->pid;
}

void offloop_cancel(struct offloop *o)
{
	if (o == NULL)
		return;
	offloop_kill(o);
	offloop_free(o);
}
