/* workflow.c — workflow types and their deterministic replay.
 *
 * A workflow is a C function re-run from the top whenever it can make
 * progress. wf_activity() hands back the recorded result of a completed
 * step, schedules a step it has not seen, and otherwise suspends the
 * workflow; so the function must decide only from its input and the
 * results it is handed (no clock, no randomness, no config reads). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "inventory_input.h"
#include "textbuf.h"
#include "workflow.h"

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

/* ---- the inventory workflow (the seed's) -------------------------------- */

/* supplier_order is step 1, after update_inventory: its key is
 * "namespace/workflow_id/1". */
#define INVENTORY_SUPPLIER_STEP 1

/* Checks the input with the activities' own check (inventory_input.h)
 * and records the reorder parameters in it, so that a later change of
 * REORDER_* in the config cannot change what a replay decides. */
static int inventory_prepare(json_t *input, const struct idem_config *cfg, char *err, size_t errlen)
{
	if (inventory_input_check(input, INVENTORY_START, err, errlen) != 0)
		return -1;
	if (json_object_get(input, "reorder_threshold") == NULL)
		json_object_set_new(input, "reorder_threshold",
		                    json_integer(cfg->reorder_threshold));
	if (json_object_get(input, "reorder_quantity") == NULL)
		json_object_set_new(input, "reorder_quantity", json_integer(cfg->reorder_quantity));
	return 0;
}

/* The supplier order key must fit the supplier's Idempotency-Key limit,
 * which supplier_order checks (inventory_input.h). */
static int inventory_check_ids(const char *ns, const char *workflow_id, char *err, size_t errlen)
{
	char key[512];
	int len =
	    inventory_supplier_key(key, sizeof(key), ns, workflow_id, INVENTORY_SUPPLIER_STEP);
	int room = INVENTORY_KEY_MAX - (len - (int)strlen(workflow_id));

	if (len <= INVENTORY_KEY_MAX)
		return 0;
	if (room < 1) {
		snprintf(err, errlen,
		         "namespace is %zu bytes, too long for the supplier order key "
		         "namespace/workflow_id/%d (at most %d bytes): give a namespace of at most "
		         "%d bytes",
		         strlen(ns), INVENTORY_SUPPLIER_STEP, INVENTORY_KEY_MAX,
		         INVENTORY_KEY_MAX - 4);
		return -1;
	}
	snprintf(err, errlen,
	         "workflow_id is %zu bytes, over the %d that namespace \"%s\" (%zu bytes) leaves: "
	         "the supplier order key namespace/workflow_id/%d must fit the supplier's "
	         "%d-byte Idempotency-Key; give a shorter workflow_id or namespace",
	         strlen(workflow_id), room, ns, strlen(ns), INVENTORY_SUPPLIER_STEP,
	         INVENTORY_KEY_MAX);
	return -1;
}

