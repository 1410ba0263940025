/* metrics.c — what GET /metrics shows: the histograms (dispatch latency
 * and commit latency from engine_stats(), activity duration by activity
 * from pool_stats()), the worker spawn and death counters, and the
 * counters the engine, the pool and the API keep, as Prometheus text
 * (version 0.0.4). It reads them through their owners' accessors and
 * owns nothing. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "api.h"
#include "engine.h"
#include "faultctl.h"
#include "metrics.h"
#include "pool.h"
#include "store.h"
#include "sup.h"

/* ---- the text format ------------------------------------------------------- */

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample of a family that has a single series. */
static void single(struct evbuffer *b, const char *name, const char *type, const char *help,
                   long long value)
{
	family(b, name, type, help);
	evbuffer_add_printf(b, "%s %lld\n", name, value);
}

/* A label value with \, " and newlines escaped, as the format wants. */
static void label_value(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s != '\0' && n + 3 < len; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[n++] = '\\';
			out[n++] = *s == '\n' ? 'n' : *s;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
}

/* The _bucket (cumulative, le increasing, +Inf = _count), _sum and _count
 * lines of h; labels is "" or `key="value"`. */
static void histogram_write(struct evbuffer *b, const char *name, const char *labels,
                            const struct histogram *h)
{
	const char *sep = labels[0] != '\0' ? "," : "";
	uint64_t cum = 0;

	for (int i = 0; i < HISTOGRAM_NBUCKETS; i++) {
		cum += h->buckets[i];
		evbuffer_add_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
		                    histogram_bounds[i], (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
	                    (unsigned long long)h->count);
	if (labels[0] != '\0') {
		evbuffer_add_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum,
		                    name, labels, (unsigned long long)h->count);
	} else {
		evbuffer_add_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
		                    (unsigned long long)h->count);
	}
}

/* ---- the families ------------------------------------------------------------ */

static int write_workflows(struct sup *sup, struct evbuffer *b, char *err, size_t errlen)
{
	json_t *c = store_counts_json(sup->store, err, errlen), *v;
	const char *key;

	if (c == NULL)
		return -1;
	family(b, "idem_workflows", "gauge", "Workflows in the state DB by status.");
	json_object_foreach(json_object_get(c, "workflows"), key, v)
	{
		evbuffer_add_printf(b, "idem_workflows{status=\"%s\"} %lld\n", key,
		                    (long long)json_integer_value(v));
	}
	json_decref(c);
	single(b, "idem_workflows_in_memory", "gauge", "Running workflows the engine holds.",
	       engine_running_count(sup->engine));
	return 0;
}

static void write_attempts(const struct engine_stats *s, struct evbuffer *b)
{
	single(b, "idem_attempts_total", "counter", "Activity attempts started.", s->attempts);
	single(b, "idem_failed_attempts_total", "counter",
	       "Attempts that failed: an error, a timeout, a lost or killed worker.",
	       s->failed_attempts);
	single(b, "idem_retries_total", "counter", "Retries scheduled after a failed attempt.",
	       s->retries);
	single(b, "idem_attempts_lost_total", "counter",
	       "Attempts lost to a dead or killed worker (timeouts included).", s->worker_deaths);
	single(b, "idem_commits_total", "counter", "State DB commits (one per busy loop turn).",
	       s->commits);
}

