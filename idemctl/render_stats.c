/* render_stats.c — GET /v1/stats for people: stats prints it once, top
 * (and stats --watch) prints a snapshot with rates since the previous one;
 * see render.h. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "fmt.h"
#include "render.h"
#include "table.h"

static void stats_pool(const json_t *pool)
{
	static const char *const heads[] = {"SLOT", "STATE", "PID", "RESTARTS", "TASK"};
	struct table t;
	size_t i;
	json_t *sl;

	table_init(&t, 5, heads);
	json_array_foreach(json_object_get(pool, "slots"), i, sl)
	{
		const json_t *task = json_object_get(sl, "task");
		char slot[24], pid[24], restarts[24], what[256] = "-", dur[32];
		const char *row[5] = {slot, ctl_str(sl, "state", "?"), pid, restarts, what};

		fmt_int(sl, "slot", slot, sizeof(slot));
		fmt_int(sl, "pid", pid, sizeof(pid));
		fmt_int(sl, "restarts", restarts, sizeof(restarts));
		if (task != NULL) {
			fmt_dur(ctl_int(task, "running_ms", 0), dur, sizeof(dur));
			snprintf(what, sizeof(what), "%s step %lld %s attempt %lld (%s)",
			         ctl_str(task, "workflow_id", "?"), ctl_int(task, "step", -1),
			         ctl_str(task, "activity", "?"), ctl_int(task, "attempt", 0), dur);
		}
		table_add(&t, row);
	}
	table_print(&t);
}

/* "spare worker     ready, pid N (3 started)", or "off". */
/* The app's helper process in the pool's JSON ("supplier_pid": the
 * inventory's supplier): "supplier pid" into label, and its pid. 0 when
 * the app has none. */
static int helper_pid(const json_t *pool, char *label, size_t len, long long *pid)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)pool, key, v)
	{
		size_t n = strlen(key);

		if (n > 4 && strcmp(key + n - 4, "_pid") == 0 &&
		    strcmp(key, "fork_server_pid") != 0 && json_is_integer(v)) {
			snprintf(label, len, "%.*s pid", (int)(n - 4), key);
			*pid = json_integer_value(v);
			return 1;
		}
	}
	return 0;
}

static void print_spare(const json_t *pool)
{
	const json_t *sp = json_object_get(pool, "spare");

	if (!json_is_object(sp))
		printf("spare worker     off\n");
	else
		printf("spare worker     %s, pid %lld (%lld started)\n", ctl_str(sp, "state", "?"),
		       ctl_int(sp, "pid", 0), ctl_int(sp, "spawns", 0));
}

/* "faults  kill 3 (before_effect 1, ...), error 2, ...; seed N" */
static void print_faults(const json_t *s)
{
	const json_t *f = json_object_get(s, "faults"), *t = json_object_get(s, "timeouts");
	const json_t *kinds = json_object_get(f, "by_kind"),
	             *points = json_object_get(f, "kills_by_point");
	const char *key, *sep = "";
	json_t *v;

	if (f == NULL)
		return;
	printf("faults planned   ");
	json_object_foreach((json_t *)kinds, key, v)
	{
		printf("%s%s %lld", sep, key, (long long)json_integer_value(v));
		sep = ", ";
		if (strcmp(key, "kill") == 0 && json_integer_value(v) > 0) {
			const char *k2, *sep2 = "";
			json_t *v2;

			printf(" (");
			json_object_foreach((json_t *)points, k2, v2)
			{
				printf("%s%s %lld", sep2, k2, (long long)json_integer_value(v2));
				sep2 = ", ";
			}
			printf(")");
		}
	}
	printf("; seed %llu, %s mode\n", (unsigned long long)ctl_int(s, "fault_seed", 0),
	       ctl_str(s, "activity_mode", "guarded"));
	printf("timeouts         start_to_close %lld, heartbeat %lld, schedule_to_close %lld\n",
	       ctl_int(t, "start_to_close", 0), ctl_int(t, "heartbeat", 0),
	       ctl_int(t, "schedule_to_close", 0));
}

void render_stats(const json_t *s)
{
	const json_t *wfs = json_object_get(s, "workflows"), *ev = json_object_get(s, "events");
	const json_t *since = json_object_get(s, "since_start"), *pool = json_object_get(s, "pool");
	char up[32], label[80];
	long long pid = 0;

	fmt_dur(ctl_int(s, "uptime_ms", 0), up, sizeof(up));
	printf("workflows        %lld running, %lld completed, %lld failed\n",
	       ctl_int(wfs, "running", 0), ctl_int(wfs, "completed", 0), ctl_int(wfs, "failed", 0));
	printf("attempts         %lld (%lld failed, %lld retries scheduled)\n",
	       ctl_int(s, "attempts", 0),
	       ctl_int(ev, "failed", 0) + ctl_int(ev, "timed_out", 0) +
	           ctl_int(ev, "worker_killed", 0) + ctl_int(ev, "worker_lost", 0),
	       ctl_int(ev, "retry_scheduled", 0));
	printf("since start      attempts %lld, retries %lld, workflows started %lld, "
	       "commits %lld\n",
	       ctl_int(since, "attempts", 0), ctl_int(since, "retries", 0),
	       ctl_int(since, "workflows_started", 0), ctl_int(since, "commits", 0));
	print_faults(s);
	printf("worker restarts  %lld\n", ctl_int(s, "worker_restarts", 0));
	if (helper_pid(pool, label, sizeof(label), &pid))
		printf("%-16s %lld\n", label, pid);
	print_spare(pool);
	printf("uptime           %s%s\n\n", up,
	       json_is_true(json_object_get(s, "stopping")) ? " (stopping)" : "");
	stats_pool(pool);
}

