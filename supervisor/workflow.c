/* workflow.c — workflow types and their deterministic replay.
 *
 * A workflow is a C function re-run from the top whenever it can make
 * progress. wf_activity() hands back the recorded result of a completed
 * step, schedules a step it has not seen, and otherwise suspends the
 * workflow; so the function must decide only from its input and the
 * results it is handed (no clock, no randomness, no config reads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "textbuf.h"
#include "workflow.h"
#include "xalloc.h"

static const char *const wf_status_names[] = {"running", "completed", "failed"};
static const char *const step_status_names[] = {"scheduled", "running", "completed", "failed"};

const char *wf_status_name(enum wf_status s)
{
	return wf_status_names[s];
}

const char *step_status_name(enum step_status s)
{
	return step_status_names[s];
}

static int parse_name(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

int wf_status_parse(const char *name, enum wf_status *out)
{
	int i = parse_name(wf_status_names, 3, name);

	if (i < 0)
		return -1;
	*out = (enum wf_status)i;
	return 0;
}

int step_status_parse(const char *name, enum step_status *out)
{
	int i = parse_name(step_status_names, 4, name);

	if (i < 0)
		return -1;
	*out = (enum step_status)i;
	return 0;
}

/* ---- the app's types ------------------------------------------------------ */

const struct idem_workflow *wf_type_find(const struct idem_app *app, const char *name)
{
	for (const struct idem_workflow *t = app->workflows; t->name != NULL; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

void wf_type_unknown(const struct idem_app *app, const char *name, char *err, size_t errlen)
{
	char names[512];
	size_t used = 0;

	names[0] = '\0';
	for (const struct idem_workflow *t = app->workflows;
	     t->name != NULL && used < sizeof(names); t++)
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
		                         used ? ", " : "", t->name);
	snprintf(err, errlen, "unknown workflow type \"%s\" (known: %s)", name, names);
}

const struct idem_activity_options *activity_options_find(const struct idem_app *app,
                                                          const char *name)
{
	static const struct idem_activity_options unknown = {.name = "", .non_retryable = ""};

	for (const struct idem_activity_options *o = app->options; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return &unknown;
}

const struct idem_activity_options *step_options(const struct idem_app *app, const struct step *st)
{
	return st->options != NULL ? st->options : activity_options_find(app, st->activity);
}

/* ---- replay -------------------------------------------------------------- */

/* idem_wf_activity() of the apps' workflow functions. */
static int wf_call(struct idem_wf_run *run, const char *name, json_t *input,
                   const struct idem_activity_options *options, json_t **result)
{
	struct wf_ctx *ctx = (struct wf_ctx *)run;
	struct wf *wf = ctx->wf;
	int seq = run->next_step++;
	struct step *st;

	*result = NULL;
	if (seq >= wf->nsteps) {
		wf_add_step(wf, name, input)->options = options;
		ctx->scheduled++;
		return 0;
	}
	json_decref(input);
	st = wf->steps[seq];
	st->options = options; /* a restarted supervisor learns them here */
	if (strcmp(st->activity, name) != 0) {
		snprintf(run->error, sizeof(run->error),
		         "nondeterminism: step %d was recorded as %s but the workflow code now "
		         "calls %s",
		         seq, st->activity, name);
		return -1;
	}
	switch (st->status) {
	case STEP_COMPLETED:
		*result = st->result;
		return 1;
	case STEP_FAILED:
		snprintf(run->error, sizeof(run->error),
		         "activity %s (step %d) failed after %d "
		         "attempt%s: %s: %s",
		         st->activity, seq, st->attempt, st->attempt == 1 ? "" : "s",
		         st->error_type ? st->error_type : "Error",
		         st->error_message ? st->error_message : "");
		return -1;
	default:
		return 0;
	}
}

enum idem_wf_outcome wf_replay(struct wf *wf, const struct idem_workflow *type, struct wf_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->wf = wf;
	ctx->run.input = wf->input;
	ctx->run.namespace_ = wf->namespace_;
	ctx->run.workflow_id = wf->workflow_id;
	ctx->run.type = type;
	ctx->run.call = wf_call;
	if (type == NULL) {
		snprintf(ctx->run.error, sizeof(ctx->run.error),
		         "unknown workflow type \"%s\": the app this supervisor runs has none",
		         wf->type);
		return IDEM_WF_FAIL;
	}
	return type->run(&ctx->run);
}

struct wf *wf_new(int64_t id, const char *ns, const char *workflow_id, const char *type,
                  json_t *input)
{
	struct wf *wf = xcalloc(1, sizeof(*wf));

	wf->id = id;
	wf->namespace_ = xstrdup(ns);
	wf->workflow_id = xstrdup(workflow_id);
	wf->type = xstrdup(type);
	wf->input = json_incref(input);
	wf->status = WF_RUNNING;
	TAILQ_INIT(&wf->waiters);
	return wf;
}

struct step *wf_add_step(struct wf *wf, const char *activity, json_t *input)
{
	struct step *st = xcalloc(1, sizeof(*st));

	if (wf->nsteps == wf->capsteps) {
		wf->capsteps = wf->capsteps ? wf->capsteps * 2 : 4;
		wf->steps = xrealloc(wf->steps, (size_t)wf->capsteps * sizeof(*wf->steps));
	}
	st->wf = wf;
	st->seq = wf->nsteps;
	st->activity = xstrdup(activity);
	st->input = input;
	st->status = STEP_SCHEDULED;
	st->slot = -1;
	wf->steps[wf->nsteps++] = st;
	return st;
}

static json_t *or_null(json_t *j)
{
	return j != NULL ? json_incref(j) : json_null();
}

static json_t *str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *step_json(const struct step *st)
{
	return json_pack(
	    "{s:i, s:s, s:o, s:s, s:i, s:o, s:o, s:o, s:o, s:I, s:I}", "seq", st->seq, "activity",
	    st->activity, "input", or_null(st->input), "status", step_status_name(st->status),
	    "attempts", st->attempt, "heartbeat", or_null(st->heartbeat), "result",
	    or_null(st->result), "error_type", str_or_null(st->error_type), "error_message",
	    str_or_null(st->error_message), "next_attempt_at", (json_int_t)st->next_attempt_at,
	    "scheduled_at", (json_int_t)st->scheduled_at);
}

const char *json_text(const json_t *j, char **cache)
{
	if (j == NULL)
		return NULL;
	if (*cache == NULL)
		*cache = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	return *cache;
}

json_t *wf_json(const struct wf *wf)
{
	json_t *steps = json_array();

	for (int i = 0; i < wf->nsteps; i++)
		json_array_append_new(steps, step_json(wf->steps[i]));
	return json_pack(
	    "{s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:I, s:o, s:o}", "namespace", wf->namespace_,
	    "workflow_id", wf->workflow_id, "type", wf->type, "input", or_null(wf->input), "status",
	    wf_status_name(wf->status), "result", or_null(wf->result), "error",
	    str_or_null(wf->error), "created_at", (json_int_t)wf->created_at, "closed_at",
	    wf->closed_at > 0 ? json_integer(wf->closed_at) : json_null(), "steps", steps);
}

static void put_json(struct textbuf *b, const char *text)
{
	textbuf_puts(b, text != NULL ? text : "null");
}

char *wf_json_text(struct wf *wf)
{
	struct textbuf b = {0};
	char *hb;

	textbuf_puts(&b, "{\"namespace\":");
	textbuf_put_json_str(&b, wf->namespace_);
	textbuf_puts(&b, ",\"workflow_id\":");
	textbuf_put_json_str(&b, wf->workflow_id);
	textbuf_puts(&b, ",\"type\":");
	textbuf_put_json_str(&b, wf->type);
	textbuf_puts(&b, ",\"input\":");
	put_json(&b, json_text(wf->input, &wf->input_text));
	textbuf_puts(&b, ",\"status\":\"");
	textbuf_puts(&b, wf_status_name(wf->status));
	textbuf_puts(&b, "\",\"result\":");
	put_json(&b, json_text(wf->result, &wf->result_text));
	textbuf_puts(&b, ",\"error\":");
	textbuf_put_json_str(&b, wf->error);
	textbuf_puts(&b, ",\"created_at\":");
	textbuf_put_int(&b, wf->created_at);
	textbuf_puts(&b, ",\"closed_at\":");
	if (wf->closed_at > 0)
		textbuf_put_int(&b, wf->closed_at);
	else
		textbuf_puts(&b, "null");
	textbuf_puts(&b, ",\"steps\":[");
	for (int i = 0; i < wf->nsteps; i++) {
		struct step *st = wf->steps[i];

		textbuf_puts(&b, i > 0 ? ",{\"seq\":" : "{\"seq\":");
		textbuf_put_int(&b, st->seq);
		textbuf_puts(&b, ",\"activity\":");
		textbuf_put_json_str(&b, st->activity);
		textbuf_puts(&b, ",\"input\":");
		put_json(&b, json_text(st->input, &st->input_text));
		textbuf_puts(&b, ",\"status\":\"");
		textbuf_puts(&b, step_status_name(st->status));
		textbuf_puts(&b, "\",\"attempts\":");
		textbuf_put_int(&b, st->attempt);
		textbuf_puts(&b, ",\"heartbeat\":");
		hb = st->heartbeat != NULL
		         ? json_dumps(st->heartbeat, JSON_COMPACT | JSON_ENCODE_ANY)
		         : NULL;
		put_json(&b, hb);
		free(hb);
		textbuf_puts(&b, ",\"result\":");
		put_json(&b, json_text(st->result, &st->result_text));
		textbuf_puts(&b, ",\"error_type\":");
		textbuf_put_json_str(&b, st->error_type);
		textbuf_puts(&b, ",\"error_message\":");
		textbuf_put_json_str(&b, st->error_message);
		textbuf_puts(&b, ",\"next_attempt_at\":");
		textbuf_put_int(&b, st->next_attempt_at);
		textbuf_puts(&b, ",\"scheduled_at\":");
		textbuf_put_int(&b, st->scheduled_at);
		textbuf_putc(&b, '}');
	}
	textbuf_puts(&b, "]}");
	return textbuf_take(&b, NULL);
}

static void step_free(struct step *st)
{
	if (st->timer != NULL)
		event_free(st->timer);
	if (st->deadline != NULL)
		event_free(st->deadline);
	free(st->activity);
	json_decref(st->input);
	json_decref(st->result);
	free(st->input_text);
	free(st->result_text);
	json_decref(st->heartbeat);
	free(st->error_type);
	free(st->error_message);
	free(st);
}

void wf_free(struct wf *wf)
{
	if (wf == NULL)
		return;
	for (int i = 0; i < wf->nsteps; i++)
		step_free(wf->steps[i]);
	free(wf->steps);
	free(wf->namespace_);
	free(wf->workflow_id);
	free(wf->type);
	json_decref(wf->input);
	json_decref(wf->result);
	free(wf->input_text);
	free(wf->result_text);
	free(wf->error);
	free(wf);
}
