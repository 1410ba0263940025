/* spawn.c — how the pool's children are started: the app's helper with
 * posix_spawn; a worker by the fork server (idem-worker --fork-server,
 * worker/main.c), or with posix_spawn while the fork server is off. A
 * child gets its channel as fd 3 and no other descriptor of the
 * supervisor's. A worker asked of the fork server has no pid yet
 * (pid_pending) until the reply carrying its request's token is read,
 * always before the worker can be reaped or be heard from; once the fork
 * server fails in any way it is off for good, and the slots waiting on
 * it start over with posix_spawn. The slot that a worker is for takes it
 * in pool.c (slot_spawned). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "forkserver.h"
#include "idem_app.h"
#include "log.h"
#include "pgconn.h"
#include "pdeath.h"
#include "pool_internal.h"
#include "store.h"
#include "sup.h"
#include "spawn_program.h"
#include "timer.h"

#define CHANNEL_FD 3
/* How long the fork server has to say hello at start-up. */
#define FORK_SERVER_WAIT_MS 2000

/* ---- posix_spawn ---------------------------------------------------------- */

/* Starts path with argv: channel (when >= 0) as CHANNEL_FD (spawn_program).
 * idem's own programs (a worker, the fork server, the app's helper
 * program) ask to die with this process, then check that their parent is
 * still the one named in PDEATH_ENV: one started just before a SIGKILL
 * here would have no parent to watch (pdeath.h). Only they are told: an
 * app's command, or what it starts, is not judged by it. */
static pid_t spawn(const char *path, char **argv, int channel)
{
	const int dup[1][2] = {{channel, CHANNEL_FD}};
	char me[48];

	snprintf(me, sizeof(me), "%s=%ld", PDEATH_ENV, (long)getpid());
	return spawn_program(path, argv, dup, channel >= 0, 0, me);
}

/* spawn_app_flags, with texts that live until the next call (the spawn
 * has copied them). */
static int app_key_flags(const struct idem_config *c, const struct idem_app *app, char **argv,
                         int n)
{
	static char *flags[SPAWN_KEYS_MAX];

	for (int i = 0; i < SPAWN_KEYS_MAX; i++) {
		free(flags[i]);
		flags[i] = NULL;
	}
	return spawn_app_flags(c, app, argv, n, flags);
}

/* A helper that is the app's own command: run in its directory, found
 * on PATH, with the supervisor's environment (where the app put what it
 * tells its processes). */