/* A since_start counter per second: since the previous snapshot, or over
 * the whole uptime for the first. */
static double top_rate(const json_t *s, const json_t *prev, const char *key)
{
	long long up = ctl_int(s, "uptime_ms", 0), up0 = prev ? ctl_int(prev, "uptime_ms", 0) : 0;
	long long v = ctl_int(json_object_get(s, "since_start"), key, 0);
	long long v0 = prev ? ctl_int(json_object_get(prev, "since_start"), key, 0) : 0;

	return up > up0 ? (double)(v - v0) * 1000.0 / (double)(up - up0) : 0.0;
}

/* One row per worker slot, with the attempt it runs. */
static void top_slots(const json_t *pool)
{
	static const char *const heads[] = {"SLOT", "PID",      "STATE",   "RESTARTS", "WORKFLOW",
	                                    "STEP", "ACTIVITY", "ATTEMPT", "RUNNING"};
	struct table t;
	size_t i;
	json_t *sl;

	table_init(&t, 9, heads);
	json_array_foreach(json_object_get(pool, "slots"), i, sl)
	{
		const json_t *task = json_object_get(sl, "task");
		char slot[24], pid[24], restarts[24], step[24] = "-", attempt[24] = "-";
		char running[32] = "-";
		const char *row[9] = {slot,
		                      pid,
		                      ctl_str(sl, "state", "?"),
		                      restarts,
		                      task ? ctl_str(task, "workflow_id", "?") : "-",
		                      step,
		                      task ? ctl_str(task, "activity", "?") : "-",
		                      attempt,
		                      running};

		fmt_int(sl, "slot", slot, sizeof(slot));
		fmt_int(sl, "pid", pid, sizeof(pid));
		fmt_int(sl, "restarts", restarts, sizeof(restarts));
		if (task != NULL) {
			fmt_int(task, "step", step, sizeof(step));
			fmt_int(task, "attempt", attempt, sizeof(attempt));
			fmt_dur(ctl_int(task, "running_ms", 0), running, sizeof(running));
		}
		table_add(&t, row);
	}
	table_print(&t);
}

/* "3 (planned_kill 2, timeout 1)" or "0": worker deaths by cause. */
static void top_deaths(const json_t *deaths, char *buf, size_t len)
{
	long long total = 0;
	const char *key, *sep = " (";
	json_t *v;

	json_object_foreach((json_t *)deaths, key, v)
	{
		total += json_integer_value(v);
	}
	snprintf(buf, len, "%lld", total);
	json_object_foreach((json_t *)deaths, key, v)
	{
		if (json_integer_value(v) <= 0)
			continue;
		fmt_append(buf, len, "%s%s %lld", sep, key, (long long)json_integer_value(v));
		sep = ", ";
	}
	if (total > 0)
		fmt_append(buf, len, ")");
}

void render_top(const json_t *s, const json_t *prev)
{
	const json_t *wfs = json_object_get(s, "workflows"),
	             *since = json_object_get(s, "since_start");
	const json_t *pool = json_object_get(s, "pool"), *slots = json_object_get(pool, "slots");
	char now[40], up[32], span[40] = "since start", deaths[256], label[80], helper[128] = "";
	long long busy = 0, pid = 0;
	size_t i;
	json_t *sl;

	json_array_foreach(slots, i, sl)
	{
		busy += strcmp(ctl_str(sl, "state", ""), "busy") == 0;
	}
	clock_format_wall(clock_wall_ms(), now, sizeof(now));
	fmt_dur(ctl_int(s, "uptime_ms", 0), up, sizeof(up));
	if (prev != NULL) {
		snprintf(span, sizeof(span), "last ");
		fmt_dur(ctl_int(s, "uptime_ms", 0) - ctl_int(prev, "uptime_ms", 0), span + 5,
		        sizeof(span) - 5);
	}
	top_deaths(json_object_get(json_object_get(s, "workers"), "deaths"), deaths,
	           sizeof(deaths));
	printf("idem top  %s  uptime %s%s\n", now, up,
	       json_is_true(json_object_get(s, "stopping")) ? "  (stopping)" : "");
	printf("workflows  %lld running, %lld completed, %lld failed; queue %lld ready\n",
	       ctl_int(wfs, "running", 0), ctl_int(wfs, "completed", 0), ctl_int(wfs, "failed", 0),
	       ctl_int(s, "queue_depth", 0));
	printf("totals     %lld attempts (%lld failed), %lld retries, %lld workflows started, "
	       "%lld commits\n",
	       ctl_int(since, "attempts", 0), ctl_int(since, "failed_attempts", 0),
	       ctl_int(since, "retries", 0), ctl_int(since, "workflows_started", 0),
	       ctl_int(since, "commits", 0));
	printf("rates      %.1f attempts/s, %.1f retries/s, %.1f workflows closed/s, %.1f "
	       "commits/s (%s)\n",
	       top_rate(s, prev, "attempts"), top_rate(s, prev, "retries"),
	       top_rate(s, prev, "workflows_completed") + top_rate(s, prev, "workflows_failed"),
	       top_rate(s, prev, "commits"), span);
	if (helper_pid(pool, label, sizeof(label), &pid))
		snprintf(helper, sizeof(helper), "; %s %lld", label, pid);
	printf("workers    %lld busy of %zu, %lld spawns, %lld restarts, deaths %s%s; spare %s\n\n",
	       busy, json_array_size(slots), ctl_int(json_object_get(s, "workers"), "spawns", 0),
	       ctl_int(s, "worker_restarts", 0), deaths, helper,
	       json_is_object(json_object_get(pool, "spare"))
	           ? ctl_str(json_object_get(pool, "spare"), "state", "?")
	           : "off");
	top_slots(pool);
}
