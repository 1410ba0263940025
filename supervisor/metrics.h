/* metrics.h — histograms and counters, rendered with the engine's and the
 * pool's counters as Prometheus text for GET /metrics. */
#ifndef IDEM_METRICS_H
#define IDEM_METRICS_H

#include <stdint.h>

struct evbuffer;
struct sup;

/* Fixed-bucket histograms in seconds (Prometheus' le buckets, 0.5 ms to
 * 10 s, then +Inf) and counters. Observing costs a few comparisons and
 * no allocation; metrics_write() renders them, with the engine's and the
 * pool's counters, as Prometheus text. */
#define METRICS_NBUCKETS 14  /* finite upper bounds; +Inf is the count */
#define METRICS_ACTIVITIES 8 /* activity labels; the last one is "other" */
#define METRICS_NAME_MAX 64

struct histogram {
	uint64_t buckets[METRICS_NBUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	double sum; /* seconds */
};

/* Why a worker died, as far as the supervisor knows when it reaps it. */
enum death_cause {
	DEATH_UNEXPECTED,   /* nothing planned it: a crash, an outside kill, an exit */
	DEATH_PLANNED_KILL, /* a planned fault: a kill at a crash point, an async kill */
	DEATH_TIMEOUT,      /* killed for start_to_close, heartbeat or schedule_to_close */
	DEATH_CHANNEL,      /* its channel was closed: garbage on it, a frame not sent */
	DEATH_SHUTDOWN,     /* stopped with the supervisor */
	DEATH_NCAUSES
};

struct metrics {
	struct histogram dispatch;                     /* a step ready -> its task frame sent */
	struct histogram commit;                       /* store_commit() wall time */
	struct histogram activity[METRICS_ACTIVITIES]; /* task sent -> result, by activity */
	char activity_name[METRICS_ACTIVITIES][METRICS_NAME_MAX];
	int nactivities;
	int64_t spawns;                /* workers forked */
	int64_t deaths[DEATH_NCAUSES]; /* workers reaped, by cause */
	int64_t api_request_timeouts;  /* API requests not in within API_REQUEST_TIMEOUT */
};

const char *death_cause_name(enum death_cause c);
void metrics_observe(struct histogram *h, double seconds);
/* Seconds between two clock_mono_us() readings. */
static inline double metrics_seconds(int64_t from_us, int64_t to_us)
{
	return (double)(to_us - from_us) / 1e6;
}
/* The histogram of activity name; a new name claims a label. */
struct histogram *metrics_activity(struct metrics *m, const char *name);
/* Appends the Prometheus text of every metric to buf. Returns 0, or -1
 * with err when the state DB could not be read. */
int metrics_write(struct sup *sup, struct evbuffer *buf, char *err, size_t errlen);

#endif
