/* pool.c — the worker slot table (after nginx's ngx_processes): a slot's
 * index is its identity and is reused on respawn. Each worker is forked by
 * the fork server (or started with posix_spawn), its end of a socketpair
 * as fd 3; the supervisor's end is a bufferevent carrying length-prefixed
 * JSON frames. The slot lifecycle is the table in slot_next(); respawn
 * throttling is slot_respawn_delay().
 * With SPARE_WORKER, one more worker waits ready, as slot nslots, for a
 * slot whose worker died to take over (adopt_spare). The supplier
 * stand-in is a child too, respawned after a second. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "clock.h"
#include "exitcodes.h"
#include "forkserver.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "pool.h"
#include "store.h"
#include "sup.h"
#include "timer.h"

#define CHANNEL_FD 3
#define SUPPLIER_RESPAWN_MS 1000
#define SUPPLIER_START_WAIT_MS 3000
/* A worker reads its task frame at once. One that lets the supervisor's
 * output sit unsent this long has stopped reading: it is killed, and its
 * attempt retried. Nor is more than two frames' worth ever queued to one
 * channel (CHANNEL_QUEUE_MAX). */
#define CHANNEL_WRITE_TIMEOUT_MS 5000
#define CHANNEL_QUEUE_MAX(max_frame) (2 * (max_frame))
/* A worker that has not said ready this long after its spawn is killed
 * (it opens the app DB first, which may wait on a lock for a while). */
#define POOL_READY_TIMEOUT_MS 30000

/* The attempt a slot runs: its owner's handle and what the pool shows
 * of it (owned copies of pool_task's strings). */
struct slot_task {
	void *owner; /* NULL: none */
	char *activity;
	char *workflow_id;
	int step;
	int attempt;
	int64_t heartbeat_ms;
};

struct slot {
	int index;
	enum slot_state state;
	pid_t pid;            /* 0 while pid_pending */
	int pid_pending;      /* asked the fork server, its reply not read yet */
	uint64_t spawn_token; /* its worker's fork request, to match the reply */
	struct bufferevent *bev;
	struct frame_decoder dec;
	struct event *timer; /* respawn or attempt timeout */
	struct slot_history hist;
	int spawns;
	int restarts;              /* spawns after the first */
	int expected_exit;         /* the supervisor caused or planned the coming exit */
	struct event *hb_timer;    /* heartbeat timeout of the running attempt */
	struct event *fault_timer; /* an async kill planned for the running attempt */
	struct fault_plan plan;    /* the running attempt's fault plan */
	char close_reason[256];    /* why the channel was closed */
	struct slot_task task;     /* the attempt it runs, when task.owner */
	int64_t task_id;
	int64_t started_at; /* mono ms the attempt was sent */
	int64_t sent_us;    /* mono us the attempt's task frame was sent (activity duration) */
	int cause;          /* enum death_cause of its coming exit, as far as known */
	struct sup *sup;
};


struct pool {
	struct sup *sup;
	const struct pool_callbacks *cb; /* reports on attempts, to cb_arg */
	void *cb_arg;
	struct slot *slots;
	int nslots;
	struct slot *spare;   /* SPARE_WORKER: a started, ready worker; NULL when off */
	int fs_fd;            /* the fork server's socket, or -1 */
	struct event *fs_ev;  /* its replies are readable */
	uint64_t fs_requests; /* fork requests made: the next one's token */
	pid_t fs_pid;         /* the fork server, until reaped (0: none) */
	pid_t supplier_pid;
	struct slot_history supplier_hist; /* its deaths: a crash loop gives up */
	struct event *supplier_timer;
	struct event *kill_timer;
	int64_t kill_after_ms;
	int stop_stage;
	int stopping;
	int64_t next_task_id;
	struct pool_stats stats;
};

/* ---- the lifecycle table -------------------------------------------------- */

static const signed char slot_table[SLOT_NSTATES][SE_NEVENTS] = {
    /*               SPAWN          READY       ASSIGN     DONE        CLOSE          EXIT GIVE_UP
     */
    [SLOT_EMPTY] = {SLOT_SPAWNING, -1, -1, -1, -1, -1, -1},
    [SLOT_SPAWNING] = {-1, SLOT_READY, -1, -1, SLOT_STOPPING, SLOT_BACKOFF, -1},
    [SLOT_READY] = {-1, -1, SLOT_BUSY, -1, SLOT_STOPPING, SLOT_BACKOFF, -1},
    [SLOT_BUSY] = {-1, -1, -1, SLOT_READY, SLOT_STOPPING, SLOT_BACKOFF, -1},
    [SLOT_STOPPING] = {-1, -1, -1, -1, SLOT_STOPPING, SLOT_BACKOFF, -1},
    [SLOT_BACKOFF] = {SLOT_SPAWNING, -1, -1, -1, -1, -1, SLOT_FAILED},
    [SLOT_FAILED] = {-1, -1, -1, -1, -1, -1, -1},
};

static const char *const slot_state_names[SLOT_NSTATES] = {
    "empty", "spawning", "ready", "busy", "stopping", "backoff", "failed",
};

int slot_next(enum slot_state s, enum slot_event e)
{
	return slot_table[s][e];
}

const char *slot_state_name(enum slot_state s)
{
	return slot_state_names[s];
}

/* Applies event e; an event the table refuses is a bug worth a log line. */
static void slot_on(struct slot *sl, enum slot_event e)
{
	int next = slot_next(sl->state, e);

	if (next < 0) {
		log_error("bug: slot event not valid in this state", "slot=%d state=%s event=%d",
		          sl->index, slot_state_name(sl->state), (int)e);
		return;
	}
	sl->state = (enum slot_state)next;
}