static pid_t spawn_command(const struct idem_helper *h, char *path, size_t pathlen)
{
	posix_spawn_file_actions_t fa;
	pid_t pid = -1;
	int rc;

	snprintf(path, pathlen, "%s", h->command[0]);
	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	rc = h->dir != NULL ? posix_spawn_file_actions_addchdir_np(&fa, h->dir) : 0;
	if (rc == 0)
		rc = posix_spawnp(&pid, h->command[0], &fa, NULL, (char *const *)h->command,
		                  environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return pid;
}

void worker_kill(pid_t pid, int sig)
{
	if (kill(-pid, sig) != 0 && errno == ESRCH)
		kill(pid, sig);
}

pid_t spawn_helper(struct sup *sup, char *path, size_t pathlen)
{
	const struct idem_config *c = &sup->cfg;
	const struct idem_helper *h = sup->app->helper;
	char body[32], *flags[SPAWN_KEYS_MAX] = {NULL};
	char *argv[SPAWN_KEYS_MAX + 8];
	int n = 0, nkeys = 0, e;
	pid_t pid;

	if (h->program == NULL)
		return spawn_command(h, path, pathlen);
	snprintf(path, pathlen, "%s/%s", sup->bindir, h->program);
	snprintf(body, sizeof(body), "--max-body=%zu", c->max_body);
	argv[n++] = (char *)h->program;
	argv[n++] = "--env=/dev/null";
	for (const char *const *k = h->keys; *k != NULL && nkeys < SPAWN_KEYS_MAX; k++)
		if ((flags[nkeys] = config_flag_arg(c, *k)) != NULL)
			argv[n++] = flags[nkeys++];
	argv[n++] = body;
	argv[n++] = "--log-level";
	argv[n++] = (char *)config_log_level_name(c->log_level);
	argv[n++] = c->log_format == LOG_FORMAT_JSON ? "--log-format=json" : "--log-format=logfmt";
	argv[n] = NULL;
	/* The app's helper gets its keys as flags: not a PostgreSQL DATABASE,
	 * password and all, that main.c put in the environment for the
	 * workers and the checker. */
	if (pgconn_is_url(c->database))
		unsetenv("DATABASE");
	pid = spawn(path, argv, -1);
	e = errno;
	if (pgconn_is_url(c->database))
		setenv("DATABASE", c->database, 1);
	for (int i = 0; i < nkeys; i++)
		free(flags[i]);
	errno = e;
	return pid;
}

/* idem-worker's path and arguments (NULL-terminated, room for one more
 * before the NULL); returns the count. frame holds MAX_FRAME's text. */
static int worker_argv(struct sup *sup, char *path, size_t pathlen, char *frame, size_t framelen,
                       char **argv)
{
	const struct idem_config *c = &sup->cfg;
	int n = 0;

	snprintf(path, pathlen, "%s/idem-worker", sup->bindir);
	snprintf(frame, framelen, "%zu", c->max_frame);
	argv[n++] = "idem-worker";
	argv[n++] = "--channel-fd=3";
	argv[n++] = "--env=/dev/null";
	argv[n++] = "--app";
	argv[n++] = (char *)c->app;
	if (!pgconn_is_url(c->database)) { /* else in the environment: main.c */
		argv[n++] = "--database";
		argv[n++] = (char *)c->database;
	}
	n = app_key_flags(c, sup->app, argv, n);
	argv[n++] = "--max-frame";
	argv[n++] = frame;
	argv[n++] = "--log-level";
	argv[n++] = (char *)config_log_level_name(c->log_level);
	argv[n++] = c->log_format == LOG_FORMAT_JSON ? "--log-format=json" : "--log-format=logfmt";
	/* Under group commit the supervisor syncs the app DB's WAL before it
	 * records a result (store.c): the workers' commits need not wait. */
	argv[n++] = c->sync || store_group_commit(sup->store) ? "--sync=normal" : "--sync=full";
	if (c->naive)
		argv[n++] = "--naive";
	if (c->fault_vfs[0] != '\0') {
		argv[n++] = "--fault-vfs";
		argv[n++] = (char *)c->fault_vfs;
	}
	argv[n] = NULL;
	return n;
}

/* ---- the fork server ------------------------------------------------------ */

/* idem-worker --fork-server (worker/main.c) forks a worker for each
 * channel it is sent, without an exec: a worker then costs half the CPU
 * (under fault injection, a worker is started per kill). It forks with
 * CLONE_PARENT, so its workers are the supervisor's children, reaped like
 * the others. The supervisor does not wait for the forks: a request
 * carries a token, and the worker's first act is to send it back with its
 * pid, read from the loop (fork_server_collect) when it comes, always
 * before the worker can be reaped or be heard from; one killed before
 * that closes its channel with its pid unknown (slot_event_cb, pool.c).
 * Whatever goes wrong with the fork server (a worker binary that does not
 * know the flag, no hello, a failed fork, no answer), workers are started
 * with posix_spawn as before. */

void fork_server_close(struct pool *p)
{
	if (p->fs_fd < 0)
		return;
	event_free(p->fs_ev);
	p->fs_ev = NULL;
	close(p->fs_fd);
	p->fs_fd = -1;
}

void fork_server_stop(struct pool *p, const char *why)
{
	if (p->fs_fd < 0)
		return;
	fork_server_close(p);
	if (p->fs_pid > 0)
		kill(p->fs_pid, SIGKILL);
	log_info("fork server off; starting workers with posix_spawn", "why=\"%s\"", why);
	/* A slot still waiting for its worker's pid will not get it: closing
	 * the channel makes that worker (if it was forked) exit, and the slot
	 * starts another. */
	for (uint32_t i = 0; i <= (uint32_t)p->nslots; i++) {
		struct slot *sl = slot_by_index(p, i);

		if (sl == NULL || !sl->pid_pending)
			continue;
		sl->pid_pending = 0;
		if (sl->bev != NULL) {
			bufferevent_free(sl->bev);
			sl->bev = NULL;
		}
		evtimer_del(sl->timer);
		slot_on(sl, SE_EXIT);
		if (!p->stopping)
			spawn_worker(sl);
	}
}

/* One reply: the pid goes to the slot that holds the worker asked for,
 * unless none does any more (then the worker is not wanted). */
static void fork_server_reply(struct pool *p, const struct fork_reply *r)
{
	struct slot *sl = NULL;

	if (r->pid <= 0)
		return fork_server_stop(p, "the fork server could not fork a worker");
	for (uint32_t i = 0; i <= (uint32_t)p->nslots && sl == NULL; i++) {
		sl = slot_by_index(p, i);
		if (sl != NULL && !(sl->pid_pending && sl->spawn_token == r->token))
			sl = NULL;
	}
	if (sl == NULL) {
		worker_kill((pid_t)r->pid, SIGKILL);
		return;
	}
	sl->pid = (pid_t)r->pid;
	sl->pid_pending = 0;
	if (sl->state == SLOT_STOPPING) /* closed while its fork was on the way */
		worker_kill(sl->pid, SIGKILL);
	log_info("worker spawned", "slot=%d worker_pid=%ld", sl->index, (long)sl->pid);
}

void fork_server_collect(struct pool *p)
{
	struct fork_reply r;
	ssize_t n;

	while (p->fs_fd >= 0) {
		n = recv(p->fs_fd, &r, sizeof(r), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n != (ssize_t)sizeof(r))
			return fork_server_stop(p, n == 0
			                               ? "the fork server closed its socket"
			                               : "a malformed answer from the fork server");
		fork_server_reply(p, &r);
	}
}

static void fork_server_cb(evutil_socket_t fd, short what, void *arg)
{
	fork_server_collect(arg);
}

/* Waits up to FORK_SERVER_WAIT_MS for fd to be readable. */
static int wait_readable(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	int64_t deadline = clock_mono_ms() + FORK_SERVER_WAIT_MS;
	int r;

	do
		r = poll(&pf, 1, (int)(deadline - clock_mono_ms()));
	while (r < 0 && errno == EINTR && clock_mono_ms() < deadline);
	return r == 1;
}

void fork_server_start(struct pool *p)
{
	char path[600], frame[32], hello[64], *argv[26 + SPAWN_KEYS_MAX];
	int sv[2], n;
	ssize_t got;

	p->fs_fd = -1;
	n = worker_argv(p->sup, path, sizeof(path), frame, sizeof(frame), argv);
	argv[n++] = "--fork-server";
	argv[n] = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return;
	p->fs_pid = spawn(path, argv, sv[1]);
	close(sv[1]);
	if (p->fs_pid < 0) {
		p->fs_pid = 0;
		close(sv[0]);
		return;
	}
	p->fs_fd = sv[0];
	p->fs_ev = event_new(p->sup->base, p->fs_fd, EV_READ | EV_PERSIST, fork_server_cb, p);
	got = wait_readable(p->fs_fd) ? recv(p->fs_fd, hello, sizeof(hello), 0) : -1;
	if (got != (ssize_t)sizeof(FORK_SERVER_HELLO) ||
	    memcmp(hello, FORK_SERVER_HELLO, sizeof(FORK_SERVER_HELLO)) != 0)
		return fork_server_stop(p, "idem-worker --fork-server did not say hello");
	event_add(p->fs_ev, NULL);
	log_debug("fork server started", "pid=%ld", (long)p->fs_pid);
}

/* Asks the fork server for a worker on the far end of channel, for sl;
 * the pid comes later (fork_server_reply). 0, or -1 (the fork server is
 * off). */
static int fork_server_spawn(struct pool *p, struct slot *sl, int channel)
{
	if (p->fs_fd < 0)
		return -1;
	sl->spawn_token = ++p->fs_requests;
	if (fork_request_send(p->fs_fd, sl->spawn_token, channel) != 0) {
		fork_server_stop(p, "the fork server does not take requests");
		return -1;
	}
	return 0;
}

/* ---- a worker ------------------------------------------------------------- */

void spawn_worker(struct slot *sl)
{
	struct sup *sup = sl->sup;
	char path[600], frame[32], *argv[26 + SPAWN_KEYS_MAX];
	int sv[2];
	pid_t pid = 0;

	worker_argv(sup, path, sizeof(path), frame, sizeof(frame), argv);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
		log_error("cannot create a worker channel; retrying in 1 s", "slot=%d error=\"%s\"",
		          sl->index, strerror(errno));
		timer_in(sl->timer, 1000);
		return;
	}
	if (sup->pool->fs_fd >= 0) {
		if (fork_server_spawn(sup->pool, sl, sv[1]) != 0) {
			/* A late fork could still take this channel: start over
			 * with a new one, now with posix_spawn. */
			close(sv[0]);
			close(sv[1]);
			return spawn_worker(sl);
		}
		sl->pid_pending = 1;
	} else {
		pid = spawn(path, argv, sv[1]);
	}
	close(sv[1]);
	if (pid < 0) {
		log_error("cannot start a worker; retrying in 1 s", "slot=%d path=%s error=\"%s\"",
		          sl->index, path, strerror(errno));
		close(sv[0]);
		timer_in(sl->timer, 1000);
		return;
	}
	slot_spawned(sl, pid, sv[0]);
}
