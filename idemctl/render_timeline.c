/* render_timeline.c — show's timeline of a workflow's history: each step,
 * then a row per attempt gathered from its events (fault, outcome, retry
 * wait, pid, how long it waited and took); see render.h. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "fmt.h"
#include "render.h"
#include "table.h"

#define TL_COLS 9

/* One attempt of a step, gathered from its events. */
struct attempt_view {
	long long n;     /* the attempt number; 0 = none yet */
	long long start; /* ts of its "started" event; 0 = not seen */
	long long end;   /* ts of the event that ended it; 0 = still running */
	long long pid;
	int heartbeats;
	char fault[64];
	char outcome[32];
	char retry[32];                     /* the planned wait before the next attempt */
	char detail[CTL_DETAIL_MAX + 1];    /* the result, or the error */
	char heartbeat[CTL_DETAIL_MAX + 1]; /* the last heartbeat's details */
	char more[CTL_DETAIL_MAX + 1];      /* later events: a timeout, giving up */
};

static int is_attempt_end(const char *kind)
{
	static const char *const ends[] = {"completed",     "failed",    "worker_lost",
	                                   "worker_killed", "timed_out", "attempt_lost"};

	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		if (strcmp(kind, ends[i]) == 0)
			return 1;
	return 0;
}

/* "kill before_effect", "error after_effect", "delay 2.5s", "async_kill 12ms". */
static void fault_text(const json_t *d, char *buf, size_t len)
{
	char dur[32];

	buf[0] = '\0';
	fmt_append(buf, len, "%s", ctl_str(d, "kind", "?"));
	if (json_is_string(json_object_get(d, "point")))
		fmt_append(buf, len, " %s", ctl_str(d, "point", ""));
	else if (json_is_string(json_object_get(d, "when")))
		fmt_append(buf, len, " %s", ctl_str(d, "when", ""));
	else if (json_is_string(json_object_get(d, "mode")))
		fmt_append(buf, len, " %s", ctl_str(d, "mode", ""));
	else if (json_is_integer(json_object_get(d, "ms"))) {
		fmt_dur(ctl_int(d, "ms", 0), dur, sizeof(dur));
		fmt_append(buf, len, " %s", dur);
	}
}

/* Folds one event of attempt a into it. */
static void attempt_event(struct attempt_view *a, const json_t *ev, const json_t *st)
{
	const char *kind = ctl_str(ev, "kind", "?");
	const json_t *d = json_object_get(ev, "detail");
	char text[CTL_DETAIL_MAX + 1];

	if (strcmp(kind, "started") == 0) {
		a->start = ctl_int(ev, "ts", 0);
		a->pid = ctl_int(ev, "pid", 0);
	} else if (strcmp(kind, "fault_injected") == 0) {
		fault_text(d, a->fault, sizeof(a->fault));
	} else if (strcmp(kind, "heartbeat") == 0) {
		a->heartbeats++;
		a->heartbeat[0] = '\0';
		fmt_summary(json_object_get(d, "details"), NULL, a->heartbeat,
		            sizeof(a->heartbeat));
	} else if (strcmp(kind, "retry_scheduled") == 0) {
		fmt_dur(ctl_int(d, "delay_ms", 0), a->retry, sizeof(a->retry));
	} else if (is_attempt_end(kind) && a->outcome[0] == '\0') {
		snprintf(a->outcome, sizeof(a->outcome), "%s", kind);
		a->end = ctl_int(ev, "ts", 0);
		if (a->pid <= 0)
			a->pid = ctl_int(ev, "pid", 0);
		if (json_is_string(json_object_get(d, "error_type"))) /* RETRY says the rest */
			fmt_append(a->detail, sizeof(a->detail), "%s: %s",
			           ctl_str(d, "error_type", ""), ctl_str(d, "message", ""));
		else
			render_event_detail(ev, st, a->detail, sizeof(a->detail));
	} else {
		if (strcmp(kind, "step_failed") == 0)
			snprintf(text, sizeof(text), "gave up: %s", ctl_str(d, "why", "?"));
		else
			render_event_detail(ev, st, text, sizeof(text));
		fmt_append(a->more, sizeof(a->more), "%s%s%s%s", a->more[0] ? "; " : "",
		           strcmp(kind, "step_failed") == 0 ? "" : kind,
		           strcmp(kind, "step_failed") == 0 ? "" : ": ", text);
	}
}

/* Adds the row of attempt a; *since is when the step last began to wait
 * (scheduled, or the previous attempt's end), for WAITED. */