int64_t slot_respawn_delay(struct slot_history *h, int64_t now, int expected)
{
	int64_t wait;
	int kept = 0;

	if (expected)
		return 0;
	for (int i = 0; i < h->ndeaths; i++)
		if (now - h->deaths[i] < POOL_BURST_WINDOW_MS)
			h->deaths[kept++] = h->deaths[i];
	h->ndeaths = kept;
	if (h->ndeaths == POOL_BURST_DEATHS - 1)
		return -1;
	h->deaths[h->ndeaths++] = now;
	if (h->ready_at > 0 && now - h->ready_at > POOL_RESPAWN_MIN_MS)
		return 0;
	wait = h->spawned_at + POOL_RESPAWN_MIN_MS - now;
	return wait > 0 ? wait : 0;
}

/* ---- spawning ------------------------------------------------------------- */

/* Starts path with argv: channel (when >= 0) as CHANNEL_FD, every other
 * descriptor closed (they are CLOEXEC, but until the exec the child would
 * hold the API's listening socket, which outlives a supervisor killed then
 * and passes for a live one), SIGPIPE back to default, no signal blocked.
 * posix_spawn rather than fork + exec: glibc's clone(CLONE_VM|CLONE_VFORK)
 * copies no page tables and takes no copy-on-write faults, which under
 * fault injection (a worker respawned per kill, 200 a second) was a tenth
 * of the supervisor's CPU. Returns the pid, or -1 with errno (an exec
 * failure included). */
static pid_t spawn(const char *path, char **argv, int channel)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	pid_t pid = -1;
	int rc;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawnattr_init(&at) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	/* dup2 onto itself clears FD_CLOEXEC (glibc >= 2.29, POSIX 2024). */
	rc = channel >= 0 ? posix_spawn_file_actions_adddup2(&fa, channel, CHANNEL_FD) : 0;
	if (rc == 0)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, channel >= 0 ? CHANNEL_FD + 1
		                                                                : CHANNEL_FD);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(&at, &dfl);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (rc == 0)
		rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
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
	argv[n++] = "--database";
	argv[n++] = (char *)c->database;
	argv[n++] = "--supplier-socket";
	argv[n++] = (char *)c->supplier_socket;
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

/* ---- the fork server ---------------------------------------------------------- */

/* idem-worker --fork-server (worker/main.c) forks a worker for each
 * channel it is sent, without an exec: a worker then costs half the CPU
 * (under fault injection, a worker is started per kill). It forks with
 * CLONE_PARENT, so its workers are the supervisor's children, reaped like
 * the others. The supervisor does not wait for the forks: a request
 * carries a token, and the worker's first act is to send it back with its
 * pid, read from the loop (fork_server_collect) when it comes, always
 * before the worker can be reaped or be heard from; one killed before
 * that closes its channel with its pid unknown (slot_event_cb). Whatever
 * goes wrong with the fork server (a worker binary that does not know the
 * flag, no hello, a failed fork, no answer), workers are started with
 * posix_spawn as before. */
#define FORK_SERVER_WAIT_MS 2000

static void slot_spawn(struct slot *sl);

static struct slot *slot_by_index(struct pool *p, uint32_t i)
{
	if (i < (uint32_t)p->nslots)
		return &p->slots[i];
	return p->spare != NULL && i == (uint32_t)p->nslots ? p->spare : NULL;
}

static void fork_server_stop(struct pool *p, const char *why)
{
	if (p->fs_fd < 0)
		return;
	event_free(p->fs_ev);
	p->fs_ev = NULL;
	close(p->fs_fd);
	p->fs_fd = -1;
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
			slot_spawn(sl);
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
		kill((pid_t)r->pid, SIGKILL);
		return;
	}
	sl->pid = (pid_t)r->pid;
	sl->pid_pending = 0;
	if (sl->state == SLOT_STOPPING) /* closed while its fork was on the way */
		kill(sl->pid, SIGKILL);
	log_info("worker spawned", "slot=%d worker_pid=%ld", sl->index, (long)sl->pid);
}

/* Reads the replies that are in. */
static void fork_server_collect(struct pool *p)
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

