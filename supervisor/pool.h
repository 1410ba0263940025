/* pool.h — the worker slot table: spawn, ready, busy, backoff, reap, the
 * channels' frames, the spare worker, and the supplier child. Owns the
 * worker processes and their channels. pool.c, spawn.c and spare.c
 * implement it, sharing pool_internal.h. */
#ifndef IDEM_POOL_H
#define IDEM_POOL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "fault.h"
#include "histogram.h"
#include "msg.h"

struct sup;

enum slot_state {
	SLOT_EMPTY,    /* not started yet */
	SLOT_SPAWNING, /* started, waiting for its ready frame */
	SLOT_READY,    /* idle, can take a task */
	SLOT_BUSY,     /* running one attempt */
	SLOT_STOPPING, /* channel closed, killed or asked to exit; waiting to reap */
	SLOT_BACKOFF,  /* dead; respawn timer armed */
	SLOT_FAILED,   /* gave up after a burst of deaths */
	SLOT_NSTATES
};

enum slot_event {
	SE_SPAWN,     /* a worker started: asked of the fork server, or posix_spawn */
	SE_READY,     /* ready frame */
	SE_ASSIGN,    /* a task was sent */
	SE_DONE,      /* its result came back */
	SE_CLOSE,     /* channel error/EOF, timeout kill, or shutdown */
	SE_EXIT,      /* reaped */
	SE_GIVE_UP,   /* too many deaths in the window */
	SE_ADOPT,     /* took the spare's ready worker, its own dead or not ready yet */
	SE_HAND_OVER, /* the spare: gave its ready worker to a slot whose worker died */
	SE_TRADE,     /* the spare: gave its ready worker for a slot's starting one */
	SE_NEVENTS
};

/* The slot lifecycle as a table: the next state, or -1 when the event is
 * not valid in that state. Pure; tests drive it without processes. */
int slot_next(enum slot_state s, enum slot_event e);
const char *slot_state_name(enum slot_state s);

/* Respawn throttling, pure: at least POOL_RESPAWN_MIN_MS between two
 * spawns of a slot unless the worker had been ready for longer than that;
 * POOL_BURST_DEATHS unexpected deaths within POOL_BURST_WINDOW_MS give up
 * the slot. */
#define POOL_RESPAWN_MIN_MS 1000
#define POOL_BURST_DEATHS 5
#define POOL_BURST_WINDOW_MS 10000

struct slot_history {
	int64_t spawned_at;                /* mono ms of the last spawn */
	int64_t ready_at;                  /* mono ms it became ready, 0 = never */
	int64_t deaths[POOL_BURST_DEATHS]; /* mono ms of recent unexpected deaths */
	int ndeaths;
};

/* Records a death at now and returns the delay in ms before the respawn,
 * or -1 to give up. An expected death (the supervisor killed it, or a
 * planned crash) respawns at once and does not count toward the burst. */
int64_t slot_respawn_delay(struct slot_history *h, int64_t now, int expected);

/* Why a worker died, as far as the pool knows when it reaps it. */
enum death_cause {
	DEATH_UNEXPECTED,   /* nothing planned it: a crash, an outside kill, an exit */
	DEATH_PLANNED_KILL, /* a planned fault: a kill at a crash point, an async kill */
	DEATH_TIMEOUT,      /* killed for start_to_close, heartbeat or schedule_to_close */
	DEATH_CHANNEL,      /* its channel was closed: garbage on it, a frame not sent */
	DEATH_SHUTDOWN,     /* stopped with the supervisor */
	DEATH_NCAUSES
};

const char *death_cause_name(enum death_cause c);

/* What the pool counts. */
struct pool_stats {
	int64_t spawns;                /* workers started (the spare's included) */
	int64_t deaths[DEATH_NCAUSES]; /* workers reaped, by cause */
	struct histogram_set activity; /* task frame sent -> result, by activity */
};

/* Why an attempt ended without a result. */
enum pool_loss {
	POOL_LOSS_WORKER,            /* the worker died, hung up or broke the protocol */
	POOL_LOSS_START_TO_CLOSE,    /* killed: no result within START_TO_CLOSE_TIMEOUT */
	POOL_LOSS_HEARTBEAT,         /* killed: no heartbeat within its timeout */
	POOL_LOSS_SCHEDULE_TO_CLOSE, /* killed at its owner's asking (pool_kill) */
	POOL_LOSS_ASYNC_KILL,        /* killed by a planned fault */
	POOL_NLOSSES
};

/* An attempt as the pool sees it: whom its callbacks are about, what
 * to show of it (logs, /v1/stats), its heartbeat timeout and its fault
 * plan. The strings are copied. */
struct pool_task {
	void *owner;
	const char *activity;
	const char *workflow_id;
	int step;
	int attempt;
	int64_t heartbeat_ms;      /* 0: it does not heartbeat */
	int64_t start_to_close_ms; /* 0: START_TO_CLOSE_TIMEOUT */
	struct fault_plan plan;
};

/* How the pool reports on the attempts it runs, to the arg given at
 * pool_start: a result frame (BORROWED; also a task frame too large to
 * send, as a non-retryable TaskTooLarge), a heartbeat's details
 * (BORROWED), or the attempt's loss. After result or lost, the pool
 * holds no more of owner. */
struct pool_callbacks {
	void (*result)(void *arg, void *owner, const struct msg_result *r, long pid);
	void (*heartbeat)(void *arg, void *owner, json_t *details);
	void (*lost)(void *arg, void *owner, enum pool_loss loss, const char *reason, long pid);
};

struct pool;

int pool_start(struct sup *sup, const struct pool_callbacks *cb, void *arg, struct pool **out,
               char *err, size_t errlen);
void pool_free(struct pool *p);
/* An idle slot's index, or -1. */
int pool_idle(struct pool *p);
/* The pid of slot i's worker (0 while it is being forked). */
pid_t pool_pid(const struct pool *p, int i);
/* Makes slot i busy with task under a fresh task id, which it returns
 * (a planned death is an expected one). */
int64_t pool_assign(struct pool *p, int i, const struct pool_task *task);
/* The owner of task_id when slot i still runs it with its channel open,
 * else NULL (the worker died since: its loss is reported already). */
void *pool_task_owner(const struct pool *p, int i, int64_t task_id);
/* Sends the task frame msg (STOLEN) of task_id on slot i and starts its
 * timers. Returns 0; -1 when the slot no longer runs task_id (msg is
 * dropped) or the channel failed (the attempt is reported lost). */
int pool_send(struct pool *p, int i, int64_t task_id, json_t *msg);
/* Closes slot i's channel and SIGKILLs its worker; its attempt is
 * reported lost with loss and reason. */
void pool_kill(struct pool *p, int i, enum pool_loss loss, const char *reason);
int pool_busy_count(const struct pool *p);
int pool_live_count(const struct pool *p);
/* Reaps children; called on SIGCHLD. */
void pool_reap(struct pool *p);
/* Shutdown: close every channel, SIGTERM, SIGKILL after kill_after_ms. */
void pool_stop(struct pool *p, int64_t kill_after_ms);
/* Number of children (workers and supplier) not yet reaped. */
int pool_children(const struct pool *p);
json_t *pool_json(const struct pool *p);
const struct pool_stats *pool_stats(const struct pool *p);
int pool_total_restarts(const struct pool *p);

#endif
