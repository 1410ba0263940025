/* pool.c — the worker slot table (after nginx's ngx_processes): a slot's
 * index is its identity and is reused on respawn. Each worker holds its
 * end of a socketpair as fd 3 (spawn.c starts it: the fork server, or
 * posix_spawn); the supervisor's end is a bufferevent carrying
 * length-prefixed JSON frames, read here. A slot's state changes only
 * through slot_on(), the table of slot_next(); respawn throttling is
 * slot_respawn_delay(). A slot runs one attempt at a time, whose owner
 * hears of its end at most once: a result or a loss. With SPARE_WORKER, one
 * more worker waits ready, as slot nslots, for a slot to take over
 * (spare.c). The app's helper process (the inventory's supplier) is a
 * child too, respawned after a second. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
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
#include "frame.h"
#include "idem_app.h"
#include "log.h"
#include "msg.h"
#include "pool.h"
#include "pool_internal.h"
#include "sup.h"
#include "timer.h"
#include "xalloc.h"

#define HELPER_RESPAWN_MS 1000
#define HELPER_START_WAIT_MS 3000
/* A worker reads its task frame at once. One that lets the supervisor's
 * output sit unsent this long has stopped reading: it is killed, and its
 * attempt retried. Nor is more than two frames' worth ever queued to one
 * channel (CHANNEL_QUEUE_MAX). */
#define CHANNEL_WRITE_TIMEOUT_MS 5000
#define CHANNEL_QUEUE_MAX(max_frame) (2 * (max_frame))

/* ---- the lifecycle table -------------------------------------------------- */

/* The next state by state and event, -1 where the event is not valid.
 * Columns: SPAWN, READY, ASSIGN, DONE, CLOSE, EXIT, GIVE_UP, then the
 * spare's: ADOPT, HAND_OVER, TRADE. */
static const signed char slot_table[SLOT_NSTATES][SE_NEVENTS] = {
    [SLOT_EMPTY] = {SLOT_SPAWNING, -1, -1, -1, -1, -1, -1, -1, -1, -1},
    [SLOT_SPAWNING] = {-1, SLOT_READY, -1, -1, SLOT_STOPPING, SLOT_BACKOFF, -1, SLOT_READY, -1, -1},
    [SLOT_READY] = {-1, -1, SLOT_BUSY, -1, SLOT_STOPPING, SLOT_BACKOFF, -1, -1, SLOT_EMPTY,
                    SLOT_SPAWNING},
    [SLOT_BUSY] = {-1, -1, -1, SLOT_READY, SLOT_STOPPING, SLOT_BACKOFF, -1, -1, -1, -1},
    [SLOT_STOPPING] = {-1, -1, -1, -1, SLOT_STOPPING, SLOT_BACKOFF, -1, -1, -1, -1},
    [SLOT_BACKOFF] = {SLOT_SPAWNING, -1, -1, -1, -1, -1, SLOT_FAILED, SLOT_READY, -1, -1},
    [SLOT_FAILED] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
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

void slot_on(struct slot *sl, enum slot_event e)
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

struct slot *slot_by_index(struct pool *p, uint32_t i)
{
	if (i < (uint32_t)p->nslots)
		return &p->slots[i];
	return p->spare != NULL && i == (uint32_t)p->nslots ? p->spare : NULL;
}

/* ---- a slot takes its worker --------------------------------------------- */

static void slot_read_cb(struct bufferevent *bev, void *arg);
static void slot_event_cb(struct bufferevent *bev, short what, void *arg);
/* The status of a worker that died before the supervisor had its pid. */
#define EXIT_UNKNOWN (-1)
static void slot_exited(struct pool *p, struct slot *sl, int status);

void slot_bind_channel(struct slot *sl)
{
	if (sl->bev != NULL)
		bufferevent_setcb(sl->bev, slot_read_cb, NULL, slot_event_cb, sl);
}

void slot_await_ready(struct slot *sl)
{
	timer_in(sl->timer, sl->sup->cfg.worker_ready_timeout_ms);
}

void slot_spawned(struct slot *sl, pid_t pid, int fd)
{
	struct sup *sup = sl->sup;
	struct timeval write_timeout = {CHANNEL_WRITE_TIMEOUT_MS / 1000,
	                                (CHANNEL_WRITE_TIMEOUT_MS % 1000) * 1000};

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
	frame_decoder_init(&sl->dec, sup->cfg.max_frame);
	sl->bev = bufferevent_socket_new(sup->base, fd, BEV_OPT_CLOSE_ON_FREE);
	slot_bind_channel(sl);
	bufferevent_set_timeouts(sl->bev, NULL, &write_timeout);
	bufferevent_enable(sl->bev, EV_READ);
	slot_on(sl, SE_SPAWN);
	slot_await_ready(sl);
	if (!sl->pid_pending)
		log_info("worker spawned", "slot=%d worker_pid=%ld", sl->index, (long)pid);
}

/* ---- the channel ---------------------------------------------------------- */

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

/* Closes the channel and SIGKILLs the worker (harmless when it is already
 * dead). A running attempt is reported lost with loss and reason. ours
 * says the supervisor chose this end (a timeout, a planned kill), so the
 * death does not count toward the slot's burst of failures; a worker that
 * hangs up or speaks garbage is the worker's fault and does count. */
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
		worker_kill(sl->pid, SIGKILL);
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

	frame_decoder_feed(&sl->dec, evbuffer_pullup(in, (ev_ssize_t)n), n);
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
	worker_kill(sl->pid, SIGKILL);
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
		frame_decoder_feed(&sl->dec, buf, (size_t)n);
		slot_read_cb(sl->bev, sl);
	}
}