static void fork_server_start(struct pool *p)
{
	char path[600], frame[32], hello[64], *argv[26];
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

static void slot_read_cb(struct bufferevent *bev, void *arg);
static void slot_event_cb(struct bufferevent *bev, short what, void *arg);
/* The status of a worker that died before the supervisor had its pid. */
#define EXIT_UNKNOWN (-1)
static void slot_exited(struct pool *p, struct slot *sl, int status);

static void slot_spawn(struct slot *sl)
{
	struct sup *sup = sl->sup;
	const struct idem_config *c = &sup->cfg;
	char path[600], frame[32], *argv[26];
	struct timeval write_timeout = {CHANNEL_WRITE_TIMEOUT_MS / 1000,
	                                (CHANNEL_WRITE_TIMEOUT_MS % 1000) * 1000};
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
			return slot_spawn(sl);
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
	sl->pid = pid;
	sl->expected_exit = 0;
	sl->close_reason[0] = '\0';
	sl->hist.spawned_at = clock_mono_ms();
	sl->hist.ready_at = 0;
	sl->cause = DEATH_UNEXPECTED;
	sup->pool->stats.spawns++;
	if (sl->spawns++ > 0)
		sl->restarts++;
	frame_decoder_free(&sl->dec);
	frame_decoder_init(&sl->dec, c->max_frame);
	sl->bev = bufferevent_socket_new(sup->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(sl->bev, slot_read_cb, NULL, slot_event_cb, sl);
	bufferevent_set_timeouts(sl->bev, NULL, &write_timeout);
	bufferevent_enable(sl->bev, EV_READ);
	slot_on(sl, SE_SPAWN);
	timer_in(sl->timer, POOL_READY_TIMEOUT_MS);
	if (!sl->pid_pending)
		log_info("worker spawned", "slot=%d worker_pid=%ld", sl->index, (long)pid);
}

/* ---- the channel ---------------------------------------------------------- */

/* Closes the channel and SIGKILLs the worker (harmless when it is already
 * dead). A running attempt is failed with a history event of kind. ours
 * says the supervisor chose this end (a timeout, a planned kill), so the
 * death does not count toward the slot's burst of failures; a worker that
 * hangs up or speaks garbage is the worker's fault and does count. */
static void attempt_timers_off(struct slot *sl)
{
	evtimer_del(sl->hb_timer);
	evtimer_del(sl->fault_timer);
}

/* Ends sl's attempt: its strings go, and its owner is no more ours. */
static void *task_take(struct slot *sl)
{
	void *owner = sl->task.owner;

	free(sl->task.activity);
	free(sl->task.workflow_id);
	sl->task = (struct slot_task){0};
	return owner;
}

static void slot_close(struct slot *sl, enum pool_loss loss, const char *reason, int ours)
{
	void *owner = task_take(sl);
	struct pool *p = sl->sup->pool;

	if (sl->bev != NULL) {
		bufferevent_free(sl->bev);
		sl->bev = NULL;
	}
	evtimer_del(sl->timer);
	attempt_timers_off(sl);
	if (sl->pid > 0)
		kill(sl->pid, SIGKILL);
	if (ours)
		sl->expected_exit = 1;
	if (ours && sl->cause == DEATH_UNEXPECTED)
		sl->cause = DEATH_CHANNEL; /* a frame that could not be sent */
	snprintf(sl->close_reason, sizeof(sl->close_reason), "%s", reason);
	if (sl->state != SLOT_STOPPING && sl->state != SLOT_BACKOFF)
		slot_on(sl, SE_CLOSE);
	if (owner != NULL)
		p->cb->lost(p->cb_arg, owner, loss, reason, (long)sl->pid);
}

/* " wf=ID step=N attempt=N" of the attempt sl runs, or "". */
static const char *task_fields(const struct slot *sl, char *buf, size_t len)
{
	char wf[600];

	buf[0] = '\0';
	if (sl->task.owner != NULL)
		snprintf(buf, len, " wf=%s step=%d attempt=%d",
		         log_quote(wf, sizeof(wf), sl->task.workflow_id), sl->task.step,
		         sl->task.attempt);
	return buf;
}

/* How a kill for loss counts when the worker is reaped. */
static enum death_cause kill_cause(enum pool_loss loss)
{
	switch (loss) {
	case POOL_LOSS_START_TO_CLOSE:
	case POOL_LOSS_HEARTBEAT:
	case POOL_LOSS_SCHEDULE_TO_CLOSE:
		return DEATH_TIMEOUT;
	case POOL_LOSS_ASYNC_KILL:
		return DEATH_PLANNED_KILL;
	default:
		return DEATH_CHANNEL;
	}
}

static void slot_kill(struct slot *sl, enum pool_loss loss, const char *reason)
{
	char task[700];

	sl->cause = kill_cause(loss);
	log_warn("killing worker", "slot=%d worker_pid=%ld%s reason=\"%s\"", sl->index,
	         (long)sl->pid, task_fields(sl, task, sizeof(task)), reason);
	slot_close(sl, loss, reason, 1);
}

void pool_kill(struct pool *p, int i, enum pool_loss loss, const char *reason)
{
	slot_kill(&p->slots[i], loss, reason);
}

static void protocol_error(struct slot *sl, const char *what)
{
	char reason[512];

	snprintf(reason, sizeof(reason), "protocol error from worker: %s", what);
	sl->cause = DEATH_CHANNEL;
	log_error("closing worker channel", "slot=%d worker_pid=%ld reason=\"%s\"", sl->index,
	          (long)sl->pid, reason);
	slot_close(sl, POOL_LOSS_WORKER, reason, 0);
}

static void on_ready(struct slot *sl, json_t *msg)
{
	struct msg_ready r;
	char err[256];

	if (msg_parse_ready(msg, &r, err, sizeof(err)) != 0)
		return protocol_error(sl, err);
	if (sl->state != SLOT_SPAWNING)
		return protocol_error(sl, "ready frame from a worker that was already ready");
	if (sl->pid_pending) {
		/* The fork server's reply is in before the ready frame is. */
		struct bufferevent *bev = sl->bev;

		fork_server_collect(sl->sup->pool);
		if (sl->bev != bev)
			return; /* the fork server failed: the slot started over */
		if (sl->pid_pending) {
			/* Not a worker the fork server announced: no reap would
			 * name it. Its channel closes; it counts as gone. */
			log_error("ready frame from a worker whose pid never came; closing it",
			          "slot=%d", sl->index);
			bufferevent_free(sl->bev);
			sl->bev = NULL;
			sl->pid_pending = 0;
			return slot_exited(sl->sup->pool, sl, EXIT_UNKNOWN);
		}
	}
	sl->hist.ready_at = clock_mono_ms();
	evtimer_del(sl->timer);
	slot_on(sl, SE_READY);
	log_debug("worker ready", "slot=%d worker_pid=%ld", sl->index, (long)sl->pid);
}

/* The task_id must name the attempt this slot runs. */
static int check_task(struct slot *sl, json_int_t task_id)
{
	char err[128];

	if (sl->state == SLOT_BUSY && sl->task.owner != NULL && task_id == sl->task_id)
		return 0;
	snprintf(err, sizeof(err), "frame for task %lld, but the worker holds %s",
	         (long long)task_id, sl->state == SLOT_BUSY ? "another task" : "no task");
	protocol_error(sl, err);
	return -1;
}

static void on_result(struct slot *sl, json_t *msg)
{
	struct msg_result r;
	struct pool *p = sl->sup->pool;
	void *owner;
	char err[256];

	if (msg_parse_result(msg, &r, err, sizeof(err)) != 0)
		return protocol_error(sl, err);
	if (check_task(sl, r.task_id) != 0)
		return;
	sl->expected_exit = 0; /* a planned kill the attempt never reached */
	sl->cause = DEATH_UNEXPECTED;
	histogram_observe(histogram_of(&p->stats.activity, sl->task.activity),
	                  histogram_seconds(sl->sent_us, clock_mono_us()));
	owner = task_take(sl);
	evtimer_del(sl->timer);
	attempt_timers_off(sl);
	slot_on(sl, SE_DONE);
	p->cb->result(p->cb_arg, owner, &r, (long)sl->pid);
}

/* A heartbeat arrived: the heartbeat timeout starts again. */
static void heartbeat_seen(struct slot *sl)
{
	if (evtimer_pending(sl->hb_timer, NULL))
		timer_in(sl->hb_timer, sl->task.heartbeat_ms);
}

static void on_heartbeat(struct slot *sl, json_t *msg)
{
	struct msg_heartbeat h;
	char err[256];

	if (msg_parse_heartbeat(msg, &h, err, sizeof(err)) != 0)
		return protocol_error(sl, err);
	if (check_task(sl, h.task_id) != 0)
		return;
	heartbeat_seen(sl);
	sl->sup->pool->cb->heartbeat(sl->sup->pool->cb_arg, sl->task.owner, h.details);
}

static void on_frame(struct slot *sl, json_t *msg)
{
	enum msg_type type;
	char err[256];

	if (msg_type_of(msg, &type, err, sizeof(err)) != 0)
		return protocol_error(sl, err);
	switch (type) {
	case MSG_READY:
		return on_ready(sl, msg);
	case MSG_RESULT:
		return on_result(sl, msg);
	case MSG_HEARTBEAT:
		return on_heartbeat(sl, msg);
	default:
		return protocol_error(sl, "unexpected task frame");
	}
}

static void slot_read_cb(struct bufferevent *bev, void *arg)
{
	struct slot *sl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	char err[512];
	json_t *msg = NULL;
	int rc;

	if (frame_decoder_feed(&sl->dec, evbuffer_pullup(in, (ev_ssize_t)n), n) != 0)
		return protocol_error(sl, "out of memory buffering a frame");
	evbuffer_drain(in, n);
	while (sl->bev != NULL &&
	       (rc = frame_decoder_next(&sl->dec, &msg, err, sizeof(err))) != 0) {
		if (rc < 0)
			return protocol_error(sl, err);
		on_frame(sl, msg);
		json_decref(msg);
	}
}

/* The worker does not take what the supervisor sends it: a hung worker
 * (or a hostile one) whose frames would pile up in the supervisor. */
static void channel_stalled(struct slot *sl, const char *reason)
{
	sl->cause = DEATH_CHANNEL;
	log_error("closing worker channel", "slot=%d worker_pid=%ld reason=\"%s\"", sl->index,
	          (long)sl->pid, reason);
	slot_close(sl, POOL_LOSS_WORKER, reason, 0);
}

static void slot_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct slot *sl = arg;
	char reason[256];

	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(reason, sizeof(reason),
		         "worker stopped reading its channel: %zu bytes still unsent after %d ms",
		         evbuffer_get_length(bufferevent_get_output(bev)),
		         CHANNEL_WRITE_TIMEOUT_MS);
		return channel_stalled(sl, reason);
	}
	if (what & BEV_EVENT_EOF)
		snprintf(reason, sizeof(reason), "worker closed its channel");
	else
		snprintf(reason, sizeof(reason), "worker channel error: %s",
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (sl->pid_pending) {
		fork_server_collect(sl->sup->pool);
		if (sl->bev != bev)
			return; /* the fork server failed: the slot started over */
		if (sl->pid_pending) {
			/* Killed from outside before its first act: no reap will
			 * name it, so it counts as exited now. */
			sl->pid_pending = 0;
			return slot_exited(sl->sup->pool, sl, EXIT_UNKNOWN);
		}
	}
	log_at(sl->expected_exit ? LOG_INFO : LOG_WARN, "worker channel closed",
	       "slot=%d worker_pid=%ld reason=\"%s\"", sl->index, (long)sl->pid, reason);
	if (sl->task.owner == NULL || sl->pid <= 0) {
		slot_close(sl, POOL_LOSS_WORKER, reason, 0);
		return;
	}
	/* The worker is gone or going: its attempt is failed when it is reaped
	 * (slot_exited), with how it died ("killed by signal 9") as the
	 * reason, which says more than the EOF. */
	bufferevent_free(sl->bev);
	sl->bev = NULL;
	evtimer_del(sl->timer);
	attempt_timers_off(sl);
	kill(sl->pid, SIGKILL);
	slot_on(sl, SE_CLOSE);
}

/* Reads what a dead worker left in its channel: a frame it finished
 * writing before it died still counts (a result is its attempt's answer). */
static void slot_drain(struct slot *sl)
{
	unsigned char buf[16384];
	ssize_t n;

	slot_read_cb(sl->bev, sl);
	while (sl->bev != NULL &&
	       (n = recv(bufferevent_getfd(sl->bev), buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (frame_decoder_feed(&sl->dec, buf, (size_t)n) != 0)
			break;
		slot_read_cb(sl->bev, sl);
	}
}

static void attempt_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slot *sl = arg;
	char reason[128];

	if (sl->state == SLOT_SPAWNING && sl->pid_pending) {
		snprintf(reason, sizeof(reason), "no answer to a fork request within %d ms",
		         POOL_READY_TIMEOUT_MS);
		return fork_server_stop(sl->sup->pool, reason);
	}
	if (sl->state == SLOT_SPAWNING) {
		snprintf(reason, sizeof(reason), "worker did not say ready within %d ms",
		         POOL_READY_TIMEOUT_MS);
		return channel_stalled(sl, reason);
	}
	if (sl->state != SLOT_BUSY) {
		slot_spawn(sl); /* the timer doubles as the respawn timer */
		return;
	}
	snprintf(reason, sizeof(reason), "start_to_close timeout: no result within %lld ms",
	         (long long)sl->sup->cfg.start_to_close_ms);
	slot_kill(sl, POOL_LOSS_START_TO_CLOSE, reason);
}

static void heartbeat_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slot *sl = arg;
	char reason[128];

	snprintf(reason, sizeof(reason), "heartbeat timeout: no heartbeat within %lld ms",
	         (long long)sl->sup->cfg.heartbeat_timeout_ms);
	slot_kill(sl, POOL_LOSS_HEARTBEAT, reason);
}

static void async_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slot *sl = arg;
	char reason[128];

	snprintf(reason, sizeof(reason),
	         "injected fault: the supervisor killed the worker "
	         "%lld ms into the attempt",
	         (long long)sl->plan.ms);
	slot_kill(sl, POOL_LOSS_ASYNC_KILL, reason);
}

