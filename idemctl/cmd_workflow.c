/* cmd_workflow.c — the commands about workflows: start, show, get, list and
 * wait; see cmd.h. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fmt.h"
#include "http.h"
#include "render.h"

static int start_conflict(const char *id, const json_t *doc)
{
	const json_t *wf = json_object_get(doc, "workflow");
	char *input = json_dumps(json_object_get(wf, "input"), JSON_COMPACT);
	int rc = ctl_fail(IDEM_EXIT_FAIL,
	                  "start: %s (workflow %s in namespace %s, status %s, input "
	                  "%s); a workflow id runs once: choose another --workflow-id",
	                  ctl_str(doc, "error", "the workflow exists with other input"), id,
	                  ctl_str(wf, "namespace", "?"), ctl_str(wf, "status", "?"),
	                  input ? input : "?");

	free(input);
	return rc;
}

/* Prints how a long-poll's doc ended (or the timeout) and returns the
 * exit code: 0 completed, 1 failed, 3 still running after wait_ms. */
static int report_closed(struct ctl *c, const char *id, const json_t *doc, int wait_ms)
{
	char dur[64], outcome[2048];
	const json_t *wf = json_object_get(doc, "workflow");
	const char *status;
	int rc;

	status = ctl_str(wf, "status", "?");
	render_wf_duration(wf, dur, sizeof(dur));
	render_wf_outcome(wf, outcome, sizeof(outcome));
	if (c->json)
		http_print_json(doc);
	if (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0) {
		if (!c->json)
			printf("%s %s (%s): %s\n", ctl_str(wf, "workflow_id", id), status, dur,
			       outcome);
		rc = strcmp(status, "completed") == 0 ? IDEM_EXIT_OK : IDEM_EXIT_FAIL;
	} else {
		fmt_dur(wait_ms, dur, sizeof(dur));
		rc = ctl_fail(IDEM_EXIT_TIMEOUT, "timed out after %s: %s is still %s", dur, id,
		              status);
	}
	return rc;
}

#define START_FLAGS_MAX 32 /* of an app */

/* start's arguments: its own options, then the app's flags as given. */
struct start_args {
	const char *wid, *wait, *type, *input;
	const char *value[START_FLAGS_MAX];
	long long number[START_FLAGS_MAX]; /* an integer flag's value */
};

static int start_parse(const struct ctl *c, int argc, char **argv, struct start_args *a)
{
	const struct idem_start_flag *f = ctl_start_flags(c);
	struct opt opts[START_FLAGS_MAX + 5] = {{"--workflow-id", &a->wid, NULL},
	                                        {"--wait", &a->wait, NULL},
	                                        {"--type", &a->type, NULL},
	                                        {"--input", &a->input, NULL}};
	const char *pos[1];
	int n = 4, npos;

	for (int i = 0; f[i].flag != NULL; i++) {
		assert(i < START_FLAGS_MAX);
		opts[n++] = (struct opt){f[i].flag, &a->value[i], NULL};
	}
	opts[n] = (struct opt){NULL, NULL, NULL};
	return ctl_parse_args("start", argc, argv, opts, pos, 0, &npos);
}

/* *input (NEW): the object of --input, or an empty one. Returns 0 or 2. */
static int start_input(const struct start_args *a, json_t **input)
{
	json_error_t jerr;

	if (a->input == NULL) {
		*input = json_object();
		return 0;
	}
	*input = json_loads(a->input, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (*input == NULL)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "start: --input is not JSON: %s (line %d, column %d); give an "
		                "object, e.g. --input '{\"FIELD\": VALUE}'",
		                jerr.text, jerr.line, jerr.column);
	if (json_is_object(*input))
		return 0;
	json_decref(*input);
	*input = NULL;
	return ctl_fail(IDEM_EXIT_USAGE,
	                "start: --input %s is not a JSON object; give one, e.g. --input "
	                "'{\"FIELD\": VALUE}'",
	                a->input);
}

/* Without --input every required flag is given; integer flags are in
 * range. Returns 0 or 2. */
