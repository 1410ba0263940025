/* render_workflow.c — a workflow for people (get, and show's header), its
 * steps, the events' details that show's timeline reuses, and the list of
 * workflows; see render.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "fmt.h"
#include "render.h"
#include "table.h"

void render_wf_duration(const json_t *wf, char *buf, size_t len)
{
	long long created = ctl_int(wf, "created_at", 0), closed = ctl_int(wf, "closed_at", 0);

	buf[0] = '\0';
	if (created <= 0)
		return;
	if (closed > 0) {
		snprintf(buf, len, "took ");
		fmt_dur(closed - created, buf + 5, len - 5);
	} else {
		snprintf(buf, len, "running for ");
		fmt_dur(clock_wall_ms() - created, buf + 12, len - 12);
	}
}

void render_wf_outcome(const json_t *wf, char *buf, size_t len)
{
	buf[0] = '\0';
	if (json_is_string(json_object_get(wf, "error")))
		fmt_append(buf, len, "%s", ctl_str(wf, "error", ""));
	else
		fmt_summary(json_object_get(wf, "result"), NULL, buf, len);
}

void render_wf_header(const json_t *wf)
{
	char created[40], closed[40], dur[64], *input;

	fmt_time(json_object_get(wf, "created_at"), created, sizeof(created));
	fmt_time(json_object_get(wf, "closed_at"), closed, sizeof(closed));
	render_wf_duration(wf, dur, sizeof(dur));
	input = json_dumps(json_object_get(wf, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
	printf("workflow   %s (namespace %s, type %s)\n", ctl_str(wf, "workflow_id", "?"),
	       ctl_str(wf, "namespace", "?"), ctl_str(wf, "type", "?"));
	printf("status     %s\n", ctl_str(wf, "status", "?"));
	if (json_is_object(json_object_get(wf, "owner"))) {
		const json_t *o = json_object_get(wf, "owner");
		long long adoptions = ctl_int(o, "adoptions", 0);

		printf("owner      %s (run %lld", ctl_str(o, "supervisor", "?"),
		       ctl_int(o, "run", 0));
		if (adoptions > 0)
			printf("; adopted %lld time%s", adoptions, adoptions == 1 ? "" : "s");
		printf(")\n");
	}
	printf("input      %s\n", input ? input : "-");
	free(input);
	if (json_is_string(json_object_get(wf, "error"))) {
		printf("error      %s\n", ctl_str(wf, "error", ""));
	} else if (json_object_get(wf, "result") != NULL &&
	           !json_is_null(json_object_get(wf, "result"))) {
		input = json_dumps(json_object_get(wf, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
		printf("result     %s\n", input ? input : "-");
		free(input);
	}
	printf("created    %s\n", created);
	printf("closed     %s%s%s%s\n", closed, dur[0] ? " (" : "", dur, dur[0] ? ")" : "");
}

/* "ErrorType: message (why)" of a failed attempt or step. */
static void error_detail(const json_t *d, char *buf, size_t len)
{
	const json_t *retryable = json_object_get(d, "retryable");

	fmt_append(buf, len, "%s: %s", ctl_str(d, "error_type", "Error"),
	           ctl_str(d, "message", ""));
	if (json_is_string(json_object_get(d, "why")))
		fmt_append(buf, len, " (%s)", ctl_str(d, "why", ""));
	else if (json_is_boolean(retryable))
		fmt_append(buf, len, " (%s)",
		           json_is_true(retryable) ? "retryable" : "not retryable");
}

void render_event_detail(const json_t *ev, const json_t *st, char *buf, size_t len)
{
	const char *kind = ctl_str(ev, "kind", "");
	const json_t *d = json_object_get(ev, "detail");
	char dur[32];

	buf[0] = '\0';
	if (strcmp(kind, "completed") == 0) {
		fmt_summary(json_object_get(d, "result"), json_object_get(st, "input"), buf, len);
	} else if (strcmp(kind, "workflow_completed") == 0) {
		fmt_summary(json_object_get(d, "result"), NULL, buf, len);
	} else if (strcmp(kind, "scheduled") == 0 || strcmp(kind, "workflow_started") == 0) {
		fmt_summary(json_object_get(d, "input"), NULL, buf, len);
	} else if (json_is_string(json_object_get(d, "error_type"))) {
		error_detail(d, buf, len);
	} else if (json_is_integer(json_object_get(d, "delay_ms"))) {
		fmt_dur(ctl_int(d, "delay_ms", 0), dur, sizeof(dur));
		fmt_append(buf, len, "retry in %s", dur);
	} else if (strcmp(kind, "heartbeat") == 0) {
		fmt_summary(json_object_get(d, "details"), NULL, buf, len);
	} else if (json_is_string(json_object_get(d, "reason"))) {
		fmt_append(buf, len, "%s", ctl_str(d, "reason", ""));
	} else if (json_is_string(json_object_get(d, "error"))) {
		fmt_append(buf, len, "%s", ctl_str(d, "error", ""));
	} else {
		fmt_summary(d, NULL, buf, len);
	}
}

void render_step_summary(const json_t *st, long long seq, char *buf, size_t len)
{
	const char *status = ctl_str(st, "status", "?");
	long long n = ctl_int(st, "attempts", 0);
	int closed = strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0;

	buf[0] = '\0';
	fmt_append(buf, len, "step %lld %s: %s", ctl_int(st, "seq", seq),
	           ctl_str(st, "activity", "?"), status);
	if (closed)
		fmt_append(buf, len, " after %lld attempt%s", n, n == 1 ? "" : "s");
	else if (n > 0)
		fmt_append(buf, len, " (attempt %lld%s)", n,
		           strcmp(status, "scheduled") == 0 ? " failed, retry pending" : "");
	if (json_is_string(json_object_get(st, "error_type")) && strcmp(status, "completed") != 0)
		fmt_append(buf, len, ": %s: %s", ctl_str(st, "error_type", ""),
		           ctl_str(st, "error_message", ""));
}

void render_steps(const json_t *wf)
{
	const json_t *steps = json_object_get(wf, "steps");
	char line[4096];
	size_t i;
	json_t *st;

	if (json_array_size(steps) == 0)
		printf("no steps yet\n");
	json_array_foreach(steps, i, st)
	{
		render_step_summary(st, (long long)i, line, sizeof(line));
		printf("%s\n", line);
	}
}

void render_list(const json_t *rows)
{
	static const char *const heads[] = {"WORKFLOW", "NAMESPACE", "TYPE",  "STATUS",
	                                    "CREATED",  "CLOSED",    "RESULT"};
	struct table t;
	size_t i;
	json_t *wf;

	if (json_array_size(rows) == 0) {
		printf("no workflows\n");
		return;
	}
	table_init(&t, 7, heads);
	json_array_foreach(rows, i, wf)
	{
		char created[40], closed[40], outcome[CTL_DETAIL_MAX + 1];
		const char *row[7] = {ctl_str(wf, "workflow_id", "?"),
		                      ctl_str(wf, "namespace", "?"),
		                      ctl_str(wf, "type", "?"),
		                      ctl_str(wf, "status", "?"),
		                      created,
		                      closed,
		                      outcome};

		fmt_time(json_object_get(wf, "created_at"), created, sizeof(created));
		fmt_time(json_object_get(wf, "closed_at"), closed, sizeof(closed));
		render_wf_outcome(wf, outcome, sizeof(outcome));
		table_add(&t, row);
	}
	table_print(&t);
}