static void attempt_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slot *sl = arg;
	char reason[128];

	if (sl->state == SLOT_SPAWNING && sl->pid_pending) {
		snprintf(reason, sizeof(reason), "no answer to a fork request within %lld ms",
		         (long long)sl->sup->cfg.worker_ready_timeout_ms);
		return fork_server_stop(sl->sup->pool, reason);
	}
	if (sl->state == SLOT_SPAWNING) {
		snprintf(reason, sizeof(reason), "worker did not say ready within %lld ms",
		         (long long)sl->sup->cfg.worker_ready_timeout_ms);
		return channel_stalled(sl, reason);
	}
	if (sl->state != SLOT_BUSY) {
		spawn_worker(sl); /* the timer doubles as the respawn timer */
		return;
	}
	snprintf(reason, sizeof(reason), "start_to_close timeout: no result within %lld ms",
	         (long long)sl->task.start_to_close_ms);
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
	int64_t ms = sl->task.start_to_close_ms;

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

/* The app's helper (struct idem_helper: the inventory's supplier):
 * started with the pool, respawned when it dies (after a second, at once
 * after a planned death), given up after a burst of deaths like a worker
 * slot. Its log lines name it. */
static void helper_log(int level, const struct pool *p, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void helper_log(int level, const struct pool *p, const char *what, const char *fmt, ...)
{
	char msg[256], fields[512];
	va_list ap;

	const char *at = strstr(what, "{}");

	/* what names the helper where it says {} */
	snprintf(msg, sizeof(msg), "%.*s%s%s", at != NULL ? (int)(at - what) : (int)strlen(what),
	         what, at != NULL ? p->sup->app->helper->name : "", at != NULL ? at + 2 : "");
	va_start(ap, fmt);
	vsnprintf(fields, sizeof(fields), fmt, ap);
	va_end(ap);
	log_at((enum log_level)level, msg, "%s", fields);
}

/* Whether the app's helper is a service of its own, on another host:
 * its socket key holds http://HOST:PORT rather than a Unix socket path. */
static int helper_elsewhere(const struct sup *sup)
{
	const char *at = sup->app->helper->socket_key != NULL
	                     ? config_text(&sup->cfg, sup->app->helper->socket_key)
	                     : NULL;

	return at != NULL && strncmp(at, "http://", 7) == 0;
}

static void helper_start(struct pool *p)
{
	char path[600];

	p->helper_pid = spawn_helper(p->sup, path, sizeof(path));
	if (p->helper_pid < 0) {
		helper_log(LOG_ERROR, p, "cannot start the {}; retrying in 1 s",
		           "path=%s error=\"%s\"", path, strerror(errno));
		p->helper_pid = 0;
		timer_in(p->helper_timer, HELPER_RESPAWN_MS);
		return;
	}
	p->helper_hist.spawned_at = clock_mono_ms();
	helper_log(LOG_INFO, p, "{} spawned", "%s_pid=%ld", p->sup->app->helper->name,
	           (long)p->helper_pid);
}

static void helper_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	helper_start(arg);
}