static int start_check_flags(const struct ctl *c, struct start_args *a)
{
	const struct idem_start_flag *f = ctl_start_flags(c);
	char what[128];
	int rc = 0;

	for (int i = 0; rc == 0 && f[i].flag != NULL; i++) {
		snprintf(what, sizeof(what), "%s %s", f[i].flag, f[i].meta);
		if (f[i].required && a->input == NULL)
			rc = ctl_need("start", a->value[i], what);
	}
	for (int i = 0; rc == 0 && f[i].flag != NULL; i++)
		if (f[i].integer && a->value[i] != NULL)
			rc = ctl_parse_number("start", f[i].flag, a->value[i], f[i].lo, f[i].hi,
			                      &a->number[i]);
	return rc;
}

/* "start: --a, --b and --c must be UTF-8 text": the string flags. */
static int start_not_text(const struct idem_start_flag *f)
{
	char names[512] = "";
	int n = 0, k = 0;

	for (int i = 0; f[i].flag != NULL; i++)
		n += !f[i].integer;
	for (int i = 0; f[i].flag != NULL; i++)
		if (!f[i].integer)
			fmt_append(names, sizeof(names), "%s%s",
			           k++ == 0 ? "" : (k == n ? " and " : ", "), f[i].flag);
	return ctl_fail(IDEM_EXIT_USAGE, "start: %s must be UTF-8 text", names);
}

/* Sets the fields of the flags given, in the app's order, over --input's.
 * Returns 0 or 2. */
static int start_fill(const struct ctl *c, const struct start_args *a, json_t *input)
{
	const struct idem_start_flag *f = ctl_start_flags(c);

	for (int i = 0; f[i].flag != NULL; i++) {
		json_t *v;

		if (a->value[i] == NULL)
			continue;
		v = f[i].integer ? json_integer((json_int_t)a->number[i])
		                 : json_string(a->value[i]);
		if (v == NULL)
			return start_not_text(f);
		json_object_set_new(input, f[i].field, v);
	}
	return 0;
}

/* The type asked for: --type, else the app's first; NULL: neither (the
 * supervisor's default). */
static const char *start_type(const struct ctl *c, const struct start_args *a)
{
	if (a->type != NULL)
		return a->type;
	if (c->app == NULL || c->app->workflows == NULL)
		return NULL;
	return c->app->workflows[0].name;
}

/* The workflow id asked for (BORROWED): --workflow-id, else the type's
 * id_field in input; NULL when neither says (the supervisor's answer
 * does). */
static const char *start_id(const struct ctl *c, const char *type, const char *wid,
                            const json_t *input)
{
	const struct idem_workflow *t = c->app != NULL ? c->app->workflows : NULL;

	if (wid != NULL || type == NULL)
		return wid;
	for (; t != NULL && t->name != NULL; t++)
		if (strcmp(t->name, type) == 0 && t->id_field != NULL)
			return json_string_value(json_object_get(input, t->id_field));
	return NULL;
}

/* The body of POST /v1/workflows (NEW); input is borrowed. */
static json_t *start_body(const struct ctl *c, const char *type, json_t *input, const char *wid)
{
	json_t *body = json_object();

	if (type != NULL)
		json_object_set_new(body, "type", json_string(type));
	json_object_set(body, "input", input);
	if (wid != NULL)
		json_object_set_new(body, "workflow_id", json_string(wid));
	if (c->ns_given)
		json_object_set_new(body, "namespace", json_string(c->cfg.namespace_));
	return body;
}

/* Says what POST /v1/workflows answered (doc borrowed) and returns the
 * exit code; id is the workflow id asked for (start_id), NULL: the one
 * the answer names. With --wait, the answer came once the workflow
 * closed, or not. */