static json_int_t int_field(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* update_inventory, then supplier_order when the stock fell below the
 * threshold. The supplier key is namespace/workflow_id/step: one supplier
 * order per workflow, whatever happens to the attempts (it fits the
 * supplier's limit: inventory_check_ids refused longer ids at start). */
static enum wf_outcome inventory_run(struct wf_ctx *ctx)
{
	json_t *in = ctx->wf->input, *r1 = NULL, *r2 = NULL;
	json_int_t stock, threshold = int_field(in, "reorder_threshold");
	int rc;

	rc = wf_activity(ctx, "update_inventory",
	                 json_pack("{s:O, s:O, s:O}", "order_id", json_object_get(in, "order_id"),
	                           "product_id", json_object_get(in, "product_id"), "quantity",
	                           json_object_get(in, "quantity")),
	                 &r1);
	if (rc <= 0)
		return rc == 0 ? WF_SUSPEND : WF_FAIL;
	stock = int_field(r1, "stock");
	if (stock >= threshold) {
		ctx->result = json_pack("{s:I, s:b, s:I}", "stock_after_order", stock, "restocked",
		                        0, "final_stock", stock);
		return WF_DONE;
	}
	char key[512];
	assert(ctx->cursor == INVENTORY_SUPPLIER_STEP);
	inventory_supplier_key(key, sizeof(key), ctx->wf->namespace_, ctx->wf->workflow_id,
	                       ctx->cursor);
	rc = wf_activity(ctx, "supplier_order",
	                 json_pack("{s:O, s:O, s:s}", "product_id",
	                           json_object_get(in, "product_id"), "quantity",
	                           json_object_get(in, "reorder_quantity"), "key", key),
	                 &r2);
	if (rc <= 0)
		return rc == 0 ? WF_SUSPEND : WF_FAIL;
	ctx->result = json_pack(
	    "{s:I, s:b, s:O, s:O, s:I}", "stock_after_order", stock, "restocked", 1,
	    "supplier_order_id", json_object_get(r2, "supplier_order_id"), "restock_quantity",
	    json_object_get(r2, "quantity"), "final_stock", int_field(r2, "stock"));
	return WF_DONE;
}

/* The activities' options. supplier_order heartbeats the supplier order id
 * once the supplier has answered, so HEARTBEAT_TIMEOUT applies to it; a
 * rejection by the supplier or an unknown product will not heal by
 * retrying. The retry policies take the config's defaults (zero fields). */
static const struct activity_options activity_table[] = {
    {"update_inventory", 0, {0, 0, 0, 0}, "InvalidInput,UnknownProduct,InsufficientStock"},
    {"supplier_order", 1, {0, 0, 0, 0}, "InvalidInput,UnknownProduct,SupplierRejected"},
};

const struct activity_options *activity_options_find(const char *name)
{
	static const struct activity_options unknown = {"", 0, {0, 0, 0, 0}, ""};

	for (size_t i = 0; i < sizeof(activity_table) / sizeof(activity_table[0]); i++)
		if (strcmp(activity_table[i].name, name) == 0)
			return &activity_table[i];
	return &unknown;
}

/* The workflow types. The rule for each: a start is refused (400, nothing
 * created) with whatever its activities would refuse as invalid input, so
 * that an accepted start can fail only for what the world says (stock,
 * products, the supplier), never for what the client sent. prepare()
 * checks the input with the very function the worker's activities call
 * (the inventory type: inventory_input_check, shared/inventory_input.c),
 * not a copy of its rules; check_ids() checks what the workflow derives
 * from its namespace and id (the inventory type: the supplier order key)
 * against the limit the activity enforces. A new type, or a new field or
 * activity of this one, follows the same rule. */
static const struct wf_type wf_types[] = {
    {"inventory", inventory_run, inventory_prepare, inventory_check_ids},
};

const struct wf_type *wf_type_find(const char *name)
{
	for (size_t i = 0; i < sizeof(wf_types) / sizeof(wf_types[0]); i++)
		if (strcmp(wf_types[i].name, name) == 0)
			return &wf_types[i];
	return NULL;
}

const char *wf_type_names(void)
{
	return "inventory";
}

int wf_check_ids(const char *type, const char *ns, const char *workflow_id, char *err,
                 size_t errlen)
{
	const struct wf_type *t = wf_type_find(type);

	if (t == NULL || t->check_ids == NULL)
		return 0;
	return t->check_ids(ns, workflow_id, err, errlen);
}

/* ---- replay -------------------------------------------------------------- */

int wf_activity(struct wf_ctx *ctx, const char *name, json_t *input, json_t **result)
{
	struct wf *wf = ctx->wf;
	int seq = ctx->cursor++;
	struct step *st;

	*result = NULL;
	if (seq >= wf->nsteps) {
		wf_add_step(wf, name, input);
		ctx->scheduled++;
		return 0;
	}
	json_decref(input);
	st = wf->steps[seq];
	if (strcmp(st->activity, name) != 0) {
		snprintf(ctx->error, sizeof(ctx->error),
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
		snprintf(ctx->error, sizeof(ctx->error),
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

enum wf_outcome wf_replay(struct wf *wf, struct wf_ctx *ctx)
{
	const struct wf_type *t = wf_type_find(wf->type);

	memset(ctx, 0, sizeof(*ctx));
	ctx->wf = wf;
	if (t == NULL) {
		snprintf(ctx->error, sizeof(ctx->error), "unknown workflow type \"%s\" (known: %s)",
		         wf->type, wf_type_names());
		return WF_FAIL;
	}
	return t->run(ctx);
}

struct wf *wf_new(int64_t id, const char *ns, const char *workflow_id, const char *type,
                  json_t *input)
{
	struct wf *wf = calloc(1, sizeof(*wf));

	wf->id = id;
	wf->namespace_ = strdup(ns);
	wf->workflow_id = strdup(workflow_id);
	wf->type = strdup(type);
	wf->input = json_incref(input);
	wf->status = WF_RUNNING;
	TAILQ_INIT(&wf->waiters);
	return wf;
}

struct step *wf_add_step(struct wf *wf, const char *activity, json_t *input)
{
	struct step *st = calloc(1, sizeof(*st));

	if (wf->nsteps == wf->capsteps) {
		wf->capsteps = wf->capsteps ? wf->capsteps * 2 : 4;
		wf->steps = realloc(wf->steps, (size_t)wf->capsteps * sizeof(*wf->steps));
	}
	st->wf = wf;
	st->seq = wf->nsteps;
	st->activity = strdup(activity);
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