static void write_faults(const struct engine_stats *s, struct evbuffer *b)
{
	family(b, "idem_faults_total", "counter", "Faults planned, by kind and crash point.");
	for (int k = FAULT_ASYNC_KILL; k < FAULT_NKINDS; k++)
		evbuffer_add_printf(b, "idem_faults_total{kind=\"%s\"} %lld\n",
		                    fault_kind_name((enum fault_kind)k), (long long)s->faults[k]);
	for (int p = 0; p < FAULT_NPOINTS; p++)
		evbuffer_add_printf(b, "idem_faults_total{kind=\"kill\",point=\"%s\"} %lld\n",
		                    fault_point_name((enum fault_point)p),
		                    (long long)s->kills_at[p]);
	family(b, "idem_timeouts_total", "counter", "Timeouts that ended an attempt or a step.");
	evbuffer_add_printf(b,
	                    "idem_timeouts_total{kind=\"start_to_close\"} %lld\n"
	                    "idem_timeouts_total{kind=\"heartbeat\"} %lld\n"
	                    "idem_timeouts_total{kind=\"schedule_to_close\"} %lld\n",
	                    (long long)s->timeouts[TIMEOUT_START_TO_CLOSE],
	                    (long long)s->timeouts[TIMEOUT_HEARTBEAT],
	                    (long long)s->timeouts[TIMEOUT_SCHEDULE_TO_CLOSE]);
}

static void write_workers(struct sup *sup, struct evbuffer *b)
{
	const struct pool_stats *m = pool_stats(sup->pool);

	single(b, "idem_worker_spawns_total", "counter",
	       "Worker processes started (the spare's included).", m->spawns);
	family(b, "idem_worker_deaths_total", "counter", "Worker processes reaped, by cause.");
	for (int c = 0; c < DEATH_NCAUSES; c++)
		evbuffer_add_printf(b, "idem_worker_deaths_total{cause=\"%s\"} %lld\n",
		                    death_cause_name((enum death_cause)c), (long long)m->deaths[c]);
	single(b, "idem_worker_restarts_total", "counter",
	       "Worker respawns (spawns after a slot's first).", pool_total_restarts(sup->pool));
	single(b, "idem_workers_busy", "gauge", "Workers running an attempt.",
	       pool_busy_count(sup->pool));
	single(b, "idem_queue_depth", "gauge", "Ready steps waiting for an idle worker.",
	       engine_stats(sup->engine)->queue_depth);
	single(b, "idem_api_request_timeouts_total", "counter",
	       "Control API connections closed with a 408: a request not in within "
	       "API_REQUEST_TIMEOUT of its first byte.",
	       api_stats(sup->api)->request_timeouts);
}

static void write_histograms(const struct engine_stats *e, const struct pool_stats *p,
                             struct evbuffer *b)
{
	char label[HISTOGRAM_NAME_MAX * 2 + 16], value[HISTOGRAM_NAME_MAX * 2];

	family(b, "idem_dispatch_latency_seconds", "histogram",
	       "From a step becoming ready to its task frame being sent to a worker.");
	histogram_write(b, "idem_dispatch_latency_seconds", "", &e->dispatch);
	family(b, "idem_activity_duration_seconds", "histogram",
	       "From a task frame sent to its result received, by activity.");
	for (int i = 0; i < p->activity.n; i++) {
		label_value(p->activity.name[i], value, sizeof(value));
		snprintf(label, sizeof(label), "activity=\"%s\"", value);
		histogram_write(b, "idem_activity_duration_seconds", label, &p->activity.h[i]);
	}
	family(b, "idem_commit_latency_seconds", "histogram",
	       "Wall time of one state DB commit (the group commit that ends a loop turn).");
	histogram_write(b, "idem_commit_latency_seconds", "", &e->commit);
}

int metrics_write(struct sup *sup, struct evbuffer *buf, char *err, size_t errlen)
{
	const struct engine_stats *s = engine_stats(sup->engine);

	if (write_workflows(sup, buf, err, errlen) != 0)
		return -1;
	write_attempts(s, buf);
	write_faults(s, buf);
	family(buf, "idem_fault_plan_changes_total", "counter",
	       "Fault plans taken since the start (idemctl faults, their end, SIGHUP).");
	evbuffer_add_printf(buf, "idem_fault_plan_changes_total %lld\n",
	                    (long long)faultctl_changes(sup->faultctl));
	write_workers(sup, buf);
	write_histograms(s, pool_stats(sup->pool), buf);
	return 0;
}