static int start_answer(struct ctl *c, const char *id, int status, const json_t *doc, int wait_ms)
{
	const json_t *wf = json_object_get(doc, "workflow");

	if (id == NULL)
		id = ctl_str(wf, "workflow_id", "?");
	if (status >= 300)
		return status == 409 && !c->json ? start_conflict(id, doc)
		                                 : http_refused(c, status, doc);
	if (wait_ms > 0) {
		if (!c->json)
			printf("%s %s (namespace %s)\n", status == 201 ? "started" : "exists",
			       ctl_str(wf, "workflow_id", "?"), ctl_str(wf, "namespace", "?"));
		return report_closed(c, ctl_str(wf, "workflow_id", id), doc, wait_ms);
	}
	if (c->json)
		http_print_json(doc);
	else if (status == 201)
		printf("started %s (namespace %s)\n", ctl_str(wf, "workflow_id", "?"),
		       ctl_str(wf, "namespace", "?"));
	else
		printf("exists %s (status %s): same input, not started again\n",
		       ctl_str(wf, "workflow_id", "?"), ctl_str(wf, "status", "?"));
	return 0;
}

int cmd_start(struct ctl *c, int argc, char **argv)
{
	struct start_args a = {0};
	const char *type;
	int status = 0, rc, wait_ms = 0;
	char path[64] = "/v1/workflows";
	json_t *input = NULL, *body, *doc = NULL;

	if ((rc = start_parse(c, argc, argv, &a)) != 0 || (rc = start_input(&a, &input)) != 0 ||
	    (rc = start_check_flags(c, &a)) != 0 ||
	    (a.wait != NULL &&
	     (rc = ctl_parse_timeout("start: ", "--wait", a.wait, 1, &wait_ms)) != 0) ||
	    (rc = start_fill(c, &a, input)) != 0) {
		json_decref(input);
		return rc;
	}
	if (wait_ms > 0)
		snprintf(path, sizeof(path), "/v1/workflows?wait=%dms", wait_ms);
	type = start_type(c, &a);
	body = start_body(c, type, input, a.wid);
	rc = http_request(c, "POST", path, body, wait_ms, &status, &doc);
	if (rc == 0)
		rc = start_answer(c, start_id(c, type, a.wid, input), status, doc, wait_ms);
	json_decref(body);
	json_decref(input);
	json_decref(doc);
	return rc;
}

int cmd_show(struct ctl *c, int argc, char **argv)
{
	const char *id = NULL;
	char path[CTL_PATH_MAX];
	json_t *doc = NULL;
	const json_t *wf;
	int rc;

	if ((rc = ctl_one_id("show", argc, argv, &id)) != 0)
		return rc;
	http_wf_path(c, id, "/history", NULL, path, sizeof(path));
	if ((rc = http_get(c, path, 0, &doc)) != 0)
		return rc;
	wf = json_object_get(doc, "workflow");
	if (c->json) {
		http_print_json(doc);
	} else {
		render_wf_header(wf);
		printf("\n");
		render_timeline(wf, json_object_get(doc, "events"));
	}
	json_decref(doc);
	return 0;
}

int cmd_get(struct ctl *c, int argc, char **argv)
{
	const char *id = NULL;
	char path[CTL_PATH_MAX];
	json_t *wf = NULL;
	int rc;

	if ((rc = ctl_one_id("get", argc, argv, &id)) != 0)
		return rc;
	http_wf_path(c, id, "", NULL, path, sizeof(path));
	if ((rc = http_get(c, path, 0, &wf)) != 0)
		return rc;
	if (c->json) {
		http_print_json(wf);
	} else {
		render_wf_header(wf);
		render_steps(wf);
	}
	json_decref(wf);
	return 0;
}

/* Fetches up to limit workflows into rows, a page at a time. */
static int list_fetch(const struct ctl *c, const char *status, long long limit, json_t *rows,
                      long long *after)
{
	char path[CTL_PATH_MAX], query[128];
	size_t i;
	json_t *doc = NULL, *wf;
	int rc;

	while ((long long)json_array_size(rows) < limit) {
		long long want = limit - (long long)json_array_size(rows);
		size_t n;

		snprintf(query, sizeof(query), "limit=%lld&after=%lld%s%s",
		         want < CTL_LIST_PAGE ? want : CTL_LIST_PAGE, *after,
		         status ? "&status=" : "", status ? status : "");
		snprintf(path, sizeof(path), "/v1/workflows");
		http_add_query(c, query, path, sizeof(path));
		if ((rc = http_get(c, path, 0, &doc)) != 0)
			return rc;
		n = json_array_size(json_object_get(doc, "workflows"));
		json_array_foreach(json_object_get(doc, "workflows"), i, wf)
		{
			json_array_append(rows, wf);
		}
		*after = ctl_int(doc, "next_after", *after);
		json_decref(doc);
		if ((long long)n < (want < CTL_LIST_PAGE ? want : CTL_LIST_PAGE))
			break;
	}
	return 0;
}