/* The task frame of sl's attempt does not fit in MAX_FRAME (its input,
 * or heartbeat details a worker sent, are too big): no worker can ever
 * take it, so the attempt fails for good, and the worker, which got
 * nothing, stays ready. */
static void task_too_large(struct slot *sl, size_t len)
{
	struct pool *p = sl->sup->pool;
	struct msg_result r = {.task_id = sl->task_id, .error_type = "TaskTooLarge"};
	char msg[256];
	void *owner;

	snprintf(msg, sizeof(msg),
	         "the task frame of this attempt is %zu bytes, over MAX_FRAME (%zu): send a "
	         "smaller input or raise MAX_FRAME",
	         len, sl->sup->cfg.max_frame);
	r.error_message = msg;
	owner = task_take(sl);
	sl->expected_exit = 0;
	evtimer_del(sl->timer);
	attempt_timers_off(sl);
	slot_on(sl, SE_DONE);
	p->cb->result(p->cb_arg, owner, &r, 0);
}

/* Sends sl's task frame and starts the attempt's timers. */
static int slot_send(struct slot *sl, json_t *msg)
{
	unsigned char *buf;
	size_t len, queued;
	char err[256];
	int64_t ms = sl->sup->cfg.start_to_close_ms;

	buf = frame_encode(msg, sl->sup->cfg.max_frame, &len, err, sizeof(err));
	json_decref(msg);
	if (buf == NULL && len > sl->sup->cfg.max_frame) {
		task_too_large(sl, len);
		return -1;
	}
	if (buf == NULL) {
		slot_close(sl, POOL_LOSS_WORKER, err, 1);
		return -1;
	}
	queued = evbuffer_get_length(bufferevent_get_output(sl->bev));
	if (queued + len > CHANNEL_QUEUE_MAX(sl->sup->cfg.max_frame) ||
	    bufferevent_write(sl->bev, buf, len) != 0) {
		snprintf(err, sizeof(err),
		         "worker is not reading its channel: %zu bytes queued, %zu more would pass "
		         "2 x MAX_FRAME",
		         queued, len);
		free(buf);
		channel_stalled(sl, err);
		return -1;
	}
	free(buf);
	sl->started_at = clock_mono_ms();
	timer_in(sl->timer, ms);
	if (sl->task.heartbeat_ms > 0)
		timer_in(sl->hb_timer, sl->task.heartbeat_ms);
	if (sl->plan.kind == FAULT_ASYNC_KILL)
		timer_in(sl->fault_timer, sl->plan.ms);
	return 0;
}

