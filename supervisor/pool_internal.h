/* pool_internal.h — the worker pool's insides, shared by its three files
 * and included by no other (pool.h is the pool's interface):
 *   pool.c   the slot table and its lifecycle, the channels and their
 *            frames, the attempts' timers, reaping, the supplier's
 *            lifecycle, /v1/stats;
 *   spawn.c  how a worker or the supplier is started: posix_spawn, or a
 *            fork request to the fork server (idem-worker --fork-server);
 *   spare.c  the spare worker (SPARE_WORKER), handed to a slot whose
 *            worker died or is still starting.
 * A slot's state changes only through slot_on(), that is through the
 * table of slot_next(). A slot's worker is its pid, channel and spawn
 * times; the spare can trade workers with a slot, never its index. */
#ifndef IDEM_POOL_INTERNAL_H
#define IDEM_POOL_INTERNAL_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fault.h"
#include "frame.h"
#include "pool.h"

struct sup;

/* The attempt a slot runs: its owner's handle and what the pool shows
 * of it (owned copies of pool_task's strings). */
struct slot_task {
	void *owner; /* NULL: none */
	char *activity;
	char *workflow_id;
	int step;
	int attempt;
	int64_t heartbeat_ms;
	int64_t start_to_close_ms;
};

struct slot {
	int index;
	enum slot_state state; /* changed by slot_on() only */
	pid_t pid;             /* 0 while pid_pending */
	int pid_pending;       /* asked the fork server, its reply not read yet */
	uint64_t spawn_token;  /* its worker's fork request, to match the reply */
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
	pid_t helper_pid;
	struct slot_history helper_hist; /* its deaths: a crash loop gives up */
	struct event *helper_timer;
	struct event *kill_timer;
	int64_t kill_after_ms;
	int stop_stage;
	int stopping;
	int64_t next_task_id;
	struct pool_stats stats;
};

/* ---- pool.c ---- */

/* Applies event e to sl's state; an event the table refuses is a bug,
 * logged, and changes nothing. */
void slot_on(struct slot *sl, enum slot_event e);
/* Slot i, the spare as index nslots; NULL when there is no such slot. */
struct slot *slot_by_index(struct pool *p, uint32_t i);
/* sl takes the worker just started for it: pid (0 while the fork
 * server's reply is on its way) and fd, the supervisor's end of its
 * channel; the slot is spawning. */
void slot_spawned(struct slot *sl, pid_t pid, int fd);
/* Arms sl's timer: a worker that has not said ready within
 * WORKER_READY_TIMEOUT is killed (it opens the app DB first, which may
 * wait on a lock for a while). */
void slot_await_ready(struct slot *sl);
/* Points sl's channel, when it has one, at sl: after a trade of workers. */
void slot_bind_channel(struct slot *sl);

/* ---- spawn.c ---- */

/* Starts the app's helper (sup->app->helper); path gets its program's
 * path. Its pid, or -1 with errno. */
pid_t spawn_helper(struct sup *sup, char *path, size_t pathlen);
/* Sends sig to a worker and its process group: the worker leads one
 * (worker/main.c) with the commands it runs for command activities, so
 * that a kill takes them too. Before the worker has made its group, the
 * worker alone. */
void worker_kill(pid_t pid, int sig);
/* Starts a worker for sl (the fork server's, or with posix_spawn); on a
 * failure, logs it and tries again in a second. */
void spawn_worker(struct slot *sl);
/* Starts the fork server; when it does not say hello, workers are
 * started with posix_spawn. */
void fork_server_start(struct pool *p);
/* Turns the fork server off for good, with why in the log: workers are
 * started with posix_spawn from now on. */
void fork_server_stop(struct pool *p, const char *why);
/* Closes the fork server's socket (EOF: it exits), quietly. */
void fork_server_close(struct pool *p);
/* Reads the fork server's replies that are in: the pids of the forks. */
void fork_server_collect(struct pool *p);

/* ---- spare.c ---- */

/* With the spare ready, a slot still waiting for its new worker takes
 * the spare's, and the spare the new one: that slot, or NULL. */
struct slot *spare_trade(struct pool *p);
/* sl, whose worker just died, takes the spare's if it is ready, and a new
 * spare starts: 1; else 0 (sl respawns as usual). */
int spare_adopt(struct pool *p, struct slot *sl);

#endif