int cmd_list(struct ctl *c, int argc, char **argv)
{
	const char *status = NULL, *limit_text = NULL, *pos[1];
	const struct opt opts[] = {
	    {"--status", &status, NULL}, {"--limit", &limit_text, NULL}, {NULL, NULL, NULL}};
	long long limit = CTL_LIST_DEFAULT, after = 0;
	int npos, rc;
	json_t *rows;

	if ((rc = ctl_parse_args("list", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (limit_text &&
	     (rc = ctl_parse_number("list", "--limit", limit_text, 1, 1000000000LL, &limit)) != 0))
		return rc;
	if (status != NULL && strcmp(status, "running") != 0 && strcmp(status, "completed") != 0 &&
	    strcmp(status, "failed") != 0)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "list: --status %s is not a workflow status (allowed: "
		                "running|completed|failed)",
		                status);
	rows = json_array();
	rc = list_fetch(c, status, limit, rows, &after);
	if (rc == 0 && c->json) {
		json_t *doc =
		    json_pack("{s:O, s:I}", "workflows", rows, "next_after", (json_int_t)after);
		http_print_json(doc);
		json_decref(doc);
	} else if (rc == 0) {
		render_list(rows);
	}
	json_decref(rows);
	return rc;
}

static int wait_one(struct ctl *c, const char *id, int wait_ms)
{
	char path[CTL_PATH_MAX], query[64];
	json_t *doc = NULL;
	int rc;

	snprintf(query, sizeof(query), "timeout=%dms", wait_ms);
	http_wf_path(c, id, "/wait", query, path, sizeof(path));
	if ((rc = http_get(c, path, wait_ms, &doc)) != 0)
		return rc;
	rc = report_closed(c, id, doc, wait_ms);
	json_decref(doc);
	return rc;
}

/* Exits 0 once none is running, whatever became of them. */
static int wait_all(struct ctl *c, int wait_ms)
{
	char path[64], dur[32];
	json_t *doc = NULL;
	const json_t *wfs;
	long long running;
	int rc;

	snprintf(path, sizeof(path), "/v1/wait?timeout=%dms", wait_ms);
	if ((rc = http_get(c, path, wait_ms, &doc)) != 0)
		return rc;
	running = ctl_int(doc, "running", -1);
	wfs = json_object_get(json_object_get(doc, "counts"), "workflows");
	if (c->json)
		http_print_json(doc);
	if (running == 0) {
		if (!c->json)
			printf("no workflow running (%lld completed, %lld failed)\n",
			       ctl_int(wfs, "completed", 0), ctl_int(wfs, "failed", 0));
	} else {
		fmt_dur(wait_ms, dur, sizeof(dur));
		rc =
		    ctl_fail(IDEM_EXIT_TIMEOUT, "timed out after %s: %lld workflow%s still running",
		             dur, running, running == 1 ? " is" : "s are");
	}
	json_decref(doc);
	return rc;
}

int cmd_wait(struct ctl *c, int argc, char **argv)
{
	const char *timeout = NULL, *pos[1];
	int all = 0, npos, rc, wait_ms = CTL_WAIT_MS;
	const struct opt opts[] = {
	    {"--timeout", &timeout, NULL}, {"--all", NULL, &all}, {NULL, NULL, NULL}};

	if ((rc = ctl_parse_args("wait", argc, argv, opts, pos, 1, &npos)) != 0 ||
	    (timeout && (rc = ctl_parse_timeout("wait: ", "--timeout", timeout, 0, &wait_ms)) != 0))
		return rc;
	if (all && npos > 0)
		return ctl_fail(IDEM_EXIT_USAGE, "wait: give a workflow ID or --all, not both");
	if (!all && npos == 0)
		return ctl_need("wait", NULL, "a workflow ID (or --all)");
	return all ? wait_all(c, wait_ms) : wait_one(c, pos[0], wait_ms);
}
