/* pool.h — the worker slot table: spawn, ready, busy, backoff, reap, the
 * channels' frames, the spare worker, and the supplier child. Owns the
 * worker processes and their channels. */
#ifndef IDEM_POOL_H
#define IDEM_POOL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "fault.h"
#include "frame.h"

struct bufferevent;
struct event;
struct step;
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
	SE_SPAWN,   /* fork+exec done */
	SE_READY,   /* ready frame */
	SE_ASSIGN,  /* a task was sent */
	SE_DONE,    /* its result came back */
	SE_CLOSE,   /* channel error/EOF, timeout kill, or shutdown */
	SE_EXIT,    /* reaped */
	SE_GIVE_UP, /* too many deaths in the window */
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
	struct step *step;         /* the attempt it runs */
	int64_t task_id;
	int64_t started_at; /* mono ms the attempt was sent */
	int64_t sent_us;    /* mono us the attempt's task frame was sent (activity duration) */
	int cause;          /* enum death_cause of its coming exit, as far as known */
	struct sup *sup;
};

struct pool;

int pool_start(struct sup *sup, struct pool **out, char *err, size_t errlen);
void pool_free(struct pool *p);
/* An idle slot, or NULL. */
struct slot *pool_idle(struct pool *p);
/* Marks sl busy with st under a fresh task id, which it returns; plan is
 * the attempt's fault plan (a planned death is an expected one). */
int64_t pool_assign(struct slot *sl, struct step *st, const struct fault_plan *plan);
/* The slot at index i. */
struct slot *pool_slot(struct pool *p, int i);
/* A heartbeat arrived: the heartbeat timeout starts again. */
void pool_heartbeat_seen(struct slot *sl);
int pool_busy_count(const struct pool *p);
int pool_live_count(const struct pool *p);
/* Sends a task frame (NEW ref msg is consumed). Returns 0, or -1 when the
 * channel failed (the slot is closed and the attempt failed). */
int pool_send(struct slot *sl, json_t *msg);
/* Closes the channel of sl, SIGKILLs its worker and fails its attempt
 * with a history event of kind, an error of error_type, and reason. */
void pool_kill(struct slot *sl, const char *kind, const char *error_type, const char *reason);
/* Reaps children; called on SIGCHLD. */
void pool_reap(struct pool *p);
/* Shutdown: close every channel, SIGTERM, SIGKILL after kill_after_ms. */
void pool_stop(struct pool *p, int64_t kill_after_ms);
/* Number of children (workers and supplier) not yet reaped. */
int pool_children(const struct pool *p);
json_t *pool_json(const struct pool *p);
int pool_total_restarts(const struct pool *p);

#endif