/* At start-up only: give the helper a moment to listen, so that the
 * first activities do not fail on one that is still starting. One that
 * is not up after that is what retries are for. */
static void wait_for_helper(struct pool *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = clock_mono_ms() + HELPER_START_WAIT_MS;
	const struct idem_helper *h = p->sup->app->helper;
	const char *path =
	    h->socket_key != NULL ? config_text(&p->sup->cfg, h->socket_key) : h->socket_path;

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
	helper_log(LOG_WARN, p, "the {} is not listening yet; the attempts that need it will retry",
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
	sl->index = index; /* zeroed: SLOT_EMPTY, no worker */
	sl->sup = sup;
	sl->timer = evtimer_new(sup->base, attempt_timeout_cb, sl);
	sl->hb_timer = evtimer_new(sup->base, heartbeat_timeout_cb, sl);
	sl->fault_timer = evtimer_new(sup->base, async_kill_cb, sl);
	frame_decoder_init(&sl->dec, sup->cfg.max_frame);
	spawn_worker(sl);
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
	    (sup->app->helper != NULL && sup->app->helper->program != NULL &&
	     check_program(sup->bindir, sup->app->helper->program, err, errlen) != 0))
		return -1;
	p = xcalloc(1, sizeof(*p));
	p->sup = sup;
	p->cb = cb;
	p->cb_arg = arg;
	p->fs_fd = -1;
	p->nslots = sup->cfg.workers;
	p->slots = xcalloc((size_t)p->nslots, sizeof(*p->slots));
	p->helper_timer = evtimer_new(sup->base, helper_timer_cb, p);
	*out = p;
	sup->pool = p;
	if (sup->app->helper != NULL && helper_elsewhere(sup)) {
		helper_log(LOG_INFO, p, "the {} runs elsewhere: not started here", "at=%s",
		           config_text(&sup->cfg, sup->app->helper->socket_key));
	} else if (sup->app->helper != NULL) {
		helper_start(p);
		if (sup->app->helper->socket_key != NULL || sup->app->helper->socket_path != NULL)
			wait_for_helper(p);
	}
	fork_server_start(p);
	for (int i = 0; i < p->nslots; i++)
		slot_init(sup, &p->slots[i], i);
	if (sup->cfg.spare_worker) {
		p->spare = xcalloc(1, sizeof(*p->spare));
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
	fork_server_close(p);
	event_free(p->helper_timer);
	if (p->kill_timer != NULL)
		event_free(p->kill_timer);
	free(p->slots);
	free(p);
}

/* Gives a's worker to b and b's to a: the pid, the channel, a fork still
 * on its way and the spawn times belong to the worker, not to the slot. */
/* A slot with a ready worker, or one that takes the spare's. */
static struct slot *idle_slot(struct pool *p)
{
	for (int i = 0; i < p->nslots; i++)
		if (p->slots[i].state == SLOT_READY)
			return &p->slots[i];
	return spare_trade(p);
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
	                              .activity = xstrdup(task->activity),
	                              .workflow_id = xstrdup(task->workflow_id),
	                              .step = task->step,
	                              .attempt = task->attempt,
	                              .heartbeat_ms = task->heartbeat_ms,
	                              .start_to_close_ms = task->start_to_close_ms > 0
	                                                       ? task->start_to_close_ms
	                                                       : sl->sup->cfg.start_to_close_ms};
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
	if (delay == 0 && spare_adopt(p, sl))
		return;
	log_debug("worker respawn scheduled", "slot=%d delay_ms=%lld", sl->index, (long long)delay);
	timer_in(sl->timer, delay);
}

