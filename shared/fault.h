/* fault.h — the fault planner: which fault, if any, hits one activity
 * attempt. Every decision is a pure function of (seed, namespace,
 * workflow id, step, attempt, fault kind), hashed — not drawn from a
 * shared random stream — so a seed replays the same plan whatever the
 * scheduling order or the number of workers.
 *
 * At most one fault per attempt, checked in this order; the first that
 * fires is the attempt's fault:
 *   kill      the worker SIGKILLs itself at a crash point
 *   async     the supervisor SIGKILLs the busy worker after a delay
 *   error     the activity returns a retryable error, before or after its effect
 *   delay     the attempt sleeps past START_TO_CLOSE_TIMEOUT
 *   peer      (only an activity that calls the app's outside service, its
 *             peer, such as the inventory's supplier) the peer answers 503
 *             without recording, or records and dies before answering
 *
 * The supervisor plans; the worker and the peer carry the plan out.
 * It travels in the task frame as {"kind": ..., ...} (fault_plan_json). */
#ifndef IDEM_FAULT_H
#define IDEM_FAULT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum fault_point {
	FAULT_BEFORE_EFFECT, /* before the first effect */
	FAULT_AFTER_EFFECT,  /* effect written, transaction not committed */
	FAULT_AFTER_COMMIT,  /* committed, reply not sent */
	FAULT_MID_REPLY,     /* half of the reply frame written */
	FAULT_NPOINTS,
	/* A point an activity's own code names (idem-point NAME): the plan
	 * carries the name. */
	FAULT_NAMED_POINT = FAULT_NPOINTS
};

/* A point's name: 1..63 bytes of [a-z0-9_]. */
#define FAULT_POINT_NAME_MAX 64

enum fault_kind {
	FAULT_NONE,
	FAULT_KILL,
	FAULT_ASYNC_KILL,
	FAULT_ERROR,
	FAULT_DELAY,
	FAULT_PEER,
	FAULT_NKINDS
};

enum fault_peer_mode { FAULT_PEER_UNAVAILABLE, FAULT_PEER_RECORD_THEN_DIE };

/* What the configuration says (FAULT_* keys). Rates are in [0, 1]. */
struct fault_config {
	uint64_t seed;
	double kill_rate[FAULT_NPOINTS]; /* per point, already spread */
	double async_kill_rate;
	int64_t async_kill_max_ms;
	double error_rate;
	double delay_rate;
	int64_t delay_ms; /* how long a delayed attempt sleeps */
	double peer_rate;
	int max_attempt;      /* 0: any attempt; else attempts <= N */
	char activities[256]; /* "" = all; else comma list */
};

struct fault_plan {
	enum fault_kind kind;
	enum fault_point point;                /* kill */
	char point_name[FAULT_POINT_NAME_MAX]; /* kill: the point's name, standard or named */
	int after_effect;                      /* error: 0 before, 1 after the effect */
	int64_t ms;                            /* async: delay; delay: sleep */
	enum fault_peer_mode mode;             /* peer */
};

/* A number in [0, 1) from the tuple; the same tuple always gives the same
 * number. */
double fault_roll(uint64_t seed, const char *ns, const char *workflow_id, int step, int attempt,
                  const char *kind);

/* The plan for one attempt of activity; peer says whether it calls the
 * app's outside service, the only activities peer faults hit. points,
 * when not NULL, are the crash points the activity's own code names
 * (NULL-ended): the kill rates of before_effect, after_effect and
 * after_commit are then spread evenly over them (mid_reply is the
 * worker's and keeps its rate). */
void fault_plan_for(const struct fault_config *c, const char *ns, const char *workflow_id, int step,
                    int attempt, const char *activity, int peer, const char *const *points,
                    struct fault_plan *out);

/* Non-zero when any rate is set. */
int fault_enabled(const struct fault_config *c);

/* The plan as the task frame's "fault" object (NEW ref), or NULL for
 * FAULT_NONE and for async kills, which the supervisor carries out. */
json_t *fault_plan_json(const struct fault_plan *p);

/* Reads a task frame's "fault" object (borrowed, may be NULL = none).
 * Returns 0, or -1 with err naming the bad member. */
int fault_plan_parse(const json_t *j, struct fault_plan *out, char *err, size_t errlen);

const char *fault_kind_name(enum fault_kind k);
const char *fault_point_name(enum fault_point p);
/* Returns 0 and *out for "before_effect" etc., -1 otherwise. */
int fault_point_parse(const char *name, enum fault_point *out);
/* Non-zero when name is a valid point name (FAULT_POINT_NAME_MAX). */
int fault_point_name_ok(const char *name);
const char *fault_peer_mode_name(enum fault_peer_mode m);

/* A short text for logs and history: "kill at after_commit",
 * "error after the effect", "async kill after 12 ms", ... */
void fault_plan_describe(const struct fault_plan *p, char *buf, size_t len);

#endif
