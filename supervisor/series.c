/* series.c — see series.h. A ring of cumulative samples; the deltas are
 * taken when asked, so a sample is a copy of counters and nothing more. */
#include "series.h"

#include <event2/event.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "fault.h"
#include "pool.h"
#include "sup.h"
#include "xalloc.h"

struct sample {
	int64_t wall_ms;
	int64_t started, completed, failed;
	int64_t attempts, failed_attempts, retries, worker_deaths;
	int64_t faults[FAULT_NKINDS];
	int64_t kills_at[FAULT_NPOINTS];
	int64_t queue_depth, busy;
};

struct series {
	struct sup *sup;
	struct event *tick;
	struct sample ring[SERIES_LEN + 1]; /* one more: the first delta's base */
	int head;                           /* the next slot to write */
	int n;                              /* samples held */
};

static void take(struct series *s)
{
	const struct engine_stats *e = engine_stats(s->sup->engine);
	struct sample *x = &s->ring[s->head];

	x->wall_ms = clock_wall_ms();
	x->started = e->workflows_started;
	x->completed = e->workflows_completed;
	x->failed = e->workflows_failed;
	x->attempts = e->attempts;
	x->failed_attempts = e->failed_attempts;
	x->retries = e->retries;
	x->worker_deaths = e->worker_deaths;
	memcpy(x->faults, e->faults, sizeof(x->faults));
	memcpy(x->kills_at, e->kills_at, sizeof(x->kills_at));
	x->queue_depth = e->queue_depth;
	x->busy = s->sup->pool != NULL ? pool_busy_count(s->sup->pool) : 0;
	s->head = (s->head + 1) % (SERIES_LEN + 1);
	if (s->n < SERIES_LEN + 1)
		s->n++;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	take(arg);
}

struct series *series_new(struct sup *sup)
{
	struct series *s = xcalloc(1, sizeof(*s));
	const struct timeval second = {1, 0};

	s->sup = sup;
	s->tick = event_new(sup->base, -1, EV_PERSIST, tick_cb, s);
	event_add(s->tick, &second);
	take(s);
	return s;
}

void series_free(struct series *s)
{
	if (s == NULL)
		return;
	event_free(s->tick);
	free(s);
}

/* The i-th of the n samples held, oldest first. */
static const struct sample *at(const struct series *s, int i)
{
	return &s->ring[(s->head - s->n + i + 2 * (SERIES_LEN + 1)) % (SERIES_LEN + 1)];
}

#define DELTA(field) (cur->field - prev->field)

json_t *series_json(const struct series *s, int seconds)
{
	json_t *t = json_array(), *faults = json_object(), *points = json_object();
	json_t *cols[9];
	static const char *const names[9] = {"started",       "completed",       "failed",
	                                     "attempts",      "failed_attempts", "retries",
	                                     "worker_deaths", "queue_depth",     "busy_workers"};
	int first = s->n - 1 - seconds;
	json_t *out;

	if (first < 0)
		first = 0;
	for (int c = 0; c < 9; c++)
		cols[c] = json_array();
	for (int k = FAULT_KILL; k < FAULT_NKINDS; k++)
		json_object_set_new(faults, fault_kind_name((enum fault_kind)k), json_array());
	for (int p = 0; p < FAULT_NPOINTS; p++)
		json_object_set_new(points, fault_point_name((enum fault_point)p), json_array());
	for (int i = first + 1; i < s->n; i++) {
		const struct sample *cur = at(s, i), *prev = at(s, i - 1);
		const int64_t v[9] = {DELTA(started),       DELTA(completed),       DELTA(failed),
		                      DELTA(attempts),      DELTA(failed_attempts), DELTA(retries),
		                      DELTA(worker_deaths), cur->queue_depth,       cur->busy};

		json_array_append_new(t, json_integer(cur->wall_ms));
		for (int c = 0; c < 9; c++)
			json_array_append_new(cols[c], json_integer(v[c]));
		for (int k = FAULT_KILL; k < FAULT_NKINDS; k++)
			json_array_append_new(
			    json_object_get(faults, fault_kind_name((enum fault_kind)k)),
			    json_integer(DELTA(faults[k])));
		for (int p = 0; p < FAULT_NPOINTS; p++)
			json_array_append_new(
			    json_object_get(points, fault_point_name((enum fault_point)p)),
			    json_integer(DELTA(kills_at[p])));
	}
	out = json_pack("{s:i, s:o, s:o, s:o}", "interval_s", 1, "t", t, "faults", faults,
	                "kills_by_point", points);
	for (int c = 0; c < 9; c++)
		json_object_set_new(out, names[c], cols[c]);
	return out;
}