void *pool_task_owner(const struct pool *p, int i, int64_t task_id)
{
	const struct slot *sl = &p->slots[i];

	return sl->task_id == task_id && sl->bev != NULL ? sl->task.owner : NULL;
}

int pool_send(struct pool *p, int i, int64_t task_id, json_t *msg)
{
	struct slot *sl = &p->slots[i];

	if (pool_task_owner(p, i, task_id) == NULL) {
		json_decref(msg); /* the worker died since: its loss is reported */
		return -1;
	}
	sl->sent_us = clock_mono_us();
	return slot_send(sl, msg);
}

/* ---- the pool ------------------------------------------------------------- */

static void spawn_supplier(struct pool *p)
{
	const struct idem_config *c = &p->sup->cfg;
	char path[600], body[32];
	char *argv[] = {"idem-supplier",
	                "--env=/dev/null",
	                "--supplier-database",
	                (char *)c->supplier_database,
	                "--supplier-socket",
	                (char *)c->supplier_socket,
	                "--max-body",
	                body,
	                "--log-level",
	                (char *)config_log_level_name(c->log_level),
	                c->log_format == LOG_FORMAT_JSON ? "--log-format=json"
	                                                 : "--log-format=logfmt",
	                NULL};

	snprintf(path, sizeof(path), "%s/idem-supplier", p->sup->bindir);
	snprintf(body, sizeof(body), "%zu", c->max_body);
	p->supplier_pid = spawn(path, argv, -1);
	if (p->supplier_pid < 0) {
		log_error("cannot start the supplier; retrying in 1 s", "path=%s error=\"%s\"",
		          path, strerror(errno));
		p->supplier_pid = 0;
		timer_in(p->supplier_timer, SUPPLIER_RESPAWN_MS);
		return;
	}
	p->supplier_hist.spawned_at = clock_mono_ms();
	log_info("supplier spawned", "supplier_pid=%ld", (long)p->supplier_pid);
}