static void attempt_row(struct table *t, const struct attempt_view *a, long long t0,
                        long long *since)
{
	char n[24], at[32] = "-", waited[32] = "-", took[32] = "-", pid[24] = "-";
	char detail[CTL_DETAIL_MAX + 1];
	const char *row[TL_COLS] = {n,
	                            at,
	                            waited,
	                            took,
	                            pid,
	                            a->fault[0] ? a->fault : "-",
	                            a->outcome[0] ? a->outcome : "running",
	                            a->retry[0] ? a->retry : "-",
	                            detail};

	snprintf(n, sizeof(n), "  %lld", a->n);
	if (a->start > 0) {
		fmt_rel(a->start, t0, at, sizeof(at));
		if (*since > 0 && a->start >= *since)
			fmt_dur(a->start - *since, waited, sizeof(waited));
	}
	if (a->start > 0 && a->end >= a->start)
		fmt_dur(a->end - a->start, took, sizeof(took));
	else if (a->start > 0 && a->outcome[0] == '\0')
		fmt_dur(clock_wall_ms() - a->start, took, sizeof(took));
	if (a->pid > 0)
		snprintf(pid, sizeof(pid), "%lld", a->pid);
	/* What happened after the attempt first (a timeout, giving up), then
	 * its heartbeats, then its result or error, which may be cut short. */
	snprintf(detail, sizeof(detail), "%s", a->more);
	if (a->heartbeats == 1)
		fmt_append(detail, sizeof(detail), "%sheartbeat %s", detail[0] ? "; " : "",
		           a->heartbeat);
	else if (a->heartbeats > 1)
		fmt_append(detail, sizeof(detail), "%s%d heartbeats, last %s",
		           detail[0] ? "; " : "", a->heartbeats, a->heartbeat);
	if (a->detail[0] != '\0')
		fmt_append(detail, sizeof(detail), "%s%s", detail[0] ? "; " : "", a->detail);
	table_add(t, row);
	if (a->end > 0 || a->start > 0)
		*since = a->end > 0 ? a->end : a->start;
}

/* A line for an event outside the attempts: "  +2ms scheduled: ...". */
static void event_line(struct table *t, const json_t *ev, const json_t *st, long long t0,
                       const char *indent)
{
	char when[32], detail[CTL_DETAIL_MAX + 1], line[CTL_DETAIL_MAX + 128];
	const char *kind = ctl_str(ev, "kind", "?");

	fmt_rel(ctl_int(ev, "ts", t0), t0, when, sizeof(when));
	detail[0] = '\0';
	if (strcmp(kind, "workflow_started") != 0 && strcmp(kind, "workflow_completed") != 0)
		render_event_detail(ev, st, detail, sizeof(detail));
	snprintf(line, sizeof(line), "%s%s %s%s%s", indent, when, kind, detail[0] ? ": " : "",
	         detail);
	table_line(t, line);
}

/* One step: its summary, when it was scheduled, then a row per attempt. */
static void timeline_step(struct table *t, const json_t *st, long long seq, const json_t *events,
                          long long t0)
{
	static const char *const heads[TL_COLS] = {"  ATTEMPT", "AT",     "WAITED", "TOOK",  "PID",
	                                           "FAULT",     "RESULT", "RETRY",  "DETAIL"};
	struct attempt_view a;
	long long since = 0;
	char text[4096];
	int headed = 0;
	size_t i;
	json_t *ev;

	memset(&a, 0, sizeof(a));
	render_step_summary(st, seq, text, sizeof(text));
	table_line(t, "");
	table_line(t, text);
	json_array_foreach(events, i, ev)
	{
		const char *kind = ctl_str(ev, "kind", "?");
		long long n = ctl_int(ev, "attempt", 0);

		if (ctl_int(ev, "step", -1) != seq)
			continue;
		if (strcmp(kind, "scheduled") == 0) {
			since = ctl_int(ev, "ts", 0);
			event_line(t, ev, st, t0, "  ");
			continue;
		}
		if (n >= 1 && n != a.n) {
			if (a.n > 0)
				attempt_row(t, &a, t0, &since);
			memset(&a, 0, sizeof(a));
			a.n = n;
			if (!headed++)
				table_add(t, heads);
		}
		if (a.n == 0)
			event_line(t, ev, st, t0, "  "); /* before any attempt */
		else
			attempt_event(&a, ev, st);
	}
	if (a.n > 0)
		attempt_row(t, &a, t0, &since);
}

static const json_t *step_of(const json_t *wf, const json_t *seq)
{
	size_t i;
	json_t *st;

	if (!json_is_integer(seq))
		return NULL;
	json_array_foreach(json_object_get(wf, "steps"), i, st)
	{
		if (ctl_int(st, "seq", -1) == json_integer_value(seq))
			return st;
	}
	return NULL;
}

void render_timeline(const json_t *wf, const json_t *events)
{
	const json_t *steps = json_object_get(wf, "steps");
	long long t0 = ctl_int(wf, "created_at", 0);
	struct table t;
	size_t i;
	json_t *ev, *st;

	table_init(&t, TL_COLS, NULL);
	json_array_foreach(events, i, ev)
	{
		if (strcmp(ctl_str(ev, "kind", ""), "workflow_started") == 0)
			event_line(&t, ev, NULL, t0, "");
	}
	json_array_foreach(steps, i, st)
	{
		timeline_step(&t, st, ctl_int(st, "seq", (long long)i), events, t0);
	}
	if (json_array_size(steps) == 0)
		table_line(&t, "no steps yet");
	table_line(&t, "");
	json_array_foreach(events, i, ev)
	{
		const char *kind = ctl_str(ev, "kind", "");

		if (strcmp(kind, "workflow_started") != 0 &&
		    step_of(wf, json_object_get(ev, "step")) == NULL)
			event_line(&t, ev, NULL, t0, "");
	}
	table_print(&t);
}