static void helper_exited(struct pool *p, int status)
{
	char how[128];
	int64_t delay;

	describe_exit(status, how, sizeof(how));
	p->helper_pid = 0;
	if (p->stopping) {
		helper_log(LOG_INFO, p, "{} exited", "how=\"%s\"", how);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == IDEM_EXIT_FAULT) {
		helper_log(LOG_INFO, p, "{} died as planned (injected fault); respawning", "%s",
		           "");
		helper_start(p);
		return;
	}
	/* A helper that cannot start (its database unreadable, its socket
	 * taken) would be respawned every second forever: like a worker
	 * slot, it gives up after a burst of deaths. */
	delay = slot_respawn_delay(&p->helper_hist, clock_mono_ms(), 0);
	if (delay < 0) {
		helper_log(
		    LOG_ERROR, p,
		    "the {} gave up: too many deaths in a row; the attempts that need it fail "
		    "and retry until idem-supervisor is restarted with the cause fixed (see "
		    "its log lines above, and the app's keys it is given)",
		    "deaths=%d window_ms=%d last=\"%s\"", POOL_BURST_DEATHS, POOL_BURST_WINDOW_MS,
		    how);
		return;
	}
	helper_log(LOG_WARN, p, "{} exited; respawning", "how=\"%s\" delay_ms=%lld", how,
	           (long long)delay);
	timer_in(p->helper_timer, delay);
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
		if (pid == p->helper_pid) {
			helper_exited(p, status);
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
			worker_kill(p->slots[i].pid, sig);
	if (p->spare != NULL && p->spare->pid > 0)
		worker_kill(p->spare->pid, sig);
	if (p->fs_pid > 0)
		kill(p->fs_pid, sig);
	if (p->helper_pid > 0)
		kill(p->helper_pid, sig);
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
	fork_server_close(p);   /* EOF: the fork server exits */
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
	evtimer_del(p->helper_timer);
	if (p->helper_pid > 0)
		kill(p->helper_pid, SIGTERM);
	p->kill_after_ms = kill_after_ms;
	p->kill_timer = evtimer_new(p->sup->base, kill_timer_cb, p);
	timer_in(p->kill_timer, kill_after_ms / 2);
}

int pool_children(const struct pool *p)
{
	int n = (p->helper_pid > 0) + (p->spare != NULL && p->spare->pid > 0) + (p->fs_pid > 0);

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
	char helper[80];
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
	/* The helper's pid as "<its name>_pid" (the inventory: supplier_pid). */
	snprintf(helper, sizeof(helper), "%s_pid",
	         p->sup->app->helper != NULL ? p->sup->app->helper->name : "helper");
	return json_pack(
	    "{s:o, s:o, s:I, s:I, s:i}", "slots", slots, "spare",
	    p->spare != NULL
	        ? json_pack("{s:s, s:I, s:i}", "state", slot_state_name(p->spare->state), "pid",
	                    (json_int_t)p->spare->pid, "spawns", p->spare->spawns)
	        : json_null(),
	    helper, (json_int_t)p->helper_pid, "fork_server_pid",
	    (json_int_t)(p->fs_fd >= 0 ? p->fs_pid : 0), "restarts", pool_total_restarts(p));
}