static void supplier_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	spawn_supplier(arg);
}

/* At start-up only: give the supplier a moment to listen, so that the
 * first activities do not fail on a supplier that is still starting. A
 * supplier that is not up after that is what retries are for. */
static void wait_for_supplier(struct pool *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = clock_mono_ms() + SUPPLIER_START_WAIT_MS;
	const char *path = p->sup->cfg.supplier_socket;

	memcpy(sa.sun_path, path, strnlen(path, sizeof(sa.sun_path) - 1));
	while (clock_mono_ms() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return;
		usleep(10000);
	}
	log_warn("the supplier is not listening yet; supplier_order attempts will retry",
	         "socket=%s", path);
}

static int check_program(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (access(path, X_OK) == 0)
		return 0;
	snprintf(err, errlen,
	         "cannot run %s: %s (build it with cmake --build, it must sit "
	         "beside idem-supervisor)",
	         path, strerror(errno));
	return -1;
}

static void slot_init(struct sup *sup, struct slot *sl, int index)
{
	sl->index = index;
	sl->sup = sup;
	sl->state = SLOT_EMPTY;
	sl->timer = evtimer_new(sup->base, attempt_timeout_cb, sl);
	sl->hb_timer = evtimer_new(sup->base, heartbeat_timeout_cb, sl);
	sl->fault_timer = evtimer_new(sup->base, async_kill_cb, sl);
	frame_decoder_init(&sl->dec, sup->cfg.max_frame);
	slot_spawn(sl);
}

static void slot_free(struct slot *sl)
{
	task_take(sl);
	if (sl->bev != NULL)
		bufferevent_free(sl->bev);
	event_free(sl->timer);
	event_free(sl->hb_timer);
	event_free(sl->fault_timer);
	frame_decoder_free(&sl->dec);
}

int pool_start(struct sup *sup, const struct pool_callbacks *cb, void *arg, struct pool **out,
               char *err, size_t errlen)
{
	struct pool *p;

	if (check_program(sup->bindir, "idem-worker", err, errlen) != 0 ||
	    check_program(sup->bindir, "idem-supplier", err, errlen) != 0)
		return -1;
	p = calloc(1, sizeof(*p));
	p->sup = sup;
	p->cb = cb;
	p->cb_arg = arg;
	p->fs_fd = -1;
	p->nslots = sup->cfg.workers;
	p->slots = calloc((size_t)p->nslots, sizeof(*p->slots));
	p->supplier_timer = evtimer_new(sup->base, supplier_timer_cb, p);
	*out = p;
	sup->pool = p;
	spawn_supplier(p);
	wait_for_supplier(p);
	fork_server_start(p);
	for (int i = 0; i < p->nslots; i++)
		slot_init(sup, &p->slots[i], i);
	if (sup->cfg.spare_worker) {
		p->spare = calloc(1, sizeof(*p->spare));
		slot_init(sup, p->spare, p->nslots);
	}
	return 0;
}

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nslots; i++)
		slot_free(&p->slots[i]);
	if (p->spare != NULL) {
		slot_free(p->spare);
		free(p->spare);
	}
	if (p->fs_ev != NULL)
		event_free(p->fs_ev);
	if (p->fs_fd >= 0)
		close(p->fs_fd);
	event_free(p->supplier_timer);
	if (p->kill_timer != NULL)
		event_free(p->kill_timer);
	free(p->slots);
	free(p);
}

/* Gives a's worker to b and b's to a: the pid, the channel, a fork still
 * on its way and the spawn times belong to the worker, not to the slot. */
static void swap_workers(struct slot *a, struct slot *b)
{
	struct slot t = *a;

	a->pid = b->pid;
	a->pid_pending = b->pid_pending;
	a->spawn_token = b->spawn_token;
	a->bev = b->bev;
	a->dec = b->dec;
	a->hist.spawned_at = b->hist.spawned_at;
	a->hist.ready_at = b->hist.ready_at;
	a->expected_exit = b->expected_exit;
	a->cause = b->cause;
	b->pid = t.pid;
	b->pid_pending = t.pid_pending;
	b->spawn_token = t.spawn_token;
	b->bev = t.bev;
	b->dec = t.dec;
	b->hist.spawned_at = t.hist.spawned_at;
	b->hist.ready_at = t.hist.ready_at;
	b->expected_exit = t.expected_exit;
	b->cause = t.cause;
	if (a->bev != NULL)
		bufferevent_setcb(a->bev, slot_read_cb, NULL, slot_event_cb, a);
	if (b->bev != NULL)
		bufferevent_setcb(b->bev, slot_read_cb, NULL, slot_event_cb, b);
}

static struct slot *idle_slot(struct pool *p)
{
	struct slot *sp = p->spare;

	for (int i = 0; i < p->nslots; i++)
		if (p->slots[i].state == SLOT_READY)
			return &p->slots[i];
	/* A slot still waiting for its new worker (the spare was not ready
	 * when its last one died) takes the spare's if that one is ready
	 * first; the spare then waits for the new one instead. */
	if (sp == NULL || sp->state != SLOT_READY || sp->bev == NULL)
		return NULL;
	for (int i = 0; i < p->nslots; i++) {
		struct slot *sl = &p->slots[i];

		if (sl->state != SLOT_SPAWNING)
			continue;
		swap_workers(sl, sp);
		evtimer_del(sl->timer);
		slot_on(sl, SE_READY);
		sp->state = SLOT_SPAWNING; /* its worker is sl's new one */
		timer_in(sp->timer, POOL_READY_TIMEOUT_MS);
		log_debug("worker taken from the spare", "slot=%d worker_pid=%ld", sl->index,
		          (long)sl->pid);
		return sl;
	}
	return NULL;
}

int pool_idle(struct pool *p)
{
	struct slot *sl = idle_slot(p);

	return sl != NULL ? sl->index : -1;
}

pid_t pool_pid(const struct pool *p, int i)
{
	return p->slots[i].pid;
}

int64_t pool_assign(struct pool *p, int i, const struct pool_task *task)
{
	struct slot *sl = &p->slots[i];

	slot_on(sl, SE_ASSIGN);
	sl->plan = task->plan;
	/* The worker will kill itself: its death is not a crash loop. */
	sl->expected_exit = task->plan.kind == FAULT_KILL;
	if (task->plan.kind == FAULT_KILL)
		sl->cause = DEATH_PLANNED_KILL;
	sl->task = (struct slot_task){.owner = task->owner,
	                              .activity = strdup(task->activity),
	                              .workflow_id = strdup(task->workflow_id),
	                              .step = task->step,
	                              .attempt = task->attempt,
	                              .heartbeat_ms = task->heartbeat_ms};
	sl->task_id = ++p->next_task_id;
	return sl->task_id;
}

int pool_busy_count(const struct pool *p)
{
	int n = 0;

	for (int i = 0; i < p->nslots; i++)
		n += p->slots[i].state == SLOT_BUSY;
	return n;
}

int pool_live_count(const struct pool *p)
{
	int n = 0;

	for (int i = 0; i < p->nslots; i++)
		n += p->slots[i].state != SLOT_FAILED;
	return n;
}

static void describe_exit(int status, char *buf, size_t len)
{
	if (status == EXIT_UNKNOWN)
		snprintf(buf, len, "gone before it sent its pid (no exit status)");
	else if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped (status 0x%x)", status);
}

/* A slot whose worker died takes the spare's, which is started and ready,
 * instead of waiting for a new one to exec and open the app DB (2-3 ms, a
 * third of a slot's time when a tenth of the attempts kill their worker);
 * then a new spare starts. Only for a death that would respawn at once: a
 * slot in backoff (a crash loop) waits as before. */
static int adopt_spare(struct pool *p, struct slot *sl)
{
	struct slot *sp = p->spare;

	if (sp == NULL || sl == sp || sp->state != SLOT_READY || sp->bev == NULL)
		return 0;
	swap_workers(sl, sp); /* sp gets the dead worker's empty place */
	sl->expected_exit = 0;
	sl->close_reason[0] = '\0';
	sl->cause = DEATH_UNEXPECTED;
	sl->spawns++;
	sl->restarts++;
	slot_on(sl, SE_SPAWN);
	slot_on(sl, SE_READY);
	log_debug("worker taken from the spare", "slot=%d worker_pid=%ld", sl->index,
	          (long)sl->pid);
	sp->state = SLOT_EMPTY; /* its worker now belongs to sl */
	slot_spawn(sp);
	return 1;
}

static void slot_exited(struct pool *p, struct slot *sl, int status)
{
	char how[128], reason[256], task[700];
	enum death_cause cause;
	int64_t delay;

	if (sl->bev != NULL)
		slot_drain(sl);
	describe_exit(status, how, sizeof(how));
	snprintf(reason, sizeof(reason), "worker %s", how);
	if (sl->task.owner != NULL && !sl->dec.failed && frame_decoder_pending(&sl->dec) > 0)
		snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason),
		         "; its channel closed in the middle of a frame (%zu bytes of it received)",
		         frame_decoder_pending(&sl->dec));
	task_fields(sl, task, sizeof(task));
	cause = p->stopping ? DEATH_SHUTDOWN : (enum death_cause)sl->cause;
	p->stats.deaths[cause]++;
	if (sl->bev != NULL || sl->task.owner != NULL)
		slot_close(sl, POOL_LOSS_WORKER, reason, 0);
	log_at(sl->expected_exit || p->stopping ? LOG_INFO : LOG_WARN, "worker exited",
	       "slot=%d worker_pid=%ld%s how=\"%s\" cause=%s", sl->index, (long)sl->pid, task, how,
	       death_cause_name(cause));
	sl->pid = 0;
	evtimer_del(sl->timer);
	slot_on(sl, SE_EXIT);
	if (p->stopping)
		return;
	delay = slot_respawn_delay(&sl->hist, clock_mono_ms(), sl->expected_exit);
	if (delay < 0) {
		slot_on(sl, SE_GIVE_UP);
		log_error("worker slot gave up: too many deaths in a row; fix the worker (see "
		          "its log lines above) and restart idem-supervisor",
		          "slot=%d deaths=%d window_ms=%d last=\"%s\"", sl->index,
		          POOL_BURST_DEATHS, POOL_BURST_WINDOW_MS, how);
		if (pool_live_count(p) == 0)
			log_error("every worker slot gave up: no activity can run until "
			          "idem-supervisor is restarted",
			          "");
		return;
	}
	if (delay == 0 && adopt_spare(p, sl))
		return;
	log_debug("worker respawn scheduled", "slot=%d delay_ms=%lld", sl->index, (long long)delay);
	timer_in(sl->timer, delay);
}

static void supplier_exited(struct pool *p, int status)
{
	char how[128];
	int64_t delay;

	describe_exit(status, how, sizeof(how));
	p->supplier_pid = 0;
	if (p->stopping) {
		log_info("supplier exited", "how=\"%s\"", how);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == IDEM_EXIT_FAULT) {
		log_info("supplier died as planned (injected fault); respawning", "");
		spawn_supplier(p);
		return;
	}
	/* A supplier that cannot start (its ledger unreadable, its socket
	 * taken) would be respawned every second forever: like a worker
	 * slot, it gives up after a burst of deaths. */
	delay = slot_respawn_delay(&p->supplier_hist, clock_mono_ms(), 0);
	if (delay < 0) {
		log_error("the supplier gave up: too many deaths in a row; supplier_order attempts "
		          "fail and retry until idem-supervisor is restarted with the cause fixed "
		          "(see the supplier's log lines above: SUPPLIER_DATABASE, SUPPLIER_SOCKET)",
		          "deaths=%d window_ms=%d last=\"%s\"", POOL_BURST_DEATHS,
		          POOL_BURST_WINDOW_MS, how);
		return;
	}
	log_warn("supplier exited; respawning", "how=\"%s\" delay_ms=%lld", how, (long long)delay);
	timer_in(p->supplier_timer, delay);
}

void pool_reap(struct pool *p)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		/* A forked worker sends its pid before it can exit: once it is
		 * reaped, its reply is in (read after the reap, not before: it
		 * may have come in between). */
		fork_server_collect(p);
		if (pid == p->supplier_pid) {
			supplier_exited(p, status);
			continue;
		}
		for (uint32_t i = 0; i <= (uint32_t)p->nslots; i++) {
			struct slot *sl = slot_by_index(p, i);

			if (sl != NULL && sl->pid == pid)
				slot_exited(p, sl, status);
		}
		if (pid == p->fs_pid) {
			p->fs_pid = 0;
			if (!p->stopping)
				fork_server_stop(p, "the fork server exited");
		}
	}
}

static void signal_children(struct pool *p, int sig)
{
	for (int i = 0; i < p->nslots; i++)
		if (p->slots[i].pid > 0)
			kill(p->slots[i].pid, sig);
	if (p->spare != NULL && p->spare->pid > 0)
		kill(p->spare->pid, sig);
	if (p->fs_pid > 0)
		kill(p->fs_pid, sig);
	if (p->supplier_pid > 0)
		kill(p->supplier_pid, sig);
}

/* Shutdown escalates like nginx's: the closed channel asks each worker to
 * exit (EOF), then SIGTERM, then SIGKILL at kill_after_ms. */
static void kill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p = arg;

	if (p->stop_stage++ == 0) {
		signal_children(p, SIGTERM);
		timer_in(p->kill_timer, p->kill_after_ms / 2);
	} else {
		signal_children(p, SIGKILL);
	}
}

void pool_stop(struct pool *p, int64_t kill_after_ms)
{
	p->stopping = 1;
	fork_server_collect(p); /* the pids of the forks already answered */
	if (p->fs_fd >= 0) {
		event_free(p->fs_ev);
		p->fs_ev = NULL;
		close(p->fs_fd); /* EOF: the fork server exits */
		p->fs_fd = -1;
	}
	for (uint32_t i = 0; i <= (uint32_t)p->nslots; i++) {
		struct slot *sl = slot_by_index(p, i);

		if (sl == NULL)
			continue;
		evtimer_del(sl->timer);
		if (sl->bev != NULL) {
			bufferevent_free(sl->bev);
			sl->bev = NULL;
		}
		sl->expected_exit = 1;
		if (sl->state != SLOT_STOPPING && slot_next(sl->state, SE_CLOSE) >= 0)
			slot_on(sl, SE_CLOSE);
	}
	evtimer_del(p->supplier_timer);
	if (p->supplier_pid > 0)
		kill(p->supplier_pid, SIGTERM);
	p->kill_after_ms = kill_after_ms;
	p->kill_timer = evtimer_new(p->sup->base, kill_timer_cb, p);
	timer_in(p->kill_timer, kill_after_ms / 2);
}

int pool_children(const struct pool *p)
{
	int n = (p->supplier_pid > 0) + (p->spare != NULL && p->spare->pid > 0) + (p->fs_pid > 0);

	for (int i = 0; i < p->nslots; i++)
		n += p->slots[i].pid > 0;
	return n;
}

int pool_total_restarts(const struct pool *p)
{
	int n = 0;

	for (int i = 0; i < p->nslots; i++)
		n += p->slots[i].restarts;
	return n;
}

const struct pool_stats *pool_stats(const struct pool *p)
{
	return &p->stats;
}

static const char *const death_names[DEATH_NCAUSES] = {
    "unexpected", "planned_kill", "timeout", "channel", "shutdown",
};

const char *death_cause_name(enum death_cause c)
{
	return (unsigned)c < DEATH_NCAUSES ? death_names[c] : "unexpected";
}

json_t *pool_json(const struct pool *p)
{
	json_t *slots = json_array();
	int64_t now = clock_mono_ms();

	for (int i = 0; i < p->nslots; i++) {
		const struct slot *sl = &p->slots[i];
		json_t *o = json_pack("{s:i, s:s, s:I, s:i}", "slot", i, "state",
		                      slot_state_name(sl->state), "pid", (json_int_t)sl->pid,
		                      "restarts", sl->restarts);

		if (sl->task.owner != NULL)
			json_object_set_new(o, "task",
			                    json_pack("{s:s, s:i, s:s, s:i, s:I}", "workflow_id",
			                              sl->task.workflow_id, "step", sl->task.step,
			                              "activity", sl->task.activity, "attempt",
			                              sl->task.attempt, "running_ms",
			                              (json_int_t)(now - sl->started_at)));
		json_array_append_new(slots, o);
	}
	return json_pack(
	    "{s:o, s:o, s:I, s:I, s:i}", "slots", slots, "spare",
	    p->spare != NULL
	        ? json_pack("{s:s, s:I, s:i}", "state", slot_state_name(p->spare->state), "pid",
	                    (json_int_t)p->spare->pid, "spawns", p->spare->spawns)
	        : json_null(),
	    "supplier_pid", (json_int_t)p->supplier_pid, "fork_server_pid",
	    (json_int_t)(p->fs_fd >= 0 ? p->fs_pid : 0), "restarts", pool_total_restarts(p));
}
